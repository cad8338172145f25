// Layer opencl: includes every layer.
// clGetDeviceInfo: every OpenCL 3.0 query, answered from what the hetmm device and its SPIR-V
// JIT really do (docs/OPENCL.md explains each choice).
#include "opencl/device_info.hpp"
#include "opencl/objects.hpp"
#include "spirv/compiled_program.hpp"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <thread>

namespace hetmm::opencl {
namespace {

std::uint64_t physical_memory() {
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page)
                               : std::uint64_t{4} << 30;
}

cl_uint clock_mhz() {
  std::ifstream f("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq");
  unsigned long khz = 0;
  if (f >> khz) return static_cast<cl_uint>(khz / 1000);
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line))
    if (line.rfind("cpu MHz", 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) return static_cast<cl_uint>(std::atof(line.c_str() + colon + 1));
    }
  return 0;
}

cl_name_version nv(const char* name, cl_version v) {
  cl_name_version r{};
  r.version = v;
  std::snprintf(r.name, sizeof r.name, "%s", name);
  return r;
}

constexpr cl_version V(unsigned a, unsigned b, unsigned c) { return CL_MAKE_VERSION(a, b, c); }

std::vector<cl_name_version> extensions() {
  return {nv("cl_khr_icd", V(1, 0, 0)),
          nv("cl_khr_il_program", V(1, 0, 0)),
          nv("cl_khr_byte_addressable_store", V(1, 0, 0)),
          nv("cl_khr_global_int32_base_atomics", V(1, 0, 0)),
          nv("cl_khr_global_int32_extended_atomics", V(1, 0, 0)),
          nv("cl_khr_local_int32_base_atomics", V(1, 0, 0)),
          nv("cl_khr_local_int32_extended_atomics", V(1, 0, 0)),
          nv("cl_khr_int64_base_atomics", V(1, 0, 0)),
          nv("cl_khr_int64_extended_atomics", V(1, 0, 0)),
          nv("cl_khr_fp64", V(1, 0, 0))};
}

std::vector<cl_name_version> c_features() {
  cl_version v = V(3, 0, 0);
  return {nv("__opencl_c_atomic_order_acq_rel", v),  nv("__opencl_c_atomic_order_seq_cst", v),
          nv("__opencl_c_atomic_scope_device", v),   nv("__opencl_c_atomic_scope_all_devices", v),
          nv("__opencl_c_generic_address_space", v), nv("__opencl_c_fp64", v),
          nv("__opencl_c_int64", v)};
}

std::string join(const std::vector<cl_name_version>& v) {
  std::string s;
  for (const cl_name_version& e : v) s += std::string(s.empty() ? "" : " ") + e.name;
  return s;
}

}  // namespace

DeviceLimits device_limits() {
  DeviceLimits l;
  l.global_mem = physical_memory();
  l.max_alloc = std::max<std::uint64_t>(l.global_mem / 4, std::uint64_t{128} << 20);
  return l;
}

std::string device_description(cl_device_id d) {
  const hetmm::Options& o = configured_options();
  unsigned workers = o.workers != 0 ? o.workers : std::max(1u, std::thread::hardware_concurrency());
  std::string tracking = runtime_started() ? to_string(runtime().tracking())
                                           : std::string(to_string(o.tracking));
  // Once the runtime runs: whether its munmap/mprotect/... hooks took hold (not when the loader
  // dlopen'ed hetmm, unless LD_PRELOAD put libhetmm first; docs/OPENCL.md).
  if (runtime_started())
    tracking += runtime().hooks_active() ? ", hooks interposed" : ", hooks not interposed";
  if (migrations_off())
    tracking += " (so nothing migrates: LD_PRELOAD=libhetmm.so.0 to let pages move)";
  char buf[400];
  std::snprintf(buf, sizeof buf,
                "device %zu: %zu MiB device memory, %u workers, policy %s, link %s, tracking %s",
                d->index, o.device_memory >> 20, workers, to_string(o.policy),
                configured_link().c_str(), tracking.c_str());
  return buf;
}

bool compiler_available() {
  static const bool yes =
      spirv::tool_on_path("clang-15") && spirv::tool_on_path("llvm-spirv-15");
  return yes;
}
bool linker_available() {
  static const bool yes = spirv::tool_on_path("spirv-link");
  return yes;
}

}  // namespace hetmm::opencl

using namespace hetmm::opencl;

CL_API_ENTRY cl_int CL_API_CALL clGetDeviceInfo(cl_device_id d, cl_device_info param,
                                                size_t size, void* value, size_t* size_ret) {
  return guarded([&] {
    get(d);
    const hetmm::Options& o = configured_options();
    const DeviceLimits lim = device_limits();
    const cl_uint workers =
        o.workers != 0 ? o.workers : std::max(1u, std::thread::hardware_concurrency());
    auto u = [&](cl_uint v) { return info<cl_uint>(size, value, size_ret, v); };
    auto ul = [&](cl_ulong v) { return info<cl_ulong>(size, value, size_ret, v); };
    auto sz = [&](size_t v) { return info<size_t>(size, value, size_ret, v); };
    auto b = [&](cl_bool v) { return info<cl_bool>(size, value, size_ret, v); };
    auto bits = [&](cl_bitfield v) { return info<cl_bitfield>(size, value, size_ret, v); };
    auto str = [&](const std::string& s) { return info_string(size, value, size_ret, s); };
    auto none = [&]() { return info_bytes(size, value, size_ret, nullptr, 0); };
    const cl_device_fp_config fp = CL_FP_DENORM | CL_FP_INF_NAN | CL_FP_ROUND_TO_NEAREST |
                                   CL_FP_FMA | CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT;
    const cl_bitfield atomics = CL_DEVICE_ATOMIC_ORDER_RELAXED | CL_DEVICE_ATOMIC_ORDER_ACQ_REL |
                                CL_DEVICE_ATOMIC_ORDER_SEQ_CST | CL_DEVICE_ATOMIC_SCOPE_WORK_GROUP |
                                CL_DEVICE_ATOMIC_SCOPE_DEVICE | CL_DEVICE_ATOMIC_SCOPE_ALL_DEVICES;
    cl_int rc;
    switch (param) {
      case CL_DEVICE_TYPE: rc = bits(d->type); break;
      case CL_DEVICE_VENDOR_ID: rc = u(0); break;
      case CL_DEVICE_MAX_COMPUTE_UNITS: rc = u(workers); break;
      case CL_DEVICE_MAX_WORK_ITEM_DIMENSIONS: rc = u(3); break;
      case CL_DEVICE_MAX_WORK_ITEM_SIZES: {
        size_t s[3] = {kMaxWorkGroupSize, kMaxWorkGroupSize, kMaxWorkGroupSize};
        rc = info_bytes(size, value, size_ret, s, sizeof s);
        break;
      }
      case CL_DEVICE_MAX_WORK_GROUP_SIZE: rc = sz(kMaxWorkGroupSize); break;
      case CL_DEVICE_PREFERRED_VECTOR_WIDTH_CHAR:
      case CL_DEVICE_NATIVE_VECTOR_WIDTH_CHAR: rc = u(16); break;
      case CL_DEVICE_PREFERRED_VECTOR_WIDTH_SHORT:
      case CL_DEVICE_NATIVE_VECTOR_WIDTH_SHORT: rc = u(8); break;
      case CL_DEVICE_PREFERRED_VECTOR_WIDTH_INT:
      case CL_DEVICE_NATIVE_VECTOR_WIDTH_INT:
      case CL_DEVICE_PREFERRED_VECTOR_WIDTH_FLOAT:
      case CL_DEVICE_NATIVE_VECTOR_WIDTH_FLOAT: rc = u(4); break;
      case CL_DEVICE_PREFERRED_VECTOR_WIDTH_LONG:
      case CL_DEVICE_NATIVE_VECTOR_WIDTH_LONG:
      case CL_DEVICE_PREFERRED_VECTOR_WIDTH_DOUBLE:
      case CL_DEVICE_NATIVE_VECTOR_WIDTH_DOUBLE: rc = u(2); break;
      case CL_DEVICE_PREFERRED_VECTOR_WIDTH_HALF:
      case CL_DEVICE_NATIVE_VECTOR_WIDTH_HALF: rc = u(0); break;
      case CL_DEVICE_MAX_CLOCK_FREQUENCY: rc = u(clock_mhz()); break;
      case CL_DEVICE_ADDRESS_BITS: rc = u(64); break;
      case CL_DEVICE_MAX_MEM_ALLOC_SIZE: rc = ul(lim.max_alloc); break;
      case CL_DEVICE_IMAGE_SUPPORT: rc = b(CL_FALSE); break;
      case CL_DEVICE_MAX_READ_IMAGE_ARGS:
      case CL_DEVICE_MAX_WRITE_IMAGE_ARGS:
      case CL_DEVICE_MAX_READ_WRITE_IMAGE_ARGS:
      case CL_DEVICE_MAX_SAMPLERS:
      case CL_DEVICE_IMAGE_PITCH_ALIGNMENT:
      case CL_DEVICE_IMAGE_BASE_ADDRESS_ALIGNMENT:
      case CL_DEVICE_MAX_PIPE_ARGS:
      case CL_DEVICE_PIPE_MAX_ACTIVE_RESERVATIONS:
      case CL_DEVICE_PIPE_MAX_PACKET_SIZE:
      case CL_DEVICE_MAX_ON_DEVICE_QUEUES:
      case CL_DEVICE_MAX_ON_DEVICE_EVENTS:
      case CL_DEVICE_QUEUE_ON_DEVICE_PREFERRED_SIZE:
      case CL_DEVICE_QUEUE_ON_DEVICE_MAX_SIZE:
      case CL_DEVICE_MAX_NUM_SUB_GROUPS:
      case CL_DEVICE_PARTITION_MAX_SUB_DEVICES:
      case CL_DEVICE_PREFERRED_PLATFORM_ATOMIC_ALIGNMENT:
      case CL_DEVICE_PREFERRED_GLOBAL_ATOMIC_ALIGNMENT:
      case CL_DEVICE_PREFERRED_LOCAL_ATOMIC_ALIGNMENT: rc = u(0); break;
      case CL_DEVICE_IMAGE2D_MAX_WIDTH:
      case CL_DEVICE_IMAGE2D_MAX_HEIGHT:
      case CL_DEVICE_IMAGE3D_MAX_WIDTH:
      case CL_DEVICE_IMAGE3D_MAX_HEIGHT:
      case CL_DEVICE_IMAGE3D_MAX_DEPTH:
      case CL_DEVICE_IMAGE_MAX_BUFFER_SIZE:
      case CL_DEVICE_IMAGE_MAX_ARRAY_SIZE:
      case CL_DEVICE_MAX_GLOBAL_VARIABLE_SIZE:
      case CL_DEVICE_GLOBAL_VARIABLE_PREFERRED_TOTAL_SIZE: rc = sz(0); break;
      case CL_DEVICE_MAX_PARAMETER_SIZE: rc = sz(1024); break;
      case CL_DEVICE_MEM_BASE_ADDR_ALIGN: rc = u(kBaseAddrAlignBytes * 8); break;
      case CL_DEVICE_MIN_DATA_TYPE_ALIGN_SIZE: rc = u(128); break;
      case CL_DEVICE_SINGLE_FP_CONFIG: rc = bits(fp); break;
      case CL_DEVICE_DOUBLE_FP_CONFIG: rc = bits(fp); break;
      case CL_DEVICE_HALF_FP_CONFIG: rc = bits(0); break;
      case CL_DEVICE_GLOBAL_MEM_CACHE_TYPE:
        rc = info<cl_device_mem_cache_type>(size, value, size_ret, CL_READ_WRITE_CACHE);
        break;
      case CL_DEVICE_GLOBAL_MEM_CACHELINE_SIZE: rc = u(64); break;
      case CL_DEVICE_GLOBAL_MEM_CACHE_SIZE: {
        long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
        rc = ul(l2 > 0 ? static_cast<cl_ulong>(l2) : 1u << 20);
        break;
      }
      case CL_DEVICE_GLOBAL_MEM_SIZE: rc = ul(lim.global_mem); break;
      case CL_DEVICE_MAX_CONSTANT_BUFFER_SIZE: rc = ul(lim.max_alloc); break;
      case CL_DEVICE_MAX_CONSTANT_ARGS: rc = u(64); break;
      case CL_DEVICE_LOCAL_MEM_TYPE:
        rc = info<cl_device_local_mem_type>(size, value, size_ret, CL_GLOBAL);
        break;
      case CL_DEVICE_LOCAL_MEM_SIZE: rc = ul(kLocalMemBytes); break;
      case CL_DEVICE_ERROR_CORRECTION_SUPPORT: rc = b(CL_FALSE); break;
      case CL_DEVICE_HOST_UNIFIED_MEMORY: rc = b(CL_TRUE); break;
      case CL_DEVICE_PROFILING_TIMER_RESOLUTION: rc = sz(1); break;
      case CL_DEVICE_ENDIAN_LITTLE: rc = b(CL_TRUE); break;
      case CL_DEVICE_AVAILABLE: rc = b(CL_TRUE); break;
      case CL_DEVICE_COMPILER_AVAILABLE: rc = b(compiler_available()); break;
      case CL_DEVICE_LINKER_AVAILABLE: rc = b(linker_available()); break;
      case CL_DEVICE_EXECUTION_CAPABILITIES:
        rc = bits(CL_EXEC_KERNEL);
        break;
      case CL_DEVICE_QUEUE_ON_HOST_PROPERTIES:
        rc = bits(CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE | CL_QUEUE_PROFILING_ENABLE);
        break;
      case CL_DEVICE_QUEUE_ON_DEVICE_PROPERTIES: rc = bits(0); break;
      case CL_DEVICE_DEVICE_ENQUEUE_CAPABILITIES: rc = bits(0); break;
      case CL_DEVICE_PLATFORM: rc = info<cl_platform_id>(size, value, size_ret, d->platform); break;
      case CL_DEVICE_NAME:
        rc = str("hetmm sim device " + std::to_string(d->index));
        break;
      case CL_DEVICE_VENDOR: rc = str("hetmm"); break;
      case CL_DRIVER_VERSION: rc = str(HETMM_VERSION_STRING); break;
      case CL_DEVICE_PROFILE: rc = str("FULL_PROFILE"); break;
      case CL_DEVICE_VERSION: rc = str("OpenCL 3.0 hetmm (" + device_description(d) + ")"); break;
      case CL_DEVICE_NUMERIC_VERSION: rc = info<cl_version>(size, value, size_ret, V(3, 0, 0)); break;
      case CL_DEVICE_OPENCL_C_VERSION: rc = str("OpenCL C 1.2 "); break;
      case CL_DEVICE_OPENCL_C_ALL_VERSIONS: {
        std::vector<cl_name_version> v = {nv("OpenCL C", V(1, 0, 0)), nv("OpenCL C", V(1, 1, 0)),
                                          nv("OpenCL C", V(1, 2, 0)), nv("OpenCL C", V(3, 0, 0))};
        rc = info_vector(size, value, size_ret, v);
        break;
      }
      case CL_DEVICE_OPENCL_C_FEATURES: rc = info_vector(size, value, size_ret, c_features()); break;
      case CL_DEVICE_EXTENSIONS: rc = str(join(extensions())); break;
      case CL_DEVICE_EXTENSIONS_WITH_VERSION:
        rc = info_vector(size, value, size_ret, extensions());
        break;
      case CL_DEVICE_PRINTF_BUFFER_SIZE: rc = sz(1u << 20); break;
      case CL_DEVICE_PREFERRED_INTEROP_USER_SYNC: rc = b(CL_TRUE); break;
      case CL_DEVICE_PARENT_DEVICE: rc = info<cl_device_id>(size, value, size_ret, nullptr); break;
      case CL_DEVICE_PARTITION_PROPERTIES: {
        cl_device_partition_property zero = 0;
        rc = info(size, value, size_ret, zero);
        break;
      }
      case CL_DEVICE_PARTITION_AFFINITY_DOMAIN: rc = bits(0); break;
      case CL_DEVICE_PARTITION_TYPE: rc = none(); break;
      case CL_DEVICE_REFERENCE_COUNT: rc = u(1); break;
      case CL_DEVICE_SVM_CAPABILITIES:
        rc = bits(CL_DEVICE_SVM_COARSE_GRAIN_BUFFER | CL_DEVICE_SVM_FINE_GRAIN_BUFFER |
                  CL_DEVICE_SVM_FINE_GRAIN_SYSTEM | CL_DEVICE_SVM_ATOMICS);
        break;
      case CL_DEVICE_IL_VERSION: rc = str("SPIR-V_1.0"); break;
      case CL_DEVICE_ILS_WITH_VERSION: {
        std::vector<cl_name_version> v = {nv("SPIR-V", V(1, 0, 0))};
        rc = info_vector(size, value, size_ret, v);
        break;
      }
      case CL_DEVICE_BUILT_IN_KERNELS: rc = str(""); break;
      case CL_DEVICE_BUILT_IN_KERNELS_WITH_VERSION: rc = none(); break;
      case CL_DEVICE_SUB_GROUP_INDEPENDENT_FORWARD_PROGRESS: rc = b(CL_FALSE); break;
      case CL_DEVICE_ATOMIC_MEMORY_CAPABILITIES: rc = bits(atomics); break;
      case CL_DEVICE_ATOMIC_FENCE_CAPABILITIES:
        rc = bits(atomics | CL_DEVICE_ATOMIC_SCOPE_WORK_ITEM);
        break;
      case CL_DEVICE_NON_UNIFORM_WORK_GROUP_SUPPORT: rc = b(CL_TRUE); break;
      case CL_DEVICE_WORK_GROUP_COLLECTIVE_FUNCTIONS_SUPPORT: rc = b(CL_FALSE); break;
      case CL_DEVICE_GENERIC_ADDRESS_SPACE_SUPPORT: rc = b(CL_TRUE); break;
      case CL_DEVICE_PIPE_SUPPORT: rc = b(CL_FALSE); break;
      case CL_DEVICE_PREFERRED_WORK_GROUP_SIZE_MULTIPLE: rc = sz(kPreferredGroupMultiple); break;
      case CL_DEVICE_LATEST_CONFORMANCE_VERSION_PASSED: rc = str("v0000-01-01-00"); break;
      default: rc = CL_INVALID_VALUE;
    }
    if (rc != CL_SUCCESS) fail(rc);
  });
}
