// Layer device: includes base, os, telemetry.
// Device memory of the software device: 4 KiB frames carved from 2 MiB chunks.
//
// Frames are handed out from chunks already in use before a whole free chunk is broken, in
// ascending order within a chunk, so consecutive allocations are contiguous (a run of pages
// moves in one copy) and whole chunks stay whole for blocks that move in by remapping.
//
// Placed allocations (alloc with a colour) put page i of a 2 MiB block of the program at frame
// i of a chunk, the chunk of the block's other pages when it has room, as a GPU driver gives
// each block its own 2 MiB chunk: a block's device pages then lie at one offset from their
// process addresses, one run of frames, which the device's block entries and the JIT's loops
// over device memory use as they use a block in place (spirv/kernel_context.hpp, J4). Without
// that, a block migrated in two batches straddled the end of one chunk and the start of the
// next, and a kernel alternating between its two runs refilled the block entry at every access
// (5x slower on a 3x3 convolution). Where no chunk has the frames at those places free, any
// free frames do: placement never costs capacity.
//
// Two kinds of backing:
//  - copied (the default): chunks are runtime memory (a private memfd mapping), mapped on demand
//    and backed at once; pages arrive by copy.
//  - movable: one anonymous reservation of the whole capacity, 2 MiB-aligned, named
//    "[anon:hetmm-device]" (never mirrored: os/proc_maps.hpp), advised for huge pages and
//    registered write-protect-only with a userfaultfd of its own that asks for no events (so
//    nobody has to read it: no fault is ever raised there, and its munmap or MADV_DONTNEED
//    waits for nobody). A whole block of the program's anonymous memory moves into a free
//    chunk with UFFDIO_MOVE: no copy, a single PMD when the block is a huge page. The mirror
//    moves it back with its own tracker's userfaultfd, whose registration gives the program's
//    ranges the same page protection as this one (UFFDIO_MOVE requires it).
// Chunk states (movable): empty (nothing mapped: a block can move in) -> filled (pages there,
// by a move or by copy) -> empty again when its block moved out whole, or by MADV_DONTNEED
// before a move in. Not thread-safe: the mirror's state lock guards it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace hetmm::device::sim {

class FramePool {
 public:
  static constexpr std::size_t kFrameSize = 4096;
  static constexpr std::size_t kFramesPerChunk = 512;
  static constexpr std::size_t kChunkSize = kFrameSize * kFramesPerChunk;

  // movable: try the movable backing (falls back to copied if the kernel refuses any part).
  FramePool(std::size_t capacity_bytes, bool movable);
  ~FramePool();
  FramePool(const FramePool&) = delete;
  FramePool& operator=(const FramePool&) = delete;

  static constexpr std::uint32_t kNoFrame = ~std::uint32_t{0};
  std::size_t alloc(std::size_t n, std::uint32_t* out);
  // n frames for pages colour .. colour + n - 1 of one block (colour + n <= kFramesPerChunk),
  // at those places of one chunk when one has them free: first `near`'s chunk (the chunk of the
  // block's other pages, or the one after a neighbour block's: movable chunks are contiguous,
  // so an array across the boundary stays one run; or kNoFrame), then a chunk in use, then a
  // whole one; else as alloc(). Returns how many it could allocate.
  std::size_t alloc_placed(std::size_t n, std::uint32_t* out, std::size_t colour,
                           std::uint32_t near);
  void free(std::uint32_t frame);
  void* address(std::uint32_t frame) const {
    return chunks_[frame / kFramesPerChunk] + (frame % kFramesPerChunk) * kFrameSize;
  }
  std::size_t capacity_bytes() const { return capacity_frames_ * kFrameSize; }
  std::size_t used_bytes() const { return used_.load(std::memory_order_relaxed) * kFrameSize; }
  // Unmaps (copied) or empties (movable) every chunk. Precondition: no frame is allocated.
  void release();

  bool movable() const { return move_fd_ >= 0; }
  // Movable only: allocates the 512 frames of one whole, empty chunk (2 MiB-aligned): near's
  // chunk when it is whole, else any. Returns false when no chunk is whole (or the pool is not
  // movable).
  bool alloc_chunk(std::uint32_t* first, std::uint32_t near = kNoFrame);
  // Moves the pages of [src, src + len) (len <= kChunkSize) into the chunk alloc_chunk gave.
  // Returns the bytes moved (a prefix: short on the first page that cannot move) or -errno.
  long move_into_chunk(std::uint32_t first, const void* src, std::size_t len = kChunkSize);
  // The mirror moved every page of this chunk out again: it is empty.
  void chunk_emptied(std::uint32_t first);

 private:
  // Per chunk: which frames are free, and the chunk's state.
  struct Chunk {
    std::uint64_t free_bits[kFramesPerChunk / 64];
    std::uint32_t free;
    bool in_partial;  // listed in partial_ (may be stale: checked when popped)
    bool in_whole;    // listed in whole_ (likewise)
    bool backed;      // every frame has a page (copied backing; movable after a populate)
    bool filled;      // movable: some frame may have a page (MOVE needs an empty target)
  };
  long grow();  // the next chunk, or -1
  long take_whole();
  long whole_at(std::size_t c);
  long current_partial();
  void take_from(std::size_t c, std::size_t want, std::uint32_t* out, std::size_t* got);
  bool frames_free(std::size_t c, std::size_t first, std::size_t n) const;
  void take_frames_at(std::size_t c, std::size_t first, std::size_t n, std::uint32_t* out);
  void back_for_copy(std::size_t c);
  void empty_chunk(std::size_t c);
  void list_partial(std::size_t c);
  void list_whole(std::size_t c);

  std::size_t capacity_frames_;
  std::size_t max_chunks_;
  std::size_t mapped_chunks_ = 0;
  std::byte** chunks_;
  Chunk* state_;
  std::uint32_t* partial_;  // stack of chunks with some frames free
  std::size_t partial_top_ = 0;
  std::uint32_t* whole_;  // stack of chunks with every frame free
  std::size_t whole_top_ = 0;
  std::atomic<std::size_t> used_{0};
  // Movable backing: the reservation (max_chunks_ chunks) and its userfaultfd.
  int move_fd_ = -1;
  std::byte* base_ = nullptr;
};

}  // namespace hetmm::device::sim
