// Layer os: includes base.
// The only place that calls the memory-management system calls directly.
//
// hetmm interposes the libc symbols munmap/mprotect/madvise/mremap/mmap (src/host/hooks.cpp) so
// that device mappings are torn down before the CPU-side change. The runtime's own calls must
// not re-enter those hooks, so they go straight to the kernel through syscall(2). Every function
// returns 0 (or the result) on success and -errno on failure; none touches errno, so they are
// safe in signal handlers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <sys/types.h>

namespace hetmm::os {

// mmap; returns MAP_FAILED-equivalent as an error code in *err (0 on success).
void* sys_mmap(void* addr, std::size_t len, int prot, int flags, int fd, off_t off, int* err);
int sys_munmap(void* addr, std::size_t len);
int sys_mprotect(void* addr, std::size_t len, int prot);
int sys_madvise(void* addr, std::size_t len, int advice);
void* sys_mremap(void* old_addr, std::size_t old_len, std::size_t new_len, int flags,
                 void* new_addr, int* err);
long sys_ioctl(int fd, unsigned long request, void* arg);
long sys_pwrite(int fd, const void* buf, std::size_t n, off_t off);
long sys_pread(int fd, void* buf, std::size_t n, off_t off);
pid_t sys_gettid();

// Memory that belongs to the runtime: a private mapping of a memfd. Being file-backed it never
// migrates (only private anonymous memory does), so the runtime's own state can never be revoked
// under its feet; being private, a forked child gets its own copy and cannot disturb the
// parent's locks and flags (MAP_SHARED would share them). See docs/ARCHITECTURE.md.
void* map_runtime_memory(std::size_t len);
void unmap_runtime_memory(void* p, std::size_t len);

}  // namespace hetmm::os
