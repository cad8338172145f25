// userfaultfd(2): thin, errno-free wrappers. Every function returns 0 (or a count) on success
// and -errno on failure. Contracts and measured costs on this machine class are in
// ../shared/docs/machine-limits.md: a MISSING round trip ~19 us, UFFDIO_COPY of 512 pages ~5 GB/s.
#pragma once

#include <cstddef>
#include <cstdint>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>

namespace hetmm::os {

struct UffdOpen {
  int fd = -1;
  int error = 0;              // errno of the failure, 0 on success
  bool user_mode_only = false;
  std::uint64_t features = 0;  // granted by UFFDIO_API
  std::uint64_t ioctls = 0;
};

// Opens a userfaultfd and negotiates features. With user_mode_only == false it tries a full fd
// first (needs CAP_SYS_PTRACE or vm.unprivileged_userfaultfd=1) and falls back to
// UFFD_USER_MODE_ONLY, as an unprivileged process must.
UffdOpen uffd_open(bool force_user_mode_only, std::uint64_t wanted_features);

int uffd_register(int fd, std::uintptr_t start, std::size_t len, bool write_protect);
int uffd_unregister(int fd, std::uintptr_t start, std::size_t len);
// Returns bytes copied (may be short) or -errno.
long uffd_copy(int fd, std::uintptr_t dst, const void* src, std::size_t len, bool dontwake);
long uffd_zeropage(int fd, std::uintptr_t dst, std::size_t len, bool dontwake);
int uffd_writeprotect(int fd, std::uintptr_t start, std::size_t len, bool protect, bool dontwake);
int uffd_wake(int fd, std::uintptr_t start, std::size_t len);

}  // namespace hetmm::os
