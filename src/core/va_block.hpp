// Layer core: includes base, os, device, telemetry, policy.
// Per-page state of one 2 MiB block of virtual addresses: the unit of the mirror's bookkeeping.
//
// Invariants (checked by Mirror::check_block in debug builds):
//  I1  owner[i] == kSystem  <=>  the data of page i is in system memory at its own address, and
//      flags[i] has neither kRevoked nor kMigrating once the state lock is released.
//  I2  owner[i] == d        =>   frame[i] is a frame of device d holding the page's only valid
//      copy; flags[i] has kRevoked; the CPU mapping of the page is revoked (userfaultfd: no PTE
//      in a MISSING-registered range; mprotect: PROT_NONE), so any CPU touch faults into hetmm.
//  I3  a device maps page i (valid PTE) only if it is the owner (local frame), or the owner is
//      the system (in place). mapped_devices has bit d set whenever device d may have a PTE here.
//  I4  flags[] are written under the state lock and read lock-free by the CPU fault paths,
//      which take the lock only when they see kRevoked, kMigrating or kDuplicated.
//  I5  dup[i] == d (read duplication, Advice::read_mostly) => owner[i] == kSystem, flags[i] has
//      kDuplicated, frame[i] is a frame of d holding a copy identical to the system page, and
//      the CPU mapping is write-protected (userfaultfd WP or PROT_READ), so a CPU write faults
//      into hetmm, which drops the copy first. Device d maps the copy read-only; every other
//      device maps the system page in place.
#pragma once

#include "os/page.hpp"

#include <atomic>
#include <cstdint>

namespace hetmm::core {

inline constexpr std::int8_t kSystem = -1;
inline constexpr std::size_t kMaxDevices = 32;

// Advice bits per page (Runtime::advise).
enum AdviceBit : std::uint8_t {
  kAdviseReadMostly = 1,
  kAdviseStreaming = 2,
  kAdviseWriteOnly = 4,
};
inline constexpr std::int8_t kNoPreference = -2;

enum PageFlag : std::uint8_t {
  kRevoked = 1,    // CPU copy revoked; data lives in owner's device memory
  kMigrating = 2,  // a migration holds this page: CPU writes wait for it
  kDuplicated = 4,  // a device holds a read-only copy (I5): CPU writes drop it first
};

struct VaBlock {
  explicit VaBlock(std::uintptr_t b) : base(b) {
    for (auto& o : owner) o = kSystem;
    for (auto& p : preferred) p = kNoPreference;
    for (auto& d : dup) d = kSystem;
  }
  std::uintptr_t base;
  std::atomic<std::uint8_t> flags[os::kPagesPerBlock] = {};
  std::int8_t owner[os::kPagesPerBlock];
  std::uint32_t frame[os::kPagesPerBlock] = {};
  std::uint8_t prot[os::kPagesPerBlock] = {};     // protection the process asked for (revoked pages)
  std::uint64_t birth[os::kPagesPerBlock] = {};   // event stamp when the page left system memory
  std::uint32_t mapped_devices = 0;
  std::uint32_t resident = 0;  // pages owned by some device
  std::int8_t dup[os::kPagesPerBlock];  // device holding a read-only copy (I5), or kSystem
  std::uint32_t duplicated = 0;          // pages with a copy
  // Eviction order (src/policy/policy.hpp), per device, from the mirror's use clock: when the
  // block last got its first page on the device (the driver's allocation order), and when the
  // device last migrated or faulted on it (recency). Written under the state lock.
  std::uint64_t arrived[kMaxDevices] = {};
  std::uint64_t used[kMaxDevices] = {};
  // The device's access epoch when the block last got pages there (policies compare it with
  // the device page table's touched epoch to tell cold blocks from warm ones).
  std::uint32_t arrived_epoch[kMaxDevices] = {};
  // Devices that map this block in place because it did not fit (hetmm's thrashing answer).
  std::uint32_t pinned = 0;

  // Advice and per-range policy (Runtime::advise, Runtime::set_policy), per page.
  std::uint8_t advice[os::kPagesPerBlock] = {};      // AdviceBit
  std::int8_t preferred[os::kPagesPerBlock];          // kNoPreference, kSystem or a device
  std::uint32_t accessed_by[os::kPagesPerBlock] = {};  // device bits
  std::uint8_t policy[os::kPagesPerBlock] = {};       // 0: Options::policy, else profile + 1

  // uvm thrashing detection (policy/uvm_policy.cpp), per page: time of the last migration
  // event (64 ns units, wrapping), consecutive close events, throttling periods, and the end
  // of a pin (64 ns units; 0 = not pinned).
  std::uint32_t last_event[os::kPagesPerBlock] = {};
  std::uint8_t close_events[os::kPagesPerBlock] = {};
  std::uint8_t throttles[os::kPagesPerBlock] = {};
  std::uint64_t pin_until = 0;  // block-wide: pinned pages are the ones with throttles >= pin

  // Counters for Runtime::range_stats.
  std::uint64_t device_faults = 0, pages_in = 0, pages_out = 0, pages_evicted = 0,
                cpu_faults = 0;

  std::uintptr_t page_addr(std::size_t i) const { return base + i * os::kPageSize; }
};

}  // namespace hetmm::core
