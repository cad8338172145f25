// Layer os: includes base.
// Asymmetric memory fences (membarrier(2)): Dekker's pattern with one cheap side. The frequent
// side (a device worker publishing that it uses a translation, then re-reading the epoch)
// stores with no hardware fence, only light_fence() to keep the compiler from reordering; the
// rare side (a TLB shootdown) calls heavy_fence() between its write and its read, which makes
// every thread of the process execute a full memory barrier before it returns. Together they
// order as if both sides had fenced: either the worker's store is visible to the shootdown, or
// the worker's re-read comes after the barrier and sees the new epoch. (The same construction as
// liburcu's membarrier flavour and folly's asymmetric barriers.)
//
// Where membarrier's private expedited command cannot be registered (an old kernel, a seccomp
// filter) or HETMM_MEMBARRIER=0 is set, asymmetric_fences() is false and callers keep both
// fences on the frequent side (a sequentially consistent store). The answer is fixed for the
// process's life: code generated for one protocol (JIT-compiled kernels) stays valid.
#pragma once

#include <atomic>

namespace hetmm::os {

// Whether heavy_fence() is available; registers the process with membarrier on the first call.
bool asymmetric_fences();

// Only where asymmetric_fences(): returns once every thread of the process has executed a full
// memory barrier since the call began. Async-signal-safe (one system call); never fails (a
// refused barrier after a successful registration aborts: no ordering could be promised).
void heavy_fence();

// The frequent side's compiler barrier (no instruction).
inline void light_fence() { std::atomic_signal_fence(std::memory_order_seq_cst); }

}  // namespace hetmm::os
