#include "host/registry.hpp"

#include <sched.h>

namespace hetmm::host {

std::atomic<Registered*> g_slots[kMaxRuntimes];
std::atomic<int> g_users{0};
std::atomic<int> g_count{0};

bool register_runtime(Registered* r) {
  install_process_handlers();
  for (auto& s : g_slots) {
    Registered* expected = nullptr;
    if (s.compare_exchange_strong(expected, r)) {
      g_count.fetch_add(1, std::memory_order_acq_rel);
      return true;
    }
  }
  return false;
}

void unregister_runtime(Registered* r) {
  for (auto& s : g_slots) {
    Registered* expected = r;
    if (s.compare_exchange_strong(expected, nullptr)) {
      g_count.fetch_sub(1, std::memory_order_acq_rel);
      break;
    }
  }
  // A hook or signal handler may still hold the pointer it read: wait for it to finish.
  while (g_users.load(std::memory_order_acquire) != 0) sched_yield();
}

}  // namespace hetmm::host
