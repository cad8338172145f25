// Regressions found by the differential tester (`hetmm stress`, tests/differential_test.cpp).
// Each test names the bug; the stress seed that found it is in the comment.
#include "test_support.hpp"

#include <sys/mman.h>

namespace hetmm::test {
namespace {

using Regression = Tracked;

// Found by `hetmm --tracking uffd stress --seed 16` (data loss). Pages 1-3 migrated (one
// userfaultfd registration), page 1 came home, page 4 was written and migrated (a second
// registration that did not merge with the first). Bringing pages 2-4 home in one UFFDIO_COPY
// failed with ENOENT, since the copy spanned two VMAs, and ENOENT was taken for "unmapped
// behind our back": the device copies were dropped and the CPU read zeros. Now a copy that
// spans VMAs goes page by page.
TEST_P(Regression, BringingHomeARunAcrossTwoRegistrationsKeepsItsData) {
  Runtime rt(options(2, 2u << 20));
  Mapping m(5 * kPage);
  std::byte* p = m.get();
  rt.device(1).migrate_to_device(p + kPage, 3 * kPage);
  rt.device(1).migrate_to_system(p + kPage + 0x328, 0xb50);
  std::memset(p + 4 * kPage, 0x19, kPage);
  rt.device(1).migrate_to_device(p + 2 * kPage, 3 * kPage);
  std::vector<std::byte> out(5 * kPage);
  rt.device(0).read(p, out.data(), out.size());
  EXPECT_EQ(out[4 * kPage], std::byte{0x19});
  EXPECT_EQ(p[4 * kPage], std::byte{0x19});
  EXPECT_EQ(p[4 * kPage + kPage - 1], std::byte{0x19});
}

// Found by `hetmm --tracking uffd stress --seed 2`: part of a buffer migrated and came home,
// and mremap of the whole buffer failed with EFAULT (the userfaultfd registration of the
// migrated part split its VMA, and mremap refuses a range across VMAs). Plain memory
// remaps; now hetmm unregisters before the remap.
TEST_P(Regression, MremapAfterPartialMigration) {
  Runtime rt(options());
  void* p = ::mmap(nullptr, 8 * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  fill_pattern(p, 8 * kPage, 3);
  rt.device(0).migrate_to_device(static_cast<std::byte*>(p) + 0x4038, 0x1cb0);
  rt.device(0).migrate_to_system(p, 8 * kPage);
  void* q = ::mremap(p, 8 * kPage, 13 * kPage, MREMAP_MAYMOVE);
  ASSERT_NE(q, MAP_FAILED) << std::strerror(errno);
  EXPECT_TRUE(check_pattern(q, 8 * kPage, 3));
  ::munmap(q, 13 * kPage);
}

HETMM_BOTH_MODES(Regression);

}  // namespace
}  // namespace hetmm::test
