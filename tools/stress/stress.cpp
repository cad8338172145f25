#include "stress.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <unistd.h>

namespace hetmm::stress {

namespace {

using Clock = std::chrono::steady_clock;

long rss_kib() {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return resident * (::sysconf(_SC_PAGESIZE) / 1024);
}

// Device memory is returned after userfaultfd events are handled, just after the munmap that
// raised them: wait a little for it.
std::size_t settle_device_memory(Runtime& rt) {
  auto deadline = Clock::now() + std::chrono::seconds(5);
  for (;;) {
    std::size_t used = 0;
    for (std::size_t d = 0; d < rt.device_count(); ++d) {
      rt.device(d).release();
      used += rt.device(d).memory_used();
    }
    if (used == 0 || Clock::now() > deadline) return used;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

// Aborts with a report when no step finishes for too long: a stuck thread is a bug too.
class Watchdog {
 public:
  Watchdog(double seconds, const std::string* where) : seconds_(seconds), where_(where) {
    thread_ = std::thread([this] { watch(); });
  }
  ~Watchdog() {
    stop_ = true;
    thread_.join();
  }
  void tick() { ticks_.fetch_add(1, std::memory_order_relaxed); }

 private:
  void watch() {
    std::uint64_t last = ~std::uint64_t{0};
    auto since = Clock::now();
    while (!stop_) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      std::uint64_t now = ticks_.load(std::memory_order_relaxed);
      if (now != last) {
        last = now;
        since = Clock::now();
      } else if (std::chrono::duration<double>(Clock::now() - since).count() > seconds_) {
        std::fprintf(stderr, "hetmm stress: no progress for %.0f s: a thread is stuck in\n%s\n",
                     seconds_, where_->c_str());
        std::abort();
      }
    }
  }
  double seconds_;
  const std::string* where_;
  std::atomic<std::uint64_t> ticks_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

std::string describe(const Step& step) {
  std::string s;
  for (const Op& op : step.ops) s += (s.empty() ? "" : " | ") + describe(op);
  return s;
}

// Delta debugging over steps: removes chunks while the program still diverges (in either of
// two tries: thread timing is not replayed).
Program minimise(Runtime& rt, Program program, bool oom_possible, ThreadPool& pool,
                 double budget_seconds) {
  auto deadline = Clock::now() + std::chrono::duration<double>(budget_seconds);
  auto diverges = [&](const Program& p) {
    for (int tries = 0; tries < 2; ++tries) {
      Counters scratch;
      if (replay(rt, p, oom_possible, pool, scratch)) return true;
    }
    return false;
  };
  std::size_t chunk = program.steps.size() / 2;
  while (chunk >= 1 && Clock::now() < deadline) {
    bool removed = false;
    for (std::size_t at = 0; at < program.steps.size() && Clock::now() < deadline;) {
      Program candidate = program;
      std::size_t n = std::min(chunk, candidate.steps.size() - at);
      // The last step is the one that diverged: keep it.
      if (at + n >= program.steps.size()) break;
      candidate.steps.erase(candidate.steps.begin() + static_cast<long>(at),
                            candidate.steps.begin() + static_cast<long>(at + n));
      if (diverges(candidate)) {
        program = std::move(candidate);
        removed = true;
      } else {
        at += n;
      }
    }
    if (!removed) chunk /= 2;
  }
  return program;
}

}  // namespace

bool Report::leaked() const {
  return device_bytes_end != 0 || (rss_baseline_kib > 0 && rss_end_kib > rss_baseline_kib + 65536);
}

std::string format(const Program& p) {
  // Appended piece by piece: `" " + std::to_string(i) + ...` (operator+(const char*, string&&)
  // inlined at -O3) draws GCC 12's -Wrestrict false positive in std::string (GCC bugs 105329,
  // 105651).
  std::string s = "program seed ";
  s += std::to_string(p.seed);
  s += "\n  slots:";
  for (std::size_t i = 0; i < p.slots.size(); ++i) {
    s += ' ';
    s += std::to_string(i);
    s += '=';
    s += to_string(p.slots[i].first);
    s += '/';
    s += std::to_string(p.slots[i].second);
    s += 'p';
  }
  s += '\n';
  for (std::size_t i = 0; i < p.steps.size(); ++i) {
    s += "  step ";
    s += std::to_string(i);
    s += ": ";
    s += describe(p.steps[i]);
    s += '\n';
  }
  return s;
}

std::optional<Divergence> run_generated(Runtime& rt, Chooser& chooser, const Shape& shape,
                                        std::size_t steps, bool oom_possible, ThreadPool& pool,
                                        Program* recorded, Counters& counters,
                                        const std::function<void(std::size_t, const Step&)>& before_step) {
  recorded->slots = initial_slots(chooser, shape);
  recorded->steps.clear();
  World world(rt, recorded->slots, oom_possible, shape.fork);
  for (std::size_t i = 0; i < steps && !chooser.exhausted(); ++i) {
    recorded->steps.push_back(next_step(chooser, world.model(), shape));
    if (before_step) before_step(i, recorded->steps.back());
    if (auto d = world.run(recorded->steps.back(), i, pool, counters)) return d;
  }
  return world.check_all(recorded->steps.size());
}

std::optional<Divergence> replay(Runtime& rt, const Program& program, bool oom_possible,
                                 ThreadPool& pool, Counters& counters) {
  World world(rt, program.slots, oom_possible, true);
  for (std::size_t i = 0; i < program.steps.size(); ++i)
    if (auto d = world.run(program.steps[i], i, pool, counters)) return d;
  return world.check_all(program.steps.size());
}

Report run(const Config& config) {
  Options o;
  o.devices = config.devices;
  o.device_memory = config.device_memory;
  o.workers = config.workers;
  o.tracking = config.tracking;
  o.inject = config.inject;
  Runtime rt(o);
  Shape shape;
  shape.devices = config.devices;
  shape.threads = config.threads;
  shape.fork = config.fork;
  // The slots hold up to 6 x 513 pages: more than a small device memory. Injected frame
  // failures make any migration's out_of_memory possible too.
  bool oom_possible = config.device_memory < shape.slots * 513 * kPage ||
                      config.inject.frame_alloc > 0;
  ThreadPool pool(config.threads);
  Report report;
  report.tracking = rt.tracking();
  std::string where = "(starting)";
  Watchdog watchdog(config.stuck_seconds, &where);
  auto start = Clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
  for (std::uint64_t k = 0; elapsed() < config.seconds || report.programs == 0; ++k) {
    Program program;
    program.seed = config.seed + k;
    SeededChooser chooser(program.seed);
    Counters counters;
    // The watchdog names the step in progress if it gets stuck.
    std::optional<Divergence> d = run_generated(
        rt, chooser, shape, config.steps_per_program, oom_possible, pool, &program, counters,
        [&](std::size_t i, const Step& step) {
          watchdog.tick();
          where = "seed " + std::to_string(program.seed) + " step " + std::to_string(i) + ": " +
                  describe(step);
        });
    report.counters.add(counters);
    ++report.programs;
    std::size_t used = settle_device_memory(rt);
    if (!d && used != 0)
      d = Divergence{program.steps.size(), Op{}, "device memory not returned after the program: " +
                                                     std::to_string(used) + " bytes"};
    if (report.programs == 1) report.rss_baseline_kib = rss_kib();
    if (d) {
      ++report.divergences;
      if (report.first_divergence.empty()) {
        std::string text = "divergence: seed " + std::to_string(program.seed) + ", step " +
                           std::to_string(d->step) + ": " + describe(d->op) + "\n  " + d->what +
                           "\n";
        if (config.minimise && !program.steps.empty()) {
          Program small = minimise(rt, program, oom_possible, pool, 30);
          text += "minimised (" + std::to_string(small.steps.size()) + " of " +
                  std::to_string(program.steps.size()) + " steps):\n" + format(small);
        } else {
          text += format(program);
        }
        report.first_divergence = text;
      }
      break;
    }
    if (config.progress) config.progress(std::min(1.0, elapsed() / config.seconds), report.counters);
  }
  report.device_bytes_end = settle_device_memory(rt);
  report.rss_end_kib = rss_kib();
  report.injected = rt.injected_faults();
  for (std::size_t d = 0; d < rt.device_count(); ++d) {
    report.blocks_moved_in += rt.device(d).stats().blocks_moved_in;
    report.blocks_moved_out += rt.device(d).stats().blocks_moved_out;
  }
  report.seconds = elapsed();
  return report;
}

std::string format(const Report& r, const Config& c) {
  std::string s;
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "hetmm stress: seed %llu, %.1f s, %s tracking, %zu devices x %zu KiB, %u CPU "
                "threads\n",
                static_cast<unsigned long long>(c.seed), r.seconds, to_string(r.tracking),
                c.devices, c.device_memory >> 10, c.threads);
  s += buf;
  std::snprintf(buf, sizeof buf, "programs %llu, steps %llu, operations %llu (skipped %llu)\n",
                static_cast<unsigned long long>(r.programs),
                static_cast<unsigned long long>(r.counters.steps),
                static_cast<unsigned long long>(r.counters.total_ops()),
                static_cast<unsigned long long>(r.counters.skipped));
  s += buf;
  s += "operations by kind:";
  for (std::size_t k = 0; k < r.counters.ops.size(); ++k) {
    std::snprintf(buf, sizeof buf, "%s %s %llu", k % 6 == 0 ? "\n " : ",",
                  to_string(static_cast<OpKind>(k)),
                  static_cast<unsigned long long>(r.counters.ops[k]));
    s += buf;
  }
  s += "\nexpected errors seen:";
  for (unsigned e = 0; e < r.counters.errors.size(); ++e)
    if (r.counters.errors[e]) {
      std::snprintf(buf, sizeof buf, " %s %llu", to_string(static_cast<Errc>(e)),
                    static_cast<unsigned long long>(r.counters.errors[e]));
      s += buf;
    }
  std::snprintf(buf, sizeof buf,
                "\nfaults injected: frame_alloc %llu, copy %llu, uffd_ioctl %llu, service_delay "
                "%llu, worker_stall %llu\n",
                static_cast<unsigned long long>(r.injected.frame_alloc),
                static_cast<unsigned long long>(r.injected.copy),
                static_cast<unsigned long long>(r.injected.uffd_ioctl),
                static_cast<unsigned long long>(r.injected.service_delay),
                static_cast<unsigned long long>(r.injected.worker_stall));
  s += buf;
  std::snprintf(buf, sizeof buf,
                "RSS %ld KiB after the first program, %ld KiB at the end; device memory in use "
                "at the end: %zu bytes\n",
                r.rss_baseline_kib, r.rss_end_kib, r.device_bytes_end);
  s += buf;
  std::snprintf(buf, sizeof buf, "whole blocks moved without a copy: %llu in, %llu out\n",
                static_cast<unsigned long long>(r.blocks_moved_in),
                static_cast<unsigned long long>(r.blocks_moved_out));
  s += buf;
  std::snprintf(buf, sizeof buf, "divergences: %llu%s\n",
                static_cast<unsigned long long>(r.divergences),
                r.leaked() ? " (and a leak)" : "");
  s += buf;
  if (!r.first_divergence.empty()) s += r.first_divergence;
  return s;
}

}  // namespace hetmm::stress
