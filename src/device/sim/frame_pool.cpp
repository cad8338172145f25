#include "device/sim/frame_pool.hpp"

#include "os/syscalls.hpp"

#include <cstring>

namespace hetmm::device::sim {

FramePool::FramePool(std::size_t capacity_bytes)
    : capacity_frames_(capacity_bytes / kFrameSize),
      max_chunks_((capacity_frames_ + kFramesPerChunk - 1) / kFramesPerChunk) {
  std::size_t n = max_chunks_ == 0 ? 1 : max_chunks_;
  chunks_ = static_cast<std::byte**>(os::map_runtime_memory(n * sizeof(std::byte*)));
  std::size_t f = capacity_frames_ == 0 ? 1 : capacity_frames_;
  free_ = static_cast<std::uint32_t*>(os::map_runtime_memory(f * sizeof(std::uint32_t)));
}

FramePool::~FramePool() {
  for (std::size_t c = 0; c < mapped_chunks_; ++c)
    os::unmap_runtime_memory(chunks_[c], kFramesPerChunk * kFrameSize);
  os::unmap_runtime_memory(chunks_, (max_chunks_ == 0 ? 1 : max_chunks_) * sizeof(std::byte*));
  os::unmap_runtime_memory(free_, (capacity_frames_ == 0 ? 1 : capacity_frames_) *
                                      sizeof(std::uint32_t));
}

bool FramePool::grow() {
  if (mapped_chunks_ == max_chunks_) return false;
  std::size_t c = mapped_chunks_;
  // Device memory is runtime memory: it never migrates and is never registered.
  chunks_[c] = static_cast<std::byte*>(os::map_runtime_memory(kFramesPerChunk * kFrameSize));
  // Back the chunk now, in one call (~5 GB/s here), rather than through 512 first-touch page
  // faults (~11 us each on this machine class) in the middle of a migration.
  os::sys_madvise(chunks_[c], kFramesPerChunk * kFrameSize, 23 /* MADV_POPULATE_WRITE */);
  ++mapped_chunks_;
  std::size_t first = c * kFramesPerChunk;
  std::size_t last = first + kFramesPerChunk;
  if (last > capacity_frames_) last = capacity_frames_;
  for (std::size_t f = last; f > first; --f) free_[free_top_++] = static_cast<std::uint32_t>(f - 1);
  return true;
}

std::size_t FramePool::alloc(std::size_t n, std::uint32_t* out) {
  std::size_t got = 0;
  while (got < n) {
    if (free_top_ == 0 && !grow()) break;
    out[got++] = free_[--free_top_];
  }
  used_.fetch_add(got, std::memory_order_relaxed);
  return got;
}

void FramePool::free(std::uint32_t frame) {
  free_[free_top_++] = frame;
  used_.fetch_sub(1, std::memory_order_relaxed);
}

void FramePool::release() {
  for (std::size_t c = 0; c < mapped_chunks_; ++c)
    os::unmap_runtime_memory(chunks_[c], kFramesPerChunk * kFrameSize);
  mapped_chunks_ = 0;
  free_top_ = 0;
  used_.store(0, std::memory_order_relaxed);
}

}  // namespace hetmm::device::sim
