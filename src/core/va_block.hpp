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
//      which take the lock only when they see kRevoked or kMigrating.
#pragma once

#include "os/page.hpp"

#include <atomic>
#include <cstdint>

namespace hetmm::core {

inline constexpr std::int8_t kSystem = -1;
inline constexpr std::size_t kMaxDevices = 32;

enum PageFlag : std::uint8_t {
  kRevoked = 1,    // CPU copy revoked; data lives in owner's device memory
  kMigrating = 2,  // a migration holds this page: CPU writes wait for it
};

struct VaBlock {
  explicit VaBlock(std::uintptr_t b) : base(b) {
    for (auto& o : owner) o = kSystem;
  }
  std::uintptr_t base;
  std::atomic<std::uint8_t> flags[os::kPagesPerBlock] = {};
  std::int8_t owner[os::kPagesPerBlock];
  std::uint32_t frame[os::kPagesPerBlock] = {};
  std::uint8_t prot[os::kPagesPerBlock] = {};     // protection the process asked for (revoked pages)
  std::uint64_t birth[os::kPagesPerBlock] = {};   // event stamp when the page left system memory
  std::uint32_t mapped_devices = 0;
  std::uint32_t resident = 0;  // pages owned by some device
  // Eviction order (src/policy/eviction.hpp), per device, from the mirror's use clock: when the
  // block last got its first page on the device (the driver's allocation order), and when the
  // device last migrated or faulted on it (recency). Written under the state lock.
  std::uint64_t arrived[kMaxDevices] = {};
  std::uint64_t used[kMaxDevices] = {};

  std::uintptr_t page_addr(std::size_t i) const { return base + i * os::kPageSize; }
};

}  // namespace hetmm::core
