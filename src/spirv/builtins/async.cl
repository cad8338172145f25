// Asynchronous work-group copies, prefetch and event waits: the forms libclc lacks.
//
// libclc implements async_work_group_(strided_)copy for every type except the 3-component
// vectors by splitting the elements over the work-group's work-items, and wait_group_events as
// a work-group barrier; the vec3 copies below do the same. The translator turns every copy into
// the strided form (async_work_group_copy is a stride-1 strided copy).
//
// The work-item functions (get_local_id, get_local_size) and barrier are supplied by hetmm's
// kernel pass, not by this library. This file keeps clang's convergent attribute: it calls
// barrier.
#include "builtins.h"

static size_t hm_local_linear_id(void) {
  return (get_local_id(2) * get_local_size(1) + get_local_id(1)) * get_local_size(0) +
         get_local_id(0);
}
static size_t hm_local_items(void) {
  return get_local_size(0) * get_local_size(1) * get_local_size(2);
}

#define HM_ASYNC3(T)                                                                             \
  OVL event_t async_work_group_strided_copy(__local T##3 *dst, const __global T##3 *src,         \
                                            size_t n, size_t stride, event_t e) {                \
    for (size_t i = hm_local_linear_id(); i < n; i += hm_local_items()) dst[i] = src[i * stride]; \
    return e;                                                                                    \
  }                                                                                              \
  OVL event_t async_work_group_strided_copy(__global T##3 *dst, const __local T##3 *src,         \
                                            size_t n, size_t stride, event_t e) {                \
    for (size_t i = hm_local_linear_id(); i < n; i += hm_local_items()) dst[i * stride] = src[i]; \
    return e;                                                                                    \
  }                                                                                              \
  OVL event_t async_work_group_copy(__local T##3 *dst, const __global T##3 *src, size_t n,       \
                                    event_t e) {                                                 \
    return async_work_group_strided_copy(dst, src, n, 1, e);                                     \
  }                                                                                              \
  OVL event_t async_work_group_copy(__global T##3 *dst, const __local T##3 *src, size_t n,       \
                                    event_t e) {                                                 \
    return async_work_group_strided_copy(dst, src, n, 1, e);                                     \
  }
HM_ALL_TYPES(HM_ASYNC3)

// OpenCL 2.0 passes the event list through a generic pointer (_Z17wait_group_eventsiPU3AS49ocl_event).
OVL void wait_group_events(int n, __generic event_t *events) {
  barrier(CLK_LOCAL_MEM_FENCE | CLK_GLOBAL_MEM_FENCE);
}

// prefetch is a hint; the data is read from memory when the kernel accesses it anyway.
#define HM_PREFETCH(N, T) OVL void prefetch(const __global T##N *p, size_t n) {}
#define HM_PREFETCH_T(T) HM_SIZES(HM_PREFETCH, T)
HM_ALL_TYPES(HM_PREFETCH_T)
