// Layer spirv: includes every layer.
// What JIT-compiled kernel code sees of the device: the work-group context every kernel
// function receives as a hidden argument, and the runtime entry points it calls.
//
// The layout is shared with the IR that kernel_abi_pass.cpp and mmu_pass.cpp emit: they read
// fields at the byte offsets below (static_asserts keep both sides honest).
//
// Invariants of the JIT access protocol (see device/sim/worker.hpp for the worker's):
//  J1. Kernel code touches a page directly only through a TLB entry of the current shootdown
//      epoch. An in-place entry (system memory mapped in place) is used without holding
//      `active`: the access is a CPU access, the CPU MMU keeps it coherent, and a stale entry at
//      worst faults the page home or fails (unmapped: SIGSEGV, recovered below). A local entry
//      (a device frame) is used only inside the shootdown protocol, exactly as worker.hpp
//      describes: active = epoch (seq_cst), re-check the epoch, access, active = 0 (release).
//  J2. A miss in the page TLB probes the block TLB (a run of pages of a 2 MiB block, the whole
//      block or the part a buffer covers, every page of it mapped in place: the access is in
//      place, J1), then refills from the device page table (hetmm_jit_refill: the block entry
//      with the run of in-place pages around the page, else the page's) and probes again.
//      Faults, page-straddling accesses and anything else go through the slow path
//      (hetmm_jit_load/store/atomic), which runs the worker's full protocol.
//      A refill reads the epoch before the PTE (both acquire): a PTE cleared after the read
//      comes with a newer epoch, which empties the TLB before the entry is used.
//  J3. Errors never unwind through JIT frames: the slow path and the SIGSEGV handler record the
//      error in the WorkerContext and siglongjmp to the work-group driver (kernel_driver.cpp).
//  J4. A loop whose every range check found its range in device frames (one contiguous run each:
//      hetmm_jit_local_range) and that makes no calls (probed accesses: J5) runs a clone with
//      each access on process address + the run's delta, inside one shootdown grace period for
//      the whole loop: e = epoch before the checks; active = e (seq_cst); epoch == e again
//      (seq_cst) or fall back to the probed loop; active = 0 (release) on every exit. Frames
//      never fault (the movable pool raises no userfaultfd fault), so holding `active` cannot
//      block a shootdown's progress for longer than the loop runs; no in-place access (which
//      may block in a CPU fault that the invalidator itself must serve) runs inside it.
//  J5. A J4 loop may also have probed accesses (a gather's data-dependent load): the clone holds
//      `active` from its entry as J4 does, and a flag `held` says it still does. While held, a
//      ranged access runs at its delta and a probed one on the frame its block entry names
//      (entries of the published epoch: the worker's TLBs change only in its own runtime calls,
//      which come after an escape); a probed access that finds no frame there escapes: active
//      = 0 (release), held = false, then the full probe (J1-J3), as every later access of that
//      loop entry takes. No in-place access and no runtime call runs while held.
//  J6. Answers kept (mmu_probes.cpp, mmu_frames.cpp) are the answers above, used later: an in-place answer (a
//      run of in-place pages an access or a range check found, a loop nest's range) for the
//      rest of the call, as J1 allows a stale in-place entry; a run of frames in a held loop for
//      that loop entry only (J5: the block entries stay the published epoch's); a run of frames
//      outside held loops, a row's frame-range answer or a nest's, only together with the epoch
//      it was found in, which the access's or loop's publish re-checks (J4). Two kept runs side
//      by side join (frames: at one delta, in one epoch).
//  J7. A gather whose index is a ranged load of its loop runs as a plain load in place when a
//      scan of the loop's index range, read in place after the loop's checks passed, bounds
//      every element it reads and that bound passed a range check; only in a loop without
//      atomics or calls whose stores lie outside the index's range. An index changed under the
//      loop anyway (a data race) is an in-place access out of its range: J1's stale case.
//      In device frames, a held loop (J5) scans the index on its frames while it holds `active`
//      and finds the gathered range in a run of frames of the worker's block entries (no
//      runtime call: J5), kept for the epoch (J6); its copy clamps every gathered address to
//      that run, so that an index a racing writer changed reads a wrong element of the run,
//      never a frame outside it.
//  J8. A work-item loop around kernel loops checks its own direct accesses' ranges once per call,
//      in place only (J1), and each access branches on that answer. A kernel loop whose range
//      depends on loads among those (a CSR row's bounds) is covered by the nest check through
//      their least and greatest values over the call, scanned in place after that check passed;
//      a gather's index union over the nest is scanned in turn (J7). In place only: no frame
//      answer rests on a scan. On device, where the ranges are not in place, the preheader finds
//      each group's run of frames in an epoch read before the block entries (J4), before any
//      publish; each direct access then publishes that epoch, re-checks it and runs at its
//      group's delta, or takes the probe where the epoch moved (ItemFrames, rewrite).
#pragma once

#include "device/sim/worker.hpp"

#include <csetjmp>
#include <cstddef>
#include <cstdint>

namespace hetmm::spirv {

struct KernelContext {
  detail::WorkerContext* worker;           // 0
  const std::uint64_t* device_epoch;       // 8: the device's shootdown epoch
  std::uint64_t* tlb_epoch;                // 16: the epoch the worker's TLB belongs to
  detail::TlbEntry* tlb;                   // 24: WorkerContext::kTlbEntries entries
  std::uint64_t group_id[3];               // 32
  std::uint64_t local_size[3];             // 56: this group's (smaller for a last partial group)
  std::uint64_t enqueued_local_size[3];    // 80
  std::uint64_t global_size[3];            // 104
  std::uint64_t num_groups[3];             // 128
  std::uint64_t global_offset[3];          // 152
  std::uint64_t work_dim;                  // 176
  std::byte* local_base;                   // 184: this group's __local arena
  std::uint64_t local_span;                // 192
  std::uint64_t private_lo;                // 200: work-item stacks (generic pointers into them
  std::uint64_t private_span;              // 208  are private memory, not device memory)
  void* fibers;                            // 216: the group's fiber scheduler, or nullptr
  std::atomic<std::uint64_t>* active;      // 224: the worker's shootdown-protocol word
  std::byte* wi_private;                   // 232: per-work-item private memory (region loops)
  detail::TlbEntry* block_tlb;             // 240: the worker's block entries (2 MiB in place)
  std::uint64_t* block_run;                // 248: per block entry, the pages a run covers
};

namespace ctx_offset {
inline constexpr unsigned worker = 0, device_epoch = 8, tlb_epoch = 16, tlb = 24, group_id = 32,
                          local_size = 56, enqueued_local_size = 80, global_size = 104,
                          num_groups = 128, global_offset = 152, work_dim = 176,
                          local_base = 184, local_span = 192, private_lo = 200,
                          private_span = 208, fibers = 216, active = 224, wi_private = 232, block_tlb = 240,
                          block_run = 248;
}
static_assert(offsetof(KernelContext, group_id) == ctx_offset::group_id);
static_assert(offsetof(KernelContext, local_size) == ctx_offset::local_size);
static_assert(offsetof(KernelContext, enqueued_local_size) == ctx_offset::enqueued_local_size);
static_assert(offsetof(KernelContext, global_size) == ctx_offset::global_size);
static_assert(offsetof(KernelContext, num_groups) == ctx_offset::num_groups);
static_assert(offsetof(KernelContext, global_offset) == ctx_offset::global_offset);
static_assert(offsetof(KernelContext, work_dim) == ctx_offset::work_dim);
static_assert(offsetof(KernelContext, local_base) == ctx_offset::local_base);
static_assert(offsetof(KernelContext, private_lo) == ctx_offset::private_lo);
static_assert(offsetof(KernelContext, fibers) == ctx_offset::fibers);
static_assert(offsetof(KernelContext, active) == ctx_offset::active);
static_assert(offsetof(KernelContext, wi_private) == ctx_offset::wi_private);
static_assert(offsetof(KernelContext, block_tlb) == ctx_offset::block_tlb);
static_assert(offsetof(KernelContext, block_run) == ctx_offset::block_run);
static_assert(sizeof(detail::TlbEntry) == 16 && offsetof(detail::TlbEntry, pte) == 8);

// Atomic operations of the slow path (the values are part of the IR contract).
enum class AtomicOp : std::uint32_t {
  xchg, add, sub, and_, or_, xor_, max, min, umax, umin, fadd, fsub, cmpxchg
};

// The runtime entry points kernel code calls (absolute symbols in the JIT).
extern "C" {
void hetmm_jit_load(KernelContext* ctx, std::uint64_t va, void* out, std::uint64_t n);
void hetmm_jit_store(KernelContext* ctx, std::uint64_t va, const void* in, std::uint64_t n);
// op | (float ? 0x100 : 0); returns the old value (cmpxchg: the old value; success is old ==
// expected).
std::uint64_t hetmm_jit_atomic(KernelContext* ctx, std::uint64_t va, std::uint32_t op,
                               std::uint64_t n, std::uint64_t operand, std::uint64_t expected);
void hetmm_jit_barrier(KernelContext* ctx);
// Whether every page of [lo, hi) is in place (system memory) with the needed right, or private
// or __local memory; refills the TLB on the way. A loop's accesses over that range then skip the
// probe (mmu_probes.cpp), which J1 allows: they are CPU accesses to the process's pages.
std::uint64_t hetmm_jit_range(KernelContext* ctx, std::uint64_t lo, std::uint64_t hi,
                              std::uint64_t write);
// Whether every page of [lo, hi) is in device memory (local PTEs, the needed right) in one run of
// contiguous frames; returns frame address - process address for the whole range, or 0. Reads
// the epoch before the PTEs, as a refill does: a loop that uses the answer publishes `active`
// with the epoch it read first and re-checks it (J4).
std::uint64_t hetmm_jit_local_range(KernelContext* ctx, std::uint64_t lo, std::uint64_t hi,
                                    std::uint64_t write);
// Work-items of a group reached different barriers (region loops): reports it, never returns.
void hetmm_jit_divergence(KernelContext* ctx);
// A TLB miss: loads the page's PTE into the worker's TLB when it is valid with the needed right
// and the access stays in the page; returns 1 then (probe again), else 0 (take the slow path).
// Raises no fault and publishes nothing: a stale fill is caught by the epoch checks (J1).
std::uint64_t hetmm_jit_refill(KernelContext* ctx, std::uint64_t va, std::uint64_t bytes,
                               std::uint64_t write);
}

}  // namespace hetmm::spirv
