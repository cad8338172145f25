// Layer opencl: includes every layer.
// Command queues, their scheduler and events.
//
// Every command goes to its device's scheduler: one thread per device that runs, one at a time,
// the oldest command whose wait list is complete. An in-order queue makes each command wait for
// the one before it; an out-of-order queue only for its wait list and the last barrier. Only a
// failed event of the wait list fails a command: a kernel that faulted does not take down the
// commands queued after it in order (the queue keeps working, as the context does).
//
// Two shortcuts keep a launch's latency at two thread wake-ups (the worker's, then the waiting
// caller's), as a CPU runtime's: a command that is ready when enqueued, on an idle scheduler,
// may run on the enqueuing thread (Command::run_here: launches and blocking transfers), and a
// kernel is only started there: its worker completes the event (complete_in_flight) and the
// scheduler thread does the rest later (callbacks, releases) off the waiter's path. A thread
// that blocks on an event runs ready commands while no other thread runs one (help_until).
//
// States of a command's event: CL_QUEUED (enqueued, waiting) -> CL_SUBMITTED -> CL_RUNNING (the
// scheduler took it) -> CL_COMPLETE, or a negative status: the work failed (a kernel fault:
// CL_OUT_OF_RESOURCES, with the fault's message to the context's callback) or a wait-list event
// failed (CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST; the work is not run).
//
// Lock order: scheduler mutex -> event mutex; a queue's mutex is taken alone.
#include "opencl/objects.hpp"

#include <algorithm>
#include <deque>
#include <iterator>
#include <utility>
#include <thread>

namespace hetmm::opencl {

class Scheduler {
 public:
  // Runs ready commands on the calling thread (one that is about to block on `target`) while
  // the scheduler thread is not running one: an enqueue followed by clFinish then costs no
  // hand-off to the scheduler thread and back. Then waits for `target`.
  cl_int help_until(cl_event target);
  void add(Command* c) {
    {
      std::lock_guard lock(mutex_);
      pending_.push_back(c);
      ++generation_;
    }
    cv_.notify_one();
  }
  // An event completed: only commands waiting here can care (add() wakes for new ones).
  void wake() {
    {
      std::lock_guard lock(mutex_);
      if (pending_.empty()) return;
      ++generation_;
    }
    cv_.notify_one();
  }
  void start() { std::thread([this] { run(); }).detach(); }
  // Marks `c` running if it may run now on the calling thread: it is ready, nothing is
  // pending before it and no thread runs a command. The caller then executes it.
  bool take_now(Command* c);
  // A started command finished on another thread (complete_in_flight).
  void retire(Command* c, std::exception_ptr error);
  static void execute(Command* c);
  void done_running();

 private:
  // A command whose work finished elsewhere: with no error its event is complete already and
  // `due` are the callbacks that fell due; the rest (callbacks, releases, an error's report)
  // is left to the scheduler thread, or to a thread that waited for the event (help_until).
  struct Retired {
    Command* command;
    std::exception_ptr error;
    std::vector<_cl_event::Callback> due;
  };
  void run();
  static void finish_retired(Retired& r);
  Command* next_ready();
  Command* take_if_free();  // the oldest ready command when no thread runs one (marks it running)

  std::mutex mutex_;
  std::condition_variable cv_;  // the scheduler thread waits here (alone)
  std::deque<Command*> pending_;
  std::vector<Retired> retired_;
  // Lock order: mutex_ -> a command's event mutex (retire marks events under mutex_, so that
  // a thread woken by the mark finds its command in retired_).
  std::uint64_t generation_ = 0;
  bool running_ = false;  // a thread (the scheduler's or a helping one) is running a command
};

namespace {

// Leaked with the runtime: scheduler threads serve the process's whole life.
struct Schedulers {
  std::once_flag once;
  std::vector<Scheduler*> all;     // written once, inside call_once
  std::atomic<bool> ready{false};  // all is complete
};
Schedulers& schedulers() {
  static auto* s = new Schedulers;
  return *s;
}

Scheduler& scheduler_for(cl_device_id d) {
  Schedulers& s = schedulers();
  std::call_once(s.once, [&] {
    for (std::size_t i = 0; i < platform()->devices.size(); ++i) {
      auto* sch = new Scheduler;
      sch->start();
      s.all.push_back(sch);
    }
    s.ready.store(true, std::memory_order_release);
  });
  return *s.all.at(d->index);
}

// What a command's failed work means for its event; the message goes to the context.
cl_int status_of(std::exception_ptr error, cl_context context) {
  try {
    std::rethrow_exception(error);
  } catch (const ClError& e) {
    return e.code;
  } catch (const hetmm::Error& e) {
    context->report(e.what());
    return code_of(e) == CL_INVALID_VALUE ? CL_INVALID_OPERATION : CL_OUT_OF_RESOURCES;
  } catch (const std::bad_alloc&) {
    return CL_OUT_OF_HOST_MEMORY;
  } catch (...) {
    return CL_OUT_OF_RESOURCES;
  }
}

bool is_ready(const Command* c) {
  for (const auto* list : {&c->waits, &c->after})
    for (cl_event w : *list)
      if (!w->finished()) return false;
  return true;
}

void finish_command(Command* c, cl_int status) {
  cl_event e = c->event;
  e->set_status(status);
  if (cl_command_queue q = e->queue; q != nullptr) {
    std::vector<cl_event> drop;
    {
      std::lock_guard lock(q->mutex);
      auto it = std::find(q->outstanding.begin(), q->outstanding.end(), e);
      if (it != q->outstanding.end()) {
        q->outstanding.erase(it);
        drop.push_back(e);
      }
      if (q->last == e) drop.push_back(std::exchange(q->last, nullptr));
      if (q->barrier == e) drop.push_back(std::exchange(q->barrier, nullptr));
    }
    for (cl_event d : drop) release(d);
  }
  for (cl_event w : c->waits) release(w);
  for (cl_event w : c->after) release(w);
  for (cl_mem m : c->mems) release(m);
  for (cl_kernel k : c->kernels) release(k);
  delete c;
  release(e);
}

}  // namespace

Command* Scheduler::next_ready() {
  for (auto it = pending_.begin(); it != pending_.end(); ++it) {
    if (is_ready(*it)) {
      Command* c = *it;
      pending_.erase(it);
      return c;
    }
  }
  return nullptr;
}

Command* Scheduler::take_if_free() {
  if (running_) return nullptr;
  Command* c = next_ready();
  if (c != nullptr) running_ = true;
  return c;
}

bool Scheduler::take_now(Command* c) {
  std::lock_guard lock(mutex_);
  if (running_ || !pending_.empty() || !is_ready(c)) return false;
  running_ = true;
  return true;
}

void Scheduler::done_running() {
  bool wake;
  {
    std::lock_guard lock(mutex_);
    running_ = false;
    // Only the scheduler thread waits on cv_, and only pending commands need it now.
    wake = !pending_.empty();
    if (wake) ++generation_;
  }
  if (wake) cv_.notify_one();
}

void Scheduler::execute(Command* c) {
  cl_int status = CL_COMPLETE;
  for (cl_event w : c->waits)
    if (w->current_status() < 0) status = CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST;
  c->event->set_status(CL_SUBMITTED);
  c->event->set_status(CL_RUNNING);
  if (status == CL_COMPLETE && (c->work || c->start)) {
    try {
      if (c->start) {
        c->start(c);
        return;  // c belongs to its completion now (it may be gone already)
      }
      status = c->work();
    } catch (...) {
      status = status_of(std::current_exception(), c->event->context);
    }
  }
  finish_command(c, status);
}

void Scheduler::retire(Command* c, std::exception_ptr error) {
  bool notify = true;
  {
    std::lock_guard lock(mutex_);
    Retired r{c, error, {}};
    if (!error) {
      c->event->mark(CL_COMPLETE, &r.due);
      // A thread blocked on this very event takes the rest when it wakes: the scheduler
      // thread need not wake too (two more context switches per launch), unless callbacks
      // fell due (user code, not to run inside a wait) or commands are pending (they may wait
      // for this event).
      notify = !r.due.empty() || c->event->helpers == 0 || !pending_.empty();
    }
    retired_.push_back(std::move(r));
    if (notify) ++generation_;
  }
  if (notify) cv_.notify_one();
}

void Scheduler::finish_retired(Retired& r) {
  Command* c = r.command;
  if (r.error) {
    finish_command(c, status_of(r.error, c->event->context));
    return;
  }
  c->event->run_callbacks(r.due, CL_COMPLETE);
  finish_command(c, CL_COMPLETE);  // the event is final: only the releases are left
  wake_schedulers();               // other devices' commands may wait for this event
}

void Scheduler::run() {
  for (;;) {
    Command* c = nullptr;
    std::vector<Retired> retired;
    {
      std::unique_lock lock(mutex_);
      for (;;) {
        std::uint64_t seen = generation_;
        if (!retired_.empty()) {
          retired.swap(retired_);
          break;
        }
        c = take_if_free();
        if (c != nullptr) break;
        cv_.wait(lock, [&] { return generation_ != seen; });
      }
    }
    for (Retired& r : retired) finish_retired(r);
    if (c != nullptr) {
      execute(c);
      done_running();
    }
  }
}

cl_int Scheduler::help_until(cl_event target) {
  while (!target->finished()) {
    Command* c;
    {
      std::lock_guard lock(mutex_);
      c = take_if_free();
    }
    if (c == nullptr) break;
    execute(c);
    done_running();
  }
  {
    std::lock_guard lock(mutex_);
    ++target->helpers;
  }
  const cl_int status = target->wait();
  // Completed commands with nothing but releases left: done here, not by waking the
  // scheduler thread.
  std::vector<Retired> quiet;
  {
    std::lock_guard lock(mutex_);
    --target->helpers;
    auto loud = std::stable_partition(retired_.begin(), retired_.end(), [](const Retired& r) {
      return r.error || !r.due.empty();
    });
    std::move(loud, retired_.end(), std::back_inserter(quiet));
    retired_.erase(loud, retired_.end());
  }
  for (Retired& r : quiet) finish_retired(r);
  return status;
}

cl_int wait_helping(cl_event e) {
  if (e->queue != nullptr && schedulers().ready.load(std::memory_order_acquire))
    return scheduler_for(e->queue->device).help_until(e);
  return e->wait();
}

void complete_in_flight(Command* c, std::exception_ptr error) {
  scheduler_for(c->event->queue->device).retire(c, std::move(error));
}

void wake_schedulers() {
  Schedulers& s = schedulers();
  // Before the first queue there is nothing to wake (and call_once must not run from here).
  if (!s.ready.load(std::memory_order_acquire)) return;
  for (Scheduler* sch : s.all) sch->wake();
}

void check_wait_list(cl_context ctx, cl_uint num, const cl_event* list) {
  if ((num == 0) != (list == nullptr)) fail(CL_INVALID_EVENT_WAIT_LIST);
  for (cl_uint i = 0; i < num; ++i) {
    if (find_object(list[i], Kind::event) == nullptr) fail(CL_INVALID_EVENT_WAIT_LIST);
    if (list[i]->context != ctx) fail(CL_INVALID_CONTEXT);
  }
}

cl_event submit(cl_command_queue q, cl_command_type type, cl_uint num_waits,
                const cl_event* wait_list, Command cmd, bool barrier) {
  auto* e = new _cl_event;
  e->context = q->context;
  retain(q->context);
  e->queue = q;
  retain(q);
  e->type = type;
  e->profiling = (q->props & CL_QUEUE_PROFILING_ENABLE) != 0;
  e->t_queued = now_ns();
  register_object(e);

  auto* c = new Command(std::move(cmd));
  c->event = e;
  retain(e);
  for (cl_uint i = 0; i < num_waits; ++i) {
    retain(wait_list[i]);
    c->waits.push_back(wait_list[i]);
  }
  const bool sync_all = (type == CL_COMMAND_MARKER || type == CL_COMMAND_BARRIER) && num_waits == 0;
  {
    std::lock_guard lock(q->mutex);
    auto wait_on = [&](cl_event w) {
      retain(w);
      c->after.push_back(w);
    };
    if ((q->props & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE) == 0) {
      if (q->last != nullptr) {
        wait_on(q->last);
        release(q->last);  // the queue's own reference; the command holds one now
      }
      retain(e);
      q->last = e;
    } else {
      if (q->barrier != nullptr) wait_on(q->barrier);
      if (sync_all)
        for (cl_event o : q->outstanding) wait_on(o);
      if (barrier) {
        if (q->barrier != nullptr) release(q->barrier);
        retain(e);
        q->barrier = e;
      }
    }
    retain(e);
    q->outstanding.push_back(e);
  }
  Scheduler& s = scheduler_for(q->device);
  if (c->run_here && s.take_now(c)) {
    Scheduler::execute(c);
    s.done_running();
  } else {
    s.add(c);
  }
  return e;
}

}  // namespace hetmm::opencl

using namespace hetmm::opencl;

namespace {

cl_command_queue make_queue(cl_context ctx, cl_device_id dev, cl_command_queue_properties props,
                            std::vector<cl_queue_properties> given) {
  get(ctx);
  get(dev);
  if (std::find(ctx->devices.begin(), ctx->devices.end(), dev) == ctx->devices.end())
    fail(CL_INVALID_DEVICE);
  constexpr cl_command_queue_properties known =
      CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE | CL_QUEUE_PROFILING_ENABLE | CL_QUEUE_ON_DEVICE |
      CL_QUEUE_ON_DEVICE_DEFAULT;
  if ((props & ~known) != 0) fail(CL_INVALID_VALUE);
  if ((props & (CL_QUEUE_ON_DEVICE | CL_QUEUE_ON_DEVICE_DEFAULT)) != 0)
    fail(CL_INVALID_QUEUE_PROPERTIES);  // no device-side enqueue
  auto* q = new _cl_command_queue;
  q->context = ctx;
  retain(ctx);
  q->device = dev;
  q->props = props;
  q->properties = std::move(given);
  register_object(q);
  return q;
}

void wait_all(cl_command_queue q) {
  std::vector<cl_event> snapshot;
  {
    std::lock_guard lock(q->mutex);
    for (cl_event e : q->outstanding) {
      retain(e);
      snapshot.push_back(e);
    }
  }
  for (cl_event e : snapshot) {
    wait_helping(e);
    release(e);
  }
}

// Hands the event to the caller or drops it.
void give_event(cl_event e, cl_event* out) {
  if (out != nullptr) *out = e;
  else release(e);
}

}  // namespace

CL_API_ENTRY cl_command_queue CL_API_CALL clCreateCommandQueue(cl_context ctx, cl_device_id dev,
                                                               cl_command_queue_properties props,
                                                               cl_int* errcode_ret) {
  return guarded_create<cl_command_queue>(errcode_ret, [&] { return make_queue(ctx, dev, props, {}); });
}

CL_API_ENTRY cl_command_queue CL_API_CALL clCreateCommandQueueWithProperties(
    cl_context ctx, cl_device_id dev, const cl_queue_properties* properties, cl_int* errcode_ret) {
  return guarded_create<cl_command_queue>(errcode_ret, [&] {
    cl_command_queue_properties props = 0;
    std::vector<cl_queue_properties> given;
    if (properties != nullptr) {
      for (const cl_queue_properties* p = properties; *p != 0; p += 2) {
        switch (p[0]) {
          case CL_QUEUE_PROPERTIES: props = static_cast<cl_command_queue_properties>(p[1]); break;
          case CL_QUEUE_SIZE: fail(CL_INVALID_QUEUE_PROPERTIES);  // on-device queues only
          default: fail(CL_INVALID_VALUE);
        }
        given.push_back(p[0]);
        given.push_back(p[1]);
      }
      given.push_back(0);
    }
    return make_queue(ctx, dev, props, std::move(given));
  });
}

CL_API_ENTRY cl_int CL_API_CALL clRetainCommandQueue(cl_command_queue q) {
  return guarded([&] { retain(get(q)); });
}

CL_API_ENTRY cl_int CL_API_CALL clReleaseCommandQueue(cl_command_queue q) {
  return guarded([&] { release(get(q)); });
}

CL_API_ENTRY cl_int CL_API_CALL clGetCommandQueueInfo(cl_command_queue q, cl_command_queue_info param,
                                                      size_t size, void* value, size_t* size_ret) {
  return guarded([&] {
    get(q);
    cl_int rc;
    switch (param) {
      case CL_QUEUE_CONTEXT: rc = info(size, value, size_ret, q->context); break;
      case CL_QUEUE_DEVICE: rc = info(size, value, size_ret, q->device); break;
      case CL_QUEUE_REFERENCE_COUNT: rc = info<cl_uint>(size, value, size_ret, q->refs.load()); break;
      case CL_QUEUE_PROPERTIES: rc = info(size, value, size_ret, q->props); break;
      case CL_QUEUE_PROPERTIES_ARRAY: rc = info_vector(size, value, size_ret, q->properties); break;
      case CL_QUEUE_DEVICE_DEFAULT:
        rc = info<cl_command_queue>(size, value, size_ret, nullptr);
        break;
      case CL_QUEUE_SIZE: rc = CL_INVALID_COMMAND_QUEUE; break;  // not an on-device queue
      default: rc = CL_INVALID_VALUE;
    }
    if (rc != CL_SUCCESS) fail(rc);
  });
}

CL_API_ENTRY cl_int CL_API_CALL clSetCommandQueueProperty(cl_command_queue q,
                                                          cl_command_queue_properties, cl_bool,
                                                          cl_command_queue_properties*) {
  return guarded([&] {
    get(q);
    fail(CL_INVALID_OPERATION);  // removed in OpenCL 1.1: properties are fixed at creation
  });
}

CL_API_ENTRY cl_int CL_API_CALL clSetDefaultDeviceCommandQueue(cl_context ctx, cl_device_id dev,
                                                               cl_command_queue q) {
  return guarded([&] {
    get(ctx);
    get(dev);
    get(q);
    fail(CL_INVALID_OPERATION);  // no on-device queues
  });
}

// Commands are handed to the scheduler when enqueued: flush has nothing left to do.
CL_API_ENTRY cl_int CL_API_CALL clFlush(cl_command_queue q) {
  return guarded([&] { get(q); });
}

CL_API_ENTRY cl_int CL_API_CALL clFinish(cl_command_queue q) {
  return guarded([&] { wait_all(get(q)); });
}

// ---- markers and barriers ----------------------------------------------------------------------
CL_API_ENTRY cl_int CL_API_CALL clEnqueueMarkerWithWaitList(cl_command_queue q, cl_uint num,
                                                            const cl_event* list, cl_event* event) {
  return guarded([&] {
    get(q);
    check_wait_list(q->context, num, list);
    give_event(submit(q, CL_COMMAND_MARKER, num, list, Command{}), event);
  });
}

CL_API_ENTRY cl_int CL_API_CALL clEnqueueBarrierWithWaitList(cl_command_queue q, cl_uint num,
                                                             const cl_event* list, cl_event* event) {
  return guarded([&] {
    get(q);
    check_wait_list(q->context, num, list);
    give_event(submit(q, CL_COMMAND_BARRIER, num, list, Command{}, true), event);
  });
}

CL_API_ENTRY cl_int CL_API_CALL clEnqueueMarker(cl_command_queue q, cl_event* event) {
  if (event == nullptr) return CL_INVALID_VALUE;
  return clEnqueueMarkerWithWaitList(q, 0, nullptr, event);
}

CL_API_ENTRY cl_int CL_API_CALL clEnqueueBarrier(cl_command_queue q) {
  return clEnqueueBarrierWithWaitList(q, 0, nullptr, nullptr);
}

CL_API_ENTRY cl_int CL_API_CALL clEnqueueWaitForEvents(cl_command_queue q, cl_uint num,
                                                       const cl_event* list) {
  return guarded([&] {
    get(q);
    if (num == 0 || list == nullptr) fail(CL_INVALID_VALUE);
    for (cl_uint i = 0; i < num; ++i) {
      if (find_object(list[i], Kind::event) == nullptr) fail(CL_INVALID_EVENT);
      if (list[i]->context != q->context) fail(CL_INVALID_CONTEXT);
    }
    give_event(submit(q, CL_COMMAND_BARRIER, num, list, Command{}, true), nullptr);
  });
}

// ---- events ------------------------------------------------------------------------------------
CL_API_ENTRY cl_int CL_API_CALL clWaitForEvents(cl_uint num, const cl_event* list) {
  return guarded([&] {
    if (num == 0 || list == nullptr) fail(CL_INVALID_VALUE);
    for (cl_uint i = 0; i < num; ++i) {
      get(list[i]);
      if (list[i]->context != list[0]->context) fail(CL_INVALID_CONTEXT);
    }
    bool failed = false;
    for (cl_uint i = 0; i < num; ++i) failed |= wait_helping(list[i]) < 0;
    if (failed) fail(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST);
  });
}

CL_API_ENTRY cl_int CL_API_CALL clRetainEvent(cl_event e) {
  return guarded([&] { retain(get(e)); });
}

CL_API_ENTRY cl_int CL_API_CALL clReleaseEvent(cl_event e) {
  return guarded([&] { release(get(e)); });
}

CL_API_ENTRY cl_int CL_API_CALL clGetEventInfo(cl_event e, cl_event_info param, size_t size,
                                               void* value, size_t* size_ret) {
  return guarded([&] {
    get(e);
    cl_int rc;
    switch (param) {
      case CL_EVENT_COMMAND_QUEUE: rc = info(size, value, size_ret, e->queue); break;
      case CL_EVENT_CONTEXT: rc = info(size, value, size_ret, e->context); break;
      case CL_EVENT_COMMAND_TYPE: rc = info(size, value, size_ret, e->type); break;
      case CL_EVENT_COMMAND_EXECUTION_STATUS:
        rc = info<cl_int>(size, value, size_ret, e->current_status());
        break;
      case CL_EVENT_REFERENCE_COUNT: rc = info<cl_uint>(size, value, size_ret, e->refs.load()); break;
      default: rc = CL_INVALID_VALUE;
    }
    if (rc != CL_SUCCESS) fail(rc);
  });
}

CL_API_ENTRY cl_int CL_API_CALL clGetEventProfilingInfo(cl_event e, cl_profiling_info param,
                                                        size_t size, void* value, size_t* size_ret) {
  return guarded([&] {
    get(e);
    std::uint64_t t;
    {
      std::lock_guard lock(e->mutex);
      if (!e->profiling || e->queue == nullptr || e->status != CL_COMPLETE)
        fail(CL_PROFILING_INFO_NOT_AVAILABLE);
      switch (param) {
        case CL_PROFILING_COMMAND_QUEUED: t = e->t_queued; break;
        case CL_PROFILING_COMMAND_SUBMIT: t = e->t_submit; break;
        case CL_PROFILING_COMMAND_START: t = e->t_start; break;
        case CL_PROFILING_COMMAND_END:
        case CL_PROFILING_COMMAND_COMPLETE: t = e->t_end; break;
        default: fail(CL_INVALID_VALUE);
      }
    }
    cl_int rc = info<cl_ulong>(size, value, size_ret, t);
    if (rc != CL_SUCCESS) fail(rc);
  });
}

CL_API_ENTRY cl_int CL_API_CALL clSetEventCallback(cl_event e, cl_int type,
                                                   void(CL_CALLBACK* fn)(cl_event, cl_int, void*),
                                                   void* data) {
  return guarded([&] {
    get(e);
    if (fn == nullptr || (type != CL_COMPLETE && type != CL_RUNNING && type != CL_SUBMITTED))
      fail(CL_INVALID_VALUE);
    cl_int now;
    {
      std::lock_guard lock(e->mutex);
      now = e->status;
      if (now > type) {
        e->callbacks.push_back({type, fn, data});
        return;
      }
    }
    fn(e, now < 0 ? now : type, data);  // already there: call it now
  });
}

CL_API_ENTRY cl_event CL_API_CALL clCreateUserEvent(cl_context ctx, cl_int* errcode_ret) {
  return guarded_create<cl_event>(errcode_ret, [&] {
    get(ctx);
    auto* e = new _cl_event;
    e->context = ctx;
    retain(ctx);
    e->type = CL_COMMAND_USER;
    e->status = CL_SUBMITTED;
    e->t_queued = e->t_submit = now_ns();
    register_object(e);
    return e;
  });
}

CL_API_ENTRY cl_int CL_API_CALL clSetUserEventStatus(cl_event e, cl_int status) {
  return guarded([&] {
    get(e);
    if (e->type != CL_COMMAND_USER || e->queue != nullptr) fail(CL_INVALID_EVENT);
    if (status > CL_COMPLETE) fail(CL_INVALID_VALUE);
    {
      std::lock_guard lock(e->mutex);
      if (e->status <= CL_COMPLETE) fail(CL_INVALID_OPERATION);  // set once only
    }
    e->set_status(status);
  });
}
