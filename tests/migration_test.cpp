// Migration in both directions and the CPU fault-back: dmirror's migrate, migrate_fault,
// migrate_multiple, migrate_shared, migrate_mixed and migrate_release scenarios.
#include "test_support.hpp"

#include <fcntl.h>
#include <unistd.h>

namespace hetmm::test {
namespace {

class Migration : public Tracked {};
HETMM_BOTH_MODES(Migration);

TEST_P(Migration, ToDeviceRevokesCpuCopyAndFaultBackIsExact) {
  Runtime rt(options());
  const std::size_t n = 64;
  Mapping m(n * kPage);
  fill_pattern(m.get(), n * kPage, 21);
  AccessResult r = rt.device(0).migrate_to_device(m.get(), n * kPage);
  EXPECT_EQ(r.pages, n);
  EXPECT_EQ(rt.device(0).memory_used(), n * kPage);
  auto snap = rt.device(0).snapshot(m.get(), n * kPage);
  for (auto& s : snap) EXPECT_TRUE(s.location == Location::device(0));
  // The device reads its own memory without faulting.
  std::vector<std::byte> out(n * kPage);
  EXPECT_EQ(rt.device(0).read(m.get(), out.data(), out.size()).faults, 0u);
  EXPECT_TRUE(check_pattern(out.data(), out.size(), 21));
  // The CPU reads the first page: its 64 KiB fault-back granule comes home, data exact (a
  // second fault above it would be a stream and bring the rest of the run: Mirror::cpu_fault).
  EXPECT_TRUE(check_pattern(m.get(), kPage, 21));
  EXPECT_GT(rt.device(0).stats().cpu_faults, 0u);
  EXPECT_TRUE(rt.location(m.get()) == Location::system());
  EXPECT_TRUE(rt.location(m.get() + (n - 1) * kPage) == Location::device(0));
  // Mixed residency migrates again with every page readable afterwards.
  r = rt.device(0).migrate_to_device(m.get(), n * kPage);
  EXPECT_EQ(r.pages, n);
  EXPECT_TRUE(check_pattern(m.get(), n * kPage, 21));
  EXPECT_EQ(rt.device(0).memory_used(), 0u);
}

TEST_P(Migration, CpuWritesAfterMigrationLand) {
  Runtime rt(options());
  Mapping m(8 * kPage);
  fill_and_migrate(rt.device(0), m, 1);
  m.as<std::uint32_t>()[5] = 0xdeadbeef;  // a write fault brings the page home
  std::uint32_t v = 0;
  rt.device(0).read(m.get() + 20, &v, 4);
  EXPECT_EQ(v, 0xdeadbeefu);
}

TEST_P(Migration, RepeatedCycles) {
  Runtime rt(options());
  const std::size_t n = 16;
  Mapping m(n * kPage);
  for (std::uint32_t cycle = 0; cycle < 20; ++cycle) {
    fill_pattern(m.get(), n * kPage, cycle);
    ASSERT_EQ(rt.device(0).migrate_to_device(m.get(), n * kPage).pages, n);
    ASSERT_TRUE(check_pattern(m.get(), n * kPage, cycle)) << "cycle " << cycle;
  }
  EXPECT_EQ(rt.device(0).memory_used(), 0u);
}

TEST_P(Migration, ToSystemBringsEverythingHome) {
  Runtime rt(options());
  const std::size_t n = 40;
  Mapping m(n * kPage);
  fill_and_migrate(rt.device(0), m, 4);
  AccessResult r = rt.device(0).migrate_to_system(m.get(), n * kPage);
  EXPECT_EQ(r.pages, n);
  EXPECT_EQ(rt.device(0).memory_used(), 0u);
  EXPECT_EQ(rt.device(0).stats().cpu_faults, 0u);
  EXPECT_TRUE(check_pattern(m.get(), n * kPage, 4));
}

TEST_P(Migration, UntouchedMemoryMigratesAsZeros) {
  Runtime rt(options());
  Mapping m(32 * kPage);
  EXPECT_EQ(rt.device(0).migrate_to_device(m.get(), 32 * kPage).pages, 32u);
  for (std::size_t i = 0; i < 32 * kPage; ++i) ASSERT_EQ(m.get()[i], std::byte{0});
}

TEST_P(Migration, SharedMemoryIsNotFoundAndStaysInPlace) {
  Runtime rt(options());
  Mapping shared(4 * kPage, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS);
  fill_pattern(shared.get(), 4 * kPage, 8);
  EXPECT_EQ(error_of([&] { rt.device(0).migrate_to_device(shared.get(), 4 * kPage); }),
            Errc::not_found);
  EXPECT_EQ(rt.device(0).memory_used(), 0u);
  std::vector<std::byte> out(4 * kPage);
  rt.device(0).read(shared.get(), out.data(), out.size());
  EXPECT_TRUE(check_pattern(out.data(), out.size(), 8));
}

TEST_P(Migration, ProtNoneOrHoleInRangeFailsAndChangesNothing) {
  Runtime rt(options());
  Mapping m(8 * kPage);
  fill_pattern(m.get(), 8 * kPage, 2);
  ASSERT_EQ(mprotect(m.get() + 3 * kPage, kPage, PROT_NONE), 0);
  EXPECT_EQ(error_of([&] { rt.device(0).migrate_to_device(m.get(), 8 * kPage); }), Errc::fault);
  EXPECT_EQ(rt.device(0).memory_used(), 0u);
  for (std::size_t i = 0; i < 8; ++i) {
    if (i == 3) continue;
    EXPECT_TRUE(rt.location(m.get() + i * kPage) == Location::system());
  }
}

TEST_P(Migration, ReadOnlyMemoryMigratesAndStaysReadOnly) {
  Runtime rt(options());
  Mapping m(4 * kPage);
  fill_pattern(m.get(), 4 * kPage, 12);
  ASSERT_EQ(mprotect(m.get(), 4 * kPage, PROT_READ), 0);
  EXPECT_EQ(rt.device(0).migrate_to_device(m.get(), 4 * kPage).pages, 4u);
  std::uint32_t one = 1;
  EXPECT_EQ(error_of([&] { rt.device(0).write(m.get(), &one, 4); }), Errc::permission);
  EXPECT_TRUE(check_pattern(m.get(), 4 * kPage, 12));
}

TEST_P(Migration, OutOfDeviceMemory) {
  Runtime rt(options(1, 16 * kPage));
  Mapping m(32 * kPage);
  fill_pattern(m.get(), 32 * kPage, 13);
  AccessResult r = rt.device(0).migrate_to_device(m.get(), 32 * kPage);
  EXPECT_EQ(r.pages, 32u);  // every page stays readable through the device
  EXPECT_EQ(rt.device(0).memory_used(), 16 * kPage);  // a request never evicts itself
  // The same request again: everything resident is its own, nothing can move.
  EXPECT_EQ(error_of([&] { rt.device(0).migrate_to_device(m.get(), 32 * kPage); }),
            Errc::out_of_memory);
  EXPECT_EQ(rt.device(0).stats().pages_evicted, 0u);
  // Another range makes room by evicting: a 64 KiB granule (16 pages) of the victim block, or
  // fewer if the block holds fewer of m's pages (m may straddle two blocks), but at least 4.
  Mapping more(4 * kPage);
  fill_pattern(more.get(), 4 * kPage, 14);
  rt.device(0).migrate_to_device(more.get(), 4 * kPage);
  std::uint64_t evicted = rt.device(0).stats().pages_evicted;
  EXPECT_GE(evicted, 4u);
  EXPECT_LE(evicted, 16u);
  EXPECT_EQ(rt.device(0).memory_used(), (16 - evicted + 4) * kPage);
  EXPECT_TRUE(rt.location(more.get()) == Location::device(0));
  EXPECT_TRUE(check_pattern(m.get(), 32 * kPage, 13));
  EXPECT_TRUE(check_pattern(more.get(), 4 * kPage, 14));
}

TEST_P(Migration, TwoDevicesPullPagesFromEachOther) {
  Runtime rt(options(2));
  const std::size_t n = 16;
  Mapping m(n * kPage);
  fill_and_migrate(rt.device(1), m, 31);
  EXPECT_EQ(rt.device(1).memory_used(), n * kPage);
  // Device 0 faults: the pages come home from device 1 and device 0 maps them in place.
  std::vector<std::byte> out(n * kPage);
  AccessResult r = rt.device(0).read(m.get(), out.data(), out.size());
  EXPECT_EQ(r.faults, 1u);
  EXPECT_TRUE(check_pattern(out.data(), out.size(), 31));
  EXPECT_EQ(rt.device(1).memory_used(), 0u);
  // Device to device.
  rt.device(1).migrate_to_device(m.get(), n * kPage);
  EXPECT_EQ(rt.device(0).migrate_to_device(m.get(), n * kPage).pages, n);
  EXPECT_EQ(rt.device(1).memory_used(), 0u);
  EXPECT_EQ(rt.device(0).memory_used(), n * kPage);
  rt.device(1).read(m.get(), out.data(), out.size());  // pulls them home again
  EXPECT_TRUE(check_pattern(out.data(), out.size(), 31));
  EXPECT_TRUE(check_pattern(m.get(), n * kPage, 31));
}

TEST_P(Migration, ReleaseAndDestructorBringEveryPageHome) {
  const std::size_t n = 64;
  Mapping m(n * kPage);
  fill_pattern(m.get(), n * kPage, 44);
  {
    Runtime rt(options());
    rt.device(0).migrate_to_device(m.get(), n * kPage);
    rt.device(0).release();
    EXPECT_EQ(rt.device(0).memory_used(), 0u);
    EXPECT_TRUE(rt.location(m.get()) == Location::system());
    rt.device(0).migrate_to_device(m.get(), n * kPage);  // usable after release
    EXPECT_EQ(rt.device(0).memory_used(), n * kPage);
  }
  EXPECT_TRUE(check_pattern(m.get(), n * kPage, 44));
}

TEST_P(Migration, HugePageRange) {
  Runtime rt(options());
  const std::size_t len = 4u << 20;
  Mapping raw(len + (2u << 20));
  auto* base = reinterpret_cast<std::byte*>((reinterpret_cast<std::uintptr_t>(raw.get()) +
                                             (2u << 20) - 1) & ~std::uintptr_t{(2u << 20) - 1});
  ASSERT_EQ(madvise(base, len, MADV_HUGEPAGE), 0);
  fill_pattern(base, len, 77);
  auto snap = rt.device(0).snapshot(base, len);
  bool any_huge = false;
  for (auto& s : snap) any_huge |= s.huge;
  if (!any_huge) GTEST_LOG_(INFO) << "no THP backing here; checking data only";
  EXPECT_EQ(rt.device(0).migrate_to_device(base, len).pages, len / kPage);
  EXPECT_TRUE(check_pattern(base, len, 77));
  EXPECT_EQ(rt.device(0).migrate_to_device(base, len).pages, len / kPage);
  EXPECT_EQ(rt.device(0).migrate_to_system(base, len).pages, len / kPage);
  EXPECT_TRUE(check_pattern(base, len, 77));
}

TEST_P(Migration, AllocateAndDeallocate) {
  Runtime rt(options());
  auto* p = static_cast<std::uint32_t*>(rt.allocate(3 << 20));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % (2u << 20), 0u);
  for (std::size_t i = 0; i < (3u << 20) / 4; ++i) ASSERT_EQ(p[i], 0u);
  fill_pattern(p, 3 << 20, 5);
  rt.device(0).migrate_to_device(p, 3 << 20);
  rt.deallocate(p);
  EXPECT_EQ(rt.device(0).memory_used(), 0u);
  EXPECT_EQ(error_of([&] { rt.deallocate(p); }), Errc::invalid_argument);
  int local = 0;
  EXPECT_EQ(error_of([&] { rt.deallocate(&local); }), Errc::invalid_argument);
  EXPECT_EQ(error_of([&] { rt.allocate(0); }), Errc::invalid_argument);
}

}  // namespace
}  // namespace hetmm::test
