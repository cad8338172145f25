// Common built-ins (OpenCL C 6.15.4). libclc provides degrees, radians, mix, step, smoothstep
// and sign for float and double; this file adds the floating-point min, max and clamp (which
// libclc leaves undefined and uses itself) and the half-precision forms libclc lacks.
#include "builtins.h"

// max/min/clamp: OpenCL leaves the result undefined for NaN operands (unlike fmax/fmin).
// The plain comparisons are what x86's maxps/minps compute (one instruction, no NaN fix-up),
// and they give what PoCL gives: the second operand when either is NaN.
#define HM_COMMON_MINMAX(N, T)                                                                   \
  OVL T##N max(T##N x, T##N y) { return x > y ? x : y; }                                         \
  OVL T##N min(T##N x, T##N y) { return x < y ? x : y; }                                         \
  OVL T##N clamp(T##N x, T##N lo, T##N hi) { return min(max(x, lo), hi); }
#define HM_COMMON_MINMAX_VS(N, T)                                                                \
  OVL T##N max(T##N x, T y) { return max(x, (T##N)y); }                                          \
  OVL T##N min(T##N x, T y) { return min(x, (T##N)y); }                                          \
  OVL T##N clamp(T##N x, T lo, T hi) { return clamp(x, (T##N)lo, (T##N)hi); }
#define HM_COMMON_MINMAX_T(T)                                                                    \
  HM_SIZES(HM_COMMON_MINMAX, T)                                                                  \
  HM_VSIZES(HM_COMMON_MINMAX_VS, T)
HM_COMMON_MINMAX_T(half)
HM_COMMON_MINMAX_T(float)
HM_COMMON_MINMAX_T(double)

// Half precision. Computing in single precision and rounding once gives results within half
// an ulp of the exact value (better than a chain of half operations, each rounding).
#define HM_TO_F(N, x) HM_CV(N, x, float)
#define HM_TO_H(N, x) HM_CV(N, x, half)
#define HM_COMMON_HALF(N, ...)                                                                      \
  OVL half##N degrees(half##N x) { return HM_TO_H(N, degrees(HM_TO_F(N, x))); }                  \
  OVL half##N radians(half##N x) { return HM_TO_H(N, radians(HM_TO_F(N, x))); }                  \
  OVL half##N step(half##N edge, half##N x) { return x < edge ? (half##N)0 : (half##N)1; }       \
  OVL half##N smoothstep(half##N e0, half##N e1, half##N x) {                                    \
    return HM_TO_H(N, smoothstep(HM_TO_F(N, e0), HM_TO_F(N, e1), HM_TO_F(N, x)));               \
  }                                                                                              \
  /* 1, -1, or x itself for +-0; 0 for NaN. */                                                   \
  OVL half##N sign(half##N x) {                                                                  \
    half##N r = x > (half)0 ? (half##N)1 : (x < (half)0 ? (half##N)-1 : x);                      \
    return x != x ? (half##N)0 : r;                                                              \
  }
HM_SIZES(HM_COMMON_HALF)
#define HM_COMMON_HALF_VS(N, ...)                                                                   \
  OVL half##N step(half edge, half##N x) { return step((half##N)edge, x); }                      \
  OVL half##N smoothstep(half e0, half e1, half##N x) {                                          \
    return smoothstep((half##N)e0, (half##N)e1, x);                                              \
  }
HM_VSIZES(HM_COMMON_HALF_VS)
