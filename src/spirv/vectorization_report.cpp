// What became of each work-item loop after optimisation (KernelInfo::vectorization, shown by
// `hetmm run --explain` and `make bench-spirv`).
//
// The loops are found by their mark (kWorkItemLoopMark), which every copy keeps: the MMU
// rewrite's in-place, frame and probed versions, the vectoriser's vector loop and its scalar
// remainder. A copy is "vectorised" when its body computes on vectors (the width is the widest
// vector it loads, stores or computes); "probed" when it calls the MMU runtime (the fallback
// every checked loop keeps for data its checks do not cover: never meant to vectorise). LLVM's
// loop-vectorize remarks carry no location without debug information, so their reasons are
// listed per kernel, not per loop.
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
};

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
    for (BasicBlock* bb : l->blocks())
      for (Instruction& i : *bb) {
        if (auto* call = dyn_cast<CallInst>(&i)) {
          Function* callee = call->getCalledFunction();
          if (callee != nullptr && callee->getName().startswith("hetmm_jit_")) probed = true;
        }
        if (isa<LoadInst>(i) || isa<BinaryOperator>(i) || isa<CallInst>(i))
          width = std::max(width, vector_width(i.getType()));
        else if (auto* st = dyn_cast<StoreInst>(&i))
          width = std::max(width, vector_width(st->getValueOperand()->getType()));
      }
    // The vectoriser names its loop's body "vector.body"; a kernel's own vector types
    // (float4 arithmetic) in a scalar copy do not make it a vectorised one.
    if (!l->getHeader()->getName().startswith("vector.body")) width = 0;
    Copies& c = regions[region];
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
