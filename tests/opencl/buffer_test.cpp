// Buffers and sub-buffers, and the commands that read, write, copy, fill, map and migrate them.
#include "cl_test_support.hpp"

#include <cstdlib>
#include <cstring>
#include <numeric>

namespace cltest {
namespace {

class Buffers : public ClTest {
 protected:
  std::vector<cl_int> ReadInts(cl_mem m, size_t n, size_t offset_bytes = 0) {
    std::vector<cl_int> out(n, -12345);
    EXPECT_OK(clEnqueueReadBuffer(queue_, m, CL_TRUE, offset_bytes, n * sizeof(cl_int), out.data(),
                                  0, nullptr, nullptr));
    return out;
  }
  void UseHostPtrBody();
  void SubBuffersBody();
};

struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};

void Buffers::UseHostPtrBody() {
  constexpr size_t kN = 1024;
  std::unique_ptr<cl_int, AlignedFree> host(
      static_cast<cl_int*>(std::aligned_alloc(4096, kN * sizeof(cl_int))));
  std::iota(host.get(), host.get() + kN, 0);
  Mem buf = MakeBuffer(CL_MEM_READ_WRITE | CL_MEM_USE_HOST_PTR, kN * sizeof(cl_int), host.get());
  void* reported = nullptr;
  ASSERT_OK(clGetMemObjectInfo(buf, CL_MEM_HOST_PTR, sizeof reported, &reported, nullptr));
  EXPECT_EQ(reported, host.get());

  // Mapping returns the host array (at the offset), with no copy.
  cl_int rc = CL_SUCCESS;
  void* mapped = clEnqueueMapBuffer(queue_, buf, CL_TRUE, CL_MAP_READ | CL_MAP_WRITE, 64,
                                    256, 0, nullptr, nullptr, &rc);
  ASSERT_OK(rc);
  EXPECT_EQ(mapped, reinterpret_cast<char*>(host.get()) + 64);
  static_cast<cl_int*>(mapped)[0] = -5;  // through the mapping: the host array changes
  EXPECT_EQ(host.get()[16], -5);
  cl_uint count = 0;
  ASSERT_OK(clGetMemObjectInfo(buf, CL_MEM_MAP_COUNT, sizeof count, &count, nullptr));
  EXPECT_EQ(count, 1u);
  ASSERT_OK(clEnqueueUnmapMemObject(queue_, buf, mapped, 0, nullptr, nullptr));
  ASSERT_OK(clFinish(queue_));

  // A kernel's writes are in the host array once it is done; no read command needed.
  Kernel k = MakeKernel(kCommonSource, "write_gid");
  ASSERT_TRUE(k);
  ASSERT_OK(clSetKernelArg(k, 0, sizeof(cl_mem), buf.ptr()));
  ASSERT_CL(CL_COMPLETE, Run1D(k, kN));
  for (size_t i = 0; i < kN; ++i) ASSERT_EQ(host.get()[i], static_cast<cl_int>(i));
  // And the host's writes are what the next kernel reads.
  for (size_t i = 0; i < kN; ++i) host.get()[i] = static_cast<cl_int>(3 * i);
  Kernel add = MakeKernel(kCommonSource, "add_value");
  cl_int one = 1;
  ASSERT_OK(clSetKernelArg(add, 0, sizeof(cl_mem), buf.ptr()));
  ASSERT_OK(clSetKernelArg(add, 1, sizeof one, &one));
  ASSERT_CL(CL_COMPLETE, Run1D(add, kN));
  for (size_t i = 0; i < kN; ++i) ASSERT_EQ(host.get()[i], static_cast<cl_int>(3 * i + 1));
}

TEST_F(Buffers, UseHostPtrIsTheHostMemoryItself) {
  // In a child under a watchdog: kernels on heap memory have hung the process (hetmm's service
  // threads faulting in the dynamic linker on a heap page that went to the device).
  CLTEST_IN_CHILD(15, UseHostPtrBody());
}

TEST_F(Buffers, CopyAndAllocHostPtr) {
  std::vector<cl_int> src(256);
  std::iota(src.begin(), src.end(), 100);
  Mem copy = MakeBuffer(CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, 256 * sizeof(cl_int), src.data());
  Mem both = MakeBuffer(CL_MEM_READ_WRITE | CL_MEM_ALLOC_HOST_PTR | CL_MEM_COPY_HOST_PTR,
                        256 * sizeof(cl_int), src.data());
  std::vector<cl_int> original = src;
  std::fill(src.begin(), src.end(), 0);  // the buffers hold their own copies
  EXPECT_EQ(ReadInts(copy, 256), original);
  EXPECT_EQ(ReadInts(both, 256), original);
  void* host_ptr = reinterpret_cast<void*>(1);
  ASSERT_OK(clGetMemObjectInfo(copy, CL_MEM_HOST_PTR, sizeof host_ptr, &host_ptr, nullptr));
  EXPECT_EQ(host_ptr, nullptr) << "CL_MEM_HOST_PTR answers only for CL_MEM_USE_HOST_PTR";
  cl_mem_flags flags = 0;
  ASSERT_OK(clGetMemObjectInfo(copy, CL_MEM_FLAGS, sizeof flags, &flags, nullptr));
  EXPECT_EQ(flags, static_cast<cl_mem_flags>(CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR));
  size_t size = 0;
  ASSERT_OK(clGetMemObjectInfo(both, CL_MEM_SIZE, sizeof size, &size, nullptr));
  EXPECT_EQ(size, 256 * sizeof(cl_int));

  cl_int rc = CL_SUCCESS;
  int x = 0;
  EXPECT_EQ(clCreateBuffer(ctx_, CL_MEM_USE_HOST_PTR | CL_MEM_COPY_HOST_PTR, 4, &x, &rc), nullptr);
  EXPECT_CL(CL_INVALID_VALUE, rc);
  EXPECT_EQ(clCreateBuffer(ctx_, CL_MEM_USE_HOST_PTR, 4, nullptr, &rc), nullptr);
  EXPECT_CL(CL_INVALID_HOST_PTR, rc);
  EXPECT_EQ(clCreateBuffer(ctx_, CL_MEM_READ_WRITE, 4, &x, &rc), nullptr);
  EXPECT_CL(CL_INVALID_HOST_PTR, rc);
  EXPECT_EQ(clCreateBuffer(ctx_, CL_MEM_READ_WRITE, 0, nullptr, &rc), nullptr);
  EXPECT_CL(CL_INVALID_BUFFER_SIZE, rc);
  EXPECT_EQ(clCreateBuffer(ctx_, CL_MEM_READ_ONLY | CL_MEM_WRITE_ONLY, 4, nullptr, &rc), nullptr);
  EXPECT_CL(CL_INVALID_VALUE, rc);
}

void Buffers::SubBuffersBody() {
  constexpr size_t kN = 1024;
  std::vector<cl_int> host(kN);
  std::iota(host.begin(), host.end(), 0);
  Mem parent = MakeBuffer(CL_MEM_READ_WRITE | CL_MEM_USE_HOST_PTR, kN * sizeof(cl_int),
                          host.data());
  cl_buffer_region region{256 * sizeof(cl_int), 128 * sizeof(cl_int)};
  cl_int rc = CL_SUCCESS;
  Mem sub(clCreateSubBuffer(parent, CL_MEM_READ_WRITE, CL_BUFFER_CREATE_TYPE_REGION, &region,
                            &rc));
  ASSERT_OK(rc);
  cl_mem assoc = nullptr;
  size_t offset = 0, size = 0;
  void* host_ptr = nullptr;
  ASSERT_OK(clGetMemObjectInfo(sub, CL_MEM_ASSOCIATED_MEMOBJECT, sizeof assoc, &assoc, nullptr));
  ASSERT_OK(clGetMemObjectInfo(sub, CL_MEM_OFFSET, sizeof offset, &offset, nullptr));
  ASSERT_OK(clGetMemObjectInfo(sub, CL_MEM_SIZE, sizeof size, &size, nullptr));
  ASSERT_OK(clGetMemObjectInfo(sub, CL_MEM_HOST_PTR, sizeof host_ptr, &host_ptr, nullptr));
  EXPECT_EQ(assoc, parent.get());
  EXPECT_EQ(offset, region.origin);
  EXPECT_EQ(size, region.size);
  EXPECT_EQ(host_ptr, host.data() + 256);

  // A kernel over the sub-buffer writes its slice of the parent and nothing else.
  Kernel k = MakeKernel(kCommonSource, "write_gid");
  ASSERT_TRUE(k);
  ASSERT_OK(clSetKernelArg(k, 0, sizeof(cl_mem), sub.ptr()));
  ASSERT_CL(CL_COMPLETE, Run1D(k, 128));
  std::vector<cl_int> got = ReadInts(parent, kN);
  for (size_t i = 0; i < kN; ++i) {
    cl_int expect = i >= 256 && i < 384 ? static_cast<cl_int>(i - 256) : static_cast<cl_int>(i);
    ASSERT_EQ(got[i], expect) << "at " << i;
  }
  // Reads through the sub-buffer start at its origin.
  std::vector<cl_int> via_sub = ReadInts(sub, 4, 4 * sizeof(cl_int));
  EXPECT_EQ(via_sub, (std::vector<cl_int>{4, 5, 6, 7}));

  region = {4, 64};
  EXPECT_EQ(clCreateSubBuffer(parent, 0, CL_BUFFER_CREATE_TYPE_REGION, &region, &rc), nullptr);
  EXPECT_CL(CL_MISALIGNED_SUB_BUFFER_OFFSET, rc);
  region = {kN * sizeof(cl_int) - 128, 256};
  EXPECT_EQ(clCreateSubBuffer(parent, 0, CL_BUFFER_CREATE_TYPE_REGION, &region, &rc), nullptr);
  EXPECT_CL(CL_INVALID_VALUE, rc);
  region = {0, 0};
  EXPECT_EQ(clCreateSubBuffer(parent, 0, CL_BUFFER_CREATE_TYPE_REGION, &region, &rc), nullptr);
  EXPECT_CL(CL_INVALID_BUFFER_SIZE, rc);
  region = {0, 64};
  EXPECT_EQ(clCreateSubBuffer(sub, 0, CL_BUFFER_CREATE_TYPE_REGION, &region, &rc), nullptr);
  EXPECT_CL(CL_INVALID_MEM_OBJECT, rc) << "a sub-buffer of a sub-buffer";

  // The sub-buffer keeps its parent's memory alive.
  parent.reset();
  std::vector<cl_int> still = ReadInts(sub, 2);
  EXPECT_EQ(still, (std::vector<cl_int>{0, 1}));
}

TEST_F(Buffers, SubBuffers) {
  CLTEST_IN_CHILD(15, SubBuffersBody());  // a std::vector with CL_MEM_USE_HOST_PTR: see above
}

TEST_F(Buffers, ReadWriteCopyFill) {
  constexpr size_t kN = 256;
  Mem a = MakeBuffer(CL_MEM_READ_WRITE, kN * sizeof(cl_int));
  Mem b = MakeBuffer(CL_MEM_READ_WRITE, kN * sizeof(cl_int));
  std::vector<cl_int> data(kN);
  std::iota(data.begin(), data.end(), 1);
  ASSERT_OK(clEnqueueWriteBuffer(queue_, a, CL_TRUE, 0, kN * sizeof(cl_int), data.data(), 0,
                                 nullptr, nullptr));
  cl_int zero = 0;
  ASSERT_OK(clEnqueueFillBuffer(queue_, b, &zero, sizeof zero, 0, kN * sizeof(cl_int), 0, nullptr,
                                nullptr));
  // Ints 10..59 of a into b at 100.
  ASSERT_OK(clEnqueueCopyBuffer(queue_, a, b, 10 * sizeof(cl_int), 100 * sizeof(cl_int),
                                50 * sizeof(cl_int), 0, nullptr, nullptr));
  // A 16-byte pattern over ints 200..215, a 1-byte pattern over ints 0..3.
  const cl_int quad[4] = {-1, -2, -3, -4};
  ASSERT_OK(clEnqueueFillBuffer(queue_, b, quad, sizeof quad, 200 * sizeof(cl_int),
                                16 * sizeof(cl_int), 0, nullptr, nullptr));
  const unsigned char byte = 0x01;
  ASSERT_OK(clEnqueueFillBuffer(queue_, b, &byte, 1, 0, 4 * sizeof(cl_int), 0, nullptr, nullptr));
  std::vector<cl_int> got = ReadInts(b, kN);
  for (size_t i = 0; i < kN; ++i) {
    cl_int expect = 0;
    if (i < 4) expect = 0x01010101;
    else if (i >= 100 && i < 150) expect = data[i - 100 + 10];
    else if (i >= 200 && i < 216) expect = quad[(i - 200) % 4];
    ASSERT_EQ(got[i], expect) << "at " << i;
  }
  // A partial write at an offset, read back from an offset.
  const cl_int three[3] = {7, 8, 9};
  ASSERT_OK(clEnqueueWriteBuffer(queue_, a, CL_FALSE, 20 * sizeof(cl_int), sizeof three, three, 0,
                                 nullptr, nullptr));
  EXPECT_EQ(ReadInts(a, 5, 19 * sizeof(cl_int)), (std::vector<cl_int>{20, 7, 8, 9, 24}));

  cl_int x[4];
  EXPECT_CL(CL_INVALID_VALUE, clEnqueueReadBuffer(queue_, a, CL_TRUE, (kN - 1) * sizeof(cl_int),
                                                  sizeof x, x, 0, nullptr, nullptr));
  EXPECT_CL(CL_INVALID_VALUE, clEnqueueFillBuffer(queue_, a, x, 3, 0, 12, 0, nullptr, nullptr));
  EXPECT_CL(CL_INVALID_VALUE, clEnqueueFillBuffer(queue_, a, x, 4, 2, 8, 0, nullptr, nullptr));
  EXPECT_CL(CL_INVALID_VALUE, clEnqueueCopyBuffer(queue_, a, b, 0, (kN - 1) * sizeof(cl_int),
                                                  8, 0, nullptr, nullptr));
}

// A 3D box of bytes in a pitched layout: the reference for the rect commands.
size_t At(const size_t origin[3], size_t x, size_t y, size_t z, size_t row, size_t slice) {
  return (origin[2] + z) * slice + (origin[1] + y) * row + origin[0] + x;
}

TEST_F(Buffers, RectReadsWritesAndCopiesWithPitches) {
  constexpr size_t kBufRow = 32, kBufSlice = 32 * 16, kBufBytes = kBufSlice * 6;
  constexpr size_t kHostRow = 20, kHostSlice = 20 * 10, kHostBytes = kHostSlice * 5;
  const size_t region[3] = {12, 7, 3};
  const size_t buf_origin[3] = {5, 4, 2}, host_origin[3] = {3, 2, 1};
  std::vector<unsigned char> host(kHostBytes);
  for (size_t i = 0; i < kHostBytes; ++i) host[i] = static_cast<unsigned char>(i * 7 + 1);
  Mem buf = MakeBuffer(CL_MEM_READ_WRITE, kBufBytes);
  const unsigned char fill = 0xee;
  ASSERT_OK(clEnqueueFillBuffer(queue_, buf, &fill, 1, 0, kBufBytes, 0, nullptr, nullptr));
  ASSERT_OK(clEnqueueWriteBufferRect(queue_, buf, CL_TRUE, buf_origin, host_origin, region,
                                     kBufRow, kBufSlice, kHostRow, kHostSlice, host.data(), 0,
                                     nullptr, nullptr));
  std::vector<unsigned char> whole(kBufBytes);
  ASSERT_OK(clEnqueueReadBuffer(queue_, buf, CL_TRUE, 0, kBufBytes, whole.data(), 0, nullptr,
                                nullptr));
  std::vector<unsigned char> expect(kBufBytes, fill);
  for (size_t z = 0; z < region[2]; ++z)
    for (size_t y = 0; y < region[1]; ++y)
      for (size_t x = 0; x < region[0]; ++x)
        expect[At(buf_origin, x, y, z, kBufRow, kBufSlice)] =
            host[At(host_origin, x, y, z, kHostRow, kHostSlice)];
  ASSERT_EQ(whole, expect) << "clEnqueueWriteBufferRect";

  // Read the box back into a differently pitched host layout (pitches 0: tightly packed).
  std::vector<unsigned char> packed(region[0] * region[1] * region[2], 0);
  const size_t zero[3] = {0, 0, 0};
  ASSERT_OK(clEnqueueReadBufferRect(queue_, buf, CL_TRUE, buf_origin, zero, region, kBufRow,
                                    kBufSlice, 0, 0, packed.data(), 0, nullptr, nullptr));
  for (size_t z = 0; z < region[2]; ++z)
    for (size_t y = 0; y < region[1]; ++y)
      for (size_t x = 0; x < region[0]; ++x)
        ASSERT_EQ(packed[(z * region[1] + y) * region[0] + x],
                  host[At(host_origin, x, y, z, kHostRow, kHostSlice)])
            << x << "," << y << "," << z;

  // Copy the box into another buffer with other pitches, then within one buffer.
  constexpr size_t kDstRow = 16, kDstSlice = 16 * 8, kDstBytes = kDstSlice * 4;
  Mem dst = MakeBuffer(CL_MEM_READ_WRITE, kDstBytes);
  const unsigned char zero_byte = 0;
  ASSERT_OK(clEnqueueFillBuffer(queue_, dst, &zero_byte, 1, 0, kDstBytes, 0, nullptr, nullptr));
  const size_t dst_origin[3] = {2, 1, 0};
  ASSERT_OK(clEnqueueCopyBufferRect(queue_, buf, dst, buf_origin, dst_origin, region, kBufRow,
                                    kBufSlice, kDstRow, kDstSlice, 0, nullptr, nullptr));
  std::vector<unsigned char> copied(kDstBytes);
  ASSERT_OK(clEnqueueReadBuffer(queue_, dst, CL_TRUE, 0, kDstBytes, copied.data(), 0, nullptr,
                                nullptr));
  std::vector<unsigned char> expect_dst(kDstBytes, 0);
  for (size_t z = 0; z < region[2]; ++z)
    for (size_t y = 0; y < region[1]; ++y)
      for (size_t x = 0; x < region[0]; ++x)
        expect_dst[At(dst_origin, x, y, z, kDstRow, kDstSlice)] =
            host[At(host_origin, x, y, z, kHostRow, kHostSlice)];
  ASSERT_EQ(copied, expect_dst) << "clEnqueueCopyBufferRect";

  // Boxes past the buffer's end are refused.
  const size_t far[3] = {25, 4, 2};
  EXPECT_CL(CL_INVALID_VALUE,
            clEnqueueReadBufferRect(queue_, dst, CL_TRUE, far, zero, region, kDstRow, kDstSlice,
                                    0, 0, packed.data(), 0, nullptr, nullptr));
  EXPECT_CL(CL_INVALID_VALUE,
            clEnqueueReadBufferRect(queue_, buf, CL_TRUE, buf_origin, zero, region, 4, 0, 0, 0,
                                    packed.data(), 0, nullptr, nullptr))
      << "a row pitch smaller than the region's width";
}

TEST_F(Buffers, CopyOverlapIsRefused) {
  Mem a = MakeBuffer(CL_MEM_READ_WRITE, 1024);
  EXPECT_CL(CL_MEM_COPY_OVERLAP, clEnqueueCopyBuffer(queue_, a, a, 0, 100, 200, 0, nullptr,
                                                     nullptr));
  EXPECT_OK(clEnqueueCopyBuffer(queue_, a, a, 0, 512, 256, 0, nullptr, nullptr));
  cl_buffer_region r1{0, 512}, r2{256, 512};
  cl_int rc = CL_SUCCESS;
  Mem s1(clCreateSubBuffer(a, 0, CL_BUFFER_CREATE_TYPE_REGION, &r1, &rc));
  ASSERT_OK(rc);
  Mem s2(clCreateSubBuffer(a, 0, CL_BUFFER_CREATE_TYPE_REGION, &r2, &rc));
  ASSERT_OK(rc);
  // Different sub-buffers of one buffer whose bytes meet.
  EXPECT_CL(CL_MEM_COPY_OVERLAP, clEnqueueCopyBuffer(queue_, s1, s2, 256, 0, 128, 0, nullptr,
                                                     nullptr));
  EXPECT_OK(clEnqueueCopyBuffer(queue_, s1, s2, 0, 256, 128, 0, nullptr, nullptr));
  const size_t o1[3] = {0, 0, 0}, o2[3] = {4, 2, 0}, region[3] = {8, 4, 1};
  EXPECT_CL(CL_MEM_COPY_OVERLAP, clEnqueueCopyBufferRect(queue_, a, a, o1, o2, region, 16, 0, 16,
                                                         0, 0, nullptr, nullptr));
  ASSERT_OK(clFinish(queue_));
}

TEST_F(Buffers, HostAccessFlags) {
  cl_int v[4] = {1, 2, 3, 4};
  Mem none = MakeBuffer(CL_MEM_READ_WRITE | CL_MEM_HOST_NO_ACCESS, sizeof v);
  Mem ro = MakeBuffer(CL_MEM_READ_WRITE | CL_MEM_HOST_READ_ONLY | CL_MEM_COPY_HOST_PTR, sizeof v,
                      v);
  Mem wo = MakeBuffer(CL_MEM_READ_WRITE | CL_MEM_HOST_WRITE_ONLY, sizeof v);
  cl_int rc = CL_SUCCESS;
  EXPECT_CL(CL_INVALID_OPERATION,
            clEnqueueReadBuffer(queue_, none, CL_TRUE, 0, sizeof v, v, 0, nullptr, nullptr));
  EXPECT_CL(CL_INVALID_OPERATION,
            clEnqueueWriteBuffer(queue_, none, CL_TRUE, 0, sizeof v, v, 0, nullptr, nullptr));
  EXPECT_EQ(clEnqueueMapBuffer(queue_, none, CL_TRUE, CL_MAP_READ, 0, sizeof v, 0, nullptr,
                               nullptr, &rc),
            nullptr);
  EXPECT_CL(CL_INVALID_OPERATION, rc);
  EXPECT_CL(CL_INVALID_OPERATION,
            clEnqueueWriteBuffer(queue_, ro, CL_TRUE, 0, sizeof v, v, 0, nullptr, nullptr));
  EXPECT_CL(CL_INVALID_OPERATION,
            clEnqueueReadBuffer(queue_, wo, CL_TRUE, 0, sizeof v, v, 0, nullptr, nullptr));
  EXPECT_OK(clEnqueueWriteBuffer(queue_, wo, CL_TRUE, 0, sizeof v, v, 0, nullptr, nullptr));
  // The device may still use a buffer the host cannot touch.
  EXPECT_OK(clEnqueueCopyBuffer(queue_, ro, none, 0, 0, sizeof v, 0, nullptr, nullptr));
  EXPECT_OK(clEnqueueCopyBuffer(queue_, none, wo, 0, 0, sizeof v, 0, nullptr, nullptr));
  EXPECT_OK(clEnqueueCopyBuffer(queue_, wo, ro, 0, 0, sizeof v, 0, nullptr, nullptr));
  cl_int got[4] = {};
  ASSERT_OK(clEnqueueReadBuffer(queue_, ro, CL_TRUE, 0, sizeof got, got, 0, nullptr, nullptr));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(got[i], i + 1);
  // A sub-buffer inherits the parent's host access.
  cl_buffer_region r{0, 8};
  Mem sub(clCreateSubBuffer(none, 0, CL_BUFFER_CREATE_TYPE_REGION, &r, &rc));
  ASSERT_OK(rc);
  EXPECT_CL(CL_INVALID_OPERATION,
            clEnqueueReadBuffer(queue_, sub, CL_TRUE, 0, 8, got, 0, nullptr, nullptr));
}

TEST_F(Buffers, MapAndUnmapCounts) {
  Mem buf = MakeBuffer(CL_MEM_READ_WRITE, 4096);
  cl_int rc = CL_SUCCESS;
  auto* p1 = static_cast<cl_int*>(clEnqueueMapBuffer(queue_, buf, CL_TRUE, CL_MAP_WRITE, 0, 4096, 0,
                                                     nullptr, nullptr, &rc));
  ASSERT_OK(rc);
  for (int i = 0; i < 1024; ++i) p1[i] = i * i;
  auto* p2 = static_cast<cl_int*>(clEnqueueMapBuffer(queue_, buf, CL_TRUE, CL_MAP_READ, 1024,
                                                     1024, 0, nullptr, nullptr, &rc));
  ASSERT_OK(rc);
  EXPECT_EQ(p2[0], 256 * 256);
  cl_uint count = 0;
  ASSERT_OK(clGetMemObjectInfo(buf, CL_MEM_MAP_COUNT, sizeof count, &count, nullptr));
  EXPECT_EQ(count, 2u);
  int stack = 0;
  EXPECT_CL(CL_INVALID_VALUE, clEnqueueUnmapMemObject(queue_, buf, &stack, 0, nullptr, nullptr));
  ASSERT_OK(clEnqueueUnmapMemObject(queue_, buf, p2, 0, nullptr, nullptr));
  ASSERT_OK(clEnqueueUnmapMemObject(queue_, buf, p1, 0, nullptr, nullptr));
  ASSERT_OK(clFinish(queue_));
  ASSERT_OK(clGetMemObjectInfo(buf, CL_MEM_MAP_COUNT, sizeof count, &count, nullptr));
  EXPECT_EQ(count, 0u);
  EXPECT_CL(CL_INVALID_VALUE, clEnqueueUnmapMemObject(queue_, buf, p1, 0, nullptr, nullptr))
      << "not mapped any more";
  EXPECT_EQ(clEnqueueMapBuffer(queue_, buf, CL_TRUE, CL_MAP_READ | CL_MAP_WRITE_INVALIDATE_REGION,
                               0, 16, 0, nullptr, nullptr, &rc),
            nullptr);
  EXPECT_CL(CL_INVALID_VALUE, rc);
  EXPECT_EQ(clEnqueueMapBuffer(queue_, buf, CL_TRUE, CL_MAP_READ, 4090, 16, 0, nullptr, nullptr,
                               &rc),
            nullptr);
  EXPECT_CL(CL_INVALID_VALUE, rc);
  std::vector<cl_int> got(1024);
  ASSERT_OK(clEnqueueReadBuffer(queue_, buf, CL_TRUE, 0, 4096, got.data(), 0, nullptr, nullptr));
  for (int i = 0; i < 1024; ++i) ASSERT_EQ(got[i], i * i);
}

TEST_F(Buffers, MigrateToTheDeviceAndBack) {
  constexpr size_t kN = 64 * 1024;
  std::vector<cl_int> data(kN);
  std::iota(data.begin(), data.end(), 0);
  Mem a = MakeBuffer(CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, kN * sizeof(cl_int), data.data());
  Mem b = MakeBuffer(CL_MEM_READ_WRITE, kN * sizeof(cl_int));
  const cl_mem both[] = {a, b};
  ASSERT_OK(clEnqueueMigrateMemObjects(queue_, 2, both, 0, 0, nullptr, nullptr));
  Kernel add = MakeKernel(kCommonSource, "add_value");
  ASSERT_TRUE(add);
  cl_int five = 5;
  ASSERT_OK(clSetKernelArg(add, 0, sizeof(cl_mem), a.ptr()));
  ASSERT_OK(clSetKernelArg(add, 1, sizeof five, &five));
  ASSERT_CL(CL_COMPLETE, Run1D(add, kN));
  // b's contents do not matter: it may come to the device without them.
  ASSERT_OK(clEnqueueMigrateMemObjects(queue_, 1, &both[1], CL_MIGRATE_MEM_OBJECT_CONTENT_UNDEFINED,
                                       0, nullptr, nullptr));
  ASSERT_OK(clEnqueueCopyBuffer(queue_, a, b, 0, 0, kN * sizeof(cl_int), 0, nullptr, nullptr));
  Event back;
  ASSERT_OK(clEnqueueMigrateMemObjects(queue_, 2, both, CL_MIGRATE_MEM_OBJECT_HOST, 0, nullptr,
                                       back.out()));
  ASSERT_OK(clWaitForEvents(1, back.ptr()));
  cl_command_type type = 0;
  ASSERT_OK(clGetEventInfo(back, CL_EVENT_COMMAND_TYPE, sizeof type, &type, nullptr));
  EXPECT_EQ(type, static_cast<cl_command_type>(CL_COMMAND_MIGRATE_MEM_OBJECTS));
  cl_int rc = CL_SUCCESS;
  auto* mapped = static_cast<cl_int*>(clEnqueueMapBuffer(
      queue_, b, CL_TRUE, CL_MAP_READ, 0, kN * sizeof(cl_int), 0, nullptr, nullptr, &rc));
  ASSERT_OK(rc);
  for (size_t i = 0; i < kN; ++i) ASSERT_EQ(mapped[i], static_cast<cl_int>(i + 5)) << i;
  ASSERT_OK(clEnqueueUnmapMemObject(queue_, b, mapped, 0, nullptr, nullptr));
  EXPECT_CL(CL_INVALID_VALUE, clEnqueueMigrateMemObjects(queue_, 0, nullptr, 0, 0, nullptr,
                                                         nullptr));
  EXPECT_CL(CL_INVALID_VALUE, clEnqueueMigrateMemObjects(queue_, 1, both, 0x100, 0, nullptr,
                                                         nullptr));
}

TEST_F(Buffers, DestructorCallbacksRunInReverseOrderAtTheLastRelease) {
  struct Log {
    std::mutex mutex;
    std::vector<int> order;
  } log;
  struct Tag {
    Log* log;
    int id;
  } tags[3] = {{&log, 1}, {&log, 2}, {&log, 3}};
  auto cb = [](cl_mem, void* data) {
    auto* t = static_cast<Tag*>(data);
    std::lock_guard lock(t->log->mutex);
    t->log->order.push_back(t->id);
  };
  Mem buf = MakeBuffer(CL_MEM_READ_WRITE, 64);
  for (Tag& t : tags) ASSERT_OK(clSetMemObjectDestructorCallback(buf, cb, &t));
  ASSERT_OK(clRetainMemObject(buf));
  ASSERT_OK(clReleaseMemObject(buf));
  {
    std::lock_guard lock(log.mutex);
    EXPECT_TRUE(log.order.empty()) << "called while references remain";
  }
  buf.reset();
  std::lock_guard lock(log.mutex);
  EXPECT_EQ(log.order, (std::vector<int>{3, 2, 1}));
}

}  // namespace
}  // namespace cltest
