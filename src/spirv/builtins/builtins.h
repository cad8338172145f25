// Shared macros for hetmm's OpenCL C built-in library (src/spirv/builtins/*.cl).
//
// cmake/spirv_builtins.cmake links these files with libclc (Debian's libclc-15,
// spirv64-mesa3d-.spv, used as a binary) into one bitcode module, hetmm_builtins.bc, which the
// JIT links into every kernel. libclc keeps: the pi-scaled math (sinpi, atan2pi...), powr,
// pown, rootn, frexp, modf, fract, ilogb, logb, the geometric functions, mix/step/smoothstep/
// sign/degrees/radians, rotate, vload/vstore and vload_half for the named address spaces and
// the async copies. These files supply everything libclc leaves undefined, replace what it
// gets wrong on a CPU, and add the forms only the SPIR-V translator produces:
//   math.cl          fabs, sqrt, fma, mad, fmin/fmax, rounding, copysign, nextafter... (+ the
//                    overrides of libclc's "no subnormals, no hardware fma" configuration)
//   math_libm.cl     the C99 transcendentals via the host libm (libclc flushes subnormals)
//   math_native.cl   native_* and half_* (= the full-precision functions)
//   math_half.cl     half-precision math (libclc has none), computed in float
//   math_ptr.cl      fract/modf/frexp/sincos/lgamma_r/remquo with pointer results, generic AS
//   integer.cl       abs, clz, mul_hi, add_sat, mad_sat, upsample, min/max/clamp...
//   common.cl        float min/max/clamp, half common functions
//   geometric.cl     half cross/normalize
//   relational.cl    isnan, isinf, signbit, any, all, select, bitselect...
//   vload_vstore.cl  vload/vstore through generic pointers, vstore_half for every AS
//   shuffle.cl       shuffle, shuffle2
//   convert.cl       convert_<type>[_sat][_<rounding>] (convert_float.cl: float destinations)
//   atomics.cl       OpenCL 1.x, 64-bit and (as translated) OpenCL 2.0 atomics
//   fences.cl        mem_fence, read_mem_fence, write_mem_fence
//   async.cl         vec3 async copies, wait_group_events(generic), prefetch
//   address_space.cl get_fence
// Not here (hetmm's kernel pass supplies them): the work-item functions, barrier, printf, and
// __to_global/__to_local/__to_private (to_global() etc.). check.sh shows what a kernel still
// leaves undefined.
//
// Every file is compiled for spir64 (see the cmake file for why: the SPIR calling convention
// passes vectors as vectors, like the translator's call sites, where the x86-64 C ABI would
// coerce char4 to i32 or pass float8 in memory), except atomics.cl, which is compiled for the
// host (spir64 has no lock-free atomics: clang would emit libcalls).
//
// Names: functions are declared overloadable and get the SPIR (Itanium + address space)
// mangling that `llvm-spirv -r` produces, e.g. _Z4fabsf, _Z3fmaDv4_fS_S_, _Z6vload4mPU3AS4Kf.
// The files are compiled with opencl-c.h, so every standard overload is declared.
#pragma once

#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#pragma OPENCL EXTENSION cl_khr_fp16 : enable

#define OVL __attribute__((overloadable))

// The vector sizes OpenCL C defines. HM_SIZES(M, args...) expands M(N, args...) for N = "",
// 2, 3, 4, 8, 16, so that inside M, T##N names the scalar type (N empty) or the vector type.
#define HM_SIZES(M, ...)                                                                         \
  M(, __VA_ARGS__) M(2, __VA_ARGS__) M(3, __VA_ARGS__) M(4, __VA_ARGS__) M(8, __VA_ARGS__)       \
      M(16, __VA_ARGS__)
#define HM_VSIZES(M, ...)                                                                        \
  M(2, __VA_ARGS__) M(3, __VA_ARGS__) M(4, __VA_ARGS__) M(8, __VA_ARGS__) M(16, __VA_ARGS__)

// Value conversion that works for scalars (N empty: a C cast) and vectors (N = 2..16:
// __builtin_convertvector, since OpenCL C has no casts between vector types).
#define HM_CV_(x, T) ((T)(x))
#define HM_CV_2(x, T) __builtin_convertvector((x), T##2)
#define HM_CV_3(x, T) __builtin_convertvector((x), T##3)
#define HM_CV_4(x, T) __builtin_convertvector((x), T##4)
#define HM_CV_8(x, T) __builtin_convertvector((x), T##8)
#define HM_CV_16(x, T) __builtin_convertvector((x), T##16)
#define HM_CV(N, x, T) HM_CV_##N(x, T)

// Vector versions of a function built from its narrower versions: size 2 and 3 call the
// scalar version per component, 4/8/16 call the half-size version on .lo and .hi. Used where
// no vector operation or clang elementwise builtin expresses the function; after inlining,
// LLVM's SLP vectorizer may turn the per-lane code back into vector code.
#define HM_SPLIT1(F, RT, AT)                                                                     \
  OVL RT##2 F(AT##2 x) { return (RT##2)(F(x.s0), F(x.s1)); }                                     \
  OVL RT##3 F(AT##3 x) { return (RT##3)(F(x.s0), F(x.s1), F(x.s2)); }                           \
  OVL RT##4 F(AT##4 x) { return (RT##4)(F(x.lo), F(x.hi)); }                                     \
  OVL RT##8 F(AT##8 x) { return (RT##8)(F(x.lo), F(x.hi)); }                                     \
  OVL RT##16 F(AT##16 x) { return (RT##16)(F(x.lo), F(x.hi)); }
#define HM_SPLIT2(F, RT, AT, BT)                                                                 \
  OVL RT##2 F(AT##2 x, BT##2 y) { return (RT##2)(F(x.s0, y.s0), F(x.s1, y.s1)); }                \
  OVL RT##3 F(AT##3 x, BT##3 y) {                                                                \
    return (RT##3)(F(x.s0, y.s0), F(x.s1, y.s1), F(x.s2, y.s2));                                 \
  }                                                                                              \
  OVL RT##4 F(AT##4 x, BT##4 y) { return (RT##4)(F(x.lo, y.lo), F(x.hi, y.hi)); }                \
  OVL RT##8 F(AT##8 x, BT##8 y) { return (RT##8)(F(x.lo, y.lo), F(x.hi, y.hi)); }                \
  OVL RT##16 F(AT##16 x, BT##16 y) { return (RT##16)(F(x.lo, y.lo), F(x.hi, y.hi)); }
#define HM_SPLIT3(F, RT, AT, BT, CT)                                                             \
  OVL RT##2 F(AT##2 x, BT##2 y, CT##2 z) {                                                       \
    return (RT##2)(F(x.s0, y.s0, z.s0), F(x.s1, y.s1, z.s1));                                    \
  }                                                                                              \
  OVL RT##3 F(AT##3 x, BT##3 y, CT##3 z) {                                                       \
    return (RT##3)(F(x.s0, y.s0, z.s0), F(x.s1, y.s1, z.s1), F(x.s2, y.s2, z.s2));               \
  }                                                                                              \
  OVL RT##4 F(AT##4 x, BT##4 y, CT##4 z) {                                                       \
    return (RT##4)(F(x.lo, y.lo, z.lo), F(x.hi, y.hi, z.hi));                                    \
  }                                                                                              \
  OVL RT##8 F(AT##8 x, BT##8 y, CT##8 z) {                                                       \
    return (RT##8)(F(x.lo, y.lo, z.lo), F(x.hi, y.hi, z.hi));                                    \
  }                                                                                              \
  OVL RT##16 F(AT##16 x, BT##16 y, CT##16 z) {                                                   \
    return (RT##16)(F(x.lo, y.lo, z.lo), F(x.hi, y.hi, z.hi));                                   \
  }

// Floating-point types with the signed and unsigned integer types of the same width and the
// IEEE field masks: M(T, IT, UT, SIGN, EXP, MANT_BITS)
#define HM_FLOAT_TYPES(M)                                                                        \
  M(half, short, ushort, 0x8000, 0x7c00, 10)                                                     \
  M(float, int, uint, 0x80000000u, 0x7f800000u, 23)                                              \
  M(double, long, ulong, 0x8000000000000000ul, 0x7ff0000000000000ul, 52)

// Integer types with their unsigned counterpart: M(T, UT)
#define HM_INT_TYPES(M)                                                                          \
  M(char, uchar) M(uchar, uchar) M(short, ushort) M(ushort, ushort) M(int, uint) M(uint, uint)  \
  M(long, ulong) M(ulong, ulong)

// All scalar element types: M(T)
#define HM_ALL_TYPES(M)                                                                          \
  M(char) M(uchar) M(short) M(ushort) M(int) M(uint) M(long) M(ulong) M(half) M(float) M(double)

// Token pasting after macro expansion of the operands.
#define HM_CAT(a, b) HM_CAT_(a, b)
#define HM_CAT_(a, b) a##b
