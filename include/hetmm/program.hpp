// SPIR-V compute kernels (OpenCL C flavour) for hetmm's devices.
//
//   auto prog = hetmm::Program::from_opencl_c(R"(
//       __kernel void scale(__global float* v, float k) { v[get_global_id(0)] *= k; })");
//   std::vector<float> v(1 << 20, 1.0f);
//   rt.device(0).launch(prog, "scale", hetmm::NDRange{v.size()}, hetmm::NDRange{256},
//                       v.data(), 2.0f);
//   rt.device(0).synchronize();
//
// Pointer arguments are process addresses (fine-grain system SVM): any memory the process can
// reach, from malloc, new, std::vector or mmap. Every global, constant and generic access of the
// kernel goes through the device's MMU, exactly as Thread::load/store do.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace hetmm {

// A launch's extent in work-items. dims 0 means: 3 if z > 1, else 2 if y > 1, else 1.
// As the local size, x == 0 lets the runtime choose the work-group size.
struct NDRange {
  std::size_t x = 1, y = 1, z = 1;
  unsigned dims = 0;
};

// A __local kernel argument: its size in bytes (one arena per work-group).
struct LocalMemory {
  std::size_t bytes;
};

// What a kernel argument is, from the kernel's signature.
enum class ArgKind : std::uint8_t {
  global_pointer,    // __global T*   (a process address)
  constant_pointer,  // __constant T* (a process address)
  local_pointer,     // __local T*    (pass LocalMemory)
  value,             // a scalar, vector or struct passed by value
};
const char* to_string(ArgKind kind) noexcept;

struct KernelArgInfo {
  std::string name;       // from the module's debug names, may be empty
  std::string type_name;  // "float*", "int", "float4", ... (OpenCL spelling, when known)
  ArgKind kind;
  std::size_t size;       // bytes the launch must pass (8 for pointers)
};

struct KernelInfo {
  std::string name;
  std::vector<KernelArgInfo> args;
  bool uses_barriers = false;               // work-items of a group run as fibers
  std::array<std::size_t, 3> required_local{0, 0, 0};  // reqd_work_group_size, or zeros
  // How the JIT compiled its work-item loops: per barrier region (or for the one loop of a
  // kernel without barriers), whether the loop over work-items was vectorised and how wide,
  // with LLVM's reasons where it was not. One line each; `hetmm run --explain` prints it.
  std::string vectorization;
};

namespace detail {
class CompiledProgram;

// One launch argument as the caller gave it: its bytes and what it was.
struct LaunchArg {
  enum class Kind : std::uint8_t { pointer, value, local } kind;
  std::size_t size;                  // bytes (for local: the arena size)
  alignas(16) std::array<std::byte, 128> bytes{};
};
template <class T>
LaunchArg make_launch_arg(const T& v) {
  LaunchArg a{};
  if constexpr (std::is_same_v<T, LocalMemory>) {
    a.kind = LaunchArg::Kind::local;
    a.size = v.bytes;
  } else if constexpr (std::is_pointer_v<T> || std::is_null_pointer_v<T>) {
    a.kind = LaunchArg::Kind::pointer;
    a.size = sizeof(void*);
    const void* p = v;
    std::memcpy(a.bytes.data(), &p, sizeof p);
  } else {
    static_assert(std::is_trivially_copyable_v<T>, "kernel arguments must be trivially copyable");
    static_assert(sizeof(T) <= 128, "kernel arguments by value are at most 128 bytes");
    a.kind = LaunchArg::Kind::value;
    a.size = sizeof(T);
    std::memcpy(a.bytes.data(), &v, sizeof(T));
  }
  return a;
}
}  // namespace detail

// A compiled SPIR-V module: its kernels, ready to launch on any device. Cheap to copy (shared).
// Compilation is cached in memory and on disk ($HETMM_CACHE_DIR, else $XDG_CACHE_HOME/hetmm, else
// ~/.cache/hetmm; HETMM_CACHE_DIR=off disables the disk cache), keyed by the module's hash and
// the options.
class Program {
 public:
  // A SPIR-V binary (OpenCL Kernel execution model, Physical64 addressing). Validated first:
  // a bad module is an Error(invalid_argument) naming the offending instruction.
  static Program from_spirv(const void* words, std::size_t bytes,
                            std::string_view build_options = "");
  // OpenCL C source, compiled with clang-15 (like clBuildProgram); the compiler's diagnostics
  // are in the error. Errc::unsupported when clang-15 is not installed.
  static Program from_opencl_c(std::string_view source, std::string_view build_options = "");
  // A file: .spv (SPIR-V) or .cl (OpenCL C).
  static Program from_file(const std::string& path, std::string_view build_options = "");

  std::vector<std::string> kernel_names() const;
  // The kernel's signature; Error(invalid_argument) when the module has no such kernel.
  const KernelInfo& kernel(std::string_view name) const;
  // Build options the program was compiled with ("-mmu=off" turns the MMU rewrite off: for
  // measuring its cost only, as kernels then touch raw process memory).
  const std::string& build_options() const;

  const detail::CompiledProgram& compiled() const { return *impl_; }
  std::shared_ptr<const detail::CompiledProgram> shared() const { return impl_; }
  explicit Program(std::shared_ptr<const detail::CompiledProgram> impl) : impl_(std::move(impl)) {}

 private:
  std::shared_ptr<const detail::CompiledProgram> impl_;
};

}  // namespace hetmm
