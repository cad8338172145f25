// `hetmm stress`: the differential tester for a time budget (tools/stress/).
#include "commands.hpp"
#include "load.hpp"
#include "stress.hpp"

#include <cstdio>
#include <memory>
#include <unistd.h>

int cmd_stress(const hetmm::Options& opt, const StressArgs& args) {
  hetmm::stress::Config c;
  c.seed = args.seed;
  c.seconds = args.seconds;
  c.devices = args.default_devices ? 2 : opt.devices;
  c.device_memory = args.device_kib << 10;
  c.workers = opt.workers ? opt.workers : 2;
  c.threads = args.threads;
  c.tracking = opt.tracking;
  c.steps_per_program = args.steps;
  c.fork = !args.no_fork;
  if (args.inject > 0) {
    c.inject.seed = args.seed;
    c.inject.frame_alloc = c.inject.copy = c.inject.uffd_ioctl = args.inject;
    c.inject.service_delay = c.inject.worker_stall = args.inject;
    c.inject.max_delay_us = 100;
  }
  if (::isatty(STDERR_FILENO)) {
    c.progress = [](double done, const hetmm::stress::Counters& n) {
      int width = 40, filled = static_cast<int>(done * width);
      std::fprintf(stderr, "\r[%-*.*s] %3.0f%% %llu ops", width, filled,
                   "########################################", done * 100,
                   static_cast<unsigned long long>(n.total_ops()));
    };
  }
  // --load: memory load beside the run, from processes of our own command (`hetmm load`),
  // stopped with it (a margin in case the run overruns its budget).
  std::unique_ptr<hetmm::load::Background> load;
  if (args.load) {
    hetmm::load::Config lc;
    lc.seconds = args.seconds + 30;
    lc.seed = args.seed;
    load = std::make_unique<hetmm::load::Background>("/proc/self/exe", lc);
    if (!load->running()) {
      std::fprintf(stderr, "hetmm stress: could not start the load generator\n");
      return 2;
    }
  }
  hetmm::stress::Report r = hetmm::stress::run(c);
  if (load) load->stop();
  if (c.progress) std::fprintf(stderr, "\n");
  std::fputs(hetmm::stress::format(r, c).c_str(), stdout);
  if (args.load) std::printf("under load: %s\n", "hetmm load (map, fork, allocation, huge-page, "
                                                   "page-cache and compaction churn)");
  return r.clean() ? 0 : 1;
}

int cmd_load(const LoadArgs& args) {
  hetmm::load::Config c;
  c.seconds = args.seconds;
  c.processes = args.processes;
  c.memory_mib = args.memory_mib;
  c.compaction = !args.no_compaction;
  c.seed = args.seed;
  hetmm::load::Counters n = hetmm::load::run(c);
  if (!args.quiet) std::fputs(hetmm::load::format(n, c).c_str(), stdout);
  return 0;
}
