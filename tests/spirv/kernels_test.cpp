// SPIR-V kernels on hetmm's device, checked against PoCL.
//
// Every kernel in tests/spirv/kernels/*.cl is compiled at build time to SPIR-V
// (cmake/test_kernels.cmake) and loaded here with Program::from_file; PoCL, which cannot read
// SPIR-V in Debian's build, runs the same OpenCL C source (pocl_oracle.hpp). Both get the same
// deterministic inputs (std::mt19937 with a fixed seed per test) and the results are compared:
//   * integers, selections, copies and correctly rounded single operations: bit for bit;
//   * math built-ins: within the OpenCL C accuracy table (ulps, see kScalarMath);
//   * sums (matmul, reductions, filters, stencils): within a rounding-error bound for any
//     summation order (see sum_bound), because hetmm and PoCL may add in different orders.
// Each kernel test runs under two migration policies: the default (device faults migrate pages
// to device memory) and in_place (device faults map system memory, nothing moves).
//
// Needs: HETMM_TEST_KERNEL_DIR (the .spv files) and HETMM_TEST_KERNEL_SRC_DIR (the .cl files),
// and the OpenCL library for the oracle (tests skip, saying why, when PoCL is not installed).
#include <hetmm/hetmm.hpp>

#include <gtest/gtest.h>

#include <cstdlib>

#include "pocl_oracle.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#ifndef HETMM_TEST_KERNEL_DIR
#error "HETMM_TEST_KERNEL_DIR (the compiled .spv kernels) must be defined"
#endif
#ifndef HETMM_TEST_KERNEL_SRC_DIR
#error "HETMM_TEST_KERNEL_SRC_DIR (the .cl kernel sources) must be defined"
#endif
// 1 when the build compiled the kernels (the tools were found): a missing .spv is then a
// failure; otherwise the tests that need one skip.
#ifndef HETMM_TEST_KERNELS_BUILT
#define HETMM_TEST_KERNELS_BUILT 0
#endif

namespace hetmm::test::spirv {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitizedBuild = true;
#else
constexpr bool kSanitizedBuild = false;
#endif
namespace {

namespace pocl = ::hetmm::test::pocl;

// PoCL 3.1 builds OpenCL C 3.0 by default; -cl-std=CL3.0 makes that explicit. It cannot be
// CL2.0 as for the SPIR-V: PoCL's 2.0 headers declare the C11 atomics only for the generic
// address space, which PoCL does not support ("no matching function for call to
// _cl_atomic_store_explicit").
constexpr const char* kPoclOptions = "-cl-std=CL3.0";

// ---------------------------------------------------------------------------------------------
// Kernel files
// ---------------------------------------------------------------------------------------------
std::string spv_path(std::string_view name) {
  return std::string(HETMM_TEST_KERNEL_DIR) + "/" + std::string(name) + ".spv";
}
std::string cl_path(std::string_view name) {
  return std::string(HETMM_TEST_KERNEL_SRC_DIR) + "/" + std::string(name) + ".cl";
}

std::vector<char> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path);
  return std::vector<char>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// The OpenCL C text of tests/spirv/kernels/<name>.cl (for PoCL and Program::from_opencl_c).
const std::string& source(std::string_view name) {
  static std::map<std::string, std::string, std::less<>> cache;
  if (auto it = cache.find(name); it != cache.end()) return it->second;
  const std::vector<char> bytes = read_bytes(cl_path(name));
  return cache.emplace(std::string(name), std::string(bytes.begin(), bytes.end())).first->second;
}

// A program, or why there is none: a build of hetmm without SPIR-V support (Errc::unsupported:
// the TSan and fuzz configurations), no clang-15 for from_opencl_c, or kernels not built.
struct Loaded {
  std::optional<Program> program;
  std::string why;
  bool fatal = false;  // a real failure, not a missing optional component
};

Loaded load_spv(std::string_view name) {
  Loaded l;
  const std::string path = spv_path(name);
  if (!std::filesystem::exists(path)) {
    l.fatal = HETMM_TEST_KERNELS_BUILT != 0;
    l.why = path + " is missing: " +
            (l.fatal ? std::string("build the hetmm_test_kernels target")
                     : std::string("the SPIR-V kernels were not built (clang-15, llvm-spirv-15 "
                                   "and spirv-val are needed at configure time)"));
    return l;
  }
  try {
    l.program = Program::from_file(path);
  } catch (const Error& e) {
    if (e.code() != Errc::unsupported) throw;
    // This file is built only with SPIR-V support: "unsupported" here is a real failure
    // (e.g. a built-in the library lacks), never a reason to skip.
    l.fatal = true;
    l.why = std::string("unsupported: ") + e.what();
  }
  return l;
}

Loaded load_opencl_c(std::string_view name, std::string_view options) {
  Loaded l;
  try {
    l.program = Program::from_opencl_c(source(name), options);
  } catch (const Error& e) {
    if (e.code() != Errc::unsupported) throw;
    // make test installs clang-15 (scripts/install-deps.sh): its absence is a failure too.
    l.fatal = true;
    l.why = std::string("no OpenCL C compiler for hetmm: ") + e.what();
  }
  return l;
}

// Declares `const Program& var` from a Loaded, or ends the test: a skip when an optional
// component is missing, a failure when the build should have produced the kernel.
#define HETMM_PROGRAM(var, loaded_expr)                   \
  Loaded var##_loaded = (loaded_expr);                    \
  if (!var##_loaded.program) {                            \
    if (var##_loaded.fatal) FAIL() << var##_loaded.why;   \
    GTEST_SKIP() << var##_loaded.why;                     \
  }                                                       \
  const Program& var = *var##_loaded.program

// Declares `pocl::Oracle* var`, or skips the test when there is no PoCL platform.
#define HETMM_REQUIRE_POCL(var)                 \
  pocl::Oracle* var = pocl::Oracle::instance(); \
  if (var == nullptr)                           \
  GTEST_SKIP() << "PoCL oracle unavailable: " << pocl::Oracle::unavailable_reason()

pocl::Range to_pocl(NDRange r) { return {r.x, r.y, r.z, r.dims}; }

std::size_t round_up(std::size_t v, std::size_t multiple) {
  return (v + multiple - 1) / multiple * multiple;
}

// ---------------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------------
using Rng = std::mt19937;

std::vector<float> uniform(Rng& rng, std::size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}
std::vector<std::uint32_t> random_bits(Rng& rng, std::size_t n) {
  std::vector<std::uint32_t> v(n);
  for (auto& x : v) x = static_cast<std::uint32_t>(rng());
  return v;
}

// ---------------------------------------------------------------------------------------------
// Comparisons
// ---------------------------------------------------------------------------------------------
// Bit-for-bit equality (so -0.0 differs from 0.0); reports the count and the first mismatches.
template <class T>
void expect_same(const std::vector<T>& got, const std::vector<T>& want, std::string_view what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  std::size_t bad = 0;
  std::ostringstream first;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (std::memcmp(&got[i], &want[i], sizeof(T)) == 0) continue;
    if (bad++ < 5) first << "\n  [" << i << "] hetmm " << +got[i] << ", PoCL " << +want[i];
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << got.size() << " differ" << first.str();
}

// |got - want| <= bound elementwise.
void expect_within(const std::vector<float>& got, const std::vector<float>& want,
                   const std::vector<double>& bound, std::string_view what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  ASSERT_EQ(got.size(), bound.size()) << what;
  std::size_t bad = 0;
  std::ostringstream first;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double diff = std::fabs(double(got[i]) - double(want[i]));
    if (diff <= bound[i]) continue;  // false for NaN as well
    if (bad++ < 5) {
      first << "\n  [" << i << "] hetmm " << got[i] << ", PoCL " << want[i] << ", |diff| "
            << diff << " > bound " << bound[i];
    }
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << got.size() << " outside the bound"
                     << first.str();
}

// Rounding-error bound for sums.
//
// hetmm and PoCL compute the same sums of K terms (a dot product, a reduction, a filter tap
// sum), but they may add in different orders (a tiled loop, a tree, a vectorised loop that
// keeps several partial sums) and may or may not fuse a*b+c into one fma (OpenCL C allows
// contraction by default, FP_CONTRACT ON). For every order and either choice, the computed sum
// differs from the exact sum of the exact terms by at most gamma_K * sum |term_i|, with
// gamma_K = K u / (1 - K u) and u = 2^-24 the unit roundoff of float (Higham, "Accuracy and
// Stability of Numerical Algorithms", 2nd ed., §3.1, eq. 3.5 for dot products and §4.2 for
// sums in any order). Both results are within that of the same exact value, hence within
// 2 gamma_K sum |term_i| of each other. A wrong index or a lost term moves a result by about a
// whole term, far above this (for K = 90: 1.1e-5 of sum |term_i|).
// abs_sum is sum |term_i|, computed on the host in double (exact enough: its own error is
// ~K 2^-53 relative, negligible here).
double sum_bound(std::size_t terms, double abs_sum) {
  const double u = 0x1p-24;
  const double k = static_cast<double>(terms);
  return 2.0 * (k * u / (1.0 - k * u)) * abs_sum;
}

// ---------------------------------------------------------------------------------------------
// The fixture: one runtime per test under the parameter's policy. Pointer arguments are the
// data() of std::vectors: plain process memory, as hetmm promises.
// ---------------------------------------------------------------------------------------------
class SpirvKernels : public ::testing::TestWithParam<PolicyProfile> {
 protected:
  Options options() const {
    Options o;
    o.workers = 2;  // the machine has 2 cores; more workers only add switching
    o.policy = GetParam();
    return o;
  }
  // The runtime exists before the test allocates anything, as in the other hetmm tests.
  void SetUp() override { rt_ = std::make_unique<Runtime>(options()); }
  Device& device() { return rt_->device(0); }

  // Runs `kernel` from tests/spirv/kernels/<file>.cl on PoCL; out/inout buffers get the results.
  static void oracle(pocl::Oracle& cl, std::string_view file, const std::string& kernel,
                     NDRange global, NDRange local, const std::vector<pocl::Arg>& args,
                     const std::string& extra_options = "") {
    std::string options = kPoclOptions;
    if (!extra_options.empty()) options += " " + extra_options;
    cl.run(source(file), options, kernel, to_pocl(global), to_pocl(local), args);
  }

  // Whatever a test launched must have run, and the policy must have been followed: in_place
  // never moves a page, while the default migrates (read faults copy whole 2 MiB blocks into
  // device memory, write faults move them), so any kernel that touched memory moved pages.
  void TearDown() override {
    if (!rt_ || HasFatalFailure() || IsSkipped()) return;
    const DeviceStats s = rt_->device(0).stats();
    EXPECT_GT(s.kernels, 0u);
    if (GetParam() == PolicyProfile::in_place) {
      EXPECT_EQ(s.pages_to_device, 0u) << "in_place moved pages to the device";
    } else if (!kSanitizedBuild) {
      // Sanitizer builds migrate only the exact pages a kernel faulted on (docs/POLICIES.md),
      // which small kernels may never do: the check is for the normal build.
      EXPECT_GT(s.pages_to_device, 0u) << "the default policy never migrated on device faults";
    }
  }

 private:
  std::unique_ptr<Runtime> rt_;
};

INSTANTIATE_TEST_SUITE_P(Policies, SpirvKernels,
                         ::testing::Values(PolicyProfile::hetmm, PolicyProfile::in_place),
                         [](const ::testing::TestParamInfo<PolicyProfile>& info) {
                           return std::string(to_string(info.param));
                         });

// ---------------------------------------------------------------------------------------------
// Matrix multiply
// ---------------------------------------------------------------------------------------------
// Bound for each element of C = A B (m x k times k x n): sum_bound over its k products.
std::vector<double> matmul_bound(const std::vector<float>& a, const std::vector<float>& b,
                                 int m, int n, int k) {
  std::vector<double> bound(static_cast<std::size_t>(m) * n);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double s = 0;
      for (int t = 0; t < k; ++t) s += std::fabs(double(a[i * k + t]) * double(b[t * n + j]));
      bound[i * n + j] = sum_bound(k, s);
    }
  return bound;
}

TEST_P(SpirvKernels, DenseMatmul) {
  HETMM_REQUIRE_POCL(cl);
  HETMM_PROGRAM(prog, load_spv("matmul"));
  // Sizes that are not multiples of the work-group size: the rounded-up NDRange has work-items
  // past the matrix, which must do nothing.
  const int m = 70, n = 50, k = 90;
  Rng rng(1);
  const auto a = uniform(rng, m * k, -1, 1), b = uniform(rng, k * n, -1, 1);
  const NDRange global{round_up(n, 16), round_up(m, 16)}, local{16, 16};
  std::vector<float> want(m * n, -7.0f), got(m * n, -7.0f);
  oracle(*cl, "matmul", "matmul", global, local,
         {pocl::in(a), pocl::in(b), pocl::out(want), pocl::value(m), pocl::value(n),
          pocl::value(k)});

  auto& dev = device();
  dev.launch(prog, "matmul", global, local, a.data(), b.data(), got.data(), m, n, k);
  dev.synchronize();
  expect_within(got, want, matmul_bound(a, b, m, n, k), "C = A B");
}

TEST_P(SpirvKernels, TiledMatmulWithLocalTilesAndBarriers) {
  HETMM_REQUIRE_POCL(cl);
  HETMM_PROGRAM(prog, load_spv("matmul_tiled"));
  const int m = 70, n = 50, k = 90;  // not multiples of the tile: partial tiles load zeros
  Rng rng(2);
  const auto a = uniform(rng, m * k, -1, 1), b = uniform(rng, k * n, -1, 1);
  const auto bound = matmul_bound(a, b, m, n, k);
  auto& dev = device();

  // The .spv, built with the default TILE (16); reqd_work_group_size pins the local size.
  {
    const KernelInfo& info = prog.kernel("matmul_tiled");
    EXPECT_TRUE(info.uses_barriers);
    EXPECT_EQ(info.required_local, (std::array<std::size_t, 3>{16, 16, 1}));
    const NDRange global{round_up(n, 16), round_up(m, 16)}, local{16, 16};
    std::vector<float> want(m * n, 0.0f), got(m * n, 0.0f);
    oracle(*cl, "matmul_tiled", "matmul_tiled", global, local,
           {pocl::in(a), pocl::in(b), pocl::out(want), pocl::value(m), pocl::value(n),
            pocl::value(k)});
    dev.launch(prog, "matmul_tiled", global, local, a.data(), b.data(), got.data(), m, n, k);
    dev.synchronize();
    expect_within(got, want, bound, "C = A B, 16 x 16 tiles (SPIR-V)");
  }

  // The same source through Program::from_opencl_c with a build option: -DTILE=8 changes the
  // tile arrays, the loop and the required work-group size.
  {
    HETMM_PROGRAM(prog8, load_opencl_c("matmul_tiled", "-DTILE=8"));
    EXPECT_EQ(prog8.kernel("matmul_tiled").required_local,
              (std::array<std::size_t, 3>{8, 8, 1}));
    const NDRange global{round_up(n, 8), round_up(m, 8)}, local{8, 8};
    std::vector<float> want(m * n, 0.0f), got(m * n, 0.0f);
    oracle(*cl, "matmul_tiled", "matmul_tiled", global, local,
           {pocl::in(a), pocl::in(b), pocl::out(want), pocl::value(m), pocl::value(n),
            pocl::value(k)},
           "-DTILE=8");
    dev.launch(prog8, "matmul_tiled", global, local, a.data(), b.data(), got.data(), m, n, k);
    dev.synchronize();
    expect_within(got, want, bound, "C = A B, 8 x 8 tiles (OpenCL C)");
  }
}

// ---------------------------------------------------------------------------------------------
// Reductions and scans
// ---------------------------------------------------------------------------------------------
TEST_P(SpirvKernels, WorkGroupReductionTwoPassesAndAtomics) {
  HETMM_REQUIRE_POCL(cl);
  HETMM_PROGRAM(prog, load_spv("reduce"));
  const std::uint32_t n = 100003;  // not a multiple of anything
  const std::uint32_t groups = 64, lsize = 128;
  const std::size_t scratch = lsize * sizeof(float);
  Rng rng(3);
  const auto x = uniform(rng, n, -1, 1);
  auto& dev = device();

  // Float sum: pass 1 over the input (64 groups), pass 2 over the 64 partial sums (1 group).
  std::vector<float> want_partial(groups, 0), want_total(1, 0);
  oracle(*cl, "reduce", "reduce_sum_partial", NDRange{groups * lsize}, NDRange{lsize},
         {pocl::in(x), pocl::out(want_partial), pocl::value(n), pocl::local(scratch)});
  oracle(*cl, "reduce", "reduce_sum_partial", NDRange{lsize}, NDRange{lsize},
         {pocl::in(want_partial), pocl::out(want_total), pocl::value(groups),
          pocl::local(scratch)});
  std::vector<float> partial(groups, 0), total(1, 0);
  dev.launch(prog, "reduce_sum_partial", NDRange{groups * lsize}, NDRange{lsize}, x.data(),
             partial.data(), n, LocalMemory{scratch});
  // The second pass reads what the first wrote: launches on a device run in order.
  dev.launch(prog, "reduce_sum_partial", NDRange{lsize}, NDRange{lsize}, partial.data(),
             total.data(), groups, LocalMemory{scratch});
  dev.synchronize();
  // Each partial sum covers the elements its group strided over; the total covers all n.
  double abs_total = 0;
  std::vector<double> abs_partial(groups, 0);
  for (std::uint32_t i = 0; i < n; ++i) {
    abs_total += std::fabs(x[i]);
    abs_partial[(i / lsize) % groups] += std::fabs(x[i]);
  }
  std::vector<double> partial_bound(groups);
  for (std::uint32_t g = 0; g < groups; ++g) partial_bound[g] = sum_bound(n, abs_partial[g]);
  expect_within(partial, want_partial, partial_bound, "partial sums");
  expect_within(total, want_total, {sum_bound(n, abs_total)}, "total");

  // Integer sum (tree + one atomic_add per group), min and max (global atomics): exact.
  std::uniform_int_distribution<int> d(-1000000, 1000000);
  std::vector<int> iv(n);
  for (int& v : iv) v = d(rng);
  std::vector<int> want{0, INT_MAX, INT_MIN}, got{0, INT_MAX, INT_MIN};
  oracle(*cl, "reduce", "reduce_int_atomic", NDRange{groups * lsize}, NDRange{lsize},
         {pocl::in(iv), pocl::value(n), pocl::local(lsize * sizeof(int)), pocl::inout(want)});
  dev.launch(prog, "reduce_int_atomic", NDRange{groups * lsize}, NDRange{lsize}, iv.data(), n,
             LocalMemory{lsize * sizeof(int)}, got.data());
  dev.synchronize();
  expect_same(got, want, "{sum, min, max}");
}

TEST_P(SpirvKernels, WorkGroupScan) {
  HETMM_REQUIRE_POCL(cl);
  HETMM_PROGRAM(prog, load_spv("scan"));
  const std::uint32_t n = 50000;
  const std::uint32_t lsize = 256, groups = (n + lsize - 1) / lsize;  // 196 <= lsize
  const std::size_t scratch = lsize * sizeof(std::uint32_t);
  Rng rng(4);
  const auto x = random_bits(rng, n);  // the sums wrap: unsigned arithmetic, still exact

  struct Buffers {
    std::vector<std::uint32_t> out, sums, scanned_sums, unused;
  };
  auto fresh = [&] {
    return Buffers{std::vector<std::uint32_t>(n, 0), std::vector<std::uint32_t>(groups, 0),
                   std::vector<std::uint32_t>(groups, 0), std::vector<std::uint32_t>(1, 0)};
  };
  const NDRange global{groups * lsize}, local{lsize};
  Buffers want = fresh(), got = fresh();
  oracle(*cl, "scan", "scan_block", global, local,
         {pocl::in(x), pocl::out(want.out), pocl::out(want.sums), pocl::value(n),
          pocl::local(scratch)});
  oracle(*cl, "scan", "scan_block", NDRange{lsize}, local,
         {pocl::in(want.sums), pocl::out(want.scanned_sums), pocl::out(want.unused),
          pocl::value(groups), pocl::local(scratch)});
  oracle(*cl, "scan", "scan_add_offsets", global, local,
         {pocl::inout(want.out), pocl::in(want.scanned_sums), pocl::value(n)});

  auto& dev = device();
  dev.launch(prog, "scan_block", global, local, x.data(), got.out.data(), got.sums.data(), n,
             LocalMemory{scratch});
  dev.launch(prog, "scan_block", NDRange{lsize}, local, got.sums.data(),
             got.scanned_sums.data(), got.unused.data(), groups, LocalMemory{scratch});
  dev.launch(prog, "scan_add_offsets", global, local, got.out.data(), got.scanned_sums.data(),
             n);
  dev.synchronize();
  expect_same(got.sums, want.sums, "block sums");
  expect_same(got.scanned_sums, want.scanned_sums, "scanned block sums");
  expect_same(got.out, want.out, "inclusive scan");
}

// ---------------------------------------------------------------------------------------------
// Stencils and multi-dimensional ranges
// ---------------------------------------------------------------------------------------------
TEST_P(SpirvKernels, JacobiStencil2D) {
  HETMM_REQUIRE_POCL(cl);
  HETMM_PROGRAM(prog, load_spv("stencil"));
  const int nx = 67, ny = 45, sweeps = 6;
  const float h2 = 1.0f / (64.0f * 64.0f);
  Rng rng(5);
  const auto u0 = uniform(rng, nx * ny, 0, 1), f = uniform(rng, nx * ny, -10, 10);
  const NDRange global{round_up(nx, 16), round_up(ny, 16)}, local{16, 16};

  // Ping-pong: each launch reads the previous launch's output.
  std::vector<float> want = u0, want_next(nx * ny, 0.0f);
  for (int s = 0; s < sweeps; ++s) {
    oracle(*cl, "stencil", "jacobi5", global, local,
           {pocl::in(want), pocl::in(f), pocl::out(want_next), pocl::value(nx), pocl::value(ny),
            pocl::value(h2)});
    std::swap(want, want_next);
  }
  std::vector<float> a = u0, b(nx * ny, 0.0f);
  auto& dev = device();
  for (int s = 0; s < sweeps; ++s) {
    dev.launch(prog, "jacobi5", global, local, a.data(), f.data(), b.data(), nx, ny, h2);
    std::swap(a, b);  // the vectors' buffers swap; the device sees the new pointers next launch
  }
  dev.synchronize();

  // Bound: a sweep computes 0.25 * (4 neighbours + h2 f), 5 terms, possibly with the product
  // fused, so each value is within gamma_5 * S of the exact sweep of its inputs, where
  // S = max |u| + 0.25 h2 max |f| bounds 0.25 * sum |terms|. The averaging itself does not
  // amplify differences of its inputs (weights 0.25 x 4, an exact scaling), so after T sweeps
  // hetmm and PoCL are within 2 T gamma_5 S. By the discrete maximum principle max |u| grows by
  // at most 0.25 h2 max |f| per sweep.
  float max_u0 = 0, max_f = 0;
  for (float v : u0) max_u0 = std::max(max_u0, std::fabs(v));
  for (float v : f) max_f = std::max(max_f, std::fabs(v));
  const double s_max = max_u0 + (sweeps + 1) * 0.25 * h2 * max_f;
  const double gamma5 = 5 * 0x1p-24 / (1 - 5 * 0x1p-24);
  expect_within(a, want, std::vector<double>(a.size(), 2 * sweeps * gamma5 * s_max),
                "u after the sweeps");
}

TEST_P(SpirvKernels, ThreeDimensionalRange) {
  HETMM_REQUIRE_POCL(cl);
  HETMM_PROGRAM(prog, load_spv("range3d"));
  const std::size_t sx = 12, sy = 10, sz = 6, cells = sx * sy * sz;
  const NDRange global{sx, sy, sz}, local{4, 5, 3};
  auto& dev = device();

  // Work-item functions: ids and identities between them, written once per linear index.
  std::vector<std::uint32_t> want_ids(4 * cells, 0xdeadbeef), want_checks(cells, 0);
  oracle(*cl, "range3d", "ids3d", global, local,
         {pocl::out(want_ids), pocl::out(want_checks)});
  std::vector<std::uint32_t> ids(4 * cells, 0xdeadbeef), checks(cells, 0);
  dev.launch(prog, "ids3d", global, local, ids.data(), checks.data());
  dev.synchronize();
  expect_same(ids, want_ids, "(global ids, work_dim) per linear index");
  expect_same(checks, want_checks, "identity bits");
  // PoCL is right here (checked against the definition when the test was written); make the
  // expectation explicit too, so a wrong oracle cannot hide a wrong device.
  EXPECT_EQ(std::count(checks.begin(), checks.end(), 0xffu), static_cast<long>(cells));

  // A 3D stencil over an integer field: exact.
  Rng rng(6);
  std::vector<int> field(cells);
  for (int& v : field) v = static_cast<int>(rng() % 2001) - 1000;
  std::vector<int> want(cells, 0), got(cells, 0);
  oracle(*cl, "range3d", "box3d", global, local, {pocl::in(field), pocl::out(want)});
  dev.launch(prog, "box3d", global, local, field.data(), got.data());
  dev.synchronize();
  expect_same(got, want, "7-point sums");
}

TEST_P(SpirvKernels, TiledTransposeThroughLocalMemory) {
  HETMM_REQUIRE_POCL(cl);
  HETMM_PROGRAM(prog, load_spv("transpose"));
  const int rows = 100, cols = 75;
  const std::size_t t = 16;
  const std::size_t tile_bytes = t * (t + 1) * sizeof(float);  // padded tile, see the kernel
  Rng rng(7);
  const auto in = uniform(rng, rows * cols, -100, 100);
  const NDRange global{round_up(cols, t), round_up(rows, t)}, local{t, t};
  std::vector<float> want(rows * cols, 0.0f), got(rows * cols, 0.0f);
  oracle(*cl, "transpose", "transpose_tiled", global, local,
         {pocl::in(in), pocl::out(want), pocl::value(rows), pocl::value(cols),
          pocl::local(tile_bytes)});
  auto& dev = device();
  dev.launch(prog, "transpose_tiled", global, local, in.data(), got.data(), rows, cols,
             LocalMemory{tile_bytes});
  dev.synchronize();
  expect_same(got, want, "transpose");  // a copy: bit for bit
}

// ---------------------------------------------------------------------------------------------
// Atomics and data-dependent addresses
// ---------------------------------------------------------------------------------------------
TEST_P(SpirvKernels, HistogramGlobalAndLocalAtomics) {
  HETMM_REQUIRE_POCL(cl);
  HETMM_PROGRAM(prog, load_spv("histogram"));
  const std::uint32_t n = 200000, nbins = 257;
  // Skewed: most values are small, so a few bins take most increments (contention).
  Rng rng(8);
  std::geometric_distribution<std::uint32_t> geo(0.02);
  std::vector<std::uint32_t> data(n);
  for (auto& v : data) v = geo(rng) * 7 + (rng() & 1u);
  const NDRange global{4096}, local{128};
  auto& dev = device();

  std::vector<std::uint32_t> want(nbins, 0), got(nbins, 0);
  oracle(*cl, "histogram", "histogram_global", global, local,
         {pocl::in(data), pocl::value(n), pocl::value(nbins), pocl::inout(want)});
  dev.launch(prog, "histogram_global", global, local, data.data(), n, nbins, got.data());
  dev.synchronize();
  expect_same(got, want, "bins (global atomic_inc)");

  std::vector<std::uint32_t> want_local(nbins, 0), got_local(nbins, 0);
  oracle(*cl, "histogram", "histogram_local", global, local,
         {pocl::in(data), pocl::value(n), pocl::value(nbins),
          pocl::local(nbins * sizeof(std::uint32_t)), pocl::inout(want_local)});
  dev.launch(prog, "histogram_local", global, local, data.data(), n, nbins,
             LocalMemory{nbins * sizeof(std::uint32_t)}, got_local.data());
  dev.synchronize();
  expect_same(got_local, want_local, "bins (local atomic_add, then global)");
  // Both kernels count the same thing.
  expect_same(got_local, got, "local-atomic bins vs global-atomic bins");
}

TEST_P(SpirvKernels, GatherScatterDataDependentAddresses) {
  HETMM_REQUIRE_POCL(cl);
  HETMM_PROGRAM(prog, load_spv("gather_scatter"));
  const std::uint32_t n = 100000;
  const std::uint32_t table = 1u << 20;  // 4 MiB: indices land on any of 1024 pages
  Rng rng(9);
  auto& dev = device();

  // gather, with the work-group size left to the implementation (local.x == 0).
  const auto src = uniform(rng, table, -1, 1);
  std::vector<int> idx(n);
  for (int& v : idx) v = static_cast<int>(rng() % table);
  {
    std::vector<float> want(n, 0.0f), got(n, 0.0f);
    oracle(*cl, "gather_scatter", "gather", NDRange{n}, NDRange{0},
           {pocl::in(src), pocl::in(idx), pocl::out(want), pocl::value(n)});
    dev.launch(prog, "gather", NDRange{n}, NDRange{0}, src.data(), idx.data(), got.data(), n);
    dev.synchronize();
    expect_same(got, want, "gather");
  }
  // scatter through a random permutation.
  {
    std::vector<int> perm(n);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    const auto values = uniform(rng, n, -1, 1);
    std::vector<float> want(n, 0.0f), got(n, 0.0f);
    oracle(*cl, "gather_scatter", "scatter", NDRange{n}, NDRange{0},
           {pocl::in(values), pocl::in(perm), pocl::out(want), pocl::value(n)});
    dev.launch(prog, "scatter", NDRange{n}, NDRange{0}, values.data(), perm.data(), got.data(),
               n);
    dev.synchronize();
    expect_same(got, want, "scatter");
  }
  // Pointer chasing: each load's address comes from the previous load.
  {
    std::vector<std::uint32_t> next(n);
    for (auto& v : next) v = static_cast<std::uint32_t>(rng() % n);
    std::vector<int> value(n);
    for (int& v : value) v = static_cast<int>(rng() % 100);
    const std::uint32_t hops = 20;
    const NDRange global{round_up(n, 64)}, local{64};
    std::vector<int> want(n, 0), got(n, 0);
    oracle(*cl, "gather_scatter", "chase", global, local,
           {pocl::in(next), pocl::in(value), pocl::value(hops), pocl::out(want),
            pocl::value(n)});
    dev.launch(prog, "chase", global, local, next.data(), value.data(), hops, got.data(), n);
    dev.synchronize();
    expect_same(got, want, "chase");
  }
  // Sparse matrix-vector product (CSR): up to 39 products per row, summed in row order by
  // both, but fma contraction may differ: sum_bound per row.
  {
    const int rows = 3000, cols = 5000;
    std::vector<int> row_ptr(rows + 1, 0), col;
    std::vector<float> val;
    std::uniform_real_distribution<float> d(-1, 1);
    for (int r = 0; r < rows; ++r) {
      const int nnz = static_cast<int>(rng() % 40);
      for (int j = 0; j < nnz; ++j) {
        col.push_back(static_cast<int>(rng() % cols));
        val.push_back(d(rng));
      }
      row_ptr[r + 1] = static_cast<int>(col.size());
    }
    const auto xv = uniform(rng, cols, -1, 1);
    const NDRange global{round_up(rows, 64)}, local{64};
    std::vector<float> want(rows, 0.0f), got(rows, 0.0f);
    oracle(*cl, "gather_scatter", "spmv_csr", global, local,
           {pocl::in(row_ptr), pocl::in(col), pocl::in(val), pocl::in(xv), pocl::out(want),
            pocl::value(rows)});
    dev.launch(prog, "spmv_csr", global, local, row_ptr.data(), col.data(), val.data(),
               xv.data(), got.data(), rows);
    dev.synchronize();
    std::vector<double> bound(rows);
    for (int r = 0; r < rows; ++r) {
      double s = 0;
      for (int j = row_ptr[r]; j < row_ptr[r + 1]; ++j) s += std::fabs(double(val[j]) * xv[col[j]]);
      bound[r] = sum_bound(static_cast<std::size_t>(row_ptr[r + 1] - row_ptr[r]), s);
    }
    expect_within(got, want, bound, "y = A x");
  }
}

// ---------------------------------------------------------------------------------------------
// Math built-ins
// ---------------------------------------------------------------------------------------------
// The accuracy each function must have: the OpenCL C specification's table "ULP values for
// single precision built-in math functions" (full profile, the same in OpenCL C 1.2, 2.0 and
// 3.0). 0 means the result must be correctly rounded (or is exact). x / y is 2.5 ulp and sqrt
// 3 ulp unless the program asks for -cl-fp32-correctly-rounded-divide-sqrt. The reference is
// the function evaluated in double from the same float inputs, which stands in for the
// infinitely precise value (its own error is far below a float ulp); exact functions are
// evaluated in float by the C++ library.
struct MathFn {
  const char* name;
  double ulps;
  double (*reference)(float x, float y, float z, float w);
};
const MathFn kScalarMath[] = {  // in math_scalar's output order
    {"sin", 4, [](float x, float, float, float) { return std::sin(double(x)); }},
    {"cos", 4, [](float x, float, float, float) { return std::cos(double(x)); }},
    {"tan", 5, [](float, float, float, float w) { return std::tan(double(w)); }},
    {"exp", 3, [](float, float y, float, float) { return std::exp(double(y)); }},
    {"exp2", 3, [](float, float y, float, float) { return std::exp2(double(y)); }},
    {"log", 3, [](float, float, float z, float) { return std::log(double(z)); }},
    {"log2", 3, [](float, float, float z, float) { return std::log2(double(z)); }},
    {"log10", 3, [](float, float, float z, float) { return std::log10(double(z)); }},
    {"pow", 16, [](float, float y, float z, float) { return std::pow(double(z), double(y)); }},
    {"sqrt", 3, [](float, float, float z, float) { return std::sqrt(double(z)); }},
    {"rsqrt", 2, [](float, float, float z, float) { return 1.0 / std::sqrt(double(z)); }},
    {"cbrt", 2, [](float x, float, float, float) { return std::cbrt(double(x)); }},
    {"tanh", 5, [](float x, float, float, float) { return std::tanh(double(x)); }},
    {"atan2", 6, [](float x, float y, float, float) { return std::atan2(double(x), double(y)); }},
    {"asin", 4, [](float, float, float, float w) { return std::asin(double(w)); }},
    {"acos", 4, [](float, float, float, float w) { return std::acos(double(w)); }},
    {"atan", 5, [](float x, float, float, float) { return std::atan(double(x)); }},
    {"sinh", 4, [](float, float y, float, float) { return std::sinh(double(y)); }},
    {"cosh", 4, [](float, float y, float, float) { return std::cosh(double(y)); }},
    {"expm1", 3, [](float, float, float, float w) { return std::expm1(double(w)); }},
    {"log1p", 2, [](float, float, float z, float) { return std::log1p(double(z)); }},
    {"hypot", 4, [](float x, float y, float, float) { return std::hypot(double(x), double(y)); }},
    {"fma", 0, [](float x, float y, float z, float) { return double(std::fma(x, y, z)); }},
    {"floor", 0, [](float x, float, float, float) { return double(std::floor(x)); }},
    {"fmod", 0, [](float x, float, float z, float) { return double(std::fmod(x, z)); }},
    {"x / z (divide)", 2.5, [](float x, float, float z, float) { return double(x) / double(z); }},
    {"erf", 16, [](float x, float, float, float) { return std::erf(double(x)); }},
    {"ldexp", 0,
     [](float x, float y, float, float) { return double(std::ldexp(x, static_cast<int>(y))); }},
    {"round", 0, [](float x, float, float, float) { return double(std::round(x)); }},
    {"trunc", 0, [](float x, float, float, float) { return double(std::trunc(x)); }},
    {"ceil", 0, [](float x, float, float, float) { return double(std::ceil(x)); }},
    {"remainder", 0, [](float x, float, float z, float) { return double(std::remainder(x, z)); }},
};
constexpr std::size_t kScalarCount = std::size(kScalarMath);  // MATH_SCALAR_COUNT in the .cl
// math_vector's outputs, as indices into kScalarMath (MATH_VECTOR_COUNT in the .cl).
constexpr std::size_t kVectorMath[] = {0, 1, 3, 5, 8, 9, 10, 12, 13, 22, 21, 23, 24};
constexpr std::size_t kVectorCount = std::size(kVectorMath);
static_assert(kScalarCount == 32 && kVectorCount == 13,
              "keep in step with MATH_SCALAR_COUNT and MATH_VECTOR_COUNT in math_builtins.cl");

// The spec's ulp at the exact result r: the gap between the two floats around r, i.e.
// 2^(e-23) for |r| in [2^e, 2^(e+1)), and 2^-149 among denormals.
double ulp_at(double r) {
  const double a = std::fabs(r);
  if (a < FLT_MIN) return 0x1p-149;
  int e = 0;
  std::frexp(a, &e);  // a = m 2^e with m in [0.5, 1)
  return std::ldexp(1.0, e - 24);
}

// How far a float result is from the reference, in ulps of the reference. Functions required
// to be exact compare with the reference rounded to float. Inputs are chosen so results are
// finite and normal; a denormal reference accepts a flushed result (float denormals are
// optional in OpenCL).
double ulp_error(float got, double ref, double allowed) {
  if (std::isnan(ref)) return std::isnan(got) ? 0 : INFINITY;
  if (std::isinf(ref)) return double(got) == ref ? 0 : INFINITY;
  if (std::fabs(ref) < FLT_MIN && std::fabs(got) <= FLT_MIN) return 0;
  if (allowed == 0) return got == static_cast<float>(ref) ? 0 : INFINITY;
  return std::fabs(double(got) - ref) / ulp_at(ref);
}

// Checks one function's results: hetmm within the spec of the exact value, PoCL too (else the
// oracle itself is wrong), and hetmm within 2x the spec of PoCL (both within it of the exact
// value; bit for bit for exact functions).
void check_math(const MathFn& fn, const std::vector<float>& got, const std::vector<float>& want,
                const std::vector<double>& refs) {
  double worst_hetmm = 0, worst_pocl = 0, worst_pair = 0;
  std::size_t at = 0;
  for (std::size_t i = 0; i < refs.size(); ++i) {
    const double e = ulp_error(got[i], refs[i], fn.ulps);
    if (e > worst_hetmm) {
      worst_hetmm = e;
      at = i;
    }
    worst_pocl = std::max(worst_pocl, ulp_error(want[i], refs[i], fn.ulps));
    const double pair = fn.ulps == 0 ? (std::bit_cast<std::uint32_t>(got[i]) ==
                                                std::bit_cast<std::uint32_t>(want[i])
                                            ? 0.0
                                            : INFINITY)
                                     : std::fabs(double(got[i]) - want[i]) / ulp_at(refs[i]);
    worst_pair = std::max(worst_pair, pair);
  }
  EXPECT_LE(worst_hetmm, fn.ulps) << fn.name << ": hetmm " << got[at] << " vs exact "
                                  << refs[at] << " (element " << at << ")";
  EXPECT_LE(worst_pocl, fn.ulps) << fn.name << ": the PoCL oracle is outside the spec";
  EXPECT_LE(worst_pair, 2 * fn.ulps) << fn.name << ": hetmm vs PoCL";
}

TEST_P(SpirvKernels, MathBuiltins) {
  HETMM_REQUIRE_POCL(cl);
  HETMM_PROGRAM(prog, load_spv("math_builtins"));
  const std::uint32_t n = 4096;
  Rng rng(10);
  // The domains of math_builtins.cl: no overflow, no denormal results, no poles.
  const auto x = uniform(rng, n, -10, 10), y = uniform(rng, n, -10, 10);
  const auto z = uniform(rng, n, 1.0f / 64, 100), w = uniform(rng, n, -1, 1);
  auto& dev = device();

  std::vector<float> want(n * kScalarCount, 0.0f), got(n * kScalarCount, 0.0f);
  oracle(*cl, "math_builtins", "math_scalar", NDRange{n}, NDRange{64},
         {pocl::in(x), pocl::in(y), pocl::in(z), pocl::in(w), pocl::out(want), pocl::value(n)});
  dev.launch(prog, "math_scalar", NDRange{n}, NDRange{64}, x.data(), y.data(), z.data(),
             w.data(), got.data(), n);
  dev.synchronize();
  for (std::size_t f = 0; f < kScalarCount; ++f) {
    std::vector<float> g(n), p(n);
    std::vector<double> refs(n);
    for (std::uint32_t i = 0; i < n; ++i) {
      g[i] = got[i * kScalarCount + f];
      p[i] = want[i * kScalarCount + f];
      refs[i] = kScalarMath[f].reference(x[i], y[i], z[i], w[i]);
    }
    check_math(kScalarMath[f], g, p, refs);
  }

  // float4 overloads: element i of the inputs is lane i % 4 of float4 number i / 4.
  const std::uint32_t n4 = n / 4;
  std::vector<float> want4(n * kVectorCount, 0.0f), got4(n * kVectorCount, 0.0f);
  oracle(*cl, "math_builtins", "math_vector", NDRange{n4}, NDRange{64},
         {pocl::in(x), pocl::in(y), pocl::in(z), pocl::out(want4), pocl::value(n4)});
  dev.launch(prog, "math_vector", NDRange{n4}, NDRange{64}, x.data(), y.data(), z.data(),
             got4.data(), n4);
  dev.synchronize();
  for (std::size_t f = 0; f < kVectorCount; ++f) {
    const MathFn& fn = kScalarMath[kVectorMath[f]];
    std::vector<float> g(n), p(n);
    std::vector<double> refs(n);
    for (std::uint32_t i = 0; i < n; ++i) {
      const std::size_t at = (i / 4) * kVectorCount * 4 + f * 4 + i % 4;
      g[i] = got4[at];
      p[i] = want4[at];
      refs[i] = fn.reference(x[i], y[i], z[i], w[i]);
    }
    SCOPED_TRACE("float4");
    check_math(fn, g, p, refs);
  }
}

// ---------------------------------------------------------------------------------------------
// A CPU thread reading results while the kernel runs
// ---------------------------------------------------------------------------------------------
// Launch is asynchronous: while the kernel runs, a CPU thread polls the per-item ready flags and
// the progress counter (acquire loads) and checks invariants that hold at every instant:
//   * a flag, once seen set, stays set, and the value it publishes is the final value;
//   * progress never decreases and never exceeds n;
//   * after reading progress == k, at least k flags are set (each work-item sets its flag
//     before its release increment, and acquiring the counter synchronises with all of them).
// Nothing depends on how many intermediate states the reader happens to see: a fast kernel
// that finishes before the first poll passes too. After synchronize, everything is final.
TEST_P(SpirvKernels, CpuReadsPublishedResultsWhileKernelRuns) {
  HETMM_REQUIRE_POCL(cl);
  HETMM_PROGRAM(prog, load_spv("concurrent_flags"));
  const std::uint32_t n = 1u << 16;   // 256 KiB per array: 64 pages of flags
  const std::uint32_t rounds = 256;   // hash rounds per item: the kernel runs a while
  Rng rng(11);
  const auto in = random_bits(rng, n);
  auto& dev = device();

  for (const char* kernel : {"publish_c11", "publish_xchg"}) {
    SCOPED_TRACE(kernel);
    std::vector<std::uint32_t> want(n, 0), want_ready(n, 0), want_progress(1, 0);
    oracle(*cl, "concurrent_flags", kernel, NDRange{n}, NDRange{64},
           {pocl::in(in), pocl::out(want), pocl::out(want_ready), pocl::out(want_progress),
            pocl::value(rounds)});
    ASSERT_EQ(want_progress[0], n) << "the oracle's own run";

    std::vector<std::uint32_t> result(n, 0), ready(n, 0), progress(1, 0);
    std::atomic<bool> kernel_done{false};
    std::vector<std::string> problems;  // written by the reader only, read after join
    std::uint64_t polls = 0, polls_mid_kernel = 0;
    std::thread reader([&] {
      std::vector<char> seen(n, 0);
      std::uint32_t last_progress = 0;
      auto problem = [&](std::string what) {
        if (problems.size() < 10) problems.push_back(std::move(what));
      };
      for (;;) {
        // Read done first: a pass that starts after synchronize sees the final state.
        const bool final_pass = kernel_done.load(std::memory_order_acquire);
        const std::uint32_t p =
            std::atomic_ref<std::uint32_t>(progress[0]).load(std::memory_order_acquire);
        if (p < last_progress)
          problem("progress went back from " + std::to_string(last_progress) + " to " +
                  std::to_string(p));
        if (p > n) problem("progress " + std::to_string(p) + " > n");
        last_progress = p;
        std::uint32_t published = 0;
        for (std::uint32_t i = 0; i < n; ++i) {
          if (std::atomic_ref<std::uint32_t>(ready[i]).load(std::memory_order_acquire) != 0) {
            ++published;
            seen[i] = 1;
            // Ordered after the acquire of its flag: no race with the device's store.
            if (result[i] != want[i])
              problem("item " + std::to_string(i) + " published " + std::to_string(result[i]) +
                      ", final value " + std::to_string(want[i]));
          } else if (seen[i] != 0) {
            problem("item " + std::to_string(i) + ": its flag was set and is clear again");
          }
        }
        if (published < p)
          problem("progress " + std::to_string(p) + " but only " + std::to_string(published) +
                  " flags set");
        ++polls;
        if (published > 0 && published < n) ++polls_mid_kernel;
        if (final_pass) break;
      }
    });
    // Stop and join the reader however this scope is left (a launch error included).
    struct JoinReader {
      std::atomic<bool>& done;
      std::thread& t;
      ~JoinReader() {
        done.store(true, std::memory_order_release);
        if (t.joinable()) t.join();
      }
    } join_reader{kernel_done, reader};

    dev.launch(prog, kernel, NDRange{n}, NDRange{64}, in.data(), result.data(), ready.data(),
               progress.data(), rounds);
    dev.synchronize();
    kernel_done.store(true, std::memory_order_release);
    reader.join();

    std::string all;
    for (const auto& p : problems) all += "\n  " + p;
    EXPECT_TRUE(problems.empty()) << "the CPU reader saw inconsistent state:" << all;
    expect_same(result, want, "results");
    expect_same(ready, want_ready, "ready flags");
    EXPECT_EQ(progress[0], n);
    RecordProperty(std::string(kernel) + "_polls", std::to_string(polls));
    RecordProperty(std::string(kernel) + "_polls_mid_kernel", std::to_string(polls_mid_kernel));
  }
}

// ---------------------------------------------------------------------------------------------
// Vector types, integer built-ins, conversions
// ---------------------------------------------------------------------------------------------
TEST_P(SpirvKernels, VectorTypes) {
  HETMM_REQUIRE_POCL(cl);
  HETMM_PROGRAM(spv, load_spv("vector_types"));
  // The same kernels through Program::from_opencl_c (no build options).
  HETMM_PROGRAM(from_source, load_opencl_c("vector_types", ""));
  const std::uint32_t n4 = 1000, x_offset = 3;  // x + 3: vload4 from a non-16-byte address
  const float a = 1.75f;
  Rng rng(12);
  const auto x = uniform(rng, 4 * n4 + x_offset, -10, 10), y = uniform(rng, 4 * n4, -10, 10);
  auto v = uniform(rng, 4 * n4, -10, 10);
  for (int i = 0; i < 200; ++i) v[rng() % v.size()] = v[rng() % v.size()];  // equal lanes
  v[0] = -0.0f;  // signbit of a negative zero
  const auto w8 = uniform(rng, 8 * n4, -10, 10);

  // saxpy4 stores at out + 1, so out[0] must stay as it was.
  std::vector<float> want_saxpy(4 * n4 + 1, -1.0f);
  oracle(*cl, "vector_types", "saxpy4", NDRange{n4}, NDRange{0},
         {pocl::in(x), pocl::in(y), pocl::out(want_saxpy), pocl::value(a),
          pocl::value(x_offset)});
  std::vector<float> want_swz(12 * n4, 0.0f);
  std::vector<int> want_masks(8 * n4, 7);
  oracle(*cl, "vector_types", "swizzle", NDRange{n4}, NDRange{50},
         {pocl::in(v), pocl::out(want_swz), pocl::out(want_masks)});
  std::vector<float> want_w8(16 * n4, 0.0f);
  oracle(*cl, "vector_types", "widen8", NDRange{n4}, NDRange{0},
         {pocl::in(w8), pocl::out(want_w8)});

  // saxpy4: a * x + y may be fused into an fma by either side (FP_CONTRACT): one product and
  // one sum, so the two results are within 2 gamma_2 (|a x| + |y|) of each other (sum_bound).
  std::vector<double> saxpy_bound(4 * n4 + 1, 0.0);
  for (std::uint32_t i = 0; i < 4 * n4; ++i)
    saxpy_bound[1 + i] = sum_bound(2, std::fabs(double(a) * x[x_offset + i]) + std::fabs(y[i]));

  auto& dev = device();
  for (const Program* prog : {&spv, &from_source}) {
    SCOPED_TRACE(prog == &spv ? "from_file(vector_types.spv)" : "from_opencl_c(vector_types.cl)");
    std::vector<float> saxpy(4 * n4 + 1, -1.0f), swz(12 * n4, 0.0f), w8_out(16 * n4, 0.0f);
    std::vector<int> masks(8 * n4, 7);
    dev.launch(*prog, "saxpy4", NDRange{n4}, NDRange{0}, x.data(), y.data(), saxpy.data(), a,
               x_offset);
    dev.launch(*prog, "swizzle", NDRange{n4}, NDRange{50}, v.data(), swz.data(), masks.data());
    dev.launch(*prog, "widen8", NDRange{n4}, NDRange{0}, w8.data(), w8_out.data());
    dev.synchronize();
    expect_within(saxpy, want_saxpy, saxpy_bound, "saxpy4");
    expect_same(swz, want_swz, "swizzle results");  // exact operations only
    expect_same(masks, want_masks, "relational masks");
    expect_same(w8_out, want_w8, "float8 products, fmin, fmax");
  }
}

TEST_P(SpirvKernels, IntegerBuiltins) {
  HETMM_REQUIRE_POCL(cl);
  HETMM_PROGRAM(prog, load_spv("integer_builtins"));
  constexpr std::size_t kCount = 24;  // INT_BUILTIN_COUNT
  const std::uint32_t n = 5000;
  Rng rng(13);
  auto a = random_bits(rng, n), b = random_bits(rng, n);
  // Every pair of the edge values first; then random words, half of them with small b so that
  // rotates and shifts by small counts are common.
  const std::uint32_t edge[] = {0u, 1u, 0xffffffffu, 0x80000000u, 0x7fffffffu,
                                0x00ff00ffu, 31u, 32u, 33u};
  constexpr std::uint32_t kEdges = std::size(edge);
  for (std::uint32_t i = 0; i < kEdges * kEdges; ++i) {
    a[i] = edge[i % kEdges];
    b[i] = edge[i / kEdges];
  }
  for (std::uint32_t i = kEdges * kEdges; i < n; i += 2) b[i] %= 64;

  std::vector<std::uint32_t> want(n * kCount, 0), got(n * kCount, 0);
  oracle(*cl, "integer_builtins", "int_builtins", NDRange{n}, NDRange{0},
         {pocl::in(a), pocl::in(b), pocl::out(want), pocl::value(n)});
  auto& dev = device();
  dev.launch(prog, "int_builtins", NDRange{n}, NDRange{0}, a.data(), b.data(), got.data(), n);
  dev.synchronize();
  expect_same(got, want, "integer built-ins (element i*24 + f is function f of int_builtins)");
}

TEST_P(SpirvKernels, ConversionsWithSaturationAndRounding) {
  HETMM_REQUIRE_POCL(cl);
  HETMM_PROGRAM(prog, load_spv("conversions"));
  constexpr std::size_t kCount = 22;  // CONVERSION_COUNT
  const std::uint32_t n = 4000;
  Rng rng(14);
  std::vector<float> small(n), any(n);
  std::vector<int> ints(n);
  // small: k / 2^s for |k| <= 2e6 and s in 0..3, so many values are exact halves (ties).
  // any: NaN, infinities, beyond-range values and the float neighbours of the int limits
  // first, then floats of magnitude up to 2^80.
  const float special_f[] = {NAN,           INFINITY,       -INFINITY,     3e9f,   -3e9f,
                             2147483520.0f, 2147483648.0f,  -2147483648.0f, 0.5f,   -0.5f,
                             255.5f,        256.0f,         -1.0f,          1e30f,  -1e30f,
                             65535.5f,      0.0f,           -0.0f};
  const int special_i[] = {INT_MIN, INT_MAX, 0,      -1,       255,      256,      -128,
                           -129,    127,     128,    65535,    65536,    32767,    -32768,
                           -32769,  16777217, -16777217, 0x7fffffc0, 16777219};
  std::uniform_real_distribution<float> unit(-1, 1);
  for (std::uint32_t i = 0; i < n; ++i) {
    small[i] = std::ldexp(static_cast<float>(static_cast<int>(rng() % 4000001) - 2000000),
                          -static_cast<int>(rng() % 4));
    any[i] = i < std::size(special_f) ? special_f[i]
                                      : std::ldexp(unit(rng), static_cast<int>(rng() % 80));
    ints[i] = i < std::size(special_i) ? special_i[i]
                                       : static_cast<int>(rng()) >> static_cast<int>(rng() % 31);
  }
  std::vector<std::uint32_t> want(n * kCount, 0), got(n * kCount, 0);
  oracle(*cl, "conversions", "conversions", NDRange{n}, NDRange{0},
         {pocl::in(small), pocl::in(any), pocl::in(ints), pocl::out(want), pocl::value(n)});
  auto& dev = device();
  dev.launch(prog, "conversions", NDRange{n}, NDRange{0}, small.data(), any.data(), ints.data(),
             got.data(), n);
  dev.synchronize();
  expect_same(got, want, "conversions (element i*22 + f is conversion f of the kernel)");
}

// ---------------------------------------------------------------------------------------------
// Arguments: a struct by value, __constant memory
// ---------------------------------------------------------------------------------------------
// The host twin of struct_arg.cl's Quantizer: float4 is 16-byte aligned, so the struct is too.
struct alignas(16) Quantizer {
  float offset[4];
  float scale;
  std::int32_t lo, hi;
  std::uint32_t flags;
};
static_assert(sizeof(Quantizer) == 32 && offsetof(Quantizer, scale) == 16 &&
              offsetof(Quantizer, flags) == 28);

TEST_P(SpirvKernels, StructArgumentByValue) {
  HETMM_REQUIRE_POCL(cl);
  HETMM_PROGRAM(prog, load_spv("struct_arg"));
  const std::uint32_t n4 = 3000;
  Rng rng(15);
  auto v = uniform(rng, 4 * n4, -50, 50);
  // Values that land exactly on .5 after scaling, to exercise round-to-even.
  for (std::uint32_t i = 0; i < 200; ++i) v[i] = std::round(v[i]) / 8.0f + (i % 3 ? 0.0625f : 0);
  auto& dev = device();
  for (std::uint32_t flags = 0; flags < 4; ++flags) {
    SCOPED_TRACE("flags " + std::to_string(flags));
    // scale is a power of two, see quantize4: the results are exact, so compare bit for bit.
    const Quantizer q{{0.5f, -0.25f, 1.0f, 0.0f}, 8.0f, -300, 250, flags};
    std::vector<int> want(4 * n4, 0), got(4 * n4, 0);
    oracle(*cl, "struct_arg", "quantize4", NDRange{n4}, NDRange{0},
           {pocl::in(v), pocl::out(want), pocl::value(q)});
    dev.launch(prog, "quantize4", NDRange{n4}, NDRange{0}, v.data(), got.data(), q);
    dev.synchronize();
    expect_same(got, want, "quantized");
  }
}

TEST_P(SpirvKernels, ConstantMemory) {
  HETMM_REQUIRE_POCL(cl);
  HETMM_PROGRAM(prog, load_spv("constant_memory"));
  const std::uint32_t n = 20000, ntaps = 33;
  Rng rng(16);
  const auto samples = uniform(rng, n + ntaps - 1, -1, 1), taps = uniform(rng, ntaps, -1, 1);
  auto& dev = device();

  // fir: taps through a __constant pointer argument; 33-term sums (sum_bound).
  std::vector<float> want(n, 0.0f), got(n, 0.0f);
  oracle(*cl, "constant_memory", "fir", NDRange{n}, NDRange{0},
         {pocl::in(samples), pocl::in(taps), pocl::value(ntaps), pocl::out(want),
          pocl::value(n)});
  dev.launch(prog, "fir", NDRange{n}, NDRange{0}, samples.data(), taps.data(), ntaps,
             got.data(), n);
  dev.synchronize();
  std::vector<double> bound(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    double s = 0;
    for (std::uint32_t t = 0; t < ntaps; ++t) s += std::fabs(double(taps[t]) * samples[i + t]);
    bound[i] = sum_bound(ntaps, s);
  }
  expect_within(got, want, bound, "fir");

  // poly_lut: program-scope __constant tables. Horner's rule with 7 multiply-adds, each
  // possibly fused: a degree-7 polynomial is a sum of 8 terms c_k x^k with up to 14 roundings
  // on each path, so both are within gamma_14 sum |c_k| |x|^k of the exact value (Higham
  // §5.1); compare within 2 gamma_14 of it. The lookups are exact.
  const auto px = uniform(rng, n, -2, 2);
  const auto keys = random_bits(rng, n);
  std::vector<float> want_poly(n, 0.0f), got_poly(n, 0.0f);
  std::vector<int> want_lut(n, 0), got_lut(n, 0);
  oracle(*cl, "constant_memory", "poly_lut", NDRange{n}, NDRange{0},
         {pocl::in(px), pocl::in(keys), pocl::out(want_poly), pocl::out(want_lut),
          pocl::value(n)});
  dev.launch(prog, "poly_lut", NDRange{n}, NDRange{0}, px.data(), keys.data(), got_poly.data(),
             got_lut.data(), n);
  dev.synchronize();
  std::vector<double> poly_bound(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    double s = 0, p = 1;
    for (int k = 0; k < 8; ++k, p *= std::fabs(px[i])) s += std::ldexp(p, -k);  // |c_k| = 2^-k
    poly_bound[i] = sum_bound(14, s);
  }
  expect_within(got_poly, want_poly, poly_bound, "Horner");
  expect_same(got_lut, want_lut, "lookup table");
}

// ---------------------------------------------------------------------------------------------
// Non-uniform work-groups (hetmm only)
// ---------------------------------------------------------------------------------------------
// PoCL 3.1 has no non-uniform work-groups (clinfo: "Non-uniform work-groups: No";
// clEnqueueNDRangeKernel gives CL_INVALID_WORK_GROUP_SIZE), so the expected values follow
// directly from OpenCL 2.0's rules: the last group in a dimension has global % local items.
TEST_P(SpirvKernels, NonUniformLastWorkGroup) {
  HETMM_PROGRAM(prog, load_spv("nonuniform"));
  auto& dev = device();
  {
    const std::size_t gx = 70, gy = 20, lx = 16, ly = 8;  // last groups: 6 wide, 4 tall
    std::vector<std::uint32_t> ids(4 * gx * gy, 0);
    dev.launch(prog, "nonuniform_ids", NDRange{gx, gy}, NDRange{lx, ly}, ids.data());
    dev.synchronize();
    std::vector<std::uint32_t> want(4 * gx * gy);
    for (std::size_t y = 0; y < gy; ++y)
      for (std::size_t x = 0; x < gx; ++x) {
        const std::size_t at = 4 * (y * gx + x);
        want[at + 0] = static_cast<std::uint32_t>(x / lx == gx / lx ? gx % lx : lx);
        want[at + 1] = static_cast<std::uint32_t>(lx);
        want[at + 2] = static_cast<std::uint32_t>(y / ly == gy / ly ? gy % ly : ly);
        want[at + 3] = static_cast<std::uint32_t>(ly);
      }
    expect_same(ids, want, "(local size, enqueued local size) in x and y");
  }
  {
    const std::size_t n = 1000, l = 64, groups = (n + l - 1) / l;  // the last group has 40
    std::vector<int> in(n);
    std::iota(in.begin(), in.end(), 1);
    std::vector<int> sums(groups, -1);
    dev.launch(prog, "nonuniform_group_sum", NDRange{n}, NDRange{l}, in.data(), sums.data(),
               LocalMemory{l * sizeof(int)});
    dev.synchronize();
    std::vector<int> want(groups, 0);
    for (std::size_t i = 0; i < n; ++i) want[i / l] += in[i];
    expect_same(sums, want, "group sums");
  }
}

// ---------------------------------------------------------------------------------------------
// Kernel signatures (reflection) and errors: no PoCL needed
// ---------------------------------------------------------------------------------------------
TEST(SpirvProgram, KernelSignatures) {
  HETMM_PROGRAM(reduce, load_spv("reduce"));
  auto names = reduce.kernel_names();
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"reduce_int_atomic", "reduce_sum_partial"}));
  const KernelInfo& partial = reduce.kernel("reduce_sum_partial");
  EXPECT_EQ(partial.name, "reduce_sum_partial");
  ASSERT_EQ(partial.args.size(), 4u);
  EXPECT_EQ(partial.args[0].kind, ArgKind::global_pointer);
  EXPECT_EQ(partial.args[0].size, 8u);
  EXPECT_EQ(partial.args[1].kind, ArgKind::global_pointer);
  EXPECT_EQ(partial.args[2].kind, ArgKind::value);
  EXPECT_EQ(partial.args[2].size, 4u);  // uint
  EXPECT_EQ(partial.args[3].kind, ArgKind::local_pointer);
  EXPECT_TRUE(partial.uses_barriers);
  EXPECT_EQ(partial.required_local, (std::array<std::size_t, 3>{0, 0, 0}));

  HETMM_PROGRAM(matmul, load_spv("matmul"));
  EXPECT_FALSE(matmul.kernel("matmul").uses_barriers);
  EXPECT_EQ(matmul.kernel("matmul").args.size(), 6u);

  HETMM_PROGRAM(constant, load_spv("constant_memory"));
  const KernelInfo& fir = constant.kernel("fir");
  ASSERT_EQ(fir.args.size(), 5u);
  EXPECT_EQ(fir.args[1].kind, ArgKind::constant_pointer);

  HETMM_PROGRAM(quantize, load_spv("struct_arg"));
  const KernelInfo& q = quantize.kernel("quantize4");
  ASSERT_EQ(q.args.size(), 3u);
  EXPECT_EQ(q.args[2].kind, ArgKind::value);
  EXPECT_EQ(q.args[2].size, sizeof(Quantizer));
}

// Runs f, which must throw hetmm::Error with `code` (and, if given, `contains` in its message).
template <class F>
void expect_error(Errc code, F&& f, std::string_view contains = {}) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << "got " << to_string(e.code()) << ": " << e.what();
    if (!contains.empty()) {
      EXPECT_NE(std::string_view(e.what()).find(contains), std::string_view::npos)
          << "message without \"" << contains << "\": " << e.what();
    }
    return;
  }
  ADD_FAILURE() << "no hetmm::Error (expected " << to_string(code) << ")";
}

// Error tests need a runtime whose launches are checked; the policy does not matter.
Options error_test_options() {
  Options o;
  o.workers = 2;
  return o;
}

TEST(SpirvErrors, GarbageModuleIsInvalidArgument) {
  HETMM_PROGRAM(probe, load_spv("matmul"));  // skips when this build has no SPIR-V support
  (void)probe;
  // Not SPIR-V at all (wrong magic number).
  const std::uint32_t garbage[] = {0xdeadbeef, 0x12345678, 0, 1, 2, 3, 4, 5};
  expect_error(Errc::invalid_argument, [&] { Program::from_spirv(garbage, sizeof garbage); });
  // The right header (magic, version 1.0, generator, bound, schema), then an instruction whose
  // word count (0xffff) runs past the end of the module.
  const std::uint32_t bad_body[] = {0x07230203, 0x00010000, 0, 16, 0, 0xffff0011, 1, 2};
  expect_error(Errc::invalid_argument, [&] { Program::from_spirv(bad_body, sizeof bad_body); });
  // Nothing at all.
  expect_error(Errc::invalid_argument, [&] { Program::from_spirv(garbage, 0); });
}

TEST(SpirvErrors, TruncatedModuleIsInvalidArgument) {
  HETMM_PROGRAM(probe, load_spv("matmul"));
  (void)probe;
  const std::vector<char> spv = read_bytes(spv_path("matmul"));
  ASSERT_GT(spv.size(), 64u);
  // Cut in the middle, on a word boundary: instructions and the function body are missing.
  expect_error(Errc::invalid_argument,
               [&] { Program::from_spirv(spv.data(), spv.size() / 2 / 4 * 4); });
  // Cut off the last word (OpFunctionEnd's), and a size that is not a whole number of words.
  expect_error(Errc::invalid_argument, [&] { Program::from_spirv(spv.data(), spv.size() - 4); });
  expect_error(Errc::invalid_argument, [&] { Program::from_spirv(spv.data(), spv.size() - 3); });
  // Only the 5-word header.
  expect_error(Errc::invalid_argument, [&] { Program::from_spirv(spv.data(), 20); });
}

TEST(SpirvErrors, MissingKernelIsInvalidArgument) {
  HETMM_PROGRAM(prog, load_spv("matmul"));
  expect_error(Errc::invalid_argument, [&] { (void)prog.kernel("no_such_kernel"); });
  Runtime rt(error_test_options());
  auto& dev = rt.device(0);
  std::vector<float> a(16), b(16), c(16);
  expect_error(Errc::invalid_argument, [&] {
    dev.launch(prog, "no_such_kernel", NDRange{4, 4}, NDRange{4, 4}, a.data(), b.data(),
               c.data(), 4, 4, 4);
    dev.synchronize();
  });
}

TEST(SpirvErrors, WrongArgumentCountIsInvalidArgument) {
  HETMM_PROGRAM(prog, load_spv("matmul"));  // matmul(a, b, c, m, n, k)
  Runtime rt(error_test_options());
  auto& dev = rt.device(0);
  std::vector<float> a(16), b(16), c(16);
  expect_error(Errc::invalid_argument, [&] {  // k missing
    dev.launch(prog, "matmul", NDRange{4, 4}, NDRange{4, 4}, a.data(), b.data(), c.data(), 4, 4);
    dev.synchronize();
  });
  expect_error(Errc::invalid_argument, [&] {  // one too many
    dev.launch(prog, "matmul", NDRange{4, 4}, NDRange{4, 4}, a.data(), b.data(), c.data(), 4, 4,
               4, 4);
    dev.synchronize();
  });
  expect_error(Errc::invalid_argument, [&] {  // none
    dev.launch(prog, "matmul", NDRange{4, 4}, NDRange{4, 4});
    dev.synchronize();
  });
  // Nothing ran, and the device still works after the refusals.
  std::vector<float> ones(16, 1.0f), out(16, 0.0f);
  dev.launch(prog, "matmul", NDRange{4, 4}, NDRange{4, 4}, ones.data(), ones.data(), out.data(),
             4, 4, 4);
  dev.synchronize();
  EXPECT_EQ(out, std::vector<float>(16, 4.0f));
}

TEST(SpirvErrors, WrongArgumentKindsAreInvalidArgument) {
  HETMM_PROGRAM(matmul, load_spv("matmul"));  // matmul(global a, global b, global c, int x3)
  HETMM_PROGRAM(reduce, load_spv("reduce"));  // reduce_sum_partial(global, global, uint, local)
  Runtime rt(error_test_options());
  auto& dev = rt.device(0);
  std::vector<float> a(16), b(16), c(16);
  auto launch_and_wait = [&](auto... args) {
    dev.launch(matmul, "matmul", NDRange{4, 4}, NDRange{4, 4}, args...);
    dev.synchronize();
  };
  // An int where a pointer is expected.
  expect_error(Errc::invalid_argument, [&] { launch_and_wait(5, b.data(), c.data(), 4, 4, 4); });
  // A 64-bit integer where a pointer is expected: the size matches, the kind does not.
  expect_error(Errc::invalid_argument, [&] {
    launch_and_wait(reinterpret_cast<std::uintptr_t>(a.data()), b.data(), c.data(), 4, 4, 4);
  });
  // LocalMemory where a global pointer is expected.
  expect_error(Errc::invalid_argument,
               [&] { launch_and_wait(a.data(), LocalMemory{64}, c.data(), 4, 4, 4); });
  // A pointer where an int is expected.
  expect_error(Errc::invalid_argument,
               [&] { launch_and_wait(a.data(), b.data(), c.data(), a.data(), 4, 4); });
  // A double (8 bytes) where an int (4 bytes) is expected.
  expect_error(Errc::invalid_argument,
               [&] { launch_and_wait(a.data(), b.data(), c.data(), 4.0, 4, 4); });
  // A global pointer where a __local argument (LocalMemory) is expected.
  expect_error(Errc::invalid_argument, [&] {
    dev.launch(reduce, "reduce_sum_partial", NDRange{16}, NDRange{16}, a.data(), b.data(),
               std::uint32_t{16}, c.data());
    dev.synchronize();
  });
}

TEST(SpirvErrors, OpenClSyntaxErrorCarriesClangDiagnostic) {
  const char* broken = "__kernel void broken(__global int* p) {\n  p[0] = ;\n}\n";
  try {
    Program::from_opencl_c(broken);
    ADD_FAILURE() << "a kernel with a syntax error compiled";
  } catch (const Error& e) {
    if (e.code() == Errc::unsupported) GTEST_SKIP() << "no OpenCL C compiler: " << e.what();
    // clang's own words, with the line of the error.
    EXPECT_NE(std::string_view(e.what()).find("expected expression"), std::string_view::npos)
        << e.what();
    EXPECT_NE(std::string_view(e.what()).find("error"), std::string_view::npos) << e.what();
  }
}

}  // namespace
}  // namespace hetmm::test::spirv
