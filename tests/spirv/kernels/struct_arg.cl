// A struct passed by value. The float4 member makes the struct 16-byte aligned (32 bytes in
// all), so the runtime must copy it with the C layout that the host side uses.
typedef struct {
  float4 offset;  // added lane-wise
  float scale;    // the test uses a power of two: x * scale is exact
  int lo, hi;     // clamp range of the result
  uint flags;     // bit 0: take |x| first; bit 1: negate the result
} Quantizer;

// Program-scope constant data: lives in the module, not in a kernel argument.
__constant float4 kBias = (float4)(0.0f, 0.25f, -0.5f, 0.125f);

// quantize4: out = clamp(round_to_even(x * scale + offset + kBias), lo, hi), lane-wise.
// x * scale is exact (power-of-two scale), so whether an implementation fuses it with the first
// add (FP_CONTRACT) cannot change the result: the output must match bit for bit.
__kernel void quantize4(__global const float4* in, __global int4* out, Quantizer q) {
  const size_t i = get_global_id(0);
  float4 v = in[i];
  if (q.flags & 1u) v = fabs(v);
  const float4 s = v * q.scale + q.offset + kBias;
  int4 r = clamp(convert_int4_rte(s), q.lo, q.hi);
  if (q.flags & 2u) r = -r;
  out[i] = r;
}
