// `hetmm stress`: randomized differential testing of hetmm against a shadow model of plain
// memory (program.hpp, world.hpp), for a time budget, with leak and stuck-thread checks; and a
// minimiser that shrinks a diverging program to the steps that matter.
#pragma once

#include "program.hpp"
#include "world.hpp"

#include <hetmm/hetmm.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace hetmm::stress {

struct Config {
  std::uint64_t seed = 1;
  double seconds = 10;
  std::size_t devices = 2;
  std::size_t device_memory = 2u << 20;  // small: the slots oversubscribe it
  unsigned workers = 2;                  // per device
  unsigned threads = 3;                  // CPU threads running a step's operations
  Tracking tracking = Tracking::automatic;
  FaultInjection inject;
  std::size_t steps_per_program = 150;
  bool fork = true;
  bool minimise = true;
  double stuck_seconds = 120;  // no step finishing for this long: report and abort
  std::function<void(double done_fraction, const Counters&)> progress;  // optional
};

struct Report {
  std::uint64_t programs = 0;
  Counters counters;
  std::uint64_t divergences = 0;
  std::string first_divergence;  // seed, the failing operation, the minimised program
  InjectedFaults injected;
  Tracking tracking = Tracking::automatic;
  long rss_baseline_kib = 0;  // after the first program (allocator and runtime warmed up)
  long rss_end_kib = 0;
  std::size_t device_bytes_end = 0;  // device memory in use after the last program
  std::uint64_t blocks_moved_in = 0, blocks_moved_out = 0;  // zero-copy moves, all devices
  double seconds = 0;
  bool leaked() const;
  bool clean() const { return divergences == 0 && !leaked(); }
};

Report run(const Config& config);
std::string format(const Report& report, const Config& config);

// A recorded program: its initial slots and its steps.
struct Program {
  std::uint64_t seed = 0;
  std::vector<std::pair<SlotKind, std::uint32_t>> slots;
  std::vector<Step> steps;
};
std::string format(const Program& program);

// Generates and runs one program (steps from `chooser`, until it is exhausted or `steps`
// ran), recording it. Returns the first divergence. before_step, if set, sees each step just
// before it runs.
std::optional<Divergence> run_generated(
    Runtime& rt, Chooser& chooser, const Shape& shape, std::size_t steps, bool oom_possible,
    ThreadPool& pool, Program* recorded, Counters& counters,
    const std::function<void(std::size_t, const Step&)>& before_step = {});
// Replays a recorded program.
std::optional<Divergence> replay(Runtime& rt, const Program& program, bool oom_possible,
                                 ThreadPool& pool, Counters& counters);

}  // namespace hetmm::stress
