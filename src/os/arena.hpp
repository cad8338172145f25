// Layer os: includes base.
// Memory for the runtime's own state.
//
// Invariant: everything the fault path touches (block table, per-page state, device page
// tables, fault buffers, staging buffers, thread stacks) lives in runtime memory obtained here
// (os::map_runtime_memory: private memfd mappings), never in malloc'ed memory. User data shares
// malloc's pages; a user may migrate any of those pages to a device, and a runtime thread that
// touched one while serving faults would fault into itself. File-backed memory never migrates
// (only private anonymous memory does, as in the kernel), so state kept here is never revoked.
#pragma once

#include <cstddef>
#include <memory_resource>

namespace hetmm::os {

// Each allocation is its own mapping; meant as the upstream of a pool resource.
class MmapResource final : public std::pmr::memory_resource {
 private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override;
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override;
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
    return this == &other;
  }
};

// The process-wide pool for runtime state (thread-safe; never freed back to the OS before exit).
std::pmr::memory_resource* runtime_memory();

// Base for runtime objects that the fault path touches (the mirror, devices, trackers): `new`
// places them in runtime memory. make_unique<T>() and delete work unchanged.
struct RuntimeAllocated {
  static void* operator new(std::size_t n) { return runtime_memory()->allocate(n, 64); }
  static void operator delete(void* p, std::size_t n) { runtime_memory()->deallocate(p, n, 64); }
};

template <class T, class... Args>
T* arena_new(Args&&... args) {
  void* p = runtime_memory()->allocate(sizeof(T), alignof(T));
  return new (p) T(static_cast<Args&&>(args)...);
}
template <class T>
void arena_delete(T* p) {
  if (p == nullptr) return;
  p->~T();
  runtime_memory()->deallocate(p, sizeof(T), alignof(T));
}

// The allocation policy of base containers whose nodes live in runtime memory
// (base::RadixTable<Leaf, os::RuntimeMemory>).
struct RuntimeMemory {
  template <class T, class... Args>
  static T* make(Args&&... args) {
    return arena_new<T>(static_cast<Args&&>(args)...);
  }
  template <class T>
  static void destroy(T* p) {
    arena_delete(p);
  }
};

}  // namespace hetmm::os
