// Layer os: includes base.
#include "os/asymmetric_fence.hpp"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace hetmm::os {

namespace {

long membarrier(int cmd) { return syscall(__NR_membarrier, cmd, 0, 0); }

bool register_process() {
  long supported = membarrier(MEMBARRIER_CMD_QUERY);
  if (supported < 0 || (supported & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return false;
  return membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
}

}  // namespace

bool asymmetric_fences() {
  static const bool available = [] {
    const char* env = std::getenv("HETMM_MEMBARRIER");
    if (env != nullptr && std::strcmp(env, "0") == 0) return false;
    return register_process();
  }();
  return available;
}

void heavy_fence() {
  if (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return;
  // A forked child's memory map may not carry the parent's registration: register again.
  if (errno == EPERM && membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0 &&
      membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0)
    return;
  static const char kMessage[] = "hetmm: membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) failed "
                                 "after registration: TLB shootdowns cannot be ordered\n";
  (void)!write(2, kMessage, sizeof kMessage - 1);
  std::abort();
}

}  // namespace hetmm::os
