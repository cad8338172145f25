// read_chrome_trace: a trace written by write_chrome_trace back into Events. The events are the
// instant records whose args carry a `kind`; metadata, counters and records of other tools are
// skipped. Every bad field is reported with the line and column where its value starts.
#include "telemetry/json.hpp"
#include "telemetry/trace_model.hpp"

#include <hetmm/trace.hpp>

#include <algorithm>
#include <charconv>
#include <istream>
#include <iterator>
#include <string_view>

namespace hetmm {

namespace {

using telemetry::json::Value;
using telemetry::json::fail_at;
using Type = Value::Type;

const Value& member(const Value& obj, const char* key, Type type, const char* what) {
  const Value* v = obj.find(key);
  if (v == nullptr) fail_at(obj, std::string(what) + " has no \"" + key + "\"");
  if (!v->is(type)) fail_at(*v, std::string("\"") + key + "\" has the wrong type");
  return *v;
}

// Kinds and reasons by name; the enumerations are dense from 0, and to_string says "unknown"
// past their end.
template <class Enum>
Enum enum_named(const Value& v) {
  for (unsigned i = 0; i < 256; ++i) {
    auto e = static_cast<Enum>(i);
    if (v.text == to_string(e)) return e;
  }
  fail_at(v, "unknown name \"" + v.text + "\"");
}

std::uint64_t parse_u64(const Value& v, std::string_view digits, int base) {
  std::uint64_t out = 0;
  auto r = std::from_chars(digits.data(), digits.data() + digits.size(), out, base);
  if (digits.empty() || r.ec != std::errc() || r.ptr != digits.data() + digits.size())
    fail_at(v, "not a 64-bit unsigned number: \"" + v.text + "\"");
  return out;
}

Location location_named(const Value& v) {
  if (v.text == "system") return Location::system();
  std::string_view s = v.text;
  if (s.substr(0, 7) == "device ") {
    std::uint64_t d = parse_u64(v, s.substr(7), 10);
    if (d < telemetry::trace::kMaxDevices) return Location::device(d);
  }
  fail_at(v, "expected \"system\" or \"device N\", got \"" + v.text + "\"");
}

Event event_of(const Value& rec, const Value& args, std::uint64_t t0) {
  Event e;
  e.kind = enum_named<EventKind>(member(args, "kind", Type::string, "an event's args"));
  e.reason = enum_named<EventReason>(member(args, "reason", Type::string, "an event's args"));
  const Value& device = member(args, "device", Type::number, "an event's args");
  std::int64_t d = device.as_i64();
  if (d < -1 || d >= static_cast<std::int64_t>(telemetry::trace::kMaxDevices))
    fail_at(device, "device out of range: " + device.text);
  e.device = static_cast<std::int16_t>(d);
  const Value& addr = member(args, "addr", Type::string, "an event's args");
  if (addr.text.substr(0, 2) != "0x") fail_at(addr, "expected a hex address \"0x...\"");
  e.addr = static_cast<std::uintptr_t>(parse_u64(addr, std::string_view(addr.text).substr(2), 16));
  e.bytes = member(args, "bytes", Type::number, "an event's args").as_u64();
  e.from = location_named(member(args, "from", Type::string, "an event's args"));
  e.to = location_named(member(args, "to", Type::string, "an event's args"));
  if (const Value* rel = args.find("t_ns")) {
    e.time_ns = t0 + rel->as_u64();
  } else {
    // Edited by another tool: fall back on ts, in microseconds.
    double ts = member(rec, "ts", Type::number, "an event").as_double();
    if (!(ts >= 0 && ts < 1.8e16)) fail_at(rec, "ts out of range");
    e.time_ns = t0 + static_cast<std::uint64_t>(ts * 1000.0);
  }
  return e;
}

void read_info(const Value& other, TraceInfo* info, std::uint64_t* t0) {
  if (const Value* format = other.find("format");
      format != nullptr && !(format->is(Type::string) && format->text == telemetry::trace::kFormat))
    fail_at(*format, std::string("not a hetmm trace (otherData.format is not \"") +
                         telemetry::trace::kFormat + "\")");
  if (const Value* v = other.find("t0_ns")) {
    if (!v->is(Type::string)) fail_at(*v, "\"t0_ns\" must be a string of decimal digits");
    *t0 = parse_u64(*v, v->text, 10);
  }
  if (info == nullptr) return;
  if (const Value* v = other.find("process")) {
    if (!v->is(Type::string)) fail_at(*v, "\"process\" must be a string");
    info->process_name = v->text;
  }
  if (const Value* v = other.find("device_memory")) {
    if (!v->is(Type::array)) fail_at(*v, "\"device_memory\" must be an array");
    if (v->items.size() > telemetry::trace::kMaxDevices) fail_at(*v, "too many devices");
    for (const Value& m : v->items) info->device_memory.push_back(m.as_u64());
  }
  if (const Value* v = other.find("events_dropped")) info->events_dropped = v->as_u64();
}

}  // namespace

std::vector<Event> read_chrome_trace(std::istream& in, TraceInfo* info) {
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw Error(Errc::invalid_argument, "the trace could not be read");
  Value root = telemetry::json::parse(text);
  if (!root.is(Type::object))
    fail_at(root, "expected an object with \"traceEvents\" (the JSON Object Format)");
  const Value& records = member(root, "traceEvents", Type::array, "the trace");
  std::uint64_t t0 = 0;
  if (info != nullptr) *info = TraceInfo{};
  if (const Value* other = root.find("otherData")) {
    if (!other->is(Type::object)) fail_at(*other, "\"otherData\" must be an object");
    read_info(*other, info, &t0);
  }
  std::vector<Event> events;
  for (const Value& rec : records.items) {
    if (!rec.is(Type::object)) fail_at(rec, "a trace event must be an object");
    const Value* ph = rec.find("ph");
    if (ph == nullptr || !ph->is(Type::string)) fail_at(rec, "a trace event needs a \"ph\" string");
    if (ph->text != "i" && ph->text != "I" && ph->text != "X") continue;
    const Value* args = rec.find("args");
    if (args == nullptr || !args->is(Type::object) || args->find("kind") == nullptr) continue;
    events.push_back(event_of(rec, *args, t0));
  }
  std::stable_sort(events.begin(), events.end(),
                   [](const Event& a, const Event& b) { return a.time_ns < b.time_ns; });
  return events;
}

}  // namespace hetmm
