// Runs of work-groups along x joined into one loop (kernel_driver.cpp, NdRangeLaunch::join):
// only kernels that cannot tell a run from one wide group are joined, and every id they can read
// is the one of their own group: global ids with offsets and a short last group, the group shape
// along y and z; a kernel that reads its local id, group id or local size along x (directly, in
// a helper, or in a dimension known only at run time) runs group by group.
#include <hetmm/hetmm.hpp>

#include <gtest/gtest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

namespace {

const char* kSource = R"CLC(
// Joined: global ids only along x; the group's shape along y.
__kernel void ids(__global uint* out, uint w) {
  const size_t x = get_global_id(0), y = get_global_id(1);
  const size_t i = (y - get_global_offset(1)) * w + (x - get_global_offset(0));
  out[2 * i] = (uint)x;
  out[2 * i + 1] = (uint)(get_local_id(1) + 100 * get_group_id(1) + 10000 * get_local_size(1));
}

// Not joined: the group's shape along x, directly.
__kernel void shape_x(__global uint* out) {
  out[get_global_id(0)] =
      (uint)(get_local_id(0) + 1000 * get_group_id(0) + 1000000 * get_local_size(0));
}

// Not joined: the local id along x, in a helper.
uint lane(void) { return (uint)get_local_id(0); }
__kernel void shape_x_in_helper(__global uint* out) { out[get_global_id(0)] = lane(); }

// Not joined: a dimension known only at run time.
__kernel void shape_any(__global uint* out, uint d) {
  out[get_global_id(0)] = (uint)get_local_id(d);
}

__kernel void add_one(__global int* v) { v[get_global_id(0)] += 1; }
)CLC";

hetmm::Program program() {
  static hetmm::Program p = hetmm::Program::from_opencl_c(kSource);
  return p;
}

TEST(JoinedGroups, GlobalIdsAndTheShapeAlongYAreEachGroupsOwn) {
  hetmm::Runtime rt;
  auto& dev = rt.device(0);
  // 1000 is no multiple of 16: the last group along x is short (OpenCL 2.0 non-uniform groups).
  constexpr std::uint32_t kW = 1000, kH = 24, kOffX = 7, kOffY = 3;
  std::vector<std::uint32_t> out(2 * kW * kH, ~0u);
  std::vector<hetmm::detail::LaunchArg> args{hetmm::detail::make_launch_arg(out.data()),
                                             hetmm::detail::make_launch_arg(kW)};
  dev.launch_program(program(), "ids", hetmm::NDRange{kW, kH}, hetmm::NDRange{16, 4},
                     std::move(args), {kOffX, kOffY, 0});
  dev.synchronize();
  for (std::uint32_t y = 0; y < kH; ++y)
    for (std::uint32_t x = 0; x < kW; ++x) {
      const std::size_t i = std::size_t{y} * kW + x;
      ASSERT_EQ(out[2 * i], x + kOffX) << "item (" << x << ", " << y << ")";
      ASSERT_EQ(out[2 * i + 1], y % 4 + 100 * (y / 4) + 10000 * 4) << "item (" << x << ", " << y << ")";
    }
}

TEST(JoinedGroups, KernelsThatReadTheirGroupAlongXRunGroupByGroup) {
  hetmm::Runtime rt;
  auto& dev = rt.device(0);
  constexpr std::uint32_t kN = 100003, kLocal = 16;  // 6251 groups, the last one short
  std::vector<std::uint32_t> out(kN, ~0u);
  dev.launch(program(), "shape_x", hetmm::NDRange{kN}, hetmm::NDRange{kLocal}, out.data());
  dev.synchronize();
  for (std::uint32_t i = 0; i < kN; ++i) {
    const std::uint32_t size = i / kLocal == kN / kLocal ? kN % kLocal : kLocal;  // short last
    ASSERT_EQ(out[i], i % kLocal + 1000 * (i / kLocal) + 1000000 * size) << i;
  }
  std::vector<std::uint32_t> lanes(kN, ~0u);
  dev.launch(program(), "shape_x_in_helper", hetmm::NDRange{kN}, hetmm::NDRange{kLocal},
             lanes.data());
  dev.synchronize();
  for (std::uint32_t i = 0; i < kN; ++i) ASSERT_EQ(lanes[i], i % kLocal) << i;
  std::vector<std::uint32_t> any(kN, ~0u);
  dev.launch(program(), "shape_any", hetmm::NDRange{kN}, hetmm::NDRange{kLocal}, any.data(),
             std::uint32_t{0});
  dev.synchronize();
  for (std::uint32_t i = 0; i < kN; ++i) ASSERT_EQ(any[i], i % kLocal) << i;
}

// A fault in a joined run names the run: the driver cannot know which of its groups faulted.
// (Without the MMU rewrite: the CPU's fault in JIT code, which the driver reports by group.)
TEST(JoinedGroups, AFaultNamesTheRunOfGroups) {
  hetmm::Options o;
  o.policy = hetmm::PolicyProfile::in_place;
  hetmm::Runtime rt(o);
  auto& dev = rt.device(0);
  auto raw = hetmm::Program::from_opencl_c(kSource, "-mmu=off");
  const long page = sysconf(_SC_PAGESIZE);
  const std::size_t n = 64 * 1024, bytes = n * sizeof(int);
  // The buffer's last page is inaccessible: the run of groups over it faults.
  auto* base = static_cast<char*>(
      mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(base, MAP_FAILED);
  ASSERT_EQ(mprotect(base + bytes - page, page, PROT_NONE), 0);
  dev.launch(raw, "add_one", hetmm::NDRange{n}, hetmm::NDRange{64}, reinterpret_cast<int*>(base));
  try {
    dev.synchronize();
    FAIL() << "a kernel touching protected memory must fail";
  } catch (const hetmm::Error& e) {
    EXPECT_EQ(e.code(), hetmm::Errc::fault) << e.what();
    EXPECT_NE(std::string(e.what()).find("one of work-groups ("), std::string::npos) << e.what();
  }
  munmap(base, bytes);
}

}  // namespace
