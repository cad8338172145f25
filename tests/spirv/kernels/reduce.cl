// Work-group reductions: a __local tree with a barrier per level, then a second pass or atomics.
//
// reduce_sum_partial: each work-item first sums a grid-stride slice of the input (so a fixed
// number of groups covers any n), then the group folds its local partial sums pairwise in
// __local memory, halving the active work-items each level, and work-item 0 writes the group's
// sum. Run it twice: over the input with G groups, then over the G partial sums with a single
// group, which leaves the total in partial[0] of the second pass. The local size must be a
// power of two; `scratch` holds one float per work-item.
__kernel void reduce_sum_partial(__global const float* in, __global float* partial, uint n,
                                 __local float* scratch) {
  const uint lid = (uint)get_local_id(0);
  float s = 0.0f;
  for (size_t i = get_global_id(0); i < n; i += get_global_size(0)) s += in[i];
  scratch[lid] = s;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (uint stride = (uint)get_local_size(0) / 2; stride > 0; stride >>= 1) {
    if (lid < stride) scratch[lid] += scratch[lid + stride];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (lid == 0) partial[get_group_id(0)] = scratch[0];
}

// reduce_int_atomic: integer sum, minimum and maximum in one pass. The sum goes through the
// same __local tree and then one atomic_add per group on result[0] (integers: exact in any
// order). Minimum and maximum use one global atomic_min / atomic_max per work-item, i.e. heavy
// contention on result[1] and result[2]. The caller initialises result to {0, INT_MAX, INT_MIN}.
__kernel void reduce_int_atomic(__global const int* in, uint n, __local int* scratch,
                                __global int* result) {
  const uint lid = (uint)get_local_id(0);
  int s = 0;
  int lo = INT_MAX, hi = INT_MIN;
  for (size_t i = get_global_id(0); i < n; i += get_global_size(0)) {
    const int v = in[i];
    s += v;
    lo = min(lo, v);
    hi = max(hi, v);
  }
  atomic_min(&result[1], lo);
  atomic_max(&result[2], hi);
  scratch[lid] = s;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (uint stride = (uint)get_local_size(0) / 2; stride > 0; stride >>= 1) {
    if (lid < stride) scratch[lid] += scratch[lid + stride];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (lid == 0) atomic_add(&result[0], scratch[0]);
}
