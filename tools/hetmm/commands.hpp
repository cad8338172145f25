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
  bool load = false;             // run the memory load generator beside it (tools/load/)
};

int cmd_stress(const hetmm::Options& opt, const StressArgs& args);

// `hetmm load`: the memory load generator (tools/load/load.hpp) on its own.
struct LoadArgs {
  double seconds = 60;
  unsigned processes = 2;
  std::size_t memory_mib = 256;
  bool no_compaction = false;
  bool quiet = false;
  std::uint64_t seed = 1;
};
int cmd_load(const LoadArgs& args);

// Renders the Chrome trace at `path` as an SVG at out_path (default: path with .svg).
int cmd_trace(const std::string& path, const std::string& out_path);

struct BenchArgs {
  bool quick = false;     // small sizes: a few minutes on 2 cores (--size quick)
  std::string size;       // quick, default or large (1 GiB device, factors 1, 1.5, 2)
  bool json = false;      // one JSON object on stdout; the table goes to stderr
  bool no_micro = false;
  bool no_spans = false;  // kernels use one Thread::load/store per element
  std::string svg;        // chart file, if given
  std::string trace_dir;  // a Chrome trace of each run's events goes here, if given
  std::vector<std::string> workloads, modes;  // empty: all
  std::vector<double> factors;                // empty: the preset's
  std::size_t device_mib = 0;                 // 0: the preset's (quick 8, large 1024, else 64)
  std::string link = "pcie4";
  std::uint64_t seed = 42;
};

int cmd_bench(const hetmm::Options& opt, const BenchArgs& args);
std::vector<std::string> bench_workloads();  // the names --workloads accepts
std::vector<std::string> bench_modes();      // the names --modes accepts

// `hetmm run`: one SPIR-V / OpenCL C kernel on device 0 over buffers in process memory.
struct RunArgs {
  std::string file;             // .spv or .cl
  std::string kernel;           // empty: list the kernels
  std::string options;          // build options
  std::string global, local;    // "X[,Y[,Z]]"; local empty: the runtime chooses
  std::vector<std::string> args;    // --arg, one per kernel argument (syntax: run_arg_help())
  std::vector<std::string> outs;    // --out N:PATH
  std::vector<std::string> prints;  // --print N[:COUNT]
  unsigned repeat = 1;
  bool list = false;
  bool explain = false;          // print how the JIT compiled the kernels' work-item loops
  std::string policy = "hetmm";  // hetmm, uvm, in_place
  std::string link = "none";     // link model for modeled time
};

int cmd_run(const hetmm::Options& opt, const RunArgs& args);
const char* run_arg_help();  // the --arg syntax, for --help
