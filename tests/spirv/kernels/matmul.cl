// Dense matrix multiply C = A * B, row-major, one work-item per element of C.
//
// A 2D NDRange: dimension 0 walks columns and dimension 1 rows, so neighbouring work-items read
// neighbouring elements of B and C. The NDRange may be rounded up to a multiple of the
// work-group size, hence the bounds check. Every element reads a whole row of A and a whole
// column of B: many loads through the device MMU per store, spread over many pages.
__kernel void matmul(__global const float* a,  // m x k
                     __global const float* b,  // k x n
                     __global float* c,        // m x n
                     int m, int n, int k) {
  const int col = (int)get_global_id(0);
  const int row = (int)get_global_id(1);
  if (row >= m || col >= n) return;
  float acc = 0.0f;
  for (int i = 0; i < k; ++i) acc += a[row * k + i] * b[i * n + col];
  c[row * n + col] = acc;
}
