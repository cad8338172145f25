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
  }
HM_SIZES(HM_PTR_HALF, __private)
HM_SIZES(HM_PTR_HALF, __global)
HM_SIZES(HM_PTR_HALF, __local)
HM_SIZES(HM_PTR_HALF, __generic)

// remquo: libclc's loses the quotient bits when y is subnormal (remquo(0.196f, -1.86e-39f)
// gives quotient bits -80 where the exact quotient's low bits are -14). This one reduces |x|
// modulo 128|y| with fmod (exact), then finds the 7 quotient bits by binary long division,
// where every subtraction is exact (Sterbenz), and rounds the last step to nearest even.
// The remainder is remainder(x, y); the quotient has the sign of x/y and its low 7 bits.
#define HM_REMQUO(T)                                                                             \
  static OVL T hm_remquo(T x, T y, __private int *quo) {                                                   \
    *quo = 0;                                                                                    \
    if (isnan(x) || isnan(y) || isinf(x) || y == (T)0) return (T)NAN;                            \
    if (isinf(y)) return x;                                                                      \
    T ax = fabs(x), ay = fabs(y), m = ax;                                                        \
    T big = ay * (T)128;                                                                         \
    if (!isinf(big)) m = fmod(ax, big);                                                          \
    int q = 0;                                                                                   \
    for (int bit = 64; bit > 0; bit >>= 1) {                                                     \
      T t = ay * (T)bit;                                                                         \
      if (m >= t) {                                                                              \
        m -= t;                                                                                  \
        q += bit;                                                                                \
      }                                                                                          \
    }                                                                                            \
    T twice = m * (T)2;                                                                          \
    if (twice > ay || (twice == ay && (q & 1))) {                                                \
      m -= ay;                                                                                   \
      q += 1;                                                                                    \
    }                                                                                            \
    q &= 127;                                                                                    \
    *quo = (signbit(x) != signbit(y)) ? -q : q;                                                  \
    return signbit(x) ? -m : m;                                                                  \
  }
HM_REMQUO(float)
HM_REMQUO(double)

#define HM_REMQUO_AS(T, AS)                                                                      \
  OVL T remquo(T x, T y, AS int *quo) {                                                          \
    int q;                                                                                       \
    T r = hm_remquo(x, y, &q);                                                                   \
    *quo = q;                                                                                    \
    return r;                                                                                    \
  }                                                                                              \
  OVL T##2 remquo(T##2 x, T##2 y, AS int2 *quo) {                                                \
    int a, b;                                                                                    \
    T##2 r = (T##2)(hm_remquo(x.s0, y.s0, &a), hm_remquo(x.s1, y.s1, &b));                       \
    *quo = (int2)(a, b);                                                                         \
    return r;                                                                                    \
  }                                                                                              \
  OVL T##3 remquo(T##3 x, T##3 y, AS int3 *quo) {                                                \
    int a, b, c;                                                                                 \
    T##3 r = (T##3)(hm_remquo(x.s0, y.s0, &a), hm_remquo(x.s1, y.s1, &b),                        \
                    hm_remquo(x.s2, y.s2, &c));                                                  \
    *quo = (int3)(a, b, c);                                                                      \
    return r;                                                                                    \
  }                                                                                              \
  HM_REMQUO_HALVES(T, AS, 4, 2)                                                                  \
  HM_REMQUO_HALVES(T, AS, 8, 4)                                                                  \
  HM_REMQUO_HALVES(T, AS, 16, 8)
#define HM_REMQUO_HALVES(T, AS, N, H)                                                            \
  OVL T##N remquo(T##N x, T##N y, AS int##N *quo) {                                              \
    int##H a, b;                                                                                 \
    T##N r = (T##N)(remquo(x.lo, y.lo, (__private int##H *)&a),                                  \
                    remquo(x.hi, y.hi, (__private int##H *)&b));                                 \
    *quo = (int##N)(a, b);                                                                       \
    return r;                                                                                    \
  }
#define HM_REMQUO_ALL_AS(T)                                                                      \
  HM_REMQUO_AS(T, __private)                                                                     \
  HM_REMQUO_AS(T, __global)                                                                      \
  HM_REMQUO_AS(T, __local)                                                                       \
  HM_REMQUO_AS(T, __generic)
HM_REMQUO_ALL_AS(float)
HM_REMQUO_ALL_AS(double)

// Half: exact in single precision (the quotient bits and the remainder are the same).
#define HM_REMQUO_HALF(N, AS)                                                                    \
  OVL half##N remquo(half##N x, half##N y, AS int##N *p) {                                       \
    int##N t;                                                                                    \
    half##N r = HM_H(N, remquo(HM_F(N, x), HM_F(N, y), (__private int##N *)&t));                 \
    *p = t;                                                                                      \
    return r;                                                                                    \
  }
HM_SIZES(HM_REMQUO_HALF, __private)
HM_SIZES(HM_REMQUO_HALF, __global)
HM_SIZES(HM_REMQUO_HALF, __local)
HM_SIZES(HM_REMQUO_HALF, __generic)
