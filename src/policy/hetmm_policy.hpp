// Layer policy: includes base, os and core's page state (core/va_block.hpp).
#pragma once

#include "policy/density_prefetch.hpp"
#include "policy/policy.hpp"
#include "policy/thrashing.hpp"

#include <algorithm>
#include <cstdint>

namespace hetmm::policy {

// hetmm's default (docs/POLICIES.md):
//  - residency: migrate on fault in 64 KiB granules with the density tree while the device has
//    room; pages advised `streaming` (used once) and pages the detector flags as thrashing are
//    accessed in place;
//  - prefetch: a stream detector per device: faults walking through consecutive blocks bring
//    the rest of the block and the next blocks ahead of use;
//  - eviction: least recently used blocks (the device's page table records which blocks its
//    workers walked in each access epoch), in 64 KiB granules, streaming pages first; a device
//    fault only evicts cold blocks (not used in the current or previous epoch);
//  - thrashing: when the working set does not fit (no cold block to evict), the faulted block
//    is pinned in place for that device instead of paging blocks round.
class HetmmPolicy final : public Policy {
 public:
  PolicyProfile profile() const override { return PolicyProfile::hetmm; }
  bool migrates_on_fault() const override { return true; }
  void plan(const FaultView& view, FaultPlan& out) override;
  std::uint64_t eviction_key(const core::VaBlock& b, std::size_t device,
                             std::uint32_t touched) const override {
    // The last epoch the block was used in first, then the last fault or migration.
    std::uint64_t epoch = std::max(touched, b.arrived_epoch[device]);
    return (epoch << 40) | (b.used[device] & ((std::uint64_t{1} << 40) - 1));
  }
  bool evicts_whole_blocks() const override { return true; }
  bool faults_evict_warm_blocks() const override { return false; }
  bool pins_when_full() const override { return true; }
  bool duplicates_reads() const override { return true; }
  bool streams_in_place() const override { return true; }

  // A stream: faults on consecutive blocks in one direction (a block already fetched ahead
  // counts as the next one). After `kStreamRun` steps the rest of the block and blocks ahead
  // are fetched, 2 at first, doubling with the run up to `kMaxAhead` (readahead's ramp).
  static constexpr int kStreamRun = 1;
  static constexpr int kMaxAhead = 8;

  UvmParameters params_;

 private:
  struct Stream {
    std::uintptr_t last_block = 0;
    std::uintptr_t reach = 0;  // the furthest block fetched ahead (last_block if none)
    int run = 0;               // > 0 ascending, < 0 descending
    bool writes = false;       // the device wrote blocks of this stream
  };
  Stream streams_[core::kMaxDevices];
};

class InPlacePolicy final : public Policy {
 public:
  PolicyProfile profile() const override { return PolicyProfile::in_place; }
  bool migrates_on_fault() const override { return false; }
  void plan(const FaultView&, FaultPlan&) override {}
  std::uint64_t eviction_key(const core::VaBlock& b, std::size_t device,
                             std::uint32_t touched) const override {
    // The last epoch the block was used in first, then the last fault or migration.
    std::uint64_t epoch = std::max(touched, b.arrived_epoch[device]);
    return (epoch << 40) | (b.used[device] & ((std::uint64_t{1} << 40) - 1));
  }
  bool evicts_whole_blocks() const override { return false; }
  bool faults_evict_warm_blocks() const override { return false; }
  bool pins_when_full() const override { return true; }
};

}  // namespace hetmm::policy
