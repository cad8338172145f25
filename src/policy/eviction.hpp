// Which device-resident block leaves first when a device runs out of frames (Mirror::evict).
//
//  uvm    the NVIDIA driver's order: 2 MiB blocks in the order they got their device memory
//         (the root-chunk list is ordered by allocation, not by use), whatever happened since.
//  hetmm  least recently used: the block the device migrated or faulted on longest ago.
//
// The smaller key leaves first. Keys come from the mirror's use clock (core/va_block.hpp).
#pragma once

#include "core/va_block.hpp"

#include <hetmm/hetmm.hpp>

#include <cstddef>
#include <cstdint>

namespace hetmm::policy {

// uvm evicts whole 2 MiB chunks (the unit the driver allocates); hetmm what it needs, in 64 KiB
// granules, from the victim block.
inline bool evicts_whole_blocks(PolicyProfile profile) { return profile == PolicyProfile::uvm; }

inline std::uint64_t eviction_key(PolicyProfile profile, const core::VaBlock& b,
                                  std::size_t device) {
  return profile == PolicyProfile::uvm ? b.arrived[device] : b.used[device];
}

}  // namespace hetmm::policy
