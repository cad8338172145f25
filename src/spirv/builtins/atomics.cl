// Atomic functions, compiled for the host triple (spir64 has no lock-free atomics, so clang
// would turn them into __atomic_* libcalls): every function here is a single atomicrmw or
// cmpxchg instruction on the pointer's own address space (1 global, 3 local, 4 generic), which
// the JIT's MMU pass rewrites like any other access. Nothing here calls a function.
//
// What kernels reach (names as `llvm-spirv -r` writes them with OpenCL 1.2 built-in names):
//  * OpenCL 1.x atomic_add/sub/xchg/inc/dec/cmpxchg/min/max/and/or/xor on int and uint, and
//    atomic_xchg on float, for __global and __local (_Z10atomic_addPU3AS1Vii...);
//  * the 64-bit atom_* functions of cl_khr_int64_{base,extended}_atomics (_Z8atom_addPU3AS1Vll);
//  * OpenCL 2.0 C11 atomics, which come back as the same 1.x functions on a generic pointer with
//    the memory order and scope dropped: atomic_fetch_add_explicit -> atomic_add(AS4),
//    atomic_exchange and atomic_store -> atomic_xchg, atomic_compare_exchange_* ->
//    atomic_cmpxchg plus a comparison, atomic_fetch_min on atomic_uint -> _Z10atomic_minPU3AS4Vjj,
//    64-bit integer ones -> atom_* on AS4 (but atomic_double -> atomic_xchg/atomic_add);
//    atomic_load -> atomic_add(p, 0), for floating-point types atomic_add(p, 0.0).
// All operations are sequentially consistent, the strongest order any of them may ask for.
//
// atomic_add(p, 0) is done as an atomic load: it returns the same value but does not write,
// so reading an atomic (atomic_load) does not make the page dirty or need write access.
#include "builtins.h"

#define HM_ORD __ATOMIC_SEQ_CST

// ---- Integer atomics: P is the name prefix (atomic_ or atom_) -------------------------------
#define HM_ATOMIC_INT(P, T, AS)                                                                  \
  OVL T P##add(volatile AS T *p, T v) {                                                          \
    AS T *q = (AS T *)p;                                                                         \
    return v == 0 ? __atomic_load_n(q, HM_ORD) : __atomic_fetch_add(q, v, HM_ORD);               \
  }                                                                                              \
  OVL T P##sub(volatile AS T *p, T v) { return __atomic_fetch_sub((AS T *)p, v, HM_ORD); }       \
  OVL T P##xchg(volatile AS T *p, T v) { return __atomic_exchange_n((AS T *)p, v, HM_ORD); }     \
  OVL T P##inc(volatile AS T *p) { return __atomic_fetch_add((AS T *)p, (T)1, HM_ORD); }         \
  OVL T P##dec(volatile AS T *p) { return __atomic_fetch_sub((AS T *)p, (T)1, HM_ORD); }         \
  OVL T P##cmpxchg(volatile AS T *p, T cmp, T v) {                                               \
    __atomic_compare_exchange_n((AS T *)p, &cmp, v, false, HM_ORD, HM_ORD);                      \
    return cmp; /* the old value, whether or not the exchange happened */                        \
  }                                                                                              \
  OVL T P##min(volatile AS T *p, T v) { return __atomic_fetch_min((AS T *)p, v, HM_ORD); }       \
  OVL T P##max(volatile AS T *p, T v) { return __atomic_fetch_max((AS T *)p, v, HM_ORD); }       \
  OVL T P##and(volatile AS T *p, T v) { return __atomic_fetch_and((AS T *)p, v, HM_ORD); }       \
  OVL T P##or(volatile AS T *p, T v) { return __atomic_fetch_or((AS T *)p, v, HM_ORD); }         \
  OVL T P##xor(volatile AS T *p, T v) { return __atomic_fetch_xor((AS T *)p, v, HM_ORD); }

// ---- Floating point: exchange, and add (which only atomic_load produces, with +0.0) ---------
// A floating-point add of +0.0 changes nothing but -0.0 (to +0.0), so +0.0 is an atomic load.
#define HM_ATOMIC_FP(P, T, UT, AS)                                                               \
  OVL T P##xchg(volatile AS T *p, T v) {                                                         \
    return as_##T(__atomic_exchange_n((AS UT *)p, as_##UT(v), HM_ORD));                          \
  }                                                                                              \
  OVL T P##add(volatile AS T *p, T v) {                                                          \
    AS UT *q = (AS UT *)p;                                                                       \
    UT old = __atomic_load_n(q, HM_ORD);                                                         \
    if (as_##UT(v) == 0) return as_##T(old);                                                     \
    while (!__atomic_compare_exchange_n(q, &old, as_##UT(as_##T(old) + v), true, HM_ORD,         \
                                        HM_ORD)) {                                               \
    }                                                                                            \
    return as_##T(old);                                                                          \
  }

#define HM_ATOMICS_AS(AS)                                                                        \
  HM_ATOMIC_INT(atomic_, int, AS)                                                                \
  HM_ATOMIC_INT(atomic_, uint, AS)                                                               \
  HM_ATOMIC_INT(atom_, int, AS)                                                                  \
  HM_ATOMIC_INT(atom_, uint, AS)                                                                 \
  HM_ATOMIC_INT(atom_, long, AS)                                                                 \
  HM_ATOMIC_INT(atom_, ulong, AS)                                                                \
  HM_ATOMIC_FP(atomic_, float, uint, AS)                                                         \
  HM_ATOMIC_FP(atomic_, half, ushort, AS)                                                        \
  HM_ATOMIC_FP(atomic_, double, ulong, AS)                                                       \
  HM_ATOMIC_FP(atom_, double, ulong, AS)
HM_ATOMICS_AS(__global)
HM_ATOMICS_AS(__local)
HM_ATOMICS_AS(__generic)
