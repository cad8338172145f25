// Contexts, command queues and events: properties, destructor callbacks, in-order and
// out-of-order execution, user events, event callbacks, markers, barriers and profiling.
#include "cl_test_support.hpp"

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

namespace cltest {
namespace {

class Contexts : public ClTest {};

TEST_F(Contexts, PropertiesAndBadProperties) {
  const cl_context_properties props[] = {
      CL_CONTEXT_PLATFORM, reinterpret_cast<cl_context_properties>(platform_), 0};
  cl_int rc = CL_SUCCESS;
  Context c(clCreateContext(props, 1, &device_, nullptr, nullptr, &rc));
  ASSERT_OK(rc);
  cl_context_properties got[3] = {};
  size_t n = 0;
  ASSERT_OK(clGetContextInfo(c, CL_CONTEXT_PROPERTIES, sizeof got, got, &n));
  EXPECT_EQ(n, sizeof props);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(got[i], props[i]);
  cl_uint num = 0;
  ASSERT_OK(clGetContextInfo(c, CL_CONTEXT_NUM_DEVICES, sizeof num, &num, nullptr));
  EXPECT_EQ(num, 1u);
  cl_device_id dev = nullptr;
  ASSERT_OK(clGetContextInfo(c, CL_CONTEXT_DEVICES, sizeof dev, &dev, nullptr));
  EXPECT_EQ(dev, device_);
  // Without properties, the list is empty.
  ASSERT_OK(clGetContextInfo(ctx_, CL_CONTEXT_PROPERTIES, 0, nullptr, &n));
  EXPECT_EQ(n, 0u);

  const cl_context_properties unknown[] = {
      CL_CONTEXT_PLATFORM, reinterpret_cast<cl_context_properties>(platform_), 0x7777, 1, 0};
  EXPECT_EQ(clCreateContext(unknown, 1, &device_, nullptr, nullptr, &rc), nullptr);
  EXPECT_CL(CL_INVALID_PROPERTY, rc);
  const cl_context_properties twice[] = {
      CL_CONTEXT_PLATFORM, reinterpret_cast<cl_context_properties>(platform_),
      CL_CONTEXT_PLATFORM, reinterpret_cast<cl_context_properties>(platform_), 0};
  EXPECT_EQ(clCreateContext(twice, 1, &device_, nullptr, nullptr, &rc), nullptr);
  EXPECT_CL(CL_INVALID_PROPERTY, rc);
  const cl_context_properties wrong_platform[] = {
      CL_CONTEXT_PLATFORM, reinterpret_cast<cl_context_properties>(device_), 0};
  EXPECT_EQ(clCreateContext(wrong_platform, 1, &device_, nullptr, nullptr, &rc), nullptr);
  EXPECT_CL(CL_INVALID_PLATFORM, rc);
  int data = 0;
  EXPECT_EQ(clCreateContext(nullptr, 1, &device_, nullptr, &data, &rc), nullptr);
  EXPECT_CL(CL_INVALID_VALUE, rc) << "user data without a callback";
  EXPECT_EQ(clCreateContext(nullptr, 0, &device_, nullptr, nullptr, &rc), nullptr);
  EXPECT_CL(CL_INVALID_VALUE, rc);

  Context by_type(clCreateContextFromType(props, CL_DEVICE_TYPE_ALL, nullptr, nullptr, &rc));
  ASSERT_OK(rc);
  cl_uint all = 0;
  ASSERT_OK(clGetDeviceIDs(platform_, CL_DEVICE_TYPE_ALL, 0, nullptr, &all));
  ASSERT_OK(clGetContextInfo(by_type, CL_CONTEXT_NUM_DEVICES, sizeof num, &num, nullptr));
  EXPECT_EQ(num, all);
}

TEST_F(Contexts, DestructorCallbacksRunInReverseOrderWhenTheLastObjectGoes) {
  struct Log {
    std::mutex mutex;
    std::vector<int> order;
  } log;
  struct Tag {
    Log* log;
    int id;
  } tags[3] = {{&log, 1}, {&log, 2}, {&log, 3}};
  auto cb = [](cl_context, void* data) {
    auto* t = static_cast<Tag*>(data);
    std::lock_guard lock(t->log->mutex);
    t->log->order.push_back(t->id);
  };
  cl_int rc = CL_SUCCESS;
  Context c(clCreateContext(nullptr, 1, &device_, nullptr, nullptr, &rc));
  ASSERT_OK(rc);
  for (Tag& t : tags) ASSERT_OK(clSetContextDestructorCallback(c, cb, &t));
  EXPECT_CL(CL_INVALID_VALUE, clSetContextDestructorCallback(c, nullptr, nullptr));
  Queue q(clCreateCommandQueueWithProperties(c, device_, nullptr, &rc));
  ASSERT_OK(rc);
  Mem m(clCreateBuffer(c, CL_MEM_READ_WRITE, 64, nullptr, &rc));
  ASSERT_OK(rc);
  c.reset();  // the queue and the buffer still hold the context
  {
    std::lock_guard lock(log.mutex);
    EXPECT_TRUE(log.order.empty());
  }
  q.reset();
  {
    std::lock_guard lock(log.mutex);
    EXPECT_TRUE(log.order.empty());
  }
  m.reset();
  std::lock_guard lock(log.mutex);
  EXPECT_EQ(log.order, (std::vector<int>{3, 2, 1}));
}

class Queues : public ClTest {};

TEST_F(Queues, CreationAndInfo) {
  cl_int rc = CL_SUCCESS;
  const cl_queue_properties props[] = {
      CL_QUEUE_PROPERTIES, CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE | CL_QUEUE_PROFILING_ENABLE, 0};
  Queue q(clCreateCommandQueueWithProperties(ctx_, device_, props, &rc));
  ASSERT_OK(rc);
  cl_command_queue_properties p = 0;
  ASSERT_OK(clGetCommandQueueInfo(q, CL_QUEUE_PROPERTIES, sizeof p, &p, nullptr));
  EXPECT_EQ(p, static_cast<cl_command_queue_properties>(CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE |
                                                        CL_QUEUE_PROFILING_ENABLE));
  cl_queue_properties array[3] = {};
  size_t n = 0;
  ASSERT_OK(clGetCommandQueueInfo(q, CL_QUEUE_PROPERTIES_ARRAY, sizeof array, array, &n));
  EXPECT_EQ(n, sizeof props);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(array[i], props[i]);
  cl_context c = nullptr;
  cl_device_id d = nullptr;
  ASSERT_OK(clGetCommandQueueInfo(q, CL_QUEUE_CONTEXT, sizeof c, &c, nullptr));
  ASSERT_OK(clGetCommandQueueInfo(q, CL_QUEUE_DEVICE, sizeof d, &d, nullptr));
  EXPECT_EQ(c, ctx_.get());
  EXPECT_EQ(d, device_);
  cl_uint refs = 0;
  ASSERT_OK(clRetainCommandQueue(q));
  ASSERT_OK(clGetCommandQueueInfo(q, CL_QUEUE_REFERENCE_COUNT, sizeof refs, &refs, nullptr));
  EXPECT_EQ(refs, 2u);
  ASSERT_OK(clReleaseCommandQueue(q));

  // The 1.x entry point.
  Queue old(clCreateCommandQueue(ctx_, device_, CL_QUEUE_PROFILING_ENABLE, &rc));
  ASSERT_OK(rc);
  ASSERT_OK(clGetCommandQueueInfo(old, CL_QUEUE_PROPERTIES, sizeof p, &p, nullptr));
  EXPECT_EQ(p, static_cast<cl_command_queue_properties>(CL_QUEUE_PROFILING_ENABLE));

  const cl_queue_properties bad_key[] = {0x7777, 1, 0};
  EXPECT_EQ(clCreateCommandQueueWithProperties(ctx_, device_, bad_key, &rc), nullptr);
  EXPECT_CL(CL_INVALID_VALUE, rc);
  const cl_queue_properties on_device[] = {
      CL_QUEUE_PROPERTIES, CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE | CL_QUEUE_ON_DEVICE, 0};
  EXPECT_EQ(clCreateCommandQueueWithProperties(ctx_, device_, on_device, &rc), nullptr);
  EXPECT_CL(CL_INVALID_QUEUE_PROPERTIES, rc);
  EXPECT_EQ(clCreateCommandQueue(ctx_, device_, cl_command_queue_properties{1} << 20, &rc),
            nullptr);
  EXPECT_CL(CL_INVALID_VALUE, rc);
}

TEST_F(Queues, InOrderQueueRunsCommandsInOrder) {
  Kernel set = MakeKernel(kCommonSource, "set_value");
  Kernel add = MakeKernel(kCommonSource, "add_value");
  ASSERT_TRUE(set && add);
  Mem buf = MakeBuffer(CL_MEM_READ_WRITE, 64 * sizeof(cl_int));
  ASSERT_OK(clSetKernelArg(set, 0, sizeof(cl_mem), buf.ptr()));
  ASSERT_OK(clSetKernelArg(add, 0, sizeof(cl_mem), buf.ptr()));
  size_t n = 64;
  // set 1, +2, set 10, +3, -1, set 4, +5: 9 only in this order.
  const cl_int steps[][2] = {{0, 1}, {1, 2}, {0, 10}, {1, 3}, {1, -1}, {0, 4}, {1, 5}};
  for (const auto& s : steps) {
    cl_kernel k = s[0] == 0 ? set.get() : add.get();
    ASSERT_OK(clSetKernelArg(k, 1, sizeof(cl_int), &s[1]));
    ASSERT_OK(clEnqueueNDRangeKernel(queue_, k, 1, nullptr, &n, nullptr, 0, nullptr, nullptr));
  }
  ASSERT_OK(clFinish(queue_));
  cl_int got[64];
  ASSERT_OK(clEnqueueReadBuffer(queue_, buf, CL_TRUE, 0, sizeof got, got, 0, nullptr, nullptr));
  for (cl_int g : got) EXPECT_EQ(g, 9);
}

TEST_F(Queues, ClFinishWaitsForEverything) {
  Kernel add = MakeKernel(kCommonSource, "add_value");
  ASSERT_TRUE(add);
  Mem buf = MakeBuffer(CL_MEM_READ_WRITE, 1024 * sizeof(cl_int));
  cl_int zero = 0, one = 1;
  ASSERT_OK(clEnqueueFillBuffer(queue_, buf, &zero, sizeof zero, 0, 1024 * sizeof(cl_int), 0,
                                nullptr, nullptr));
  ASSERT_OK(clSetKernelArg(add, 0, sizeof(cl_mem), buf.ptr()));
  ASSERT_OK(clSetKernelArg(add, 1, sizeof one, &one));
  std::vector<Event> events(20);
  size_t n = 1024;
  for (Event& e : events)
    ASSERT_OK(clEnqueueNDRangeKernel(queue_, add, 1, nullptr, &n, nullptr, 0, nullptr, e.out()));
  ASSERT_OK(clFlush(queue_));
  ASSERT_OK(clFinish(queue_));
  for (Event& e : events) EXPECT_CL(CL_COMPLETE, EventStatus(e));
  cl_int rc = CL_SUCCESS;
  auto* p = static_cast<cl_int*>(clEnqueueMapBuffer(queue_, buf, CL_TRUE, CL_MAP_READ, 0,
                                                    1024 * sizeof(cl_int), 0, nullptr, nullptr,
                                                    &rc));
  ASSERT_OK(rc);
  for (int i = 0; i < 1024; ++i) ASSERT_EQ(p[i], 20);
  ASSERT_OK(clEnqueueUnmapMemObject(queue_, buf, p, 0, nullptr, nullptr));
}

// Kernels complete on the device's workers and the rest of a command on whichever thread is
// free: threads that launch and wait every way at once (clFinish, clWaitForEvents, a blocking
// read, polling the event while a callback counts) must each see their own work done.
TEST_F(Queues, ThreadsLaunchingAndWaitingEveryWayAtOnce) {
  Program program = Build(kCommonSource);
  ASSERT_TRUE(program);
  constexpr int kThreads = 4, kRounds = 120, kItems = 64;
  std::atomic<int> callbacks{0};
  std::vector<std::string> failures(kThreads);
  auto body = [&](int t) {
    std::string& failure = failures[t];
    cl_int rc = CL_SUCCESS;
    Queue q(clCreateCommandQueueWithProperties(ctx_, device_, nullptr, &rc));
    Kernel add(clCreateKernel(program, "add_value", &rc));
    Mem buf(clCreateBuffer(ctx_, CL_MEM_READ_WRITE, kItems * sizeof(cl_int), nullptr, &rc));
    cl_int zero = 0, one = 1;
    if (clEnqueueFillBuffer(q, buf, &zero, sizeof zero, 0, kItems * sizeof(cl_int), 0, nullptr,
                            nullptr) != CL_SUCCESS ||
        clSetKernelArg(add, 0, sizeof(cl_mem), buf.ptr()) != CL_SUCCESS ||
        clSetKernelArg(add, 1, sizeof one, &one) != CL_SUCCESS) {
      failure = "set-up failed";
      return;
    }
    const size_t n = kItems;
    for (int i = 0; i < kRounds && failure.empty(); ++i) {
      Event e;
      if (clEnqueueNDRangeKernel(q, add, 1, nullptr, &n, nullptr, 0, nullptr, e.out()) !=
          CL_SUCCESS) {
        failure = "enqueue failed";
        break;
      }
      cl_event ev = e.get();
      switch (i % 4) {
        case 0: clFinish(q); break;
        case 1: clWaitForEvents(1, &ev); break;
        case 2: {
          cl_int got[kItems];
          clEnqueueReadBuffer(q, buf, CL_TRUE, 0, sizeof got, got, 0, nullptr, nullptr);
          for (cl_int g : got)
            if (g != i + 1) failure = "round " + std::to_string(i) + ": read " + std::to_string(g);
          break;
        }
        case 3: {
          clSetEventCallback(ev, CL_COMPLETE, [](cl_event, cl_int, void* c) {
            static_cast<std::atomic<int>*>(c)->fetch_add(1);
          }, &callbacks);
          cl_int status = CL_QUEUED;
          while (status > CL_COMPLETE)
            clGetEventInfo(ev, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof status, &status, nullptr);
          break;
        }
      }
      if (failure.empty() && EventStatus(ev) != CL_COMPLETE)
        failure = "round " + std::to_string(i) + ": event not complete after its wait";
    }
    cl_int got[kItems];
    clEnqueueReadBuffer(q, buf, CL_TRUE, 0, sizeof got, got, 0, nullptr, nullptr);
    for (cl_int g : got)
      if (failure.empty() && g != kRounds) failure = "final value " + std::to_string(g);
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(body, t);
  for (std::thread& t : threads) t.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(failures[t], "") << "thread " << t;
  // Callbacks run asynchronously: every one of them comes, if not before the waits end.
  for (int spins = 0; callbacks.load() < kThreads * kRounds / 4 && spins < 60000; ++spins)
    usleep(1000);
  EXPECT_EQ(callbacks.load(), kThreads * kRounds / 4);
}

class Events : public ClTest {
 protected:
  void SetUp() override {
    ClTest::SetUp();
    if (HasFatalFailure()) return;
    set_ = MakeKernel(kCommonSource, "set_value");
    ASSERT_TRUE(set_);
    buf_ = MakeBuffer(CL_MEM_READ_WRITE, 16 * sizeof(cl_int));
    cl_int zero = 0;
    ASSERT_OK(clEnqueueFillBuffer(queue_, buf_, &zero, sizeof zero, 0, 16 * sizeof(cl_int), 0,
                                  nullptr, nullptr));
    ASSERT_OK(clFinish(queue_));
    ASSERT_OK(clSetKernelArg(set_, 0, sizeof(cl_mem), buf_.ptr()));
  }
  // Enqueues set_value(v) on q after the events in the wait list.
  Event EnqueueSet(cl_command_queue q, cl_int v, cl_uint num = 0, const cl_event* list = nullptr) {
    Event e;
    EXPECT_OK(clSetKernelArg(set_, 1, sizeof v, &v));
    size_t n = 16;
    EXPECT_OK(clEnqueueNDRangeKernel(q, set_, 1, nullptr, &n, nullptr, num, list, e.out()));
    return e;
  }
  // The buffer's first int, read on a queue of its own (not ordered after anything).
  cl_int Peek() {
    cl_int rc = CL_SUCCESS;
    Queue q(clCreateCommandQueueWithProperties(ctx_, device_, nullptr, &rc));
    EXPECT_OK(rc);
    cl_int v = -1;
    EXPECT_OK(clEnqueueReadBuffer(q, buf_, CL_TRUE, 0, sizeof v, &v, 0, nullptr, nullptr));
    return v;
  }
  Kernel set_;
  Mem buf_;
};

TEST_F(Events, UserEventGatesACommand) {
  cl_int rc = CL_SUCCESS;
  Event user(clCreateUserEvent(ctx_, &rc));
  ASSERT_OK(rc);
  EXPECT_CL(CL_SUBMITTED, EventStatus(user));
  Event k = EnqueueSet(queue_, 7, 1, user.ptr());
  // Behind an unset user event the kernel cannot have run.
  EXPECT_GT(EventStatus(k), CL_COMPLETE);
  EXPECT_EQ(Peek(), 0);
  EXPECT_CL(CL_INVALID_VALUE, clSetUserEventStatus(user, CL_RUNNING));
  ASSERT_OK(clSetUserEventStatus(user, CL_COMPLETE));
  EXPECT_CL(CL_INVALID_OPERATION, clSetUserEventStatus(user, CL_COMPLETE)) << "set twice";
  ASSERT_OK(clWaitForEvents(1, k.ptr()));
  EXPECT_EQ(Peek(), 7);
  cl_command_type type = 0;
  ASSERT_OK(clGetEventInfo(user, CL_EVENT_COMMAND_TYPE, sizeof type, &type, nullptr));
  EXPECT_EQ(type, static_cast<cl_command_type>(CL_COMMAND_USER));
  cl_command_queue q = reinterpret_cast<cl_command_queue>(1);
  ASSERT_OK(clGetEventInfo(user, CL_EVENT_COMMAND_QUEUE, sizeof q, &q, nullptr));
  EXPECT_EQ(q, nullptr);
  ASSERT_OK(clGetEventInfo(k, CL_EVENT_COMMAND_QUEUE, sizeof q, &q, nullptr));
  EXPECT_EQ(q, queue_.get());
}

TEST_F(Events, FailedUserEventFailsItsDependants) {
  cl_int rc = CL_SUCCESS;
  Event user(clCreateUserEvent(ctx_, &rc));
  ASSERT_OK(rc);
  Event k = EnqueueSet(queue_, 9, 1, user.ptr());
  ASSERT_OK(clSetUserEventStatus(user, -1234));
  EXPECT_CL(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST, clWaitForEvents(1, k.ptr()));
  EXPECT_CL(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST, EventStatus(k));
  EXPECT_EQ(EventStatus(user), -1234);
  EXPECT_EQ(Peek(), 0) << "the kernel ran although its wait list failed";
  // The queue goes on.
  Event next = EnqueueSet(queue_, 3);
  EXPECT_OK(clWaitForEvents(1, next.ptr()));
  EXPECT_EQ(Peek(), 3);
}

struct CallbackLog {
  std::mutex mutex;
  std::vector<std::pair<cl_int, cl_int>> calls;  // (registered for, status given)
  std::promise<void> complete;
  static void CL_CALLBACK Record(cl_event, cl_int status, void* data) {
    auto* entry = static_cast<std::pair<CallbackLog*, cl_int>*>(data);
    std::lock_guard lock(entry->first->mutex);
    entry->first->calls.emplace_back(entry->second, status);
    if (entry->second == CL_COMPLETE) entry->first->complete.set_value();
  }
};

TEST_F(Events, CallbacksForEachState) {
  cl_int rc = CL_SUCCESS;
  Event user(clCreateUserEvent(ctx_, &rc));
  ASSERT_OK(rc);
  Event k = EnqueueSet(queue_, 1, 1, user.ptr());
  CallbackLog log;
  std::future<void> done = log.complete.get_future();
  std::pair<CallbackLog*, cl_int> submitted{&log, CL_SUBMITTED}, running{&log, CL_RUNNING},
      complete{&log, CL_COMPLETE};
  ASSERT_OK(clSetEventCallback(k, CL_COMPLETE, CallbackLog::Record, &complete));
  ASSERT_OK(clSetEventCallback(k, CL_RUNNING, CallbackLog::Record, &running));
  ASSERT_OK(clSetEventCallback(k, CL_SUBMITTED, CallbackLog::Record, &submitted));
  EXPECT_CL(CL_INVALID_VALUE, clSetEventCallback(k, CL_QUEUED, CallbackLog::Record, &complete));
  EXPECT_CL(CL_INVALID_VALUE, clSetEventCallback(k, CL_COMPLETE, nullptr, nullptr));
  {
    std::lock_guard lock(log.mutex);
    EXPECT_TRUE(log.calls.empty()) << "called before the command could start";
  }
  ASSERT_OK(clSetUserEventStatus(user, CL_COMPLETE));
  ASSERT_EQ(done.wait_for(std::chrono::seconds(60)), std::future_status::ready);
  {
    std::lock_guard lock(log.mutex);
    ASSERT_EQ(log.calls.size(), 3u);
    for (auto [on, status] : log.calls) EXPECT_EQ(on, status);
    EXPECT_EQ(log.calls.back().first, CL_COMPLETE) << "CL_COMPLETE is the last state reached";
  }
  // Registered on a complete event: called (at once or soon) with CL_COMPLETE.
  CallbackLog late;
  std::future<void> late_done = late.complete.get_future();
  std::pair<CallbackLog*, cl_int> late_complete{&late, CL_COMPLETE};
  ASSERT_OK(clSetEventCallback(k, CL_COMPLETE, CallbackLog::Record, &late_complete));
  ASSERT_EQ(late_done.wait_for(std::chrono::seconds(60)), std::future_status::ready);
  std::lock_guard lock(late.mutex);
  ASSERT_EQ(late.calls.size(), 1u);
  EXPECT_EQ(late.calls[0].second, CL_COMPLETE);
}

TEST_F(Events, CallbackOfAFailedEventGetsTheError) {
  cl_int rc = CL_SUCCESS;
  Event user(clCreateUserEvent(ctx_, &rc));
  ASSERT_OK(rc);
  CallbackLog log;
  std::future<void> done = log.complete.get_future();
  std::pair<CallbackLog*, cl_int> complete{&log, CL_COMPLETE};
  ASSERT_OK(clSetEventCallback(user, CL_COMPLETE, CallbackLog::Record, &complete));
  ASSERT_OK(clSetUserEventStatus(user, -55));
  ASSERT_EQ(done.wait_for(std::chrono::seconds(60)), std::future_status::ready);
  std::lock_guard lock(log.mutex);
  ASSERT_EQ(log.calls.size(), 1u);
  EXPECT_EQ(log.calls[0].second, -55);
}

TEST_F(Events, MarkersAndBarriersOnAnOutOfOrderQueue) {
  cl_int rc = CL_SUCCESS;
  const cl_queue_properties props[] = {CL_QUEUE_PROPERTIES,
                                       CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE, 0};
  Queue ooo(clCreateCommandQueueWithProperties(ctx_, device_, props, &rc));
  ASSERT_OK(rc);
  Event user(clCreateUserEvent(ctx_, &rc));
  ASSERT_OK(rc);
  Event gated = EnqueueSet(ooo, 5, 1, user.ptr());
  // A marker with no wait list waits for everything before it; so does a barrier, and what
  // comes after the barrier waits for it.
  Event marker, barrier;
  ASSERT_OK(clEnqueueMarkerWithWaitList(ooo, 0, nullptr, marker.out()));
  ASSERT_OK(clEnqueueBarrierWithWaitList(ooo, 0, nullptr, barrier.out()));
  Event after = EnqueueSet(ooo, 6);
  EXPECT_GT(EventStatus(marker), CL_COMPLETE);
  EXPECT_GT(EventStatus(barrier), CL_COMPLETE);
  EXPECT_GT(EventStatus(after), CL_COMPLETE) << "ran past the barrier";
  EXPECT_EQ(Peek(), 0);
  ASSERT_OK(clSetUserEventStatus(user, CL_COMPLETE));
  const cl_event all[] = {gated, marker, barrier, after};
  ASSERT_OK(clWaitForEvents(4, all));
  EXPECT_EQ(Peek(), 6) << "the command after the barrier ran before the one gated";
  cl_command_type type = 0;
  ASSERT_OK(clGetEventInfo(marker, CL_EVENT_COMMAND_TYPE, sizeof type, &type, nullptr));
  EXPECT_EQ(type, static_cast<cl_command_type>(CL_COMMAND_MARKER));
  ASSERT_OK(clGetEventInfo(barrier, CL_EVENT_COMMAND_TYPE, sizeof type, &type, nullptr));
  EXPECT_EQ(type, static_cast<cl_command_type>(CL_COMMAND_BARRIER));

  // A marker with a wait list waits for that list only.
  Event user2(clCreateUserEvent(ctx_, &rc));
  ASSERT_OK(rc);
  Event m2;
  ASSERT_OK(clEnqueueMarkerWithWaitList(ooo, 1, user2.ptr(), m2.out()));
  EXPECT_GT(EventStatus(m2), CL_COMPLETE);
  ASSERT_OK(clSetUserEventStatus(user2, CL_COMPLETE));
  EXPECT_OK(clWaitForEvents(1, m2.ptr()));
  // The 1.x entry points.
  Event m3;
  ASSERT_OK(clEnqueueMarker(ooo, m3.out()));
  ASSERT_OK(clEnqueueBarrier(ooo));
  ASSERT_OK(clEnqueueWaitForEvents(ooo, 1, m3.ptr()));
  ASSERT_OK(clFinish(ooo));
  EXPECT_CL(CL_COMPLETE, EventStatus(m3));
}

TEST_F(Events, WaitForEventsAcrossQueuesAndContexts) {
  cl_int rc = CL_SUCCESS;
  Queue q2(clCreateCommandQueueWithProperties(ctx_, device_, nullptr, &rc));
  ASSERT_OK(rc);
  Event a = EnqueueSet(queue_, 1);
  Event b;
  ASSERT_OK(clEnqueueMarkerWithWaitList(q2, 1, a.ptr(), b.out()));
  const cl_event both[] = {a, b};
  ASSERT_OK(clWaitForEvents(2, both));
  EXPECT_CL(CL_COMPLETE, EventStatus(a));
  EXPECT_CL(CL_COMPLETE, EventStatus(b));
  Context other(clCreateContext(nullptr, 1, &device_, nullptr, nullptr, &rc));
  ASSERT_OK(rc);
  Event foreign(clCreateUserEvent(other, &rc));
  ASSERT_OK(rc);
  const cl_event mixed[] = {a, foreign};
  EXPECT_CL(CL_INVALID_CONTEXT, clWaitForEvents(2, mixed));
  EXPECT_CL(CL_INVALID_CONTEXT, clEnqueueMarkerWithWaitList(queue_, 1, foreign.ptr(), nullptr));
  EXPECT_CL(CL_INVALID_EVENT_WAIT_LIST, clEnqueueMarkerWithWaitList(queue_, 1, nullptr, nullptr));
  ASSERT_OK(clSetUserEventStatus(foreign, CL_COMPLETE));
  cl_uint refs = 0;
  ASSERT_OK(clRetainEvent(a));
  ASSERT_OK(clGetEventInfo(a, CL_EVENT_REFERENCE_COUNT, sizeof refs, &refs, nullptr));
  EXPECT_GE(refs, 2u);
  ASSERT_OK(clReleaseEvent(a));
}

TEST_F(Events, ProfilingTimestampsAreOrdered) {
  cl_int rc = CL_SUCCESS;
  const cl_queue_properties props[] = {CL_QUEUE_PROPERTIES, CL_QUEUE_PROFILING_ENABLE, 0};
  Queue prof(clCreateCommandQueueWithProperties(ctx_, device_, props, &rc));
  ASSERT_OK(rc);
  cl_ulong host_before = 0, host_after = 0;
  ASSERT_OK(clGetHostTimer(device_, &host_before));
  Event k = EnqueueSet(prof, 2);
  Event w;
  cl_int v = 4;
  ASSERT_OK(clEnqueueWriteBuffer(prof, buf_, CL_FALSE, 0, sizeof v, &v, 0, nullptr, w.out()));
  ASSERT_OK(clFinish(prof));
  ASSERT_OK(clGetHostTimer(device_, &host_after));
  cl_ulong prev_end = 0;
  for (cl_event e : {k.get(), w.get()}) {
    cl_ulong t[5] = {};
    const cl_profiling_info what[5] = {CL_PROFILING_COMMAND_QUEUED, CL_PROFILING_COMMAND_SUBMIT,
                                       CL_PROFILING_COMMAND_START, CL_PROFILING_COMMAND_END,
                                       CL_PROFILING_COMMAND_COMPLETE};
    for (int i = 0; i < 5; ++i)
      ASSERT_OK(clGetEventProfilingInfo(e, what[i], sizeof t[i], &t[i], nullptr));
    EXPECT_LE(host_before, t[0]);
    EXPECT_LE(t[0], t[1]);
    EXPECT_LE(t[1], t[2]);
    EXPECT_LE(t[2], t[3]);
    EXPECT_LE(t[3], t[4]);
    EXPECT_LE(t[4], host_after);
    EXPECT_LE(prev_end, t[2]) << "in order: the write starts after the kernel ends";
    prev_end = t[3];
  }
  cl_ulong t = 0;
  EXPECT_CL(CL_INVALID_VALUE, clGetEventProfilingInfo(k, 0x7777, sizeof t, &t, nullptr));
  // Not a profiling queue, and user events: no profiling information.
  Event plain = EnqueueSet(queue_, 3);
  ASSERT_OK(clWaitForEvents(1, plain.ptr()));
  EXPECT_CL(CL_PROFILING_INFO_NOT_AVAILABLE,
            clGetEventProfilingInfo(plain, CL_PROFILING_COMMAND_START, sizeof t, &t, nullptr));
  Event user(clCreateUserEvent(ctx_, &rc));
  ASSERT_OK(rc);
  ASSERT_OK(clSetUserEventStatus(user, CL_COMPLETE));
  EXPECT_CL(CL_PROFILING_INFO_NOT_AVAILABLE,
            clGetEventProfilingInfo(user, CL_PROFILING_COMMAND_END, sizeof t, &t, nullptr));
}

}  // namespace
}  // namespace cltest
