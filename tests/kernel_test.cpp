// Kernels on the sim device: every access through the device MMU, errors at synchronize.
#include "test_support.hpp"

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <thread>

namespace hetmm::test {
namespace {

class Kernels : public Tracked {};
HETMM_BOTH_MODES(Kernels);

TEST_P(Kernels, ComputeOnStdVectorInPlace) {
  Runtime rt(options());
  std::vector<int> v(100000);
  std::iota(v.begin(), v.end(), 0);
  int* p = v.data();
  rt.device(0).launch(v.size(), [p](Thread& t) { t.store(p + t.id(), t.load(p + t.id()) * 3); });
  rt.device(0).synchronize();
  for (std::size_t i = 0; i < v.size(); ++i) ASSERT_EQ(v[i], static_cast<int>(i) * 3);
  EXPECT_GT(rt.device(0).stats().faults, 0u);
  EXPECT_EQ(rt.device(0).stats().kernels, 1u);
}

TEST_P(Kernels, ComputeOnMigratedMemoryThenCpuReads) {
  Runtime rt(options());
  const std::size_t n = 1 << 18;
  std::vector<float> a(n, 1.5f), c(n, 0.0f);
  rt.device(0).migrate_to_device(a.data(), n * sizeof(float));
  rt.device(0).migrate_to_device(c.data(), n * sizeof(float));
  float* pa = a.data();
  float* pc = c.data();
  rt.device(0).launch(n, [=](Thread& t) { t.store(pc + t.id(), t.load(pa + t.id()) + t.id()); });
  rt.device(0).synchronize();
  EXPECT_GT(rt.device(0).stats().tlb_hits, 0u);
  for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(c[i], 1.5f + static_cast<float>(i));
}

TEST_P(Kernels, AtomicAddCountsExactly) {
  Runtime rt(options());
  std::vector<std::uint64_t> bins(64, 0);
  std::uint64_t* b = bins.data();
  rt.device(0).launch(100000, [b](Thread& t) { t.atomic_add(b + t.id() % 64, std::uint64_t{1}); });
  rt.device(0).synchronize();
  std::uint64_t total = 0;
  for (auto x : bins) total += x;
  EXPECT_EQ(total, 100000u);
  std::uint32_t small = 250;
  rt.device(0).launch(1, [&small](Thread& t) { EXPECT_EQ(t.atomic_add(&small, 10u), 250u); });
  rt.device(0).synchronize();
  EXPECT_EQ(small, 260u);
}

TEST_P(Kernels, LoadsAndStoresAcrossPageBoundaries) {
  Runtime rt(options());
  Mapping m(2 * kPage);
  struct Wide {
    std::uint64_t a, b, c;
  };
  auto* w = reinterpret_cast<Wide*>(m.get() + kPage - 12);
  rt.device(0).migrate_to_device(m.get() + kPage, kPage);  // one half local, one in place
  rt.device(0).launch(1, [w](Thread& t) { t.store(w, Wide{1, 2, 3}); });
  rt.device(0).synchronize();
  Wide back{};
  std::memcpy(&back, w, sizeof back);
  EXPECT_EQ(back.a, 1u);
  EXPECT_EQ(back.b, 2u);
  EXPECT_EQ(back.c, 3u);
}

TEST_P(Kernels, UnmappedAndNullAddressesFailAtSynchronize) {
  Runtime rt(options());
  // Below vm.mmap_min_addr nothing can ever be mapped: a hole no allocator can reuse.
  auto* hole = reinterpret_cast<int*>(std::uintptr_t{0x1000});
  rt.device(0).launch(16, [hole](Thread& t) { t.store(hole + t.id(), 1); });
  EXPECT_EQ(error_of([&] { rt.device(0).synchronize(); }), Errc::fault);
  // The device keeps working.
  int x = 1;
  rt.device(0).launch(1, [&x](Thread& t) { t.store(&x, t.load(&x) + 1); });
  rt.device(0).synchronize();
  EXPECT_EQ(x, 2);
  rt.device(0).launch(1, [](Thread& t) { t.load(static_cast<const int*>(nullptr)); });
  EXPECT_EQ(error_of([&] { rt.device(0).synchronize(); }), Errc::fault);
  // Memory the program freed (deallocate unmaps it) while nothing else reuses the range: the
  // range is reserved PROT_NONE right after, as a freed-and-guarded allocation would be.
  auto* p = static_cast<int*>(rt.allocate(4 * kPage));
  rt.device(0).migrate_to_device(p, 4 * kPage);
  rt.deallocate(p);
  void* guard = mmap(p, 4 * kPage, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  rt.device(0).launch(4, [p](Thread& t) { t.store(p + t.id() * 1024, 1); });
  EXPECT_EQ(error_of([&] { rt.device(0).synchronize(); }), Errc::fault);
  if (guard != MAP_FAILED) munmap(guard, 4 * kPage);
}

TEST_P(Kernels, PageUnmappedUnderARunningKernelIsAFaultNotACrash) {
  Runtime rt(options());
  Mapping m(64 * kPage);
  int* p = m.as<int>();
  std::atomic<bool> started{false};
  rt.device(0).launch(1, [p, &started](Thread& t) {
    for (int round = 0; round < 1000000; ++round) {
      for (std::size_t i = 0; i < 64 * kPage / sizeof(int); i += 1024) t.store(p + i, round);
      started.store(true);
    }
  });
  while (!started.load()) std::this_thread::yield();
  ASSERT_EQ(munmap(m.get(), 64 * kPage), 0);
  m.forget();
  EXPECT_EQ(error_of([&] { rt.device(0).synchronize(); }), Errc::fault);
}

TEST_P(Kernels, WriteToReadOnlyIsPermission) {
  Runtime rt(options());
  Mapping m(kPage);
  ASSERT_EQ(mprotect(m.get(), kPage, PROT_READ), 0);
  int* p = m.as<int>();
  rt.device(0).launch(1, [p](Thread& t) { t.store(p, 5); });
  EXPECT_EQ(error_of([&] { rt.device(0).synchronize(); }), Errc::permission);
  EXPECT_EQ(*p, 0);
}

TEST_P(Kernels, UserExceptionsPropagateAndApiCallsInsideKernelsAreRefused) {
  Runtime rt(options());
  rt.device(0).launch(4, [](Thread& t) {
    if (t.id() == 2) throw std::runtime_error("kernel says no");
  });
  EXPECT_THROW(rt.device(0).synchronize(), std::runtime_error);
  Device* dev = &rt.device(0);
  std::atomic<int> refused{0};
  int x = 0;
  dev->launch(1, [dev, &refused, &x](Thread&) {
    try {
      dev->read(&x, &x, sizeof x);
    } catch (const Error& e) {
      if (e.code() == Errc::invalid_argument) ++refused;
    }
    try {
      dev->synchronize();
    } catch (const Error& e) {
      if (e.code() == Errc::invalid_argument) ++refused;
    }
  });
  dev->synchronize();
  EXPECT_EQ(refused.load(), 2);
}

TEST_P(Kernels, KernelsRunInOrderAndSynchronizeWaits) {
  Runtime rt(options());
  std::vector<int> v(1000, 0);
  int* p = v.data();
  for (int k = 0; k < 10; ++k)
    rt.device(0).launch(v.size(), [p, k](Thread& t) {
      int cur = t.load(p + t.id());
      if (cur == k) t.store(p + t.id(), k + 1);
    });
  rt.device(0).synchronize();
  for (int x : v) ASSERT_EQ(x, 10);
}

// CPU threads and device kernels hammer the same counters while another thread keeps moving
// the pages between system memory and the device: every increment must land exactly once.
TEST_P(Kernels, CpuAndDeviceHammerTheSamePagesWhileTheyMigrate) {
  Runtime rt(options(2));
  const std::size_t counters = 8 * kPage / sizeof(std::uint64_t);
  Mapping m(8 * kPage);
  auto* c = m.as<std::uint64_t>();
  std::atomic<bool> stop{false};
  std::string mover_failure;
  std::thread mover([&] {
    std::size_t round = 0;
    try {
      while (!stop.load()) {
        rt.device(round % 2).migrate_to_device(m.get(), 8 * kPage);
        if (round % 3 == 0) rt.device(round % 2).migrate_to_system(m.get(), 4 * kPage);
        ++round;
      }
    } catch (const std::exception& e) {
      mover_failure = e.what();
    }
  });
  const std::uint64_t cpu_rounds = 200, kernel_rounds = 20;
  std::thread cpu([&] {
    for (std::uint64_t r = 0; r < cpu_rounds; ++r)
      for (std::size_t i = 0; i < counters; i += 37) __atomic_fetch_add(&c[i], 1, __ATOMIC_SEQ_CST);
  });
  std::string failure;
  try {
    for (std::uint64_t r = 0; r < kernel_rounds; ++r) {
      rt.device(r % 2).launch(counters, [c](Thread& t) {
        if (t.id() % 37 == 0) t.atomic_add(c + t.id(), std::uint64_t{1});
      });
      rt.device(r % 2).synchronize();
    }
  } catch (const std::exception& e) {
    failure = e.what();
  }
  cpu.join();
  stop.store(true);
  mover.join();
  ASSERT_EQ(failure, "");
  ASSERT_EQ(mover_failure, "");
  for (std::size_t i = 0; i < counters; ++i) {
    std::uint64_t want = (i % 37 == 0) ? cpu_rounds + kernel_rounds : 0;
    ASSERT_EQ(c[i], want) << "counter " << i;
  }
}

// Thread::load/store on a device frame run inline (include/hetmm/detail/hit_path.hpp): each
// kernel thread increments its own counters with a plain load and store, many times, while
// another thread keeps taking the pages home and back and the CPU reads them. An inline access
// that used its translation after the page went home would store into a frame nobody reads
// again: an increment lost.
TEST_P(Kernels, InlineLoadStoreIncrementsLandWhileThePagesMoveHome) {
  Runtime rt(options());
  Device& dev = rt.device(0);
  const std::size_t counters = 8 * kPage / sizeof(std::uint32_t);
  Mapping m(8 * kPage);
  auto* c = m.as<std::uint32_t>();
  dev.migrate_to_device(c, 8 * kPage);
  std::atomic<bool> stop{false};
  std::string mover_failure;
  std::thread mover([&] {
    std::size_t round = 0;
    try {
      while (!stop.load()) {
        const std::size_t page = round % 8;
        if (round % 2 == 0) {
          dev.migrate_to_system(c + page * kPage / 4, kPage);
        } else {
          (void)*static_cast<volatile std::uint32_t*>(&c[page * kPage / 4 + round % 64]);
          dev.migrate_to_device(c + page * kPage / 4, kPage);
        }
        ++round;
      }
    } catch (const std::exception& e) {
      mover_failure = e.what();
    }
  });
  const std::uint32_t rounds = 6, per_round = 200;
  std::string failure;
  try {
    for (std::uint32_t r = 0; r < rounds; ++r) {
      dev.launch(counters, [c](Thread& t) {
        for (std::uint32_t k = 0; k < per_round; ++k) t.store(c + t.id(), t.load(c + t.id()) + 1);
      });
      dev.synchronize();
    }
  } catch (const std::exception& e) {
    failure = e.what();
  }
  stop.store(true);
  mover.join();
  ASSERT_EQ(failure, "");
  ASSERT_EQ(mover_failure, "");
  for (std::size_t i = 0; i < counters; ++i) ASSERT_EQ(c[i], rounds * per_round) << "counter " << i;
}

// The inline path counts in the Thread and hands its counts to the worker: every access is a
// TLB hit or a miss, and every byte of a device frame is counted, across the spill that a run
// of more than 2^23 hits takes (HitPath::kHitShift; 2^24 would wrap without it).
TEST_P(Kernels, InlineHitsAndDeviceBytesAreAllCounted) {
  Runtime rt(options());
  Device& dev = rt.device(0);
  const std::size_t n = 16 * kPage / sizeof(std::uint32_t);
  Mapping m(16 * kPage);
  auto* v = m.as<std::uint32_t>();
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint32_t>(i);
  dev.migrate_to_device(v, 16 * kPage);
  const std::size_t passes = 1100;  // 1100 x 16384 loads: more than 2^24 in one Thread
  std::uint64_t sum = 0;
  DeviceStats before = dev.stats();
  dev.launch(1, [v, n, &sum](Thread& t) {
    std::uint64_t s = 0;
    for (std::size_t p = 0; p < passes; ++p)
      for (std::size_t i = 0; i < n; ++i) s += t.load(v + i);
    for (std::size_t i = 0; i < n; ++i) t.store(v + i, t.load(v + i) + 1);
    sum = s;
  });
  dev.synchronize();
  DeviceStats after = dev.stats();
  EXPECT_EQ(sum, passes * (n * (n - 1) / 2));
  const std::uint64_t accesses = passes * n + 2 * n;
  EXPECT_EQ((after.tlb_hits - before.tlb_hits) + (after.tlb_misses - before.tlb_misses), accesses);
  EXPECT_GT(after.tlb_hits - before.tlb_hits, accesses - 100);
  EXPECT_EQ(after.local_bytes - before.local_bytes, accesses * sizeof(std::uint32_t));
  for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(v[i], i + 1);
}

// A kernel may take its Thread by value: the copy counts its own accesses and hands them over.
TEST_P(Kernels, AKernelTakingItsThreadByValueCountsEveryAccess) {
  Runtime rt(options());
  Device& dev = rt.device(0);
  // An mmap of its own: a small std::vector may sit in the brk heap, which stays in place
  // (its accesses then count as in-place bytes, and its faults as misses twice).
  const std::size_t n = 16 * kPage / sizeof(int);
  Mapping m(16 * kPage);
  auto* v = m.as<int>();
  std::fill(v, v + n, 1);
  dev.migrate_to_device(v, 16 * kPage);
  DeviceStats before = dev.stats();
  dev.launch(n, [v](Thread t) { t.store(v + t.id(), t.load(v + t.id()) * 2); });
  dev.synchronize();
  DeviceStats after = dev.stats();
  EXPECT_EQ((after.tlb_hits - before.tlb_hits) + (after.tlb_misses - before.tlb_misses), 2 * n);
  EXPECT_EQ(after.local_bytes - before.local_bytes, 2 * n * sizeof(int));
  for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(v[i], 2) << i;
}

// Regression (lock-order review): a finished kernel was destroyed under the device's launch
// lock, so a kernel whose captures' destructor waits for a lock that a launching thread holds
// deadlocked. Destructors now run outside it (and synchronize still waits for them).
TEST(KernelLifetime, DestructorRunsOutsideTheLaunchLock) {
  Options o;
  o.workers = 1;
  Runtime rt(o);
  auto& dev = rt.device(0);
  std::mutex m;
  std::atomic<bool> entered{false}, destroyed{false};
  struct Guard {
    Guard(std::mutex* mm, std::atomic<bool>* e, std::atomic<bool>* d)
        : m(mm), entered(e), destroyed(d) {}
    std::mutex* m;
    std::atomic<bool>* entered;
    std::atomic<bool>* destroyed;
    ~Guard() {
      entered->store(true);
      std::lock_guard lock(*m);
      destroyed->store(true);
    }
  };
  std::unique_lock hold(m);
  // The kernel holds the only reference from the start (else the last one could be ours).
  dev.launch(1, [g = std::make_shared<Guard>(&m, &entered, &destroyed)](Thread&) {});
  while (!entered.load()) std::this_thread::yield();
  dev.launch(1, [](Thread&) {});  // needs the launch lock while the destructor waits for m
  hold.unlock();
  dev.synchronize();
  EXPECT_TRUE(destroyed.load());
}

}  // namespace
}  // namespace hetmm::test
