// Matrix transpose through a __local tile: out (cols x rows) = transpose(in (rows x cols)).
//
// A square T x T work-group reads a T x T block of `in` row by row (consecutive work-items read
// consecutive addresses), parks it in __local memory, waits at a barrier, and writes the
// transposed block, again row by row. T is the runtime local size: the tile is a __local
// pointer argument of T * (T + 1) floats. The extra column is the usual padding that keeps a
// tile column off a single local-memory bank; here it also means the local indexing is not a
// plain T x T array. Edges: rows and cols need not be multiples of T.
__kernel void transpose_tiled(__global const float* in, __global float* out, int rows, int cols,
                              __local float* tile) {
  const int t = (int)get_local_size(0);  // == get_local_size(1)
  const int lx = (int)get_local_id(0), ly = (int)get_local_id(1);
  const int bx = (int)get_group_id(0) * t, by = (int)get_group_id(1) * t;

  const int x = bx + lx, y = by + ly;  // read in[y][x]
  if (x < cols && y < rows) tile[ly * (t + 1) + lx] = in[y * cols + x];
  barrier(CLK_LOCAL_MEM_FENCE);

  const int ox = by + lx, oy = bx + ly;  // write out[oy][ox] = in[ox][oy]
  if (ox < rows && oy < cols) out[oy * rows + ox] = tile[lx * (t + 1) + ly];
}
