#include "host/mprotect_tracker.hpp"

#include "os/proc_maps.hpp"
#include "os/syscalls.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

namespace hetmm::host {

MprotectTracker::MprotectTracker() {
  mem_fd_ = ::open("/proc/self/mem", O_RDWR | O_CLOEXEC);
  if (mem_fd_ < 0)
    throw Error(Errc::unsupported, std::string("mprotect tracking needs /proc/self/mem: ") +
                                       std::strerror(errno));
  maps_fd_ = ::open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
}

MprotectTracker::~MprotectTracker() {
  if (mem_fd_ >= 0) ::close(mem_fd_);
  if (maps_fd_ >= 0) ::close(maps_fd_);
}

int MprotectTracker::freeze(std::uintptr_t start, std::size_t len) {
  return os::sys_mprotect(reinterpret_cast<void*>(start), len, PROT_READ);
}

void MprotectTracker::thaw(std::uintptr_t start, std::size_t len, int prot) {
  os::sys_mprotect(reinterpret_cast<void*>(start), len, prot);
}

int MprotectTracker::revoke(std::uintptr_t start, std::size_t len) {
  int rc = os::sys_mprotect(reinterpret_cast<void*>(start), len, PROT_NONE);
  if (rc < 0) return rc;
  os::sys_madvise(reinterpret_cast<void*>(start), len, MADV_DONTNEED);  // frees the memory
  return 0;
}

namespace {
int write_home(int mem_fd, std::uintptr_t start, const char* src, std::size_t len, int prot) {
  for (std::size_t done = 0; done < len;) {
    long n = os::sys_pwrite(mem_fd, src + done, len - done, static_cast<off_t>(start + done));
    if (n == -EINTR) continue;
    if (n <= 0) return n < 0 ? static_cast<int>(n) : -EIO;
    done += static_cast<std::size_t>(n);
  }
  return os::sys_mprotect(reinterpret_cast<void*>(start), len, prot);
}
}  // namespace

int MprotectTracker::restore(std::uintptr_t start, const void* src, std::size_t len, int prot,
                             std::size_t* settled) {
  auto* s = static_cast<const char*>(src);
  std::uintptr_t end = start + len;
  *settled = 0;
  if (maps_fd_ < 0) {
    int r = write_home(mem_fd_, start, s, len, prot);
    if (r == 0) *settled = len;
    return r;
  }
  // Write home only the parts that are still the PROT_NONE anonymous memory we revoked; parts
  // unmapped or replaced behind our back are skipped (their device copy is stale).
  for (std::uintptr_t a = start; a < end;) {
    os::ProcmapQuery q{};
    q.size = sizeof q;
    q.query_flags = os::kProcmapCoveringOrNext;
    q.query_addr = a;
    long rc = os::sys_ioctl(maps_fd_, os::kProcmapQuery, &q);
    if (rc == -ENOTTY || rc == -EINVAL) {
      int r = write_home(mem_fd_, a, s + (a - start), end - a, prot);
      if (r == 0) *settled = len;
      return r;
    }
    if (rc < 0 || q.vma_start >= end) break;  // nothing mapped in the rest of the range
    if (q.vma_start > a) a = q.vma_start;
    std::uintptr_t seg_end = q.vma_end < end ? q.vma_end : end;
    if ((q.vma_flags & 7) == 0 && q.inode == 0) {
      int r = write_home(mem_fd_, a, s + (a - start), seg_end - a, prot);
      if (r < 0) return r;
    }
    a = seg_end;
    *settled = a - start;
  }
  *settled = len;
  return 0;
}

void MprotectTracker::discard(std::uintptr_t start, std::size_t len, int prot) {
  // The data was dropped: the page becomes fresh memory with the program's protection.
  os::sys_mprotect(reinterpret_cast<void*>(start), len, prot);
}

}  // namespace hetmm::host
