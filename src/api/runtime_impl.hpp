// Layer api: includes every layer but spirv.
// The runtime behind hetmm::Runtime: host tracking, the mirror, the devices, and its entry in
// the process-wide registry.
#pragma once

#include "os/arena.hpp"

#include "base/fault_injector.hpp"
#include "base/lock_order.hpp"
#include "core/mirror.hpp"
#include "device/sim/sim_device.hpp"
#include "host/mprotect_tracker.hpp"
#include "host/registry.hpp"
#include "host/uffd_tracker.hpp"
#include "telemetry/event_log.hpp"

#include <hetmm/hetmm.hpp>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace hetmm::detail {

class RuntimeImpl : public os::RuntimeAllocated {
 public:
  explicit RuntimeImpl(const Options& options);
  ~RuntimeImpl();

  void check_usable(const char* what) const;
  device::sim::SimDevice& device(std::size_t i) { return *devices_[i]; }
  std::size_t device_count() const { return devices_.size(); }
  core::Mirror& mirror() { return *mirror_; }
  Tracking tracking() const { return tracking_; }
  const std::string& reason() const { return reason_; }
  std::string kernel_features() const;
  base::FaultInjector& injector() { return *injector_; }
  const LinkProfile& link() const { return options_.link; }
  // Null when Options::event_capacity is 0, so that a recording site costs one branch:
  //   if (auto* log = rt.events()) log->record(...);
  telemetry::EventLog* events() const { return events_.get(); }

  // Staging buffers for Device::read/write (runtime memory, page-rounded lengths). Buffers up
  // to kStagingCached bytes are kept in a one-slot cache between calls; lock-free.
  static constexpr std::size_t kStagingCached = 256 * 1024;
  void* take_staging(std::size_t len);
  void give_staging(void* p, std::size_t len);

  void* allocate(std::size_t len);
  void deallocate(void* p);

 private:
  Options options_;
  // In runtime memory: the fault path reads it (base/ knows nothing of runtime memory).
  struct Injector : base::FaultInjector, os::RuntimeAllocated {
    using base::FaultInjector::FaultInjector;
  };
  std::unique_ptr<Injector> injector_;  // before everything that uses it
  std::unique_ptr<telemetry::EventLog> events_;    // likewise: the mirror and devices record
  Tracking tracking_ = Tracking::mprotect;
  std::string reason_;
  std::unique_ptr<host::UffdTracker> uffd_;
  std::unique_ptr<host::MprotectTracker> mprot_;
  std::unique_ptr<core::Mirror> mirror_;
  std::vector<std::unique_ptr<device::sim::SimDevice>> devices_;
  host::Registered registered_;
  bool registered_ok_ = false;
  std::atomic<void*> staging_cache_{nullptr};  // kStagingCached bytes, or null
  base::lock_order::RankedMutex<base::lock_order::Rank::alloc> alloc_mutex_;
  std::map<std::uintptr_t, std::size_t> allocations_;  // base -> mapped length
};

// Argument checks shared by the API entry points; they throw Error(invalid_argument).
void check_range(const char* what, std::size_t device, const void* addr, std::size_t len);
std::string describe(const char* what, std::size_t device, const void* addr, std::size_t len);

}  // namespace hetmm::detail
