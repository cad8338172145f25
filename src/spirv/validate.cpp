#include "spirv/validate.hpp"

#include "hetmm/hetmm.hpp"

#include <spirv-tools/libspirv.hpp>

#include <string>

namespace hetmm::spirv {
namespace {

constexpr std::uint32_t kMagic = 0x07230203;
constexpr std::uint32_t kOpCapability = 17, kOpMemoryModel = 14;
constexpr std::uint32_t kCapabilityKernel = 6, kCapabilityShader = 1;
constexpr std::uint32_t kAddressingPhysical64 = 2, kMemoryModelOpenCL = 2;

[[noreturn]] void reject(const std::string& why) {
  throw Error(Errc::invalid_argument, "SPIR-V module: " + why);
}

// The execution environment this device offers: the OpenCL Kernel model with 64-bit
// physical pointers (process addresses). SPIRV-Tools checks well-formedness; this checks fit.
void check_environment(const std::uint32_t* w, std::size_t n) {
  bool kernel = false, shader = false, memory_model = false;
  for (std::size_t i = 5; i < n;) {
    std::uint32_t op = w[i] & 0xffff, len = w[i] >> 16;
    if (len == 0 || i + len > n) reject("instruction at word " + std::to_string(i) + " overruns the module");
    if (op == kOpCapability && len >= 2) {
      kernel |= w[i + 1] == kCapabilityKernel;
      shader |= w[i + 1] == kCapabilityShader;
    } else if (op == kOpMemoryModel && len >= 3) {
      memory_model = true;
      if (w[i + 1] != kAddressingPhysical64)
        reject("addressing model " + std::to_string(w[i + 1]) +
               " at word " + std::to_string(i) + ": hetmm runs Physical64 modules (process "
               "addresses are 64-bit pointers)");
      if (w[i + 2] != kMemoryModelOpenCL)
        reject("memory model " + std::to_string(w[i + 2]) + " at word " + std::to_string(i) +
               ": hetmm runs OpenCL-flavour modules (OpMemoryModel Physical64 OpenCL)");
    }
    i += len;
  }
  if (!kernel || shader)
    reject("not an OpenCL kernel module (needs OpCapability Kernel, no Shader capability)");
  if (!memory_model) reject("no OpMemoryModel");
}

}  // namespace

void validate_module(const std::uint32_t* words, std::size_t count) {
  if (words == nullptr || count == 0) reject("empty");
  if (count < 5) reject(std::to_string(count) + " words is shorter than the 5-word header");
  if (words[0] != kMagic) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "bad magic number 0x%08x (expected 0x07230203)", words[0]);
    reject(buf);
  }
  std::string diagnostics;
  spvtools::SpirvTools tools(SPV_ENV_UNIVERSAL_1_6);
  tools.SetMessageConsumer([&](spv_message_level_t level, const char*,
                               const spv_position_t& position, const char* message) {
    if (level > SPV_MSG_WARNING) return;
    if (!diagnostics.empty()) diagnostics += "\n";
    diagnostics += "word " + std::to_string(position.index) + ": " + message;
  });
  if (!tools.Validate(words, count)) reject("invalid:\n" + diagnostics);
  check_environment(words, count);
}

}  // namespace hetmm::spirv
