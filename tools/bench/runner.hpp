// Runs workloads x modes x factors, one fresh runtime per run, and collects what each cost.
#pragma once

#include <cstdint>
#include <functional>
#include <hetmm/hetmm.hpp>
#include <string>
#include <vector>

#include "workload.hpp"

namespace hetmm::bench {

struct Config {
  std::vector<std::string> workloads = workload_names();
  std::vector<Mode> modes{std::begin(kAllModes), std::end(kAllModes)};
  std::vector<double> factors{0.5, 1, 1.5, 2, 4};  // working set over device memory
  std::size_t device_memory = 64u << 20;
  LinkProfile link = LinkProfile::pcie4();
  std::string link_name = "pcie4";
  unsigned workers = 2;
  Tracking tracking = Tracking::automatic;
  std::uint64_t seed = 42;
  bool spans = true;   // kernels sweep with read_span/write_span (else one load/store each)
  bool quick = false;  // informational: the preset the sizes came from
  std::string size = "default";  // the preset's name: quick, default, large
  // When set, each run's events go to DIR/<workload>-<mode>-x<factor>.json (a Chrome trace,
  // `hetmm trace` draws it): where every fault, move and pin of the measured phase came from.
  std::string trace_dir;
};

// Counter deltas of the measured phase (DeviceStats fields of the same names).
struct Counters {
  std::uint64_t pages_to_device = 0, pages_to_system = 0, pages_evicted = 0, faults = 0,
                fault_batches = 0, faults_flushed = 0, cpu_faults = 0, link_transfers = 0, link_bytes = 0,
                in_place_bytes = 0, local_bytes = 0;
};

struct Result {
  std::string workload;
  Mode mode = Mode::in_place;
  double factor = 0;
  std::size_t bytes = 0;  // the workload's footprint
  double wall_s = 0;      // the measured phase: hints/copies in, kernels, results home
  double modeled_s = 0;   // DeviceStats::modeled_seconds over the same phase
  bool verified = false;
  std::string error;  // a hetmm::Error (or other exception) that ended the run
  Counters counters;
};

// A run that was not made: explicit mode when the footprint exceeds device memory.
struct Skipped {
  std::string workload;
  Mode mode = Mode::explicit_copy;
  double factor = 0;
  std::string reason;
};

struct Outcome {
  std::vector<Result> results;
  std::vector<Skipped> skipped;
  Tracking tracking = Tracking::automatic;  // what the runtimes chose
  double seconds = 0;                       // the whole bench (the CLI adds the micro-costs)
};

// Called before each run with the runs done so far, the total, and what starts now.
using Progress = std::function<void(std::size_t done, std::size_t total, const std::string& what)>;

// One run of `w` (already set up) on a fresh runtime. Never throws for the run's own errors:
// they end up in Result::error with verified false.
Result run_one(Workload& w, Mode mode, double factor, const Config& config);

// Options of the runtime a run of `mode` uses.
Options runtime_options(Mode mode, const Config& config);

Outcome run_all(const Config& config, const Progress& progress = {});

}  // namespace hetmm::bench
