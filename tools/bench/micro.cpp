#include "micro.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <exception>

#include "bare_uffd.hpp"

namespace hetmm::bench {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kPage = 4096;
constexpr std::size_t kPagesPerThread = 16;  // consecutive pages per device thread of the sweep

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

template <class F>
double best_of(int reps, F&& f) {
  double best = 1e300;
  for (int i = 0; i < reps; ++i) best = std::min(best, f());
  return best;
}

template <class F>
double median_of(std::size_t samples, F&& f) {
  std::vector<double> v(samples);
  for (double& x : v) x = f();
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(samples / 2), v.end());
  return v[samples / 2];
}

// Plain memory of the process, outside any runtime, faulted in.
class Plain {
 public:
  explicit Plain(std::size_t len) : len_(len) {
    void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw Error(Errc::out_of_memory, "mmap of the reference buffer failed");
    p_ = static_cast<std::byte*>(p);
    std::memset(p_, 1, len);
  }
  ~Plain() { ::munmap(p_, len_); }
  Plain(const Plain&) = delete;
  Plain& operator=(const Plain&) = delete;
  std::byte* get() const { return p_; }

 private:
  std::byte* p_;
  std::size_t len_;
};

// The summing loop both the span kernel and its CPU reference run.
__attribute__((noinline)) std::uint64_t sum_plain(const std::uint32_t* p, std::size_t n) {
  std::uint64_t s = 0;
  for (std::size_t i = 0; i < n; ++i) s += p[i];
  return s;
}

Options micro_options(const MicroConfig& c, std::size_t device_memory) {
  Options o;
  o.device_memory = (device_memory + (2u << 20) - 1) / (2u << 20) * (2u << 20);
  o.workers = c.workers;
  o.tracking = c.tracking;
  o.policy = PolicyProfile::hetmm;
  return o;
}

void bandwidths(const MicroConfig& c, Micro& m) {
  std::size_t len = c.sweep_bytes / kPage * kPage;
  m.sweep_bytes = len;
  {
    Plain src(len), dst(len);
    double t = best_of(c.reps, [&] {
      auto t0 = Clock::now();
      std::memcpy(dst.get(), src.get(), len);
      return since(t0);
    });
    m.memcpy_gbs = static_cast<double>(len) / t / 1e9;
  }
  Runtime rt(micro_options(c, len + (32u << 20)));
  Device& dev = rt.device(0);
  auto* p = static_cast<std::byte*>(rt.allocate(len));
  std::memset(p, 1, len);
  const std::size_t pages = len / kPage;
  std::uint64_t moved = 0;
  double sweep = best_of(c.reps, [&] {
    std::uint64_t before = dev.stats().pages_to_device;
    auto t0 = Clock::now();
    dev.launch((pages + kPagesPerThread - 1) / kPagesPerThread, [p, pages](Thread& t) {
      std::size_t first = t.id() * kPagesPerThread;
      std::size_t last = std::min(pages, first + kPagesPerThread);
      for (std::size_t i = first; i < last; ++i)
        (void)t.load(reinterpret_cast<const std::uint32_t*>(p + i * kPage));
    });
    dev.synchronize();
    double s = since(t0);
    moved = std::max(moved, dev.stats().pages_to_device - before);
    rt.prefetch(p, len, Location::system());
    return s;
  });
  m.migration_gbs = static_cast<double>(len) / sweep / 1e9;
  m.migrated_fraction = static_cast<double>(moved) / static_cast<double>(pages);
  if (m.migrated_fraction < 0.5)
    m.notes.push_back("the fault-driven sweep migrated only " +
                      std::to_string(static_cast<int>(m.migrated_fraction * 100)) +
                      "% of its pages: its ratio measures in-place mapping, not migration");
  double prefetch = best_of(c.reps, [&] {
    auto t0 = Clock::now();
    rt.prefetch(p, len, Location::device(0));
    double s = since(t0);
    rt.prefetch(p, len, Location::system());
    return s;
  });
  m.prefetch_gbs = static_cast<double>(len) / prefetch / 1e9;
  rt.deallocate(p);
  m.migration_over_memcpy = m.migration_gbs / m.memcpy_gbs;
  m.prefetch_over_memcpy = m.prefetch_gbs / m.memcpy_gbs;
}

void fault_round_trips(const MicroConfig& c, Micro& m) {
  {
    BareUffdPage bare;
    if (!bare.ok()) {
      m.notes.push_back("bare userfaultfd round trip not measured: " + bare.error());
    } else {
      m.bare_uffd_us = 1e6 * median_of(c.fault_samples, [&] {
                         bare.zap();
                         auto t0 = Clock::now();
                         bare.touch();
                         return since(t0);
                       });
    }
  }
  Runtime rt(micro_options(c, 4u << 20));
  Device& dev = rt.device(0);
  auto* page = static_cast<volatile char*>(rt.allocate(kPage));
  page[0] = 1;
  bool resident = true;
  m.faultback_us = 1e6 * median_of(c.fault_samples, [&] {
                     dev.migrate_to_device(const_cast<char*>(page), kPage);
                     resident = resident && !rt.location(const_cast<char*>(page)).is_system();
                     auto t0 = Clock::now();
                     page[0] = static_cast<char>(page[0] + 1);
                     return since(t0);
                   });
  rt.deallocate(const_cast<char*>(page));
  if (!resident)
    m.notes.push_back("the fault-back page was not always on the device before its touch");
  m.cpu_faultback_over_uffd = m.faultback_us / m.bare_uffd_us;
}

void hit_paths(const MicroConfig& c, Micro& m) {
  const std::size_t n = c.sum_elements;
  Plain ref(n * 4);
  auto* r = reinterpret_cast<std::uint32_t*>(ref.get());
  std::fill_n(r, n, 3u);
  Runtime rt(micro_options(c, n * 4 + (4u << 20)));
  Device& dev = rt.device(0);
  auto* v = static_cast<std::uint32_t*>(rt.allocate(n * 4));
  std::fill_n(v, n, 3u);
  dev.migrate_to_device(v, n * 4);
  std::uint64_t sum = 0;
  const int reps = std::max(c.reps, 5);
  auto kernel = [&](auto body) {
    return best_of(reps, [&] {
      auto t0 = Clock::now();
      dev.launch(1, [&body, &sum](Thread& t) { sum = body(t); });
      dev.synchronize();
      return since(t0);
    });
  };
  double load = kernel([v, n](Thread& t) {
    std::uint64_t s = 0;
    for (std::size_t i = 0; i < n; ++i) s += t.load(v + i);
    return s;
  });
  if (sum != 3 * n) m.notes.push_back("the Thread::load sum is wrong");
  double raw_load = best_of(2 * reps, [&] {
    auto t0 = Clock::now();
    const volatile std::uint32_t* p = r;  // one load per element, as Thread::load does
    std::uint64_t s = 0;
    for (std::size_t i = 0; i < n; ++i) s += p[i];
    double e = since(t0);
    sum = s;
    return e;
  });
  double span = kernel([v, n](Thread& t) {
    std::uint64_t s = 0;
    t.read_span(v, n,
                [&s](const std::uint32_t* piece, std::size_t k) { s += sum_plain(piece, k); });
    return s;
  });
  if (sum != 3 * n) m.notes.push_back("the read_span sum is wrong");
  double raw_sum = best_of(2 * reps, [&] {
    auto t0 = Clock::now();
    sum = sum_plain(r, n);
    return since(t0);
  });
  rt.deallocate(v);
  auto per = [n](double s) { return s * 1e9 / static_cast<double>(n); };
  m.load_ns = per(load);
  m.raw_load_ns = per(raw_load);
  m.span_ns = per(span);
  m.raw_sum_ns = per(raw_sum);
  m.mmu_hit_over_raw = load / raw_load;
  m.span_over_raw = span / raw_sum;
}

// The region a device-fault measurement works in: `bytes` of address space reserved (sparse:
// nothing is backed until touched), block-aligned, with one page per block touched by the CPU
// and mapped on the device by one kernel (the fault-ahead window is the block: all of it gets
// mapped in place). That is what "mirrored" means here.
class MirroredRegion {
 public:
  static constexpr std::size_t kBlock = 2u << 20;
  MirroredRegion(Device& dev, std::size_t bytes) : len_(bytes + kBlock) {
    void* p = ::mmap(nullptr, len_, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw Error(Errc::out_of_memory, "mmap of the sparse region failed");
    raw_ = static_cast<std::byte*>(p);
    base_ = reinterpret_cast<std::byte*>((reinterpret_cast<std::uintptr_t>(p) + kBlock - 1) &
                                         ~(kBlock - 1));
    pages_per_block_ = std::min(bytes, kBlock) / kPage;
    blocks_ = std::max<std::size_t>(1, bytes / kBlock);
    for (std::size_t b = 0; b < blocks_; ++b) *page(b, 0) = std::byte{1};
    std::byte* base = base_;
    dev.launch(blocks_, [base](Thread& t) {
      (void)t.load(reinterpret_cast<const std::uint8_t*>(base + t.id() * kBlock));
    });
    dev.synchronize();
  }
  ~MirroredRegion() { ::munmap(raw_, len_); }
  MirroredRegion(const MirroredRegion&) = delete;
  MirroredRegion& operator=(const MirroredRegion&) = delete;
  std::size_t blocks() const { return blocks_; }
  std::size_t pages_per_block() const { return pages_per_block_; }
  std::byte* page(std::size_t block, std::size_t i) const {
    return base_ + block * kBlock + i * kPage;
  }
  // Makes the page cold on the device (madvise: the hook tears its device mapping down) and
  // present again on the CPU, so that the device's miss is all the next access costs.
  void make_cold(std::byte* p) const {
    ::madvise(p, kPage, MADV_DONTNEED);
    *static_cast<volatile std::byte*>(p) = std::byte{1};
  }

 private:
  std::size_t len_;
  std::byte* raw_;
  std::byte* base_;
  std::size_t blocks_ = 0, pages_per_block_ = 0;
};

void fault_service(const MicroConfig& c, Micro& m) {
  Options o = micro_options(c, 4u << 20);
  o.policy = PolicyProfile::in_place;
  o.workers = std::max(c.workers, 8u);
  Runtime rt(o);
  Device& dev = rt.device(0);
  std::uint64_t seed = 0x9E3779B97F4A7C15ull;
  auto next = [&seed] {  // xorshift: which page of which block
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
  };
  // Timed inside the kernel, around the one access: the launch's own cost (a wake-up of the
  // workers, ~100 us with a lot of jitter on this machine) stays out.
  auto load_once = [&dev](const std::byte* p) {
    double s = 0;
    dev.launch(1, [p, &s](Thread& t) {
      auto t0 = Clock::now();
      (void)t.load(reinterpret_cast<const std::uint8_t*>(p));
      s = since(t0);
    });
    dev.synchronize();
    return s;
  };
  const std::size_t samples = std::max<std::size_t>(c.fault_samples / 4, 20);
  auto round_trip = [&](std::size_t bytes) {
    MirroredRegion r(dev, bytes);
    return 1e6 * median_of(samples, [&] {
      std::byte* p = r.page(next() % r.blocks(), 1 + next() % (r.pages_per_block() - 1));
      r.make_cold(p);
      return load_once(p);
    });
  };
  (void)round_trip(1u << 20);  // warm-up: the first faults of a runtime cost more
  m.device_fault_us = round_trip(1u << 20);
  m.device_fault_us_1g = round_trip(c.mirrored_mid);
  m.device_fault_us_16g = round_trip(c.mirrored_large);
  // Many workers missing at once: one cold page in each block of the middle size, one thread
  // per page.
  MirroredRegion r(dev, c.mirrored_mid);
  const std::size_t n = r.blocks();
  std::byte* first = r.page(0, 1);
  auto sweep = [&] {
    auto t0 = Clock::now();
    dev.launch(n, [first](Thread& t) {
      (void)t.load(reinterpret_cast<const std::uint8_t*>(first + t.id() * MirroredRegion::kBlock));
    });
    dev.synchronize();
    return since(t0);
  };
  // The launch's own cost is taken out as the fastest warm sweep seen: a cold sweep does all a
  // warm one does plus the faults, so against that floor the difference is the faults' cost even
  // when one warm sweep is slowed by a wake-up (one cold-minus-next-warm pair could come out
  // negative on a busy machine). A few repetitions at least, whatever reps says.
  double best_cold = 1e300, best_warm = 1e300;
  for (int rep = 0; rep < std::max(c.reps, 3); ++rep) {
    for (std::size_t b = 0; b < n; ++b) r.make_cold(r.page(b, 1));
    best_cold = std::min(best_cold, sweep());
    best_warm = std::min(best_warm, sweep());
    best_warm = std::min(best_warm, sweep());
  }
  const double best = best_cold - best_warm;
  m.many_workers = o.workers;
  m.many_faults = n;
  m.faults_per_s_many = best > 0 ? static_cast<double>(n) / best : kNotMeasured;
  if (!(best > 0)) m.notes.push_back("faults/s with many workers: no cold sweep beat the warm floor");
}

template <class F>
void attempt(const char* what, Micro& m, F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    m.notes.push_back(std::string(what) + ": " + e.what());
  }
}

}  // namespace

Micro measure_micro(const MicroConfig& config) {
  Micro m;
  attempt("migration and prefetch", m, [&] { bandwidths(config, m); });
  attempt("fault round trips", m, [&] { fault_round_trips(config, m); });
  attempt("MMU hit path", m, [&] { hit_paths(config, m); });
  attempt("device fault service", m, [&] { fault_service(config, m); });
  return m;
}

}  // namespace hetmm::bench
