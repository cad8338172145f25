// Runtime's telemetry entry points that need nothing from the mirror: the event log.
#include "api/runtime_impl.hpp"

namespace hetmm {

std::vector<Event> Runtime::take_events() {
  // In a forked child the ring may hold a slot a parent thread claimed and never published.
  impl_->check_usable("take_events");
  if (telemetry::EventLog* log = impl_->events()) return log->take();
  return {};
}

std::uint64_t Runtime::events_dropped() const {
  if (telemetry::EventLog* log = impl_->events()) return log->dropped();
  return 0;
}

}  // namespace hetmm
