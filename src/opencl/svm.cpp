// Layer opencl: includes every layer.
// Shared virtual memory. Every process pointer is device-visible (fine-grain system SVM: the
// device MMU mirrors the process's page table), so clSVMAlloc is an allocation hetmm manages
// (Runtime::allocate: page-aligned anonymous memory that can migrate whole), maps and unmaps
// are ordering points only, and an SVM migration is a hetmm prefetch.
#include "opencl/device_info.hpp"
#include "opencl/memory.hpp"

#include <map>
#include <shared_mutex>

namespace hetmm::opencl {
namespace {

struct SvmTable {
  std::shared_mutex mutex;
  std::map<std::uintptr_t, SvmAllocation> by_base;
};
SvmTable& svm_table() {
  static auto* t = new SvmTable;  // leaked: see objects.cpp
  return *t;
}

}  // namespace

std::optional<SvmAllocation> svm_allocation(const void* p) {
  SvmTable& t = svm_table();
  auto a = reinterpret_cast<std::uintptr_t>(p);
  std::shared_lock lock(t.mutex);
  auto it = t.by_base.upper_bound(a);
  if (it == t.by_base.begin()) return std::nullopt;
  --it;
  if (a >= it->first + it->second.size) return std::nullopt;
  return it->second;
}

}  // namespace hetmm::opencl

using namespace hetmm::opencl;

CL_API_ENTRY void* CL_API_CALL clSVMAlloc(cl_context ctx, cl_svm_mem_flags flags, size_t size,
                                          cl_uint alignment) {
  void* out = nullptr;
  guarded([&] {
    get(ctx);
    constexpr cl_svm_mem_flags access = CL_MEM_READ_WRITE | CL_MEM_WRITE_ONLY | CL_MEM_READ_ONLY;
    constexpr cl_svm_mem_flags known = access | CL_MEM_SVM_FINE_GRAIN_BUFFER | CL_MEM_SVM_ATOMICS;
    if ((flags & ~known) != 0 || __builtin_popcountll(flags & access) > 1) return;
    if ((flags & CL_MEM_SVM_ATOMICS) != 0 && (flags & CL_MEM_SVM_FINE_GRAIN_BUFFER) == 0) return;
    if (size == 0 || size > device_limits().max_alloc) return;
    // Runtime::allocate gives whole pages: any alignment up to a page holds.
    if ((alignment & (alignment - 1)) != 0 || alignment > 4096) return;
    char* p = static_cast<char*>(runtime().allocate(size));
    SvmTable& t = svm_table();
    std::unique_lock lock(t.mutex);
    t.by_base[reinterpret_cast<std::uintptr_t>(p)] = SvmAllocation{p, size, ctx};
    out = p;
  });
  return out;
}

namespace {
void svm_free(const void* p) {
  if (p == nullptr) return;
  SvmTable& t = svm_table();
  {
    std::unique_lock lock(t.mutex);
    auto it = t.by_base.find(reinterpret_cast<std::uintptr_t>(p));
    if (it == t.by_base.end()) return;  // not clSVMAlloc's: left alone rather than corrupted
    t.by_base.erase(it);
  }
  runtime().deallocate(const_cast<void*>(p));
}
}  // namespace

CL_API_ENTRY void CL_API_CALL clSVMFree(cl_context ctx, void* p) {
  guarded([&] {
    get(ctx);
    svm_free(p);
  });
}

CL_API_ENTRY cl_int CL_API_CALL clEnqueueSVMFree(
    cl_command_queue q, cl_uint n, void* ptrs[],
    void(CL_CALLBACK* fn)(cl_command_queue, cl_uint, void*[], void*), void* data, cl_uint num,
    const cl_event* waits, cl_event* event) {
  return guarded([&] {
    get(q);
    check_wait_list(q->context, num, waits);
    if ((n == 0) != (ptrs == nullptr)) fail(CL_INVALID_VALUE);
    auto list = std::make_shared<std::vector<void*>>(ptrs, ptrs + n);
    Command c;
    c.work = [=] {
      if (fn != nullptr) fn(q, static_cast<cl_uint>(list->size()), list->data(), data);
      else
        for (void* p : *list) svm_free(p);
      return CL_COMPLETE;
    };
    finish_blocking(submit(q, CL_COMMAND_SVM_FREE, num, waits, std::move(c)), false, event);
  });
}

CL_API_ENTRY cl_int CL_API_CALL clEnqueueSVMMemcpy(cl_command_queue q, cl_bool blocking, void* dst,
                                                   const void* src, size_t size, cl_uint num,
                                                   const cl_event* waits, cl_event* event) {
  cl_int rc = CL_SUCCESS;
  cl_int g = guarded([&] {
    get(q);
    check_wait_list(q->context, num, waits);
    if (dst == nullptr || src == nullptr) fail(CL_INVALID_VALUE);
    auto d = static_cast<char*>(dst);
    auto s = static_cast<const char*>(src);
    if (d < s + size && s < d + size) fail(CL_MEM_COPY_OVERLAP);
    Command c;
    c.work = [=] {
      std::memcpy(d, s, size);
      return CL_COMPLETE;
    };
    c.run_here = blocking;
    rc = finish_blocking(submit(q, CL_COMMAND_SVM_MEMCPY, num, waits, std::move(c)), blocking, event);
  });
  return g != CL_SUCCESS ? g : rc;
}

CL_API_ENTRY cl_int CL_API_CALL clEnqueueSVMMemFill(cl_command_queue q, void* ptr,
                                                    const void* pattern, size_t pattern_size,
                                                    size_t size, cl_uint num, const cl_event* waits,
                                                    cl_event* event) {
  return guarded([&] {
    get(q);
    check_wait_list(q->context, num, waits);
    if (ptr == nullptr) fail(CL_INVALID_VALUE);
    check_pattern(pattern, pattern_size);
    if (reinterpret_cast<std::uintptr_t>(ptr) % pattern_size != 0 || size % pattern_size != 0)
      fail(CL_INVALID_VALUE);
    auto bytes = std::make_shared<std::vector<unsigned char>>(
        static_cast<const unsigned char*>(pattern),
        static_cast<const unsigned char*>(pattern) + pattern_size);
    auto* d = static_cast<char*>(ptr);
    Command c;
    c.work = [=] {
      fill_pattern(d, bytes->data(), bytes->size(), size);
      return CL_COMPLETE;
    };
    finish_blocking(submit(q, CL_COMMAND_SVM_MEMFILL, num, waits, std::move(c)), false, event);
  });
}

CL_API_ENTRY cl_int CL_API_CALL clEnqueueSVMMap(cl_command_queue q, cl_bool blocking,
                                                cl_map_flags flags, void* ptr, size_t size,
                                                cl_uint num, const cl_event* waits,
                                                cl_event* event) {
  cl_int rc = CL_SUCCESS;
  cl_int g = guarded([&] {
    get(q);
    check_wait_list(q->context, num, waits);
    if (ptr == nullptr || size == 0) fail(CL_INVALID_VALUE);
    constexpr cl_map_flags known = CL_MAP_READ | CL_MAP_WRITE | CL_MAP_WRITE_INVALIDATE_REGION;
    if ((flags & ~known) != 0) fail(CL_INVALID_VALUE);
    Command c;
    c.run_here = blocking;
    rc = finish_blocking(submit(q, CL_COMMAND_SVM_MAP, num, waits, std::move(c)), blocking, event);
  });
  return g != CL_SUCCESS ? g : rc;
}

CL_API_ENTRY cl_int CL_API_CALL clEnqueueSVMUnmap(cl_command_queue q, void* ptr, cl_uint num,
                                                  const cl_event* waits, cl_event* event) {
  return guarded([&] {
    get(q);
    check_wait_list(q->context, num, waits);
    if (ptr == nullptr) fail(CL_INVALID_VALUE);
    finish_blocking(submit(q, CL_COMMAND_SVM_UNMAP, num, waits, Command{}), false, event);
  });
}

CL_API_ENTRY cl_int CL_API_CALL clEnqueueSVMMigrateMem(cl_command_queue q, cl_uint n,
                                                       const void** ptrs, const size_t* sizes,
                                                       cl_mem_migration_flags flags, cl_uint num,
                                                       const cl_event* waits, cl_event* event) {
  return guarded([&] {
    get(q);
    check_wait_list(q->context, num, waits);
    if (n == 0 || ptrs == nullptr) fail(CL_INVALID_VALUE);
    if ((flags & ~(CL_MIGRATE_MEM_OBJECT_HOST | CL_MIGRATE_MEM_OBJECT_CONTENT_UNDEFINED)) != 0)
      fail(CL_INVALID_VALUE);
    std::vector<std::pair<const void*, std::size_t>> ranges;
    for (cl_uint i = 0; i < n; ++i) {
      if (ptrs[i] == nullptr) fail(CL_INVALID_VALUE);
      std::size_t s = sizes != nullptr ? sizes[i] : 0;
      if (s == 0) {
        // The whole allocation: known only for clSVMAlloc's.
        auto a = svm_allocation(ptrs[i]);
        if (!a) fail(CL_INVALID_VALUE);
        s = a->size - static_cast<std::size_t>(static_cast<const char*>(ptrs[i]) - a->base);
      }
      ranges.emplace_back(ptrs[i], s);
    }
    bool to_host = (flags & CL_MIGRATE_MEM_OBJECT_HOST) != 0;
    Command c;
    c.work = [=] {
      for (const auto& [p, s] : ranges) prefetch(q, p, s, to_host);
      return CL_COMPLETE;
    };
    finish_blocking(submit(q, CL_COMMAND_SVM_MIGRATE_MEM, num, waits, std::move(c)), false, event);
  });
}
