// Layer telemetry: includes base, os.
// The conventions a hetmm trace shares between its writer (chrome_trace.cpp), its reader
// (trace_reader.cpp) and its renderer (trace_svg.cpp): which track an event belongs to, which
// events move bytes between locations, and how bytes resident per location follow from them.
#pragma once

#include <hetmm/hetmm.hpp>
#include <hetmm/trace.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace hetmm::telemetry::trace {

inline constexpr const char* kFormat = "hetmm-trace";
inline constexpr int kVersion = 1;
inline constexpr int kPid = 1;
inline constexpr std::size_t kMaxDevices = 32768;  // Event::device is 16 bits

// Track 0 is the system / CPU side (CPU faults, events of no device), track d + 1 device d.
// Chrome trace tids are track + 1: some viewers treat tid 0 as the idle task.
inline std::size_t track_of(const Event& e) {
  if (e.kind == EventKind::cpu_fault || e.device < 0) return 0;
  return static_cast<std::size_t>(e.device) + 1;
}
inline std::string track_name(std::size_t track) {
  return track == 0 ? "system (CPU)" : "device " + std::to_string(track - 1);
}

// Events whose from/to say where `bytes` went. fault (a span, not data), pin (mapped in place)
// and invalidate (mappings only) move nothing; duplicate adds a device copy and keeps the
// system's, which `from` (system) already expresses.
inline bool moves_data(EventKind k) {
  return k == EventKind::migrate || k == EventKind::evict || k == EventKind::prefetch ||
         k == EventKind::duplicate || k == EventKind::cpu_fault;
}

inline std::size_t device_count(const std::vector<Event>& events, const TraceInfo& info) {
  std::size_t n = info.device_memory.size();
  auto see = [&n](std::size_t d) { n = std::max(n, std::min(d + 1, kMaxDevices)); };
  for (const Event& e : events) {
    if (e.device >= 0) see(static_cast<std::size_t>(e.device));
    if (!e.from.is_system()) see(e.from.device_index());
    if (!e.to.is_system()) see(e.to.device_index());
  }
  return n;
}

// Bytes on each device as moves arrive. Clamped at 0 (and at `limit` per device when given): a
// trace with dropped events, or one that starts after pages already moved, must not go negative.
class Residency {
 public:
  explicit Residency(std::size_t devices, std::uint64_t limit = ~std::uint64_t{0})
      : bytes_(devices, 0), limit_(limit) {}
  // Returns true when a device's figure changed.
  bool apply(const Event& e, std::uint64_t bytes) {
    if (!moves_data(e.kind) || bytes == 0) return false;
    bool changed = false;
    if (!e.from.is_system() && e.from.device_index() < bytes_.size()) {
      std::uint64_t& b = bytes_[e.from.device_index()];
      std::uint64_t take = std::min(b, bytes);
      b -= take;
      changed |= take != 0;
    }
    if (!e.to.is_system() && e.to.device_index() < bytes_.size()) {
      std::uint64_t& b = bytes_[e.to.device_index()];
      std::uint64_t add = std::min(limit_ - b, bytes);
      b += add;
      changed |= add != 0;
    }
    return changed;
  }
  std::uint64_t on_device(std::size_t d) const { return bytes_[d]; }
  std::uint64_t on_devices() const {
    std::uint64_t sum = 0;
    for (std::uint64_t b : bytes_) sum += b;
    return sum;
  }
  std::size_t devices() const { return bytes_.size(); }

 private:
  std::vector<std::uint64_t> bytes_;
  std::uint64_t limit_;
};

}  // namespace hetmm::telemetry::trace
