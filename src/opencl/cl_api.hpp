// Layer opencl: includes every layer.
// The OpenCL headers as the ICD sees them: the 3.0 API with every deprecated entry point declared
// (the loader's dispatch table has slots for all of them).
#pragma once

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 300
#endif
#define CL_USE_DEPRECATED_OPENCL_1_0_APIS
#define CL_USE_DEPRECATED_OPENCL_1_1_APIS
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#define CL_USE_DEPRECATED_OPENCL_2_0_APIS
#define CL_USE_DEPRECATED_OPENCL_2_1_APIS
#define CL_USE_DEPRECATED_OPENCL_2_2_APIS

#include <CL/cl.h>
#include <CL/cl_ext.h>
#include <CL/cl_icd.h>

// Every entry point is defined with its standard name, but the library exports only the ICD's
// own (src/opencl/exports.map): the loader reaches the rest through the dispatch table, and a
// program cannot bypass the loader's platform selection by linking libhetmm_opencl directly.
#define HETMM_CL_EXPORT extern "C"
