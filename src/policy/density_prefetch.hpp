// Layer policy: includes base, os and core's page state (core/va_block.hpp).
// The NVIDIA driver's density ("tree-based neighborhood") prefetcher over one 2 MiB block
// (uvm_perf_prefetch.c, paraphrased in ../shared/docs/uvm-policies.md §1.3):
//  - leaves are the pages already resident at the destination or faulted in this batch, each
//    faulted page first widened to its 64 KiB big page (unless a page of it is thrashing);
//  - for each faulted page, the largest ancestor in the binary tree over the 512 leaves whose
//    occupancy is strictly above `threshold_percent` becomes the prefetch region;
//  - thrashing pages are never prefetched; pages outside `movable` are never prefetched.
#pragma once

#include "policy/policy.hpp"

namespace hetmm::policy {

using DensityParams = UvmParameters;

// Returns the pages to bring in: the faulted pages' big pages and the prefetch regions
// (excluding pages already resident).
PageMask density_prefetch(const FaultView& view, const DensityParams& params);

}  // namespace hetmm::policy
