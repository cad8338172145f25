// Layer device: includes base, os, telemetry.
// A worker thread of the software device: its TLB, its fault request and its place in the
// shootdown protocol.
//
// Shootdown protocol (an RCU-like grace period per access):
//   worker, while it takes part in a kernel (SimDevice::running_workers_ counts it in first):
//     around every device access:
//       e = epoch; active = e; if (epoch != e) retry;   // publish, then re-check
//       if (e != tlb_epoch) flush TLB;                   // a newer shootdown happened
//       translate (TLB, else page table); access; active = 0;
//   invalidator, holding the mirror's state lock:
//       clear PTEs; target = ++epoch;
//       if no worker takes part in a kernel: done (one that joins later reads the new epoch);
//       heavy fence (membarrier, os/asymmetric_fence.hpp);
//       wait until every worker has active == 0 or active >= target.
// After the wait no worker can use a translation made before the PTEs were cleared, so the
// frame may be reused or the CPU-side change may proceed. A worker waiting on a fault, or
// blocked in a CPU page fault on a raw pointer, has active == 0 and never delays a shootdown.
// The publish `active = e` is a plain store and a compiler barrier (publish() below): the
// invalidator's heavy fence orders it against the re-check, so the hot path carries no
// hardware fence. Where membarrier is unavailable the publish is a sequentially consistent
// store instead (and the invalidator skips the heavy fence).
//
// Thread::load/store run the worker's side inline for a TLB hit on a device frame
// (include/hetmm/detail/hit_path.hpp: the same steps, the same words) and call the code below
// for everything else; the constants they compile against are checked in worker_access.cpp.
//
// Only accesses to device frames (local PTEs) stay inside the protocol. An in-place access
// (a PTE that points at the process page itself) clears `active` once it has its
// translation and then touches the page through the CPU MMU, exactly like a CPU thread: the
// CPU side keeps it coherent (a write-protected or revoked page faults into hetmm, a page
// unmapped meanwhile fails the recoverable access and the worker faults again). It must not
// hold up a shootdown: it may block in a userfaultfd fault that only the handler thread
// serves, and the handler may itself be the invalidator (bringing a page home for a CPU
// fault) — a deadlock the differential tester found (`hetmm stress --seed 290`).
#pragma once

#include "device/sim/fault_buffer.hpp"
#include "os/asymmetric_fence.hpp"
#include "os/os_thread.hpp"

#include <atomic>
#include <csetjmp>
#include <cstddef>
#include <cstdint>
#include <hetmm/detail/hit_path.hpp>
#include <sys/types.h>

namespace hetmm::device::sim {
class SimDevice;
}

namespace hetmm::detail {

struct WorkerContext {
  // 1024 entries (16 KiB): JIT-compiled kernels and Thread::load/store probe it inline on every
  // access, and a kernel over a few large arrays, or gathering over a table, needs more than a
  // handful of pages.
  static constexpr std::size_t kTlbShift = HitPath::kTlbShift;
  static constexpr std::size_t kTlbEntries = std::size_t{1} << kTlbShift;
  static constexpr std::uint64_t kTlbHash = HitPath::kTlbHash;
  device::sim::SimDevice* device = nullptr;
  unsigned index = 0;
  pid_t tid = 0;
  // active .. self in this order: Thread's hit path reads them as HitPath::Words.
  alignas(64) std::atomic<std::uint64_t> active{0};
  std::uint64_t tlb_epoch = 0;
  TlbEntry tlb[kTlbEntries];
  // The device's shootdown epoch where Thread's hit path may publish with a plain store
  // (SimDevice::asymmetric_fences()), else no_hit_epoch().
  const std::atomic<std::uint64_t>* device_epoch = nullptr;
  WorkerContext* self = this;
  // Block entries (JIT-compiled kernels only): vpn = address >> 21, and pages block_run[slot]
  // (first | last << 32, page indices in the block) are either mapped in place with the rights
  // in pte (kValid, kWrite; the whole block, or the run a buffer covers in it), in this epoch,
  // or, with kLocal, in device memory in one contiguous run of frames, page i at
  // (pte & kAddrMask) + i * 4 KiB (J4). A gather over a table of a few MiB would miss in the
  // page TLB on nearly every access; eight block entries
  // cover 16 MiB. An array smaller than a block, or one not aligned to blocks, is a run too.
  // Direct-mapped by block number: 256 entries keep two 64 MiB arrays side by side and a small
  // buffer in the heap from evicting each other (with 64, a 3x3 convolution's input, output and
  // filter took one slot in turn).
  static constexpr std::size_t kBlockTlbEntries = 256;
  TlbEntry block_tlb[kBlockTlbEntries];
  std::uint64_t block_run[kBlockTlbEntries];
  std::uint64_t tlb_hits = 0;
  std::uint64_t tlb_misses = 0;
  std::uint64_t local_bytes = 0;     // accessed in device frames (for the link model)
  std::uint64_t in_place_bytes = 0;  // accessed in system memory, in place
  // Access counters: in-place bytes per 2 MiB block, in a small direct-mapped table whose
  // slots go to the device page table's per-block count when another block takes them and when
  // the worker finishes its part of a kernel (SimDevice::count_in_place / flush_in_place_counts).
  // Only this worker touches the table.
  static constexpr std::size_t kCounterSlots = 64;
  struct InPlaceCount {
    std::uint64_t block = ~std::uint64_t{0};
    std::uint64_t bytes = 0;
  };
  InPlaceCount in_place_counts[kCounterSlots];
  device::sim::FaultRequest request;
  os::OsThread thread;
  // JIT-compiled kernels (src/spirv): per-worker resources (arena, fibers), released with the
  // worker; and, while JIT code runs, where a fault it cannot survive jumps to (the SIGSEGV
  // handler and the slow path use it; see spirv/kernel_context.hpp, J3).
  void* jit_state = nullptr;
  void (*jit_state_release)(void*) = nullptr;
  sigjmp_buf* jit_recover = nullptr;
  std::uintptr_t jit_fault_addr = 0;
  bool jit_fault_write = false;
  // Where read_span/write_span pieces of in-place pages are copied (they are process memory,
  // which may be unmapped under the kernel: only recoverable instructions touch it).
  alignas(64) std::byte span_bounce[4096];

  static std::size_t slot(std::uint64_t vpn) {
    // Multiplicative (Fibonacci) hashing: the top bits of vpn * 2^64/phi. Low bits alone, or a
    // few folded shifts, made arrays that malloc places 16 MiB + 4 KiB apart collide in most
    // slots (the SPIR-V benchmark's saxpy saw its miss count swing 300x with ASLR). The JIT's
    // inline probe (spirv/mmu_probes.cpp) computes the same.
    return static_cast<std::size_t>((vpn * kTlbHash) >> (64 - kTlbShift));
  }
  static std::size_t block_slot(std::uint64_t block) { return block & (kBlockTlbEntries - 1); }
  void flush_tlb() {
    for (auto& e : tlb) e.vpn = ~std::uint64_t{0};
    for (auto& e : block_tlb) e.vpn = ~std::uint64_t{0};
  }
  // The protocol's publish (see above); the caller re-reads the epoch next. `asymmetric`:
  // SimDevice::asymmetric_fences(), fixed for the process.
  void publish(std::uint64_t e, bool asymmetric) {
    if (asymmetric) {
      active.store(e, std::memory_order_relaxed);
      os::light_fence();
    } else {
      active.store(e, std::memory_order_seq_cst);
    }
  }
  // The TLB holds translations of one shootdown epoch: a newer epoch empties it first.
  void sync_tlb(std::uint64_t epoch) {
    if (epoch != tlb_epoch) {
      flush_tlb();
      tlb_epoch = epoch;
    }
  }
};

// HitPath::kNoEpoch: Thread's hit path never matches it.
const std::atomic<std::uint64_t>* no_hit_epoch() noexcept;

// A read-modify-write of n (4 or 8) bytes at p for JIT-compiled kernels: op is a
// spirv::AtomicOp (| 0x100 for floating point), returns the old value. An in-place page is
// operated on with a plain atomic instruction while w->jit_recover = recover, so a page
// unmapped under the kernel ends in the SIGSEGV handler's jump, not in a crash.
std::uint64_t thread_atomic_rmw(WorkerContext* w, void* p, unsigned op, std::size_t n,
                                std::uint64_t operand, std::uint64_t expected,
                                sigjmp_buf* recover);

// The worker running on this thread, or nullptr. initial-exec TLS: readable in signal handlers.
extern thread_local WorkerContext* tls_worker __attribute__((tls_model("initial-exec")));

}  // namespace hetmm::detail
