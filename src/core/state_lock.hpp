// Layer core: includes base, os, device, telemetry, policy.
// The mirror's state lock: the analogue of a driver's "update lock" in the kernel's interval
// notifier protocol. It records its holder so that the CPU fault paths can tell a fault raised
// by the holder itself (which must be served without the lock) from everyone else's.
//
// Rule: no malloc, no exception construction and no touch of possibly-revoked user memory
// while holding it (a thread in malloc may be the one faulting on a revoked page).
//
// Its place in the lock order (base/lock_order.hpp): rank `state`. Only the runtime memory
// pool and the userfaultfd own-REMOVE list may be taken inside it.
#pragma once

#include "base/lock_order.hpp"

#include <atomic>
#include <cstdint>
#include <mutex>
#include <sched.h>
#include <sys/types.h>

namespace hetmm::core {

pid_t current_tid();
// In a forked child (fork's child handler): the cached id is the parent's thread's.
void forget_current_tid();

class StateLock {
 public:
  void lock() {
    mutex_.lock();
    acquired();
  }
  // For the hooks of CPU-side changes and fork's prepare handler: they hold every runtime's
  // state lock at once, taking them in registry slot order (the one exception to "no two locks
  // of one rank").
  void lock_nested() {
    mutex_.lock_nested();
    acquired();
  }
  // Never blocks, so never checked against the lock order (the hold is still recorded).
  bool try_lock() {
    if (!mutex_.try_lock()) return false;
    acquired();
    return true;
  }

  // Deferred work: changes that happened to the address space while the lock was busy (the
  // userfaultfd handler's UNMAP/REMOVE/REMAP events). Whoever takes the lock next runs `fn`
  // first, before it looks at any state, so no holder ever acts on a mapping the kernel has
  // already changed. post_deferred() is lock-free; take_deferred() is for `fn`, lock held.
  void set_deferred_work(void (*fn)(void*), void* arg) {
    deferred_fn_ = fn;
    deferred_arg_ = arg;
  }
  void post_deferred() { deferred_.store(true, std::memory_order_seq_cst); }
  // The userfaultfd handler is between reading events and queueing them (its thread id):
  // whoever else takes the lock meanwhile waits for the queue to be complete. The handler
  // takes no lock while reading, so the wait is short.
  void begin_reading(pid_t reader) { reading_.store(reader, std::memory_order_seq_cst); }
  void end_reading() { reading_.store(0, std::memory_order_seq_cst); }
  // Clears the flag; the caller then takes everything posted so far (a post after this sets
  // it again, for the next holder).
  void take_deferred() { deferred_.store(false, std::memory_order_seq_cst); }
  void unlock() {
    // End of a write section: the sequence turns even again (see begin_invalidate).
    std::uint64_t s = seq_.load(std::memory_order_relaxed);
    if (s & 1) seq_.store(s + 1, std::memory_order_release);
    owner_.store(0, std::memory_order_relaxed);
    mutex_.unlock();
  }

  // The interval-notifier sequence count. A holder that is about to tear down device mappings
  // or change the CPU side calls begin_invalidate(): the count turns odd until unlock. A
  // resolver that read the memory map without the lock accepts it only if the count was even
  // when it started and is unchanged now (mmu_interval_read_begin / read_retry).
  void begin_invalidate() {
    std::uint64_t s = seq_.load(std::memory_order_relaxed);
    if (!(s & 1)) seq_.store(s + 1, std::memory_order_release);
  }
  std::uint64_t read_begin() const { return seq_.load(std::memory_order_acquire); }
  bool read_retry(std::uint64_t seq) const {
    return (seq & 1) != 0 || seq_.load(std::memory_order_acquire) != seq;
  }
  pid_t owner() const { return owner_.load(std::memory_order_relaxed); }
  bool held_by_me() const { return owner() == current_tid(); }

 private:
  void acquired() {
    pid_t me = current_tid();
    owner_.store(me, std::memory_order_relaxed);
    for (pid_t r; (r = reading_.load(std::memory_order_seq_cst)) != 0 && r != me;) sched_yield();
    if (deferred_.load(std::memory_order_seq_cst) && deferred_fn_ != nullptr)
      deferred_fn_(deferred_arg_);
  }

  base::lock_order::RankedMutex<base::lock_order::Rank::state> mutex_;
  std::atomic<bool> deferred_{false};
  std::atomic<pid_t> reading_{0};
  void (*deferred_fn_)(void*) = nullptr;
  void* deferred_arg_ = nullptr;
  std::atomic<pid_t> owner_{0};
  std::atomic<std::uint64_t> seq_{0};
};

}  // namespace hetmm::core
