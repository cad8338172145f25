// Layer host: includes base, os, device, core.
// Host tracking with userfaultfd: MISSING + write-protect faults, UNMAP, REMOVE and REMAP events.
//
// Revoke: the range is registered (MISSING|WP), write-protected while its data is copied into
// device memory, then zapped with MADV_DONTNEED; a CPU touch raises a MISSING fault that the
// handler thread serves with one UFFDIO_COPY from the device frames (atomic: the page appears
// whole). Faults raised inside the kernel (read(2) into a revoked buffer) are served too, unless
// the fd is user-mode-only (unprivileged), in which case such system calls fail with EFAULT.
//
// REMOVE events: our own MADV_DONTNEED raises them too. Each revocation is announced before its
// madvise (the kernel holds the madvise until the event is read, so the announcement is always
// there when the handler reads it) and the handler drops exactly those; any other REMOVE (a
// DONTNEED that bypassed the interposed madvise) drops device-resident data like UNMAP.
// Why no UFFD_FEATURE_EVENT_FORK: every page comes home before fork (src/host/fork.cpp), so the
// child needs nothing from us; without the feature the kernel drops the child's registrations.
#pragma once

#include "os/arena.hpp"

#include "base/fault_injector.hpp"
#include "core/host_tracker.hpp"
#include "base/lock_order.hpp"
#include "core/mirror.hpp"
#include "os/os_thread.hpp"
#include "os/uffd.hpp"

#include <atomic>
#include <mutex>
#include <cstdint>
#include <string>

namespace hetmm::host {

class UffdTracker final : public core::HostTracker, public os::RuntimeAllocated {
 public:
  // Opens the fd. On failure returns nullptr and explains in *why.
  static UffdTracker* open(bool force_user_mode_only, base::FaultInjector* injector,
                           std::string* why);
  ~UffdTracker() override;

  void start(core::Mirror* mirror);
  void stop();
  void abandon();  // forked child
  bool user_mode_only() const { return user_mode_only_; }
  std::uint64_t features() const { return features_; }

  Tracking mode() const override { return Tracking::userfaultfd; }
  int prepare(std::uintptr_t start, std::size_t len, const os::Vma& vma) override;
  int freeze(std::uintptr_t start, std::size_t len) override;
  void thaw(std::uintptr_t start, std::size_t len, int prot) override;
  int revoke(std::uintptr_t start, std::size_t len) override;
  long restore_by_move(std::uintptr_t start, const void* src, std::size_t len) override;
  // Whether the kernel moves pages (UFFDIO_MOVE, Linux 6.8): devices may then take blocks by
  // remapping, since they can be moved back.
  bool can_move() const { return (features_ & os::kUffdFeatureMove) != 0; }
  int restore(std::uintptr_t start, const void* src, std::size_t len, int prot,
              std::size_t* settled) override;
  void discard(std::uintptr_t, std::size_t, int) override {}
  void quiesce() override;
  void forget(std::uintptr_t start, std::size_t len) override;
  void settle(std::uintptr_t start, std::size_t len) override;
  bool serves_kernel_faults() const override { return !user_mode_only_; }

 private:
  UffdTracker(int fd, bool umo, std::uint64_t features, base::FaultInjector* injector);
  // An injected ioctl failure (-EAGAIN or -ENOMEM), or 0.
  int injected() {
    return injector_->fire(base::FaultInjector::uffd_ioctl) ? -injector_->ioctl_errno() : 0;
  }
  static void handler_main(void* self);
  void run_handler();
  // Returns false if the fault must be retried later (state lock busy).
  bool handle_fault(std::uintptr_t addr, bool write, bool wp, pid_t tid);
  void zero_fill(std::uintptr_t page, bool write, bool write_protect);

  void note_own_remove(std::uintptr_t start, std::size_t len);
  bool take_own_remove(std::uintptr_t start, std::uintptr_t end);  // an event within ours
  void forget_own_removes(std::uintptr_t start, std::uintptr_t end);  // a revocation failed

  struct OwnRemove {
    std::uintptr_t start, end;
  };
  static constexpr std::size_t kOwnRemoves = 64;
  // Leaf lock (order: uffd_own_removes): revocations (under the state lock) and the handler.
  base::lock_order::RankedMutex<base::lock_order::Rank::uffd_own_removes> own_mutex_;
  OwnRemove own_[kOwnRemoves];
  std::size_t own_count_ = 0;

  int fd_;
  int stop_fd_;  // eventfd that wakes the handler for shutdown
  bool user_mode_only_;
  std::uint64_t features_;
  core::Mirror* mirror_ = nullptr;
  // The handler is deciding about, or serving, a fault on a page that is not hetmm's, without
  // the state lock (quiesce() waits for it). Written by the handler thread only.
  std::atomic<bool> unlocked_decision_{false};
  base::FaultInjector* injector_;
  os::OsThread handler_;
  void* zero_page_;
};

}  // namespace hetmm::host
