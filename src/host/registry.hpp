// Layer host: includes base, os, device, core.
// The live runtimes of the process, as the process-wide hooks see them: the SIGSEGV handler,
// the interposed munmap/mprotect/madvise/mremap/mmap and the fork handlers.
//
// Slots are atomic pointers read lock-free (signal handlers read them). A runtime leaves the
// registry before it is destroyed, and unregister() waits until no hook is still using it.
#pragma once

#include "core/mirror.hpp"

#include <atomic>
#include <cstddef>

namespace hetmm::host {

struct Registered {
  core::Mirror* mirror = nullptr;
  bool mprotect_tracking = false;
  std::atomic<bool> orphaned{false};  // in a forked child: no threads, ignore
};

inline constexpr std::size_t kMaxRuntimes = 16;

// Returns false when every slot is taken.
bool register_runtime(Registered* r);
void unregister_runtime(Registered* r);

// Calls f(Registered&) for each live runtime, counting itself as a user of the slots.
template <class F>
void for_each_runtime(F&& f);

// Implementation details exposed for the template above.
extern std::atomic<Registered*> g_slots[kMaxRuntimes];
extern std::atomic<int> g_users;
extern std::atomic<int> g_count;

template <class F>
void for_each_runtime(F&& f) {
  if (g_count.load(std::memory_order_acquire) == 0) return;
  g_users.fetch_add(1, std::memory_order_acq_rel);
  for (auto& s : g_slots) {
    Registered* r = s.load(std::memory_order_acquire);
    if (r != nullptr && !r->orphaned.load(std::memory_order_relaxed)) f(*r);
  }
  g_users.fetch_sub(1, std::memory_order_acq_rel);
}

// Installs the SIGSEGV/SIGBUS dispatcher and the fork handlers (once per process).
void install_process_handlers();
// True when our munmap & co. are the ones the program's calls resolve to.
bool hooks_interposed();
// munmap as the interposed one does it, for the runtime's own callers (Runtime::deallocate):
// every live runtime's device mappings of the range go, and its device-resident data once the
// kernel has unmapped it, all under the state locks (hooks.cpp). Returns 0 or -errno.
int unmap(void* addr, std::size_t len);

}  // namespace hetmm::host
