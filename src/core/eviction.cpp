// Eviction: making room on a device that is out of frames, in the order the policy chooses.
//
// Under the state lock, like every residency change. The victim search walks the blocks that
// hold device pages (one pass per victim block): cheap next to the copies it saves, and
// bounded by the number of resident blocks (device memory / 2 MiB).
#include "core/mirror.hpp"
#include "policy/policy.hpp"

#include <algorithm>

namespace hetmm::core {

void Mirror::note_arrival(VaBlock* b, std::size_t device) {
  b->arrived_epoch[device] = devices_[device]->access_epoch();
  // The block's allocation-order stamp restarts when it had no page on the device before.
  bool had_pages = false;
  for (std::size_t i = 0; i < os::kPagesPerBlock && !had_pages; ++i)
    had_pages = b->owner[i] == static_cast<std::int8_t>(device);
  if (!had_pages) b->arrived[device] = ++use_clock_;
  b->used[device] = ++use_clock_;
}

std::size_t Mirror::take_frames(std::size_t device, std::uintptr_t start, std::size_t n,
                                bool* out_of_memory) {
  reserve_frames(device, n);
  std::size_t got = devices_[device]->alloc_frames_placed(n, frames_, os::page_index_in_block(start),
                                                          frame_near(device, start));
  if (got < n) *out_of_memory = true;
  return got;
}

std::uint32_t Mirror::frame_near(std::size_t device, std::uintptr_t addr) const {
  const auto d = static_cast<std::int8_t>(device);
  // Page i of the block at frame i of a chunk: that chunk's first frame, or none.
  auto placed_chunk = [&](std::uintptr_t block_addr) -> std::int64_t {
    const VaBlock* b = find_block(block_addr);
    if (b == nullptr || (b->resident == 0 && b->duplicated == 0)) return -1;
    for (std::size_t i = 0; i < os::kPagesPerBlock; ++i)
      if ((b->owner[i] == d || b->dup[i] == d) && b->frame[i] % os::kPagesPerBlock == i)
        return b->frame[i] - static_cast<std::int64_t>(i);
    return -1;
  };
  constexpr std::int64_t kChunk = os::kPagesPerBlock;
  const std::uintptr_t block = addr & ~(os::kBlockSize - 1);
  if (std::int64_t c = placed_chunk(block); c >= 0) return static_cast<std::uint32_t>(c);
  if (std::int64_t c = placed_chunk(block - os::kBlockSize); c >= 0)
    return static_cast<std::uint32_t>(c + kChunk);
  if (std::int64_t c = placed_chunk(block + os::kBlockSize); c >= kChunk)
    return static_cast<std::uint32_t>(c - kChunk);
  return ~std::uint32_t{0};
}

void Mirror::reserve_frames(std::size_t device, std::size_t n) {
  device::DeviceBackend* dev = devices_[device];
  std::size_t free = (dev->capacity_bytes() - dev->used_bytes()) / os::kPageSize;
  if (free < n) evict(device, n - free);
}

std::size_t Mirror::evict(std::size_t device, std::size_t pages) {
  auto d = static_cast<std::int8_t>(device);
  device::DeviceBackend* dev = devices_[device];
  auto kept = [&](std::uintptr_t page) { return page >= keep_start_ && page < keep_end_; };
  // The runtime's policy orders victims (per-range policies choose what faults do, not what
  // leaves the device's memory).
  const policy::Policy& pol = *policies_[static_cast<std::size_t>(default_profile_)];
  ReasonScope why(this, EventReason::eviction);
  std::size_t freed = 0;
  while (freed < pages) {
    VaBlock* victim = nullptr;
    std::uint64_t best = ~std::uint64_t{0};
    blocks_.for_each([&](VaBlock& b) {
      if (b.resident == 0 && b.duplicated == 0) return;
      if (fault_eviction_ && !cold(b, device)) return;
      std::uint64_t key = pol.eviction_key(b, device, devices_[device]->touched_epoch(b.base));
      if (key >= best) return;
      for (std::size_t i = 0; i < os::kPagesPerBlock; ++i) {
        if ((b.owner[i] == d || b.dup[i] == d) && !kept(b.page_addr(i))) {
          victim = &b;
          best = key;
          return;
        }
      }
    });
    if (victim == nullptr) break;  // everything left is the request's own
    std::size_t before = dev->used_bytes();
    std::uintptr_t lo = victim->base, hi = lo + os::kBlockSize;
    if (!pol.evicts_whole_blocks()) {
      // Only what is needed, in 64 KiB granules: the rest of the block stays useful.
      std::size_t want = (pages - freed + 15) / 16 * 16, seen = 0;
      std::uintptr_t limit = lo;
      while (limit < hi && seen < want) {
        std::size_t i = os::page_index_in_block(limit);
        if ((victim->owner[i] == d || victim->dup[i] == d) && !kept(limit)) ++seen;
        limit += os::kPageSize;
      }
      hi = limit;
    }
    std::uintptr_t cut_lo = std::clamp(keep_start_, lo, hi), cut_hi = std::clamp(keep_end_, lo, hi);
    // Clean copies first: dropping them costs no transfer (their system copy is valid).
    if (cut_lo < cut_hi) {
      collapse_range(lo, cut_lo, d);
      collapse_range(cut_hi, hi, d);
      bring_home_range(lo, cut_lo, d, -1);
      bring_home_range(cut_hi, hi, d, -1);
    } else {
      collapse_range(lo, hi, d);
      bring_home_range(lo, hi, d, -1);
    }
    std::size_t after = dev->used_bytes();
    if (after >= before) break;  // nothing came home (transient failures): try again later
    std::size_t n = (before - after) / os::kPageSize;
    freed += n;
    victim->pages_evicted += n;
    counters_[device].pages_evicted.fetch_add(n, std::memory_order_relaxed);
  }
  return freed;
}

}  // namespace hetmm::core
