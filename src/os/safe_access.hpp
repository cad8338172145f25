// Layer os: includes base.
// Recoverable accesses to memory that may be unmapped or protected at any moment.
// Each returns 0, or -1 when the access faulted (nothing is known about how much of a copy
// happened then). Requires the signal handler of src/host/signal_dispatch.cpp to be installed.
#pragma once

#include <cstddef>
#include <cstdint>

extern "C" {
int hetmm_safe_copy(void* dst, const void* src, std::size_t n);
int hetmm_safe_load1(const void* src, void* out);
int hetmm_safe_load2(const void* src, void* out);
int hetmm_safe_load4(const void* src, void* out);
int hetmm_safe_load8(const void* src, void* out);
int hetmm_safe_store1(void* dst, std::uint64_t v);
int hetmm_safe_store2(void* dst, std::uint64_t v);
int hetmm_safe_store4(void* dst, std::uint64_t v);
int hetmm_safe_store8(void* dst, std::uint64_t v);
int hetmm_safe_xadd1(void* dst, std::uint64_t v, std::uint64_t* old);
int hetmm_safe_xadd2(void* dst, std::uint64_t v, std::uint64_t* old);
int hetmm_safe_xadd4(void* dst, std::uint64_t v, std::uint64_t* old);
int hetmm_safe_xadd8(void* dst, std::uint64_t v, std::uint64_t* old);
extern const std::uintptr_t hetmm_extable[];
extern const std::uintptr_t hetmm_extable_end[];
}

namespace hetmm::os {

// The fixup address for a faulting instruction, or 0 when rip is not a recoverable access.
inline std::uintptr_t extable_fixup(std::uintptr_t rip) {
  for (const std::uintptr_t* e = hetmm_extable; e < hetmm_extable_end; e += 2)
    if (e[0] == rip) return e[1];
  return 0;
}

}  // namespace hetmm::os
