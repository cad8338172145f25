#include "os/uffd.hpp"

#include "os/syscalls.hpp"

#include <cerrno>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

namespace hetmm::os {

namespace {
int open_fd(bool user_mode_only, int* err) {
  int flags = O_CLOEXEC | O_NONBLOCK | (user_mode_only ? UFFD_USER_MODE_ONLY : 0);
  long fd = syscall(SYS_userfaultfd, flags);
  if (fd < 0) {
    *err = errno;
    return -1;
  }
  return static_cast<int>(fd);
}
}  // namespace

UffdOpen uffd_open(bool force_user_mode_only, std::uint64_t wanted_features) {
  UffdOpen r;
  int err = 0;
  if (!force_user_mode_only) r.fd = open_fd(false, &err);
  if (r.fd < 0) {
    r.fd = open_fd(true, &err);
    r.user_mode_only = true;
  }
  if (r.fd < 0) {
    r.error = err;
    return r;
  }
  // Ask for what we want; the kernel refuses the whole request if any bit is unknown, so retry
  // with what it offers.
  uffdio_api probe{};
  probe.api = UFFD_API;
  probe.features = 0;
  // A second UFFDIO_API on one fd is refused, so probe on a throwaway fd.
  int pfd = open_fd(r.user_mode_only, &err);
  std::uint64_t offered = 0;
  if (pfd >= 0) {
    if (sys_ioctl(pfd, UFFDIO_API, &probe) == 0) offered = probe.features;
    ::close(pfd);
  }
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = wanted_features & offered;
  long rc = sys_ioctl(r.fd, UFFDIO_API, &api);
  if (rc < 0) {
    r.error = static_cast<int>(-rc);
    ::close(r.fd);
    r.fd = -1;
    return r;
  }
  r.features = api.features;
  r.ioctls = api.ioctls;
  return r;
}

int uffd_register(int fd, std::uintptr_t start, std::size_t len, bool write_protect) {
  uffdio_register reg{};
  reg.range.start = start;
  reg.range.len = len;
  reg.mode = UFFDIO_REGISTER_MODE_MISSING | (write_protect ? UFFDIO_REGISTER_MODE_WP : 0);
  return static_cast<int>(sys_ioctl(fd, UFFDIO_REGISTER, &reg));
}

int uffd_register_wp_only(int fd, std::uintptr_t start, std::size_t len) {
  uffdio_register reg{};
  reg.range.start = start;
  reg.range.len = len;
  reg.mode = UFFDIO_REGISTER_MODE_WP;
  return static_cast<int>(sys_ioctl(fd, UFFDIO_REGISTER, &reg));
}

int uffd_unregister(int fd, std::uintptr_t start, std::size_t len) {
  uffdio_range range{start, len};
  return static_cast<int>(sys_ioctl(fd, UFFDIO_UNREGISTER, &range));
}

long uffd_copy(int fd, std::uintptr_t dst, const void* src, std::size_t len, bool dontwake,
               bool write_protect) {
  uffdio_copy c{};
  c.dst = dst;
  c.src = reinterpret_cast<std::uintptr_t>(src);
  c.len = len;
  c.mode = (dontwake ? UFFDIO_COPY_MODE_DONTWAKE : 0) | (write_protect ? UFFDIO_COPY_MODE_WP : 0);
  long rc = sys_ioctl(fd, UFFDIO_COPY, &c);
  if (rc < 0) return c.copy > 0 ? c.copy : rc;
  return c.copy;
}

long uffd_zeropage(int fd, std::uintptr_t dst, std::size_t len, bool dontwake) {
  uffdio_zeropage z{};
  z.range.start = dst;
  z.range.len = len;
  z.mode = dontwake ? UFFDIO_ZEROPAGE_MODE_DONTWAKE : 0;
  long rc = sys_ioctl(fd, UFFDIO_ZEROPAGE, &z);
  if (rc < 0) return z.zeropage > 0 ? z.zeropage : rc;
  return z.zeropage;
}

int uffd_writeprotect(int fd, std::uintptr_t start, std::size_t len, bool protect,
                      bool dontwake) {
  uffdio_writeprotect wp{};
  wp.range.start = start;
  wp.range.len = len;
  wp.mode = (protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0) |
            (dontwake ? UFFDIO_WRITEPROTECT_MODE_DONTWAKE : 0);
  return static_cast<int>(sys_ioctl(fd, UFFDIO_WRITEPROTECT, &wp));
}

int uffd_wake(int fd, std::uintptr_t start, std::size_t len) {
  uffdio_range range{start, len};
  return static_cast<int>(sys_ioctl(fd, UFFDIO_WAKE, &range));
}

namespace {
struct UffdioMove {
  std::uint64_t dst, src, len, mode;
  std::int64_t move;
};
constexpr unsigned long kUffdioMove = _IOWR(UFFDIO, 0x05, UffdioMove);
}  // namespace

long uffd_move(int fd, std::uintptr_t dst, std::uintptr_t src, std::size_t len,
               std::uint64_t mode) {
  UffdioMove m{dst, src, len, mode, 0};
  long rc = sys_ioctl(fd, kUffdioMove, &m);
  if (rc < 0) return m.move > 0 ? m.move : rc;
  return m.move;
}

}  // namespace hetmm::os
