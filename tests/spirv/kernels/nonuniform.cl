// Non-uniform work-groups (OpenCL 2.0): when the local size does not divide the global size,
// the last group in each dimension is smaller. get_local_size returns the actual size of the
// work-item's group, get_enqueued_local_size the size asked for at launch.

// nonuniform_ids: per work-item (2D), (local size, enqueued local size) in x and in y.
__kernel void nonuniform_ids(__global uint4* out) {
  const size_t lin = get_global_id(1) * get_global_size(0) + get_global_id(0);
  out[lin] = (uint4)((uint)get_local_size(0), (uint)get_enqueued_local_size(0),
                     (uint)get_local_size(1), (uint)get_enqueued_local_size(1));
}

// nonuniform_group_sum: each group sums its elements in __local memory; the short last group
// must stop at its actual size (a loop to the enqueued size would read past the input).
__kernel void nonuniform_group_sum(__global const int* in, __global int* group_sums,
                                   __local int* scratch) {
  const size_t lid = get_local_id(0);
  scratch[lid] = in[get_global_id(0)];
  barrier(CLK_LOCAL_MEM_FENCE);
  if (lid == 0) {
    int s = 0;
    for (size_t k = 0; k < get_local_size(0); ++k) s += scratch[k];
    group_sums[get_group_id(0)] = s;
  }
}
