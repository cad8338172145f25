// The hetmm command: `hetmm info`, `hetmm demo`, and the subcommands of commands.hpp.
#include "commands.hpp"

#include <hetmm/hetmm.hpp>
#include <hetmm/trace.hpp>

#include <CLI/CLI.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/utsname.h>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string read_first_line(const char* path) {
  std::ifstream f(path);
  std::string s;
  std::getline(f, s);
  return s.empty() ? "(unavailable)" : s;
}

hetmm::Tracking parse_tracking(const std::string& s) {
  if (s == "userfaultfd" || s == "uffd") return hetmm::Tracking::userfaultfd;
  if (s == "mprotect") return hetmm::Tracking::mprotect;
  return hetmm::Tracking::automatic;
}


int cmd_info(const hetmm::Options& opt) {
  hetmm::Runtime rt(opt);
  utsname u{};
  uname(&u);
  std::printf("hetmm %s\n\n", "0.1.0");
  std::printf("kernel            %s %s\n", u.sysname, u.release);
  std::printf("tracking          %s\n", hetmm::to_string(rt.tracking()));
  std::printf("  why             %s\n", rt.tracking_reason().c_str());
  std::printf("hooks             %s\n",
              rt.hooks_active() ? "interposed (munmap, mprotect, madvise, mremap, mmap)"
                                : "NOT interposed: CPU-side changes are seen only through "
                                  "userfaultfd events");
  std::printf("unprivileged uffd %s (vm.unprivileged_userfaultfd)\n",
              read_first_line("/proc/sys/vm/unprivileged_userfaultfd").c_str());
  std::printf("THP               %s\n",
              read_first_line("/sys/kernel/mm/transparent_hugepage/enabled").c_str());
  std::printf("hardware threads  %u\n", std::thread::hardware_concurrency());
  std::printf("\nkernel features\n");
  std::istringstream features(rt.kernel_features());
  for (std::string line; std::getline(features, line);) std::printf("  %s\n", line.c_str());
  std::printf("\n");
  std::printf("%-8s %-6s %14s %14s\n", "device", "kind", "capacity", "used");
  for (std::size_t i = 0; i < rt.device_count(); ++i) {
    auto& d = rt.device(i);
    std::printf("%-8zu %-6s %11.1f MiB %11.1f MiB\n", i, "sim",
                static_cast<double>(d.memory_capacity()) / (1 << 20),
                static_cast<double>(d.memory_used()) / (1 << 20));
  }
  return 0;
}

struct Row {
  std::string phase;
  double seconds;
  hetmm::DeviceStats before, after;
  std::size_t bytes;
};

void print_rows(const std::vector<Row>& rows) {
  std::printf("\n%-34s %9s %8s %9s %9s %9s %10s\n", "phase", "time ms", "faults", "to dev",
              "to sys", "cpu flt", "GB/s");
  for (const Row& r : rows) {
    auto d = [&](std::uint64_t hetmm::DeviceStats::*m) { return r.after.*m - r.before.*m; };
    double gbs = r.seconds > 0 ? static_cast<double>(r.bytes) / r.seconds / 1e9 : 0;
    std::printf("%-34s %9.2f %8llu %9llu %9llu %9llu %10.2f\n", r.phase.c_str(),
                r.seconds * 1e3,
                static_cast<unsigned long long>(d(&hetmm::DeviceStats::faults)),
                static_cast<unsigned long long>(d(&hetmm::DeviceStats::pages_to_device)),
                static_cast<unsigned long long>(d(&hetmm::DeviceStats::pages_to_system)),
                static_cast<unsigned long long>(d(&hetmm::DeviceStats::cpu_faults)), gbs);
  }
  std::printf("(faults: device fault records served; to dev / to sys: pages migrated; "
              "cpu flt: CPU touches that brought pages home)\n");
}

// What the demo's CPU reads compute: the floats' bit patterns summed (integer adds vectorise, so
// the loop runs at memory speed, as a float sum in order would not).
std::uint64_t bit_sum(const float* p, std::size_t n) {
  std::uint64_t s = 0;
  for (std::size_t i = 0; i < n; ++i) {
    std::uint32_t bits;
    std::memcpy(&bits, p + i, sizeof bits);
    s += bits;
  }
  return s;
}

int cmd_demo(hetmm::Options opt, std::size_t size_mib, const std::string& trace_path) {
  // Three arrays of size_mib / 3 each; device memory sized to hold them.
  std::size_t n = size_mib * (1u << 20) / 3 / sizeof(float);
  if (n == 0) n = 1024;
  std::size_t bytes = n * sizeof(float);
  if (opt.device_memory < 3 * bytes + (8u << 20)) opt.device_memory = ((3 * bytes >> 20) + 8) << 20;
  if (!trace_path.empty()) opt.event_capacity = 1 << 20;
  hetmm::Runtime rt(opt);
  auto& dev = rt.device(0);
  std::printf("hetmm demo: c[i] = 2*a[i] + b[i] over ordinary std::vector memory\n");
  std::printf("tracking %s, %zu worker threads, arrays of %zu floats (%.1f MiB each)\n",
              hetmm::to_string(rt.tracking()),
              static_cast<std::size_t>(opt.workers ? opt.workers : std::thread::hardware_concurrency()),
              n, static_cast<double>(bytes) / (1 << 20));

  std::vector<float> a(n), b(n), c(n, 0.0f);
  for (std::size_t i = 0; i < n; ++i) {
    a[i] = static_cast<float>(i % 1000);
    b[i] = 1.0f;
  }
  std::vector<Row> rows;
  auto phase = [&](const char* name, std::size_t moved, auto&& body) {
    Row r{name, 0, dev.stats(), {}, moved};
    auto t0 = Clock::now();
    body();
    r.seconds = seconds_since(t0);
    r.after = dev.stats();
    rows.push_back(r);
  };

  // The references, in this run (the machines are shared and noisy): memcpy of the bytes the
  // migration moves; the kernel's loop and the CPU's reads, on the CPU over resident copies.
  // The phases after them read as ratios of these.
  std::vector<float> sa(a), sb(b), sc(n, 0.0f);
  phase("reference: memcpy of a, b", 2 * bytes, [&] {
    std::memcpy(sc.data(), sa.data(), bytes);
    std::memcpy(sc.data(), sb.data(), bytes);
  });
  phase("reference: c = 2a + b on the CPU", 3 * bytes, [&] {
    for (std::size_t i = 0; i < n; ++i) sc[i] = 2.0f * sa[i] + sb[i];
  });
  std::uint64_t reference_sum = 0;
  phase("reference: the CPU reads c", bytes, [&] { reference_sum = bit_sum(sc.data(), n); });
  phase("migrate a, b to device 0", 2 * bytes, [&] {
    dev.migrate_to_device(a.data(), bytes);
    dev.migrate_to_device(b.data(), bytes);
  });
  phase("kernel: c = 2a + b (c migrates in)", 3 * bytes, [&] {
    float* pa = a.data();
    float* pb = b.data();
    float* pc = c.data();
    dev.launch(n, [=](hetmm::Thread& t) {
      std::size_t i = t.id();
      t.store(pc + i, 2.0f * t.load(pa + i) + t.load(pb + i));
    });
    dev.synchronize();
  });
  std::uint64_t sum_c = 0, sum_a = 0;
  phase("CPU reads c (pages come home)", bytes, [&] { sum_c = bit_sum(c.data(), n); });
  phase("CPU reads a (pages come home)", bytes, [&] { sum_a = bit_sum(a.data(), n); });
  phase("release device 0 (b comes home)", bytes, [&] { dev.release(); });
  bool ok = sum_c == reference_sum && sum_a == bit_sum(sa.data(), n);
  for (std::size_t i = 0; i < n && ok; ++i)
    ok = a[i] == static_cast<float>(i % 1000) && c[i] == 2.0f * a[i] + 1.0f && b[i] == 1.0f;
  print_rows(rows);
  auto rate = [&](std::size_t i) { return static_cast<double>(rows[i].bytes) / rows[i].seconds; };
  std::printf("against the references of this run: migration %.2fx memcpy; the kernel %.2fx the "
              "same loop on the CPU; the CPU's reads of c %.2fx, of a %.2fx its reads of "
              "resident memory\n",
              rate(3) / rate(0), rate(4) / rate(1), rate(5) / rate(2), rate(6) / rate(2));
  auto s = dev.stats();
  std::printf("\nTLB hits %llu, misses %llu; fault batches %llu; 2 MiB blocks moved (no copy) "
              "in %llu, out %llu; device memory used now %zu bytes\n",
              static_cast<unsigned long long>(s.tlb_hits),
              static_cast<unsigned long long>(s.tlb_misses),
              static_cast<unsigned long long>(s.fault_batches),
              static_cast<unsigned long long>(s.blocks_moved_in),
              static_cast<unsigned long long>(s.blocks_moved_out), dev.memory_used());
  std::printf("result %s (checksum %llu)\n", ok ? "verified" : "WRONG",
              static_cast<unsigned long long>(sum_c));
  if (!trace_path.empty()) {
    std::vector<hetmm::Event> events = rt.take_events();
    hetmm::TraceInfo info{"hetmm demo", {}, rt.events_dropped()};
    for (std::size_t i = 0; i < rt.device_count(); ++i)
      info.device_memory.push_back(rt.device(i).memory_capacity());
    std::ofstream out(trace_path, std::ios::binary | std::ios::trunc);
    if (out) hetmm::write_chrome_trace(out, events, info);
    out.close();
    if (!out) {
      std::fprintf(stderr, "hetmm demo: cannot write the trace to %s\n", trace_path.c_str());
      return 2;
    }
    std::printf("trace: %zu events (%llu dropped) written to %s (open it in ui.perfetto.dev, or "
                "run `hetmm trace %s`)\n",
                events.size(), static_cast<unsigned long long>(info.events_dropped),
                trace_path.c_str(), trace_path.c_str());
  }
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"hetmm: heterogeneous memory management in user space"};
  app.require_subcommand(1);
  hetmm::Options opt;
  std::string tracking = "automatic";
  std::size_t device_mib = 256;
  app.add_option("--tracking", tracking, "automatic, userfaultfd or mprotect")
      ->check(CLI::IsMember({"automatic", "userfaultfd", "uffd", "mprotect"}));
  app.add_option("--devices", opt.devices, "software devices")->check(CLI::Range(1, 32));
  app.add_option("--device-mib", device_mib, "device memory per device, MiB");
  app.add_option("--workers", opt.workers, "worker threads per device (0: hardware threads)");
  auto* info = app.add_subcommand("info", "devices, tracking mode and why, kernel features");
  auto* demo = app.add_subcommand("demo", "a device computes on std::vector memory");
  std::size_t size_mib = 48;
  demo->add_option("--size-mib", size_mib, "total size of the three arrays, MiB")
      ->check(CLI::Range(1, 8192));
  std::string demo_trace;
  demo->add_option("--trace", demo_trace,
                   "record events and write them to this file as a Chrome trace (Perfetto)");
  auto* trace = app.add_subcommand(
      "trace", "render a Chrome trace written by hetmm as an SVG timeline and residency heatmap");
  std::string trace_file, trace_out;
  trace->add_option("FILE", trace_file, "the trace (JSON), e.g. from `hetmm demo --trace FILE`")
      ->required();
  trace->add_option("-o,--output", trace_out, "the SVG to write (default: FILE with .svg)");
  auto* stress = app.add_subcommand(
      "stress", "randomized differential test against a model of plain memory (docs/RELIABILITY.md)");
  StressArgs sargs;
  stress->add_option("--seed", sargs.seed, "first program's seed (each program: seed + k)");
  stress->add_option("--seconds", sargs.seconds, "time budget")->check(CLI::PositiveNumber);
  stress->add_option("--device-kib", sargs.device_kib,
                     "device memory per device, KiB (small: the slots oversubscribe it)")
      ->check(CLI::Range(4, 1 << 22));
  stress->add_option("--threads", sargs.threads, "CPU threads running each step")
      ->check(CLI::Range(1, 16));
  stress->add_option("--steps", sargs.steps, "steps per program")->check(CLI::Range(1, 100000));
  stress->add_option("--inject", sargs.inject,
                     "fault-injection rate for every kind (frame allocation, copy, userfaultfd "
                     "ioctl, service delay, worker stall)")
      ->check(CLI::Range(0.0, 0.5));
  stress->add_flag("--no-fork", sargs.no_fork, "leave fork out of the operations");
  stress->add_flag("--load", sargs.load,
                   "run the memory load generator (`hetmm load`) beside the test");
  auto* load = app.add_subcommand(
      "load", "memory load for testing under load: processes that map, fault, fork, allocate, "
              "collapse huge pages and fill the page cache");
  LoadArgs largs;
  load->add_option("--seconds", largs.seconds, "how long")->check(CLI::PositiveNumber);
  load->add_option("--processes", largs.processes, "worker processes")->check(CLI::Range(1, 64));
  load->add_option("--memory-mib", largs.memory_mib, "live memory per worker at most, MiB")
      ->check(CLI::Range(16, 1 << 16));
  load->add_option("--seed", largs.seed, "random seed");
  load->add_flag("--no-compaction", largs.no_compaction,
                 "do not write /proc/sys/vm/compact_memory");
  load->add_flag("--quiet", largs.quiet, "print nothing at the end");
  auto* bench = app.add_subcommand(
      "bench", "workloads x modes x working-set factors on modeled and wall time, verified, and "
               "the micro-costs (docs/PERFORMANCE.md)");
  BenchArgs bargs;
  bench->add_flag("--quick", bargs.quick, "small sizes (8 MiB device, 128 MiB micro sweep)");
  bench->add_option("--size", bargs.size,
                    "preset: quick (as --quick), default (64 MiB device), large (1 GiB device, "
                    "factors 1, 1.5, 2: working sets up to 2 GiB; minutes)")
      ->check(CLI::IsMember({"quick", "default", "large"}));
  bench->add_flag("--json", bargs.json,
                  "print one JSON object on stdout (the table goes to stderr)");
  bench->add_option("--svg", bargs.svg, "write a chart of modeled time to this file");
  bench->add_option("--trace-dir", bargs.trace_dir,
                    "write each run's events as a Chrome trace (DIR/WORKLOAD-MODE-xFACTOR.json)")
      ->check(CLI::ExistingDirectory);
  bench->add_option("--workloads", bargs.workloads, "comma-separated subset (default: all)")
      ->delimiter(',')
      ->check(CLI::IsMember(bench_workloads()));
  bench->add_option("--modes", bargs.modes, "comma-separated subset (default: all)")
      ->delimiter(',')
      ->check(CLI::IsMember(bench_modes()));
  bench->add_option("--factors", bargs.factors,
                    "working set over device memory, comma-separated (default 0.5,1,1.5,2,4)")
      ->delimiter(',')
      ->check(CLI::Range(0.01, 64.0));
  bench->add_option("--device-mib", bargs.device_mib,
                    "device memory, MiB (default 64; --quick 8; --size large 1024)")
      ->check(CLI::Range(1, 1 << 20));
  bench->add_option("--link", bargs.link, "link model for modeled time")
      ->check(CLI::IsMember({"none", "pcie4", "pcie5", "nvlink-c2c"}));
  bench->add_option("--seed", bargs.seed, "seed of the generated data");
  bench->add_flag("--no-micro", bargs.no_micro, "skip the micro-cost ratios");
  bench->add_flag("--no-spans", bargs.no_spans,
                  "kernels use one Thread::load/store per element instead of read_span/write_span");
  auto* run = app.add_subcommand(
      "run", "launch one SPIR-V / OpenCL C kernel on device 0 over buffers in process memory; "
             "timing and MMU counters");
  run->footer(run_arg_help());
  run->fallthrough();  // the global options (--tracking, --workers, ...) may follow `run`
  RunArgs rargs;
  run->add_option("FILE", rargs.file, "the program: .spv (SPIR-V) or .cl (OpenCL C)")->required();
  run->add_option("-k,--kernel", rargs.kernel, "the kernel to launch (without it: list them)");
  run->add_flag("-l,--list", rargs.list, "list the kernels and their arguments, launch nothing");
  run->add_flag("--explain", rargs.explain,
                "say how each work-item loop compiled: vectorised (how wide) or not, and why");
  run->add_option("--options", rargs.options, "build options, e.g. \"-DN=64 -cl-fast-relaxed-math\"");
  run->add_option("-g,--global", rargs.global, "global size X[,Y[,Z]] in work-items");
  run->add_option("--local", rargs.local, "work-group size X[,Y[,Z]] (default: the runtime's)");
  run->add_option("-a,--arg", rargs.args, "a kernel argument (repeat, in order; see below)")
      ->allow_extra_args(false);
  run->add_option("--repeat", rargs.repeat, "launches (each synchronized and timed)")
      ->check(CLI::Range(1u, 1000000u));
  run->add_option("--out", rargs.outs, "N:PATH: write buffer argument N to a raw file")
      ->allow_extra_args(false);
  run->add_option("--print", rargs.prints, "N[:COUNT]: print the first elements of buffer N")
      ->allow_extra_args(false);
  run->add_option("--policy", rargs.policy, "migration policy: hetmm, uvm or in_place")
      ->check(CLI::IsMember({"hetmm", "uvm", "in_place"}));
  run->add_option("--link", rargs.link, "link model for modeled time (default none)")
      ->check(CLI::IsMember({"none", "pcie4", "pcie5", "nvlink-c2c"}));
  CLI11_PARSE(app, argc, argv);
  if (!app.get_option("--devices")->count()) sargs.default_devices = true;
  opt.tracking = parse_tracking(tracking);
  opt.device_memory = device_mib << 20;
  try {
    if (*info) return cmd_info(opt);
    if (*demo) return cmd_demo(opt, size_mib, demo_trace);
    if (*trace) return cmd_trace(trace_file, trace_out);
    if (*stress) return cmd_stress(opt, sargs);
    if (*load) return cmd_load(largs);
    if (*bench) return cmd_bench(opt, bargs);
    if (*run) return cmd_run(opt, rargs);
  } catch (const hetmm::Error& e) {
    std::fprintf(stderr, "hetmm: %s\n", e.what());
    return 2;
  }
  return 0;
}
