// Half-precision forms of the libclc math functions (libclc's SPIR-V build has none of them):
// converted to single precision, computed by libclc's float function and rounded once.
// libclc's float functions are accurate to a few float ulp, far inside the 2-ulp-of-half
// tolerances of cl_khr_fp16, and every half value (subnormals included) is a normal float.
#include "builtins.h"

#define HM_F(N, x) HM_CV(N, x, float)
#define HM_H(N, x) HM_CV(N, x, half)

#define HM_HALF1(N, F) OVL half##N F(half##N x) { return HM_H(N, F(HM_F(N, x))); }
#define HM_HALF2(N, F)                                                                           \
  OVL half##N F(half##N x, half##N y) { return HM_H(N, F(HM_F(N, x), HM_F(N, y))); }
#define HM_HALF_I(N, F)                                                                          \
  OVL half##N F(half##N x, int##N n) { return HM_H(N, F(HM_F(N, x), n)); }
#define HM_EACH_SIZE(M, F) HM_SIZES(M, F)

#define HM_UNARY_LIST(M)                                                                         \
  M(acos) M(acosh) M(acospi) M(asin) M(asinh) M(asinpi) M(atan) M(atanh) M(atanpi) M(cbrt)      \
  M(cos) M(cosh) M(cospi) M(erf) M(erfc) M(exp) M(exp10) M(exp2) M(expm1) M(lgamma) M(log)      \
  M(log10) M(log1p) M(log2) M(logb) M(sin) M(sinh) M(sinpi) M(tan) M(tanh) M(tanpi) M(tgamma)
#define HM_BINARY_LIST(M) M(atan2) M(atan2pi) M(fmod) M(hypot) M(pow) M(powr) M(remainder)

#define HM_U(F) HM_SIZES(HM_HALF1, F)
#define HM_B(F) HM_SIZES(HM_HALF2, F)
HM_UNARY_LIST(HM_U)
HM_BINARY_LIST(HM_B)
HM_SIZES(HM_HALF_I, pown)
HM_SIZES(HM_HALF_I, rootn)

#define HM_ILOGB(N, ...) OVL int##N ilogb(half##N x) { return ilogb(HM_F(N, x)); }
HM_SIZES(HM_ILOGB)
