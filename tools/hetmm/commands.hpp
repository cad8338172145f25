// The hetmm command's subcommands that live in their own files.
#pragma once

#include <hetmm/hetmm.hpp>

#include <cstdint>

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
