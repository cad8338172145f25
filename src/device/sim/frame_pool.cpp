#include "device/sim/frame_pool.hpp"

#include "os/proc_maps.hpp"
#include "os/syscalls.hpp"
#include "os/uffd.hpp"

#include <cerrno>
#include <cstring>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#define PR_SET_VMA_ANON_NAME 0
#endif

namespace hetmm::device::sim {

namespace {
constexpr int kMadvPopulateWrite = 23;  // MADV_POPULATE_WRITE (Linux 5.14)

template <class T>
T* map_array(std::size_t n) {
  return static_cast<T*>(os::map_runtime_memory((n == 0 ? 1 : n) * sizeof(T)));
}
template <class T>
void unmap_array(T* p, std::size_t n) {
  os::unmap_runtime_memory(p, (n == 0 ? 1 : n) * sizeof(T));
}
}  // namespace

FramePool::FramePool(std::size_t capacity_bytes, bool movable)
    : capacity_frames_(capacity_bytes / kFrameSize),
      max_chunks_((capacity_frames_ + kFramesPerChunk - 1) / kFramesPerChunk) {
  chunks_ = map_array<std::byte*>(max_chunks_);
  state_ = map_array<Chunk>(max_chunks_);
  partial_ = map_array<std::uint32_t>(max_chunks_);
  whole_ = map_array<std::uint32_t>(max_chunks_);
  if (!movable || max_chunks_ == 0) return;
  // The movable backing, all or nothing: any refusal leaves the copied backing.
  std::size_t len = max_chunks_ * kChunkSize;
  int err = 0;
  void* p = os::sys_mmap(nullptr, len + kChunkSize, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0, &err);
  if (p == MAP_FAILED) return;
  auto raw = reinterpret_cast<std::uintptr_t>(p);
  std::uintptr_t base = (raw + kChunkSize - 1) & ~(kChunkSize - 1);
  if (base > raw) os::sys_munmap(p, base - raw);
  os::sys_munmap(reinterpret_cast<void*>(base + len), raw + kChunkSize - base);
  // The runtime-range list is what tells this anonymous memory from the program's (never
  // mirrored). The name only helps a human reading /proc/self/maps, where the kernel has names.
  // Once registered with its own userfaultfd the mapping never merges with a neighbour.
  ::prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, base, len, os::kDeviceMemoryAnonName);
  os::UffdOpen u = os::uffd_open(/*force_user_mode_only=*/true, os::kUffdFeatureMove);
  if (u.fd >= 0 && (u.features & os::kUffdFeatureMove) &&
      os::uffd_register_wp_only(u.fd, base, len) == 0 && os::add_runtime_range(base, len)) {
    move_fd_ = u.fd;
    base_ = reinterpret_cast<std::byte*>(base);
    // Whole chunks as huge pages: a block moves in as one PMD and a copied chunk is backed by
    // one fault. Advice only: without it chunks are 4 KiB pages and everything still works.
    os::sys_madvise(base_, len, MADV_HUGEPAGE);
    return;
  }
  if (u.fd >= 0) ::close(u.fd);
  os::sys_munmap(reinterpret_cast<void*>(base), len);
}

FramePool::~FramePool() {
  if (movable()) {
    ::close(move_fd_);  // drops the registration; no event is pending on it
    os::unmap_runtime_memory(base_, max_chunks_ * kChunkSize);
    os::remove_runtime_range(reinterpret_cast<std::uintptr_t>(base_));
  } else {
    for (std::size_t c = 0; c < mapped_chunks_; ++c) os::unmap_runtime_memory(chunks_[c], kChunkSize);
  }
  unmap_array(chunks_, max_chunks_);
  unmap_array(state_, max_chunks_);
  unmap_array(partial_, max_chunks_);
  unmap_array(whole_, max_chunks_);
}

long FramePool::grow() {
  if (mapped_chunks_ == max_chunks_) return -1;
  std::size_t c = mapped_chunks_;
  // Device memory is runtime memory: it never migrates and is never registered with the
  // program's tracker. Copied chunks are backed when first used (back_for_copy).
  chunks_[c] = movable() ? base_ + c * kChunkSize
                         : static_cast<std::byte*>(os::map_runtime_memory(kChunkSize));
  ++mapped_chunks_;
  Chunk& s = state_[c];
  std::memset(&s, 0, sizeof s);
  std::size_t first = c * kFramesPerChunk;
  std::size_t frames = std::min(kFramesPerChunk, capacity_frames_ - first);
  for (std::size_t f = 0; f < frames; ++f) s.free_bits[f / 64] |= std::uint64_t{1} << (f % 64);
  s.free = static_cast<std::uint32_t>(frames);
  return static_cast<long>(c);
}

void FramePool::list_partial(std::size_t c) {
  if (state_[c].in_partial) return;
  state_[c].in_partial = true;
  partial_[partial_top_++] = static_cast<std::uint32_t>(c);
}

void FramePool::list_whole(std::size_t c) {
  if (state_[c].in_whole) return;
  state_[c].in_whole = true;
  whole_[whole_top_++] = static_cast<std::uint32_t>(c);
}

long FramePool::take_whole() {
  while (whole_top_ > 0) {
    std::size_t c = whole_[--whole_top_];
    state_[c].in_whole = false;
    if (state_[c].free == kFramesPerChunk) return static_cast<long>(c);
  }
  return -1;
}

long FramePool::current_partial() {
  while (partial_top_ > 0) {
    std::size_t c = partial_[partial_top_ - 1];
    std::uint32_t free = state_[c].free;
    // Full, or whole again (kept whole: it is listed in whole_ too).
    if (free != 0 && free != kFramesPerChunk) return static_cast<long>(c);
    state_[c].in_partial = false;
    --partial_top_;
  }
  return -1;
}

void FramePool::back_for_copy(std::size_t c) {
  Chunk& s = state_[c];
  if (s.backed) return;
  // Back the chunk now, in one call (~5 GB/s here, one fault for a huge page), rather than
  // through 512 first-touch page faults (~11 us each on this machine class) in the middle of a
  // migration. Pages already there are left alone.
  os::sys_madvise(chunks_[c], kChunkSize, kMadvPopulateWrite);
  s.backed = true;
  s.filled = true;
}

void FramePool::empty_chunk(std::size_t c) {
  os::sys_madvise(chunks_[c], kChunkSize, MADV_DONTNEED);
  state_[c].filled = false;
  state_[c].backed = false;
}

void FramePool::take_from(std::size_t c, std::size_t want, std::uint32_t* out, std::size_t* got) {
  Chunk& s = state_[c];
  std::size_t taken = 0;
  for (std::size_t w = 0; w < kFramesPerChunk / 64 && taken < want; ++w) {
    while (s.free_bits[w] != 0 && taken < want) {
      unsigned b = static_cast<unsigned>(__builtin_ctzll(s.free_bits[w]));
      s.free_bits[w] &= s.free_bits[w] - 1;
      out[taken++] = static_cast<std::uint32_t>(c * kFramesPerChunk + w * 64 + b);
    }
  }
  s.free -= static_cast<std::uint32_t>(taken);
  used_.fetch_add(taken, std::memory_order_relaxed);
  *got += taken;
}

std::size_t FramePool::alloc(std::size_t n, std::uint32_t* out) {
  std::size_t got = 0;
  while (got < n) {
    long c = current_partial();
    if (c < 0) c = take_whole();
    if (c < 0) c = grow();
    if (c < 0) break;
    auto cu = static_cast<std::size_t>(c);
    back_for_copy(cu);
    take_from(cu, n - got, out + got, &got);
    if (state_[cu].free > 0) list_partial(cu);
  }
  return got;
}

bool FramePool::frames_free(std::size_t c, std::size_t first, std::size_t n) const {
  const Chunk& s = state_[c];
  if (s.free < n) return false;
  for (std::size_t f = first, end = first + n; f < end;) {
    std::size_t bit = f % 64, take = std::min<std::size_t>(64 - bit, end - f);
    std::uint64_t mask = (take == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << take) - 1) << bit;
    if ((s.free_bits[f / 64] & mask) != mask) return false;
    f += take;
  }
  return true;
}

void FramePool::take_frames_at(std::size_t c, std::size_t first, std::size_t n,
                               std::uint32_t* out) {
  Chunk& s = state_[c];
  for (std::size_t k = 0; k < n; ++k) {
    std::size_t f = first + k;
    s.free_bits[f / 64] &= ~(std::uint64_t{1} << (f % 64));
    out[k] = static_cast<std::uint32_t>(c * kFramesPerChunk + f);
  }
  s.free -= static_cast<std::uint32_t>(n);
  used_.fetch_add(n, std::memory_order_relaxed);
  if (s.free > 0) list_partial(c);
}

std::size_t FramePool::alloc_placed(std::size_t n, std::uint32_t* out, std::size_t colour,
                                    std::uint32_t near) {
  if (n == 0 || colour + n > kFramesPerChunk) return alloc(n, out);
  auto place = [&](long c) {
    if (c < 0 || static_cast<std::size_t>(c) >= mapped_chunks_) return false;
    auto cu = static_cast<std::size_t>(c);
    if (!frames_free(cu, colour, n)) return false;
    back_for_copy(cu);
    take_frames_at(cu, colour, n, out);
    return true;
  };
  // The block's own chunk, then chunks in use (whole ones stay whole for block moves), then a
  // whole chunk; the lists may hold stale entries, which frames_free sees through.
  if (near != kNoFrame) {
    const std::size_t c = near / kFramesPerChunk;
    if (c >= mapped_chunks_) whole_at(c);  // maps it (movable memory)
    if (place(static_cast<long>(c))) return n;
  }
  for (std::size_t k = partial_top_; k-- > 0;)
    if (state_[partial_[k]].free != kFramesPerChunk && place(partial_[k])) return n;
  long c = take_whole();
  if (c < 0) c = grow();
  if (c >= 0) {
    if (place(c)) return n;
    // Too short for this place (the capacity's last chunk): back in the lists as it was.
    if (state_[c].free == kFramesPerChunk) list_whole(static_cast<std::size_t>(c));
    else list_partial(static_cast<std::size_t>(c));
  }
  return alloc(n, out);
}

void FramePool::free(std::uint32_t frame) {
  std::size_t c = frame / kFramesPerChunk;
  std::size_t f = frame % kFramesPerChunk;
  Chunk& s = state_[c];
  s.free_bits[f / 64] |= std::uint64_t{1} << (f % 64);
  ++s.free;
  used_.fetch_sub(1, std::memory_order_relaxed);
  if (s.free == kFramesPerChunk)
    list_whole(c);
  else
    list_partial(c);
}

long FramePool::whole_at(std::size_t c) {
  if (c >= max_chunks_) return -1;
  // Movable memory is one reservation: mapping a chunk is bookkeeping, so the chunks before c
  // may be mapped out of turn (listed whole).
  while (movable() && mapped_chunks_ <= c) {
    long g = grow();
    if (g < 0) return -1;
    if (static_cast<std::size_t>(g) != c) list_whole(static_cast<std::size_t>(g));
  }
  if (c >= mapped_chunks_ || state_[c].free != kFramesPerChunk) return -1;
  return static_cast<long>(c);
}

bool FramePool::alloc_chunk(std::uint32_t* first, std::uint32_t near) {
  if (!movable()) return false;
  // The chunk asked for when it is whole (its listing in whole_, if any, goes stale).
  long c = near != kNoFrame ? whole_at(near / kFramesPerChunk) : -1;
  if (c < 0) c = take_whole();
  if (c < 0) {
    c = grow();
    if (c < 0) return false;
    if (state_[c].free != kFramesPerChunk) {  // the capacity's last, short chunk
      list_partial(static_cast<std::size_t>(c));
      return false;
    }
  }
  auto cu = static_cast<std::size_t>(c);
  // A move needs every target page empty: pages a copy left (or a move that did not come
  // back whole) go first.
  if (state_[cu].filled) empty_chunk(cu);
  Chunk& s = state_[cu];
  for (auto& w : s.free_bits) w = 0;
  s.free = 0;
  used_.fetch_add(kFramesPerChunk, std::memory_order_relaxed);
  *first = static_cast<std::uint32_t>(cu * kFramesPerChunk);
  return true;
}

long FramePool::move_into_chunk(std::uint32_t first, const void* src, std::size_t len) {
  Chunk& s = state_[first / kFramesPerChunk];
  s.filled = true;
  s.backed = false;
  return os::uffd_move(move_fd_, reinterpret_cast<std::uintptr_t>(address(first)),
                       reinterpret_cast<std::uintptr_t>(src), len < kChunkSize ? len : kChunkSize,
                       os::kUffdMoveModeAllowSrcHoles);
}

void FramePool::chunk_emptied(std::uint32_t first) {
  Chunk& s = state_[first / kFramesPerChunk];
  s.filled = false;
  s.backed = false;
}

void FramePool::release() {
  if (movable())
    os::sys_madvise(base_, mapped_chunks_ * kChunkSize, MADV_DONTNEED);
  else
    for (std::size_t c = 0; c < mapped_chunks_; ++c) os::unmap_runtime_memory(chunks_[c], kChunkSize);
  mapped_chunks_ = 0;
  partial_top_ = whole_top_ = 0;
  used_.store(0, std::memory_order_relaxed);
}

}  // namespace hetmm::device::sim
