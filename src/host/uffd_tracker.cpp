#include "host/uffd_tracker.hpp"

#include "os/page.hpp"
#include "os/syscalls.hpp"
#include "os/uffd.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

namespace hetmm::host {

namespace {
constexpr std::uint64_t kWanted = UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMAP |
                                  UFFD_FEATURE_EVENT_REMOVE |
                                  UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_PAGEFAULT_FLAG_WP |
                                  UFFD_FEATURE_MISSING_SHMEM | os::kUffdFeatureMove;
constexpr std::uint64_t kRequired = UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_THREAD_ID;

struct PendingFault {
  std::uintptr_t addr;
  bool write;
  bool wp;
  pid_t tid;
};

}  // namespace

UffdTracker* UffdTracker::open(bool force_user_mode_only, base::FaultInjector* injector,
                               std::string* why) {
  os::UffdOpen u = os::uffd_open(force_user_mode_only, kWanted);
  if (u.fd < 0) {
    *why = std::string("userfaultfd refused: ") + std::strerror(u.error);
    return nullptr;
  }
  if ((u.features & kRequired) != kRequired) {
    ::close(u.fd);
    *why = "userfaultfd lacks write-protect or thread-id support on this kernel";
    return nullptr;
  }
  return new UffdTracker(u.fd, u.user_mode_only, u.features, injector);
}

UffdTracker::UffdTracker(int fd, bool umo, std::uint64_t features, base::FaultInjector* injector)
    : fd_(fd), user_mode_only_(umo), features_(features), injector_(injector) {
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  zero_page_ = os::map_runtime_memory(os::kPageSize);
}

UffdTracker::~UffdTracker() {
  stop();
  // Closing the fd drops every registration; the runtime brought every page home before.
  ::close(fd_);
  ::close(stop_fd_);
  os::unmap_runtime_memory(zero_page_, os::kPageSize);
}

void UffdTracker::start(core::Mirror* mirror) {
  mirror_ = mirror;
  handler_.start(&UffdTracker::handler_main, this, "hetmm-uffd");
}

void UffdTracker::stop() {
  if (!handler_.running()) return;
  std::uint64_t one = 1;
  ssize_t w = ::write(stop_fd_, &one, sizeof one);
  (void)w;
  handler_.join();
}

void UffdTracker::abandon() { handler_.abandon(); }

int UffdTracker::prepare(std::uintptr_t start, std::size_t len, const os::Vma&) {
  // Exactly the pages that migrate. A wider window would be tempting (fewer VMA splits), but
  // anonymous VMAs merge with their neighbours, so it would capture memory that is not the
  // program's request: an allocator's internal mapping whose munmap, raised from our own
  // handler thread, would then wait for an UNMAP event only that thread can read. Neighbouring
  // registered runs merge back into one VMA anyway.
  if (int e = injected()) return e;  // the migration is abandoned: pages stay in system memory
  return os::uffd_register(fd_, start, len, true);
}

int UffdTracker::freeze(std::uintptr_t start, std::size_t len) {
  if (int e = injected()) return e;  // as for prepare
  return os::uffd_writeprotect(fd_, start, len, true, false);
}

void UffdTracker::thaw(std::uintptr_t start, std::size_t len, int) {
  os::uffd_writeprotect(fd_, start, len, false, false);
}

int UffdTracker::revoke(std::uintptr_t start, std::size_t len) {
  // Our own MADV_DONTNEED raises a REMOVE event (the kernel holds this call until the handler
  // has read it). Announce it first, so the handler knows it for ours and ignores it. A range
  // over several mappings raises one event per mapping, each a part of the announcement.
  note_own_remove(start, len);
  int rc = os::sys_madvise(reinterpret_cast<void*>(start), len, MADV_DONTNEED);
  if (rc < 0) forget_own_removes(start, start + len);
  return rc;
}

void UffdTracker::note_own_remove(std::uintptr_t start, std::size_t len) {
  if (!(features_ & UFFD_FEATURE_EVENT_REMOVE)) return;  // no event will come
  std::lock_guard lock(own_mutex_);
  if (own_count_ < kOwnRemoves) own_[own_count_++] = OwnRemove{start, start + len};
}

bool UffdTracker::take_own_remove(std::uintptr_t start, std::uintptr_t end) {
  // The event may be a part of an announced range (one event per mapping the madvise crossed:
  // taking only exact matches made the rest look like the program's MADV_DONTNEED, and the
  // device's data of those pages was dropped). What is left of the announcement stays for the
  // events still to come.
  std::lock_guard lock(own_mutex_);
  for (std::size_t i = 0; i < own_count_; ++i) {
    OwnRemove& o = own_[i];
    if (start < o.start || end > o.end) continue;
    if (start == o.start && end == o.end) {
      o = own_[--own_count_];
    } else if (start == o.start) {
      o.start = end;
    } else if (end == o.end) {
      o.end = start;
    } else if (own_count_ < kOwnRemoves) {
      own_[own_count_++] = OwnRemove{end, o.end};
      o.end = start;
    }  // else no room to split, which cannot happen: revocations run one at a time (under the
       // state lock), so at most a few announcements are ever outstanding
    return true;
  }
  return false;
}

void UffdTracker::forget_own_removes(std::uintptr_t start, std::uintptr_t end) {
  std::lock_guard lock(own_mutex_);
  for (std::size_t i = 0; i < own_count_;) {
    if (own_[i].start >= start && own_[i].end <= end)
      own_[i] = own_[--own_count_];
    else
      ++i;
  }
}

int UffdTracker::restore(std::uintptr_t start, const void* src, std::size_t len, int,
                         std::size_t* settled) {
  // EAGAIN: the mm is changing (an UNMAP/REMAP event is queued); ENOMEM: no page could be
  // allocated. Both pass; but the event may be one only our handler thread reads, and this
  // may be that thread, so the retries are bounded: after them the rest of the pages stay on
  // the device, still revoked, and the caller tries again later (a CPU fault is simply raised
  // again).
  constexpr int kRetries = 64;
  auto* s = static_cast<const char*>(src);
  int retries = 0;
  std::size_t done = 0;
  int rc = 0;
  // UFFDIO_COPY refuses (ENOENT) a range that spans two VMAs, even two registered ones, and a
  // run of pages can (runs registered apart that did not merge). So ENOENT for several pages
  // means: go page by page; for one page it means that page is no longer ours.
  bool page_by_page = false;
  while (done < len) {
    std::size_t want = page_by_page ? os::kPageSize : len - done;
    long n = injected();
    if (n == 0) n = os::uffd_copy(fd_, start + done, s + done, want, /*dontwake=*/true);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
      continue;
    }
    if ((n == -EAGAIN || n == -ENOMEM) && ++retries < kRetries) {
      if (retries > 8) ::sched_yield();
      continue;
    }
    if (n == -ENOENT && want > os::kPageSize) {
      page_by_page = true;
      continue;
    }
    if (n == -EEXIST || n == -ENOENT) {
      // EEXIST: populated behind our back, keep what the program has there. ENOENT: unmapped
      // or replaced behind our back. Either way this page's device copy is stale.
      if (n == -EEXIST) os::uffd_wake(fd_, start + done, os::kPageSize);
      done += os::kPageSize;
      continue;
    }
    rc = n < 0 ? static_cast<int>(n) : -EIO;
    if (rc == -ESTALE) done = len;  // the mm is gone: nothing left to restore into
    break;
  }
  *settled = done;
  return rc;
}

long UffdTracker::restore_by_move(std::uintptr_t start, const void* src, std::size_t len) {
  if (!can_move()) return -EOPNOTSUPP;
  if (int e = injected()) return e;
  // Holes in device memory (pages that were never touched, moved in as holes) stay holes: the
  // next CPU touch is zero-filled, as it would have been.
  long n = 0;
  std::size_t done = 0;
  for (int retries = 0; done < len && retries < 8;) {
    n = os::uffd_move(fd_, start + done, reinterpret_cast<std::uintptr_t>(src) + done, len - done,
                      os::kUffdMoveModeDontwake | os::kUffdMoveModeAllowSrcHoles);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
      continue;
    }
    if (n != -EAGAIN) break;  // EAGAIN: the mm is changing (an event is queued); try again
    ++retries;
  }
  return done > 0 ? static_cast<long>(done) : n;
}

void UffdTracker::forget(std::uintptr_t start, std::size_t len) {
  // Unregistering merges the VMAs back with their neighbours. Errors (a hole in the range,
  // nothing registered) leave nothing to undo.
  os::uffd_unregister(fd_, start, len);
}

void UffdTracker::settle(std::uintptr_t start, std::size_t len) { os::uffd_wake(fd_, start, len); }

void UffdTracker::quiesce() {
  // Dekker with handle_fault, all seq_cst: the mark (page flags) then this load, against the
  // handler's store of the flag then its load of the page flags (Mirror::tracks). One of the
  // two sees the other.
  while (unlocked_decision_.load(std::memory_order_seq_cst)) ::sched_yield();
}

void UffdTracker::handler_main(void* self) { static_cast<UffdTracker*>(self)->run_handler(); }

void UffdTracker::zero_fill(std::uintptr_t page, bool write, bool write_protect) {
  // Untouched memory in a registered window: what the kernel would have given, a zero page.
  // On failure the thread is woken and faults again: EEXIST (populated meanwhile) is served,
  // EAGAIN/ENOMEM are retried by that next fault.
  long rc = injected();
  if (rc == 0)
    rc = write           ? os::uffd_copy(fd_, page, zero_page_, os::kPageSize, false)
         : write_protect ? os::uffd_copy(fd_, page, zero_page_, os::kPageSize, false, true)
                         : os::uffd_zeropage(fd_, page, os::kPageSize, false);
  if (rc < 0) os::uffd_wake(fd_, page, os::kPageSize);
}

bool UffdTracker::handle_fault(std::uintptr_t addr, bool write, bool wp, pid_t tid) {
  std::uintptr_t page = os::page_down(addr);
  // From here to the end of a not-hetmm's answer, quiesce() waits: a migration that marks the
  // page now either is seen below, or waits until our answer is in place (and then moves it).
  unlocked_decision_.store(true, std::memory_order_seq_cst);  // before tracks() reads the flags
  struct Done {
    std::atomic<bool>& flag;
    ~Done() { flag.store(false, std::memory_order_release); }
  } done{unlocked_decision_};
  if (mirror_->tracks(page)) {
    // The state-lock holder itself faulted on a page it is migrating, or reads in place (a
    // device_copy) an untouched page a device holds a copy of. Serve what the kernel would
    // (zeros) without the lock; for a copied page, write-protected: its system page must stay
    // protected (I5), or a CPU write later changes it without dropping the copy, and a device
    // write then upgrades the stale copy over it (lost data, found by hetmm stress: a device
    // read in place of untouched pages another device had copied). The holder never writes a
    // copied page (it maps them read-only in place).
    if (tid != 0 && tid == mirror_->state_lock().owner()) {
      zero_fill(page, write, /*write_protect=*/!write && mirror_->copied(page));
      return true;
    }
    unlocked_decision_.store(false, std::memory_order_release);  // what follows takes the lock
    core::CpuFault r = mirror_->cpu_fault(page, write, /*try_only=*/true);
    if (r == core::CpuFault::busy) return false;
    // settle() woke the thread if the page came home; this covers the other outcomes (home
    // already, or a protection the program set) and is harmless otherwise.
    os::uffd_wake(fd_, page, os::kPageSize);
    return true;
  }
  injector_->maybe_stall(base::FaultInjector::decision_delay);  // decided: not ours
  if (wp) {
    // Write-protected but not ours (a freeze that was thawed meanwhile, or a thaw that failed):
    // let it through. The ioctl fails with EAGAIN while an UNMAP/REMOVE/REMAP event is in
    // flight, and then wakes nobody: the fault is retried, or the thread would sleep for good
    // (found by hetmm stress: two workers' in-place stores asleep, the handler idle).
    int rc = os::uffd_writeprotect(fd_, page, os::kPageSize, false, false);
    if (rc == -EAGAIN) return false;
    if (rc < 0) os::uffd_wake(fd_, page, os::kPageSize);  // it faults again if need be
    return true;
  }
  zero_fill(page, write, false);
  return true;
}

void UffdTracker::run_handler() {
  // Nothing here ever blocks on the state lock: its holder may be waiting (in a TLB
  // shootdown) for a device worker that is itself blocked in a fault only this thread serves.
  // Work that needs the lock is tried, and kept in order to be retried a moment later.
  constexpr std::size_t kMsgs = 64;
  constexpr std::size_t kPending = 256;
  uffd_msg msgs[kMsgs];
  PendingFault pending[kPending];
  std::size_t npending = 0;
  // Events go to the mirror's queue, which the next holder of the state lock applies before
  // anything else (Mirror::post_event): this thread only tries to be that holder. With
  // Options::inject.event_defer it leaves them all to the others, as when the lock is busy.
  auto apply_pending = [&] {
    if (!mirror_->events_pending()) return;
    if (injector_->fire(base::FaultInjector::event_defer)) return;
    mirror_->apply_events(/*try_only=*/true);
  };
  // A fault waits behind a pending event on its address, except the state-lock holder's own:
  // the event needs the lock it holds. (Found by the differential tester: a device read
  // holding the lock faulted in place on a page whose REMOVE event was pending. What the
  // holder gets is what the kernel would give for memory just dropped: zeros.)
  auto behind_event = [&](std::uintptr_t addr, pid_t tid) {
    if (tid != 0 && tid == mirror_->state_lock().owner()) return false;
    return mirror_->event_pending_at(addr);
  };
  for (;;) {
    pollfd fds[2] = {{fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    int rc = ::poll(fds, 2, (npending > 0 || mirror_->events_pending()) ? 1 : -1);
    if (rc < 0 && errno != EINTR) return;
    if (fds[1].revents & POLLIN) return;
    // Older work first: pending events in order, then pending faults.
    apply_pending();
    std::size_t kept = 0;
    for (std::size_t i = 0; i < npending; ++i) {
      PendingFault& p = pending[i];
      if (behind_event(p.addr, p.tid) || !handle_fault(p.addr, p.write, p.wp, p.tid)) pending[kept++] = p;
    }
    npending = kept;
    if (!(fds[0].revents & POLLIN)) continue;
    // The kernel lets a munmap caller go on as soon as its UNMAP event is read, before the event
    // is in the mirror's queue: from the read until every event of the batch is queued, a new
    // holder of the state lock waits (StateLock::begin_reading), or a device read of memory
    // mapped right after the munmap would still find the old device mappings.
    auto& lock = mirror_->state_lock();
    lock.begin_reading(core::current_tid());
    ssize_t n = ::read(fd_, msgs, sizeof msgs);
    if (n <= 0) {
      lock.end_reading();
      continue;
    }
    std::size_t count = static_cast<std::size_t>(n) / sizeof(uffd_msg);
    // Stamp events at once: pages that leave system memory after this moment are not theirs.
    std::uint64_t stamp = mirror_->event_stamp();
    // Events first (faults in their ranges wait behind them), then the faults, in order.
    for (std::size_t i = 0; i < count; ++i) {
      const uffd_msg& m = msgs[i];
      core::Mirror::HostEvent e{};
      if (m.event == UFFD_EVENT_REMOVE) {
        // Ours (a revocation) or the program's (a MADV_DONTNEED/FREE/REMOVE that bypassed the
        // hook): the latter drops device-resident data just as UNMAP does.
        if (take_own_remove(m.arg.remove.start, m.arg.remove.end)) continue;
        e = {false, m.arg.remove.start, 0, m.arg.remove.end - m.arg.remove.start, stamp};
      } else if (m.event == UFFD_EVENT_UNMAP) {
        e = {false, m.arg.remove.start, 0, m.arg.remove.end - m.arg.remove.start, stamp};
      } else if (m.event == UFFD_EVENT_REMAP) {
        e = {true, m.arg.remap.from, m.arg.remap.to, m.arg.remap.len, stamp};
      } else {
        continue;
      }
      if (!mirror_->post_event(e)) {
        // Full: the oldest must go first, by whoever holds the lock, who must not wait for us.
        lock.end_reading();
        while (!mirror_->post_event(e)) {
          ::poll(nullptr, 0, 1);
          mirror_->apply_events(/*try_only=*/true);
        }
        lock.begin_reading(core::current_tid());
      }
    }
    lock.end_reading();
    apply_pending();
    for (std::size_t i = 0; i < count; ++i) {
      const uffd_msg& m = msgs[i];
      if (m.event != UFFD_EVENT_PAGEFAULT) continue;
      auto addr = static_cast<std::uintptr_t>(m.arg.pagefault.address);
      bool write = (m.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE) != 0;
      bool wp = (m.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP) != 0;
      auto tid = static_cast<pid_t>(m.arg.pagefault.feat.ptid);
      if (!behind_event(addr, tid) && handle_fault(addr, write, wp, tid)) continue;
      if (npending < kPending) {
        pending[npending++] = PendingFault{addr, write, wp, tid};
        continue;
      }
      while (behind_event(addr, tid) || !handle_fault(addr, write, wp, tid)) {
        ::poll(nullptr, 0, 1);
        apply_pending();
      }
    }
  }
}

}  // namespace hetmm::host
