// hetmm internals that Thread's inline accesses compile against: a worker's page TLB and the
// words of the shootdown protocol (src/device/sim/worker.hpp describes the protocol; the
// constants here are its, checked there). Not an API: the layout changes with the library.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

// ThreadSanitizer cannot see inside asm: under it the publish is written with atomics.
#if defined(__SANITIZE_THREAD__)
#define HETMM_DETAIL_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HETMM_DETAIL_TSAN 1
#endif
#endif

namespace hetmm::detail {

struct WorkerContext;

struct TlbEntry {
  std::uint64_t vpn = ~std::uint64_t{0};
  std::uint64_t pte = 0;
};

// What Thread::load/store read of their worker on a TLB hit, and how.
//
// The hit path is the worker's protocol (worker.hpp), inline and for device frames only:
//   active = tlb_epoch (the epoch the worker's TLB holds: a plain store, which the
//   invalidator's asymmetric fence orders); epoch == tlb_epoch (the TLB is current and the
//   publish counts); TLB entry of the page, local (a device frame), with the right; access the
//   frame; active = 0 (release).
// Publishing the TLB's epoch rather than a fresh read of the epoch is the protocol's own
// re-check: whatever value is published, it counts only if the epoch still equals it after.
// Anything else (a miss, a page in system memory, an access that leaves its page, a newer
// epoch, a host where the publish needs a hardware fence) takes the out-of-line path, which
// runs the full protocol, faults and counts.
// The path keeps no shared counter: a read-modify-write of one memory word per access is a
// chain through store forwarding (about 10 cycles an access here). Hits and device-memory
// bytes add up in the Thread, in registers where the kernel is inlined, and reach the worker's
// counters when the Thread ends (each run of thread ids).
struct HitPath {
  static constexpr unsigned kPageShift = 12;
  static constexpr std::uint64_t kPageMask = (std::uint64_t{1} << kPageShift) - 1;
  static constexpr unsigned kTlbShift = 10;  // 1024 entries
  static constexpr std::uint64_t kTlbHash = 0x9E3779B97F4A7C15ull;
  // PTE bits (device/device_backend.hpp's pte::).
  static constexpr std::uint64_t kWrite = 2;
  static constexpr std::uint64_t kLocal = 4;
  static constexpr std::uint64_t kAddrMask = ~std::uint64_t{0xfff};

  // The worker's words, in this order (WorkerContext; checked in worker_access.cpp): the
  // protocol word `active`, the TLB's epoch, the TLB, where the device's epoch is, the worker
  // itself (for the out-of-line path). One pointer reaches them all: what a kernel keeps live
  // across its out-of-line calls is a few registers (more, and the compiler spilled the counts
  // to memory, a store forwarding per access again).
  struct Words {
    std::atomic<std::uint64_t> active;
    std::uint64_t tlb_epoch;
    TlbEntry tlb[std::size_t{1} << kTlbShift];
    // The epoch the hit path checks: the device's where the publish may be a plain store (the
    // invalidator's heavy fence orders it: os/asymmetric_fence), else kNoEpoch (the hit path
    // is off: every access goes out of line).
    const std::atomic<std::uint64_t>* epoch;
    WorkerContext* worker;
  };
  // An epoch no TLB ever holds: the words of a Thread without a worker, or of a host without
  // the asymmetric fence, point at it.
  static constexpr std::uint64_t kNoEpoch = ~std::uint64_t{0};

  // A Thread's counts, in one register: hits from bit 40 up, bytes below. Spilled to the
  // worker (add_thread_counts) before the hits reach bit 63.
  static constexpr unsigned kHitShift = 40;
  static constexpr std::uint64_t kBytesMask = (std::uint64_t{1} << kHitShift) - 1;

  static std::size_t slot(std::uint64_t vpn) {
    return static_cast<std::size_t>((vpn * kTlbHash) >> (64 - kTlbShift));
  }

  // active = e, then the epoch now, in this order. Ordering the two for the hardware is the
  // invalidator's heavy fence; for the compiler, on x86-64, one asm statement naming just
  // those two words, so that the rest of the kernel stays in registers (a general compiler
  // barrier made it reload everything at every access).
  static std::uint64_t publish(Words* w, std::uint64_t e) {
#if defined(__x86_64__) && !defined(HETMM_DETAIL_TSAN)
    std::uint64_t now;
    asm volatile("movq %2, %0\n\tmovq %3, %1"
                 : "=m"(*reinterpret_cast<std::uint64_t*>(&w->active)), "=r"(now)
                 : "r"(e), "m"(*reinterpret_cast<const std::uint64_t*>(w->epoch)));
    return now;
#else
    w->active.store(e, std::memory_order_relaxed);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    return w->epoch->load(std::memory_order_seq_cst);
#endif
  }
  static void leave(Words* w) { w->active.store(0, std::memory_order_release); }
};

}  // namespace hetmm::detail
