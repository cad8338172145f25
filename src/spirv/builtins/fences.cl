// Memory fences. The translator maps mem_fence, read_mem_fence, write_mem_fence and
// atomic_work_item_fence all to OpMemoryBarrier, which comes back as _Z9mem_fencej; the other
// names are defined for OpenCL C compiled directly against this library. Work-items may run on
// different host threads, so a fence must order memory for the CPU as well as the compiler:
// a sequentially consistent fence (mfence on x86) covers every flag combination.
#include "builtins.h"

OVL void mem_fence(cl_mem_fence_flags flags) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
OVL void read_mem_fence(cl_mem_fence_flags flags) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
OVL void write_mem_fence(cl_mem_fence_flags flags) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
