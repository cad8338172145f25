#!/usr/bin/python3
"""PyOpenCL on hetmm, through the system's ICD loader: what a Python user does first.

Arrays, generated elementwise kernels, reductions, scans, a radix sort, and a numpy array shared
with kernels as fine-grain system SVM (no copy: the kernel writes the numpy array's own memory).
Every result is checked with numpy. CTest points OCL_ICD_VENDORS at the build tree's hetmm.icd.
Exit 77 (skipped) when PyOpenCL is not installed.
"""
import sys

try:
    import numpy as np
    import pyopencl as cl
    import pyopencl.array as cla
    import pyopencl.clmath
    import pyopencl.algorithm as clalg
    from pyopencl.elementwise import ElementwiseKernel
    from pyopencl.reduction import ReductionKernel
    from pyopencl.scan import InclusiveScanKernel, ExclusiveScanKernel
except ImportError as e:  # pragma: no cover
    print(f"pyopencl not available ({e}): apt-get install python3-pyopencl")
    sys.exit(77)

failures = []


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail and not ok else ''}")
    if not ok:
        failures.append(name)


platforms = [p for p in cl.get_platforms() if p.name == "hetmm"]
if not platforms:
    print("no hetmm platform: is OCL_ICD_VENDORS pointing at the build's opencl-vendors?")
    sys.exit(1)
device = platforms[0].get_devices()[0]
print(f"device: {device.name} ({device.version})")
check("fine-grain system SVM advertised",
      bool(device.svm_capabilities & cl.device_svm_capabilities.FINE_GRAIN_SYSTEM))
ctx = cl.Context([device])
queue = cl.CommandQueue(ctx)
rng = np.random.default_rng(7)

# ---- arrays and generated elementwise kernels --------------------------------------------------
n = 200_003  # not a multiple of any work-group size
a_host = rng.random(n, dtype=np.float32)
b_host = rng.random(n, dtype=np.float32)
a = cla.to_device(queue, a_host)
b = cla.to_device(queue, b_host)
check("array arithmetic", np.allclose((2 * a + b * b - 1).get(), 2 * a_host + b_host**2 - 1))
check("array math functions", np.allclose(cl.clmath.sqrt(a).get(), np.sqrt(a_host), rtol=1e-6))
check("array comparison", np.array_equal((a > b).get().astype(bool), a_host > b_host))

lin_comb = ElementwiseKernel(ctx, "float k1, float *x, float k2, float *y, float *z",
                             "z[i] = k1 * x[i] + k2 * y[i]", "lin_comb")
z = cla.empty_like(a)
lin_comb(np.float32(3), a, np.float32(-2), b, z)
check("ElementwiseKernel", np.allclose(z.get(), 3 * a_host - 2 * b_host, rtol=1e-5, atol=1e-6))

d_host = rng.random(4096)
d = cla.to_device(queue, d_host)
check("float64 arrays", np.allclose((d * 3.5 + 1).get(), d_host * 3.5 + 1))

# ---- reductions and scans ----------------------------------------------------------------------
i_host = rng.integers(-1000, 1000, size=n).astype(np.int32)
i = cla.to_device(queue, i_host)
check("sum", int(cla.sum(i).get()) == int(i_host.sum()))
check("max", int(cla.max(i).get()) == int(i_host.max()))
check("min", int(cla.min(i).get()) == int(i_host.min()))
dot = ReductionKernel(ctx, np.float32, neutral="0", reduce_expr="a+b", map_expr="x[i]*y[i]",
                      arguments="__global const float *x, __global const float *y")
check("ReductionKernel dot", np.isclose(dot(a, b).get(), np.dot(a_host.astype(np.float64), b_host),
                                        rtol=1e-3))
scan = InclusiveScanKernel(ctx, np.int32, "a+b", neutral="0")
s = i.copy()
scan(s)
check("InclusiveScanKernel", np.array_equal(s.get(), np.cumsum(i_host, dtype=np.int32)))
escan = ExclusiveScanKernel(ctx, np.int32, "a+b", neutral="0")
e = i.copy()
escan(e)
check("ExclusiveScanKernel",
      np.array_equal(e.get(), np.concatenate([[0], np.cumsum(i_host, dtype=np.int32)[:-1]])))

# ---- a radix sort (scans, scatters, local memory) ----------------------------------------------
keys_host = rng.integers(0, 1 << 30, size=50_000).astype(np.uint32)
sort = clalg.RadixSort(ctx, "unsigned int *ary", key_expr="ary[i]", sort_arg_names=["ary"])
(sorted_keys,), _ = sort(cla.to_device(queue, keys_host), key_bits=30)
check("RadixSort", np.array_equal(sorted_keys.get(), np.sort(keys_host)))

# ---- a hand-written kernel with __local memory and barriers ------------------------------------
prg = cl.Program(ctx, """
__kernel void block_sum(__global const int* in, __global int* out, __local int* tmp, int n) {
  int gid = get_global_id(0), lid = get_local_id(0);
  tmp[lid] = gid < n ? in[gid] : 0;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int s = get_local_size(0) / 2; s > 0; s /= 2) {
    if (lid < s) tmp[lid] += tmp[lid + s];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (lid == 0) out[get_group_id(0)] = tmp[0];
}
__kernel void scale_svm(__global float* v, float k) { v[get_global_id(0)] *= k; }
""").build()
groups = (n + 255) // 256
out = cla.empty(queue, groups, np.int32)
prg.block_sum(queue, (groups * 256,), (256,), i.data, out.data, cl.LocalMemory(256 * 4), np.int32(n))
check("__local + barrier reduction", int(out.get().sum()) == int(i_host.sum()))

# ---- fine-grain system SVM: a numpy array used by the kernel in place --------------------------
v = np.arange(100_000, dtype=np.float32)
kernel = prg.scale_svm
kernel.set_arg(0, cl.SVM(v))
kernel.set_arg(1, np.float32(0.5))
cl.enqueue_nd_range_kernel(queue, kernel, v.shape, None)
queue.finish()
check("numpy array as system SVM, written in place",
      np.array_equal(v, np.arange(100_000, dtype=np.float32) * 0.5))

# SVM allocated by the platform (clSVMAlloc), used by host and device without maps.
svm = cl.svm_empty(ctx, cl.svm_mem_flags.READ_WRITE | cl.svm_mem_flags.SVM_FINE_GRAIN_BUFFER,
                   4096, np.float32)
svm[:] = 4
kernel.set_arg(0, cl.SVM(svm))
kernel.set_arg(1, np.float32(0.25))
cl.enqueue_nd_range_kernel(queue, kernel, svm.shape, None)
queue.finish()
check("clSVMAlloc fine-grain buffer", np.all(svm == 1))

if failures:
    print(f"{len(failures)} failed: {', '.join(failures)}")
    sys.exit(1)
print("pyopencl on hetmm: all checks passed")
