// Work-item loops as parallel loops (passes.hpp, mark_parallel_accesses): OpenCL lets the
// work-items of a loop over local ids run in any order and makes conflicting plain accesses
// between them a data race, so none of their accesses depends on another iteration's. PoCL
// tells LLVM the same with the same metadata.
//
// Which accesses join the group, and why only those:
//   global (1), constant (2), __local (3)  shared memory: work-items may not race on it;
//   a region slot (private memory of barrier kernels: an alias scope of the hetmm.wi_private
//   domain, barrier_regions.cpp)           each work-item has its own copy in its own place.
// Not the stack (the runner's allocas serve every iteration of its loop in turn: one
// iteration's private array is the next one's), not generic pointers (they may point there),
// not atomics (not vectorised anyway): their presence leaves the loop unannotated.
#include "spirv/passes.hpp"

#include <llvm/Analysis/LoopInfo.h>
#include <llvm/Analysis/VectorUtils.h>
#include <llvm/IR/Dominators.h>
#include <llvm/IR/Instructions.h>
#include <llvm/IR/Module.h>

namespace hetmm::spirv {
namespace {

using namespace llvm;

bool in_private_slot(const Instruction& i) {
  MDNode* scopes = i.getMetadata(LLVMContext::MD_alias_scope);
  if (scopes == nullptr) return false;
  for (const MDOperand& op : scopes->operands()) {
    auto* scope = dyn_cast<MDNode>(op);
    if (scope == nullptr || scope->getNumOperands() < 2) continue;
    auto* domain = dyn_cast<MDNode>(scope->getOperand(1));
    if (domain == nullptr || domain->getNumOperands() < 2) continue;
    auto* name = dyn_cast<MDString>(domain->getOperand(1));
    if (name != nullptr && name->getString() == "hetmm.wi_private") return true;
  }
  return false;
}

bool joins(const Instruction& i) {
  const Value* ptr = nullptr;
  if (auto* load = dyn_cast<LoadInst>(&i)) {
    if (!load->isSimple()) return false;
    ptr = load->getPointerOperand();
  } else if (auto* store = dyn_cast<StoreInst>(&i)) {
    if (!store->isSimple()) return false;
    ptr = store->getPointerOperand();
  } else {
    return false;
  }
  unsigned as = ptr->getType()->getPointerAddressSpace();
  return as == 1 || as == 2 || as == 3 || (as == 0 && in_private_slot(i));
}

}  // namespace

void mark_parallel_accesses(Module& m) {
  for (Function& f : m) {
    if (f.isDeclaration()) continue;
    DominatorTree dt(f);
    LoopInfo li(dt);
    for (Loop* l : li.getLoopsInPreorder()) {
      std::optional<WorkItemMark> mark = work_item_mark(*l);
      if (!mark) continue;
      MDNode* group = mark->group;
      for (BasicBlock* bb : l->blocks())
        for (Instruction& i : *bb)
          if (joins(i))
            i.setMetadata(LLVMContext::MD_access_group,
                          uniteAccessGroups(i.getMetadata(LLVMContext::MD_access_group), group));
    }
  }
}

}  // namespace hetmm::spirv
