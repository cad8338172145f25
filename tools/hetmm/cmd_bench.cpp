// `hetmm bench`: the workload benchmark (tools/bench/): a table, JSON, an SVG chart.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <optional>

#include "commands.hpp"
#include "micro.hpp"
#include "report.hpp"
#include "runner.hpp"

namespace {

using namespace hetmm::bench;

hetmm::LinkProfile link_profile(const std::string& name) {
  if (name == "none") return hetmm::LinkProfile::none();
  if (name == "pcie5") return hetmm::LinkProfile::pcie5();
  if (name == "nvlink-c2c") return hetmm::LinkProfile::nvlink_c2c();
  return hetmm::LinkProfile::pcie4();
}

void draw_progress(std::size_t done, std::size_t total, const std::string& what) {
  constexpr int kWidth = 30;
  int filled = total ? static_cast<int>(kWidth * done / total) : kWidth;
  std::fprintf(stderr, "\r[%-*.*s] %3zu/%zu %-36.36s", kWidth, filled,
               "##############################", done, total, what.c_str());
  std::fflush(stderr);
}

}  // namespace

std::vector<std::string> bench_workloads() { return workload_names(); }
std::vector<std::string> bench_modes() { return mode_names(); }

int cmd_bench(const hetmm::Options& opt, const BenchArgs& args) {
  Config c;
  const bool quick = args.quick || args.size == "quick";
  const bool large = args.size == "large";
  if (quick && large) {
    std::fprintf(stderr, "hetmm bench: --quick and --size large contradict each other\n");
    return 2;
  }
  c.quick = quick;
  c.size = quick ? "quick" : large ? "large" : "default";
  c.device_memory = (args.device_mib ? args.device_mib : (quick ? 8 : large ? 1024 : 64)) << 20;
  if (large) c.factors = {1, 1.5, 2};
  if (!args.workloads.empty()) c.workloads = args.workloads;
  if (!args.modes.empty()) {
    c.modes.clear();
    for (const std::string& name : args.modes) {
      Mode m;
      if (!parse_mode(name, &m)) {
        std::fprintf(stderr, "hetmm bench: unknown mode '%s'\n", name.c_str());
        return 2;
      }
      c.modes.push_back(m);
    }
  }
  if (!args.factors.empty()) c.factors = args.factors;
  c.link = link_profile(args.link);
  c.link_name = args.link;
  c.workers = opt.workers ? opt.workers : 2;
  c.tracking = opt.tracking;
  c.seed = args.seed;
  c.spans = !args.no_spans;
  c.trace_dir = args.trace_dir;

  // The bar is for people: only on a terminal, and on stderr so stdout stays one JSON object.
  bool tty = ::isatty(STDERR_FILENO) != 0;
  Progress progress;
  if (tty) progress = draw_progress;
  auto t0 = std::chrono::steady_clock::now();
  Outcome outcome = run_all(c, progress);
  std::optional<Micro> micro;
  if (!args.no_micro) {
    if (tty) draw_progress(1, 1, "micro-costs");
    MicroConfig mc;
    mc.tracking = c.tracking;
    mc.workers = c.workers;
    if (quick) {
      mc.sweep_bytes = 128u << 20;
      mc.fault_samples = 200;
    }
    micro = measure_micro(mc);
  }
  if (tty) std::fprintf(stderr, "\r%*s\r", 80, "");
  outcome.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  Summary summary = summarize(outcome);
  std::fputs(format_table(c, outcome, summary, micro).c_str(), args.json ? stderr : stdout);
  if (args.json) std::fputs(format_json(c, outcome, summary, micro).c_str(), stdout);
  if (!args.svg.empty()) {
    std::string svg = format_svg(c, outcome);
    std::FILE* f = std::fopen(args.svg.c_str(), "w");
    bool written = f != nullptr && std::fwrite(svg.data(), 1, svg.size(), f) == svg.size();
    if (f != nullptr && std::fclose(f) != 0) written = false;
    if (!written) {
      std::fprintf(stderr, "hetmm bench: cannot write %s\n", args.svg.c_str());
      return 2;
    }
  }
  return summary.all_verified ? 0 : 1;
}
