// The mirror's state lock: the analogue of a driver's "update lock" in the kernel's interval
// notifier protocol. It records its holder so that the CPU fault paths can tell a fault raised
// by the holder itself (which must be served without the lock) from everyone else's.
//
// Rule: no malloc, no exception construction and no touch of possibly-revoked user memory
// while holding it (a thread in malloc may be the one faulting on a revoked page).
#pragma once

#include <atomic>
#include <mutex>
#include <sys/types.h>

namespace hetmm::core {

pid_t current_tid();

class StateLock {
 public:
  void lock() {
    mutex_.lock();
    owner_.store(current_tid(), std::memory_order_relaxed);
  }
  bool try_lock() {
    if (!mutex_.try_lock()) return false;
    owner_.store(current_tid(), std::memory_order_relaxed);
    return true;
  }
  void unlock() {
    owner_.store(0, std::memory_order_relaxed);
    mutex_.unlock();
  }
  pid_t owner() const { return owner_.load(std::memory_order_relaxed); }
  bool held_by_me() const { return owner() == current_tid(); }

 private:
  std::mutex mutex_;
  std::atomic<pid_t> owner_{0};
};

}  // namespace hetmm::core
