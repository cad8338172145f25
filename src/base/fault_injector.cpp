#include "base/fault_injector.hpp"

#include <cerrno>
#include <cmath>
#include <ctime>

namespace hetmm::base {

namespace {
std::uint64_t threshold_of(double p) {
  if (!(p > 0)) return 0;
  if (p >= 1) return ~std::uint64_t{0};
  return static_cast<std::uint64_t>(std::ldexp(p, 64));
}
}  // namespace

FaultInjector::FaultInjector(const FaultInjection& c) {
  threshold_[frame_alloc] = threshold_of(c.frame_alloc);
  threshold_[copy] = threshold_of(c.copy);
  threshold_[uffd_ioctl] = threshold_of(c.uffd_ioctl);
  threshold_[service_delay] = threshold_of(c.service_delay);
  threshold_[worker_stall] = threshold_of(c.worker_stall);
  threshold_[host_change] = threshold_of(c.host_change);
  threshold_[event_defer] = threshold_of(c.event_defer);
  threshold_[move_miscount] = threshold_of(c.move_miscount);
  threshold_[decision_delay] = threshold_of(c.decision_delay);
  max_delay_us_ = c.max_delay_us;
  state_.store(c.seed, std::memory_order_relaxed);
  for (std::uint64_t t : threshold_) enabled_ |= t != 0;
}

std::uint64_t FaultInjector::next() {
  // splitmix64 over an atomic counter: every caller gets a distinct draw without a lock.
  std::uint64_t z = state_.fetch_add(0x9e3779b97f4a7c15ull, std::memory_order_relaxed);
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

bool FaultInjector::fire_slow(Point p) {
  std::uint64_t t = threshold_[p];
  if (t == 0 || next() > t) return false;
  count_[p].fetch_add(1, std::memory_order_relaxed);
  return true;
}

int FaultInjector::ioctl_errno() { return (next() & 1) ? EAGAIN : ENOMEM; }

void FaultInjector::stall() {
  if (max_delay_us_ == 0) return;
  std::uint64_t us = next() % (max_delay_us_ + 1u);
  timespec ts{static_cast<time_t>(us / 1000000), static_cast<long>(us % 1000000) * 1000};
  ::nanosleep(&ts, nullptr);  // async-signal-safe
}

InjectedFaults FaultInjector::counts() const {
  InjectedFaults f;
  f.frame_alloc = count(frame_alloc);
  f.copy = count(copy);
  f.uffd_ioctl = count(uffd_ioctl);
  f.service_delay = count(service_delay);
  f.worker_stall = count(worker_stall);
  f.host_change = count(host_change);
  f.event_defer = count(event_defer);
  f.move_miscount = count(move_miscount);
  f.decision_delay = count(decision_delay);
  return f;
}

}  // namespace hetmm::base
