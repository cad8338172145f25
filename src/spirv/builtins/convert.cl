// Explicit conversions (OpenCL C 6.4.3): convert_<dst><N>[_sat][_rte|_rtz|_rtp|_rtn](<src><N>)
// for every pair of the 11 scalar types and every vector size (libclc defines none of them).
//
// The translator turns a plain conversion (convert_float(int), convert_int(float)...) back into
// an LLVM instruction, but keeps a call for saturation, explicit rounding modes and some vector
// forms (_Z13convert_char4Dv4_i, _Z15convert_int_rtef, _Z17convert_float_rtzi...).
//
// Rounding: the CPU rounds to nearest even and truncates float-to-integer; the other modes are
// derived from the nearest-even result r by comparing it exactly with the source x and moving r
// one step (nextafter) when it lies on the wrong side. The comparison is exact because it is
// done in a type holding both values: the wider float type for float-to-float, double for
// integers of up to 32 bits, the integer itself (with the overflow case r = 2^63 or 2^64
// handled apart) for 64-bit integers. 64-bit integer to half rounds through float in the same
// directed mode, which gives the same result (directed roundings compose).
//
// Saturation: the source is clamped to the destination's range (NaN gives 0) in the source
// type before converting, so no out-of-range conversion (undefined in LLVM) ever happens.
#include "builtins.h"

// ---- Type properties -------------------------------------------------------------------------
#define HM_KIND_char I
#define HM_KIND_uchar I
#define HM_KIND_short I
#define HM_KIND_ushort I
#define HM_KIND_int I
#define HM_KIND_uint I
#define HM_KIND_long I
#define HM_KIND_ulong I
#define HM_KIND_half F
#define HM_KIND_float F
#define HM_KIND_double F
// Signed integer type of the same width: the type of a comparison mask on vectors.
#define HM_SI_char char
#define HM_SI_uchar char
#define HM_SI_short short
#define HM_SI_ushort short
#define HM_SI_int int
#define HM_SI_uint int
#define HM_SI_long long
#define HM_SI_ulong long
#define HM_SI_half short
#define HM_SI_float int
#define HM_SI_double long
// Integer ranges: minimum as long, maximum as ulong, and both as exact double constants
// (powers of two: the maximum plus one).
#define HM_MIN_char (-128L)
#define HM_MIN_uchar 0L
#define HM_MIN_short (-32768L)
#define HM_MIN_ushort 0L
#define HM_MIN_int (-2147483647L - 1)
#define HM_MIN_uint 0L
#define HM_MIN_long (-9223372036854775807L - 1)
#define HM_MIN_ulong 0L
#define HM_MAX_char 127UL
#define HM_MAX_uchar 255UL
#define HM_MAX_short 32767UL
#define HM_MAX_ushort 65535UL
#define HM_MAX_int 2147483647UL
#define HM_MAX_uint 4294967295UL
#define HM_MAX_long 9223372036854775807UL
#define HM_MAX_ulong 18446744073709551615UL
#define HM_FMIN_char (-0x1p7)
#define HM_FMIN_uchar 0.0
#define HM_FMIN_short (-0x1p15)
#define HM_FMIN_ushort 0.0
#define HM_FMIN_int (-0x1p31)
#define HM_FMIN_uint 0.0
#define HM_FMIN_long (-0x1p63)
#define HM_FMIN_ulong 0.0
#define HM_FMAXP1_char 0x1p7
#define HM_FMAXP1_uchar 0x1p8
#define HM_FMAXP1_short 0x1p15
#define HM_FMAXP1_ushort 0x1p16
#define HM_FMAXP1_int 0x1p31
#define HM_FMAXP1_uint 0x1p32
#define HM_FMAXP1_long 0x1p63
#define HM_FMAXP1_ulong 0x1p64
// Float-to-integer conversions work in float for half sources (exact widening).
#define HM_FP_half float
#define HM_FP_float float
#define HM_FP_double double

#define HM_MASK(N, m, D) HM_CV(N, m, HM_SI_##D)  // comparison result as a mask of D's width

// ---- Integer to integer: wrap, or clamp for _sat; rounding modes change nothing ------------
#define HM_II_SAT(N, D, S)                                                                       \
  S##N y = x;                                                                                    \
  if (HM_MIN_##S < HM_MIN_##D) y = y < (S)HM_MIN_##D ? (S##N)(S)HM_MIN_##D : y;                  \
  if (HM_MAX_##S > HM_MAX_##D) y = y > (S)HM_MAX_##D ? (S##N)(S)HM_MAX_##D : y;                  \
  return HM_CV(N, y, D);
#define HM_CONV_II(N, D, S)                                                                      \
  OVL D##N convert_##D##N(S##N x) { return HM_CV(N, x, D); }                                     \
  OVL D##N convert_##D##N##_rte(S##N x) { return HM_CV(N, x, D); }                               \
  OVL D##N convert_##D##N##_rtz(S##N x) { return HM_CV(N, x, D); }                               \
  OVL D##N convert_##D##N##_rtp(S##N x) { return HM_CV(N, x, D); }                               \
  OVL D##N convert_##D##N##_rtn(S##N x) { return HM_CV(N, x, D); }                               \
  OVL D##N convert_##D##N##_sat(S##N x) { HM_II_SAT(N, D, S) }                                   \
  OVL D##N convert_##D##N##_sat_rte(S##N x) { HM_II_SAT(N, D, S) }                               \
  OVL D##N convert_##D##N##_sat_rtz(S##N x) { HM_II_SAT(N, D, S) }                               \
  OVL D##N convert_##D##N##_sat_rtp(S##N x) { HM_II_SAT(N, D, S) }                               \
  OVL D##N convert_##D##N##_sat_rtn(S##N x) { HM_II_SAT(N, D, S) }

// ---- Floating point to integer ----------------------------------------------------------------
// ROUND is one of the elementwise rounding builtins; truncation is the conversion's own.
#define HM_FI_ROUND(N, D, S, ROUND)                                                              \
  HM_CAT(HM_FP_##S, N) f = HM_CV(N, x, HM_FP_##S);                                               \
  return HM_CV(N, ROUND(f), D);
#define HM_FI_SAT(N, D, S, ROUND)                                                                \
  typedef HM_CAT(HM_FP_##S, N) fp_t;                                                             \
  typedef HM_FP_##S fp1_t;                                                                       \
  fp_t r = ROUND(HM_CV(N, x, HM_FP_##S));                                                        \
  __typeof__(r < r) hi = r >= (fp1_t)HM_FMAXP1_##D;                                              \
  __typeof__(r < r) lo = r < (fp1_t)HM_FMIN_##D;                                                 \
  r = (hi | lo | (r != r)) ? (fp_t)0 : r;                                                        \
  D##N v = HM_CV(N, r, D);                                                                       \
  v = HM_MASK(N, hi, D) ? (D##N)(D)HM_MAX_##D : v;                                               \
  v = HM_MASK(N, lo, D) ? (D##N)(D)HM_MIN_##D : v;                                               \
  return v;
#define HM_NOROUND(x) (x)
#define HM_CONV_FI(N, D, S)                                                                      \
  OVL D##N convert_##D##N(S##N x) { return HM_CV(N, x, D); }                                     \
  OVL D##N convert_##D##N##_rtz(S##N x) { return HM_CV(N, x, D); }                               \
  OVL D##N convert_##D##N##_rte(S##N x) {                                                        \
    HM_FI_ROUND(N, D, S, __builtin_elementwise_roundeven)                                        \
  }                                                                                              \
  OVL D##N convert_##D##N##_rtp(S##N x) { HM_FI_ROUND(N, D, S, __builtin_elementwise_ceil) }     \
  OVL D##N convert_##D##N##_rtn(S##N x) { HM_FI_ROUND(N, D, S, __builtin_elementwise_floor) }    \
  OVL D##N convert_##D##N##_sat(S##N x) { HM_FI_SAT(N, D, S, HM_NOROUND) }                       \
  OVL D##N convert_##D##N##_sat_rtz(S##N x) { HM_FI_SAT(N, D, S, HM_NOROUND) }                   \
  OVL D##N convert_##D##N##_sat_rte(S##N x) {                                                    \
    HM_FI_SAT(N, D, S, __builtin_elementwise_roundeven)                                          \
  }                                                                                              \
  OVL D##N convert_##D##N##_sat_rtp(S##N x) { HM_FI_SAT(N, D, S, __builtin_elementwise_ceil) }   \
  OVL D##N convert_##D##N##_sat_rtn(S##N x) { HM_FI_SAT(N, D, S, __builtin_elementwise_floor) }

// ---- Directed rounding to a floating-point type -------------------------------------------
// From r (nearest even) and the masks gt (r > x) and lt (r < x), both of D's width.
#define HM_STEP_RTZ(N, D, S)                                                                     \
  return ((gt & HM_MASK(N, x > (S)0, D)) | (lt & HM_MASK(N, x < (S)0, D)))                       \
             ? nextafter(r, (D##N)0)                                                             \
             : r;
#define HM_STEP_RTN(N, D, S) return gt ? nextafter(r, (D##N)(D)-INFINITY) : r;
#define HM_STEP_RTP(N, D, S) return lt ? nextafter(r, (D##N)(D)INFINITY) : r;

// Integer to floating point. Up to 32 bits, x and r compare exactly in double (and a double
// destination is always exact). 64-bit: r = 2^63 or 2^64 (rounded up past the integer range)
// is greater than any x; otherwise r is integral and converts back exactly.
#define HM_IF_DIRECTED(N, D, S, MODE)                                                            \
  D##N r = HM_CV(N, x, D);                                                                       \
  HM_CAT(HM_SI_##D, N) gt, lt;                                                                   \
  if (sizeof(S) == 8) {                                                                          \
    if (sizeof(D) == 2) /* (the conversion is the identity then: D is half) */                   \
      return HM_CV(N, convert_half##N##_##MODE(convert_float##N##_##MODE(x)), D);                \
    HM_CAT(HM_SI_##D, N) big = r >= (D)HM_FMAXP1_##S;                                            \
    S##N back = HM_CV(N, big ? (D##N)0 : r, S);                                                  \
    gt = big | HM_MASK(N, back > x, D);                                                          \
    lt = (big == (HM_SI_##D)0) & HM_MASK(N, back < x, D);                                        \
  } else {                                                                                       \
    if (sizeof(D) == 8) return r;                                                                \
    HM_CAT(double, N) xd = HM_CV(N, x, double), rd = HM_CV(N, r, double);                         \
    gt = HM_MASK(N, rd > xd, D);                                                                 \
    lt = HM_MASK(N, rd < xd, D);                                                                 \
  }
#define HM_CONV_IF(N, D, S)                                                                      \
  OVL D##N convert_##D##N(S##N x) { return HM_CV(N, x, D); }                                     \
  OVL D##N convert_##D##N##_rte(S##N x) { return HM_CV(N, x, D); }                               \
  OVL D##N convert_##D##N##_rtz(S##N x) {                                                        \
    HM_IF_DIRECTED(N, D, S, rtz)                                                                 \
    HM_STEP_RTZ(N, D, S)                                                                         \
  }                                                                                              \
  OVL D##N convert_##D##N##_rtn(S##N x) {                                                        \
    HM_IF_DIRECTED(N, D, S, rtn)                                                                 \
    HM_STEP_RTN(N, D, S)                                                                         \
  }                                                                                              \
  OVL D##N convert_##D##N##_rtp(S##N x) {                                                        \
    HM_IF_DIRECTED(N, D, S, rtp)                                                                 \
    HM_STEP_RTP(N, D, S)                                                                         \
  }

// Floating point to floating point: widening is exact; narrowing compares r, widened back
// exactly, with x. Overflow to infinity and underflow to zero come out right: e.g. a huge
// double rounded towards zero gives FLT_MAX (inf > x, one step down).
#define HM_FF_DIRECTED(N, D, S)                                                                  \
  D##N r = HM_CV(N, x, D);                                                                       \
  if (sizeof(D) >= sizeof(S)) return r;                                                          \
  S##N back = HM_CV(N, r, S);                                                                    \
  HM_CAT(HM_SI_##D, N) gt = HM_MASK(N, back > x, D), lt = HM_MASK(N, back < x, D);
#define HM_CONV_FF(N, D, S)                                                                      \
  OVL D##N convert_##D##N(S##N x) { return HM_CV(N, x, D); }                                     \
  OVL D##N convert_##D##N##_rte(S##N x) { return HM_CV(N, x, D); }                               \
  OVL D##N convert_##D##N##_rtz(S##N x) {                                                        \
    HM_FF_DIRECTED(N, D, S)                                                                      \
    HM_STEP_RTZ(N, D, S)                                                                         \
  }                                                                                              \
  OVL D##N convert_##D##N##_rtn(S##N x) {                                                        \
    HM_FF_DIRECTED(N, D, S)                                                                      \
    HM_STEP_RTN(N, D, S)                                                                         \
  }                                                                                              \
  OVL D##N convert_##D##N##_rtp(S##N x) {                                                        \
    HM_FF_DIRECTED(N, D, S)                                                                      \
    HM_STEP_RTP(N, D, S)                                                                         \
  }

// ---- Every destination, source and size ---------------------------------------------------
#define HM_CONVERT(N, D, S) HM_CAT(HM_CONV_, HM_CAT(HM_KIND_##S, HM_KIND_##D))(N, D, S)
#define HM_CONVERT_DS(D, S) HM_SIZES(HM_CONVERT, D, S)
#define HM_CONVERT_FROM_ALL(D)                                                                   \
  HM_CONVERT_DS(D, char) HM_CONVERT_DS(D, uchar) HM_CONVERT_DS(D, short)                         \
  HM_CONVERT_DS(D, ushort) HM_CONVERT_DS(D, int) HM_CONVERT_DS(D, uint)                          \
  HM_CONVERT_DS(D, long) HM_CONVERT_DS(D, ulong) HM_CONVERT_DS(D, half)                          \
  HM_CONVERT_DS(D, float) HM_CONVERT_DS(D, double)

// The destination list is split across files only to let the build compile in parallel:
// convert.cl does the integer destinations, convert_float.cl the floating-point ones.
#ifndef HM_CONVERT_FLOAT_DESTINATIONS
HM_CONVERT_FROM_ALL(char)
HM_CONVERT_FROM_ALL(uchar)
HM_CONVERT_FROM_ALL(short)
HM_CONVERT_FROM_ALL(ushort)
HM_CONVERT_FROM_ALL(int)
HM_CONVERT_FROM_ALL(uint)
HM_CONVERT_FROM_ALL(long)
HM_CONVERT_FROM_ALL(ulong)
#else
HM_CONVERT_FROM_ALL(half)
HM_CONVERT_FROM_ALL(float)
HM_CONVERT_FROM_ALL(double)
#endif
