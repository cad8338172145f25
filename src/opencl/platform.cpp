// Layer opencl: includes every layer.
// The platform, its devices and the hetmm runtime behind them, configured from the environment:
//   HETMM_DEVICES=N            CL devices (hetmm sim devices), default 1
//   HETMM_DEVICE_MEMORY=SIZE   device memory each (bytes, or with K/M/G), default 256M
//   HETMM_WORKERS=N            worker threads per device, default: hardware threads
//   HETMM_POLICY=hetmm|uvm|in_place
//   HETMM_LINK=none|pcie4|pcie5|nvlink_c2c   the link the modeled time assumes, default pcie4
//   HETMM_TRACKING=automatic|userfaultfd|mprotect
//   HETMM_CL_DEVICE_TYPE=accelerator|gpu|cpu  what the device says it is, default accelerator
//   HETMM_TRACE=FILE           the run's events as a Chrome trace, written at exit
//   HETMM_REPORT=1             what the memory did, per device, on stderr at exit
#include "opencl/objects.hpp"
#include "opencl/device_info.hpp"
#include "opencl/report.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

namespace hetmm::opencl {
namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::string(v) : std::string();
}

std::size_t parse_size(const std::string& s, std::size_t fallback) {
  if (s.empty()) return fallback;
  char* end = nullptr;
  unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (end == s.c_str()) return fallback;
  switch (*end) {
    case 'k': case 'K': v <<= 10; break;
    case 'm': case 'M': v <<= 20; break;
    case 'g': case 'G': v <<= 30; break;
    default: break;
  }
  return v != 0 ? static_cast<std::size_t>(v) : fallback;
}

struct Config {
  hetmm::Options options;
  std::string link_name = "pcie4";
  cl_device_type type = CL_DEVICE_TYPE_ACCELERATOR;
  std::string trace_file;
  bool report = false;
};

Config read_config() {
  Config c;
  c.options.devices = parse_size(env("HETMM_DEVICES"), 1);
  if (c.options.devices > 16) c.options.devices = 16;
  c.options.device_memory = parse_size(env("HETMM_DEVICE_MEMORY"), 256u << 20);
  c.options.workers = static_cast<unsigned>(parse_size(env("HETMM_WORKERS"), 0));
  std::string policy = env("HETMM_POLICY");
  if (policy == "uvm") c.options.policy = PolicyProfile::uvm;
  else if (policy == "in_place") c.options.policy = PolicyProfile::in_place;
  std::string tracking = env("HETMM_TRACKING");
  if (tracking == "userfaultfd") c.options.tracking = Tracking::userfaultfd;
  else if (tracking == "mprotect") c.options.tracking = Tracking::mprotect;
  std::string link = env("HETMM_LINK");
  if (link == "none") c.options.link = LinkProfile::none(), c.link_name = link;
  else if (link == "pcie5") c.options.link = LinkProfile::pcie5(), c.link_name = link;
  else if (link == "nvlink_c2c") c.options.link = LinkProfile::nvlink_c2c(), c.link_name = link;
  else c.options.link = LinkProfile::pcie4();
  std::string type = env("HETMM_CL_DEVICE_TYPE");
  if (type == "gpu") c.type = CL_DEVICE_TYPE_GPU;
  else if (type == "cpu") c.type = CL_DEVICE_TYPE_CPU;
  c.trace_file = env("HETMM_TRACE");
  std::string report = env("HETMM_REPORT");
  c.report = !report.empty() && report != "0";
  if (!c.trace_file.empty()) c.options.event_capacity = std::size_t{1} << 22;
  return c;
}

// Leaked on purpose (objects.cpp: the loader never unloads us; programs release objects late).
struct State {
  Config config = read_config();
  _cl_platform_id platform;
  std::vector<_cl_device_id*> devices;
  std::once_flag runtime_once;
  hetmm::Runtime* rt = nullptr;
  std::atomic<bool> started{false};
  bool migrations_off = false;  // set before `started`: mprotect tracking without hooks
  State() {
    register_object(&platform);
    for (std::size_t i = 0; i < config.options.devices; ++i) {
      auto* d = new _cl_device_id;
      d->platform = &platform;
      d->index = i;
      d->type = config.type;
      register_object(d);
      devices.push_back(d);
      platform.devices.push_back(d);
    }
  }
};

State& state() {
  static auto* s = new State;
  return *s;
}

void at_exit() {
  State& s = state();
  if (s.rt == nullptr) return;
  write_exit_outputs(*s.rt, s.config.trace_file, s.config.report, s.config.link_name);
}

}  // namespace

cl_platform_id platform() { return &state().platform; }

hetmm::Runtime& runtime() {
  State& s = state();
  std::call_once(s.runtime_once, [&] {
    s.rt = new hetmm::Runtime(s.config.options);
    if (s.rt->tracking() == Tracking::mprotect && !s.rt->hooks_active()) {
      // Under mprotect tracking only the interposed munmap/mmap/... tell hetmm of a CPU-side
      // change, and the loader's dlopen left them behind libc's: a page moved to device memory
      // and then unmapped and mapped anew would be read from its stale frame. Nothing moves,
      // then: the device accesses system memory in place (the CPU MMU keeps that coherent),
      // and migration requests are hints left unheeded. LD_PRELOAD=libhetmm.so.0 lifts it.
      delete s.rt;
      s.config.options.policy = PolicyProfile::in_place;
      s.rt = new hetmm::Runtime(s.config.options);
      s.migrations_off = true;
    }
    s.started.store(true, std::memory_order_release);
    if (!s.config.trace_file.empty() || s.config.report) std::atexit(at_exit);
  });
  if (s.rt == nullptr) fail(CL_OUT_OF_RESOURCES);
  return *s.rt;
}

bool runtime_started() { return state().started.load(std::memory_order_acquire); }

bool migrations_off() { return runtime_started() && state().migrations_off; }

const hetmm::Options& configured_options() { return state().config.options; }
const std::string& configured_link() { return state().config.link_name; }

}  // namespace hetmm::opencl

using namespace hetmm::opencl;

// ---- the ICD's entry points --------------------------------------------------------------------
HETMM_CL_EXPORT cl_int CL_API_CALL clIcdGetPlatformIDsKHR(cl_uint num_entries,
                                                         cl_platform_id* platforms,
                                                         cl_uint* num_platforms) {
  if ((num_entries == 0 && platforms != nullptr) || (platforms == nullptr && num_platforms == nullptr))
    return CL_INVALID_VALUE;
  return guarded([&] {
    if (platforms != nullptr) platforms[0] = platform();
    if (num_platforms != nullptr) *num_platforms = 1;
  });
}

CL_API_ENTRY cl_int CL_API_CALL clGetPlatformIDs(cl_uint num_entries, cl_platform_id* platforms,
                                                 cl_uint* num_platforms) {
  return clIcdGetPlatformIDsKHR(num_entries, platforms, num_platforms);
}

namespace hetmm::opencl {
const std::string kPlatformExtensions = "cl_khr_icd cl_khr_il_program";
}

CL_API_ENTRY cl_int CL_API_CALL clGetPlatformInfo(cl_platform_id p, cl_platform_info param,
                                                  size_t size, void* value, size_t* size_ret) {
  return guarded([&] {
    if (p != nullptr) get(p);
    cl_int rc = CL_SUCCESS;
    switch (param) {
      case CL_PLATFORM_PROFILE: rc = info_string(size, value, size_ret, "FULL_PROFILE"); break;
      case CL_PLATFORM_VERSION:
        rc = info_string(size, value, size_ret,
                         "OpenCL 3.0 hetmm " HETMM_VERSION_STRING
                         " (SPIR-V, fine-grain system SVM, device MMU)");
        break;
      case CL_PLATFORM_NUMERIC_VERSION:
        rc = info<cl_version>(size, value, size_ret, CL_MAKE_VERSION(3, 0, 0));
        break;
      case CL_PLATFORM_NAME: rc = info_string(size, value, size_ret, "hetmm"); break;
      case CL_PLATFORM_VENDOR: rc = info_string(size, value, size_ret, "hetmm"); break;
      case CL_PLATFORM_EXTENSIONS: rc = info_string(size, value, size_ret, kPlatformExtensions); break;
      case CL_PLATFORM_EXTENSIONS_WITH_VERSION: {
        std::vector<cl_name_version> v(2);
        std::snprintf(v[0].name, sizeof v[0].name, "cl_khr_icd");
        v[0].version = CL_MAKE_VERSION(1, 0, 0);
        std::snprintf(v[1].name, sizeof v[1].name, "cl_khr_il_program");
        v[1].version = CL_MAKE_VERSION(1, 0, 0);
        rc = info_vector(size, value, size_ret, v);
        break;
      }
      case CL_PLATFORM_ICD_SUFFIX_KHR: rc = info_string(size, value, size_ret, "HETMM"); break;
      case CL_PLATFORM_HOST_TIMER_RESOLUTION: rc = info<cl_ulong>(size, value, size_ret, 1); break;
      default: rc = CL_INVALID_VALUE;
    }
    if (rc != CL_SUCCESS) fail(rc);
  });
}

CL_API_ENTRY cl_int CL_API_CALL clGetDeviceIDs(cl_platform_id p, cl_device_type type,
                                               cl_uint num_entries, cl_device_id* devices,
                                               cl_uint* num_devices) {
  return guarded([&] {
    if (p != nullptr) get(p);
    constexpr cl_device_type known = CL_DEVICE_TYPE_DEFAULT | CL_DEVICE_TYPE_CPU |
                                     CL_DEVICE_TYPE_GPU | CL_DEVICE_TYPE_ACCELERATOR |
                                     CL_DEVICE_TYPE_CUSTOM;
    if (type != CL_DEVICE_TYPE_ALL && (type & ~known) != 0) fail(CL_INVALID_DEVICE_TYPE);
    if ((num_entries == 0 && devices != nullptr) || (devices == nullptr && num_devices == nullptr))
      fail(CL_INVALID_VALUE);
    std::vector<cl_device_id> match;
    for (cl_device_id d : platform()->devices)
      if (type == CL_DEVICE_TYPE_ALL || (type & d->type) != 0 ||
          ((type & CL_DEVICE_TYPE_DEFAULT) != 0 && d->index == 0))
        match.push_back(d);
    if (match.empty()) fail(CL_DEVICE_NOT_FOUND);
    if (devices != nullptr)
      for (cl_uint i = 0; i < num_entries && i < match.size(); ++i) devices[i] = match[i];
    if (num_devices != nullptr) *num_devices = static_cast<cl_uint>(match.size());
  });
}

// Root devices only: retain and release are no-ops that check the handle (spec 1.2).
CL_API_ENTRY cl_int CL_API_CALL clRetainDevice(cl_device_id d) {
  return guarded([&] { get(d); });
}
CL_API_ENTRY cl_int CL_API_CALL clReleaseDevice(cl_device_id d) {
  return guarded([&] { get(d); });
}
CL_API_ENTRY cl_int CL_API_CALL clCreateSubDevices(cl_device_id d,
                                                   const cl_device_partition_property*, cl_uint,
                                                   cl_device_id*, cl_uint*) {
  return guarded([&] {
    get(d);
    fail(CL_INVALID_VALUE);  // CL_DEVICE_PARTITION_PROPERTIES is empty: no partition type
  });
}

CL_API_ENTRY cl_int CL_API_CALL clGetHostTimer(cl_device_id d, cl_ulong* host_timestamp) {
  return guarded([&] {
    get(d);
    if (host_timestamp == nullptr) fail(CL_INVALID_VALUE);
    *host_timestamp = now_ns();
  });
}

CL_API_ENTRY cl_int CL_API_CALL clGetDeviceAndHostTimer(cl_device_id d, cl_ulong* device_timestamp,
                                                        cl_ulong* host_timestamp) {
  return guarded([&] {
    get(d);
    if (host_timestamp == nullptr || device_timestamp == nullptr) fail(CL_INVALID_VALUE);
    *device_timestamp = *host_timestamp = now_ns();  // one clock: profiling times are host times
  });
}

CL_API_ENTRY cl_int CL_API_CALL clUnloadCompiler(void) { return CL_SUCCESS; }
CL_API_ENTRY cl_int CL_API_CALL clUnloadPlatformCompiler(cl_platform_id p) {
  return guarded([&] { get(p); });
}
