// Layer opencl: includes every layer.
// What an OpenCL program's memory did on hetmm, written when the process exits: HETMM_TRACE's
// Chrome trace and HETMM_REPORT's table (per device: kernels, bytes, faults, migrations each
// way, evictions, CPU fault-backs, and the modeled time under each link profile).
#pragma once

#include "hetmm/hetmm.hpp"

#include <cstdio>
#include <string>

namespace hetmm::opencl {

// The report's text for the runtime's devices now.
std::string memory_report(hetmm::Runtime& rt, const std::string& link_name);
void write_exit_outputs(hetmm::Runtime& rt, const std::string& trace_file, bool report,
                        const std::string& link_name);

}  // namespace hetmm::opencl
