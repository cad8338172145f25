// Platform and device queries: what clinfo and every OpenCL program read first.
#include "cl_test_support.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <set>
#include <sstream>

namespace cltest {
namespace {

std::string PlatformString(cl_platform_id p, cl_platform_info param) {
  size_t n = 0;
  EXPECT_OK(clGetPlatformInfo(p, param, 0, nullptr, &n));
  if (n == 0) return {};
  std::string s(n, '\0');
  EXPECT_OK(clGetPlatformInfo(p, param, n, s.data(), nullptr));
  EXPECT_EQ(s.back(), '\0') << "platform strings are NUL-terminated";
  s.resize(n - 1);
  return s;
}

std::set<std::string> Words(const std::string& s) {
  std::istringstream in(s);
  std::set<std::string> out;
  for (std::string w; in >> w;) out.insert(w);
  return out;
}

// The type the device was configured to claim (HETMM_CL_DEVICE_TYPE), accelerator by default.
cl_device_type ConfiguredType() {
  const char* t = std::getenv("HETMM_CL_DEVICE_TYPE");
  if (t != nullptr && std::strcmp(t, "gpu") == 0) return CL_DEVICE_TYPE_GPU;
  if (t != nullptr && std::strcmp(t, "cpu") == 0) return CL_DEVICE_TYPE_CPU;
  return CL_DEVICE_TYPE_ACCELERATOR;
}

TEST(Platform, FoundByNameWithVersionAndExtensions) {
  cl_platform_id p = HetmmPlatform();
  ASSERT_NE(p, nullptr) << "no OpenCL platform named hetmm (is OCL_ICD_VENDORS set?)";
  EXPECT_EQ(PlatformString(p, CL_PLATFORM_PROFILE), "FULL_PROFILE");
  EXPECT_EQ(PlatformString(p, CL_PLATFORM_VERSION).rfind("OpenCL 3.0 ", 0), 0u);
  EXPECT_EQ(PlatformString(p, CL_PLATFORM_VENDOR), "hetmm");
  cl_version v = 0;
  EXPECT_OK(clGetPlatformInfo(p, CL_PLATFORM_NUMERIC_VERSION, sizeof v, &v, nullptr));
  EXPECT_EQ(CL_VERSION_MAJOR(v), 3u);
  EXPECT_EQ(CL_VERSION_MINOR(v), 0u);

  // The extension string and the versioned list name the same extensions.
  std::set<std::string> ext = Words(PlatformString(p, CL_PLATFORM_EXTENSIONS));
  EXPECT_TRUE(ext.count("cl_khr_icd"));
  EXPECT_TRUE(ext.count("cl_khr_il_program"));
  size_t n = 0;
  ASSERT_OK(clGetPlatformInfo(p, CL_PLATFORM_EXTENSIONS_WITH_VERSION, 0, nullptr, &n));
  ASSERT_EQ(n % sizeof(cl_name_version), 0u);
  std::vector<cl_name_version> list(n / sizeof(cl_name_version));
  ASSERT_OK(clGetPlatformInfo(p, CL_PLATFORM_EXTENSIONS_WITH_VERSION, n, list.data(), nullptr));
  std::set<std::string> names;
  for (const cl_name_version& e : list) names.insert(e.name);
  EXPECT_EQ(names, ext);
  EXPECT_EQ(PlatformString(p, CL_PLATFORM_ICD_SUFFIX_KHR), "HETMM");
}

TEST(Platform, SizeQueriesAndTooSmallBuffers) {
  cl_platform_id p = HetmmPlatform();
  ASSERT_NE(p, nullptr);
  size_t n = 0;
  ASSERT_OK(clGetPlatformInfo(p, CL_PLATFORM_NAME, 0, nullptr, &n));
  EXPECT_EQ(n, sizeof "hetmm");
  char small[3] = {'x', 'y', 'z'};
  EXPECT_CL(CL_INVALID_VALUE, clGetPlatformInfo(p, CL_PLATFORM_NAME, sizeof small, small, nullptr));
  EXPECT_CL(CL_INVALID_VALUE, clGetPlatformInfo(p, 0x7fff, 0, nullptr, &n));

  cl_device_id d = HetmmDevice();
  ASSERT_NE(d, nullptr);
  ASSERT_OK(clGetDeviceInfo(d, CL_DEVICE_NAME, 0, nullptr, &n));
  EXPECT_EQ(n, DeviceString(d, CL_DEVICE_NAME).size() + 1);
  EXPECT_CL(CL_INVALID_VALUE, clGetDeviceInfo(d, CL_DEVICE_NAME, sizeof small, small, nullptr));
  cl_uint u = 0;
  // A scalar into too small a buffer is refused too, not truncated.
  EXPECT_CL(CL_INVALID_VALUE, clGetDeviceInfo(d, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof u, &u, nullptr));
  EXPECT_CL(CL_INVALID_VALUE, clGetDeviceInfo(d, 0x7fff, sizeof u, &u, nullptr));
  ASSERT_OK(clGetDeviceInfo(d, CL_DEVICE_MAX_WORK_ITEM_SIZES, 0, nullptr, &n));
  EXPECT_EQ(n, 3 * sizeof(size_t));
  ASSERT_OK(clGetDeviceInfo(d, CL_DEVICE_SVM_CAPABILITIES, 0, nullptr, &n));
  EXPECT_EQ(n, sizeof(cl_device_svm_capabilities));
}

TEST(Platform, DeviceIdsByType) {
  cl_platform_id p = HetmmPlatform();
  ASSERT_NE(p, nullptr);
  cl_uint all = 0;
  ASSERT_OK(clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 0, nullptr, &all));
  ASSERT_GE(all, 1u);
  cl_uint n = 0;
  EXPECT_OK(clGetDeviceIDs(p, CL_DEVICE_TYPE_DEFAULT, 0, nullptr, &n));
  EXPECT_GE(n, 1u);
  const cl_device_type mine = ConfiguredType();
  EXPECT_OK(clGetDeviceIDs(p, mine, 0, nullptr, &n));
  EXPECT_EQ(n, all);
  for (cl_device_type other :
       {CL_DEVICE_TYPE_GPU, CL_DEVICE_TYPE_CPU, CL_DEVICE_TYPE_ACCELERATOR}) {
    if (other == mine) continue;
    n = 77;
    EXPECT_CL(CL_DEVICE_NOT_FOUND, clGetDeviceIDs(p, other, 0, nullptr, &n)) << other;
  }
  // Several types at once: any device of one of them.
  EXPECT_OK(clGetDeviceIDs(p, CL_DEVICE_TYPE_GPU | CL_DEVICE_TYPE_CPU | CL_DEVICE_TYPE_ACCELERATOR,
                           0, nullptr, &n));
  EXPECT_EQ(n, all);

  std::vector<cl_device_id> ids(all);
  ASSERT_OK(clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, all, ids.data(), nullptr));
  for (cl_device_id d : ids) {
    cl_device_type t = 0;
    ASSERT_OK(clGetDeviceInfo(d, CL_DEVICE_TYPE, sizeof t, &t, nullptr));
    EXPECT_EQ(t, mine);
    cl_platform_id owner = nullptr;
    ASSERT_OK(clGetDeviceInfo(d, CL_DEVICE_PLATFORM, sizeof owner, &owner, nullptr));
    EXPECT_EQ(owner, p);
  }
  // Fewer entries than devices: only that many are written.
  cl_device_id one[2] = {nullptr, reinterpret_cast<cl_device_id>(0x1)};
  ASSERT_OK(clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 1, one, nullptr));
  EXPECT_EQ(one[0], ids[0]);
  EXPECT_EQ(one[1], reinterpret_cast<cl_device_id>(0x1));

  EXPECT_CL(CL_INVALID_VALUE, clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 0, one, nullptr));
  EXPECT_CL(CL_INVALID_VALUE, clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 1, nullptr, nullptr));
  EXPECT_CL(CL_INVALID_DEVICE_TYPE, clGetDeviceIDs(p, cl_device_type{1} << 40, 0, nullptr, &n));
}

TEST(Device, CapabilitiesTheRuntimeReliesOn) {
  cl_device_id d = HetmmDevice();
  ASSERT_NE(d, nullptr);
  cl_device_svm_capabilities svm = 0;
  ASSERT_OK(clGetDeviceInfo(d, CL_DEVICE_SVM_CAPABILITIES, sizeof svm, &svm, nullptr));
  EXPECT_TRUE(svm & CL_DEVICE_SVM_FINE_GRAIN_SYSTEM);
  EXPECT_TRUE(svm & CL_DEVICE_SVM_FINE_GRAIN_BUFFER);
  EXPECT_TRUE(svm & CL_DEVICE_SVM_COARSE_GRAIN_BUFFER);
  EXPECT_TRUE(svm & CL_DEVICE_SVM_ATOMICS);

  EXPECT_NE(DeviceString(d, CL_DEVICE_IL_VERSION).find("SPIR-V_1."), std::string::npos);
  size_t n = 0;
  ASSERT_OK(clGetDeviceInfo(d, CL_DEVICE_ILS_WITH_VERSION, 0, nullptr, &n));
  ASSERT_GE(n, sizeof(cl_name_version));
  std::vector<cl_name_version> ils(n / sizeof(cl_name_version));
  ASSERT_OK(clGetDeviceInfo(d, CL_DEVICE_ILS_WITH_VERSION, n, ils.data(), nullptr));
  EXPECT_STREQ(ils[0].name, "SPIR-V");

  EXPECT_EQ(DeviceString(d, CL_DEVICE_VERSION).rfind("OpenCL 3.0 ", 0), 0u);
  EXPECT_EQ(DeviceString(d, CL_DEVICE_OPENCL_C_VERSION).rfind("OpenCL C 1.2", 0), 0u);
  EXPECT_EQ(DeviceString(d, CL_DEVICE_PROFILE), "FULL_PROFILE");
  EXPECT_FALSE(DeviceString(d, CL_DEVICE_NAME).empty());
  EXPECT_FALSE(DeviceString(d, CL_DRIVER_VERSION).empty());

  // The extension string and the versioned list agree, and name what kernels here use.
  std::set<std::string> ext = Words(DeviceString(d, CL_DEVICE_EXTENSIONS));
  for (const char* e : {"cl_khr_icd", "cl_khr_il_program", "cl_khr_global_int32_base_atomics",
                        "cl_khr_local_int32_base_atomics", "cl_khr_byte_addressable_store"})
    EXPECT_TRUE(ext.count(e)) << e;
  ASSERT_OK(clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS_WITH_VERSION, 0, nullptr, &n));
  std::vector<cl_name_version> list(n / sizeof(cl_name_version));
  ASSERT_OK(clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS_WITH_VERSION, n, list.data(), nullptr));
  std::set<std::string> names;
  for (const cl_name_version& e : list) names.insert(e.name);
  EXPECT_EQ(names, ext);
  if (ext.count("cl_khr_fp64")) {
    cl_device_fp_config fp = 0;
    ASSERT_OK(clGetDeviceInfo(d, CL_DEVICE_DOUBLE_FP_CONFIG, sizeof fp, &fp, nullptr));
    EXPECT_NE(fp, 0u) << "cl_khr_fp64 needs a double FP config";
  }

  cl_bool b = CL_FALSE;
  ASSERT_OK(clGetDeviceInfo(d, CL_DEVICE_AVAILABLE, sizeof b, &b, nullptr));
  EXPECT_EQ(b, CL_TRUE);
  ASSERT_OK(clGetDeviceInfo(d, CL_DEVICE_COMPILER_AVAILABLE, sizeof b, &b, nullptr));
  EXPECT_EQ(b, CL_TRUE);
  ASSERT_OK(clGetDeviceInfo(d, CL_DEVICE_IMAGE_SUPPORT, sizeof b, &b, nullptr));
  EXPECT_EQ(b, CL_FALSE);

  size_t wg = 0, sizes[3] = {};
  ASSERT_OK(clGetDeviceInfo(d, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof wg, &wg, nullptr));
  ASSERT_OK(clGetDeviceInfo(d, CL_DEVICE_MAX_WORK_ITEM_SIZES, sizeof sizes, sizes, nullptr));
  EXPECT_EQ(wg, 1024u);
  for (size_t s : sizes) EXPECT_GE(s, 1u);
  EXPECT_LE(sizes[0], wg);

  cl_ulong global = 0, alloc = 0, local = 0;
  ASSERT_OK(clGetDeviceInfo(d, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof global, &global, nullptr));
  ASSERT_OK(clGetDeviceInfo(d, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof alloc, &alloc, nullptr));
  ASSERT_OK(clGetDeviceInfo(d, CL_DEVICE_LOCAL_MEM_SIZE, sizeof local, &local, nullptr));
  // The full profile's minimums (OpenCL 3.0, table 5.3).
  EXPECT_GE(alloc, std::max<cl_ulong>(std::min<cl_ulong>(1ull << 30, global / 4), 32ull << 20));
  EXPECT_LE(alloc, global);
  EXPECT_GE(local, 32u * 1024);

  cl_command_queue_properties qp = 0;
  ASSERT_OK(clGetDeviceInfo(d, CL_DEVICE_QUEUE_ON_HOST_PROPERTIES, sizeof qp, &qp, nullptr));
  EXPECT_TRUE(qp & CL_QUEUE_PROFILING_ENABLE);
  EXPECT_TRUE(qp & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE);
  cl_uint align = 0;
  ASSERT_OK(clGetDeviceInfo(d, CL_DEVICE_MEM_BASE_ADDR_ALIGN, sizeof align, &align, nullptr));
  EXPECT_GE(align, 8u * sizeof(cl_long16));
}

TEST(Device, RetainReleaseAndTimers) {
  cl_device_id d = HetmmDevice();
  ASSERT_NE(d, nullptr);
  EXPECT_OK(clRetainDevice(d));
  EXPECT_OK(clReleaseDevice(d));
  cl_uint refs = 0;
  ASSERT_OK(clGetDeviceInfo(d, CL_DEVICE_REFERENCE_COUNT, sizeof refs, &refs, nullptr));
  EXPECT_EQ(refs, 1u) << "root devices always answer 1";
  cl_ulong host1 = 0, host2 = 0, dev = 0;
  ASSERT_OK(clGetHostTimer(d, &host1));
  ASSERT_OK(clGetDeviceAndHostTimer(d, &dev, &host2));
  EXPECT_GT(host1, 0u);
  EXPECT_GE(host2, host1);
  EXPECT_GT(dev, 0u);
  EXPECT_CL(CL_INVALID_VALUE, clGetHostTimer(d, nullptr));
}

// The loader dlopen'ed hetmm, so its munmap/mprotect/... hooks come after libc's and do not
// interpose: the device says so once its runtime runs (Runtime::hooks_active() once claimed
// they did, comparing libc's munmap with itself). The heap then stays in place on device
// faults (docs/OPENCL.md, "Known gaps").
TEST_F(ClTest, TheDeviceSaysItsHooksAreNotInterposedUnderTheLoader) {
  std::string version = DeviceString(device_, CL_DEVICE_VERSION);
  EXPECT_NE(version.find("hooks not interposed"), std::string::npos) << version;
}

}  // namespace
}  // namespace cltest
