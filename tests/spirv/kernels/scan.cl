// Prefix sum (inclusive scan) over any n, in three launches:
//   1. scan_block over the input: each work-group scans its slice in __local memory
//      (Hillis-Steele: log2(local size) steps, two barriers per step so no work-item overwrites
//      a value another still has to read) and writes its total to block_sums[group];
//   2. scan_block again over block_sums, as one work-group (so #groups <= local size);
//   3. scan_add_offsets adds the scanned sum of all previous blocks to every element.
// Unsigned integers: wrap-around is defined, so the result is exact whatever the order.
__kernel void scan_block(__global const uint* in, __global uint* out, __global uint* block_sums,
                         uint n, __local uint* tmp) {
  const size_t gid = get_global_id(0);
  const uint lid = (uint)get_local_id(0);
  const uint lsize = (uint)get_local_size(0);
  tmp[lid] = gid < n ? in[gid] : 0u;  // the padding past n adds nothing
  barrier(CLK_LOCAL_MEM_FENCE);
  for (uint offset = 1; offset < lsize; offset <<= 1) {
    const uint add = lid >= offset ? tmp[lid - offset] : 0u;
    barrier(CLK_LOCAL_MEM_FENCE);  // all reads of this step before any write
    tmp[lid] += add;
    barrier(CLK_LOCAL_MEM_FENCE);  // all writes before the next step's reads
  }
  if (gid < n) out[gid] = tmp[lid];
  if (lid == lsize - 1) block_sums[get_group_id(0)] = tmp[lid];
}

__kernel void scan_add_offsets(__global uint* out, __global const uint* scanned_block_sums,
                               uint n) {
  const size_t gid = get_global_id(0);
  const size_t group = get_group_id(0);
  if (group > 0 && gid < n) out[gid] += scanned_block_sums[group - 1];
}
