// native_* and half_* math functions (float only). OpenCL lets them trade accuracy for speed
// (native_: implementation-defined, half_: at least 11 bits); here they simply call the
// full-precision functions, so results are identical to sin, exp, ... and within the tolerance
// of any reference implementation. libclc already defines half_rsqrt and half_sqrt.
#include "builtins.h"

#define HM_NATIVE1(N, P, F) OVL float##N P##F(float##N x) { return F(x); }
#define HM_NATIVE2(N, P, F) OVL float##N P##F(float##N x, float##N y) { return F(x, y); }
#define HM_NATIVE_COMMON(P)                                                                      \
  HM_SIZES(HM_NATIVE1, P, cos)                                                                   \
  HM_SIZES(HM_NATIVE1, P, exp)                                                                   \
  HM_SIZES(HM_NATIVE1, P, exp10)                                                                 \
  HM_SIZES(HM_NATIVE1, P, exp2)                                                                  \
  HM_SIZES(HM_NATIVE1, P, log)                                                                   \
  HM_SIZES(HM_NATIVE1, P, log10)                                                                 \
  HM_SIZES(HM_NATIVE1, P, log2)                                                                  \
  HM_SIZES(HM_NATIVE1, P, sin)                                                                   \
  HM_SIZES(HM_NATIVE1, P, tan)                                                                   \
  HM_SIZES(HM_NATIVE2, P, powr)
HM_NATIVE_COMMON(native_)
HM_NATIVE_COMMON(half_)
HM_SIZES(HM_NATIVE1, native_, sqrt)
HM_SIZES(HM_NATIVE1, native_, rsqrt)

#define HM_DIVIDE(N, P)                                                                          \
  OVL float##N P##divide(float##N x, float##N y) { return x / y; }                               \
  OVL float##N P##recip(float##N x) { return (float)1 / x; }
HM_SIZES(HM_DIVIDE, native_)
HM_SIZES(HM_DIVIDE, half_)
