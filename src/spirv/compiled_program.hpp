// Layer spirv: includes every layer.
// A compiled program: its kernels' signatures and the JIT'd work-group runners.
#pragma once

#include <map>

#include "hetmm/program.hpp"
#include "spirv/kernel_context.hpp"

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace hetmm::detail {

class CompiledProgram {
 public:
  // void __hetmm_run_<k>(ctx, args, x0, x1, y0, y1, z0, z1): the kernel for every local id in
  // [x0,x1) x [y0,y1) x [z0,z1) of the group described by ctx.
  using RunFn = void (*)(spirv::KernelContext* ctx, void** args, std::uint64_t x0,
                         std::uint64_t x1, std::uint64_t y0, std::uint64_t y1, std::uint64_t z0,
                         std::uint64_t z1);
  struct Kernel {
    KernelInfo info;
    RunFn run = nullptr;
    // Barriers as region loops: the runner runs the whole group with this much private memory
    // per work-item; 0 with uses_barriers: fibers.
    std::size_t wi_private_bytes = 0;
    // Runs of its groups along x may run as one loop (kernel_abi_pass.cpp,
    // group_shape_x_readers): no barriers, and it reads no group shape along x.
    bool joins_x_groups = false;
  };

  std::string options;
  bool mmu = true;
  std::size_t static_local_bytes = 0;  // module-scope __local variables, first in the arena
  std::size_t mmu_accesses = 0;        // accesses the MMU rewrite routed through the TLB
  std::vector<Kernel> kernels;
  std::shared_ptr<void> jit;           // owns the code

  const Kernel* find(std::string_view name) const {
    for (const Kernel& k : kernels)
      if (k.info.name == name) return &k;
    return nullptr;
  }
};

}  // namespace hetmm::detail

namespace hetmm::spirv {

// Whether a build option is the JIT's (-mmu=on|off, -O0..-O3) rather than the OpenCL C front
// end's: from_opencl_c passes the JIT's to compile_spirv and the rest to clang.
inline bool is_jit_option(std::string_view o) {
  return o.rfind("-mmu=", 0) == 0 || o == "-O0" || o == "-O1" || o == "-O2" || o == "-O3" ||
         o.rfind("-spec-const=", 0) == 0;
}

// SPIR-V words to a compiled program (validated, translated, rewritten, JIT-compiled).
std::shared_ptr<const detail::CompiledProgram> compile_spirv(const std::uint32_t* words,
                                                             std::size_t count,
                                                             std::string_view options);
// What SPIR-V cannot carry of a kernel's signature, as the source spelled it: per kernel, per
// argument, the type ("uint4*": SPIR-V integers have no sign) and its qualifiers ("const").
struct SourceArg {
  std::string type, qualifiers;
};
using SourceSignatures = std::map<std::string, std::vector<SourceArg>>;

// OpenCL C source to SPIR-V words with clang-15 and llvm-spirv-15; with `signatures`, also the
// kernels' source-level argument types (from clang's kernel_arg_type metadata).
std::vector<std::uint32_t> opencl_c_to_spirv(std::string_view source, std::string_view options,
                                             SourceSignatures* signatures = nullptr);
// Whether a program (clang-15, llvm-spirv-15, spirv-link) is on PATH, executable.
bool tool_on_path(const char* name);
// Runs argv (a program on PATH) with stdout and stderr appended to the file `log`; returns the
// exit status, 128 + the signal, or -1 with *spawn_errno when it could not start. posix_spawn
// (vfork semantics: no pthread_atfork handlers run). The compilers run this way: a crash of
// theirs cannot take the caller's process down.
int run_tool(const std::vector<std::string>& argv, const std::string& log, int* spawn_errno);

// A SPIR-V module's specialization constants: (SpecId, size in bytes) each. Their values are
// build options: -spec-const=ID:VALUE (compile_spirv).
std::vector<std::pair<std::uint32_t, std::uint32_t>> spec_constants(const std::uint32_t* words,
                                                                      std::size_t count);
// The kernel_arg_type / kernel_arg_type_qual metadata of an LLVM bitcode module.
SourceSignatures source_signatures(const std::string& bitcode);

}  // namespace hetmm::spirv
