// Shared virtual memory: clSVMAlloc'd memory, the SVM commands, and fine-grain system SVM (any
// pointer of the process given to a kernel with clSetKernelArgSVMPointer).
#include "cl_test_support.hpp"

#include <atomic>
#include <cstdlib>
#include <future>
#include <numeric>

namespace cltest {
namespace {

class Svm : public ClTest {
 protected:
  void SetUp() override {
    ClTest::SetUp();
    if (HasFatalFailure()) return;
    add_ = MakeKernel(kCommonSource, "add_value");
    count_ = MakeKernel(kCommonSource, "count");
    ASSERT_TRUE(add_ && count_);
  }
  // Adds v to n ints at p with a kernel, and waits.
  void KernelAdds(void* p, size_t n, cl_int v) {
    ASSERT_OK(clSetKernelArgSVMPointer(add_, 0, p));
    ASSERT_OK(clSetKernelArg(add_, 1, sizeof v, &v));
    ASSERT_CL(CL_COMPLETE, Run1D(add_, n));
  }
  void PlainPointersBody();

  Kernel add_, count_;
};

TEST_F(Svm, FineGrainAllocSharedWithoutMaps) {
  constexpr size_t kN = 4096;
  auto* p = static_cast<cl_int*>(clSVMAlloc(
      ctx_, CL_MEM_READ_WRITE | CL_MEM_SVM_FINE_GRAIN_BUFFER, kN * sizeof(cl_int), 0));
  ASSERT_NE(p, nullptr);
  std::iota(p, p + kN, 0);
  KernelAdds(p, kN, 10);
  for (size_t i = 0; i < kN; ++i) ASSERT_EQ(p[i], static_cast<cl_int>(i + 10)) << i;
  // A pointer into the middle of the allocation works as well.
  KernelAdds(p + 1000, 24, 1000);
  EXPECT_EQ(p[999], 999 + 10);
  EXPECT_EQ(p[1000], 1000 + 10 + 1000);
  EXPECT_EQ(p[1023], 1023 + 10 + 1000);
  EXPECT_EQ(p[1024], 1024 + 10);
  // A buffer made on SVM memory says so.
  cl_int rc = CL_SUCCESS;
  Mem m(clCreateBuffer(ctx_, CL_MEM_USE_HOST_PTR, 64, p, &rc));
  ASSERT_OK(rc);
  cl_bool uses = CL_FALSE;
  ASSERT_OK(clGetMemObjectInfo(m, CL_MEM_USES_SVM_POINTER, sizeof uses, &uses, nullptr));
  EXPECT_EQ(uses, CL_TRUE);
  m.reset();
  clSVMFree(ctx_, p);

  EXPECT_EQ(clSVMAlloc(ctx_, CL_MEM_READ_WRITE, 0, 0), nullptr);
  EXPECT_EQ(clSVMAlloc(ctx_, CL_MEM_READ_WRITE | CL_MEM_SVM_ATOMICS, 64, 0), nullptr)
      << "atomics need a fine-grain buffer";
  EXPECT_EQ(clSVMAlloc(ctx_, CL_MEM_READ_WRITE, 64, 3), nullptr) << "alignment not a power of 2";
}

TEST_F(Svm, CoarseGrainWithMapAndUnmap) {
  constexpr size_t kN = 1024;
  auto* p = static_cast<cl_int*>(clSVMAlloc(ctx_, CL_MEM_READ_WRITE, kN * sizeof(cl_int), 64));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % 64, 0u);
  ASSERT_OK(clEnqueueSVMMap(queue_, CL_TRUE, CL_MAP_WRITE, p, kN * sizeof(cl_int), 0, nullptr,
                            nullptr));
  std::iota(p, p + kN, 5);
  ASSERT_OK(clEnqueueSVMUnmap(queue_, p, 0, nullptr, nullptr));
  KernelAdds(p, kN, 1);
  ASSERT_OK(clEnqueueSVMMap(queue_, CL_TRUE, CL_MAP_READ, p, kN * sizeof(cl_int), 0, nullptr,
                            nullptr));
  for (size_t i = 0; i < kN; ++i) ASSERT_EQ(p[i], static_cast<cl_int>(i + 6));
  ASSERT_OK(clEnqueueSVMUnmap(queue_, p, 0, nullptr, nullptr));
  ASSERT_OK(clFinish(queue_));
  clSVMFree(ctx_, p);
}

TEST_F(Svm, MemcpyFillAndMigrate) {
  constexpr size_t kN = 2048;
  const size_t bytes = kN * sizeof(cl_int);
  auto* a = static_cast<cl_int*>(clSVMAlloc(ctx_, CL_MEM_READ_WRITE, bytes, 0));
  auto* b = static_cast<cl_int*>(clSVMAlloc(ctx_, CL_MEM_READ_WRITE, bytes, 0));
  ASSERT_TRUE(a && b);
  const cl_long pattern = 0x0000000700000003;  // ints 3, 7, 3, 7, ...
  ASSERT_OK(clEnqueueSVMMemFill(queue_, a, &pattern, sizeof pattern, bytes, 0, nullptr, nullptr));
  const void* ptrs[] = {a};
  ASSERT_OK(clEnqueueSVMMigrateMem(queue_, 1, ptrs, nullptr, 0, 0, nullptr, nullptr));
  KernelAdds(a, kN, 100);
  Event copied;
  ASSERT_OK(clEnqueueSVMMemcpy(queue_, CL_FALSE, b, a, bytes, 0, nullptr, copied.out()));
  const size_t sizes[] = {bytes};
  const void* bptr[] = {b};
  Event home;
  ASSERT_OK(clEnqueueSVMMigrateMem(queue_, 1, bptr, sizes, CL_MIGRATE_MEM_OBJECT_HOST, 1,
                                   copied.ptr(), home.out()));
  ASSERT_OK(clWaitForEvents(1, home.ptr()));
  for (size_t i = 0; i < kN; ++i) ASSERT_EQ(b[i], (i % 2 ? 7 : 3) + 100) << i;
  cl_command_type type = 0;
  ASSERT_OK(clGetEventInfo(copied, CL_EVENT_COMMAND_TYPE, sizeof type, &type, nullptr));
  EXPECT_EQ(type, static_cast<cl_command_type>(CL_COMMAND_SVM_MEMCPY));

  EXPECT_CL(CL_MEM_COPY_OVERLAP,
            clEnqueueSVMMemcpy(queue_, CL_TRUE, a + 1, a, 64, 0, nullptr, nullptr));
  EXPECT_CL(CL_INVALID_VALUE, clEnqueueSVMMemFill(queue_, reinterpret_cast<char*>(a) + 4,
                                                  &pattern, sizeof pattern, 64, 0, nullptr,
                                                  nullptr))
      << "not aligned to the pattern";
  EXPECT_CL(CL_INVALID_VALUE,
            clEnqueueSVMMemFill(queue_, a, &pattern, 3, 63, 0, nullptr, nullptr));
  EXPECT_CL(CL_INVALID_VALUE, clEnqueueSVMMigrateMem(queue_, 0, nullptr, nullptr, 0, 0, nullptr,
                                                     nullptr));
  ASSERT_OK(clFinish(queue_));
  clSVMFree(ctx_, a);
  clSVMFree(ctx_, b);
}

struct FreeRecord {
  std::promise<std::vector<void*>> done;
  cl_context ctx;
};

TEST_F(Svm, EnqueueFreeWithAndWithoutCallback) {
  void* p1 = clSVMAlloc(ctx_, CL_MEM_READ_WRITE, 256, 0);
  void* p2 = clSVMAlloc(ctx_, CL_MEM_READ_WRITE, 512, 0);
  ASSERT_TRUE(p1 && p2);
  FreeRecord rec{{}, ctx_};
  std::future<std::vector<void*>> got = rec.done.get_future();
  auto cb = [](cl_command_queue, cl_uint n, void* ptrs[], void* data) {
    auto* r = static_cast<FreeRecord*>(data);
    for (cl_uint i = 0; i < n; ++i) clSVMFree(r->ctx, ptrs[i]);  // the callback frees them
    r->done.set_value(std::vector<void*>(ptrs, ptrs + n));
  };
  void* list[] = {p1, p2};
  Event e;
  ASSERT_OK(clEnqueueSVMFree(queue_, 2, list, cb, &rec, 0, nullptr, e.out()));
  list[0] = list[1] = nullptr;  // the command keeps its own copy of the list
  ASSERT_OK(clWaitForEvents(1, e.ptr()));
  ASSERT_EQ(got.wait_for(std::chrono::seconds(60)), std::future_status::ready);
  EXPECT_EQ(got.get(), (std::vector<void*>{p1, p2}));
  cl_command_type type = 0;
  ASSERT_OK(clGetEventInfo(e, CL_EVENT_COMMAND_TYPE, sizeof type, &type, nullptr));
  EXPECT_EQ(type, static_cast<cl_command_type>(CL_COMMAND_SVM_FREE));

  void* p3 = clSVMAlloc(ctx_, CL_MEM_READ_WRITE, 256, 0);
  ASSERT_NE(p3, nullptr);
  void* list3[] = {p3};
  ASSERT_OK(clEnqueueSVMFree(queue_, 1, list3, nullptr, nullptr, 0, nullptr, nullptr));
  ASSERT_OK(clFinish(queue_));
  EXPECT_CL(CL_INVALID_VALUE,
            clEnqueueSVMFree(queue_, 1, nullptr, nullptr, nullptr, 0, nullptr, nullptr));
}

int g_global_array[256];

void Svm::PlainPointersBody() {
  // malloc'd memory.
  auto* m = static_cast<cl_int*>(std::malloc(1000 * sizeof(cl_int)));
  ASSERT_NE(m, nullptr);
  std::iota(m, m + 1000, 0);
  KernelAdds(m, 1000, 3);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(m[i], i + 3) << "malloc at " << i;
  std::free(m);
  // A std::vector's storage.
  std::vector<cl_int> v(5000, 40);
  KernelAdds(v.data(), v.size(), 2);
  for (size_t i = 0; i < v.size(); ++i) ASSERT_EQ(v[i], 42) << "vector at " << i;
  // A stack array of this thread.
  cl_int stack[128];
  for (int i = 0; i < 128; ++i) stack[i] = -i;
  KernelAdds(stack, 128, 1);
  for (int i = 0; i < 128; ++i) ASSERT_EQ(stack[i], 1 - i) << "stack at " << i;
  // A global array.
  KernelAdds(g_global_array, 256, 9);
  for (int x : g_global_array) ASSERT_EQ(x, 9);
}

TEST_F(Svm, PlainProcessPointers) {
  // In a child under a watchdog: kernels on heap memory have hung the process (see
  // buffer_test.cpp).
  CLTEST_IN_CHILD(15, PlainPointersBody());
}

TEST_F(Svm, KernelAndHostAtomics) {
  // The kernel's atomic_add and the host's atomic increments meet on one fine-grain int.
  auto* counter = static_cast<cl_int*>(clSVMAlloc(
      ctx_, CL_MEM_READ_WRITE | CL_MEM_SVM_FINE_GRAIN_BUFFER | CL_MEM_SVM_ATOMICS,
      sizeof(cl_int), 0));
  ASSERT_NE(counter, nullptr);
  *counter = 0;
  constexpr size_t kItems = 100000;
  constexpr int kHostAdds = 20000;
  ASSERT_OK(clSetKernelArgSVMPointer(count_, 0, counter));
  size_t global = kItems;
  Event e;
  ASSERT_OK(clEnqueueNDRangeKernel(queue_, count_, 1, nullptr, &global, nullptr, 0, nullptr,
                                   e.out()));
  std::atomic_ref<cl_int> host(*counter);
  for (int i = 0; i < kHostAdds; ++i) host.fetch_add(1);
  ASSERT_OK(clWaitForEvents(1, e.ptr()));
  EXPECT_EQ(host.load(), static_cast<cl_int>(kItems) + kHostAdds);
  // Again with the kernel alone: exactly one increment per work-item.
  host.store(0);
  ASSERT_CL(CL_COMPLETE, Run1D(count_, 12345));
  EXPECT_EQ(host.load(), 12345);
  clSVMFree(ctx_, counter);
}

TEST_F(Svm, PointerChasingThroughSvm) {
  // Device code follows pointers the host stored in SVM memory: a linked list.
  const char* src = R"CLC(
struct node { __global struct node* next; int value; };
__kernel void sum_list(__global struct node* head, __global int* out) {
  int s = 0;
  for (__global struct node* n = head; n != 0; n = n->next) s += n->value;
  out[0] = s;
}
)CLC";
  Kernel k = MakeKernel(src, "sum_list");
  ASSERT_TRUE(k);
  struct Node {
    Node* next;
    cl_int value;
  };
  constexpr int kNodes = 50;
  const cl_svm_mem_flags fine = CL_MEM_READ_WRITE | CL_MEM_SVM_FINE_GRAIN_BUFFER;
  auto* nodes = static_cast<Node*>(clSVMAlloc(ctx_, fine, kNodes * sizeof(Node), 0));
  auto* out = static_cast<cl_int*>(clSVMAlloc(ctx_, fine, sizeof(cl_int), 0));
  ASSERT_TRUE(nodes && out);
  // Linked in a scrambled order, so the traversal really follows the pointers.
  int expect = 0;
  Node* head = nullptr;
  for (int i = 0; i < kNodes; ++i) {
    Node* n = &nodes[(i * 17) % kNodes];
    n->value = i + 1;
    n->next = head;
    head = n;
    expect += i + 1;
  }
  ASSERT_OK(clSetKernelArgSVMPointer(k, 0, head));
  ASSERT_OK(clSetKernelArgSVMPointer(k, 1, out));
  const void* ptrs[] = {nodes, out};
  ASSERT_OK(clSetKernelExecInfo(k, CL_KERNEL_EXEC_INFO_SVM_PTRS, sizeof ptrs, ptrs));
  cl_bool system = CL_TRUE;
  ASSERT_OK(clSetKernelExecInfo(k, CL_KERNEL_EXEC_INFO_SVM_FINE_GRAIN_SYSTEM, sizeof system,
                                &system));
  *out = -1;
  ASSERT_CL(CL_COMPLETE, Run1D(k, 1));
  EXPECT_EQ(*out, expect);
  clSVMFree(ctx_, nodes);
  clSVMFree(ctx_, out);
}

}  // namespace
}  // namespace cltest
