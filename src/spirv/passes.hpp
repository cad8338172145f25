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
};
struct AbiResult {
  std::vector<AbiKernel> kernels;
  std::size_t static_local_bytes = 0;  // module-scope __local variables, laid out first
};

// `kernels`: names of the module's kernels (spir_kernel functions, before retargeting).
AbiResult apply_kernel_abi(llvm::Module& m, const std::vector<std::string>& kernels);

// Rewrites device-memory accesses; returns how many accesses it rewrote.
std::size_t apply_mmu_rewrite(llvm::Module& m);

}  // namespace hetmm::spirv
