// The SVG chart, written by hand: one panel per factor, a group of bars per workload, a bar per
// mode, on one log scale shared by every panel so that panels compare.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "report.hpp"

namespace hetmm::bench {
namespace {

constexpr const char* kColors[] = {"#7f7f7f", "#1f77b4", "#d62728", "#2ca02c", "#9467bd"};
constexpr int kBar = 12, kGroupGap = 18, kLeft = 70, kRight = 20, kPlotHeight = 150;
constexpr int kPanelTitle = 28, kPanelBottom = 34, kTop = 70;

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string fmt(const char* f, double a) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, a);
  return buf;
}

std::string seconds_label(double s) {
  if (s >= 1) return fmt("%g s", s);
  if (s >= 1e-3) return fmt("%g ms", s * 1e3);
  if (s >= 1e-6) return fmt("%g us", s * 1e6);
  return fmt("%g ns", s * 1e9);
}

std::size_t mode_index(Mode m) {
  for (std::size_t i = 0; i < std::size(kAllModes); ++i)
    if (kAllModes[i] == m) return i;
  return 0;
}

}  // namespace

std::string format_svg(const Config& config, const Outcome& outcome) {
  bool any_modeled = false;
  for (const Result& r : outcome.results) any_modeled = any_modeled || r.modeled_s > 0;
  auto value = [any_modeled](const Result& r) { return any_modeled ? r.modeled_s : r.wall_s; };
  double lo = 1e300, hi = 0;
  for (const Result& r : outcome.results)
    if (value(r) > 0) {
      lo = std::min(lo, value(r));
      hi = std::max(hi, value(r));
    }
  if (hi <= 0) lo = hi = 1e-3;
  double d0 = std::floor(std::log10(lo)), d1 = std::ceil(std::log10(hi));
  if (d1 <= d0) d1 = d0 + 1;
  auto y_of = [&](double v) {  // from the panel's plot top
    double t = (std::log10(v) - d0) / (d1 - d0);
    return kPlotHeight * (1 - std::clamp(t, 0.0, 1.0));
  };

  const std::size_t groups = config.workloads.size(), bars = config.modes.size();
  const int group_w = static_cast<int>(bars) * kBar + kGroupGap;
  const int width = kLeft + static_cast<int>(groups) * group_w + kRight;
  const int panel_h = kPanelTitle + kPlotHeight + kPanelBottom;
  const int height = kTop + static_cast<int>(config.factors.size()) * panel_h + 10;

  std::string s;
  s += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(width) +
       "\" height=\"" + std::to_string(height) +
       "\" font-family=\"sans-serif\" font-size=\"11\">\n";
  s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s += "<text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">hetmm bench: " +
       std::string(any_modeled ? "modeled time (link " + escape(config.link_name) + ")"
                               : "wall time") +
       ", log scale, lower is better</text>\n";
  s += "<text x=\"10\" y=\"36\">device memory " +
       fmt("%g", static_cast<double>(config.device_memory) / (1 << 20)) +
       " MiB; factor = working set / device memory; x: failed verification; -: not run</text>\n";
  int lx = 10;
  for (std::size_t b = 0; b < bars; ++b) {
    Mode m = config.modes[b];
    s += "<rect x=\"" + std::to_string(lx) + "\" y=\"46\" width=\"10\" height=\"10\" fill=\"" +
         kColors[mode_index(m)] + "\"/>";
    s += "<text x=\"" + std::to_string(lx + 14) + "\" y=\"55\">" + to_string(m) + "</text>\n";
    lx += 20 + 7 * static_cast<int>(std::string(to_string(m)).size());
  }

  for (std::size_t p = 0; p < config.factors.size(); ++p) {
    double factor = config.factors[p];
    int top = kTop + static_cast<int>(p) * panel_h;
    int plot_top = top + kPanelTitle;
    s += "<g>\n<text x=\"" + std::to_string(kLeft) + "\" y=\"" + std::to_string(top + 18) +
         "\" font-weight=\"bold\">factor " + fmt("%g", factor) + "</text>\n";
    for (double d = d0; d <= d1; d += 1) {
      double y = plot_top + y_of(std::pow(10.0, d));
      s += "<line x1=\"" + std::to_string(kLeft) + "\" x2=\"" + std::to_string(width - kRight) +
           "\" y1=\"" + fmt("%.1f", y) + "\" y2=\"" + fmt("%.1f", y) + "\" stroke=\"#dddddd\"/>";
      s += "<text x=\"" + std::to_string(kLeft - 4) + "\" y=\"" + fmt("%.1f", y + 4) +
           "\" text-anchor=\"end\">" + escape(seconds_label(std::pow(10.0, d))) + "</text>\n";
    }
    for (std::size_t g = 0; g < groups; ++g) {
      const std::string& w = config.workloads[g];
      int gx = kLeft + static_cast<int>(g) * group_w + kGroupGap / 2;
      for (std::size_t b = 0; b < bars; ++b) {
        Mode m = config.modes[b];
        int x = gx + static_cast<int>(b) * kBar;
        auto it = std::find_if(
            outcome.results.begin(), outcome.results.end(),
            [&](const Result& r) { return r.workload == w && r.factor == factor && r.mode == m; });
        std::string cx = std::to_string(x + kBar / 2);
        if (it == outcome.results.end()) {
          s += "<text x=\"" + cx + "\" y=\"" + std::to_string(plot_top + kPlotHeight - 3) +
               "\" text-anchor=\"middle\" fill=\"#999999\">-</text>\n";
          continue;
        }
        double v = value(*it);
        double y = v > 0 ? y_of(v) : kPlotHeight;
        s += "<rect x=\"" + std::to_string(x + 1) + "\" y=\"" + fmt("%.1f", plot_top + y) +
             "\" width=\"" + std::to_string(kBar - 2) + "\" height=\"" +
             fmt("%.1f", kPlotHeight - y) + "\" fill=\"" + kColors[mode_index(m)] + "\"><title>" +
             escape(w) + " " + to_string(m) + " factor " + fmt("%g", factor) + ": " +
             escape(seconds_label(v)) + (it->verified ? "" : " (FAILED)") + "</title></rect>\n";
        if (!it->verified)
          s += "<text x=\"" + cx + "\" y=\"" + fmt("%.1f", plot_top + y - 3) +
               "\" text-anchor=\"middle\" fill=\"#d62728\" font-weight=\"bold\">x</text>\n";
      }
      s += "<text x=\"" + std::to_string(gx + static_cast<int>(bars) * kBar / 2) + "\" y=\"" +
           std::to_string(plot_top + kPlotHeight + 16) + "\" text-anchor=\"middle\">" + escape(w) +
           "</text>\n";
    }
    s += "<line x1=\"" + std::to_string(kLeft) + "\" x2=\"" + std::to_string(width - kRight) +
         "\" y1=\"" + std::to_string(plot_top + kPlotHeight) + "\" y2=\"" +
         std::to_string(plot_top + kPlotHeight) + "\" stroke=\"black\"/>\n</g>\n";
  }
  s += "</svg>\n";
  return s;
}

}  // namespace hetmm::bench
