// Histograms: data-dependent atomics on global and on local memory.
//
// histogram_global: every element does one atomic_inc on its bin in global memory. With a
// skewed input, a few bins take most of the increments: maximal contention on a few words.
__kernel void histogram_global(__global const uint* data, uint n, uint nbins,
                               __global uint* bins) {
  for (size_t i = get_global_id(0); i < n; i += get_global_size(0))
    atomic_inc(&bins[data[i] % nbins]);
}

// histogram_local: the privatised version. Each work-group counts into its own __local copy of
// the bins with atomic_add on __local memory, then adds its non-zero counts to the global bins
// with one atomic_add per bin. `local_bins` holds nbins uints; barriers separate clearing,
// counting and merging.
__kernel void histogram_local(__global const uint* data, uint n, uint nbins,
                              __local uint* local_bins, __global uint* bins) {
  const uint lid = (uint)get_local_id(0);
  const uint lsize = (uint)get_local_size(0);
  for (uint b = lid; b < nbins; b += lsize) local_bins[b] = 0;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (size_t i = get_global_id(0); i < n; i += get_global_size(0))
    atomic_add(&local_bins[data[i] % nbins], 1u);
  barrier(CLK_LOCAL_MEM_FENCE);
  for (uint b = lid; b < nbins; b += lsize) {
    const uint count = local_bins[b];
    if (count != 0) atomic_add(&bins[b], count);
  }
}
