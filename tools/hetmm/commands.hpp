// The hetmm command's subcommands that live in their own files.
#pragma once

#include <hetmm/hetmm.hpp>

#include <cstdint>
#include <string>
#include <vector>
#include <string>

struct StressArgs {
  std::uint64_t seed = 1;
  double seconds = 10;
  std::size_t device_kib = 2048;
  unsigned threads = 3;
  std::size_t steps = 150;
  double inject = 0;
  bool no_fork = false;
  bool default_devices = false;  // --devices not given: stress uses 2
};

int cmd_stress(const hetmm::Options& opt, const StressArgs& args);

// Renders the Chrome trace at `path` as an SVG at out_path (default: path with .svg).
int cmd_trace(const std::string& path, const std::string& out_path);

struct BenchArgs {
  bool quick = false;     // small sizes: a few minutes on 2 cores
  bool json = false;      // one JSON object on stdout; the table goes to stderr
  bool no_micro = false;
  bool no_spans = false;  // kernels use one Thread::load/store per element
  std::string svg;        // chart file, if given
  std::vector<std::string> workloads, modes;  // empty: all
  std::vector<double> factors;                // empty: the preset's
  std::size_t device_mib = 0;                 // 0: the preset's (quick 8, else 64)
  std::string link = "pcie4";
  std::uint64_t seed = 42;
};

int cmd_bench(const hetmm::Options& opt, const BenchArgs& args);
std::vector<std::string> bench_workloads();  // the names --workloads accepts
std::vector<std::string> bench_modes();      // the names --modes accepts
