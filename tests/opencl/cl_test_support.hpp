// Shared helpers for the OpenCL platform tests. Everything goes through the system's ICD loader
// (-lOpenCL): the tests see the hetmm platform exactly as any OpenCL program does, so they never
// include src/ headers and always pick the platform by its name (PoCL may be installed too).
#pragma once

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 300
#endif
// Some tests call the deprecated 1.x entry points (clCreateCommandQueue, clEnqueueMarker, ...).
#ifndef CL_USE_DEPRECATED_OPENCL_1_1_APIS
#define CL_USE_DEPRECATED_OPENCL_1_1_APIS
#endif
#ifndef CL_USE_DEPRECATED_OPENCL_1_2_APIS
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#endif
#include <CL/cl.h>
#include <CL/cl_ext.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace cltest {

// Names for the codes the tests meet, so a failed expectation says more than a number.
inline const char* ErrorName(cl_int code) {
  switch (code) {
#define CLTEST_NAME(c) \
  case c: return #c;
    CLTEST_NAME(CL_SUCCESS)
    CLTEST_NAME(CL_DEVICE_NOT_FOUND)
    CLTEST_NAME(CL_COMPILER_NOT_AVAILABLE)
    CLTEST_NAME(CL_MEM_OBJECT_ALLOCATION_FAILURE)
    CLTEST_NAME(CL_OUT_OF_RESOURCES)
    CLTEST_NAME(CL_OUT_OF_HOST_MEMORY)
    CLTEST_NAME(CL_PROFILING_INFO_NOT_AVAILABLE)
    CLTEST_NAME(CL_MEM_COPY_OVERLAP)
    CLTEST_NAME(CL_BUILD_PROGRAM_FAILURE)
    CLTEST_NAME(CL_MISALIGNED_SUB_BUFFER_OFFSET)
    CLTEST_NAME(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST)
    CLTEST_NAME(CL_COMPILE_PROGRAM_FAILURE)
    CLTEST_NAME(CL_LINKER_NOT_AVAILABLE)
    CLTEST_NAME(CL_LINK_PROGRAM_FAILURE)
    CLTEST_NAME(CL_KERNEL_ARG_INFO_NOT_AVAILABLE)
    CLTEST_NAME(CL_INVALID_VALUE)
    CLTEST_NAME(CL_INVALID_DEVICE_TYPE)
    CLTEST_NAME(CL_INVALID_PLATFORM)
    CLTEST_NAME(CL_INVALID_DEVICE)
    CLTEST_NAME(CL_INVALID_CONTEXT)
    CLTEST_NAME(CL_INVALID_QUEUE_PROPERTIES)
    CLTEST_NAME(CL_INVALID_COMMAND_QUEUE)
    CLTEST_NAME(CL_INVALID_HOST_PTR)
    CLTEST_NAME(CL_INVALID_MEM_OBJECT)
    CLTEST_NAME(CL_INVALID_BINARY)
    CLTEST_NAME(CL_INVALID_BUILD_OPTIONS)
    CLTEST_NAME(CL_INVALID_PROGRAM)
    CLTEST_NAME(CL_INVALID_PROGRAM_EXECUTABLE)
    CLTEST_NAME(CL_INVALID_KERNEL_NAME)
    CLTEST_NAME(CL_INVALID_KERNEL)
    CLTEST_NAME(CL_INVALID_ARG_INDEX)
    CLTEST_NAME(CL_INVALID_ARG_VALUE)
    CLTEST_NAME(CL_INVALID_ARG_SIZE)
    CLTEST_NAME(CL_INVALID_KERNEL_ARGS)
    CLTEST_NAME(CL_INVALID_WORK_DIMENSION)
    CLTEST_NAME(CL_INVALID_WORK_GROUP_SIZE)
    CLTEST_NAME(CL_INVALID_WORK_ITEM_SIZE)
    CLTEST_NAME(CL_INVALID_GLOBAL_OFFSET)
    CLTEST_NAME(CL_INVALID_EVENT_WAIT_LIST)
    CLTEST_NAME(CL_INVALID_EVENT)
    CLTEST_NAME(CL_INVALID_OPERATION)
    CLTEST_NAME(CL_INVALID_BUFFER_SIZE)
    CLTEST_NAME(CL_INVALID_GLOBAL_WORK_SIZE)
    CLTEST_NAME(CL_INVALID_PROPERTY)
    CLTEST_NAME(CL_INVALID_SPEC_ID)
#undef CLTEST_NAME
    default: return "(unnamed OpenCL code)";
  }
}

// Compares OpenCL codes and prints both by name; streamable like any gtest assertion.
inline ::testing::AssertionResult ClCodeIs(const char*, const char* expr, cl_int expected,
                                           cl_int actual) {
  if (expected == actual) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << expr << " gave " << ErrorName(actual) << " (" << actual
                                       << "), expected " << ErrorName(expected);
}
#define EXPECT_CL(expected, expr) EXPECT_PRED_FORMAT2(::cltest::ClCodeIs, expected, expr)
#define ASSERT_CL(expected, expr) ASSERT_PRED_FORMAT2(::cltest::ClCodeIs, expected, expr)
#define EXPECT_OK(expr) EXPECT_CL(CL_SUCCESS, expr)
#define ASSERT_OK(expr) ASSERT_CL(CL_SUCCESS, expr)

// Runs body in a child process (gtest's threadsafe death test: the binary again, this test only)
// under a watchdog, so a hang fails this test instead of stalling the whole suite. Failures
// inside the body are reported with the child's output.
#define CLTEST_IN_CHILD(seconds, body)                                               \
  do {                                                                               \
    GTEST_FLAG_SET(death_test_style, "threadsafe");                                  \
    EXPECT_EXIT(                                                                     \
        {                                                                            \
          alarm(seconds);                                                            \
          body;                                                                      \
          std::fprintf(stderr, "child done\n");                                      \
          std::_Exit(::testing::Test::HasFailure() ? 1 : 0);                         \
        },                                                                           \
        ::testing::ExitedWithCode(0), "child done")                                  \
        << "the body failed, or hung (killed by the watchdog: signal 14) or crashed"; \
  } while (0)

// An owned reference to an OpenCL object, released when it goes.
template <class T, cl_int(CL_API_CALL* Release)(T)>
class Handle {
 public:
  Handle() = default;
  explicit Handle(T h) : h_(h) {}
  Handle(Handle&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) reset(std::exchange(o.h_, nullptr));
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }

  T get() const { return h_; }
  // The stored handle's address, for clSetKernelArg and wait lists.
  const T* ptr() const { return &h_; }
  operator T() const { return h_; }  // NOLINT: passes straight to the C API
  explicit operator bool() const { return h_ != nullptr; }
  // For an API that writes a new handle: the old one is released first.
  T* out() {
    reset();
    return &h_;
  }
  T release() { return std::exchange(h_, nullptr); }
  void reset(T h = nullptr) {
    if (h_ != nullptr) Release(h_);
    h_ = h;
  }

 private:
  T h_ = nullptr;
};

using Context = Handle<cl_context, clReleaseContext>;
using Queue = Handle<cl_command_queue, clReleaseCommandQueue>;
using Mem = Handle<cl_mem, clReleaseMemObject>;
using Program = Handle<cl_program, clReleaseProgram>;
using Kernel = Handle<cl_kernel, clReleaseKernel>;
using Event = Handle<cl_event, clReleaseEvent>;

// The platform named "hetmm", or null.
inline cl_platform_id HetmmPlatform() {
  static const cl_platform_id found = [] {
    cl_uint n = 0;
    if (clGetPlatformIDs(0, nullptr, &n) != CL_SUCCESS || n == 0) return cl_platform_id{};
    std::vector<cl_platform_id> all(n);
    if (clGetPlatformIDs(n, all.data(), nullptr) != CL_SUCCESS) return cl_platform_id{};
    for (cl_platform_id p : all) {
      char name[256] = {};
      if (clGetPlatformInfo(p, CL_PLATFORM_NAME, sizeof name, name, nullptr) == CL_SUCCESS &&
          std::string(name) == "hetmm")
        return p;
    }
    return cl_platform_id{};
  }();
  return found;
}

// The hetmm platform's first device, or null.
inline cl_device_id HetmmDevice() {
  cl_platform_id p = HetmmPlatform();
  if (p == nullptr) return nullptr;
  cl_device_id d = nullptr;
  if (clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 1, &d, nullptr) != CL_SUCCESS) return nullptr;
  return d;
}

inline std::string DeviceString(cl_device_id d, cl_device_info param) {
  size_t n = 0;
  if (clGetDeviceInfo(d, param, 0, nullptr, &n) != CL_SUCCESS || n == 0) return {};
  std::string s(n, '\0');
  clGetDeviceInfo(d, param, n, s.data(), nullptr);
  s.resize(n - 1);
  return s;
}

inline std::string BuildLog(cl_program p, cl_device_id d) {
  size_t n = 0;
  if (clGetProgramBuildInfo(p, d, CL_PROGRAM_BUILD_LOG, 0, nullptr, &n) != CL_SUCCESS || n == 0)
    return {};
  std::string s(n, '\0');
  clGetProgramBuildInfo(p, d, CL_PROGRAM_BUILD_LOG, n, s.data(), nullptr);
  s.resize(n - 1);
  return s;
}

inline cl_int EventStatus(cl_event e) {
  cl_int s = 1234;
  EXPECT_OK(clGetEventInfo(e, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof s, &s, nullptr));
  return s;
}

// What the context's notify callback received (kernel faults come here).
struct Notes {
  std::mutex mutex;
  std::vector<std::string> messages;
  static void CL_CALLBACK Notify(const char* msg, const void*, size_t, void* self) {
    auto* n = static_cast<Notes*>(self);
    std::lock_guard lock(n->mutex);
    n->messages.emplace_back(msg != nullptr ? msg : "");
  }
  std::vector<std::string> Take() {
    std::lock_guard lock(mutex);
    return std::exchange(messages, {});
  }
};

// Kernels several test files use: one source, so it is compiled once and then comes from the
// kernel cache.
inline constexpr const char* kCommonSource = R"CLC(
__kernel void write_gid(__global int* out) { out[get_global_id(0)] = (int)get_global_id(0); }
__kernel void add_value(__global int* a, int v) { a[get_global_id(0)] += v; }
__kernel void set_value(__global int* p, int v) { p[get_global_id(0)] = v; }
__kernel void copy_int(__global const int* src, __global int* dst) {
  dst[get_global_id(0)] = src[get_global_id(0)];
}
__kernel void count(__global int* counter) { atomic_add(counter, 1); }
)CLC";

// A context with the hetmm device and an in-order queue, and helpers to build programs.
class ClTest : public ::testing::Test {
 protected:
  void SetUp() override {
    platform_ = HetmmPlatform();
    ASSERT_NE(platform_, nullptr) << "no OpenCL platform named hetmm (is OCL_ICD_VENDORS set?)";
    device_ = HetmmDevice();
    ASSERT_NE(device_, nullptr);
    cl_int rc = CL_SUCCESS;
    ctx_.reset(clCreateContext(nullptr, 1, &device_, Notes::Notify, &notes_, &rc));
    ASSERT_OK(rc);
    queue_.reset(clCreateCommandQueueWithProperties(ctx_, device_, nullptr, &rc));
    ASSERT_OK(rc);
  }
  void TearDown() override {
    if (queue_) clFinish(queue_);
  }

  // Builds source for the device; on failure reports the build log and returns null.
  Program Build(const std::string& source, const char* options = nullptr) {
    const char* text = source.c_str();
    cl_int rc = CL_SUCCESS;
    Program p(clCreateProgramWithSource(ctx_, 1, &text, nullptr, &rc));
    if (rc != CL_SUCCESS) {
      ADD_FAILURE() << "clCreateProgramWithSource: " << ErrorName(rc);
      return {};
    }
    rc = clBuildProgram(p, 1, &device_, options, nullptr, nullptr);
    if (rc != CL_SUCCESS) {
      ADD_FAILURE() << "clBuildProgram: " << ErrorName(rc) << "\n" << BuildLog(p, device_);
      return {};
    }
    return p;
  }

  // One kernel of source (built as above); null on failure.
  Kernel MakeKernel(const std::string& source, const char* name, const char* options = nullptr) {
    Program p = Build(source, options);
    if (!p) return {};
    cl_int rc = CL_SUCCESS;
    Kernel k(clCreateKernel(p, name, &rc));
    if (rc != CL_SUCCESS) ADD_FAILURE() << "clCreateKernel(" << name << "): " << ErrorName(rc);
    return k;  // the kernel keeps its program alive
  }

  Mem MakeBuffer(cl_mem_flags flags, size_t size, void* host = nullptr) {
    cl_int rc = CL_SUCCESS;
    Mem m(clCreateBuffer(ctx_, flags, size, host, &rc));
    if (rc != CL_SUCCESS) ADD_FAILURE() << "clCreateBuffer: " << ErrorName(rc);
    return m;
  }

  // Runs a 1D kernel over n items on the queue and waits; the event's final status.
  cl_int Run1D(cl_kernel k, size_t n, cl_command_queue q = nullptr) {
    Event e;
    cl_int rc = clEnqueueNDRangeKernel(q != nullptr ? q : queue_.get(), k, 1, nullptr, &n,
                                       nullptr, 0, nullptr, e.out());
    if (rc != CL_SUCCESS) return rc;
    cl_event ev = e.get();
    clWaitForEvents(1, &ev);
    return EventStatus(ev);
  }

  cl_platform_id platform_ = nullptr;
  cl_device_id device_ = nullptr;
  Notes notes_;
  Context ctx_;
  Queue queue_;
};

}  // namespace cltest
