// One Jacobi sweep of the 5-point stencil for the Poisson equation  -laplace(u) = f  on an
// nx x ny grid with spacing h (h2 = h*h): every interior point becomes the average of its four
// neighbours plus the source term; boundary points keep their (Dirichlet) values. The test
// ping-pongs u and u_new over several launches, so a sweep reads what the previous launch wrote.
__kernel void jacobi5(__global const float* u, __global const float* f, __global float* u_new,
                      int nx, int ny, float h2) {
  const int x = (int)get_global_id(0);
  const int y = (int)get_global_id(1);
  if (x >= nx || y >= ny) return;
  const int i = y * nx + x;
  if (x == 0 || y == 0 || x == nx - 1 || y == ny - 1) {
    u_new[i] = u[i];
    return;
  }
  u_new[i] = 0.25f * (u[i - 1] + u[i + 1] + u[i - nx] + u[i + nx] + h2 * f[i]);
}
