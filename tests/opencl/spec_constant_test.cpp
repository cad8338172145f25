// Specialization constants (clSetProgramSpecializationConstant): a SPIR-V kernel whose stored
// value is OpSpecConstant 7 with SpecId 5, built as is, then with the constant set to 42; and the
// spec's errors. The module was assembled with spirv-as from clang's output for
//   __kernel void k(__global uint* out) { out[get_global_id(0)] = 7u; }
// with the constant made an OpSpecConstant decorated SpecId 5 (spirv-val accepts it).
#include "cl_test_support.hpp"

#include <cstdint>
#include <vector>

namespace cltest {
namespace {

const std::uint32_t kSpecModule[] = {
    0x07230203, 0x00010000, 0x00070000, 0x00000018, 0x00000000, 0x00020011, 0x00000004, 0x00020011,
    0x00000005, 0x00020011, 0x00000006, 0x00020011, 0x0000000b, 0x0005000b, 0x00000001, 0x6e65704f,
    0x732e4c43, 0x00006474, 0x0003000e, 0x00000002, 0x00000002, 0x0005000f, 0x00000006, 0x00000002,
    0x0000006b, 0x00000003, 0x00030003, 0x00000003, 0x00018e70, 0x000b0005, 0x00000003, 0x70735f5f,
    0x5f767269, 0x6c697542, 0x476e4974, 0x61626f6c, 0x766e496c, 0x7461636f, 0x496e6f69, 0x00000064,
    0x00030005, 0x00000004, 0x0000006b, 0x000d0047, 0x00000003, 0x00000029, 0x70735f5f, 0x5f767269,
    0x6c697542, 0x476e4974, 0x61626f6c, 0x766e496c, 0x7461636f, 0x496e6f69, 0x00000064, 0x00000001,
    0x00030047, 0x00000003, 0x00000016, 0x00040047, 0x00000003, 0x0000000b, 0x0000001c, 0x00050047,
    0x00000004, 0x00000029, 0x0000006b, 0x00000000, 0x00040047, 0x00000005, 0x00000001, 0x00000005,
    0x00040047, 0x00000006, 0x0000002c, 0x00000004, 0x00040047, 0x00000007, 0x0000002c, 0x00000008,
    0x00040047, 0x00000008, 0x0000002c, 0x00000004, 0x00040015, 0x00000009, 0x00000040, 0x00000000,
    0x00040015, 0x0000000a, 0x00000020, 0x00000000, 0x00040032, 0x0000000a, 0x00000005, 0x00000007,
    0x00040017, 0x0000000b, 0x00000009, 0x00000003, 0x00040020, 0x0000000c, 0x00000001, 0x0000000b,
    0x00020013, 0x0000000d, 0x00040020, 0x0000000e, 0x00000005, 0x0000000a, 0x00040021, 0x0000000f,
    0x0000000d, 0x0000000e, 0x00040020, 0x00000010, 0x00000007, 0x0000000e, 0x0004003b, 0x0000000c,
    0x00000003, 0x00000001, 0x00050036, 0x0000000d, 0x00000004, 0x00000000, 0x0000000f, 0x00030037,
    0x0000000e, 0x00000006, 0x000200f8, 0x00000011, 0x0004003b, 0x00000010, 0x00000007, 0x00000007,
    0x0005003e, 0x00000007, 0x00000006, 0x00000002, 0x00000008, 0x0006003d, 0x0000000e, 0x00000012,
    0x00000007, 0x00000002, 0x00000008, 0x0006003d, 0x0000000b, 0x00000013, 0x00000003, 0x00000002,
    0x00000020, 0x00050051, 0x00000009, 0x00000014, 0x00000013, 0x00000000, 0x00050046, 0x0000000e,
    0x00000015, 0x00000012, 0x00000014, 0x0005003e, 0x00000015, 0x00000005, 0x00000002, 0x00000004,
    0x000100fd, 0x00010038, 0x00050036, 0x0000000d, 0x00000002, 0x00000000, 0x0000000f, 0x00030037,
    0x0000000e, 0x00000008, 0x000200f8, 0x00000016, 0x00050039, 0x0000000d, 0x00000017, 0x00000004,
    0x00000008, 0x000100fd, 0x00010038,
};

class SpecConstants : public ClTest {
 protected:
  Program FromIl() {
    cl_int rc = CL_SUCCESS;
    Program p(clCreateProgramWithIL(ctx_, kSpecModule, sizeof kSpecModule, &rc));
    EXPECT_CL(CL_SUCCESS, rc);
    return p;
  }
  // Builds p, runs k over 4 items, returns what it wrote.
  std::vector<cl_uint> RunK(cl_program p) {
    cl_int rc = clBuildProgram(p, 1, &device_, "", nullptr, nullptr);
    EXPECT_CL(CL_SUCCESS, rc) << BuildLog(p, device_);
    Kernel k(clCreateKernel(p, "k", &rc));
    EXPECT_CL(CL_SUCCESS, rc);
    Mem out = MakeBuffer(CL_MEM_READ_WRITE, 4 * sizeof(cl_uint));
    EXPECT_CL(CL_SUCCESS, clSetKernelArg(k, 0, sizeof(cl_mem), out.ptr()));
    EXPECT_CL(CL_COMPLETE, Run1D(k, 4));
    std::vector<cl_uint> got(4);
    EXPECT_CL(CL_SUCCESS, clEnqueueReadBuffer(queue_, out, CL_TRUE, 0, 4 * sizeof(cl_uint),
                                              got.data(), 0, nullptr, nullptr));
    return got;
  }
};

TEST_F(SpecConstants, DefaultThenSetValue) {
  Program plain = FromIl();
  EXPECT_EQ(RunK(plain), (std::vector<cl_uint>{7, 7, 7, 7}));
  Program set = FromIl();
  cl_uint v = 42;
  ASSERT_CL(CL_SUCCESS, clSetProgramSpecializationConstant(set, 5, sizeof v, &v));
  EXPECT_EQ(RunK(set), (std::vector<cl_uint>{42, 42, 42, 42}));
}

TEST_F(SpecConstants, Errors) {
  Program p = FromIl();
  cl_uint v = 1;
  EXPECT_CL(CL_INVALID_SPEC_ID, clSetProgramSpecializationConstant(p, 9, sizeof v, &v));
  cl_ulong wide = 1;
  EXPECT_CL(CL_INVALID_VALUE, clSetProgramSpecializationConstant(p, 5, sizeof wide, &wide));
  EXPECT_CL(CL_INVALID_VALUE, clSetProgramSpecializationConstant(p, 5, sizeof v, nullptr));
  const char* src = "__kernel void s(__global int* o) { o[0] = 1; }";
  cl_int rc = CL_SUCCESS;
  Program from_source(clCreateProgramWithSource(ctx_, 1, &src, nullptr, &rc));
  ASSERT_CL(CL_SUCCESS, rc);
  EXPECT_CL(CL_INVALID_PROGRAM, clSetProgramSpecializationConstant(from_source, 5, sizeof v, &v));
}

}  // namespace
}  // namespace cltest
