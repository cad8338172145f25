// Layer opencl: includes every layer.
// Contexts. The first one starts the hetmm runtime (platform.cpp).
#include "opencl/objects.hpp"

using namespace hetmm::opencl;

namespace {

std::vector<cl_context_properties> check_properties(const cl_context_properties* props) {
  std::vector<cl_context_properties> out;
  if (props == nullptr) return out;
  bool seen_platform = false, seen_sync = false;
  for (const cl_context_properties* p = props; *p != 0; p += 2) {
    switch (p[0]) {
      case CL_CONTEXT_PLATFORM:
        if (seen_platform) fail(CL_INVALID_PROPERTY);
        seen_platform = true;
        if (find_object(reinterpret_cast<const void*>(p[1]), Kind::platform) == nullptr)
          fail(CL_INVALID_PLATFORM);
        break;
      case CL_CONTEXT_INTEROP_USER_SYNC:
        if (seen_sync) fail(CL_INVALID_PROPERTY);
        seen_sync = true;
        break;
      default: fail(CL_INVALID_PROPERTY);
    }
    out.push_back(p[0]);
    out.push_back(p[1]);
  }
  out.push_back(0);
  return out;
}

cl_context make_context(const cl_context_properties* props, std::vector<cl_device_id> devices,
                        void(CL_CALLBACK* notify)(const char*, const void*, size_t, void*),
                        void* data) {
  if (notify == nullptr && data != nullptr) fail(CL_INVALID_VALUE);
  auto properties = check_properties(props);
  runtime();  // the devices become real now; CL_OUT_OF_RESOURCES if the runtime cannot start
  auto* c = new _cl_context;
  c->devices = std::move(devices);
  c->properties = std::move(properties);
  c->notify = notify;
  c->notify_data = data;
  register_object(c);
  return c;
}

}  // namespace

CL_API_ENTRY cl_context CL_API_CALL clCreateContext(
    const cl_context_properties* properties, cl_uint num_devices, const cl_device_id* devices,
    void(CL_CALLBACK* notify)(const char*, const void*, size_t, void*), void* user_data,
    cl_int* errcode_ret) {
  return guarded_create<cl_context>(errcode_ret, [&] {
    if (num_devices == 0 || devices == nullptr) fail(CL_INVALID_VALUE);
    std::vector<cl_device_id> list;
    for (cl_uint i = 0; i < num_devices; ++i) {
      get(devices[i]);
      bool dup = false;
      for (cl_device_id d : list) dup |= d == devices[i];
      if (!dup) list.push_back(devices[i]);
    }
    return make_context(properties, std::move(list), notify, user_data);
  });
}

CL_API_ENTRY cl_context CL_API_CALL clCreateContextFromType(
    const cl_context_properties* properties, cl_device_type type,
    void(CL_CALLBACK* notify)(const char*, const void*, size_t, void*), void* user_data,
    cl_int* errcode_ret) {
  return guarded_create<cl_context>(errcode_ret, [&] {
    cl_uint n = 0;
    cl_int rc = clGetDeviceIDs(platform(), type, 0, nullptr, &n);
    if (rc != CL_SUCCESS) fail(rc);
    std::vector<cl_device_id> list(n);
    clGetDeviceIDs(platform(), type, n, list.data(), nullptr);
    return make_context(properties, std::move(list), notify, user_data);
  });
}

CL_API_ENTRY cl_int CL_API_CALL clRetainContext(cl_context c) {
  return guarded([&] { retain(get(c)); });
}

CL_API_ENTRY cl_int CL_API_CALL clReleaseContext(cl_context c) {
  return guarded([&] { release(get(c)); });
}

CL_API_ENTRY cl_int CL_API_CALL clGetContextInfo(cl_context c, cl_context_info param, size_t size,
                                                 void* value, size_t* size_ret) {
  return guarded([&] {
    get(c);
    cl_int rc;
    switch (param) {
      case CL_CONTEXT_REFERENCE_COUNT: rc = info<cl_uint>(size, value, size_ret, c->refs.load()); break;
      case CL_CONTEXT_NUM_DEVICES:
        rc = info<cl_uint>(size, value, size_ret, static_cast<cl_uint>(c->devices.size()));
        break;
      case CL_CONTEXT_DEVICES: rc = info_vector(size, value, size_ret, c->devices); break;
      case CL_CONTEXT_PROPERTIES: rc = info_vector(size, value, size_ret, c->properties); break;
      default: rc = CL_INVALID_VALUE;
    }
    if (rc != CL_SUCCESS) fail(rc);
  });
}

CL_API_ENTRY cl_int CL_API_CALL clSetContextDestructorCallback(
    cl_context c, void(CL_CALLBACK* fn)(cl_context, void*), void* user_data) {
  return guarded([&] {
    get(c);
    if (fn == nullptr) fail(CL_INVALID_VALUE);
    std::lock_guard lock(c->mutex);
    c->destructor_callbacks.emplace_back(fn, user_data);
  });
}
