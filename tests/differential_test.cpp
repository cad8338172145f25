// The differential tester in the suite: random programs of CPU and device operations, memory
// changes and fork, on small device memories, compared with a model of plain memory. A fixed
// time budget per configuration; `hetmm stress --seconds N` runs the same for longer.
#include "stress.hpp"
#include "test_support.hpp"

namespace hetmm::test {
namespace {

class Differential : public Tracked {
 protected:
  void run(std::uint64_t seed, double seconds, FaultInjection inject = {}) {
    stress::Config c;
    c.seed = seed;
    c.seconds = seconds;
    c.devices = 2;
    c.device_memory = 2u << 20;
    c.workers = 2;
    c.threads = 3;
    c.tracking = GetParam();
    c.inject = inject;
    c.stuck_seconds = 60;
    stress::Report r = stress::run(c);
    EXPECT_EQ(r.divergences, 0u) << stress::format(r, c);
    EXPECT_EQ(r.device_bytes_end, 0u) << stress::format(r, c);
    EXPECT_GT(r.counters.total_ops(), 100u) << stress::format(r, c);
    std::printf("%s", stress::format(r, c).c_str());
  }
};

TEST_P(Differential, RandomProgramsMatchTheModel) { run(1000, 3); }

TEST_P(Differential, RandomProgramsMatchTheModelUnderFaultInjection) {
  FaultInjection inject;
  inject.seed = 7;
  inject.frame_alloc = inject.copy = inject.uffd_ioctl = 0.05;
  inject.service_delay = inject.worker_stall = 0.02;
  inject.max_delay_us = 50;
  run(2000, 3, inject);
}

HETMM_BOTH_MODES(Differential);

}  // namespace
}  // namespace hetmm::test
