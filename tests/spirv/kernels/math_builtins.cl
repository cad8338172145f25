// Math built-ins on float and float4. Each work-item evaluates every function on its inputs
// and stores the results side by side, so the test can hold each function to its own accuracy
// requirement (OpenCL C spec, "Relative Error as ULPs", single precision, full profile).
//
// Inputs, chosen so no result overflows or becomes denormal:
//   x, y in [-10, 10]     z in [1/64, 100]     w in [-1, 1]
// The order of the results is the test's table (kernels_test.cpp, kScalarMath / kVectorMath).

#define MATH_SCALAR_COUNT 32

__kernel void math_scalar(__global const float* xs, __global const float* ys,
                          __global const float* zs, __global const float* ws,
                          __global float* out, uint n) {
  const size_t i = get_global_id(0);
  if (i >= n) return;
  const float x = xs[i], y = ys[i], z = zs[i], w = ws[i];
  __global float* o = out + i * MATH_SCALAR_COUNT;
  o[0] = sin(x);
  o[1] = cos(x);
  o[2] = tan(w);
  o[3] = exp(y);
  o[4] = exp2(y);
  o[5] = log(z);
  o[6] = log2(z);
  o[7] = log10(z);
  o[8] = pow(z, y);
  o[9] = sqrt(z);
  o[10] = rsqrt(z);
  o[11] = cbrt(x);
  o[12] = tanh(x);
  o[13] = atan2(x, y);
  o[14] = asin(w);
  o[15] = acos(w);
  o[16] = atan(x);
  o[17] = sinh(y);
  o[18] = cosh(y);
  o[19] = expm1(w);
  o[20] = log1p(z);
  o[21] = hypot(x, y);
  o[22] = fma(x, y, z);
  o[23] = floor(x);
  o[24] = fmod(x, z);
  o[25] = x / z;
  o[26] = erf(x);
  o[27] = ldexp(x, (int)y);
  o[28] = round(x);
  o[29] = trunc(x);
  o[30] = ceil(x);
  o[31] = remainder(x, z);
}

#define MATH_VECTOR_COUNT 13

// The same functions on float4 operands: implementations often have separate vector code
// paths (SLEEF in PoCL, vectorised libraries elsewhere), so the vector overloads are checked
// on their own. Inputs are the scalar arrays read four at a time.
__kernel void math_vector(__global const float4* xs, __global const float4* ys,
                          __global const float4* zs, __global float4* out, uint n4) {
  const size_t i = get_global_id(0);
  if (i >= n4) return;
  const float4 x = xs[i], y = ys[i], z = zs[i];
  __global float4* o = out + i * MATH_VECTOR_COUNT;
  o[0] = sin(x);
  o[1] = cos(x);
  o[2] = exp(y);
  o[3] = log(z);
  o[4] = pow(z, y);
  o[5] = sqrt(z);
  o[6] = rsqrt(z);
  o[7] = tanh(x);
  o[8] = atan2(x, y);
  o[9] = fma(x, y, z);
  o[10] = hypot(x, y);
  o[11] = floor(x);
  o[12] = fmod(x, z);
}
