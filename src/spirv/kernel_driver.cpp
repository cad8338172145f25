// Running JIT-compiled kernels on the device's workers: a launch is one device "thread" per
// work-group; each worker runs its groups as an IR loop over local ids or, for kernels with
// barriers, as one fiber per work-item. Also the runtime entry points kernel code calls.
//
// Per-worker state (JitWorker) lives in runtime memory: the group's __local arena, the fiber
// stacks, the context kernel code reads. Errors (J3 in kernel_context.hpp): the slow path and
// the SIGSEGV handler siglongjmp to run_group, which turns them into hetmm::Error; the device
// reports the first at synchronize().
#include "spirv/compiled_program.hpp"
#include "spirv/fiber.hpp"
#include "spirv/kernel_context.hpp"

#include "api/runtime_impl.hpp"
#include "device/sim/sim_device.hpp"
#include "os/arena.hpp"
#include "os/syscalls.hpp"

#include "hetmm/hetmm.hpp"

#include <pthread.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory_resource>

namespace hetmm::spirv {
namespace {

constexpr std::size_t kMaxGroupItems = 1024;
constexpr std::size_t kMaxLocalBytes = std::size_t{1} << 20;
constexpr std::size_t kFiberStack = std::size_t{64} << 10;

struct Fiber {
  void* sp = nullptr;
  std::uint64_t id[3] = {0, 0, 0};
  bool done = false;
};

struct FiberGroup {
  void* scheduler_sp = nullptr;
  Fiber* current = nullptr;
  detail::CompiledProgram::RunFn run = nullptr;
  KernelContext* ctx = nullptr;
  void** args = nullptr;
};

// Cache-line aligned and padded: each worker writes its context and jump buffer every group,
// and two workers' states side by side in runtime memory shared a line (the stores that set up
// a group stalled on it).
struct alignas(64) JitWorker {
  KernelContext ctx{};
  std::byte* arena = nullptr;  // kMaxLocalBytes
  std::byte* stacks = nullptr;  // kMaxGroupItems fiber stacks, made on first use
  Fiber* fibers = nullptr;
  FiberGroup group;
  std::byte* wi_private = nullptr;  // region loops' per-work-item private memory
  std::size_t wi_private_cap = 0;
  const std::string* kernel_name = nullptr;  // of the group running, for messages
  std::uint64_t thread_stack_lo = 0, thread_stack_span = 0;
  std::exception_ptr error;  // set by the slow path before it jumps
  // The last group this worker ran: its launch's serial and its id (consecutive groups take
  // their ids by carrying, NdRangeLaunch::run).
  std::uint64_t last_launch = 0, last_group = 0;
  sigjmp_buf recover;
};

void release_jit_worker(void* p) {
  auto* j = static_cast<JitWorker*>(p);
  if (j->arena != nullptr) os::unmap_runtime_memory(j->arena, kMaxLocalBytes);
  if (j->stacks != nullptr) os::unmap_runtime_memory(j->stacks, kMaxGroupItems * kFiberStack);
  if (j->wi_private != nullptr) os::unmap_runtime_memory(j->wi_private, j->wi_private_cap);
  if (j->fibers != nullptr)
    os::runtime_memory()->deallocate(j->fibers, sizeof(Fiber) * kMaxGroupItems, alignof(Fiber));
  os::arena_delete(j);
}

__attribute__((noinline)) JitWorker& jit_worker(detail::WorkerContext* w) {
  if (w->jit_state != nullptr) return *static_cast<JitWorker*>(w->jit_state);
  auto* j = os::arena_new<JitWorker>();
  j->arena = static_cast<std::byte*>(os::map_runtime_memory(kMaxLocalBytes));
  if (j->arena == nullptr) {
    os::arena_delete(j);
    throw Error(Errc::out_of_memory, "device kernel: no memory for the __local arena");
  }
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    void* lo = nullptr;
    std::size_t size = 0;
    pthread_attr_getstack(&attr, &lo, &size);
    j->thread_stack_lo = reinterpret_cast<std::uint64_t>(lo);
    j->thread_stack_span = size;
    pthread_attr_destroy(&attr);
  }
  w->jit_state = j;
  w->jit_state_release = &release_jit_worker;
  return *j;
}

constexpr std::size_t kMaxPrivateBytes = std::size_t{64} << 20;

void reserve_private(JitWorker& j, std::size_t bytes, const std::string& kernel) {
  if (bytes <= j.wi_private_cap) return;
  if (bytes > kMaxPrivateBytes)
    throw Error(Errc::out_of_memory,
                "device kernel " + kernel + ": " + std::to_string(bytes) +
                    " bytes of private memory for a work-group (at most " +
                    std::to_string(kMaxPrivateBytes) + "): use a smaller work-group");
  std::size_t cap = std::max<std::size_t>(bytes, std::size_t{1} << 20);
  cap = (cap + 4095) & ~std::size_t{4095};
  auto* p = static_cast<std::byte*>(os::map_runtime_memory(cap));
  if (p == nullptr) throw Error(Errc::out_of_memory, "device kernel: no memory for private data");
  if (j.wi_private != nullptr) os::unmap_runtime_memory(j.wi_private, j.wi_private_cap);
  j.wi_private = p;
  j.wi_private_cap = cap;
}

void make_fibers(JitWorker& j) {
  if (j.stacks != nullptr) return;
  j.stacks = static_cast<std::byte*>(os::map_runtime_memory(kMaxGroupItems * kFiberStack));
  if (j.stacks == nullptr)
    throw Error(Errc::out_of_memory, "device kernel: no memory for work-item stacks");
  j.fibers = static_cast<Fiber*>(
      os::runtime_memory()->allocate(sizeof(Fiber) * kMaxGroupItems, alignof(Fiber)));
}

JitWorker& current(KernelContext* ctx) { return *static_cast<JitWorker*>(ctx->worker->jit_state); }

// Slow-path errors: record, then leave the JIT frames for run_group (never unwind through them).
template <class F>
auto guarded(KernelContext* ctx, F&& f) -> decltype(f()) {
  detail::WorkerContext* w = ctx->worker;
  sigjmp_buf* recover = w->jit_recover;
  w->jit_recover = nullptr;  // a SIGSEGV inside the runtime is a runtime bug, not the kernel's
  try {
    if constexpr (std::is_void_v<decltype(f())>) {
      f();
      w->jit_recover = recover;
      return;
    } else {
      auto r = f();
      w->jit_recover = recover;
      return r;
    }
  } catch (...) {
    current(ctx).error = std::current_exception();
  }
  siglongjmp(*recover, 1);
}

void fiber_main(void* arg) {
  auto* f = static_cast<Fiber*>(arg);
  detail::WorkerContext* w = detail::tls_worker;
  FiberGroup& g = static_cast<JitWorker*>(w->jit_state)->group;
  g.run(g.ctx, g.args, f->id[0], f->id[0] + 1, f->id[1], f->id[1] + 1, f->id[2], f->id[2] + 1);
  f->done = true;
  hetmm_fiber_switch(&f->sp, g.scheduler_sp);
}

// `joined`: the groups along x this call ran as one loop (NdRangeLaunch::join).
std::string group_name(const KernelContext& c, std::uint64_t joined = 1) {
  char buf[128];
  if (joined > 1)
    std::snprintf(buf, sizeof buf, "one of work-groups (%lu..%lu, %lu, %lu)",
                  static_cast<unsigned long>(c.group_id[0]),
                  static_cast<unsigned long>(c.group_id[0] + joined - 1),
                  static_cast<unsigned long>(c.group_id[1]),
                  static_cast<unsigned long>(c.group_id[2]));
  else
    std::snprintf(buf, sizeof buf, "work-group (%lu, %lu, %lu)",
                  static_cast<unsigned long>(c.group_id[0]),
                  static_cast<unsigned long>(c.group_id[1]),
                  static_cast<unsigned long>(c.group_id[2]));
  return buf;
}

// Runs the items of one group as fibers, phase by phase (a phase ends at a barrier).
void run_fibers(JitWorker& j, detail::CompiledProgram::RunFn run, void** args,
                const std::string& kernel) {
  make_fibers(j);
  KernelContext& c = j.ctx;
  std::size_t n = c.local_size[0] * c.local_size[1] * c.local_size[2];
  std::size_t i = 0;
  for (std::uint64_t z = 0; z < c.local_size[2]; ++z)
    for (std::uint64_t y = 0; y < c.local_size[1]; ++y)
      for (std::uint64_t x = 0; x < c.local_size[0]; ++x, ++i) {
        Fiber& f = j.fibers[i];
        f.id[0] = x;
        f.id[1] = y;
        f.id[2] = z;
        f.done = false;
        // Stack tops 64 KiB apart would all fall in the same L1 cache sets: stagger them.
        std::size_t stagger = (i * 7 % 64) * 64;
        f.sp = fiber_prepare(j.stacks + i * kFiberStack, kFiberStack - stagger, &fiber_main, &f);
      }
  j.group.run = run;
  j.group.ctx = &c;
  j.group.args = args;
  c.fibers = &j.group;
  c.private_lo = reinterpret_cast<std::uint64_t>(j.stacks);
  c.private_span = n * kFiberStack;
  for (;;) {
    std::size_t finished = 0;
    for (i = 0; i < n; ++i) {
      Fiber& f = j.fibers[i];
      if (f.done) {
        ++finished;
        continue;
      }
      j.group.current = &f;
      hetmm_fiber_switch(&j.group.scheduler_sp, f.sp);
      if (f.done) ++finished;
    }
    if (finished == n) break;
    if (finished != 0)
      throw Error(Errc::invalid_argument,
                  "device kernel " + kernel + ": " + group_name(c) + ": " +
                      std::to_string(n - finished) + " of " + std::to_string(n) +
                      " work-items wait at a barrier the others never reached (a barrier in "
                      "divergent control flow)");
  }
  c.fibers = nullptr;
}

}  // namespace

// ---- the runtime entry points of kernel code --------------------------------------------------
extern "C" void hetmm_jit_load(KernelContext* ctx, std::uint64_t va, void* out, std::uint64_t n) {
  guarded(ctx, [&] { detail::thread_load(ctx->worker, reinterpret_cast<const void*>(va), out, n); });
}

extern "C" void hetmm_jit_store(KernelContext* ctx, std::uint64_t va, const void* in,
                                std::uint64_t n) {
  guarded(ctx, [&] {
    detail::thread_store(ctx->worker, reinterpret_cast<void*>(va), in, n);
    // The fast path's stores are ordinary stores, ordered by x86; the slow path may have
    // written a device frame: keep atomic stores that took this path ordered too.
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
  });
}

extern "C" std::uint64_t hetmm_jit_atomic(KernelContext* ctx, std::uint64_t va, std::uint32_t op,
                                          std::uint64_t n, std::uint64_t operand,
                                          std::uint64_t expected) {
  sigjmp_buf* recover = ctx->worker->jit_recover;
  return guarded(ctx, [&] {
    return detail::thread_atomic_rmw(ctx->worker, reinterpret_cast<void*>(va), op, n, operand,
                                     expected, recover);
  });
}

namespace {

// Brings the worker's TLB to the current shootdown epoch. The epoch is read before any walk that
// follows: a PTE cleared after this load is caught by the epoch checks, since the invalidator
// clears PTEs before it advances the epoch (worker.hpp).
void sync_tlb(detail::WorkerContext* w) {
  w->sync_tlb(w->device->epoch_ref().load(std::memory_order_seq_cst));
}

// Loads vpn's PTE from the device page table into the TLB; returns it (0: not mapped).
std::uint64_t fill_tlb(detail::WorkerContext* w, std::uint64_t vpn) {
  std::uint64_t p = w->device->walk(vpn << 12);
  if (!(p & device::pte::kValid)) return 0;
  detail::TlbEntry& t = w->tlb[detail::WorkerContext::slot(vpn)];
  t.vpn = vpn;
  t.pte = p;
  __atomic_store_n(&w->tlb_misses, w->tlb_misses + 1, __ATOMIC_RELAXED);
  // Inline accesses are not counted one by one: a fill of an in-place page counts as one page
  // of traffic for the access counters (a lower bound; the order of blocks is what matters).
  if ((p & (device::pte::kValid | device::pte::kLocal)) == device::pte::kValid)
    w->device->count_in_place(w, vpn << 12, 4096);
  return p;
}

// Whether the block entry of va_first's block holds an in-place run (J2) covering the pages of
// [va_first, va_last] (one block) with the rights in `need`: from the block TLB, else from the
// device page table, filling the entry with the run of in-place pages around va_first's page
// (the whole block when all of it is in place: block_run 0..511). A slot that already holds
// another run of this block keeps it: two runs of one block (a block half in frames, two
// buffers with a gap between them) would evict each other on every other access, each time
// with a walk of the block; the page TLB serves the other run's pages. After sync_tlb (J2).
bool in_place_run_entry(detail::WorkerContext* w, std::uint64_t va_first, std::uint64_t va_last,
                        std::uint64_t need) {
  const std::uint64_t block = va_first >> 21;
  const std::size_t slot = detail::WorkerContext::block_slot(block);
  detail::TlbEntry& t = w->block_tlb[slot];
  const std::uint64_t first = (va_first >> 12) & 511, last = (va_last >> 12) & 511;
  auto covers = [&] {
    constexpr std::uint64_t kKind = device::pte::kValid | device::pte::kLocal;
    return t.vpn == block && (t.pte & kKind) == device::pte::kValid && (t.pte & need) == need &&
           first >= (w->block_run[slot] & 0xffffffff) && last <= (w->block_run[slot] >> 32);
  };
  if (covers()) return true;
  if (t.vpn == block) return false;
  std::size_t run_first = 0, run_last = 0;
  std::uint64_t rights = w->device->block_in_place_run(va_first, need, &run_first, &run_last);
  if (rights == 0) return false;
  t.vpn = block;
  t.pte = rights;
  w->block_run[slot] = run_first | (std::uint64_t{run_last} << 32);
  __atomic_store_n(&w->tlb_misses, w->tlb_misses + 1, __ATOMIC_RELAXED);
  w->device->count_in_place(w, va_first, 4096);
  return covers();
}

// The block entry for the run of device frames around va's page (J4): kept when va's page is
// in a frame, replacing what the slot held unless that entry already covers va. Returns the
// entry's bits when it covers va's page, else 0.
std::uint64_t frame_block_entry(detail::WorkerContext* w, std::uintptr_t va) {
  const std::uint64_t block = va >> 21;
  const std::size_t slot = detail::WorkerContext::block_slot(block);
  detail::TlbEntry& t = w->block_tlb[slot];
  const std::uint64_t page = (va >> 12) & 511;
  auto covers = [&] {
    return t.vpn == block && (t.pte & device::pte::kLocal) != 0 &&
           page >= (w->block_run[slot] & 0xffffffff) && page <= (w->block_run[slot] >> 32);
  };
  if (covers()) return t.pte;
  std::size_t first = 0, last = 0;
  std::uint64_t b = w->device->block_local_run(va, &first, &last);
  if (b == 0) return 0;
  t.vpn = block;
  t.pte = b;
  w->block_run[slot] = first | (std::uint64_t{last} << 32);
  __atomic_store_n(&w->tlb_misses, w->tlb_misses + 1, __ATOMIC_RELAXED);
  return b;
}

// A PTE that maps its page in place (system memory) with every right in `need`.
bool in_place_with(std::uint64_t pte, std::uint64_t need) {
  return (pte & (device::pte::kValid | device::pte::kLocal)) == device::pte::kValid &&
         (pte & need) == need;
}

}  // namespace

extern "C" std::uint64_t hetmm_jit_refill(KernelContext* ctx, std::uint64_t va,
                                          std::uint64_t bytes, std::uint64_t write) {
  if ((va & 4095) + bytes > 4096 || (va >> 57) != 0) return 0;
  detail::WorkerContext* w = ctx->worker;
  sync_tlb(w);
  // A run of pages in place takes one block entry instead of a page entry each.
  if ((va >> 21) == ((va + bytes - 1) >> 21) &&
      in_place_run_entry(w, va, va + bytes - 1, write != 0 ? device::pte::kWrite : 0))
    return 1;
  std::uint64_t p = fill_tlb(w, va >> 12);
  // A page in device frames: its block's entry too, when the block is one run of frames, so
  // that the inline probe finds every page of it there (a gather over data in device memory
  // would miss the page TLB on most accesses).
  constexpr std::uint64_t kFrame = device::pte::kValid | device::pte::kLocal;
  if ((p & kFrame) == kFrame && (va >> 21) == ((va + bytes - 1) >> 21)) frame_block_entry(w, va);
  return p != 0 && (write == 0 || (p & device::pte::kWrite)) ? 1 : 0;
}

extern "C" std::uint64_t hetmm_jit_range(KernelContext* ctx, std::uint64_t lo, std::uint64_t hi,
                                         std::uint64_t write) {
  if (hi <= lo || (hi >> 57) != 0) return 0;
  // Private and __local memory need no translation.
  if (lo - ctx->private_lo < ctx->private_span && hi - ctx->private_lo <= ctx->private_span)
    return 1;
  auto local = reinterpret_cast<std::uint64_t>(ctx->local_base);
  if (lo - local < ctx->local_span && hi - local <= ctx->local_span) return 1;
  detail::WorkerContext* w = ctx->worker;
  sync_tlb(w);
  const std::uint64_t need = write != 0 ? device::pte::kWrite : 0;
  // Each block's part in one run of in-place pages passes at once (and leaves the run in the
  // block entry, for the inline checks); the pages of other parts one by one, when there are
  // at most 512 of them (more, and the loop is better off probing each access: it gives up
  // before walking any).
  const std::uint64_t first_block = lo >> 21, last_block = (hi - 1) >> 21;
  if (last_block - first_block >= 64) return 0;  // 128 MiB and more: probe
  std::uint64_t partial = 0;  // bit k: block first_block + k needs its pages checked
  std::size_t pages = 0;
  for (std::uint64_t block = first_block; block <= last_block; ++block) {
    if (in_place_run_entry(w, std::max(lo, block << 21), std::min(hi, (block + 1) << 21) - 1,
                           need))
      continue;
    partial |= std::uint64_t{1} << (block - first_block);
    pages += ((std::min(hi, (block + 1) << 21) - 1) >> 12) - (std::max(lo, block << 21) >> 12) + 1;
    if (pages > 512) return 0;
  }
  for (std::uint64_t block = first_block; partial != 0; ++block, partial >>= 1) {
    if (!(partial & 1)) continue;
    std::uint64_t first = std::max(lo, block << 21) >> 12;
    std::uint64_t last = (std::min(hi, (block + 1) << 21) - 1) >> 12;
    for (std::uint64_t vpn = first; vpn <= last; ++vpn) {
      const detail::TlbEntry& t = w->tlb[detail::WorkerContext::slot(vpn)];
      if (t.vpn == vpn && in_place_with(t.pte, need)) continue;
      if (!in_place_with(fill_tlb(w, vpn), need)) return 0;
    }
  }
  return 1;
}

extern "C" std::uint64_t hetmm_jit_local_range(KernelContext* ctx, std::uint64_t lo,
                                               std::uint64_t hi, std::uint64_t write) {
  if (hi <= lo || (hi >> 57) != 0) return 0;
  const std::uint64_t first = lo >> 12, last = (hi - 1) >> 12;
  const std::uint64_t first_block = lo >> 21, last_block = (hi - 1) >> 21;
  if (last_block - first_block >= 64) return 0;  // 128 MiB and more: probe each access
  detail::WorkerContext* w = ctx->worker;
  sync_tlb(w);
  const std::uint64_t need = device::pte::kValid | device::pte::kLocal |
                             (write != 0 ? device::pte::kWrite : 0);
  // Block by block: each block's part in the run of frames its entry holds, all at one delta
  // (an array over several blocks in movable memory, whose chunks frame placement lays side by
  // side). The entries stay for the inline checks of the next loops (mmu_loop_checks.cpp,
  // version_local). A grid-stride loop's range spans the rest of its array.
  {
    std::uint64_t delta = 0;
    bool one_run = true;
    for (std::uint64_t block = first_block; one_run && block <= last_block; ++block) {
      const std::uint64_t from = std::max(lo, block << 21);
      const std::uint64_t to = std::min(hi, (block + 1) << 21) - 1;
      const std::uint64_t b = frame_block_entry(w, from);
      const std::uint64_t run = w->block_run[detail::WorkerContext::block_slot(block)];
      const std::uint64_t d = (b & device::pte::kAddrMask) - (block << 21);
      one_run = (b & need) == need && (from >> 12 & 511) >= (run & 0xffffffff) &&
                (to >> 12 & 511) <= (run >> 32) && (block == first_block || d == delta);
      delta = d;
    }
    if (one_run) return delta;
  }
  if (last - first >= 512) return 0;  // the pages one by one only up to 2 MiB
  std::uint64_t base = 0;
  for (std::uint64_t vpn = first; vpn <= last; ++vpn) {
    const detail::TlbEntry& t = w->tlb[detail::WorkerContext::slot(vpn)];
    std::uint64_t p = t.vpn == vpn ? t.pte : fill_tlb(w, vpn);
    if ((p & need) != need) return 0;
    std::uint64_t frame = p & device::pte::kAddrMask;
    if (vpn == first) base = frame;
    else if (frame != base + ((vpn - first) << 12)) return 0;  // not one contiguous run
  }
  // Frames and process pages never coincide: a delta of 0 cannot be a translation.
  return base - (first << 12);
}

extern "C" void hetmm_jit_divergence(KernelContext* ctx) {
  guarded(ctx, [&] {
    const std::string* name = current(ctx).kernel_name;
    throw Error(Errc::invalid_argument,
                "device kernel " + (name ? *name : std::string("?")) + ": " + group_name(*ctx) +
                    ": work-items reached different barriers (a barrier in divergent control "
                    "flow)");
  });
}

extern "C" void hetmm_jit_barrier(KernelContext* ctx) {
  auto* g = static_cast<FiberGroup*>(ctx->fibers);
  if (g == nullptr) return;  // a group of one work-item
  Fiber* f = g->current;
  hetmm_fiber_switch(&f->sp, g->scheduler_sp);
}

// ---- launches -----------------------------------------------------------------------------------
namespace {

// Lives in runtime memory, arguments included (os/arena.hpp): workers read it while they run
// the kernel, and a page of the program's heap may be migrated to the device at any moment.
struct NdRangeLaunch final : detail::KernelBase, os::RuntimeAllocated {
  std::shared_ptr<const detail::CompiledProgram> program;
  const detail::CompiledProgram::Kernel* kernel = nullptr;
  std::pmr::vector<detail::LaunchArg> args{os::runtime_memory()};
  std::pmr::vector<std::size_t> local_offset{os::runtime_memory()};  // per argument: its arena slice
  std::size_t local_bytes = 0;
  std::uint64_t global[3], local[3], groups[3], offset[3], dims;
  // Groups along x that one call runs as one loop (CompiledProgram::Kernel::joins_x_groups):
  // a kernel that cannot tell them from one wide group pays the call, the group's set-up and its
  // range checks once per run instead of once per group (saxpy with 64-item groups: 4x).
  // Workers take runs as they took groups; a run's ids are those of its first group.
  std::uint64_t join = 1;
  // Unique for the process's life (a launch's address may be reused by the next).
  std::uint64_t serial = next_serial.fetch_add(1, std::memory_order_relaxed) + 1;
  static inline std::atomic<std::uint64_t> next_serial{0};

  void run(Thread& t) override;
};

// The only frame that sigsetjmp's: kept small and out of line, so that nothing live across the
// jump sits in a register (GCC's -Wclobbered). Returns 0, or how the group was left (J3).
enum class GroupMode { loop, regions, fibers };

__attribute__((noinline)) int execute_group(detail::WorkerContext* w, JitWorker& j,
                                            detail::CompiledProgram::RunFn run, void** argv,
                                            GroupMode mode, const std::string& name) {
  // Without the signal mask: the SIGSEGV handler unblocks its signal itself.
  if (int jumped = sigsetjmp(j.recover, 0); jumped != 0) return jumped;
  KernelContext& c = j.ctx;
  w->jit_recover = &j.recover;
  try {
    if (mode == GroupMode::fibers)
      run_fibers(j, run, argv, name);
    else if (mode == GroupMode::regions)
      run(&c, argv, 0, 1, 0, 1, 0, 1);  // the kernel loops over the group itself
    else
      run(&c, argv, 0, c.local_size[0], 0, c.local_size[1], 0, c.local_size[2]);
  } catch (...) {
    w->jit_recover = nullptr;
    c.fibers = nullptr;
    throw;
  }
  w->jit_recover = nullptr;
  return 0;
}

void NdRangeLaunch::run(Thread& t) {
  detail::WorkerContext* w = t.worker_context();
  JitWorker& j = jit_worker(w);
  KernelContext& c = j.ctx;
  c.worker = w;
  c.device_epoch = reinterpret_cast<const std::uint64_t*>(&w->device->epoch_ref());
  c.tlb_epoch = &w->tlb_epoch;
  c.tlb = w->tlb;
  c.block_tlb = w->block_tlb;
  c.block_run = w->block_run;
  c.active = &w->active;
  std::uint64_t id = t.id();
  // Workers take groups in chunks of consecutive ids: the next one's ids by carrying. Three
  // 64-bit divisions per group were a fifth of saxpy's time with 64 work-items a group.
  if (j.last_launch == serial && id == j.last_group + 1) {
    if ((c.group_id[0] += join) >= groups[0]) {
      c.group_id[0] = 0;
      if (++c.group_id[1] == groups[1]) {
        c.group_id[1] = 0;
        ++c.group_id[2];
      }
    }
  } else {
    const std::uint64_t runs = (groups[0] + join - 1) / join;
    c.group_id[0] = id % runs * join;
    c.group_id[1] = id / runs % groups[1];
    c.group_id[2] = id / (runs * groups[1]);
  }
  j.last_launch = serial;
  j.last_group = id;
  for (int d = 0; d < 3; ++d) {
    c.enqueued_local_size[d] = local[d];
    c.local_size[d] = std::min(local[d], global[d] - c.group_id[d] * local[d]);
    c.global_size[d] = global[d];
    c.num_groups[d] = groups[d];
    c.global_offset[d] = offset[d];
  }
  // A run of joined groups: the call's extent along x (the kernel reads no local size there).
  if (join > 1) c.local_size[0] = std::min(join * local[0], global[0] - c.group_id[0] * local[0]);
  c.work_dim = dims;
  c.local_base = j.arena;
  c.local_span = local_bytes;
  c.private_lo = j.thread_stack_lo;
  c.private_span = j.thread_stack_span;
  c.fibers = nullptr;

  void* argv[64];
  void* local_ptrs[64];
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i].kind == detail::LaunchArg::Kind::local) {
      local_ptrs[i] = j.arena + local_offset[i];
      argv[i] = &local_ptrs[i];
    } else {
      argv[i] = args[i].bytes.data();
    }
  }
  j.error = nullptr;
  j.kernel_name = &kernel->info.name;
  std::size_t items = c.local_size[0] * c.local_size[1] * c.local_size[2];
  GroupMode mode = GroupMode::loop;
  if (kernel->wi_private_bytes != 0) {
    mode = GroupMode::regions;
    reserve_private(j, kernel->wi_private_bytes * items, kernel->info.name);
    c.wi_private = j.wi_private;
    c.private_lo = reinterpret_cast<std::uint64_t>(j.wi_private);
    c.private_span = kernel->wi_private_bytes * items;
  } else if (kernel->info.uses_barriers && items > 1) {
    mode = GroupMode::fibers;
  }
  const int left = execute_group(w, j, kernel->run, argv, mode, kernel->info.name);
  // A frame loop (J4) clears `active` on every exit; a jump out of a group must not leave it
  // set either, or every later shootdown would wait on this worker.
  w->active.store(0, std::memory_order_release);
  if (left == 0) return;
  w->jit_recover = nullptr;
  c.fibers = nullptr;
  if (j.error) {
    std::exception_ptr e = j.error;
    j.error = nullptr;
    std::rethrow_exception(e);
  }
  char buf[160];
  std::snprintf(buf, sizeof buf, ": %s of process memory at 0x%lx failed: unmapped or protected "
                "under the kernel", w->jit_fault_write ? "write" : "read",
                static_cast<unsigned long>(w->jit_fault_addr));
  const std::uint64_t joined = std::min(join, groups[0] - c.group_id[0]);
  throw Error(Errc::fault,
              "device kernel " + kernel->info.name + ": " + group_name(c, joined) + buf);
}

[[noreturn]] void bad_arg(const std::string& kernel, std::size_t i, const KernelArgInfo& a,
                          const std::string& why) {
  throw Error(Errc::invalid_argument,
              "launch of kernel " + kernel + ": argument " + std::to_string(i) +
                  (a.name.empty() ? "" : " (" + a.name + ")") + " is " + to_string(a.kind) +
                  " '" + a.type_name + "' of " + std::to_string(a.size) + " bytes: " + why);
}

std::size_t align_up(std::size_t v, std::size_t a) { return (v + a - 1) / a * a; }

}  // namespace
}  // namespace hetmm::spirv

namespace hetmm {

void Device::launch_program(const Program& program, std::string_view kernel_name, NDRange global,
                            NDRange local, std::vector<detail::LaunchArg> args) {
  launch_program(program, kernel_name, global, local, std::move(args), {0, 0, 0});
}

void Device::launch_program(const Program& program, std::string_view kernel_name, NDRange global,
                            NDRange local, std::vector<detail::LaunchArg> args,
                            const std::array<std::size_t, 3>& global_offset) {
  launch_program(program, kernel_name, global, local, std::move(args), global_offset, {});
}

void Device::launch_program(const Program& program, std::string_view kernel_name, NDRange global,
                            NDRange local, std::vector<detail::LaunchArg> args,
                            const std::array<std::size_t, 3>& global_offset, Completion done) {
  using spirv::bad_arg;
  const detail::CompiledProgram& p = program.compiled();
  const detail::CompiledProgram::Kernel* k = p.find(kernel_name);
  const std::string name(kernel_name);
  if (k == nullptr) program.kernel(kernel_name);  // throws, listing the kernels
  const KernelInfo& info = k->info;
  if (args.size() != info.args.size())
    throw Error(Errc::invalid_argument,
                "launch of kernel " + name + ": " + std::to_string(args.size()) +
                    " arguments given, its signature has " + std::to_string(info.args.size()));
  if (args.size() > 64)
    throw Error(Errc::invalid_argument, "launch of kernel " + name + ": more than 64 arguments");

  auto launch = std::make_unique<spirv::NdRangeLaunch>();
  launch->local_offset.assign(args.size(), 0);
  std::size_t local_bytes = p.static_local_bytes;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const KernelArgInfo& a = info.args[i];
    const detail::LaunchArg& given = args[i];
    using K = detail::LaunchArg::Kind;
    switch (a.kind) {
      case ArgKind::global_pointer:
      case ArgKind::constant_pointer:
        if (given.kind != K::pointer)
          bad_arg(name, i, a, given.kind == K::local ? "got LocalMemory, expected a pointer"
                                                     : "got a " + std::to_string(given.size) +
                                                           "-byte value, expected a pointer");
        break;
      case ArgKind::local_pointer:
        if (given.kind != K::local) bad_arg(name, i, a, "expected hetmm::LocalMemory{bytes}");
        if (given.size == 0) bad_arg(name, i, a, "LocalMemory of 0 bytes");
        local_bytes = spirv::align_up(local_bytes, 128);
        launch->local_offset[i] = local_bytes;
        local_bytes += given.size;
        break;
      case ArgKind::value:
        if (given.kind != K::value)
          bad_arg(name, i, a, given.kind == K::local ? "got LocalMemory, expected a value"
                                                     : "got a pointer, expected a value");
        if (given.size != a.size)
          bad_arg(name, i, a, "got a " + std::to_string(given.size) + "-byte value");
        break;
    }
  }
  if (local_bytes > spirv::kMaxLocalBytes)
    throw Error(Errc::invalid_argument,
                "launch of kernel " + name + ": " + std::to_string(local_bytes) +
                    " bytes of __local memory, the device has " +
                    std::to_string(spirv::kMaxLocalBytes));

  std::size_t g[3] = {global.x, global.y, global.z};
  std::size_t l[3] = {local.x, local.y, local.z};
  unsigned dims = global.dims != 0 ? global.dims : global.z > 1 ? 3 : global.y > 1 ? 2 : 1;
  if (dims > 3)
    throw Error(Errc::invalid_argument, "launch of kernel " + name + ": NDRange dims " +
                                            std::to_string(dims) + " (at most 3)");
  for (int d = 0; d < 3; ++d)
    if (g[d] == 0)
      throw Error(Errc::invalid_argument,
                  "launch of kernel " + name + ": global size 0 in dimension " + std::to_string(d));
  const auto& req = info.required_local;
  if (l[0] == 0) {
    if (req[0] != 0) {
      for (int d = 0; d < 3; ++d) l[d] = req[d];
    } else {
      // Any size is legal; 64 items keep fiber groups cheap and loops long enough.
      l[0] = std::min<std::size_t>(g[0], 64);
      l[1] = l[2] = 1;
    }
  }
  for (int d = 0; d < 3; ++d)
    if (l[d] == 0)
      throw Error(Errc::invalid_argument,
                  "launch of kernel " + name + ": local size 0 in dimension " + std::to_string(d));
  if (l[0] * l[1] * l[2] > spirv::kMaxGroupItems)
    throw Error(Errc::invalid_argument,
                "launch of kernel " + name + ": work-group of " +
                    std::to_string(l[0] * l[1] * l[2]) + " items (at most " +
                    std::to_string(spirv::kMaxGroupItems) + ")");
  if (req[0] != 0 && (l[0] != req[0] || l[1] != req[1] || l[2] != req[2]))
    throw Error(Errc::invalid_argument,
                "launch of kernel " + name + ": local size differs from its reqd_work_group_size");
  std::size_t total = 1;
  for (int d = 0; d < 3; ++d) {
    launch->global[d] = g[d];
    launch->local[d] = l[d];
    launch->groups[d] = (g[d] + l[d] - 1) / l[d];
    launch->offset[d] = global_offset[d];
    total *= launch->groups[d];
  }
  // Runs of groups along x as one loop where the kernel cannot tell (joins_x_groups, no __local
  // memory): up to kJoinItems work-items a run, leaving at least kMinRuns runs to share out.
  constexpr std::size_t kJoinItems = 4096, kMinRuns = 64;
  if (k->joins_x_groups && local_bytes == 0 && launch->groups[0] > 1) {
    const std::size_t items = l[0] * l[1] * l[2];
    launch->join = std::max<std::size_t>(
        1, std::min({kJoinItems / items, total / kMinRuns, std::size_t(launch->groups[0])}));
    total = (launch->groups[0] + launch->join - 1) / launch->join * launch->groups[1] *
            launch->groups[2];
  }
  launch->dims = dims;
  launch->local_bytes = local_bytes;
  launch->program = program.shared();
  launch->kernel = k;
  launch->args.assign(args.begin(), args.end());
  launch_erased(total, std::move(launch), std::move(done));
}

}  // namespace hetmm
