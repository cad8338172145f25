// Errors the platform must answer with the spec's codes instead of crashing: handles of the wrong
// kind, NULL and released handles, and kernels that touch memory they cannot reach (the device
// MMU turns those into a failed event and a message to the context's callback).
#include "cl_test_support.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>

namespace cltest {
namespace {

template <class To, class From>
To As(From h) {
  return reinterpret_cast<To>(h);
}

// The address as the device's fault messages print it, less the offset in the page (the fault
// may be reported for any byte the kernel touched there).
std::string PagePrefix(const void* p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%lx", static_cast<unsigned long>(
                                               reinterpret_cast<std::uintptr_t>(p) >> 12));
  return buf;
}

class Errors : public ClTest {};

TEST_F(Errors, HandlesOfTheWrongKind) {
  Mem buf = MakeBuffer(CL_MEM_READ_WRITE, 64);
  Kernel k = MakeKernel(kCommonSource, "set_value");
  ASSERT_TRUE(k);
  Program prog;
  ASSERT_OK(clGetKernelInfo(k, CL_KERNEL_PROGRAM, sizeof(cl_program), prog.out(), nullptr));
  ASSERT_OK(clRetainProgram(prog));
  Event user(clCreateUserEvent(ctx_, nullptr));
  ASSERT_TRUE(user);
  ASSERT_OK(clSetUserEventStatus(user, CL_COMPLETE));

  cl_int v = 1;
  size_t n = 0;
  cl_int rc = CL_SUCCESS;
  EXPECT_CL(CL_INVALID_KERNEL, clSetKernelArg(As<cl_kernel>(buf.get()), 0, sizeof v, &v));
  EXPECT_CL(CL_INVALID_KERNEL,
            clGetKernelInfo(As<cl_kernel>(buf.get()), CL_KERNEL_NUM_ARGS, 0, nullptr, &n));
  EXPECT_CL(CL_INVALID_KERNEL, clEnqueueNDRangeKernel(queue_, As<cl_kernel>(prog.get()), 1,
                                                      nullptr, &n, nullptr, 0, nullptr, nullptr));
  EXPECT_EQ(clCreateBuffer(As<cl_context>(queue_.get()), CL_MEM_READ_WRITE, 64, nullptr, &rc),
            nullptr);
  EXPECT_CL(CL_INVALID_CONTEXT, rc);
  EXPECT_CL(CL_INVALID_CONTEXT,
            clGetContextInfo(As<cl_context>(queue_.get()), CL_CONTEXT_NUM_DEVICES, 0, nullptr, &n));
  EXPECT_CL(CL_INVALID_COMMAND_QUEUE, clFinish(As<cl_command_queue>(ctx_.get())));
  EXPECT_CL(CL_INVALID_COMMAND_QUEUE,
            clEnqueueWriteBuffer(As<cl_command_queue>(buf.get()), buf, CL_TRUE, 0, sizeof v, &v,
                                 0, nullptr, nullptr));
  EXPECT_CL(CL_INVALID_MEM_OBJECT, clEnqueueWriteBuffer(queue_, As<cl_mem>(k.get()), CL_TRUE, 0,
                                                        sizeof v, &v, 0, nullptr, nullptr));
  EXPECT_CL(CL_INVALID_MEM_OBJECT, clRetainMemObject(As<cl_mem>(user.get())));
  EXPECT_EQ(clCreateKernel(As<cl_program>(k.get()), "set_value", &rc), nullptr);
  EXPECT_CL(CL_INVALID_PROGRAM, rc);
  EXPECT_CL(CL_INVALID_PROGRAM, clBuildProgram(As<cl_program>(ctx_.get()), 0, nullptr, nullptr,
                                               nullptr, nullptr));
  cl_event not_event = As<cl_event>(buf.get());
  EXPECT_CL(CL_INVALID_EVENT, clWaitForEvents(1, &not_event));
  EXPECT_CL(CL_INVALID_EVENT, clSetUserEventStatus(not_event, CL_COMPLETE));
  EXPECT_CL(CL_INVALID_EVENT_WAIT_LIST,
            clEnqueueMarkerWithWaitList(queue_, 1, &not_event, nullptr));
  EXPECT_CL(CL_INVALID_DEVICE,
            clGetDeviceInfo(As<cl_device_id>(prog.get()), CL_DEVICE_NAME, 0, nullptr, &n));
  // A kernel argument that is not a buffer: a queue given where a cl_mem belongs.
  cl_command_queue q = queue_;
  EXPECT_CL(CL_INVALID_MEM_OBJECT, clSetKernelArg(k, 0, sizeof q, &q));

  // Nothing above broke the objects: the kernel still runs.
  ASSERT_OK(clSetKernelArg(k, 0, sizeof(cl_mem), buf.ptr()));
  v = 41;
  ASSERT_OK(clSetKernelArg(k, 1, sizeof v, &v));
  EXPECT_CL(CL_COMPLETE, Run1D(k, 16));
  cl_int out[16] = {};
  ASSERT_OK(clEnqueueReadBuffer(queue_, buf, CL_TRUE, 0, sizeof out, out, 0, nullptr, nullptr));
  for (cl_int x : out) EXPECT_EQ(x, 41);
}

TEST_F(Errors, NullHandles) {
  cl_int rc = CL_SUCCESS;
  size_t n = 0;
  EXPECT_CL(CL_INVALID_COMMAND_QUEUE, clFinish(nullptr));
  EXPECT_EQ(clCreateBuffer(nullptr, CL_MEM_READ_WRITE, 64, nullptr, &rc), nullptr);
  EXPECT_CL(CL_INVALID_CONTEXT, rc);
  EXPECT_CL(CL_INVALID_MEM_OBJECT, clReleaseMemObject(nullptr));
  EXPECT_CL(CL_INVALID_KERNEL, clGetKernelInfo(nullptr, CL_KERNEL_NUM_ARGS, 0, nullptr, &n));
  EXPECT_CL(CL_INVALID_PROGRAM, clReleaseProgram(nullptr));
  EXPECT_CL(CL_INVALID_EVENT, clReleaseEvent(nullptr));
  EXPECT_CL(CL_INVALID_DEVICE, clGetDeviceInfo(nullptr, CL_DEVICE_NAME, 0, nullptr, &n));
  cl_event none = nullptr;
  EXPECT_CL(CL_INVALID_EVENT, clWaitForEvents(1, &none));
  EXPECT_CL(CL_INVALID_VALUE, clWaitForEvents(0, nullptr));
  // A NULL buffer argument is a NULL pointer in the kernel, not an error (spec 5.9.2).
  Kernel k = MakeKernel(kCommonSource, "set_value");
  ASSERT_TRUE(k);
  EXPECT_OK(clSetKernelArg(k, 0, sizeof(cl_mem), nullptr));
}

// A handle used after its last release. The loader reaches the ICD through the object's dispatch
// pointer, so the object's memory must still hold it; the child process keeps a crash from
// taking the whole suite down.
TEST_F(Errors, ReleasedHandlesDeathTest) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        Mem buf = MakeBuffer(CL_MEM_READ_WRITE, 64);
        cl_mem gone = buf.release();
        clReleaseMemObject(gone);
        size_t n = 0;
        cl_int a = clGetMemObjectInfo(gone, CL_MEM_SIZE, sizeof n, &n, nullptr);
        cl_int b = clReleaseMemObject(gone);
        Kernel k = MakeKernel(kCommonSource, "set_value");
        cl_kernel kgone = k.release();
        clReleaseKernel(kgone);
        cl_int c = clSetKernelArg(kgone, 0, sizeof(cl_mem), nullptr);
        std::fprintf(stderr, "codes %d %d %d\n", a, b, c);
        std::_Exit(a == CL_INVALID_MEM_OBJECT && b == CL_INVALID_MEM_OBJECT &&
                           c == CL_INVALID_KERNEL
                       ? 0
                       : 1);
      },
      ::testing::ExitedWithCode(0), "codes");
}

// A kernel that faults, and what it must leave behind: a failed event, a message naming the
// address, failed dependants, and a queue and context that go on working.
class KernelFault : public ClTest {
 protected:
  void SetUp() override {
    ClTest::SetUp();
    if (HasFatalFailure()) return;
    set_ = MakeKernel(kCommonSource, "set_value");
    copy_ = MakeKernel(kCommonSource, "copy_int");
    gid_ = MakeKernel(kCommonSource, "write_gid");
    ASSERT_TRUE(set_ && copy_ && gid_);
  }

  // After the fault: this queue and a new one still run kernels correctly.
  void ExpectHealthy() {
    cl_int rc = CL_SUCCESS;
    Queue other(clCreateCommandQueueWithProperties(ctx_, device_, nullptr, &rc));
    ASSERT_OK(rc);
    for (cl_command_queue q : {queue_.get(), other.get()}) {
      Mem out = MakeBuffer(CL_MEM_READ_WRITE, 256 * sizeof(cl_int));
      ASSERT_OK(clSetKernelArg(gid_, 0, sizeof(cl_mem), out.ptr()));
      EXPECT_CL(CL_COMPLETE, Run1D(gid_, 256, q));
      std::vector<cl_int> host(256, -1);
      ASSERT_OK(clEnqueueReadBuffer(q, out, CL_TRUE, 0, 256 * sizeof(cl_int), host.data(), 0,
                                    nullptr, nullptr));
      for (int i = 0; i < 256; ++i) ASSERT_EQ(host[i], i);
    }
  }

  // The notes include one that mentions the page of p.
  void ExpectNoteAbout(const void* p) {
    std::vector<std::string> notes = notes_.Take();
    bool found = false;
    for (const std::string& n : notes) found |= n.find(PagePrefix(p)) != std::string::npos;
    std::string all;
    for (const std::string& n : notes) all += n + "\n";
    EXPECT_TRUE(found) << "no note mentions " << PagePrefix(p) << "...; notes:\n" << all;
  }

  Kernel set_, copy_, gid_;
};

TEST_F(KernelFault, WriteToProtNoneMemory) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  void* p = mmap(nullptr, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  ASSERT_OK(clSetKernelArgSVMPointer(set_, 0, p));
  cl_int v = 5;
  ASSERT_OK(clSetKernelArg(set_, 1, sizeof v, &v));
  size_t one = 1;
  Event fault;
  ASSERT_OK(clEnqueueNDRangeKernel(queue_, set_, 1, nullptr, &one, nullptr, 0, nullptr,
                                   fault.out()));
  cl_event fe = fault;
  EXPECT_CL(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST, clWaitForEvents(1, &fe));
  EXPECT_LT(EventStatus(fe), 0);
  ExpectNoteAbout(p);

  // Dependants fail without running: a marker, and a blocking read that must not write.
  Event marker;
  ASSERT_OK(clEnqueueMarkerWithWaitList(queue_, 1, &fe, marker.out()));
  cl_event me = marker;
  EXPECT_CL(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST, clWaitForEvents(1, &me));
  EXPECT_CL(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST, EventStatus(me));
  Mem src = MakeBuffer(CL_MEM_READ_WRITE, sizeof(cl_int));
  cl_int ones = 1, got = -7;
  ASSERT_OK(clEnqueueWriteBuffer(queue_, src, CL_TRUE, 0, sizeof ones, &ones, 0, nullptr, nullptr));
  EXPECT_CL(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST,
            clEnqueueReadBuffer(queue_, src, CL_TRUE, 0, sizeof got, &got, 1, &fe, nullptr));
  EXPECT_EQ(got, -7) << "a command whose wait list failed must not run";
  // A kernel with the failed event in its wait list fails too, its output untouched.
  Mem out = MakeBuffer(CL_MEM_READ_WRITE, 16 * sizeof(cl_int));
  cl_int pattern = -1;
  ASSERT_OK(clEnqueueFillBuffer(queue_, out, &pattern, sizeof pattern, 0, 16 * sizeof(cl_int), 0,
                                nullptr, nullptr));
  ASSERT_OK(clSetKernelArg(gid_, 0, sizeof(cl_mem), out.ptr()));
  size_t sixteen = 16;
  Event dependent;
  ASSERT_OK(clEnqueueNDRangeKernel(queue_, gid_, 1, nullptr, &sixteen, nullptr, 1, &fe,
                                   dependent.out()));
  cl_event de = dependent;
  EXPECT_CL(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST, clWaitForEvents(1, &de));
  cl_int host[16];
  ASSERT_OK(clEnqueueReadBuffer(queue_, out, CL_TRUE, 0, sizeof host, host, 0, nullptr, nullptr));
  for (cl_int x : host) EXPECT_EQ(x, -1);

  ExpectHealthy();
  munmap(p, page);
}

TEST_F(KernelFault, ReadFromUnmappedMemory) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  // A hole between two mapped pages, so nothing else is likely to be placed there meanwhile.
  auto* base = static_cast<char*>(
      mmap(nullptr, 3 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(base, MAP_FAILED);
  char* hole = base + page;
  // Everything that may allocate comes first: a new buffer could be placed in the hole.
  Mem out = MakeBuffer(CL_MEM_READ_WRITE, 64 * sizeof(cl_int));
  ASSERT_OK(clSetKernelArg(copy_, 1, sizeof(cl_mem), out.ptr()));
  ASSERT_EQ(munmap(hole, page), 0);
  ASSERT_OK(clSetKernelArgSVMPointer(copy_, 0, hole));
  ASSERT_EQ(msync(hole, page, MS_ASYNC), -1) << "the hole was mapped again before the kernel";
  size_t n = 64;
  Event fault;
  ASSERT_OK(clEnqueueNDRangeKernel(queue_, copy_, 1, nullptr, &n, nullptr, 0, nullptr,
                                   fault.out()));
  cl_event fe = fault;
  EXPECT_CL(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST, clWaitForEvents(1, &fe));
  EXPECT_CL(CL_OUT_OF_RESOURCES, EventStatus(fe));
  ExpectNoteAbout(hole);
  // Its in-order successor is not in its wait list: it runs (the queue keeps working).
  Event next;
  ASSERT_OK(clEnqueueMarkerWithWaitList(queue_, 0, nullptr, next.out()));
  cl_event ne = next;
  EXPECT_OK(clWaitForEvents(1, &ne));
  ExpectHealthy();
  munmap(base, page);
  munmap(base + 2 * page, page);
}

TEST_F(KernelFault, ReadOnlyMemoryWrittenByAKernel) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  void* p = mmap(nullptr, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  ASSERT_OK(clSetKernelArgSVMPointer(set_, 0, p));
  cl_int v = 9;
  ASSERT_OK(clSetKernelArg(set_, 1, sizeof v, &v));
  EXPECT_LT(Run1D(set_, 1), 0);
  EXPECT_EQ(*static_cast<volatile int*>(p), 0) << "the write must not have reached the page";
  ExpectNoteAbout(p);
  ExpectHealthy();
  munmap(p, page);
}

}  // namespace
}  // namespace cltest
