// Layer opencl: includes every layer.
// What the platform's devices are: limits shared by the device queries and the entry points
// that check against them, and the configuration read from the environment (platform.cpp).
#pragma once

#include "opencl/cl_api.hpp"

#include "hetmm/hetmm.hpp"

#include <cstdint>
#include <string>

namespace hetmm::opencl {

// The SPIR-V launcher's limits (src/spirv/kernel_driver.cpp: kMaxGroupItems, kMaxLocalBytes).
constexpr std::size_t kMaxWorkGroupSize = 1024;
constexpr std::uint64_t kLocalMemBytes = std::uint64_t{1} << 20;
// Buffers start on 128-byte boundaries; sub-buffer origins must be multiples of it.
constexpr std::size_t kBaseAddrAlignBytes = 128;
// Work-groups of a multiple of 8 items keep the JIT's work-item loops whole vectors.
constexpr std::size_t kPreferredGroupMultiple = 8;

struct DeviceLimits {
  std::uint64_t global_mem = 0;  // what kernels can address: the machine's memory (system SVM)
  std::uint64_t max_alloc = 0;
};
DeviceLimits device_limits();

const hetmm::Options& configured_options();
const std::string& configured_link();
// "device 0: 256 MiB device memory, 2 workers, policy hetmm, link pcie4, tracking userfaultfd"
std::string device_description(cl_device_id d);
// Nothing migrates (mprotect tracking with hetmm's hooks behind libc's: platform.cpp).
bool migrations_off();
bool compiler_available();  // clang-15 and llvm-spirv-15 on PATH
bool linker_available();    // spirv-link on PATH

}  // namespace hetmm::opencl
