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

// A hook reached from inside the runtime while it holds its state lock must not re-enter it.
template <class F>
void each(F&& f) {
  for_each_runtime([&](Registered& r) {
    if (!r.mirror->state_lock().held_by_me()) f(r);
  });
}

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

bool hooks_interposed() {
  void* resolved = dlsym(RTLD_DEFAULT, "munmap");
  return resolved == reinterpret_cast<void*>(static_cast<int (*)(void*, std::size_t)>(&::munmap));
}

}  // namespace hetmm::host

using hetmm::host::each;
using hetmm::host::Registered;

extern "C" {

__attribute__((visibility("default"))) int munmap(void* addr, std::size_t len) noexcept {
  if (hetmm::host::plausible(addr, len)) {
    auto s = reinterpret_cast<std::uintptr_t>(addr);
    auto e = hetmm::os::page_up(s + len);
    each([&](Registered& r) { r.mirror->before_unmap(s, e); });
  }
  return hetmm::host::finish(hetmm::os::sys_munmap(addr, len));
}

__attribute__((visibility("default"))) int mprotect(void* addr, std::size_t len, int prot) noexcept {
  if (hetmm::host::plausible(addr, len)) {
    // A runtime applies the mprotect itself (it keeps its revoked pages inaccessible).
    auto s = reinterpret_cast<std::uintptr_t>(addr);
    auto e = hetmm::os::page_up(s + len);
    int rc = 0;
    bool handled = false;
    each([&](Registered& r) {
      int x = r.mirror->protect(s, e, prot);
      if (!handled) rc = x;
      handled = true;
    });
    if (handled) return hetmm::host::finish(rc);
  }
  return hetmm::host::finish(hetmm::os::sys_mprotect(addr, len, prot));
}

__attribute__((visibility("default"))) int madvise(void* addr, std::size_t len, int advice) noexcept {
  bool discards = advice == MADV_DONTNEED || advice == MADV_FREE || advice == MADV_REMOVE ||
                  advice == 24 /* MADV_DONTNEED_LOCKED */;
  if (discards && hetmm::host::plausible(addr, len)) {
    auto s = reinterpret_cast<std::uintptr_t>(addr);
    auto e = hetmm::os::page_up(s + len);
    each([&](Registered& r) { r.mirror->before_discard(s, e); });
  }
  return hetmm::host::finish(hetmm::os::sys_madvise(addr, len, advice));
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
  if (hetmm::host::plausible(old_addr, old_len == 0 ? hetmm::os::kPageSize : old_len)) {
    auto s = reinterpret_cast<std::uintptr_t>(old_addr);
    auto e = hetmm::os::page_up(s + (old_len == 0 ? hetmm::os::kPageSize : old_len));
    each([&](Registered& r) { r.mirror->before_remap(s, e); });
    if ((flags & MREMAP_FIXED) && hetmm::host::plausible(new_addr, new_len)) {
      auto ns = reinterpret_cast<std::uintptr_t>(new_addr);
      auto ne = hetmm::os::page_up(ns + new_len);
      each([&](Registered& r) { r.mirror->before_unmap(ns, ne); });
    }
  }
  int err = 0;
  void* p = hetmm::os::sys_mremap(old_addr, old_len, new_len, flags, new_addr, &err);
  return hetmm::host::finish_ptr(p, err);
}

__attribute__((visibility("default"))) void* mmap(void* addr, std::size_t len, int prot,
                                                  int flags, int fd, off_t off) noexcept {
  if ((flags & MAP_FIXED) && !(flags & MAP_FIXED_NOREPLACE) && hetmm::host::plausible(addr, len)) {
    auto s = reinterpret_cast<std::uintptr_t>(addr);
    auto e = hetmm::os::page_up(s + len);
    each([&](Registered& r) { r.mirror->before_unmap(s, e); });
  }
  int err = 0;
  void* p = hetmm::os::sys_mmap(addr, len, prot, flags, fd, off, &err);
  return hetmm::host::finish_ptr(p, err);
}

__attribute__((visibility("default"))) void* mmap64(void* addr, std::size_t len, int prot,
                                                    int flags, int fd, off_t off) noexcept {
  return mmap(addr, len, prot, flags, fd, off);
}

}  // extern "C"
