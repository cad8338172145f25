// Layer device: includes base, os, telemetry.
// The interface every device implements for the mirror: memory frames, a copy engine, an MMU
// (page table plus TLB shootdown) and a fault source. `sim` implements it in software; a CUDA
// backend will implement the same on a GPU.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hetmm::device {

// A device page-table entry. The address bits hold the host address the device reaches:
// the frame's address for local pages, the process address itself for in-place pages.
namespace pte {
inline constexpr std::uint64_t kValid = 1;
inline constexpr std::uint64_t kWrite = 2;
inline constexpr std::uint64_t kLocal = 4;  // in device memory (else: system memory, in place)
inline constexpr std::uint64_t kAddrMask = ~std::uint64_t{0xfff};
inline std::uint64_t make(std::uintptr_t target, bool write, bool local) {
  return (target & kAddrMask) | kValid | (write ? kWrite : 0) | (local ? kLocal : 0);
}
}  // namespace pte

// What the fault service asks the mirror to do for a range of device faults.
struct FaultRange {
  std::uintptr_t start = 0;  // must be served (errors are reported for these pages)
  std::uintptr_t end = 0;
  bool write = false;
  bool kernel = false;  // raised by a kernel (policies may migrate), not an API call
  // Fault-ahead window around [start, end): pages here are mapped too when that is cheap and
  // harmless (in place, or already local), never moved and never an error. 0 = none.
  std::uintptr_t ahead_start = 0;
  std::uintptr_t ahead_end = 0;
};
struct FaultOutcome {
  int error = 0;                 // 0, or a hetmm::Errc value + 1
  std::uintptr_t error_addr = 0;  // first page that failed
  bool over_limit = false;        // out_of_memory: Options::max_oversubscription
};

class FaultResolver {
 public:
  virtual ~FaultResolver() = default;
  // Called by a device's fault service thread with a sorted, coalesced batch.
  virtual void resolve(std::size_t device, const FaultRange* ranges, FaultOutcome* outcomes,
                       std::size_t n) = 0;
};

class DeviceBackend {
 public:
  virtual ~DeviceBackend() = default;
  virtual std::size_t index() const = 0;

  // Memory frames (4 KiB). alloc returns how many it could allocate (<= n); prefers contiguous.
  virtual std::size_t alloc_frames(std::size_t n, std::uint32_t* out) = 0;
  // Frames for pages colour .. colour + n - 1 of one 2 MiB block (colour + n <= 512), placed
  // so that the block's pages lie at one offset from their addresses where the device can
  // (sim/frame_pool.hpp); `near` is a frame of the block's already so placed, or ~0u.
  virtual std::size_t alloc_frames_placed(std::size_t n, std::uint32_t* out, std::size_t colour,
                                          std::uint32_t near) {
    (void)colour;
    (void)near;
    return alloc_frames(n, out);
  }
  virtual void free_frame(std::uint32_t frame) = 0;
  virtual std::size_t capacity_bytes() const = 0;
  virtual std::size_t used_bytes() const = 0;
  virtual void release_memory() = 0;  // all frames are free: give the chunks back
  // Host address of a frame where device memory is host-addressable (sim), else nullptr.
  virtual void* frame_host_address(std::uint32_t frame) = 0;

  // Zero-copy block moves (optional: the sim device when its memory is movable, see
  // sim/frame_pool.hpp). A block is 512 frames from `first` (first % 512 == 0) at one 2 MiB-
  // aligned host address. alloc_block_frames takes a whole empty one (near's, as in
  // alloc_frames_placed, when it can); move_block_in remaps a
  // 2 MiB block of the program's private anonymous memory into it (returns the bytes moved, a
  // prefix, or -errno); the mirror moves a block out with its own tracker and then says so.
  virtual bool movable_memory() const { return false; }
  virtual bool alloc_block_frames(std::uint32_t* first, std::uint32_t near) {
    (void)first;
    (void)near;
    return false;
  }
  virtual long move_block_in(std::uint32_t first, const void* src) {
    (void)first;
    (void)src;
    return -95;  // EOPNOTSUPP
  }
  virtual void block_moved_out(std::uint32_t first) { (void)first; }

  // Copy engine. Pages are 4 KiB; host buffers are runtime or process memory.
  // Both return false when the host side faulted (memory unmapped under our feet).
  virtual bool copy_to_frames(const std::uint32_t* frames, std::size_t n, const void* src) = 0;
  virtual bool copy_from_frames(void* dst, const std::uint32_t* frames, std::size_t n) = 0;
  virtual void zero_frames(const std::uint32_t* frames, std::size_t n) = 0;

  // MMU. Callers hold the mirror's state lock.
  virtual void set_pte(std::uintptr_t va, std::uint64_t entry) = 0;
  virtual std::uint64_t get_pte(std::uintptr_t va) const = 0;
  virtual std::size_t mapped_pages() const = 0;  // valid PTEs
  // Clears PTEs in [start, end) and returns only when no worker can still use them.
  virtual void invalidate(std::uintptr_t start, std::uintptr_t end) = 0;

  // Access epochs, for policies that tell cold blocks from warm ones: the epoch advances when
  // a kernel starts (and when asked), and the page table records per 2 MiB block the last
  // epoch in which a worker walked it (every TLB is flushed when the epoch advances, so a
  // block in use is walked at least once per epoch).
  virtual std::uint32_t access_epoch() const = 0;
  virtual std::uint32_t touched_epoch(std::uintptr_t va) const = 0;
  virtual void advance_access_epoch() = 0;
  // Access counters: the bytes kernels accessed in place in va's 2 MiB block since the last
  // call (which resets it). A device that does not count answers 0.
  virtual std::uint64_t take_in_place_traffic(std::uintptr_t va) {
    (void)va;
    return 0;
  }
  // What the link model (LinkProfile) charges on the device's side so far: fault batches
  // served, and bytes kernels accessed in place and in device memory (counted where they are
  // counted: Thread accesses, not JIT kernels' inline ones). For the modeled clock.
  struct ModelInputs {
    std::uint64_t fault_batches = 0;
    std::uint64_t in_place_bytes = 0;
    std::uint64_t local_bytes = 0;
  };
  virtual ModelInputs model_inputs() const { return {}; }
};

}  // namespace hetmm::device
