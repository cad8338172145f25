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

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

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

// Migration policies. `hetmm` is the default; `uvm` follows the NVIDIA driver's documented
// defaults, as the peer to compare with. Today they differ in eviction: when a device runs out
// of memory, `uvm` evicts 2 MiB blocks in the order they were allocated, `hetmm` the least
// recently used (migrated or faulted on) first.
enum class PolicyProfile { hetmm, uvm };
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
  unsigned max_delay_us = 200;  // longest injected sleep
};

// How many faults were injected, by kind.
struct InjectedFaults {
  std::uint64_t frame_alloc = 0, copy = 0, uffd_ioctl = 0, service_delay = 0, worker_stall = 0;
  std::uint64_t total() const {
    return frame_alloc + copy + uffd_ioctl + service_delay + worker_stall;
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
  PolicyProfile policy = PolicyProfile::hetmm;
  LinkProfile link;  // every device's link, for DeviceStats::modeled_seconds
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
  std::uint64_t pages_to_device = 0;     // pages migrated into this device's memory
  std::uint64_t pages_to_system = 0;     // pages migrated from this device to system memory
  std::uint64_t cpu_faults = 0;          // CPU touches that brought a page home from here
  std::uint64_t pages_evicted = 0;       // pages sent home to make room for others
  std::uint64_t link_transfers = 0;      // migrated runs, both ways (device to device included)
  std::uint64_t link_bytes = 0;          // bytes those runs moved
  std::uint64_t in_place_bytes = 0;      // bytes kernels accessed in system memory, in place
  std::uint64_t local_bytes = 0;         // bytes kernels accessed in device memory
  double modeled_seconds = 0;            // the link model's time for all of the above
  std::uint64_t invalidations = 0;       // PTE ranges torn down (each with a TLB shootdown)
  std::uint64_t kernels = 0;             // kernels completed
  std::uint64_t tlb_hits = 0;
  std::uint64_t tlb_misses = 0;
};

class Thread;

namespace detail {
class RuntimeImpl;
struct WorkerContext;

// Device-memory accesses of a kernel thread: through the worker's TLB and the device page table.
// They throw hetmm::Error (fault / permission) when the access cannot be served.
void thread_load(WorkerContext* ctx, const void* p, void* out, std::size_t n);
void thread_store(WorkerContext* ctx, void* p, const void* in, std::size_t n);
std::uint64_t thread_atomic_add(WorkerContext* ctx, void* p, std::uint64_t v, std::size_t n);

struct KernelBase {
  virtual ~KernelBase() = default;
  virtual void run(hetmm::Thread& thread) = 0;
};
template <class Kernel>
struct KernelImpl final : KernelBase {
  explicit KernelImpl(Kernel k) : kernel(std::move(k)) {}
  void run(hetmm::Thread& thread) override { kernel(thread); }
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

  template <class T>
  T load(const T* p) {
    static_assert(std::is_trivially_copyable_v<T>, "Thread::load needs a trivially copyable T");
    T value;
    detail::thread_load(ctx_, p, &value, sizeof(T));
    return value;
  }
  template <class T>
  void store(T* p, T value) {
    static_assert(std::is_trivially_copyable_v<T>, "Thread::store needs a trivially copyable T");
    detail::thread_store(ctx_, p, &value, sizeof(T));
  }
  template <class T>
  T atomic_add(T* p, T value) {  // returns the previous value
    static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>,
                  "Thread::atomic_add needs an integral T");
    return static_cast<T>(detail::thread_atomic_add(
        ctx_, p, static_cast<std::uint64_t>(value), sizeof(T)));
  }

  Thread(detail::WorkerContext* ctx, std::size_t id, std::size_t count)
      : ctx_(ctx), id_(id), count_(count) {}

 private:
  detail::WorkerContext* ctx_;
  std::size_t id_;
  std::size_t count_;
};

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
  void synchronize();  // waits for launched kernels; rethrows a kernel's error as hetmm::Error
  void release();      // every page home, device memory freed

  DeviceStats stats() const;

  Device(detail::RuntimeImpl* runtime, std::size_t index) : rt_(runtime), index_(index) {}
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

 private:
  void launch_erased(std::size_t threads, std::unique_ptr<detail::KernelBase> kernel);
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

  // Faults injected so far (Options::inject).
  InjectedFaults injected_faults() const;

 private:
  std::unique_ptr<detail::RuntimeImpl> impl_;
  std::vector<std::unique_ptr<Device>> devices_;
};

}  // namespace hetmm
