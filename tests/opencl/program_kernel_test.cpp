// Programs (OpenCL C, SPIR-V IL, binaries, separate compilation and linking), kernels, their
// arguments and NDRange launches.
#include "cl_test_support.hpp"

#include <algorithm>
#include <cstring>
#include <numeric>

namespace cltest {
namespace {

constexpr const char* kLaunchSource = R"CLC(
__kernel void ids(__global int* out) {
  size_t x = get_global_id(0) - get_global_offset(0);
  size_t y = get_global_id(1) - get_global_offset(1);
  size_t z = get_global_id(2) - get_global_offset(2);
  out[(z * get_global_size(1) + y) * get_global_size(0) + x] =
      (int)(get_global_id(0) + 1000 * get_global_id(1) + 1000000 * get_global_id(2));
}
__kernel void dims(__global int* out) {
  if (get_global_id(0) == get_global_offset(0) && get_global_id(1) == get_global_offset(1) &&
      get_global_id(2) == get_global_offset(2)) {
    out[0] = (int)get_work_dim();
    out[1] = (int)get_global_size(0);
    out[2] = (int)get_global_size(1);
    out[3] = (int)get_global_size(2);
    out[4] = (int)get_num_groups(0) * (int)get_num_groups(1) * (int)get_num_groups(2);
  }
}
__kernel void reduce(__global const int* in, __global int* sums, __local int* scratch) {
  size_t l = get_local_id(0), n = get_local_size(0);
  scratch[l] = in[get_global_id(0)];
  barrier(CLK_LOCAL_MEM_FENCE);
  for (size_t s = n / 2; s > 0; s >>= 1) {
    if (l < s) scratch[l] += scratch[l + s];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (l == 0) sums[get_group_id(0)] = scratch[0];
}
__kernel void reverse_in_group(__global int* data) {
  __local int tile[64];
  size_t l = get_local_id(0), n = get_local_size(0);
  tile[l] = data[get_global_id(0)];
  barrier(CLK_LOCAL_MEM_FENCE);
  data[get_global_id(0)] = tile[n - 1 - l];
}
__kernel void hello(__global int* out) {
  printf("hello from work-item %d\n", (int)get_global_id(0));
  out[get_global_id(0)] = 1;
}
)CLC";

// Needs OpenCL C 2.0 or later: non-uniform work-groups and get_enqueued_local_size.
constexpr const char* kGroupsSource = R"CLC(
__kernel void groups(__global int* out) {
  size_t i = get_global_id(0);
  out[3 * i] = (int)get_local_size(0);
  out[3 * i + 1] = (int)get_group_id(0);
  out[3 * i + 2] = (int)get_enqueued_local_size(0);
}
)CLC";

constexpr const char* kInfoSource = R"CLC(
__kernel __attribute__((reqd_work_group_size(8, 1, 1)))
void fixed_group(__global int* out) { out[get_global_id(0)] = (int)get_local_size(0); }
__kernel void with_args(__global float* data, __local int* scratch, __constant uint4* table,
                        int count, float scale) {
  scratch[get_local_id(0)] = count;
  barrier(CLK_LOCAL_MEM_FENCE);
  data[get_global_id(0)] = scale * (float)(scratch[0] + (int)table[0].x);
}
__kernel void third(__global int* out) { out[0] = 3; }
)CLC";

std::vector<unsigned char> Binary(cl_program p) {
  size_t size = 0;
  EXPECT_OK(clGetProgramInfo(p, CL_PROGRAM_BINARY_SIZES, sizeof size, &size, nullptr));
  std::vector<unsigned char> bin(size);
  unsigned char* ptrs[1] = {bin.data()};
  EXPECT_OK(clGetProgramInfo(p, CL_PROGRAM_BINARIES, sizeof ptrs, ptrs, nullptr));
  return bin;
}

class Programs : public ClTest {
 protected:
  // Runs kernel `scaled`-like kernels: one int argument buffer of n ints, returned.
  std::vector<cl_int> RunOnInts(cl_kernel k, size_t n) {
    Mem out = MakeBuffer(CL_MEM_READ_WRITE, n * sizeof(cl_int));
    std::vector<cl_int> host(n, -1);
    EXPECT_OK(clEnqueueWriteBuffer(queue_, out, CL_TRUE, 0, n * sizeof(cl_int), host.data(), 0,
                                   nullptr, nullptr));
    EXPECT_OK(clSetKernelArg(k, 0, sizeof(cl_mem), out.ptr()));
    EXPECT_CL(CL_COMPLETE, Run1D(k, n));
    EXPECT_OK(clEnqueueReadBuffer(queue_, out, CL_TRUE, 0, n * sizeof(cl_int), host.data(), 0,
                                  nullptr, nullptr));
    return host;
  }
};

TEST_F(Programs, BuildWithDefines) {
  const char* src =
      "__kernel void scaled(__global int* out) { out[get_global_id(0)] = VALUE * SCALE; }";
  Program p = Build(src, "-D VALUE=5 -DSCALE=3");
  ASSERT_TRUE(p);
  cl_build_status status = CL_BUILD_NONE;
  ASSERT_OK(clGetProgramBuildInfo(p, device_, CL_PROGRAM_BUILD_STATUS, sizeof status, &status,
                                  nullptr));
  EXPECT_EQ(status, CL_BUILD_SUCCESS);
  cl_program_binary_type type = 0;
  ASSERT_OK(clGetProgramBuildInfo(p, device_, CL_PROGRAM_BINARY_TYPE, sizeof type, &type, nullptr));
  EXPECT_EQ(type, static_cast<cl_program_binary_type>(CL_PROGRAM_BINARY_TYPE_EXECUTABLE));
  char opts[128] = {};
  ASSERT_OK(clGetProgramBuildInfo(p, device_, CL_PROGRAM_BUILD_OPTIONS, sizeof opts, opts,
                                  nullptr));
  EXPECT_STREQ(opts, "-D VALUE=5 -DSCALE=3");
  size_t len = 0;
  ASSERT_OK(clGetProgramInfo(p, CL_PROGRAM_SOURCE, 0, nullptr, &len));
  EXPECT_EQ(len, std::strlen(src) + 1);

  cl_int rc = CL_SUCCESS;
  Kernel k(clCreateKernel(p, "scaled", &rc));
  ASSERT_OK(rc);
  for (cl_int v : RunOnInts(k, 32)) EXPECT_EQ(v, 15);
  EXPECT_EQ(clCreateKernel(p, "no_such_kernel", &rc), nullptr);
  EXPECT_CL(CL_INVALID_KERNEL_NAME, rc);
  // A program with kernels attached cannot be built again.
  EXPECT_CL(CL_INVALID_OPERATION, clBuildProgram(p, 1, &device_, nullptr, nullptr, nullptr));
}

TEST_F(Programs, BuildFailureKeepsTheCompilerLog) {
  const char* src =
      "__kernel void broken(__global int* out) { out[0] = undeclared_identifier_xyz; }";
  cl_int rc = CL_SUCCESS;
  Program p(clCreateProgramWithSource(ctx_, 1, &src, nullptr, &rc));
  ASSERT_OK(rc);
  EXPECT_CL(CL_BUILD_PROGRAM_FAILURE, clBuildProgram(p, 1, &device_, nullptr, nullptr, nullptr));
  cl_build_status status = CL_BUILD_NONE;
  ASSERT_OK(clGetProgramBuildInfo(p, device_, CL_PROGRAM_BUILD_STATUS, sizeof status, &status,
                                  nullptr));
  EXPECT_EQ(status, CL_BUILD_ERROR);
  std::string log = BuildLog(p, device_);
  EXPECT_NE(log.find("undeclared_identifier_xyz"), std::string::npos) << log;
  EXPECT_NE(log.find("error"), std::string::npos) << log;
  EXPECT_EQ(clCreateKernel(p, "broken", &rc), nullptr);
  EXPECT_CL(CL_INVALID_PROGRAM_EXECUTABLE, rc);
  size_t n = 0;
  EXPECT_CL(CL_INVALID_PROGRAM_EXECUTABLE,
            clGetProgramInfo(p, CL_PROGRAM_NUM_KERNELS, sizeof n, &n, nullptr));
}

TEST_F(Programs, IlFromTheBinariesOfASourceProgram) {
  Program src = Build(kCommonSource);
  ASSERT_TRUE(src);
  std::vector<unsigned char> spirv = Binary(src);
  ASSERT_GE(spirv.size(), 20u);
  std::uint32_t magic = 0;
  std::memcpy(&magic, spirv.data(), 4);
  EXPECT_EQ(magic, 0x07230203u) << "CL_PROGRAM_BINARIES is SPIR-V";

  cl_int rc = CL_SUCCESS;
  Program il(clCreateProgramWithIL(ctx_, spirv.data(), spirv.size(), &rc));
  ASSERT_OK(rc);
  size_t len = 0;
  ASSERT_OK(clGetProgramInfo(il, CL_PROGRAM_IL, 0, nullptr, &len));
  EXPECT_EQ(len, spirv.size());
  ASSERT_OK(clBuildProgram(il, 1, &device_, nullptr, nullptr, nullptr)) << BuildLog(il, device_);
  Kernel k(clCreateKernel(il, "write_gid", &rc));
  ASSERT_OK(rc);
  std::vector<cl_int> got = RunOnInts(k, 100);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(got[i], i);
}

TEST_F(Programs, BinaryRoundTrip) {
  Program src = Build(kCommonSource);
  ASSERT_TRUE(src);
  std::vector<unsigned char> bin = Binary(src);
  const unsigned char* bins[] = {bin.data()};
  size_t lens[] = {bin.size()};
  cl_int status = -1, rc = CL_SUCCESS;
  Program p(clCreateProgramWithBinary(ctx_, 1, &device_, lens, bins, &status, &rc));
  ASSERT_OK(rc);
  EXPECT_OK(status);
  ASSERT_OK(clBuildProgram(p, 1, &device_, nullptr, nullptr, nullptr)) << BuildLog(p, device_);
  Kernel k(clCreateKernel(p, "set_value", &rc));
  ASSERT_OK(rc);
  cl_int v = 77;
  ASSERT_OK(clSetKernelArg(k, 1, sizeof v, &v));
  for (cl_int x : RunOnInts(k, 10)) EXPECT_EQ(x, 77);
  // The rebuilt program's binary is the same module again.
  EXPECT_EQ(Binary(p), bin);

  const unsigned char junk[64] = {'n', 'o', 't', ' ', 's', 'p', 'i', 'r', 'v'};
  const unsigned char* bad[] = {junk};
  size_t bad_len[] = {sizeof junk};
  EXPECT_EQ(clCreateProgramWithBinary(ctx_, 1, &device_, bad_len, bad, &status, &rc), nullptr);
  EXPECT_CL(CL_INVALID_BINARY, rc);
  EXPECT_CL(CL_INVALID_BINARY, status);
}

TEST_F(Programs, IlThatIsNotSpirvIsRefused) {
  const char text[] = "__kernel void k(void) {}  // OpenCL C is not an IL";
  cl_int rc = CL_SUCCESS;
  EXPECT_EQ(clCreateProgramWithIL(ctx_, text, sizeof text - 1, &rc), nullptr);
  EXPECT_CL(CL_INVALID_VALUE, rc);
  std::uint32_t words[8] = {0x07230203, 0x00010000, 0, 1, 0, 0, 0, 0};
  EXPECT_EQ(clCreateProgramWithIL(ctx_, words, 7, &rc), nullptr) << "not whole words";
  EXPECT_CL(CL_INVALID_VALUE, rc);
  EXPECT_EQ(clCreateProgramWithIL(ctx_, nullptr, 0, &rc), nullptr);
  EXPECT_CL(CL_INVALID_VALUE, rc);
}

// clCompileProgram with an embedded header, then clLinkProgram of two compiled programs where
// the kernel calls a function only the other one defines.
class Linking : public ClTest {
 protected:
  Program Compile(const char* src, cl_uint num_headers = 0, const cl_program* headers = nullptr,
                  const char** names = nullptr) {
    cl_int rc = CL_SUCCESS;
    Program p(clCreateProgramWithSource(ctx_, 1, &src, nullptr, &rc));
    EXPECT_OK(rc);
    rc = clCompileProgram(p, 1, &device_, nullptr, num_headers, headers, names, nullptr, nullptr);
    if (rc != CL_SUCCESS) {
      ADD_FAILURE() << "clCompileProgram: " << ErrorName(rc) << "\n" << BuildLog(p, device_);
      return {};
    }
    return p;
  }
  Program Header(const char* text) {
    cl_int rc = CL_SUCCESS;
    Program h(clCreateProgramWithSource(ctx_, 1, &text, nullptr, &rc));
    EXPECT_OK(rc);
    return h;
  }
};

constexpr const char* kHeader = "int helper(int x);\n#define OFFSET 100\n";
constexpr const char* kCaller = R"CLC(
#include "inc/helper.h"
__kernel void use_helper(__global int* out) {
  out[get_global_id(0)] = helper((int)get_global_id(0)) + OFFSET;
}
)CLC";
constexpr const char* kCallee = "int helper(int x) { return 2 * x; }\n";

TEST_F(Linking, CompileWithHeaderAndLinkTwoPrograms) {
  Program header = Header(kHeader);
  const cl_program headers[] = {header};
  const char* names[] = {"inc/helper.h"};
  Program caller = Compile(kCaller, 1, headers, names);
  Program callee = Compile(kCallee);
  ASSERT_TRUE(caller && callee);
  cl_program_binary_type type = 0;
  ASSERT_OK(clGetProgramBuildInfo(caller, device_, CL_PROGRAM_BINARY_TYPE, sizeof type, &type,
                                  nullptr));
  EXPECT_EQ(type, static_cast<cl_program_binary_type>(CL_PROGRAM_BINARY_TYPE_COMPILED_OBJECT));

  const cl_program inputs[] = {caller, callee};
  cl_int rc = CL_SUCCESS;
  Program linked(clLinkProgram(ctx_, 1, &device_, nullptr, 2, inputs, nullptr, nullptr, &rc));
  ASSERT_OK(rc);
  ASSERT_TRUE(linked);
  Kernel k(clCreateKernel(linked, "use_helper", &rc));
  ASSERT_OK(rc);
  Mem out = MakeBuffer(CL_MEM_READ_WRITE, 64 * sizeof(cl_int));
  ASSERT_OK(clSetKernelArg(k, 0, sizeof(cl_mem), out.ptr()));
  ASSERT_CL(CL_COMPLETE, Run1D(k, 64));
  cl_int got[64];
  ASSERT_OK(clEnqueueReadBuffer(queue_, out, CL_TRUE, 0, sizeof got, got, 0, nullptr, nullptr));
  for (int i = 0; i < 64; ++i) EXPECT_EQ(got[i], 2 * i + 100);

  // The callee as a library, linked in a second step.
  const cl_program lib_in[] = {callee};
  Program lib(clLinkProgram(ctx_, 1, &device_, "-create-library", 1, lib_in, nullptr, nullptr,
                            &rc));
  ASSERT_OK(rc);
  ASSERT_OK(clGetProgramBuildInfo(lib, device_, CL_PROGRAM_BINARY_TYPE, sizeof type, &type,
                                  nullptr));
  EXPECT_EQ(type, static_cast<cl_program_binary_type>(CL_PROGRAM_BINARY_TYPE_LIBRARY));
  const cl_program with_lib[] = {caller, lib};
  Program exe(clLinkProgram(ctx_, 1, &device_, nullptr, 2, with_lib, nullptr, nullptr, &rc));
  ASSERT_OK(rc);
  Kernel k2(clCreateKernel(exe, "use_helper", &rc));
  ASSERT_OK(rc);
  ASSERT_OK(clSetKernelArg(k2, 0, sizeof(cl_mem), out.ptr()));
  ASSERT_CL(CL_COMPLETE, Run1D(k2, 8));
  ASSERT_OK(clEnqueueReadBuffer(queue_, out, CL_TRUE, 0, sizeof got, got, 0, nullptr, nullptr));
  for (int i = 0; i < 8; ++i) EXPECT_EQ(got[i], 2 * i + 100);
}

TEST_F(Linking, CompileErrorAndMissingHeader) {
  Program bad = [&] {
    const char* src = "int f(void) { return missing_symbol_q; }";
    cl_int rc = CL_SUCCESS;
    Program p(clCreateProgramWithSource(ctx_, 1, &src, nullptr, &rc));
    EXPECT_CL(CL_COMPILE_PROGRAM_FAILURE,
              clCompileProgram(p, 1, &device_, nullptr, 0, nullptr, nullptr, nullptr, nullptr));
    EXPECT_NE(BuildLog(p, device_).find("missing_symbol_q"), std::string::npos)
        << BuildLog(p, device_);
    return p;
  }();
  // The include the source asks for is not among the headers given.
  cl_int rc = CL_SUCCESS;
  const char* caller_src = kCaller;
  Program p(clCreateProgramWithSource(ctx_, 1, &caller_src, nullptr, &rc));
  ASSERT_OK(rc);
  EXPECT_CL(CL_COMPILE_PROGRAM_FAILURE,
            clCompileProgram(p, 1, &device_, nullptr, 0, nullptr, nullptr, nullptr, nullptr));
  EXPECT_NE(BuildLog(p, device_).find("helper.h"), std::string::npos) << BuildLog(p, device_);
  // A program whose compile failed cannot be linked.
  const cl_program inputs[] = {bad};
  EXPECT_EQ(clLinkProgram(ctx_, 1, &device_, nullptr, 1, inputs, nullptr, nullptr, &rc), nullptr);
  EXPECT_CL(CL_INVALID_OPERATION, rc);
}

// A link that fails on an unresolved symbol. Once linking can begin, clLinkProgram returns a
// program object (OpenCL 3.0, 5.8.4.3) so that the link log can be read from it.
TEST_F(Linking, UnresolvedSymbolFailsWithALog) {
  Program header = Header(kHeader);
  const cl_program headers[] = {header};
  const char* names[] = {"inc/helper.h"};
  Program caller = Compile(kCaller, 1, headers, names);
  Program other = Compile("int not_the_helper(int x) { return x; }\n");
  ASSERT_TRUE(caller && other);
  const cl_program inputs[] = {caller, other};
  cl_int rc = CL_SUCCESS;
  Program linked(clLinkProgram(ctx_, 1, &device_, nullptr, 2, inputs, nullptr, nullptr, &rc));
  EXPECT_CL(CL_LINK_PROGRAM_FAILURE, rc);
  ASSERT_TRUE(linked) << "no program object to read the link log from";
  cl_build_status status = CL_BUILD_NONE;
  ASSERT_OK(clGetProgramBuildInfo(linked, device_, CL_PROGRAM_BUILD_STATUS, sizeof status,
                                  &status, nullptr));
  EXPECT_EQ(status, CL_BUILD_ERROR);
  EXPECT_NE(BuildLog(linked, device_).find("helper"), std::string::npos)
      << BuildLog(linked, device_);
}

class Kernels : public ClTest {};

TEST_F(Kernels, NamesArgInfoAndWorkGroupInfo) {
  Program p = Build(kInfoSource, "-cl-kernel-arg-info");
  ASSERT_TRUE(p);
  size_t num = 0;
  ASSERT_OK(clGetProgramInfo(p, CL_PROGRAM_NUM_KERNELS, sizeof num, &num, nullptr));
  EXPECT_EQ(num, 3u);
  char names[256] = {};
  ASSERT_OK(clGetProgramInfo(p, CL_PROGRAM_KERNEL_NAMES, sizeof names, names, nullptr));
  std::string all = names;
  for (const char* n : {"fixed_group", "with_args", "third"})
    EXPECT_NE(all.find(n), std::string::npos) << all;
  EXPECT_EQ(std::count(all.begin(), all.end(), ';'), 2) << all;

  cl_uint count = 0;
  ASSERT_OK(clCreateKernelsInProgram(p, 0, nullptr, &count));
  ASSERT_EQ(count, 3u);
  cl_kernel raw[3] = {};
  ASSERT_OK(clCreateKernelsInProgram(p, 3, raw, nullptr));
  Kernel ks[3] = {Kernel(raw[0]), Kernel(raw[1]), Kernel(raw[2])};
  cl_kernel args = nullptr, fixed = nullptr;
  for (Kernel& k : ks) {
    char name[64] = {};
    ASSERT_OK(clGetKernelInfo(k, CL_KERNEL_FUNCTION_NAME, sizeof name, name, nullptr));
    if (std::string(name) == "with_args") args = k;
    if (std::string(name) == "fixed_group") fixed = k;
  }
  ASSERT_NE(args, nullptr);
  ASSERT_NE(fixed, nullptr);
  cl_uint nargs = 0;
  ASSERT_OK(clGetKernelInfo(args, CL_KERNEL_NUM_ARGS, sizeof nargs, &nargs, nullptr));
  ASSERT_EQ(nargs, 5u);
  const char* arg_names[] = {"data", "scratch", "table", "count", "scale"};
  const char* type_names[] = {"float*", "int*", "uint4*", "int", "float"};
  const cl_kernel_arg_address_qualifier quals[] = {
      CL_KERNEL_ARG_ADDRESS_GLOBAL, CL_KERNEL_ARG_ADDRESS_LOCAL, CL_KERNEL_ARG_ADDRESS_CONSTANT,
      CL_KERNEL_ARG_ADDRESS_PRIVATE, CL_KERNEL_ARG_ADDRESS_PRIVATE};
  for (cl_uint i = 0; i < nargs; ++i) {
    char buf[64] = {};
    ASSERT_OK(clGetKernelArgInfo(args, i, CL_KERNEL_ARG_NAME, sizeof buf, buf, nullptr));
    EXPECT_STREQ(buf, arg_names[i]);
    ASSERT_OK(clGetKernelArgInfo(args, i, CL_KERNEL_ARG_TYPE_NAME, sizeof buf, buf, nullptr));
    EXPECT_STREQ(buf, type_names[i]) << "argument " << i;
    cl_kernel_arg_address_qualifier q = 0;
    ASSERT_OK(clGetKernelArgInfo(args, i, CL_KERNEL_ARG_ADDRESS_QUALIFIER, sizeof q, &q, nullptr));
    EXPECT_EQ(q, quals[i]) << "argument " << i;
  }
  char buf[8];
  EXPECT_CL(CL_INVALID_ARG_INDEX,
            clGetKernelArgInfo(args, 5, CL_KERNEL_ARG_NAME, sizeof buf, buf, nullptr));

  size_t wg = 0, preferred = 0, compile[3] = {9, 9, 9};
  ASSERT_OK(clGetKernelWorkGroupInfo(args, device_, CL_KERNEL_WORK_GROUP_SIZE, sizeof wg, &wg,
                                     nullptr));
  EXPECT_GE(wg, 1u);
  EXPECT_LE(wg, 1024u);
  ASSERT_OK(clGetKernelWorkGroupInfo(args, device_, CL_KERNEL_PREFERRED_WORK_GROUP_SIZE_MULTIPLE,
                                     sizeof preferred, &preferred, nullptr));
  EXPECT_GE(preferred, 1u);
  ASSERT_OK(clGetKernelWorkGroupInfo(args, device_, CL_KERNEL_COMPILE_WORK_GROUP_SIZE,
                                     sizeof compile, compile, nullptr));
  EXPECT_EQ(compile[0], 0u);
  ASSERT_OK(clGetKernelWorkGroupInfo(fixed, device_, CL_KERNEL_COMPILE_WORK_GROUP_SIZE,
                                     sizeof compile, compile, nullptr));
  EXPECT_EQ(compile[0], 8u);
  EXPECT_EQ(compile[1], 1u);
  EXPECT_EQ(compile[2], 1u);
  // __local argument bytes count in the kernel's local memory.
  cl_ulong before = 0, after = 0;
  ASSERT_OK(clGetKernelWorkGroupInfo(args, device_, CL_KERNEL_LOCAL_MEM_SIZE, sizeof before,
                                     &before, nullptr));
  ASSERT_OK(clSetKernelArg(args, 1, 4096, nullptr));
  ASSERT_OK(clGetKernelWorkGroupInfo(args, device_, CL_KERNEL_LOCAL_MEM_SIZE, sizeof after,
                                     &after, nullptr));
  EXPECT_GE(after, before + 4096);

  // reqd_work_group_size: a NULL local size uses it, another local size is refused.
  Mem out = MakeBuffer(CL_MEM_READ_WRITE, 64 * sizeof(cl_int));
  ASSERT_OK(clSetKernelArg(fixed, 0, sizeof(cl_mem), out.ptr()));
  size_t global = 64, local = 16;
  EXPECT_CL(CL_INVALID_WORK_GROUP_SIZE, clEnqueueNDRangeKernel(queue_, fixed, 1, nullptr, &global,
                                                               &local, 0, nullptr, nullptr));
  ASSERT_CL(CL_COMPLETE, Run1D(fixed, 64));
  cl_int got[64];
  ASSERT_OK(clEnqueueReadBuffer(queue_, out, CL_TRUE, 0, sizeof got, got, 0, nullptr, nullptr));
  for (cl_int g : got) EXPECT_EQ(g, 8);
}

TEST_F(Kernels, CloneKeepsArguments) {
  Kernel k = MakeKernel(kCommonSource, "set_value");
  ASSERT_TRUE(k);
  Mem a = MakeBuffer(CL_MEM_READ_WRITE, 16 * sizeof(cl_int));
  Mem b = MakeBuffer(CL_MEM_READ_WRITE, 16 * sizeof(cl_int));
  cl_int v = 11;
  ASSERT_OK(clSetKernelArg(k, 0, sizeof(cl_mem), a.ptr()));
  ASSERT_OK(clSetKernelArg(k, 1, sizeof v, &v));
  cl_int rc = CL_SUCCESS;
  Kernel clone(clCloneKernel(k, &rc));
  ASSERT_OK(rc);
  // Changing the original afterwards leaves the clone's arguments alone.
  v = 22;
  ASSERT_OK(clSetKernelArg(k, 0, sizeof(cl_mem), b.ptr()));
  ASSERT_OK(clSetKernelArg(k, 1, sizeof v, &v));
  k.reset();  // the clone stands on its own
  ASSERT_CL(CL_COMPLETE, Run1D(clone, 16));
  cl_int got_a[16] = {}, got_b[16] = {};
  ASSERT_OK(clEnqueueReadBuffer(queue_, a, CL_TRUE, 0, sizeof got_a, got_a, 0, nullptr, nullptr));
  ASSERT_OK(clEnqueueReadBuffer(queue_, b, CL_TRUE, 0, sizeof got_b, got_b, 0, nullptr, nullptr));
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(got_a[i], 11);
    EXPECT_EQ(got_b[i], 0) << "the clone wrote through the original's new argument";
  }
  char name[32] = {};
  ASSERT_OK(clGetKernelInfo(clone, CL_KERNEL_FUNCTION_NAME, sizeof name, name, nullptr));
  EXPECT_STREQ(name, "set_value");
}

TEST_F(Kernels, ArgumentErrors) {
  Program p = Build(kInfoSource, "-cl-kernel-arg-info");
  ASSERT_TRUE(p);
  cl_int rc = CL_SUCCESS;
  Kernel k(clCreateKernel(p, "with_args", &rc));
  ASSERT_OK(rc);
  cl_int i = 1;
  float f = 2.0f;
  Mem data = MakeBuffer(CL_MEM_READ_WRITE, 64 * sizeof(float));
  Mem table = MakeBuffer(CL_MEM_READ_ONLY, sizeof(cl_uint4));
  EXPECT_CL(CL_INVALID_ARG_INDEX, clSetKernelArg(k, 5, sizeof i, &i));
  EXPECT_CL(CL_INVALID_ARG_SIZE, clSetKernelArg(k, 3, sizeof(cl_long), &i));
  EXPECT_CL(CL_INVALID_ARG_SIZE, clSetKernelArg(k, 0, sizeof(cl_mem) / 2, data.ptr()));
  EXPECT_CL(CL_INVALID_ARG_VALUE, clSetKernelArg(k, 1, 256, &i)) << "__local with a value";
  EXPECT_CL(CL_INVALID_ARG_SIZE, clSetKernelArg(k, 1, 0, nullptr)) << "__local of 0 bytes";
  EXPECT_CL(CL_INVALID_ARG_VALUE, clSetKernelArg(k, 3, sizeof i, nullptr));
  // Some arguments set, one not: the launch is refused.
  ASSERT_OK(clSetKernelArg(k, 0, sizeof(cl_mem), data.ptr()));
  ASSERT_OK(clSetKernelArg(k, 1, 64 * sizeof(cl_int), nullptr));
  ASSERT_OK(clSetKernelArg(k, 2, sizeof(cl_mem), table.ptr()));
  ASSERT_OK(clSetKernelArg(k, 4, sizeof f, &f));
  size_t global = 64;
  EXPECT_CL(CL_INVALID_KERNEL_ARGS,
            clEnqueueNDRangeKernel(queue_, k, 1, nullptr, &global, nullptr, 0, nullptr, nullptr));
  ASSERT_OK(clSetKernelArg(k, 3, sizeof i, &i));
  cl_uint4 t = {{4, 0, 0, 0}};
  ASSERT_OK(clEnqueueWriteBuffer(queue_, table, CL_TRUE, 0, sizeof t, &t, 0, nullptr, nullptr));
  size_t local = 64;
  Event e;
  ASSERT_OK(clEnqueueNDRangeKernel(queue_, k, 1, nullptr, &global, &local, 0, nullptr, e.out()));
  ASSERT_OK(clWaitForEvents(1, e.ptr()));
  float got[64];
  ASSERT_OK(clEnqueueReadBuffer(queue_, data, CL_TRUE, 0, sizeof got, got, 0, nullptr, nullptr));
  for (float g : got) EXPECT_EQ(g, 2.0f * (1 + 4));
}

class Launch : public ClTest {
 protected:
  void SetUp() override {
    ClTest::SetUp();
    if (HasFatalFailure()) return;
    program_ = Build(kLaunchSource);
    ASSERT_TRUE(program_);
  }
  Kernel Get(const char* name) {
    cl_int rc = CL_SUCCESS;
    Kernel k(clCreateKernel(program_, name, &rc));
    EXPECT_OK(rc);
    return k;
  }
  Program program_;
};

TEST_F(Launch, OneTwoAndThreeDimensionsWithOffsets) {
  Kernel ids = Get("ids"), dims = Get("dims");
  struct Case {
    cl_uint dim;
    size_t global[3], offset[3], local[3];
    bool with_local;
  } cases[] = {
      {1, {100, 1, 1}, {7, 0, 0}, {0, 0, 0}, false},
      {2, {16, 12, 1}, {3, 5, 0}, {4, 4, 1}, true},
      {3, {8, 6, 5}, {1, 2, 3}, {2, 3, 5}, true},
      {3, {5, 7, 3}, {0, 0, 0}, {0, 0, 0}, false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << c.dim << "D " << c.global[0] << "x" << c.global[1]
                                      << "x" << c.global[2]);
    size_t n = c.global[0] * c.global[1] * c.global[2];
    Mem out = MakeBuffer(CL_MEM_READ_WRITE, n * sizeof(cl_int));
    Mem info = MakeBuffer(CL_MEM_READ_WRITE, 5 * sizeof(cl_int));
    ASSERT_OK(clSetKernelArg(ids, 0, sizeof(cl_mem), out.ptr()));
    ASSERT_OK(clSetKernelArg(dims, 0, sizeof(cl_mem), info.ptr()));
    for (cl_kernel k : {ids.get(), dims.get()})
      ASSERT_OK(clEnqueueNDRangeKernel(queue_, k, c.dim, c.offset, c.global,
                                       c.with_local ? c.local : nullptr, 0, nullptr, nullptr));
    std::vector<cl_int> got(n);
    cl_int meta[5];
    ASSERT_OK(clEnqueueReadBuffer(queue_, out, CL_TRUE, 0, n * sizeof(cl_int), got.data(), 0,
                                  nullptr, nullptr));
    ASSERT_OK(clEnqueueReadBuffer(queue_, info, CL_TRUE, 0, sizeof meta, meta, 0, nullptr,
                                  nullptr));
    for (size_t z = 0; z < c.global[2]; ++z)
      for (size_t y = 0; y < c.global[1]; ++y)
        for (size_t x = 0; x < c.global[0]; ++x) {
          size_t i = (z * c.global[1] + y) * c.global[0] + x;
          ASSERT_EQ(got[i], static_cast<cl_int>((x + c.offset[0]) + 1000 * (y + c.offset[1]) +
                                                1000000 * (z + c.offset[2])))
              << "at " << x << "," << y << "," << z;
        }
    EXPECT_EQ(meta[0], static_cast<cl_int>(c.dim));
    for (int d = 0; d < 3; ++d) EXPECT_EQ(meta[1 + d], static_cast<cl_int>(c.global[d]));
    if (c.with_local) {
      EXPECT_EQ(meta[4], static_cast<cl_int>(n / (c.local[0] * c.local[1] * c.local[2])));
    }
  }
}

TEST_F(Launch, NonUniformWorkGroups) {
  Kernel k = MakeKernel(kGroupsSource, "groups", "-cl-std=CL2.0");
  ASSERT_TRUE(k);
  constexpr size_t kN = 1000, kLocal = 64;
  Mem out = MakeBuffer(CL_MEM_READ_WRITE, 3 * kN * sizeof(cl_int));
  cl_int minus = -1;
  ASSERT_OK(clEnqueueFillBuffer(queue_, out, &minus, sizeof minus, 0, 3 * kN * sizeof(cl_int), 0,
                                nullptr, nullptr));
  ASSERT_OK(clSetKernelArg(k, 0, sizeof(cl_mem), out.ptr()));
  size_t global = kN, local = kLocal;
  ASSERT_OK(clEnqueueNDRangeKernel(queue_, k, 1, nullptr, &global, &local, 0, nullptr, nullptr));
  std::vector<cl_int> got(3 * kN);
  ASSERT_OK(clEnqueueReadBuffer(queue_, out, CL_TRUE, 0, got.size() * sizeof(cl_int), got.data(),
                                0, nullptr, nullptr));
  for (size_t i = 0; i < kN; ++i) {
    const size_t group = i / kLocal;
    const size_t size = group == kN / kLocal ? kN % kLocal : kLocal;  // the last group: 40
    ASSERT_EQ(got[3 * i], static_cast<cl_int>(size)) << "local size at " << i;
    ASSERT_EQ(got[3 * i + 1], static_cast<cl_int>(group)) << "group at " << i;
    ASSERT_EQ(got[3 * i + 2], static_cast<cl_int>(kLocal)) << "enqueued local size at " << i;
  }
}

TEST_F(Launch, NullLocalSizeCoversTheRange) {
  Kernel ids = Get("ids");
  for (size_t n : {size_t{1}, size_t{97}, size_t{1000}, size_t{4096 + 3}}) {
    Mem out = MakeBuffer(CL_MEM_READ_WRITE, n * sizeof(cl_int));
    cl_int minus = -1;
    ASSERT_OK(clEnqueueFillBuffer(queue_, out, &minus, sizeof minus, 0, n * sizeof(cl_int), 0,
                                  nullptr, nullptr));
    ASSERT_OK(clSetKernelArg(ids, 0, sizeof(cl_mem), out.ptr()));
    ASSERT_CL(CL_COMPLETE, Run1D(ids, n));
    std::vector<cl_int> got(n);
    ASSERT_OK(clEnqueueReadBuffer(queue_, out, CL_TRUE, 0, n * sizeof(cl_int), got.data(), 0,
                                  nullptr, nullptr));
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(got[i], static_cast<cl_int>(i)) << "n=" << n;
  }
}

TEST_F(Launch, LocalMemoryReductionAndBarriers) {
  Kernel reduce = Get("reduce"), reverse = Get("reverse_in_group");
  constexpr size_t kN = 4096, kLocal = 64, kGroups = kN / kLocal;
  std::vector<cl_int> in(kN);
  std::iota(in.begin(), in.end(), 1);
  Mem src = MakeBuffer(CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, kN * sizeof(cl_int), in.data());
  Mem sums = MakeBuffer(CL_MEM_READ_WRITE, kGroups * sizeof(cl_int));
  ASSERT_OK(clSetKernelArg(reduce, 0, sizeof(cl_mem), src.ptr()));
  ASSERT_OK(clSetKernelArg(reduce, 1, sizeof(cl_mem), sums.ptr()));
  ASSERT_OK(clSetKernelArg(reduce, 2, kLocal * sizeof(cl_int), nullptr));
  size_t global = kN, local = kLocal;
  ASSERT_OK(clEnqueueNDRangeKernel(queue_, reduce, 1, nullptr, &global, &local, 0, nullptr,
                                   nullptr));
  std::vector<cl_int> got(kGroups);
  ASSERT_OK(clEnqueueReadBuffer(queue_, sums, CL_TRUE, 0, kGroups * sizeof(cl_int), got.data(), 0,
                                nullptr, nullptr));
  for (size_t g = 0; g < kGroups; ++g) {
    cl_int expect = 0;
    for (size_t i = 0; i < kLocal; ++i) expect += in[g * kLocal + i];
    EXPECT_EQ(got[g], expect) << "group " << g;
  }
  // A static __local array: each group reversed in place.
  ASSERT_OK(clSetKernelArg(reverse, 0, sizeof(cl_mem), src.ptr()));
  ASSERT_OK(clEnqueueNDRangeKernel(queue_, reverse, 1, nullptr, &global, &local, 0, nullptr,
                                   nullptr));
  std::vector<cl_int> rev(kN);
  ASSERT_OK(clEnqueueReadBuffer(queue_, src, CL_TRUE, 0, kN * sizeof(cl_int), rev.data(), 0,
                                nullptr, nullptr));
  for (size_t i = 0; i < kN; ++i) {
    size_t g = i / kLocal, l = i % kLocal;
    ASSERT_EQ(rev[i], in[g * kLocal + (kLocal - 1 - l)]) << "at " << i;
  }
}

TEST_F(Launch, PrintfInAKernel) {
  Kernel hello = Get("hello");
  Mem out = MakeBuffer(CL_MEM_READ_WRITE, 4 * sizeof(cl_int));
  ASSERT_OK(clSetKernelArg(hello, 0, sizeof(cl_mem), out.ptr()));
  ::testing::internal::CaptureStdout();
  cl_int status = Run1D(hello, 4);
  ASSERT_OK(clFinish(queue_));
  std::fflush(stdout);
  std::string printed = ::testing::internal::GetCapturedStdout();
  EXPECT_CL(CL_COMPLETE, status);
  cl_int got[4] = {};
  ASSERT_OK(clEnqueueReadBuffer(queue_, out, CL_TRUE, 0, sizeof got, got, 0, nullptr, nullptr));
  for (cl_int g : got) EXPECT_EQ(g, 1);
  for (int i = 0; i < 4; ++i)
    EXPECT_NE(printed.find("hello from work-item " + std::to_string(i)), std::string::npos)
        << "printed: " << printed;
}

TEST_F(Launch, WorkSizeErrors) {
  Kernel ids = Get("ids");
  Mem out = MakeBuffer(CL_MEM_READ_WRITE, 4096 * sizeof(cl_int));
  ASSERT_OK(clSetKernelArg(ids, 0, sizeof(cl_mem), out.ptr()));
  size_t global[4] = {64, 64, 1, 1}, local[4] = {64, 64, 1, 1};
  EXPECT_CL(CL_INVALID_WORK_DIMENSION,
            clEnqueueNDRangeKernel(queue_, ids, 0, nullptr, global, nullptr, 0, nullptr, nullptr));
  EXPECT_CL(CL_INVALID_WORK_DIMENSION,
            clEnqueueNDRangeKernel(queue_, ids, 4, nullptr, global, nullptr, 0, nullptr, nullptr));
  EXPECT_CL(CL_INVALID_GLOBAL_WORK_SIZE,
            clEnqueueNDRangeKernel(queue_, ids, 1, nullptr, nullptr, nullptr, 0, nullptr, nullptr));
  // 64 x 64 = 4096 items in a group: more than the 1024 the device allows.
  EXPECT_CL(CL_INVALID_WORK_GROUP_SIZE,
            clEnqueueNDRangeKernel(queue_, ids, 2, nullptr, global, local, 0, nullptr, nullptr));
  // One dimension past CL_DEVICE_MAX_WORK_ITEM_SIZES: either code describes it.
  size_t big_global = 4096, big_local = 2048;
  cl_int rc = clEnqueueNDRangeKernel(queue_, ids, 1, nullptr, &big_global, &big_local, 0, nullptr,
                                     nullptr);
  EXPECT_TRUE(rc == CL_INVALID_WORK_GROUP_SIZE || rc == CL_INVALID_WORK_ITEM_SIZE)
      << ErrorName(rc);
  size_t zero_local = 0;
  EXPECT_CL(CL_INVALID_WORK_GROUP_SIZE, clEnqueueNDRangeKernel(queue_, ids, 1, nullptr, global,
                                                               &zero_local, 0, nullptr, nullptr));
  size_t huge_offset = ~size_t{0} - 10;
  EXPECT_CL(CL_INVALID_GLOBAL_OFFSET, clEnqueueNDRangeKernel(queue_, ids, 1, &huge_offset, global,
                                                             nullptr, 0, nullptr, nullptr));
  // Exactly 1024 items is allowed.
  size_t g1024[2] = {32, 32}, l1024[2] = {32, 32};
  Event e;
  ASSERT_OK(clEnqueueNDRangeKernel(queue_, ids, 2, nullptr, g1024, l1024, 0, nullptr, e.out()));
  EXPECT_OK(clWaitForEvents(1, e.ptr()));
}

}  // namespace
}  // namespace cltest
