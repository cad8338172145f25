// Layer spirv: includes every layer.
// The OpenCL C built-in library (LLVM bitcode), embedded in libhetmm by cmake/spirv_builtins.cmake.
#pragma once
extern "C" const char hetmm_builtins_bc[];
extern "C" const char hetmm_builtins_bc_end[];
