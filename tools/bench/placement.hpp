// The placement a user who knows the device's capacity gives (hinted mode): what fits lives on
// the device, the rest is read over the link where it is instead of being paged round.
#pragma once

#include <cstddef>
#include <hetmm/hetmm.hpp>
#include <vector>

#include "workload.hpp"

namespace hetmm::bench {

// Device memory a user would plan to fill: some is left for the runtime's own moves.
std::size_t planning_budget(std::size_t device_memory);

// The arrays in `order` (most valuable first) get preferred_location device 0 and are
// prefetched there while they fit in planning_budget(device_memory) (the one that crosses the
// line is split at a 64 KiB boundary); every byte past that gets accessed_by device 0, so the
// device maps it in place and never moves it on a fault.
void place_in_order(Runtime& rt, const std::vector<const Array*>& order, std::size_t device_memory);

void advise(Runtime& rt, const Array& a, Advice advice);

}  // namespace hetmm::bench
