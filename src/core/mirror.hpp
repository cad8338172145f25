// Layer core: includes base, os, device, telemetry, policy.
// The mirror: hetmm's picture of the process address space as the devices see it.
//
// It keeps per-page state in 2 MiB VaBlocks (where the data lives, which devices map it), the
// interval-notifier sequence count, and every operation that changes residency or mappings:
// device fault resolution (the analogue of hmm_range_fault), migration in both directions,
// invalidation before CPU-side changes, and the CPU fault-back of revoked pages.
//
// Locking: one state lock (StateLock) guards all block state, device page tables and frame
// pools. Lock order (base/lock_order.hpp, checked in debug builds): launch < alloc < state <
// uffd_own_removes < fault_buffer < arena. Under the state lock only the runtime memory pool and
// the userfaultfd own-REMOVE list are taken; the launch lock is never taken inside it, and the
// fault-buffer lock is a leaf taken without it. Workers never take the state lock. See
// docs/ARCHITECTURE.md for the whole picture.
#pragma once

#include "os/arena.hpp"

#include "core/host_tracker.hpp"
#include "base/radix_table.hpp"
#include "core/state_lock.hpp"
#include "core/va_block.hpp"
#include "device/device_backend.hpp"
#include "os/proc_maps.hpp"
#include "policy/policy.hpp"
#include "policy/thrashing.hpp"

#include <hetmm/hetmm.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace hetmm::telemetry {
class EventLog;
}

namespace hetmm::base {
class FaultInjector;
}

namespace hetmm::core {

// Counters the mirror keeps per device (merged into DeviceStats by the API layer).
struct MirrorCounters {
  std::atomic<std::uint64_t> pages_to_device{0}, pages_to_system{0}, cpu_faults{0},
      pages_evicted{0}, link_transfers{0}, link_bytes{0};
  std::atomic<std::uint64_t> blocks_moved_in{0}, blocks_moved_out{0};  // zero-copy, whole blocks
  std::atomic<std::uint64_t> throttle_ns{0};  // thrashing naps the policy imposed (modeled)
};

// The outcome of an operation, recorded under the lock and turned into an exception after it.
struct Status {
  Errc code = Errc::invalid_argument;
  bool failed = false;
  bool over_limit = false;  // out_of_memory: Options::max_oversubscription
  std::uintptr_t addr = 0;
  void fail(Errc c, std::uintptr_t a) {
    if (!failed) {
      failed = true;
      code = c;
      addr = a;
    }
  }
};

enum class CpuFault { not_ours, served, busy };

class Mirror final : public device::FaultResolver, public os::RuntimeAllocated {
 public:
  Mirror(HostTracker* tracker, std::size_t device_count, PolicyProfile policy,
         const UvmParameters& params);
  ~Mirror() override;

  void attach(std::size_t index, device::DeviceBackend* device);
  MirrorCounters& counters(std::size_t device) { return counters_[device]; }
  StateLock& state_lock() { return lock_; }
  // Options::max_oversubscription: a device maps at most this many pages (0 = no limit).
  void set_mapping_limit(std::size_t pages) { mapping_limit_ = pages; }
  // Device faults leave the brk heap in place (os::Vma::brk_heap): set when hetmm was loaded
  // with dlopen (the OpenCL loader), whose link_maps for hetmm's own libraries are heap data
  // that the fault-serving threads read; a page of them in device memory would make such a
  // thread fault on a page only it can serve. Explicit migrations still move heap pages.
  void keep_brk_heap_in_place(bool keep) { brk_heap_in_place_ = keep; }
  std::size_t mapping_limit() const { return mapping_limit_; }
  // Telemetry (null when off): record with `if (auto* log = event_log()) log->record(...)`.
  // record() is lock-free and async-signal-safe, so it may be called anywhere, lock held or not.
  void set_event_log(telemetry::EventLog* log) { event_log_ = log; }
  void set_fault_injector(base::FaultInjector* injector) { injector_ = injector; }
  // The link model (Options::link): with one, the thrashing detector's clock is the device's
  // modeled time (clock_ns), as a GPU behind that link would see it.
  void set_link(const LinkProfile& link) { link_ = link; }
  // The clock thrashing detection and pins run on, for `device`: its modeled time under the
  // link profile (transfers, fault batches, throttle naps, kernel accesses: the LinkProfile
  // sum, monotonic since every term only grows), or the wall clock without a link model. On
  // this machine a migration takes milliseconds of wall time where a GPU's takes
  // microseconds: on wall time the driver's 500 µs lapse would never see two migrations close.
  std::uint64_t clock_ns(std::size_t device) const;
  // The device's modeled time so far under the link profile (DeviceStats::modeled_seconds).
  double modeled_ns(std::size_t device) const;
  telemetry::EventLog* event_log() const { return event_log_; }

  // ---- interval-notifier sequence ----------------------------------------------------------
  std::uint64_t read_begin() const { return lock_.read_begin(); }
  bool read_retry(std::uint64_t seq) const { return lock_.read_retry(seq); }

  // ---- device side -------------------------------------------------------------------------
  // A kernel is about to start on the device: revisit pinned blocks (device_fault.cpp).
  void before_launch(std::size_t device);
  void resolve(std::size_t device, const device::FaultRange* ranges,
               device::FaultOutcome* outcomes, std::size_t n) override;

  // Copies between the device's view of [addr, addr+len) and bounce, using only existing device
  // mappings. Returns true when done; false with *missing set to the first page the device does
  // not map with the needed access; false with status failed on an access error.
  bool device_copy(std::size_t device, std::uintptr_t addr, std::size_t len, void* bounce,
                   bool write, std::uintptr_t* missing, Status* status);

  // Returns pages readable through the device afterwards.
  std::size_t migrate_to_device(std::size_t device, std::uintptr_t start, std::uintptr_t end,
                                Status* status);
  std::size_t migrate_to_system(std::size_t device, std::uintptr_t start, std::uintptr_t end,
                                Status* status);
  void snapshot(std::uintptr_t start, std::size_t npages, PageState* out);
  // Advice and queries (src/core/advice.cpp). `where`: kSystem or a device index.
  void advise(std::uintptr_t start, std::uintptr_t end, Advice advice, int where, bool set,
              Status* status);
  void set_policy(std::uintptr_t start, std::uintptr_t end, PolicyProfile profile);
  void residency(std::uintptr_t start, std::size_t npages, Location* out);
  void range_stats(std::uintptr_t start, std::uintptr_t end, RangeStats& out);
  void release_device(std::size_t device);
  void bring_all_home();
  Location location(std::uintptr_t addr);
  std::size_t resident_pages(std::size_t device);
  // Checks every invariant of va_block.hpp over the whole mirror, frames held once each and
  // the device page tables included; the first problem found, or empty (src/core/audit.cpp).
  std::string audit();

  // ---- CPU side ----------------------------------------------------------------------------
  // Lock-free: does hetmm hold this page (revoked or being migrated)?
  bool tracks(std::uintptr_t addr) const;
  // Whether a device holds a read-only copy of the page (its system page must stay
  // write-protected, I5). Lock-free, like tracks().
  bool copied(std::uintptr_t addr) const;
  // A CPU access to a revoked page: bring it home. Returns false if the page is not hetmm's (the
  // fault is the program's own). Never called with the state lock held by the caller.
  // With try_only, returns busy instead of waiting for the state lock.
  CpuFault cpu_fault(std::uintptr_t addr, bool write, bool try_only = false);
  // fork: bring every page home and hold the state lock across fork(2).
  void lock_for_fork();
  void unlock_after_fork();

  // CPU-side changes (src/host/hooks.cpp). The hook holds the state lock from begin_change()
  // to end_change(), its system call included, so that no device access goes through a range
  // the change has begun to tear down: the kernel holds mmap_lock for write across the
  // invalidation and the change alike. (Issue 16: the lock was dropped before munmap, and a
  // device read in between got zeros for device-resident pages the hook had already dropped.)
  // Device-resident data is dropped only once the kernel has done the change: a refused call
  // loses nothing. All but begin_change need the lock held.
  void begin_change();  // lock_nested: a hook takes every runtime's lock, in slot order
  void end_change();
  // munmap, mmap(MAP_FIXED) and mremap(MREMAP_FIXED)'s target. `done`: the call succeeded.
  void unmap_begin(std::uintptr_t start, std::uintptr_t end);
  void unmap_end(std::uintptr_t start, std::uintptr_t end, bool done);
  // madvise(MADV_DONTNEED/FREE/REMOVE). `done`: the kernel discarded the range.
  void discard_begin(std::uintptr_t start, std::uintptr_t end);
  void discard_end(std::uintptr_t start, std::uintptr_t end, bool done);
  // Applies mprotect itself (revoked pages keep their real protection in mprotect mode).
  int protect(std::uintptr_t start, std::uintptr_t end, int prot);
  // mremap's source: every page comes home, so the kernel moves the data with its page table.
  void remap_begin(std::uintptr_t start, std::uintptr_t end);
  // Options::inject's host_change point: a pause between the teardown and the system call.
  void change_window();

  // userfaultfd events, processed after the fact (see docs/ARCHITECTURE.md, "Events").
  std::uint64_t event_stamp() { return clock_.fetch_add(1, std::memory_order_acq_rel) + 1; }
  // An UNMAP or REMOVE ([from, from + len) dropped) or REMAP (moved to `to`) event, stamped
  // when it was read.
  struct HostEvent {
    bool remap;
    std::uintptr_t from, to, len;
    std::uint64_t stamp;
    bool covers(std::uintptr_t a) const {
      return (a >= from && a < from + len) || (remap && a >= to && a < to + len);
    }
  };
  // The handler queues each event it reads (lock-free, one producer: the handler thread). The
  // kernel has already changed the address space, and the program that made the change runs on:
  // it may map new memory at the same address and hand it to a device at once. So the next
  // holder of the state lock applies every queued event before anything else (StateLock's
  // deferred work): a device read or write, a fault, a launch or a migration that follows the
  // change never sees the device mappings it removed (issue 16). False when the queue is full.
  bool post_event(const HostEvent& e);
  // Applies the queued events now if the lock can be had (try_only: without waiting). Returns
  // whether the queue is empty.
  bool apply_events(bool try_only);
  bool events_pending() const {
    return events_head_.load(std::memory_order_acquire) !=
           events_tail_.load(std::memory_order_acquire);
  }
  // Whether a queued event covers addr (a fault there waits for it). The handler thread only.
  bool event_pending_at(std::uintptr_t addr) const;

 private:
  VaBlock* find_block(std::uintptr_t addr) const { return blocks_.find(addr >> os::kBlockShift); }
  VaBlock* get_block(std::uintptr_t addr);
  void invalidate_all(std::uintptr_t start, std::uintptr_t end);  // every device, seq++
  // Pages [start, end) all owned by `owner`: data home, frames freed. Returns pages moved; a
  // transient failure (copy engine, EAGAIN/ENOMEM) leaves pages on the device, revoked, and
  // adds them to *left. counted_before: the caller counted the run in pages_to_system before
  // (a CPU fault-back, whose faulting thread resumes as the pages land): only what did not come
  // home is taken back.
  std::size_t bring_home_run(std::uintptr_t start, std::uintptr_t end, int owner,
                             std::size_t* left, bool counted_before = false);
  // A CPU stream's next block, when all of it is on `owner` with one protection (cpu_fault).
  void bring_next_block_home(std::uintptr_t block, int owner);
  // Every page of b on device `owner` with protection prot.
  static bool wholly_on(const VaBlock& b, int owner, int prot);
  // Pages [lo, hi) of b, all on `owner`, home for a CPU touch: counted first, then moved, then
  // noted for thrashing detection.
  void take_home_for_cpu(VaBlock& b, std::uintptr_t lo, std::uintptr_t hi, int owner);
  // Brings home pages in [start, end) owned by `only` (any device if < 0), except `skip`.
  std::size_t bring_home_range(std::uintptr_t start, std::uintptr_t end, int only, int skip,
                               std::size_t* left = nullptr);
  // The same, retrying what transient failures left behind, for callers that need every page
  // home (release, fork, mremap, ~Runtime).
  std::size_t bring_home_fully(std::uintptr_t start, std::uintptr_t end, int only, int skip,
                               std::size_t* left = nullptr);
  static void drain_events(void* self);  // StateLock's deferred work, lock held
  void apply_unmap_event(std::uintptr_t start, std::uintptr_t end, std::uint64_t stamp);
  void apply_remap_event(std::uintptr_t from, std::uintptr_t to, std::size_t len,
                         std::uint64_t stamp);
  // Drops device-resident data in [start, end) (pages born before `stamp`).
  void drop_range(std::uintptr_t start, std::uintptr_t end, bool make_accessible,
                  std::uint64_t stamp);
  // The first page of [start, end) (one block) that is not the system's alone (a device owns
  // it or holds a copy), or end.
  std::uintptr_t system_only_end(std::uintptr_t start, std::uintptr_t end) const;
  // Moves one run of system pages (one VMA) into device memory. Returns pages moved.
  std::size_t migrate_run_in(std::size_t device, std::uintptr_t start, std::uintptr_t end,
                             const os::Vma& vma, bool* out_of_memory);
  // After a short zero-copy move: zero frames_[k, k + run) except the pages that arrived in
  // the chunk (the kernel's count of a failed move can fall short of what it moved).
  void zero_unless_arrived(device::DeviceBackend* dev, std::size_t k, std::size_t run);
  // 1: moved; 0: no free frame; -1: the copy failed (the page came home instead).
  int move_between_devices(std::size_t device, std::uintptr_t page);
  // Maps one page on the device (locally or in place). Returns false, mapping nothing, when the
  // page is in another device's memory.
  bool map_on_device(std::size_t device, std::uintptr_t page, int prot);
  // Read duplication (src/core/duplication.cpp): copies one run of system pages (one VMA)
  // into the device, keeping the system copy valid and write-protected. Returns pages copied.
  std::size_t duplicate_run(std::size_t device, std::uintptr_t start, std::uintptr_t end,
                            const os::Vma& vma, bool* out_of_memory);
  // Drops the read-only copies in [start, end) held by `only` (any device if < 0) and gives
  // the CPU its write access back (unless thaw is false: the range is going away). Returns
  // the copies dropped.
  std::size_t collapse_range(std::uintptr_t start, std::uintptr_t end, int only,
                             bool thaw = true);
  // The copies `device` holds in [start, end) become the only copies (a write by that device):
  // the CPU copies are revoked, no data moves. Returns pages upgraded.
  std::size_t upgrade_copies(std::size_t device, std::uintptr_t start, std::uintptr_t end);
  // Makes room for `pages` frames on `device`: brings home the device's pages of the blocks the
  // policy ranks first (src/policy/policy.hpp), never pages in [keep_start_, keep_end_) (the
  // request being served). Returns the frames it freed. (src/core/eviction.cpp)
  std::size_t evict(std::size_t device, std::size_t pages);
  // Up to n frames of `device` into frames_ for the pages from `start` on (one block), evicting
  // to make room; fewer sets *out_of_memory. Placed beside the block's other pages on the
  // device (DeviceBackend::alloc_frames_placed).
  std::size_t take_frames(std::size_t device, std::uintptr_t start, std::size_t n,
                          bool* out_of_memory);
  // Where addr's block should get frames on `device` (DeviceBackend::alloc_frames_placed's
  // near): the chunk of its pages there, else the chunk after the previous block's or before the
  // next block's, else ~0u.
  std::uint32_t frame_near(std::size_t device, std::uintptr_t addr) const;
  // Makes sure `device` has n free frames, evicting when it has fewer (as far as it can).
  void reserve_frames(std::size_t device, std::size_t n);
  // A migration is about to put pages of block b on device (before their owner is set).
  void note_arrival(VaBlock* b, std::size_t device);
  // Reads the memory map for [start, end) consistently with the state (the read_begin /
  // read_retry loop) and returns with the state lock held; false (lock not held) if
  // /proc/self/maps cannot be read.
  bool lock_with_map(std::uintptr_t start, std::uintptr_t end, os::VmaList& vmas);
  bool acquire(bool try_only);  // the state lock, or only try it
  std::int8_t owner_of(std::uintptr_t page) const {
    VaBlock* b = find_block(page);
    return b ? b->owner[os::page_index_in_block(page)] : kSystem;
  }
  void bring_all_home_locked();
  // Advice and pins of unmapped pages go with them.
  void clear_advice(std::uintptr_t start, std::uintptr_t end);
  int effective_prot(const os::Vma* vma, std::uintptr_t page) const;
  // One range of a batch; the caller holds the state lock and read the map for the batch.
  void resolve_locked(std::size_t device, const device::FaultRange& r,
                      device::FaultOutcome& o, const os::VmaList& vmas);
  // On-demand migration for a kernel's faults on [start, end) (src/core/device_fault.cpp).
  void migrate_for_fault(std::size_t device, std::uintptr_t start, std::uintptr_t end,
                         bool write, const os::VmaList& vmas);
  // Moves the system pages of b in m to the device, run by run. Returns pages moved.
  // Runs made only of `prefetch` pages are recorded with `prefetch_reason`.
  std::size_t migrate_mask(std::size_t device, VaBlock* b, const policy::PageMask& m,
                           const os::VmaList& vmas, bool* oom,
                           const policy::PageMask* prefetch = nullptr,
                           EventReason prefetch_reason = EventReason::density_prefetch);
  // Fault-ahead: may this neighbour be mapped in place now (false: it may still migrate)?
  bool maps_ahead_in_place(std::size_t device, std::uintptr_t page, const os::Vma* vma) const;
  policy::Policy& policy_for(const VaBlock* b, std::size_t i) const;
  // Private anonymous memory that is not a thread's stack (os/proc_maps.hpp).
  bool migrates_on_fault(const os::Vma& vma) const;
  // Not used by the device in its current or previous access epoch.
  bool cold(const VaBlock& b, std::size_t device) const;
#ifndef NDEBUG
  void check_block(const VaBlock& b) const;
  void check_accounting(const char* where) const;
#endif

  HostTracker* tracker_;
  telemetry::EventLog* event_log_ = nullptr;
  base::FaultInjector* injector_ = nullptr;  // Options::inject (null in unit tests)
  // Events read but not yet applied: a ring written by the userfaultfd handler at tail and
  // consumed, under the state lock, at head.
  static constexpr std::size_t kEventQueue = 256;
  HostEvent events_[kEventQueue] = {};
  std::atomic<std::uint64_t> events_head_{0}, events_tail_{0};
  // Why pages are moving, for the event stream: set for a scope by the operation that moves
  // them (ReasonScope), read where the copies happen. Under the state lock.
  EventReason move_reason_ = EventReason::request;
  class ReasonScope {
   public:
    ReasonScope(Mirror* m, EventReason r) : m_(m), saved_(m->move_reason_) { m->move_reason_ = r; }
    ~ReasonScope() { m_->move_reason_ = saved_; }
    ReasonScope(const ReasonScope&) = delete;
    ReasonScope& operator=(const ReasonScope&) = delete;

   private:
    Mirror* m_;
    EventReason saved_;
  };
  void emit(EventKind kind, EventReason reason, int device, int from, int to,
            std::uintptr_t addr, std::uint64_t bytes) const;  // set before any thread can use the mirror
  std::size_t ndevices_;
  device::DeviceBackend* devices_[32] = {};
  MirrorCounters* counters_;
  StateLock lock_;
  base::RadixTable<VaBlock, os::RuntimeMemory> blocks_;
  std::atomic<std::uint64_t> clock_{1};
  PolicyProfile default_profile_;
  policy::Policy* policies_[3] = {};  // by PolicyProfile
  policy::ThrashingParams thrashing_params_;
  LinkProfile link_ = LinkProfile::none();
  // The CPU-side stream detector (cpu_fault), under the state lock: the last page the last CPU
  // fault-back brought home, and how many fault-backs in a row started right after it.
  std::uintptr_t last_cpu_fault_ = 0;
  unsigned cpu_stream_ = 0;
  bool fault_eviction_ = false;
  std::uint32_t maybe_pinned_ = 0;  // devices that may have pinned blocks (before_launch)
  // The last access epoch in which a device wrote its copies (upgrade_copies), and an address
  // it wrote there: a kernel that writes what it reads in one mapping migrates its next read
  // faults in that mapping instead of copying them.
  std::uint32_t upgraded_epoch_[kMaxDevices] = {};
  std::uintptr_t upgraded_at_[kMaxDevices] = {};
  void note_upgrade(std::size_t device, std::uintptr_t addr) {
    upgraded_epoch_[device] = devices_[device]->access_epoch();
    upgraded_at_[device] = addr;
  }
  std::size_t mapping_limit_ = 0;
  bool brk_heap_in_place_ = false;
  // Would mapping `more` pages take the device past the limit?
  bool over_limit(std::size_t device, std::size_t more) const {
    return mapping_limit_ != 0 && devices_[device]->mapped_pages() + more > mapping_limit_;
  }  // evicting for a device fault: cold blocks only
  std::uint64_t use_clock_ = 0;   // orders blocks for eviction; under the state lock
  std::uintptr_t keep_start_ = 0, keep_end_ = 0;  // never evicted (the request in progress)
  std::byte* staging_;  // 2 MiB of runtime memory for copies that need a contiguous buffer
  std::uint32_t* frames_;  // scratch frame list, kPagesPerBlock entries
  std::uint8_t* bits_;     // scratch page bits, kPagesPerBlock entries
};

}  // namespace hetmm::core
