// Relational built-ins (OpenCL C 6.15.6) that the translator leaves as calls: isnan, isinf,
// isfinite, isnormal, signbit, any, all, select and bitselect. The comparisons (isequal,
// isless, isordered...) come back from SPIR-V as plain fcmp instructions and need nothing here.
//
// Results follow OpenCL: int 1/0 for scalars, -1/0 in a vector of the same element width for
// vectors. A C comparison gives exactly that in both cases, so one body serves all sizes.
#include "builtins.h"

#define HM_CLASSIFY(N, T, IT, UT, SIGN, EXP, MB)                                                 \
  OVL IT##N isnan(T##N x) { return x != x; }                                                     \
  OVL IT##N isinf(T##N x) { return (as_##UT##N(x) & (UT) ~(UT)SIGN) == (UT)EXP; }                \
  OVL IT##N isfinite(T##N x) { return (as_##UT##N(x) & (UT) ~(UT)SIGN) < (UT)EXP; }              \
  /* Normal: biased exponent neither 0 (zero, subnormal) nor all ones (inf, NaN). */             \
  OVL IT##N isnormal(T##N x) {                                                                   \
    UT##N e = as_##UT##N(x) & (UT)EXP;                                                           \
    return (e != (UT)0) & (e != (UT)EXP);                                                        \
  }                                                                                              \
  OVL IT##N signbit(T##N x) { return as_##IT##N(x) < (IT)0; }
// The scalar forms return int whatever the operand width.
#define HM_CLASSIFY_SCALAR(T, IT, UT, SIGN, EXP, MB)                                             \
  OVL int isnan(T x) { return x != x; }                                                          \
  OVL int isinf(T x) { return (as_##UT(x) & (UT) ~(UT)SIGN) == (UT)EXP; }                        \
  OVL int isfinite(T x) { return (as_##UT(x) & (UT) ~(UT)SIGN) < (UT)EXP; }                      \
  OVL int isnormal(T x) {                                                                        \
    UT e = as_##UT(x) & (UT)EXP;                                                                 \
    return e != (UT)0 && e != (UT)EXP;                                                           \
  }                                                                                              \
  OVL int signbit(T x) { return as_##IT(x) < (IT)0; }
#define HM_CLASSIFY_T(T, IT, UT, SIGN, EXP, MB)                                                  \
  HM_CLASSIFY_SCALAR(T, IT, UT, SIGN, EXP, MB)                                                   \
  HM_VSIZES(HM_CLASSIFY, T, IT, UT, SIGN, EXP, MB)
HM_FLOAT_TYPES(HM_CLASSIFY_T)

// any/all test the most significant bit of each component. The translator passes the result
// of a vector comparison as a char vector (sign-extended, -1/0), e.g. _Z3anyDv4_c, so the
// char forms are the ones kernels reach; every signed type is defined for completeness.
#define HM_ANY_ALL(N, T)                                                                         \
  OVL int any(T##N x) { return __builtin_reduce_or(x) < (T)0; }                                  \
  OVL int all(T##N x) { return __builtin_reduce_and(x) < (T)0; }
#define HM_ANY_ALL_SCALAR(T)                                                                     \
  OVL int any(T x) { return x < (T)0; }                                                          \
  OVL int all(T x) { return x < (T)0; }                                                          \
  HM_VSIZES(HM_ANY_ALL, T)
HM_ANY_ALL_SCALAR(char)
HM_ANY_ALL_SCALAR(short)
HM_ANY_ALL_SCALAR(int)
HM_ANY_ALL_SCALAR(long)

// bitselect: each result bit from b where c has a 1, else from a.
#define HM_BITSELECT(N, T, UT)                                                                   \
  OVL T##N bitselect(T##N a, T##N b, T##N c) {                                                   \
    UT##N uc = as_##UT##N(c);                                                                    \
    return as_##T##N((UT##N)((as_##UT##N(a) & ~uc) | (as_##UT##N(b) & uc)));                     \
  }
#define HM_BITSELECT_T(T, UT) HM_SIZES(HM_BITSELECT, T, UT)
HM_INT_TYPES(HM_BITSELECT_T)
HM_BITSELECT_T(half, ushort)
HM_BITSELECT_T(float, uint)
HM_BITSELECT_T(double, ulong)

// select: scalars pick b when c is non-zero; vectors pick b per component when the MSB of c
// is set. The mask may be signed or unsigned of the data's element width.
#define HM_SELECT_V(N, T, ST, UT)                                                                \
  OVL T##N select(T##N a, T##N b, ST##N c) { return c < (ST)0 ? b : a; }                         \
  OVL T##N select(T##N a, T##N b, UT##N c) { return as_##ST##N(c) < (ST)0 ? b : a; }
#define HM_SELECT_T(T, ST, UT)                                                                   \
  OVL T select(T a, T b, ST c) { return c ? b : a; }                                             \
  OVL T select(T a, T b, UT c) { return c ? b : a; }                                             \
  HM_VSIZES(HM_SELECT_V, T, ST, UT)
HM_SELECT_T(char, char, uchar)
HM_SELECT_T(uchar, char, uchar)
HM_SELECT_T(short, short, ushort)
HM_SELECT_T(ushort, short, ushort)
HM_SELECT_T(int, int, uint)
HM_SELECT_T(uint, int, uint)
HM_SELECT_T(long, long, ulong)
HM_SELECT_T(ulong, long, ulong)
HM_SELECT_T(half, short, ushort)
HM_SELECT_T(float, int, uint)
HM_SELECT_T(double, long, ulong)
