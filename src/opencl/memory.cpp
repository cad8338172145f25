// Layer opencl: includes every layer.
// Buffers, sub-buffers and the commands that move their bytes. A buffer is process memory that
// hetmm manages (Runtime::allocate), or the program's own with CL_MEM_USE_HOST_PTR: kernels reach
// it through the device MMU as any other pointer, so reading, writing and mapping it on the host
// is plain memory access (pages the device holds come home on the CPU's touch), and a map
// returns the buffer's own address with no copy.
#include "opencl/device_info.hpp"
#include "opencl/memory.hpp"
#include "opencl/objects.hpp"

#include <algorithm>
#include <array>

namespace hetmm::opencl {

void check_same_context(cl_command_queue q, cl_mem m) {
  if (q->context != m->context) fail(CL_INVALID_CONTEXT);
}

void check_range(cl_mem m, std::size_t offset, std::size_t size) {
  if (offset > m->size || size > m->size - offset) fail(CL_INVALID_VALUE);
}

cl_int finish_blocking(cl_event e, bool blocking, cl_event* out) {
  cl_int rc = CL_SUCCESS;
  if (blocking && wait_helping(e) < 0) rc = CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST;
  if (out != nullptr) *out = e;
  else release(e);
  return rc;
}

void fill_pattern(char* dst, const void* pattern, std::size_t pattern_size, std::size_t size) {
  if (pattern_size == 1) {
    std::memset(dst, *static_cast<const unsigned char*>(pattern), size);
    return;
  }
  for (std::size_t i = 0; i < size; i += pattern_size) std::memcpy(dst + i, pattern, pattern_size);
}

void check_pattern(const void* pattern, std::size_t pattern_size) {
  if (pattern == nullptr || pattern_size == 0 || pattern_size > 128 ||
      (pattern_size & (pattern_size - 1)) != 0)
    fail(CL_INVALID_VALUE);
}

void prefetch(cl_command_queue q, const void* addr, std::size_t size, bool to_host) {
  if (size == 0 || migrations_off()) return;  // a hint, not heeded then (platform.cpp)
  auto a = reinterpret_cast<std::uintptr_t>(addr);
  std::uintptr_t lo = a & ~std::uintptr_t{4095}, hi = (a + size + 4095) & ~std::uintptr_t{4095};
  try {
    runtime().prefetch(reinterpret_cast<const void*>(lo), hi - lo,
                       to_host ? Location::system() : Location::device(q->device->index));
  } catch (const hetmm::Error& e) {
    // A migration is a hint: memory that cannot move (shared, file-backed) or a full device
    // leaves the data where it is, and kernels reach it in place. Unmapped memory is an error.
    if (e.code() != Errc::not_found && e.code() != Errc::out_of_memory) throw;
  }
}

}  // namespace hetmm::opencl

using namespace hetmm::opencl;

namespace {

constexpr cl_mem_flags kAccess = CL_MEM_READ_WRITE | CL_MEM_WRITE_ONLY | CL_MEM_READ_ONLY;
constexpr cl_mem_flags kHostAccess = CL_MEM_HOST_WRITE_ONLY | CL_MEM_HOST_READ_ONLY |
                                     CL_MEM_HOST_NO_ACCESS;
constexpr cl_mem_flags kHostPtr = CL_MEM_USE_HOST_PTR | CL_MEM_ALLOC_HOST_PTR |
                                  CL_MEM_COPY_HOST_PTR;

int bits_set(cl_mem_flags f) { return __builtin_popcountll(f); }

void check_flags(cl_mem_flags flags) {
  constexpr cl_mem_flags known = kAccess | kHostAccess | kHostPtr | CL_MEM_KERNEL_READ_AND_WRITE;
  if ((flags & ~known) != 0) fail(CL_INVALID_VALUE);
  if (bits_set(flags & kAccess) > 1 || bits_set(flags & kHostAccess) > 1) fail(CL_INVALID_VALUE);
  if ((flags & CL_MEM_USE_HOST_PTR) != 0 && (flags & (CL_MEM_ALLOC_HOST_PTR | CL_MEM_COPY_HOST_PTR)) != 0)
    fail(CL_INVALID_VALUE);
}

cl_mem make_buffer(cl_context ctx, const cl_mem_properties* props, cl_mem_flags flags,
                   std::size_t size, void* host_ptr) {
  get(ctx);
  std::vector<cl_mem_properties> properties;
  if (props != nullptr) {
    if (*props != 0) fail(CL_INVALID_PROPERTY);  // OpenCL 3.0 defines no buffer properties
    properties.push_back(0);
  }
  check_flags(flags);
  if ((flags & kAccess) == 0) flags |= CL_MEM_READ_WRITE;
  if (size == 0 || size > device_limits().max_alloc) fail(CL_INVALID_BUFFER_SIZE);
  bool needs_ptr = (flags & (CL_MEM_USE_HOST_PTR | CL_MEM_COPY_HOST_PTR)) != 0;
  if (needs_ptr != (host_ptr != nullptr)) fail(CL_INVALID_HOST_PTR);
  auto* m = new _cl_mem;
  m->context = ctx;
  m->flags = flags;
  m->size = size;
  m->properties = std::move(properties);
  if ((flags & CL_MEM_USE_HOST_PTR) != 0) {
    m->data = static_cast<char*>(host_ptr);
    m->host_ptr = host_ptr;
    m->uses_svm_pointer = svm_allocation(host_ptr).has_value();
  } else {
    try {
      m->data = static_cast<char*>(runtime().allocate(size));
    } catch (...) {
      delete m;
      fail(CL_MEM_OBJECT_ALLOCATION_FAILURE);
    }
    m->owns = true;
    if ((flags & CL_MEM_COPY_HOST_PTR) != 0) std::memcpy(m->data, host_ptr, size);
  }
  retain(ctx);
  register_object(m);
  return m;
}

// Checks a host access to m (CL_MEM_HOST_* flags) for a read or a write.
void check_host_access(cl_mem m, bool read, bool write) {
  if ((m->flags & CL_MEM_HOST_NO_ACCESS) != 0) fail(CL_INVALID_OPERATION);
  if (read && (m->flags & CL_MEM_HOST_WRITE_ONLY) != 0) fail(CL_INVALID_OPERATION);
  if (write && (m->flags & CL_MEM_HOST_READ_ONLY) != 0) fail(CL_INVALID_OPERATION);
}

Command with_mem(std::function<cl_int()> work, std::initializer_list<cl_mem> mems) {
  Command c;
  c.work = std::move(work);
  for (cl_mem m : mems) {
    retain(m);
    c.mems.push_back(m);
  }
  return c;
}

// A rectangle of a buffer in the spec's terms, pitches defaulted and checked.
struct Rect {
  std::size_t origin[3], row, slice;
  std::size_t base() const { return origin[2] * slice + origin[1] * row + origin[0]; }
};
Rect make_rect(const size_t* origin, const size_t* region, std::size_t row, std::size_t slice) {
  if (origin == nullptr) fail(CL_INVALID_VALUE);
  if (row == 0) row = region[0];
  else if (row < region[0]) fail(CL_INVALID_VALUE);
  if (slice == 0) slice = region[1] * row;
  else if (slice < region[1] * row || slice % row != 0) fail(CL_INVALID_VALUE);
  return Rect{{origin[0], origin[1], origin[2]}, row, slice};
}
void check_region(const size_t* region) {
  if (region == nullptr || region[0] == 0 || region[1] == 0 || region[2] == 0) fail(CL_INVALID_VALUE);
}
// The last byte the rectangle touches must lie inside size bytes.
void check_rect(const Rect& r, const size_t* region, std::size_t size) {
  std::size_t end = (r.origin[2] + region[2] - 1) * r.slice + (r.origin[1] + region[1] - 1) * r.row +
                    r.origin[0] + region[0];
  if (end > size) fail(CL_INVALID_VALUE);
}
void copy_rect(char* dst, const Rect& d, const char* src, const Rect& s, const size_t* region) {
  for (std::size_t z = 0; z < region[2]; ++z)
    for (std::size_t y = 0; y < region[1]; ++y)
      std::memmove(dst + d.base() + z * d.slice + y * d.row, src + s.base() + z * s.slice + y * s.row,
                   region[0]);
}

bool overlap(const char* a, std::size_t an, const char* b, std::size_t bn) {
  return a < b + bn && b < a + an;
}

}  // namespace

// ---- creation and information ------------------------------------------------------------------
CL_API_ENTRY cl_mem CL_API_CALL clCreateBuffer(cl_context ctx, cl_mem_flags flags, size_t size,
                                               void* host_ptr, cl_int* errcode_ret) {
  return guarded_create<cl_mem>(errcode_ret, [&] { return make_buffer(ctx, nullptr, flags, size, host_ptr); });
}

CL_API_ENTRY cl_mem CL_API_CALL clCreateBufferWithProperties(cl_context ctx,
                                                             const cl_mem_properties* props,
                                                             cl_mem_flags flags, size_t size,
                                                             void* host_ptr, cl_int* errcode_ret) {
  return guarded_create<cl_mem>(errcode_ret, [&] { return make_buffer(ctx, props, flags, size, host_ptr); });
}

CL_API_ENTRY cl_mem CL_API_CALL clCreateSubBuffer(cl_mem parent, cl_mem_flags flags,
                                                  cl_buffer_create_type type, const void* info,
                                                  cl_int* errcode_ret) {
  return guarded_create<cl_mem>(errcode_ret, [&] {
    get(parent);
    if (parent->parent != nullptr) fail(CL_INVALID_MEM_OBJECT);
    if (type != CL_BUFFER_CREATE_TYPE_REGION || info == nullptr) fail(CL_INVALID_VALUE);
    check_flags(flags);
    if ((flags & kHostPtr) != 0) fail(CL_INVALID_VALUE);
    // Access the parent forbids cannot be asked for; unspecified access is inherited.
    cl_mem_flags pf = parent->flags;
    if (((pf & CL_MEM_WRITE_ONLY) && (flags & (CL_MEM_READ_WRITE | CL_MEM_READ_ONLY))) ||
        ((pf & CL_MEM_READ_ONLY) && (flags & (CL_MEM_READ_WRITE | CL_MEM_WRITE_ONLY))) ||
        ((pf & CL_MEM_HOST_WRITE_ONLY) && (flags & CL_MEM_HOST_READ_ONLY)) ||
        ((pf & CL_MEM_HOST_READ_ONLY) && (flags & CL_MEM_HOST_WRITE_ONLY)) ||
        ((pf & CL_MEM_HOST_NO_ACCESS) && (flags & (CL_MEM_HOST_READ_ONLY | CL_MEM_HOST_WRITE_ONLY))))
      fail(CL_INVALID_VALUE);
    if ((flags & kAccess) == 0) flags |= pf & kAccess;
    if ((flags & kHostAccess) == 0) flags |= pf & kHostAccess;
    flags |= pf & kHostPtr;
    const auto* region = static_cast<const cl_buffer_region*>(info);
    if (region->size == 0) fail(CL_INVALID_BUFFER_SIZE);
    check_range(parent, region->origin, region->size);
    if (region->origin % kBaseAddrAlignBytes != 0) fail(CL_MISALIGNED_SUB_BUFFER_OFFSET);
    auto* m = new _cl_mem;
    m->context = parent->context;
    m->flags = flags;
    m->size = region->size;
    m->data = parent->data + region->origin;
    m->host_ptr = parent->host_ptr != nullptr ? static_cast<char*>(parent->host_ptr) + region->origin
                                              : nullptr;
    m->parent = parent;
    m->origin = region->origin;
    m->uses_svm_pointer = parent->uses_svm_pointer;
    retain(parent);
    retain(m->context);
    register_object(m);
    return m;
  });
}

CL_API_ENTRY cl_int CL_API_CALL clRetainMemObject(cl_mem m) {
  return guarded([&] { retain(get(m)); });
}

CL_API_ENTRY cl_int CL_API_CALL clReleaseMemObject(cl_mem m) {
  return guarded([&] { release(get(m)); });
}

CL_API_ENTRY cl_int CL_API_CALL clSetMemObjectDestructorCallback(cl_mem m,
                                                                 void(CL_CALLBACK* fn)(cl_mem, void*),
                                                                 void* data) {
  return guarded([&] {
    get(m);
    if (fn == nullptr) fail(CL_INVALID_VALUE);
    std::lock_guard lock(m->mutex);
    m->destructor_callbacks.emplace_back(fn, data);
  });
}

CL_API_ENTRY cl_int CL_API_CALL clGetMemObjectInfo(cl_mem m, cl_mem_info param, size_t size,
                                                   void* value, size_t* size_ret) {
  return guarded([&] {
    get(m);
    cl_int rc;
    switch (param) {
      case CL_MEM_TYPE: rc = info(size, value, size_ret, m->type); break;
      case CL_MEM_FLAGS: rc = info(size, value, size_ret, m->flags); break;
      case CL_MEM_SIZE: rc = info<size_t>(size, value, size_ret, m->size); break;
      case CL_MEM_HOST_PTR: rc = info<void*>(size, value, size_ret, m->host_ptr); break;
      case CL_MEM_MAP_COUNT: rc = info<cl_uint>(size, value, size_ret, m->map_count.load()); break;
      case CL_MEM_REFERENCE_COUNT: rc = info<cl_uint>(size, value, size_ret, m->refs.load()); break;
      case CL_MEM_CONTEXT: rc = info(size, value, size_ret, m->context); break;
      case CL_MEM_ASSOCIATED_MEMOBJECT: rc = info(size, value, size_ret, m->parent); break;
      case CL_MEM_OFFSET: rc = info<size_t>(size, value, size_ret, m->origin); break;
      case CL_MEM_USES_SVM_POINTER:
        rc = info<cl_bool>(size, value, size_ret, m->uses_svm_pointer ? CL_TRUE : CL_FALSE);
        break;
      case CL_MEM_PROPERTIES: rc = info_vector(size, value, size_ret, m->properties); break;
      default: rc = CL_INVALID_VALUE;
    }
    if (rc != CL_SUCCESS) fail(rc);
  });
}

// ---- commands ----------------------------------------------------------------------------------
namespace {
// clEnqueueReadBuffer and clEnqueueWriteBuffer: bytes between a buffer and host memory,
// `to_host` saying which way.
cl_int transfer(cl_command_queue q, cl_mem m, bool blocking, bool to_host, size_t offset,
                size_t size, void* ptr, cl_uint num, const cl_event* waits, cl_event* event) {
  cl_int rc = CL_SUCCESS;
  cl_int g = guarded([&] {
    get(q);
    get(m);
    check_same_context(q, m);
    check_wait_list(q->context, num, waits);
    if (ptr == nullptr || size == 0) fail(CL_INVALID_VALUE);
    check_range(m, offset, size);
    check_host_access(m, to_host, !to_host);
    char* buffer = m->data + offset;
    Command c = with_mem([=] {
      if (to_host) std::memcpy(ptr, buffer, size);
      else std::memcpy(buffer, ptr, size);
      return CL_COMPLETE;
    }, {m});
    c.run_here = blocking;
    cl_event e = submit(q, to_host ? CL_COMMAND_READ_BUFFER : CL_COMMAND_WRITE_BUFFER, num, waits,
                        std::move(c));
    rc = finish_blocking(e, blocking, event);
  });
  return g != CL_SUCCESS ? g : rc;
}
}  // namespace

CL_API_ENTRY cl_int CL_API_CALL clEnqueueReadBuffer(cl_command_queue q, cl_mem m, cl_bool blocking,
                                                    size_t offset, size_t size, void* ptr,
                                                    cl_uint num, const cl_event* waits,
                                                    cl_event* event) {
  return transfer(q, m, blocking, true, offset, size, ptr, num, waits, event);
}

CL_API_ENTRY cl_int CL_API_CALL clEnqueueWriteBuffer(cl_command_queue q, cl_mem m, cl_bool blocking,
                                                     size_t offset, size_t size, const void* ptr,
                                                     cl_uint num, const cl_event* waits,
                                                     cl_event* event) {
  // The host memory is only read: the const goes as far as the copy's direction.
  return transfer(q, m, blocking, false, offset, size, const_cast<void*>(ptr), num, waits, event);
}

CL_API_ENTRY cl_int CL_API_CALL clEnqueueCopyBuffer(cl_command_queue q, cl_mem src, cl_mem dst,
                                                    size_t src_offset, size_t dst_offset,
                                                    size_t size, cl_uint num, const cl_event* waits,
                                                    cl_event* event) {
  return guarded([&] {
    get(q);
    get(src);
    get(dst);
    check_same_context(q, src);
    check_same_context(q, dst);
    check_wait_list(q->context, num, waits);
    if (size == 0) fail(CL_INVALID_VALUE);
    check_range(src, src_offset, size);
    check_range(dst, dst_offset, size);
    const char* s = src->data + src_offset;
    char* d = dst->data + dst_offset;
    if (overlap(s, size, d, size)) fail(CL_MEM_COPY_OVERLAP);
    cl_event e = submit(q, CL_COMMAND_COPY_BUFFER, num, waits,
                        with_mem([=] { std::memcpy(d, s, size); return CL_COMPLETE; }, {src, dst}));
    finish_blocking(e, false, event);
  });
}

CL_API_ENTRY cl_int CL_API_CALL clEnqueueFillBuffer(cl_command_queue q, cl_mem m,
                                                    const void* pattern, size_t pattern_size,
                                                    size_t offset, size_t size, cl_uint num,
                                                    const cl_event* waits, cl_event* event) {
  return guarded([&] {
    get(q);
    get(m);
    check_same_context(q, m);
    check_wait_list(q->context, num, waits);
    check_pattern(pattern, pattern_size);
    if (offset % pattern_size != 0 || size % pattern_size != 0) fail(CL_INVALID_VALUE);
    check_range(m, offset, size);
    auto bytes = std::make_shared<std::vector<unsigned char>>(
        static_cast<const unsigned char*>(pattern), static_cast<const unsigned char*>(pattern) + pattern_size);
    char* dst = m->data + offset;
    cl_event e = submit(q, CL_COMMAND_FILL_BUFFER, num, waits, with_mem([=] {
      fill_pattern(dst, bytes->data(), bytes->size(), size);
      return CL_COMPLETE;
    }, {m}));
    finish_blocking(e, false, event);
  });
}

namespace {
// clEnqueueReadBufferRect and clEnqueueWriteBufferRect: one rectangle between a buffer and host
// memory, `to_host` saying which way.
cl_int transfer_rect(cl_command_queue q, cl_mem m, bool blocking, bool to_host,
                     const size_t* buffer_origin, const size_t* host_origin, const size_t* region,
                     size_t buffer_row_pitch, size_t buffer_slice_pitch, size_t host_row_pitch,
                     size_t host_slice_pitch, void* ptr, cl_uint num, const cl_event* waits,
                     cl_event* event) {
  cl_int rc = CL_SUCCESS;
  cl_int g = guarded([&] {
    get(q);
    get(m);
    check_same_context(q, m);
    check_wait_list(q->context, num, waits);
    if (ptr == nullptr) fail(CL_INVALID_VALUE);
    check_region(region);
    Rect b = make_rect(buffer_origin, region, buffer_row_pitch, buffer_slice_pitch);
    Rect h = make_rect(host_origin, region, host_row_pitch, host_slice_pitch);
    check_rect(b, region, m->size);
    check_host_access(m, to_host, !to_host);
    char* buffer = m->data;
    auto* host = static_cast<char*>(ptr);
    std::array<size_t, 3> r{region[0], region[1], region[2]};
    Command c = with_mem([=] {
      if (to_host) copy_rect(host, h, buffer, b, r.data());
      else copy_rect(buffer, b, host, h, r.data());
      return CL_COMPLETE;
    }, {m});
    c.run_here = blocking;
    cl_event e = submit(q, to_host ? CL_COMMAND_READ_BUFFER_RECT : CL_COMMAND_WRITE_BUFFER_RECT,
                        num, waits, std::move(c));
    rc = finish_blocking(e, blocking, event);
  });
  return g != CL_SUCCESS ? g : rc;
}
}  // namespace

CL_API_ENTRY cl_int CL_API_CALL clEnqueueReadBufferRect(
    cl_command_queue q, cl_mem m, cl_bool blocking, const size_t* buffer_origin,
    const size_t* host_origin, const size_t* region, size_t buffer_row_pitch,
    size_t buffer_slice_pitch, size_t host_row_pitch, size_t host_slice_pitch, void* ptr,
    cl_uint num, const cl_event* waits, cl_event* event) {
  return transfer_rect(q, m, blocking, true, buffer_origin, host_origin, region, buffer_row_pitch,
                       buffer_slice_pitch, host_row_pitch, host_slice_pitch, ptr, num, waits,
                       event);
}

CL_API_ENTRY cl_int CL_API_CALL clEnqueueWriteBufferRect(
    cl_command_queue q, cl_mem m, cl_bool blocking, const size_t* buffer_origin,
    const size_t* host_origin, const size_t* region, size_t buffer_row_pitch,
    size_t buffer_slice_pitch, size_t host_row_pitch, size_t host_slice_pitch, const void* ptr,
    cl_uint num, const cl_event* waits, cl_event* event) {
  // The host memory is only read: the const goes only as far as the copy's direction.
  return transfer_rect(q, m, blocking, false, buffer_origin, host_origin, region,
                       buffer_row_pitch, buffer_slice_pitch, host_row_pitch, host_slice_pitch,
                       const_cast<void*>(ptr), num, waits, event);
}

CL_API_ENTRY cl_int CL_API_CALL clEnqueueCopyBufferRect(
    cl_command_queue q, cl_mem src, cl_mem dst, const size_t* src_origin, const size_t* dst_origin,
    const size_t* region, size_t src_row_pitch, size_t src_slice_pitch, size_t dst_row_pitch,
    size_t dst_slice_pitch, cl_uint num, const cl_event* waits, cl_event* event) {
  return guarded([&] {
    get(q);
    get(src);
    get(dst);
    check_same_context(q, src);
    check_same_context(q, dst);
    check_wait_list(q->context, num, waits);
    check_region(region);
    Rect s = make_rect(src_origin, region, src_row_pitch, src_slice_pitch);
    Rect d = make_rect(dst_origin, region, dst_row_pitch, dst_slice_pitch);
    check_rect(s, region, src->size);
    check_rect(d, region, dst->size);
    if (src->data == dst->data) {
      // The same buffer: pitches must agree and the two boxes must not meet (spec 5.2.3).
      if (src_row_pitch != dst_row_pitch || src_slice_pitch != dst_slice_pitch) fail(CL_INVALID_VALUE);
      bool apart = false;
      for (int i = 0; i < 3; ++i)
        apart |= s.origin[i] + region[i] <= d.origin[i] || d.origin[i] + region[i] <= s.origin[i];
      if (!apart) fail(CL_MEM_COPY_OVERLAP);
    }
    const char* sp = src->data;
    char* dp = dst->data;
    std::array<size_t, 3> r{region[0], region[1], region[2]};
    cl_event e = submit(q, CL_COMMAND_COPY_BUFFER_RECT, num, waits, with_mem([=] {
      copy_rect(dp, d, sp, s, r.data());
      return CL_COMPLETE;
    }, {src, dst}));
    finish_blocking(e, false, event);
  });
}

CL_API_ENTRY void* CL_API_CALL clEnqueueMapBuffer(cl_command_queue q, cl_mem m, cl_bool blocking,
                                                  cl_map_flags flags, size_t offset, size_t size,
                                                  cl_uint num, const cl_event* waits,
                                                  cl_event* event, cl_int* errcode_ret) {
  void* out = nullptr;
  cl_int rc = CL_SUCCESS;
  cl_int g = guarded([&] {
    get(q);
    get(m);
    check_same_context(q, m);
    check_wait_list(q->context, num, waits);
    if (size == 0) fail(CL_INVALID_VALUE);
    check_range(m, offset, size);
    constexpr cl_map_flags known = CL_MAP_READ | CL_MAP_WRITE | CL_MAP_WRITE_INVALIDATE_REGION;
    if ((flags & ~known) != 0 ||
        ((flags & CL_MAP_WRITE_INVALIDATE_REGION) != 0 && (flags & (CL_MAP_READ | CL_MAP_WRITE)) != 0))
      fail(CL_INVALID_VALUE);
    check_host_access(m, (flags & CL_MAP_READ) != 0,
                      (flags & (CL_MAP_WRITE | CL_MAP_WRITE_INVALIDATE_REGION)) != 0);
    // The mapping is the buffer itself: no copy either way, only the ordering of the command.
    Command c = with_mem(nullptr, {m});
    c.run_here = blocking;
    cl_event e = submit(q, CL_COMMAND_MAP_BUFFER, num, waits, std::move(c));
    m->map_count.fetch_add(1);
    out = m->data + offset;
    rc = finish_blocking(e, blocking, event);
  });
  if (g == CL_SUCCESS) g = rc;
  if (errcode_ret != nullptr) *errcode_ret = g;
  return g == CL_SUCCESS ? out : nullptr;
}

CL_API_ENTRY cl_int CL_API_CALL clEnqueueUnmapMemObject(cl_command_queue q, cl_mem m, void* mapped,
                                                        cl_uint num, const cl_event* waits,
                                                        cl_event* event) {
  return guarded([&] {
    get(q);
    get(m);
    check_same_context(q, m);
    check_wait_list(q->context, num, waits);
    auto* p = static_cast<char*>(mapped);
    if (p < m->data || p >= m->data + m->size) fail(CL_INVALID_VALUE);
    cl_uint c = m->map_count.load();
    do {
      if (c == 0) fail(CL_INVALID_VALUE);  // not mapped
    } while (!m->map_count.compare_exchange_weak(c, c - 1));
    cl_event e = submit(q, CL_COMMAND_UNMAP_MEM_OBJECT, num, waits, with_mem(nullptr, {m}));
    finish_blocking(e, false, event);
  });
}

CL_API_ENTRY cl_int CL_API_CALL clEnqueueMigrateMemObjects(cl_command_queue q, cl_uint n,
                                                           const cl_mem* mems,
                                                           cl_mem_migration_flags flags,
                                                           cl_uint num, const cl_event* waits,
                                                           cl_event* event) {
  return guarded([&] {
    get(q);
    if (n == 0 || mems == nullptr) fail(CL_INVALID_VALUE);
    if ((flags & ~(CL_MIGRATE_MEM_OBJECT_HOST | CL_MIGRATE_MEM_OBJECT_CONTENT_UNDEFINED)) != 0)
      fail(CL_INVALID_VALUE);
    Command c;
    std::vector<std::pair<const char*, std::size_t>> ranges;
    for (cl_uint i = 0; i < n; ++i) {
      get(mems[i]);
      check_same_context(q, mems[i]);
      ranges.emplace_back(mems[i]->data, mems[i]->size);
    }
    check_wait_list(q->context, num, waits);
    for (cl_uint i = 0; i < n; ++i) {
      retain(mems[i]);
      c.mems.push_back(mems[i]);
    }
    bool to_host = (flags & CL_MIGRATE_MEM_OBJECT_HOST) != 0;
    c.work = [=] {
      for (const auto& [p, s] : ranges) prefetch(q, p, s, to_host);
      return CL_COMPLETE;
    };
    finish_blocking(submit(q, CL_COMMAND_MIGRATE_MEM_OBJECTS, num, waits, std::move(c)), false, event);
  });
}

// ---- images, samplers and pipes: not supported (CL_DEVICE_IMAGE_SUPPORT is false) ------------
CL_API_ENTRY cl_mem CL_API_CALL clCreateImage(cl_context ctx, cl_mem_flags, const cl_image_format*,
                                              const cl_image_desc*, void*, cl_int* errcode_ret) {
  return guarded_create<cl_mem>(errcode_ret, [&]() -> cl_mem {
    get(ctx);
    fail(CL_INVALID_OPERATION);
  });
}
CL_API_ENTRY cl_mem CL_API_CALL clCreateImageWithProperties(cl_context ctx, const cl_mem_properties*,
                                                            cl_mem_flags, const cl_image_format*,
                                                            const cl_image_desc*, void*,
                                                            cl_int* errcode_ret) {
  return clCreateImage(ctx, 0, nullptr, nullptr, nullptr, errcode_ret);
}
CL_API_ENTRY cl_mem CL_API_CALL clCreateImage2D(cl_context ctx, cl_mem_flags, const cl_image_format*,
                                                size_t, size_t, size_t, void*, cl_int* errcode_ret) {
  return clCreateImage(ctx, 0, nullptr, nullptr, nullptr, errcode_ret);
}
CL_API_ENTRY cl_mem CL_API_CALL clCreateImage3D(cl_context ctx, cl_mem_flags, const cl_image_format*,
                                                size_t, size_t, size_t, size_t, size_t, void*,
                                                cl_int* errcode_ret) {
  return clCreateImage(ctx, 0, nullptr, nullptr, nullptr, errcode_ret);
}
CL_API_ENTRY cl_int CL_API_CALL clGetSupportedImageFormats(cl_context ctx, cl_mem_flags,
                                                           cl_mem_object_type, cl_uint,
                                                           cl_image_format*, cl_uint* num) {
  return guarded([&] {
    get(ctx);
    if (num != nullptr) *num = 0;  // no device of the context supports images
  });
}
CL_API_ENTRY cl_int CL_API_CALL clGetImageInfo(cl_mem m, cl_image_info, size_t, void*, size_t*) {
  return guarded([&] {
    get(m);
    fail(CL_INVALID_MEM_OBJECT);  // m is a buffer: there are no images
  });
}
#define HETMM_CL_NO_IMAGES(...)                    \
  return guarded([&] {                             \
    get(q);                                        \
    fail(CL_INVALID_OPERATION);                    \
  })
CL_API_ENTRY cl_int CL_API_CALL clEnqueueReadImage(cl_command_queue q, cl_mem, cl_bool, const size_t*,
                                                   const size_t*, size_t, size_t, void*, cl_uint,
                                                   const cl_event*, cl_event*) {
  HETMM_CL_NO_IMAGES();
}
CL_API_ENTRY cl_int CL_API_CALL clEnqueueWriteImage(cl_command_queue q, cl_mem, cl_bool, const size_t*,
                                                    const size_t*, size_t, size_t, const void*,
                                                    cl_uint, const cl_event*, cl_event*) {
  HETMM_CL_NO_IMAGES();
}
CL_API_ENTRY cl_int CL_API_CALL clEnqueueCopyImage(cl_command_queue q, cl_mem, cl_mem, const size_t*,
                                                   const size_t*, const size_t*, cl_uint,
                                                   const cl_event*, cl_event*) {
  HETMM_CL_NO_IMAGES();
}
CL_API_ENTRY cl_int CL_API_CALL clEnqueueFillImage(cl_command_queue q, cl_mem, const void*,
                                                   const size_t*, const size_t*, cl_uint,
                                                   const cl_event*, cl_event*) {
  HETMM_CL_NO_IMAGES();
}
CL_API_ENTRY cl_int CL_API_CALL clEnqueueCopyImageToBuffer(cl_command_queue q, cl_mem, cl_mem,
                                                           const size_t*, const size_t*, size_t,
                                                           cl_uint, const cl_event*, cl_event*) {
  HETMM_CL_NO_IMAGES();
}
CL_API_ENTRY cl_int CL_API_CALL clEnqueueCopyBufferToImage(cl_command_queue q, cl_mem, cl_mem, size_t,
                                                           const size_t*, const size_t*, cl_uint,
                                                           const cl_event*, cl_event*) {
  HETMM_CL_NO_IMAGES();
}
CL_API_ENTRY void* CL_API_CALL clEnqueueMapImage(cl_command_queue q, cl_mem, cl_bool, cl_map_flags,
                                                 const size_t*, const size_t*, size_t*, size_t*,
                                                 cl_uint, const cl_event*, cl_event*,
                                                 cl_int* errcode_ret) {
  cl_int rc = guarded([&] {
    get(q);
    fail(CL_INVALID_OPERATION);
  });
  if (errcode_ret != nullptr) *errcode_ret = rc;
  return nullptr;
}
#undef HETMM_CL_NO_IMAGES

CL_API_ENTRY cl_sampler CL_API_CALL clCreateSampler(cl_context ctx, cl_bool, cl_addressing_mode,
                                                    cl_filter_mode, cl_int* errcode_ret) {
  return guarded_create<cl_sampler>(errcode_ret, [&]() -> cl_sampler {
    get(ctx);
    fail(CL_INVALID_OPERATION);
  });
}
CL_API_ENTRY cl_sampler CL_API_CALL clCreateSamplerWithProperties(cl_context ctx,
                                                                  const cl_sampler_properties*,
                                                                  cl_int* errcode_ret) {
  return clCreateSampler(ctx, CL_FALSE, 0, 0, errcode_ret);
}
CL_API_ENTRY cl_int CL_API_CALL clRetainSampler(cl_sampler) { return CL_INVALID_SAMPLER; }
CL_API_ENTRY cl_int CL_API_CALL clReleaseSampler(cl_sampler) { return CL_INVALID_SAMPLER; }
CL_API_ENTRY cl_int CL_API_CALL clGetSamplerInfo(cl_sampler, cl_sampler_info, size_t, void*, size_t*) {
  return CL_INVALID_SAMPLER;
}

CL_API_ENTRY cl_mem CL_API_CALL clCreatePipe(cl_context ctx, cl_mem_flags, cl_uint, cl_uint,
                                             const cl_pipe_properties*, cl_int* errcode_ret) {
  return guarded_create<cl_mem>(errcode_ret, [&]() -> cl_mem {
    get(ctx);
    fail(CL_INVALID_OPERATION);  // CL_DEVICE_PIPE_SUPPORT is false
  });
}
CL_API_ENTRY cl_int CL_API_CALL clGetPipeInfo(cl_mem m, cl_pipe_info, size_t, void*, size_t*) {
  return guarded([&] {
    get(m);
    fail(CL_INVALID_MEM_OBJECT);  // m is a buffer
  });
}
