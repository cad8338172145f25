// write_trace_svg: a trace as one self-contained SVG (no scripts, no external fonts or styles).
//
// Timeline: one row per track (system / CPU, then each device); each row has one lane per event
// kind, and a time column (one pixel) is marked in a lane when an event of that kind fell in it,
// so the drawing stays the same size however many events there are.
//
// Residency heatmap: the 2 MiB blocks that moves touched, compacted (holes in the address space
// take no room), in address order on y; time buckets on x. A cell shows where most of the
// block's bytes were at the end of the bucket, replaying the moves (trace_model.hpp's
// Residency per block, every block starting in system memory), shaded in four steps by the
// share of the block that place holds. With more blocks than rows, a row stands for several
// consecutive blocks.
#include "telemetry/trace_model.hpp"

#include <hetmm/trace.hpp>

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ostream>
#include <sstream>

namespace hetmm {

namespace {

using namespace telemetry::trace;

constexpr int kWidth = 1200;
constexpr int kLeft = 160;
constexpr int kRight = 30;
constexpr int kPlotW = kWidth - kLeft - kRight;  // time columns of the timeline
constexpr int kLane = 4;
constexpr int kRowGap = 6;
constexpr std::size_t kMaxRows = 256;
constexpr std::size_t kBuckets = 120;
// A move is spread over at most this many blocks (32 GiB): a corrupt or hostile byte count must
// not make the renderer walk 2^43 blocks.
constexpr std::uint64_t kMaxBlocksPerEvent = std::uint64_t{1} << 14;
// Real runtimes have at most 32 devices; a trace naming more is drawn with the first 64.
constexpr std::size_t kMaxDrawnDevices = 64;
constexpr unsigned kBlockShift = 21;
constexpr std::uint64_t kBlockBytes = std::uint64_t{1} << kBlockShift;

const char* const kKindColors[] = {"#d62728", "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd",
                                   "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
const char* const kSystemColor = "#7f7f7f";
const char* const kDeviceColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                     "#9467bd", "#8c564b", "#e377c2", "#17becf"};

const char* kind_color(std::size_t k) { return kKindColors[k % std::size(kKindColors)]; }
const char* place_color(int place) {
  return place < 0 ? kSystemColor
                   : kDeviceColors[static_cast<std::size_t>(place) % std::size(kDeviceColors)];
}

std::size_t kind_count() {
  std::size_t n = 0;
  while (n < 256 && std::string(to_string(static_cast<EventKind>(n))) != "unknown") ++n;
  return n;
}

std::string esc(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        // XML 1.0 allows no control characters but tab, newline and carriage return.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r')
          out += ' ';
        else
          out += c;
    }
  }
  return out;
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

std::string shade(const char* hex, int level) {  // level 1..4 of 4
  unsigned rgb = static_cast<unsigned>(std::strtoul(hex + 1, nullptr, 16));
  double f = 0.25 + 0.75 * (level - 1) / 3.0;
  char buf[8];
  auto mix = [f](unsigned c) {
    return static_cast<unsigned>(std::lround(255.0 - (255.0 - static_cast<double>(c)) * f));
  };
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", mix(rgb >> 16 & 255), mix(rgb >> 8 & 255),
                mix(rgb & 255));
  return buf;
}

std::string duration(double ns) {
  char buf[32];
  if (ns >= 1e9) std::snprintf(buf, sizeof buf, "%g s", ns / 1e9);
  else if (ns >= 1e6) std::snprintf(buf, sizeof buf, "%g ms", ns / 1e6);
  else if (ns >= 1e3) std::snprintf(buf, sizeof buf, "%g us", ns / 1e3);
  else std::snprintf(buf, sizeof buf, "%g ns", ns);
  return buf;
}

std::string bytes_label(std::uint64_t b) {
  char buf[32];
  if (b >= (std::uint64_t{1} << 30)) std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(b) / (1 << 30));
  else if (b >= (1u << 20)) std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(b) / (1 << 20));
  else std::snprintf(buf, sizeof buf, "%.1f KiB", static_cast<double>(b) / 1024);
  return buf;
}

// 1, 2 or 5 times a power of ten, about span / 8.
double tick_step(double span) {
  double raw = span / 8;
  double p = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * p >= raw) return m * p;
  return 10 * p;
}

// The blocks [first, last] an event's bytes cover, clipped (see kMaxBlocksPerEvent).
struct BlockSpan {
  std::uint64_t first, last;
};
BlockSpan blocks_of(const Event& e) {
  std::uint64_t a = e.addr;
  std::uint64_t end = e.bytes > ~std::uint64_t{0} - a ? ~std::uint64_t{0} : a + e.bytes - 1;
  BlockSpan s{a >> kBlockShift, end >> kBlockShift};
  if (s.last - s.first >= kMaxBlocksPerEvent) s.last = s.first + kMaxBlocksPerEvent - 1;
  return s;
}

// Bytes of [addr, addr + bytes) inside block b.
std::uint64_t overlap(const Event& e, std::uint64_t b) {
  std::uint64_t lo = std::max<std::uint64_t>(e.addr, b << kBlockShift);
  std::uint64_t e_end = e.bytes > ~std::uint64_t{0} - e.addr ? ~std::uint64_t{0} : e.addr + e.bytes;
  std::uint64_t b_end = (b << kBlockShift) + kBlockBytes;
  if (b_end == 0) b_end = ~std::uint64_t{0};  // the last block of the address space
  std::uint64_t hi = std::min(e_end, b_end);
  return hi > lo ? hi - lo : 0;
}

class Canvas {
 public:
  std::ostringstream body;
  void text(double x, double y, const std::string& s, const char* extra = "") {
    body << "<text x=\"" << num(x) << "\" y=\"" << num(y) << "\"" << extra << ">" << esc(s)
         << "</text>\n";
  }
  void rect(double x, double y, double w, double h, const std::string& fill,
            const char* cls = nullptr) {
    body << "<rect";
    if (cls != nullptr) body << " class=\"" << cls << "\"";
    body << " x=\"" << num(x) << "\" y=\"" << num(y) << "\" width=\"" << num(w)
         << "\" height=\"" << num(h) << "\" fill=\"" << fill << "\"/>\n";
  }
  void line(double x1, double y1, double x2, double y2, const char* stroke) {
    body << "<line x1=\"" << num(x1) << "\" y1=\"" << num(y1) << "\" x2=\"" << num(x2)
         << "\" y2=\"" << num(y2) << "\" stroke=\"" << stroke << "\"/>\n";
  }
  // Vertical lines at the time ticks, drawn first so that the marks stay on top.
  void time_grid(double y0, double height, double span_ns) {
    for (double t = 0; t <= span_ns * 1.0000001; t += tick_step(span_ns)) {
      double x = kLeft + t / span_ns * kPlotW;
      line(x, y0, x, y0 + height, "#d8d8d8");
    }
  }
  // A time axis under a plot of the given height starting at y0.
  void time_axis(double y0, double height, double span_ns) {
    line(kLeft, y0 + height, kLeft + kPlotW, y0 + height, "#444");
    for (double t = 0; t <= span_ns * 1.0000001; t += tick_step(span_ns)) {
      double x = kLeft + t / span_ns * kPlotW;
      line(x, y0 + height, x, y0 + height + 4, "#444");
      text(x, y0 + height + 16, duration(t), " text-anchor=\"middle\" font-size=\"10\"");
    }
  }
};

}  // namespace

void write_trace_svg(std::ostream& out, const std::vector<Event>& unsorted,
                     const TraceInfo& info) {
  std::vector<Event> events = unsorted;
  std::stable_sort(events.begin(), events.end(),
                   [](const Event& a, const Event& b) { return a.time_ns < b.time_ns; });
  const std::size_t all_devices = device_count(events, info);
  const std::size_t ndev = std::min(all_devices, kMaxDrawnDevices);
  const std::size_t nkinds = kind_count();
  const std::uint64_t t0 = events.empty() ? 0 : events.front().time_ns;
  const std::uint64_t t1 = events.empty() ? 0 : events.back().time_ns;
  const double span = std::max<double>(1.0, static_cast<double>(t1 - t0));
  auto rel = [t0](const Event& e) { return static_cast<double>(e.time_ns - t0); };

  Canvas c;
  double y = 28;
  c.text(12, y, "hetmm trace: " + info.process_name, " font-size=\"16\" font-weight=\"bold\"");
  y += 18;
  {
    std::string sub = std::to_string(events.size()) + " events, " +
                      std::to_string(all_devices) + (all_devices == 1 ? " device" : " devices") +
                      ", over " + duration(span);
    if (all_devices > ndev) sub += " (the first " + std::to_string(ndev) + " devices drawn)";
    if (info.events_dropped != 0)
      sub += "; " + std::to_string(info.events_dropped) + " events were dropped (buffer full)";
    c.text(12, y, sub, " font-size=\"12\" fill=\"#444\"");
  }

  // ---- timeline -------------------------------------------------------------------------------
  y += 30;
  c.text(12, y, "Timeline (one lane per event kind)", " font-size=\"13\" font-weight=\"bold\"");
  y += 10;
  const std::size_t ntracks = ndev + 1;
  const int row_h = static_cast<int>(std::max<std::size_t>(nkinds, 1)) * kLane;
  // marks[track][kind][column]
  std::vector<std::vector<std::vector<bool>>> marks(
      ntracks, std::vector<std::vector<bool>>(nkinds, std::vector<bool>(kPlotW, false)));
  for (const Event& e : events) {
    std::size_t track = track_of(e);
    auto k = static_cast<std::size_t>(e.kind);
    if (track >= ntracks || k >= nkinds) continue;
    auto col = static_cast<std::size_t>(rel(e) / span * kPlotW);
    marks[track][k][std::min<std::size_t>(col, kPlotW - 1)] = true;
  }
  const double timeline_y = y;
  const double timeline_h = static_cast<double>(ntracks) * (row_h + kRowGap) - kRowGap;
  for (std::size_t t = 0; t < ntracks; ++t) {
    double ry = y + static_cast<double>(t) * (row_h + kRowGap);
    c.body << "<g class=\"timeline-row\" data-track=\"" << esc(track_name(t)) << "\">\n";
    c.text(kLeft - 8, ry + row_h / 2.0 + 4, track_name(t), " text-anchor=\"end\" font-size=\"12\"");
    c.rect(kLeft, ry, kPlotW, row_h, "#f3f3f3");
    c.time_grid(ry, row_h, span);
    for (std::size_t k = 0; k < nkinds; ++k) {
      const std::vector<bool>& lane = marks[t][k];
      for (std::size_t x = 0; x < lane.size();) {
        if (!lane[x]) {
          ++x;
          continue;
        }
        std::size_t run = x;
        while (run < lane.size() && lane[run]) ++run;
        c.rect(kLeft + static_cast<double>(x), ry + static_cast<double>(k * kLane),
               static_cast<double>(run - x), kLane, kind_color(k), "mark");
        x = run;
      }
    }
    c.body << "</g>\n";
  }
  c.time_axis(timeline_y, timeline_h, span);
  y = timeline_y + timeline_h + 36;
  {
    c.body << "<g class=\"legend\">\n";
    double x = kLeft;
    for (std::size_t k = 0; k < nkinds; ++k) {
      std::string name = to_string(static_cast<EventKind>(k));
      c.rect(x, y - 9, 10, 10, kind_color(k));
      c.text(x + 14, y, name, " font-size=\"11\"");
      x += 24 + 7.0 * static_cast<double>(name.size());
    }
    c.body << "</g>\n";
  }

  // ---- residency heatmap ----------------------------------------------------------------------
  y += 34;
  std::vector<std::uint64_t> blocks;
  for (const Event& e : events) {
    if (!moves_data(e.kind) || e.bytes == 0) continue;
    BlockSpan s = blocks_of(e);
    for (std::uint64_t b = s.first;; ++b) {
      blocks.push_back(b);
      if (b == s.last) break;
    }
  }
  std::sort(blocks.begin(), blocks.end());
  blocks.erase(std::unique(blocks.begin(), blocks.end()), blocks.end());
  const std::size_t group = blocks.empty() ? 1 : (blocks.size() + kMaxRows - 1) / kMaxRows;
  const std::size_t nrows = (blocks.size() + group - 1) / group;
  std::string heading = "Residency by 2 MiB block (where most of each block's bytes are)";
  if (group > 1) heading += ", " + std::to_string(group) + " blocks per row";
  c.text(12, y, heading, " font-size=\"13\" font-weight=\"bold\"");
  y += 10;
  if (nrows == 0) {
    c.text(kLeft, y + 16, "no moves in this trace: nothing to show",
           " font-size=\"12\" fill=\"#444\"");
    y += 30;
  } else {
    std::vector<Residency> rows;
    std::vector<std::uint64_t> row_bytes;
    for (std::size_t r = 0; r < nrows; ++r) {
      std::size_t n = std::min(group, blocks.size() - r * group);
      row_bytes.push_back(n * kBlockBytes);
      rows.emplace_back(ndev, n * kBlockBytes);
    }
    // cells[row][bucket]: place (-1 system, else device) and shade level 1..4
    std::vector<std::vector<std::pair<int, int>>> cells(
        nrows, std::vector<std::pair<int, int>>(kBuckets));
    auto snapshot = [&](std::size_t bucket) {
      for (std::size_t r = 0; r < nrows; ++r) {
        std::uint64_t cap = row_bytes[r];
        std::uint64_t on_dev = std::min(rows[r].on_devices(), cap);
        std::uint64_t best = cap - on_dev;
        int place = -1;
        for (std::size_t d = 0; d < ndev; ++d)
          if (rows[r].on_device(d) > best) {
            best = rows[r].on_device(d);
            place = static_cast<int>(d);
          }
        int level = static_cast<int>((best * 4 + cap - 1) / cap);
        cells[r][bucket] = {place, std::clamp(level, 1, 4)};
      }
    };
    std::size_t next = 0;
    for (std::size_t bucket = 0; bucket < kBuckets; ++bucket) {
      for (; next < events.size(); ++next) {
        const Event& e = events[next];
        auto eb = static_cast<std::size_t>(rel(e) / span * kBuckets);
        if (std::min(eb, kBuckets - 1) > bucket) break;
        if (!moves_data(e.kind) || e.bytes == 0) continue;
        BlockSpan s = blocks_of(e);
        for (std::uint64_t b = s.first;; ++b) {
          auto it = std::lower_bound(blocks.begin(), blocks.end(), b);
          std::size_t r = static_cast<std::size_t>(it - blocks.begin()) / group;
          rows[r].apply(e, overlap(e, b));
          if (b == s.last) break;
        }
      }
      snapshot(bucket);
    }
    const double cell_w = static_cast<double>(kPlotW) / kBuckets;
    const double cell_h = std::clamp(480.0 / static_cast<double>(nrows), 4.0, 16.0);
    const auto label_every = static_cast<std::size_t>(std::ceil(12.0 / cell_h));
    c.body << "<g class=\"heatmap\">\n";
    for (std::size_t r = 0; r < nrows; ++r) {
      double ry = y + static_cast<double>(r) * cell_h;
      if (r % label_every == 0) {
        char addr[32];
        std::snprintf(addr, sizeof addr, "0x%" PRIx64, blocks[r * group] << kBlockShift);
        c.text(kLeft - 8, ry + std::min(cell_h, 12.0) - 2, addr,
               " text-anchor=\"end\" font-size=\"10\" font-family=\"monospace\"");
      }
      for (std::size_t x = 0; x < kBuckets;) {
        std::size_t run = x;
        while (run < kBuckets && cells[r][run] == cells[r][x]) ++run;
        c.rect(kLeft + static_cast<double>(x) * cell_w, ry, static_cast<double>(run - x) * cell_w,
               cell_h, shade(place_color(cells[r][x].first), cells[r][x].second), "cell");
        x = run;
      }
    }
    c.body << "</g>\n";
    double heat_h = static_cast<double>(nrows) * cell_h;
    c.time_axis(y, heat_h, span);
    y += heat_h + 36;
    c.body << "<g class=\"legend\">\n";
    double x = kLeft;
    std::size_t shown = std::min<std::size_t>(ndev, std::size(kDeviceColors));
    for (int place = -1; place < static_cast<int>(shown); ++place) {
      std::string name = place < 0 ? "system" : "device " + std::to_string(place);
      c.rect(x, y - 9, 10, 10, place_color(place));
      c.text(x + 14, y, name, " font-size=\"11\"");
      x += 24 + 7.0 * static_cast<double>(name.size());
    }
    if (ndev > shown) c.text(x, y, "(colors repeat)", " font-size=\"11\"");
    y += 18;
    x = kLeft;
    c.text(x, y, "share of the block:", " font-size=\"11\"");
    x += 120;
    for (int level = 1; level <= 4; ++level) {
      c.rect(x, y - 9, 10, 10, shade(kSystemColor, level));
      std::string label = "up to " + std::to_string(level * 25) + "%";
      c.text(x + 14, y, label, " font-size=\"11\"");
      x += 24 + 7.0 * static_cast<double>(label.size());
    }
    c.body << "</g>\n";
    y += 4;
  }
  for (std::size_t d = 0; d < info.device_memory.size() && d < 8; ++d) {
    y += 16;
    c.text(12, y, "device " + std::to_string(d) + ": " + bytes_label(info.device_memory[d]) +
                      " of memory", " font-size=\"11\" fill=\"#444\"");
  }

  const int height = static_cast<int>(y + 20);
  out << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << kWidth << "\" height=\""
      << height << "\" viewBox=\"0 0 " << kWidth << " " << height
      << "\" font-family=\"sans-serif\">\n"
      << "<rect x=\"0\" y=\"0\" width=\"" << kWidth << "\" height=\"" << height
      << "\" fill=\"white\"/>\n"
      << c.body.str() << "</svg>\n";
}

}  // namespace hetmm
