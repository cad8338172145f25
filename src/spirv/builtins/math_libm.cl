// The C99 transcendental functions for float and double, computed by the host's libm (glibc)
// rather than by libclc.
//
// libclc's SPIR-V build targets GPUs that flush single-precision subnormals, and it shows:
// exp(-103.0f), erfc(9.36f), fmod(683.0f, 8e-39f) return 0 where the IEEE result is subnormal;
// lgamma(-2e-21f) and tgamma(-87.3f) return inf. glibc's functions are within 1-2 ulp
// (correctly rounded for many) with full subnormal support, far inside OpenCL's tolerances
// (4 ulp for sin, 16 for pow...), and agree with PoCL.
//
// The clang builtins used here become LLVM intrinsics where one exists (llvm.sin.f32,
// llvm.exp.f32, llvm.pow.f32, frem for fmod...), which the backend lowers to the libm call,
// and otherwise a call to the libm function itself (erfcf, tgamma...). Those calls are the
// undefined libm symbols a linked kernel may show; the JIT resolves them in the process. They
// are marked readnone: errno, the only side effect, is invisible to a kernel.
//
// Kept from libclc, which handles subnormals correctly there: the pi-scaled functions (sinpi,
// atan2pi...), powr, pown, rootn, frexp, modf, fract, ilogb, logb, remquo (which OpenCL needs
// with 7 quotient bits, glibc gives 3).
#include "builtins.h"

#define HM_LIBM1(F)                                                                              \
  OVL float F(float x) { return __builtin_##F##f(x); }                                           \
  OVL double F(double x) { return __builtin_##F(x); }                                            \
  HM_SPLIT1(F, float, float)                                                                     \
  HM_SPLIT1(F, double, double)
#define HM_LIBM2(F)                                                                              \
  OVL float F(float x, float y) { return __builtin_##F##f(x, y); }                               \
  OVL double F(double x, double y) { return __builtin_##F(x, y); }                               \
  HM_SPLIT2(F, float, float, float)                                                              \
  HM_SPLIT2(F, double, double, double)

HM_LIBM1(sin)
HM_LIBM1(cos)
HM_LIBM1(tan)
HM_LIBM1(asin)
HM_LIBM1(acos)
HM_LIBM1(atan)
HM_LIBM1(sinh)
HM_LIBM1(cosh)
HM_LIBM1(tanh)
HM_LIBM1(asinh)
HM_LIBM1(acosh)
HM_LIBM1(atanh)
HM_LIBM1(exp)
HM_LIBM1(exp2)
HM_LIBM1(expm1)
HM_LIBM1(log)
HM_LIBM1(log2)
HM_LIBM1(log10)
HM_LIBM1(log1p)
HM_LIBM1(cbrt)
HM_LIBM1(erf)
HM_LIBM1(erfc)
HM_LIBM1(tgamma)
HM_LIBM2(atan2)
HM_LIBM2(pow)
HM_LIBM2(hypot)
HM_LIBM2(fmod)
HM_LIBM2(remainder)

// exp10 has no clang builtin; glibc has exp10f and exp10 (GNU extensions).
float hm_libm_exp10f(float) __asm__("exp10f") __attribute__((const));
double hm_libm_exp10(double) __asm__("exp10") __attribute__((const));
OVL float exp10(float x) { return hm_libm_exp10f(x); }
OVL double exp10(double x) { return hm_libm_exp10(x); }
HM_SPLIT1(exp10, float, float)
HM_SPLIT1(exp10, double, double)

// lgamma_r and sincos through a private pointer (the other address spaces are in math_ptr.cl).
float hm_libm_lgammaf_r(float, __private int *) __asm__("lgammaf_r");
double hm_libm_lgamma_r(double, __private int *) __asm__("lgamma_r");
OVL float lgamma_r(float x, __private int *s) { return hm_libm_lgammaf_r(x, s); }
OVL double lgamma_r(double x, __private int *s) { return hm_libm_lgamma_r(x, s); }
// lgamma through lgamma_r: C's lgamma also writes the global signgam, a data race between
// work-items running on different threads.
OVL float lgamma(float x) {
  int s;
  return hm_libm_lgammaf_r(x, &s);
}
OVL double lgamma(double x) {
  int s;
  return hm_libm_lgamma_r(x, &s);
}
HM_SPLIT1(lgamma, float, float)
HM_SPLIT1(lgamma, double, double)
OVL float sincos(float x, __private float *c) {
  *c = __builtin_cosf(x);
  return __builtin_sinf(x);
}
OVL double sincos(double x, __private double *c) {
  *c = __builtin_cos(x);
  return __builtin_sin(x);
}
#define HM_PTR_SPLIT(T, IT)                                                                      \
  OVL T##2 lgamma_r(T##2 x, __private IT##2 *s) {                                                \
    IT a, b;                                                                                     \
    T##2 r = (T##2)(lgamma_r(x.s0, &a), lgamma_r(x.s1, &b));                                     \
    *s = (IT##2)(a, b);                                                                          \
    return r;                                                                                    \
  }                                                                                              \
  OVL T##3 lgamma_r(T##3 x, __private IT##3 *s) {                                                \
    IT a, b, c;                                                                                  \
    T##3 r = (T##3)(lgamma_r(x.s0, &a), lgamma_r(x.s1, &b), lgamma_r(x.s2, &c));                 \
    *s = (IT##3)(a, b, c);                                                                       \
    return r;                                                                                    \
  }                                                                                              \
  OVL T##2 sincos(T##2 x, __private T##2 *c) {                                                   \
    *c = cos(x);                                                                                 \
    return sin(x);                                                                               \
  }                                                                                              \
  OVL T##3 sincos(T##3 x, __private T##3 *c) {                                                   \
    *c = cos(x);                                                                                 \
    return sin(x);                                                                               \
  }
#define HM_PTR_SPLIT_HALVES(N, H, T, IT)                                                         \
  OVL T##N lgamma_r(T##N x, __private IT##N *s) {                                                \
    IT##H a, b;                                                                                  \
    T##N r = (T##N)(lgamma_r(x.lo, &a), lgamma_r(x.hi, &b));                                     \
    *s = (IT##N)(a, b);                                                                          \
    return r;                                                                                    \
  }                                                                                              \
  OVL T##N sincos(T##N x, __private T##N *c) {                                                   \
    *c = cos(x);                                                                                 \
    return sin(x);                                                                               \
  }
HM_PTR_SPLIT(float, int)
HM_PTR_SPLIT(double, int)
HM_PTR_SPLIT_HALVES(4, 2, float, int)
HM_PTR_SPLIT_HALVES(8, 4, float, int)
HM_PTR_SPLIT_HALVES(16, 8, float, int)
HM_PTR_SPLIT_HALVES(4, 2, double, int)
HM_PTR_SPLIT_HALVES(8, 4, double, int)
HM_PTR_SPLIT_HALVES(16, 8, double, int)

// ldexp: libclc's overflows on large exponents (ldexp(100.0f, INT_MAX) gives 0). In double
// the scaling of a float or half by 2^n (n clamped to where the result is 0 or inf anyway) is
// exact, so the one conversion at the end is the only rounding. double uses libm's scalbn.
double hm_libm_scalbn(double, int) __asm__("scalbn") __attribute__((const));
OVL float ldexp(float x, int n) {
  n = clamp(n, -400, 400);
  return (float)((double)x * as_double((ulong)(n + 1023) << 52));
}
OVL half ldexp(half x, int n) {
  n = clamp(n, -100, 100);
  return (half)((double)x * as_double((ulong)(n + 1023) << 52));
}
OVL double ldexp(double x, int n) { return hm_libm_scalbn(x, n); }
HM_SPLIT2(ldexp, float, float, int)
HM_SPLIT2(ldexp, half, half, int)
HM_SPLIT2(ldexp, double, double, int)
#define HM_LDEXP_VS(N, T) OVL T##N ldexp(T##N x, int n) { return ldexp(x, (int##N)n); }
HM_VSIZES(HM_LDEXP_VS, float)
HM_VSIZES(HM_LDEXP_VS, half)
HM_VSIZES(HM_LDEXP_VS, double)
