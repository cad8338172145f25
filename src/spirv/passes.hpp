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
#include <optional>
#include <string>
#include <vector>

namespace llvm {
class Function;
class Loop;
class LLVMContext;
class MDNode;
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
  // It reads its work-group's local id, group id or size along x (group_shape_x_readers).
  bool reads_group_shape_x = true;
};
struct AbiResult {
  std::vector<AbiKernel> kernels;
  std::size_t static_local_bytes = 0;  // module-scope __local variables, laid out first
};

// Work-item loops (the runner's loop over local ids, each barrier region's innermost loop) carry
// this loop ID: !{self, !{"hetmm.work_items", i32 region}, !{"llvm.loop.parallel_accesses",
// group}}. Copies of a loop (the MMU's
// versions, the vectoriser's vector and remainder loops) keep it, which is how the compile
// report (vectorization_report) finds what became of each region.
inline constexpr const char* kWorkItemLoopMark = "hetmm.work_items";
llvm::MDNode* work_item_loop_id(llvm::LLVMContext& c, unsigned region);
// What a loop's ID says of it: the region and access group of a work-item loop, or nothing.
struct WorkItemMark {
  unsigned region;
  llvm::MDNode* group;  // llvm.loop.parallel_accesses's group
};
std::optional<WorkItemMark> work_item_mark(const llvm::Loop& l);

// `kernels`: names of the module's kernels (spir_kernel functions, before retargeting).
AbiResult apply_kernel_abi(llvm::Module& m, const std::vector<std::string>& kernels);

// Turns a kernel with barriers into a work-group function (barrier_regions.cpp); returns the
// private bytes per work-item, or 0 when the kernel is left to fibers.
std::size_t form_barrier_regions(llvm::Function& kernel);

// Rewrites device-memory accesses; returns how many accesses it rewrote.
std::size_t apply_mmu_rewrite(llvm::Module& m);

// Work-items of a loop over local ids run in no defined order and may not race: their
// accesses to global, constant and __local memory and to their own private arrays (region
// slots) join the loop's access group (llvm.loop.parallel_accesses), so that the vectoriser
// needs neither bounds nor run-time alias checks for them. Run after inlining (the kernel's
// helpers are then inside the loop); other memory accesses (the stack, generic pointers,
// atomics) keep the loop from counting as parallel, which is only a lost optimisation.
void mark_parallel_accesses(llvm::Module& m);

// After optimisation: one line per region of `runner` saying whether its work-item loop was
// vectorised (and how wide) in each copy, from the final IR and LLVM's loop-vectorize remarks
// (`remarks`: their messages for this function). See KernelInfo::vectorization.
std::string vectorization_report(llvm::Function& runner, const std::vector<std::string>& remarks);

}  // namespace hetmm::spirv
