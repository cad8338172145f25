#include "policy/hetmm_policy.hpp"

#include <algorithm>
#include <cstdlib>


namespace hetmm::policy {

void HetmmPolicy::plan(const FaultView& v, FaultPlan& out) {
  // Streaming (use-once) and thrashing pages are accessed in place: migrating them costs the
  // same link traffic once and evicts something useful.
  PageMask stay;
  for (std::size_t i = 0; i < os::kPagesPerBlock; ++i)
    if (v.block->advice[i] & core::kAdviseStreaming) stay[i] = true;
  FaultView view = v;
  view.movable &= ~stay & ~v.thrashing;
  view.faulted &= view.movable;
  Stream& s = streams_[v.device];
  std::uintptr_t block = v.block->base;
  constexpr std::uintptr_t kB = os::kBlockSize;
  // A write to what the stream brought (an upgrade of its copies, nothing to move) marks it as
  // a stream that writes.
  if (v.write && block >= std::min(s.last_block, s.reach) && block <= std::max(s.last_block, s.reach))
    s.writes = true;
  if (view.faulted.none()) return;

  if (s.run >= 0 && block > s.last_block && block <= std::max(s.reach, s.last_block) + kB) {
    s.run = s.run + 1;
  } else if (s.run <= 0 && block < s.last_block &&
             block + kB >= std::min(s.reach, s.last_block)) {
    s.run = s.run - 1;
  } else if (block != s.last_block) {
    s.run = 0;
    s.reach = block;
    s.writes = false;
  }
  s.last_block = block;
  if (s.reach == 0) s.reach = block;
  // A stream that writes the blocks it reads (a layer's backward pass, an update sweep): its
  // next read faults migrate, since copies would each take an upgrade fault when written.
  // Read-only streams keep copying (they leave device memory without a write-back).
  out.exclusive = !v.write && s.writes && s.run != 0;
  if (v.write) s.writes = true;
  int ahead = 0;
  if (s.run >= kStreamRun || s.run <= -kStreamRun) {
    int steps = std::min(std::abs(s.run), 3);
    ahead = std::min(2 << (steps - 1), kMaxAhead);
  }

  if ((v.first_touch && v.preferred_here) || v.resident.none()) {
    // A block's first fault here brings the whole block: a fault costs as much as moving
    // hundreds of KiB over the link (LinkProfile: 30 us vs 25 GB/s), and a block of a kernel's
    // data is seldom touched in one place only. When it does not all fit, the mirror pins the
    // block in place rather than paging it in piece by piece.
    out.migrate = view.movable & ~v.resident;
    out.prefetch_reason = EventReason::block_prefetch;
    if (ahead > 0) out.ahead_blocks = s.run > 0 ? ahead : -ahead;
    if (ahead > 0) s.reach = s.run > 0 ? block + static_cast<std::uintptr_t>(ahead) * kB
                                       : block - std::min(block, static_cast<std::uintptr_t>(ahead) * kB);
  } else if (ahead > 0) {
    // A stream: everything of this block from the fault on, in its direction.
    std::size_t first = os::kPagesPerBlock, last = 0;
    for (std::size_t i = 0; i < os::kPagesPerBlock; ++i)
      if (view.faulted[i]) {
        first = std::min(first, i);
        last = i;
      }
    out.migrate = density_prefetch(view, params_);
    if (s.run > 0) {
      for (std::size_t i = first; i < os::kPagesPerBlock; ++i) out.migrate[i] = view.movable[i];
      out.ahead_blocks = ahead;
      s.reach = block + static_cast<std::uintptr_t>(ahead) * kB;
    } else {
      for (std::size_t i = 0; i <= last; ++i) out.migrate[i] = view.movable[i];
      out.ahead_blocks = -ahead;
      s.reach = block - std::min(block, static_cast<std::uintptr_t>(ahead) * kB);
    }
    out.migrate &= ~v.resident;
    out.prefetch_reason = EventReason::stream_prefetch;
  } else {
    out.migrate = density_prefetch(view, params_);
    out.prefetch_reason = EventReason::density_prefetch;
  }
  out.prefetch = out.migrate & ~view.faulted;
}

}  // namespace hetmm::policy
