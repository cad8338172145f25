// The lock-order checker (base/lock_order.hpp): ranked locks taken in the wrong order abort in
// debug builds, naming both locks; the right order, try_lock and condition waits pass.
#include "base/lock_order.hpp"
#include "core/state_lock.hpp"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <thread>

namespace hetmm::test {
namespace {

using base::lock_order::Rank;
using base::lock_order::RankedMutex;

TEST(LockOrder, RightOrderPasses) {
  RankedMutex<Rank::launch> launch;
  RankedMutex<Rank::alloc> alloc;
  core::StateLock state;
  RankedMutex<Rank::uffd_own_removes> own;
  RankedMutex<Rank::arena> arena;
  unsigned before = base::lock_order::held_count();
  {
    std::lock_guard a(launch);
    std::lock_guard b(alloc);
    std::lock_guard c(state);
    std::lock_guard d(own);
    std::unique_lock e(arena);
    EXPECT_EQ(base::lock_order::held_count(), before + (base::lock_order::kChecked ? 5 : 0));
    e.unlock();
    // Released out of order, then taken again: still above everything held.
    std::lock_guard f(arena);
  }
  EXPECT_EQ(base::lock_order::held_count(), before);
  // Skipping ranks is fine.
  {
    std::lock_guard a(launch);
    std::lock_guard b(arena);
  }
  EXPECT_EQ(base::lock_order::held_count(), before);
}

TEST(LockOrder, TryLockIsRecordedButNotChecked) {
  RankedMutex<Rank::alloc> alloc;
  core::StateLock state;
  unsigned before = base::lock_order::held_count();
  std::lock_guard s(state);
  ASSERT_TRUE(alloc.try_lock());  // below state, but try_lock never blocks
  EXPECT_EQ(base::lock_order::held_count(), before + (base::lock_order::kChecked ? 2 : 0));
  alloc.unlock();
  EXPECT_EQ(base::lock_order::held_count(), before + (base::lock_order::kChecked ? 1 : 0));
}

TEST(LockOrder, ConditionWaitKeepsTheHold) {
  RankedMutex<Rank::fault_buffer> m;
  std::condition_variable cv;
  bool ready = false;
  std::thread t([&] {
    std::lock_guard g(m);
    ready = true;
    cv.notify_all();
  });
  {
    base::lock_order::UniqueLock<Rank::fault_buffer> lock(m);
    cv.wait(lock.get(), [&] { return ready; });
    EXPECT_EQ(base::lock_order::held_count(), base::lock_order::kChecked ? 1u : 0u);
  }
  t.join();
  EXPECT_EQ(base::lock_order::held_count(), 0u);
}

TEST(LockOrder, NestedStateLocksForFork) {
  core::StateLock a, b;
  a.lock_nested();
  b.lock_nested();
  b.unlock();
  a.unlock();
  EXPECT_EQ(base::lock_order::held_count(), 0u);
}

#ifndef NDEBUG
TEST(LockOrderDeathTest, WrongOrderAbortsNamingBothLocks) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  RankedMutex<Rank::launch> launch;
  core::StateLock state;
  EXPECT_DEATH(
      {
        std::lock_guard s(state);
        std::lock_guard l(launch);
      },
      "lock order violation: taking launch \\(sim device launch queue\\).*while holding state "
      "\\(mirror state lock\\)");
}

TEST(LockOrderDeathTest, SameRankAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  core::StateLock a, b;
  EXPECT_DEATH(
      {
        std::lock_guard x(a);
        std::lock_guard y(b);
      },
      "taking state \\(mirror state lock\\).*while holding state");
}
#else
TEST(LockOrderDeathTest, WrongOrderAbortsNamingBothLocks) {
  GTEST_SKIP() << "the lock-order checker is compiled out of release builds";
}
#endif

}  // namespace
}  // namespace hetmm::test
