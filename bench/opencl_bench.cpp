// The OpenCL platform's costs beside PoCL's, in one run (make bench-opencl, docs/PERFORMANCE.md):
//   launch   enqueue of an empty kernel to its completion (clFinish), median of 200 per round
//   write    clEnqueueWriteBuffer, blocking, 64 MiB
//   read     clEnqueueReadBuffer, blocking, 64 MiB
//   map      clEnqueueMapBuffer + memcpy out + unmap, 64 MiB
// The platforms take turns, round by round (15 rounds; medians over them), with a plain memcpy
// of the same size in each round as the roof.
// Every platform the loader offers is measured (point OCL_ICD_VENDORS at a folder holding both
// hetmm.icd and pocl.icd); the last column is hetmm's figure over PoCL's (> 1: hetmm better).
#define CL_TARGET_OPENCL_VERSION 300
#include <CL/cl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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

// One platform's context, queue, empty kernel and buffer, kept for the whole run so that the
// platforms can take turns (a busy moment of the machine then costs both alike).
struct Setup {
  std::string name;
  cl_context ctx = nullptr;
  cl_command_queue q = nullptr;
  cl_program prog = nullptr;
  cl_kernel k = nullptr;
  cl_mem buf = nullptr;
  std::vector<double> launch_s, write_s, read_s, map_s;
};

Setup make_setup(cl_platform_id platform, std::size_t bytes) {
  Setup s;
  char name[256];
  clGetPlatformInfo(platform, CL_PLATFORM_NAME, sizeof name, name, nullptr);
  s.name = name;
  cl_device_id dev;
  check(clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 1, &dev, nullptr), "clGetDeviceIDs");
  cl_int rc;
  s.ctx = clCreateContext(nullptr, 1, &dev, nullptr, nullptr, &rc);
  check(rc, "clCreateContext");
  s.q = clCreateCommandQueueWithProperties(s.ctx, dev, nullptr, &rc);
  check(rc, "clCreateCommandQueue");
  const char* src = "__kernel void empty(__global int* p) {}";
  s.prog = clCreateProgramWithSource(s.ctx, 1, &src, nullptr, &rc);
  check(rc, "clCreateProgramWithSource");
  check(clBuildProgram(s.prog, 1, &dev, "", nullptr, nullptr), "clBuildProgram");
  s.k = clCreateKernel(s.prog, "empty", &rc);
  check(rc, "clCreateKernel");
  s.buf = clCreateBuffer(s.ctx, CL_MEM_READ_WRITE, bytes, nullptr, &rc);
  check(rc, "clCreateBuffer");
  check(clSetKernelArg(s.k, 0, sizeof s.buf, &s.buf), "clSetKernelArg");
  return s;
}

void release(Setup& s) {
  clReleaseMemObject(s.buf);
  clReleaseKernel(s.k);
  clReleaseProgram(s.prog);
  clReleaseCommandQueue(s.q);
  clReleaseContext(s.ctx);
}

// One round on one platform: `launches` launches (their median), then one of each transfer.
void round(Setup& s, int launches, std::vector<char>& host) {
  const std::size_t bytes = host.size();
  std::size_t one = 1;
  std::vector<double> t;
  for (int i = 0; i < launches; ++i) {
    auto t0 = Clock::now();
    check(clEnqueueNDRangeKernel(s.q, s.k, 1, nullptr, &one, &one, 0, nullptr, nullptr), "launch");
    check(clFinish(s.q), "clFinish");
    t.push_back(seconds_since(t0));
  }
  s.launch_s.push_back(median(t));
  auto time = [](auto&& op) {
    auto t0 = Clock::now();
    op();
    return seconds_since(t0);
  };
  s.write_s.push_back(time([&] {
    check(clEnqueueWriteBuffer(s.q, s.buf, CL_TRUE, 0, bytes, host.data(), 0, nullptr, nullptr),
          "write");
  }));
  s.read_s.push_back(time([&] {
    check(clEnqueueReadBuffer(s.q, s.buf, CL_TRUE, 0, bytes, host.data(), 0, nullptr, nullptr),
          "read");
  }));
  s.map_s.push_back(time([&] {
    cl_int rc;
    void* p = clEnqueueMapBuffer(s.q, s.buf, CL_TRUE, CL_MAP_READ, 0, bytes, 0, nullptr, nullptr,
                                 &rc);
    check(rc, "map");
    std::memcpy(host.data(), p, bytes);
    check(clEnqueueUnmapMemObject(s.q, s.buf, p, 0, nullptr, nullptr), "unmap");
    check(clFinish(s.q), "clFinish");
  }));
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 15, launches = 200;
  std::size_t mib = 64;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) rounds = 5, launches = 100, mib = 16;
  }
  const std::size_t bytes = mib << 20;
  cl_uint n = 0;
  check(clGetPlatformIDs(0, nullptr, &n), "clGetPlatformIDs");
  std::vector<cl_platform_id> platforms(n);
  check(clGetPlatformIDs(n, platforms.data(), nullptr), "clGetPlatformIDs");
  std::vector<Setup> setups;
  for (cl_platform_id p : platforms) setups.push_back(make_setup(p, bytes));

  // memcpy between two host buffers of the same size, in the same rounds: the roof for every
  // transfer column.
  std::vector<char> host(bytes, 1), other(bytes, 2);
  std::vector<double> memcpy_s;
  for (Setup& s : setups) round(s, 10, host);  // first touches and warm threads, not counted
  for (Setup& s : setups) s.launch_s.clear(), s.write_s.clear(), s.read_s.clear(), s.map_s.clear();
  for (int r = 0; r < rounds; ++r) {
    for (Setup& s : setups) round(s, launches, host);
    auto t0 = Clock::now();
    std::memcpy(other.data(), host.data(), bytes);
    memcpy_s.push_back(seconds_since(t0));
  }
  const double gb = static_cast<double>(bytes) / 1e9;
  std::printf("%d rounds, platforms taking turns; %zu MiB transfers; memcpy %.2f GB/s\n", rounds,
              mib, gb / median(memcpy_s));
  std::printf("%-36s %10s %11s %11s %11s\n", "platform", "launch us", "write GB/s", "read GB/s",
              "map GB/s");
  const Setup* h = nullptr;
  const Setup* p = nullptr;
  for (const Setup& s : setups) {
    std::printf("%-36s %10.1f %11.2f %11.2f %11.2f\n", s.name.c_str(), median(s.launch_s) * 1e6,
                gb / median(s.write_s), gb / median(s.read_s), gb / median(s.map_s));
    if (s.name == "hetmm") h = &s;
    if (s.name == "Portable Computing Language") p = &s;
  }
  if (h != nullptr && p != nullptr)
    std::printf("%-36s %10.2f %11.2f %11.2f %11.2f\n", "hetmm over PoCL (>1: hetmm better)",
                median(p->launch_s) / median(h->launch_s), median(p->write_s) / median(h->write_s),
                median(p->read_s) / median(h->read_s), median(p->map_s) / median(h->map_s));
  for (Setup& s : setups) release(s);
  return 0;
}
