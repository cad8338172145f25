#include "core/mirror.hpp"
#include "base/fault_injector.hpp"
#include "core/mirror_internal.hpp"
#include "telemetry/event_log.hpp"

#include "os/arena.hpp"
#include "os/page.hpp"
#include "os/pagemap.hpp"
#include "os/safe_access.hpp"
#include "os/syscalls.hpp"

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sys/mman.h>
#include <system_error>

namespace hetmm::core {

using device::FaultOutcome;
using device::FaultRange;
using os::kPageSize;
using detail::encode;
using detail::Locked;
using detail::query;
using detail::Vmas;

namespace {
// The calling thread's id, cached. A forked child's only thread inherits its parent's cache,
// which names another process's thread: forget_current_tid() clears it in the child.
thread_local pid_t t_tid __attribute__((tls_model("initial-exec"))) = 0;
}  // namespace

pid_t current_tid() {
  if (t_tid == 0) t_tid = os::sys_gettid();
  return t_tid;
}

void forget_current_tid() { t_tid = 0; }

namespace {

// hmm_range_fault callers bound their retry loop by time (HMM_RANGE_DEFAULT_TIMEOUT); we bound
// the optimistic part by count and then fall back to reading the map under the lock.
constexpr int kOptimisticTries = 4;

// A failed copy-engine transfer (only ever injected on the sim device, whose copies are
// memcpy) is tried again a few times before the caller falls back.
constexpr int kCopyTries = 4;
template <class Copy>
bool copy_with_retry(Copy copy) {
  for (int i = 0; i < kCopyTries; ++i)
    if (copy()) return true;
  return false;
}

// Passes of bring_home_fully: each retries what transient failures left behind; a page that
// fails this many times in a row stays on its device (still revoked, never lost).
constexpr int kHomePasses = 16;

}  // namespace

Mirror::Mirror(HostTracker* tracker, std::size_t device_count, PolicyProfile policy,
               const UvmParameters& params)
    : tracker_(tracker), ndevices_(device_count), default_profile_(policy),
      thrashing_params_(params) {
  for (auto p : {PolicyProfile::hetmm, PolicyProfile::uvm, PolicyProfile::in_place})
    policies_[static_cast<std::size_t>(p)] = policy::make_policy(p, params);
  counters_ = static_cast<MirrorCounters*>(os::runtime_memory()->allocate(
      sizeof(MirrorCounters) * (device_count ? device_count : 1), alignof(MirrorCounters)));
  for (std::size_t i = 0; i < device_count; ++i) new (&counters_[i]) MirrorCounters();
  staging_ = static_cast<std::byte*>(os::map_runtime_memory(os::kBlockSize));
  frames_ = static_cast<std::uint32_t*>(
      os::map_runtime_memory(os::kPagesPerBlock * sizeof(std::uint32_t)));
  bits_ = static_cast<std::uint8_t*>(os::map_runtime_memory(os::kPagesPerBlock));
  lock_.set_deferred_work(&Mirror::drain_events, this);
}

std::uint64_t Mirror::clock_ns(std::size_t device) const {
  const LinkProfile& l = link_;
  if (l.bandwidth_gbs <= 0 && l.latency_us <= 0 && l.fault_us <= 0 && l.local_bandwidth_gbs <= 0)
    return policy::monotonic_ns();
  return static_cast<std::uint64_t>(modeled_ns(device));
}

double Mirror::modeled_ns(std::size_t device) const {
  const LinkProfile& l = link_;
  const MirrorCounters& c = counters_[device];
  const device::DeviceBackend::ModelInputs m = devices_[device]->model_inputs();
  auto over = [](double bytes, double gbs) { return gbs > 0 ? bytes / gbs : 0.0; };  // ns
  const double ns =
      static_cast<double>(c.link_transfers.load(std::memory_order_relaxed)) * l.latency_us * 1e3 +
      over(static_cast<double>(c.link_bytes.load(std::memory_order_relaxed)), l.bandwidth_gbs) +
      static_cast<double>(m.fault_batches) * l.fault_us * 1e3 +
      over(static_cast<double>(m.in_place_bytes), l.bandwidth_gbs) +
      over(static_cast<double>(m.local_bytes), l.local_bandwidth_gbs) +
      static_cast<double>(c.throttle_ns.load(std::memory_order_relaxed));
  return ns;
}

Mirror::~Mirror() {
  for (auto* p : policies_) policy::destroy_policy(p);
  os::unmap_runtime_memory(staging_, os::kBlockSize);
  os::unmap_runtime_memory(frames_, os::kPagesPerBlock * sizeof(std::uint32_t));
  os::unmap_runtime_memory(bits_, os::kPagesPerBlock);
  for (std::size_t i = 0; i < ndevices_; ++i) counters_[i].~MirrorCounters();
  os::runtime_memory()->deallocate(counters_, sizeof(MirrorCounters) * (ndevices_ ? ndevices_ : 1),
                                   alignof(MirrorCounters));
}

void Mirror::attach(std::size_t index, device::DeviceBackend* device) { devices_[index] = device; }

void Mirror::emit(EventKind kind, EventReason reason, int device, int from, int to,
                  std::uintptr_t addr, std::uint64_t bytes) const {
  if (event_log_ == nullptr) return;
  auto where = [](int d) {
    return d < 0 ? Location::system() : Location::device(static_cast<std::size_t>(d));
  };
  event_log_->record(kind, reason, device, where(from), where(to), addr, bytes);
}

VaBlock* Mirror::get_block(std::uintptr_t addr) {
  return blocks_.get_or_create(addr >> os::kBlockShift,
                               [&] { return os::arena_new<VaBlock>(os::block_down(addr)); });
}

bool Mirror::copied(std::uintptr_t addr) const {
  VaBlock* b = find_block(addr);
  return b != nullptr &&
         (b->flags[os::page_index_in_block(addr)].load(std::memory_order_acquire) & kDuplicated);
}

bool Mirror::tracks(std::uintptr_t addr) const {
  VaBlock* b = find_block(addr);
  if (b == nullptr) return false;
  // seq_cst: the userfaultfd handler's side of HostTracker::quiesce (uffd_tracker.cpp).
  return (b->flags[os::page_index_in_block(addr)].load(std::memory_order_seq_cst) &
          (kRevoked | kMigrating | kDuplicated)) != 0;
}

void Mirror::invalidate_all(std::uintptr_t start, std::uintptr_t end) {
  // The interval-notifier step: bump the sequence so that concurrent resolvers retry, then tear
  // down every device mapping of the range (each device waits out its TLB shootdown).
  lock_.begin_invalidate();
  for (std::size_t d = 0; d < ndevices_; ++d) devices_[d]->invalidate(start, end);
}

int Mirror::effective_prot(const os::Vma* vma, std::uintptr_t page) const {
  // A revoked page's VMA may show PROT_NONE (mprotect tracking): what the program asked for is
  // recorded in the block.
  VaBlock* b = find_block(page);
  if (b != nullptr) {
    std::size_t i = os::page_index_in_block(page);
    // Revoked pages, and copied pages (write-protected), keep what the program asked for here.
    if (b->owner[i] != kSystem || b->dup[i] != kSystem) return b->prot[i];
  }
  if (vma == nullptr || vma->special) return -1;
  return vma->prot();
}

bool Mirror::map_on_device(std::size_t device, std::uintptr_t page, int prot) {
  // Writable whenever the page may be written, whatever the fault asked: saves a second fault.
  VaBlock* b = get_block(page);
  std::size_t i = os::page_index_in_block(page);
  // A page in another device's memory (left there by a full device, a failed copy or a
  // transient failure) is never mapped: an in-place mapping of a revoked page would have a
  // worker fault on the CPU side while an invalidation holding the state lock waits for it
  // (found by fault injection: Injected.EverythingAtOnce). The device faults on it again.
  if (b->owner[i] != kSystem && b->owner[i] != static_cast<std::int8_t>(device)) return false;
  bool writable = (prot & PROT_WRITE) != 0;
  std::uint64_t entry;
  if (b->dup[i] == static_cast<std::int8_t>(device)) {
    // The device's own read-only copy (I5): a write faults and drops it.
    b->used[device] = ++use_clock_;
    auto* host = devices_[device]->frame_host_address(b->frame[i]);
    entry = device::pte::make(reinterpret_cast<std::uintptr_t>(host), false, true);
  } else if (b->owner[i] == static_cast<std::int8_t>(device)) {
    b->used[device] = ++use_clock_;
    auto* host = devices_[device]->frame_host_address(b->frame[i]);
    entry = device::pte::make(reinterpret_cast<std::uintptr_t>(host), writable, true);
  } else {
    // A page another device holds a copy of is write-protected (I5): mapped writable in
    // place, a write through device_copy, under this lock, would wait on a fault that only
    // this lock's holder can serve. Read-only, a write faults to the device and drops copies.
    if (b->dup[i] != kSystem) writable = false;
    entry = device::pte::make(page, writable, false);
  }
  devices_[device]->set_pte(page, entry);
  b->mapped_devices |= 1u << device;
  return true;
}

bool Mirror::lock_with_map(std::uintptr_t start, std::uintptr_t end, os::VmaList& vmas) {
  // Optimistic: read the memory map without the lock, then check that no invalidation ran
  // meanwhile (read_begin/read_retry). Under a storm of invalidations that could livelock, so
  // after a few tries the map is read with the lock held, which always succeeds.
  for (int attempt = 0; attempt < kOptimisticTries; ++attempt) {
    std::uint64_t seq = read_begin();
    if (!query(start, end, vmas)) return false;
    lock_.lock();
    if (!read_retry(seq)) return true;
    lock_.unlock();
  }
  lock_.lock();
  if (query(start, end, vmas)) return true;
  lock_.unlock();
  return false;
}

bool Mirror::acquire(bool try_only) {
  if (!try_only) {
    lock_.lock();
    return true;
  }
  return lock_.try_lock();
}

bool Mirror::device_copy(std::size_t device, std::uintptr_t addr, std::size_t len, void* bounce,
                         bool write, std::uintptr_t* missing, Status* status) {
  Locked lock(lock_);
  device::DeviceBackend* dev = devices_[device];
  std::uintptr_t end = addr + len;
  for (std::uintptr_t page = os::page_down(addr); page < end; page += kPageSize) {
    std::uint64_t e = dev->get_pte(page);
    if (!(e & device::pte::kValid) || (write && !(e & device::pte::kWrite))) {
      *missing = page;
      return false;
    }
  }
  auto* b = static_cast<std::byte*>(bounce);
  for (std::uintptr_t a = addr; a < end;) {
    std::uintptr_t page = os::page_down(a);
    std::size_t n = std::min<std::uintptr_t>(end, page + kPageSize) - a;
    std::uint64_t e = dev->get_pte(page);
    auto* host = reinterpret_cast<std::byte*>((e & device::pte::kAddrMask) | (a - page));
    std::byte* dst = write ? host : b;
    const std::byte* src = write ? b : host;
    if (e & device::pte::kLocal) {
      std::memcpy(dst, src, n);
    } else if (hetmm_safe_copy(dst, src, n) != 0) {
      status->fail(Errc::fault, page);
      return false;
    }
    a += n;
    b += n;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Migration
// ---------------------------------------------------------------------------------------------
std::size_t Mirror::migrate_to_device(std::size_t device, std::uintptr_t start, std::uintptr_t end,
                                      Status* status) {
  Vmas vmas;
  if (!lock_with_map(start, end, vmas.list)) {
    status->fail(Errc::fault, start);
    return 0;
  }
  Locked lock(lock_, Locked::adopt);
  // Validate everything first: a failed call changes nothing.
  std::size_t eligible = 0, already = 0;
  for (std::uintptr_t page = start; page < end; page += kPageSize) {
    const os::Vma* vma = os::find_vma(vmas.list, page);
    int prot = effective_prot(vma, page);
    if (prot < 0 || !(prot & PROT_READ)) {
      status->fail(Errc::fault, page);
      return 0;
    }
    std::int8_t owner = owner_of(page);
    if (owner == static_cast<std::int8_t>(device)) ++already;
    else if (owner != kSystem || vma->migratable()) ++eligible;
  }
  if (eligible == 0 && already == 0) {
    status->fail(Errc::not_found, start);
    return 0;
  }
  if (mapping_limit_ != 0) {
    std::size_t more = 0;
    for (std::uintptr_t page = start; page < end; page += kPageSize)
      more += !(devices_[device]->get_pte(page) & device::pte::kValid);
    if (over_limit(device, more)) {
      status->fail(Errc::out_of_memory, start);
      status->over_limit = true;
      return 0;
    }
  }
  // A page moves with its only copy. Dropping copies changes page protections under mprotect
  // tracking: the map is then read again (under the lock, as lock_with_map may).
  if (collapse_range(start, end, -1) > 0 && tracker_->mode() == Tracking::mprotect &&
      !query(start, end, vmas.list)) {
    status->fail(Errc::fault, start);
    return 0;
  }
  bool oom = false;
  std::size_t moved = 0;
  // Eviction makes room for this request, never at its own expense.
  keep_start_ = start;
  keep_end_ = end;
  // Device to device: one page at a time (frames of two pools rarely line up).
  for (std::uintptr_t page = start; page < end && !oom; page += kPageSize) {
    std::int8_t owner = owner_of(page);
    if (owner != kSystem && owner != static_cast<std::int8_t>(device)) {
      int m = move_between_devices(device, page);
      if (m == 0) oom = true;
      if (m > 0) moved += static_cast<std::size_t>(m);
    }
  }
  // System to device: runs of consecutive system pages of one migratable VMA within a block.
  for (std::uintptr_t page = start; page < end && !oom;) {
    const os::Vma* vma = os::find_vma(vmas.list, page);
    bool on_system = owner_of(page) == kSystem;
    if (!on_system || !vma->migratable()) {
      page += kPageSize;
      continue;
    }
    std::uintptr_t run_end = page + kPageSize;
    std::uintptr_t limit = std::min({end, vma->end, os::block_down(page) + os::kBlockSize});
    while (run_end < limit && owner_of(run_end) == kSystem) run_end += kPageSize;
    moved += migrate_run_in(device, page, run_end, *vma, &oom);
    page = run_end;
  }
  keep_start_ = keep_end_ = 0;
#ifndef NDEBUG
  check_accounting("migrate_to_device");
#endif
  if (moved == 0 && eligible > 0 && oom) {
    status->fail(Errc::out_of_memory, start);
    return 0;
  }
  std::size_t readable = 0;
  for (std::uintptr_t page = start; page < end; page += kPageSize) {
    int prot = effective_prot(os::find_vma(vmas.list, page), page);
    if (prot >= 0 && (prot & PROT_READ) && map_on_device(device, page, prot)) ++readable;
  }
  return readable;
}

std::uintptr_t Mirror::system_only_end(std::uintptr_t start, std::uintptr_t end) const {
  // The precondition of migrate_run_in and duplicate_run: each page's only copy is the system
  // page. A run that broke it would overwrite the frame of a device's copy or of a resident
  // page (a frame then owned twice: freed twice, handed to two pages). Callers check it; this
  // stops a run at the first page that breaks it, and debug builds say who broke it.
  VaBlock* b = find_block(start);
  if (b == nullptr) return end;
  for (std::uintptr_t page = start; page < end; page += kPageSize) {
    std::size_t i = os::page_index_in_block(page);
    if (b->owner[i] != kSystem || b->dup[i] != kSystem) {
      assert(false && "a run to migrate or copy holds a page that is not the system's alone");
      return page;
    }
  }
  return end;
}

void Mirror::zero_unless_arrived(device::DeviceBackend* dev, std::size_t k, std::size_t run) {
  // frames_[k..k+run) are consecutive pages of one chunk of movable device memory.
  std::uint8_t here[os::kPagesPerBlock];
  os::query_pages(reinterpret_cast<std::uintptr_t>(dev->frame_host_address(frames_[k])), run,
                  here);
  for (std::size_t j = 0; j < run; ++j)
    if (!(here[j] & (os::kPagePresent | os::kPageSwapped))) dev->zero_frames(frames_ + k + j, 1);
}

std::size_t Mirror::migrate_run_in(std::size_t device, std::uintptr_t start, std::uintptr_t end,
                                   const os::Vma& vma, bool* out_of_memory) {
  device::DeviceBackend* dev = devices_[device];
  end = system_only_end(start, end);
  std::size_t n = (end - start) / kPageSize;
  if (n == 0) return 0;
  // A whole block of writable private memory moves by remapping when the device's memory
  // allows it (one PMD for a huge page: no copy, no revocation, no REMOVE event). The pool's
  // page protection is read-write, and UFFDIO_MOVE wants both sides alike.
  // Pages advised write_only must reach the device as zeros (their data is not fetched), which
  // a move would not give.
  VaBlock* b = get_block(start);
  std::size_t i0 = os::page_index_in_block(start);
  bool movable = n == os::kPagesPerBlock && dev->movable_memory() && vma.read && vma.write &&
                 !vma.exec;
  for (std::size_t k = 0; k < n && movable; ++k)
    movable = !(b->advice[i0 + k] & kAdviseWriteOnly);
  bool by_move = false;
  if (movable) {
    reserve_frames(device, n);
    std::uint32_t first = 0;
    if (dev->alloc_block_frames(&first, frame_near(device, start))) {
      for (std::size_t k = 0; k < n; ++k) frames_[k] = first + static_cast<std::uint32_t>(k);
      by_move = true;
    }
  }
  if (!by_move) {
    n = take_frames(device, start, n, out_of_memory);
    end = start + n * kPageSize;
    if (n == 0) return 0;
  }
  std::size_t len = end - start;
  // Pages [0, kept) are in device memory for good (a move cannot be undone here); the rest
  // go back to being the system's, frames freed.
  auto give_up = [&](std::size_t kept, std::uintptr_t thaw_from, bool thaw) {
      if (thaw) tracker_->thaw(thaw_from, end - thaw_from, vma.prot());
    for (std::size_t k = kept; k < n; ++k) {
      dev->free_frame(frames_[k]);
      b->flags[i0 + k].store(0, std::memory_order_release);
    }
    return kept;
  };
  // 1. No device may keep an in-place mapping of a page whose CPU copy is about to go. This
  //    comes first: a worker inside an in-place access may be blocked in a userfaultfd fault on
  //    an untouched page, which the handler serves without the lock only while the page is not
  //    marked; marking first would let the shootdown wait for a worker that waits for us.
  invalidate_all(start, end);
  // 2. Mark the pages: from here a CPU fault on them waits for the state lock.
  for (std::size_t k = 0; k < n; ++k) b->flags[i0 + k].store(kMigrating, std::memory_order_seq_cst);
  //    A zero page or write access the handler decided on before the mark lands first.
  tracker_->quiesce();
  if (tracker_->prepare(start, len, vma) < 0) return give_up(0, start, false);
  // 3a. By move: each page leaves the CPU's page table as it lands in device memory, atomically
  //     (a CPU write lands before, and moves with the page, or faults after and waits for the
  //     lock). A short move (a page shared after fork, pinned, ...) leaves the rest to copy.
  std::size_t moved = 0;
  if (by_move) {
    long r = dev->move_block_in(frames_[0], reinterpret_cast<const void*>(start));
    moved = r > 0 ? static_cast<std::size_t>(r) / kPageSize : 0;
    // A short move's count is not the truth: Linux 6.18's UFFDIO_MOVE, failing part way under
    // memory load (compaction, khugepaged), reported fewer bytes than it had moved, and the
    // pages it left out of the count, already in the chunk, were zero-filled as untouched
    // (found by the load stage: ZeroCopy.ConcurrentCpuWritesAreNeverLost, 1 run in 20). What is
    // no longer in the CPU's page table moved: into the chunk, or as a hole (untouched, which
    // reads as zeros there too). A CPU touch cannot bring one back meanwhile: the pages are
    // marked, and their faults wait for the state lock.
    if (moved < n) {
      os::query_pages(start + moved * kPageSize, n - moved, bits_);
      std::size_t gone = 0;
      while (moved + gone < n && !(bits_[gone] & (os::kPagePresent | os::kPageSwapped))) ++gone;
      moved += gone;
    }
    if (moved == n) counters_[device].blocks_moved_in.fetch_add(1, std::memory_order_relaxed);
  }
  // 3b. By copy: stop CPU writes, then copy what is there (untouched pages are zero-filled, not
  //     read: a read would fault them in), and revoke the CPU copy: the next CPU touch faults
  //     into cpu_fault().
  if (moved < n) {
    std::uintptr_t rest = start + moved * kPageSize;
    if (tracker_->freeze(rest, end - rest) < 0) n = give_up(moved, rest, false);
  }
  if (moved < n) {
    std::uintptr_t rest = start + moved * kPageSize;
    std::size_t rest_len = end - rest, rest_n = n - moved;
    os::query_pages(rest, rest_n, bits_);
    // Pages advised write_only are not read either: the device overwrites them.
    auto has_data_at = [&](std::size_t k) {
      return (bits_[k - moved] & (os::kPagePresent | os::kPageSwapped)) &&
             !(bits_[k - moved] & os::kPageZero) && !(b->advice[i0 + k] & kAdviseWriteOnly);
    };
    bool ok = true;
    for (std::size_t k = moved; k < n && ok;) {
      bool has_data = has_data_at(k);
      std::size_t run = 1;
      while (k + run < n && has_data_at(k + run) == has_data) ++run;
      if (has_data) {
        // A failed copy leaves the run in system memory, where the device maps it in place.
        auto* from = reinterpret_cast<void*>(start + k * kPageSize);
        ok = copy_with_retry([&] { return dev->copy_to_frames(frames_ + k, run, from); });
      } else if (by_move) {
        // After a short move, a page may be missing here because it went into the chunk
        // (above): only what is in neither place is untouched.
        zero_unless_arrived(dev, k, run);
      } else {
        dev->zero_frames(frames_ + k, run);
      }
      k += run;
    }
    if (!ok || tracker_->revoke(rest, rest_len) < 0) n = give_up(moved, rest, true);
  }
  if (n == 0) return 0;
  end = start + n * kPageSize;
  std::uint64_t birth = clock_.load(std::memory_order_acquire);
  note_arrival(b, device);
  for (std::size_t k = 0; k < n; ++k) {
    b->owner[i0 + k] = static_cast<std::int8_t>(device);
    b->frame[i0 + k] = frames_[k];
    b->prot[i0 + k] = static_cast<std::uint8_t>(vma.prot());
    b->birth[i0 + k] = birth;
    b->flags[i0 + k].store(kRevoked, std::memory_order_release);
  }
  b->resident += static_cast<std::uint32_t>(n);
  bool ahead = move_reason_ == EventReason::density_prefetch ||
               move_reason_ == EventReason::stream_prefetch;
  emit(ahead ? EventKind::prefetch : EventKind::migrate, move_reason_, static_cast<int>(device),
       kSystem, static_cast<int>(device), start, n * kPageSize);
  counters_[device].pages_to_device.fetch_add(n, std::memory_order_relaxed);
  counters_[device].link_transfers.fetch_add(1, std::memory_order_relaxed);
  counters_[device].link_bytes.fetch_add(n * kPageSize, std::memory_order_relaxed);
#ifndef NDEBUG
  check_block(*b);
#endif
  return n;
}

int Mirror::move_between_devices(std::size_t device, std::uintptr_t page) {
  VaBlock* b = get_block(page);
  std::size_t i = os::page_index_in_block(page);
  int from = b->owner[i];
  std::uint32_t frame = 0;
  reserve_frames(device, 1);
  if (devices_[device]->alloc_frames(1, &frame) != 1) return 0;
  lock_.begin_invalidate();
  devices_[from]->invalidate(page, page + kPageSize);
  if (!copy_with_retry([&] { return devices_[from]->copy_from_frames(staging_, &b->frame[i], 1); }) ||
      !copy_with_retry([&] { return devices_[device]->copy_to_frames(&frame, 1, staging_); })) {
    // Fallback: the page comes home, and the system-to-device pass that follows moves it.
    devices_[device]->free_frame(frame);
    bring_home_run(page, page + kPageSize, from, nullptr);
    return -1;
  }
  devices_[from]->free_frame(b->frame[i]);
  note_arrival(b, device);
  b->owner[i] = static_cast<std::int8_t>(device);
  b->frame[i] = frame;
  emit(EventKind::migrate, move_reason_, static_cast<int>(device), from, static_cast<int>(device),
       page, kPageSize);
  counters_[device].pages_to_device.fetch_add(1, std::memory_order_relaxed);
  counters_[device].link_transfers.fetch_add(1, std::memory_order_relaxed);
  counters_[device].link_bytes.fetch_add(kPageSize, std::memory_order_relaxed);
  return 1;
}

std::size_t Mirror::bring_home_run(std::uintptr_t start, std::uintptr_t end, int owner,
                                   std::size_t* left, bool counted_before) {
  VaBlock* b = get_block(start);
  std::size_t i0 = os::page_index_in_block(start);
  std::size_t n = (end - start) / kPageSize;
  device::DeviceBackend* dev = devices_[owner];
  for (std::size_t k = 0; k < n; ++k) frames_[k] = b->frame[i0 + k];
  invalidate_all(start, end);
  // Restore straight from device memory when the frames are contiguous and host-visible.
  auto* first = static_cast<const std::byte*>(dev->frame_host_address(frames_[0]));
  const std::byte* src = first;
  for (std::size_t k = 1; k < n && src != nullptr; ++k)
    if (dev->frame_host_address(frames_[k]) != first + k * kPageSize) src = nullptr;
  if (src == nullptr) {
    // A copy-engine failure leaves the pages where they are, still revoked: nothing is lost,
    // and the next CPU touch or bring-home tries again.
    if (!copy_with_retry([&] { return dev->copy_from_frames(staging_, frames_, n); })) {
      if (left) *left += n;
      if (counted_before) {
        counters_[owner].pages_to_system.fetch_sub(n, std::memory_order_relaxed);
        b->pages_out -= n;
      }
      return 0;
    }
    src = staging_;
  }
  std::size_t moved = 0;
  // Pages [k, k + done) are home (or were unmapped behind our back: their device copy is
  // stale and dropped, not counted).
  auto settle_home = [&](std::size_t k, std::size_t done, bool counted) {
    for (std::size_t j = k; j < k + done; ++j) {
      dev->free_frame(frames_[j]);
      b->owner[i0 + j] = kSystem;
      b->flags[i0 + j].store(0, std::memory_order_release);
    }
    b->resident -= static_cast<std::uint32_t>(done);
    if (counted) moved += done;
    if (done == 0) return;
    EventKind kind = move_reason_ == EventReason::eviction    ? EventKind::evict
                     : move_reason_ == EventReason::cpu_fault ? EventKind::cpu_fault
                                                              : EventKind::migrate;
    emit(kind, move_reason_, owner, owner, kSystem, start + k * kPageSize, done * kPageSize);
    counters_[owner].link_transfers.fetch_add(1, std::memory_order_relaxed);
    counters_[owner].link_bytes.fetch_add(done * kPageSize, std::memory_order_relaxed);
    tracker_->settle(start + k * kPageSize, done * kPageSize);
  };
  std::size_t k = 0;
  // A whole block that sits in one chunk of movable device memory goes home by remapping (one
  // PMD when it came in as one); the chunk is empty again for the next block. Runs of a block
  // (CPU faults) are copied: moving them would split the chunk's huge page for good.
  bool whole_chunk = n == os::kPagesPerBlock && src == first &&
                     frames_[0] % os::kPagesPerBlock == 0 && dev->movable_memory();
  for (std::size_t j = 0; j < n && whole_chunk; ++j)
    whole_chunk = b->prot[i0 + j] == (PROT_READ | PROT_WRITE);
  if (whole_chunk) {
    long r = tracker_->restore_by_move(start, src, n * kPageSize);
    std::size_t done = r > 0 ? static_cast<std::size_t>(r) / kPageSize : 0;
    if (done == n) {
      dev->block_moved_out(frames_[0]);
      counters_[owner].blocks_moved_out.fetch_add(1, std::memory_order_relaxed);
    }
    settle_home(0, done, true);
    k = done;
  }
  while (k < n) {
    std::size_t run = 1;
    while (k + run < n && b->prot[i0 + k + run] == b->prot[i0 + k]) ++run;
    std::size_t settled = 0;
    int rc = tracker_->restore(start + k * kPageSize, src + k * kPageSize, run * kPageSize,
                               b->prot[i0 + k], &settled);
    // The rest, after a transient failure, stays on the device, revoked.
    std::size_t done = std::min(run, settled / kPageSize);
    settle_home(k, done, rc != -ENOENT && rc != -ESTALE);
    if (left) *left += run - done;
    k += run;
  }
  if (counted_before) {
    counters_[owner].pages_to_system.fetch_sub(n - moved, std::memory_order_relaxed);
    b->pages_out -= n - moved;
  } else {
    counters_[owner].pages_to_system.fetch_add(moved, std::memory_order_relaxed);
    b->pages_out += moved;
  }
#ifndef NDEBUG
  check_block(*b);
#endif
  return moved;
}

std::size_t Mirror::bring_home_range(std::uintptr_t start, std::uintptr_t end, int only, int skip,
                                     std::size_t* left) {
  std::size_t moved = 0;
  for (std::uintptr_t block = os::block_down(start); block < end; block += os::kBlockSize) {
    VaBlock* b = find_block(block);
    if (b == nullptr || b->resident == 0) continue;
    std::uintptr_t lo = std::max(start, block), hi = std::min(end, block + os::kBlockSize);
    for (std::uintptr_t page = lo; page < hi;) {
      int owner = b->owner[os::page_index_in_block(page)];
      if (owner == kSystem || (only >= 0 && owner != only) || owner == skip) {
        page += kPageSize;
        continue;
      }
      std::uintptr_t run_end = page + kPageSize;
      while (run_end < hi && b->owner[os::page_index_in_block(run_end)] == owner) run_end += kPageSize;
      moved += bring_home_run(page, run_end, owner, left);
      page = run_end;
    }
  }
  return moved;
}

std::size_t Mirror::migrate_to_system(std::size_t device, std::uintptr_t start, std::uintptr_t end,
                                      Status* status) {
  (void)status;
  Locked lock(lock_);
  collapse_range(start, end, static_cast<int>(device));
  return bring_home_fully(start, end, static_cast<int>(device), -1);
}

std::size_t Mirror::bring_home_fully(std::uintptr_t start, std::uintptr_t end, int only,
                                     int skip, std::size_t* left) {
  std::size_t moved = 0, still = 0;
  for (int pass = 0; pass < kHomePasses; ++pass) {
    still = 0;
    moved += bring_home_range(start, end, only, skip, &still);
    if (still == 0) break;
  }
  if (left) *left = still;
  return moved;
}

void Mirror::release_device(std::size_t device) {
  Locked lock(lock_);
  std::uint32_t bit = 1u << device;
  blocks_.for_each([&](VaBlock& b) {
    if (b.resident > 0) bring_home_fully(b.base, b.base + os::kBlockSize, static_cast<int>(device), -1);
    if (b.duplicated > 0) collapse_range(b.base, b.base + os::kBlockSize, static_cast<int>(device));
    if (b.mapped_devices & bit) {
      devices_[device]->invalidate(b.base, b.base + os::kBlockSize);
      b.mapped_devices &= ~bit;
    }
  });
  lock_.begin_invalidate();
  if (devices_[device]->used_bytes() == 0) devices_[device]->release_memory();
}

void Mirror::bring_all_home() {
  Locked lock(lock_);
  bring_all_home_locked();
}

void Mirror::bring_all_home_locked() {
  blocks_.for_each([&](VaBlock& b) {
    if (b.resident > 0) bring_home_fully(b.base, b.base + os::kBlockSize, -1, -1);
    if (b.duplicated > 0) collapse_range(b.base, b.base + os::kBlockSize, -1);
  });
}

std::size_t Mirror::resident_pages(std::size_t device) {
  Locked lock(lock_);
  std::size_t n = 0;
  blocks_.for_each([&](VaBlock& b) {
    if (b.resident == 0) return;
    for (std::size_t i = 0; i < os::kPagesPerBlock; ++i)
      if (b.owner[i] == static_cast<std::int8_t>(device)) ++n;
  });
  return n;
}

Location Mirror::location(std::uintptr_t addr) {
  Locked lock(lock_);
  std::int8_t owner = owner_of(addr);
  return owner == kSystem ? Location::system() : Location::device(static_cast<std::size_t>(owner));
}

void Mirror::snapshot(std::uintptr_t start, std::size_t npages, PageState* out) {
  Vmas vmas;
  std::uintptr_t end = start + npages * kPageSize;
  // The map and the state as of one moment (the read_begin/read_retry loop): a change between
  // reading the map and taking the lock described pages by a mapping already gone.
  if (!lock_with_map(start, end, vmas.list)) {
    vmas.list.clear();  // unreadable map: every page of the system reports an error
    lock_.lock();
  }
  std::uint8_t bits[os::kPagesPerBlock];
  Locked lock(lock_, Locked::adopt);
  for (std::size_t base = 0; base < npages; base += os::kPagesPerBlock) {
    std::size_t n = std::min(os::kPagesPerBlock, npages - base);
    std::uintptr_t chunk = start + base * kPageSize;
    os::query_pages(chunk, n, bits);
    for (std::size_t k = 0; k < n; ++k) {
      std::uintptr_t page = chunk + k * kPageSize;
      PageState s;
      const os::Vma* vma = os::find_vma(vmas.list, page);
      VaBlock* b = find_block(page);
      std::int8_t owner = b ? b->owner[os::page_index_in_block(page)] : kSystem;
      if (owner != kSystem) {
        int prot = b->prot[os::page_index_in_block(page)];
        s.readable = prot & PROT_READ;
        s.writable = prot & PROT_WRITE;
        s.error = !s.readable;
        s.location = Location::device(static_cast<std::size_t>(owner));
      } else if (vma == nullptr || vma->special) {
        s.error = true;
      } else {
        s.readable = vma->read;
        s.writable = vma->write;
        if (b != nullptr && b->dup[os::page_index_in_block(page)] != kSystem)
          s.writable = b->prot[os::page_index_in_block(page)] & PROT_WRITE;
        s.error = !vma->read;
        bool populated = (bits[k] & (os::kPagePresent | os::kPageSwapped)) != 0;
        s.zero = s.readable && vma->anonymous && !vma->shared &&
                 (!populated || (bits[k] & os::kPageZero));
        s.huge = (bits[k] & os::kPageHuge) != 0;
      }
      out[base + k] = s;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// CPU side
// ---------------------------------------------------------------------------------------------
CpuFault Mirror::cpu_fault(std::uintptr_t addr, bool write, bool try_only) {
  VaBlock* b = find_block(addr);
  if (b == nullptr) return CpuFault::not_ours;
  std::size_t i = os::page_index_in_block(addr);
  if (!(b->flags[i].load(std::memory_order_acquire) & (kRevoked | kMigrating | kDuplicated)))
    return CpuFault::not_ours;
  if (!acquire(try_only)) return CpuFault::busy;
  Locked lock(lock_, Locked::adopt);
  std::uint8_t f = b->flags[i].load(std::memory_order_acquire);
  int owner = b->owner[i];
  if ((f & kDuplicated) && owner == kSystem) {
    // A write to a read-duplicated page: the device copies of its granule go first (I5). A
    // read faults only when the system page went away behind our back (MADV_DONTNEED without
    // a REMOVE event): the copy is stale, it goes too, and the retry reads what Linux gives.
    constexpr std::uintptr_t kGranule = 64 * 1024;
    std::uintptr_t g0 = os::page_down(addr) & ~(kGranule - 1);
    ReasonScope why(this, EventReason::cpu_fault);
    ++b->cpu_faults;  // before the fault is resolved (below: why)
    collapse_range(g0, g0 + kGranule, -1);
    return CpuFault::served;
  }
  if (!(f & kRevoked) || owner == kSystem) return CpuFault::served;  // already home: retry
  int prot = b->prot[i];
  if (!(prot & PROT_READ) || (write && !(prot & PROT_WRITE))) return CpuFault::not_ours;
  // Bring home the run of pages of the same device around addr, within a 64 KiB granule: one
  // copy serves a sequential CPU sweep sixteen times faster than page-at-a-time fault-back.
  // A CPU stream takes more (the stream detector: this fault is on the page right after what
  // the last fault-back brought home, for the second time in a row): the whole block when all
  // of it is on this device (by remapping when it is one chunk of movable device memory: 2 MiB
  // in one move), else the rest of the run up to the block's end, ahead of the faulting thread.
  // A dense sweep pays two 64 KiB faults, then one fault per block. Random touches, and sparse
  // sweeps that touch a word every few pages (whole blocks would ping-pong with a kernel that
  // wants them), stay at 64 KiB.
  constexpr std::uintptr_t kGranule = 64 * 1024;
  std::uintptr_t page = os::page_down(addr);
  const std::uintptr_t block = os::block_down(page);
  const bool adjacent = page == last_cpu_fault_ + kPageSize;
  cpu_stream_ = adjacent ? cpu_stream_ + 1 : 0;
  const bool stream = cpu_stream_ >= 2;
  // A stream's window is the rest of the block, or all of it (one move) when all of it is here.
  std::uintptr_t g0 = page & ~(kGranule - 1), g1 = g0 + kGranule;
  if (stream) {
    g1 = block + os::kBlockSize;
    if (wholly_on(*b, owner, prot)) g0 = block;
  }
  std::uintptr_t lo = page, hi = page + kPageSize;
  while (lo > g0 && b->owner[os::page_index_in_block(lo - kPageSize)] == owner &&
         b->prot[os::page_index_in_block(lo - kPageSize)] == prot)
    lo -= kPageSize;
  while (hi < g1 && b->owner[os::page_index_in_block(hi)] == owner &&
         b->prot[os::page_index_in_block(hi)] == prot)
    hi += kPageSize;
  ReasonScope why(this, EventReason::cpu_fault);
  last_cpu_fault_ = hi - kPageSize;
  // The fault counted before its pages land, as they are (take_home_for_cpu).
  counters_[owner].cpu_faults.fetch_add(1, std::memory_order_relaxed);
  ++b->cpu_faults;
  take_home_for_cpu(*b, lo, hi, owner);
  // A stream that took its whole block takes the next one too, ahead of the faulting thread:
  // the move woke it, and it reads this block while the next one comes home (the fault
  // it would take there costs a handler round trip, and its first touches wait for the move).
  if (stream && lo == block && hi == block + os::kBlockSize) bring_next_block_home(block, owner);
  return CpuFault::served;
}

bool Mirror::wholly_on(const VaBlock& b, int owner, int prot) {
  if (b.resident != os::kPagesPerBlock) return false;
  for (std::size_t k = 0; k < os::kPagesPerBlock; ++k)
    if (b.owner[k] != owner || b.prot[k] != prot) return false;
  return true;
}

void Mirror::take_home_for_cpu(VaBlock& b, std::uintptr_t lo, std::uintptr_t hi, int owner) {
  // Counted before the pages land: the faulting thread resumes as soon as they do, and what it
  // reads of the statistics then must include its pages (counted after, a test saw
  // cpu_faults == 0 right after a fault-back under ASan's slower handler).
  counters_[owner].pages_to_system.fetch_add((hi - lo) / kPageSize, std::memory_order_relaxed);
  b.pages_out += (hi - lo) / kPageSize;
  // What a transient failure leaves faults again (and is taken back from the count).
  bring_home_run(lo, hi, owner, nullptr, /*counted_before=*/true);
  // A CPU fault-back is a migration event for thrashing detection (pages ping-ponging
  // between a kernel and CPU threads).
  policy::note_migration(b, os::page_index_in_block(lo), (hi - lo) / kPageSize,
                         clock_ns(static_cast<std::size_t>(owner)), thrashing_params_);
}

void Mirror::bring_next_block_home(std::uintptr_t block, int owner) {
  const std::uintptr_t next = block + os::kBlockSize;
  VaBlock* n = find_block(next);
  if (n == nullptr || !(n->prot[0] & PROT_READ) || !wholly_on(*n, owner, n->prot[0])) return;
  // Nor a block a migration or a read duplication is at work on: its pages are theirs to settle.
  for (std::size_t k = 0; k < os::kPagesPerBlock; ++k)
    if (n->flags[k].load(std::memory_order_acquire) & (kMigrating | kDuplicated)) return;
  ReasonScope why(this, EventReason::stream_prefetch);
  take_home_for_cpu(*n, next, next + os::kBlockSize, owner);
  // The stream goes on from there: the thread's next fault is past this block.
  last_cpu_fault_ = next + os::kBlockSize - kPageSize;
}

void Mirror::lock_for_fork() {
  lock_.lock_nested();  // fork's prepare takes every runtime's state lock
  ReasonScope why(this, EventReason::host_change);
  bring_all_home_locked();
}

void Mirror::unlock_after_fork() { lock_.unlock(); }

void Mirror::drop_range(std::uintptr_t start, std::uintptr_t end, bool make_accessible,
                        std::uint64_t stamp) {
  for (std::uintptr_t block = os::block_down(start); block < end; block += os::kBlockSize) {
    VaBlock* b = find_block(block);
    if (b == nullptr || b->resident == 0) continue;
    std::uintptr_t lo = std::max(start, block), hi = std::min(end, block + os::kBlockSize);
    for (std::uintptr_t page = lo; page < hi; page += kPageSize) {
      std::size_t i = os::page_index_in_block(page);
      int owner = b->owner[i];
      if (owner == kSystem || b->birth[i] >= stamp) continue;
      devices_[owner]->free_frame(b->frame[i]);
      b->owner[i] = kSystem;
      b->flags[i].store(0, std::memory_order_release);
      --b->resident;
      if (make_accessible) tracker_->discard(page, kPageSize, b->prot[i]);
    }
  }
}

void Mirror::begin_change() { lock_.lock_nested(); }

void Mirror::end_change() { lock_.unlock(); }

void Mirror::unmap_begin(std::uintptr_t start, std::uintptr_t end) {
  assert(lock_.held_by_me());
  ReasonScope why(this, EventReason::host_change);
  emit(EventKind::invalidate, EventReason::host_change, -1, kSystem, kSystem, start, end - start);
  invalidate_all(start, end);
  collapse_range(start, end, -1, false);
}

void Mirror::unmap_end(std::uintptr_t start, std::uintptr_t end, bool done) {
  assert(lock_.held_by_me());
  if (!done) {
    // Refused: usually before anything changed (a bad descriptor, the map-count limit), but
    // mmap(MAP_FIXED) can fail after it unmapped the old range. The memory map says which:
    // data goes only where no mapping is left.
    Vmas vmas;
    if (!query(start, end, vmas.list)) return;
    for (std::uintptr_t page = start; page < end; page += kPageSize)
      if (os::find_vma(vmas.list, page) == nullptr)
        drop_range(page, page + kPageSize, false, ~std::uint64_t{0});
    return;
  }
  ReasonScope why(this, EventReason::host_change);
  drop_range(start, end, false, ~std::uint64_t{0});
  clear_advice(start, end);
}

void Mirror::discard_begin(std::uintptr_t start, std::uintptr_t end) {
  assert(lock_.held_by_me());
  ReasonScope why(this, EventReason::host_change);
  emit(EventKind::invalidate, EventReason::host_change, -1, kSystem, kSystem, start, end - start);
  invalidate_all(start, end);
  collapse_range(start, end, -1);
}

void Mirror::discard_end(std::uintptr_t start, std::uintptr_t end, bool done) {
  assert(lock_.held_by_me());
  // A refused discard (MADV_REMOVE of private memory, a locked range) keeps the device's data,
  // as the kernel kept the CPU's. The device mappings torn down come back through faults.
  if (!done) return;
  ReasonScope why(this, EventReason::host_change);
  drop_range(start, end, true, ~std::uint64_t{0});
}

int Mirror::protect(std::uintptr_t start, std::uintptr_t end, int prot) {
  assert(lock_.held_by_me());
  ReasonScope why(this, EventReason::host_change);
  emit(EventKind::invalidate, EventReason::host_change, -1, kSystem, kSystem, start, end - start);
  // Device mappings go first; they come back through faults with the new rights. Read-only
  // copies go too: the new protection replaces their write protection.
  invalidate_all(start, end);
  collapse_range(start, end, -1);
  bool keep_revoked = tracker_->mode() == Tracking::mprotect;
  int rc = 0;
  std::uintptr_t run = start;  // start of the pending run of pages to mprotect for real
  auto flush = [&](std::uintptr_t upto) {
    if (upto > run) {
      int r = os::sys_mprotect(reinterpret_cast<void*>(run), upto - run, prot);
      if (r != 0 && rc == 0) rc = r;
    }
  };
  for (std::uintptr_t page = start; page < end; page += kPageSize) {
    VaBlock* b = find_block(page);
    if (b == nullptr || b->resident == 0) {
      // Skip to the end of an empty block quickly.
      std::uintptr_t next = std::min(end, os::block_down(page) + os::kBlockSize);
      page = next - kPageSize;
      continue;
    }
    std::size_t i = os::page_index_in_block(page);
    if (b->owner[i] == kSystem) continue;
    b->prot[i] = static_cast<std::uint8_t>(prot);
    if (keep_revoked) {  // its real protection stays PROT_NONE until it comes home
      flush(page);
      run = page + kPageSize;
    }
  }
  flush(end);
  return rc;
}

void Mirror::remap_begin(std::uintptr_t start, std::uintptr_t end) {
  assert(lock_.held_by_me());
  ReasonScope why(this, EventReason::host_change);
  emit(EventKind::invalidate, EventReason::host_change, -1, kSystem, kSystem, start, end - start);
  std::size_t left = 0;
  bring_home_fully(start, end, -1, -1, &left);
  collapse_range(start, end, -1);
  invalidate_all(start, end);
  // Found by the differential tester: a range once migrated stayed registered with
  // userfaultfd in pieces, and mremap of it failed with EFAULT where plain memory succeeds.
  if (left == 0) tracker_->forget(start, end - start);
}

void Mirror::change_window() {
  if (injector_ != nullptr) injector_->maybe_stall(base::FaultInjector::host_change);
}

bool Mirror::post_event(const HostEvent& e) {
  std::uint64_t tail = events_tail_.load(std::memory_order_relaxed);
  if (tail - events_head_.load(std::memory_order_acquire) == kEventQueue) return false;
  events_[tail % kEventQueue] = e;
  events_tail_.store(tail + 1, std::memory_order_release);
  lock_.post_deferred();
  return true;
}

bool Mirror::apply_events(bool try_only) {
  if (!events_pending()) return true;
  if (!acquire(try_only)) return false;  // taking the lock applied them (drain_events)
  lock_.unlock();
  return !events_pending();
}

bool Mirror::event_pending_at(std::uintptr_t addr) const {
  std::uint64_t tail = events_tail_.load(std::memory_order_relaxed);  // ours: we write it
  for (std::uint64_t i = events_head_.load(std::memory_order_acquire); i < tail; ++i)
    if (events_[i % kEventQueue].covers(addr)) return true;
  return false;
}

void Mirror::drain_events(void* self) {
  auto* m = static_cast<Mirror*>(self);
  m->lock_.take_deferred();
  std::uint64_t head = m->events_head_.load(std::memory_order_relaxed);
  std::uint64_t tail = m->events_tail_.load(std::memory_order_acquire);
  ReasonScope why(m, EventReason::host_change);
  for (; head != tail; ++head) {
    const HostEvent& e = m->events_[head % kEventQueue];
    if (e.remap)
      m->apply_remap_event(e.from, e.to, e.len, e.stamp);
    else
      m->apply_unmap_event(e.from, e.from + e.len, e.stamp);
    m->events_head_.store(head + 1, std::memory_order_release);
  }
}

void Mirror::apply_unmap_event(std::uintptr_t start, std::uintptr_t end, std::uint64_t stamp) {
  invalidate_all(start, end);
  collapse_range(start, end, -1, false);
  drop_range(start, end, false, stamp);
  clear_advice(start, end);
}

void Mirror::apply_remap_event(std::uintptr_t from, std::uintptr_t to, std::size_t len,
                               std::uint64_t stamp) {
  invalidate_all(from, from + len);
  invalidate_all(to, to + len);
  // Copies of either range are stale: the source is gone, and the destination's pages were
  // replaced by the moved ones. Dropping a copy is always safe (the system copy is valid).
  collapse_range(from, from + len, -1, false);
  collapse_range(to, to + len, -1, false);
  // The kernel moved the page tables, revoked entries included: move the state along.
  for (std::uintptr_t off = 0; off < len; off += kPageSize) {
    VaBlock* src = find_block(from + off);
    if (src == nullptr || src->resident == 0) continue;
    std::size_t i = os::page_index_in_block(from + off);
    if (src->owner[i] == kSystem || src->birth[i] >= stamp) continue;
    VaBlock* dst = get_block(to + off);
    std::size_t j = os::page_index_in_block(to + off);
    if (dst->owner[j] != kSystem) {
      devices_[dst->owner[j]]->free_frame(dst->frame[j]);
      --dst->resident;
    }
    dst->owner[j] = src->owner[i];
    dst->frame[j] = src->frame[i];
    dst->prot[j] = src->prot[i];
    dst->birth[j] = src->birth[i];
    dst->flags[j].store(kRevoked, std::memory_order_release);
    ++dst->resident;
    src->owner[i] = kSystem;
    src->flags[i].store(0, std::memory_order_release);
    --src->resident;
  }
}

#ifndef NDEBUG
void Mirror::check_accounting(const char* where) const {
  std::size_t owned[32] = {};
  blocks_.for_each([&](VaBlock& b) {
    for (std::size_t i = 0; i < os::kPagesPerBlock; ++i) {
      if (b.owner[i] != kSystem) ++owned[b.owner[i]];
      if (b.dup[i] != kSystem) ++owned[b.dup[i]];
    }
  });
  for (std::size_t d = 0; d < ndevices_; ++d)
    if (owned[d] * kPageSize != devices_[d]->used_bytes()) {
      std::fprintf(stderr, "hetmm: %s: device %zu owns %zu pages but uses %zu bytes\n", where, d,
                   owned[d], devices_[d]->used_bytes());
      std::abort();
    }
}

void Mirror::check_block(const VaBlock& b) const {
  std::uint32_t resident = 0;
  for (std::size_t i = 0; i < os::kPagesPerBlock; ++i) {
    std::uint8_t f = b.flags[i].load(std::memory_order_relaxed);
    if (b.owner[i] != kSystem) {
      ++resident;
      assert(f == kRevoked && "I2: a device-resident page is revoked");
      assert(b.dup[i] == kSystem && "I5: only system pages have copies");
    } else {
      assert((f & kRevoked) == 0 && "I1: a system page is not revoked");
      assert(((f & kDuplicated) != 0) == (b.dup[i] != kSystem) && "I5: copies are flagged");
    }
  }
  assert(resident == b.resident);
  (void)resident;
}
#endif

}  // namespace hetmm::core
