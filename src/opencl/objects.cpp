// Layer opencl: includes every layer.
// The handle registry, reference counting, events and the clGet*Info helpers.
#include "opencl/objects.hpp"

#include <time.h>

#include <algorithm>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>

namespace hetmm::opencl {
namespace {

// Leaked on purpose: the loader never unloads a vendor library, and objects may be released
// from other libraries' static destructors after ours would have run.
struct Registry {
  std::shared_mutex mutex;
  std::unordered_map<const void*, Kind> live;
};
Registry& registry() {
  static auto* r = new Registry;
  return *r;
}

}  // namespace

namespace {
struct Storage {
  std::mutex mutex;
  std::unordered_map<std::size_t, void*> free;  // by object size: a list linked through word 1
};
Storage& storage() {
  static auto* s = new Storage;  // leaked: see Registry
  return *s;
}
}  // namespace

void* ObjectHeader::operator new(std::size_t n) {
  Storage& s = storage();
  {
    std::lock_guard lock(s.mutex);
    void*& head = s.free[n];
    if (head != nullptr) {
      void* p = head;
      head = static_cast<void**>(p)[1];
      return p;
    }
  }
  return ::operator new(std::max(n, 2 * sizeof(void*)));
}

void ObjectHeader::operator delete(void* p, std::size_t n) {
  if (p == nullptr) return;
  auto** words = static_cast<void**>(p);
  words[0] = const_cast<cl_icd_dispatch*>(&kDispatch);
  Storage& s = storage();
  std::lock_guard lock(s.mutex);
  void*& head = s.free[n];
  words[1] = head;
  head = p;
}

void register_object(ObjectHeader* o) {
  Registry& r = registry();
  std::unique_lock lock(r.mutex);
  r.live[o] = o->kind;
}

void unregister_object(ObjectHeader* o) {
  Registry& r = registry();
  std::unique_lock lock(r.mutex);
  r.live.erase(o);
}

ObjectHeader* find_object(const void* handle, Kind k) {
  if (handle == nullptr) return nullptr;
  Registry& r = registry();
  std::shared_lock lock(r.mutex);
  auto it = r.live.find(handle);
  if (it == r.live.end() || it->second != k) return nullptr;
  return static_cast<ObjectHeader*>(const_cast<void*>(handle));
}

std::uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

// ---- typed handle checks -----------------------------------------------------------------------
#define HETMM_CL_GETTER(T, K, CODE)                            \
  T get(T h) {                                                 \
    auto* o = find_object(h, Kind::K);                         \
    if (o == nullptr || o->refs.load() == 0) fail(CODE);       \
    return h;                                                  \
  }
HETMM_CL_GETTER(cl_context, context, CL_INVALID_CONTEXT)
HETMM_CL_GETTER(cl_command_queue, queue, CL_INVALID_COMMAND_QUEUE)
HETMM_CL_GETTER(cl_mem, mem, CL_INVALID_MEM_OBJECT)
HETMM_CL_GETTER(cl_program, program, CL_INVALID_PROGRAM)
HETMM_CL_GETTER(cl_kernel, kernel, CL_INVALID_KERNEL)
HETMM_CL_GETTER(cl_event, event, CL_INVALID_EVENT)
HETMM_CL_GETTER(cl_device_id, device, CL_INVALID_DEVICE)
HETMM_CL_GETTER(cl_platform_id, platform, CL_INVALID_PLATFORM)
#undef HETMM_CL_GETTER

cl_int code_of(const hetmm::Error& e) {
  switch (e.code()) {
    case Errc::invalid_argument: return CL_INVALID_VALUE;
    case Errc::out_of_memory: return CL_MEM_OBJECT_ALLOCATION_FAILURE;
    case Errc::fault:
    case Errc::permission:
    case Errc::not_found:
    case Errc::busy:
    case Errc::device_lost:
    case Errc::unsupported: return CL_OUT_OF_RESOURCES;
  }
  return CL_OUT_OF_RESOURCES;
}

// ---- release -----------------------------------------------------------------------------------
namespace {
bool drop(ObjectHeader* o) {
  cl_uint before = o->refs.fetch_sub(1, std::memory_order_acq_rel);
  if (before != 1) return false;
  unregister_object(o);
  return true;
}
}  // namespace

void release(cl_event e) {
  if (!drop(e)) return;
  cl_context ctx = e->context;
  cl_command_queue q = e->queue;
  delete e;
  if (q != nullptr) release(q);
  if (ctx != nullptr) release(ctx);
}

void release(cl_mem m) {
  if (!drop(m)) return;
  // Destructor callbacks run in reverse order of registration, before the memory goes.
  std::vector<std::pair<void(CL_CALLBACK*)(cl_mem, void*), void*>> callbacks;
  {
    std::lock_guard lock(m->mutex);
    callbacks.swap(m->destructor_callbacks);
  }
  for (auto it = callbacks.rbegin(); it != callbacks.rend(); ++it) it->first(m, it->second);
  if (m->owns && m->data != nullptr) runtime().deallocate(m->data);
  cl_mem parent = m->parent;
  cl_context ctx = m->context;
  delete m;
  if (parent != nullptr) release(parent);
  release(ctx);
}

void release(cl_kernel k) {
  if (!drop(k)) return;
  cl_program p = k->program;
  {
    std::lock_guard lock(p->mutex);
    --p->attached_kernels;
  }
  for (const KernelArg& a : k->args)
    if (a.kind == KernelArg::Kind::mem && a.mem != nullptr) release(a.mem);
  delete k;
  release(p);
}

void release(cl_program p) {
  if (!drop(p)) return;
  std::vector<std::pair<void(CL_CALLBACK*)(cl_program, void*), void*>> callbacks;
  callbacks.swap(p->release_callbacks);
  for (auto it = callbacks.rbegin(); it != callbacks.rend(); ++it) it->first(p, it->second);
  cl_context ctx = p->context;
  delete p;
  release(ctx);
}

void release(cl_command_queue q) {
  if (!drop(q)) return;
  cl_context ctx = q->context;
  // Commands retain their queue, so nothing is outstanding here; these are completed events.
  if (q->last != nullptr) release(q->last);
  if (q->barrier != nullptr) release(q->barrier);
  for (cl_event e : q->outstanding) release(e);
  delete q;
  release(ctx);
}

void release(cl_context c) {
  if (!drop(c)) return;
  std::vector<std::pair<void(CL_CALLBACK*)(cl_context, void*), void*>> callbacks;
  {
    std::lock_guard lock(c->mutex);
    callbacks.swap(c->destructor_callbacks);
  }
  for (auto it = callbacks.rbegin(); it != callbacks.rend(); ++it) it->first(c, it->second);
  delete c;
}

// ---- info answers ------------------------------------------------------------------------------
cl_int info_bytes(std::size_t size, void* value, std::size_t* size_ret, const void* src,
                  std::size_t n) {
  if (value != nullptr) {
    if (size < n) return CL_INVALID_VALUE;
    if (n != 0) std::memcpy(value, src, n);
  }
  if (size_ret != nullptr) *size_ret = n;
  return CL_SUCCESS;
}

cl_int info_string(std::size_t size, void* value, std::size_t* size_ret, const std::string& s) {
  return info_bytes(size, value, size_ret, s.c_str(), s.size() + 1);
}

}  // namespace hetmm::opencl

// ---- contexts and events -------------------------------------------------------------------------
void _cl_context::report(const std::string& message) {
  if (notify != nullptr) notify(message.c_str(), nullptr, 0, notify_data);
}

void _cl_event::set_status(cl_int s) {
  std::vector<Callback> due;
  if (!mark(s, &due)) return;
  run_callbacks(due, s);
  if (s <= CL_COMPLETE) hetmm::opencl::wake_schedulers();
}

void _cl_event::run_callbacks(const std::vector<Callback>& due, cl_int s) {
  for (const Callback& c : due) c.fn(this, s < 0 ? s : c.on, c.data);
}

bool _cl_event::mark(cl_int s, std::vector<Callback>* due) {
  {
    std::lock_guard lock(mutex);
    if (status <= CL_COMPLETE) return false;  // already final
    std::uint64_t t = hetmm::opencl::now_ns();
    if (s <= CL_SUBMITTED && t_submit == 0) t_submit = t;
    if (s <= CL_RUNNING && t_start == 0) t_start = t;
    if (s <= CL_COMPLETE) t_end = t;
    status = s;
    // A callback registered for a state fires once the event reaches it; an error reaches all.
    std::vector<Callback> keep;
    for (const Callback& c : callbacks) (s <= c.on ? *due : keep).push_back(c);
    callbacks.swap(keep);
  }
  done.notify_all();
  return true;
}

cl_int _cl_event::wait() {
  std::unique_lock lock(mutex);
  done.wait(lock, [&] { return status <= CL_COMPLETE; });
  return status;
}
