// Advice, per-range policies and the residency queries (Runtime::advise, set_policy,
// residency, range_stats). Advice lives in the VaBlocks, per page, under the state lock; the
// fault path and eviction read it there (src/core/device_fault.cpp, src/policy/).
#include "core/mirror.hpp"
#include "core/mirror_internal.hpp"

#include <algorithm>
#include <sys/mman.h>

namespace hetmm::core {

using detail::Locked;
using detail::Vmas;
using os::kPageSize;

void Mirror::advise(std::uintptr_t start, std::uintptr_t end, Advice advice, int where, bool set,
                    Status* status) {
  Vmas vmas;
  if (!lock_with_map(start, end, vmas.list)) {
    status->fail(Errc::fault, start);
    return;
  }
  Locked lock(lock_, Locked::adopt);
  // Advice is for memory the process has: a hole or a runtime-internal mapping fails the call
  // before anything changes.
  for (std::uintptr_t page = start; page < end; page += kPageSize) {
    if (effective_prot(os::find_vma(vmas.list, page), page) < 0) {
      status->fail(Errc::fault, page);
      return;
    }
  }
  if (advice == Advice::discard) {
    // Device copies are freed without write-back; the pages read as zeros afterwards.
    invalidate_all(start, end);
    drop_range(start, end, true, ~std::uint64_t{0});
    return;
  }
  for (std::uintptr_t page = start; page < end; page += kPageSize) {
    VaBlock* b = get_block(page);
    std::size_t i = os::page_index_in_block(page);
    switch (advice) {
      case Advice::read_mostly:
        b->advice[i] = set ? b->advice[i] | kAdviseReadMostly : b->advice[i] & ~kAdviseReadMostly;
        break;
      case Advice::streaming:
        b->advice[i] = set ? b->advice[i] | kAdviseStreaming : b->advice[i] & ~kAdviseStreaming;
        break;
      case Advice::write_only:
        b->advice[i] = set ? b->advice[i] | kAdviseWriteOnly : b->advice[i] & ~kAdviseWriteOnly;
        break;
      case Advice::preferred_location:
        b->preferred[i] = set ? static_cast<std::int8_t>(where) : kNoPreference;
        break;
      case Advice::accessed_by:
        if (set) b->accessed_by[i] |= 1u << where;
        else b->accessed_by[i] &= ~(1u << where);
        break;
      case Advice::discard:
        break;
    }
  }
  // Mappings made under the old advice go: faults map the pages again under the new one.
  if (advice == Advice::accessed_by || advice == Advice::preferred_location) {
    lock_.begin_invalidate();
    for (std::size_t d = 0; d < ndevices_; ++d) {
      devices_[d]->invalidate(start, end);
      for (std::uintptr_t bs = os::block_down(start); bs < end; bs += os::kBlockSize)
        if (VaBlock* b = find_block(bs)) b->pinned &= ~(1u << d);
    }
  }
}

void Mirror::set_policy(std::uintptr_t start, std::uintptr_t end, PolicyProfile profile) {
  Locked lock(lock_);
  for (std::uintptr_t page = start; page < end; page += kPageSize) {
    VaBlock* b = get_block(page);
    b->policy[os::page_index_in_block(page)] = static_cast<std::uint8_t>(profile) + 1;
  }
  // Pages mapped in place under the old policy fault again under the new one.
  invalidate_all(start, end);
}

void Mirror::clear_advice(std::uintptr_t start, std::uintptr_t end) {
  for (std::uintptr_t page = start; page < end;) {
    VaBlock* b = find_block(page);
    std::uintptr_t block_end = os::block_down(page) + os::kBlockSize;
    if (b == nullptr) {
      page = block_end;
      continue;
    }
    for (; page < std::min(end, block_end); page += kPageSize) {
      std::size_t i = os::page_index_in_block(page);
      b->advice[i] = 0;
      b->preferred[i] = kNoPreference;
      b->accessed_by[i] = 0;
      b->policy[i] = 0;
    }
    b->pinned = 0;
  }
}

void Mirror::residency(std::uintptr_t start, std::size_t npages, Location* out) {
  Locked lock(lock_);
  for (std::size_t k = 0; k < npages; ++k) {
    std::int8_t owner = owner_of(start + k * kPageSize);
    out[k] = owner == kSystem ? Location::system()
                              : Location::device(static_cast<std::size_t>(owner));
  }
}

void Mirror::range_stats(std::uintptr_t start, std::uintptr_t end, RangeStats& out) {
  out.pages_on_device.assign(ndevices_, 0);  // before the lock: it allocates
  Locked lock(lock_);
  for (std::uintptr_t bs = os::block_down(start); bs < end; bs += os::kBlockSize) {
    VaBlock* b = find_block(bs);
    std::uintptr_t lo = std::max(start, bs), hi = std::min(end, bs + os::kBlockSize);
    if (b == nullptr) {
      out.pages_in_system += (hi - lo) / kPageSize;
      continue;
    }
    out.device_faults += b->device_faults;
    out.pages_to_device += b->pages_in;
    out.pages_to_system += b->pages_out;
    out.pages_evicted += b->pages_evicted;
    out.cpu_faults += b->cpu_faults;
    for (std::uintptr_t page = lo; page < hi; page += kPageSize) {
      std::int8_t owner = b->owner[os::page_index_in_block(page)];
      if (owner == kSystem) ++out.pages_in_system;
      else ++out.pages_on_device[static_cast<std::size_t>(owner)];
    }
  }
}

}  // namespace hetmm::core
