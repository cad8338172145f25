// 3D NDRanges: the work-item functions in all three dimensions, and a 3D stencil.

// ids3d: every work-item writes its global id and the work dimension at its linear index, and a
// bit mask of identities between the work-item functions that must hold in every dimension d:
//   bit d      get_global_id(d) == get_group_id(d) * get_local_size(d) + get_local_id(d)
//                                  + get_global_offset(d)
//   bit 3 + d  get_num_groups(d) * get_local_size(d) == get_global_size(d) (uniform groups)
//   bit 6      get_global_linear_id() == the linear index computed from the 3 ids   (CL 2.0)
//   bit 7      get_local_linear_id() == the local linear index                       (CL 2.0)
// Since every linear index is written exactly once, the output also shows that the NDRange was
// covered without gaps or duplicates. The test expects 0xff everywhere.
__kernel void ids3d(__global uint4* ids, __global uint* checks) {
  const size_t x = get_global_id(0), y = get_global_id(1), z = get_global_id(2);
  const size_t sx = get_global_size(0), sy = get_global_size(1);
  const size_t lin = (z * sy + y) * sx + x;
  ids[lin] = (uint4)((uint)x, (uint)y, (uint)z, get_work_dim());

  uint ok = 0;
  for (uint d = 0; d < 3; ++d) {
    const size_t expect =
        get_group_id(d) * get_local_size(d) + get_local_id(d) + get_global_offset(d);
    ok |= (uint)(get_global_id(d) == expect) << d;
    ok |= (uint)(get_num_groups(d) * get_local_size(d) == get_global_size(d)) << (3 + d);
  }
  const size_t local_lin =
      (get_local_id(2) * get_local_size(1) + get_local_id(1)) * get_local_size(0) +
      get_local_id(0);
  ok |= (uint)(get_global_linear_id() == lin) << 6;
  ok |= (uint)(get_local_linear_id() == local_lin) << 7;
  checks[lin] = ok;
}

// box3d: out = the 7-point stencil (centre + 6 face neighbours) of a 3D integer field, with
// neighbours outside the volume counting as 0. The volume is the whole global range: x, y and z
// extents come from get_global_size, not from arguments.
__kernel void box3d(__global const int* in, __global int* out) {
  const int x = (int)get_global_id(0), y = (int)get_global_id(1), z = (int)get_global_id(2);
  const int sx = (int)get_global_size(0), sy = (int)get_global_size(1);
  const int sz = (int)get_global_size(2);
  const int i = (z * sy + y) * sx + x;
  int s = in[i];
  if (x > 0) s += in[i - 1];
  if (x < sx - 1) s += in[i + 1];
  if (y > 0) s += in[i - sx];
  if (y < sy - 1) s += in[i + sx];
  if (z > 0) s += in[i - sx * sy];
  if (z < sz - 1) s += in[i + sx * sy];
  out[i] = s;
}
