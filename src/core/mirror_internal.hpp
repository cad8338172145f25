// Layer core: includes base, os, device, telemetry, policy.
// Helpers shared by the mirror's source files (mirror.cpp, device_fault.cpp, eviction.cpp).
#pragma once

#include "core/state_lock.hpp"
#include "os/arena.hpp"
#include "os/proc_maps.hpp"

#include <hetmm/hetmm.hpp>

#include <cstdint>
#include <system_error>

namespace hetmm::core::detail {

// Holds the state lock for a scope (the StateLock rule: no allocation while it is held).
class Locked {
 public:
  enum Adopt { adopt };
  explicit Locked(StateLock& l) : l_(l) { l_.lock(); }
  Locked(StateLock& l, Adopt) : l_(l) {}
  ~Locked() { l_.unlock(); }
  Locked(const Locked&) = delete;
  Locked& operator=(const Locked&) = delete;

 private:
  StateLock& l_;
};

inline int encode(Errc c) { return static_cast<int>(c) + 1; }

// A VMA list in runtime memory, reused by one caller.
struct Vmas {
  os::VmaList list{std::pmr::polymorphic_allocator<os::Vma>(os::runtime_memory())};
};

// /proc/self/maps could not be read (fd exhaustion): report the range as unusable.
inline bool query(std::uintptr_t start, std::uintptr_t end, os::VmaList& out) {
  try {
    os::query_vmas(start, end, out);
    return true;
  } catch (const std::system_error&) {
    out.clear();
    return false;
  }
}

}  // namespace hetmm::core::detail
