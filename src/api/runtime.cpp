#include "api/runtime_impl.hpp"

#include "os/page.hpp"
#include "os/pagemap.hpp"
#include "os/uffd.hpp"
#include "os/syscalls.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <sys/mman.h>

namespace hetmm::detail {

std::string describe(const char* what, std::size_t device, const void* addr, std::size_t len) {
  char buf[192];
  if (device == ~std::size_t{0})
    std::snprintf(buf, sizeof buf, "%s of %zu bytes at %p", what, len, addr);
  else
    std::snprintf(buf, sizeof buf, "device %zu: %s of %zu bytes at %p", device, what, len, addr);
  return buf;
}

// The end of the address space any process can map (5-level paging: 57-bit addresses).
constexpr std::uintptr_t kAddressLimit = std::uintptr_t{1} << 57;
constexpr unsigned kMaxWorkers = 1024;
constexpr std::size_t kMaxDeviceMemory = std::size_t{1} << 44;

void check_range(const char* what, std::size_t device, const void* addr, std::size_t len) {
  auto a = reinterpret_cast<std::uintptr_t>(addr);
  if (addr == nullptr)
    throw Error(Errc::invalid_argument, describe(what, device, addr, len) + ": null address");
  if (len == 0)
    throw Error(Errc::invalid_argument, describe(what, device, addr, len) + ": zero length");
  if (a + len < a || os::page_up(a + len) < a + len)
    throw Error(Errc::invalid_argument, describe(what, device, addr, len) + ": range wraps");
  // The mirror's block table and the device page tables index 57-bit addresses: a higher one
  // would alias a user page (and no process can map one anyway).
  if (os::page_up(a + len) > kAddressLimit)
    throw Error(Errc::invalid_argument,
                describe(what, device, addr, len) + ": range ends beyond the user address space");
  if (tls_worker != nullptr)
    throw Error(Errc::invalid_argument,
                describe(what, device, addr, len) + ": not callable from inside a kernel");
}

RuntimeImpl::RuntimeImpl(const Options& options) : options_(options) {
  if (options.devices == 0 || options.devices > 32)
    throw Error(Errc::invalid_argument,
                "Options::devices must be 1..32, got " + std::to_string(options.devices));
  for (double v : {options.link.bandwidth_gbs, options.link.latency_us, options.link.fault_us,
                   options.link.local_bandwidth_gbs})
    if (!(v >= 0) || v > 1e12)
      throw Error(Errc::invalid_argument,
                  "Options::link: every rate and cost must be a finite number >= 0");
  const UvmParameters& u = options.uvm;
  auto check_param = [](const char* name, unsigned v, unsigned lo, unsigned hi) {
    if (v < lo || v > hi)
      throw Error(Errc::invalid_argument, std::string("Options::uvm.") + name + " must be " +
                                              std::to_string(lo) + ".." + std::to_string(hi) +
                                              " (the driver's range), got " + std::to_string(v));
  };
  check_param("uvm_perf_prefetch_threshold", u.uvm_perf_prefetch_threshold, 1, 100);
  check_param("uvm_perf_prefetch_min_faults", u.uvm_perf_prefetch_min_faults, 1, 20);
  check_param("uvm_perf_thrashing_threshold", u.uvm_perf_thrashing_threshold, 1, 7);
  check_param("uvm_perf_thrashing_pin_threshold", u.uvm_perf_thrashing_pin_threshold, 1, 255);
  check_param("uvm_perf_thrashing_lapse_usec", u.uvm_perf_thrashing_lapse_usec, 1, 1000000);
  check_param("uvm_perf_thrashing_nap", u.uvm_perf_thrashing_nap, 1, 100);
  check_param("uvm_perf_thrashing_epoch", u.uvm_perf_thrashing_epoch, 1, 100000);
  check_param("uvm_perf_thrashing_pin", u.uvm_perf_thrashing_pin, 0, 100000);
  if (options.policy != PolicyProfile::hetmm && options.policy != PolicyProfile::uvm &&
      options.policy != PolicyProfile::in_place)
    throw Error(Errc::invalid_argument, "Options::policy is not a PolicyProfile value: " +
                                            std::to_string(static_cast<int>(options.policy)));
  if (!(options.max_oversubscription >= 0) || options.max_oversubscription > 1e6)
    throw Error(Errc::invalid_argument,
                "Options::max_oversubscription must be 0 (off) or a factor like 1.5");
  // Each worker is a thread with its own stack and TLB: a huge count would exhaust the process
  // (or spin for hours creating them) before failing.
  if (options.workers > kMaxWorkers)
    throw Error(Errc::invalid_argument, "Options::workers must be 0.." +
                                            std::to_string(kMaxWorkers) + ", got " +
                                            std::to_string(options.workers));
  // Device frames are numbered with 32 bits (FramePool): at most 2^32 frames of 4 KiB.
  if (options.device_memory > kMaxDeviceMemory)
    throw Error(Errc::invalid_argument, "Options::device_memory must be at most 16 TiB, got " +
                                            std::to_string(options.device_memory));
  if (options.tracking != Tracking::automatic && options.tracking != Tracking::userfaultfd &&
      options.tracking != Tracking::mprotect)
    throw Error(Errc::invalid_argument,
                "Options::tracking is not a Tracking value: " +
                    std::to_string(static_cast<int>(options.tracking)));
  if (options.device_memory % os::kPageSize != 0)
    throw Error(Errc::invalid_argument, "Options::device_memory must be a multiple of 4096, got " +
                                            std::to_string(options.device_memory));
  if (options.event_capacity > telemetry::EventLog::kMaxCapacity)
    throw Error(Errc::invalid_argument,
                "Options::event_capacity must be at most " +
                    std::to_string(telemetry::EventLog::kMaxCapacity) + " events, got " +
                    std::to_string(options.event_capacity));
  injector_ = std::make_unique<Injector>(options.inject);
  if (options.event_capacity != 0)
    events_ = std::make_unique<telemetry::EventLog>(options.event_capacity);
  core::HostTracker* tracker = nullptr;
  if (options.tracking != Tracking::mprotect) {
    std::string why;
    uffd_.reset(host::UffdTracker::open(options.userfaultfd_user_mode_only, injector_.get(), &why));
    if (uffd_) {
      tracking_ = Tracking::userfaultfd;
      tracker = uffd_.get();
      reason_ = uffd_->user_mode_only()
                    ? "userfaultfd, user-mode only (unprivileged or forced): CPU faults are served; "
                      "system calls that touch device-resident pages fail with EFAULT"
                    : "userfaultfd: CPU faults and faults inside system calls are served";
    } else if (options.tracking == Tracking::userfaultfd) {
      throw Error(Errc::unsupported, why);
    } else {
      reason_ = why + "; falling back to mprotect + SIGSEGV";
    }
  }
  if (tracker == nullptr) {
    mprot_ = std::make_unique<host::MprotectTracker>();
    tracker = mprot_.get();
    tracking_ = Tracking::mprotect;
    if (reason_.empty()) reason_ = "mprotect requested";
    reason_ += " (system calls that touch device-resident pages fail with EFAULT)";
  }
  mirror_ = std::make_unique<core::Mirror>(tracker, options.devices, options.policy,
                                          options.uvm);
  mirror_->set_event_log(events_.get());
  mirror_->set_link(options.link);
  mirror_->set_fault_injector(injector_.get());
  // Hooks that did not take hold mean libhetmm came after libc in symbol lookup: it was
  // dlopen'ed (the OpenCL loader), and the dynamic linker's records of it are on the heap.
  mirror_->keep_brk_heap_in_place(!host::hooks_interposed());
  if (options.max_oversubscription > 0)
    mirror_->set_mapping_limit(std::max<std::size_t>(
        1, static_cast<std::size_t>(options.max_oversubscription *
                                    static_cast<double>(options.device_memory / os::kPageSize))));
  for (std::size_t i = 0; i < options.devices; ++i) {
    devices_.push_back(std::make_unique<device::sim::SimDevice>(
        i, options.device_memory, options.workers, mirror_.get(), injector_.get(),
        options.zero_copy_moves && uffd_ && uffd_->can_move()));
    devices_.back()->set_event_log(events_.get());
    mirror_->attach(i, devices_.back().get());
  }
  for (auto& d : devices_) d->start();
  if (uffd_) uffd_->start(mirror_.get());
  registered_.mirror = mirror_.get();
  registered_.mprotect_tracking = tracking_ == Tracking::mprotect;
  registered_ok_ = host::register_runtime(&registered_);
  if (!registered_ok_) {
    for (auto& d : devices_) d->stop();
    if (uffd_) uffd_->stop();
    throw Error(Errc::busy, "too many hetmm runtimes in this process (at most 16)");
  }
}

RuntimeImpl::~RuntimeImpl() {
  if (void* p = staging_cache_.exchange(nullptr)) os::unmap_runtime_memory(p, kStagingCached);
  if (registered_.orphaned.load()) {
    // A forked child: the threads belong to the parent. Forget them without joining.
    for (auto& d : devices_) d->abandon_threads();
    if (uffd_) uffd_->abandon();
    return;
  }
  for (auto& d : devices_) {
    try {
      d->synchronize();
    } catch (...) {
      // A kernel's error nobody collected: the runtime is going away regardless.
    }
  }
  mirror_->bring_all_home();
  host::unregister_runtime(&registered_);
  for (auto& d : devices_) d->stop();
  if (uffd_) uffd_->stop();
  // Allocations the program did not free stay mapped: their pointers may still be in use.
}

std::string RuntimeImpl::kernel_features() const {
  std::string out;
  auto line = [&](const char* name, const std::string& value) {
    out += name;
    out += ": ";
    out += value;
    out += "\n";
  };
  if (uffd_) {
    std::uint64_t f = uffd_->features();
    std::string s;
    auto has = [&](std::uint64_t bit, const char* name) {
      if (f & bit) s += std::string(s.empty() ? "" : " ") + name;
    };
    has(UFFD_FEATURE_PAGEFAULT_FLAG_WP, "WP");
    has(UFFD_FEATURE_THREAD_ID, "THREAD_ID");
    has(UFFD_FEATURE_EVENT_UNMAP, "EVENT_UNMAP");
    has(UFFD_FEATURE_EVENT_REMAP, "EVENT_REMAP");
    has(UFFD_FEATURE_MISSING_SHMEM, "MISSING_SHMEM");
    has(os::kUffdFeatureMove, "MOVE");
    line("userfaultfd features", s + (uffd_->user_mode_only() ? " (user-mode only)" : ""));
  } else {
    line("userfaultfd features", "not in use");
  }
  // Whether whole blocks move without a copy, and if not, why (Options::zero_copy_moves).
  std::string moves = !options_.zero_copy_moves ? "off (Options::zero_copy_moves)"
                      : !uffd_                  ? "no (needs userfaultfd tracking)"
                      : !uffd_->can_move()      ? "no (the kernel has no UFFDIO_MOVE: Linux 6.8+)"
                      : devices_.empty() || devices_[0]->movable_memory()
                          ? "yes (UFFDIO_MOVE of whole 2 MiB blocks)"
                          : "no (device memory could not be made movable)";
  line("zero-copy block moves", moves);
  line("PAGEMAP_SCAN (zero page, THP in snapshots)", os::pagemap_scan_supported() ? "yes" : "no");
  return out;
}

void* RuntimeImpl::take_staging(std::size_t len) {
  if (len <= kStagingCached) {
    if (void* p = staging_cache_.exchange(nullptr, std::memory_order_acquire)) return p;
    return os::map_runtime_memory(kStagingCached);
  }
  return os::map_runtime_memory(len);
}

void RuntimeImpl::give_staging(void* p, std::size_t len) {
  if (len > kStagingCached) {
    os::unmap_runtime_memory(p, len);
    return;
  }
  if (void* old = staging_cache_.exchange(p, std::memory_order_acq_rel))
    os::unmap_runtime_memory(old, kStagingCached);
}

void RuntimeImpl::check_usable(const char* what) const {
  if (registered_.orphaned.load())
    throw Error(Errc::device_lost, std::string(what) +
                                       ": this runtime belongs to the parent process (fork)");
}

void* RuntimeImpl::allocate(std::size_t len) {
  check_usable("allocate");
  if (len == 0) throw Error(Errc::invalid_argument, "allocate: zero length");
  // Harmless in itself, but every API call from a kernel is refused (docs/API.md): one rule.
  if (tls_worker != nullptr)
    throw Error(Errc::invalid_argument, "allocate of " + std::to_string(len) +
                                            " bytes: not callable from inside a kernel");
  if (len > (std::size_t{1} << 46))
    throw Error(Errc::invalid_argument, "allocate: " + std::to_string(len) + " bytes is too large");
  std::size_t size = os::page_up(len);
  // Large allocations are 2 MiB-aligned so that they can be backed by transparent huge pages.
  std::size_t align = size >= os::kBlockSize ? os::kBlockSize : os::kPageSize;
  std::size_t map_len = size + (align > os::kPageSize ? align : 0);
  int err = 0;
  void* p = os::sys_mmap(nullptr, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                         -1, 0, &err);
  if (p == MAP_FAILED)
    throw Error(Errc::out_of_memory, "allocate: mmap of " + std::to_string(len) + " bytes failed");
  auto base = reinterpret_cast<std::uintptr_t>(p);
  if (align > os::kPageSize) {
    std::uintptr_t aligned = os::block_up(base);
    if (aligned > base) os::sys_munmap(p, aligned - base);
    std::uintptr_t tail = aligned + size;
    if (base + map_len > tail) os::sys_munmap(reinterpret_cast<void*>(tail), base + map_len - tail);
    base = aligned;
    // Where THP is "madvise" (Debian's default) only advised memory gets huge pages. Whole huge
    // pages are what moves to and from device memory as one PMD (zero_copy_moves). The advice
    // covers the whole allocation, tail included: advising only its whole blocks split it into
    // two mappings, and prefetch, which never leaves the faulting mapping, stopped at the split.
    os::sys_madvise(reinterpret_cast<void*>(base), size, MADV_HUGEPAGE);
  }
  std::lock_guard lock(alloc_mutex_);
  allocations_[base] = size;
  return reinterpret_cast<void*>(base);
}

void RuntimeImpl::deallocate(void* p) {
  if (p == nullptr) return;
  check_usable("deallocate");
  // Unmapping takes the state lock, which workers never take (core/mirror.hpp).
  if (tls_worker != nullptr)
    throw Error(Errc::invalid_argument, describe("deallocate", ~std::size_t{0}, p, 0) +
                                            ": not callable from inside a kernel");
  auto base = reinterpret_cast<std::uintptr_t>(p);
  std::size_t size;
  {
    std::lock_guard lock(alloc_mutex_);
    auto it = allocations_.find(base);
    if (it == allocations_.end())
      throw Error(Errc::invalid_argument,
                  describe("deallocate", ~std::size_t{0}, p, 0) +
                      ": not a live allocation of this runtime (freed twice, or foreign)");
    size = it->second;
    allocations_.erase(it);
  }
  host::unmap(p, size);
}

}  // namespace hetmm::detail

namespace hetmm {

Runtime::Runtime(const Options& options) : impl_(std::make_unique<detail::RuntimeImpl>(options)) {
  for (std::size_t i = 0; i < impl_->device_count(); ++i)
    devices_.push_back(std::make_unique<Device>(impl_.get(), i));
}

Runtime::~Runtime() = default;

std::size_t Runtime::device_count() const { return devices_.size(); }

Device& Runtime::device(std::size_t index) {
  if (index >= devices_.size())
    throw Error(Errc::invalid_argument, "no device " + std::to_string(index) + " (there are " +
                                            std::to_string(devices_.size()) + ")");
  return *devices_[index];
}

Tracking Runtime::tracking() const { return impl_->tracking(); }
std::string Runtime::tracking_reason() const { return impl_->reason(); }
bool Runtime::hooks_active() const { return host::hooks_interposed(); }

std::string Runtime::kernel_features() const { return impl_->kernel_features(); }
void* Runtime::allocate(std::size_t len) { return impl_->allocate(len); }
void Runtime::deallocate(void* p) { impl_->deallocate(p); }
AccessResult Runtime::prefetch(const void* addr, std::size_t len, Location to) {
  if (!to.is_system()) return device(to.device_index()).migrate_to_device(addr, len);
  AccessResult total;
  for (auto& d : devices_) total.pages += d->migrate_to_system(addr, len).pages;
  return total;
}

InjectedFaults Runtime::injected_faults() const { return impl_->injector().counts(); }
std::string Runtime::audit() { return impl_->mirror().audit(); }

Location Runtime::location(const void* addr) const {
  auto a = reinterpret_cast<std::uintptr_t>(addr);
  auto fail = [addr](const char* why) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "location of the page at %p: %s", addr, why);
    return Error(Errc::invalid_argument, buf);
  };
  if (addr == nullptr) throw fail("null address");
  // Beyond the block table's 57 bits an address would alias a user page's state.
  if (a >= detail::kAddressLimit) throw fail("beyond the user address space");
  // The lookup takes the state lock, which workers never take (core/mirror.hpp).
  if (detail::tls_worker != nullptr) throw fail("not callable from inside a kernel");
  return impl_->mirror().location(a);
}

}  // namespace hetmm
