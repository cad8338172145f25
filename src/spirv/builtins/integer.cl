// Integer built-ins (OpenCL C 6.15.3) for char..ulong, scalar and vector. libclc leaves all of
// these undefined except rotate (kept) and mad_sat (replaced here). Arithmetic that could
// overflow is done in the unsigned type (wrapping, defined) and converted back.
//
// The translator mangles integer arguments as signed unless the SPIR-V instruction has a
// signed and an unsigned form (s_max/u_max...): popcount(uint) arrives as _Z8popcounti,
// upsample(char, uchar) as _Z8upsamplehh. Defining every overload of opencl-c.h covers both,
// since the results only depend on the bits where the signedness is lost.
#include "builtins.h"

// ---- Functions expressed with vector operations (one body for scalars and vectors) --------
// Note on casts: scalar char/short operands are promoted to int by C's rules, so results are
// cast back to the element type; for vectors the casts are no-ops.
#define HM_INT_ELEMENTWISE(N, T, UT)                                                             \
  OVL UT##N abs(T##N x) {                                                                        \
    UT##N u = as_##UT##N(x);                                                                     \
    return x < (T)0 ? (UT##N)((UT##N)0 - u) : u;                                                 \
  }                                                                                              \
  OVL UT##N abs_diff(T##N x, T##N y) {                                                           \
    UT##N ux = as_##UT##N(x), uy = as_##UT##N(y);                                                \
    return x > y ? (UT##N)(ux - uy) : (UT##N)(uy - ux);                                          \
  }                                                                                              \
  /* (x + y) >> 1 and (x + y + 1) >> 1 without the intermediate overflow. */                     \
  OVL T##N hadd(T##N x, T##N y) { return (T##N)((x >> 1) + (y >> 1) + (x & y & (T)1)); }         \
  OVL T##N rhadd(T##N x, T##N y) { return (T##N)((x >> 1) + (y >> 1) + ((x | y) & (T)1)); }      \
  OVL T##N max(T##N x, T##N y) { return __builtin_elementwise_max(x, y); }                       \
  OVL T##N min(T##N x, T##N y) { return __builtin_elementwise_min(x, y); }                       \
  /* Undefined by OpenCL when lo > hi; this returns min(max(x, lo), hi). */                      \
  OVL T##N clamp(T##N x, T##N lo, T##N hi) { return min(max(x, lo), hi); }                       \
  OVL T##N mad_hi(T##N a, T##N b, T##N c) { return (T##N)(mul_hi(a, b) + c); }
#define HM_INT_ELEMENTWISE_T(T, UT) HM_SIZES(HM_INT_ELEMENTWISE, T, UT)
HM_INT_TYPES(HM_INT_ELEMENTWISE_T)

// ---- Saturating add and subtract -----------------------------------------------------------
// llvm.sadd.sat/uadd.sat... through clang's elementwise builtins, except for scalar char and
// short, which C promotes to int before the builtin sees them (it would then saturate at the int
// range): those add in int and clamp.
#define HM_SAT_ELEMENTWISE(N, T, ...)                                                            \
  OVL T##N add_sat(T##N x, T##N y) { return __builtin_elementwise_add_sat(x, y); }               \
  OVL T##N sub_sat(T##N x, T##N y) { return __builtin_elementwise_sub_sat(x, y); }
#define HM_SAT_NARROW(T, LO, HI)                                                                 \
  OVL T add_sat(T x, T y) { return (T)min(max((int)x + (int)y, LO), HI); }                       \
  OVL T sub_sat(T x, T y) { return (T)min(max((int)x - (int)y, LO), HI); }                       \
  HM_VSIZES(HM_SAT_ELEMENTWISE, T)
HM_SAT_NARROW(char, -128, 127)
HM_SAT_NARROW(uchar, 0, 255)
HM_SAT_NARROW(short, -32768, 32767)
HM_SAT_NARROW(ushort, 0, 65535)
HM_SIZES(HM_SAT_ELEMENTWISE, int)
HM_SIZES(HM_SAT_ELEMENTWISE, uint)
HM_SIZES(HM_SAT_ELEMENTWISE, long)
HM_SIZES(HM_SAT_ELEMENTWISE, ulong)

// mad_sat: libclc has one, but its 64-bit version saturates wrongly (mad_sat(0L, y, 9L) can
// give LONG_MIN). Up to 32 bits the exact result fits the next wider type; 64 bits combine
// the 128-bit product (mul_hi and the low half) with z and check the high half.
#define HM_MAD_SAT(N, T, WT, LO, HI)                                                             \
  OVL T##N mad_sat(T##N x, T##N y, T##N z) {                                                     \
    HM_CAT(WT, N) r = HM_CV(N, x, WT) * HM_CV(N, y, WT) + HM_CV(N, z, WT);                        \
    return HM_CV(N, min(max(r, (WT)LO), (WT)HI), T);                                              \
  }
HM_SIZES(HM_MAD_SAT, char, int, -128, 127)
HM_SIZES(HM_MAD_SAT, uchar, uint, 0, 255)
HM_SIZES(HM_MAD_SAT, short, int, -32768, 32767)
HM_SIZES(HM_MAD_SAT, ushort, uint, 0, 65535)
HM_SIZES(HM_MAD_SAT, int, long, -2147483648L, 2147483647L)
HM_SIZES(HM_MAD_SAT, uint, ulong, 0, 4294967295UL)
OVL ulong mad_sat(ulong x, ulong y, ulong z) {
  ulong lo = x * y, hi = mul_hi(x, y), sum = lo + z;
  hi += sum < lo;  // carry
  return hi != 0 ? ULONG_MAX : sum;
}
OVL long mad_sat(long x, long y, long z) {
  ulong lo = as_ulong(x) * as_ulong(y), sum = lo + as_ulong(z);
  long hi = mul_hi(x, y) + (z < 0 ? -1 : 0) + (sum < lo ? 1 : 0);
  // The 128-bit sum fits in a long when its high half is the sign extension of the low half.
  if (hi == (as_long(sum) < 0 ? -1 : 0)) return as_long(sum);
  return hi < 0 ? LONG_MIN : LONG_MAX;
}
HM_SPLIT3(mad_sat, ulong, ulong, ulong, ulong)
HM_SPLIT3(mad_sat, long, long, long, long)

// Vector-scalar overloads that opencl-c.h declares (the translator splats the scalar, but
// OpenCL C callers inside this library or compiled directly against it may use them).
#define HM_INT_VS(N, T, UT)                                                                      \
  OVL T##N max(T##N x, T y) { return max(x, (T##N)y); }                                          \
  OVL T##N min(T##N x, T y) { return min(x, (T##N)y); }                                         \
  OVL T##N clamp(T##N x, T lo, T hi) { return clamp(x, (T##N)lo, (T##N)hi); }
#define HM_INT_VS_T(T, UT) HM_VSIZES(HM_INT_VS, T, UT)
HM_INT_TYPES(HM_INT_VS_T)

// ---- mul_hi: widen, multiply, take the high half -------------------------------------------
#define HM_MUL_HI(N, T, WT, BITS)                                                                \
  OVL T##N mul_hi(T##N x, T##N y) {                                                              \
    return HM_CV(N, (HM_CV(N, x, WT) * HM_CV(N, y, WT)) >> (WT)BITS, T);                         \
  }
#define HM_MUL_HI_T(T, WT, BITS) HM_SIZES(HM_MUL_HI, T, WT, BITS)
HM_MUL_HI_T(char, short, 8)
HM_MUL_HI_T(uchar, ushort, 8)
HM_MUL_HI_T(short, int, 16)
HM_MUL_HI_T(ushort, uint, 16)
HM_MUL_HI_T(int, long, 32)
HM_MUL_HI_T(uint, ulong, 32)

// 64 x 64 -> 128 bits from four 32 x 32 -> 64 products (spir64 has no __int128).
OVL ulong mul_hi(ulong x, ulong y) {
  ulong xl = x & 0xffffffffu, xh = x >> 32, yl = y & 0xffffffffu, yh = y >> 32;
  ulong ll = xl * yl, lh = xl * yh, hl = xh * yl, hh = xh * yh;
  ulong mid = (ll >> 32) + (lh & 0xffffffffu) + (hl & 0xffffffffu);
  return hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
}
// Signed high half from the unsigned one: a negative operand contributes -2^64 * other.
OVL long mul_hi(long x, long y) {
  ulong h = mul_hi(as_ulong(x), as_ulong(y));
  h -= x < 0 ? as_ulong(y) : 0;
  h -= y < 0 ? as_ulong(x) : 0;
  return as_long(h);
}
HM_SPLIT2(mul_hi, ulong, ulong, ulong)
HM_SPLIT2(mul_hi, long, long, long)

// ---- Bit counting: scalar builtins with the zero case defined, vectors per lane ------------
// clz(0) and ctz(0) are the bit width (OpenCL); `x ? __builtin_clz(x) : 32` becomes llvm.ctlz
// with zero defined.
#define HM_BITS(T, UT, BITS, CLZ, CTZ, POP, WT)                                                  \
  OVL T clz(T x) {                                                                               \
    return x == 0 ? (T)BITS : (T)(CLZ((WT)(UT)x) - (sizeof(WT) * 8 - BITS));                     \
  }                                                                                              \
  OVL T ctz(T x) { return x == 0 ? (T)BITS : (T)CTZ((WT)(UT)x); }                                \
  OVL T popcount(T x) { return (T)POP((WT)(UT)x); }                                              \
  HM_SPLIT1(clz, T, T)                                                                           \
  HM_SPLIT1(ctz, T, T)                                                                           \
  HM_SPLIT1(popcount, T, T)
HM_BITS(char, uchar, 8, __builtin_clz, __builtin_ctz, __builtin_popcount, uint)
HM_BITS(uchar, uchar, 8, __builtin_clz, __builtin_ctz, __builtin_popcount, uint)
HM_BITS(short, ushort, 16, __builtin_clz, __builtin_ctz, __builtin_popcount, uint)
HM_BITS(ushort, ushort, 16, __builtin_clz, __builtin_ctz, __builtin_popcount, uint)
HM_BITS(int, uint, 32, __builtin_clz, __builtin_ctz, __builtin_popcount, uint)
HM_BITS(uint, uint, 32, __builtin_clz, __builtin_ctz, __builtin_popcount, uint)
HM_BITS(long, ulong, 64, __builtin_clzl, __builtin_ctzl, __builtin_popcountl, ulong)
HM_BITS(ulong, ulong, 64, __builtin_clzl, __builtin_ctzl, __builtin_popcountl, ulong)

// ---- 24-bit multiplies ------------------------------------------------------------------
// OpenCL only defines mul24/mad24 for operands in 24-bit range, where the full 32-bit product
// is the same; the multiply is done unsigned so that out-of-range operands wrap instead of
// being undefined behaviour in this library.
#define HM_MUL24(N, T, UT)                                                                       \
  OVL T##N mul24(T##N x, T##N y) { return as_##T##N(as_##UT##N(x) * as_##UT##N(y)); }            \
  OVL T##N mad24(T##N x, T##N y, T##N z) {                                                       \
    return as_##T##N(as_##UT##N(x) * as_##UT##N(y) + as_##UT##N(z));                             \
  }
HM_SIZES(HM_MUL24, int, uint)
HM_SIZES(HM_MUL24, uint, uint)

// ---- upsample: (hi << bits) | lo, in the next wider type ------------------------------------
// Built in the unsigned wide type (shifting a negative value left is undefined in C) and
// reinterpreted.
#define HM_UPSAMPLE(N, T, UT, WT, WUT, BITS)                                                     \
  OVL WT##N upsample(T##N hi, UT##N lo) {                                                        \
    return as_##WT##N(                                                                           \
        (WUT##N)((HM_CV(N, as_##UT##N(hi), WUT) << (WUT)BITS) | HM_CV(N, lo, WUT)));             \
  }
#define HM_UPSAMPLE_T(T, UT, WT, WUT, BITS) HM_SIZES(HM_UPSAMPLE, T, UT, WT, WUT, BITS)
HM_UPSAMPLE_T(char, uchar, short, ushort, 8)
HM_UPSAMPLE_T(uchar, uchar, ushort, ushort, 8)
HM_UPSAMPLE_T(short, ushort, int, uint, 16)
HM_UPSAMPLE_T(ushort, ushort, uint, uint, 16)
HM_UPSAMPLE_T(int, uint, long, ulong, 32)
HM_UPSAMPLE_T(uint, uint, ulong, ulong, 32)
