// Layer os: includes base.
// Runtime threads (device workers, fault service, userfaultfd handler).
//
// Their stacks come from runtime memory (see arena.hpp): a worker runs user kernels whose locals
// live on the stack, and the userfaultfd handler must never fault on its own stack.
#pragma once

#include <cstddef>
#include <pthread.h>

namespace hetmm::os {

class OsThread {
 public:
  using Entry = void (*)(void*);
  OsThread() = default;
  OsThread(const OsThread&) = delete;
  OsThread& operator=(const OsThread&) = delete;
  ~OsThread();

  void start(Entry entry, void* arg, const char* name, std::size_t stack = 1u << 20);
  void join();
  // In a forked child the thread does not exist: forget it without joining.
  void abandon();
  bool running() const { return started_; }

 private:
  static void* trampoline(void* self);
  pthread_t thread_{};
  void* stack_ = nullptr;
  std::size_t stack_size_ = 0;
  Entry entry_ = nullptr;
  void* arg_ = nullptr;
  bool started_ = false;
};

}  // namespace hetmm::os
