// hetmm traces: the events of Runtime::take_events() as a Chrome trace (Perfetto UI,
// chrome://tracing), read back, and drawn as an SVG timeline and residency heatmap.
//
//   hetmm::Options opt;
//   opt.event_capacity = 1 << 20;
//   hetmm::Runtime rt(opt);
//   ...                                        // migrations, kernels, CPU touches
//   std::ofstream out("run.json");
//   hetmm::write_chrome_trace(out, rt.take_events(),
//                             {"my program", {opt.device_memory}, rt.events_dropped()});
//
// then open run.json in https://ui.perfetto.dev, or run `hetmm trace run.json` for an SVG.
#pragma once

#include <hetmm/hetmm.hpp>

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace hetmm {

struct TraceInfo {
  std::string process_name = "hetmm";
  std::vector<std::uint64_t> device_memory;  // bytes of memory per device, where known
  std::uint64_t events_dropped = 0;           // Runtime::events_dropped(): the trace has gaps
};

// The JSON Object Format: one track (thread) for the system / CPU side and one per device,
// each event an instant event whose args hold every field of the Event (kind, reason, device,
// addr as a hex string, bytes, from, to, t_ns), and a counter per device of the bytes resident
// there over time (derived from the moves: migrate, evict, prefetch, duplicate, cpu_fault).
// Events may come in any order; they are written in time order.
void write_chrome_trace(std::ostream& out, const std::vector<Event>& events,
                        const TraceInfo& info = {});

// Reads what write_chrome_trace wrote: the events (in time order) and, when info is given, the
// trace's TraceInfo. Throws Error(invalid_argument) naming the line and column of bad input.
std::vector<Event> read_chrome_trace(std::istream& in, TraceInfo* info = nullptr);

// A self-contained SVG: a timeline (time on x, one row per track, marks colored by event kind)
// above a residency heatmap (the 2 MiB blocks that moves touched on y, time on x, each cell
// colored by where most of the block's bytes were, shaded by how many).
void write_trace_svg(std::ostream& out, const std::vector<Event>& events,
                     const TraceInfo& info = {});

}  // namespace hetmm
