// Layer telemetry: includes base, os.
// The telemetry event log: a fixed-capacity ring of Events that the fault paths write into.
//
// record() runs inside the SIGSEGV handler (mprotect tracking), in the userfaultfd handler
// thread and in device fault-service threads, often with the state lock held. It must therefore
// never block, never allocate and never make a system call: a thread blocked in it could be the
// one every other thread waits for, and malloc'ed memory may be a page the program migrated.
// So the ring is a bounded multi-producer queue with a sequence number per slot (Dmitry
// Vyukov's design): a producer claims a position with one compare-and-swap on the tail, fills
// the slot, and publishes it by storing the slot's sequence. When the ring is full the new event
// is dropped and counted; a fault path never waits for the consumer. The only call besides
// atomics is clock_gettime(CLOCK_MONOTONIC), which the vDSO serves without entering the kernel
// and which POSIX lists as async-signal-safe.
//
// Sequence encoding: slot i holds the events of positions i, i + C, i + 2C... (C = capacity).
// For position p, in lap L = p / C, the slot's sequence is 2L while it is free for p and 2L + 1
// once p's event is published; the consumer frees it for the next lap by storing 2L + 2. Zero
// thus means "free for lap 0", so the ring needs no initialisation pass and its memory is
// committed only as events arrive.
//
// The consumer side, take(), may run concurrently with producers; concurrent take() calls are
// serialised by a leaf mutex (lock order: telemetry). A position claimed but not yet published
// stops take() there: later events wait for the next call, so events always come out in
// position order (each producer's events in the order it recorded them).
//
// The slots and the scratch buffer take() drains into live in runtime memory (os/arena.hpp).
#pragma once

#include "base/lock_order.hpp"
#include "os/arena.hpp"

#include <hetmm/hetmm.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace hetmm::telemetry {

class EventLog final : public os::RuntimeAllocated {
 public:
  // 2^24 events of 40 bytes: 640 MiB of runtime memory at most, committed as it fills.
  static constexpr std::size_t kMaxCapacity = std::size_t{1} << 24;

  // capacity: 1..kMaxCapacity (Options::event_capacity, checked by the runtime).
  explicit EventLog(std::size_t capacity);
  ~EventLog();
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  // Async-signal-safe and lock-free. device: -1 for none.
  void record(EventKind kind, EventReason reason, int device, Location from, Location to,
              std::uintptr_t addr, std::uint64_t bytes) noexcept;

  // Every published event not yet taken, oldest first. Not async-signal-safe (it allocates).
  std::vector<Event> take();
  // Events lost because the ring was full.
  std::uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }
  std::size_t capacity() const noexcept { return capacity_; }

 private:
  struct Record {
    std::uint64_t time_ns;
    std::uintptr_t addr;
    std::uint64_t bytes;
    EventKind kind;
    EventReason reason;
    std::int16_t device, from, to;  // -1: none / system memory
  };
  struct Slot {
    std::atomic<std::uint64_t> seq;  // see the encoding above
    Record rec;
  };
  static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

  std::size_t capacity_;
  std::size_t map_len_;
  Slot* slots_;
  alignas(64) std::atomic<std::uint64_t> tail_{0};  // next position a producer claims
  alignas(64) std::atomic<std::uint64_t> head_{0};  // next position take() reads
  std::atomic<std::uint64_t> dropped_{0};
  base::lock_order::RankedMutex<base::lock_order::Rank::telemetry> take_mutex_;
};

}  // namespace hetmm::telemetry
