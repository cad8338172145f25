// Layer base: includes only the standard library and <hetmm/hetmm.hpp>.
// Lock order: every mutex of the library has a rank, and a thread takes locks only in
// increasing rank. Debug builds (!NDEBUG) check it: each thread keeps the ranks it holds, and
// blocking on a lock whose rank is not strictly greater than every rank the thread already holds
// aborts with a message naming both locks. Release builds compile the checker to nothing.
//
//   rank  lock                                    may take inside it
//   1     launch        SimDevice::launch_mutex_  alloc, state, ... (only through user code and
//                       (per device)              faults: a kernel's destructor runs under it)
//   2     alloc         RuntimeImpl::alloc_mutex_ state, ... (only through a CPU fault: the
//                       (per runtime)             std::map it guards is malloc'ed, and a malloc
//                                                 touching a page revoked under mprotect tracking
//                                                 serves the fault in this thread)
//   3     state         StateLock (per runtime)   uffd_own_removes, arena
//   4     uffd_own_removes  UffdTracker::own_mutex_  nothing
//   5     fault_buffer  FaultBuffer::mutex_       nothing; taken with no other lock held
//                       (per device)
//   6     arena         the runtime memory pool   nothing
//                       (os/arena.cpp, process-wide)
//   7     telemetry     EventLog::take_mutex_     nothing; it serialises take() only (record()
//                       (per runtime)             takes no lock), and take() touches nothing
//                                                 but runtime memory under it
//
// Evidence for the edges: the mirror allocates blocks and page-table leaves from runtime memory
// (arena) and a userfaultfd revocation announces its REMOVE (uffd_own_removes) with the state
// lock held; a thread holding alloc or launch may fault on a revoked page, and under mprotect
// tracking the SIGSEGV handler takes the state lock in that thread. Nothing is ever taken under
// uffd_own_removes, fault_buffer, arena or telemetry.
//
// Two locks of the same rank never nest, with one exception: fork's prepare handler takes the
// state lock of every live runtime, in registry slot order (StateLock::lock_nested).
//
// try_lock never blocks, so it cannot deadlock and is not checked against the order; a
// successful try_lock is recorded like a lock. The record is a fixed thread_local array (no
// malloc, initial-exec TLS) and the message goes out with write(2): the checker runs on the
// fault path and in the SIGSEGV handler.
//
// Every layer (os/ included) uses it.
#pragma once

#include <mutex>

namespace hetmm::base::lock_order {

enum class Rank : unsigned char {
  launch = 1,
  alloc,
  state,
  uffd_own_removes,
  fault_buffer,
  arena,
  telemetry,
};

const char* name(Rank r);

#ifndef NDEBUG
inline constexpr bool kChecked = true;
// Before blocking on a lock of rank r: aborts unless r is above every rank held (or, with
// nested, not below any of them). Records the hold.
void acquire(Rank r, bool nested = false);
// After a successful try_lock: records the hold without checking.
void acquired_try(Rank r);
// After unlocking: forgets the most recent hold of r (aborts if r is not held).
void release(Rank r);
// How many locks the calling thread holds (for tests).
unsigned held_count();
#else
inline constexpr bool kChecked = false;
inline void acquire(Rank, bool = false) {}
inline void acquired_try(Rank) {}
inline void release(Rank) {}
inline unsigned held_count() { return 0; }
#endif

// A std::mutex with a rank. Lockable: use it with std::lock_guard / std::unique_lock.
template <Rank R>
class RankedMutex {
 public:
  static constexpr Rank rank = R;

  constexpr RankedMutex() noexcept = default;
  RankedMutex(const RankedMutex&) = delete;
  RankedMutex& operator=(const RankedMutex&) = delete;

  void lock() {
    acquire(R);
    m_.lock();
  }
  // Same rank allowed (see the exception above).
  void lock_nested() {
    acquire(R, /*nested=*/true);
    m_.lock();
  }
  bool try_lock() {
    if (!m_.try_lock()) return false;
    acquired_try(R);
    return true;
  }
  void unlock() {
    m_.unlock();
    release(R);
  }
  // The plain mutex, for std::condition_variable (see UniqueLock).
  std::mutex& native() { return m_; }

 private:
  std::mutex m_;
};

// std::unique_lock over a RankedMutex whose std::unique_lock<std::mutex> a std::condition_variable
// can wait on (condition_variable_any would allocate its own mutex from malloc). The hold stays
// recorded while the wait has the mutex released: the thread holds nothing else meanwhile
// that it did not hold when it first took the lock, so re-taking it keeps the order.
template <Rank R>
class UniqueLock {
 public:
  explicit UniqueLock(RankedMutex<R>& m) : lock_((acquire(R), m.native())) {}
  ~UniqueLock() {
    if (lock_.owns_lock()) unlock();
  }
  UniqueLock(const UniqueLock&) = delete;
  UniqueLock& operator=(const UniqueLock&) = delete;

  void unlock() {
    lock_.unlock();
    release(R);
  }
  std::unique_lock<std::mutex>& get() { return lock_; }

 private:
  std::unique_lock<std::mutex> lock_;
};

}  // namespace hetmm::base::lock_order
