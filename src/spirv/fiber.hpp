// Layer spirv: includes every layer.
// Fibers: one stack per work-item of a group that uses barriers. barrier() switches back to the
// group's scheduler, which resumes the next work-item; when all have arrived, the next phase
// starts. One thread runs the whole group, so barriers cost two stack switches per work-item.
#pragma once

#include <cstddef>
#include <cstdint>

extern "C" {
void hetmm_fiber_switch(void** save_sp, void* to_sp);
void hetmm_fiber_start();
}

namespace hetmm::spirv {

// A fresh context on [stack, stack + size) that runs entry(arg) at its first switch; entry
// must never return (it switches away for the last time instead).
inline void* fiber_prepare(void* stack, std::size_t size, void (*entry)(void*), void* arg) {
  auto top = (reinterpret_cast<std::uintptr_t>(stack) + size) & ~std::uintptr_t{15};
  auto* sp = reinterpret_cast<std::uint64_t*>(top);
  // After the switch pops six registers and returns into hetmm_fiber_start, rsp == top:
  // 16-byte aligned before its call, as the ABI wants.
  *--sp = reinterpret_cast<std::uint64_t>(&hetmm_fiber_start);
  *--sp = 0;                                        // rbp
  *--sp = reinterpret_cast<std::uint64_t>(arg);     // rbx
  *--sp = reinterpret_cast<std::uint64_t>(entry);   // r12
  *--sp = 0;                                        // r13
  *--sp = 0;                                        // r14
  *--sp = 0;                                        // r15
  return sp;
}

}  // namespace hetmm::spirv
