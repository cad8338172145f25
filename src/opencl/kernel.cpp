// Layer opencl: includes every layer.
// Kernels, their arguments and NDRange launches. A buffer argument is passed as the buffer's
// process address; an SVM argument as the pointer itself: the kernel sees process memory through
// the device MMU either way. Arguments are copied at enqueue, as the spec requires, and the
// launch runs on the device's scheduler thread (queue.cpp).
#include "opencl/device_info.hpp"
#include "opencl/memory.hpp"
#include "opencl/objects.hpp"

#include "spirv/compiled_program.hpp"

#include <algorithm>

namespace hetmm::opencl {
namespace {

cl_kernel make_kernel(cl_program p, const hetmm::Program& code, const std::string& name) {
  auto* k = new _cl_kernel(code);
  k->program = p;
  k->info = &code.kernel(name);
  k->args.resize(k->info->args.size());
  retain(p);
  {
    std::lock_guard lock(p->mutex);
    ++p->attached_kernels;
  }
  register_object(k);
  return k;
}

hetmm::Program built_program(cl_program p) {
  std::lock_guard lock(p->mutex);
  if (!p->built) fail(CL_INVALID_PROGRAM_EXECUTABLE);
  return *p->built;
}

std::size_t largest_divisor_at_most(std::size_t n, std::size_t limit) {
  for (std::size_t d = std::min(n, limit); d > 1; --d)
    if (n % d == 0) return d;
  return 1;
}

}  // namespace
}  // namespace hetmm::opencl

using namespace hetmm::opencl;
using hetmm::ArgKind;

CL_API_ENTRY cl_kernel CL_API_CALL clCreateKernel(cl_program p, const char* name, cl_int* errcode_ret) {
  return guarded_create<cl_kernel>(errcode_ret, [&] {
    get(p);
    hetmm::Program code = built_program(p);
    if (name == nullptr) fail(CL_INVALID_VALUE);
    if (code.compiled().find(name) == nullptr) fail(CL_INVALID_KERNEL_NAME);
    return make_kernel(p, code, name);
  });
}

CL_API_ENTRY cl_int CL_API_CALL clCreateKernelsInProgram(cl_program p, cl_uint n, cl_kernel* kernels,
                                                         cl_uint* n_ret) {
  return guarded([&] {
    get(p);
    hetmm::Program code = built_program(p);
    std::vector<std::string> names = code.kernel_names();
    if (kernels != nullptr && n < names.size()) fail(CL_INVALID_VALUE);
    if (kernels != nullptr)
      for (std::size_t i = 0; i < names.size(); ++i) kernels[i] = make_kernel(p, code, names[i]);
    if (n_ret != nullptr) *n_ret = static_cast<cl_uint>(names.size());
  });
}

CL_API_ENTRY cl_kernel CL_API_CALL clCloneKernel(cl_kernel source, cl_int* errcode_ret) {
  return guarded_create<cl_kernel>(errcode_ret, [&] {
    get(source);
    cl_kernel k = make_kernel(source->program, source->code, source->info->name);
    std::lock_guard lock(source->mutex);
    k->args = source->args;
    for (KernelArg& a : k->args)
      if (a.kind == KernelArg::Kind::mem && a.mem != nullptr) retain(a.mem);
    return k;
  });
}

CL_API_ENTRY cl_int CL_API_CALL clRetainKernel(cl_kernel k) {
  return guarded([&] { retain(get(k)); });
}

CL_API_ENTRY cl_int CL_API_CALL clReleaseKernel(cl_kernel k) {
  return guarded([&] { release(get(k)); });
}

CL_API_ENTRY cl_int CL_API_CALL clSetKernelArg(cl_kernel k, cl_uint index, size_t size,
                                               const void* value) {
  return guarded([&] {
    get(k);
    if (index >= k->info->args.size()) fail(CL_INVALID_ARG_INDEX);
    const hetmm::KernelArgInfo& a = k->info->args[index];
    KernelArg arg;
    arg.set = true;
    switch (a.kind) {
      case ArgKind::global_pointer:
      case ArgKind::constant_pointer: {
        if (size != sizeof(cl_mem)) fail(CL_INVALID_ARG_SIZE);
        cl_mem m = value != nullptr ? *static_cast<const cl_mem*>(value) : nullptr;
        if (m != nullptr) get(m);
        arg.kind = KernelArg::Kind::mem;
        arg.mem = m;
        break;
      }
      case ArgKind::local_pointer:
        if (value != nullptr) fail(CL_INVALID_ARG_VALUE);
        if (size == 0) fail(CL_INVALID_ARG_SIZE);
        arg.kind = KernelArg::Kind::local;
        arg.size = size;
        break;
      case ArgKind::value:
        if (size != a.size || size > sizeof arg.bytes) fail(CL_INVALID_ARG_SIZE);
        if (value == nullptr) fail(CL_INVALID_ARG_VALUE);
        arg.kind = KernelArg::Kind::value;
        arg.size = size;
        std::memcpy(arg.bytes, value, size);
        break;
    }
    // The kernel keeps its buffers alive while they are its arguments (as PoCL does).
    if (arg.mem != nullptr) retain(arg.mem);
    cl_mem old = nullptr;
    {
      std::lock_guard lock(k->mutex);
      if (k->args[index].kind == KernelArg::Kind::mem) old = k->args[index].mem;
      k->args[index] = arg;
    }
    if (old != nullptr) release(old);
  });
}

CL_API_ENTRY cl_int CL_API_CALL clSetKernelArgSVMPointer(cl_kernel k, cl_uint index, const void* ptr) {
  return guarded([&] {
    get(k);
    if (index >= k->info->args.size()) fail(CL_INVALID_ARG_INDEX);
    ArgKind kind = k->info->args[index].kind;
    if (kind != ArgKind::global_pointer && kind != ArgKind::constant_pointer)
      fail(CL_INVALID_ARG_VALUE);
    KernelArg arg;
    arg.set = true;
    arg.kind = KernelArg::Kind::svm;
    arg.svm = ptr;
    cl_mem old = nullptr;
    {
      std::lock_guard lock(k->mutex);
      if (k->args[index].kind == KernelArg::Kind::mem) old = k->args[index].mem;
      k->args[index] = arg;
    }
    if (old != nullptr) release(old);
  });
}

CL_API_ENTRY cl_int CL_API_CALL clSetKernelExecInfo(cl_kernel k, cl_kernel_exec_info param,
                                                    size_t size, const void* value) {
  return guarded([&] {
    get(k);
    if (value == nullptr) fail(CL_INVALID_VALUE);
    // Checked, and otherwise nothing to do: every process pointer is reachable already
    // (fine-grain system SVM), listed or not, and no query returns these.
    switch (param) {
      case CL_KERNEL_EXEC_INFO_SVM_PTRS:
        if (size % sizeof(void*) != 0) fail(CL_INVALID_VALUE);
        break;
      case CL_KERNEL_EXEC_INFO_SVM_FINE_GRAIN_SYSTEM:
        if (size != sizeof(cl_bool)) fail(CL_INVALID_VALUE);
        break;
      default: fail(CL_INVALID_VALUE);
    }
  });
}

CL_API_ENTRY cl_int CL_API_CALL clGetKernelInfo(cl_kernel k, cl_kernel_info param, size_t size,
                                                void* value, size_t* size_ret) {
  return guarded([&] {
    get(k);
    cl_int rc;
    switch (param) {
      case CL_KERNEL_FUNCTION_NAME: rc = info_string(size, value, size_ret, k->info->name); break;
      case CL_KERNEL_NUM_ARGS:
        rc = info<cl_uint>(size, value, size_ret, static_cast<cl_uint>(k->info->args.size()));
        break;
      case CL_KERNEL_REFERENCE_COUNT: rc = info<cl_uint>(size, value, size_ret, k->refs.load()); break;
      case CL_KERNEL_CONTEXT: rc = info(size, value, size_ret, k->program->context); break;
      case CL_KERNEL_PROGRAM: rc = info(size, value, size_ret, k->program); break;
      case CL_KERNEL_ATTRIBUTES: {
        const auto& r = k->info->required_local;
        std::string attrs;
        if (r[0] != 0)
          attrs = "reqd_work_group_size(" + std::to_string(r[0]) + "," + std::to_string(r[1]) + "," +
                  std::to_string(r[2]) + ")";
        rc = info_string(size, value, size_ret, attrs);
        break;
      }
      default: rc = CL_INVALID_VALUE;
    }
    if (rc != CL_SUCCESS) fail(rc);
  });
}

CL_API_ENTRY cl_int CL_API_CALL clGetKernelArgInfo(cl_kernel k, cl_uint index,
                                                   cl_kernel_arg_info param, size_t size,
                                                   void* value, size_t* size_ret) {
  return guarded([&] {
    get(k);
    if (index >= k->info->args.size()) fail(CL_INVALID_ARG_INDEX);
    const hetmm::KernelArgInfo& a = k->info->args[index];
    // The source's spelling where the program was compiled here (SPIR-V has no signedness).
    hetmm::spirv::SourceArg source;
    {
      std::lock_guard lock(k->program->mutex);
      auto it = k->program->signatures.find(k->info->name);
      if (it != k->program->signatures.end() && index < it->second.size()) source = it->second[index];
    }
    const std::string& type_name = source.type.empty() ? a.type_name : source.type;
    cl_int rc;
    switch (param) {
      case CL_KERNEL_ARG_ADDRESS_QUALIFIER: {
        cl_kernel_arg_address_qualifier q = CL_KERNEL_ARG_ADDRESS_PRIVATE;
        if (a.kind == ArgKind::global_pointer) q = CL_KERNEL_ARG_ADDRESS_GLOBAL;
        else if (a.kind == ArgKind::constant_pointer) q = CL_KERNEL_ARG_ADDRESS_CONSTANT;
        else if (a.kind == ArgKind::local_pointer) q = CL_KERNEL_ARG_ADDRESS_LOCAL;
        rc = info(size, value, size_ret, q);
        break;
      }
      case CL_KERNEL_ARG_ACCESS_QUALIFIER:
        rc = info<cl_kernel_arg_access_qualifier>(size, value, size_ret, CL_KERNEL_ARG_ACCESS_NONE);
        break;
      case CL_KERNEL_ARG_TYPE_NAME:
        if (type_name.empty()) fail(CL_KERNEL_ARG_INFO_NOT_AVAILABLE);
        rc = info_string(size, value, size_ret, type_name);
        break;
      case CL_KERNEL_ARG_TYPE_QUALIFIER: {
        cl_kernel_arg_type_qualifier t =
            a.kind == ArgKind::constant_pointer ? CL_KERNEL_ARG_TYPE_CONST : CL_KERNEL_ARG_TYPE_NONE;
        if (source.qualifiers.find("const") != std::string::npos) t |= CL_KERNEL_ARG_TYPE_CONST;
        if (source.qualifiers.find("volatile") != std::string::npos) t |= CL_KERNEL_ARG_TYPE_VOLATILE;
        if (source.qualifiers.find("restrict") != std::string::npos) t |= CL_KERNEL_ARG_TYPE_RESTRICT;
        rc = info(size, value, size_ret, t);
        break;
      }
      case CL_KERNEL_ARG_NAME:
        if (a.name.empty()) fail(CL_KERNEL_ARG_INFO_NOT_AVAILABLE);
        rc = info_string(size, value, size_ret, a.name);
        break;
      default: rc = CL_INVALID_VALUE;
    }
    if (rc != CL_SUCCESS) fail(rc);
  });
}

CL_API_ENTRY cl_int CL_API_CALL clGetKernelWorkGroupInfo(cl_kernel k, cl_device_id d,
                                                         cl_kernel_work_group_info param,
                                                         size_t size, void* value,
                                                         size_t* size_ret) {
  return guarded([&] {
    get(k);
    const auto& devs = k->program->devices;
    if (d == nullptr) {
      if (devs.size() != 1) fail(CL_INVALID_DEVICE);
    } else {
      get(d);
      if (std::find(devs.begin(), devs.end(), d) == devs.end()) fail(CL_INVALID_DEVICE);
    }
    const auto* compiled = k->code.compiled().find(k->info->name);
    cl_int rc;
    switch (param) {
      case CL_KERNEL_WORK_GROUP_SIZE: rc = info<size_t>(size, value, size_ret, kMaxWorkGroupSize); break;
      case CL_KERNEL_COMPILE_WORK_GROUP_SIZE: {
        size_t r[3] = {k->info->required_local[0], k->info->required_local[1],
                       k->info->required_local[2]};
        rc = info_bytes(size, value, size_ret, r, sizeof r);
        break;
      }
      case CL_KERNEL_LOCAL_MEM_SIZE: {
        cl_ulong bytes = k->code.compiled().static_local_bytes;
        std::lock_guard lock(k->mutex);
        for (const KernelArg& a : k->args)
          if (a.kind == KernelArg::Kind::local) bytes += a.size;
        rc = info(size, value, size_ret, bytes);
        break;
      }
      case CL_KERNEL_PREFERRED_WORK_GROUP_SIZE_MULTIPLE:
        rc = info<size_t>(size, value, size_ret, kPreferredGroupMultiple);
        break;
      case CL_KERNEL_PRIVATE_MEM_SIZE:
        rc = info<cl_ulong>(size, value, size_ret, compiled != nullptr ? compiled->wi_private_bytes : 0);
        break;
      case CL_KERNEL_GLOBAL_WORK_SIZE: rc = CL_INVALID_VALUE; break;  // built-in kernels only
      default: rc = CL_INVALID_VALUE;
    }
    if (rc != CL_SUCCESS) fail(rc);
  });
}

CL_API_ENTRY cl_int CL_API_CALL clGetKernelSubGroupInfo(cl_kernel k, cl_device_id,
                                                        cl_kernel_sub_group_info, size_t,
                                                        const void*, size_t, void*, size_t*) {
  return guarded([&] {
    get(k);
    fail(CL_INVALID_OPERATION);  // no sub-groups (CL_DEVICE_MAX_NUM_SUB_GROUPS is 0)
  });
}

CL_API_ENTRY cl_int CL_API_CALL clEnqueueNDRangeKernel(cl_command_queue q, cl_kernel k,
                                                       cl_uint work_dim, const size_t* offset,
                                                       const size_t* global, const size_t* local,
                                                       cl_uint num, const cl_event* waits,
                                                       cl_event* event) {
  return guarded([&] {
    get(q);
    get(k);
    if (k->program->context != q->context) fail(CL_INVALID_CONTEXT);
    const auto& devs = k->program->devices;
    if (std::find(devs.begin(), devs.end(), q->device) == devs.end())
      fail(CL_INVALID_PROGRAM_EXECUTABLE);
    if (work_dim < 1 || work_dim > 3) fail(CL_INVALID_WORK_DIMENSION);
    if (global == nullptr) fail(CL_INVALID_GLOBAL_WORK_SIZE);
    check_wait_list(q->context, num, waits);
    std::size_t g[3] = {1, 1, 1}, l[3] = {0, 0, 0};
    std::array<std::size_t, 3> off{0, 0, 0};
    bool empty = false;
    for (cl_uint d = 0; d < work_dim; ++d) {
      g[d] = global[d];
      empty |= g[d] == 0;
      if (offset != nullptr) off[d] = offset[d];
      if (g[d] + off[d] < g[d]) fail(CL_INVALID_GLOBAL_OFFSET);
    }
    const auto& req = k->info->required_local;
    if (local != nullptr) {
      std::size_t items = 1;
      for (cl_uint d = 0; d < work_dim; ++d) {
        if (local[d] == 0) fail(CL_INVALID_WORK_GROUP_SIZE);
        if (local[d] > kMaxWorkGroupSize) fail(CL_INVALID_WORK_ITEM_SIZE);
        l[d] = local[d];
        items *= local[d];
      }
      for (cl_uint d = work_dim; d < 3; ++d) l[d] = 1;
      if (items > kMaxWorkGroupSize) fail(CL_INVALID_WORK_GROUP_SIZE);
      if (req[0] != 0 && (l[0] != req[0] || l[1] != req[1] || l[2] != req[2]))
        fail(CL_INVALID_WORK_GROUP_SIZE);
    } else if (req[0] != 0) {
      for (int d = 0; d < 3; ++d) l[d] = req[d];
    } else {
      // The runtime's choice: groups that divide the global size (no partial group), up to 64
      // items: long enough loops for the JIT, cheap fiber groups for kernels with barriers.
      std::size_t budget = 64;
      for (cl_uint d = 0; d < 3; ++d) {
        l[d] = d < work_dim && !empty ? largest_divisor_at_most(g[d], budget) : 1;
        budget = std::max<std::size_t>(1, budget / l[d]);
      }
    }

    // Arguments, as they are now.
    Command c;
    std::vector<hetmm::detail::LaunchArg> args;
    std::size_t local_bytes = k->code.compiled().static_local_bytes;
    {
      std::lock_guard lock(k->mutex);
      for (std::size_t i = 0; i < k->args.size(); ++i) {
        const KernelArg& a = k->args[i];
        if (!a.set) fail(CL_INVALID_KERNEL_ARGS);
        hetmm::detail::LaunchArg la{};
        switch (a.kind) {
          case KernelArg::Kind::mem: {
            if (a.mem != nullptr && a.mem->context != q->context) fail(CL_INVALID_CONTEXT);
            const void* p = a.mem != nullptr ? a.mem->data : nullptr;
            la = hetmm::detail::make_launch_arg(p);
            if (a.mem != nullptr) {
              retain(a.mem);
              c.mems.push_back(a.mem);
            }
            break;
          }
          case KernelArg::Kind::svm: la = hetmm::detail::make_launch_arg(a.svm); break;
          case KernelArg::Kind::local:
            la = hetmm::detail::make_launch_arg(hetmm::LocalMemory{a.size});
            local_bytes += a.size + 128;  // each arena slice is 128-byte aligned
            break;
          case KernelArg::Kind::value:
            la.kind = hetmm::detail::LaunchArg::Kind::value;
            la.size = a.size;
            std::memcpy(la.bytes.data(), a.bytes, a.size);
            break;
          case KernelArg::Kind::none: fail(CL_INVALID_KERNEL_ARGS);
        }
        args.push_back(la);
      }
    }
    if (local_bytes > kLocalMemBytes) {
      for (cl_mem m : c.mems) release(m);
      fail(CL_OUT_OF_RESOURCES);
    }
    retain(k);
    c.kernels.push_back(k);
    if (!empty) {
      hetmm::Program code = k->code;
      std::string name = k->info->name;
      std::size_t device = q->device->index;
      hetmm::NDRange gr{g[0], g[1], g[2], work_dim}, lr{l[0], l[1], l[2], work_dim};
      // The launch completes on the device's worker (complete_in_flight): no thread waits
      // for it, and the enqueuing thread may start it itself (run_here).
      c.start = [code, name, device, gr, lr, args = std::move(args), off](Command* self) mutable {
        runtime().device(device).launch_program(
            code, name, gr, lr, std::move(args), off,
            [self](std::exception_ptr error) { complete_in_flight(self, std::move(error)); });
      };
    }
    c.run_here = true;
    finish_blocking(submit(q, CL_COMMAND_NDRANGE_KERNEL, num, waits, std::move(c)), false, event);
  });
}

CL_API_ENTRY cl_int CL_API_CALL clEnqueueTask(cl_command_queue q, cl_kernel k, cl_uint num,
                                              const cl_event* waits, cl_event* event) {
  size_t one = 1;
  return clEnqueueNDRangeKernel(q, k, 1, nullptr, &one, &one, num, waits, event);
}

CL_API_ENTRY cl_int CL_API_CALL clEnqueueNativeKernel(cl_command_queue q, void(CL_CALLBACK*)(void*),
                                                      void*, size_t, cl_uint, const cl_mem*,
                                                      const void**, cl_uint, const cl_event*,
                                                      cl_event*) {
  return guarded([&] {
    get(q);
    fail(CL_INVALID_OPERATION);  // CL_DEVICE_EXECUTION_CAPABILITIES has no CL_EXEC_NATIVE_KERNEL
  });
}
