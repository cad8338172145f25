// Layer spirv: includes every layer.
// The IR passes between the reverse-translated SPIR-V module and the JIT.
//
//   kernel ABI    every defined function gains the hidden parameters (ctx, lx, ly, lz); work-item
//                 built-ins read them; __local variables become slices of the group's arena;
//                 barrier() calls the fiber scheduler; one `__hetmm_run_<kernel>` per kernel
//                 loops over a box of local ids (kernel_abi_pass.cpp)
//   MMU rewrite   every load, store and atomic through a global, constant or generic pointer
//                 gets the inline TLB fast path and a runtime call on miss (mmu_pass.cpp)
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace llvm {
class Function;
class Module;
}  // namespace llvm

namespace hetmm::spirv {

inline constexpr unsigned kHiddenParams = 4;  // ctx, lx, ly, lz (the last parameters)

struct AbiKernel {
  std::string name;         // the kernel's name in the module
  std::string run_symbol;   // __hetmm_run_<name>
  bool uses_barriers = false;
  // Barriers as region loops (barrier_regions.cpp): the runner runs the whole group in one
  // call, with this much private memory per work-item in KernelContext::wi_private. 0: the
  // kernel has no barriers, or its groups run as fibers.
  std::size_t wi_private_bytes = 0;
};
struct AbiResult {
  std::vector<AbiKernel> kernels;
  std::size_t static_local_bytes = 0;  // module-scope __local variables, laid out first
};

// `kernels`: names of the module's kernels (spir_kernel functions, before retargeting).
AbiResult apply_kernel_abi(llvm::Module& m, const std::vector<std::string>& kernels);

// Turns a kernel with barriers into a work-group function (barrier_regions.cpp); returns the
// private bytes per work-item, or 0 when the kernel is left to fibers.
std::size_t form_barrier_regions(llvm::Function& kernel);

// Rewrites device-memory accesses; returns how many accesses it rewrote.
std::size_t apply_mmu_rewrite(llvm::Module& m);

}  // namespace hetmm::spirv
