// What `hetmm bench` prints: a table, one JSON object, an SVG chart.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "micro.hpp"
#include "runner.hpp"

namespace hetmm::bench {

// The acceptance figures, on modeled time.
struct Summary {
  // Geometric mean over the oversubscribed runs (factor >= 1.5) of
  // modeled_s(on-demand-uvm) / modeled_s(on-demand-hetmm); 0 pairs: NaN. Goal >= 1.5.
  double uvm_over_hetmm_geomean = kNotMeasured;
  std::size_t uvm_hetmm_pairs = 0;
  // Each of those runs' ratio ("workload xfactor"), in run order, and the geometric mean
  // without the largest one: a single runaway ratio cannot carry the figure.
  std::vector<std::pair<std::string, double>> uvm_over_hetmm_runs;
  double uvm_over_hetmm_geomean_without_largest = kNotMeasured;
  std::string largest_uvm_over_hetmm_at;
  // The worst modeled_s(on-demand-hetmm) / modeled_s(in-place) over all factors, and where.
  // Goal <= 1.1.
  double worst_hetmm_over_in_place = kNotMeasured;
  std::string worst_at;
  bool all_verified = true;
  std::size_t failed = 0;
};

Summary summarize(const Outcome& outcome);

std::string format_table(const Config& config, const Outcome& outcome, const Summary& summary,
                         const std::optional<Micro>& micro);
std::string format_json(const Config& config, const Outcome& outcome, const Summary& summary,
                        const std::optional<Micro>& micro);
// Grouped bars of modeled time (wall time when the link model is off) per workload and mode,
// one panel per factor, log scale.
std::string format_svg(const Config& config, const Outcome& outcome);

}  // namespace hetmm::bench
