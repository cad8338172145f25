// Vector types: vload/vstore at unaligned addresses, swizzles, vector relational functions,
// select/bitselect and 8-wide vectors.

// saxpy4: out[1 + 4i .. 4 + 4i] = a * x[off + 4i ..] + y[4i ..]. vload4/vstore4 need only
// element alignment: x + x_offset and out + 1 are not 16-byte aligned, so the implementation
// cannot treat them as aligned float4 loads and stores.
__kernel void saxpy4(__global const float* x, __global const float* y, __global float* out,
                     float a, uint x_offset) {
  const size_t i = get_global_id(0);
  const float4 vx = vload4(i, x + x_offset);
  const float4 vy = vload4(i, y);
  vstore4(a * vx + vy, i, out + 1);
}

// swizzle: per float4 v (and r = v reversed), three float4 results and two int4 masks.
// Every operation is exact (selection, exact scaling by 0.5, one correctly rounded add), so the
// results must match bit for bit.
__kernel void swizzle(__global const float4* in, __global float4* out, __global int4* masks) {
  const size_t i = get_global_id(0);
  const float4 v = in[i];
  const float4 r = v.wzyx;
  const int4 gt = isgreater(v, r);  // vector relational: -1 (all bits) where true, 0 where false
  out[3 * i] = select(r, v, gt);    // lane-wise max of v and r
  out[3 * i + 1] = (float4)(v.even, v.odd) + v.s3210 * 0.5f;  // (x, z, y, w) + r / 2
  // bitselect takes the bits of r where the mask has ones: sign, exponent and top mantissa bits
  // from r, the low 16 mantissa bits from v.
  out[3 * i + 2] = bitselect(v, r, as_float4((uint4)(0xffff0000u)));
  masks[2 * i] = gt;
  masks[2 * i + 1] = (int4)(any(gt), all(gt), any(signbit(v)), (int)(v.x == v.hi.y));
}

// widen8: 8-wide vectors: load eight floats, multiply lane-wise with their reverse, and store
// the product and the lane-wise min/max of the two halves (exact operations only).
__kernel void widen8(__global const float* in, __global float* out) {
  const size_t i = get_global_id(0);
  const float8 v = vload8(i, in);
  vstore8(v * v.s76543210, 2 * i, out);
  vstore8((float8)(fmin(v.lo, v.hi), fmax(v.lo, v.hi)), 2 * i + 1, out);
}
