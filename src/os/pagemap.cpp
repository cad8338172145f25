#include "os/pagemap.hpp"

#include "os/page.hpp"
#include "os/syscalls.hpp"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

namespace hetmm::os {

namespace {

// From linux/fs.h (6.7+); the installed uapi headers may be older.
struct page_region {
  std::uint64_t start, end, categories;
};
struct pm_scan_arg {
  std::uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages, category_inverted,
      category_mask, category_anyof_mask, return_mask;
};
constexpr std::uint64_t PAGE_IS_FILE = 1u << 2;
constexpr std::uint64_t PAGE_IS_PRESENT = 1u << 3;
constexpr std::uint64_t PAGE_IS_SWAPPED = 1u << 4;
constexpr std::uint64_t PAGE_IS_PFNZERO = 1u << 5;
constexpr std::uint64_t PAGE_IS_HUGE = 1u << 6;
constexpr unsigned long PAGEMAP_SCAN = _IOWR('f', 16, pm_scan_arg);

// The descriptor is kept open. /proc/self/pagemap names the process that opened it, and a forked
// child inherits the descriptor: read in the child, it described the parent's memory, pages the
// child had written but the parent had not looked untouched, and a migration zero-filled them
// (found by the privileges test, which forks a child that uses hetmm, when an earlier test in
// the same process had migrated pages). fork's child handler (host/fork.cpp) closes it through
// forget_pagemap(), so the scan path pays no system call to check whose it is.
std::atomic<int> g_pagemap_fd{-2};  // -2: not opened yet

int pagemap_fd() {
  int f = g_pagemap_fd.load(std::memory_order_acquire);
  if (f != -2) return f;
  int nf = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  int expected = -2;
  if (g_pagemap_fd.compare_exchange_strong(expected, nf, std::memory_order_acq_rel)) return nf;
  if (nf >= 0) ::close(nf);  // another thread opened it first
  return expected;
}

std::atomic<int> scan_state{0};  // 0 unknown, 1 works, -1 refused

bool scan(int fd, std::uintptr_t start, std::size_t npages, std::uint8_t* out) {
  page_region regions[64];
  std::uintptr_t end = start + npages * kPageSize;
  std::uintptr_t cursor = start;
  while (cursor < end) {
    pm_scan_arg arg{};
    arg.size = sizeof arg;
    arg.start = cursor;
    arg.end = end;
    arg.vec = reinterpret_cast<std::uint64_t>(regions);
    arg.vec_len = 64;
    arg.return_mask = PAGE_IS_FILE | PAGE_IS_PRESENT | PAGE_IS_SWAPPED | PAGE_IS_PFNZERO |
                      PAGE_IS_HUGE;
    long n = sys_ioctl(fd, PAGEMAP_SCAN, &arg);
    if (n < 0) return false;
    for (long i = 0; i < n; ++i) {
      std::uint8_t bits = 0;
      std::uint64_t c = regions[i].categories;
      if (c & PAGE_IS_PRESENT) bits |= kPagePresent;
      if (c & PAGE_IS_SWAPPED) bits |= kPageSwapped;
      if (c & PAGE_IS_PFNZERO) bits |= kPageZero;
      if (c & PAGE_IS_HUGE) bits |= kPageHuge;
      if (c & PAGE_IS_FILE) bits |= kPageFile;
      for (std::uintptr_t a = regions[i].start; a < regions[i].end; a += kPageSize)
        out[(a - start) / kPageSize] = bits;
    }
    if (arg.walk_end <= cursor) break;
    cursor = arg.walk_end;
  }
  return true;
}

bool read_pagemap(int fd, std::uintptr_t start, std::size_t npages, std::uint8_t* out) {
  std::uint64_t words[512];
  for (std::size_t done = 0; done < npages;) {
    std::size_t n = npages - done < 512 ? npages - done : 512;
    off_t off = static_cast<off_t>(((start / kPageSize) + done) * sizeof(std::uint64_t));
    long r = sys_pread(fd, words, n * sizeof(std::uint64_t), off);
    if (r <= 0) return false;
    std::size_t got = static_cast<std::size_t>(r) / sizeof(std::uint64_t);
    for (std::size_t i = 0; i < got; ++i) {
      std::uint64_t w = words[i];
      std::uint8_t bits = 0;
      if (w & (1ull << 63)) bits |= kPagePresent;
      if (w & (1ull << 62)) bits |= kPageSwapped;
      if (w & (1ull << 61)) bits |= kPageFile;
      out[done + i] = bits;
    }
    done += got;
  }
  return true;
}

}  // namespace

bool query_pages(std::uintptr_t start, std::size_t npages, std::uint8_t* out) {
  std::memset(out, 0, npages);
  int fd = pagemap_fd();
  if (fd < 0) return false;
  if (scan_state.load(std::memory_order_relaxed) >= 0) {
    if (scan(fd, start, npages, out)) {
      scan_state.store(1, std::memory_order_relaxed);
      return true;
    }
    if (scan_state.load(std::memory_order_relaxed) == 0) scan_state.store(-1);
    std::memset(out, 0, npages);
  }
  return read_pagemap(fd, start, npages, out);
}

bool pagemap_scan_supported() {
  std::uint8_t b[1];
  static char probe[kPageSize] __attribute__((aligned(4096)));
  query_pages(reinterpret_cast<std::uintptr_t>(probe), 1, b);
  return scan_state.load() == 1;
}

void forget_pagemap() {
  int fd = g_pagemap_fd.exchange(-2);
  if (fd >= 0) ::close(fd);
}

}  // namespace hetmm::os
