// Data-dependent addresses: every address below comes from an input array, so accesses land on
// pages in an order the runtime cannot predict (the device MMU sees random faults).

// gather: dst[i] = src[idx[i]].
__kernel void gather(__global const float* src, __global const int* idx, __global float* dst,
                     uint n) {
  const size_t i = get_global_id(0);
  if (i < n) dst[i] = src[idx[i]];
}

// scatter: dst[perm[i]] = src[i]; perm is a permutation, so every dst element is written once.
__kernel void scatter(__global const float* src, __global const int* perm, __global float* dst,
                      uint n) {
  const size_t i = get_global_id(0);
  if (i < n) dst[perm[i]] = src[i];
}

// chase: pointer chasing. Work-item i follows the `next` links `hops` times from node i and
// sums the values of the nodes it visits: each load's address depends on the previous load.
__kernel void chase(__global const uint* next, __global const int* value, uint hops,
                    __global int* out, uint n) {
  const size_t i = get_global_id(0);
  if (i >= n) return;
  uint node = (uint)i;
  int sum = 0;
  for (uint h = 0; h < hops; ++h) {
    node = next[node];
    sum += value[node];
  }
  out[i] = sum;
}

// spmv_csr: y = A x for a sparse matrix in compressed sparse row form, one row per work-item;
// the column indices select which elements of x are read.
__kernel void spmv_csr(__global const int* row_ptr, __global const int* col,
                       __global const float* val, __global const float* x, __global float* y,
                       int rows) {
  const int r = (int)get_global_id(0);
  if (r >= rows) return;
  float s = 0.0f;
  for (int j = row_ptr[r]; j < row_ptr[r + 1]; ++j) s += val[j] * x[col[j]];
  y[r] = s;
}
