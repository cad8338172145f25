#include "device/sim/fault_buffer.hpp"

#include "os/syscalls.hpp"

#include <hetmm/hetmm.hpp>

namespace hetmm::device::sim {

FaultBuffer::FaultBuffer() {
  ring_ = static_cast<FaultRequest**>(os::map_runtime_memory(kCapacity * sizeof(FaultRequest*)));
}

FaultBuffer::~FaultBuffer() { os::unmap_runtime_memory(ring_, kCapacity * sizeof(FaultRequest*)); }

void FaultBuffer::post(FaultRequest* r) {
  base::lock_order::UniqueLock lock(mutex_);
  not_full_.wait(lock.get(), [&] { return count_ < kCapacity || stopping_; });
  if (stopping_) {
    lock.unlock();
    r->error = static_cast<int>(Errc::device_lost) + 1;
    r->error_addr = r->start;
    r->complete();
    return;
  }
  ring_[(head_ + count_) % kCapacity] = r;
  ++count_;
  lock.unlock();
  not_empty_.notify_one();
}

std::size_t FaultBuffer::drain(FaultRequest** out, std::size_t max) {
  {
    base::lock_order::UniqueLock lock(mutex_);
    not_empty_.wait(lock.get(), [&] { return count_ > 0 || stopping_; });
  }
  return take(out, max);
}

std::size_t FaultBuffer::take(FaultRequest** out, std::size_t max) {
  base::lock_order::UniqueLock lock(mutex_);
  std::size_t n = 0;
  while (n < max && count_ > 0) {
    out[n++] = ring_[head_];
    head_ = (head_ + 1) % kCapacity;
    --count_;
  }
  lock.unlock();
  if (n > 0) not_full_.notify_all();
  return n;
}

std::size_t FaultBuffer::queued() const {
  std::lock_guard lock(mutex_);
  return count_;
}

void FaultBuffer::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  not_empty_.notify_all();
  not_full_.notify_all();
}

void FaultBuffer::restart() {
  std::lock_guard lock(mutex_);
  stopping_ = false;
}

}  // namespace hetmm::device::sim
