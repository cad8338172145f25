// Generic address space queries (OpenCL 2.0).
//
// to_global, to_local and to_private come back from SPIR-V as calls to the unmangled
// __to_global, __to_local and __to_private (i8 addrspace(4)* -> i8 addrspace(1|3|0)*, NULL
// when the pointer is not in that address space). Only the runtime knows where the work-group's
// __local arena and the work-item stacks are, so hetmm's kernel pass supplies those three, like
// the work-item functions. get_fence is derived from them here.
#include "builtins.h"

OVL cl_mem_fence_flags get_fence(const __generic void *p) {
  return to_local((__generic void *)p) ? CLK_LOCAL_MEM_FENCE : CLK_GLOBAL_MEM_FENCE;
}
OVL cl_mem_fence_flags get_fence(__generic void *p) {
  return to_local(p) ? CLK_LOCAL_MEM_FENCE : CLK_GLOBAL_MEM_FENCE;
}
