// hetmm: heterogeneous memory management in user space.
//
// A compute device shares the process's virtual address space: a pointer from malloc, new,
// std::vector or mmap is valid on the device as it is. The device's page table mirrors the
// process's; pages migrate into device memory on request and come back when the CPU touches
// them; every device mapping of a page is torn down before the CPU-side change that
// invalidates it completes. See docs/ARCHITECTURE.md for how, and docs/API.md for examples.
//
//   hetmm::Runtime rt;                       // one software device by default
//   std::vector<int> v(1 << 20, 1);
//   auto& dev = rt.device(0);
//   dev.migrate_to_device(v.data(), v.size() * sizeof(int));
//   dev.launch(v.size(), [p = v.data()](hetmm::Thread& t) {
//     t.store(p + t.id(), t.load(p + t.id()) * 2);
//   });
//   dev.synchronize();                       // kernel errors surface here
//   int x = v[5];                            // the CPU touch brings the page home
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "hetmm/detail/hit_path.hpp"
#include "hetmm/program.hpp"

namespace hetmm {

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------
enum class Errc {
  invalid_argument,  // null, wrapping, zero-length or otherwise malformed request
  fault,             // unmapped or PROT_NONE memory (the kernel's EFAULT)
  permission,        // write to read-only memory (the kernel's EPERM)
  not_found,         // nothing in the range can migrate (e.g. shared or file memory)
  out_of_memory,     // device memory exhausted
  busy,              // the range is managed by another runtime, or the retry bound expired
  device_lost,       // the runtime cannot serve the call (e.g. in a forked child)
  unsupported,       // the requested mechanism is not available on this machine
};
const char* to_string(Errc code) noexcept;

class Error : public std::runtime_error {
 public:
  Error(Errc code, const std::string& message);
  Errc code() const noexcept { return code_; }

 private:
  Errc code_;
};

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------
enum class Tracking {
  automatic,    // userfaultfd where the kernel allows it, else mprotect
  userfaultfd,  // MISSING + write-protect faults and UNMAP/REMAP events; refuse if unavailable
  mprotect,     // PROT_NONE + SIGSEGV; works everywhere, kernel-side accesses get EFAULT
};
const char* to_string(Tracking tracking) noexcept;

// A device's link to system memory, for *modeled* time: on this machine device memory is system
// RAM, so wall time cannot show what a real link costs. The model (docs/PERFORMANCE.md, with its
// numbers' sources): every migrated run (either way) costs latency + bytes / bandwidth; every
// device fault batch costs fault_us; kernel accesses in place cost bytes / bandwidth, accesses
// to device memory bytes / local_bandwidth. A rate of 0 costs nothing.
struct LinkProfile {
  double bandwidth_gbs = 0;        // host <-> device, GB/s (10^9 bytes per second)
  double latency_us = 0;           // per transfer (one migrated run)
  double fault_us = 0;             // per device fault batch (service and replay)
  double local_bandwidth_gbs = 0;  // device memory, GB/s
  static LinkProfile none() { return {}; }
  static LinkProfile pcie4() { return {25, 1, 30, 1600}; }
  static LinkProfile pcie5() { return {50, 1, 30, 3350}; }
  static LinkProfile nvlink_c2c() { return {375, 0.5, 30, 3400}; }
};

// Migration policies: what a device fault does with the pages it needs, what leaves a full
// device first, and how thrashing is handled (docs/POLICIES.md has each one's rules).
//  hetmm     the default. Device faults migrate pages in 64 KiB granules while the device has
//            room, with stream/stride prefetch across blocks; a full device evicts the least
//            recently used blocks that are cold, and when the working set does not fit
//            (thrashing) the rest is accessed in place instead of paging it round; hot
//            in-place blocks migrate (access counting); read-mostly pages are duplicated.
//  uvm       the NVIDIA driver's documented defaults, as the peer to beat: migrate on fault with
//            the density prefetcher (51% per 2 MiB block, 64 KiB growth), allocation-order
//            eviction of 2 MiB blocks, thrashing throttle then pin (uvm_perf_* parameters).
//  in_place  device faults map system memory in place and never migrate (the kernel's HMM
//            with dmirror); pages move only on request (migrate, prefetch).
enum class PolicyProfile { hetmm, uvm, in_place };

// The NVIDIA driver's tunables that the policies follow, under the driver's module-parameter
// names and with its defaults (../shared/docs/uvm-policies.md §1.3-1.4). The thrashing
// detector serves both uvm and hetmm; with a link model (Options::link) its times are the
// device's modeled time, so that it sees as close what a GPU behind that link would (this
// machine's launches and faults are far slower), else the wall clock.
struct UvmParameters {
  unsigned uvm_perf_prefetch_threshold = 51;       // % of a tree node resident or faulted
  unsigned uvm_perf_prefetch_min_faults = 1;       // faults on a block before prefetching
  unsigned uvm_perf_thrashing_threshold = 3;       // close migrations in a row: thrashing
  unsigned uvm_perf_thrashing_pin_threshold = 10;  // throttling periods before a pin
  unsigned uvm_perf_thrashing_lapse_usec = 500;    // "close"
  unsigned uvm_perf_thrashing_nap = 1;             // x lapse: one throttling period
  unsigned uvm_perf_thrashing_epoch = 2000;        // x lapse: quiet time that resets a page
  unsigned uvm_perf_thrashing_pin = 300;           // x lapse: how long a pin lasts
};
const char* to_string(PolicyProfile profile) noexcept;

// Fault injection, to test what hetmm does when things fail. Off by default (every rate 0);
// each rate is the probability that one occurrence of the event fails or stalls. What each
// failure ends in (a retry, a fallback, or a clean Error; never lost or stale data) is listed
// in docs/RELIABILITY.md. The draws come from `seed`, but thread timing makes runs differ.
struct FaultInjection {
  std::uint64_t seed = 1;
  double frame_alloc = 0;      // a device frame allocation gets nothing, as if memory were full
  double copy = 0;             // a copy-engine transfer (into or out of device frames) fails
  double uffd_ioctl = 0;       // a userfaultfd ioctl (register, write-protect, copy, zero page)
                               // fails with EAGAIN or ENOMEM
  double service_delay = 0;    // the fault service thread sleeps before serving a batch
  double worker_stall = 0;     // a device worker sleeps before a TLB-missing access
  double host_change = 0;      // an interposed munmap, madvise, mprotect, mremap or
                               // mmap(MAP_FIXED) sleeps between tearing down device mappings
                               // and its system call (the window a CPU-side change must keep
                               // closed to device accesses)
  double event_defer = 0;      // the userfaultfd handler leaves an UNMAP/REMOVE/REMAP event it
                               // read for the next holder of the state lock, as when it finds
                               // the lock busy
  double move_miscount = 0;    // a zero-copy block move moves the whole block but reports half
                               // of it moved (Linux 6.18's UFFDIO_MOVE, failing part way under
                               // memory load, reported less than it had moved)
  double decision_delay = 0;   // the userfaultfd handler pauses between deciding that a faulting
                               // page is not hetmm's and serving it (a zero page, write access)
  unsigned max_delay_us = 200;  // longest injected sleep
};

// How many faults were injected, by kind.
struct InjectedFaults {
  std::uint64_t frame_alloc = 0, copy = 0, uffd_ioctl = 0, service_delay = 0, worker_stall = 0,
                host_change = 0, event_defer = 0, move_miscount = 0, decision_delay = 0;
  std::uint64_t total() const {
    return frame_alloc + copy + uffd_ioctl + service_delay + worker_stall + host_change +
           event_defer + move_miscount + decision_delay;
  }
};

struct Options {
  std::size_t devices = 1;                  // software devices
  std::size_t device_memory = 256u << 20;   // bytes of device memory per device
  unsigned workers = 0;                     // worker threads per device, 0 = hardware threads
  Tracking tracking = Tracking::automatic;
  // Open userfaultfd with UFFD_USER_MODE_ONLY even when privileged, as an unprivileged process
  // must. Faults raised inside the kernel (read(2) into a migrated buffer) then fail with
  // EFAULT instead of being served. Useful to test what unprivileged users get.
  bool userfaultfd_user_mode_only = false;
  // Whole 2 MiB blocks of private anonymous memory move between system and device memory by
  // remapping their pages (UFFDIO_MOVE, Linux 6.8+, userfaultfd tracking only) instead of
  // copying them: the sim device's memory is process memory. Off: every move is a copy.
  bool zero_copy_moves = true;
  PolicyProfile policy = PolicyProfile::hetmm;  // default for ranges without set_policy
  UvmParameters uvm;  // the driver tunables the policies follow
  LinkProfile link;  // every device's link, for DeviceStats::modeled_seconds
  // Fail fast instead of degrading: when a device's working set (the bytes its page table maps,
  // in device memory or in place) would exceed this many times its memory, the device fault or
  // migration that would cross it fails with Errc::out_of_memory naming the figures. 0 = never.
  double max_oversubscription = 0;
  // Telemetry: how many events (see Event) the runtime keeps until take_events(); 0 = none are
  // recorded. When the buffer is full, new events are dropped (and counted: events_dropped()).
  std::size_t event_capacity = 0;
  FaultInjection inject;  // testing aid; see FaultInjection
};

// ---------------------------------------------------------------------------------------------
// Where a page's data lives
// ---------------------------------------------------------------------------------------------
class Location {
 public:
  Location() = default;  // system memory
  static Location system() { return Location(); }
  static Location device(std::size_t index) { return Location(index); }
  bool is_system() const { return index_ == kSystem; }
  std::size_t device_index() const { return index_; }  // precondition: !is_system()
  friend bool operator==(Location a, Location b) { return a.index_ == b.index_; }
  std::string to_string() const;

 private:
  static constexpr std::size_t kSystem = ~std::size_t{0};
  explicit Location(std::size_t index) : index_(index) {}
  std::size_t index_ = kSystem;
};

struct AccessResult {
  std::size_t pages = 0;   // pages touched (or, for migrate_to_device, readable afterwards)
  std::size_t faults = 0;  // fault-service rounds the call waited on
};

// One page as the runtime sees it, without faulting anything in.
struct PageState {
  bool error = false;     // hole, or memory without read access
  bool readable = false;  // the process may read it (current protection)
  bool writable = false;  // the process may write it
  bool zero = false;      // untouched anonymous memory: reads as zeros, no page behind it
  bool huge = false;      // inside a 2 MiB (THP) mapping
  Location location;      // where the data lives
};

// Counters of one device; the meanings follow the kernel's dmirror driver where it has one.
struct DeviceStats {
  std::uint64_t fault_rounds = 0;        // fault-service rounds waited on by API calls
  std::uint64_t faults = 0;              // fault records posted (workers and API calls)
  std::uint64_t fault_batches = 0;       // batches drained by the service thread
  std::uint64_t faults_flushed = 0;      // of `faults`: records that came in while a batch was
                                         // served and found their pages served by it: replayed
                                         // with that batch, no batch of their own (BATCH_FLUSH)
  std::uint64_t pages_to_device = 0;     // pages migrated into this device's memory
  std::uint64_t pages_to_system = 0;     // pages migrated from this device to system memory
  std::uint64_t cpu_faults = 0;          // CPU touches that brought a page home from here
  std::uint64_t pages_evicted = 0;       // pages sent home to make room for others
  std::uint64_t link_transfers = 0;      // migrated runs, both ways (device to device included)
  std::uint64_t link_bytes = 0;          // bytes those runs moved
  std::uint64_t blocks_moved_in = 0;     // whole 2 MiB blocks that came in by remapping, no copy
  std::uint64_t blocks_moved_out = 0;    // ... and went home the same way (Options::zero_copy_moves)
  std::uint64_t in_place_bytes = 0;      // bytes kernels accessed in system memory, in place
  std::uint64_t local_bytes = 0;         // bytes kernels accessed in device memory
  double throttle_seconds = 0;           // thrashing naps a policy imposed (uvm's throttle)
  double modeled_seconds = 0;            // the link model's time for all of the above
  std::uint64_t invalidations = 0;       // PTE ranges torn down (each with a TLB shootdown)
  std::uint64_t kernels = 0;             // kernels completed
  std::uint64_t tlb_hits = 0;
  std::uint64_t tlb_misses = 0;
};

// Advice about how a range will be used (cudaMemAdvise and more). Advice is kept per page, is
// lost when the pages are unmapped, and never changes what a program reads.
enum class Advice : std::uint8_t {
  read_mostly,         // device reads get their own copy; the system copy stays valid (writes
                       // collapse the copies)
  preferred_location,  // `where` is where the pages should live; faults elsewhere map them in
                       // place rather than move them away from it
  accessed_by,         // device `where` maps the pages wherever they are and never moves them
                       // on its faults
  streaming,           // used once: such pages leave a full device first and are never
                       // duplicated
  write_only,          // the device overwrites the pages before reading them: migration to a
                       // device does not copy their data (the device sees zeros until written)
  discard,             // (an action) the contents may be dropped now: device copies are freed
                       // without write-back and the pages read as zeros afterwards
};
const char* to_string(Advice advice) noexcept;

// Telemetry: one structured event per decision, with its reason (Options::event_capacity).
enum class EventKind : std::uint8_t {
  fault,       // a device fault batch was served (addr/bytes: the span it covered)
  migrate,     // pages moved (from -> to)
  evict,       // pages sent home to make room
  prefetch,    // pages moved ahead of use
  duplicate,   // a read-only copy made on a device
  pin,         // pages kept where they are and mapped in place (thrashing)
  cpu_fault,   // a CPU touch brought pages home
  invalidate,  // device mappings torn down for a CPU-side change
};
enum class EventReason : std::uint8_t {
  device_fault,      // a kernel touched the pages
  cpu_fault,         // a CPU thread touched the pages
  request,           // an API call (migrate, prefetch, release, read/write)
  density_prefetch,  // uvm's tree prefetcher
  stream_prefetch,   // hetmm's stream/stride prefetcher
  block_prefetch,    // hetmm's whole-block fetch on a block's first fault
  access_counter,    // hot in-place pages
  eviction,          // room for other pages
  thrashing,         // the working set does not fit / pages ping-pong
  advice,            // Runtime::advise
  host_change,       // munmap, mprotect, madvise, mremap, fork
};
const char* to_string(EventKind kind) noexcept;
const char* to_string(EventReason reason) noexcept;

struct Event {
  std::uint64_t time_ns = 0;  // CLOCK_MONOTONIC
  EventKind kind = EventKind::fault;
  EventReason reason = EventReason::device_fault;
  std::int16_t device = -1;   // the device concerned, -1 for none
  Location from, to;          // for moves; system otherwise
  std::uintptr_t addr = 0;    // first byte
  std::uint64_t bytes = 0;
};

// Counters of a range of pages (per allocation: pass its bounds), summed over its 2 MiB blocks,
// and where its pages are now.
struct RangeStats {
  std::uint64_t device_faults = 0;    // device fault records that touched the blocks
  std::uint64_t pages_to_device = 0;  // pages moved into device memory (any device)
  std::uint64_t pages_to_system = 0;  // pages brought home (CPU faults, requests, eviction)
  std::uint64_t pages_evicted = 0;
  std::uint64_t cpu_faults = 0;
  std::uint64_t pages_in_system = 0;  // residency now, pages of the range itself
  std::vector<std::uint64_t> pages_on_device;  // per device
};

class Thread;

namespace detail {
class RuntimeImpl;
struct WorkerContext;

// Device-memory accesses of a kernel thread: through the worker's TLB and the device page table.
// They throw hetmm::Error (fault / permission) when the access cannot be served.
void thread_load(WorkerContext* ctx, const void* p, void* out, std::size_t n);
void thread_store(WorkerContext* ctx, void* p, const void* in, std::size_t n);
// The same for n <= 8 with the bytes in a register (the first n bytes of the word's object
// representation): a kernel loop that calls them keeps no address of a stack slot live.
std::uint64_t thread_load_bits(WorkerContext* ctx, const void* p, std::size_t n);
void thread_store_bits(WorkerContext* ctx, void* p, std::uint64_t bits, std::size_t n);
std::uint64_t thread_atomic_add(WorkerContext* ctx, void* p, std::uint64_t v, std::size_t n);

struct SpanCursor;
void span_end(SpanCursor& c) noexcept;
// A read_span/write_span in progress. span_next ends the previous piece's access (storing it,
// for write spans of in-place pages) and returns the next piece, or nullptr at the end.
struct SpanCursor {
  WorkerContext* ctx;
  const void* next;
  std::size_t left;  // bytes
  bool write;
  std::size_t piece_bytes = 0;
  void* pending = nullptr;   // in-place write piece to store back at the next call
  void* bounce = nullptr;    // where an in-place piece was copied
  bool holding = false;      // inside a local access (the translation is held)
  ~SpanCursor() {
    if (holding || pending != nullptr) span_end(*this);
  }
};
const void* span_next(SpanCursor& c);

// The worker side of Thread: where the hit path is, and where a Thread's counts go.
// ctx's words; for nullptr, words whose epoch is HitPath::kNoEpoch, TLB empty, worker nullptr.
HitPath::Words* hit_words(WorkerContext* ctx) noexcept;
void add_thread_counts(WorkerContext* ctx, std::uint64_t hits, std::uint64_t local_bytes) noexcept;

struct KernelBase {
  virtual ~KernelBase() = default;
  virtual void run(hetmm::Thread& thread) = 0;
  // Thread ids [first, last) of `count`, in order, until `abort` is set. The default calls
  // run() for each; KernelImpl runs the kernel inline in its own loop.
  virtual void run_range(WorkerContext* ctx, std::size_t first, std::size_t last,
                         std::size_t count, const std::atomic<bool>& abort);
};
template <class Kernel>
struct KernelImpl final : KernelBase {
  explicit KernelImpl(Kernel k) : kernel(std::move(k)) {}
  void run(hetmm::Thread& thread) override { kernel(thread); }
  // flatten: the kernel and what it calls inline into the loop over thread ids, so that the
  // Thread stays local and its hit counters in registers (a counter in memory costs a store
  // forwarding per access), as a GPU compiler inlines a kernel's whole call tree.
  __attribute__((flatten)) void run_range(WorkerContext* ctx, std::size_t first,
                                          std::size_t last, std::size_t count,
                                          const std::atomic<bool>& abort) override;
  Kernel kernel;
};
}  // namespace detail

// ---------------------------------------------------------------------------------------------
// A kernel's view of its device thread. Every load and store goes through the device MMU.
// ---------------------------------------------------------------------------------------------
class Thread {
 public:
  std::size_t id() const { return id_; }
  std::size_t count() const { return count_; }

  // A naturally aligned access of up to 16 bytes to a page in device memory whose translation
  // the worker's TLB holds runs inline (detail::HitPath); the rest, out of line.
  template <class T>
  T load(const T* p) {
    static_assert(std::is_trivially_copyable_v<T>, "Thread::load needs a trivially copyable T");
    T value;
    void* h;
    if (enter_hit(p, detail::HitPath::kLocal, &h)) {
      __builtin_memcpy(&value, h, sizeof(T));
      leave_hit(sizeof(T));
    } else if constexpr (sizeof(T) <= 8) {
      const std::uint64_t bits = detail::thread_load_bits(worker(), p, sizeof(T));
      __builtin_memcpy(&value, &bits, sizeof(T));
    } else {
      detail::thread_load(worker(), p, &value, sizeof(T));
    }
    return value;
  }
  template <class T>
  void store(T* p, T value) {
    static_assert(std::is_trivially_copyable_v<T>, "Thread::store needs a trivially copyable T");
    void* h;
    if (enter_hit(p, detail::HitPath::kLocal | detail::HitPath::kWrite, &h)) {
      __builtin_memcpy(h, &value, sizeof(T));
      leave_hit(sizeof(T));
    } else if constexpr (sizeof(T) <= 8) {
      std::uint64_t bits = 0;
      __builtin_memcpy(&bits, &value, sizeof(T));
      detail::thread_store_bits(worker(), p, bits, sizeof(T));
    } else {
      detail::thread_store(worker(), p, &value, sizeof(T));
    }
  }
  template <class T>
  T atomic_add(T* p, T value) {  // returns the previous value
    static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>,
                  "Thread::atomic_add needs an integral T");
    return static_cast<T>(detail::thread_atomic_add(
        worker(), p, static_cast<std::uint64_t>(value), sizeof(T)));
  }

  // The span fast path: visits the n elements at p in pieces that never cross a page, with one
  // translation per page instead of one per access. read_span calls f(const T* piece,
  // std::size_t count) with the data; write_span calls f(T* piece, std::size_t count), which
  // must fill the piece (its prior contents are unspecified), and stores it. f runs while the
  // device holds the page's translation: it must be short and must not block, launch, call the
  // runtime or use this Thread's other accesses. p must be aligned for T. Errors as load/store.
  template <class T, class F>
  void read_span(const T* p, std::size_t n, F&& f) {
    static_assert(std::is_trivially_copyable_v<T> && (sizeof(T) & (sizeof(T) - 1)) == 0 &&
                      sizeof(T) <= 4096,
                  "read_span needs a trivially copyable T whose size is a power of two");
    detail::SpanCursor c{worker(), p, n * sizeof(T), false};
    while (const void* piece = detail::span_next(c))
      f(static_cast<const T*>(piece), c.piece_bytes / sizeof(T));
  }
  template <class T, class F>
  void write_span(T* p, std::size_t n, F&& f) {
    static_assert(std::is_trivially_copyable_v<T> && (sizeof(T) & (sizeof(T) - 1)) == 0 &&
                      sizeof(T) <= 4096,
                  "write_span needs a trivially copyable T whose size is a power of two");
    detail::SpanCursor c{worker(), p, n * sizeof(T), true};
    while (void* piece = const_cast<void*>(detail::span_next(c)))
      f(static_cast<T*>(piece), c.piece_bytes / sizeof(T));
  }

  Thread(detail::WorkerContext* ctx, std::size_t id, std::size_t count)
      : words_(detail::hit_words(ctx)), id_(id), count_(count) {}
  // A copy counts its own accesses from zero (each hands its counts over when it ends).
  Thread(const Thread& o) : words_(o.words_), id_(o.id_), count_(o.count_) {}
  Thread& operator=(const Thread& o) {
    if (this != &o) {
      if (counts_ != 0) spill_counts();
      words_ = o.words_;
      id_ = o.id_;
      count_ = o.count_;
    }
    return *this;
  }
  // Hands the hits counted inline to the worker's counters (DeviceStats).
  ~Thread() {
    if (counts_ != 0) spill_counts();
  }
  detail::WorkerContext* worker_context() const { return worker(); }  // for hetmm's launchers

 private:
  template <class K>
  friend struct detail::KernelImpl;

  // Enters the protocol for an access of T at p and sets *frame, or returns false (protocol
  // left): the caller goes out of line. The words' address lives in the Thread, so that it
  // stays in a register.
  template <class T>
  bool enter_hit(const T* p, std::uint64_t need, void** frame) {
    constexpr std::size_t n = sizeof(T);
    if constexpr (n > 16 || (n & (n - 1)) != 0) {
      return false;
    } else {
      const auto va = reinterpret_cast<std::uintptr_t>(p);
      // Naturally aligned: the access stays in its page.
      if ((va & (n - 1)) != 0) return false;
      const std::uint64_t vpn = va >> detail::HitPath::kPageShift;
      const detail::TlbEntry& e = words_->tlb[detail::HitPath::slot(vpn)];
      const std::uint64_t tlb_epoch = words_->tlb_epoch;
      if (detail::HitPath::publish(words_, tlb_epoch) == tlb_epoch && e.vpn == vpn &&
          (e.pte & need) == need) {
        *frame = reinterpret_cast<void*>((e.pte & detail::HitPath::kAddrMask) |
                                         (va & detail::HitPath::kPageMask));
        return true;
      }
      detail::HitPath::leave(words_);
      return false;
    }
  }
  void leave_hit(std::size_t n) {
    detail::HitPath::leave(words_);
    counts_ += (std::uint64_t{1} << detail::HitPath::kHitShift) | n;
    if (static_cast<std::int64_t>(counts_) < 0) [[unlikely]]
      spill_counts();
  }
  void spill_counts() {
    detail::add_thread_counts(worker(), counts_ >> detail::HitPath::kHitShift,
                              counts_ & detail::HitPath::kBytesMask);
    counts_ = 0;
  }
  // The worker (nullptr outside a kernel), read through words_ on the out-of-line path: the
  // loop keeps one pointer live.
  detail::WorkerContext* worker() const { return words_->worker; }

  detail::HitPath::Words* words_;
  std::uint64_t counts_ = 0;  // HitPath::kHitShift
  std::size_t id_;
  std::size_t count_;
};

template <class Kernel>
void detail::KernelImpl<Kernel>::run_range(WorkerContext* ctx, std::size_t first,
                                           std::size_t last, std::size_t count,
                                           const std::atomic<bool>& abort) {
  // One Thread for the run: its counters stay in registers when the kernel inlines here.
  Thread t(ctx, first, count);
  for (std::size_t id = first; id < last && !abort.load(std::memory_order_relaxed); ++id) {
    t.id_ = id;
    kernel(t);
  }
}

// ---------------------------------------------------------------------------------------------
// A device. Operations are the analogue of the kernel dmirror driver's ioctls.
// ---------------------------------------------------------------------------------------------
class Device {
 public:
  std::size_t index() const { return index_; }
  std::size_t memory_capacity() const;
  std::size_t memory_used() const;

  // The device reads process memory [addr, addr+len) into the host buffer out.
  AccessResult read(const void* addr, void* out, std::size_t len);
  // The device writes the host buffer in into process memory [addr, addr+len).
  AccessResult write(void* addr, const void* in, std::size_t len);
  // Private anonymous pages move into device memory; the CPU copy is revoked.
  AccessResult migrate_to_device(const void* addr, std::size_t len);
  // Pages in this device's memory move back to system memory.
  AccessResult migrate_to_system(const void* addr, std::size_t len);
  // One entry per page of [addr, addr+len); never faults.
  std::vector<PageState> snapshot(const void* addr, std::size_t len);

  // Runs kernel(Thread&) for thread ids [0, threads) on the device's workers, asynchronously.
  template <class Kernel>
  void launch(std::size_t threads, Kernel kernel) {
    launch_erased(threads, std::make_unique<detail::KernelImpl<Kernel>>(std::move(kernel)));
  }
  // Runs a SPIR-V kernel over an NDRange, asynchronously: work-groups are spread over the
  // device's workers. args: pointers (process addresses), scalars by value, LocalMemory for
  // __local arguments; their count and sizes are checked against the kernel's signature
  // (Error invalid_argument). local.x == 0 lets the runtime choose the work-group size; a
  // global size that local does not divide gives a smaller last group (OpenCL 2.0).
  template <class... Args>
  void launch(const Program& program, std::string_view kernel, NDRange global, NDRange local,
              Args... args) {
    std::vector<detail::LaunchArg> packed;
    packed.reserve(sizeof...(Args));
    (packed.push_back(detail::make_launch_arg(args)), ...);
    launch_program(program, kernel, global, local, std::move(packed));
  }
  void launch_program(const Program& program, std::string_view kernel, NDRange global,
                      NDRange local, std::vector<detail::LaunchArg> args);
  // With a global work offset (OpenCL's global_work_offset): get_global_id(d) runs from
  // global_offset[d] to global_offset[d] + global size - 1.
  void launch_program(const Program& program, std::string_view kernel, NDRange global,
                      NDRange local, std::vector<detail::LaunchArg> args,
                      const std::array<std::size_t, 3>& global_offset);
  // Completion of one launch, for callers that must not block on synchronize (an OpenCL
  // event): runs on a device thread once the kernel has finished and its state is destroyed,
  // with nullptr or the kernel's error (which synchronize then does not rethrow). It must not
  // launch, synchronize or wait for the device. A launch that throws never calls it.
  using Completion = std::function<void(std::exception_ptr)>;
  void launch_program(const Program& program, std::string_view kernel, NDRange global,
                      NDRange local, std::vector<detail::LaunchArg> args,
                      const std::array<std::size_t, 3>& global_offset, Completion done);
  void synchronize();  // waits for launched kernels; rethrows a kernel's error as hetmm::Error
  void release();      // every page home, device memory freed

  DeviceStats stats() const;

  Device(detail::RuntimeImpl* runtime, std::size_t index) : rt_(runtime), index_(index) {}
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

 private:
  void launch_erased(std::size_t threads, std::unique_ptr<detail::KernelBase> kernel,
                     Completion done = {});
  detail::RuntimeImpl* rt_;
  std::size_t index_;
};

// ---------------------------------------------------------------------------------------------
// The runtime: devices, the mirror of the address space, host tracking.
// ---------------------------------------------------------------------------------------------
class Runtime {
 public:
  explicit Runtime(const Options& options = {});
  ~Runtime();  // every page home first: no byte lost
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  std::size_t device_count() const;
  Device& device(std::size_t index);
  Tracking tracking() const;
  // Why this tracking mode was chosen, and what it can promise (for `hetmm info`).
  std::string tracking_reason() const;
  // True when hetmm's munmap/mprotect/madvise/mremap/mmap hooks are interposed in this process.
  bool hooks_active() const;
  // The kernel features hetmm uses and whether this machine has them, one "name: value" a line.
  std::string kernel_features() const;

  void* allocate(std::size_t len);  // anonymous, page-aligned, zeroed
  void deallocate(void* p);

  // Where the page holding addr lives now.
  Location location(const void* addr) const;

  // Moves [addr, addr+len) to `to` ahead of use (cudaMemPrefetchAsync, but synchronous): a
  // device: Device::migrate_to_device, evicting other pages if it must; the system: every
  // device's pages of the range come home. Same errors as those calls.
  AccessResult prefetch(const void* addr, std::size_t len, Location to);

  // Advice for [addr, addr+len) (see Advice); `where` names the location for
  // preferred_location and the device for accessed_by. unadvise removes it.
  void advise(const void* addr, std::size_t len, Advice advice, Location where = Location());
  void unadvise(const void* addr, std::size_t len, Advice advice, Location where = Location());
  // The policy for device faults on [addr, addr+len), instead of Options::policy.
  void set_policy(const void* addr, std::size_t len, PolicyProfile policy);

  // Telemetry. The residency map: one Location per page of [addr, addr+len), never faulting.
  std::vector<Location> residency(const void* addr, std::size_t len) const;
  RangeStats range_stats(const void* addr, std::size_t len) const;
  // Events recorded since the last call, oldest first (Options::event_capacity).
  std::vector<Event> take_events();
  std::uint64_t events_dropped() const;  // lost because the buffer was full

  // Faults injected so far (Options::inject).
  InjectedFaults injected_faults() const;

  // Checks the runtime's bookkeeping against its invariants (docs/ARCHITECTURE.md, "State of a
  // page": who owns each page, device copies, each device frame held by one page, what device
  // page tables map) and returns the first violation found, or an empty string. It takes the
  // state lock and walks every tracked block: for testers and debugging, not for hot paths.
  std::string audit();

 private:
  std::unique_ptr<detail::RuntimeImpl> impl_;
  std::vector<std::unique_ptr<Device>> devices_;
};

}  // namespace hetmm
