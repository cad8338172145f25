// `hetmm trace FILE [-o OUT.svg]`: a Chrome trace written by hetmm (write_chrome_trace, e.g.
// `hetmm demo --trace FILE`) drawn as an SVG timeline and residency heatmap.
#include "commands.hpp"

#include <hetmm/trace.hpp>

#include <cstdio>
#include <fstream>
#include <map>

namespace {
std::string default_svg_path(const std::string& trace_path) {
  std::string base = trace_path;
  auto slash = base.find_last_of('/');
  auto dot = base.find_last_of('.');
  if (dot != std::string::npos && (slash == std::string::npos || dot > slash)) base.resize(dot);
  // Never the input itself (a trace named x.svg).
  return base + ".svg" == trace_path ? trace_path + ".svg" : base + ".svg";
}
}  // namespace

int cmd_trace(const std::string& path, const std::string& out_path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "hetmm trace: cannot open %s\n", path.c_str());
    return 2;
  }
  hetmm::TraceInfo info;
  std::vector<hetmm::Event> events;
  try {
    events = hetmm::read_chrome_trace(in, &info);
  } catch (const hetmm::Error& e) {
    std::fprintf(stderr, "hetmm trace: %s: %s\n", path.c_str(), e.what());
    return 2;
  }
  std::string svg_path = out_path.empty() ? default_svg_path(path) : out_path;
  if (svg_path == path) {
    std::fprintf(stderr, "hetmm trace: the output would overwrite the trace %s\n", path.c_str());
    return 2;
  }
  std::ofstream out(svg_path, std::ios::binary | std::ios::trunc);
  if (out) hetmm::write_trace_svg(out, events, info);
  out.close();
  if (!out) {
    std::fprintf(stderr, "hetmm trace: cannot write %s\n", svg_path.c_str());
    return 2;
  }
  std::map<std::string, std::size_t> by_kind;
  for (const hetmm::Event& e : events) ++by_kind[hetmm::to_string(e.kind)];
  double span_ms =
      events.empty() ? 0 : static_cast<double>(events.back().time_ns - events.front().time_ns) / 1e6;
  std::printf("%s: %zu events over %.3f ms (%s)\n", path.c_str(), events.size(), span_ms,
              info.process_name.c_str());
  for (const auto& [kind, count] : by_kind) std::printf("  %-11s %zu\n", kind.c_str(), count);
  if (info.events_dropped != 0)
    std::printf("  (%llu events were dropped when the buffer was full)\n",
                static_cast<unsigned long long>(info.events_dropped));
  std::printf("wrote %s\n", svg_path.c_str());
  return 0;
}
