// Tiled matrix multiply C = A * B (row-major) through __local tiles: the classic GPU blocking.
//
// Each TILE x TILE work-group computes a TILE x TILE block of C. For every TILE-wide slice of
// the k dimension, each work-item loads one element of A and one of B into the group's
// __local tiles, the group waits at a barrier until both tiles are full, every work-item reads
// a row and a column of the tiles, and a second barrier keeps the tiles from being overwritten
// while others still read them. Elements outside the matrices load as 0, so m, n and k need
// not be multiples of TILE (the NDRange is rounded up).
//
// TILE is a compile-time constant so the tiles are program-scope-sized __local arrays (the
// other way to get local memory besides a __local pointer argument). Build with -DTILE=<t> to
// change it; reqd_work_group_size tells the runtime the only local size that works.
#ifndef TILE
#define TILE 16
#endif

__kernel __attribute__((reqd_work_group_size(TILE, TILE, 1)))
void matmul_tiled(__global const float* a,  // m x k
                  __global const float* b,  // k x n
                  __global float* c,        // m x n
                  int m, int n, int k) {
  __local float ta[TILE][TILE];
  __local float tb[TILE][TILE];
  const int lx = (int)get_local_id(0);
  const int ly = (int)get_local_id(1);
  const int col = (int)get_group_id(0) * TILE + lx;
  const int row = (int)get_group_id(1) * TILE + ly;

  float acc = 0.0f;
  for (int t = 0; t < k; t += TILE) {
    ta[ly][lx] = (row < m && t + lx < k) ? a[row * k + t + lx] : 0.0f;
    tb[ly][lx] = (t + ly < k && col < n) ? b[(t + ly) * n + col] : 0.0f;
    barrier(CLK_LOCAL_MEM_FENCE);  // both tiles complete
    for (int i = 0; i < TILE; ++i) acc += ta[ly][i] * tb[i][lx];
    barrier(CLK_LOCAL_MEM_FENCE);  // everyone done reading before the next slice overwrites
  }
  if (row < m && col < n) c[row * n + col] = acc;
}
