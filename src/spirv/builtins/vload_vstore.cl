// vloadN/vstoreN and vload_half/vstore_half through generic pointers (OpenCL 2.0), and
// vstore_half for every address space.
//
// libclc defines these for the named address spaces (private, global, local, constant) only.
// In OpenCL 2.0 opencl-c.h declares just the generic and __constant forms, so a CL2.0 kernel's
// vload4(i, global_ptr) comes back from SPIR-V as _Z6vload4mPU3AS4Kf.
//
// vloadN/vstoreN only require element alignment, so the access goes through a vector type
// whose alignment is lowered to the element's: one (possibly unaligned) vector load or store.
// Size 3 is done per element: a 4-wide access could touch memory past the last element.
#include "builtins.h"

#define HM_VTYPES(N, T) typedef T hm_##T##N##_u __attribute__((ext_vector_type(N), aligned(sizeof(T))));
#define HM_VTYPES_T(T)                                                                           \
  HM_VTYPES(2, T) HM_VTYPES(4, T) HM_VTYPES(8, T) HM_VTYPES(16, T)
HM_ALL_TYPES(HM_VTYPES_T)

#define HM_VLOAD(N, T)                                                                           \
  OVL T##N vload##N(size_t i, const __generic T *p) {                                            \
    return *(const __generic hm_##T##N##_u *)(p + i * N);                                        \
  }                                                                                              \
  OVL void vstore##N(T##N v, size_t i, __generic T *p) {                                         \
    *(__generic hm_##T##N##_u *)(p + i * N) = v;                                                 \
  }
#define HM_VLOAD_T(T)                                                                            \
  HM_VLOAD(2, T) HM_VLOAD(4, T) HM_VLOAD(8, T) HM_VLOAD(16, T)                                   \
  OVL T##3 vload3(size_t i, const __generic T *p) {                                              \
    const __generic T *q = p + i * 3;                                                            \
    return (T##3)(q[0], q[1], q[2]);                                                             \
  }                                                                                              \
  OVL void vstore3(T##3 v, size_t i, __generic T *p) {                                           \
    __generic T *q = p + i * 3;                                                                  \
    q[0] = v.s0;                                                                                 \
    q[1] = v.s1;                                                                                 \
    q[2] = v.s2;                                                                                 \
  }
HM_ALL_TYPES(HM_VLOAD_T)

// vload_half: half values widened to float (exact). vloada_half requires the alignment of the
// whole vector (sizeof(halfN), with half3 taking the room of half4), vload_half only 2 bytes.
OVL float vload_half(size_t i, const __generic half *p) { return (float)p[i]; }
OVL float vloada_half(size_t i, const __generic half *p) { return (float)p[i]; }
#define HM_VLOAD_HALF(N, ...)                                                                    \
  OVL float##N vload_half##N(size_t i, const __generic half *p) {                                \
    return __builtin_convertvector(*(const __generic hm_half##N##_u *)(p + i * N), float##N);     \
  }                                                                                              \
  OVL float##N vloada_half##N(size_t i, const __generic half *p) {                               \
    return __builtin_convertvector(*(const __generic half##N *)(p + i * N), float##N);           \
  }
HM_VLOAD_HALF(2)
HM_VLOAD_HALF(4)
HM_VLOAD_HALF(8)
HM_VLOAD_HALF(16)
OVL float3 vload_half3(size_t i, const __generic half *p) {
  const __generic half *q = p + i * 3;
  return (float3)(q[0], q[1], q[2]);
}
OVL float3 vloada_half3(size_t i, const __generic half *p) {
  const __generic half *q = p + i * 4;
  return (float3)(q[0], q[1], q[2]);
}

// vstore_half[N][_rte|_rtz|_rtp|_rtn] from float and double: the rounding is done by the
// convert_half*_<mode> functions of convert.cl (vstore_half without a suffix rounds to nearest
// even, like a plain conversion). These replace libclc's for every address space: libclc's
// vector forms round tiny values wrongly (vstore_half_rtn(-1e-30f) gives -0 instead of the
// smallest negative subnormal, vstorea_half3_rtp of a tiny positive value 0).
#define HM_VSTORE_HALF_MODE(N, T, SUFFIX, MODE, AS)                                                  \
  OVL void vstore_half##N##SUFFIX(T##N v, size_t i, AS half *p) {                         \
    *(AS hm_half##N##_u *)(p + i * N) = convert_half##N##MODE(v);                         \
  }                                                                                              \
  OVL void vstorea_half##N##SUFFIX(T##N v, size_t i, AS half *p) {                        \
    *(AS half##N *)(p + i * N) = convert_half##N##MODE(v);                                \
  }
#define HM_VSTORE_HALF_SCALAR(T, SUFFIX, MODE, AS)                                                   \
  OVL void vstore_half##SUFFIX(T v, size_t i, AS half *p) { p[i] = convert_half##MODE(v); } \
  OVL void vstorea_half##SUFFIX(T v, size_t i, AS half *p) {                              \
    p[i] = convert_half##MODE(v);                                                                \
  }                                                                                              \
  OVL void vstore_half3##SUFFIX(T##3 v, size_t i, AS half *p) {                           \
    half3 h = convert_half3##MODE(v);                                                            \
    AS half *q = p + i * 3;                                                               \
    q[0] = h.s0;                                                                                 \
    q[1] = h.s1;                                                                                 \
    q[2] = h.s2;                                                                                 \
  }                                                                                              \
  OVL void vstorea_half3##SUFFIX(T##3 v, size_t i, AS half *p) {                          \
    half3 h = convert_half3##MODE(v);                                                            \
    AS half *q = p + i * 4;                                                               \
    q[0] = h.s0;                                                                                 \
    q[1] = h.s1;                                                                                 \
    q[2] = h.s2;                                                                                 \
  }                                                                                              \
  HM_VSTORE_HALF_MODE(2, T, SUFFIX, MODE, AS)                                                        \
  HM_VSTORE_HALF_MODE(4, T, SUFFIX, MODE, AS)                                                        \
  HM_VSTORE_HALF_MODE(8, T, SUFFIX, MODE, AS)                                                        \
  HM_VSTORE_HALF_MODE(16, T, SUFFIX, MODE, AS)
#define HM_VSTORE_HALF_T(T, AS)                                                                  \
  HM_VSTORE_HALF_SCALAR(T, , _rte, AS)                                                           \
  HM_VSTORE_HALF_SCALAR(T, _rte, _rte, AS)                                                       \
  HM_VSTORE_HALF_SCALAR(T, _rtz, _rtz, AS)                                                       \
  HM_VSTORE_HALF_SCALAR(T, _rtp, _rtp, AS)                                                       \
  HM_VSTORE_HALF_SCALAR(T, _rtn, _rtn, AS)
#define HM_VSTORE_HALF_AS(AS) HM_VSTORE_HALF_T(float, AS) HM_VSTORE_HALF_T(double, AS)
HM_VSTORE_HALF_AS(__private)
HM_VSTORE_HALF_AS(__global)
HM_VSTORE_HALF_AS(__local)
HM_VSTORE_HALF_AS(__generic)
