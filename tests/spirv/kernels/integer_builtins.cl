// Integer built-ins on every bit pattern, including 0, -1, INT_MIN and INT_MAX: bit counting,
// high halves of products, rotates, saturating and averaging arithmetic, 24-bit multiplies,
// upsample, clamp, and vector (char4, uchar4, short2) overloads reinterpreted from 32-bit words.
// Every result is an exact integer, stored as the 32-bit pattern.

#define INT_BUILTIN_COUNT 24

__kernel void int_builtins(__global const uint* as, __global const uint* bs, __global uint* out,
                           uint n) {
  const size_t i = get_global_id(0);
  if (i >= n) return;
  const uint a = as[i], b = bs[i];
  const int sa = as_int(a), sb = as_int(b);
  // 24-bit operands for mul24/mad24, whose results are undefined outside 24 bits.
  const uint a24 = a & 0xffffffu, b24 = b & 0xffffffu;
  const int sa24 = (int)(a << 8) >> 8, sb24 = (int)(b << 8) >> 8;
  __global uint* o = out + i * INT_BUILTIN_COUNT;
  o[0] = clz(a);                           // 32 for a == 0
  o[1] = popcount(a);
  o[2] = mul_hi(a, b);
  o[3] = as_uint(mul_hi(sa, sb));
  o[4] = rotate(a, b);                     // left rotate by b mod 32
  o[5] = add_sat(a, b);
  o[6] = as_uint(add_sat(sa, sb));
  o[7] = sub_sat(a, b);
  o[8] = as_uint(sub_sat(sa, sb));
  o[9] = hadd(a, b);                       // (a + b) >> 1 without overflow
  o[10] = rhadd(a, b);                     // (a + b + 1) >> 1 without overflow
  o[11] = abs_diff(sa, sb);
  o[12] = mad24(a24, b24, a);
  o[13] = as_uint(mul24(sa24, sb24));
  o[14] = upsample((ushort)a, (ushort)b);  // (a & 0xffff) << 16 | (b & 0xffff)
  o[15] = as_uint(clamp(sa, -1000, 1000));
  o[16] = abs(sa);                         // abs(INT_MIN) is 0x80000000 as a uint
  o[17] = as_uint(mad_sat(sa, 3, sb));
  o[18] = as_uint(add_sat(as_char4(a), as_char4(b)));
  o[19] = as_uint(sub_sat(as_uchar4(a), as_uchar4(b)));
  o[20] = as_uint(mul_hi(as_short2(a), as_short2(b)));
  o[21] = as_uint(rotate(as_uchar4(a), as_uchar4(b)));  // per byte, by b's byte mod 8
  const ulong wide = mul_hi(upsample(a, b), upsample(b, a));  // 64-bit mul_hi
  o[22] = (uint)wide;
  o[23] = (uint)(wide >> 32);
}
