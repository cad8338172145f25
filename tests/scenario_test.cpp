// The HMM contract under CPU-side changes: munmap, mremap, madvise, mprotect, fork and system
// calls on device-resident memory (hmm-tests: anon_teardown, migrate_partial_unmap_fault,
// migrate_remap_fault, anon_write_child*, migrate_anon_huge_free, exclusive_mprotect).
#include "test_support.hpp"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace hetmm::test {
namespace {

class Scenario : public Tracked {};

Options userfaultfd_options() {
  Options o;
  o.workers = 2;
  o.device_memory = 64u << 20;
  o.tracking = Tracking::userfaultfd;
  return o;
}
HETMM_BOTH_MODES(Scenario);

TEST_P(Scenario, MunmapHalfDuringDeviceReadsGivesExactDataOrFault) {
  Runtime rt(options());
  const std::size_t n = 256;
  for (int round = 0; round < 20; ++round) {
    // At a fixed low address: the unmapped half stays a hole (no other mapping of the process
    // lands there), so a read that succeeds must return exactly the old data.
    auto* want = reinterpret_cast<void*>(std::uintptr_t{0x20000000});
    auto* p = static_cast<std::byte*>(mmap(want, n * kPage, PROT_READ | PROT_WRITE,
                                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                                           -1, 0));
    if (p != want) GTEST_SKIP() << "low address range taken";
    fill_pattern(p, n * kPage, 100 + round);
    if (round % 2) rt.device(0).migrate_to_device(p, n * kPage);
    std::atomic<bool> go{false};
    std::thread unmapper([&] {
      while (!go.load()) {
      }
      munmap(p + n / 2 * kPage, n / 2 * kPage);
    });
    std::vector<std::byte> out(n * kPage);
    go.store(true);
    for (int i = 0; i < 4; ++i) {
      try {
        rt.device(0).read(p, out.data(), out.size());
        ASSERT_TRUE(check_pattern(out.data(), out.size(), 100 + round)) << "stale data";
      } catch (const Error& e) {
        ASSERT_EQ(e.code(), Errc::fault) << e.what();
      }
    }
    unmapper.join();
    // The surviving half is intact.
    EXPECT_TRUE(check_pattern(p, n / 2 * kPage, 100 + round));
    munmap(p, n / 2 * kPage);
  }
  EXPECT_EQ(rt.device(0).memory_used(), 0u);
}

TEST_P(Scenario, PartialMunmapOfDeviceResidentRangeKeepsSurvivors) {
  Runtime rt(options());
  const std::size_t n = 64;
  Mapping m(n * kPage);
  fill_and_migrate(rt.device(0), m, 61);
  ASSERT_EQ(m.punch(16 * kPage, 16 * kPage), 0);
  EXPECT_EQ(rt.device(0).memory_used(), (n - 16) * kPage);
  EXPECT_TRUE(check_pattern(m.get(), 16 * kPage, 61));
  auto* w = reinterpret_cast<std::uint32_t*>(m.get() + 32 * kPage);
  for (std::size_t i = 0; i < 32 * kPage / 4; ++i)
    ASSERT_EQ(w[i], 61 * 2654435761u + static_cast<std::uint32_t>(i + 32 * kPage / 4));
  std::vector<std::byte> out(16 * kPage);
  EXPECT_EQ(error_of([&] { rt.device(0).read(m.get(), out.data(), 32 * kPage); }), Errc::fault);
}

TEST_P(Scenario, MremapOfDeviceResidentRangeKeepsEveryByte) {
  Runtime rt(options());
  const std::size_t n = 32;
  std::byte* p = mmap_filled_on_device(rt.device(0), n * kPage, 71);
  ASSERT_NE(p, nullptr);
  // Grow and move.
  auto* q = static_cast<std::byte*>(mremap(p, n * kPage, 4 * n * kPage, MREMAP_MAYMOVE));
  ASSERT_NE(q, MAP_FAILED);
  EXPECT_TRUE(check_pattern(q, n * kPage, 71));
  rt.device(0).migrate_to_device(q, n * kPage);
  // Move to a fixed, misaligned place.
  Mapping target(8 * n * kPage);
  auto* dst = target.get() + 3 * kPage;
  auto* r = static_cast<std::byte*>(
      mremap(q, 4 * n * kPage, n * kPage, MREMAP_MAYMOVE | MREMAP_FIXED, dst));
  ASSERT_EQ(r, dst);
  std::vector<std::byte> out(n * kPage);
  rt.device(0).read(r, out.data(), out.size());
  EXPECT_TRUE(check_pattern(out.data(), out.size(), 71));
  EXPECT_TRUE(check_pattern(r, n * kPage, 71));
  EXPECT_EQ(rt.device(0).memory_used(), 0u);
}

TEST_P(Scenario, DontneedDropsDeviceResidentDataLikeTheKernel) {
  Runtime rt(options());
  Mapping m(8 * kPage);
  fill_and_migrate(rt.device(0), m, 81);
  ASSERT_EQ(madvise(m.get() + 2 * kPage, 2 * kPage, MADV_DONTNEED), 0);
  EXPECT_EQ(rt.device(0).memory_used(), 6 * kPage);
  for (std::size_t i = 2 * kPage; i < 4 * kPage; ++i) ASSERT_EQ(m.get()[i], std::byte{0});
  std::vector<std::byte> out(2 * kPage, std::byte{9});
  rt.device(0).read(m.get() + 2 * kPage, out.data(), out.size());
  for (auto b : out) ASSERT_EQ(b, std::byte{0});
  EXPECT_TRUE(check_pattern(m.get(), 2 * kPage, 81));
}

TEST_P(Scenario, MprotectOnDeviceResidentPages) {
  Runtime rt(options());
  Mapping m(4 * kPage);
  fill_and_migrate(rt.device(0), m, 91);
  ASSERT_EQ(mprotect(m.get(), 4 * kPage, PROT_READ), 0);
  std::uint32_t v = 7;
  EXPECT_EQ(error_of([&] { rt.device(0).write(m.get(), &v, 4); }), Errc::permission);
  EXPECT_TRUE(rt.location(m.get() + kPage) == Location::device(0));
  auto snap = rt.device(0).snapshot(m.get(), 4 * kPage);
  EXPECT_TRUE(snap[1].readable && !snap[1].writable);
  ASSERT_EQ(mprotect(m.get(), 4 * kPage, PROT_NONE), 0);
  EXPECT_EQ(error_of([&] { rt.device(0).read(m.get(), &v, 4); }), Errc::fault);
  ASSERT_EQ(mprotect(m.get(), 4 * kPage, PROT_READ | PROT_WRITE), 0);
  rt.device(0).write(m.get(), &v, 4);
  EXPECT_EQ(m.as<std::uint32_t>()[0], 7u);
  EXPECT_TRUE(check_pattern(m.get() + kPage, 3 * kPage, 91) ||
              m.as<std::uint32_t>()[kPage / 4] == 91 * 2654435761u + kPage / 4);
}

// The child of a fork sees the device-resident data; its writes stay in the child, except to
// MAP_SHARED memory.
TEST_P(Scenario, ForkWithPagesOnTheDevice) {
  Runtime rt(options());
  Mapping priv(8 * kPage);
  Mapping shared(8 * kPage, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS);
  fill_pattern(priv.get(), 8 * kPage, 5);
  fill_pattern(shared.get(), 8 * kPage, 6);
  rt.device(0).migrate_to_device(priv.get(), 8 * kPage);
  std::vector<std::byte> out(8 * kPage);
  rt.device(0).read(shared.get(), out.data(), out.size());  // device maps the shared memory
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    int bad = 0;
    if (!check_pattern(priv.get(), 8 * kPage, 5)) bad |= 1;
    if (!check_pattern(shared.get(), 8 * kPage, 6)) bad |= 2;
    priv.as<std::uint32_t>()[0] = 0xc0ffee;
    shared.as<std::uint32_t>()[0] = 0xbeef;
    try {
      rt.device(0).read(priv.get(), out.data(), 16);
      bad |= 4;  // the runtime belongs to the parent
    } catch (const Error& e) {
      if (e.code() != Errc::device_lost) bad |= 8;
    }
    _exit(bad);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_TRUE(check_pattern(priv.get(), 8 * kPage, 5)) << "the child's write leaked";
  EXPECT_EQ(shared.as<std::uint32_t>()[0], 0xbeefu);
  std::uint32_t v = 0;
  rt.device(0).read(shared.get(), &v, 4);
  EXPECT_EQ(v, 0xbeefu);
  // The parent's runtime keeps working.
  EXPECT_EQ(rt.device(0).migrate_to_device(priv.get(), 8 * kPage).pages, 8u);
  EXPECT_TRUE(check_pattern(priv.get(), 8 * kPage, 5));
}

// A forked child that starts a runtime of its own migrates its own data. The parent's cached
// /proc/self/pagemap descriptor, inherited by the child, described the parent's memory: pages
// the child had written looked untouched and migrated as zeros (issue 16).
TEST_P(Scenario, AForkedChildsOwnRuntimeMigratesItsOwnData) {
  {
    Runtime rt(options());
    Mapping m(8 * kPage);
    fill_and_migrate(rt.device(0), m, 7);  // the parent reads its pagemap
  }
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    int bad = 0;
    try {
      Runtime rt(options());
      Mapping m(16 * kPage);  // written only in the child
      fill_pattern(m.get(), m.size(), 8);
      rt.device(0).migrate_to_device(m.get(), m.size());
      std::vector<std::byte> out(m.size());
      rt.device(0).read(m.get(), out.data(), out.size());
      if (!check_pattern(out.data(), out.size(), 8)) bad |= 1;
      if (!check_pattern(m.get(), m.size(), 8)) bad |= 2;
    } catch (const Error&) {
      bad |= 4;
    }
    _exit(bad);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: device read, 2: CPU read, 4: hetmm::Error";
}

// read(2)/write(2) on buffers whose pages are on a device: served with full userfaultfd; with
// the mprotect fallback (and user-mode-only userfaultfd) the kernel's own access fails with
// EFAULT, and nothing is corrupted.
TEST_P(Scenario, SystemCallsOnDeviceResidentBuffers) {
  Runtime rt(options());
  Mapping m(4 * kPage);
  fill_and_migrate(rt.device(0), m, 17);
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  ssize_t w = write(fds[1], m.get(), kPage);  // the kernel reads a device-resident page
  std::vector<std::byte> in(kPage);
  fill_pattern(in.data(), kPage, 18);
  if (rt.tracking() == Tracking::userfaultfd) {
    ASSERT_EQ(w, static_cast<ssize_t>(kPage));
    std::vector<std::byte> back(kPage);
    ASSERT_EQ(read(fds[0], back.data(), kPage), static_cast<ssize_t>(kPage));
    EXPECT_TRUE(check_pattern(back.data(), kPage, 17));
    ASSERT_EQ(write(fds[1], in.data(), kPage), static_cast<ssize_t>(kPage));
    ASSERT_EQ(read(fds[0], m.get() + 2 * kPage, kPage), static_cast<ssize_t>(kPage));
    EXPECT_TRUE(check_pattern(m.get() + 2 * kPage, kPage, 18));
  } else {
    EXPECT_EQ(w, -1);
    EXPECT_EQ(errno, EFAULT);
    ASSERT_EQ(write(fds[1], in.data(), kPage), static_cast<ssize_t>(kPage));
    EXPECT_EQ(read(fds[0], m.get() + 2 * kPage, kPage), -1);
    EXPECT_EQ(errno, EFAULT);
    std::vector<std::byte> ref(4 * kPage);
    fill_pattern(ref.data(), ref.size(), 17);
    EXPECT_EQ(std::memcmp(m.get() + 2 * kPage, ref.data() + 2 * kPage, kPage), 0)
        << "nothing corrupted";
  }
  EXPECT_TRUE(check_pattern(m.get(), 2 * kPage, 17));
  close(fds[0]);
  close(fds[1]);
}

TEST(UserModeOnly, SystemCallsFailWithEfaultAndDataSurvives) {
  Options o = userfaultfd_options();
  o.userfaultfd_user_mode_only = true;
  Runtime rt(o);
  EXPECT_NE(rt.tracking_reason().find("user-mode only"), std::string::npos);
  Mapping m(2 * kPage);
  fill_and_migrate(rt.device(0), m, 23);
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  EXPECT_EQ(write(fds[1], m.get(), kPage), -1);
  EXPECT_EQ(errno, EFAULT);
  EXPECT_TRUE(check_pattern(m.get(), 2 * kPage, 23));  // a CPU touch is served
  close(fds[0]);
  close(fds[1]);
}

// A munmap that bypasses the hooks (glibc freeing a large block with its internal call, or a
// raw system call as here): with userfaultfd the UNMAP event releases the device memory.
TEST(Events, UnhookedMunmapReleasesDeviceMemory) {
  Runtime rt(userfaultfd_options());
  for (int i = 0; i < 4; ++i) {
    auto* p = static_cast<std::byte*>(
        mmap(nullptr, 1u << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    ASSERT_NE(p, MAP_FAILED);
    fill_pattern(p, 1u << 20, 3);
    rt.device(0).migrate_to_device(p, 1u << 20);
    ASSERT_EQ(rt.device(0).memory_used(), 1u << 20);
    ASSERT_EQ(syscall(SYS_munmap, p, 1u << 20), 0);
    // The event is handled just after the call returns (docs/ARCHITECTURE.md, "Events").
    EXPECT_EQ(wait_for_used(rt.device(0), 0), 0u);
  }
}

#if !defined(__SANITIZE_ADDRESS__)
// The same through glibc: free() of a block above the mmap threshold unmaps it internally.
TEST(Events, GlibcFreeReleasesDeviceMemory) {
  Runtime rt(userfaultfd_options());
  auto* p = static_cast<std::uint32_t*>(std::malloc(40u << 20));  // above any mmap threshold
  ASSERT_NE(p, nullptr);
  fill_pattern(p, 1u << 20, 3);
  rt.device(0).migrate_to_device(p, 1u << 20);
  ASSERT_GT(rt.device(0).memory_used(), 0u);
  std::free(p);
  EXPECT_EQ(wait_for_used(rt.device(0), 0), 0u);
}
#endif

// A raw madvise(MADV_DONTNEED) bypasses the hooks: the REMOVE event drops the device copy, and
// the CPU then reads zeros as the kernel promises. hetmm's own revocations raise REMOVE events
// too; they must not drop anything (the data migrated here stays intact).
TEST(Events, UnhookedDontneedDropsDeviceResidentData) {
  Runtime rt(userfaultfd_options());
  const std::size_t n = 32;
  Mapping m(n * kPage);
  fill_and_migrate(rt.device(0), m, 53);
  ASSERT_EQ(rt.device(0).memory_used(), n * kPage);
  ASSERT_EQ(syscall(SYS_madvise, m.get(), 8 * kPage, MADV_DONTNEED), 0);
  EXPECT_EQ(wait_for_used(rt.device(0), (n - 8) * kPage), (n - 8) * kPage);
  for (std::size_t i = 0; i < 8 * kPage; ++i) ASSERT_EQ(m.get()[i], std::byte{0});
  std::vector<std::byte> ref(n * kPage);
  fill_pattern(ref.data(), ref.size(), 53);
  EXPECT_EQ(std::memcmp(m.get() + 8 * kPage, ref.data() + 8 * kPage, (n - 8) * kPage), 0);
}

// A raw mremap system call bypasses the hooks: the REMAP event moves the device state along.
TEST(Events, RawMremapSyscallMovesDeviceState) {
  Runtime rt(userfaultfd_options());
  const std::size_t n = 16;
  std::byte* p = mmap_filled_on_device(rt.device(0), n * kPage, 29);
  ASSERT_NE(p, nullptr);
  auto* q = reinterpret_cast<std::byte*>(
      syscall(SYS_mremap, p, n * kPage, 2 * n * kPage, MREMAP_MAYMOVE));
  ASSERT_NE(q, MAP_FAILED);
  EXPECT_TRUE(check_pattern(q, n * kPage, 29));
  munmap(q, 2 * n * kPage);
}

TEST(Runtimes, SequentialAndConcurrentRuntimes) {
  Mapping m(4 * kPage);
  fill_pattern(m.get(), 4 * kPage, 37);
  for (int i = 0; i < 3; ++i) {
    Options o;
    o.workers = 1;
    o.device_memory = 4u << 20;
    Runtime rt(o);
    rt.device(0).migrate_to_device(m.get(), 4 * kPage);
  }
  EXPECT_TRUE(check_pattern(m.get(), 4 * kPage, 37));
  Options a;
  a.workers = 1;
  a.device_memory = 4u << 20;
  a.tracking = Tracking::mprotect;
  Runtime one(a), two(a);
  Mapping x(2 * kPage), y(2 * kPage);
  fill_pattern(x.get(), 2 * kPage, 1);
  fill_pattern(y.get(), 2 * kPage, 2);
  one.device(0).migrate_to_device(x.get(), 2 * kPage);
  two.device(0).migrate_to_device(y.get(), 2 * kPage);
  EXPECT_TRUE(check_pattern(x.get(), 2 * kPage, 1));
  EXPECT_TRUE(check_pattern(y.get(), 2 * kPage, 2));
}

}  // namespace
}  // namespace hetmm::test
