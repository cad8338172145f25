// Eviction under oversubscription: which blocks leave first under each policy profile, and no
// byte lost however often pages are pushed out.
#include "test_support.hpp"

namespace hetmm::test {
namespace {

class Eviction : public Tracked {
 protected:
  static constexpr std::size_t kBlock = 2u << 20;
  Options with(PolicyProfile p, std::size_t memory) const {
    Options o = options(1, memory);
    o.policy = p;
    return o;
  }
};

// Three 2 MiB blocks fill the device; the first is used again; a fourth arrives. The driver's
// order (uvm) evicts the first block, allocated earliest, although it was just used; hetmm
// evicts the least recently used one, the second.
void fill_three_then_use_first(Runtime& rt, std::byte* (&b)[4]) {
  auto& dev = rt.device(0);
  for (int i = 0; i < 4; ++i) {
    b[i] = static_cast<std::byte*>(rt.allocate(2u << 20));
    fill_pattern(b[i], 2u << 20, 40 + i);
  }
  for (int i = 0; i < 3; ++i) dev.migrate_to_device(b[i], 2u << 20);
  dev.migrate_to_device(b[0], 2u << 20);  // maps its pages again: a use
  dev.migrate_to_device(b[3], 2u << 20);
}

TEST_P(Eviction, UvmProfileEvictsInAllocationOrder) {
  Runtime rt(with(PolicyProfile::uvm, 3 * kBlock));
  std::byte* b[4];
  fill_three_then_use_first(rt, b);
  EXPECT_TRUE(rt.location(b[0]).is_system());
  EXPECT_TRUE(rt.location(b[1]) == Location::device(0));
  EXPECT_TRUE(rt.location(b[3]) == Location::device(0));
  EXPECT_EQ(rt.device(0).stats().pages_evicted, 512u);
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(check_pattern(b[i], kBlock, 40 + i)) << i;
}

TEST_P(Eviction, HetmmProfileEvictsLeastRecentlyUsed) {
  Runtime rt(with(PolicyProfile::hetmm, 3 * kBlock));
  std::byte* b[4];
  fill_three_then_use_first(rt, b);
  EXPECT_TRUE(rt.location(b[0]) == Location::device(0));
  EXPECT_TRUE(rt.location(b[1]).is_system());
  EXPECT_TRUE(rt.location(b[3]) == Location::device(0));
  EXPECT_EQ(rt.device(0).stats().pages_evicted, 512u);
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(check_pattern(b[i], kBlock, 40 + i)) << i;
}

// A device fault on a resident block counts as a use too.
TEST_P(Eviction, DeviceFaultsCountAsUse) {
  Runtime rt(with(PolicyProfile::hetmm, 2 * kBlock));
  auto& dev = rt.device(0);
  std::byte* b[3];
  for (int i = 0; i < 3; ++i) {
    b[i] = static_cast<std::byte*>(rt.allocate(kBlock));
    fill_pattern(b[i], kBlock, 50 + i);
  }
  dev.migrate_to_device(b[0], kBlock);
  dev.migrate_to_device(b[1], kBlock);
  // mprotect tears down the device's mappings of b[0]; the kernel then faults them back.
  ASSERT_EQ(::mprotect(b[0], kBlock, PROT_READ | PROT_WRITE), 0);
  std::uint64_t sum = 0;
  auto* w = reinterpret_cast<std::uint32_t*>(b[0]);
  dev.launch(1, [w, &sum](Thread& t) { sum = t.load(w + 7); });
  dev.synchronize();
  EXPECT_EQ(dev.stats().faults > 0, true);
  dev.migrate_to_device(b[2], kBlock);
  EXPECT_TRUE(rt.location(b[0]) == Location::device(0));
  EXPECT_TRUE(rt.location(b[1]).is_system());
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(check_pattern(b[i], kBlock, 50 + i)) << i;
}

// Rounds of migrations and kernels over four times the device's memory, under both profiles:
// every increment lands, whatever was evicted when.
TEST_P(Eviction, OversubscribedRoundsLoseNothing) {
  for (PolicyProfile p : {PolicyProfile::hetmm, PolicyProfile::uvm}) {
    Runtime rt(with(p, 64 * kPage));
    auto& dev = rt.device(0);
    Mapping m(256 * kPage);
    auto* w = m.as<std::uint32_t>();
    for (std::size_t i = 0; i < m.size() / 4; ++i) w[i] = static_cast<std::uint32_t>(i);
    for (std::uint32_t round = 0; round < 6; ++round) {
      for (std::size_t off = 0; off < m.size(); off += 48 * kPage) {
        std::size_t len = std::min<std::size_t>(48 * kPage, m.size() - off);
        dev.migrate_to_device(m.get() + off, len);
        auto* q = reinterpret_cast<std::uint32_t*>(m.get() + off);
        dev.launch(len / 4, [q](Thread& t) { t.store(q + t.id(), t.load(q + t.id()) + 1u); });
        dev.synchronize();
        ASSERT_LE(dev.memory_used(), 64 * kPage);
      }
    }
    EXPECT_GT(dev.stats().pages_evicted, 0u) << to_string(p);
    for (std::size_t i = 0; i < m.size() / 4; ++i)
      ASSERT_EQ(w[i], static_cast<std::uint32_t>(i) + 6) << to_string(p) << " word " << i;
  }
}

HETMM_BOTH_MODES(Eviction);

}  // namespace
}  // namespace hetmm::test

namespace hetmm::test {
namespace {

using Prefetch = Tracked;

TEST_P(Prefetch, ToADeviceAndBackHome) {
  Runtime rt(options(2));
  Mapping m(32 * kPage);
  fill_pattern(m.get(), m.size(), 60);
  EXPECT_EQ(rt.prefetch(m.get(), 16 * kPage, Location::device(0)).pages, 16u);
  EXPECT_EQ(rt.prefetch(m.get() + 16 * kPage, 16 * kPage, Location::device(1)).pages, 16u);
  EXPECT_TRUE(rt.location(m.get()) == Location::device(0));
  EXPECT_TRUE(rt.location(m.get() + 16 * kPage) == Location::device(1));
  // Home from both devices at once.
  EXPECT_EQ(rt.prefetch(m.get(), m.size(), Location::system()).pages, 32u);
  EXPECT_EQ(rt.device(0).memory_used() + rt.device(1).memory_used(), 0u);
  EXPECT_TRUE(check_pattern(m.get(), m.size(), 60));
  EXPECT_EQ(error_of([&] { rt.prefetch(m.get(), m.size(), Location::device(2)); }),
            Errc::invalid_argument);
  EXPECT_EQ(error_of([&] { rt.prefetch(m.get(), 0, Location::system()); }),
            Errc::invalid_argument);
}

HETMM_BOTH_MODES(Prefetch);

}  // namespace
}  // namespace hetmm::test
