// Device memory of the software device: 4 KiB frames carved from 2 MiB chunks.
//
// Chunks are mapped on demand up to the capacity and returned by release(). Frames come off a
// stack that a fresh chunk fills in ascending order, so consecutive allocations are contiguous
// and a run of pages can move in one copy. Not thread-safe: the mirror's state lock guards it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace hetmm::device::sim {

class FramePool {
 public:
  explicit FramePool(std::size_t capacity_bytes);
  ~FramePool();
  FramePool(const FramePool&) = delete;
  FramePool& operator=(const FramePool&) = delete;

  std::size_t alloc(std::size_t n, std::uint32_t* out);
  void free(std::uint32_t frame);
  void* address(std::uint32_t frame) const {
    return chunks_[frame / kFramesPerChunk] + (frame % kFramesPerChunk) * kFrameSize;
  }
  std::size_t capacity_bytes() const { return capacity_frames_ * kFrameSize; }
  std::size_t used_bytes() const { return used_.load(std::memory_order_relaxed) * kFrameSize; }
  // Unmaps every chunk. Precondition: no frame is allocated.
  void release();

 private:
  static constexpr std::size_t kFrameSize = 4096;
  static constexpr std::size_t kFramesPerChunk = 512;
  bool grow();
  std::size_t capacity_frames_;
  std::size_t max_chunks_;
  std::size_t mapped_chunks_ = 0;
  std::byte** chunks_;
  std::uint32_t* free_;  // stack of free frame numbers
  std::size_t free_top_ = 0;
  std::atomic<std::size_t> used_{0};
};

}  // namespace hetmm::device::sim
