// Layer os: includes base.
// Page and block geometry shared by every subsystem.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hetmm::os {

inline constexpr std::size_t kPageShift = 12;
inline constexpr std::size_t kPageSize = std::size_t{1} << kPageShift;
inline constexpr std::size_t kBlockShift = 21;  // 2 MiB: the unit of per-page state and of THP
inline constexpr std::size_t kBlockSize = std::size_t{1} << kBlockShift;
inline constexpr std::size_t kPagesPerBlock = kBlockSize / kPageSize;

inline constexpr std::uintptr_t page_down(std::uintptr_t a) { return a & ~(kPageSize - 1); }
inline constexpr std::uintptr_t page_up(std::uintptr_t a) {
  return (a + kPageSize - 1) & ~(kPageSize - 1);
}
inline constexpr std::uintptr_t block_down(std::uintptr_t a) { return a & ~(kBlockSize - 1); }
inline constexpr std::uintptr_t block_up(std::uintptr_t a) {
  return (a + kBlockSize - 1) & ~(kBlockSize - 1);
}
inline constexpr std::size_t page_index_in_block(std::uintptr_t a) {
  return (a >> kPageShift) & (kPagesPerBlock - 1);
}

}  // namespace hetmm::os
