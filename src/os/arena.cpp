#include "os/arena.hpp"

#include "os/page.hpp"
#include "os/syscalls.hpp"

namespace hetmm::os {

void* MmapResource::do_allocate(std::size_t bytes, std::size_t alignment) {
  (void)alignment;  // mappings are page-aligned, which covers every alignment we use
  return map_runtime_memory(page_up(bytes == 0 ? 1 : bytes));
}

void MmapResource::do_deallocate(void* p, std::size_t bytes, std::size_t) {
  unmap_runtime_memory(p, page_up(bytes == 0 ? 1 : bytes));
}

std::pmr::memory_resource* runtime_memory() {
  // Leaked on purpose: runtime state may be released from atexit handlers and thread exits.
  static MmapResource* upstream = new MmapResource();
  static std::pmr::synchronized_pool_resource* pool = new std::pmr::synchronized_pool_resource(
      std::pmr::pool_options{64, 64 * 1024}, upstream);
  return pool;
}

}  // namespace hetmm::os
