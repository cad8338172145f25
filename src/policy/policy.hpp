// Layer policy: includes base, os and core's page state (core/va_block.hpp).
// Migration policies: what a device fault does with the pages it needs, which blocks leave a
// full device first, and how thrashing is answered. The mirror owns the mechanism (copies,
// mappings, invalidation); a policy only decides, from a read-only view of one 2 MiB block.
//
// Policies run inside the fault service under the mirror's state lock: they must not
// allocate, block or take locks, and their own state (stream detectors) is guarded by that
// lock. docs/POLICIES.md describes each profile's rules and the driver parameters they follow.
#pragma once

#include "core/va_block.hpp"
#include "os/page.hpp"

#include <hetmm/hetmm.hpp>

#include <bitset>
#include <cstddef>
#include <cstdint>

namespace hetmm::policy {

using PageMask = std::bitset<os::kPagesPerBlock>;
inline constexpr std::size_t kBigPagePages = 16;  // 64 KiB: the driver's big page, our granule

// One block's share of a device fault batch, as the mirror hands it to a policy.
struct FaultView {
  std::size_t device = 0;
  core::VaBlock* block = nullptr;  // policies may update its thrashing fields
  PageMask faulted;   // pages the batch faulted on (they are served whatever the plan says)
  PageMask movable;   // pages that may move to the device (migratable memory, no advice against)
  PageMask resident;  // pages already in this device's memory
  PageMask thrashing; // pages the thrashing detector flags (policy/thrashing.hpp)
  bool write = false;
  bool first_touch = false;  // the block has no page on any device yet
  bool preferred_here = false;  // the faulted pages' preferred location is this device
  std::uint32_t epoch = 0;      // the device's access epoch now
  std::uint64_t now_ns = 0;     // the thrashing detector's clock (Mirror::clock_ns)
};

// What to do. Pages in `migrate` move into the device (as far as frames allow, `prefetch`
// pages last); faulted pages left in system memory are mapped in place.
struct FaultPlan {
  PageMask migrate;
  PageMask prefetch;  // the part of `migrate` that nobody faulted on
  EventReason prefetch_reason = EventReason::density_prefetch;
  // Stream prefetch: whole blocks after (or before, when descending) this one to bring in.
  int ahead_blocks = 0;   // > 0 forward, < 0 backward
  bool in_place = false;  // map the faulted pages and the rest of the block in place (pin)
  // Read faults migrate the pages instead of copying them (read duplication): what they read
  // will be written, and a copy would cost a second fault (the upgrade) per block.
  bool exclusive = false;
  // Thrashing pages whose migration was throttled (uvm): the device waits `throttle_ns`.
  std::size_t throttled = 0;
  std::uint64_t throttle_ns = 0;
};

class Policy {
 public:
  virtual ~Policy() = default;
  virtual PolicyProfile profile() const = 0;
  virtual bool migrates_on_fault() const = 0;
  virtual void plan(const FaultView& view, FaultPlan& out) = 0;

  // Eviction: the block with the smaller key leaves first; whole blocks or 64 KiB granules.
  // `touched` is the last access epoch in which the device's workers walked the block.
  virtual std::uint64_t eviction_key(const core::VaBlock& b, std::size_t device,
                                     std::uint32_t touched) const = 0;
  virtual bool evicts_whole_blocks() const = 0;
  // May a device fault evict blocks the device used in its current or previous epoch? (uvm:
  // yes, it evicts whatever is oldest; hetmm: no, it maps the newcomer in place instead.)
  virtual bool faults_evict_warm_blocks() const = 0;
  // When a device fault finds no room for the pages it faulted on: pin the block in place
  // (true) or migrate what fits and map the rest in place (false).
  virtual bool pins_when_full() const = 0;
  // Do read faults copy pages (keeping the system copy valid) rather than move them?
  virtual bool duplicates_reads() const { return false; }
  // Are pages advised `streaming` accessed in place rather than migrated on faults? Then a
  // fault maps their neighbours in place too, as for any page that will not move.
  virtual bool streams_in_place() const { return false; }
};

// One instance per profile per runtime (the stream detector keeps per-device state).
Policy* make_policy(PolicyProfile profile, const UvmParameters& params);  // in runtime memory
void destroy_policy(Policy* p);

}  // namespace hetmm::policy
