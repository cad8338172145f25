#include "os/syscalls.hpp"

#include <cerrno>
#include <sys/ioctl.h>
#include <linux/memfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <new>

namespace hetmm::os {

namespace {
// syscall(2) sets errno; keep the caller's errno intact (the hooks promise libc semantics).
long raw(long nr, long a, long b, long c, long d, long e, long f) {
  int saved = errno;
  long r = syscall(nr, a, b, c, d, e, f);
  if (r == -1) r = -errno;
  errno = saved;
  return r;
}
}  // namespace

void* sys_mmap(void* addr, std::size_t len, int prot, int flags, int fd, off_t off, int* err) {
  long r = raw(SYS_mmap, reinterpret_cast<long>(addr), static_cast<long>(len), prot, flags, fd,
               off);
  if (r < 0 && r > -4096) {
    *err = static_cast<int>(-r);
    return MAP_FAILED;
  }
  *err = 0;
  return reinterpret_cast<void*>(r);
}
int sys_munmap(void* addr, std::size_t len) {
  return static_cast<int>(raw(SYS_munmap, reinterpret_cast<long>(addr), static_cast<long>(len),
                              0, 0, 0, 0));
}
int sys_mprotect(void* addr, std::size_t len, int prot) {
  return static_cast<int>(raw(SYS_mprotect, reinterpret_cast<long>(addr),
                              static_cast<long>(len), prot, 0, 0, 0));
}
int sys_madvise(void* addr, std::size_t len, int advice) {
  return static_cast<int>(raw(SYS_madvise, reinterpret_cast<long>(addr), static_cast<long>(len),
                              advice, 0, 0, 0));
}
void* sys_mremap(void* old_addr, std::size_t old_len, std::size_t new_len, int flags,
                 void* new_addr, int* err) {
  long r = raw(SYS_mremap, reinterpret_cast<long>(old_addr), static_cast<long>(old_len),
               static_cast<long>(new_len), flags, reinterpret_cast<long>(new_addr), 0);
  if (r < 0 && r > -4096) {
    *err = static_cast<int>(-r);
    return MAP_FAILED;
  }
  *err = 0;
  return reinterpret_cast<void*>(r);
}
long sys_ioctl(int fd, unsigned long request, void* arg) {
  return raw(SYS_ioctl, fd, static_cast<long>(request), reinterpret_cast<long>(arg), 0, 0, 0);
}
long sys_pwrite(int fd, const void* buf, std::size_t n, off_t off) {
  return raw(SYS_pwrite64, fd, reinterpret_cast<long>(buf), static_cast<long>(n), off, 0, 0);
}
long sys_pread(int fd, void* buf, std::size_t n, off_t off) {
  return raw(SYS_pread64, fd, reinterpret_cast<long>(buf), static_cast<long>(n), off, 0, 0);
}
pid_t sys_gettid() { return static_cast<pid_t>(syscall(SYS_gettid)); }

namespace {
// A sparse memfd that every runtime mapping maps privately (see syscalls.hpp).
int runtime_memfd() {
  static int fd = [] {
    int f = static_cast<int>(syscall(SYS_memfd_create, "hetmm-runtime", MFD_CLOEXEC));
    if (f >= 0 && ftruncate(f, static_cast<off_t>(1) << 40) != 0) {
      close(f);
      f = -1;
    }
    return f;
  }();
  return fd;
}
}  // namespace

void* map_runtime_memory(std::size_t len) {
  int err = 0;
  int fd = runtime_memfd();
  void* p = fd >= 0 ? sys_mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0, &err)
                    : sys_mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                               -1, 0, &err);
  if (p == MAP_FAILED) throw std::bad_alloc();
  return p;
}
void unmap_runtime_memory(void* p, std::size_t len) {
  if (p == nullptr) return;
#if defined(__SANITIZE_THREAD__)
  // ThreadSanitizer keeps per-address state for atomics and clears it only in its munmap
  // interceptor, which these raw system calls bypass: a later mapping at the same address would
  // inherit stale state and trip its internal checks. Under TSan the range is emptied and kept
  // reserved instead, so that no address is ever reused.
  sys_madvise(p, len, MADV_DONTNEED);
  sys_mprotect(p, len, PROT_NONE);
#else
  sys_munmap(p, len);
#endif
}

}  // namespace hetmm::os
