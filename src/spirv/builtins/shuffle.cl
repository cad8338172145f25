// shuffle and shuffle2 (OpenCL C 6.15.12): build a vector of M components picked from one or
// two vectors of N components by a run-time mask (only the low log2(N) or log2(2N) bits of each
// mask component count). The mask's element type is the unsigned type of the data's width; the
// translator mangles it that way (e.g. _Z7shuffleDv4_fDv2_j).
#include "builtins.h"

#define HM_SHUFFLE(M, N, T, U)                                                                   \
  OVL T##M shuffle(T##N x, U##M mask) {                                                          \
    T##M r;                                                                                      \
    for (int i = 0; i < M; ++i) r[i] = x[mask[i] & (U)(N - 1)];                                  \
    return r;                                                                                    \
  }                                                                                              \
  OVL T##M shuffle2(T##N x, T##N y, U##M mask) {                                                 \
    T##M r;                                                                                      \
    for (int i = 0; i < M; ++i) {                                                                \
      U k = mask[i] & (U)(2 * N - 1);                                                            \
      r[i] = k < (U)N ? x[k] : y[k - (U)N];                                                      \
    }                                                                                            \
    return r;                                                                                    \
  }
#define HM_SHUFFLE_M(N, T, U)                                                                    \
  HM_SHUFFLE(2, N, T, U) HM_SHUFFLE(4, N, T, U) HM_SHUFFLE(8, N, T, U) HM_SHUFFLE(16, N, T, U)
#define HM_SHUFFLE_T(T, U)                                                                       \
  HM_SHUFFLE_M(2, T, U) HM_SHUFFLE_M(4, T, U) HM_SHUFFLE_M(8, T, U) HM_SHUFFLE_M(16, T, U)
HM_SHUFFLE_T(char, uchar)
HM_SHUFFLE_T(uchar, uchar)
HM_SHUFFLE_T(short, ushort)
HM_SHUFFLE_T(ushort, ushort)
HM_SHUFFLE_T(int, uint)
HM_SHUFFLE_T(uint, uint)
HM_SHUFFLE_T(long, ulong)
HM_SHUFFLE_T(ulong, ulong)
HM_SHUFFLE_T(half, ushort)
HM_SHUFFLE_T(float, uint)
HM_SHUFFLE_T(double, ulong)
