// Zero-copy block moves (Options::zero_copy_moves): whole 2 MiB blocks of private anonymous
// memory move into the sim device's memory and back by remapping (UFFDIO_MOVE) instead of a
// copy. What must hold: data is never lost or changed (concurrent CPU writes included), every
// case the kernel refuses falls back to copying, and device memory is never mirrored itself.
#include "test_support.hpp"

#include "device/sim/frame_pool.hpp"
#include "os/proc_maps.hpp"
#include "os/uffd.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <thread>

namespace hetmm::test {
namespace {

constexpr std::size_t kBlock = 2u << 20;

bool kernel_moves_pages() {
  os::UffdOpen u = os::uffd_open(true, os::kUffdFeatureMove);
  if (u.fd < 0) return false;
  ::close(u.fd);
  return (u.features & os::kUffdFeatureMove) != 0;
}

#define SKIP_WITHOUT_MOVE()                                                        \
  if (!kernel_moves_pages()) GTEST_SKIP() << "the kernel has no UFFDIO_MOVE (6.8+)"

Options zero_copy_options(std::size_t memory = 16u << 20) {
  Options o;
  o.device_memory = memory;
  o.workers = 2;
  o.tracking = Tracking::userfaultfd;
  return o;
}

std::uint64_t moved_in(Runtime& rt) { return rt.device(0).stats().blocks_moved_in; }
std::uint64_t moved_out(Runtime& rt) { return rt.device(0).stats().blocks_moved_out; }

// Runtime::allocate advises huge pages for its large allocations: over the whole allocation,
// so that it stays one mapping (prefetch never leaves the faulting mapping, and an advice over
// the whole blocks only split the tail off, stopping every stream at the allocation's last
// whole block).
TEST(ZeroCopy, ALargeAllocationIsOneMappingTailIncluded) {
  Runtime rt(zero_copy_options());
  std::size_t len = 2 * kBlock - 19 * kPage;
  auto a = reinterpret_cast<std::uintptr_t>(rt.allocate(len));
  EXPECT_EQ(a % kBlock, 0u);
  os::VmaList list;
  os::query_vmas(a, a + len, list);
  ASSERT_FALSE(list.empty());
  const os::Vma* v = os::find_vma(list, a);
  ASSERT_NE(v, nullptr);
  EXPECT_LE(v->start, a);
  EXPECT_GE(v->end, a + len) << "the allocation is split at " << std::hex << v->end - a;
  rt.deallocate(reinterpret_cast<void*>(a));
}

TEST(ZeroCopy, WholeBlocksMoveBothWaysAndDataSurvives) {
  SKIP_WITHOUT_MOVE();
  Runtime rt(zero_copy_options());
  EXPECT_NE(rt.kernel_features().find("zero-copy block moves: yes"), std::string::npos);
  const std::size_t len = 3 * kBlock;
  auto* p = static_cast<std::byte*>(rt.allocate(len));
  fill_pattern(p, len, 11);
  EXPECT_EQ(rt.device(0).migrate_to_device(p, len).pages, len / kPage);
  EXPECT_EQ(moved_in(rt), 3u);
  EXPECT_EQ(rt.location(p + kBlock + 5 * kPage), Location::device(0));
  // Device reads see the moved pages.
  std::uint64_t seen = 0;
  rt.device(0).launch(1, [&](Thread& t) {
    seen = t.load(reinterpret_cast<const std::uint64_t*>(p + 2 * kBlock + 7 * kPage));
  });
  rt.device(0).synchronize();
  std::uint64_t want = 0;
  {
    std::vector<std::byte> ref(len);
    fill_pattern(ref.data(), len, 11);
    std::memcpy(&want, ref.data() + 2 * kBlock + 7 * kPage, sizeof want);
  }
  EXPECT_EQ(seen, want);
  EXPECT_EQ(rt.device(0).migrate_to_system(p, len).pages, len / kPage);
  EXPECT_EQ(moved_out(rt), 3u);
  EXPECT_TRUE(check_pattern(p, len, 11));
  EXPECT_EQ(rt.device(0).memory_used(), 0u);
  rt.deallocate(p);
}

TEST(ZeroCopy, CpuFaultsCopyRunsAndTheChunkIsReusedForTheNextMove) {
  SKIP_WITHOUT_MOVE();
  // Device memory of one block: the same chunk must serve every move.
  Runtime rt(zero_copy_options(kBlock));
  auto* p = static_cast<std::byte*>(rt.allocate(kBlock));
  fill_pattern(p, kBlock, 3);
  rt.device(0).migrate_to_device(p, kBlock);
  ASSERT_EQ(moved_in(rt), 1u);
  // A CPU read brings home a 64 KiB run by copy (moving it would split the chunk's huge page);
  // the rest of the block stays on the device.
  volatile std::byte b = p[kBlock / 2];
  (void)b;
  EXPECT_EQ(rt.location(p + kBlock / 2), Location::system());
  EXPECT_EQ(rt.location(p), Location::device(0));
  EXPECT_EQ(rt.device(0).migrate_to_system(p, kBlock).pages, kBlock / kPage - 16);
  EXPECT_EQ(moved_out(rt), 0u);  // not whole: copied home
  EXPECT_TRUE(check_pattern(p, kBlock, 3));
  // The chunk still holds the copies' pages: it is emptied before the next block moves in.
  fill_pattern(p, kBlock, 4);
  EXPECT_EQ(rt.device(0).migrate_to_device(p, kBlock).pages, kBlock / kPage);
  EXPECT_EQ(moved_in(rt), 2u);
  EXPECT_EQ(rt.device(0).migrate_to_system(p, kBlock).pages, kBlock / kPage);
  EXPECT_EQ(moved_out(rt), 1u);
  EXPECT_TRUE(check_pattern(p, kBlock, 4));
  rt.deallocate(p);
}

// A CPU sweep over device-resident memory (Mirror::cpu_fault's stream detector): the first two
// faults bring their 64 KiB granules, the third (right after them again) the rest of that
// block's run, and every later block comes home whole on its first fault, by one move where it
// came in as one. Touches that are not a dense stream stay at 64 KiB.
TEST(ZeroCopy, ACpuSweepBringsWholeBlocksHomeByMoving) {
  SKIP_WITHOUT_MOVE();
  Runtime rt(zero_copy_options());
  const std::size_t len = 4 * kBlock;
  auto* p = static_cast<std::byte*>(rt.allocate(len));
  fill_pattern(p, len, 5);
  rt.device(0).migrate_to_device(p, len);
  ASSERT_EQ(moved_in(rt), 4u);
  EXPECT_TRUE(check_pattern(p, len, 5));  // the sweep
  DeviceStats s = rt.device(0).stats();
  // Block 0: two 64 KiB faults, then the stream takes the rest of it; block 1 whole by one move,
  // and block 2 with it, ahead of the sweep; block 3 whole at its first touch.
  EXPECT_EQ(s.cpu_faults, 5u) << "a fault per 64 KiB would be 128; 6 without the block ahead";
  EXPECT_EQ(s.blocks_moved_out, 3u) << "blocks 1-3 whole by one move each";
  EXPECT_EQ(rt.device(0).memory_used(), 0u);
  // Descending touches, a block apart, then a sparse ascending sweep (a word every 7 pages): no
  // stream, one granule each.
  fill_pattern(p, len, 6);
  rt.device(0).migrate_to_device(p, len);
  const std::uint64_t faults = rt.device(0).stats().cpu_faults;
  const std::uint64_t home = rt.device(0).stats().pages_to_system;
  for (std::size_t k = 4; k-- > 0;) {
    volatile std::byte b = p[k * kBlock + kBlock / 2];
    (void)b;
  }
  // Each fault-back one granule, one per touch. (1 run in 40 once counted 3 for 4 touches: the
  // statistics were counted after the pages landed, when the faulting thread had resumed.)
  s = rt.device(0).stats();
  EXPECT_EQ(s.cpu_faults - faults, 4u);
  EXPECT_EQ(s.pages_to_system - home, (s.cpu_faults - faults) * 16u);
  rt.device(0).migrate_to_device(p, len);
  const std::uint64_t home2 = rt.device(0).stats().pages_to_system;
  for (std::size_t page = 0; page < len / kPage; page += 7) {
    volatile std::byte b = p[page * kPage];
    (void)b;
  }
  s = rt.device(0).stats();
  EXPECT_EQ((s.pages_to_system - home2) % 16, 0u) << "a sparse sweep took more than granules";
  EXPECT_TRUE(check_pattern(p, len, 6));
  rt.deallocate(p);
}

TEST(ZeroCopy, UntouchedPagesOfAMovedBlockReadAsZeros) {
  SKIP_WITHOUT_MOVE();
  Runtime rt(zero_copy_options());
  auto* p = static_cast<std::uint64_t*>(rt.allocate(kBlock));
  const std::size_t stride = kPage / sizeof(std::uint64_t);
  for (std::size_t i = 0; i < kBlock / sizeof(std::uint64_t); i += 4 * stride) p[i] = i + 1;
  rt.device(0).migrate_to_device(p, kBlock);
  EXPECT_EQ(moved_in(rt), 1u);
  rt.device(0).launch(1, [&](Thread& t) {
    // Writes into a page that was a hole before the move.
    t.store(p + stride, std::uint64_t{42});
  });
  rt.device(0).synchronize();
  rt.device(0).migrate_to_system(p, kBlock);
  EXPECT_EQ(moved_out(rt), 1u);
  for (std::size_t i = 0; i < kBlock / sizeof(std::uint64_t); ++i) {
    std::uint64_t want = i % (4 * stride) == 0 ? i + 1 : (i == stride ? 42 : 0);
    ASSERT_EQ(p[i], want) << "word " << i;
  }
  rt.deallocate(p);
}

TEST(ZeroCopy, AShortMoveLeavesTheRestToTheCopyPath) {
  SKIP_WITHOUT_MOVE();
  // Every copy-engine transfer fails: a move stops half way (as at a page the kernel cannot
  // move), and the copy of the other half fails too. The moved half stays on the device, the
  // rest in system memory, nothing is lost, and every invariant holds.
  Options o = zero_copy_options();
  o.inject.copy = 1.0;
  Runtime rt(o);
  auto* p = static_cast<std::byte*>(rt.allocate(kBlock));
  fill_pattern(p, kBlock, 31);
  (void)rt.device(0).migrate_to_device(p, kBlock);
  EXPECT_EQ(moved_in(rt), 0u);
  EXPECT_EQ(rt.location(p), Location::device(0));
  EXPECT_EQ(rt.location(p + kBlock / 2 - kPage), Location::device(0));
  EXPECT_EQ(rt.location(p + kBlock / 2), Location::system());
  EXPECT_EQ(rt.device(0).memory_used(), kBlock / 2);
  EXPECT_EQ(rt.audit(), "");
  EXPECT_TRUE(check_pattern(p, kBlock, 31));  // CPU faults bring the first half home
  EXPECT_EQ(rt.device(0).memory_used(), 0u);
  EXPECT_EQ(rt.audit(), "");
  rt.deallocate(p);
}

TEST(ZeroCopy, WriteOnlyPagesStillArriveAsZeros) {
  SKIP_WITHOUT_MOVE();
  Runtime rt(zero_copy_options());
  auto* p = static_cast<std::uint64_t*>(rt.allocate(kBlock));
  for (std::size_t i = 0; i < kBlock / 8; ++i) p[i] = i + 1;
  rt.advise(p + 512, kPage, Advice::write_only);  // one page of the block
  rt.device(0).migrate_to_device(p, kBlock);
  EXPECT_EQ(moved_in(rt), 0u);  // a move would carry the old data along
  std::uint64_t seen[2] = {};
  rt.device(0).launch(1, [&](Thread& t) {
    seen[0] = t.load(p + 512);
    seen[1] = t.load(p + 1024);
  });
  rt.device(0).synchronize();
  EXPECT_EQ(seen[0], 0u);
  EXPECT_EQ(seen[1], 1025u);
  rt.deallocate(p);
}

// A CPU writer puts an increasing count into one word per page of p's block, round after round,
// while the block moves to device 0 and back `cycles` times. Returns the last full round; after
// each store the word must read back what was stored (*bad counts the misses).
std::uint64_t move_under_a_writer(Runtime& rt, std::uint64_t* p, int cycles, std::uint64_t* bad) {
  const std::size_t stride = kPage / sizeof(std::uint64_t);
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> misses{0}, rounds{0};
  std::thread writer([&] {
    for (std::uint64_t v = 1; !stop.load(std::memory_order_relaxed); ++v) {
      for (std::size_t i = 0; i < kBlock / sizeof(std::uint64_t); i += stride) {
        reinterpret_cast<volatile std::uint64_t*>(p)[i] = v;
        if (reinterpret_cast<volatile std::uint64_t*>(p)[i] != v) misses.fetch_add(1);
      }
      rounds.store(v);
    }
  });
  while (rounds.load() < 2) std::this_thread::yield();
  for (int r = 0; r < cycles; ++r) {
    rt.prefetch(p, kBlock, Location::device(0));
    rt.prefetch(p, kBlock, Location::system());
  }
  stop = true;
  writer.join();
  *bad = misses.load();
  return rounds.load();
}

TEST(ZeroCopy, ConcurrentCpuWritesAreNeverLost) {
  SKIP_WITHOUT_MOVE();
  Runtime rt(zero_copy_options());
  auto* p = static_cast<std::uint64_t*>(rt.allocate(kBlock));
  std::memset(p, 0, kBlock);
  std::uint64_t bad = 0;
  std::uint64_t last = move_under_a_writer(rt, p, 200, &bad);
  EXPECT_EQ(bad, 0u);
  // Every page holds the last round's value or the one before it (the round in flight).
  const std::size_t stride = kPage / sizeof(std::uint64_t);
  for (std::size_t i = 0; i < kBlock / sizeof(std::uint64_t); i += stride)
    ASSERT_TRUE(p[i] == last || p[i] == last + 1) << "page " << i / stride << ": " << p[i];
  rt.deallocate(p);
}

// Linux 6.18's UFFDIO_MOVE, failing part way under memory load, reported fewer bytes than it had
// moved; the pages left out of the count were already in the chunk, and were zero-filled as
// untouched (found by the load stage of make test, in ConcurrentCpuWritesAreNeverLost). What the
// CPU's page table no longer holds has moved. Options::inject.move_miscount makes the sim
// device report half of a whole move.
TEST(ZeroCopy, AMoveThatReportsLessThanItMovedLosesNothing) {
  SKIP_WITHOUT_MOVE();
  Options o = zero_copy_options();
  o.inject.seed = 5;
  o.inject.move_miscount = 1;
  Runtime rt(o);
  auto* p = static_cast<std::byte*>(rt.allocate(kBlock));
  fill_pattern(p, kBlock, 31);
  rt.device(0).migrate_to_device(p, kBlock);
  EXPECT_GT(rt.injected_faults().move_miscount, 0u);
  std::vector<std::byte> out(kBlock);
  rt.device(0).read(p, out.data(), kBlock);
  EXPECT_TRUE(check_pattern(out.data(), kBlock, 31));
  EXPECT_TRUE(check_pattern(p, kBlock, 31));
  // Untouched pages moved as holes still read as zeros.
  auto* q = static_cast<std::byte*>(rt.allocate(kBlock));
  fill_pattern(q, kBlock / 4, 32);
  rt.device(0).migrate_to_device(q, kBlock);
  rt.device(0).read(q, out.data(), kBlock);
  EXPECT_TRUE(check_pattern(out.data(), kBlock / 4, 32));
  for (std::size_t i = kBlock / 4; i < kBlock; ++i) ASSERT_EQ(out[i], std::byte{0}) << i;
  EXPECT_TRUE(check_pattern(q, kBlock / 4, 32));
  rt.deallocate(p);
  rt.deallocate(q);
}

// The userfaultfd handler answers a fault on a page that is not hetmm's without the state lock.
// A stale fault (the page had come home meanwhile) was judged not hetmm's just before a
// migration marked the page, and its zero page landed just after a move had taken the page
// away: the device held the data, the CPU a zero page, and a CPU write went to the wrong one
// (found by the load stage in ConcurrentCpuWritesAreNeverLost: 6 to 50% of runs under
// `hetmm load`, none in 380 runs after the fix). A migration now waits for such an answer in
// flight (HostTracker::quiesce). Options::inject.decision_delay holds answers back to widen the
// window; the stale fault itself still needs the machine's timing, so this test does not fail
// in every run without the fix (the load stage is the check that does).
TEST(ZeroCopy, AnUnlockedFaultAnswerNeverLandsUnderAMove) {
  SKIP_WITHOUT_MOVE();
  Options o = zero_copy_options();
  o.inject.seed = 6;
  o.inject.decision_delay = 1;
  o.inject.max_delay_us = 2000;
  Runtime rt(o);
  auto* p = static_cast<std::uint64_t*>(rt.allocate(kBlock));
  std::memset(p, 0, kBlock);
  std::uint64_t bad = 0;
  std::uint64_t last = move_under_a_writer(rt, p, 100, &bad);
  const std::size_t stride = kPage / sizeof(std::uint64_t);
  // No check that a delay was injected: a "not hetmm's" answer needs a stale fault, which only
  // the machine's timing gives (a busy machine ran whole tests without one).
  for (std::size_t i = 0; i < kBlock / sizeof(std::uint64_t); i += stride)
    ASSERT_TRUE(p[i] == last || p[i] == last + 1) << "page " << i / stride << ": " << p[i];
  rt.deallocate(p);
}

TEST(ZeroCopy, ReadOnlyMemoryFallsBackToCopying) {
  SKIP_WITHOUT_MOVE();
  Runtime rt(zero_copy_options());
  auto* p = static_cast<std::byte*>(rt.allocate(kBlock));
  fill_pattern(p, kBlock, 8);
  ASSERT_EQ(mprotect(p, kBlock, PROT_READ), 0);
  EXPECT_EQ(rt.device(0).migrate_to_device(p, kBlock).pages, kBlock / kPage);
  EXPECT_EQ(moved_in(rt), 0u);  // device memory is writable: the kernel would refuse the move
  EXPECT_TRUE(check_pattern(p, kBlock, 8));
  ASSERT_EQ(mprotect(p, kBlock, PROT_READ | PROT_WRITE), 0);
  rt.deallocate(p);
}

TEST(ZeroCopy, PagesSharedWithAForkedChildAreCopied) {
  SKIP_WITHOUT_MOVE();
  Runtime rt(zero_copy_options());
  auto* p = static_cast<std::byte*>(rt.allocate(kBlock));
  fill_pattern(p, kBlock, 21);
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  pid_t child = fork();
  if (child == 0) {
    char c;
    ssize_t r = read(go[0], &c, 1);
    _exit(r == 1 && check_pattern(p, kBlock, 21) ? 0 : 1);
  }
  ASSERT_GT(child, 0);
  // The child still maps the same pages (copy-on-write): the kernel refuses to move them, and
  // the migration copies instead. Neither side sees the other's changes.
  EXPECT_EQ(rt.device(0).migrate_to_device(p, kBlock).pages, kBlock / kPage);
  EXPECT_EQ(moved_in(rt), 0u);
  EXPECT_TRUE(check_pattern(p, kBlock, 21));
  fill_pattern(p, kBlock, 22);
  ASSERT_EQ(write(go[1], "x", 1), 1);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_TRUE(check_pattern(p, kBlock, 22));
  close(go[0]);
  close(go[1]);
  rt.deallocate(p);
}

// Two whole blocks go to the device and back, data intact, and nothing moved by remapping.
void expect_copies_only(const Options& o, const char* why) {
  Runtime rt(o);
  // `hetmm info` says so, and why.
  EXPECT_NE(rt.kernel_features().find(std::string("zero-copy block moves: ") + why),
            std::string::npos)
      << rt.kernel_features();
  auto* p = static_cast<std::byte*>(rt.allocate(2 * kBlock));
  fill_pattern(p, 2 * kBlock, 5);
  EXPECT_EQ(rt.device(0).migrate_to_device(p, 2 * kBlock).pages, 2 * kBlock / kPage);
  EXPECT_EQ(rt.device(0).migrate_to_system(p, 2 * kBlock).pages, 2 * kBlock / kPage);
  EXPECT_EQ(moved_in(rt), 0u);
  EXPECT_EQ(moved_out(rt), 0u);
  EXPECT_TRUE(check_pattern(p, 2 * kBlock, 5));
  rt.deallocate(p);
}

TEST(ZeroCopy, OffMeansEveryMoveIsACopy) {
  Options o = zero_copy_options();
  o.zero_copy_moves = false;
  o.tracking = Tracking::automatic;
  expect_copies_only(o, "off (Options::zero_copy_moves)");
}

TEST(ZeroCopy, MprotectTrackingNeverMoves) {
  Options o = zero_copy_options();
  o.tracking = Tracking::mprotect;
  expect_copies_only(o, "no (needs userfaultfd tracking)");
}

TEST(ZeroCopy, MovableDeviceMemoryIsTheRuntimesOwnNeverTheProgramsToMirror) {
  SKIP_WITHOUT_MOVE();
  device::sim::FramePool pool(4 * kBlock, true);
  ASSERT_TRUE(pool.movable());
  std::uint32_t first = 0;
  ASSERT_TRUE(pool.alloc_chunk(&first));
  EXPECT_EQ(first % 512, 0u);
  auto at = reinterpret_cast<std::uintptr_t>(pool.address(first));
  EXPECT_EQ(at % kBlock, 0u);
  os::VmaList vmas;
  os::query_vmas(at, at + kPage, vmas);
  ASSERT_EQ(vmas.size(), 1u);
  EXPECT_TRUE(vmas[0].special);
  EXPECT_FALSE(vmas[0].migratable());
  os::VmaList text;
  os::query_vmas_text(at, at + kPage, text);
  ASSERT_EQ(text.size(), 1u);
  EXPECT_TRUE(text[0].special);
  // Frames handed one at a time come from a chunk already in use before a whole one is broken.
  std::uint32_t a = 0, b = 0, c = 0;
  ASSERT_EQ(pool.alloc(1, &a), 1u);
  ASSERT_EQ(pool.alloc(1, &b), 1u);
  EXPECT_EQ(b, a + 1);
  ASSERT_TRUE(pool.alloc_chunk(&c));  // two chunks are still whole
  EXPECT_NE(c / 512, a / 512);
  for (std::uint32_t f = first; f < first + 512; ++f) pool.free(f);
  std::uint32_t again = 0;
  ASSERT_TRUE(pool.alloc_chunk(&again));
  EXPECT_EQ(again, first);  // whole again once every frame came back
}

}  // namespace
}  // namespace hetmm::test
