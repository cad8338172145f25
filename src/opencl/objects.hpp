// Layer opencl: includes every layer.
// The ICD's objects. Every one begins with the loader's dispatch table pointer (cl_khr_icd), then
// its kind and reference count. Handles are checked against a registry of live objects before
// any use, so a handle of the wrong kind, a released one or a stray pointer gets the spec's
// CL_INVALID_* code instead of undefined behaviour (PoCL and the loader check only NULL).
//
// Lock order (docs/OPENCL.md): registry lock, then an object's own mutex; the scheduler lock
// (queue.cpp) is never held while an event's mutex is taken or a callback runs. Callbacks and
// command bodies run with no ICD lock held.
#pragma once

#include "opencl/cl_api.hpp"

#include "hetmm/hetmm.hpp"
#include "hetmm/program.hpp"
#include "spirv/compiled_program.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace hetmm::opencl {

enum class Kind : std::uint32_t {
  platform = 0x48500001,
  device,
  context,
  queue,
  mem,
  program,
  kernel,
  event,
  sampler,
};

extern const cl_icd_dispatch kDispatch;

struct ObjectHeader {
  const cl_icd_dispatch* dispatch = &kDispatch;
  Kind kind;
  std::atomic<cl_uint> refs{1};
  explicit ObjectHeader(Kind k) : kind(k) {}
  // Objects' storage is never returned to the system: a released object's first word keeps
  // pointing at the dispatch table (its storage waits in a free list for the next object of its
  // size). The loader calls through that pointer before we see the handle, so a released handle
  // then reaches us and gets its CL_INVALID_* code instead of a crash in the loader.
  static void* operator new(std::size_t n);
  static void operator delete(void* p, std::size_t n);
};

// The registry of live handles.
void register_object(ObjectHeader* o);
void unregister_object(ObjectHeader* o);
// The object behind handle when it is live and of kind k, else nullptr.
ObjectHeader* find_object(const void* handle, Kind k);

// Nanoseconds on the device's clock (CLOCK_MONOTONIC_RAW: what clGetHostTimer answers too).
std::uint64_t now_ns();

// An OpenCL error with the spec's code, thrown inside entry points and returned at their edge.
struct ClError {
  cl_int code;
};
[[noreturn]] inline void fail(cl_int code) { throw ClError{code}; }

}  // namespace hetmm::opencl

using hetmm::opencl::Kind;
using hetmm::opencl::ObjectHeader;

// ---- platform and devices --------------------------------------------------------------------
struct _cl_platform_id : ObjectHeader {
  _cl_platform_id() : ObjectHeader(Kind::platform) {}
  std::vector<cl_device_id> devices;
};

struct _cl_device_id : ObjectHeader {
  _cl_device_id() : ObjectHeader(Kind::device) {}
  cl_platform_id platform = nullptr;
  std::size_t index = 0;  // the hetmm device
  cl_device_type type = CL_DEVICE_TYPE_ACCELERATOR;
};

// ---- contexts --------------------------------------------------------------------------------
struct _cl_context : ObjectHeader {
  _cl_context() : ObjectHeader(Kind::context) {}
  std::vector<cl_device_id> devices;
  std::vector<cl_context_properties> properties;  // as given, zero-terminated (or empty)
  void(CL_CALLBACK* notify)(const char*, const void*, size_t, void*) = nullptr;
  void* notify_data = nullptr;
  std::mutex mutex;
  std::vector<std::pair<void(CL_CALLBACK*)(cl_context, void*), void*>> destructor_callbacks;
  void report(const std::string& message);  // to the context's notify callback, if any
};

// ---- events ----------------------------------------------------------------------------------
struct _cl_event : ObjectHeader {
  _cl_event() : ObjectHeader(Kind::event) {}
  cl_context context = nullptr;
  cl_command_queue queue = nullptr;  // null for user events
  cl_command_type type = CL_COMMAND_USER;
  bool profiling = false;

  std::mutex mutex;
  std::condition_variable done;
  cl_int status = CL_QUEUED;  // CL_QUEUED .. CL_COMPLETE, or a negative error
  std::uint64_t t_queued = 0, t_submit = 0, t_start = 0, t_end = 0;
  struct Callback {
    cl_int on;
    void(CL_CALLBACK* fn)(cl_event, cl_int, void*);
    void* data;
  };
  std::vector<Callback> callbacks;
  int helpers = 0;  // threads blocked on it in help_until (under its device scheduler's mutex)

  bool finished() {
    std::lock_guard lock(mutex);
    return status <= CL_COMPLETE;
  }
  cl_int current_status() {
    std::lock_guard lock(mutex);
    return status;
  }
  // Moves the event to `s` (CL_SUBMITTED, CL_RUNNING, CL_COMPLETE or an error), recording the
  // time, waking waiters and running the callbacks that became due (outside the lock).
  void set_status(cl_int s);
  // set_status's first half: moves and wakes waiters; returns the callbacks that became due
  // (false: the event was final already).
  bool mark(cl_int s, std::vector<Callback>* due);
  void run_callbacks(const std::vector<Callback>& due, cl_int s);
  cl_int wait();  // until complete; returns the final status
};

// ---- memory objects --------------------------------------------------------------------------
struct _cl_mem : ObjectHeader {
  _cl_mem() : ObjectHeader(Kind::mem) {}
  cl_context context = nullptr;
  cl_mem_object_type type = CL_MEM_OBJECT_BUFFER;
  cl_mem_flags flags = 0;
  std::size_t size = 0;
  char* data = nullptr;         // the buffer's bytes: process memory the device reaches as is
  void* host_ptr = nullptr;     // CL_MEM_USE_HOST_PTR's pointer (CL_MEM_HOST_PTR answers it)
  bool owns = false;            // data came from Runtime::allocate
  cl_mem parent = nullptr;      // sub-buffers: the buffer they are part of
  std::size_t origin = 0;       // sub-buffers: offset in the parent
  bool uses_svm_pointer = false;
  std::vector<cl_mem_properties> properties;
  std::atomic<cl_uint> map_count{0};
  std::mutex mutex;
  std::vector<std::pair<void(CL_CALLBACK*)(cl_mem, void*), void*>> destructor_callbacks;
};

// ---- programs and kernels --------------------------------------------------------------------
struct _cl_program : ObjectHeader {
  _cl_program() : ObjectHeader(Kind::program) {}
  cl_context context = nullptr;
  std::vector<cl_device_id> devices;
  enum class Origin { source, il, binary, linked } origin = Origin::source;
  std::string source;
  std::vector<std::uint32_t> il;  // SPIR-V given (IL) or compiled (source, binary, link)

  std::mutex mutex;  // guards everything below
  cl_build_status build_status = CL_BUILD_NONE;
  cl_program_binary_type binary_type = CL_PROGRAM_BINARY_TYPE_NONE;
  std::string options, log;
  std::optional<hetmm::Program> built;  // the JIT'd kernels, once built
  hetmm::spirv::SourceSignatures signatures;  // argument types as the source spelled them
  std::map<cl_uint, std::uint64_t> spec_values;  // clSetProgramSpecializationConstant (IL)
  std::size_t attached_kernels = 0;     // kernels created from it (a rebuild is then refused)
  std::vector<std::pair<void(CL_CALLBACK*)(cl_program, void*), void*>> release_callbacks;
};

struct KernelArg {
  bool set = false;
  enum class Kind : std::uint8_t { none, mem, svm, local, value } kind = Kind::none;
  cl_mem mem = nullptr;  // Kind::mem (may be null: a null pointer)
  const void* svm = nullptr;
  std::size_t size = 0;
  alignas(16) unsigned char bytes[128] = {};
};

struct _cl_kernel : ObjectHeader {
  cl_program program = nullptr;
  hetmm::Program code;  // keeps the JIT'd code alive
  const hetmm::KernelInfo* info = nullptr;
  std::mutex mutex;
  std::vector<KernelArg> args;
  explicit _cl_kernel(hetmm::Program p) : ObjectHeader(Kind::kernel), code(std::move(p)) {}
};

// ---- command queues --------------------------------------------------------------------------
namespace hetmm::opencl {

// One command: what it waits for and the work it does on the device's scheduler thread. The
// work returns CL_COMPLETE or a negative status for the command's event.
struct Command {
  cl_event event = nullptr;          // retained by the command
  std::vector<cl_event> waits;       // the wait list (retained): a failed one fails the command
  std::vector<cl_event> after;       // ordering only (retained): the in-order predecessor, the
                                     // last barrier; a failure there does not spread
  std::function<cl_int()> work;      // null for markers and barriers
  // Instead of work: starts work that completes later, on another thread, through
  // complete_in_flight(command, error) (a kernel launch). If it throws, it never completes.
  std::function<void(Command*)> start;
  // The enqueuing thread may run it when it is ready and its device's scheduler is idle: work
  // that only starts (a launch), or work the caller is about to wait for (a blocking read).
  // Saves the hand-off to the scheduler thread and back.
  bool run_here = false;
  std::vector<cl_mem> mems;          // retained while the command is pending
  std::vector<cl_kernel> kernels;    // retained while the command is pending
};

class Scheduler;

}  // namespace hetmm::opencl

struct _cl_command_queue : ObjectHeader {
  _cl_command_queue() : ObjectHeader(Kind::queue) {}
  cl_context context = nullptr;
  cl_device_id device = nullptr;
  cl_command_queue_properties props = 0;
  std::vector<cl_queue_properties> properties;  // as given to ...WithProperties
  cl_uint size = 0;

  std::mutex mutex;
  cl_event last = nullptr;              // in-order: the previous command's event (retained)
  cl_event barrier = nullptr;           // out-of-order: the last barrier (retained)
  std::vector<cl_event> outstanding;    // not yet complete (retained), for clFinish and barriers
};

namespace hetmm::opencl {

// The hetmm runtime behind the platform: created at the first context, configured from the
// environment (docs/OPENCL.md), kept for the process's life.
hetmm::Runtime& runtime();
bool runtime_started();
cl_platform_id platform();

// Submits a command on queue q: adds the queue's implicit dependencies, registers the event and
// hands it to the device's scheduler. Returns the command's event (retained once for the
// caller when want_event, else the caller gets nothing).
cl_event submit(cl_command_queue q, cl_command_type type, cl_uint num_waits,
                const cl_event* wait_list, Command cmd, bool barrier = false);
// Checks a wait list against the queue's context (CL_INVALID_EVENT_WAIT_LIST, CL_INVALID_CONTEXT).
void check_wait_list(cl_context ctx, cl_uint num, const cl_event* list);
// Wakes every device scheduler: an event they may be waiting on changed.
void wake_schedulers();
// The end of a command's started work (Command::start), from any thread but the enqueuing
// one's stack: with no error the event completes at once (its waiters wake) and the rest
// (callbacks, releases) runs on the scheduler thread; an error is reported and completed there.
// Never blocks.
void complete_in_flight(Command* c, std::exception_ptr error);
// Waits for e to complete; a command's event is helped along by running ready commands of its
// device on the calling thread while no other thread runs one. Returns the final status.
cl_int wait_helping(cl_event e);

// Releases an object reference, destroying the object at zero. Safe on any kind.
void release(cl_event e);
void release(cl_mem m);
void release(cl_kernel k);
void release(cl_command_queue q);
void release(cl_context c);
void release(cl_program p);
inline void retain(ObjectHeader* o) { o->refs.fetch_add(1, std::memory_order_relaxed); }

// Typed handle checks: the object, or throw the kind's CL_INVALID_* code.
cl_context get(cl_context c);
cl_command_queue get(cl_command_queue q);
cl_mem get(cl_mem m);
cl_program get(cl_program p);
cl_kernel get(cl_kernel k);
cl_event get(cl_event e);
cl_device_id get(cl_device_id d);
cl_platform_id get(cl_platform_id p);

// Runs body, turning thrown errors into the spec's codes: ClError's own, std::bad_alloc as
// CL_OUT_OF_HOST_MEMORY, hetmm::Error by its code.
cl_int code_of(const hetmm::Error& e);
template <class F>
cl_int guarded(F&& body) {
  try {
    body();
    return CL_SUCCESS;
  } catch (const ClError& e) {
    return e.code;
  } catch (const std::bad_alloc&) {
    return CL_OUT_OF_HOST_MEMORY;
  } catch (const hetmm::Error& e) {
    return code_of(e);
  } catch (...) {
    return CL_OUT_OF_RESOURCES;
  }
}
// For entry points that return an object and report through errcode_ret.
template <class T, class F>
T guarded_create(cl_int* errcode_ret, F&& body) {
  T result{};
  cl_int rc = guarded([&] { result = body(); });
  if (errcode_ret != nullptr) *errcode_ret = rc;
  return rc == CL_SUCCESS ? result : T{};
}

// clGet*Info answers.
cl_int info_bytes(std::size_t size, void* value, std::size_t* size_ret, const void* src,
                  std::size_t n);
template <class T>
cl_int info(std::size_t size, void* value, std::size_t* size_ret, const T& v) {
  return info_bytes(size, value, size_ret, &v, sizeof(T));
}
cl_int info_string(std::size_t size, void* value, std::size_t* size_ret, const std::string& s);
template <class T>
cl_int info_vector(std::size_t size, void* value, std::size_t* size_ret, const std::vector<T>& v) {
  return info_bytes(size, value, size_ret, v.data(), v.size() * sizeof(T));
}

}  // namespace hetmm::opencl
