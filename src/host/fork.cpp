// fork(2) with pages on a device.
//
// The child gets no runtime threads and no device, so before the fork every page comes home
// (the child then sees all the data, and copy-on-write separates the two processes as usual)
// and the state lock is held across the fork so nothing migrates in between. In the child the
// runtimes are marked orphaned: hooks and signal handlers ignore them and their API calls fail
// with Errc::device_lost. Without UFFD_FEATURE_EVENT_FORK the kernel drops userfaultfd
// registrations in the child, which is what we want: its memory is ordinary memory.
#include "host/registry.hpp"
#include "os/pagemap.hpp"

#include <pthread.h>

namespace hetmm::host {

namespace {

void prepare() {
  for (auto& s : g_slots) {
    Registered* r = s.load(std::memory_order_acquire);
    if (r != nullptr && !r->orphaned.load()) r->mirror->lock_for_fork();
  }
}

void parent() {
  for (auto& s : g_slots) {
    Registered* r = s.load(std::memory_order_acquire);
    if (r != nullptr && !r->orphaned.load()) r->mirror->unlock_after_fork();
  }
}

void child() {
  // Before anything compares thread ids: a lock's holder, a fault's thread (userfaultfd's ptid).
  core::forget_current_tid();
  os::forget_pagemap();  // the descriptor describes the parent's memory
  for (auto& s : g_slots) {
    Registered* r = s.load(std::memory_order_acquire);
    if (r != nullptr && !r->orphaned.load()) {
      r->orphaned.store(true);
      r->mirror->unlock_after_fork();
    }
    s.store(nullptr, std::memory_order_release);
  }
  g_count.store(0);
  g_users.store(0);
}

}  // namespace

void install_fork_handlers() { pthread_atfork(&prepare, &parent, &child); }

}  // namespace hetmm::host
