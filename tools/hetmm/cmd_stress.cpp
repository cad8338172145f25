// `hetmm stress`: the differential tester for a time budget (tools/stress/).
#include "commands.hpp"
#include "stress.hpp"

#include <cstdio>
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
  hetmm::stress::Report r = hetmm::stress::run(c);
  if (c.progress) std::fprintf(stderr, "\n");
  std::fputs(hetmm::stress::format(r, c).c_str(), stdout);
  return r.clean() ? 0 : 1;
}
