// __constant memory: a __constant pointer argument and program-scope __constant tables.

// fir: a finite impulse response filter, out[i] = sum_t taps[t] * in[i + t], with the taps in a
// __constant buffer (the host passes an ordinary pointer); `in` holds n + ntaps - 1 samples.
__kernel void fir(__global const float* in, __constant float* taps, uint ntaps,
                  __global float* out, uint n) {
  const size_t i = get_global_id(0);
  if (i >= n) return;
  float s = 0.0f;
  for (uint t = 0; t < ntaps; ++t) s += taps[t] * in[i + t];
  out[i] = s;
}

// Program-scope tables: polynomial coefficients (Horner's rule) and a lookup table read at
// data-dependent indices.
__constant float kPoly[8] = {1.0f, -0.5f, 0.25f, -0.125f, 0.0625f, -0.03125f, 0.015625f, -0.0078125f};
__constant int kSquares[16] = {0, 1, 4, 9, 16, 25, 36, 49, 64, 81, 100, 121, 144, 169, 196, 225};

// poly_lut: poly[i] = kPoly evaluated at x[i] (highest coefficient last); lut[i] = the square of
// the low 4 bits of keys[i] plus the square of the next 4 bits.
__kernel void poly_lut(__global const float* x, __global const uint* keys, __global float* poly,
                       __global int* lut, uint n) {
  const size_t i = get_global_id(0);
  if (i >= n) return;
  float p = kPoly[7];
  for (int c = 6; c >= 0; --c) p = p * x[i] + kPoly[c];
  poly[i] = p;
  const uint k = keys[i];
  lut[i] = kSquares[k & 15u] + kSquares[(k >> 4) & 15u];
}
