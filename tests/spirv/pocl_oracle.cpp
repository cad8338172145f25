// The PoCL oracle over the standard OpenCL API (see pocl_oracle.hpp).
#include "pocl_oracle.hpp"

#include <chrono>
#include <map>
#include <mutex>
#include <utility>

#ifndef HETMM_NO_OPENCL
// The headers default to the newest version and print a message about it: say which API we use.
#define CL_TARGET_OPENCL_VERSION 300
#include <CL/cl.h>
#endif

namespace hetmm::test::pocl {

std::string error_name(int code) {
  switch (code) {
#define HETMM_CL_ERR(name, value) \
  case value:                     \
    return #name;
    HETMM_CL_ERR(CL_SUCCESS, 0)
    HETMM_CL_ERR(CL_DEVICE_NOT_FOUND, -1)
    HETMM_CL_ERR(CL_DEVICE_NOT_AVAILABLE, -2)
    HETMM_CL_ERR(CL_COMPILER_NOT_AVAILABLE, -3)
    HETMM_CL_ERR(CL_MEM_OBJECT_ALLOCATION_FAILURE, -4)
    HETMM_CL_ERR(CL_OUT_OF_RESOURCES, -5)
    HETMM_CL_ERR(CL_OUT_OF_HOST_MEMORY, -6)
    HETMM_CL_ERR(CL_BUILD_PROGRAM_FAILURE, -11)
    HETMM_CL_ERR(CL_MISALIGNED_SUB_BUFFER_OFFSET, -13)
    HETMM_CL_ERR(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST, -14)
    HETMM_CL_ERR(CL_COMPILE_PROGRAM_FAILURE, -15)
    HETMM_CL_ERR(CL_LINK_PROGRAM_FAILURE, -17)
    HETMM_CL_ERR(CL_INVALID_VALUE, -30)
    HETMM_CL_ERR(CL_INVALID_DEVICE_TYPE, -31)
    HETMM_CL_ERR(CL_INVALID_PLATFORM, -32)
    HETMM_CL_ERR(CL_INVALID_DEVICE, -33)
    HETMM_CL_ERR(CL_INVALID_CONTEXT, -34)
    HETMM_CL_ERR(CL_INVALID_QUEUE_PROPERTIES, -35)
    HETMM_CL_ERR(CL_INVALID_COMMAND_QUEUE, -36)
    HETMM_CL_ERR(CL_INVALID_HOST_PTR, -37)
    HETMM_CL_ERR(CL_INVALID_MEM_OBJECT, -38)
    HETMM_CL_ERR(CL_INVALID_BINARY, -42)
    HETMM_CL_ERR(CL_INVALID_BUILD_OPTIONS, -43)
    HETMM_CL_ERR(CL_INVALID_PROGRAM, -44)
    HETMM_CL_ERR(CL_INVALID_PROGRAM_EXECUTABLE, -45)
    HETMM_CL_ERR(CL_INVALID_KERNEL_NAME, -46)
    HETMM_CL_ERR(CL_INVALID_KERNEL_DEFINITION, -47)
    HETMM_CL_ERR(CL_INVALID_KERNEL, -48)
    HETMM_CL_ERR(CL_INVALID_ARG_INDEX, -49)
    HETMM_CL_ERR(CL_INVALID_ARG_VALUE, -50)
    HETMM_CL_ERR(CL_INVALID_ARG_SIZE, -51)
    HETMM_CL_ERR(CL_INVALID_KERNEL_ARGS, -52)
    HETMM_CL_ERR(CL_INVALID_WORK_DIMENSION, -53)
    HETMM_CL_ERR(CL_INVALID_WORK_GROUP_SIZE, -54)
    HETMM_CL_ERR(CL_INVALID_WORK_ITEM_SIZE, -55)
    HETMM_CL_ERR(CL_INVALID_GLOBAL_OFFSET, -56)
    HETMM_CL_ERR(CL_INVALID_EVENT_WAIT_LIST, -57)
    HETMM_CL_ERR(CL_INVALID_EVENT, -58)
    HETMM_CL_ERR(CL_INVALID_OPERATION, -59)
    HETMM_CL_ERR(CL_INVALID_BUFFER_SIZE, -61)
    HETMM_CL_ERR(CL_INVALID_GLOBAL_WORK_SIZE, -63)
    HETMM_CL_ERR(CL_INVALID_PROPERTY, -64)
    HETMM_CL_ERR(CL_INVALID_COMPILER_OPTIONS, -66)
    HETMM_CL_ERR(CL_INVALID_LINKER_OPTIONS, -67)
    HETMM_CL_ERR(CL_PLATFORM_NOT_FOUND_KHR, -1001)
#undef HETMM_CL_ERR
    default:
      return "CL error " + std::to_string(code);
  }
}

#ifdef HETMM_NO_OPENCL

// Built without the OpenCL headers/library: there is no oracle, and the tests skip.
struct Oracle::Impl {};
Oracle* Oracle::instance() { return nullptr; }
std::string Oracle::unavailable_reason() {
  return "hetmm's tests were built without OpenCL (find_package(OpenCL) failed): no PoCL oracle";
}
Oracle::Oracle(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Oracle::~Oracle() = default;
std::string Oracle::device_name() const { return {}; }
void Oracle::build(const std::string&, const std::string&) {
  throw Error(unavailable_reason(), -1);
}
Timing Oracle::run(const std::string&, const std::string&, const std::string&, Range, Range,
                   const std::vector<Arg>&) {
  throw Error(unavailable_reason(), -1);
}

#else  // HETMM_NO_OPENCL

namespace {

constexpr const char* kPoclPlatformName = "Portable Computing Language";

[[noreturn]] void fail(const std::string& call, cl_int code, std::string log = {}) {
  std::string what = "OpenCL (PoCL oracle): " + call + " failed with " + error_name(code) + " (" +
                     std::to_string(code) + ")";
  if (!log.empty()) what += "\nbuild log:\n" + log;
  throw Error(what, code, std::move(log));
}
void check(cl_int code, const char* call) {
  if (code != CL_SUCCESS) fail(call, code);
}

std::string platform_string(cl_platform_id p, cl_platform_info what) {
  std::size_t n = 0;
  if (clGetPlatformInfo(p, what, 0, nullptr, &n) != CL_SUCCESS || n == 0) return {};
  std::string s(n, '\0');
  if (clGetPlatformInfo(p, what, n, s.data(), nullptr) != CL_SUCCESS) return {};
  while (!s.empty() && s.back() == '\0') s.pop_back();
  return s;
}

// Releases an OpenCL object at scope exit (kernels and buffers of one run).
template <class T, cl_int (*Release)(T)>
struct Handle {
  T h = nullptr;
  Handle() = default;
  explicit Handle(T v) : h(v) {}
  ~Handle() {
    if (h != nullptr) Release(h);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& o) noexcept : h(std::exchange(o.h, nullptr)) {}
};
using MemHandle = Handle<cl_mem, clReleaseMemObject>;
using KernelHandle = Handle<cl_kernel, clReleaseKernel>;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

struct Oracle::Impl {
  cl_platform_id platform = nullptr;
  cl_device_id device = nullptr;
  cl_context context = nullptr;
  cl_command_queue queue = nullptr;
  std::mutex mutex;  // one run at a time: the cache and the queue are shared
  std::map<std::pair<std::string, std::string>, cl_program> programs;  // (options, source)

  ~Impl() {
    for (auto& [key, prog] : programs) clReleaseProgram(prog);
    if (queue != nullptr) clReleaseCommandQueue(queue);
    if (context != nullptr) clReleaseContext(context);
  }

  // The built program for (source, options); built on first use. Caller holds the mutex.
  cl_program get(const std::string& source, const std::string& options, Timing& timing) {
    auto key = std::make_pair(options, source);
    if (auto it = programs.find(key); it != programs.end()) {
      timing.cached = true;
      return it->second;
    }
    const char* text = source.c_str();
    std::size_t len = source.size();
    cl_int err = CL_SUCCESS;
    cl_program prog = clCreateProgramWithSource(context, 1, &text, &len, &err);
    check(err, "clCreateProgramWithSource");
    auto t0 = std::chrono::steady_clock::now();
    err = clBuildProgram(prog, 1, &device, options.c_str(), nullptr, nullptr);
    timing.build_seconds = seconds_since(t0);
    if (err != CL_SUCCESS) {
      std::string log;
      std::size_t n = 0;
      if (clGetProgramBuildInfo(prog, device, CL_PROGRAM_BUILD_LOG, 0, nullptr, &n) ==
              CL_SUCCESS &&
          n > 0) {
        log.resize(n);
        clGetProgramBuildInfo(prog, device, CL_PROGRAM_BUILD_LOG, n, log.data(), nullptr);
        while (!log.empty() && log.back() == '\0') log.pop_back();
      }
      clReleaseProgram(prog);
      fail("clBuildProgram(\"" + options + "\")", err, std::move(log));
    }
    programs.emplace(std::move(key), prog);
    return prog;
  }
};

namespace {
// Finds PoCL once per process; the reason is kept for the tests' skip message.
struct Discovery {
  std::unique_ptr<Oracle::Impl> impl;
  std::string reason;
};

Discovery discover() {
  Discovery d;
  cl_uint count = 0;
  cl_int err = clGetPlatformIDs(0, nullptr, &count);
  if (err != CL_SUCCESS || count == 0) {
    // -1001 (CL_PLATFORM_NOT_FOUND_KHR) is what the ICD loader says when no ICD is installed.
    d.reason = "no OpenCL platform (clGetPlatformIDs: " + error_name(err) +
               "); install pocl-opencl-icd for the PoCL oracle";
    return d;
  }
  std::vector<cl_platform_id> platforms(count);
  check(clGetPlatformIDs(count, platforms.data(), nullptr), "clGetPlatformIDs");
  std::string seen;
  for (cl_platform_id p : platforms) {
    std::string name = platform_string(p, CL_PLATFORM_NAME);
    seen += (seen.empty() ? "" : ", ") + ("\"" + name + "\"");
    if (name != kPoclPlatformName) continue;
    auto impl = std::make_unique<Oracle::Impl>();
    impl->platform = p;
    cl_uint ndev = 0;
    err = clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 1, &impl->device, &ndev);
    if (err != CL_SUCCESS || ndev == 0) {
      d.reason = "the PoCL platform has no device (" + error_name(err) + ")";
      return d;
    }
    impl->context = clCreateContext(nullptr, 1, &impl->device, nullptr, nullptr, &err);
    if (err != CL_SUCCESS) {
      d.reason = "clCreateContext on PoCL failed: " + error_name(err);
      return d;
    }
    impl->queue = clCreateCommandQueueWithProperties(impl->context, impl->device, nullptr, &err);
    if (err != CL_SUCCESS) {
      d.reason = "clCreateCommandQueueWithProperties on PoCL failed: " + error_name(err);
      return d;
    }
    d.impl = std::move(impl);
    return d;
  }
  d.reason = std::string("no \"") + kPoclPlatformName +
             "\" OpenCL platform (found: " + (seen.empty() ? "none" : seen) +
             "); install pocl-opencl-icd for the PoCL oracle";
  return d;
}

Discovery& discovery() {
  static Discovery d = [] {
    try {
      return discover();
    } catch (const Error& e) {
      Discovery failed;
      failed.reason = e.what();
      return failed;
    }
  }();
  return d;
}
}  // namespace

Oracle* Oracle::instance() {
  static Oracle* oracle = [] {
    Discovery& d = discovery();
    return d.impl ? new Oracle(std::move(d.impl)) : nullptr;  // lives for the process
  }();
  return oracle;
}

std::string Oracle::unavailable_reason() {
  instance();
  return discovery().reason;
}

Oracle::Oracle(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Oracle::~Oracle() = default;

std::string Oracle::device_name() const {
  std::size_t n = 0;
  if (clGetDeviceInfo(impl_->device, CL_DEVICE_NAME, 0, nullptr, &n) != CL_SUCCESS) return {};
  std::string s(n, '\0');
  clGetDeviceInfo(impl_->device, CL_DEVICE_NAME, n, s.data(), nullptr);
  while (!s.empty() && s.back() == '\0') s.pop_back();
  return s;
}

void Oracle::build(const std::string& source, const std::string& options) {
  std::lock_guard lock(impl_->mutex);
  Timing t;
  impl_->get(source, options, t);
}

Timing Oracle::run(const std::string& source, const std::string& options,
                   const std::string& kernel, Range global, Range local,
                   const std::vector<Arg>& args) {
  std::lock_guard lock(impl_->mutex);
  Timing timing;
  cl_program prog = impl_->get(source, options, timing);
  auto t0 = std::chrono::steady_clock::now();

  cl_int err = CL_SUCCESS;
  KernelHandle k(clCreateKernel(prog, kernel.c_str(), &err));
  if (err != CL_SUCCESS) fail("clCreateKernel(\"" + kernel + "\")", err);

  std::vector<MemHandle> mems;  // one per buffer argument, released when the run is over
  mems.reserve(args.size());
  for (std::size_t i = 0; i < args.size(); ++i) {
    const Arg& a = args[i];
    const cl_uint index = static_cast<cl_uint>(i);
    const std::string what = "clSetKernelArg(" + kernel + ", " + std::to_string(i) + ")";
    switch (a.kind) {
      case Arg::Kind::buffer: {
        // Every buffer starts as a copy of the caller's memory, outputs included, so elements
        // a kernel leaves alone come back unchanged (as they stay on hetmm's side).
        cl_mem_flags flags = a.access == Access::in ? CL_MEM_READ_ONLY : CL_MEM_READ_WRITE;
        if (a.bytes > 0) flags |= CL_MEM_COPY_HOST_PTR;
        cl_mem m = clCreateBuffer(impl_->context, flags, a.bytes > 0 ? a.bytes : 1,
                                  a.bytes > 0 ? a.host : nullptr, &err);
        if (err != CL_SUCCESS) fail("clCreateBuffer(" + std::to_string(a.bytes) + " bytes)", err);
        mems.emplace_back(m);
        check(clSetKernelArg(k.h, index, sizeof(cl_mem), &m), what.c_str());
        break;
      }
      case Arg::Kind::value:
        check(clSetKernelArg(k.h, index, a.value.size(), a.value.data()), what.c_str());
        break;
      case Arg::Kind::local:
        check(clSetKernelArg(k.h, index, a.bytes, nullptr), what.c_str());
        break;
    }
  }

  auto dims_of = [](const Range& r) -> cl_uint {
    if (r.dims != 0) return r.dims;
    return r.z > 1 ? 3 : r.y > 1 ? 2 : 1;
  };
  const cl_uint dims = dims_of(global);
  const std::size_t g[3] = {global.x, global.y, global.z};
  const std::size_t l[3] = {local.x, local.y, local.z};
  err = clEnqueueNDRangeKernel(impl_->queue, k.h, dims, nullptr, g, local.x == 0 ? nullptr : l, 0,
                               nullptr, nullptr);
  if (err != CL_SUCCESS) fail("clEnqueueNDRangeKernel(" + kernel + ")", err);

  std::size_t m = 0;
  for (const Arg& a : args) {
    if (a.kind != Arg::Kind::buffer) continue;
    cl_mem mem = mems[m++].h;
    if (a.access == Access::in || a.bytes == 0) continue;
    check(clEnqueueReadBuffer(impl_->queue, mem, CL_FALSE, 0, a.bytes, a.host, 0, nullptr,
                              nullptr),
          "clEnqueueReadBuffer");
  }
  // clFinish reports an asynchronous kernel failure too (e.g. CL_OUT_OF_RESOURCES).
  check(clFinish(impl_->queue), "clFinish");
  timing.run_seconds = seconds_since(t0);
  return timing;
}

#endif  // HETMM_NO_OPENCL

}  // namespace hetmm::test::pocl
