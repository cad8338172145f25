// Math functions with a pointer result: fract, frexp, lgamma_r, modf, remquo, sincos.
//
// libclc defines them for float and double through __private, __global and __local pointers.
// OpenCL 2.0 kernels pass generic pointers (opencl-c.h declares only the generic forms there),
// which come back from SPIR-V as e.g. _Z5fractfPU3AS4f: those forms call the private-pointer
// version on a local temporary and store through the generic pointer. lgamma_r and sincos use
// libm (math_libm.cl defines the private forms), so their __global and __local forms are
// replaced the same way. Half precision exists in libclc for none of the address spaces and is
// computed in single precision.
#include "builtins.h"

// The private-pointer overloads, which opencl-c.h does not declare in OpenCL 2.0 mode.
#define HM_PRIVATE_PROTOS(N, T)                                                                  \
  OVL T##N fract(T##N, __private T##N *);                                                        \
  OVL T##N modf(T##N, __private T##N *);                                                         \
  OVL T##N sincos(T##N, __private T##N *);                                                       \
  OVL T##N frexp(T##N, __private int##N *);                                                      \
  OVL T##N lgamma_r(T##N, __private int##N *);                                                   \
  OVL T##N remquo(T##N, T##N, __private int##N *);
HM_SIZES(HM_PRIVATE_PROTOS, float)
HM_SIZES(HM_PRIVATE_PROTOS, double)

// float and double through a generic pointer; lgamma_r and sincos also __global and __local.
#define HM_PTR_LIBM(N, T, AS)                                                                    \
  OVL T##N sincos(T##N x, AS T##N *p) {                                                          \
    T##N t;                                                                                      \
    T##N r = sincos(x, &t);                                                                      \
    *p = t;                                                                                      \
    return r;                                                                                    \
  }                                                                                              \
  OVL T##N lgamma_r(T##N x, AS int##N *p) {                                                      \
    int##N t;                                                                                    \
    T##N r = lgamma_r(x, &t);                                                                    \
    *p = t;                                                                                      \
    return r;                                                                                    \
  }
HM_SIZES(HM_PTR_LIBM, float, __global)
HM_SIZES(HM_PTR_LIBM, float, __local)
HM_SIZES(HM_PTR_LIBM, float, __generic)
HM_SIZES(HM_PTR_LIBM, double, __global)
HM_SIZES(HM_PTR_LIBM, double, __local)
HM_SIZES(HM_PTR_LIBM, double, __generic)
#define HM_PTR_GENERIC(N, T)                                                                     \
  OVL T##N fract(T##N x, __generic T##N *p) {                                                    \
    T##N t;                                                                                      \
    T##N r = fract(x, &t);                                                                       \
    *p = t;                                                                                      \
    return r;                                                                                    \
  }                                                                                              \
  OVL T##N modf(T##N x, __generic T##N *p) {                                                     \
    T##N t;                                                                                      \
    T##N r = modf(x, &t);                                                                        \
    *p = t;                                                                                      \
    return r;                                                                                    \
  }                                                                                              \
  OVL T##N frexp(T##N x, __generic int##N *p) {                                                  \
    int##N t;                                                                                    \
    T##N r = frexp(x, &t);                                                                       \
    *p = t;                                                                                      \
    return r;                                                                                    \
  }                                                                                              \
  OVL T##N remquo(T##N x, T##N y, __generic int##N *p) {                                         \
    int##N t;                                                                                    \
    T##N r = remquo(x, y, &t);                                                                   \
    *p = t;                                                                                      \
    return r;                                                                                    \
  }
HM_SIZES(HM_PTR_GENERIC, float)
HM_SIZES(HM_PTR_GENERIC, double)

// Half precision, every address space. fract is clamped below 1 again after rounding: the
// float result 0x1.fffffep-1 of a tiny negative x would round up to 1.0 in half.
#define HM_F(N, x) HM_CV(N, x, float)
#define HM_H(N, x) HM_CV(N, x, half)
#define HM_PTR_HALF(N, AS)                                                                       \
  OVL half##N fract(half##N x, AS half##N *p) {                                                  \
    float##N t;                                                                                  \
    half##N r = HM_H(N, fract(HM_F(N, x), &t));                                                  \
    *p = HM_H(N, t);                                                                             \
    return fmin(r, (half##N)0x1.ffcp-1h);                                                        \
  }                                                                                              \
  OVL half##N modf(half##N x, AS half##N *p) {                                                   \
    float##N t;                                                                                  \
    half##N r = HM_H(N, modf(HM_F(N, x), &t));                                                   \
    *p = HM_H(N, t);                                                                             \
    return r;                                                                                    \
  }                                                                                              \
  OVL half##N sincos(half##N x, AS half##N *p) {                                                 \
    float##N t;                                                                                  \
    half##N r = HM_H(N, sincos(HM_F(N, x), &t));                                                 \
    *p = HM_H(N, t);                                                                             \
    return r;                                                                                    \
  }                                                                                              \
  OVL half##N frexp(half##N x, AS int##N *p) {                                                   \
    int##N t;                                                                                    \
    half##N r = HM_H(N, frexp(HM_F(N, x), &t));                                                  \
    *p = t;                                                                                      \
    return r;                                                                                    \
  }                                                                                              \
  OVL half##N lgamma_r(half##N x, AS int##N *p) {                                                \
    int##N t;                                                                                    \
    half##N r = HM_H(N, lgamma_r(HM_F(N, x), &t));                                               \
    *p = t;                                                                                      \
    return r;                                                                                    \
  }                                                                                              \
  OVL half##N remquo(half##N x, half##N y, AS int##N *p) {                                       \
    int##N t;                                                                                    \
    half##N r = HM_H(N, remquo(HM_F(N, x), HM_F(N, y), &t));                                     \
    *p = t;                                                                                      \
    return r;                                                                                    \
  }
HM_SIZES(HM_PTR_HALF, __private)
HM_SIZES(HM_PTR_HALF, __global)
HM_SIZES(HM_PTR_HALF, __local)
HM_SIZES(HM_PTR_HALF, __generic)
