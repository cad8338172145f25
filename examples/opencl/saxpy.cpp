// An ordinary OpenCL program, nothing hetmm-specific in it: it takes the first platform the ICD
// loader offers, and when the device has fine-grain system SVM it hands the kernel plain
// std::vector memory (no buffers, no copies, no maps); otherwise it uses buffers. `make demo` runs
// it with the loader pointed at hetmm (OCL_ICD_VENDORS) and HETMM_REPORT=1, which prints at exit
// what the memory did: faults, migrations, CPU fault-backs, modeled time behind PCIe or NVLink.
#define CL_TARGET_OPENCL_VERSION 300
#include <CL/cl.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

const char* kSource = R"(
__kernel void saxpy(float a, __global const float* x, __global float* y) {
  size_t i = get_global_id(0);
  y[i] = a * x[i] + y[i];
}
)";

void check(cl_int rc, const char* what) {
  if (rc != CL_SUCCESS) {
    std::fprintf(stderr, "%s failed: %d\n", what, rc);
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : std::size_t{1} << 24;
  cl_platform_id platform;
  cl_uint count = 0;
  check(clGetPlatformIDs(1, &platform, &count), "clGetPlatformIDs");
  cl_device_id device;
  check(clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 1, &device, nullptr), "clGetDeviceIDs");
  char name[256], version[512];
  clGetDeviceInfo(device, CL_DEVICE_NAME, sizeof name, name, nullptr);
  clGetDeviceInfo(device, CL_DEVICE_VERSION, sizeof version, version, nullptr);
  cl_device_svm_capabilities svm = 0;
  clGetDeviceInfo(device, CL_DEVICE_SVM_CAPABILITIES, sizeof svm, &svm, nullptr);
  const bool system_svm = (svm & CL_DEVICE_SVM_FINE_GRAIN_SYSTEM) != 0;
  std::printf("OpenCL device: %s\n  %s\n  fine-grain system SVM: %s\n", name, version,
              system_svm ? "yes" : "no");

  cl_int rc;
  cl_context ctx = clCreateContext(nullptr, 1, &device, nullptr, nullptr, &rc);
  check(rc, "clCreateContext");
  cl_command_queue q = clCreateCommandQueueWithProperties(ctx, device, nullptr, &rc);
  check(rc, "clCreateCommandQueueWithProperties");
  cl_program prog = clCreateProgramWithSource(ctx, 1, &kSource, nullptr, &rc);
  check(rc, "clCreateProgramWithSource");
  if (clBuildProgram(prog, 1, &device, "", nullptr, nullptr) != CL_SUCCESS) {
    char log[4096] = "";
    clGetProgramBuildInfo(prog, device, CL_PROGRAM_BUILD_LOG, sizeof log, log, nullptr);
    std::fprintf(stderr, "build failed:\n%s\n", log);
    return 1;
  }
  cl_kernel k = clCreateKernel(prog, "saxpy", &rc);
  check(rc, "clCreateKernel");

  std::vector<float> x(n), y(n);
  for (std::size_t i = 0; i < n; ++i) {
    x[i] = static_cast<float>(i % 1000);
    y[i] = 1.0f;
  }
  const float a = 2.0f;
  cl_mem bx = nullptr, by = nullptr;
  check(clSetKernelArg(k, 0, sizeof a, &a), "clSetKernelArg(a)");
  if (system_svm) {  // the vectors' own memory, as any pointer in the process
    check(clSetKernelArgSVMPointer(k, 1, x.data()), "clSetKernelArgSVMPointer(x)");
    check(clSetKernelArgSVMPointer(k, 2, y.data()), "clSetKernelArgSVMPointer(y)");
  } else {
    bx = clCreateBuffer(ctx, CL_MEM_READ_ONLY | CL_MEM_USE_HOST_PTR, n * 4, x.data(), &rc);
    check(rc, "clCreateBuffer(x)");
    by = clCreateBuffer(ctx, CL_MEM_READ_WRITE | CL_MEM_USE_HOST_PTR, n * 4, y.data(), &rc);
    check(rc, "clCreateBuffer(y)");
    check(clSetKernelArg(k, 1, sizeof bx, &bx), "clSetKernelArg(x)");
    check(clSetKernelArg(k, 2, sizeof by, &by), "clSetKernelArg(y)");
  }
  const int launches = 5;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < launches; ++i)
    check(clEnqueueNDRangeKernel(q, k, 1, nullptr, &n, nullptr, 0, nullptr, nullptr),
          "clEnqueueNDRangeKernel");
  check(clFinish(q), "clFinish");
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (by != nullptr) {  // a mapping of a USE_HOST_PTR buffer is y itself
    void* p = clEnqueueMapBuffer(q, by, CL_TRUE, CL_MAP_READ, 0, n * 4, 0, nullptr, nullptr, &rc);
    check(rc, "clEnqueueMapBuffer");
    clEnqueueUnmapMemObject(q, by, p, 0, nullptr, nullptr);
    clFinish(q);
  }
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < n; ++i)
    wrong += std::fabs(y[i] - (1.0f + launches * a * x[i])) > 1e-3f * (1.0f + y[i]);
  std::printf("saxpy over %zu floats x %d launches: %.1f ms, %.2f GB/s, %zu wrong\n", n, launches,
              s * 1e3, 3.0 * 4 * n * launches / s / 1e9, wrong);
  if (bx != nullptr) clReleaseMemObject(bx);
  if (by != nullptr) clReleaseMemObject(by);
  clReleaseKernel(k);
  clReleaseProgram(prog);
  clReleaseCommandQueue(q);
  clReleaseContext(ctx);
  return wrong == 0 ? 0 : 1;
}
