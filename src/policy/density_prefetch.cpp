#include "policy/density_prefetch.hpp"

namespace hetmm::policy {

namespace {
// Occupancy counts of every node of the binary tree over the block's leaves, level by level
// (level 0 = pages). 512 leaves: 10 levels, 1023 nodes.
struct Tree {
  static constexpr std::size_t kLevels = 10;
  std::uint16_t count[kLevels][os::kPagesPerBlock];
  explicit Tree(const PageMask& leaves) {
    for (std::size_t i = 0; i < os::kPagesPerBlock; ++i) count[0][i] = leaves[i] ? 1 : 0;
    for (std::size_t l = 1; l < kLevels; ++l) {
      std::size_t nodes = os::kPagesPerBlock >> l;
      for (std::size_t i = 0; i < nodes; ++i)
        count[l][i] = count[l - 1][2 * i] + count[l - 1][2 * i + 1];
    }
  }
};
}  // namespace

PageMask density_prefetch(const FaultView& v, const DensityParams& params) {
  // Granularity growth: each faulted page brings its big page, unless part of it thrashes.
  PageMask grown = v.faulted;
  for (std::size_t g = 0; g < os::kPagesPerBlock; g += kBigPagePages) {
    bool faulted = false, thrash = false;
    for (std::size_t i = g; i < g + kBigPagePages; ++i) {
      faulted |= v.faulted[i];
      thrash |= v.thrashing[i];
    }
    if (faulted && !thrash)
      for (std::size_t i = g; i < g + kBigPagePages; ++i)
        if (v.movable[i]) grown[i] = true;
  }
  PageMask out = grown;
  if (v.faulted.count() >= params.uvm_perf_prefetch_min_faults) {
    Tree tree(grown | v.resident);
    for (std::size_t p = 0; p < os::kPagesPerBlock; ++p) {
      if (!v.faulted[p]) continue;
      // Walk up from the big page; remember the largest node over the threshold.
      std::size_t best_level = 0;
      for (std::size_t l = 1; l < Tree::kLevels; ++l) {
        std::size_t node = p >> l;
        std::size_t size = std::size_t{1} << l;
        if (tree.count[l][node] * 100 > params.uvm_perf_prefetch_threshold * size) best_level = l;
      }
      if (best_level == 0) continue;
      std::size_t first = (p >> best_level) << best_level;
      for (std::size_t i = first; i < first + (std::size_t{1} << best_level); ++i) out[i] = true;
    }
  }
  return (out & v.movable & ~v.thrashing & ~v.resident) | (v.faulted & v.movable & ~v.resident);
}

}  // namespace hetmm::policy
