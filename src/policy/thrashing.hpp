// Layer policy: includes base, os and core's page state (core/va_block.hpp).
// Thrashing detection, after the NVIDIA driver's (uvm_perf_thrashing.c, paraphrased in
// ../shared/docs/uvm-policies.md §1.4): a page whose migrations (device-fault migrations in,
// CPU fault-backs out) follow each other closer than the lapse `uvm_perf_thrashing_threshold`
// times in a row is thrashing. uvm then throttles its faults and, after
// `uvm_perf_thrashing_pin_threshold` throttling periods, pins it (maps it remotely) for
// `uvm_perf_thrashing_pin` x lapse; a quiet period of `uvm_perf_thrashing_epoch` x lapse
// resets it. hetmm uses the same detector but pins at once (policy/hetmm_policy.cpp).
//
// Times are kept in 64 ns units in 32 bits (as the driver's 64 ns resolution): differences
// are taken modulo 2^32, good for gaps under 274 s; a longer gap reads as some gap under
// 274 s, which only ever errs towards "not close".
#pragma once

#include "core/va_block.hpp"

#include <hetmm/hetmm.hpp>

#include <cstddef>
#include <cstdint>

namespace hetmm::policy {

using ThrashingParams = UvmParameters;

inline std::uint32_t ticks(std::uint64_t ns) { return static_cast<std::uint32_t>(ns >> 6); }

// A migration of pages [first, first+n) of b at now_ns.
void note_migration(core::VaBlock& b, std::size_t first, std::size_t n, std::uint64_t now_ns,
                    const ThrashingParams& p);
// Is page i thrashing at now_ns?
bool thrashing(const core::VaBlock& b, std::size_t i, std::uint64_t now_ns,
               const ThrashingParams& p);
// Is page i pinned (uvm: enough throttling periods, pin not expired)? Clears an expired pin.
bool pinned(core::VaBlock& b, std::size_t i, std::uint64_t now_ns, const ThrashingParams& p);

std::uint64_t monotonic_ns();

}  // namespace hetmm::policy
