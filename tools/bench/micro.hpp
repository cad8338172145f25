// The micro-costs of issue 4, each as a ratio to the bare operation it is judged against,
// measured in the same run (the machines are shared: only same-run ratios compare).
#pragma once

#include <cstddef>
#include <hetmm/hetmm.hpp>
#include <limits>
#include <string>
#include <vector>

namespace hetmm::bench {

struct MicroConfig {
  std::size_t sweep_bytes = std::size_t{1} << 30;   // migration and prefetch
  std::size_t fault_samples = 1000;                 // CPU fault-back and bare userfaultfd
  std::size_t sum_elements = std::size_t{1} << 20;  // MMU hit path, 4-byte elements
  int reps = 3;                                     // best of, for the bandwidths and sums
  // Device-fault round trips with this much mirrored (1 MiB is always measured too).
  std::size_t mirrored_mid = std::size_t{1} << 30;
  std::size_t mirrored_large = std::size_t{16} << 30;  // sparse
  Tracking tracking = Tracking::automatic;
  unsigned workers = 2;
};

inline constexpr double kNotMeasured = std::numeric_limits<double>::quiet_NaN();

// kNotMeasured where a figure could not be measured (see notes).
struct Micro {
  // Fault-driven migration of a sequential sweep (one touch per page, default policy), in GB/s
  // over memcpy's GB/s of the same bytes. Goal >= 0.5.
  double migration_over_memcpy = kNotMeasured;
  // Runtime::prefetch to the device, GB/s over memcpy's. Goal >= 0.8.
  double prefetch_over_memcpy = kNotMeasured;
  // Bringing one device-resident 4 KiB page home on a CPU touch, over a bare userfaultfd
  // MISSING round trip (median times). Goal <= 1.5.
  double cpu_faultback_over_uffd = kNotMeasured;
  // A kernel summing an array through Thread::load, over a volatile CPU loop (time per
  // element). Goal <= 3.
  double mmu_hit_over_raw = kNotMeasured;
  // The same sum through Thread::read_span, over the same summing loop on the CPU. Goal <= 1.2.
  double span_over_raw = kNotMeasured;
  // Device faults on their own (policy in_place: a fault maps, nothing migrates): the round trip
  // of one cold page, worker miss to replay, timed in the kernel around the access (median),
  // with the mirror holding 1 MiB, 1 GiB and 16 GiB (sparse) of mapped blocks; the cost must
  // not grow with it. And faults/s with many workers missing at once.
  double device_fault_us = kNotMeasured;  // 1 MiB mirrored
  double device_fault_us_1g = kNotMeasured, device_fault_us_16g = kNotMeasured;
  double faults_per_s_many = kNotMeasured;
  unsigned many_workers = 0;
  std::size_t many_faults = 0;

  std::size_t sweep_bytes = 0;
  double memcpy_gbs = kNotMeasured, migration_gbs = kNotMeasured, prefetch_gbs = kNotMeasured;
  // Pages the sweep moved to the device over the sweep's pages (above 1 when some moved twice
  // or the prefetcher reached past the array).
  double migrated_fraction = kNotMeasured;
  double faultback_us = kNotMeasured, bare_uffd_us = kNotMeasured;
  double load_ns = kNotMeasured, raw_load_ns = kNotMeasured, span_ns = kNotMeasured,
         raw_sum_ns = kNotMeasured;  // per element
  std::vector<std::string> notes;
};

Micro measure_micro(const MicroConfig& config);

}  // namespace hetmm::bench
