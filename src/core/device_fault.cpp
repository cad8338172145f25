// Device faults: the analogue of hmm_range_fault inside the read_begin/read_retry loop, and
// on-demand migration. A batch is served under one hold of the state lock with one read of
// the memory map. For each faulted range the mirror checks access rights, asks the range's
// policy (src/policy/) what to move, moves it, and maps what the device needs: locally for
// pages in its memory, in place for the rest.
#include "core/mirror.hpp"
#include "core/mirror_internal.hpp"
#include "policy/policy.hpp"
#include "policy/thrashing.hpp"

#include <algorithm>
#include <sys/mman.h>

namespace hetmm::core {

using device::FaultOutcome;
using device::FaultRange;
using detail::encode;
using detail::Locked;
using detail::Vmas;
using os::kPageSize;

namespace {
// Sanitizer runtimes keep their own state in anonymous memory that the kernel merges with the
// program's mappings, and touch it from hetmm's threads (the userfaultfd handler, the fault
// service under the state lock). Prefetching a neighbour of a faulted page could migrate such
// state and leave those threads waiting on a fault only they can serve. Sanitizer builds
// therefore migrate only the pages a kernel faulted on (docs/POLICIES.md).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kFaultedPagesOnly = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kFaultedPagesOnly = true;
#else
constexpr bool kFaultedPagesOnly = false;
#endif
#else
constexpr bool kFaultedPagesOnly = false;
#endif

// Stream prefetch may reach this many blocks beyond a batch: the memory map is read for them.
constexpr std::uintptr_t kPrefetchReach = 8 * os::kBlockSize;  // HetmmPolicy::kMaxAhead

// The part of the memory map a range needs: its fault-ahead window and, for a kernel's fault,
// the stream prefetch's reach, which never leaves the faulting mapping (migrate_for_fault clips
// prefetch to the VMA): [home_start, home_end) is that mapping, or empty when unknown.
std::uintptr_t window_start(const FaultRange& r, std::uintptr_t home_start) {
  std::uintptr_t s = r.ahead_start != 0 ? std::min(r.ahead_start, r.start) : r.start;
  if (r.kernel) {
    std::uintptr_t reach = r.start > kPrefetchReach ? r.start - kPrefetchReach : 0;
    s = std::min(s, std::max(reach, home_start));
  }
  return s;
}
std::uintptr_t window_end(const FaultRange& r, std::uintptr_t home_end) {
  std::uintptr_t e = r.ahead_end != 0 ? std::max(r.ahead_end, r.end) : r.end;
  if (r.kernel) {
    std::uintptr_t reach = std::min<std::uintptr_t>(r.end + kPrefetchReach, std::uintptr_t{1} << 57);
    e = std::max(e, std::min(reach, home_end));
  }
  return e;
}
}  // namespace

void Mirror::resolve(std::size_t device, const FaultRange* ranges, FaultOutcome* outcomes,
                     std::size_t n) {
  if (n == 0) return;
  // One read of the memory map and one hold of the state lock serve the whole batch. The read
  // covers what the batch can touch: the stream prefetch's reach only inside each faulting
  // mapping, found first (one PROCMAP_QUERY per mapping the batch faults in), so that the cost
  // of a fault does not grow with the mappings around it (thread stacks, libraries: a small
  // buffer among them once took 13 queries per fault). The homes are a hint read without the
  // lock: a stale one only widens or narrows what is read, never what is decided. (Where the
  // map is read as text, one read of any width costs the same: no homes then.)
  Vmas vmas;
  std::uintptr_t lo = ~std::uintptr_t{0}, hi = 0;
  os::Vma home;
  const bool find_homes = os::vma_queries_are_cheap();
  for (std::size_t k = 0; k < n; ++k) {
    const FaultRange& r = ranges[k];
    if (find_homes && r.kernel && !(r.start >= home.start && r.start < home.end)) {
      home = os::Vma{};
      if (detail::query(r.start, r.start + kPageSize, vmas.list) && !vmas.list.empty() &&
          vmas.list[0].start <= r.start)
        home = vmas.list[0];
    }
    lo = std::min(lo, window_start(r, home.start < home.end ? home.start : 0));
    hi = std::max(hi, window_end(r, home.start < home.end ? home.end : std::uintptr_t{1} << 57));
  }
  if (!lock_with_map(lo, hi, vmas.list)) {
    for (std::size_t k = 0; k < n; ++k) {
      outcomes[k].error = encode(Errc::fault);
      outcomes[k].error_addr = ranges[k].start;
    }
    return;
  }
  Locked lock(lock_, Locked::adopt);
  // Writes drop read-only copies first (I5). Under mprotect tracking that changes the
  // protection of the pages, so the map is read again (under the lock, as lock_with_map does
  // when it cannot get a stable read).
  std::size_t collapsed = 0;
  for (std::size_t k = 0; k < n; ++k) {
    if (!ranges[k].write) continue;
    // A device that writes into a block it copied is updating it: all its copies of the
    // block become the only copies at once (one fault per block, not per page).
    if (upgrade_copies(device, os::block_down(ranges[k].start), os::block_up(ranges[k].end)) > 0)
      note_upgrade(device, ranges[k].start);
    collapsed += collapse_range(ranges[k].start, ranges[k].end, -1);
  }
  if (collapsed > 0 && tracker_->mode() == Tracking::mprotect && !detail::query(lo, hi, vmas.list)) {
    for (std::size_t k = 0; k < n; ++k) {
      outcomes[k].error = encode(Errc::fault);
      outcomes[k].error_addr = ranges[k].start;
    }
    return;
  }
  for (std::size_t k = 0; k < n; ++k) resolve_locked(device, ranges[k], outcomes[k], vmas.list);
}

void Mirror::resolve_locked(std::size_t device, const FaultRange& r, FaultOutcome& o,
                            const os::VmaList& vmas) {
  std::uintptr_t lo = r.ahead_start != 0 ? std::min(r.ahead_start, r.start) : r.start;
  std::uintptr_t hi = r.ahead_end != 0 ? std::max(r.ahead_end, r.end) : r.end;
  std::uintptr_t stop = r.end;
  for (std::uintptr_t page = r.start; page < r.end; page += kPageSize) {
    int prot = effective_prot(os::find_vma(vmas, page), page);
    if (prot < 0 || !(prot & PROT_READ)) {
      o.error = encode(Errc::fault);
    } else if (r.write && !(prot & PROT_WRITE)) {
      o.error = encode(Errc::permission);
    } else {
      continue;
    }
    o.error_addr = page;
    stop = page;
    break;
  }
  // Fail fast beyond Options::max_oversubscription: the pages this fault would add to the
  // device's working set must fit under the limit.
  if (mapping_limit_ != 0 && stop > r.start) {
    std::size_t more = 0;
    for (std::uintptr_t page = r.start; page < stop; page += kPageSize)
      more += !(devices_[device]->get_pte(page) & device::pte::kValid);
    if (over_limit(device, more)) {
      o.error = encode(Errc::out_of_memory);
      o.error_addr = r.start;
      o.over_limit = true;
      return;
    }
  }
  // Pages in another device's memory come home first (the kernel's migrate_to_ram for a
  // device-private page of another owner); then the policy may move pages here.
  ReasonScope why(this, r.kernel ? EventReason::device_fault : EventReason::request);
  bring_home_range(r.start, stop, -1, static_cast<int>(device));
  if (r.kernel && stop > r.start) migrate_for_fault(device, r.start, stop, r.write, vmas);
  for (std::uintptr_t page = r.start; page < stop; page += kPageSize)
    map_on_device(device, page, effective_prot(os::find_vma(vmas, page), page));
  // Fault ahead: map the neighbours that need no data movement and no error. Under a policy
  // that migrates on faults, a system page the device may still want to move is left
  // unmapped: mapped in place, it would never fault again.
  if (o.error == 0) {
    for (std::uintptr_t page = lo; page < hi; page += kPageSize) {
      if (page == r.start) {
        page = r.end - kPageSize;
        continue;
      }
      const os::Vma* vma = os::find_vma(vmas, page);
      int prot = effective_prot(vma, page);
      if (prot < 0 || !(prot & PROT_READ)) continue;
      if (devices_[device]->get_pte(page) & device::pte::kValid) continue;
      if (r.kernel && !maps_ahead_in_place(device, page, vma)) continue;
      if (over_limit(device, 1)) break;
      map_on_device(device, page, prot);
    }
  }
}

policy::Policy& Mirror::policy_for(const VaBlock* b, std::size_t i) const {
  std::uint8_t p = b != nullptr ? b->policy[i] : 0;
  return *policies_[p != 0 ? p - 1 : static_cast<std::size_t>(default_profile_)];
}

bool Mirror::maps_ahead_in_place(std::size_t device, std::uintptr_t page,
                                 const os::Vma* vma) const {
  VaBlock* b = find_block(page);
  std::size_t i = os::page_index_in_block(page);
  if (b != nullptr && b->owner[i] != kSystem) return true;  // local, or refused by map_on_device
  if (b != nullptr && b->dup[i] != kSystem) return true;    // a copy here, or in place
  if (!policy_for(b, i).migrates_on_fault()) return true;
  if (vma == nullptr || !migrates_on_fault(*vma)) return true;  // it can only be in place
  if (b == nullptr) return false;
  if (b->pinned & (1u << device)) return true;             // the block did not fit
  // Use-once pages the policy leaves where they are: mapped ahead, a sweep through them takes
  // one fault per block, not one per page.
  if ((b->advice[i] & kAdviseStreaming) && policy_for(b, i).streams_in_place()) return true;
  if (b->accessed_by[i] & (1u << device)) return true;
  if (b->preferred[i] != kNoPreference && b->preferred[i] != static_cast<std::int8_t>(device))
    return true;
  return false;
}

bool Mirror::migrates_on_fault(const os::Vma& vma) const {
  if (!vma.migratable() || vma.main_stack || vma.library_data) return false;
  if (vma.brk_heap && brk_heap_in_place_) return false;
  // A PROT_NONE mapping below: a thread's stack guard, unless it is pages hetmm revoked
  // itself (mprotect tracking makes revoked pages PROT_NONE).
  return vma.guard_below == 0 || tracks(vma.start - kPageSize);
}

bool Mirror::cold(const VaBlock& b, std::size_t device) const {
  std::uint32_t touched = std::max(devices_[device]->touched_epoch(b.base), b.arrived_epoch[device]);
  return touched + 1 < devices_[device]->access_epoch();
}

void Mirror::migrate_for_fault(std::size_t device, std::uintptr_t start, std::uintptr_t end,
                               bool write, const os::VmaList& vmas) {
  auto d = static_cast<std::int8_t>(device);
  std::uint32_t bit = 1u << device;
  std::uint64_t now = clock_ns(device);
  device::DeviceBackend* dev = devices_[device];
  for (std::uintptr_t bs = os::block_down(start); bs < end; bs += os::kBlockSize) {
    std::uintptr_t lo = std::max(start, bs), hi = std::min(end, bs + os::kBlockSize);
    VaBlock* b = get_block(bs);
    std::size_t i0 = os::page_index_in_block(lo);
    policy::Policy& pol = policy_for(b, i0);
    b->device_faults += (hi - lo) / kPageSize;
    if (!pol.migrates_on_fault()) continue;
    if (b->pinned & bit) {
      // Pinned in place because it did not fit; it may move again once the device has room.
      if (dev->capacity_bytes() - dev->used_bytes() < os::kBlockSize) continue;
      b->pinned &= ~bit;
    }
    // Prefetch stays inside the faulting mapping, as the driver clips it to the VMA: the
    // neighbours of a program's buffer may be a library's data or another thread's stack.
    const os::Vma* home = os::find_vma(vmas, lo);
    if (home == nullptr) continue;
    // A system page of the faulting mapping has that mapping's protection: decided once here,
    // not per page (this runs for every block of every fault batch).
    bool home_moves = migrates_on_fault(*home) && (home->prot() & PROT_READ);
    auto in_home = [&](std::uintptr_t page) {
      return home_moves && page >= home->start && page < home->end;
    };
    policy::FaultView v;
    v.device = device;
    v.block = b;
    v.write = write;
    v.epoch = dev->access_epoch();
    v.now_ns = now;
    v.first_touch = b->resident == 0;
    v.preferred_here = b->preferred[i0] == d;
    for (std::uintptr_t page = lo; page < hi; page += kPageSize) v.faulted[os::page_index_in_block(page)] = true;
    for (std::size_t i = 0; i < os::kPagesPerBlock; ++i) {
      std::uintptr_t page = b->page_addr(i);
      v.resident[i] = b->owner[i] == d || b->dup[i] == d;
      v.thrashing[i] = policy::thrashing(*b, i, now, thrashing_params_);
      if (b->owner[i] != kSystem) continue;  // another device's pages are never taken by faults
      if (b->dup[i] != kSystem) continue;    // copied already (here, or read in place)
      if (b->accessed_by[i] & bit) continue;
      if (b->preferred[i] != kNoPreference && b->preferred[i] != d) continue;
      v.movable[i] = in_home(page);
    }
    policy::FaultPlan plan;
    pol.plan(v, plan);
    if (plan.throttle_ns)
      counters_[device].throttle_ns.fetch_add(plan.throttle_ns, std::memory_order_relaxed);
    if (plan.throttled)
      emit(EventKind::pin, EventReason::thrashing, static_cast<int>(device), kSystem, kSystem,
           lo, hi - lo);
    if (plan.in_place) {
      b->pinned |= bit;
      maybe_pinned_ |= bit;
      emit(EventKind::pin, EventReason::thrashing, static_cast<int>(device), kSystem, kSystem, bs,
           os::kBlockSize);
      continue;
    }
    if (kFaultedPagesOnly) {
      plan.migrate &= v.faulted;
      plan.prefetch.reset();
      plan.ahead_blocks = 0;
    }
    policy::PageMask want = plan.migrate & v.movable & ~v.resident;
    if (want.none()) continue;
    // Room: free frames, then eviction (of cold blocks only, unless the policy evicts warm
    // ones too). Prefetch goes first when room is short; a policy that pins when full maps
    // the block in place rather than evicting what the device is using.
    keep_start_ = bs;
    keep_end_ = bs + os::kBlockSize;
    fault_eviction_ = !pol.faults_evict_warm_blocks();
    auto free_pages = [&] { return (dev->capacity_bytes() - dev->used_bytes()) / kPageSize; };
    std::size_t need = want.count();
    if (free_pages() < need) evict(device, need - free_pages());
    if (free_pages() < need && pol.pins_when_full()) {
      // All or nothing: a block paged in piece by piece takes a fault per piece.
      need = ~std::size_t{0};
    } else if (free_pages() < need) {
      want &= ~plan.prefetch;
      need = want.count();
      plan.ahead_blocks = 0;
    }
    if (free_pages() < need && pol.pins_when_full()) {
      fault_eviction_ = false;
      keep_start_ = keep_end_ = 0;
      b->pinned |= bit;
      maybe_pinned_ |= bit;
      emit(EventKind::pin, EventReason::thrashing, static_cast<int>(device), kSystem, kSystem, bs,
           os::kBlockSize);
      continue;
    }
    bool oom = false;
    // Read faults on read-mostly pages copy them instead (read duplication).
    // hetmm copies on every read fault: a page the device never writes then leaves its memory
    // for free (the system copy is still valid), and a write turns the copy into the only
    // one without moving data (upgrade_copies).
    // Unless this kernel writes what it reads (it upgraded copies of this mapping already, or
    // the policy saw its stream write): then a copy would cost a second fault per block for
    // nothing. Writes to another mapping say nothing of this one (a kernel that reads weights
    // and writes activations would otherwise take the weights without copies, and write
    // back clean blocks when they are evicted).
    policy::PageMask copy;
    bool writes_follow_reads =
        plan.exclusive || (upgraded_epoch_[device] == dev->access_epoch() &&
                           upgraded_at_[device] >= home->start && upgraded_at_[device] < home->end);
    if (!write)
      for (std::size_t i = 0; i < os::kPagesPerBlock; ++i)
        copy[i] = want[i] && !(b->advice[i] & kAdviseStreaming) &&
                  ((b->advice[i] & kAdviseReadMostly) ||
                   (pol.duplicates_reads() && !writes_follow_reads));
    policy::PageMask prefetch_only = plan.prefetch;
    std::size_t moved = migrate_mask(device, b, want & ~copy, vmas, &oom, &prefetch_only,
                                     plan.prefetch_reason);
    for (std::size_t i = 0; i < os::kPagesPerBlock && !oom;) {
      if (!copy[i]) {
        ++i;
        continue;
      }
      const os::Vma* vma = os::find_vma(vmas, b->page_addr(i));
      std::size_t j = i + 1;
      while (j < os::kPagesPerBlock && copy[j] && b->page_addr(j) < vma->end) ++j;
      moved += duplicate_run(device, b->page_addr(i), b->page_addr(j), *vma, &oom);
      i = j;
    }
    b->pages_in += moved;
    // Stream prefetch: whole blocks ahead, only into free or cold memory.
    for (int k = 1; k <= std::abs(plan.ahead_blocks) && !oom; ++k) {
      std::uintptr_t nb = plan.ahead_blocks > 0 ? bs + k * os::kBlockSize : bs - k * os::kBlockSize;
      if (nb >= (std::uintptr_t{1} << 57) || nb == 0) break;
      VaBlock* next = get_block(nb);
      // A stream of writes will write the copies it holds ahead as well: they become its own
      // now (no data moves), not one upgrade fault per block later.
      if (write && next->duplicated > 0) {
        std::uintptr_t lo_ahead = std::max(nb, home->start);
        std::uintptr_t hi_ahead = std::min(nb + os::kBlockSize, home->end);
        if (lo_ahead < hi_ahead && upgrade_copies(device, lo_ahead, hi_ahead) > 0)
          note_upgrade(device, lo_ahead);
      }
      policy::PageMask m;
      for (std::size_t i = 0; i < os::kPagesPerBlock; ++i) {
        std::uintptr_t page = next->page_addr(i);
        // Pages with a device's copy are not the system's to move: migrate_run_in would
        // overwrite the copy's frame and leave it half-owned (found as frames freed twice and
        // pages of one array read from another's frames, in JIT kernels' tests).
        if (next->owner[i] != kSystem || next->dup[i] != kSystem || (next->accessed_by[i] & bit))
          continue;
        if (next->preferred[i] != kNoPreference && next->preferred[i] != d) continue;
        if (next->advice[i] & kAdviseStreaming) continue;
        m[i] = in_home(page);
      }
      if (m.none()) continue;
      keep_start_ = std::min(bs, nb);
      keep_end_ = std::max(bs, nb) + os::kBlockSize;
      fault_eviction_ = true;  // prefetch never evicts what is in use
      if (free_pages() < m.count()) evict(device, m.count() - free_pages());
      if (free_pages() < m.count()) break;
      ReasonScope ahead(this, EventReason::stream_prefetch);
      next->pages_in += migrate_mask(device, next, m, vmas, &oom);
      // Mapped at once, as the faulting block's pages are: the stream is about to use them,
      // and each first touch would otherwise be a fault of its own.
      for (std::size_t i = 0; i < os::kPagesPerBlock; ++i) {
        if (!m[i] || next->owner[i] != d) continue;
        std::uintptr_t page = next->page_addr(i);
        if (dev->get_pte(page) & device::pte::kValid) continue;
        if (over_limit(device, 1)) break;
        map_on_device(device, page, effective_prot(os::find_vma(vmas, page), page));
      }
    }
    fault_eviction_ = false;
    keep_start_ = keep_end_ = 0;
  }
}

std::size_t Mirror::migrate_mask(std::size_t device, VaBlock* b, const policy::PageMask& m,
                                 const os::VmaList& vmas, bool* oom,
                                 const policy::PageMask* prefetch, EventReason prefetch_reason) {
  std::size_t moved = 0;
  std::uint64_t now = clock_ns(device);
  for (std::size_t i = 0; i < os::kPagesPerBlock && !*oom;) {
    if (!m[i]) {
      ++i;
      continue;
    }
    std::uintptr_t page = b->page_addr(i);
    const os::Vma* vma = os::find_vma(vmas, page);
    std::size_t j = i + 1;
    while (j < os::kPagesPerBlock && m[j] && b->page_addr(j) < vma->end) ++j;
    // A run nobody faulted on is a prefetch (for the event stream).
    bool ahead = prefetch != nullptr;
    for (std::size_t k = i; k < j && ahead; ++k) ahead = (*prefetch)[k];
    ReasonScope why(this, ahead ? prefetch_reason : move_reason_);
    std::size_t n = migrate_run_in(device, page, b->page_addr(i) + (j - i) * kPageSize, *vma, oom);
    policy::note_migration(*b, i, n, now, thrashing_params_);
    moved += n;
    i = j;
  }
  return moved;
}

}  // namespace hetmm::core

namespace hetmm::core {

void Mirror::before_launch(std::size_t device) {
  // Blocks pinned in place because the working set did not fit never fault again, so the
  // decision is revisited here, once per kernel: when blocks the device holds went cold (not
  // used by the kernel that ran last) while pinned blocks stayed in use, the pinned ones are
  // unmapped; their next faults migrate them, evicting the cold ones.
  std::uint32_t bit = 1u << device;
  auto d = static_cast<std::int8_t>(device);
  device::DeviceBackend* dev = devices_[device];
  Locked lock(lock_);
  // Launch cost must not grow with the mirrored address space: the walks below run only while
  // some block may be pinned for this device (the bit is set with every pin, cleared here).
  if (!(maybe_pinned_ & bit)) return;
  std::uint32_t last = dev->access_epoch();  // the epoch of the kernel that ran last
  bool any_pinned = false;
  blocks_.for_each([&](VaBlock& b) { any_pinned |= (b.pinned & bit) != 0; });
  if (!any_pinned) {
    maybe_pinned_ &= ~bit;
    return;
  }
  std::size_t room = (dev->capacity_bytes() - dev->used_bytes()) / kPageSize;
  blocks_.for_each([&](VaBlock& b) {
    if (b.resident == 0 && b.duplicated == 0) return;
    if (std::max(dev->touched_epoch(b.base), b.arrived_epoch[device]) >= last) return;
    for (std::size_t i = 0; i < os::kPagesPerBlock; ++i) room += b.owner[i] == d || b.dup[i] == d;
  });
  // Access counters: the pinned blocks the last kernel used go first by the bytes it accessed
  // in place there, so that when room is short it goes to the hottest (the counts are taken,
  // and so reset, for every pinned block each time).
  struct Candidate {
    std::uint64_t traffic;
    VaBlock* block;
  };
  std::pmr::vector<Candidate> hot{os::runtime_memory()};
  blocks_.for_each([&](VaBlock& b) {
    if (!(b.pinned & bit)) return;
    std::uint64_t traffic = dev->take_in_place_traffic(b.base);
    if (dev->touched_epoch(b.base) < last) return;  // not in use either
    hot.push_back(Candidate{traffic, &b});
  });
  // std::sort works in place: std::stable_sort may take a buffer from malloc, and a state-lock
  // holder must not (a heap page may be device-resident: under mprotect tracking the holder's
  // own fault on it cannot be served, and the process died of SIGSEGV).
  std::sort(hot.begin(), hot.end(), [](const Candidate& a, const Candidate& b) {
    return a.traffic != b.traffic ? a.traffic > b.traffic : a.block->base < b.block->base;
  });
  for (const Candidate& c : hot) {
    if (room < os::kPagesPerBlock) break;
    c.block->pinned &= ~bit;
    lock_.begin_invalidate();
    dev->invalidate(c.block->base, c.block->base + os::kBlockSize);
    room -= os::kPagesPerBlock;
    // Its in-place mappings go: the next access faults, and the fault migrates it.
    emit(EventKind::invalidate, EventReason::access_counter, static_cast<int>(device), kSystem,
         kSystem, c.block->base, os::kBlockSize);
  }
}

}  // namespace hetmm::core
