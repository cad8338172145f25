// The JIT's runtime contract, beyond what the PoCL comparisons check: the three access paths
// (in place, device frame, slow), errors from JIT code (faults, permissions, divergent
// barriers), generic pointers, page-straddling accesses, build options and the disk cache.
#include <hetmm/hetmm.hpp>

#include <gtest/gtest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <numeric>
#include <thread>
#include <vector>

namespace {

const char* kSource = R"CLC(
__kernel void scale(__global float* v, float k) { v[get_global_id(0)] *= k; }

__kernel void count(__global int* counter, __global int* hist, __global const int* keys) {
  atomic_inc(counter);
  atomic_add(&hist[keys[get_global_id(0)]], 1);
}

__kernel void diverge(__global int* out) {
  if (get_local_id(0) < 2) barrier(CLK_LOCAL_MEM_FENCE);
  out[get_global_id(0)] = 1;
}

// A generic pointer to private, to __local and to global memory, through one helper.
int twice(int* p) { return 2 * *p; }
__kernel void generic_ptrs(__global int* out, __local int* scratch) {
  int mine = (int)get_global_id(0);
  scratch[get_local_id(0)] = mine + 1000;
  barrier(CLK_LOCAL_MEM_FENCE);
  out[get_global_id(0)] = twice(&mine) + twice(&scratch[get_local_id(0)]) + twice(&out[get_global_id(0)]);
}

// Data-dependent loads: no range check applies, every load is probed.
__kernel void gather(__global const float* src, __global const uint* idx, __global float* out) {
  out[get_global_id(0)] = src[idx[get_global_id(0)]];
}

// Sparse rows (CSR): a gather whose index is a ranged load of the same loop (J7: the in-place
// copy scans the row's indices for the gather's range, and a copy with plain gathers runs).
__kernel void csr_rows(__global const uint* row_ptr, __global const uint* cols,
                       __global const float* vals, __global const float* x, __global float* y,
                       uint rows) {
  const size_t r = get_global_id(0);
  if (r >= rows) return;
  float s = 0.0f;
  for (uint j = row_ptr[r]; j < row_ptr[r + 1]; ++j) s += vals[j] * x[cols[j]];
  y[r] = s;
}

// A loop that rewrites the indices it gathers through: its store lies in the index's range, so
// no scan may stand for the loop's indices (J7); the result is the same on every path.
__kernel void gather_rewrite(__global uint* idx, __global const float* x, __global float* out,
                             uint per_item, uint n) {
  const size_t i = get_global_id(0);
  float s = 0.0f;
  for (uint j = i * per_item; j < (i + 1) * per_item; ++j) {
    s += x[idx[j]];
    idx[j] = (idx[j] * 7u + 3u) % n;
  }
  out[i] = s;
}

// A 3x3 filter in __constant memory; the edge's zeros and the interior's sums are stored through
// one PHI of two copies of the same index (after LLVM sinks the two stores into one).
__kernel void conv3(__global const float* in, __global float* out, __constant float* f, int w,
                    int h) {
  int x = get_global_id(0), y = get_global_id(1);
  if (x < 1 || y < 1 || x >= w - 1 || y >= h - 1) { out[y * w + x] = 0; return; }
  float s = 0;
  for (int dy = -1; dy <= 1; ++dy)
    for (int dx = -1; dx <= 1; ++dx) s += f[(dy + 1) * 3 + dx + 1] * in[(y + dy) * w + x + dx];
  out[y * w + x] = s;
}

// Every work-item reads the same small table in a loop: the loop's range check keeps its answer
// for the group while the epoch stays. `big` streams through device memory beside it.
__kernel void weigh(__global const int* table, __global int* out, int k, __global const int* big) {
  int s = 0;
  for (int c = 0; c < k; ++c) s += table[c] * (c + 1);
  out[get_global_id(0)] = s + big[get_global_id(0)];
}

// A butterfly: each work-item reads its partner i ^ j (a bitonic sort's step, out of place).
__kernel void butterfly(__global const uint* in, __global uint* out, uint j) {
  const uint i = (uint)get_global_id(0);
  const uint a = in[i], b = in[i ^ j];
  out[i] = (i < (i ^ j)) ? min(a, b) : max(a, b);
}

// Rows of `a` a stride apart (lda), each work-item a row times its column number: the row's
// range is the same for every work-item of a row of the group, and changes with the next row.
__kernel void row_sums(__global const float* a, __global float* out, int lda, int k) {
  const int col = (int)get_global_id(0), row = (int)get_global_id(1);
  float s = 0;
  for (int kk = 0; kk < k; ++kk) s += a[row * lda + kk];
  out[row * (int)get_global_size(0) + col] = s * (float)(col + 1);
}

// One increment per work-item: lost updates show as a count short of the launches.
__kernel void bump(__global int* v) { v[get_global_id(0)] += 1; }

// The same over a 2-D grid: the rows of a group (one page each here) are checked once for the
// whole group, before its first row (the nest check, mmu_loop_checks.cpp).
__kernel void bump2d(__global int* v, int w) { v[get_global_id(1) * w + get_global_id(0)] += 1; }

// The same over a 2-D grid: each row of a group enters the held loop anew (J5).
__kernel void bump_at2d(__global int* v, __global const uint* idx, uint w) {
  v[idx[get_global_id(1) * w + get_global_id(0)]] += 1;
}

// The same where the work-item loop holds a kernel loop: v[i] is probed, not range-checked, and
// keeps the run of frames it found for the next work-item (only while the epoch stays).
__kernel void bump_after_loop(__global int* v, __global const int* w, int k) {
  int s = 0;
  for (int j = 0; j < k; ++j) s += w[j];
  v[get_global_id(0)] += s;
}

// Grid-stride loops: each work-item steps by the global size, which the compiler does not
// know, with a 64-bit, an unsigned and a signed counter. Each checks one range, from its first
// element to the array's end, and reads and writes the same elements.
__kernel void bump_strided(__global int* v, ulong n) {
  for (size_t i = get_global_id(0); i < n; i += get_global_size(0)) v[i] += 1;
}
__kernel void bump_strided_uint(__global int* v, uint n) {
  for (uint i = get_global_id(0); i < n; i += get_global_size(0)) v[i] += 1;
}
__kernel void bump_strided_int(__global int* v, int n) {
  for (int i = get_global_id(0); i < n; i += get_global_size(0)) v[i] += 1;
}

// A grid-stride sum whose reads trail the counter by `lag` elements: the checked bound (the
// counter's bound, one step on) lies further past the last read.
__kernel void strided_sums(__global const int* v, __global int* out, int n, int lag) {
  int s = 0;
  for (int i = get_global_id(0) + lag; i < n; i += get_global_size(0)) s += v[i - lag];
  out[get_global_id(0)] = s;
}

// A quotient of the id as an index (a row's bias, scan's block sums): ranged from the id's
// range, b[i / cols] from b[first / cols] to b[last / cols].
__kernel void add_row_bias(__global int* out, __global const int* b, uint cols) {
  const uint i = get_global_id(0);
  out[i] += b[i / cols];
}
__kernel void add_block_sums(__global int* out, __global const int* sums, ulong per_block) {
  const size_t i = get_global_id(0);
  const size_t blk = i / per_block;
  if (blk > 0) out[i] += sums[blk - 1];
}

// The same through an index (a permutation): data-dependent accesses, probed one by one.
__kernel void bump_at(__global int* v, __global const uint* idx) { v[idx[get_global_id(0)]] += 1; }

// Region loops with everything that lives across a barrier: a loop-carried value (a PHI once
// promoted) used after the loop's barriers and after the loop, a private array indexed at run
// time and read through a generic pointer, ids and __local addresses recomputed per region, and
// groups of different sizes (the last one short).
int pick(const int* p, uint k) { return p[k % 8]; }
__kernel void regions_mix(__global const int* in, __global int* out, __local int* tmp,
                          uint rounds) {
  const uint lid = (uint)get_local_id(0), n = (uint)get_local_size(0);
  int priv[8];
  for (int k = 0; k < 8; ++k) priv[k] = in[get_global_id(0)] * (k + 1);
  int acc = priv[lid % 8];
  uint r = 0;
  for (; r < rounds; ++r) {
    tmp[lid] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    acc += tmp[(lid + r + 1) % n] + pick(priv, r + lid);
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  out[get_global_id(0)] = acc + (int)r * 1000 + pick(priv, lid + r);
}

// Values across barriers that are the same in every work-item and values that only look so:
// one chosen by a branch on the local id, one left by a loop whose trip count is the local id's,
// a loop counter around two barriers (read once per region as a uniform value), and a plain
// uniform value.
__kernel void regions_uniform(__global int* out, __local int* tmp, int n) {
  const int lid = (int)get_local_id(0);
  int v = 7;
  if (lid == 0) v = 9;
  int k = 0;
  for (int i = 0; i < lid % 3; ++i) k = n + 5;
  const int u = n * 2;
  int acc = 0;
  for (int t = 0; t < n; t += 2) {
    tmp[lid] = t + u;
    barrier(CLK_LOCAL_MEM_FENCE);
    acc += tmp[(lid + 1) % (int)get_local_size(0)] + t;
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  const size_t g = get_global_id(0);
  out[4 * g] = acc;
  out[4 * g + 1] = v;
  out[4 * g + 2] = k;
  out[4 * g + 3] = u;
}

// Unaligned 16-byte loads and stores, some of which straddle a page boundary.
__kernel void copy_unaligned(__global const uchar* in, __global uchar* out, int offset) {
  size_t i = get_global_id(0);
  vstore16(vload16(0, in + offset + 16 * i), 0, out + offset + 16 * i);
}
)CLC";

hetmm::Program program() {
  static hetmm::Program p = hetmm::Program::from_opencl_c(kSource);
  return p;
}

hetmm::Options options(hetmm::PolicyProfile policy) {
  hetmm::Options o;
  o.policy = policy;
  return o;
}

class JitPaths : public ::testing::TestWithParam<hetmm::PolicyProfile> {};

TEST_P(JitPaths, ScaleInPlaceOnFramesAndAfterMigration) {
  hetmm::Runtime rt(options(GetParam()));
  auto& dev = rt.device(0);
  std::vector<float> v(1 << 16);
  std::iota(v.begin(), v.end(), 0.0f);
  dev.launch(program(), "scale", hetmm::NDRange{v.size()}, hetmm::NDRange{128}, v.data(), 2.0f);
  dev.synchronize();
  // The same data on the device's own frames: the inline local path.
  dev.migrate_to_device(v.data(), v.size() * sizeof(float));
  dev.launch(program(), "scale", hetmm::NDRange{v.size()}, hetmm::NDRange{128}, v.data(), 0.5f);
  dev.synchronize();
  for (std::size_t i = 0; i < v.size(); ++i) ASSERT_EQ(v[i], static_cast<float>(i)) << i;
}

TEST_P(JitPaths, AtomicsOnSystemAndDeviceMemory) {
  hetmm::Runtime rt(options(GetParam()));
  auto& dev = rt.device(0);
  const std::size_t n = 1 << 15;
  std::vector<int> keys(n), hist(64, 0);
  for (std::size_t i = 0; i < n; ++i) keys[i] = static_cast<int>((i * 2654435761u) % 64);
  int* counter = static_cast<int*>(rt.allocate(4096));
  dev.migrate_to_device(counter, 4096);  // the counter's page lives on the device
  dev.launch(program(), "count", hetmm::NDRange{n}, hetmm::NDRange{64}, counter, hist.data(),
             keys.data());
  dev.synchronize();
  EXPECT_EQ(*counter, static_cast<int>(n));
  std::vector<int> expect(64, 0);
  for (int k : keys) ++expect[k];
  EXPECT_EQ(hist, expect);
  rt.deallocate(counter);
}

TEST_P(JitPaths, GenericPointersToPrivateLocalAndGlobal) {
  hetmm::Runtime rt(options(GetParam()));
  auto& dev = rt.device(0);
  std::vector<int> out(256, 7);
  dev.launch(program(), "generic_ptrs", hetmm::NDRange{out.size()}, hetmm::NDRange{32}, out.data(),
             hetmm::LocalMemory{32 * sizeof(int)});
  dev.synchronize();
  for (int i = 0; i < 256; ++i) ASSERT_EQ(out[i], 2 * i + 2 * (i + 1000) + 14) << i;
}

TEST_P(JitPaths, RegionLoopsKeepWhatLivesAcrossBarriers) {
  hetmm::Runtime rt(options(GetParam()));
  auto& dev = rt.device(0);
  const std::size_t n = 1000, local = 64;  // 15 groups of 64 and one of 40
  const unsigned rounds = 5;
  std::vector<int> in(n), out(n, -1);
  for (std::size_t i = 0; i < n; ++i) in[i] = static_cast<int>((i * 37) % 101) - 50;
  dev.launch(program(), "regions_mix", hetmm::NDRange{n}, hetmm::NDRange{local}, in.data(),
             out.data(), hetmm::LocalMemory{local * sizeof(int)}, rounds);
  dev.synchronize();
  for (std::size_t g = 0; g < n; g += local) {
    const std::size_t size = std::min(local, n - g);
    std::vector<int> acc(size), tmp(size);
    auto priv = [&](std::size_t lid, unsigned k) { return in[g + lid] * static_cast<int>(k % 8 + 1); };
    for (std::size_t l = 0; l < size; ++l) acc[l] = priv(l, static_cast<unsigned>(l));
    for (unsigned r = 0; r < rounds; ++r) {
      tmp = acc;
      for (std::size_t l = 0; l < size; ++l)
        acc[l] += tmp[(l + r + 1) % size] + priv(l, static_cast<unsigned>(r + l));
    }
    for (std::size_t l = 0; l < size; ++l)
      ASSERT_EQ(out[g + l], acc[l] + static_cast<int>(rounds) * 1000 +
                                priv(l, static_cast<unsigned>(l + rounds)))
          << "work-item " << g + l;
  }
}

TEST_P(JitPaths, UniformValuesAcrossBarriersAreTheGroupsAndOnlyThose) {
  hetmm::Runtime rt(options(GetParam()));
  auto& dev = rt.device(0);
  const std::size_t n = 200, local = 48;  // the last group is short
  const int rounds = 9;
  std::vector<int> out(4 * n, -1);
  dev.launch(program(), "regions_uniform", hetmm::NDRange{n}, hetmm::NDRange{local}, out.data(),
             hetmm::LocalMemory{local * sizeof(int)}, rounds);
  dev.synchronize();
  int acc = 0;
  for (int t = 0; t < rounds; t += 2) acc += 2 * t + 2 * rounds;
  for (std::size_t g = 0; g < n; ++g) {
    const int lid = static_cast<int>(g % local);
    ASSERT_EQ(out[4 * g], acc) << "work-item " << g;
    ASSERT_EQ(out[4 * g + 1], lid == 0 ? 9 : 7) << "work-item " << g;
    ASSERT_EQ(out[4 * g + 2], lid % 3 != 0 ? rounds + 5 : 0) << "work-item " << g;
    ASSERT_EQ(out[4 * g + 3], 2 * rounds) << "work-item " << g;
  }
}

TEST_P(JitPaths, PageStraddlingAccesses) {
  hetmm::Runtime rt(options(GetParam()));
  auto& dev = rt.device(0);
  const std::size_t bytes = 4 * 4096;
  auto* in = static_cast<unsigned char*>(rt.allocate(bytes));
  auto* out = static_cast<unsigned char*>(rt.allocate(bytes));
  for (std::size_t i = 0; i < bytes; ++i) in[i] = static_cast<unsigned char>(i * 7 + 3);
  const int offset = 9;  // 16-byte pieces at 9 + 16 i: every 256th crosses a page
  const std::size_t pieces = (bytes - 16 - offset) / 16;
  dev.launch(program(), "copy_unaligned", hetmm::NDRange{pieces}, hetmm::NDRange{1}, in, out,
             offset);
  dev.synchronize();
  for (std::size_t i = offset; i < offset + pieces * 16; ++i) ASSERT_EQ(out[i], in[i]) << i;
  rt.deallocate(in);
  rt.deallocate(out);
}

// A gather over two whole 2 MiB blocks mapped in place: the workers hold block entries for
// them. A page of a block that then moves to device memory must be read from there (a stale
// block entry would read it in place, and the CPU side would bring it home), and data the CPU
// writes in place is seen at once.
TEST_P(JitPaths, BlockEntriesFollowChangesInsideTheBlock) {
  hetmm::Runtime rt(options(GetParam()));
  auto& dev = rt.device(0);
  constexpr std::size_t kBlock = 2u << 20;
  void* raw = mmap(nullptr, 3 * kBlock, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(raw, MAP_FAILED);
  auto* src = reinterpret_cast<float*>((reinterpret_cast<std::uintptr_t>(raw) + kBlock - 1) & ~(kBlock - 1));
  const std::size_t n = 2 * kBlock / sizeof(float);
  for (std::size_t i = 0; i < n; ++i) src[i] = static_cast<float>(i);
  const std::size_t m = 1 << 16;
  std::vector<unsigned> idx(m);
  for (std::size_t i = 0; i < m; ++i) idx[i] = static_cast<unsigned>((i * 2654435761u) % n);
  idx[0] = 1000;  // page 0 of block 0: moves below
  std::vector<float> out(m);
  auto gather = [&] {
    dev.launch(program(), "gather", hetmm::NDRange{m}, hetmm::NDRange{64}, src, idx.data(), out.data());
    dev.synchronize();
    for (std::size_t i = 0; i < m; ++i) ASSERT_EQ(out[i], src[idx[i]]) << i;
  };
  gather();
  gather();  // every page is mapped now: whole blocks in place
  EXPECT_EQ(rt.audit(), "");
  dev.migrate_to_device(src, 4096);
  ASSERT_FALSE(rt.location(src).is_system());
  src[kBlock / sizeof(float) + 5] = -1.0f;  // in place, in block 1
  idx[1] = static_cast<unsigned>(kBlock / sizeof(float) + 5);
  dev.launch(program(), "gather", hetmm::NDRange{m}, hetmm::NDRange{64}, src, idx.data(), out.data());
  dev.synchronize();
  EXPECT_FALSE(rt.location(src).is_system()) << "the kernel read the migrated page in place";
  EXPECT_EQ(out[0], 1000.0f);
  EXPECT_EQ(out[1], -1.0f);
  EXPECT_EQ(rt.audit(), "");
  munmap(raw, 3 * kBlock);
}

// A buffer that fills only part of its block (a malloc'd array, the heap): the pages it spans
// are one run in place in the block entry, so checks over them pass inline; a page of it that
// moves to device memory splits the run, and kernels must then find that page there (a run
// that still claimed it would access it in place, and the CPU side would bring it home).
TEST_P(JitPaths, InPlaceRunsOfPartlyMappedBlocksStopAtPagesElsewhere) {
  hetmm::Runtime rt(options(GetParam()));
  auto& dev = rt.device(0);
  constexpr std::size_t kBlock = 2u << 20, kHead = 256u << 10, kSpan = 1280u << 10;
  char* raw = static_cast<char*>(
      mmap(nullptr, 2 * kBlock, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(raw, MAP_FAILED);
  char* block = reinterpret_cast<char*>((reinterpret_cast<std::uintptr_t>(raw) + kBlock - 1) & ~(kBlock - 1));
  // Only [block + 256 KiB, block + 1.5 MiB) stays mapped in that block.
  ASSERT_EQ(munmap(raw, static_cast<std::size_t>(block + kHead - raw)), 0);
  ASSERT_EQ(munmap(block + kHead + kSpan, static_cast<std::size_t>(raw + 2 * kBlock - (block + kHead + kSpan))), 0);
  auto* v = reinterpret_cast<float*>(block + kHead);
  const std::size_t n = kSpan / sizeof(float);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<float>(i);
  for (int k = 0; k < 2; ++k) {  // every page mapped, then the runs in the block entries
    dev.launch(program(), "scale", hetmm::NDRange{n}, hetmm::NDRange{64}, v, 1.0f);
    dev.synchronize();
  }
  float* moved = v + n / 2;  // a page in the middle of the run
  dev.migrate_to_device(moved, 4096);
  ASSERT_FALSE(rt.location(moved).is_system());
  dev.launch(program(), "scale", hetmm::NDRange{n}, hetmm::NDRange{64}, v, 2.0f);
  dev.synchronize();
  EXPECT_FALSE(rt.location(moved).is_system()) << "the kernel accessed the migrated page in place";
  for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(v[i], 2.0f * static_cast<float>(i)) << i;
  EXPECT_EQ(rt.audit(), "");
  munmap(block + kHead, kSpan);
}

// Arrays in device memory run the loops' frame versions (J4): whole blocks moved in (one run of
// frames each: block entries), pages migrated in reverse order (frames not in one run: page
// entries for small ranges, probes for the rest), and a mix of frames and system memory.
TEST_P(JitPaths, FrameLoopsComputeOnDeviceResidentData) {
  hetmm::Runtime rt(options(GetParam()));
  auto& dev = rt.device(0);
  constexpr std::size_t kBlock = 2u << 20;
  const std::size_t n = 2 * kBlock / sizeof(float);
  auto* v = static_cast<float*>(rt.allocate(2 * kBlock));
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<float>(i % 1000);
  dev.migrate_to_device(v, 2 * kBlock);
  for (std::size_t group : {64, 1024}) {
    dev.launch(program(), "scale", hetmm::NDRange{n}, hetmm::NDRange{group}, v, 2.0f);
    dev.synchronize();
  }
  for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(v[i], 4.0f * static_cast<float>(i % 1000)) << i;
  // Reverse order: consecutive pages get descending frames.
  for (std::size_t page = n * sizeof(float) / 4096; page-- > 0;)
    dev.migrate_to_device(reinterpret_cast<char*>(v) + page * 4096, 4096);
  dev.launch(program(), "scale", hetmm::NDRange{n}, hetmm::NDRange{256}, v, 0.5f);
  dev.synchronize();
  for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(v[i], 2.0f * static_cast<float>(i % 1000)) << i;
  // Half home again: loops over system memory and frames side by side.
  dev.migrate_to_system(v, kBlock);
  dev.launch(program(), "scale", hetmm::NDRange{n}, hetmm::NDRange{128}, v, 0.5f);
  dev.synchronize();
  for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(v[i], static_cast<float>(i % 1000)) << i;
  EXPECT_EQ(rt.audit(), "");
  rt.deallocate(v);
}

// A 3x3 convolution over arrays that do not start at a block (as malloc places them), with its
// filter in a small buffer, after the data moved to the device: every loop's accesses are
// covered by range checks (the store through a PHI too, the taps of one array by one check),
// ranges that cross a block boundary included, and the checks pass inline from the block and
// page entries. Before: the filter's page, in a block of mixed residency, cost a runtime call
// per loop, and a block migrated in two pieces straddled two chunks of device memory (two runs
// of frames that evicted each other's block entry): ~2 TLB misses per 32 work-items.
TEST_P(JitPaths, StencilLoopsOverDeviceDataCheckInline) {
  hetmm::Runtime rt(options(GetParam()));
  auto& dev = rt.device(0);
  constexpr std::size_t kBlock = 2u << 20;
  const int w = 1024, h = 768;  // 3 MiB per array
  const std::size_t n = static_cast<std::size_t>(w) * h;
  auto* raw = static_cast<char*>(rt.allocate(4 * kBlock));
  // Rows 100 KiB before a block boundary: a group's rows cross it.
  auto* in = reinterpret_cast<float*>(raw + kBlock - 100 * 1024 + 16);
  auto* out = in + n + 8;
  auto* f = static_cast<float*>(std::malloc(9 * sizeof(float)));
  for (int k = 0; k < 9; ++k) f[k] = 0.25f * static_cast<float>(k - 4);
  for (std::size_t i = 0; i < n; ++i) in[i] = static_cast<float>((i * 37) % 101);
  auto run = [&] {
    dev.launch(program(), "conv3", hetmm::NDRange{static_cast<std::size_t>(w), static_cast<std::size_t>(h)},
               hetmm::NDRange{32, 8}, in, out, f, w, h);
    dev.synchronize();
  };
  run();
  dev.migrate_to_device(raw, 4 * kBlock);
  dev.migrate_to_device(f, 9 * sizeof(float));
  run();  // first faults and refills
  const std::uint64_t before = dev.stats().tlb_misses;
  run();
  const std::uint64_t misses = dev.stats().tlb_misses - before;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      float expect = 0;
      if (x >= 1 && y >= 1 && x < w - 1 && y < h - 1)
        for (int dy = -1; dy <= 1; ++dy)
          for (int dx = -1; dx <= 1; ++dx)
            expect += f[(dy + 1) * 3 + dx + 1] * in[(y + dy) * w + x + dx];
      ASSERT_FLOAT_EQ(out[y * w + x], expect) << x << "," << y;
    }
  // 24576 loops of 32 work-items: a handful of refills per worker, not one per loop.
  EXPECT_LT(misses, 1000u) << "misses per launch";
  EXPECT_EQ(rt.audit(), "");
  std::free(f);
  rt.deallocate(raw);
}

// A loop with a data-dependent access whose other accesses are in device frames runs holding
// `active` (J5): its gathered loads read frames directly while they find them, and the first
// one that does not (a page in place, or a page not yet mapped) ends the grace period and
// takes the full probe from there on. A table half in device memory and half in place, read in
// an order that escapes at the first, a middle and the last work-item of a group, or never.
TEST_P(JitPaths, GathersLeaveTheFrameLoopAtTheirFirstPageInPlace) {
  hetmm::Runtime rt(options(GetParam()));
  auto& dev = rt.device(0);
  constexpr std::size_t kBlock = 2u << 20;
  const std::size_t table = 2 * kBlock / sizeof(float), n = 1 << 16, group = 64;
  auto* src = static_cast<float*>(rt.allocate(2 * kBlock));
  auto* idx = static_cast<std::uint32_t*>(rt.allocate(n * sizeof(std::uint32_t)));
  auto* out = static_cast<float*>(rt.allocate(n * sizeof(float)));
  for (std::size_t i = 0; i < table; ++i) src[i] = static_cast<float>(i);
  const std::size_t half = table / 2;
  std::uint64_t x = 88172645463325252ull;
  for (std::size_t i = 0; i < n; ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    const std::size_t in_group = i % group, g = i / group;
    // Groups of four kinds: all in frames; in place at the first, at the middle, at the last.
    const bool in_place = (g % 4 == 1 && in_group == 0) || (g % 4 == 2 && in_group >= group / 2) ||
                          (g % 4 == 3 && in_group == group - 1);
    idx[i] = static_cast<std::uint32_t>(in_place ? half + x % half : x % half);
  }
  dev.migrate_to_device(src, kBlock);
  dev.migrate_to_device(idx, n * sizeof(std::uint32_t));
  dev.migrate_to_device(out, n * sizeof(float));
  for (int round = 0; round < 3; ++round) {
    std::memset(out, 0, n * sizeof(float));
    dev.migrate_to_device(out, n * sizeof(float));
    dev.launch(program(), "gather", hetmm::NDRange{n}, hetmm::NDRange{group}, src, idx, out);
    dev.synchronize();
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(out[i], static_cast<float>(idx[i])) << round << " " << i;
  }
  EXPECT_EQ(rt.audit(), "");
  rt.deallocate(out);
  rt.deallocate(idx);
  rt.deallocate(src);
}

// J7 in device frames: a group whose gathered range (its indices' least and greatest, scanned
// on their frames) lies in frames runs a copy with plain gathers on the range's delta. Here the
// table starts in the middle of a block and covers parts of three, all in device memory. Every
// other group gathers from a window that moves across it, so that some windows cross a block
// boundary (two block entries, frames side by side at one delta); the others gather from the
// whole table (three block entries). In the last rounds the middle block is sent home: ranges
// that reach it run the held copy's probes. Each element read must be its own.
TEST_P(JitPaths, GathersInDeviceMemoryReadTheirScannedRangeOnItsFrames) {
  hetmm::Runtime rt(options(GetParam()));
  auto& dev = rt.device(0);
  constexpr std::size_t kBlock = 2u << 20;
  const std::size_t table = 2 * kBlock / sizeof(float), n = 1 << 16, group = 64, window = 4096;
  auto* raw = static_cast<std::byte*>(rt.allocate(3 * kBlock));
  auto* src = reinterpret_cast<float*>(raw + kBlock / 2);
  auto* idx = static_cast<std::uint32_t*>(rt.allocate(n * sizeof(std::uint32_t)));
  auto* out = static_cast<float*>(rt.allocate(n * sizeof(float)));
  for (std::size_t i = 0; i < table; ++i) src[i] = static_cast<float>(i);
  std::uint64_t x = 88172645463325252ull;
  const std::size_t groups = n / group;
  for (std::size_t i = 0; i < n; ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    const std::size_t g = i / group, start = g * (table - window) / groups;
    idx[i] = static_cast<std::uint32_t>(g % 2 == 0 ? start + x % window : x % table);
  }
  for (int round = 0; round < 4; ++round) {
    dev.migrate_to_device(raw, 3 * kBlock);
    dev.migrate_to_device(idx, n * sizeof(std::uint32_t));
    std::memset(out, 0, n * sizeof(float));
    dev.migrate_to_device(out, n * sizeof(float));
    if (round >= 2) dev.migrate_to_system(raw + kBlock, kBlock);  // the middle block in place
    for (int launch = 0; launch < 2; ++launch) {
      dev.launch(program(), "gather", hetmm::NDRange{n}, hetmm::NDRange{group}, src, idx, out);
      dev.synchronize();
      for (std::size_t i = 0; i < n; ++i)
        ASSERT_EQ(out[i], static_cast<float>(idx[i])) << round << " " << launch << " " << i;
    }
  }
  EXPECT_EQ(rt.audit(), "");
  rt.deallocate(out);
  rt.deallocate(idx);
  rt.deallocate(raw);
}

// A CPU thread that reads the first int of every 7th page of [v, v + bytes) until stopped, with
// `pause_us` between reads: each read of a device-resident page brings it home, an
// invalidation under the running kernels.
class CpuPageReader {
 public:
  CpuPageReader(const int* v, std::size_t bytes, unsigned pause_us = 0)
      : thread_([this, v, bytes, pause_us] {
          std::size_t page = 0;
          while (!done_.load()) {
            touched_ += reinterpret_cast<const volatile int*>(v)[(page % (bytes / 4096)) * 1024] >= 0;
            page += 7;
            if (pause_us != 0) usleep(pause_us);
          }
        }) {}
  ~CpuPageReader() { stop(); }
  // Joins the thread; returns how many reads it made.
  long stop() {
    done_ = true;
    if (thread_.joinable()) thread_.join();
    return touched_.load();
  }

 private:
  std::atomic<bool> done_{false};
  std::atomic<long> touched_{0};
  std::thread thread_;
};

// A loop over a table that every work-item reads (k-means' centroids) keeps its check's answer
// (in place, or the frames' delta) from one entry to the next while the epoch stays. Here device
// memory is 4 MiB and a 32 MiB array streams through it in the same kernel, so the table's page
// is evicted and its frame handed to the array's pages again and again (and a CPU thread takes
// the page home too): an answer kept across an epoch would read the array's data as the table
// (under uvm, whose eviction takes the table: fails every run when the epoch is not checked).
TEST_P(JitPaths, InvariantRangesKeepTheirAnswerOnlyWithinAnEpoch) {
  hetmm::Options o = options(GetParam());
  o.device_memory = 4u << 20;
  hetmm::Runtime rt(o);
  auto& dev = rt.device(0);
  const int k = 512;  // 2 KiB: one page
  const std::size_t n = 8u << 20;  // ints of `big`: 32 MiB
  auto* table = static_cast<int*>(rt.allocate(k * sizeof(int)));
  auto* big = static_cast<int*>(rt.allocate(n * sizeof(int)));
  auto* out = static_cast<int*>(rt.allocate(n * sizeof(int)));
  for (int c = 0; c < k; ++c) table[c] = (c * 7) % 13;  // >= 0: CpuPageReader counts those
  for (std::size_t i = 0; i < n; ++i) big[i] = static_cast<int>(i % 1000) - 500000;
  long expect = 0;
  for (int c = 0; c < k; ++c) expect += static_cast<long>(table[c]) * (c + 1);
  CpuPageReader cpu(table, 4096, 200);
  for (int round = 0; round < 3; ++round) {
    dev.migrate_to_device(table, k * sizeof(int));
    dev.launch(program(), "weigh", hetmm::NDRange{n}, hetmm::NDRange{256}, table, out, k, big);
    dev.synchronize();
    for (std::size_t i = 0; i < n; ++i)
      ASSERT_EQ(out[i], static_cast<int>(expect) + big[i]) << round << " " << i;
  }
  cpu.stop();
  EXPECT_EQ(rt.audit(), "");
  rt.deallocate(out);
  rt.deallocate(big);
  rt.deallocate(table);
}

// A butterfly's partner `in[i ^ j]` is range-checked (its index's range from i's, at loop
// entry) instead of probed: partners in the group's own slice (j < group), in another group's,
// and in another 2 MiB block, whose frames are elsewhere (copied device memory: no block
// moves, chunks apart), so a range computed too narrow would read the wrong frame (with the
// partner's bits left out of the range, the device runs never finish: their loads leave the
// frames).
TEST_P(JitPaths, ButterflyPartnersAreCheckedAsRanges) {
  hetmm::Options o = options(GetParam());
  o.zero_copy_moves = false;
  hetmm::Runtime rt(o);
  auto& dev = rt.device(0);
  const std::size_t n = 1u << 20;  // 4 MiB of uints: two blocks and more
  auto* raw = static_cast<char*>(rt.allocate(n * 4 + (3u << 20)));
  auto* in = reinterpret_cast<std::uint32_t*>(raw + (1u << 20) + 64);  // mid-block, as malloc
  auto* out = static_cast<std::uint32_t*>(rt.allocate(n * 4));
  std::uint64_t x = 88172645463325252ull;
  for (std::size_t i = 0; i < n; ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    in[i] = static_cast<std::uint32_t>(x);
  }
  for (std::uint32_t j : {1u, 64u, 128u, 1024u, 1u << 16, 1u << 19}) {
    dev.migrate_to_device(raw, n * 4 + (3u << 20));
    dev.launch(program(), "butterfly", hetmm::NDRange{n}, hetmm::NDRange{128}, in, out, j);
    dev.synchronize();
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint32_t a = in[i], b = in[i ^ j];
      ASSERT_EQ(out[i], (i < (i ^ j)) ? std::min(a, b) : std::max(a, b)) << "j " << j << " i " << i;
    }
  }
  EXPECT_EQ(rt.audit(), "");
  rt.deallocate(out);
  rt.deallocate(raw);
}

// A gather's in-place loop reads the index a few iterations ahead to prefetch its element; the
// read stays inside the index's checked range: an index array that ends right before a page
// the process cannot read (PROT_NONE) must not fault on the read ahead.
TEST_P(JitPaths, GatherPrefetchReadsNoIndexPastTheRange) {
  hetmm::Runtime rt(options(GetParam()));
  auto& dev = rt.device(0);
  const long page = sysconf(_SC_PAGESIZE);
  const std::size_t n = 4 * static_cast<std::size_t>(page) / sizeof(std::uint32_t);
  void* raw = mmap(nullptr, 5 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(raw, MAP_FAILED);
  ASSERT_EQ(mprotect(static_cast<char*>(raw) + 4 * page, page, PROT_NONE), 0);
  auto* idx = static_cast<std::uint32_t*>(raw);  // its last element ends at the guard page
  std::vector<float> src(1 << 16), out(n);
  for (std::size_t i = 0; i < src.size(); ++i) src[i] = static_cast<float>(i);
  for (std::size_t i = 0; i < n; ++i) idx[i] = static_cast<std::uint32_t>((i * 2654435761u) % src.size());
  for (std::size_t group : {64, 256, 1024}) {
    dev.launch(program(), "gather", hetmm::NDRange{n}, hetmm::NDRange{group}, src.data(), idx, out.data());
    dev.synchronize();
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(out[i], src[idx[i]]) << group << " " << i;
  }
  EXPECT_EQ(rt.audit(), "");
  munmap(raw, 5 * page);
}

// CSR rows of every kind of length (empty, one, short, longer than a scan covers) with exact
// float sums, the data in place, the gathered vector in device memory (the scan's check fails:
// the gathers probe), half of it there (rows of both kinds in one launch), and the matrix in
// device memory: every path gives every row's sum.
TEST_P(JitPaths, CsrGathersScanTheirIndicesAndFallBackToProbes) {
  hetmm::Runtime rt(options(GetParam()));
  auto& dev = rt.device(0);
  const std::uint32_t rows = 3000, nx = 1u << 18;  // x: 1 MiB
  const std::uint32_t lengths[] = {0, 1, 3, 16, 17, 0, 5000, 2};
  // row_ptr on pages of its own: moved to device memory, no other heap data would bring it home.
  auto* row_ptr = static_cast<std::uint32_t*>(rt.allocate((rows + 1) * 4));
  for (std::uint32_t r = 0; r < rows; ++r) row_ptr[r + 1] = row_ptr[r] + lengths[r % 8] % (r < 40 ? 5001 : 40);
  const std::uint32_t nnz = row_ptr[rows];
  auto* cols = static_cast<std::uint32_t*>(rt.allocate(std::size_t{nnz} * 4));
  auto* vals = static_cast<float*>(rt.allocate(std::size_t{nnz} * 4));
  auto* x = static_cast<float*>(rt.allocate(std::size_t{nx} * 4));
  std::vector<float> y(rows), want(rows, 0.0f);
  for (std::uint32_t i = 0; i < nx; ++i) x[i] = static_cast<float>(i % 16);
  // A row's second index in x's lower half, its others in the upper half: with the lower half in
  // device memory, a row's gathers are in place only where its range says so.
  for (std::uint32_t r = 0; r < rows; ++r)
    for (std::uint32_t j = row_ptr[r]; j < row_ptr[r + 1]; ++j) {
      const std::uint32_t hash = (j * 2654435761u) % (nx / 2);
      cols[j] = j == row_ptr[r] + 1 ? hash : nx / 2 + hash;
      vals[j] = static_cast<float>(j % 8);
    }
  for (std::uint32_t r = 0; r < rows; ++r)
    for (std::uint32_t j = row_ptr[r]; j < row_ptr[r + 1]; ++j) want[r] += vals[j] * x[cols[j]];
  // No launch may touch a device-resident page through its process address (which would bring
  // it home): a scan whose range missed an index would read x there, a nest range too narrow
  // (J8) would read vals there, a work-item loop's check that passed wrongly row_ptr.
  struct Region {
    const char* name;
    const void* p;
    std::size_t bytes;
  };
  const Region watched[] = {{"x", x, std::size_t{nx} * 4},
                            {"vals", vals, std::size_t{nnz} * 4},
                            {"cols", cols, std::size_t{nnz} * 4},
                            {"row_ptr", row_ptr, std::size_t{rows + 1} * 4}};
  auto check = [&](const char* what) {
    std::vector<std::pair<const Region*, std::size_t>> on_device;  // pages there before
    for (const Region& r : watched)
      for (std::size_t at = 0; at < r.bytes; at += 4096)
        if (rt.location(static_cast<const char*>(r.p) + at) == hetmm::Location::device(0))
          on_device.push_back({&r, at});
    for (int round = 0; round < 2; ++round) {
      std::fill(y.begin(), y.end(), -1.0f);
      dev.launch(program(), "csr_rows", hetmm::NDRange{rows}, hetmm::NDRange{64}, row_ptr,
                 cols, vals, x, y.data(), rows);
      dev.synchronize();
      for (std::uint32_t r = 0; r < rows; ++r) ASSERT_EQ(y[r], want[r]) << what << " row " << r;
    }
    for (auto [r, at] : on_device)
      ASSERT_TRUE(rt.location(static_cast<const char*>(r->p) + at) == hetmm::Location::device(0))
          << what << ": " << r->name << " + " << at;
  };
  check("in place");
  const std::size_t tail = std::size_t{nnz} * 4 - 16384;  // the last rows' values
  dev.migrate_to_device(vals + tail / 4, 16384);
  check("the last rows' values in device memory");
  dev.migrate_to_system(vals + tail / 4, 16384);
  dev.migrate_to_device(row_ptr, std::size_t{rows + 1} * 4);
  check("row_ptr in device memory");
  dev.migrate_to_system(row_ptr, std::size_t{rows + 1} * 4);
  dev.migrate_to_device(x, std::size_t{nx} * 4);
  check("x in device memory");
  dev.migrate_to_system(x + nx / 2, std::size_t{nx} * 2);
  check("the lower half of x in device memory");
  dev.migrate_to_device(cols, std::size_t{nnz} * 4);
  dev.migrate_to_device(vals, std::size_t{nnz} * 4);
  check("all in device memory");
  EXPECT_EQ(rt.audit(), "");
  rt.deallocate(cols);
  rt.deallocate(vals);
  rt.deallocate(x);
  rt.deallocate(row_ptr);
}

// The scan reads a row's indices and nothing past them: an index array that ends right before
// a page the process cannot read (PROT_NONE), rows that end at its last element.
TEST_P(JitPaths, IndexScansReadNoIndexPastTheRow) {
  hetmm::Runtime rt(options(GetParam()));
  auto& dev = rt.device(0);
  const long page = sysconf(_SC_PAGESIZE);
  const std::uint32_t nnz = 2 * static_cast<std::uint32_t>(page) / 4;
  void* raw = mmap(nullptr, 3 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(raw, MAP_FAILED);
  ASSERT_EQ(mprotect(static_cast<char*>(raw) + 2 * page, page, PROT_NONE), 0);
  auto* cols = static_cast<std::uint32_t*>(raw);
  std::vector<float> vals(nnz, 1.0f), x(4096);
  for (std::uint32_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 32);
  for (std::uint32_t j = 0; j < nnz; ++j) cols[j] = (j * 40503u) % 4096;
  for (std::uint32_t len : {1u, 7u, 13u, 16u, 33u}) {
    const std::uint32_t rows = nnz / len;
    std::vector<std::uint32_t> row_ptr(rows + 1);
    for (std::uint32_t r = 0; r <= rows; ++r) row_ptr[r] = nnz - (rows - r) * len;  // ends at nnz
    std::vector<float> y(rows);
    dev.launch(program(), "csr_rows", hetmm::NDRange{rows}, hetmm::NDRange{32}, row_ptr.data(),
               cols, vals.data(), x.data(), y.data(), rows);
    dev.synchronize();
    for (std::uint32_t r = 0; r < rows; ++r) {
      float want = 0;
      for (std::uint32_t j = row_ptr[r]; j < row_ptr[r + 1]; ++j) want += x[cols[j]];
      ASSERT_EQ(y[r], want) << "rows of " << len << ", row " << r;
    }
  }
  EXPECT_EQ(rt.audit(), "");
  munmap(raw, 3 * page);
}

// A loop that stores into the index range it gathers through runs without the scan's range.
TEST_P(JitPaths, LoopsThatRewriteTheirIndicesAreNotScanned) {
  hetmm::Runtime rt(options(GetParam()));
  auto& dev = rt.device(0);
  const std::uint32_t items = 512, per_item = 24, n = 1u << 16;
  std::vector<std::uint32_t> idx(items * per_item), shadow;
  std::vector<float> x(n), out(items);
  for (std::uint32_t i = 0; i < n; ++i) x[i] = static_cast<float>(i % 64);
  for (std::uint32_t j = 0; j < idx.size(); ++j) idx[j] = (j * 2246822519u) % n;
  shadow = idx;
  for (int round = 0; round < 3; ++round) {
    dev.launch(program(), "gather_rewrite", hetmm::NDRange{items}, hetmm::NDRange{64}, idx.data(),
               x.data(), out.data(), per_item, n);
    dev.synchronize();
    for (std::uint32_t i = 0; i < items; ++i) {
      float want = 0;
      for (std::uint32_t j = i * per_item; j < (i + 1) * per_item; ++j) {
        want += x[shadow[j]];
        shadow[j] = (shadow[j] * 7u + 3u) % n;
      }
      ASSERT_EQ(out[i], want) << "round " << round << " item " << i;
    }
    ASSERT_EQ(idx, shadow) << "round " << round;
  }
  EXPECT_EQ(rt.audit(), "");
}

// A kept range answer is for its range: in a 2-D group the inner loop's range (a row) is the
// same across the x loop around it but changes with the y loop around that, and the rows lie in
// different blocks of device memory (copied memory: chunks apart, a delta per block). Keyed on
// the epoch alone, the second row read the first row's frames (found by DenseMatmul under ASan,
// whose heap put the matrix's rows in different runs of frames).
TEST_P(JitPaths, KeptRangeAnswersAreForTheirRangeOnly) {
  hetmm::Options o = options(GetParam());
  o.zero_copy_moves = false;
  hetmm::Runtime rt(o);
  auto& dev = rt.device(0);
  const int rows = 8, cols = 16, k = 64;
  const int lda = (2 << 20) / 4 + 1024;  // one row per 2 MiB block, each at another offset
  auto* a = static_cast<float*>(rt.allocate(static_cast<std::size_t>(lda) * rows * 4));
  std::vector<float> out(rows * cols);
  for (int r = 0; r < rows; ++r)
    for (int kk = 0; kk < k; ++kk) a[static_cast<std::size_t>(r) * lda + kk] = static_cast<float>(r * 100 + kk);
  for (int r = 0; r < rows; ++r) dev.migrate_to_device(a + static_cast<std::size_t>(r) * lda, k * 4);
  for (int round = 0; round < 2; ++round) {
    dev.launch(program(), "row_sums", hetmm::NDRange{cols, rows}, hetmm::NDRange{cols, rows}, a,
               out.data(), lda, k);
    dev.synchronize();
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c) {
        const float want = static_cast<float>((r * 100 * k + k * (k - 1) / 2) * (c + 1));
        ASSERT_EQ(out[r * cols + c], want) << "row " << r << " col " << c;
      }
  }
  EXPECT_EQ(rt.audit(), "");
  rt.deallocate(a);
}

// 40 launches of `launch` over 4 MiB of ints in device memory (moved back to frames every 8
// launches) while a CPU thread reads pages, which brings them home (an invalidation that must
// wait for every loop that may still write the frame): each of the first `counted` ints (all
// by default) must count every launch, the rest none. A kernel that wrote a frame after its
// page was copied home would lose increments.
void ExpectNoUpdateLostWhileTheCpuTakesPagesHome(
    hetmm::PolicyProfile policy, const std::function<void(hetmm::Device&, int*)>& launch,
    std::size_t counted = ~std::size_t{0}) {
  hetmm::Runtime rt(options(policy));
  auto& dev = rt.device(0);
  constexpr std::size_t kBytes = 4u << 20;
  const std::size_t n = kBytes / sizeof(int);
  auto* v = static_cast<int*>(rt.allocate(kBytes));
  std::memset(v, 0, kBytes);
  CpuPageReader cpu(v, kBytes);
  const int launches = 40;
  for (int k = 0; k < launches; ++k) {
    if (k % 8 == 0) dev.migrate_to_device(v, kBytes);
    launch(dev, v);
    dev.synchronize();
  }
  EXPECT_GT(cpu.stop(), 0);
  for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(v[i], i < counted ? launches : 0) << i;
  EXPECT_EQ(rt.audit(), "");
  rt.deallocate(v);
}
constexpr std::size_t kTestInts = (4u << 20) / sizeof(int);

// A frame loop holds the shootdown protocol's `active` for the whole loop (J4).
TEST_P(JitPaths, FrameLoopsLoseNoUpdateWhileTheCpuTakesPagesHome) {
  ExpectNoUpdateLostWhileTheCpuTakesPagesHome(GetParam(), [](hetmm::Device& dev, int* v) {
    dev.launch(program(), "bump", hetmm::NDRange{kTestInts}, hetmm::NDRange{64}, v);
  });
}

// Probed accesses keep the run of frames they found, with its epoch: one that ran on its kept
// run after the CPU took the page home would write a frame no longer the page's.
TEST_P(JitPaths, KeptFrameRunsLoseNoUpdateWhileTheCpuTakesPagesHome) {
  static int one = 1;
  ExpectNoUpdateLostWhileTheCpuTakesPagesHome(GetParam(), [](hetmm::Device& dev, int* v) {
    dev.launch(program(), "bump_after_loop", hetmm::NDRange{kTestInts}, hetmm::NDRange{64}, v,
               &one, 1);
  });
}

// The same when a group's rows are checked once for the group (the nest check): a row that runs
// after the CPU took a page of the group home must find the epoch moved and check again. A
// group's 16 rows span 17 pages, across the 64 KiB a CPU fault takes home at a time: some of
// its rows are taken home while others stay in frames.
TEST_P(JitPaths, GroupsCheckedOnceForAllTheirRowsLoseNoUpdateWhileTheCpuTakesPagesHome) {
  constexpr std::size_t kWidth = 1040, kRows = kTestInts / kWidth / 16 * 16;
  ExpectNoUpdateLostWhileTheCpuTakesPagesHome(
      GetParam(),
      [](hetmm::Device& dev, int* v) {
        dev.launch(program(), "bump2d", hetmm::NDRange{kWidth, kRows}, hetmm::NDRange{16, 16}, v,
                   static_cast<int>(kWidth));
      },
      kWidth * kRows);
}

// Rows 256 KiB apart: a group's rows span more than two blocks, so each row checks its own
// range in frames, and keeps the run it found (with the epoch it found it in) for the next rows
// in that run. A row after the CPU took a page home must not use the kept run.
TEST_P(JitPaths, RowChecksKeepTheirRunOnlyWithinAnEpoch) {
  constexpr std::size_t kWidth = 65536;
  ExpectNoUpdateLostWhileTheCpuTakesPagesHome(GetParam(), [](hetmm::Device& dev, int* v) {
    dev.launch(program(), "bump2d", hetmm::NDRange{kWidth, kTestInts / kWidth},
               hetmm::NDRange{16, 16}, v, static_cast<int>(kWidth));
  });
}

// Moves [p, p + bytes) to the device block by block, a block of `filler` after each: in copied
// device memory each block's frames then lie apart from the last's (no one run of frames).
void MoveBlocksApart(hetmm::Device& dev, char* p, char* filler, std::size_t bytes) {
  for (std::size_t at = 0; at < bytes; at += 2u << 20) {
    dev.migrate_to_device(p + at, std::min<std::size_t>(2u << 20, bytes - at));
    dev.migrate_to_device(filler + at, std::min<std::size_t>(2u << 20, bytes - at));
  }
}

// Grid-stride loops (the step is the global size, unknown to the compiler) check their range
// once, from the work-item's first element to the array's end: a loop over device memory then
// holds `active` for the whole loop (J4). Every element must count every launch while the CPU
// takes pages home, with each kind of counter, and with global sizes that divide the array
// and that do not.
TEST_P(JitPaths, GridStrideLoopsLoseNoUpdateWhileTheCpuTakesPagesHome) {
  for (const char* kernel : {"bump_strided", "bump_strided_uint", "bump_strided_int"}) {
    SCOPED_TRACE(kernel);
    ExpectNoUpdateLostWhileTheCpuTakesPagesHome(GetParam(), [kernel](hetmm::Device& dev, int* v) {
      const std::size_t global = std::string(kernel) == "bump_strided" ? 4096 : 3000;
      if (std::string(kernel) == "bump_strided")
        dev.launch(program(), kernel, hetmm::NDRange{global}, hetmm::NDRange{64}, v,
                   std::uint64_t{kTestInts});
      else
        dev.launch(program(), kernel, hetmm::NDRange{global}, hetmm::NDRange{8}, v,
                   static_cast<std::uint32_t>(kTestInts));
    });
  }
}

// Grid-stride sums over an array that starts mid-block and spans several blocks: in one run of
// frames (moved at once: the loops run on it), and block by block with another buffer's block
// moved in between (copied memory: each block's frames apart from the last's, so no one run
// covers the range and the loops must run probed), with the counter ahead of the read (a bound
// past the last read) and global sizes larger than the array.
TEST_P(JitPaths, GridStrideSumsOverSeveralBlocks) {
  for (bool one_run : {true, false}) {
    hetmm::Options o = options(GetParam());
    o.zero_copy_moves = one_run;
    hetmm::Runtime rt(o);
    auto& dev = rt.device(0);
    const int n = (5 << 20) / 4 + 123;  // 5 MiB and a little: three blocks and part of a fourth
    const std::size_t bytes = static_cast<std::size_t>(n) * 4 + (3u << 20);
    auto* raw = static_cast<char*>(rt.allocate(bytes));
    auto* filler = static_cast<char*>(rt.allocate(bytes));
    auto* v = reinterpret_cast<int*>(raw + (1u << 20) + 16);  // mid-block, as malloc
    for (int i = 0; i < n; ++i) v[i] = static_cast<int>(i * 7919L % 1000) - 500;
    std::memset(filler, 1, bytes);
    for (std::size_t global : {std::size_t{4096}, std::size_t{1000}, (std::size_t{n} + 31) / 8 * 8}) {
      for (int lag : {0, 1, 5}) {
        std::vector<int> out(global, -1);
        if (one_run)
          dev.migrate_to_device(raw, bytes);
        else
          MoveBlocksApart(dev, raw, filler, bytes);
        dev.launch(program(), "strided_sums", hetmm::NDRange{global}, hetmm::NDRange{8}, v,
                   out.data(), n, lag);
        dev.synchronize();
        for (std::size_t g = 0; g < global; ++g) {
          long want = 0;
          for (long i = static_cast<long>(g) + lag; i < n; i += static_cast<long>(global))
            want += v[i - lag];
          ASSERT_EQ(out[g], static_cast<int>(want))
              << "one run " << one_run << " global " << global << " lag " << lag << " g " << g;
        }
      }
    }
    EXPECT_EQ(rt.audit(), "");
    rt.deallocate(filler);
    rt.deallocate(raw);
  }
}

// Quotient indices (`b[i / cols]`) are range-checked from the id's range. The divided-by array
// spans several blocks moved one at a time with another buffer's block between (copied memory:
// each block's frames apart), so a group whose quotients cross a block boundary must not run
// on one block's frames; every element checked against the CPU, for several divisors.
TEST_P(JitPaths, QuotientIndicesAreCheckedAsRanges) {
  hetmm::Options o = options(GetParam());
  o.zero_copy_moves = false;
  hetmm::Runtime rt(o);
  auto& dev = rt.device(0);
  const std::size_t n = 3u << 20;  // 12 MiB of ints
  const std::size_t bytes = n * 4 + (3u << 20);
  auto* out = static_cast<int*>(rt.allocate(n * 4));
  auto* raw = static_cast<char*>(rt.allocate(bytes));
  auto* filler = static_cast<char*>(rt.allocate(bytes));
  auto* b = reinterpret_cast<int*>(raw + (1u << 20) + 16);  // mid-block, as malloc
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<int>(i * 2654435761u % 1000);
  std::memset(filler, 1, bytes);
  for (std::uint32_t cols : {1u, 3u, 1000u, 100000u}) {
    std::memset(out, 0, n * 4);
    MoveBlocksApart(dev, raw, filler, bytes);
    dev.launch(program(), "add_row_bias", hetmm::NDRange{n}, hetmm::NDRange{256}, out, b, cols);
    dev.launch(program(), "add_block_sums", hetmm::NDRange{n}, hetmm::NDRange{256}, out, b,
               std::uint64_t{cols});
    dev.synchronize();
    for (std::size_t i = 0; i < n; ++i)
      ASSERT_EQ(out[i], b[i / cols] + (i / cols > 0 ? b[i / cols - 1] : 0)) << "cols " << cols << " i " << i;
  }
  EXPECT_EQ(rt.audit(), "");
  rt.deallocate(filler);
  rt.deallocate(raw);
  rt.deallocate(out);
}

// Data-dependent accesses to data in device memory find whole blocks of frames in the block
// TLB (one entry per 2 MiB) instead of missing the page TLB on most accesses; and they hold
// `active` only around each access, published without a hardware fence where membarrier
// orders it (os/asymmetric_fence.hpp): a CPU thread taking pages home meanwhile must not lose
// an increment.
TEST_P(JitPaths, ProbedAccessesToDeviceBlocksLoseNoUpdateWhileTheCpuTakesPagesHome) {
  hetmm::Runtime rt(options(GetParam()));
  auto& dev = rt.device(0);
  constexpr std::size_t kBytes = 8u << 20;  // 2048 pages: twice the page TLB
  const std::size_t n = kBytes / sizeof(int);
  auto* v = static_cast<int*>(rt.allocate(kBytes));
  auto* idx = static_cast<std::uint32_t*>(rt.allocate(n * sizeof(std::uint32_t)));
  std::memset(v, 0, kBytes);
  for (std::size_t i = 0; i < n; ++i) idx[i] = static_cast<std::uint32_t>(i);
  std::uint64_t x = 88172645463325252ull;
  for (std::size_t i = n - 1; i > 0; --i) {  // a random permutation (xorshift, Fisher-Yates)
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    std::swap(idx[i], idx[x % (i + 1)]);
  }
  // Quiet first: two launches over device-resident data, the second one measured.
  dev.migrate_to_device(v, kBytes);
  dev.migrate_to_device(idx, n * sizeof(std::uint32_t));
  dev.launch(program(), "bump_at", hetmm::NDRange{n}, hetmm::NDRange{64}, v, idx);
  dev.synchronize();
  const std::uint64_t misses_before = dev.stats().tlb_misses;
  dev.launch(program(), "bump_at", hetmm::NDRange{n}, hetmm::NDRange{64}, v, idx);
  dev.synchronize();
  // Page entries alone would miss on about half of the n random accesses; block entries
  // (in place under in_place, frames otherwise) leave the range checks' refills, at most one a
  // group here.
  const std::uint64_t misses = dev.stats().tlb_misses - misses_before;
  EXPECT_LE(misses, n / 64 + 64) << "random accesses over 8 MiB missed the TLB: block entries unused";
  // Paced: a page taken home is a fault for the kernels, whose launches get longer, and an
  // unpaced reader takes more pages the longer they run (minutes under a loaded ASan run).
  CpuPageReader cpu(v, kBytes, 50);
  const int launches = 8;
  for (int k = 0; k < launches; ++k) {
    if (k % 4 == 0) dev.migrate_to_device(v, kBytes);
    dev.launch(program(), "bump_at", hetmm::NDRange{n}, hetmm::NDRange{64}, v, idx);
    dev.synchronize();
  }
  EXPECT_GT(cpu.stop(), 0);
  for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(v[i], launches + 2) << i;
  // Groups of 64 short rows: every row enters the held loop anew, and a row after the CPU took
  // a page home must not run on what an earlier row of the group found.
  for (int k = 0; k < launches; ++k) {
    if (k % 4 == 0) dev.migrate_to_device(v, kBytes);
    dev.launch(program(), "bump_at2d", hetmm::NDRange{64, n / 64}, hetmm::NDRange{4, 64}, v, idx,
               std::uint32_t{64});
    dev.synchronize();
  }
  for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(v[i], 2 * launches + 2) << i;
  EXPECT_EQ(rt.audit(), "");
  rt.deallocate(idx);
  rt.deallocate(v);
}

INSTANTIATE_TEST_SUITE_P(Policies, JitPaths,
                         ::testing::Values(hetmm::PolicyProfile::in_place,
                                           hetmm::PolicyProfile::hetmm, hetmm::PolicyProfile::uvm),
                         [](const auto& info) {
                           switch (info.param) {
                             case hetmm::PolicyProfile::in_place: return "in_place";
                             case hetmm::PolicyProfile::uvm: return "uvm";
                             default: return "hetmm";
                           }
                         });

TEST(JitErrors, InaccessibleMemoryIsAFaultNotACrash) {
  hetmm::Runtime rt;
  auto& dev = rt.device(0);
  long page = sysconf(_SC_PAGESIZE);
  // PROT_NONE rather than unmapped: an unmapped range could be reused by any allocation
  // (the JIT's own code pages, for one) before the kernel runs.
  void* p = mmap(nullptr, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  dev.launch(program(), "scale", hetmm::NDRange{16}, hetmm::NDRange{16}, static_cast<float*>(p), 2.0f);
  try {
    dev.synchronize();
    FAIL() << "a kernel touching unmapped memory must fail";
  } catch (const hetmm::Error& e) {
    EXPECT_EQ(e.code(), hetmm::Errc::fault) << e.what();
  }
  // The device still works afterwards.
  std::vector<float> v(16, 1.0f);
  dev.launch(program(), "scale", hetmm::NDRange{16}, hetmm::NDRange{16}, v.data(), 3.0f);
  dev.synchronize();
  EXPECT_EQ(v[15], 3.0f);
  munmap(p, page);
}

// A launch's completion callback (what OpenCL events use): it runs once per launch, after the
// kernel's work, and takes the kernel's error instead of synchronize.
TEST(JitCompletion, CallbackSeesTheWorkDoneAndTakesTheError) {
  hetmm::Runtime rt;
  auto& dev = rt.device(0);
  const long page = sysconf(_SC_PAGESIZE);
  void* bad = mmap(nullptr, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(bad, MAP_FAILED);
  constexpr int kLaunches = 64;
  std::vector<int> v(1024, 0);
  std::atomic<int> ok{0}, failed{0}, saw_all_work{0};
  for (int i = 0; i < kLaunches; ++i) {
    const bool faulty = i % 8 == 7;
    std::vector<hetmm::detail::LaunchArg> args{
        hetmm::detail::make_launch_arg(faulty ? static_cast<int*>(bad) : v.data())};
    const int expected = i - i / 8;  // increments done by the good launches up to this one
    dev.launch_program(program(), "bump", hetmm::NDRange{1024}, hetmm::NDRange{64},
                       std::move(args), {0, 0, 0}, [&, faulty, expected](std::exception_ptr e) {
                         if (faulty != (e != nullptr)) return;
                         (e ? failed : ok).fetch_add(1);
                         // Kernels run in order: this one's increments are all visible (later
                         // kernels may be running already).
                         if (!faulty && __atomic_load_n(&v[0], __ATOMIC_RELAXED) > expected &&
                             __atomic_load_n(&v[1023], __ATOMIC_RELAXED) > expected)
                           saw_all_work.fetch_add(1);
                       });
  }
  dev.synchronize();  // the errors went to the callbacks: nothing to rethrow
  EXPECT_EQ(ok.load(), kLaunches - kLaunches / 8);
  EXPECT_EQ(failed.load(), kLaunches / 8);
  EXPECT_EQ(saw_all_work.load(), ok.load());
  EXPECT_EQ(v[512], kLaunches - kLaunches / 8);
  // A launch refused up front never calls back.
  bool called = false;
  EXPECT_THROW(dev.launch_program(program(), "bump", hetmm::NDRange{16}, hetmm::NDRange{16}, {},
                                  {0, 0, 0}, [&](std::exception_ptr) { called = true; }),
               hetmm::Error);
  dev.synchronize();
  EXPECT_FALSE(called);
  munmap(bad, page);
}

TEST(JitErrors, RawAccessFaultInJitCodeIsRecovered) {
  // Without the MMU rewrite the kernel touches process memory directly: the CPU's SIGSEGV
  // lands in JIT code, and the handler's jump (J3) turns it into the kernel's error.
  hetmm::Runtime rt(options(hetmm::PolicyProfile::in_place));
  auto& dev = rt.device(0);
  auto raw = hetmm::Program::from_opencl_c(kSource, "-mmu=off");
  long page = sysconf(_SC_PAGESIZE);
  void* p = mmap(nullptr, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  for (int round = 0; round < 3; ++round) {  // the signal must not stay blocked after a jump
    dev.launch(raw, "scale", hetmm::NDRange{64}, hetmm::NDRange{16}, static_cast<float*>(p), 2.0f);
    try {
      dev.synchronize();
      FAIL() << "a raw access to PROT_NONE memory must fail";
    } catch (const hetmm::Error& e) {
      EXPECT_EQ(e.code(), hetmm::Errc::fault) << e.what();
      EXPECT_NE(std::string(e.what()).find("scale"), std::string::npos) << e.what();
    }
  }
  std::vector<float> v(64, 1.0f);
  dev.launch(raw, "scale", hetmm::NDRange{64}, hetmm::NDRange{16}, v.data(), 5.0f);
  dev.synchronize();
  EXPECT_EQ(v[63], 5.0f);
  munmap(p, page);
}

TEST(JitErrors, WritingReadOnlyMemoryIsAPermissionError) {
  hetmm::Runtime rt;
  auto& dev = rt.device(0);
  long page = sysconf(_SC_PAGESIZE);
  void* p = mmap(nullptr, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  dev.launch(program(), "scale", hetmm::NDRange{16}, hetmm::NDRange{16}, static_cast<float*>(p), 2.0f);
  try {
    dev.synchronize();
    FAIL() << "a kernel writing read-only memory must fail";
  } catch (const hetmm::Error& e) {
    EXPECT_TRUE(e.code() == hetmm::Errc::permission || e.code() == hetmm::Errc::fault) << e.what();
  }
  munmap(p, page);
}

TEST(JitErrors, DivergentBarrierIsReported) {
  hetmm::Runtime rt;
  auto& dev = rt.device(0);
  std::vector<int> out(8);
  dev.launch(program(), "diverge", hetmm::NDRange{8}, hetmm::NDRange{8}, out.data());
  try {
    dev.synchronize();
    FAIL() << "a barrier only some work-items reach must be reported";
  } catch (const hetmm::Error& e) {
    EXPECT_EQ(e.code(), hetmm::Errc::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("barrier"), std::string::npos) << e.what();
  }
}

TEST(JitErrors, LaunchChecksSizes) {
  hetmm::Runtime rt;
  auto& dev = rt.device(0);
  std::vector<float> v(16);
  EXPECT_THROW(dev.launch(program(), "scale", hetmm::NDRange{0}, hetmm::NDRange{1}, v.data(), 1.0f),
               hetmm::Error);
  EXPECT_THROW(dev.launch(program(), "scale", hetmm::NDRange{4096}, hetmm::NDRange{2048}, v.data(), 1.0f),
               hetmm::Error);
  EXPECT_THROW(dev.launch(program(), "scale", hetmm::NDRange{16}, hetmm::NDRange{16}, v.data(), 1.0),
               hetmm::Error);  // a double where the kernel takes a float
  EXPECT_THROW(dev.launch(program(), "generic_ptrs", hetmm::NDRange{16}, hetmm::NDRange{16}, v.data(),
                          hetmm::LocalMemory{std::size_t{1} << 30}),
               hetmm::Error);
}

// printf: scalar conversions, printed as each call runs (stdout captured by GoogleTest).
TEST(JitPrintf, ScalarConversionsArePrinted) {
  hetmm::Runtime rt;
  auto& dev = rt.device(0);
  auto p = hetmm::Program::from_opencl_c(R"CLC(
    __kernel void say(__global const int* v) {
      size_t i = get_global_id(0);
      printf("item %u: %d %.2f %s %c%%\n", (uint)i, v[i], 0.5f * v[i], "ok", 'x');
    })CLC");
  std::vector<int> v = {3, -7, 11, 0};
  ::testing::internal::CaptureStdout();
  dev.launch(p, "say", hetmm::NDRange{v.size()}, hetmm::NDRange{1}, v.data());
  dev.synchronize();
  std::fflush(stdout);
  std::string out = ::testing::internal::GetCapturedStdout();
  for (const char* line : {"item 0: 3 1.50 ok x%\n", "item 1: -7 -3.50 ok x%\n", "item 2: 11 5.50 ok x%\n",
                           "item 3: 0 0.00 ok x%\n"})
    EXPECT_NE(out.find(line), std::string::npos) << "missing " << line << " in:\n" << out;
}

TEST(JitPrintf, VectorConversionsAreRefused) {
  try {
    hetmm::Program::from_opencl_c(R"CLC(
      __kernel void say(__global const float4* v) { printf("%v4f\n", v[get_global_id(0)]); })CLC");
    FAIL() << "a %v conversion must be refused, not handed to the C library";
  } catch (const hetmm::Error& e) {
    EXPECT_EQ(e.code(), hetmm::Errc::unsupported);
    EXPECT_NE(std::string(e.what()).find("%v4f"), std::string::npos) << e.what();
  }
}

TEST(JitOptions, MmuOffRunsTheSameKernelWithoutTranslation) {
  hetmm::Runtime rt(options(hetmm::PolicyProfile::in_place));
  auto& dev = rt.device(0);
  auto p = hetmm::Program::from_opencl_c(kSource, "-mmu=off");
  EXPECT_EQ(p.build_options(), "-mmu=off");
  std::vector<float> v(1024, 2.0f);
  auto before = dev.stats();
  dev.launch(p, "scale", hetmm::NDRange{v.size()}, hetmm::NDRange{64}, v.data(), 4.0f);
  dev.synchronize();
  EXPECT_EQ(v[1023], 8.0f);
  EXPECT_EQ(dev.stats().tlb_misses, before.tlb_misses);  // nothing went through the MMU
  EXPECT_THROW(hetmm::Program::from_opencl_c(kSource, "-mmu=sometimes"), hetmm::Error);
}

// Work-item loops vectorise across work-items, including each barrier region's, with the
// MMU on: the in-place and frame copies of a checked loop carry plain vector accesses.
TEST(JitReport, SaysHowEachWorkItemLoopCompiled) {
  const auto& scale = program().kernel("scale").vectorization;
  EXPECT_EQ(scale.rfind("work-item loop: vectorised, ", 0), 0u) << scale;
  EXPECT_NE(scale.find("with probed accesses"), std::string::npos) << scale;  // the fallback
  auto tiles = hetmm::Program::from_opencl_c(R"CLC(
__kernel __attribute__((reqd_work_group_size(16, 16, 1)))
void transpose(__global const float* in, __global float* out, int w) {
  __local float tile[16][17];
  int lx = get_local_id(0), ly = get_local_id(1);
  tile[ly][lx] = in[(get_group_id(1) * 16 + ly) * w + get_group_id(0) * 16 + lx];
  barrier(CLK_LOCAL_MEM_FENCE);
  out[(get_group_id(0) * 16 + ly) * w + get_group_id(1) * 16 + lx] = tile[lx][ly];
}
)CLC");
  const auto& t = tiles.kernel("transpose").vectorization;
  EXPECT_EQ(t.rfind("region 0: vectorised, ", 0), 0u) << t;
  EXPECT_NE(t.find("\nregion 1: vectorised, "), std::string::npos) << t;
  // A grid-stride loop's range is checked at its entry (StridedExit in mmu_index_ranges.cpp): copies of
  // it without probes, beside the probed one.
  for (const char* k : {"bump_strided", "bump_strided_uint", "bump_strided_int"}) {
    const auto& strided = program().kernel(k).vectorization;
    EXPECT_NE(strided.find("it holds a loop of the kernel's"), std::string::npos) << k << strided;
    EXPECT_NE(strided.find("the kernel's loops inside: 2 copies without probes"), std::string::npos)
        << k << strided;
  }
  // Quotient indices are ranged: no probe left in the work-item loop's checked copies.
  const auto& sums = program().kernel("add_block_sums").vectorization;
  EXPECT_EQ(sums.rfind("work-item loop: vectorised, ", 0), 0u) << sums;
  EXPECT_NE(program().kernel("add_row_bias").vectorization.find("2 scalar copies; 1 with probed"),
            std::string::npos)
      << program().kernel("add_row_bias").vectorization;
  // J7: a gather through a ranged index has a copy with plain gathers, once the index is
  // scanned: the work-item loop of `gather` vectorises, and a CSR row's loop has copies
  // without probes.
  // Its copy on device frames (J7 in frames: the gathered range found in a run of frames)
  // vectorises too.
  const auto& gather = program().kernel("gather").vectorization;
  EXPECT_EQ(gather.rfind("work-item loop: vectorised, ", 0), 0u) << gather;
  EXPECT_NE(gather.find("(2 copies)"), std::string::npos) << gather;
  const auto& csr = program().kernel("csr_rows").vectorization;
  EXPECT_EQ(csr.find("the kernel's loops inside: 0 copies"), std::string::npos) << csr;
  EXPECT_NE(csr.find("the kernel's loops inside: "), std::string::npos) << csr;
  // A 3-D stencil's taps run under the boundary test's terms of the rows (y == 0, z == nz - 1,
  // ...) and, like its centre, under the bounds check's (y < ny, z < nz): the terms every access
  // has decide nothing, the others guard the taps, and a third vectorised copy runs the rows
  // where no term decides, with the terms' values put in (the MMU-off loop).
  auto stencil = hetmm::Program::from_opencl_c(R"CLC(
__kernel void stencil7(__global const float* in, __global float* out, int nx, int ny, int nz) {
  const int x = (int)get_global_id(0), y = (int)get_global_id(1), z = (int)get_global_id(2);
  if (x >= nx || y >= ny || z >= nz) return;
  const int i = (z * ny + y) * nx + x;
  if (x == 0 || y == 0 || z == 0 || x == nx - 1 || y == ny - 1 || z == nz - 1) {
    out[i] = in[i];
    return;
  }
  const int sy = nx, sz = nx * ny;
  out[i] = 0.4f * in[i] + 0.1f * (in[i - 1] + in[i + 1] + in[i - sy] + in[i + sy] + in[i - sz] +
                                  in[i + sz]);
}
)CLC");
  const auto& s7 = stencil.kernel("stencil7").vectorization;
  EXPECT_EQ(s7.rfind("work-item loop: vectorised, ", 0), 0u) << s7;
  EXPECT_NE(s7.find(" step (3 copies)"), std::string::npos) << s7;
  // Without the optimiser there is nothing vectorised, and the report says so.
  auto plain = hetmm::Program::from_opencl_c(
      "__kernel void add1(__global int* v) { v[get_global_id(0)] += 1; }", "-O0");
  EXPECT_NE(plain.kernel("add1").vectorization.find("not vectorised"), std::string::npos)
      << plain.kernel("add1").vectorization;
}

TEST(JitCache, SecondCompilationComesFromDisk) {
  auto dir = std::filesystem::temp_directory_path() /
             ("hetmm-cache-test-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  setenv("HETMM_CACHE_DIR", dir.c_str(), 1);
  const char* src = "__kernel void add1(__global int* v) { v[get_global_id(0)] += 1; }";
  std::string report;
  {
    auto p = hetmm::Program::from_opencl_c(src);
    EXPECT_EQ(p.kernel_names(), std::vector<std::string>{"add1"});
    report = p.kernel("add1").vectorization;
  }  // the in-memory cache holds programs weakly: this one is gone now
  std::size_t entries = 0, sources = 0;
  for (auto& e : std::filesystem::directory_iterator(dir)) {
    entries += e.path().extension() == ".o";
    sources += e.path().filename().string().rfind("src-", 0) == 0;  // clang's SPIR-V, kept
  }
  EXPECT_EQ(entries, 1u);
  EXPECT_EQ(sources, 1u);
  // A source that includes a file is compiled every time: the key cannot see the header.
  auto header = dir / "defs.h";
  std::ofstream(header) << "#define STEP 2\n";
  const std::string with_include = "#include \"defs.h\"\n__kernel void add2(__global int* v) "
                                   "{ v[get_global_id(0)] += STEP; }";
  EXPECT_EQ(hetmm::Program::from_opencl_c(with_include, "-I " + dir.string()).kernel_names(),
            std::vector<std::string>{"add2"});
  sources = 0;
  for (auto& e : std::filesystem::directory_iterator(dir))
    sources += e.path().filename().string().rfind("src-", 0) == 0;
  EXPECT_EQ(sources, 1u);
  hetmm::Runtime rt;
  auto p = hetmm::Program::from_opencl_c(src);
  const auto& info = p.kernel("add1");
  EXPECT_FALSE(report.empty());
  EXPECT_EQ(info.vectorization, report);  // the compile report comes back with the object
  ASSERT_EQ(info.args.size(), 1u);
  EXPECT_EQ(info.args[0].kind, hetmm::ArgKind::global_pointer);
  std::vector<int> v(100, 41);
  rt.device(0).launch(p, "add1", hetmm::NDRange{100}, hetmm::NDRange{0}, v.data());
  rt.device(0).synchronize();
  EXPECT_EQ(v[99], 42);
  unsetenv("HETMM_CACHE_DIR");
  std::filesystem::remove_all(dir);
}

}  // namespace
