// Unit tests of the pieces under the API: frame pool, radix table, /proc readers, fault buffer.
#include "base/radix_table.hpp"
#include "device/sim/fault_buffer.hpp"
#include "device/sim/frame_pool.hpp"
#include "device/sim/sim_device.hpp"
#include "os/arena.hpp"
#include "os/page.hpp"
#include "os/pagemap.hpp"
#include "os/proc_maps.hpp"
#include "os/safe_access.hpp"
#include "test_support.hpp"

#include <atomic>
#include <fcntl.h>
#include <algorithm>
#include <thread>
#include <unistd.h>

namespace hetmm::test {
namespace {

TEST(FramePool, AllocatesUpToCapacityAndReuses) {
  device::sim::FramePool pool(3 * 512 * kPage / 2, false);  // one and a half chunks
  std::vector<std::uint32_t> f(1000);
  EXPECT_EQ(pool.alloc(1000, f.data()), 768u);
  EXPECT_EQ(pool.used_bytes(), 768 * kPage);
  for (std::size_t i = 0; i < 768; ++i) std::memset(pool.address(f[i]), 0xab, kPage);
  pool.free(f[3]);
  std::uint32_t again = 0;
  EXPECT_EQ(pool.alloc(1, &again), 1u);
  EXPECT_EQ(again, f[3]);
  for (std::size_t i = 0; i < 768; ++i) pool.free(f[i]);
  EXPECT_EQ(pool.used_bytes(), 0u);
  pool.release();
  EXPECT_EQ(pool.alloc(2, f.data()), 2u);
}

// Placed allocations put page i of a block at frame i of a chunk: the chunk the block's other
// pages use when it has room (so the block is one run of frames), the chunk after a neighbour
// block's when asked (movable memory: contiguous across blocks), any chunk with those places
// free otherwise, and any free frames when none has them (placement never costs capacity).
TEST(FramePool, PlacesPagesAtTheirIndexInTheBlockWithoutLosingCapacity) {
  device::sim::FramePool pool(4 * 512 * kPage, false);
  constexpr std::uint32_t kNone = device::sim::FramePool::kNoFrame;
  std::vector<std::uint32_t> a(512), b(512), c(512), rest(2048);
  // Pages 100..299 of a block, then 0..99 of the same block beside them.
  ASSERT_EQ(pool.alloc_placed(200, a.data(), 100, kNone), 200u);
  for (std::uint32_t k = 0; k < 200; ++k) ASSERT_EQ(a[k] % 512, 100 + k);
  ASSERT_EQ(pool.alloc_placed(100, b.data(), 0, a[0]), 100u);
  for (std::uint32_t k = 0; k < 100; ++k) ASSERT_EQ(b[k], a[0] - 100 + k);
  // Another block's pages 50..149 cannot share that chunk's places: another chunk, same places.
  ASSERT_EQ(pool.alloc_placed(100, c.data(), 50, kNone), 100u);
  EXPECT_NE(c[0] / 512, a[0] / 512);
  for (std::uint32_t k = 0; k < 100; ++k) ASSERT_EQ(c[k] % 512, 50 + k);
  // Everything else still fits, wherever it must go.
  const std::size_t left = 4 * 512 - 400;
  std::size_t got = 0;
  while (got < left) {
    std::size_t n = pool.alloc_placed(std::min<std::size_t>(300, left - got), rest.data() + got, 0, kNone);
    ASSERT_GT(n, 0u);
    got += n;
  }
  std::uint32_t none = 0;
  EXPECT_EQ(pool.alloc_placed(1, &none, 7, kNone), 0u);
  EXPECT_EQ(pool.used_bytes(), 4 * 512 * kPage);
  std::vector<std::uint32_t> all(a.begin(), a.begin() + 200);
  all.insert(all.end(), b.begin(), b.begin() + 100);
  all.insert(all.end(), c.begin(), c.begin() + 100);
  all.insert(all.end(), rest.begin(), rest.begin() + static_cast<long>(left));
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end()) << "a frame handed out twice";
  for (auto f : all) pool.free(f);
  EXPECT_EQ(pool.used_bytes(), 0u);
}

TEST(FramePool, MovableBlocksGoBesideTheirNeighbours) {
  device::sim::FramePool pool(8 * 512 * kPage, true);
  if (!pool.movable()) GTEST_SKIP() << "no movable device memory here (UFFDIO_MOVE)";
  std::uint32_t first = 0, next = 0, after = 0;
  ASSERT_TRUE(pool.alloc_chunk(&first));
  // The next block asks for the chunk after this one (Mirror::frame_near): it gets it, mapped
  // out of turn when needed, and a placed run asks the same way.
  ASSERT_TRUE(pool.alloc_chunk(&next, first + 512));
  EXPECT_EQ(next, first + 512);
  std::vector<std::uint32_t> run(10);
  ASSERT_EQ(pool.alloc_placed(10, run.data(), 0, next + 512 * 3), 10u);
  EXPECT_EQ(run[0], next + 512 * 3);
  EXPECT_EQ(static_cast<char*>(pool.address(run[0])) - static_cast<char*>(pool.address(first)),
            4 * 2 * 1024 * 1024);
  // A chunk in use is not taken whole.
  ASSERT_TRUE(pool.alloc_chunk(&after, next));
  EXPECT_NE(after, next);
  for (std::uint32_t k = 0; k < 512; ++k) pool.free(first + k), pool.free(next + k), pool.free(after + k);
  for (auto f : run) pool.free(f);
  EXPECT_EQ(pool.used_bytes(), 0u);
}

// Regression: frames 511 and 512 have consecutive numbers but live in different 2 MiB chunks
// (separate mappings). A copy of a run of pages once went across them in one go, writing past
// the end of chunk 0 into a neighbour's memory (found by the kernel tests as a corrupted malloc
// header). Each frame must receive exactly its own page.
TEST(SimDevice, CopiesAcrossChunkBoundariesPageByPage) {
  base::FaultInjector off;
  device::sim::SimDevice dev(0, 4 * 512 * kPage, 1, nullptr, &off);
  std::vector<std::uint32_t> all(1024);
  ASSERT_EQ(dev.alloc_frames(1024, all.data()), 1024u);
  std::uint32_t frames[4] = {510, 511, 512, 513};
  std::vector<std::byte> src(4 * kPage), back(4 * kPage);
  fill_pattern(src.data(), src.size(), 99);
  ASSERT_TRUE(dev.copy_to_frames(frames, 4, src.data()));
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(std::memcmp(dev.frame_host_address(frames[i]), src.data() + i * kPage, kPage), 0)
        << "frame " << frames[i];
  ASSERT_TRUE(dev.copy_from_frames(back.data(), frames, 4));
  EXPECT_EQ(std::memcmp(back.data(), src.data(), src.size()), 0);
  for (auto f : all) dev.free_frame(f);
}

// Block entries for memory in place hold runs (JIT kernels' inline checks): the run of pages
// around a page, in place with the rights asked for, stops at a page in a frame, at a hole and,
// for writes, at a read-only page; its rights say whether every page of it allows writes.
TEST(PageTable, InPlaceRunsStopAtPagesElsewhereHolesAndMissingRights) {
  namespace pte = device::pte;
  device::sim::PageTable pt;
  const std::uintptr_t block = std::uintptr_t{0x3f00} << 21, other = block + (2u << 20);
  auto page = [&](std::size_t i) { return block + i * kPage; };
  for (std::size_t i = 10; i < 100; ++i) pt.set(page(i), pte::kValid | pte::kWrite);
  pt.set(page(50), pte::make(0x1234000, true, true));  // in a device frame
  pt.set(page(70), pte::kValid);                       // read-only
  std::size_t first = 0, last = 0;
  EXPECT_EQ(pt.block_in_place_run(page(20), 0, 0, &first, &last), pte::kValid | pte::kWrite);
  EXPECT_EQ(first, 10u);
  EXPECT_EQ(last, 49u);
  EXPECT_EQ(pt.block_in_place_run(page(60), 0, 0, &first, &last), pte::kValid);
  EXPECT_EQ(first, 51u);
  EXPECT_EQ(last, 99u);
  EXPECT_EQ(pt.block_in_place_run(page(60), 0, pte::kWrite, &first, &last),
            pte::kValid | pte::kWrite);
  EXPECT_EQ(first, 51u);
  EXPECT_EQ(last, 69u);
  EXPECT_EQ(pt.block_in_place_run(page(70), 0, pte::kWrite, &first, &last), 0u);
  EXPECT_EQ(pt.block_in_place_run(page(50), 0, 0, &first, &last), 0u);  // not in place
  EXPECT_EQ(pt.block_in_place_run(page(5), 0, 0, &first, &last), 0u);   // a hole
  for (std::size_t i = 0; i < 512; ++i) pt.set(other + i * kPage, pte::kValid | pte::kWrite);
  EXPECT_EQ(pt.block_in_place_run(other + 300 * kPage, 0, pte::kWrite, &first, &last),
            pte::kValid | pte::kWrite);
  EXPECT_EQ(first, 0u);
  EXPECT_EQ(last, 511u);
}

// The flush before the replay (BATCH_FLUSH): a request that comes in while a batch is served
// and finds its page mapped by that batch is replayed with it; the others open the next batch.
TEST(SimDevice, FaultsServedByTheBatchInServiceAreReplayedWithIt) {
  // Holds the first batch until the test has queued more requests, then maps what it was
  // asked for in place.
  struct HoldingResolver final : device::FaultResolver {
    device::sim::SimDevice* dev = nullptr;
    std::atomic<int> batches{0};
    std::atomic<bool> release{false};
    void resolve(std::size_t, const device::FaultRange* r, device::FaultOutcome*,
                 std::size_t n) override {
      batches.fetch_add(1);
      while (!release.load()) std::this_thread::yield();
      for (std::size_t k = 0; k < n; ++k)
        for (std::uintptr_t page = r[k].start; page < r[k].end; page += kPage)
          dev->set_pte(page, device::pte::make(page, r[k].write, false));
    }
  } resolver;
  base::FaultInjector off;
  device::sim::SimDevice dev(0, 512 * kPage, 1, &resolver, &off);
  resolver.dev = &dev;
  dev.start();
  Mapping m(2 * kPage);
  auto first = reinterpret_cast<std::uintptr_t>(m.get()), second = first + kPage;
  device::sim::FaultRequest a, same, api_call, other;
  auto post = [&](device::sim::FaultRequest& r, std::uintptr_t page, bool replayable) {
    r.reset(page, page + kPage, false, true);
    r.replayable = replayable;
    return std::thread([&dev, &r] { dev.fault_and_wait(&r); });
  };
  std::thread ta = post(a, first, true);
  while (resolver.batches.load() == 0) std::this_thread::yield();  // a's batch is in service
  std::thread ts = post(same, first, true);         // served by a's batch: flushed
  std::thread tp = post(api_call, first, false);    // not a replayable miss: served on its own
  std::thread to = post(other, second, true);       // another page: the next batch
  while (dev.queued_faults() < 3) std::this_thread::yield();
  resolver.release.store(true);
  for (std::thread* t : {&ta, &ts, &tp, &to}) t->join();
  DeviceStats s = dev.stats();
  EXPECT_EQ(s.fault_batches, 2u);
  EXPECT_EQ(resolver.batches.load(), 2);
  EXPECT_EQ(s.faults, 4u);
  EXPECT_EQ(s.faults_flushed, 1u);
  EXPECT_TRUE(dev.get_pte(second) & device::pte::kValid);
  dev.stop();
}

TEST(RadixTable, FindsWhatItCreatedAndVisitsInOrder) {
  struct Leaf {
    explicit Leaf(std::uint64_t k) : key(k) {}
    std::uint64_t key;
  };
  base::RadixTable<Leaf, os::RuntimeMemory> t;
  std::vector<std::uint64_t> keys = {0, 1, 511, 512, 1u << 20, (1ull << 35) + 7};
  for (auto k : keys) t.get_or_create(k, [&] { return os::arena_new<Leaf>(k); });
  for (auto k : keys) {
    ASSERT_NE(t.find(k), nullptr);
    EXPECT_EQ(t.find(k)->key, k);
  }
  EXPECT_EQ(t.find(2), nullptr);
  std::vector<std::uint64_t> seen;
  t.for_each([&](Leaf& l) { seen.push_back(l.key); });
  EXPECT_EQ(seen, keys);
}

TEST(ProcMaps, ReportsProtectionSharingAndHoles) {
  Mapping priv(4 * kPage);
  Mapping shared(kPage, PROT_READ, MAP_SHARED | MAP_ANONYMOUS);
  ASSERT_EQ(mprotect(priv.get() + kPage, kPage, PROT_NONE), 0);
  ASSERT_EQ(priv.punch(3 * kPage, kPage), 0);
  auto a = reinterpret_cast<std::uintptr_t>(priv.get());
  os::VmaList list;
  os::query_vmas(a, a + 4 * kPage, list);
  const os::Vma* v0 = os::find_vma(list, a);
  const os::Vma* v1 = os::find_vma(list, a + kPage);
  ASSERT_NE(v0, nullptr);
  ASSERT_NE(v1, nullptr);
  EXPECT_TRUE(v0->read && v0->write && v0->anonymous && !v0->shared && v0->migratable());
  EXPECT_FALSE(v1->read);
  EXPECT_EQ(os::find_vma(list, a + 3 * kPage), nullptr);
  auto s = reinterpret_cast<std::uintptr_t>(shared.get());
  os::query_vmas(s, s + kPage, list);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_TRUE(list[0].shared);
  EXPECT_FALSE(list[0].migratable());
  ASSERT_EQ(munmap(priv.get(), 3 * kPage), 0);
  priv.forget();
}

// A large PROT_NONE mapping (a malloc arena's reservation) is no stack guard: the mapping right
// above it is an ordinary buffer, in both readers of the map.
TEST(ProcMaps, OnlySmallNoAccessMappingsGuardAStack) {
  const std::size_t big = 8u << 20;
  Mapping m(big + 4 * kPage);
  ASSERT_EQ(mprotect(m.get(), big, PROT_NONE), 0);
  ASSERT_EQ(mprotect(m.get() + big + kPage, kPage, PROT_NONE), 0);  // one page: a guard
  auto above_big = reinterpret_cast<std::uintptr_t>(m.get()) + big;
  auto above_page = above_big + 2 * kPage;
  os::VmaList fast, text;
  for (auto [addr, guarded] : {std::pair{above_big, false}, std::pair{above_page, true}}) {
    os::query_vmas(addr, addr + kPage, fast);
    os::query_vmas_text(addr, addr + kPage, text);
    ASSERT_EQ(fast.size(), 1u);
    ASSERT_EQ(text.size(), 1u);
    EXPECT_EQ(fast[0].guard_below != 0, guarded) << std::hex << addr;
    EXPECT_EQ(text[0].guard_below != 0, guarded) << std::hex << addr;
  }
}

// PROCMAP_QUERY (where the kernel has it) and the text must describe every mapping of the
// process alike: protections, sharing, file or anonymous, stacks and their guards, libraries'
// data, hetmm's own memory.
TEST(ProcMaps, QueryAndTextAgreeOnTheWholeProcess) {
  Mapping guard_and_stack(3 * kPage);
  ASSERT_EQ(mprotect(guard_and_stack.get(), kPage, PROT_NONE), 0);  // a guard below anonymous
  // The map may change between two reads (ASan's allocator maps chunks inside its reserved
  // ranges at any allocation): read it fast, as text, and fast again until both fast reads
  // agree, with room reserved so that the lists themselves allocate nothing meanwhile.
  os::VmaList fast, text, again;
  for (os::VmaList* l : {&fast, &text, &again}) l->reserve(8192);
  auto same_spans = [](const os::VmaList& a, const os::VmaList& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
      if (a[i].start != b[i].start || a[i].end != b[i].end) return false;
    return true;
  };
  for (int attempt = 0; attempt < 20; ++attempt) {
    os::query_vmas(0, ~std::uintptr_t{0} >> 8, fast);
    os::query_vmas_text(0, ~std::uintptr_t{0} >> 8, text);
    os::query_vmas(0, ~std::uintptr_t{0} >> 8, again);
    if (same_spans(fast, again) && same_spans(fast, text)) break;
  }
  ASSERT_GT(text.size(), 10u);
  ASSERT_EQ(fast.size(), text.size());
  std::size_t guards = 0, libraries = 0, special = 0, stacks = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const os::Vma &a = fast[i], &b = text[i];
    SCOPED_TRACE(i);
    EXPECT_EQ(a.start, b.start);
    EXPECT_EQ(a.end, b.end);
    EXPECT_EQ(a.prot(), b.prot());
    EXPECT_EQ(a.shared, b.shared);
    EXPECT_EQ(a.anonymous, b.anonymous);
    EXPECT_EQ(a.special, b.special);
    EXPECT_EQ(a.main_stack, b.main_stack);
    EXPECT_EQ(a.guard_below, b.guard_below);
    EXPECT_EQ(a.library_data, b.library_data);
    guards += b.guard_below != 0;
    libraries += b.library_data;
    special += b.special;
    stacks += b.main_stack;
  }
  EXPECT_GT(guards, 0u);
  EXPECT_GT(libraries, 0u);
  EXPECT_GT(special, 0u);
  EXPECT_EQ(stacks, 1u);
  // A range starting inside a mapping sees the same as the whole walk.
  auto a = reinterpret_cast<std::uintptr_t>(guard_and_stack.get()) + kPage;
  os::query_vmas(a + kPage, a + 2 * kPage, fast);
  os::query_vmas_text(a + kPage, a + 2 * kPage, text);
  ASSERT_EQ(fast.size(), 1u);
  ASSERT_EQ(text.size(), 1u);
  EXPECT_EQ(fast[0].guard_below, text[0].guard_below);
  EXPECT_NE(fast[0].guard_below, 0u);
}

TEST(Pagemap, TellsPresentFromUntouched) {
  Mapping m(4 * kPage);
  m.get()[kPage] = std::byte{1};
  std::uint8_t bits[4];
  ASSERT_TRUE(os::query_pages(reinterpret_cast<std::uintptr_t>(m.get()), 4, bits));
  EXPECT_FALSE(bits[0] & os::kPagePresent);
  EXPECT_TRUE(bits[1] & os::kPagePresent);
  EXPECT_FALSE(bits[1] & os::kPageZero);
}

TEST(SafeAccess, RecoversFromUnmappedMemory) {
  Runtime rt;  // installs the signal handler
  Mapping m(2 * kPage);
  ASSERT_EQ(mprotect(m.get() + kPage, kPage, PROT_NONE), 0);
  char buf[64];
  EXPECT_EQ(hetmm_safe_copy(buf, m.get(), 64), 0);
  EXPECT_EQ(hetmm_safe_copy(buf, m.get() + kPage, 64), -1);
  std::uint64_t v = 0;
  EXPECT_EQ(hetmm_safe_load8(m.get() + kPage, &v), -1);
  EXPECT_EQ(hetmm_safe_store4(m.get() + kPage, 1), -1);
  EXPECT_EQ(hetmm_safe_store4(m.get(), 7), 0);
  std::uint64_t old = 0;
  EXPECT_EQ(hetmm_safe_xadd4(m.get(), 3, &old), 0);
  EXPECT_EQ(old & 0xffffffffu, 7u);
  EXPECT_EQ(m.as<std::uint32_t>()[0], 10u);
}

TEST(FaultBuffer, DrainsInBatchesAndCompletes) {
  device::sim::FaultBuffer fb;
  std::vector<device::sim::FaultRequest> reqs(300);
  for (std::size_t i = 0; i < reqs.size(); ++i) {
    reqs[i].reset(i * kPage, (i + 1) * kPage, false);
    fb.post(&reqs[i]);
  }
  device::sim::FaultRequest* out[device::sim::FaultBuffer::kMaxBatch];
  EXPECT_EQ(fb.drain(out, device::sim::FaultBuffer::kMaxBatch), 256u);
  EXPECT_EQ(fb.drain(out, device::sim::FaultBuffer::kMaxBatch), 44u);
  std::thread waiter([&] { reqs[0].wait(); });
  reqs[0].complete();
  waiter.join();
  fb.stop();
  EXPECT_EQ(fb.drain(out, 1), 0u);
}

class Snapshot : public Tracked {};
HETMM_BOTH_MODES(Snapshot);

TEST_P(Snapshot, ClassifiesEveryKindOfPage) {
  Runtime rt(options(2));
  Mapping m(8 * kPage);
  fill_pattern(m.get(), 2 * kPage, 1);               // pages 0-1 touched
  ASSERT_EQ(mprotect(m.get() + 2 * kPage, kPage, PROT_READ), 0);
  ASSERT_EQ(mprotect(m.get() + 3 * kPage, kPage, PROT_NONE), 0);
  rt.device(0).migrate_to_device(m.get() + 4 * kPage, kPage);
  rt.device(1).migrate_to_device(m.get() + 5 * kPage, kPage);
  auto s = rt.device(0).snapshot(m.get(), 8 * kPage);
  ASSERT_EQ(s.size(), 8u);
  EXPECT_TRUE(s[0].readable && s[0].writable && !s[0].zero && !s[0].error);
  EXPECT_TRUE(s[2].readable && !s[2].writable && s[2].zero);
  EXPECT_TRUE(s[3].error && !s[3].readable);
  EXPECT_TRUE(s[4].location == Location::device(0) && s[4].writable);
  EXPECT_TRUE(s[5].location == Location::device(1));
  EXPECT_TRUE(s[6].zero && s[6].location == Location::system());
  EXPECT_TRUE(s[7].zero && !s[7].error);
  // A hole: below vm.mmap_min_addr nothing can be mapped (a page unmapped here could be
  // refilled by any other mapping of the process before the snapshot reads the map).
  auto hole = rt.device(0).snapshot(reinterpret_cast<void*>(std::uintptr_t{0x1000}), kPage);
  EXPECT_TRUE(hole[0].error && !hole[0].readable);
  ASSERT_EQ(mprotect(m.get() + 3 * kPage, kPage, PROT_READ | PROT_WRITE), 0);
}

}  // namespace
}  // namespace hetmm::test
