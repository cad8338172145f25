#include "os/arena.hpp"

#include "base/lock_order.hpp"
#include "os/page.hpp"
#include "os/syscalls.hpp"

#include <cstddef>
#include <mutex>
#include <new>

namespace hetmm::os {

void* MmapResource::do_allocate(std::size_t bytes, std::size_t alignment) {
  (void)alignment;  // mappings are page-aligned, which covers every alignment we use
  return map_runtime_memory(page_up(bytes == 0 ? 1 : bytes));
}

void MmapResource::do_deallocate(void* p, std::size_t bytes, std::size_t) {
  unmap_runtime_memory(p, page_up(bytes == 0 ? 1 : bytes));
}

namespace {
// A pool behind one mutex. (std::pmr::synchronized_pool_resource keeps per-thread pools whose
// thread-exit destructor touches memory the pool may already have handed back; runtime threads
// come and go with runtimes, so one shared pool is both simpler and safe.) The mutex is a leaf:
// nothing is called while it is held.
class LockedPool final : public std::pmr::memory_resource {
 public:
  explicit LockedPool(std::pmr::memory_resource* upstream)
      : pool_(std::pmr::pool_options{64, 64 * 1024}, upstream) {}

 private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    std::lock_guard lock(mutex_);
    return pool_.allocate(bytes, alignment);
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
    std::lock_guard lock(mutex_);
    pool_.deallocate(p, bytes, alignment);
  }
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
    return this == &other;
  }
  base::lock_order::RankedMutex<base::lock_order::Rank::arena> mutex_;  // lock order: arena
  std::pmr::unsynchronized_pool_resource pool_;
};
}  // namespace

std::pmr::memory_resource* runtime_memory() {
  // Leaked on purpose: runtime state may be released from atexit handlers and thread exits.
  // The two objects live in runtime memory themselves: the fault paths call through them, and
  // the program's heap (where `new` would put them) is memory a device may migrate.
  static LockedPool* pool = [] {
    void* mem = map_runtime_memory(page_up(sizeof(MmapResource) + sizeof(LockedPool) + 64));
    auto* upstream = new (mem) MmapResource();
    void* at = static_cast<std::byte*>(mem) + ((sizeof(MmapResource) + 63) & ~std::size_t{63});
    return new (at) LockedPool(upstream);
  }();
  return pool;
}

}  // namespace hetmm::os
