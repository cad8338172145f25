#include "host/mprotect_tracker.hpp"

#include "os/syscalls.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

namespace hetmm::host {

MprotectTracker::MprotectTracker() {
  mem_fd_ = ::open("/proc/self/mem", O_RDWR | O_CLOEXEC);
  if (mem_fd_ < 0)
    throw Error(Errc::unsupported, std::string("mprotect tracking needs /proc/self/mem: ") +
                                       std::strerror(errno));
}

MprotectTracker::~MprotectTracker() {
  if (mem_fd_ >= 0) ::close(mem_fd_);
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

int MprotectTracker::restore(std::uintptr_t start, const void* src, std::size_t len, int prot) {
  auto* s = static_cast<const char*>(src);
  for (std::size_t done = 0; done < len;) {
    long n = os::sys_pwrite(mem_fd_, s + done, len - done, static_cast<off_t>(start + done));
    if (n == -EINTR) continue;
    if (n <= 0) return n < 0 ? static_cast<int>(n) : -EIO;
    done += static_cast<std::size_t>(n);
  }
  return os::sys_mprotect(reinterpret_cast<void*>(start), len, prot);
}

void MprotectTracker::discard(std::uintptr_t start, std::size_t len, int prot) {
  // The data was dropped: the page becomes fresh memory with the program's protection.
  os::sys_mprotect(reinterpret_cast<void*>(start), len, prot);
}

}  // namespace hetmm::host
