// The process's SIGSEGV/SIGBUS handler.
//
// In order: (1) a CPU touch of a page that an mprotect-tracking runtime revoked is served here,
// in the faulting thread (copy home, restore protection, retry the instruction); (2) a fault in
// one of hetmm's recoverable accesses (os/safe_access.S) resumes at its fixup; (3) anything else
// goes to the handler that was installed before ours, or to the default action.
//
// Signal safety: no allocation; the only lock taken is the mirror's state lock, which no thread
// holds while touching user memory (core/state_lock.hpp). A device worker that faults on a raw
// pointer leaves the shootdown protocol for the duration (active = 0), so the bring-home can
// shoot down its own device without waiting for itself.
#include "device/sim/worker.hpp"
#include "host/registry.hpp"
#include "os/safe_access.hpp"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <mutex>
#include <pthread.h>
#include <ucontext.h>
#include <cstdio>
#include <cstdlib>
#include <unistd.h>

namespace hetmm::host {

namespace {

struct sigaction g_previous_segv;
// HETMM_DEBUG_FAULTS=1: report a fault that is not hetmm's and abort (instead of the default
// action), which shows where a program touched memory it should not have.
bool g_debug_faults = false;

// The last address whose SIGSEGV hetmm did not serve, per thread (see on_fault).
thread_local std::uintptr_t t_last_unserved __attribute__((tls_model("initial-exec"))) = 0;
struct sigaction g_previous_bus;

void chain(int sig, siginfo_t* info, void* uc) {
  const struct sigaction& prev = sig == SIGSEGV ? g_previous_segv : g_previous_bus;
  if (prev.sa_flags & SA_SIGINFO) {
    if (prev.sa_sigaction != nullptr) {
      prev.sa_sigaction(sig, info, uc);
      return;
    }
  } else if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN) {
    prev.sa_handler(sig);
    return;
  }
  // Default action: restore it and return; the faulting instruction runs again and the kernel
  // delivers the signal with its default disposition (a core dump, as without hetmm).
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(sig, &dfl, nullptr);
}

void on_fault(int sig, siginfo_t* info, void* ucv) {
  int saved_errno = errno;
  auto* uc = static_cast<ucontext_t*>(ucv);
  auto addr = reinterpret_cast<std::uintptr_t>(info->si_addr);
  bool write = (uc->uc_mcontext.gregs[REG_ERR] & 2) != 0;

  if (sig == SIGSEGV) {
    detail::WorkerContext* w = detail::tls_worker;
    std::uint64_t active = w ? w->active.exchange(0, std::memory_order_acq_rel) : 0;
    bool served = false, any_mprotect = false;
    for_each_runtime([&](Registered& r) {
      if (served || !r.mprotect_tracking) return;
      any_mprotect = true;
      // cpu_fault checks the page's flags lock-free first: a foreign fault costs no lock.
      if (r.mirror->cpu_fault(addr, write) == core::CpuFault::served) served = true;
    });
    if (w) w->active.store(active, std::memory_order_release);
    if (served) {
      t_last_unserved = 0;
      errno = saved_errno;
      return;
    }
    // The page may have come home (and been unprotected) between the fault and this check:
    // the fault is then stale. Retry the instruction once before deciding it is not ours.
    if (any_mprotect && t_last_unserved != addr) {
      t_last_unserved = addr;
      errno = saved_errno;
      return;
    }
    t_last_unserved = 0;
  }
  auto rip = static_cast<std::uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]);
  if (std::uintptr_t fix = os::extable_fixup(rip)) {
    uc->uc_mcontext.gregs[REG_RIP] = static_cast<greg_t>(fix);
    errno = saved_errno;
    return;
  }
  // (3) JIT-compiled kernel code touched process memory in place and the CPU MMU refused
  //     (unmapped or protected under the kernel): the work-group driver reports a fault
  //     (spirv/kernel_context.hpp, J3). Only set while JIT code runs, never in the runtime.
  if (detail::WorkerContext* w = detail::tls_worker; w != nullptr && w->jit_recover != nullptr) {
    w->jit_fault_addr = addr;
    w->jit_fault_write = write;
    sigjmp_buf* to = w->jit_recover;
    w->jit_recover = nullptr;
    errno = saved_errno;
    // The driver's sigsetjmp does not save the mask (a syscall per work-group); the signal
    // being handled is blocked here and must not stay blocked after the jump.
    sigset_t unblock;
    sigemptyset(&unblock);
    sigaddset(&unblock, sig);
    pthread_sigmask(SIG_UNBLOCK, &unblock, nullptr);
    siglongjmp(*to, 2);
  }
  errno = saved_errno;
  if (g_debug_faults) {
    char buf[128];
    int n = snprintf(buf, sizeof buf, "hetmm: fault at %p (rip %p) is not hetmm's\n", info->si_addr, (void*)rip);
    ssize_t w = ::write(2, buf, n); (void)w;
    abort();
  }
  chain(sig, info, ucv);
}

void install_fault_handlers() {
  const char* debug = std::getenv("HETMM_DEBUG_FAULTS");
  g_debug_faults = debug != nullptr && debug[0] == '1';
  struct sigaction sa {};
  sa.sa_sigaction = &on_fault;
  sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &g_previous_segv);
  sigaction(SIGBUS, &sa, &g_previous_bus);
}

}  // namespace

void install_fork_handlers();

void install_process_handlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    install_fault_handlers();
    install_fork_handlers();
  });
}

}  // namespace hetmm::host
