#include "placement.hpp"

#include <algorithm>

namespace hetmm::bench {

namespace {
constexpr std::size_t kGranule = 64 << 10;
}

std::size_t planning_budget(std::size_t device_memory) {
  return (device_memory - device_memory / 16) / kGranule * kGranule;
}

void place_in_order(Runtime& rt, const std::vector<const Array*>& order,
                    std::size_t device_memory) {
  std::size_t left = planning_budget(device_memory);
  const Location dev = Location::device(0);
  for (const Array* a : order) {
    std::size_t on_device = a->bytes <= left ? a->bytes : left / kGranule * kGranule;
    left -= on_device;
    if (on_device > 0) {
      rt.advise(a->live, on_device, Advice::preferred_location, dev);
      rt.prefetch(a->live, on_device, dev);
    }
    if (on_device < a->bytes)
      rt.advise(a->live + on_device, a->bytes - on_device, Advice::accessed_by, dev);
  }
}

void advise(Runtime& rt, const Array& a, Advice advice) {
  rt.advise(a.live, a.bytes, advice,
            advice == Advice::preferred_location || advice == Advice::accessed_by
                ? Location::device(0)
                : Location());
}

}  // namespace hetmm::bench
