#include <hetmm/hetmm.hpp>

namespace hetmm {

const char* to_string(Errc code) noexcept {
  switch (code) {
    case Errc::invalid_argument: return "invalid_argument";
    case Errc::fault: return "fault";
    case Errc::permission: return "permission";
    case Errc::not_found: return "not_found";
    case Errc::out_of_memory: return "out_of_memory";
    case Errc::busy: return "busy";
    case Errc::device_lost: return "device_lost";
    case Errc::unsupported: return "unsupported";
  }
  return "unknown";
}

const char* to_string(Tracking tracking) noexcept {
  switch (tracking) {
    case Tracking::automatic: return "automatic";
    case Tracking::userfaultfd: return "userfaultfd";
    case Tracking::mprotect: return "mprotect";
  }
  return "unknown";
}

const char* to_string(PolicyProfile profile) noexcept {
  switch (profile) {
    case PolicyProfile::hetmm: return "hetmm";
    case PolicyProfile::uvm: return "uvm";
    case PolicyProfile::in_place: return "in_place";
  }
  return "unknown";
}

const char* to_string(Advice advice) noexcept {
  switch (advice) {
    case Advice::read_mostly: return "read_mostly";
    case Advice::preferred_location: return "preferred_location";
    case Advice::accessed_by: return "accessed_by";
    case Advice::streaming: return "streaming";
    case Advice::write_only: return "write_only";
    case Advice::discard: return "discard";
  }
  return "unknown";
}

const char* to_string(EventKind kind) noexcept {
  switch (kind) {
    case EventKind::fault: return "fault";
    case EventKind::migrate: return "migrate";
    case EventKind::evict: return "evict";
    case EventKind::prefetch: return "prefetch";
    case EventKind::duplicate: return "duplicate";
    case EventKind::pin: return "pin";
    case EventKind::cpu_fault: return "cpu_fault";
    case EventKind::invalidate: return "invalidate";
  }
  return "unknown";
}

const char* to_string(EventReason reason) noexcept {
  switch (reason) {
    case EventReason::device_fault: return "device_fault";
    case EventReason::cpu_fault: return "cpu_fault";
    case EventReason::request: return "request";
    case EventReason::density_prefetch: return "density_prefetch";
    case EventReason::stream_prefetch: return "stream_prefetch";
    case EventReason::block_prefetch: return "block_prefetch";
    case EventReason::access_counter: return "access_counter";
    case EventReason::eviction: return "eviction";
    case EventReason::thrashing: return "thrashing";
    case EventReason::advice: return "advice";
    case EventReason::host_change: return "host_change";
  }
  return "unknown";
}

Error::Error(Errc code, const std::string& message)
    : std::runtime_error(message + " [" + to_string(code) + "]"), code_(code) {}

std::string Location::to_string() const {
  return is_system() ? "system" : "device " + std::to_string(index_);
}

}  // namespace hetmm
