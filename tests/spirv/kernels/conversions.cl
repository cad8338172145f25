// Explicit conversions with rounding modes and saturation: convert_<type>[_sat][_<rounding>].
//
//   small: floats within int range, many exact halves (ties), so rounding modes differ
//   any:   arbitrary floats including NaN, +-infinity and values far beyond int range; only the
//          _sat conversions are defined for those (NaN converts to 0)
//   ints:  arbitrary ints, including INT_MIN and INT_MAX
// Results are stored as 32-bit patterns (float results via as_uint), all exact.

#define CONVERSION_COUNT 22

__kernel void conversions(__global const float* small, __global const float* any,
                          __global const int* ints, __global uint* out, uint n) {
  const size_t i = get_global_id(0);
  if (i >= n) return;
  const float a = small[i], b = any[i];
  const int v = ints[i];
  __global uint* o = out + i * CONVERSION_COUNT;
  o[0] = as_uint(convert_int_rte(a));  // ties to even
  o[1] = as_uint(convert_int_rtz(a));
  o[2] = as_uint(convert_int_rtp(a));
  o[3] = as_uint(convert_int_rtn(a));
  o[4] = as_uint(convert_int(a));      // float to int defaults to round toward zero
  o[5] = as_uint(convert_int_sat_rte(b));
  o[6] = convert_uint_sat(b);          // negatives saturate to 0
  o[7] = as_uint((int)convert_short_sat_rtn(b));
  o[8] = convert_uchar_sat_rte(b);
  o[9] = convert_uchar_sat(v);
  o[10] = as_uint((int)convert_char_sat(v));
  o[11] = convert_ushort_sat(v);
  o[12] = as_uint((int)convert_short_sat(v));
  o[13] = as_uint(convert_float(v));   // int to float defaults to round to nearest even
  o[14] = as_uint(convert_float_rtz(v));
  o[15] = as_uint(convert_float_rtp(v));
  o[16] = as_uint(convert_float_rtn(v));
  o[17] = as_uint(convert_float_rtz(as_uint(v)));
  const long l = convert_long_sat_rte(b);
  o[18] = (uint)l;
  o[19] = (uint)(l >> 32);
  o[20] = as_uint(convert_uchar4_sat((int4)(v, -v, v >> 8, v >> 24)));
  o[21] = as_uint(convert_short2_sat_rte((float2)(a * 100.0f, b)));
}
