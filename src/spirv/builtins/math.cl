// Math functions that map onto LLVM intrinsics or exact bit manipulation, for half, float and
// double, scalar and vector. libclc leaves exactly these undefined ("native" operations that a
// GPU backend lowers itself) and calls them from its own code (its pown calls fabs, its
// geometric functions mad and sqrt...), so they are both kernel-visible built-ins and libclc's
// back end.
//
// Accuracy: everything here is exact or correctly rounded except rsqrt, 1/sqrt(x) with two
// roundings (OpenCL allows 3 ulp for sqrt, 2 for rsqrt). llvm.sqrt and llvm.fma are correctly
// rounded, and llvm.fma stays a real fused multiply-add even where the CPU has no FMA unit (it
// then becomes a call to libm's fmaf/fma). mad may be fused or not (OpenCL leaves its rounding
// open): llvm.fmuladd lets the backend use an FMA instruction when there is one, so results
// can differ in the last bits from an implementation that does not fuse (PoCL's mad, dot).
#include "builtins.h"

// ---- Overrides of libclc's configuration hooks --------------------------------------------
// libclc's SPIR-V build answers "no" to these (a conservative GPU default) and then flushes
// subnormal results (ldexp, rootn, remquo) and emulates fma in software. The host CPU has
// IEEE subnormals and llvm.fma is exact, so say yes: results then match a full-IEEE reference
// such as PoCL. Linked over libclc's definitions (llvm-link --override).
bool __clc_fp32_subnormals_supported(void) { return true; }
bool __clc_fp64_subnormals_supported(void) { return true; }
bool __clc_runtime_has_hw_fma32(void) { return true; }

// ---- Functions that work on scalars and vectors alike ---------------------------------------
#define HM_ELEMENTWISE(N, T, IT, UT, SIGN, EXP, MB)                                              \
  OVL T##N fabs(T##N x) { return __builtin_elementwise_abs(x); }                                 \
  OVL T##N ceil(T##N x) { return __builtin_elementwise_ceil(x); }                                \
  OVL T##N floor(T##N x) { return __builtin_elementwise_floor(x); }                              \
  OVL T##N trunc(T##N x) { return __builtin_elementwise_trunc(x); }                              \
  /* rint rounds in the current mode, which OpenCL fixes to round-to-nearest-even. */            \
  OVL T##N rint(T##N x) { return __builtin_elementwise_roundeven(x); }                           \
  /* round: halfway cases away from zero. x - trunc(x) is exact, so the test is exact. */        \
  OVL T##N round(T##N x) {                                                                       \
    T##N t = trunc(x);                                                                           \
    return fabs(x - t) >= (T)0.5 ? t + copysign((T##N)1, x) : t;                                 \
  }                                                                                              \
  OVL T##N rsqrt(T##N x) { return (T)1 / sqrt(x); }                                              \
  OVL T##N mad(T##N a, T##N b, T##N c) {                                                         \
    _Pragma("OPENCL FP_CONTRACT ON") return a * b + c;                                           \
  }                                                                                              \
  /* fmin/fmax: IEEE minNum/maxNum (a NaN operand yields the other operand). */                  \
  OVL T##N fmin(T##N x, T##N y) { return __builtin_elementwise_min(x, y); }                      \
  OVL T##N fmax(T##N x, T##N y) { return __builtin_elementwise_max(x, y); }                      \
  OVL T##N fdim(T##N x, T##N y) {                                                                \
    T##N r = x > y ? x - y : (T##N)0;                                                            \
    return ((x != x) | (y != y)) ? x + y : r; /* NaN in, NaN out */                              \
  }                                                                                              \
  OVL T##N maxmag(T##N x, T##N y) {                                                              \
    T##N ax = fabs(x), ay = fabs(y);                                                             \
    return ax > ay ? x : (ay > ax ? y : fmax(x, y));                                             \
  }                                                                                              \
  OVL T##N minmag(T##N x, T##N y) {                                                              \
    T##N ax = fabs(x), ay = fabs(y);                                                             \
    return ax < ay ? x : (ay < ax ? y : fmin(x, y));                                             \
  }                                                                                              \
  OVL T##N copysign(T##N x, T##N y) {                                                            \
    return as_##T##N((UT##N)((as_##UT##N(x) & (UT) ~(UT)SIGN) | (as_##UT##N(y) & (UT)SIGN)));  \
  }                                                                                              \
  /* A quiet NaN carrying the low mantissa bits of the code as payload. */                       \
  OVL T##N nan(UT##N code) {                                                                     \
    UT quiet = (UT)1 << (MB - 1);                                                                \
    return as_##T##N((UT##N)((UT##N)((UT)EXP | quiet) | (code & (UT)(quiet - 1))));            \
  }                                                                                              \
  /* nextafter on the integer image of the value, reordered so that integer order is value     \
     order (negative values map to MIN - bits, so -0 and +0 both map to 0). */                   \
  OVL T##N nextafter(T##N x, T##N y) {                                                           \
    IT##N ix = as_##IT##N(x);                                                                    \
    IT##N ox = (IT##N)(ix < (IT)0 ? (IT##N)((IT)SIGN - ix) : ix);                               \
    ox = y > x ? (IT##N)(ox + (IT)1) : (IT##N)(ox - (IT)1);                                      \
    IT##N rb = (IT##N)(ox < (IT)0 ? (IT##N)((IT)SIGN - ox) : ox);                                \
    /* Stepping to zero keeps the sign of x: nextafter(-min_subnormal, 0) is -0. */              \
    rb = ox == (IT)0 ? (IT##N)(ix & (IT)SIGN) : rb;                                              \
    T##N r = x == y ? y : as_##T##N(rb);                                                         \
    return ((x != x) | (y != y)) ? x + y : r;                                                    \
  }
#define HM_ELEMENTWISE_T(T, IT, UT, SIGN, EXP, MB) HM_SIZES(HM_ELEMENTWISE, T, IT, UT, SIGN, EXP, MB)
HM_FLOAT_TYPES(HM_ELEMENTWISE_T)

// ---- sqrt and fma: scalar intrinsics, vectors per lane ---------------------------------------
OVL float sqrt(float x) { return __builtin_sqrtf(x); }
OVL double sqrt(double x) { return __builtin_sqrt(x); }
// llvm.sqrt.f16 is computed in single precision and rounded once more; for sqrt that double
// rounding is harmless (24 >= 2 * 11 + 2 bits), so the result is correctly rounded.
OVL half sqrt(half x) { return __builtin_sqrtf16(x); }
HM_SPLIT1(sqrt, float, float)
HM_SPLIT1(sqrt, double, double)
HM_SPLIT1(sqrt, half, half)

OVL float fma(float a, float b, float c) { return __builtin_fmaf(a, b, c); }
OVL double fma(double a, double b, double c) { return __builtin_fma(a, b, c); }
// Half fma must be correctly rounded too, but llvm.fma.f16 on x86 is a float fma rounded again
// to half, which can round twice in the wrong direction. Here a*b is exact in double; the sum
// is rounded to odd (kept sticky in the last bit when inexact) so that the final rounding to
// half, 42 bits further up, is the only one that counts.
OVL half fma(half a, half b, half c) {
  double p = (double)a * (double)b;  // exact: 22 significant bits
  double cd = (double)c;
  double s = p + cd;
  double bb = s - p;  // TwoSum: s + e == p + c exactly
  double e = (p - (s - bb)) + (cd - bb);
  ulong bits = as_ulong(s);
  if (e != 0.0 && (bits & 1) == 0 && s == s && !isinf(s)) {
    // Move s one ulp towards the exact value; the result has an odd last bit.
    bits = ((e > 0.0) == (s > 0.0)) ? bits + 1 : bits - 1;
    s = as_double(bits);
  }
  return (half)s;
}
HM_SPLIT3(fma, float, float, float, float)
HM_SPLIT3(fma, double, double, double, double)
HM_SPLIT3(fma, half, half, half, half)

// libclc's half-precision ldexp calls this helper, which libclc's SPIR-V build does not define
// (math_libm.cl replaces that ldexp anyway).
OVL half __clc_ldexp(half x, int n) { return ldexp(x, n); }
