// Layer core: includes base, os, device, telemetry, policy.
// How the mirror revokes and restores the CPU's copy of a page. Two implementations live in
// src/host/: userfaultfd (MISSING + write-protect) and mprotect (PROT_NONE + SIGSEGV).
//
// All calls happen under the mirror's state lock, in this order for a migration:
//   prepare -> freeze -> (copy into device frames) -> revoke      or   ... -> thaw (abort)
// and for a page coming home: restore. discard makes a revoked page whose data was dropped
// (munmap/MADV_DONTNEED of device-resident memory) behave like fresh memory again.
#pragma once

#include "os/proc_maps.hpp"

#include <hetmm/hetmm.hpp>

#include <cstddef>
#include <cstdint>

namespace hetmm::core {

class HostTracker {
 public:
  virtual ~HostTracker() = default;
  virtual Tracking mode() const = 0;
  // Make [start, start+len) (inside vma) trackable. Returns 0 or -errno.
  virtual int prepare(std::uintptr_t start, std::size_t len, const os::Vma& vma) = 0;
  // After pages were marked (kMigrating): waits until no CPU-fault decision taken without the
  // state lock before the mark is still being carried out. The userfaultfd handler serves a
  // fault on a page that is not hetmm's without the lock (a zero page, or its write access
  // back); decided just before a migration marked the page and carried out just after the
  // page left (a zero-copy move, a copy's write-protect), it put a zero page where the
  // device's data belonged, or let a write in under the copy (issue 16). Never blocks for long:
  // the decision and its one ioctl take no lock.
  virtual void quiesce() {}
  // Stop CPU writes: from here until revoke or thaw, a CPU write waits for the state lock.
  virtual int freeze(std::uintptr_t start, std::size_t len) = 0;
  virtual void thaw(std::uintptr_t start, std::size_t len, int prot) = 0;
  // Drop the CPU's copy: the next CPU touch faults into hetmm.
  virtual int revoke(std::uintptr_t start, std::size_t len) = 0;
  // Install len bytes from src at start and give the CPU access with prot. Returns 0 or -errno.
  // Pages unmapped, replaced or populated behind hetmm's back are skipped, never overwritten:
  // their device copy is stale and is dropped. -ESTALE: the whole rest is gone. Whatever it
  // returns, *settled is the length from start that is done with (home, or skipped): on a
  // transient failure (EAGAIN, ENOMEM) only the rest stays on the device.
  virtual int restore(std::uintptr_t start, const void* src, std::size_t len, int prot,
                      std::size_t* settled) = 0;
  // Zero-copy restore: moves the pages of [src, src+len) (device memory that is private
  // anonymous memory of this process, device/sim/frame_pool.hpp) to start by remapping them.
  // Returns the bytes moved, a prefix (the first page that could not move stops it: populated
  // behind our back, shared after a fork, ...), or -errno (EOPNOTSUPP: this tracker cannot).
  // What did not move is still at src for restore() to copy. Like restore, it wakes nobody.
  virtual long restore_by_move(std::uintptr_t start, const void* src, std::size_t len) {
    (void)start;
    (void)src;
    (void)len;
    return -95;  // EOPNOTSUPP
  }
  virtual void discard(std::uintptr_t start, std::size_t len, int prot) = 0;
  // After restore and the bookkeeping that follows it: let threads waiting on the range retry.
  // (A thread must not see its page home before the mirror says so.)
  virtual void settle(std::uintptr_t start, std::size_t len) = 0;
  // [start, start+len) holds no revoked page any more and is about to be remapped: drop what
  // prepare() did to it. (userfaultfd registration splits VMAs, and mremap refuses a range
  // that spans several: a buffer hetmm once migrated must stay remappable.)
  virtual void forget(std::uintptr_t start, std::size_t len) = 0;
  // Whether a write into a revoked page from inside the kernel (read(2)) is served.
  virtual bool serves_kernel_faults() const = 0;
};

}  // namespace hetmm::core
