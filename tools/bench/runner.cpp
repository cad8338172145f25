#include "runner.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <stdexcept>

#include <hetmm/trace.hpp>

namespace hetmm::bench {
namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

Counters delta(const DeviceStats& a, const DeviceStats& b) {
  Counters c;
  c.pages_to_device = b.pages_to_device - a.pages_to_device;
  c.pages_to_system = b.pages_to_system - a.pages_to_system;
  c.pages_evicted = b.pages_evicted - a.pages_evicted;
  c.faults = b.faults - a.faults;
  c.fault_batches = b.fault_batches - a.fault_batches;
  c.faults_flushed = b.faults_flushed - a.faults_flushed;
  c.cpu_faults = b.cpu_faults - a.cpu_faults;
  c.link_transfers = b.link_transfers - a.link_transfers;
  c.link_bytes = b.link_bytes - a.link_bytes;
  c.in_place_bytes = b.in_place_bytes - a.in_place_bytes;
  c.local_bytes = b.local_bytes - a.local_bytes;
  return c;
}

// The events of the measured phase, as a Chrome trace named after the run.
void write_trace(Runtime& rt, const Result& r, const Config& config) {
  char factor[32];
  std::snprintf(factor, sizeof factor, "%g", r.factor);
  std::string name = r.workload + "-" + to_string(r.mode) + "-x" + factor;
  std::string path = config.trace_dir + "/" + name + ".json";
  std::ofstream out(path);
  write_chrome_trace(out, rt.take_events(),
                     {"hetmm bench " + name, {config.device_memory}, rt.events_dropped()});
  if (!out) throw std::runtime_error("cannot write the trace " + path);
}

// The arrays go back to the allocator whatever ended the run.
class Binding {
 public:
  Binding(Workload& w, Runtime& rt) : w_(w), rt_(rt) { w_.bind(rt_); }
  ~Binding() {
    try {
      w_.unbind(rt_);
    } catch (...) {  // the runtime reclaims them when it goes
    }
  }
  Binding(const Binding&) = delete;
  Binding& operator=(const Binding&) = delete;

 private:
  Workload& w_;
  Runtime& rt_;
};

}  // namespace

Options runtime_options(Mode mode, const Config& config) {
  Options o;
  o.devices = 1;
  o.device_memory = config.device_memory;
  o.workers = config.workers;
  o.tracking = config.tracking;
  o.link = config.link;
  if (!config.trace_dir.empty()) o.event_capacity = std::size_t{1} << 22;
  switch (mode) {
    case Mode::explicit_copy:
    case Mode::in_place: o.policy = PolicyProfile::in_place; break;
    case Mode::on_demand_uvm: o.policy = PolicyProfile::uvm; break;
    case Mode::on_demand_hetmm:
    case Mode::hinted: o.policy = PolicyProfile::hetmm; break;
  }
  return o;
}

Result run_one(Workload& w, Mode mode, double factor, const Config& config) {
  Result r;
  r.workload = w.name();
  r.mode = mode;
  r.factor = factor;
  r.bytes = w.footprint();
  try {
    Runtime rt(runtime_options(mode, config));
    Device& dev = rt.device(0);
    w.set_spans(config.spans);
    Binding binding(w, rt);
    const Location device = Location::device(0);
    DeviceStats before = dev.stats();
    if (!config.trace_dir.empty()) (void)rt.take_events();  // set-up is not measured
    auto t0 = Clock::now();
    // The cudaMemcpy baseline: everything the kernels use is on the device before they start
    // (outputs and scratch too, as cudaMalloc'ed buffers would be).
    if (mode == Mode::explicit_copy)
      for (const Array& a : w.arrays()) rt.prefetch(a.live, a.bytes, device);
    if (mode == Mode::hinted) w.hints(rt, config.device_memory);
    w.run(rt, dev, mode);
    // Every mode ends with its results in system memory, where the program reads them.
    for (const Array& a : w.arrays())
      if (a.copied_out()) rt.prefetch(a.live, a.bytes, Location::system());
    r.wall_s = since(t0);
    DeviceStats after = dev.stats();
    r.modeled_s = after.modeled_seconds - before.modeled_seconds;
    r.counters = delta(before, after);
    r.verified = w.verify();
    if (!r.verified)
      r.error = "result differs from the CPU computation" +
                (w.mismatch().empty() ? std::string() : ": " + w.mismatch());
    if (!config.trace_dir.empty()) write_trace(rt, r, config);
  } catch (const std::exception& e) {
    r.verified = false;
    r.error = e.what();
  }
  return r;
}

Outcome run_all(const Config& config, const Progress& progress) {
  Outcome out;
  auto t0 = Clock::now();
  out.tracking = Runtime(runtime_options(Mode::in_place, config)).tracking();
  std::size_t total = config.workloads.size() * config.factors.size() * config.modes.size();
  std::size_t done = 0;
  for (const std::string& name : config.workloads) {
    for (double factor : config.factors) {
      std::unique_ptr<Workload> w = make_workload(name);
      if (!w) throw Error(Errc::invalid_argument, "unknown workload '" + name + "'");
      auto bytes = static_cast<std::size_t>(factor * static_cast<double>(config.device_memory));
      std::string setup_error;
      try {
        w->setup(bytes, config.seed);
      } catch (const std::exception& e) {
        setup_error = e.what();
      }
      for (Mode mode : config.modes) {
        char what[96];
        std::snprintf(what, sizeof what, "%s x%g %s", name.c_str(), factor, to_string(mode));
        if (progress) progress(done, total, what);
        ++done;
        if (!setup_error.empty()) {
          Result r;
          r.workload = name;
          r.mode = mode;
          r.factor = factor;
          r.error = "setup: " + setup_error;
          out.results.push_back(r);
          continue;
        }
        if (mode == Mode::explicit_copy && w->footprint() > config.device_memory) {
          out.skipped.push_back(
              {name, mode, factor, "the working set does not fit in device memory"});
          continue;
        }
        out.results.push_back(run_one(*w, mode, factor, config));
      }
    }
  }
  if (progress) progress(done, total, "");
  out.seconds = since(t0);
  return out;
}

}  // namespace hetmm::bench
