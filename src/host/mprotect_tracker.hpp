// Layer host: includes base, os, device, core.
// Host tracking with mprotect + SIGSEGV: works wherever userfaultfd is refused.
//
// Revoke: PROT_NONE, then MADV_DONTNEED to free the memory. A CPU touch raises SIGSEGV, served
// in the faulting thread (src/host/signal_dispatch.cpp): the data is written into the still
// inaccessible page through /proc/self/mem (FOLL_FORCE), and only then is the protection
// restored, so no other thread ever sees a half-copied page.
//
// Memory released behind hetmm's back (glibc trimming its heap or unmapping a freed block with
// its internal calls) is noticed when a revoked page would come home: the page must still be a
// PROT_NONE private anonymous mapping, checked with PROCMAP_QUERY (Linux 6.11+); otherwise the
// stale device copy is dropped and nothing is written. A new PROT_NONE mapping at the same
// address is indistinguishable (anonymous VMA names would tell them apart, but kernels built
// without CONFIG_ANON_VMA_NAME refuse them).
//
// What it cannot promise: the kernel's own accesses (read(2) into a revoked buffer, a futex on
// it) are not CPU faults of the program and fail with EFAULT; calls that bypass the interposed
// hooks (glibc-internal munmap) are not seen at all.
#pragma once

#include "os/arena.hpp"

#include "core/host_tracker.hpp"

#include <string>

namespace hetmm::host {

class MprotectTracker final : public core::HostTracker, public os::RuntimeAllocated {
 public:
  // Throws hetmm::Error(unsupported) if /proc/self/mem cannot be opened for writing.
  MprotectTracker();
  ~MprotectTracker() override;

  Tracking mode() const override { return Tracking::mprotect; }
  int prepare(std::uintptr_t, std::size_t, const os::Vma&) override { return 0; }
  int freeze(std::uintptr_t start, std::size_t len) override;
  void thaw(std::uintptr_t start, std::size_t len, int prot) override;
  int revoke(std::uintptr_t start, std::size_t len) override;
  int restore(std::uintptr_t start, const void* src, std::size_t len, int prot,
              std::size_t* settled) override;
  void discard(std::uintptr_t start, std::size_t len, int prot) override;
  void forget(std::uintptr_t, std::size_t) override {}  // restores merged the VMAs already
  void settle(std::uintptr_t, std::size_t) override {}  // waiters retake the state lock
  bool serves_kernel_faults() const override { return false; }

 private:
  int mem_fd_ = -1;
  int maps_fd_ = -1;
};

}  // namespace hetmm::host
