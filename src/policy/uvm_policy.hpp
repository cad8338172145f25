// Layer policy: includes base, os and core's page state (core/va_block.hpp).
#pragma once

#include "policy/density_prefetch.hpp"
#include "policy/policy.hpp"
#include "policy/thrashing.hpp"

namespace hetmm::policy {

class UvmPolicy final : public Policy {
 public:
  PolicyProfile profile() const override { return PolicyProfile::uvm; }
  bool migrates_on_fault() const override { return true; }
  void plan(const FaultView& view, FaultPlan& out) override;
  // The root-chunk list is ordered by allocation, not by use (uvm_pmm_gpu.c's TODO).
  std::uint64_t eviction_key(const core::VaBlock& b, std::size_t device,
                             std::uint32_t) const override {
    return b.arrived[device];
  }
  bool evicts_whole_blocks() const override { return true; }
  bool faults_evict_warm_blocks() const override { return true; }
  bool pins_when_full() const override { return false; }

  UvmParameters params_;
};

}  // namespace hetmm::policy
