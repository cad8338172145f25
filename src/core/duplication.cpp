// Read duplication (Advice::read_mostly): a device read fault on a read-mostly page copies it
// into the device's memory and keeps the system copy valid, write-protected (invariant I5 in
// core/va_block.hpp). Reads on both sides are then local; the first write from anywhere drops
// the copies (collapse). An evicted copy costs nothing: it is clean, the system copy is valid.
#include "core/mirror.hpp"
#include "core/mirror_internal.hpp"
#include "os/pagemap.hpp"

#include <algorithm>

namespace hetmm::core {

using os::kPageSize;

std::size_t Mirror::duplicate_run(std::size_t device, std::uintptr_t start, std::uintptr_t end,
                                  const os::Vma& vma, bool* out_of_memory) {
  device::DeviceBackend* dev = devices_[device];
  end = system_only_end(start, end);
  std::size_t n = (end - start) / kPageSize;
  if (n == 0) return 0;
  n = take_frames(device, start, n, out_of_memory);
  end = start + n * kPageSize;
  if (n == 0) return 0;
  VaBlock* b = get_block(start);
  std::size_t i0 = os::page_index_in_block(start);
  std::size_t len = end - start;
  auto abort = [&](bool thaw) {
    if (thaw) tracker_->thaw(start, len, vma.prot());
    for (std::size_t k = 0; k < n; ++k) {
      dev->free_frame(frames_[k]);
      b->flags[i0 + k].store(0, std::memory_order_release);
    }
    return std::size_t{0};
  };
  // Writable in-place mappings go first: once the page is write-protected, a device write
  // through one (Device::write copies under the state lock) would fault into this lock.
  invalidate_all(start, end);
  // CPU writes wait from here (the flag), and fault once the range is write-protected: the
  // copy below is then the page's last word until a write drops it.
  for (std::size_t k = 0; k < n; ++k) b->flags[i0 + k].store(kMigrating, std::memory_order_seq_cst);
  tracker_->quiesce();  // a write access the handler gave back before the mark lands first
  if (tracker_->prepare(start, len, vma) < 0) return abort(false);
  if (tracker_->freeze(start, len) < 0) return abort(true);
  os::query_pages(start, n, bits_);
  for (std::size_t k = 0; k < n; ++k) {
    bool has_data = (bits_[k] & (os::kPagePresent | os::kPageSwapped)) && !(bits_[k] & os::kPageZero);
    if (!has_data) {
      dev->zero_frames(frames_ + k, 1);
      continue;
    }
    auto* from = reinterpret_cast<void*>(start + k * kPageSize);
    if (!dev->copy_to_frames(frames_ + k, 1, from)) return abort(true);
  }
  note_arrival(b, device);
  for (std::size_t k = 0; k < n; ++k) {
    b->dup[i0 + k] = static_cast<std::int8_t>(device);
    b->frame[i0 + k] = frames_[k];
    b->prot[i0 + k] = static_cast<std::uint8_t>(vma.prot());
    b->flags[i0 + k].store(kDuplicated, std::memory_order_release);
  }
  b->duplicated += static_cast<std::uint32_t>(n);
  emit(EventKind::duplicate, move_reason_, static_cast<int>(device), kSystem,
       static_cast<int>(device), start, len);
  counters_[device].pages_to_device.fetch_add(n, std::memory_order_relaxed);
  counters_[device].link_transfers.fetch_add(1, std::memory_order_relaxed);
  counters_[device].link_bytes.fetch_add(len, std::memory_order_relaxed);
#ifndef NDEBUG
  check_block(*b);
#endif
  return n;
}

std::size_t Mirror::collapse_range(std::uintptr_t start, std::uintptr_t end, int only, bool thaw) {
  std::size_t dropped = 0;
  for (std::uintptr_t bs = os::block_down(start); bs < end; bs += os::kBlockSize) {
    VaBlock* b = find_block(bs);
    if (b == nullptr || b->duplicated == 0) continue;
    std::size_t lo = os::page_index_in_block(std::max(start, bs));
    std::size_t hi = std::min(end, bs + os::kBlockSize) == bs + os::kBlockSize
                         ? os::kPagesPerBlock
                         : os::page_index_in_block(std::min(end, bs + os::kBlockSize));
    for (std::size_t i = lo; i < hi;) {
      int d = b->dup[i];
      if (d == kSystem || (only >= 0 && d != only)) {
        ++i;
        continue;
      }
      std::size_t j = i + 1;
      while (j < hi && b->dup[j] == d && b->prot[j] == b->prot[i]) ++j;
      std::uintptr_t a = b->page_addr(i), z = b->page_addr(j);
      // The device stops using its copies before the frames go and the CPU may write.
      lock_.begin_invalidate();
      devices_[d]->invalidate(a, z);
      for (std::size_t k = i; k < j; ++k) {
        devices_[d]->free_frame(b->frame[k]);
        b->dup[k] = kSystem;
        b->flags[k].store(0, std::memory_order_release);
      }
      b->duplicated -= static_cast<std::uint32_t>(j - i);
      if (thaw) tracker_->thaw(a, z - a, b->prot[i]);
      dropped += j - i;
      i = j;
    }
  }
  return dropped;
}

}  // namespace hetmm::core

namespace hetmm::core {

std::size_t Mirror::upgrade_copies(std::size_t device, std::uintptr_t start, std::uintptr_t end) {
  // The device that holds the copy writes it: its copy becomes the only one (the driver's
  // read-duplication rule for writes), without moving a byte: the CPU copy is revoked.
  auto d = static_cast<std::int8_t>(device);
  std::size_t upgraded = 0;
  for (std::uintptr_t bs = os::block_down(start); bs < end; bs += os::kBlockSize) {
    VaBlock* b = find_block(bs);
    if (b == nullptr || b->duplicated == 0) continue;
    std::uintptr_t lo = std::max(start, bs), hi = std::min(end, bs + os::kBlockSize);
    for (std::uintptr_t page = lo; page < hi;) {
      std::size_t i = os::page_index_in_block(page);
      if (b->dup[i] != d) {
        page += kPageSize;
        continue;
      }
      std::uintptr_t run_end = page + kPageSize;
      while (run_end < hi && b->dup[os::page_index_in_block(run_end)] == d) run_end += kPageSize;
      std::size_t n = (run_end - page) / kPageSize;
      // Other devices may read the system copy in place: they stop before it goes.
      invalidate_all(page, run_end);
      for (std::size_t k = i; k < i + n; ++k) b->flags[k].store(kMigrating, std::memory_order_release);
      if (tracker_->revoke(page, run_end - page) < 0) {
        // The copies stay copies; the write drops them (collapse) instead.
        for (std::size_t k = i; k < i + n; ++k) b->flags[k].store(kDuplicated, std::memory_order_release);
        collapse_range(page, run_end, d);
        page = run_end;
        continue;
      }
      std::uint64_t birth = clock_.load(std::memory_order_acquire);
      for (std::size_t k = i; k < i + n; ++k) {
        b->owner[k] = d;
        b->dup[k] = kSystem;
        b->birth[k] = birth;
        b->flags[k].store(kRevoked, std::memory_order_release);
      }
      b->duplicated -= static_cast<std::uint32_t>(n);
      b->resident += static_cast<std::uint32_t>(n);
      upgraded += n;
      page = run_end;
    }
#ifndef NDEBUG
    check_block(*b);
#endif
  }
  return upgraded;
}

}  // namespace hetmm::core
