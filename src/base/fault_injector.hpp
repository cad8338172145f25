// Layer base: includes only the standard library and <hetmm/hetmm.hpp>.
// Fault injection: makes device frame allocations, copy-engine transfers and userfaultfd ioctls
// fail, and the fault service thread, device workers and CPU-side changes (the interposed
// munmap & co., between their teardown and their system call) stall, and the userfaultfd
// handler leave events to others, at chosen rates, so that tests can show every failure ends in a defined outcome (docs/RELIABILITY.md lists them).
//
// Compiled in always; off unless Options::inject sets a rate. When off, a site costs one
// load of a bool that is false for the runtime's life (a predicted branch). fire() is
// lock-free and async-signal-safe (one atomic add, no allocation): it is called on the fault
// path, under the state lock and in the userfaultfd handler. The fault path reads it, so the
// runtime allocates it in runtime memory (api/runtime_impl.hpp).
#pragma once

#include <hetmm/hetmm.hpp>

#include <atomic>
#include <cstdint>

namespace hetmm::base {

class FaultInjector {
 public:
  enum Point : unsigned {
    frame_alloc,
    copy,
    uffd_ioctl,
    service_delay,
    worker_stall,
    host_change,
    event_defer,
    move_miscount,
    decision_delay,
    kPoints
  };

  FaultInjector() = default;
  explicit FaultInjector(const FaultInjection& config);

  bool enabled() const { return enabled_; }
  // True when this occurrence of `p` must fail (and counts it).
  bool fire(Point p) {
    if (__builtin_expect(!enabled_, 1)) return false;
    return fire_slow(p);
  }
  // Sleeps up to the configured maximum when `p` fires (service delays, worker stalls).
  void maybe_stall(Point p) {
    if (__builtin_expect(!enabled_, 1)) return;
    if (fire_slow(p)) stall();
  }
  // An errno for an injected userfaultfd ioctl failure: EAGAIN or ENOMEM.
  int ioctl_errno();
  std::uint64_t count(Point p) const { return count_[p].load(std::memory_order_relaxed); }
  InjectedFaults counts() const;

 private:
  bool fire_slow(Point p);
  std::uint64_t next();
  void stall();

  bool enabled_ = false;
  std::uint64_t threshold_[kPoints] = {};  // fire when a uniform 64-bit draw is below this
  unsigned max_delay_us_ = 0;
  std::atomic<std::uint64_t> state_{0};
  std::atomic<std::uint64_t> count_[kPoints] = {};
};

}  // namespace hetmm::base
