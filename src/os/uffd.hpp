// Layer os: includes base.
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

// The installed uapi header may predate UFFDIO_MOVE (Linux 6.8): its ABI, defined here.
inline constexpr std::uint64_t kUffdFeatureMove = 1ull << 16;  // UFFD_FEATURE_MOVE
inline constexpr std::uint64_t kUffdMoveModeDontwake = 1;       // UFFDIO_MOVE_MODE_DONTWAKE
inline constexpr std::uint64_t kUffdMoveModeAllowSrcHoles = 2;  // ..._ALLOW_SRC_HOLES

int uffd_register(int fd, std::uintptr_t start, std::size_t len, bool write_protect);
// Write-protect mode only: for memory that must share the page protection of WP-registered
// ranges (UFFDIO_MOVE requires it) but whose missing pages the kernel fills as usual.
int uffd_register_wp_only(int fd, std::uintptr_t start, std::size_t len);
int uffd_unregister(int fd, std::uintptr_t start, std::size_t len);
// Returns bytes copied (may be short) or -errno.
// write_protect: the pages arrive write-protected (UFFDIO_COPY_MODE_WP; WP-registered ranges).
long uffd_copy(int fd, std::uintptr_t dst, const void* src, std::size_t len, bool dontwake,
               bool write_protect = false);
long uffd_zeropage(int fd, std::uintptr_t dst, std::size_t len, bool dontwake);
int uffd_writeprotect(int fd, std::uintptr_t start, std::size_t len, bool protect, bool dontwake);
int uffd_wake(int fd, std::uintptr_t start, std::size_t len);
// UFFDIO_MOVE: remaps the anonymous pages of [src, src+len) to [dst, dst+len) without a copy
// (whole 2 MiB PMDs when both sides are aligned and the source is a huge page). dst must be
// registered with fd and empty. Returns the bytes moved (may be short) or -errno.
long uffd_move(int fd, std::uintptr_t dst, std::uintptr_t src, std::size_t len, std::uint64_t mode);

}  // namespace hetmm::os
