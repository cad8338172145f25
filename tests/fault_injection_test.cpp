// Fault injection (Options::inject): each injected failure ends in its defined outcome, and
// never in lost or stale data. The outcomes are listed in docs/RELIABILITY.md.
#include "test_support.hpp"

#include <atomic>
#include <thread>

namespace hetmm::test {
namespace {

class Injected : public Tracked {
 protected:
  Options with(FaultInjection inject, std::size_t devices = 1,
               std::size_t memory = 64u << 20) const {
    Options o = options(devices, memory);
    o.inject = inject;
    return o;
  }
};

// A kernel that adds 1 to every 32-bit word of [p, p + len).
void increment_on_device(Device& dev, std::uint32_t* p, std::size_t len) {
  dev.launch(len / 4, [p](Thread& t) { t.store(p + t.id(), t.load(p + t.id()) + 1u); });
  dev.synchronize();
}

bool check_incremented(const void* p, std::size_t len, std::uint32_t seed, std::uint32_t by) {
  auto* w = static_cast<const std::uint32_t*>(p);
  for (std::size_t i = 0; i < len / 4; ++i)
    if (w[i] != seed * 2654435761u + static_cast<std::uint32_t>(i) + by) return false;
  return true;
}

TEST_P(Injected, OffByDefaultInjectsNothing) {
  Runtime rt(options());
  Mapping m(64 * kPage);
  fill_and_migrate(rt.device(0), m, 1);
  EXPECT_TRUE(check_pattern(m.get(), m.size(), 1));
  EXPECT_EQ(rt.injected_faults().total(), 0u);
}

// Every frame allocation fails: as when device memory is full, migration moves nothing and
// says so (out_of_memory); the data stays in system memory, where kernels use it in place.
TEST_P(Injected, FrameAllocationFailureIsOutOfMemoryWithDataInPlace) {
  Runtime rt(with({.frame_alloc = 1.0}));
  auto& dev = rt.device(0);
  Mapping m(64 * kPage);
  fill_pattern(m.get(), m.size(), 2);
  EXPECT_EQ(error_of([&] { dev.migrate_to_device(m.get(), m.size()); }), Errc::out_of_memory);
  EXPECT_EQ(dev.memory_used(), 0u);
  EXPECT_TRUE(rt.location(m.get()).is_system());
  increment_on_device(dev, m.as<std::uint32_t>(), m.size());
  EXPECT_TRUE(check_incremented(m.get(), m.size(), 2, 1));
  EXPECT_GT(rt.injected_faults().frame_alloc, 0u);
}

// Some allocations fail: each migration moves what it got frames for (or reports
// out_of_memory when that is nothing); every byte survives any number of rounds.
TEST_P(Injected, PartialFrameAllocationFailuresLoseNothing) {
  Runtime rt(with({.seed = 7, .frame_alloc = 0.5}));
  auto& dev = rt.device(0);
  Mapping m(2 * 512 * kPage);
  fill_pattern(m.get(), m.size(), 3);
  std::size_t ooms = 0;
  for (int round = 0; round < 8; ++round) {
    for (std::size_t off = 0; off < m.size(); off += 32 * kPage) {
      try {
        dev.migrate_to_device(m.get() + off, 32 * kPage);
      } catch (const Error& e) {
        ASSERT_EQ(e.code(), Errc::out_of_memory) << e.what();
        ++ooms;
      }
    }
    increment_on_device(dev, m.as<std::uint32_t>(), m.size());
    if (round % 2) {
      ASSERT_TRUE(check_incremented(m.get(), m.size(), 3, round + 1)) << round;
    }
  }
  EXPECT_GT(ooms, 0u);
  EXPECT_GT(rt.injected_faults().frame_alloc, 0u);
  dev.release();
  EXPECT_EQ(dev.memory_used(), 0u);
}

// Every copy into device memory fails: after its retries, migration falls back to leaving
// the pages in system memory, mapped in place; the call succeeds.
TEST_P(Injected, CopyFailureFallsBackToInPlace) {
  Runtime rt(with({.copy = 1.0}));
  auto& dev = rt.device(0);
  Mapping m(64 * kPage);
  fill_pattern(m.get(), m.size(), 4);
  AccessResult r = dev.migrate_to_device(m.get(), m.size());
  EXPECT_EQ(r.pages, 64u);
  EXPECT_EQ(dev.memory_used(), 0u);
  EXPECT_TRUE(rt.location(m.get()).is_system());
  increment_on_device(dev, m.as<std::uint32_t>(), m.size());
  EXPECT_TRUE(check_incremented(m.get(), m.size(), 4, 1));
  EXPECT_GE(rt.injected_faults().copy, 4u);  // tried, then fell back
}

// Copies fail half the time while pages move between two devices and home again: retries and
// the fall back (device-to-device via system memory) keep every byte.
TEST_P(Injected, CopyFailuresBetweenDevicesLoseNothing) {
  Runtime rt(with({.seed = 11, .copy = 0.5}, 2));
  Mapping m(256 * kPage);
  fill_pattern(m.get(), m.size(), 5);
  for (int round = 0; round < 6; ++round) {
    auto& dev = rt.device(round % 2);
    dev.migrate_to_device(m.get(), m.size());
    increment_on_device(dev, m.as<std::uint32_t>(), m.size());
  }
  EXPECT_TRUE(check_incremented(m.get(), m.size(), 5, 6));
  EXPECT_GT(rt.injected_faults().copy, 0u);
}

// Frame allocation and copy failures while migrating between devices: device-to-device moves
// that cannot get a frame leave the page where it was.
TEST_P(Injected, DeviceToDeviceUnderAllocationFailures) {
  Runtime rt(with({.seed = 5, .frame_alloc = 0.3, .copy = 0.3}, 2));
  Mapping m(128 * kPage);
  fill_pattern(m.get(), m.size(), 6);
  for (int round = 0; round < 10; ++round) {
    try {
      rt.device(round % 2).migrate_to_device(m.get(), m.size());
    } catch (const Error& e) {
      ASSERT_EQ(e.code(), Errc::out_of_memory) << e.what();
    }
  }
  EXPECT_TRUE(check_pattern(m.get(), m.size(), 6));
  EXPECT_EQ(rt.device(0).memory_used() + rt.device(1).memory_used(), 0u);
}

// The fault service thread stalls before every batch: only slower, never wrong.
TEST_P(Injected, ServiceDelaysOnlySlowDown) {
  Runtime rt(with({.service_delay = 1.0, .max_delay_us = 300}));
  auto& dev = rt.device(0);
  Mapping m(128 * kPage);
  fill_pattern(m.get(), m.size(), 7);
  increment_on_device(dev, m.as<std::uint32_t>(), m.size());
  std::vector<std::byte> out(m.size());
  dev.read(m.get(), out.data(), out.size());
  EXPECT_TRUE(check_incremented(out.data(), out.size(), 7, 1));
  EXPECT_TRUE(check_incremented(m.get(), m.size(), 7, 1));
  EXPECT_GT(rt.injected_faults().service_delay, 0u);
}

// Workers stall on TLB misses (holding up shootdowns) while a CPU thread migrates the same
// pages back and forth: every increment lands exactly once.
TEST_P(Injected, WorkerStallsDuringMigrationsLoseNoUpdate) {
  Runtime rt(with({.seed = 3, .worker_stall = 0.2, .max_delay_us = 100}));
  auto& dev = rt.device(0);
  Mapping m(64 * kPage);
  auto* counters = m.as<std::uint64_t>();
  std::atomic<bool> stop{false};
  std::thread mover([&] {
    while (!stop.load()) {
      dev.migrate_to_device(m.get(), m.size());
      dev.migrate_to_system(m.get(), m.size());
    }
  });
  constexpr std::size_t kSlots = 64 * kPage / 8;
  for (int k = 0; k < 4; ++k)
    dev.launch(kSlots, [counters](Thread& t) { t.atomic_add(counters + t.id(), std::uint64_t{1}); });
  dev.synchronize();
  stop = true;
  mover.join();
  for (std::size_t i = 0; i < kSlots; ++i) ASSERT_EQ(counters[i], 4u) << i;
  EXPECT_GT(rt.injected_faults().worker_stall, 0u);
}

// Everything at once, with CPU threads writing their own pages while the device increments
// others and migrations run: the final contents are exactly what the program wrote.
TEST_P(Injected, EverythingAtOnce) {
  Runtime rt(with({.seed = 99,
                   .frame_alloc = 0.1,
                   .copy = 0.1,
                   .uffd_ioctl = 0.1,
                   .service_delay = 0.1,
                   .worker_stall = 0.05,
                   .max_delay_us = 50},
                  2));
  Mapping cpu_side(64 * kPage), dev_side(64 * kPage);
  fill_pattern(dev_side.get(), dev_side.size(), 8);
  std::atomic<bool> stop{false};
  std::thread mover([&] {
    for (unsigned i = 0; !stop.load(); ++i) {
      try {
        rt.device(i % 2).migrate_to_device(i % 3 ? dev_side.get() : cpu_side.get(), 64 * kPage);
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), Errc::out_of_memory) << e.what();
      }
    }
  });
  std::thread writer([&] {
    auto* w = cpu_side.as<std::uint32_t>();
    for (std::uint32_t round = 1; round <= 20; ++round)
      for (std::size_t i = 0; i < cpu_side.size() / 4; ++i) w[i] = round * 7 + i;
  });
  for (int k = 0; k < 6; ++k)
    increment_on_device(rt.device(k % 2), dev_side.as<std::uint32_t>(), dev_side.size());
  writer.join();
  stop = true;
  mover.join();
  EXPECT_TRUE(check_incremented(dev_side.get(), dev_side.size(), 8, 6));
  auto* w = cpu_side.as<std::uint32_t>();
  for (std::size_t i = 0; i < cpu_side.size() / 4; ++i) ASSERT_EQ(w[i], 20u * 7 + i) << i;
  EXPECT_GT(rt.injected_faults().total(), 0u);
}

// Regression (found by EverythingAtOnce): migrate_to_device mapped pages it could not move from
// another device (no frame) in place, though they were revoked there. A worker's in-place
// access then took a CPU fault that needed the state lock, while a migration holding it waited
// for that worker in a TLB shootdown: a deadlock. Such pages now stay unmapped and the device
// faults them over; no access of the device goes through the CPU side of a revoked page.
TEST_P(Injected, DeviceToDeviceOutOfMemoryLeavesPagesUnmapped) {
  Runtime rt(options(2, 8 * kPage));
  Mapping m(16 * kPage);
  fill_pattern(m.get(), m.size(), 12);
  rt.device(0).migrate_to_device(m.get(), 8 * kPage);                 // device 0 full
  rt.device(1).migrate_to_device(m.get() + 8 * kPage, 4 * kPage);     // device 1 half full
  // Four of device 0's pages fit on device 1; then device 1 would have to evict pages of the
  // request itself: the other four stay on device 0 and must not be mapped on device 1.
  rt.device(1).migrate_to_device(m.get(), m.size());
  EXPECT_EQ(rt.device(0).memory_used(), 4 * kPage);
  std::vector<std::byte> out(m.size());
  rt.device(1).read(m.get(), out.data(), out.size());
  EXPECT_TRUE(check_pattern(out.data(), out.size(), 12));
  increment_on_device(rt.device(1), m.as<std::uint32_t>(), m.size());
  EXPECT_EQ(rt.device(0).stats().cpu_faults, 0u)
      << "device 1 reached device 0's revoked pages through the CPU side";
  EXPECT_TRUE(check_incremented(m.get(), m.size(), 12, 1));
}

HETMM_BOTH_MODES(Injected);

// userfaultfd ioctls fail (EAGAIN or ENOMEM): registration and write-protect failures
// abandon the migration (pages stay in system memory, used in place), copies home are
// retried; every byte survives round trips driven by CPU touches.
TEST(InjectedUffd, IoctlFailuresAreRetriedOrAbandonCleanly) {
  Options o;
  o.workers = 2;
  o.tracking = Tracking::userfaultfd;
  o.inject = {.seed = 13, .uffd_ioctl = 0.3};
  Runtime rt(o);
  auto& dev = rt.device(0);
  Mapping m(256 * kPage);
  auto* w = m.as<std::uint32_t>();
  fill_pattern(m.get(), m.size(), 9);
  for (std::uint32_t round = 1; round <= 8; ++round) {
    dev.migrate_to_device(m.get(), m.size());
    increment_on_device(dev, w, m.size());
    for (std::size_t i = 0; i < m.size() / 4; i += 1024) w[i] += 0;  // CPU touches: fault-back
  }
  EXPECT_TRUE(check_incremented(m.get(), m.size(), 9, 8));
  EXPECT_GT(rt.injected_faults().uffd_ioctl, 0u);
}

// Every ioctl fails: nothing can be revoked, so every migration falls back to in place.
TEST(InjectedUffd, AllIoctlsFailingMeansInPlace) {
  Options o;
  o.workers = 2;
  o.tracking = Tracking::userfaultfd;
  o.inject = {.uffd_ioctl = 1.0};
  Runtime rt(o);
  auto& dev = rt.device(0);
  Mapping m(64 * kPage);
  fill_pattern(m.get(), m.size(), 10);
  EXPECT_EQ(dev.migrate_to_device(m.get(), m.size()).pages, 64u);
  EXPECT_EQ(dev.memory_used(), 0u);
  increment_on_device(dev, m.as<std::uint32_t>(), m.size());
  EXPECT_TRUE(check_incremented(m.get(), m.size(), 10, 1));
}

}  // namespace
}  // namespace hetmm::test
