#include "os/os_thread.hpp"

#include "os/page.hpp"
#include "os/syscalls.hpp"

#include <cstring>
#include <system_error>

namespace hetmm::os {

OsThread::~OsThread() { join(); }

void* OsThread::trampoline(void* self) {
  auto* t = static_cast<OsThread*>(self);
  t->entry_(t->arg_);
  return nullptr;
}

void OsThread::start(Entry entry, void* arg, const char* name, std::size_t stack) {
  entry_ = entry;
  arg_ = arg;
  stack_size_ = page_up(stack);
  stack_ = map_runtime_memory(stack_size_);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstack(&attr, stack_, stack_size_);
  int rc = pthread_create(&thread_, &attr, &OsThread::trampoline, this);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    unmap_runtime_memory(stack_, stack_size_);
    stack_ = nullptr;
    throw std::system_error(rc, std::generic_category(), "pthread_create");
  }
  started_ = true;
  if (name != nullptr) {
    char n[16];
    std::strncpy(n, name, sizeof n - 1);
    n[sizeof n - 1] = 0;
    pthread_setname_np(thread_, n);
  }
}

void OsThread::join() {
  if (started_) {
    pthread_join(thread_, nullptr);
    started_ = false;
  }
  if (stack_ != nullptr) {
    unmap_runtime_memory(stack_, stack_size_);
    stack_ = nullptr;
  }
}

void OsThread::abandon() {
  started_ = false;
  stack_ = nullptr;  // the child's copy of the stack mapping is harmless; leave it
}

}  // namespace hetmm::os
