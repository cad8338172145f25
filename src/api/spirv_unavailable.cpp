// hetmm built without SPIR-V support (HETMM_SPIRV=OFF: the TSan and fuzz builds): the Program
// API exists and says so. Built only in that configuration (see CMakeLists.txt).
#include "hetmm/hetmm.hpp"

namespace hetmm {
namespace {
[[noreturn]] void unavailable() {
  throw Error(Errc::unsupported, "SPIR-V kernels: this build of hetmm has no SPIR-V support "
                                 "(configured with HETMM_SPIRV=OFF)");
}
}  // namespace

const char* to_string(ArgKind) noexcept { return "?"; }
Program Program::from_spirv(const void*, std::size_t, std::string_view) { unavailable(); }
Program Program::from_opencl_c(std::string_view, std::string_view) { unavailable(); }
Program Program::from_file(const std::string&, std::string_view) { unavailable(); }
std::vector<std::string> Program::kernel_names() const { unavailable(); }
const KernelInfo& Program::kernel(std::string_view) const { unavailable(); }
const std::string& Program::build_options() const { unavailable(); }
void Device::launch_program(const Program&, std::string_view, NDRange, NDRange,
                            std::vector<detail::LaunchArg>) {
  unavailable();
}
void Device::launch_program(const Program&, std::string_view, NDRange, NDRange,
                            std::vector<detail::LaunchArg>, const std::array<std::size_t, 3>&) {
  unavailable();
}
void Device::launch_program(const Program&, std::string_view, NDRange, NDRange,
                            std::vector<detail::LaunchArg>, const std::array<std::size_t, 3>&,
                            Completion) {
  unavailable();
}
}  // namespace hetmm
