// Results published to a CPU thread that reads them while the kernel is still running.
//
// Each work-item computes a value (a few rounds of an integer hash, so the kernel runs long
// enough to be observed), stores it, and only then publishes it: it sets its own ready flag and
// increments a shared progress counter, both with release semantics. A CPU thread that reads a
// flag as set (with acquire) must see the final value, and a CPU thread that reads progress == k
// (with acquire) must see at least k flags set, because each increment comes after its
// work-item's flag store and the increments form one release sequence.

// OpenCL C 2.0 spells the scope that includes the host memory_scope_all_svm_devices. PoCL 3.1
// compiles as OpenCL C 3.0 without the __opencl_c_atomic_scope_all_devices feature and does not
// declare it; its device scope already covers its (CPU) host, so fall back to that.
#ifdef __opencl_c_atomic_scope_all_devices
#define HOST_SCOPE memory_scope_all_svm_devices
#else
#define HOST_SCOPE memory_scope_device
#endif

// A 32-bit integer hash (xorshift-multiply finaliser); deterministic and cheap to check on the host.
uint mix32(uint v) {
  v ^= v >> 16;
  v *= 0x7feb352du;
  v ^= v >> 15;
  v *= 0x846ca68bu;
  v ^= v >> 16;
  return v;
}

uint compute(uint v, uint rounds) {
  for (uint r = 0; r < rounds; ++r) v = mix32(v + r);
  return v;
}

#if __OPENCL_C_VERSION__ >= 200
// C11 atomics (OpenCL C 2.0): release stores and a release fetch_add at host scope.
__kernel void publish_c11(__global const uint* in, __global uint* result,
                          __global atomic_uint* ready, __global atomic_uint* progress,
                          uint rounds) {
  const size_t i = get_global_id(0);
  result[i] = compute(in[i], rounds);
  atomic_store_explicit(&ready[i], 1u, memory_order_release, HOST_SCOPE);
  atomic_fetch_add_explicit(progress, 1u, memory_order_release, HOST_SCOPE);
}
#endif

// The OpenCL 1.2 idiom: a global memory fence, then an atomic exchange on the flag; another
// fence, then atomic_inc on the counter. OpenCL 1.2 has no host-visible memory model, so this is
// what pre-2.0 code does on shared-memory systems; on hetmm it must behave like the C11 version.
__kernel void publish_xchg(__global const uint* in, __global uint* result,
                           __global volatile uint* ready, __global volatile uint* progress,
                           uint rounds) {
  const size_t i = get_global_id(0);
  result[i] = compute(in[i], rounds);
  mem_fence(CLK_GLOBAL_MEM_FENCE);
  atomic_xchg(&ready[i], 1u);
  mem_fence(CLK_GLOBAL_MEM_FENCE);
  atomic_inc(progress);
}
