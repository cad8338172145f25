// The OpenCL platform's costs beside PoCL's, in one run (make bench-opencl, docs/PERFORMANCE.md):
//   launch   enqueue of an empty kernel to its completion (clFinish), median of many
//   write    clEnqueueWriteBuffer, blocking, 64 MiB
//   read     clEnqueueReadBuffer, blocking, 64 MiB
//   map      clEnqueueMapBuffer + memcpy out + unmap, 64 MiB
// Every platform the loader offers is measured (point OCL_ICD_VENDORS at a folder holding both
// hetmm.icd and pocl.icd); the last column is hetmm's figure over PoCL's (> 1: hetmm better).
#define CL_TARGET_OPENCL_VERSION 300
#include <CL/cl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

void check(cl_int rc, const char* what) {
  if (rc != CL_SUCCESS) {
    std::fprintf(stderr, "%s failed: %d\n", what, rc);
    std::exit(1);
  }
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Result {
  double launch_us, write_gbs, read_gbs, map_gbs;
};

Result measure(cl_platform_id platform, int launches, std::size_t bytes, int reps) {
  cl_device_id dev;
  check(clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 1, &dev, nullptr), "clGetDeviceIDs");
  cl_int rc;
  cl_context ctx = clCreateContext(nullptr, 1, &dev, nullptr, nullptr, &rc);
  check(rc, "clCreateContext");
  cl_command_queue q = clCreateCommandQueueWithProperties(ctx, dev, nullptr, &rc);
  check(rc, "clCreateCommandQueue");
  const char* src = "__kernel void empty(__global int* p) {}";
  cl_program prog = clCreateProgramWithSource(ctx, 1, &src, nullptr, &rc);
  check(rc, "clCreateProgramWithSource");
  check(clBuildProgram(prog, 1, &dev, "", nullptr, nullptr), "clBuildProgram");
  cl_kernel k = clCreateKernel(prog, "empty", &rc);
  check(rc, "clCreateKernel");
  cl_mem buf = clCreateBuffer(ctx, CL_MEM_READ_WRITE, bytes, nullptr, &rc);
  check(rc, "clCreateBuffer");
  check(clSetKernelArg(k, 0, sizeof buf, &buf), "clSetKernelArg");

  Result r{};
  std::size_t one = 1;
  std::vector<double> t;
  for (int i = 0; i < launches + 10; ++i) {
    auto t0 = Clock::now();
    check(clEnqueueNDRangeKernel(q, k, 1, nullptr, &one, &one, 0, nullptr, nullptr), "launch");
    check(clFinish(q), "clFinish");
    if (i >= 10) t.push_back(seconds_since(t0));  // the first ones warm caches and threads
  }
  r.launch_us = median(t) * 1e6;

  std::vector<char> host(bytes, 1);
  auto bandwidth = [&](auto&& op) {
    op();  // first touch of both sides outside the timing
    std::vector<double> s;
    for (int i = 0; i < reps; ++i) {
      auto t0 = Clock::now();
      op();
      s.push_back(seconds_since(t0));
    }
    return static_cast<double>(bytes) / median(s) / 1e9;
  };
  r.write_gbs = bandwidth([&] {
    check(clEnqueueWriteBuffer(q, buf, CL_TRUE, 0, bytes, host.data(), 0, nullptr, nullptr), "write");
  });
  r.read_gbs = bandwidth([&] {
    check(clEnqueueReadBuffer(q, buf, CL_TRUE, 0, bytes, host.data(), 0, nullptr, nullptr), "read");
  });
  r.map_gbs = bandwidth([&] {
    void* p = clEnqueueMapBuffer(q, buf, CL_TRUE, CL_MAP_READ, 0, bytes, 0, nullptr, nullptr, &rc);
    check(rc, "map");
    std::memcpy(host.data(), p, bytes);
    check(clEnqueueUnmapMemObject(q, buf, p, 0, nullptr, nullptr), "unmap");
    check(clFinish(q), "clFinish");
  });
  clReleaseMemObject(buf);
  clReleaseKernel(k);
  clReleaseProgram(prog);
  clReleaseCommandQueue(q);
  clReleaseContext(ctx);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  int launches = 2000, reps = 5;
  std::size_t mib = 64;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) launches = 200, reps = 3, mib = 16;
  }
  cl_uint n = 0;
  check(clGetPlatformIDs(0, nullptr, &n), "clGetPlatformIDs");
  std::vector<cl_platform_id> platforms(n);
  check(clGetPlatformIDs(n, platforms.data(), nullptr), "clGetPlatformIDs");
  std::map<std::string, Result> results;
  std::printf("%-32s %12s %12s %12s %12s\n", "platform", "launch us", "write GB/s", "read GB/s",
              "map GB/s");
  for (cl_platform_id p : platforms) {
    char name[256];
    clGetPlatformInfo(p, CL_PLATFORM_NAME, sizeof name, name, nullptr);
    Result r = measure(p, launches, mib << 20, reps);
    results[name] = r;
    std::printf("%-32s %12.1f %12.2f %12.2f %12.2f\n", name, r.launch_us, r.write_gbs, r.read_gbs,
                r.map_gbs);
  }
  auto h = results.find("hetmm");
  auto p = results.find("Portable Computing Language");
  if (h != results.end() && p != results.end()) {
    const Result& a = h->second;
    const Result& b = p->second;
    std::printf("%-32s %12.2f %12.2f %12.2f %12.2f\n", "hetmm over PoCL (>1: hetmm better)",
                b.launch_us / a.launch_us, a.write_gbs / b.write_gbs, a.read_gbs / b.read_gbs,
                a.map_gbs / b.map_gbs);
  }
  return 0;
}
