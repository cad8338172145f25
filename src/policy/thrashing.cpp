#include "policy/thrashing.hpp"

#include <time.h>

namespace hetmm::policy {

std::uint64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);  // vDSO: no syscall, safe on the fault paths
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

namespace {
std::uint32_t lapse_ticks(const ThrashingParams& p) {
  return ticks(std::uint64_t{p.uvm_perf_thrashing_lapse_usec} * 1000);
}
}  // namespace

void note_migration(core::VaBlock& b, std::size_t first, std::size_t n, std::uint64_t now_ns,
                    const ThrashingParams& p) {
  std::uint32_t now = ticks(now_ns), lapse = lapse_ticks(p);
  for (std::size_t i = first; i < first + n; ++i) {
    std::uint32_t gap = now - b.last_event[i];
    if (b.last_event[i] != 0 && gap < lapse) {
      if (b.close_events[i] < 7) ++b.close_events[i];  // the driver's 3-bit counter
    } else if (b.last_event[i] == 0 || gap >= lapse * p.uvm_perf_thrashing_epoch) {
      b.close_events[i] = 0;
      b.throttles[i] = 0;
    } else {
      b.close_events[i] = 0;
    }
    b.last_event[i] = now | 1;  // 0 means "never"
  }
}

bool thrashing(const core::VaBlock& b, std::size_t i, std::uint64_t now_ns,
               const ThrashingParams& p) {
  if (b.close_events[i] < p.uvm_perf_thrashing_threshold) return false;
  std::uint32_t gap = ticks(now_ns) - b.last_event[i];
  return gap < lapse_ticks(p) * p.uvm_perf_thrashing_epoch;
}

bool pinned(core::VaBlock& b, std::size_t i, std::uint64_t now_ns, const ThrashingParams& p) {
  if (b.throttles[i] < p.uvm_perf_thrashing_pin_threshold) return false;
  if (b.pin_until != 0 && now_ns >= b.pin_until) {
    // Pins expire so that access patterns are learned again.
    for (std::size_t k = 0; k < os::kPagesPerBlock; ++k)
      if (b.throttles[k] >= p.uvm_perf_thrashing_pin_threshold) {
        b.throttles[k] = 0;
        b.close_events[k] = 0;
      }
    b.pin_until = 0;
    return false;
  }
  return true;
}

}  // namespace hetmm::policy
