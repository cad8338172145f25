#include "telemetry/event_log.hpp"

#include "os/page.hpp"
#include "os/syscalls.hpp"

#include <mutex>
#include <time.h>

namespace hetmm::telemetry {

namespace {
std::int16_t encode(Location l) {
  return l.is_system() ? std::int16_t{-1} : static_cast<std::int16_t>(l.device_index());
}
Location decode(std::int16_t v) {
  return v < 0 ? Location::system() : Location::device(static_cast<std::size_t>(v));
}
}  // namespace

EventLog::EventLog(std::size_t capacity)
    : capacity_(capacity), map_len_(os::page_up(capacity * sizeof(Slot))) {
  if (capacity == 0 || capacity > kMaxCapacity)
    throw Error(Errc::invalid_argument, "an event log holds 1.." + std::to_string(kMaxCapacity) +
                                            " events, not " + std::to_string(capacity));
  // Zero-filled runtime memory: every slot starts free for lap 0 (sequence 0).
  slots_ = static_cast<Slot*>(os::map_runtime_memory(map_len_));
}

EventLog::~EventLog() { os::unmap_runtime_memory(slots_, map_len_); }

void EventLog::record(EventKind kind, EventReason reason, int device, Location from, Location to,
                      std::uintptr_t addr, std::uint64_t bytes) noexcept {
  std::uint64_t pos = tail_.load(std::memory_order_relaxed);
  Slot* slot;
  std::uint64_t lap2;
  for (;;) {
    slot = &slots_[pos % capacity_];
    lap2 = pos / capacity_ * 2;
    // Acquire: the consumer's reads of this slot's previous event happen before we overwrite it.
    std::uint64_t seq = slot->seq.load(std::memory_order_acquire);
    auto diff = static_cast<std::int64_t>(seq - lap2);
    if (diff == 0) {
      if (tail_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) break;
    } else if (diff < 0) {
      // The slot still holds the previous lap's event: full. Dropping keeps fault paths
      // wait-free; the count tells the reader how much is missing.
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    } else {
      pos = tail_.load(std::memory_order_relaxed);
    }
  }
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  Record& r = slot->rec;
  r.time_ns = static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u +
              static_cast<std::uint64_t>(ts.tv_nsec);
  r.addr = addr;
  r.bytes = bytes;
  r.kind = kind;
  r.reason = reason;
  r.device = static_cast<std::int16_t>(device < 0 ? -1 : device);
  r.from = encode(from);
  r.to = encode(to);
  slot->seq.store(lap2 + 1, std::memory_order_release);
}

std::vector<Event> EventLog::take() {
  // Sized before the lock: under it only runtime memory is touched (the lock is a leaf, and a
  // malloc'ed buffer could sit on a page the program migrated, whose fault takes the state lock
  // under mprotect tracking). Events published after this estimate wait for the next call.
  // The head is read first: the tail, read after it, cannot be behind it.
  std::uint64_t head = head_.load(std::memory_order_acquire);
  std::uint64_t pending = tail_.load(std::memory_order_acquire) - head;
  if (pending == 0) return {};
  if (pending > capacity_) pending = capacity_;
  std::size_t scratch_len = os::page_up(pending * sizeof(Record));
  auto* scratch = static_cast<Record*>(os::map_runtime_memory(scratch_len));
  std::size_t n = 0;
  {
    std::lock_guard lock(take_mutex_);
    std::uint64_t pos = head_.load(std::memory_order_relaxed);
    while (n < pending) {
      Slot& slot = slots_[pos % capacity_];
      std::uint64_t lap2 = pos / capacity_ * 2;
      if (slot.seq.load(std::memory_order_acquire) != lap2 + 1) break;  // empty, or unpublished
      scratch[n++] = slot.rec;
      slot.seq.store(lap2 + 2, std::memory_order_release);
      ++pos;
    }
    head_.store(pos, std::memory_order_release);
  }
  std::vector<Event> out;
  try {
    out.reserve(n);
  } catch (...) {
    os::unmap_runtime_memory(scratch, scratch_len);
    throw;
  }
  for (std::size_t i = 0; i < n; ++i) {
    const Record& r = scratch[i];
    Event e;
    e.time_ns = r.time_ns;
    e.kind = r.kind;
    e.reason = r.reason;
    e.device = r.device;
    e.from = decode(r.from);
    e.to = decode(r.to);
    e.addr = r.addr;
    e.bytes = r.bytes;
    out.push_back(e);
  }
  os::unmap_runtime_memory(scratch, scratch_len);
  return out;
}

}  // namespace hetmm::telemetry
