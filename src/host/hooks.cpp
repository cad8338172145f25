// Interposed memory-management calls: hetmm's answer to "the device mapping must be gone before
// the CPU-side change completes" for the changes userfaultfd cannot report (mprotect) or
// reports only afterwards (munmap, mremap).
//
// libhetmm.so defines munmap, mprotect, madvise, mremap and mmap. The dynamic linker resolves
// the program's (and its libraries') calls to the first definition in load order, which is ours
// for any program linked against hetmm (the technique of UCX's memory hooks). Each wrapper lets
// every live runtime tear down device mappings and settle device-resident pages, then makes the
// system call itself. Calls made inside glibc (free() unmapping a large chunk) bypass symbol
// interposition; with userfaultfd tracking they still reach hetmm as UNMAP/REMAP events
// (src/host/uffd_tracker.cpp). Runtime::hooks_active() reports whether interposition took hold.
#include "host/registry.hpp"
#include "os/page.hpp"
#include "os/syscalls.hpp"

#include <cerrno>
#include <cstdarg>
#include <dlfcn.h>
#include <sys/mman.h>

namespace hetmm::host {

namespace {

bool plausible(void* addr, std::size_t len) {
  auto a = reinterpret_cast<std::uintptr_t>(addr);
  return len != 0 && (a & (os::kPageSize - 1)) == 0 && a + len > a;
}

// One CPU-side change, atomic for every device: each live runtime's state lock is held from the
// teardown of its device mappings until the system call has returned, as the kernel holds
// mmap_lock for write across the invalidation and the change. Released between the two, a
// device access in the gap went through a range the change had begun to tear down (issue 16: a
// device read between munmap's drop of device-resident data and the unmap itself got zeros).
//
// Locks are taken in registry slot order, as fork's prepare handler takes them. A runtime whose
// lock this thread already holds (a hook reached from inside that runtime) is left out. The
// system call under the lock is safe: it touches no user memory, and the userfaultfd handler,
// which must read the UNMAP/REMOVE/REMAP event it raises, never blocks on a state lock.
// Holding g_users keeps the runtimes registered (and alive) until the change is over.
class Change {
 public:
  Change() {
    if (g_count.load(std::memory_order_acquire) == 0) return;
    counted_ = true;
    g_users.fetch_add(1, std::memory_order_acq_rel);
    for (auto& slot : g_slots) {
      Registered* r = slot.load(std::memory_order_acquire);
      if (r == nullptr || r->orphaned.load(std::memory_order_relaxed) ||
          r->mirror->state_lock().held_by_me())
        continue;
      r->mirror->begin_change();
      held_[n_++] = r;
    }
  }
  ~Change() {
    for (std::size_t i = n_; i > 0; --i) held_[i - 1]->mirror->end_change();
    if (counted_) g_users.fetch_sub(1, std::memory_order_acq_rel);
  }
  Change(const Change&) = delete;
  Change& operator=(const Change&) = delete;

  template <class F>
  void each(F&& f) {
    for (std::size_t i = 0; i < n_; ++i) f(*held_[i]->mirror);
  }
  bool any() const { return n_ != 0; }
  // Options::inject's host_change point (tests hold the window open with it).
  void window() {
    each([](core::Mirror& m) { m.change_window(); });
  }

 private:
  Registered* held_[kMaxRuntimes] = {};
  std::size_t n_ = 0;
  bool counted_ = false;
};

int finish(int rc) {
  if (rc < 0) {
    errno = -rc;
    return -1;
  }
  return rc;
}

void* finish_ptr(void* p, int err) {
  if (p == MAP_FAILED) errno = err;
  return p;
}

}  // namespace

}  // namespace hetmm::host

// This library's own munmap, bound locally: &::munmap goes through the GOT like any call and
// names whichever definition the dynamic linker found first, ours or libc's, so comparing it
// with dlsym's answer always agreed (even when the OpenCL loader had dlopen'ed libhetmm).
extern "C" int hetmm_own_munmap(void* addr, std::size_t len) noexcept
    __attribute__((alias("munmap"), visibility("hidden")));

namespace hetmm::host {

bool hooks_interposed() {
  void* resolved = dlsym(RTLD_DEFAULT, "munmap");
  return resolved == reinterpret_cast<void*>(&hetmm_own_munmap);
}

int unmap(void* addr, std::size_t len) {
  if (!plausible(addr, len)) return os::sys_munmap(addr, len);
  auto s = reinterpret_cast<std::uintptr_t>(addr);
  auto e = os::page_up(s + len);
  Change change;
  change.each([&](core::Mirror& m) { m.unmap_begin(s, e); });
  change.window();
  int rc = os::sys_munmap(addr, len);
  change.each([&](core::Mirror& m) { m.unmap_end(s, e, rc == 0); });
  return rc;
}

}  // namespace hetmm::host

using hetmm::host::Change;

extern "C" {

__attribute__((visibility("default"))) int munmap(void* addr, std::size_t len) noexcept {
  return hetmm::host::finish(hetmm::host::unmap(addr, len));
}

__attribute__((visibility("default"))) int mprotect(void* addr, std::size_t len, int prot) noexcept {
  if (hetmm::host::plausible(addr, len)) {
    // A runtime applies the mprotect itself (it keeps its revoked pages inaccessible).
    auto s = reinterpret_cast<std::uintptr_t>(addr);
    auto e = hetmm::os::page_up(s + len);
    Change change;
    if (change.any()) {
      int rc = 0;
      bool first = true;
      change.each([&](hetmm::core::Mirror& m) {
        if (first) m.change_window();
        int x = m.protect(s, e, prot);
        if (first) rc = x;
        first = false;
      });
      return hetmm::host::finish(rc);
    }
  }
  return hetmm::host::finish(hetmm::os::sys_mprotect(addr, len, prot));
}

__attribute__((visibility("default"))) int madvise(void* addr, std::size_t len, int advice) noexcept {
  bool discards = advice == MADV_DONTNEED || advice == MADV_FREE || advice == MADV_REMOVE ||
                  advice == 24 /* MADV_DONTNEED_LOCKED */;
  if (!discards || !hetmm::host::plausible(addr, len))
    return hetmm::host::finish(hetmm::os::sys_madvise(addr, len, advice));
  auto s = reinterpret_cast<std::uintptr_t>(addr);
  auto e = hetmm::os::page_up(s + len);
  Change change;
  change.each([&](hetmm::core::Mirror& m) { m.discard_begin(s, e); });
  change.window();
  int rc = hetmm::os::sys_madvise(addr, len, advice);
  // ENOMEM: part of the range is not mapped; the kernel discarded every part that is.
  bool done = rc == 0 || rc == -ENOMEM;
  change.each([&](hetmm::core::Mirror& m) { m.discard_end(s, e, done); });
  return hetmm::host::finish(rc);
}

__attribute__((visibility("default"))) void* mremap(void* old_addr, std::size_t old_len,
                                                    std::size_t new_len, int flags, ...) noexcept {
  void* new_addr = nullptr;
  if (flags & MREMAP_FIXED) {
    va_list ap;
    va_start(ap, flags);
    new_addr = va_arg(ap, void*);
    va_end(ap);
  }
  int err = 0;
  if (!hetmm::host::plausible(old_addr, old_len == 0 ? hetmm::os::kPageSize : old_len)) {
    void* p = hetmm::os::sys_mremap(old_addr, old_len, new_len, flags, new_addr, &err);
    return hetmm::host::finish_ptr(p, err);
  }
  auto s = reinterpret_cast<std::uintptr_t>(old_addr);
  auto e = hetmm::os::page_up(s + (old_len == 0 ? hetmm::os::kPageSize : old_len));
  bool fixed = (flags & MREMAP_FIXED) && hetmm::host::plausible(new_addr, new_len);
  auto ns = reinterpret_cast<std::uintptr_t>(new_addr);
  auto ne = fixed ? hetmm::os::page_up(ns + new_len) : ns;
  Change change;
  change.each([&](hetmm::core::Mirror& m) {
    m.remap_begin(s, e);
    if (fixed) m.unmap_begin(ns, ne);
  });
  change.window();
  void* p = hetmm::os::sys_mremap(old_addr, old_len, new_len, flags, new_addr, &err);
  if (fixed) change.each([&](hetmm::core::Mirror& m) { m.unmap_end(ns, ne, p != MAP_FAILED); });
  return hetmm::host::finish_ptr(p, err);
}

__attribute__((visibility("default"))) void* mmap(void* addr, std::size_t len, int prot,
                                                  int flags, int fd, off_t off) noexcept {
  int err = 0;
  if (!(flags & MAP_FIXED) || (flags & MAP_FIXED_NOREPLACE) || !hetmm::host::plausible(addr, len)) {
    void* p = hetmm::os::sys_mmap(addr, len, prot, flags, fd, off, &err);
    return hetmm::host::finish_ptr(p, err);
  }
  // MAP_FIXED replaces whatever is mapped there: an unmap, then a new mapping.
  auto s = reinterpret_cast<std::uintptr_t>(addr);
  auto e = hetmm::os::page_up(s + len);
  Change change;
  change.each([&](hetmm::core::Mirror& m) { m.unmap_begin(s, e); });
  change.window();
  void* p = hetmm::os::sys_mmap(addr, len, prot, flags, fd, off, &err);
  change.each([&](hetmm::core::Mirror& m) { m.unmap_end(s, e, p != MAP_FAILED); });
  return hetmm::host::finish_ptr(p, err);
}

__attribute__((visibility("default"))) void* mmap64(void* addr, std::size_t len, int prot,
                                                    int flags, int fd, off_t off) noexcept {
  return mmap(addr, len, prot, flags, fd, off);
}

}  // extern "C"
