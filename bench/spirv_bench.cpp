// The SPIR-V speed benchmark: the same OpenCL C kernels on PoCL and on hetmm's software device,
// in one process, over the same process memory (neither side copies a byte).
//
//   build/hetmm_spirv_bench [--repeat N] [--kernels a,b] [--workers N] [--quick] [--json] [--list]
//
// For every kernel it reports the median wall time of one run (enqueue/launch + finish) on
//   PoCL         clBuildProgram("-cl-std=CL3.0") from the source; buffers are plain malloc'd
//                memory passed with clSetKernelArgSVMPointer (fine-grain system SVM);
//   hetmm        Program::from_opencl_c(source), MMU on, Options::policy = in_place (data stays
//                in system memory; the device maps it in place on its first faults);
//   hetmm -mmu=off  the same program built without the MMU rewrite (kernels touch raw process
//                memory): only to measure what the MMU costs;
//   hetmm device the MMU-on program over its own copies of the buffers, which the default policy
//                (hetmm) manages and which are in device memory before every timed run
//                (Runtime::prefetch): where HMM puts a kernel's data (issue 15: goal
//                device / in place <= 1.1x per kernel);
// with the ratios hetmm/PoCL (goal: geometric mean <= 1.5) and MMU on/off. Each side runs once
// untimed first (PoCL compiles its work-group functions at the first enqueue; hetmm's first
// launch faults the pages into the device page table), then --repeat timed runs.
//
// Every output is compared with PoCL's (exact for integers, a tolerance for floats): a fast but
// wrong result is reported, is left out of the geometric means, and makes the exit status 1.
// Exit status 77: no PoCL platform, or no OpenCL C compiler for hetmm (nothing to compare).
//
// With --json the table and the progress go to stderr and stdout gets one JSON object:
//   {"kernels": [...], "geomean_hetmm_over_pocl": x, "geomean_mmu_on_over_off": y}
#define CL_TARGET_OPENCL_VERSION 300
#include <CL/cl.h>

#include <hetmm/hetmm.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <random>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <variant>
#include <vector>

namespace {

// ---------------------------------------------------------------------------------------------
// The kernels (OpenCL C, written for this benchmark)
// ---------------------------------------------------------------------------------------------

// Streaming: one multiply-add per 12 bytes moved.
constexpr const char* kSaxpySource = R"CL(
__kernel void saxpy(__global const float* x, __global const float* y, __global float* out,
                    float a, uint n) {
  const size_t i = get_global_id(0);
  if (i < n) out[i] = a * x[i] + y[i];
}
)CL";

// Dense matmul, one work-item per element of C, every operand read from global memory.
constexpr const char* kMatmulSource = R"CL(
__kernel void matmul(__global const float* a, __global const float* b, __global float* c, int n) {
  const int col = (int)get_global_id(0);
  const int row = (int)get_global_id(1);
  if (row >= n || col >= n) return;
  float acc = 0.0f;
  for (int k = 0; k < n; ++k) acc += a[row * n + k] * b[k * n + col];
  c[row * n + col] = acc;
}
)CL";

// The classic blocking: 16x16 tiles of A and B in __local memory, two barriers per slice.
constexpr const char* kMatmulTiledSource = R"CL(
#define TILE 16
__kernel __attribute__((reqd_work_group_size(TILE, TILE, 1)))
void matmul_tiled(__global const float* a, __global const float* b, __global float* c, int n) {
  __local float ta[TILE][TILE];
  __local float tb[TILE][TILE];
  const int lx = (int)get_local_id(0);
  const int ly = (int)get_local_id(1);
  const int col = (int)get_group_id(0) * TILE + lx;
  const int row = (int)get_group_id(1) * TILE + ly;
  float acc = 0.0f;
  for (int t = 0; t < n; t += TILE) {
    ta[ly][lx] = (row < n && t + lx < n) ? a[row * n + t + lx] : 0.0f;
    tb[ly][lx] = (t + ly < n && col < n) ? b[(t + ly) * n + col] : 0.0f;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int i = 0; i < TILE; ++i) acc += ta[ly][i] * tb[i][lx];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (row < n && col < n) c[row * n + col] = acc;
}
)CL";

// Sum: a grid-stride pass per work-item, then a __local tree (a barrier per level); run over the
// input with many groups, then over the partial sums with one group.
constexpr const char* kReduceSource = R"CL(
__kernel void reduce_sum(__global const float* in, __global float* partial, uint n,
                         __local float* scratch) {
  const uint lid = (uint)get_local_id(0);
  float s = 0.0f;
  for (size_t i = get_global_id(0); i < n; i += get_global_size(0)) s += in[i];
  scratch[lid] = s;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (uint stride = (uint)get_local_size(0) / 2; stride > 0; stride >>= 1) {
    if (lid < stride) scratch[lid] += scratch[lid + stride];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (lid == 0) partial[get_group_id(0)] = scratch[0];
}
)CL";

// 2D 5-point Jacobi step; the border is copied.
constexpr const char* kStencilSource = R"CL(
__kernel void stencil5(__global const float* in, __global float* out, int w, int h) {
  const int x = (int)get_global_id(0);
  const int y = (int)get_global_id(1);
  if (x >= w || y >= h) return;
  const int i = y * w + x;
  if (x == 0 || y == 0 || x == w - 1 || y == h - 1) {
    out[i] = in[i];
    return;
  }
  out[i] = 0.5f * in[i] + 0.125f * (in[i - 1] + in[i + 1] + in[i - w] + in[i + w]);
}
)CL";

// Transpose through a padded __local tile, so both the reads and the writes are row-wise.
constexpr const char* kTransposeSource = R"CL(
#define TDIM 16
__kernel __attribute__((reqd_work_group_size(TDIM, TDIM, 1)))
void transpose(__global const float* in, __global float* out, int w, int h) {
  __local float tile[TDIM][TDIM + 1];
  const int lx = (int)get_local_id(0);
  const int ly = (int)get_local_id(1);
  int x = (int)get_group_id(0) * TDIM + lx;
  int y = (int)get_group_id(1) * TDIM + ly;
  if (x < w && y < h) tile[ly][lx] = in[y * w + x];
  barrier(CLK_LOCAL_MEM_FENCE);
  x = (int)get_group_id(1) * TDIM + lx;
  y = (int)get_group_id(0) * TDIM + ly;
  if (x < h && y < w) out[y * h + x] = tile[lx][ly];
}
)CL";

// One global atomic increment per element, 256 bins.
constexpr const char* kHistogramSource = R"CL(
__kernel void histogram(__global const uint* data, uint n, __global uint* bins) {
  const size_t i = get_global_id(0);
  if (i < n) atomic_inc(&bins[data[i] & 255u]);
}
)CL";

// Data-dependent loads: out[i] = src[idx[i]] with random indices over a large table.
constexpr const char* kGatherSource = R"CL(
__kernel void gather(__global const float* src, __global const uint* idx, __global float* out,
                     uint n) {
  const size_t i = get_global_id(0);
  if (i < n) out[i] = src[idx[i]];
}
)CL";

// Transcendentals: a few sin/cos/exp/log/sqrt per element.
constexpr const char* kMathSource = R"CL(
__kernel void math_mix(__global const float* x, __global float* out, uint n) {
  const size_t i = get_global_id(0);
  if (i >= n) return;
  const float v = x[i];
  out[i] = sin(v) * exp(-0.5f * v * v) + sqrt(fabs(v)) * cos(2.0f * v) + log(1.0f + v * v);
}
)CL";

// Inclusive prefix sum in three launches: each work-item scans `per_item` consecutive elements,
// the group combines its items' totals in __local memory (Hillis-Steele, two barriers a step);
// the block totals are scanned the same way by one group; then the offsets are added.
constexpr const char* kScanSource = R"CL(
__kernel void scan_block(__global const uint* in, __global uint* out, __global uint* block_sums,
                         uint n, uint per_item, __local uint* tmp) {
  const uint lid = (uint)get_local_id(0);
  const uint lsize = (uint)get_local_size(0);
  const size_t base = ((size_t)get_group_id(0) * lsize + lid) * per_item;
  uint sum = 0;
  for (uint j = 0; j < per_item; ++j)
    if (base + j < n) sum += in[base + j];
  tmp[lid] = sum;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (uint offset = 1; offset < lsize; offset <<= 1) {
    const uint add = lid >= offset ? tmp[lid - offset] : 0u;
    barrier(CLK_LOCAL_MEM_FENCE);
    tmp[lid] += add;
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  uint running = tmp[lid] - sum;
  for (uint j = 0; j < per_item; ++j) {
    if (base + j < n) {
      running += in[base + j];
      out[base + j] = running;
    }
  }
  if (lid == lsize - 1) block_sums[get_group_id(0)] = tmp[lid];
}

__kernel void scan_add(__global uint* out, __global const uint* scanned_sums, uint n,
                       uint per_block) {
  const size_t i = get_global_id(0);
  const size_t b = i / per_block;
  if (i < n && b > 0) out[i] += scanned_sums[b - 1];
}
)CL";

// All-pairs gravitational acceleration with float4 positions (xyz, mass): dot and rsqrt.
constexpr const char* kNbodySource = R"CL(
__kernel void nbody_accel(__global const float4* pos, __global float4* acc, uint n, float eps2) {
  const size_t i = get_global_id(0);
  if (i >= n) return;
  const float4 p = pos[i];
  float3 a = (float3)(0.0f, 0.0f, 0.0f);
  for (uint j = 0; j < n; ++j) {
    const float4 q = pos[j];
    const float3 d = q.xyz - p.xyz;
    const float inv = rsqrt(dot(d, d) + eps2);
    a += (q.w * inv * inv * inv) * d;
  }
  acc[i] = (float4)(a, 0.0f);
}
)CL";

// A 3x3 convolution with its filter in __constant memory (an image filter as users write it:
// the border is zero).
constexpr const char* kConvSource = R"CL(
__kernel void conv3x3(__global const float* in, __global float* out, __constant float* f, int w,
                      int h) {
  const int x = (int)get_global_id(0);
  const int y = (int)get_global_id(1);
  if (x < 1 || y < 1 || x >= w - 1 || y >= h - 1) {
    if (x < w && y < h) out[y * w + x] = 0.0f;
    return;
  }
  float s = 0.0f;
  for (int dy = -1; dy <= 1; ++dy)
    for (int dx = -1; dx <= 1; ++dx) s += f[(dy + 1) * 3 + dx + 1] * in[(y + dy) * w + x + dx];
  out[y * w + x] = s;
}
)CL";

// A 7-point stencil on a 3-D grid (a heat-equation step).
constexpr const char* kStencil3dSource = R"CL(
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
)CL";

// Sparse matrix times vector, CSR, one row per work-item: the x loads are data-dependent.
constexpr const char* kSpmvSource = R"CL(
__kernel void spmv_csr(__global const uint* row_ptr, __global const uint* cols,
                       __global const float* vals, __global const float* x, __global float* y,
                       uint rows) {
  const size_t r = get_global_id(0);
  if (r >= rows) return;
  float s = 0.0f;
  for (uint j = row_ptr[r]; j < row_ptr[r + 1]; ++j) s += vals[j] * x[cols[j]];
  y[r] = s;
}
)CL";

// The assignment step of k-means: each point's nearest of k centroids (4-D points).
constexpr const char* kKmeansSource = R"CL(
__kernel void kmeans_assign(__global const float4* points, __global const float4* centroids,
                            __global uint* assign, uint n, uint k) {
  const size_t i = get_global_id(0);
  if (i >= n) return;
  const float4 p = points[i];
  float best = INFINITY;
  uint arg = 0;
  for (uint c = 0; c < k; ++c) {
    const float4 d = p - centroids[c];
    const float dist = dot(d, d);
    if (dist < best) { best = dist; arg = c; }
  }
  assign[i] = arg;
}
)CL";

// Steps of a bitonic sort, out of place (one launch per step, from one buffer to the next).
constexpr const char* kBitonicSource = R"CL(
__kernel void bitonic_step(__global const uint* in, __global uint* out, uint j, uint k) {
  const uint i = (uint)get_global_id(0);
  const uint partner = i ^ j;
  const uint a = in[i], b = in[partner];
  const bool up = (i & k) == 0;
  const bool low = i < partner;
  out[i] = (low == up) ? min(a, b) : max(a, b);
}
)CL";

// ---------------------------------------------------------------------------------------------
// A benchmark case: buffers (32-bit elements), and the launches of one run
// ---------------------------------------------------------------------------------------------
enum class Elem { f32, i32, u32 };

// How an output is compared with PoCL's.
struct Tolerance {
  bool exact = true;
  double atol = 0, rtol = 0;  // |got - ref| <= atol + rtol * |ref|
  static Tolerance bits() { return {}; }
  static Tolerance close(double atol, double rtol) { return {false, atol, rtol}; }
};

struct BufferSpec {
  std::string name;
  Elem elem = Elem::f32;
  std::size_t count = 0;                  // 32-bit elements
  bool output = false;                    // per side, compared; else an input shared by all
  bool zero_each_run = false;             // outputs the kernel accumulates into (untimed reset)
  Tolerance tolerance;
  std::function<void(std::uint32_t*, std::size_t, std::mt19937&)> init;  // inputs
};

struct ArgSpec {
  enum class Kind { buffer, value, local } kind;
  std::size_t buffer = 0;                                  // index into Case::buffers
  std::variant<float, std::int32_t, std::uint32_t> value;  // the kernel parameter's type
  std::size_t local_bytes = 0;
};
ArgSpec buf(std::size_t i) { return {ArgSpec::Kind::buffer, i, 0u, 0}; }
ArgSpec val_f(float v) { return {ArgSpec::Kind::value, 0, v, 0}; }
ArgSpec val_i(std::int32_t v) { return {ArgSpec::Kind::value, 0, v, 0}; }
ArgSpec val_u(std::uint32_t v) { return {ArgSpec::Kind::value, 0, v, 0}; }
ArgSpec local_mem(std::size_t bytes) { return {ArgSpec::Kind::local, 0, 0u, bytes}; }

struct LaunchSpec {
  std::string kernel;
  hetmm::NDRange global, local;
  std::vector<ArgSpec> args;
};

struct Case {
  std::string name;
  std::string what;  // the sizes, for the table
  const char* source = nullptr;
  std::vector<BufferSpec> buffers;
  std::vector<LaunchSpec> launches;
};

std::size_t round_up(std::size_t v, std::size_t m) { return (v + m - 1) / m * m; }

auto uniform_f32(float lo, float hi) {
  return [lo, hi](std::uint32_t* p, std::size_t n, std::mt19937& rng) {
    std::uniform_real_distribution<float> d(lo, hi);
    for (std::size_t i = 0; i < n; ++i) {
      float f = d(rng);
      std::memcpy(&p[i], &f, 4);
    }
  };
}
auto uniform_u32(std::uint32_t lo, std::uint32_t hi) {
  return [lo, hi](std::uint32_t* p, std::size_t n, std::mt19937& rng) {
    std::uniform_int_distribution<std::uint32_t> d(lo, hi);
    for (std::size_t i = 0; i < n; ++i) p[i] = d(rng);
  };
}
BufferSpec input(std::string name, Elem e, std::size_t count,
                 std::function<void(std::uint32_t*, std::size_t, std::mt19937&)> init) {
  BufferSpec b;
  b.name = std::move(name);
  b.elem = e;
  b.count = count;
  b.init = std::move(init);
  return b;
}
BufferSpec output(std::string name, Elem e, std::size_t count, Tolerance t,
                  bool zero_each_run = false) {
  BufferSpec b;
  b.name = std::move(name);
  b.elem = e;
  b.count = count;
  b.output = true;
  b.tolerance = t;
  b.zero_each_run = zero_each_run;
  return b;
}
std::string mib(std::size_t bytes) {
  char s[32];
  std::snprintf(s, sizeof s, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return s;
}

// Float tolerances: the two compilers may contract a*b+c into an fma differently, and their
// math libraries differ by a few ulp; sums of many terms carry that further.
std::vector<Case> make_cases(bool quick) {
  std::vector<Case> cases;
  {
    const std::size_t n = quick ? (1u << 18) : (1u << 21);
    Case c{"saxpy", std::to_string(n) + " floats", kSaxpySource, {}, {}};
    c.buffers = {input("x", Elem::f32, n, uniform_f32(-1, 1)),
                 input("y", Elem::f32, n, uniform_f32(-1, 1)),
                 output("out", Elem::f32, n, Tolerance::close(1e-6, 1e-6))};
    c.launches = {{"saxpy", {n}, {256}, {buf(0), buf(1), buf(2), val_f(1.5f), val_u(n)}}};
    cases.push_back(std::move(c));
  }
  {
    const std::size_t n = quick ? 96 : 192;
    Case c{"matmul", std::to_string(n) + "^2 naive", kMatmulSource, {}, {}};
    c.buffers = {input("a", Elem::f32, n * n, uniform_f32(-1, 1)),
                 input("b", Elem::f32, n * n, uniform_f32(-1, 1)),
                 output("c", Elem::f32, n * n, Tolerance::close(1e-4, 1e-4))};
    c.launches = {{"matmul", {n, n}, {16, 16}, {buf(0), buf(1), buf(2), val_i(int(n))}}};
    cases.push_back(std::move(c));
  }
  {
    const std::size_t n = quick ? 64 : 160;
    Case c{"matmul_tiled", std::to_string(n) + "^2 16x16 tiles", kMatmulTiledSource, {}, {}};
    c.buffers = {input("a", Elem::f32, n * n, uniform_f32(-1, 1)),
                 input("b", Elem::f32, n * n, uniform_f32(-1, 1)),
                 output("c", Elem::f32, n * n, Tolerance::close(1e-4, 1e-4))};
    c.launches = {{"matmul_tiled", {n, n}, {16, 16}, {buf(0), buf(1), buf(2), val_i(int(n))}}};
    cases.push_back(std::move(c));
  }
  {
    const std::size_t n = quick ? (1u << 16) : (1u << 20);
    const std::size_t groups = 64, local = 256;
    Case c{"reduce", std::to_string(n) + " floats, 2 passes", kReduceSource, {}, {}};
    c.buffers = {input("in", Elem::f32, n, uniform_f32(0, 1)),
                 output("partial", Elem::f32, groups, Tolerance::close(1e-3, 1e-4)),
                 output("total", Elem::f32, 1, Tolerance::close(1e-2, 1e-4))};
    c.launches = {
        {"reduce_sum", {groups * local}, {local},
         {buf(0), buf(1), val_u(n), local_mem(local * 4)}},
        {"reduce_sum", {local}, {local}, {buf(1), buf(2), val_u(groups), local_mem(local * 4)}}};
    cases.push_back(std::move(c));
  }
  {
    const std::size_t w = quick ? 512 : 2048, h = quick ? 256 : 1024;
    Case c{"stencil2d", std::to_string(w) + "x" + std::to_string(h) + " 5-point", kStencilSource,
           {}, {}};
    c.buffers = {input("in", Elem::f32, w * h, uniform_f32(0, 1)),
                 output("out", Elem::f32, w * h, Tolerance::close(1e-6, 1e-6))};
    c.launches = {{"stencil5", {w, h}, {64, 4}, {buf(0), buf(1), val_i(int(w)), val_i(int(h))}}};
    cases.push_back(std::move(c));
  }
  {
    const std::size_t w = quick ? 256 : 512, h = quick ? 128 : 512;
    Case c{"transpose", std::to_string(w) + "x" + std::to_string(h) + " 16x16 tiles",
           kTransposeSource, {}, {}};
    c.buffers = {input("in", Elem::f32, w * h, uniform_f32(-1, 1)),
                 output("out", Elem::f32, w * h, Tolerance::bits())};
    c.launches = {{"transpose", {w, h}, {16, 16}, {buf(0), buf(1), val_i(int(w)), val_i(int(h))}}};
    cases.push_back(std::move(c));
  }
  {
    const std::size_t n = quick ? (1u << 18) : (1u << 20);
    Case c{"histogram", std::to_string(n) + " uints, 256 bins", kHistogramSource, {}, {}};
    c.buffers = {input("data", Elem::u32, n, uniform_u32(0, 0xffffffffu)),
                 output("bins", Elem::u32, 256, Tolerance::bits(), /*zero_each_run=*/true)};
    c.launches = {{"histogram", {n}, {256}, {buf(0), val_u(n), buf(1)}}};
    cases.push_back(std::move(c));
  }
  {
    const std::size_t n = quick ? (1u << 16) : (1u << 20), table = quick ? (1u << 20) : (1u << 22);
    Case c{"gather", std::to_string(n) + " random of " + mib(table * 4), kGatherSource, {}, {}};
    c.buffers = {input("src", Elem::f32, table, uniform_f32(-1, 1)),
                 input("idx", Elem::u32, n, uniform_u32(0, std::uint32_t(table - 1))),
                 output("out", Elem::f32, n, Tolerance::bits())};
    c.launches = {{"gather", {n}, {256}, {buf(0), buf(1), buf(2), val_u(n)}}};
    cases.push_back(std::move(c));
  }
  {
    const std::size_t n = quick ? (1u << 16) : (1u << 20);
    Case c{"math", std::to_string(n) + " sin/cos/exp/log/sqrt", kMathSource, {}, {}};
    c.buffers = {input("x", Elem::f32, n, uniform_f32(-4, 4)),
                 output("out", Elem::f32, n, Tolerance::close(1e-5, 1e-5))};
    c.launches = {{"math_mix", {n}, {256}, {buf(0), buf(1), val_u(n)}}};
    cases.push_back(std::move(c));
  }
  {
    const std::size_t n = quick ? (1u << 16) : (1u << 18), local = 256, per_item = 8;
    const std::size_t per_block = local * per_item;
    const std::size_t blocks = (n + per_block - 1) / per_block;
    const std::size_t per_item2 = (blocks + local - 1) / local;
    Case c{"scan", std::to_string(n) + " uints, 3 passes", kScanSource, {}, {}};
    c.buffers = {input("in", Elem::u32, n, uniform_u32(0, 1000)),
                 output("out", Elem::u32, n, Tolerance::bits()),
                 output("block_sums", Elem::u32, blocks, Tolerance::bits()),
                 output("scanned_sums", Elem::u32, blocks, Tolerance::bits()),
                 output("total", Elem::u32, 1, Tolerance::bits())};
    c.launches = {
        {"scan_block", {blocks * local}, {local},
         {buf(0), buf(1), buf(2), val_u(n), val_u(per_item), local_mem(local * 4)}},
        {"scan_block", {local}, {local},
         {buf(2), buf(3), buf(4), val_u(blocks), val_u(per_item2), local_mem(local * 4)}},
        {"scan_add", {round_up(n, local)}, {local},
         {buf(1), buf(3), val_u(n), val_u(per_block)}}};
    cases.push_back(std::move(c));
  }
  {
    const std::size_t w = quick ? 512 : 2048, h = quick ? 256 : 1024;
    Case c{"conv3x3", std::to_string(w) + "x" + std::to_string(h) + ", __constant filter",
           kConvSource, {}, {}};
    c.buffers = {input("in", Elem::f32, w * h, uniform_f32(0, 1)),
                 output("out", Elem::f32, w * h, Tolerance::close(1e-5, 1e-5)),
                 input("filter", Elem::f32, 9, uniform_f32(-1, 1))};
    c.launches = {{"conv3x3", {w, h}, {32, 8},
                   {buf(0), buf(1), buf(2), val_i(int(w)), val_i(int(h))}}};
    cases.push_back(std::move(c));
  }
  {
    const std::size_t n = quick ? 64 : 128;
    Case c{"stencil3d", std::to_string(n) + "^3 7-point", kStencil3dSource, {}, {}};
    c.buffers = {input("in", Elem::f32, n * n * n, uniform_f32(0, 1)),
                 output("out", Elem::f32, n * n * n, Tolerance::close(1e-6, 1e-6))};
    c.launches = {{"stencil7", {n, n, n}, {32, 4, 2},
                   {buf(0), buf(1), val_i(int(n)), val_i(int(n)), val_i(int(n))}}};
    cases.push_back(std::move(c));
  }
  {
    const std::size_t rows = quick ? (1u << 15) : (1u << 18), per_row = 16;
    Case c{"spmv", std::to_string(rows) + " rows CSR, 16 nonzeros each", kSpmvSource, {}, {}};
    c.buffers = {input("row_ptr", Elem::u32, rows + 1,
                       [](std::uint32_t* p, std::size_t count, std::mt19937&) {
                         for (std::size_t i = 0; i < count; ++i)
                           p[i] = static_cast<std::uint32_t>(i * per_row);
                       }),
                 input("cols", Elem::u32, rows * per_row,
                       uniform_u32(0, static_cast<std::uint32_t>(rows - 1))),
                 input("vals", Elem::f32, rows * per_row, uniform_f32(-1, 1)),
                 input("x", Elem::f32, rows, uniform_f32(-1, 1)),
                 output("y", Elem::f32, rows, Tolerance::close(1e-5, 1e-5))};
    c.launches = {{"spmv_csr", {rows}, {128},
                   {buf(0), buf(1), buf(2), buf(3), buf(4), val_u(std::uint32_t(rows))}}};
    cases.push_back(std::move(c));
  }
  {
    const std::size_t n = quick ? (1u << 16) : (1u << 19), k = 32;
    Case c{"kmeans", std::to_string(n) + " points, " + std::to_string(k) + " centroids",
           kKmeansSource, {}, {}};
    c.buffers = {input("points", Elem::f32, n * 4, uniform_f32(-1, 1)),
                 input("centroids", Elem::f32, k * 4, uniform_f32(-1, 1)),
                 output("assign", Elem::u32, n, Tolerance::bits())};
    c.launches = {{"kmeans_assign", {n}, {128},
                   {buf(0), buf(1), buf(2), val_u(std::uint32_t(n)), val_u(std::uint32_t(k))}}};
    cases.push_back(std::move(c));
  }
  {
    // The last merge of a bitonic sort of n keys: log2(n) steps, buffer to buffer.
    const std::size_t n = quick ? (1u << 16) : (1u << 20);
    std::size_t steps = 0;
    for (std::size_t j = n / 2; j > 0; j /= 2) ++steps;
    Case c{"bitonic", std::to_string(n) + " uints, " + std::to_string(steps) + " steps",
           kBitonicSource, {}, {}};
    c.buffers = {input("keys", Elem::u32, n, uniform_u32(0, 0xffffffffu))};
    for (std::size_t s = 0; s < steps; ++s)
      c.buffers.push_back(output("step" + std::to_string(s + 1), Elem::u32, n, Tolerance::bits()));
    std::size_t s = 0;
    for (std::size_t j = n / 2; j > 0; j /= 2, ++s)
      c.launches.push_back({"bitonic_step", {n}, {256},
                            {buf(s), buf(s + 1), val_u(std::uint32_t(j)),
                             val_u(std::uint32_t(n))}});
    cases.push_back(std::move(c));
  }
  {
    const std::size_t n = quick ? 1024 : 4096;
    Case c{"nbody", std::to_string(n) + " bodies, float4", kNbodySource, {}, {}};
    c.buffers = {input("pos", Elem::f32, n * 4,
                       [](std::uint32_t* p, std::size_t count, std::mt19937& rng) {
                         std::uniform_real_distribution<float> d(-1, 1), m(0.5f, 1.5f);
                         for (std::size_t i = 0; i < count; ++i) {
                           float f = i % 4 == 3 ? m(rng) : d(rng);
                           std::memcpy(&p[i], &f, 4);
                         }
                       }),
                 output("acc", Elem::f32, n * 4, Tolerance::close(1e-3, 1e-4))};
    c.launches = {{"nbody_accel", {n}, {128}, {buf(0), buf(1), val_u(n), val_f(1e-2f)}}};
    cases.push_back(std::move(c));
  }
  return cases;
}

// ---------------------------------------------------------------------------------------------
// Timing and comparison
// ---------------------------------------------------------------------------------------------
using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}
double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

struct Compare {
  std::size_t mismatches = 0;
  std::string first;  // "out[12]: 1.5 vs 1.25 (PoCL)"
  double max_abs = 0;
};

void compare(const BufferSpec& b, const std::uint32_t* got, const std::uint32_t* ref,
             Compare& r) {
  for (std::size_t i = 0; i < b.count; ++i) {
    bool ok;
    double g = 0, e = 0;
    if (b.elem == Elem::f32) {
      float fg, fe;
      std::memcpy(&fg, &got[i], 4);
      std::memcpy(&fe, &ref[i], 4);
      g = fg;
      e = fe;
      if (b.tolerance.exact || std::isnan(fe) || std::isnan(fg) || std::isinf(fe)) {
        ok = got[i] == ref[i] || (std::isnan(fg) && std::isnan(fe));
      } else {
        const double d = std::fabs(g - e);
        r.max_abs = std::max(r.max_abs, d);
        ok = d <= b.tolerance.atol + b.tolerance.rtol * std::fabs(e);
      }
    } else {
      ok = got[i] == ref[i];
      g = b.elem == Elem::i32 ? double(std::int32_t(got[i])) : double(got[i]);
      e = b.elem == Elem::i32 ? double(std::int32_t(ref[i])) : double(ref[i]);
    }
    if (!ok) {
      if (r.mismatches++ == 0) {
        std::ostringstream s;
        s.precision(9);
        s << b.name << "[" << i << "]: " << g << " vs " << e << " (PoCL)";
        r.first = s.str();
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// PoCL through the OpenCL API
// ---------------------------------------------------------------------------------------------
std::string cl_error(cl_int e) { return "OpenCL error " + std::to_string(e); }

struct PoclError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
void check(cl_int e, const std::string& what) {
  if (e != CL_SUCCESS) throw PoclError(what + ": " + cl_error(e));
}

class Pocl {
 public:
  // nullopt with the reason when there is no PoCL platform.
  static std::unique_ptr<Pocl> open(std::string* why) {
    cl_uint count = 0;
    if (clGetPlatformIDs(0, nullptr, &count) != CL_SUCCESS || count == 0) {
      *why = "no OpenCL platform (install pocl-opencl-icd)";
      return nullptr;
    }
    std::vector<cl_platform_id> platforms(count);
    clGetPlatformIDs(count, platforms.data(), nullptr);
    for (cl_platform_id p : platforms) {
      char name[256] = {};
      clGetPlatformInfo(p, CL_PLATFORM_NAME, sizeof name - 1, name, nullptr);
      if (std::string(name).find("Portable Computing Language") == std::string::npos) continue;
      auto self = std::unique_ptr<Pocl>(new Pocl);
      cl_uint ndev = 0;
      check(clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 1, &self->device_, &ndev), "clGetDeviceIDs");
      cl_int err;
      self->context_ = clCreateContext(nullptr, 1, &self->device_, nullptr, nullptr, &err);
      check(err, "clCreateContext");
      self->queue_ = clCreateCommandQueueWithProperties(self->context_, self->device_, nullptr,
                                                        &err);
      check(err, "clCreateCommandQueueWithProperties");
      char dev[256] = {};
      clGetDeviceInfo(self->device_, CL_DEVICE_NAME, sizeof dev - 1, dev, nullptr);
      self->device_name_ = dev;
      clGetDeviceInfo(self->device_, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof self->compute_units_,
                      &self->compute_units_, nullptr);
      return self;
    }
    *why = "no \"Portable Computing Language\" platform among the OpenCL platforms";
    return nullptr;
  }
  ~Pocl() {
    for (cl_kernel k : kernels_) clReleaseKernel(k);
    for (cl_program p : programs_) clReleaseProgram(p);
    if (queue_) clReleaseCommandQueue(queue_);
    if (context_) clReleaseContext(context_);
  }
  const std::string& device_name() const { return device_name_; }
  unsigned compute_units() const { return compute_units_; }

  cl_program build(const char* source, const std::string& options) {
    cl_int err;
    std::size_t len = std::strlen(source);
    cl_program prog = clCreateProgramWithSource(context_, 1, &source, &len, &err);
    check(err, "clCreateProgramWithSource");
    programs_.push_back(prog);
    err = clBuildProgram(prog, 1, &device_, options.c_str(), nullptr, nullptr);
    if (err != CL_SUCCESS) {
      std::size_t n = 0;
      clGetProgramBuildInfo(prog, device_, CL_PROGRAM_BUILD_LOG, 0, nullptr, &n);
      std::string log(n, '\0');
      clGetProgramBuildInfo(prog, device_, CL_PROGRAM_BUILD_LOG, n, log.data(), nullptr);
      throw PoclError("clBuildProgram: " + cl_error(err) + "\n" + log);
    }
    return prog;
  }
  cl_kernel kernel(cl_program prog, const std::string& name) {
    cl_int err;
    cl_kernel k = clCreateKernel(prog, name.c_str(), &err);
    check(err, "clCreateKernel(" + name + ")");
    kernels_.push_back(k);
    // The pointers are plain process memory (fine-grain system SVM); PoCL's CPU device reads
    // them directly. Not advertised by PoCL 3.1, so a refusal is ignored.
    cl_bool yes = CL_TRUE;
    clSetKernelExecInfo(k, CL_KERNEL_EXEC_INFO_SVM_FINE_GRAIN_SYSTEM, sizeof yes, &yes);
    return k;
  }
  void enqueue(cl_kernel k, const hetmm::NDRange& global, const hetmm::NDRange& local) {
    const unsigned dims = global.dims ? global.dims : global.z > 1 ? 3 : global.y > 1 ? 2 : 1;
    const std::size_t g[3] = {global.x, global.y, global.z};
    const std::size_t l[3] = {local.x, local.y, local.z};
    check(clEnqueueNDRangeKernel(queue_, k, dims, nullptr, g, local.x ? l : nullptr, 0, nullptr,
                                 nullptr),
          "clEnqueueNDRangeKernel");
  }
  void finish() { check(clFinish(queue_), "clFinish"); }

 private:
  Pocl() = default;
  cl_device_id device_ = nullptr;
  cl_context context_ = nullptr;
  cl_command_queue queue_ = nullptr;
  std::string device_name_;
  cl_uint compute_units_ = 0;
  std::vector<cl_program> programs_;
  std::vector<cl_kernel> kernels_;
};

// ---------------------------------------------------------------------------------------------
// Running a case on the three sides
// ---------------------------------------------------------------------------------------------
enum Side { kPocl = 0, kHetmm = 1, kHetmmOff = 2, kHetmmDev = 3, kSides = 4 };
const char* side_name(int s) {
  return s == kPocl ? "PoCL" : s == kHetmm ? "hetmm" : s == kHetmmOff ? "hetmm -mmu=off"
                                                                     : "hetmm device";
}

// The device's counters summed over the timed runs of one hetmm side.
struct RunStats {
  std::uint64_t runs = 0, tlb_misses = 0, faults = 0, invalidations = 0,
                in_place_bytes = 0;
};

struct SideResult {
  bool ran = false;
  std::string error;           // compile or run failure
  double build_ms = 0;         // build/compile (untimed in the comparison)
  double first_ms = 0;         // the untimed first run
  double median_ms = NAN;
  double min_ms = NAN;
  Compare cmp;                 // against PoCL (hetmm sides)
  RunStats stats;              // hetmm sides: DeviceStats over the timed runs
};

struct CaseResult {
  std::string name, what;
  std::string vectorization;  // per kernel, MMU on: KernelInfo::vectorization
  double warm_build_ms = 0;   // hetmm, MMU on, again after the case: from the disk cache
  SideResult side[kSides];
  bool verified() const {
    for (int s : {kHetmm, kHetmmOff, kHetmmDev})
      if (!side[s].ran || side[s].cmp.mismatches != 0) return false;
    return side[kPocl].ran;
  }
  double ratio_pocl() const { return side[kHetmm].median_ms / side[kPocl].median_ms; }
  double ratio_mmu() const { return side[kHetmm].median_ms / side[kHetmmOff].median_ms; }
  double ratio_device() const { return side[kHetmmDev].median_ms / side[kHetmm].median_ms; }
};

struct Settings {
  int repeat = 15;
  bool quick = false;
  bool json = false;
  unsigned workers = 0;  // 0: each side's default (the hardware threads)
  std::vector<std::string> only;
};

class Bench {
 public:
  Bench(Pocl& pocl, hetmm::Runtime& rt, const Settings& s)
      : pocl_(pocl), rt_(rt), dev_(rt.device(0)), settings_(s) {}

  CaseResult run(const Case& c) {
    CaseResult r;
    r.name = c.name;
    r.what = c.what;
    // Memory: inputs once, outputs once per side; all of it ordinary process memory.
    std::mt19937 rng(12345);
    std::vector<std::vector<std::uint32_t>> shared(c.buffers.size());
    std::vector<std::vector<std::uint32_t>> outputs[kSides];
    for (auto& o : outputs) o.resize(c.buffers.size());
    for (std::size_t i = 0; i < c.buffers.size(); ++i) {
      const BufferSpec& b = c.buffers[i];
      if (b.output) {
        for (auto& o : outputs) o[i].assign(b.count, 0u);
      } else {
        shared[i].resize(b.count);
        b.init(shared[i].data(), b.count, rng);
      }
    }
    // The device side's own buffers, under the default policy: pages of their own from the
    // runtime, but placed as malloc places a large buffer (16 bytes into a page, and here in
    // the middle of a 2 MiB block), not at the block-aligned start the runtime would give:
    // users' arrays cross block boundaries, and a benchmark of aligned ones hid what that cost.
    constexpr std::size_t kMallocLike = (1u << 20) + 16;
    struct RuntimeBuffers {
      hetmm::Runtime& rt;
      std::vector<void*> raw;
      std::vector<std::uint32_t*> p;
      ~RuntimeBuffers() {
        for (void* b : raw) rt.deallocate(b);
      }
    } dev_bufs{rt_, {}, {}};
    for (std::size_t i = 0; i < c.buffers.size(); ++i) {
      const std::size_t bytes = std::max<std::size_t>(c.buffers[i].count * 4, 4);
      void* raw = rt_.allocate(bytes + kMallocLike);
      dev_bufs.raw.push_back(raw);
      auto* b = reinterpret_cast<std::uint32_t*>(static_cast<char*>(raw) + kMallocLike);
      dev_bufs.p.push_back(b);
      if (!c.buffers[i].output) std::memcpy(b, shared[i].data(), c.buffers[i].count * 4);
      rt_.set_policy(raw, bytes + kMallocLike, hetmm::PolicyProfile::hetmm);
    }
    auto ptr = [&](int side, std::size_t i) -> std::uint32_t* {
      if (side == kHetmmDev) return dev_bufs.p[i];
      return c.buffers[i].output ? outputs[side][i].data() : shared[i].data();
    };
    auto reset = [&](int side) {
      for (std::size_t i = 0; i < c.buffers.size(); ++i)
        if (c.buffers[i].zero_each_run)
          std::memset(ptr(side, i), 0, c.buffers[i].count * 4);
      if (side == kHetmmDev)  // every buffer in device memory before the run (untimed)
        for (std::size_t i = 0; i < c.buffers.size(); ++i)
          rt_.prefetch(dev_bufs.p[i], std::max<std::size_t>(c.buffers[i].count * 4, 4),
                       hetmm::Location::device(0));
    };
    // Each side is prepared (built, arguments set) into `once`, a function that runs the case
    // once and waits for it; a side that fails to build or run is left out from then on.
    std::function<void()> once[kSides];

    // PoCL.
    {
      SideResult& sr = r.side[kPocl];
      try {
        auto t0 = Clock::now();
        cl_program prog = pocl_.build(c.source, "-cl-std=CL3.0");
        sr.build_ms = ms_since(t0);
        std::vector<cl_kernel> kernels;
        for (const LaunchSpec& l : c.launches) {
          cl_kernel k = pocl_.kernel(prog, l.kernel);
          for (cl_uint a = 0; a < l.args.size(); ++a) {
            const ArgSpec& arg = l.args[a];
            const std::string what = "clSetKernelArg(" + l.kernel + ", " + std::to_string(a) + ")";
            switch (arg.kind) {
              case ArgSpec::Kind::buffer:
                check(clSetKernelArgSVMPointer(k, a, ptr(kPocl, arg.buffer)), what);
                break;
              case ArgSpec::Kind::value:
                std::visit([&](auto v) { check(clSetKernelArg(k, a, sizeof v, &v), what); },
                           arg.value);
                break;
              case ArgSpec::Kind::local:
                check(clSetKernelArg(k, a, arg.local_bytes, nullptr), what);
                break;
            }
          }
          kernels.push_back(k);
        }
        once[kPocl] = [this, &c, kernels] {
          for (std::size_t i = 0; i < c.launches.size(); ++i)
            pocl_.enqueue(kernels[i], c.launches[i].global, c.launches[i].local);
          pocl_.finish();
        };
      } catch (const std::exception& e) {
        sr.error = e.what();
      }
    }

    // hetmm, MMU on and off, and MMU on over data in device memory.
    for (int side : {kHetmm, kHetmmOff, kHetmmDev}) {
      SideResult& sr = r.side[side];
      try {
        auto t0 = Clock::now();
        hetmm::Program prog = hetmm::Program::from_opencl_c(
            c.source, side == kHetmmOff ? "-mmu=off" : "");
        sr.build_ms = ms_since(t0);
        if (side == kHetmm)
          for (const std::string& k : prog.kernel_names())
            r.vectorization += k + ":\n  " +
                               std::regex_replace(prog.kernel(k).vectorization,
                                                  std::regex("\n(?=.)"), "\n  ");
        std::vector<std::vector<hetmm::detail::LaunchArg>> packed;
        for (const LaunchSpec& l : c.launches) {
          std::vector<hetmm::detail::LaunchArg> args;
          for (const ArgSpec& arg : l.args) {
            switch (arg.kind) {
              case ArgSpec::Kind::buffer:
                args.push_back(hetmm::detail::make_launch_arg(
                    static_cast<void*>(ptr(side, arg.buffer))));
                break;
              case ArgSpec::Kind::value:
                std::visit([&](auto v) { args.push_back(hetmm::detail::make_launch_arg(v)); },
                           arg.value);
                break;
              case ArgSpec::Kind::local:
                args.push_back(hetmm::detail::make_launch_arg(hetmm::LocalMemory{arg.local_bytes}));
                break;
            }
          }
          packed.push_back(std::move(args));
        }
        once[side] = [this, &c, prog, packed] {
          for (std::size_t i = 0; i < c.launches.size(); ++i)
            dev_.launch_program(prog, c.launches[i].kernel, c.launches[i].global,
                                c.launches[i].local, packed[i]);
          dev_.synchronize();
        };
      } catch (const std::exception& e) {
        sr.error = e.what();
      }
    }

    // One run of a side; false (and the side dropped) when it throws.
    auto run_once = [&](int side, double* ms) {
      reset(side);
      const auto t0 = Clock::now();
      try {
        once[side]();
      } catch (const std::exception& e) {
        r.side[side].error = e.what();
        once[side] = nullptr;
        if (side != kPocl) {
          try {
            dev_.synchronize();  // nothing of this case may still run
          } catch (...) {
          }
        }
        return false;
      }
      *ms = ms_since(t0);
      return true;
    };
    // First runs, untimed: PoCL generates its work-group functions at the first enqueue, and
    // hetmm's first launch faults the pages into the device page table.
    for (int side = 0; side < kSides; ++side)
      if (once[side]) run_once(side, &r.side[side].first_ms);
    // Timed runs, the sides taking turns so that a noisy moment (this machine is shared) hits
    // all of them alike.
    std::vector<double> times[kSides];
    hetmm::DeviceStats before[kSides], after[kSides];
    for (int k = 0; k < settings_.repeat; ++k) {
      for (int side = 0; side < kSides; ++side) {
        if (!once[side]) continue;
        if (side != kPocl) before[side] = dev_.stats();
        double ms = 0;
        if (!run_once(side, &ms)) continue;
        times[side].push_back(ms);
        if (side != kPocl) {
          after[side] = dev_.stats();
          RunStats& st = r.side[side].stats;
          st.tlb_misses += after[side].tlb_misses - before[side].tlb_misses;
          st.faults += after[side].faults - before[side].faults;
          st.invalidations += after[side].invalidations - before[side].invalidations;
          st.in_place_bytes += after[side].in_place_bytes - before[side].in_place_bytes;
          st.runs += 1;
        }
      }
    }
    for (int side = 0; side < kSides; ++side) {
      SideResult& sr = r.side[side];
      sr.ran = static_cast<bool>(once[side]) && !times[side].empty();
      if (!sr.ran) continue;
      sr.median_ms = median(times[side]);
      sr.min_ms = *std::min_element(times[side].begin(), times[side].end());
    }

    // Every hetmm output against PoCL's.
    if (r.side[kPocl].ran) {
      for (int side : {kHetmm, kHetmmOff, kHetmmDev}) {
        if (!r.side[side].ran) continue;
        for (std::size_t i = 0; i < c.buffers.size(); ++i)
          if (c.buffers[i].output)
            compare(c.buffers[i], ptr(side, i), outputs[kPocl][i].data(), r.side[side].cmp);
      }
    }
    return r;
  }

 private:
  Pocl& pocl_;
  hetmm::Runtime& rt_;
  hetmm::Device& dev_;
  const Settings& settings_;
};

// ---------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------
double geomean(const std::vector<double>& v) {
  if (v.empty()) return NAN;
  double s = 0;
  for (double x : v) s += std::log(x);
  return std::exp(s / double(v.size()));
}

std::string json_escape(const std::string& s) {
  std::string o;
  for (char ch : s) {
    switch (ch) {
      case '"': o += "\\\""; break;
      case '\\': o += "\\\\"; break;
      case '\n': o += "\\n"; break;
      case '\t': o += "\\t"; break;
      default:
        if (static_cast<unsigned char>(ch) < 0x20) {
          char b[8];
          std::snprintf(b, sizeof b, "\\u%04x", ch);
          o += b;
        } else {
          o += ch;
        }
    }
  }
  return o;
}
std::string json_num(double v, const char* format = "%.4f") {
  if (!std::isfinite(v)) return "null";
  char b[32];
  std::snprintf(b, sizeof b, format, v);
  return b;
}

void print_table(std::FILE* f, const std::vector<CaseResult>& results, double g_pocl,
                 double g_mmu, double g_dev) {
  std::fprintf(f, "\n%-13s %-30s %9s %9s %8s %9s %8s %9s %8s  %s\n", "kernel", "size", "PoCL ms",
               "hetmm ms", "h/PoCL", "MMUoff ms", "on/off", "device ms", "dev/in", "check");
  for (const CaseResult& r : results) {
    auto ms = [](const SideResult& s) {
      char b[32];
      if (s.ran) std::snprintf(b, sizeof b, "%9.2f", s.median_ms);
      else std::snprintf(b, sizeof b, "%9s", "FAIL");
      return std::string(b);
    };
    auto ratio = [](bool ok, double v) {
      char b[32];
      if (ok && std::isfinite(v)) std::snprintf(b, sizeof b, "%7.2fx", v);
      else std::snprintf(b, sizeof b, "%8s", "-");
      return std::string(b);
    };
    const bool p = r.side[kPocl].ran, h = r.side[kHetmm].ran, o = r.side[kHetmmOff].ran,
               d = r.side[kHetmmDev].ran;
    std::string check;
    if (r.verified()) {
      check = "ok";
    } else {
      for (int s : {kPocl, kHetmm, kHetmmOff, kHetmmDev}) {
        if (!r.side[s].ran) check += std::string(side_name(s)) + " failed; ";
        else if (s != kPocl && p && r.side[s].cmp.mismatches)
          check += std::string(side_name(s)) + ": " + std::to_string(r.side[s].cmp.mismatches) +
                   " mismatches; ";
      }
      if (check.size() >= 2) check.resize(check.size() - 2);  // the last "; "
    }
    std::fprintf(f, "%-13s %-30s %s %s %s %s %s %s %s  %s\n", r.name.c_str(), r.what.c_str(),
                 ms(r.side[kPocl]).c_str(), ms(r.side[kHetmm]).c_str(),
                 ratio(p && h, r.ratio_pocl()).c_str(), ms(r.side[kHetmmOff]).c_str(),
                 ratio(h && o, r.ratio_mmu()).c_str(), ms(r.side[kHetmmDev]).c_str(),
                 ratio(h && d, r.ratio_device()).c_str(), check.c_str());
  }
  std::fprintf(f, "\ngeometric mean hetmm/PoCL:  %s (goal <= 1.5x)\n",
               std::isfinite(g_pocl) ? (json_num(g_pocl) + "x").c_str() : "-");
  std::fprintf(f, "geometric mean MMU on/off:  %s\n",
               std::isfinite(g_mmu) ? (json_num(g_mmu) + "x").c_str() : "-");
  std::fprintf(f, "geometric mean device memory / in place:  %s (goal <= 1.1x per kernel)\n",
               std::isfinite(g_dev) ? (json_num(g_dev) + "x").c_str() : "-");
  // What the device counted per timed run, MMU on: TLB misses and faults are the MMU's slow
  // paths (a fault or an invalidation inside the timed runs would mean pages left the page table).
  // (TLB hits on the JIT's inline fast path are not counted by the device.)
  std::fprintf(f, "\nhetmm (MMU on) per timed run: %-13s %10s %7s %7s %12s\n", "kernel",
               "TLB misses", "faults", "invals", "in place B");
  for (const CaseResult& r : results) {
    const RunStats& st = r.side[kHetmm].stats;
    if (st.runs == 0) continue;
    const double n = double(st.runs);
    std::fprintf(f, "%30s %-13s %10.0f %7.1f %7.1f %12.0f\n", "", r.name.c_str(),
                 double(st.tlb_misses) / n, double(st.faults) / n, double(st.invalidations) / n,
                 double(st.in_place_bytes) / n);
  }
  // Compile time: cold (hetmm: an empty kernel cache), and hetmm warm from its disk cache.
  const char* pocl_cache = std::getenv("POCL_KERNEL_CACHE");
  std::fprintf(f, "\nbuild ms: %-13s %10s %12s %12s   (PoCL's kernel cache %s)\n", "kernel",
               "PoCL", "hetmm cold", "hetmm warm",
               pocl_cache != nullptr && std::strcmp(pocl_cache, "0") == 0 ? "off" : "as it was");
  for (const CaseResult& r : results)
    std::fprintf(f, "%10s%-13s %10.1f %12.1f %12.1f\n", "", r.name.c_str(),
                 r.side[kPocl].build_ms, r.side[kHetmm].build_ms, r.warm_build_ms);
  // How the JIT compiled each kernel's work-item loops (hetmm run --explain's report).
  std::fprintf(f, "\nwork-item loops, MMU on (vectorised: how many work-items a vector step "
                  "takes):\n");
  for (const CaseResult& r : results) {
    if (r.vectorization.empty()) continue;
    std::fprintf(f, "  %s\n", r.name.c_str());
    std::size_t at = 0;
    while (at < r.vectorization.size()) {
      std::size_t end = r.vectorization.find('\n', at);
      if (end == std::string::npos) end = r.vectorization.size();
      std::fprintf(f, "    %.*s\n", static_cast<int>(end - at), r.vectorization.data() + at);
      at = end + 1;
    }
  }
  // Details: failures, mismatches.
  for (const CaseResult& r : results) {
    for (int s : {kPocl, kHetmm, kHetmmOff, kHetmmDev}) {
      const SideResult& sr = r.side[s];
      if (!sr.ran && !sr.error.empty())
        std::fprintf(f, "  %s on %s failed: %s\n", r.name.c_str(), side_name(s), sr.error.c_str());
      else if (sr.cmp.mismatches)
        std::fprintf(f, "  %s on %s: %zu mismatches, first %s\n", r.name.c_str(), side_name(s),
                     sr.cmp.mismatches, sr.cmp.first.c_str());
    }
  }
}

void print_json(std::FILE* f, const std::vector<CaseResult>& results, double g_pocl,
                double g_mmu, double g_dev, const Settings& s, const std::string& pocl_device) {
  std::fprintf(f, "{\"kernels\": [");
  for (std::size_t i = 0; i < results.size(); ++i) {
    const CaseResult& r = results[i];
    const SideResult &p = r.side[kPocl], &h = r.side[kHetmm], &o = r.side[kHetmmOff];
    auto per_run = [&](std::uint64_t v) {
      return h.stats.runs ? double(v) / double(h.stats.runs) : NAN;
    };
    std::string errors;
    for (int sd : {kPocl, kHetmm, kHetmmOff, kHetmmDev}) {
      const SideResult& sr = r.side[sd];
      if (!sr.error.empty()) errors += std::string(side_name(sd)) + ": " + sr.error + "\n";
      else if (sr.cmp.mismatches) errors += std::string(side_name(sd)) + ": " + sr.cmp.first + "\n";
    }
    std::fprintf(
        f,
        "%s\n  {\"name\": \"%s\", \"size\": \"%s\", \"pocl_ms\": %s, \"hetmm_ms\": %s, "
        "\"hetmm_over_pocl\": %s, \"hetmm_mmu_off_ms\": %s, \"mmu_on_over_off\": %s, "
        "\"pocl_first_ms\": %s, \"hetmm_first_ms\": %s, \"hetmm_mmu_off_first_ms\": %s, "
        "\"pocl_build_ms\": %s, \"hetmm_build_ms\": %s, \"verified\": %s, "
        "\"mismatches\": %zu, \"mmu_off_mismatches\": %zu, \"max_abs_diff\": %s, "
        "\"tlb_misses_per_run\": %s, \"faults_per_run\": %s, \"hetmm_device_ms\": %s, "
        "\"device_over_in_place\": %s, \"error\": %s}",
        i ? "," : "", json_escape(r.name).c_str(), json_escape(r.what).c_str(),
        json_num(p.ran ? p.median_ms : NAN).c_str(), json_num(h.ran ? h.median_ms : NAN).c_str(),
        json_num(p.ran && h.ran ? r.ratio_pocl() : NAN).c_str(),
        json_num(o.ran ? o.median_ms : NAN).c_str(),
        json_num(h.ran && o.ran ? r.ratio_mmu() : NAN).c_str(), json_num(p.first_ms).c_str(),
        json_num(h.first_ms).c_str(), json_num(o.first_ms).c_str(), json_num(p.build_ms).c_str(),
        json_num(h.build_ms).c_str(), r.verified() ? "true" : "false", h.cmp.mismatches,
        o.cmp.mismatches, json_num(std::max(h.cmp.max_abs, o.cmp.max_abs), "%.3g").c_str(),
        json_num(per_run(h.stats.tlb_misses)).c_str(), json_num(per_run(h.stats.faults)).c_str(),
        json_num(r.side[kHetmmDev].ran ? r.side[kHetmmDev].median_ms : NAN).c_str(),
        json_num(h.ran && r.side[kHetmmDev].ran ? r.ratio_device() : NAN).c_str(),
        errors.empty() ? "null" : ("\"" + json_escape(errors) + "\"").c_str());
  }
  std::fprintf(f,
               "\n], \"geomean_hetmm_over_pocl\": %s, \"geomean_mmu_on_over_off\": %s, "
               "\"geomean_device_over_in_place\": %s, "
               "\"repeat\": %d, \"quick\": %s, \"pocl_device\": \"%s\"}\n",
               json_num(g_pocl).c_str(), json_num(g_mmu).c_str(), json_num(g_dev).c_str(), s.repeat,
               s.quick ? "true" : "false", json_escape(pocl_device).c_str());
}

void usage(std::FILE* f) {
  std::fprintf(f,
               "usage: hetmm_spirv_bench [--repeat N] [--kernels a,b,...] [--workers N] [--quick] "
               "[--json] [--list]\n"
               "  Runs OpenCL C kernels on PoCL and on hetmm (in place, MMU on and -mmu=off; and MMU\n"
               "  on over its own copies in device memory) and reports median times and ratios.\n"
               "  --repeat N   timed runs per kernel and side after one untimed run (default 15)\n"
               "  --kernels    only these kernels (see --list)\n"
               "  --workers N  threads for both sides (hetmm workers, PoCL threads); default:\n"
               "               each side's own (the hardware threads)\n"
               "  --quick      small sizes (for tests)\n"
               "  --json       the table to stderr, one JSON object to stdout\n"
               "Exit status: 0 all verified, 1 a mismatch or failure, 2 usage, 77 no PoCL or no "
               "OpenCL C compiler.\n");
}

}  // namespace

int main(int argc, char** argv) {
  Settings s;
  bool list = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--repeat") {
      s.repeat = std::atoi(next().c_str());
      if (s.repeat < 1) {
        std::fprintf(stderr, "--repeat must be at least 1\n");
        return 2;
      }
    } else if (a == "--kernels") {
      std::stringstream ss(next());
      std::string k;
      while (std::getline(ss, k, ','))
        if (!k.empty()) s.only.push_back(k);
    } else if (a == "--workers") {
      const int w = std::atoi(next().c_str());
      if (w < 1) {
        std::fprintf(stderr, "--workers must be at least 1\n");
        return 2;
      }
      s.workers = unsigned(w);
    } else if (a == "--quick") {
      s.quick = true;
    } else if (a == "--json") {
      s.json = true;
    } else if (a == "--list") {
      list = true;
    } else if (a == "--help" || a == "-h") {
      usage(stdout);
      return 0;
    } else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      usage(stderr);
      return 2;
    }
  }

  std::vector<Case> cases = make_cases(s.quick);
  if (list) {
    for (const Case& c : cases) std::printf("%-13s %s\n", c.name.c_str(), c.what.c_str());
    return 0;
  }
  if (!s.only.empty()) {
    for (const std::string& k : s.only) {
      if (std::none_of(cases.begin(), cases.end(), [&](const Case& c) { return c.name == k; })) {
        std::fprintf(stderr, "unknown kernel '%s' (see --list)\n", k.c_str());
        return 2;
      }
    }
    std::erase_if(cases, [&](const Case& c) {
      return std::find(s.only.begin(), s.only.end(), c.name) == s.only.end();
    });
  }
  std::FILE* log = s.json ? stderr : stdout;

  // Cold builds: hetmm's kernel cache starts empty (a directory of this run's own), unless the
  // caller chose one with HETMM_CACHE_DIR. PoCL keeps its own cache as the caller has it
  // (POCL_KERNEL_CACHE=0 for cold PoCL builds).
  std::string own_cache;
  if (std::getenv("HETMM_CACHE_DIR") == nullptr) {
    char tmpl[] = "/tmp/hetmm-bench-cache-XXXXXX";
    if (mkdtemp(tmpl) != nullptr) {
      own_cache = tmpl;
      setenv("HETMM_CACHE_DIR", tmpl, 1);
    }
  }
  struct RemoveCache {
    const std::string& dir;
    ~RemoveCache() {
      std::error_code ec;
      if (!dir.empty()) std::filesystem::remove_all(dir, ec);
    }
  } remove_cache{own_cache};

  // The same number of threads on both sides: PoCL 3.1's pthread device reads its thread count
  // from the environment when the platform loads (POCL_CPU_MAX_CU_NUM in later versions).
  if (s.workers != 0) {
    const std::string w = std::to_string(s.workers);
    setenv("POCL_MAX_PTHREAD_COUNT", w.c_str(), 1);
    setenv("POCL_CPU_MAX_CU_NUM", w.c_str(), 1);
  }
  std::string why;
  std::unique_ptr<Pocl> pocl;
  try {
    pocl = Pocl::open(&why);
  } catch (const std::exception& e) {
    why = e.what();
  }
  if (!pocl) {
    std::fprintf(stderr, "hetmm_spirv_bench: skipped: %s\n", why.c_str());
    return 77;
  }

  hetmm::Options o;
  o.policy = hetmm::PolicyProfile::in_place;
  o.workers = s.workers;
  hetmm::Runtime rt(o);
  // The OpenCL C compiler (clang-15, llvm-spirv-15) must be there; a program that does not
  // compile is a failure of that kernel, a missing compiler is a skip.
  try {
    hetmm::Program::from_opencl_c("__kernel void probe(__global int* p) { p[0] = 1; }");
  } catch (const hetmm::Error& e) {
    if (e.code() == hetmm::Errc::unsupported) {
      std::fprintf(stderr, "hetmm_spirv_bench: skipped: %s\n", e.what());
      return 77;
    }
  }

  const unsigned hetmm_workers = s.workers ? s.workers : std::thread::hardware_concurrency();
  std::fprintf(log,
               "PoCL: %s, %u compute units; hetmm: %u workers, policy in_place, tracking %s; "
               "%d timed runs%s\n",
               pocl->device_name().c_str(), pocl->compute_units(), hetmm_workers,
               hetmm::to_string(rt.tracking()), s.repeat, s.quick ? " (quick sizes)" : "");
  Bench bench(*pocl, rt, s);
  std::vector<CaseResult> results;
  for (const Case& c : cases) {
    std::fprintf(log, "  %-13s ...", c.name.c_str());
    std::fflush(log);
    auto t0 = Clock::now();
    results.push_back(bench.run(c));
    CaseResult& r = results.back();
    // A warm start: the same source again, once the case's programs are gone (the in-memory
    // cache holds them weakly), from the disk cache the first build filled.
    try {
      auto tw = Clock::now();
      hetmm::Program::from_opencl_c(c.source);
      r.warm_build_ms = ms_since(tw);
    } catch (const std::exception&) {
    }
    std::fprintf(log, " %.1f s (builds: PoCL %.0f ms, hetmm %.0f+%.0f ms)%s\n",
                 ms_since(t0) / 1000, r.side[kPocl].build_ms, r.side[kHetmm].build_ms,
                 r.side[kHetmmOff].build_ms, r.verified() ? "" : "  NOT VERIFIED");
    std::fflush(log);
  }

  std::vector<double> rp, rm, rd;
  bool all_ok = true;
  for (const CaseResult& r : results) {
    if (!r.verified()) {
      all_ok = false;
      continue;  // a wrong or failed result does not count
    }
    rp.push_back(r.ratio_pocl());
    rm.push_back(r.ratio_mmu());
    rd.push_back(r.ratio_device());
  }
  const double g_pocl = geomean(rp), g_mmu = geomean(rm), g_dev = geomean(rd);
  print_table(log, results, g_pocl, g_mmu, g_dev);
  if (s.json) print_json(stdout, results, g_pocl, g_mmu, g_dev, s, pocl->device_name());
  return all_ok ? 0 : 1;
}
