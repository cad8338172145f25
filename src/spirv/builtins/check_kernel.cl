// A kernel using a broad sample of OpenCL C built-ins, scalar and vector, for check.sh: after
// SPIR-V and back, linked with hetmm_builtins.bc, only the work-item functions, barrier and
// libm may remain undefined. Compiles as OpenCL C 1.2 and 2.0 (the 2.0 part adds generic
// pointers and C11 atomics). It is not meant to compute anything useful.
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#pragma OPENCL EXTENSION cl_khr_int64_base_atomics : enable
#pragma OPENCL EXTENSION cl_khr_int64_extended_atomics : enable

#if __OPENCL_C_VERSION__ >= 200
// Everything that OpenCL 2.0 routes through generic pointers or C11 atomics.
float c11_and_generic(global atomic_int *ai, global atomic_uint *au, global atomic_long *al,
                      global atomic_float *af, global float *f, local float *lf, int i) {
  int expected = 3;
  int r = atomic_load(ai) + atomic_load_explicit(ai, memory_order_acquire);
  atomic_store(ai, 5);
  atomic_store_explicit(ai, 6, memory_order_release, memory_scope_device);
  r += atomic_fetch_add(ai, 1) + atomic_fetch_sub_explicit(ai, 1, memory_order_relaxed);
  r += atomic_fetch_add_explicit(ai, 2, memory_order_acq_rel, memory_scope_work_group);
  r += atomic_fetch_or(ai, 1) + atomic_fetch_and(ai, 3) + atomic_fetch_xor(ai, 5);
  r += atomic_fetch_min(ai, 7) + (int)atomic_fetch_max(au, 7u) + (int)atomic_fetch_min(au, 1u);
  r += atomic_exchange(ai, 9);
  r += atomic_compare_exchange_strong(ai, &expected, 4);
  r += atomic_compare_exchange_weak_explicit(ai, &expected, 4, memory_order_acq_rel,
                                             memory_order_acquire);
  r += (int)atomic_fetch_add(al, 5L) + (int)atomic_load(al);
  r += atomic_flag_test_and_set((volatile global atomic_flag *)ai);
  atomic_flag_clear((volatile global atomic_flag *)ai);
  float x = atomic_load(af) + atomic_exchange(af, 2.0f);
  atomic_store(af, 1.0f);
  atomic_work_item_fence(CLK_GLOBAL_MEM_FENCE, memory_order_seq_cst, memory_scope_device);
  // Generic pointers: vload/vstore, vload_half/vstore_half, math with pointer results.
  generic float *g = (i & 1) ? (generic float *)f : (generic float *)lf;
  float4 v = vload4(i, g) + vload4(0, (const generic float *)f);
  vstore4(v, 1, g);
  vstore3(v.xyz, 2, g);
  vstore_half_rtz(v.x, 3, (generic half *)g);
  x += vload_half(1, (generic half *)g);
  float ip, c;
  int e;
  x += fract(x, &ip) + ip + sincos(x, &c) + c + frexp(x, &e) + e + modf(x, &ip);
  x += remquo(x, 3.0f, &e) + lgamma_r(x, &e) + e;
  global atomic_double *ad = (global atomic_double *)al;
  x += (float)(atomic_load(ad) + atomic_exchange(ad, 1.0));
  return x + r + ctz(r);
}
#endif

kernel void check_builtins(global float *f, global float4 *f4, global int *gi, global uint *gu,
                           global int4 *gi4, global uchar4 *guc4, global long *gl,
                           global ulong *gul, global double *gd, global short8 *gs8,
                           global half *gh, constant float *cf, local float *lf, local int *li
#if __OPENCL_C_VERSION__ >= 200
                           , global atomic_int *ai, global atomic_uint *au,
                           global atomic_long *al, global atomic_float *af
#endif
) {
  size_t gid = get_global_id(0);
  size_t lid = get_local_id(0);
  int i = (int)gid + (int)get_group_id(0) + (int)get_global_offset(0) + get_work_dim();
  i += (int)(get_global_size(0) + get_local_size(0) + get_num_groups(0));
  float x = f[gid];
  float4 v = f4[gid];
  float ip;
  int e;

  // Math: scalar and vector, native_ and half_ variants, double.
  x += sin(x) + cos(x) + tan(x) + exp(x) + exp2(x) + exp10(x) + log(x) + log2(x) + log10(x);
  x += pow(x, 2.5f) + pown(x, 3) + powr(x, 0.5f) + rootn(x, 3) + sqrt(x) + rsqrt(x) + cbrt(x);
  x += fma(x, x, 1.0f) + mad(x, 2.0f, x) + fabs(x) + floor(x) + ceil(x) + trunc(x) + round(x);
  x += rint(x) + tanh(x) + sinh(x) + atan2(x, 3.0f) + atan(x) + asin(x) + acos(x) + hypot(x, 2);
  x += fmin(x, 1.0f) + fmax(x, 2.0f) + fmod(x, 3.0f) + remainder(x, 2.0f) + copysign(x, -1.0f);
  x += fdim(x, 1.0f) + maxmag(x, 2.0f) + minmag(x, 2.0f) + nextafter(x, 0.0f) + nan(1u);
  x += erf(x) + erfc(x) + lgamma(x) + tgamma(x) + expm1(x) + log1p(x) + logb(x) + ilogb(x);
  x += ldexp(x, 3) + sinpi(x) + cospi(x) + fract(x, &ip) + ip + frexp(x, &e) + e;
  x += remquo(x, 2.0f, &e) + lgamma_r(x, &e) + sincos(x, &ip) + modf(x, &ip) + atan2pi(x, 2.0f);
  x += native_sin(x) + native_cos(x) + native_exp(x) + native_log(x) + native_sqrt(x);
  x += native_rsqrt(x) + native_divide(x, 3.0f) + native_recip(x) + native_powr(x, 2.0f);
  x += half_sin(x) + half_exp(x) + half_log(x) + half_sqrt(x) + half_rsqrt(x) + half_recip(x);
  v = sin(v) + exp(v) + sqrt(v) + fma(v, v, v) + mad(v, v, v) + fabs(v) + floor(v) + pow(v, v);
  v += native_exp(v) + half_divide(v, v) + rsqrt(v) + fmax(v, 0.5f) + fmin(v, v) + atan2(v, v);
  double d = gd[gid];
  d += sqrt(d) + fma(d, d, d) + mad(d, 2.0, d) + fabs(d) + floor(d) + exp(d) + sin(d) + pow(d, d);

  // Common and geometric.
  x += clamp(x, 0.0f, 1.0f) + mix(x, 1.0f, 0.25f) + step(0.5f, x) + smoothstep(0.0f, 1.0f, x);
  x += sign(x) + degrees(x) + radians(x) + max(x, 1.0f) + min(x, 2.0f);
  v += clamp(v, 0.0f, 1.0f) + mix(v, v, 0.5f) + step(v, v) + sign(v) + max(v, v);
  x += dot(v, v) + length(v) + distance(v, v) + dot(v.xyz, v.xyz) + fast_length(v);
  v += cross(v, v) + normalize(v) + (float4)(cross(v.xyz, v.xyz), 0.0f);

  // Integer.
  int n = gi[gid];
  uint u = gu[gid];
  int4 n4 = gi4[gid];
  n += abs(n) + abs_diff(n, 3) + clz(n) + popcount(n) + mul_hi(n, n) + mad_hi(n, n, n);
  n += mad24(n, n, n) + mul24(n, n) + rotate(n, 3) + add_sat(n, n) + sub_sat(n, 5) + hadd(n, n);
  n += rhadd(n, n) + min(n, 3) + max(n, 4) + clamp(n, 0, 10) + mad_sat(n, n, n) + (int)upsample((short)n, (ushort)u);
  u += clz(u) + popcount(u) + mul_hi(u, u) + mad24(u, u, u) + rotate(u, 5u) + add_sat(u, u);
  u += min(u, 3u) + max(u, 4u) + clamp(u, 1u, 9u) + abs(u) + hadd(u, u) + (uint)upsample(u, u);
  n4 += (int)abs_diff(n4, n4).x + clz(n4) + popcount(n4) + mul_hi(n4, n4) + min(n4, 3) + max(n4, n4);
  n4 += clamp(n4, 0, 5) + add_sat(n4, n4) + rotate(n4, n4) + mad24(n4, n4, n4) + (int)abs(n4).x;
  long l = gl[gid];
  ulong ul = gul[gid];
  l += clz(l) + popcount(l) + mul_hi(l, l) + abs_diff(l, 3L) + min(l, 2L) + rotate(l, 7L);
  ul += mul_hi(ul, ul) + max(ul, 3UL) + add_sat(ul, ul) + upsample(u, u);
  short8 s8 = gs8[gid];
  s8 += mul_hi(s8, s8) + clz(s8) + add_sat(s8, s8) + hadd(s8, s8) + (short)abs_diff(s8, s8).s0;

  // Relational.
  n += isnan(x) + isinf(x) + isfinite(x) + isnormal(x) + signbit(x) + isequal(x, 1.0f);
  n += isless(x, 2.0f) + isgreater(x, 1.0f) + isordered(x, x) + isunordered(x, x);
  n4 += isnan(v) + isinf(v) + signbit(v) + isgreater(v, v) + isnotequal(v, v);
  n += any(n4) + all(n4) + any(s8 > (short8)0) + all(gi4[0] < 0) + select(1, 2, n) + isnan(d);
  v = select(v, v + 1.0f, n4) + select(v, v, as_uint4(n4)) + bitselect(v, v, v);
  n4 = select(n4, n4 * 2, n4 > 0) + bitselect(n4, n4, n4);

  // Conversions (saturating, rounding modes, vectors) and reinterpretation.
  n += convert_int(x) + convert_int_sat(x) + convert_int_rte(x) + convert_int_sat_rtp(x);
  n += convert_int_rtn(x) + convert_int_sat_rtz(d) + (int)convert_uint_sat(n);
  n += convert_char_sat(n) + convert_uchar_sat(x) + convert_short_sat_rte(x) + convert_int(l);
  x += convert_float(n) + convert_float_rtz(n) + convert_float_rtp(l) + convert_float_rtn(d);
  x += convert_float(ul) + convert_float_rte(u) + (float)convert_double(x) + convert_half(x);
  d += convert_double(l) + convert_double_rtz(ul) + convert_double(n);
  n4 += convert_int4(v) + convert_int4_sat_rte(v) + convert_int4_rtp(v) + convert_int4(s8.lo);
  guc4[gid] = convert_uchar4_sat(n4) + convert_uchar4(n4) + convert_uchar4_sat_rte(v);
  v += convert_float4(n4) + convert_float4_rtz(n4) + convert_float4(guc4[0]) + as_float4(n4);
  s8 += convert_short8_sat(convert_int8((float8)(v, v))) + as_short8(n4);
  gl[gid] = convert_long_sat(x) + convert_long_sat_rtn(d) + (long)convert_ulong_sat(l);
  n += as_int(x) + (int)as_uint(x) + as_int(v.x);

  // vload/vstore: sizes 2, 3, 4, 8, 16 through global, local, private and constant pointers,
  // and the half-precision forms.
  float pv[16];
  for (int k = 0; k < 16; ++k) pv[k] = f[k];
  float2 v2 = vload2(gid, f) + vload2(1, lf) + vload2(0, pv) + vload2(0, cf);
  float3 v3 = vload3(gid, f) + vload3(1, lf) + vload3(0, pv) + vload3(0, cf);
  v += vload4(gid, f) + vload4(1, lf) + vload4(0, pv) + vload4(0, cf);
  float8 v8 = vload8(gid, f) + vload8(0, lf) + vload8(1, pv);
  float16 v16 = vload16(0, f) + vload16(0, pv) + vload16(0, cf);
  int4 iv = vload4(1, gi) + vload4(0, li);
  vstore2(v2, gid, f);
  vstore3(v3, gid, f);
  vstore4(v, gid, lf);
  vstore8(v8, 1, f);
  vstore16(v16, 0, pv);
  vstore4(iv, 2, gi);
  x += pv[3] + vload_half(gid, gh) + vload_half4(0, gh).y + vloada_half4(1, gh).z;
  vstore_half(x, gid, gh);
  vstore_half_rtz(x, 1, gh);
  vstore_half4_rte(v, 2, gh);
  vstorea_half2_rtn(v2, 3, gh);

  // Vector component shuffles.
  v += shuffle(v, (uint4)(3, 2, 1, 0)) + shuffle2(v, v, (uint4)(7, 0, 5, 2));
  v2 += shuffle(v, (uint2)(1, 3));

  // OpenCL 1.x atomics, global and local; 64-bit atom_*; float exchange.
  n += atomic_add(gi, 1) + atomic_sub(gi, 1) + atomic_xchg(gi, 3) + atomic_inc(gi);
  n += atomic_dec(gi) + atomic_cmpxchg(gi, 1, 2) + atomic_min(gi, 0) + atomic_max(gi, 9);
  n += atomic_and(gi, 7) + atomic_or(gi, 8) + atomic_xor(gi, 1);
  u += atomic_add(gu, 1u) + atomic_min(gu, 2u) + atomic_max(gu, 3u) + atomic_inc(gu);
  n += atomic_add(li, 1) + atomic_inc(li) + atomic_cmpxchg(li, 0, 1) + atomic_max(li, n);
  x += atomic_xchg(f, x) + atomic_xchg(lf, x);
  l += atom_add(gl, 1L) + atom_cmpxchg(gl, 1L, 2L) + atom_min(gl, 0L) + atom_inc(gl);
  ul += atom_max(gul, 5UL) + atom_xchg(gul, 2UL) + atom_and(gul, 3UL);

  // Fences, barriers, async copies, prefetch.
  mem_fence(CLK_GLOBAL_MEM_FENCE);
  read_mem_fence(CLK_LOCAL_MEM_FENCE);
  write_mem_fence(CLK_GLOBAL_MEM_FENCE);
  barrier(CLK_LOCAL_MEM_FENCE);
  event_t ev = async_work_group_copy(lf, f, 64, 0);
  ev = async_work_group_strided_copy(f4 + 16, (local float4 *)lf, 4, 2, ev);
  wait_group_events(1, &ev);
  prefetch(f, 16);

#if __OPENCL_C_VERSION__ >= 200
  x += c11_and_generic(ai, au, al, af, f, lf, i);
  work_group_barrier(CLK_GLOBAL_MEM_FENCE);
  x += (float)(get_global_linear_id() + get_local_linear_id() + get_enqueued_local_size(0));
#endif

  f[gid] = x + (float)n + (float)u + (float)l + (float)ul + (float)d + v.x + v2.y + n4.z +
           s8.s3 + lid;
  f4[gid] = v;
  gi4[gid] = n4;
  gs8[gid] = s8;
  gd[gid] = d;
}
