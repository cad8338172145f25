// Geometric built-ins (OpenCL C 6.15.5): libclc has them all for float and double and dot,
// length and distance for half; cross and normalize for half are added here, computed in
// single precision (no overflow of the intermediate sums, one rounding at the end).
#include "builtins.h"

OVL half3 cross(half3 a, half3 b) {
  return __builtin_convertvector(cross(__builtin_convertvector(a, float3),
                                       __builtin_convertvector(b, float3)), half3);
}
OVL half4 cross(half4 a, half4 b) {
  return __builtin_convertvector(cross(__builtin_convertvector(a, float4),
                                       __builtin_convertvector(b, float4)), half4);
}
#define HM_NORMALIZE_HALF(N)                                                                     \
  OVL half##N normalize(half##N x) { return HM_CV(N, normalize(HM_CV(N, x, float)), half); }
HM_NORMALIZE_HALF()
HM_NORMALIZE_HALF(2)
HM_NORMALIZE_HALF(3)
HM_NORMALIZE_HALF(4)
