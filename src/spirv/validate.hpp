// Layer spirv: includes every layer.
// SPIR-V validation before translation: libLLVMSPIRVLib (Debian's build has assertions on)
// aborts the process on some malformed modules, so nothing reaches it unvalidated.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hetmm::spirv {

// Throws Error(invalid_argument) with SPIRV-Tools' diagnostics (the offending instruction and
// its word offset) when the module is not valid SPIR-V, or is not an OpenCL kernel module
// with Physical64 addressing.
void validate_module(const std::uint32_t* words, std::size_t count);

}  // namespace hetmm::spirv
