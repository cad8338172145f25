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
  }
  return "unknown";
}

Error::Error(Errc code, const std::string& message)
    : std::runtime_error(message + " [" + to_string(code) + "]"), code_(code) {}

std::string Location::to_string() const {
  return is_system() ? "system" : "device " + std::to_string(index_);
}

}  // namespace hetmm
