// What became of each work-item loop after optimisation (KernelInfo::vectorization, shown by
// `hetmm run --explain` and `make bench-spirv`).
//
// The loops are found by their mark (kWorkItemLoopMark), which every copy keeps: the MMU
// rewrite's in-place, frame and probed versions, the vectoriser's vector loop and its scalar
// remainder. A copy is "vectorised" when its body computes on vectors (the width is the widest
// vector it loads, stores or computes); "probed" when it calls the MMU runtime for an access
// (the fallback every checked loop keeps for data its checks do not cover: never meant to
// vectorise). The kernel's own loops inside a work-item loop count apart: a checked loop's
// copies without probes beside its probed one. LLVM's loop-vectorize remarks carry no location
// without debug information, so their reasons are listed per kernel, not per loop.
#include "spirv/passes.hpp"

#include <llvm/Analysis/LoopInfo.h>
#include <llvm/IR/Dominators.h>
#include <llvm/IR/Function.h>
#include <llvm/IR/Instructions.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>

namespace hetmm::spirv {
namespace {

using namespace llvm;

unsigned vector_width(Type* t) {
  auto* v = dyn_cast<FixedVectorType>(t);
  return v == nullptr || v->getElementType()->isIntegerTy(1) ? 0 : v->getNumElements();
}

struct Copies {
  unsigned vectorised = 0, probed = 0, scalar = 0, width = 0;
  bool nested = false;  // a copy holds a loop of the kernel's own
  // The kernel's own innermost loops inside the copies: copies with no runtime call (their
  // ranges checked at entry: in place or in frames) and copies that probe.
  unsigned inner_checked = 0, inner_probed = 0;
};

// A call into the MMU runtime for an access (a probe's miss), not a range check at a loop's
// entry (hetmm_jit_range, hetmm_jit_local_range: part of a checked loop's way in).
bool probe_call(const Instruction& i) {
  auto* call = dyn_cast<CallInst>(&i);
  Function* callee = call != nullptr ? call->getCalledFunction() : nullptr;
  if (callee == nullptr) return false;
  StringRef name = callee->getName();
  return name.startswith("hetmm_jit_") && !name.endswith("_range");
}

bool calls_runtime(const Loop& l) {
  for (BasicBlock* bb : l.blocks())
    for (Instruction& i : *bb)
      if (probe_call(i)) return true;
  return false;
}

// A loop of the kernel's own: not a work-item loop, nor a probe's refill-and-retry loop (its
// header is the probe's "mmu." block).
bool kernel_loop(const Loop& l) {
  return !work_item_mark(l) && !l.getHeader()->getName().startswith("mmu.");
}

// Whether `bb` lies in a loop of the kernel's inside work-item loop `l`.
bool in_kernel_loop(BasicBlock* bb, const Loop* l, const LoopInfo& li) {
  for (const Loop* at = li.getLoopFor(bb); at != nullptr && at != l; at = at->getParentLoop())
    if (kernel_loop(*at)) return true;
  return false;
}

// The kernel's innermost loops inside work-item loop `l` (a probe's retry loops aside).
void count_inner_loops(const Loop& l, Copies& c) {
  for (const Loop* sub : l.getSubLoops()) {
    if (!kernel_loop(*sub)) continue;
    const auto& subs = sub->getSubLoops();
    if (std::any_of(subs.begin(), subs.end(), [](const Loop* s) { return kernel_loop(*s); })) {
      count_inner_loops(*sub, c);
      continue;
    }
    ++(calls_runtime(*sub) ? c.inner_probed : c.inner_checked);
  }
}

}  // namespace

std::string vectorization_report(Function& runner, const std::vector<std::string>& remarks) {
  DominatorTree dt(runner);
  LoopInfo li(dt);
  std::map<unsigned, Copies> regions;
  for (Loop* l : li.getLoopsInPreorder()) {
    std::optional<WorkItemMark> mark = work_item_mark(*l);
    if (!mark) continue;
    const unsigned region = mark->region;
    unsigned width = 0;
    bool probed = false;
    Copies inner;
    count_inner_loops(*l, inner);
    for (BasicBlock* bb : l->blocks())
      for (Instruction& i : *bb) {
        // A loop of the kernel's counts on its own (its checked copies beside its probed one).
        if (probe_call(i) && !in_kernel_loop(bb, l, li)) probed = true;
        if (isa<LoadInst>(i) || isa<BinaryOperator>(i) || isa<CallInst>(i))
          width = std::max(width, vector_width(i.getType()));
        else if (auto* st = dyn_cast<StoreInst>(&i))
          width = std::max(width, vector_width(st->getValueOperand()->getType()));
      }
    // The vectoriser names its loop's body "vector.body"; a kernel's own vector types
    // (float4 arithmetic) in a scalar copy do not make it a vectorised one.
    if (!l->getHeader()->getName().startswith("vector.body")) width = 0;
    Copies& c = regions[region];
    c.inner_checked += inner.inner_checked;
    c.inner_probed += inner.inner_probed;
    probed |= inner.inner_probed != 0 && inner.inner_checked == 0;
    // (A probe's refill-and-retry makes a loop of its own: only probe-free copies tell.)
    c.nested |= !probed && !l->getSubLoops().empty();
    if (width != 0) {
      ++c.vectorised;
      c.width = std::max(c.width, width);
    } else if (probed) {
      ++c.probed;
    } else {
      ++c.scalar;
    }
  }
  // How many work-items a step takes: the vectoriser's own figure ("vectorization width: N",
  // the widest of the kernel's loops), else the widest vector in the loop.
  unsigned vf = 0;
  for (const std::string& r : remarks) {
    std::size_t at = r.find("vectorization width: ");
    if (at != std::string::npos)
      vf = std::max(vf, static_cast<unsigned>(std::strtoul(r.c_str() + at + 21, nullptr, 10)));
  }
  std::ostringstream out;
  if (regions.empty()) out << "work-item loop: none left (unrolled or folded away)\n";
  for (const auto& [region, c] : regions) {
    out << (regions.size() == 1 && region == 0 ? std::string("work-item loop")
                                                : "region " + std::to_string(region))
        << ": ";
    if (c.vectorised != 0)
      out << "vectorised, " << (vf != 0 ? vf : c.width) << " work-items a step ("
          << c.vectorised << " cop" << (c.vectorised == 1 ? "y" : "ies") << ")";
    else if (c.scalar == 0 && c.probed != 0)
      out << "not vectorised (every copy keeps probed accesses: data-dependent addresses, "
             "atomics or unchecked ranges)";
    else if (c.nested)
      out << "not vectorised (it holds a loop of the kernel's: LLVM vectorises innermost loops)";
    else
      out << "not vectorised";
    if (c.scalar != 0)
      out << "; " << c.scalar << " scalar cop" << (c.scalar == 1 ? "y" : "ies")
          << (c.vectorised != 0 ? " (remainder)" : "");
    if (c.probed != 0) out << "; " << c.probed << " with probed accesses (runtime calls)";
    if (c.inner_checked + c.inner_probed != 0)
      out << "; the kernel's loops inside: " << c.inner_checked << " cop"
          << (c.inner_checked == 1 ? "y" : "ies") << " without probes (ranges checked at entry), "
          << c.inner_probed << " with probes";
    out << '\n';
  }
  // LLVM's reasons, once each, when a region stayed scalar. Left out: what it says of every
  // kernel (the outer loops over y, z and regions have no computable trip count; interleaving
  // decisions) and of the probed copies (their runtime calls cannot be vectorised).
  bool scalar_region = regions.empty();
  for (const auto& [region, c] : regions) scalar_region |= c.vectorised == 0 && c.scalar != 0;
  static const char* const kNoise[] = {"vectorized loop", "could not determine number of loop",
                                       "call instruction", "interleaving", "interleaved"};
  std::set<std::string> seen;
  for (const std::string& r : remarks) {
    bool noise = r == "loop not vectorized" || !scalar_region;
    for (const char* n : kNoise) noise = noise || r.find(n) != std::string::npos;
    if (noise || !seen.insert(r).second || seen.size() > 4) continue;
    out << "  LLVM: " << r << '\n';
  }
  return out.str();
}

}  // namespace hetmm::spirv
