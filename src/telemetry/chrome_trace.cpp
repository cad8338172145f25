// write_chrome_trace: events as the Chrome trace JSON Object Format (Perfetto UI,
// chrome://tracing). Instant events carry every Event field in args so that read_chrome_trace
// gets them back exactly; times are relative to the first event, with the absolute start kept
// in otherData as a decimal string (a double, which JSON readers use for numbers, cannot hold a
// 64-bit nanosecond count).
#include "telemetry/trace_model.hpp"

#include <hetmm/trace.hpp>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <ostream>

namespace hetmm {

namespace {

using namespace telemetry::trace;

void put_string(std::ostream& out, const std::string& s) {
  out << '"';
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out << '\\' << c;
    } else if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      out << buf;
    } else {
      out << c;
    }
  }
  out << '"';
}

// Microseconds with nanosecond digits, the unit of "ts".
std::string micros(std::uint64_t ns) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%" PRIu64 ".%03" PRIu64, ns / 1000, ns % 1000);
  return buf;
}

std::string hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%" PRIx64, v);
  return buf;
}

int tid(std::size_t track) { return static_cast<int>(track) + 1; }

// Writes the records of traceEvents, a comma before every one but the first.
class Records {
 public:
  explicit Records(std::ostream& out) : out_(out) {}
  std::ostream& next() {
    if (!first_) out_ << ",\n";
    first_ = false;
    return out_;
  }
  void metadata(const char* name, int thread, const std::string& value) {
    next() << "{\"name\":\"" << name << "\",\"ph\":\"M\",\"pid\":" << kPid;
    if (thread != 0) out_ << ",\"tid\":" << thread;
    out_ << ",\"args\":{\"name\":";
    put_string(out_, value);
    out_ << "}}";
  }
  void sort_index(int thread, std::size_t index) {
    next() << "{\"name\":\"thread_sort_index\",\"ph\":\"M\",\"pid\":" << kPid
           << ",\"tid\":" << thread << ",\"args\":{\"sort_index\":" << index << "}}";
  }
  void counter(std::size_t device, std::uint64_t rel_ns, std::uint64_t bytes) {
    next() << "{\"name\":\"device " << device << " resident bytes\",\"ph\":\"C\",\"pid\":"
           << kPid << ",\"ts\":" << micros(rel_ns) << ",\"args\":{\"bytes\":" << bytes << "}}";
  }
  void event(const Event& e, std::uint64_t rel_ns) {
    const char* kind = to_string(e.kind);
    const char* reason = to_string(e.reason);
    next() << "{\"name\":\"" << kind << "\",\"cat\":\"" << reason
           << "\",\"ph\":\"i\",\"s\":\"t\",\"pid\":" << kPid << ",\"tid\":" << tid(track_of(e))
           << ",\"ts\":" << micros(rel_ns) << ",\"args\":{\"kind\":\"" << kind
           << "\",\"reason\":\"" << reason << "\",\"device\":" << e.device << ",\"addr\":\""
           << hex(e.addr) << "\",\"bytes\":" << e.bytes << ",\"from\":\"" << e.from.to_string()
           << "\",\"to\":\"" << e.to.to_string() << "\",\"t_ns\":" << rel_ns << "}}";
  }

 private:
  std::ostream& out_;
  bool first_ = true;
};

}  // namespace

void write_chrome_trace(std::ostream& out, const std::vector<Event>& events,
                        const TraceInfo& info) {
  std::vector<const Event*> order;
  order.reserve(events.size());
  for (const Event& e : events) order.push_back(&e);
  std::stable_sort(order.begin(), order.end(),
                   [](const Event* a, const Event* b) { return a->time_ns < b->time_ns; });
  std::uint64_t t0 = order.empty() ? 0 : order.front()->time_ns;
  std::size_t ndev = device_count(events, info);

  out << "{\"traceEvents\":[\n";
  Records rec(out);
  rec.metadata("process_name", 0, info.process_name);
  for (std::size_t t = 0; t <= ndev; ++t) {
    rec.metadata("thread_name", tid(t), track_name(t));
    rec.sort_index(tid(t), t);
  }
  for (std::size_t d = 0; d < ndev; ++d) rec.counter(d, 0, 0);
  Residency resident(ndev);
  for (const Event* e : order) {
    std::uint64_t rel = e->time_ns - t0;
    rec.event(*e, rel);
    if (!resident.apply(*e, e->bytes)) continue;
    for (Location l : {e->from, e->to})
      if (!l.is_system() && l.device_index() < ndev)
        rec.counter(l.device_index(), rel, resident.on_device(l.device_index()));
  }
  out << "\n],\n\"displayTimeUnit\":\"ns\",\n\"otherData\":{\"format\":\"" << kFormat
      << "\",\"version\":" << kVersion << ",\"process\":";
  put_string(out, info.process_name);
  out << ",\"t0_ns\":\"" << t0 << "\",\"devices\":" << ndev << ",\"device_memory\":[";
  for (std::size_t d = 0; d < info.device_memory.size(); ++d)
    out << (d ? "," : "") << info.device_memory[d];
  out << "],\"events\":" << events.size() << ",\"events_dropped\":" << info.events_dropped
      << "}}\n";
}

}  // namespace hetmm
