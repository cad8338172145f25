// Thread::load/store/atomic_add: a kernel's accesses through the device MMU.
//
// Hit path: epoch check, TLB lookup, access. Miss: page-table walk. Invalid PTE: a device fault
// posted to the fault buffer; the worker sleeps until the service thread replays it. Pages in
// device memory are accessed directly in the frame; pages in system memory are accessed in place
// through the CPU MMU with recoverable instructions (os/safe_access.S), so a page unmapped or
// protected under a running kernel becomes a `fault` error, never a crash.
#include "device/sim/sim_device.hpp"
#include "device/sim/worker.hpp"
#include "os/page.hpp"
#include "os/safe_access.hpp"

#include <cstdio>
#include <cstring>

namespace hetmm::detail {

using device::sim::FaultRequest;
using device::sim::SimDevice;
namespace pte = device::pte;

// Thread's inline hit path (include/hetmm/detail/hit_path.hpp) compiles against these.
static_assert(HitPath::kWrite == pte::kWrite && HitPath::kLocal == pte::kLocal &&
              HitPath::kAddrMask == pte::kAddrMask);
static_assert(HitPath::kPageShift == os::kPageShift && offsetof(TlbEntry, pte) == 8);
static_assert(offsetof(WorkerContext, tlb_epoch) - offsetof(WorkerContext, active) ==
                  offsetof(HitPath::Words, tlb_epoch) &&
              offsetof(WorkerContext, tlb) - offsetof(WorkerContext, active) ==
                  offsetof(HitPath::Words, tlb) &&
              offsetof(WorkerContext, device_epoch) - offsetof(WorkerContext, active) ==
                  offsetof(HitPath::Words, epoch) &&
              offsetof(WorkerContext, self) - offsetof(WorkerContext, active) ==
                  offsetof(HitPath::Words, worker) &&
              WorkerContext::kTlbEntries == std::size(HitPath::Words{}.tlb));

namespace {
constexpr std::atomic<std::uint64_t> kNoEpochWord{HitPath::kNoEpoch};
HitPath::Words no_words{{0}, 0, {}, &kNoEpochWord, nullptr};
}  // namespace

const std::atomic<std::uint64_t>* no_hit_epoch() noexcept { return &kNoEpochWord; }

HitPath::Words* hit_words(WorkerContext* ctx) noexcept {
  return ctx != nullptr ? reinterpret_cast<HitPath::Words*>(&ctx->active) : &no_words;
}

void add_thread_counts(WorkerContext* ctx, std::uint64_t hits, std::uint64_t local_bytes) noexcept {
  if (ctx == nullptr) return;  // a Thread without a worker never hits
  __atomic_store_n(&ctx->tlb_hits, ctx->tlb_hits + hits, __ATOMIC_RELAXED);
  __atomic_store_n(&ctx->local_bytes, ctx->local_bytes + local_bytes, __ATOMIC_RELAXED);
}

void KernelBase::run_range(WorkerContext* ctx, std::size_t first, std::size_t last,
                           std::size_t count, const std::atomic<bool>& abort) {
  for (std::size_t id = first; id < last && !abort.load(std::memory_order_relaxed); ++id) {
    Thread t(ctx, id, count);
    run(t);
  }
}

namespace {

std::string describe(const char* what, std::uintptr_t va, std::size_t n) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "%s of %zu bytes at 0x%lx", what, n,
                static_cast<unsigned long>(va));
  return buf;
}

[[noreturn]] void raise(int code, const char* what, std::uintptr_t va, std::size_t n,
                        const char* why) {
  throw Error(static_cast<Errc>(code - 1),
              "device kernel: " + describe(what, va, n) + ": " + why);
}

void bump(std::uint64_t& counter) { __atomic_store_n(&counter, counter + 1, __ATOMIC_RELAXED); }

// Posts a device fault for the page of va and waits for the replay. Throws on error.
// `miss`: the device page table did not map the page (a replay settles it once something
// maps it); else an in-place access the CPU refused, which the mirror must see.
void device_fault(WorkerContext* w, std::uintptr_t va, bool write, const char* what,
                  std::size_t n, bool miss) {
  FaultRequest& r = w->request;
  std::uintptr_t page = os::page_down(va);
  r.reset(page, page + os::kPageSize, write, true);
  r.replayable = miss;
  w->device->fault_and_wait(&r);
  if (r.error != 0) {
    const char* why = r.over_limit ? "the device's working set would exceed "
                                     "Options::max_oversubscription times its memory"
                      : r.error - 1 == static_cast<int>(Errc::permission)
                          ? "no write access"
                          : "no mapping with the needed access";
    raise(r.error, what, va, n, why);
  }
}

// Enters a device access of the page holding va and returns the host address to use.
// On return w->active is set; the caller must clear it after the access.
std::byte* translate(WorkerContext* w, std::uintptr_t va, bool write, bool* local,
                     const char* what, std::size_t n) {
  const auto& epoch = w->device->epoch_ref();
  const bool asymmetric = w->device->asymmetric_fences();
  for (;;) {
    std::uint64_t e;
    do {
      e = epoch.load(std::memory_order_seq_cst);
      w->publish(e, asymmetric);
    } while (epoch.load(std::memory_order_seq_cst) != e);
    w->sync_tlb(e);
    std::uint64_t vpn = va >> os::kPageShift;
    TlbEntry& t = w->tlb[WorkerContext::slot(vpn)];
    std::uint64_t entry = 0;
    if (t.vpn == vpn && (!write || (t.pte & pte::kWrite))) {
      entry = t.pte;
      bump(w->tlb_hits);
    } else {
      bump(w->tlb_misses);
      // An injected stall here holds up TLB shootdowns too, as a slow worker would.
      w->device->injector().maybe_stall(base::FaultInjector::worker_stall);
      std::uint64_t p = w->device->walk(va);
      if ((p & pte::kValid) && (!write || (p & pte::kWrite))) {
        t.vpn = vpn;
        t.pte = p;
        entry = p;
      }
    }
    if (entry != 0) {
      *local = (entry & pte::kLocal) != 0;
      return reinterpret_cast<std::byte*>((entry & pte::kAddrMask) | (va & (os::kPageSize - 1)));
    }
    w->active.store(0, std::memory_order_release);
    device_fault(w, va, write, what, n, true);
  }
}

void leave(WorkerContext* w) { w->active.store(0, std::memory_order_release); }

void drop_tlb_entry(WorkerContext* w, std::uintptr_t va) {
  std::uint64_t vpn = va >> os::kPageShift;
  TlbEntry& t = w->tlb[WorkerContext::slot(vpn)];
  if (t.vpn == vpn) t.vpn = ~std::uint64_t{0};
}

int safe_load(const void* src, void* out, std::size_t n) {
  auto a = reinterpret_cast<std::uintptr_t>(src);
  if ((a & (n - 1)) == 0) {
    switch (n) {
      case 1: return hetmm_safe_load1(src, out);
      case 2: return hetmm_safe_load2(src, out);
      case 4: return hetmm_safe_load4(src, out);
      case 8: return hetmm_safe_load8(src, out);
      default: break;
    }
  }
  return hetmm_safe_copy(out, src, n);
}

int safe_store(void* dst, const void* in, std::size_t n) {
  auto a = reinterpret_cast<std::uintptr_t>(dst);
  if ((a & (n - 1)) == 0 && (n == 1 || n == 2 || n == 4 || n == 8)) {
    std::uint64_t v = 0;
    std::memcpy(&v, in, n);
    switch (n) {
      case 1: return hetmm_safe_store1(dst, v);
      case 2: return hetmm_safe_store2(dst, v);
      case 4: return hetmm_safe_store4(dst, v);
      default: return hetmm_safe_store8(dst, v);
    }
  }
  return hetmm_safe_copy(dst, in, n);
}

// One access confined to a page. Retries once through a fresh fault when the CPU MMU refuses an
// in-place access (the mapping changed under the kernel); the fault reports the real error.
template <class Local, class InPlace>
void access_page(WorkerContext* w, std::uintptr_t va, bool write, const char* what,
                 std::size_t n, Local&& on_local, InPlace&& in_place) {
  // User addresses have at most 57 bits; the page table's index would alias a higher one to a
  // lower page, so it is refused here (found by the bad-input sweep).
  if (va >> 57)
    raise(static_cast<int>(Errc::fault) + 1, what, va, n, "beyond the user address space");
  for (int attempt = 0;; ++attempt) {
    bool local = false;
    std::byte* h = translate(w, va, write, &local, what, n);
    int rc = 0;
    if (local) {
      on_local(h);
      leave(w);
      __atomic_store_n(&w->local_bytes, w->local_bytes + n, __ATOMIC_RELAXED);
    } else {
      // An in-place access is a CPU access: it leaves the shootdown protocol before it starts
      // (see worker.hpp), since it may block in a CPU page fault that only the userfaultfd
      // handler serves, and the handler may be the invalidator waiting for this worker.
      leave(w);
      rc = in_place(h);
      if (rc == 0) {
        __atomic_store_n(&w->in_place_bytes, w->in_place_bytes + n, __ATOMIC_RELAXED);
        w->device->count_in_place(w, va, n);
      }
    }
    if (rc == 0) return;
    drop_tlb_entry(w, va);
    if (attempt == 2) raise(static_cast<int>(Errc::fault) + 1, what, va, n, "the CPU MMU refused the access");
    device_fault(w, va, write, what, n, false);
  }
}

WorkerContext* require(WorkerContext* w) {
  if (w == nullptr) throw Error(Errc::invalid_argument, "hetmm::Thread used outside a kernel");
  return w;
}

}  // namespace

void thread_load(WorkerContext* w, const void* p, void* out, std::size_t n) {
  require(w);
  auto va = reinterpret_cast<std::uintptr_t>(p);
  auto* o = static_cast<std::byte*>(out);
  while (n > 0) {
    std::size_t in_page = std::min(n, os::kPageSize - (va & (os::kPageSize - 1)));
    access_page(w, va, false, "load", in_page,
                [&](std::byte* h) { std::memcpy(o, h, in_page); },
                [&](std::byte* h) { return safe_load(h, o, in_page); });
    va += in_page;
    o += in_page;
    n -= in_page;
  }
}

void thread_store(WorkerContext* w, void* p, const void* in, std::size_t n) {
  require(w);
  auto va = reinterpret_cast<std::uintptr_t>(p);
  auto* i = static_cast<const std::byte*>(in);
  while (n > 0) {
    std::size_t in_page = std::min(n, os::kPageSize - (va & (os::kPageSize - 1)));
    access_page(w, va, true, "store", in_page,
                [&](std::byte* h) { std::memcpy(h, i, in_page); },
                [&](std::byte* h) { return safe_store(h, i, in_page); });
    va += in_page;
    i += in_page;
    n -= in_page;
  }
}

std::uint64_t thread_load_bits(WorkerContext* w, const void* p, std::size_t n) {
  std::uint64_t bits = 0;
  thread_load(w, p, &bits, n);
  return bits;
}

void thread_store_bits(WorkerContext* w, void* p, std::uint64_t bits, std::size_t n) {
  thread_store(w, p, &bits, n);
}

std::uint64_t thread_atomic_add(WorkerContext* w, void* p, std::uint64_t v, std::size_t n) {
  require(w);
  auto va = reinterpret_cast<std::uintptr_t>(p);
  if ((va & (n - 1)) != 0)
    throw Error(Errc::invalid_argument, "device kernel: " + describe("atomic_add", va, n) +
                                            ": address not aligned to the operand size");
  std::uint64_t old = 0;
  access_page(
      w, va, true, "atomic_add", n,
      [&](std::byte* h) {
        switch (n) {
          case 1: old = __atomic_fetch_add(reinterpret_cast<std::uint8_t*>(h), static_cast<std::uint8_t>(v), __ATOMIC_SEQ_CST); break;
          case 2: old = __atomic_fetch_add(reinterpret_cast<std::uint16_t*>(h), static_cast<std::uint16_t>(v), __ATOMIC_SEQ_CST); break;
          case 4: old = __atomic_fetch_add(reinterpret_cast<std::uint32_t*>(h), static_cast<std::uint32_t>(v), __ATOMIC_SEQ_CST); break;
          default: old = __atomic_fetch_add(reinterpret_cast<std::uint64_t*>(h), v, __ATOMIC_SEQ_CST); break;
        }
      },
      [&](std::byte* h) {
        switch (n) {
          case 1: return hetmm_safe_xadd1(h, v, &old);
          case 2: return hetmm_safe_xadd2(h, v, &old);
          case 4: return hetmm_safe_xadd4(h, v, &old);
          default: return hetmm_safe_xadd8(h, v, &old);
        }
      });
  if (n < 8) old &= (std::uint64_t{1} << (8 * n)) - 1;
  return old;
}

namespace {

// The operations of spirv::AtomicOp, in its order.
enum : unsigned { kXchg, kAdd, kSub, kAnd, kOr, kXor, kMax, kMin, kUMax, kUMin, kFAdd, kFSub, kCmpXchg };

template <class U>
U rmw_value(unsigned op, U old, U operand) {
  using S = std::make_signed_t<U>;
  switch (op & 0xff) {
    case kXchg: return operand;
    case kAdd: return old + operand;
    case kSub: return old - operand;
    case kAnd: return old & operand;
    case kOr: return old | operand;
    case kXor: return old ^ operand;
    case kMax: return static_cast<S>(old) > static_cast<S>(operand) ? old : operand;
    case kMin: return static_cast<S>(old) < static_cast<S>(operand) ? old : operand;
    case kUMax: return old > operand ? old : operand;
    case kUMin: return old < operand ? old : operand;
    case kFAdd:
    case kFSub: {
      using F = std::conditional_t<sizeof(U) == 4, float, double>;
      F a, b;
      std::memcpy(&a, &old, sizeof a);
      std::memcpy(&b, &operand, sizeof b);
      F r = (op & 0xff) == kFAdd ? a + b : a - b;
      U out;
      std::memcpy(&out, &r, sizeof out);
      return out;
    }
    default: return old;
  }
}

// One atomic read-modify-write as a compare-exchange loop (every op the same way: the local
// and in-place cases differ only in how they are entered).
template <class U>
U atomic_rmw(U* p, unsigned op, U operand, U expected) {
  if ((op & 0xff) == kCmpXchg) {
    U e = expected;
    __atomic_compare_exchange_n(p, &e, operand, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return e;
  }
  U old = __atomic_load_n(p, __ATOMIC_RELAXED);
  while (!__atomic_compare_exchange_n(p, &old, rmw_value(op, old, operand), true,
                                      __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
  }
  return old;
}

std::uint64_t atomic_rmw_n(void* h, std::size_t n, unsigned op, std::uint64_t operand,
                           std::uint64_t expected) {
  if (n == 4)
    return atomic_rmw(static_cast<std::uint32_t*>(h), op, static_cast<std::uint32_t>(operand),
                      static_cast<std::uint32_t>(expected));
  return atomic_rmw(static_cast<std::uint64_t*>(h), op, operand, expected);
}

}  // namespace

std::uint64_t thread_atomic_rmw(WorkerContext* w, void* p, unsigned op, std::size_t n,
                                std::uint64_t operand, std::uint64_t expected,
                                sigjmp_buf* recover) {
  require(w);
  auto va = reinterpret_cast<std::uintptr_t>(p);
  if ((n != 4 && n != 8) || (va & (n - 1)) != 0)
    throw Error(Errc::invalid_argument, "device kernel: " + describe("atomic", va, n) +
                                            ": address not aligned to the operand size");
  std::uint64_t old = 0;
  access_page(
      w, va, true, "atomic", n,
      [&](std::byte* h) { old = atomic_rmw_n(h, n, op, operand, expected); },
      [&](std::byte* h) {
        w->jit_recover = recover;
        old = atomic_rmw_n(h, n, op, operand, expected);
        w->jit_recover = nullptr;
        return 0;
      });
  return old;
}

// ---------------------------------------------------------------------------------------------
// The span fast path: one translation per page. A local piece is handed to the kernel in the
// device frame itself, with the access held open (active set) until the next call, so a
// shootdown waits for the kernel's callback exactly as it waits for one load. An in-place
// piece goes through the worker's bounce buffer with recoverable copies, as load/store do.
// ---------------------------------------------------------------------------------------------
const void* span_next(SpanCursor& c) {
  WorkerContext* w = require(c.ctx);
  if (c.holding) {
    leave(w);
    c.holding = false;
  }
  if (c.pending != nullptr) {
    void* dst = c.pending;
    c.pending = nullptr;
    thread_store(w, dst, w->span_bounce, c.piece_bytes);
  }
  if (c.left == 0) return nullptr;
  auto va = reinterpret_cast<std::uintptr_t>(c.next);
  std::size_t n = std::min(c.left, os::kPageSize - (va & (os::kPageSize - 1)));
  const char* what = c.write ? "write_span" : "read_span";
  if (va >> 57)
    raise(static_cast<int>(Errc::fault) + 1, what, va, n, "beyond the user address space");
  c.next = reinterpret_cast<const std::byte*>(c.next) + n;
  c.left -= n;
  c.piece_bytes = n;
  bool local = false;
  std::byte* h = translate(w, va, c.write, &local, what, n);
  if (local) {
    c.holding = true;
    __atomic_store_n(&w->local_bytes, w->local_bytes + n, __ATOMIC_RELAXED);
    return h;
  }
  leave(w);
  if (c.write) {
    c.pending = reinterpret_cast<void*>(va);
    return w->span_bounce;
  }
  if (hetmm_safe_copy(w->span_bounce, h, n) != 0) {
    // The mapping changed under the kernel: the ordinary path faults and reports the error.
    drop_tlb_entry(w, va);
    thread_load(w, reinterpret_cast<const void*>(va), w->span_bounce, n);
    return w->span_bounce;
  }
  __atomic_store_n(&w->in_place_bytes, w->in_place_bytes + n, __ATOMIC_RELAXED);
  w->device->count_in_place(w, va, n);
  return w->span_bounce;
}

void span_end(SpanCursor& c) noexcept {
  // The callback threw: the access ends here and a half-filled write piece is not stored.
  if (c.holding && c.ctx != nullptr) leave(c.ctx);
  c.holding = false;
  c.pending = nullptr;
}

}  // namespace hetmm::detail
