// Layer device: includes base, os, telemetry.
// The replayable fault buffer of the software device.
//
// A worker that misses in its TLB and page table posts a FaultRequest and sleeps on it; API
// calls (Device::read/write) post range requests the same way. The device's service thread
// drains up to kMaxBatch requests at a time, sorts and coalesces them, resolves them through
// the mirror, then completes each request ("replay"). Requests live in runtime memory.
#pragma once

#include "base/lock_order.hpp"

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>

namespace hetmm::device::sim {

struct FaultRequest {
  std::uintptr_t start = 0;  // page-aligned
  std::uintptr_t end = 0;
  bool write = false;
  bool kernel = false;  // a worker's fault (policies may migrate), not an API call's
  // A worker's miss in the device page table: if the pages are mapped by the time the service
  // looks, a replay settles it (SimDevice::flush). Not an in-place access the CPU refused (the
  // mirror must see that one), not an API call's range.
  bool replayable = false;
  int error = 0;  // filled by the service: 0 or Errc + 1
  std::uintptr_t error_addr = 0;
  bool over_limit = false;  // out_of_memory because of Options::max_oversubscription
  std::atomic<std::uint32_t> done{0};

  void reset(std::uintptr_t s, std::uintptr_t e, bool w, bool from_kernel = false) {
    start = s;
    end = e;
    write = w;
    kernel = from_kernel;
    replayable = false;
    error = 0;
    error_addr = 0;
    over_limit = false;
    done.store(0, std::memory_order_relaxed);
  }
  // Spin briefly (a ring round trip is ~1 us), then sleep on a futex.
  void wait() {
    for (int i = 0; i < 2000; ++i) {
      if (done.load(std::memory_order_acquire)) return;
      __builtin_ia32_pause();
    }
    while (!done.load(std::memory_order_acquire)) done.wait(0, std::memory_order_acquire);
  }
  void complete() {
    done.store(1, std::memory_order_release);
    done.notify_all();
  }
};

class FaultBuffer {
 public:
  static constexpr std::size_t kCapacity = 4096;
  static constexpr std::size_t kMaxBatch = 256;

  FaultBuffer();
  ~FaultBuffer();
  FaultBuffer(const FaultBuffer&) = delete;
  FaultBuffer& operator=(const FaultBuffer&) = delete;

  void post(FaultRequest* r);
  // Blocks until at least one request is queued or stop() was called; returns how many were
  // taken (0 only when stopping).
  std::size_t drain(FaultRequest** out, std::size_t max);
  // As drain, without waiting: 0 when nothing is queued.
  std::size_t take(FaultRequest** out, std::size_t max);
  std::size_t queued() const;  // requests posted and not yet drained
  void stop();
  void restart();

 private:
  // Lock order: a leaf, taken with no other lock held (base/lock_order.hpp).
  mutable base::lock_order::RankedMutex<base::lock_order::Rank::fault_buffer> mutex_;
  std::condition_variable not_empty_;
  std::condition_variable not_full_;
  FaultRequest** ring_;
  std::size_t head_ = 0;
  std::size_t count_ = 0;
  bool stopping_ = false;
};

}  // namespace hetmm::device::sim
