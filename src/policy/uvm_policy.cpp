// The `uvm` profile: the NVIDIA driver's documented defaults (../shared/docs/uvm-policies.md),
// every parameter under the driver's name.
//  - residency: a device fault migrates to the faulting device (first touch on a block whose
//    preferred location is the device fills the whole block); a preferred location elsewhere
//    keeps the pages there, mapped in place, and disables prefetch (§1.5 rules 4, 7, 10);
//  - prefetch: the density prefetcher (policy/density_prefetch.hpp);
//  - eviction: 2 MiB blocks in allocation order, whatever their use (§1.6);
//  - thrashing: pages flagged by the detector are throttled, and pinned in place after
//    uvm_perf_thrashing_pin_threshold throttles for uvm_perf_thrashing_pin x lapse (§1.4).
//    A throttled fault is served in place and costs the device a nap (in modeled time): the
//    software device cannot hold one warp back while others run, as a GPU does.
#include "policy/uvm_policy.hpp"

namespace hetmm::policy {

void UvmPolicy::plan(const FaultView& v, FaultPlan& out) {
  const std::uint64_t now = v.now_ns;
  PageMask held;  // thrashing pages kept where they are this time
  for (std::size_t i = 0; i < os::kPagesPerBlock; ++i) {
    if (!v.faulted[i] || !v.thrashing[i] || v.resident[i]) continue;
    held[i] = true;
    if (pinned(*v.block, i, now, params_)) continue;
    if (++v.block->throttles[i] >= params_.uvm_perf_thrashing_pin_threshold) {
      // uvm_perf_thrashing_pin = 0: pins never expire.
      v.block->pin_until = params_.uvm_perf_thrashing_pin == 0
                               ? ~std::uint64_t{0}
                               : now + std::uint64_t{params_.uvm_perf_thrashing_pin} *
                                           params_.uvm_perf_thrashing_lapse_usec * 1000;
      v.block->throttles[i] = static_cast<std::uint8_t>(params_.uvm_perf_thrashing_pin_threshold);
    } else {
      ++out.throttled;
    }
  }
  out.throttle_ns = out.throttled ? std::uint64_t{params_.uvm_perf_thrashing_nap} *
                                        params_.uvm_perf_thrashing_lapse_usec * 1000
                                  : 0;
  FaultView view = v;
  view.faulted &= ~held;
  if (view.faulted.none()) return;
  if (v.first_touch && v.preferred_here) {
    out.migrate = v.movable & ~v.resident & ~v.thrashing;
  } else {
    out.migrate = density_prefetch(view, params_);
  }
  out.prefetch = out.migrate & ~view.faulted;
  out.prefetch_reason = EventReason::density_prefetch;
}

}  // namespace hetmm::policy
