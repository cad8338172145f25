// Guards (skip_terms): the loop-invariant terms of a loop's branches that decide whether an
// access runs in an entry at all, so that its range is checked only where it does.
#include "spirv/mmu_ir.hpp"

namespace hetmm::spirv::mmu {

Guard skip_terms(Instruction* inst, Loop* l, DominatorTree& dt) {
  Guard terms;
  auto collect = [&](auto& self, Value* c, bool any_of) -> void {
    using namespace llvm::PatternMatch;
    Value *a = nullptr, *z = nullptr;
    if (any_of ? match(c, m_LogicalOr(m_Value(a), m_Value(z)))
               : match(c, m_LogicalAnd(m_Value(a), m_Value(z)))) {
      self(self, a, any_of);
      self(self, z, any_of);
    } else if (l->isLoopInvariant(c) && !isa<Constant>(c)) {
      terms.push_back({c, !any_of});
    }
  };
  DomTreeNode* node = dt.getNode(inst->getParent());
  while (node != nullptr && node->getIDom() != nullptr && l->contains(node->getIDom()->getBlock())) {
    BasicBlock* d = node->getIDom()->getBlock();
    auto* br = dyn_cast<BranchInst>(d->getTerminator());
    if (br != nullptr && br->isConditional() && br->getSuccessor(0) != br->getSuccessor(1)) {
      for (unsigned k = 0; k < 2; ++k) {
        BasicBlock* to = br->getSuccessor(k);
        if (to->getSinglePredecessor() == d && dt.dominates(to, inst->getParent()))
          collect(collect, br->getCondition(), k == 1);  // false edge: an or-chain's terms
      }
    }
    node = node->getIDom();
  }
  drop_repeated_terms(terms);
  return terms;
}

void drop_repeated_terms(Guard& g) {
  Guard kept;
  for (const auto& term : g)
    if (std::find(kept.begin(), kept.end(), term) == kept.end()) kept.push_back(term);
  g = std::move(kept);
}

// The guard's skip condition, built before `at` (null for none).
Value* emit_skip(Instruction* at, const Guard& g) {
  if (g.empty()) return nullptr;
  IRBuilder<> b(at);
  Value* skip = b.getFalse();
  for (auto [v, negate] : g) skip = b.CreateOr(skip, negate ? b.CreateNot(v) : v);
  return skip;
}

}  // namespace hetmm::spirv::mmu
