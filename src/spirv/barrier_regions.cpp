// Barriers without fibers: a kernel that reaches barrier() becomes a work-group function that
// runs each stretch of code between barriers ("region") as a loop over all work-items of the
// group, and moves to the next region when the loop ends. This is the continuation-based
// scheme CPU OpenCL implementations use (PoCL's "cbs", AdaptiveCpp's sub-CFGs), written for
// hetmm's kernel ABI:
//
//   1. functions that reach a barrier are inlined into the kernel, and its scalar locals
//      promoted to SSA values (SROA);
//   2. every barrier gets a block of its own; SSA values that live across blocks are demoted to
//      stack slots (reg2mem), so that a block can be cloned into any region on its own;
//   3. every stack slot becomes per-work-item private memory in a per-group arena
//      (KernelContext::wi_private), one array per slot indexed by work-item;
//   4. for each region entry (the kernel's entry, and the block after each barrier) the blocks
//      reachable without crossing a barrier are cloned into a loop over local ids; an edge into
//      barrier k becomes "next region = k", a return "next = end";
//   5. a dispatcher runs region 0, then whichever region every work-item asked for. Work-items
//      that ask for different regions reached different barriers: hetmm_jit_divergence reports
//      it (OpenCL leaves it undefined).
//
// The transform works on a copy of the kernel; anything it does not handle (a barrier in a
// function that cannot be inlined, dynamic allocas) leaves the kernel to the fiber driver.
#include "spirv/context_ir.hpp"
#include "spirv/kernel_context.hpp"
#include "spirv/passes.hpp"

#include <llvm/Analysis/DivergenceAnalysis.h>
#include <llvm/Analysis/LoopInfo.h>
#include <llvm/Analysis/PostDominators.h>
#include <llvm/Analysis/SyncDependenceAnalysis.h>
#include <llvm/Analysis/ValueTracking.h>
#include <llvm/IR/Dominators.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Instructions.h>
#include <llvm/IR/IntrinsicInst.h>
#include <llvm/IR/MDBuilder.h>
#include <llvm/IR/Module.h>
#include <llvm/IR/Verifier.h>
#include <llvm/Passes/PassBuilder.h>
#include <llvm/Transforms/InstCombine/InstCombine.h>
#include <llvm/Transforms/Scalar/EarlyCSE.h>
#include <llvm/Transforms/Scalar/SROA.h>
#include <llvm/Transforms/Utils/BasicBlockUtils.h>
#include <llvm/Transforms/Utils/Cloning.h>
#include <llvm/Transforms/Utils/Local.h>
#include <llvm/Transforms/Utils/ValueMapper.h>

#include <algorithm>
#include <map>
#include <set>

namespace hetmm::spirv {
namespace {

using namespace llvm;

constexpr std::uint32_t kEnd = 0x7fffffff;     // the state after the kernel returns

bool is_barrier(const Instruction& i) {
  auto* call = dyn_cast<CallInst>(&i);
  return call != nullptr && call->getCalledFunction() != nullptr &&
         call->getCalledFunction()->getName() == "hetmm_jit_barrier";
}

// Every defined callee is inlined, not only those that reach a barrier: a callee's locals would
// live on the worker's stack, where a generic pointer to them (sincos(x, &c) passes one) is not
// recognised as private memory; inlined, they become per-work-item slots like the rest.
bool inline_callees(Function& f) {
  for (int round = 0; round < 4096; ++round) {
    CallInst* target = nullptr;
    for (BasicBlock& bb : f) {
      for (Instruction& i : bb)
        if (auto* call = dyn_cast<CallInst>(&i)) {
          Function* callee = call->getCalledFunction();
          if (callee != nullptr && callee != &f && !callee->isDeclaration()) {
            target = call;
            break;
          }
        }
      if (target != nullptr) break;
    }
    if (target == nullptr) return true;
    InlineFunctionInfo info;
    if (!InlineFunction(*target, info).isSuccess()) return false;
  }
  return false;  // recursion (not allowed in OpenCL C) or absurd depth
}

// OpenCL C arrives unoptimised (clang -disable-llvm-passes): every local variable is a stack
// slot. Demoted as they are, each would become per-work-item memory that every region loop
// stores and reloads (transpose kept its ids, sizes and even its output pointer there). SROA
// first turns the scalars into SSA values, so that only what lives across a barrier is
// demoted. None of these passes moves a call, so barriers stay where the kernel put them.
void promote_scalars(Function& f) {
  LoopAnalysisManager lam;
  FunctionAnalysisManager fam;
  CGSCCAnalysisManager cgam;
  ModuleAnalysisManager mam;
  PassBuilder pb;
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cgam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cgam, mam);
  FunctionPassManager fpm;
  fpm.addPass(SROAPass());
  fpm.addPass(EarlyCSEPass());
  fpm.addPass(InstCombinePass());
  fpm.run(f, fam);
}

struct Regions {
  Function& f;
  const DataLayout& dl;
  // i8* (i64 offset, i64 size, i1 uniform): placeholder for a work-item's slot
  FunctionCallee wi_private;
  FunctionCallee wi_id;       // i64 (i32 dim): placeholder for a local id
  // Slots of values every work-item of the group holds alike (uniform_across_group).
  std::set<AllocaInst*> uniform_slots{};
};

// The memory accesses of a private variable, through casts and GEPs (its lifetime markers go to
// `lifetimes`); false when its address goes anywhere else (stored, passed, selected, compared).
bool collect_accesses(Value* v, std::vector<Instruction*>& accesses,
                      std::vector<Instruction*>& lifetimes) {
  for (User* u : v->users()) {
    auto* i = cast<Instruction>(u);
    if (auto* ii = dyn_cast<IntrinsicInst>(i); ii != nullptr && ii->isLifetimeStartOrEnd()) {
      lifetimes.push_back(i);
    } else if (isa<LoadInst>(i) || isa<MemIntrinsic>(i)) {
      accesses.push_back(i);
    } else if (auto* st = dyn_cast<StoreInst>(i)) {
      if (st->getValueOperand() == v) return false;
      accesses.push_back(i);
    } else if (auto* rmw = dyn_cast<AtomicRMWInst>(i)) {
      if (rmw->getValOperand() == v) return false;
      accesses.push_back(i);
    } else if (auto* cx = dyn_cast<AtomicCmpXchgInst>(i)) {
      if (cx->getPointerOperand() != v || cx->getNewValOperand() == v) return false;
      accesses.push_back(i);
    } else if (isa<GetElementPtrInst>(i) || isa<BitCastInst>(i) || isa<AddrSpaceCastInst>(i)) {
      if (!collect_accesses(i, accesses, lifetimes)) return false;
    } else {
      return false;
    }
  }
  return true;
}

// Tells alias analysis what the arena's layout means: each private variable is its own array,
// apart from every other variable and from all memory the kernel reaches by pointer (global,
// constant, local). Without it, the variables' arrays sit at run-time offsets in one arena and
// every store to global memory seems to clobber them: values reload after each store and region
// loops do not vectorise. A variable whose address escapes gets no scope (it may alias anything).
// The lifetime markers go: they speak of stack slots, not of the arena.
void scope_private_variables(Function& f, const std::vector<AllocaInst*>& allocas) {
  LLVMContext& c = f.getContext();
  MDBuilder mdb(c);
  MDNode* domain = nullptr;
  std::vector<Metadata*> scopes;
  std::map<Instruction*, std::vector<std::size_t>> owner;  // access -> its variables' scopes
  for (AllocaInst* a : allocas) {
    std::vector<Instruction*> accesses, lifetimes;
    bool scoped = collect_accesses(a, accesses, lifetimes);
    for (Instruction* i : lifetimes) i->eraseFromParent();
    if (!scoped) continue;
    if (domain == nullptr) domain = mdb.createAnonymousAliasScopeDomain("hetmm.wi_private");
    std::size_t k = scopes.size();
    scopes.push_back(mdb.createAnonymousAliasScope(domain, a->getName()));
    for (Instruction* i : accesses) owner[i].push_back(k);
  }
  if (scopes.empty()) return;
  auto add = [](Instruction& i, unsigned kind, MDNode* list) {
    i.setMetadata(kind, MDNode::concatenate(i.getMetadata(kind), list));
  };
  MDNode* all = MDNode::get(c, scopes);
  for (BasicBlock& bb : f)
    for (Instruction& i : bb) {
      if (!(isa<LoadInst>(i) || isa<StoreInst>(i) || isa<AtomicRMWInst>(i) ||
            isa<AtomicCmpXchgInst>(i) || isa<MemIntrinsic>(i)))
        continue;
      auto it = owner.find(&i);
      if (it == owner.end()) {
        add(i, LLVMContext::MD_noalias, all);
        continue;
      }
      std::vector<Metadata*> own, others;
      for (std::size_t k = 0; k < scopes.size(); ++k)
        (std::count(it->second.begin(), it->second.end(), k) != 0 ? own : others)
            .push_back(scopes[k]);
      add(i, LLVMContext::MD_alias_scope, MDNode::get(c, own));
      if (!others.empty()) add(i, LLVMContext::MD_noalias, MDNode::get(c, others));
    }
}

// Whether `v` can be computed again wherever it is used, with the same result for the same
// work-item: a pure function of the kernel's arguments (the context and local ids among them),
// constants and invariant context loads. Counts the instructions into `size`.
bool recomputable(Value* v, unsigned& size) {
  auto* i = dyn_cast<Instruction>(v);
  if (i == nullptr) return isa<Argument>(v) || isa<Constant>(v);
  if (++size > 48) return false;
  if (auto* load = dyn_cast<LoadInst>(i)) {
    if (!load->hasMetadata(LLVMContext::MD_invariant_load)) return false;
  } else if (auto* call = dyn_cast<IntrinsicInst>(i)) {
    if (!call->doesNotAccessMemory() || !call->willReturn()) return false;
  } else if (!(isa<BinaryOperator>(i) || isa<CastInst>(i) || isa<GetElementPtrInst>(i) ||
               isa<CmpInst>(i) || isa<SelectInst>(i) || isa<UnaryOperator>(i) ||
               isa<ExtractElementInst>(i) || isa<InsertElementInst>(i) ||
               isa<ShuffleVectorInst>(i) || isa<ExtractValueInst>(i) || isa<FreezeInst>(i))) {
    return false;
  }
  for (Value* op : i->operands())
    if (!recomputable(op, size)) return false;
  return true;
}

// A copy of `v`'s computation before `at` (recomputable(v) holds).
Value* recompute(Value* v, Instruction* at) {
  auto* i = dyn_cast<Instruction>(v);
  if (i == nullptr) return v;
  Instruction* copy = i->clone();
  for (unsigned k = 0; k < i->getNumOperands(); ++k)
    copy->setOperand(k, recompute(i->getOperand(k), at));
  copy->insertBefore(at);
  return copy;
}

// Values used outside their block that recomputable() accepts are computed again at each such
// use instead of living in per-work-item memory: ids, sizes, __local tile addresses and the
// arithmetic on them stay visible to the optimiser in every region (loaded back from memory,
// `lx` made every tile access of a vectorised region a gather). What is left is demoted.
void recompute_across_blocks(Function& f) {
  std::vector<Instruction*> candidates;
  for (BasicBlock& bb : f)
    for (Instruction& i : bb)
      for (User* u : i.users())
        if (cast<Instruction>(u)->getParent() != &bb) {
          candidates.push_back(&i);
          break;
        }
  for (Instruction* i : candidates) {
    unsigned size = 0;
    if (!recomputable(i, size)) continue;
    for (Use& use : make_early_inc_range(i->uses())) {
      auto* user = cast<Instruction>(use.getUser());
      if (user->getParent() == i->getParent()) continue;
      Instruction* at = user;
      if (auto* phi = dyn_cast<PHINode>(user)) at = phi->getIncomingBlock(use)->getTerminator();
      use.set(recompute(i, at));
    }
  }
}

// The values every work-item of a group holds alike each time the group passes them, among
// those that may be demoted: LLVM's divergence analysis, seeded with what differs between
// work-items (local ids, private arrays' contents, atomics' results, calls that read memory),
// follows data and control dependence (a value chosen by a branch on a local id differs too,
// and so does one read out of a loop that work-items leave at different trips). Two more
// conditions make a demoted copy safe to read from any work-item: the value's block dominates a
// barrier (every work-item passes it before the group goes on), and none of its uses is
// divergent. Loads from global or __local memory at a uniform address count as uniform: work-
// items that wrote what others read without a barrier between would race.
std::set<Value*> uniform_across_group(Function& f, const std::vector<BasicBlock*>& barrier_blocks) {
  DominatorTree dt(f);
  PostDominatorTree pdt(f);
  LoopInfo li(dt);
  SyncDependenceAnalysis sda(dt, pdt, li);
  DivergenceAnalysisImpl da(f, nullptr, dt, li, sda, false);
  unsigned n = f.arg_size();
  for (unsigned d = 0; d < 3; ++d) da.markDivergent(*f.getArg(n - 3 + d));
  for (BasicBlock& bb : f)
    for (Instruction& i : bb) {
      bool differs = false;
      if (auto* load = dyn_cast<LoadInst>(&i)) {
        differs = !load->isSimple() ||
                  isa<AllocaInst>(getUnderlyingObject(load->getPointerOperand(), 0)) ||
                  load->getPointerAddressSpace() == 4;
      } else if (isa<AtomicRMWInst>(i) || isa<AtomicCmpXchgInst>(i) || isa<AllocaInst>(i)) {
        differs = true;
      } else if (auto* call = dyn_cast<CallInst>(&i)) {
        differs = !call->getType()->isVoidTy() && !call->doesNotAccessMemory();
      }
      if (differs) da.markDivergent(i);
    }
  da.compute();
  std::set<Value*> uniform;
  for (BasicBlock& bb : f) {
    bool passed_by_all = &bb == &f.getEntryBlock();
    for (BasicBlock* b : barrier_blocks) passed_by_all = passed_by_all || dt.dominates(&bb, b);
    if (!passed_by_all) continue;
    for (Instruction& i : bb) {
      if (i.getType()->isVoidTy() || da.isDivergent(i)) continue;
      bool all_uniform = true;
      for (const Use& u : i.uses()) all_uniform = all_uniform && !da.isDivergentUse(u);
      if (all_uniform) uniform.insert(&i);
    }
  }
  return uniform;
}

// Steps 2 and 3 on the copy; returns the per-work-item stride, or 0 when not applicable.
std::size_t demote_and_privatize(Regions& r, std::vector<BasicBlock*>& barrier_blocks) {
  Function& f = r.f;
  // Barrier blocks: [barrier call, br].
  std::vector<CallInst*> barriers;
  for (BasicBlock& bb : f)
    for (Instruction& i : bb)
      if (is_barrier(i)) barriers.push_back(cast<CallInst>(&i));
  for (CallInst* b : barriers) {
    // The fence the ABI pass put before it orders memory for other threads; one fence per
    // region loop does that now (a fence per work-item would be paid 1024 times).
    if (auto* fence = dyn_cast_or_null<FenceInst>(b->getPrevNode())) fence->eraseFromParent();
    BasicBlock* block = b->getParent()->splitBasicBlock(b, "barrier");
    block->splitBasicBlock(b->getNextNode(), "after.barrier");
    barrier_blocks.push_back(block);
  }
  // reg2mem. PHIs first: a demoted PHI leaves one reload at its block's top that all its uses
  // share, and a use across a barrier must get its own reload (as every other value below), or
  // a later region would read an instruction that only an earlier region runs. (Unoptimised
  // kernels had no PHIs; SROA makes them.)
  Instruction* alloca_point = &*f.getEntryBlock().getFirstInsertionPt();
  std::set<Value*> uniform = uniform_across_group(f, barrier_blocks);
  std::set<AllocaInst*>& uniform_slots = r.uniform_slots;
  std::vector<PHINode*> phis;
  for (BasicBlock& bb : f)
    for (PHINode& phi : bb.phis()) phis.push_back(&phi);
  for (PHINode* phi : phis) {
    bool same = uniform.count(phi) != 0;
    BasicBlock* block = phi->getParent();
    AllocaInst* slot = DemotePHIToStack(phi, alloca_point);
    if (!same || slot == nullptr) continue;
    uniform_slots.insert(slot);
    // Its reload, which is demoted below when used across blocks, holds the same value.
    for (User* u : slot->users())
      if (auto* reload = dyn_cast<LoadInst>(u); reload != nullptr && reload->getParent() == block)
        uniform.insert(reload);
  }
  recompute_across_blocks(f);
  std::vector<Instruction*> escaping;
  for (BasicBlock& bb : f)
    for (Instruction& i : bb) {
      if (isa<AllocaInst>(i) && &bb == &f.getEntryBlock()) continue;
      for (User* u : i.users())
        if (cast<Instruction>(u)->getParent() != &bb) {
          escaping.push_back(&i);
          break;
        }
    }
  for (Instruction* i : escaping) {
    bool same = uniform.count(i) != 0;
    AllocaInst* slot = DemoteRegToStack(*i, false, alloca_point);
    if (same && slot != nullptr) uniform_slots.insert(slot);
  }

  // Private memory per work-item.
  std::vector<AllocaInst*> allocas;
  for (BasicBlock& bb : f)
    for (Instruction& i : bb)
      if (auto* a = dyn_cast<AllocaInst>(&i)) {
        if (&bb != &f.getEntryBlock() || !a->isStaticAlloca()) return 0;
        allocas.push_back(a);
      }
  scope_private_variables(f, allocas);
  // Slot k of work-item wi lives at base + at_k * items + wi * size_k (items: the group's
  // work-items): one array per slot, work-items side by side, so that a vectorised region loop
  // stores and loads consecutive work-items' copies with one vector access rather than a
  // scatter over items cache lines. The arrays take stride * items bytes in all, as the runtime
  // reserves (kernel_driver.cpp).
  std::size_t offset = 0;
  for (AllocaInst* a : allocas) {
    // Each copy padded only to the variable's own alignment: a float's array is dense, so a
    // vectorised loop reads it with plain vector loads (8-byte padding made it an interleaved
    // access with gaps, whose scalar epilogue kept 16-item loops from vectorising at all).
    std::size_t align = a->getAlign().value();
    std::size_t size =
        static_cast<std::size_t>(a->getAllocationSizeInBits(r.dl)->getFixedSize() / 8);
    size = (size + align - 1) / align * align;  // wi * size keeps every copy aligned
    offset = (offset + 63) / 64 * 64;  // and each array starts on a cache line
    std::size_t at = offset;
    offset += size;
    for (Use& use : make_early_inc_range(a->uses())) {
      auto* user = cast<Instruction>(use.getUser());
      if (auto* ii = dyn_cast<IntrinsicInst>(user))
        if (ii->isLifetimeStartOrEnd()) {
          ii->eraseFromParent();
          continue;
        }
      IRBuilder<> b(user);
      Value* slot = b.CreateCall(r.wi_private, {b.getInt64(at), b.getInt64(size),
                                                b.getInt1(r.uniform_slots.count(a) != 0)});
      use.set(b.CreatePointerCast(slot, a->getType()));
    }
    a->eraseFromParent();
  }
  // Local ids become the region loops' variables.
  unsigned n = f.arg_size();
  for (unsigned d = 0; d < 3; ++d) {
    Argument* id = f.getArg(n - 3 + d);
    for (Use& use : make_early_inc_range(id->uses())) {
      IRBuilder<> b(cast<Instruction>(use.getUser()));
      use.set(b.CreateCall(r.wi_id, {b.getInt32(d)}));
    }
  }
  return std::max<std::size_t>((offset + 15) / 16 * 16, 16);
}

// Uniform slots (uniform_across_group) in one region's clones: a load that sees the value the
// region started with, no store to that slot before it in this region, reads the first
// work-item's copy once, at `before` (the region loop's preheader). Loop counters of loops
// around barriers then stay invariant in the region loop, where the vectoriser and the MMU's
// range checks can use them.
void read_uniform_slots_once(const std::vector<BasicBlock*>& clones, Instruction* before,
                             Value* base, Value* items) {
  std::map<std::uint64_t, std::vector<Instruction*>> loads, stores;
  for (BasicBlock* clone : clones)
    for (Instruction& i : *clone) {
      auto* call = dyn_cast<CallInst>(&i);
      if (call == nullptr || call->getCalledFunction() == nullptr ||
          call->getCalledFunction()->getName() != "__hetmm_wi_private" ||
          !cast<ConstantInt>(call->getArgOperand(2))->isOne())
        continue;
      std::uint64_t at = cast<ConstantInt>(call->getArgOperand(0))->getZExtValue();
      std::vector<Value*> ptrs{call};
      for (User* u : call->users())
        if (isa<CastInst>(u)) ptrs.push_back(u);
      for (Value* p : ptrs)
        for (User* u : p->users()) {
          if (auto* load = dyn_cast<LoadInst>(u); load && load->getPointerOperand() == p)
            loads[at].push_back(load);
          else if (auto* st = dyn_cast<StoreInst>(u); st && st->getPointerOperand() == p)
            stores[at].push_back(st);
        }
    }
  std::set<BasicBlock*> region_blocks(clones.begin(), clones.end());
  std::map<std::pair<std::uint64_t, Type*>, Value*> first_copy;
  for (auto& [at, slot_loads] : loads) {
    // Blocks a store to this slot may come before, within the region.
    std::set<BasicBlock*> after;
    std::vector<BasicBlock*> work;
    for (Instruction* st : stores[at])
      for (BasicBlock* succ : successors(st->getParent())) work.push_back(succ);
    while (!work.empty()) {
      BasicBlock* bb = work.back();
      work.pop_back();
      if (!region_blocks.count(bb) || !after.insert(bb).second) continue;
      for (BasicBlock* succ : successors(bb)) work.push_back(succ);
    }
    for (Instruction* load : slot_loads) {
      bool clean = after.count(load->getParent()) == 0;
      for (Instruction* st : stores[at])
        clean = clean && !(st->getParent() == load->getParent() && st->comesBefore(load));
      if (!clean) continue;
      Value*& value = first_copy[{at, load->getType()}];
      if (value == nullptr) {
        IRBuilder<> pb(before);
        Value* p = pb.CreateInBoundsGEP(pb.getInt8Ty(), base,
                                        pb.CreateMul(pb.getInt64(at), items, "", true, true));
        value = pb.CreateLoad(load->getType(),
                              pb.CreatePointerCast(p, load->getType()->getPointerTo()));
        cast<Instruction>(value)->copyMetadata(*load);
      }
      load->replaceAllUsesWith(value);
      load->eraseFromParent();
    }
  }
}

bool build_regions(Regions& r, const std::vector<BasicBlock*>& barrier_blocks,
                   FunctionCallee divergence) {
  Function& f = r.f;
  LLVMContext& c = f.getContext();
  std::map<BasicBlock*, std::uint32_t> barrier_index;
  for (std::size_t k = 0; k < barrier_blocks.size(); ++k)
    barrier_index[barrier_blocks[k]] = static_cast<std::uint32_t>(k + 1);
  std::vector<BasicBlock*> originals;
  for (BasicBlock& bb : f) originals.push_back(&bb);
  std::vector<BasicBlock*> starts{&f.getEntryBlock()};
  for (BasicBlock* b : barrier_blocks) starts.push_back(b->getSingleSuccessor());

  Value* ctx = f.getArg(f.arg_size() - kHiddenParams);
  auto* entry = BasicBlock::Create(c, "wg.entry", &f, &f.getEntryBlock());
  auto* dispatch = BasicBlock::Create(c, "wg.dispatch", &f);
  auto* done = BasicBlock::Create(c, "wg.done", &f);
  IRBuilder<> b(entry);
  AllocaInst* state = b.CreateAlloca(b.getInt32Ty(), nullptr, "wg.state");
  Value* base = b.CreateIntToPtr(load_ctx_field(b, ctx, ctx_offset::wi_private, b.getInt64Ty()), b.getInt8PtrTy());
  Value* n0 = load_ctx_field(b, ctx, ctx_offset::local_size, b.getInt64Ty());
  Value* n1 = load_ctx_field(b, ctx, ctx_offset::local_size + 8, b.getInt64Ty());
  Value* n2 = load_ctx_field(b, ctx, ctx_offset::local_size + 16, b.getInt64Ty());
  // No-wrap flags throughout the id and slot arithmetic (group sizes are small): they let
  // SCEV see a slot's address as consecutive in x, so a vectorised region loop accesses it
  // with one vector load or store rather than a gather or scatter.
  Value* items = b.CreateMul(b.CreateMul(n0, n1, "", true, true), n2, "wg.items", true, true);
  b.CreateStore(b.getInt32(0), state);
  b.CreateBr(dispatch);
  b.SetInsertPoint(dispatch);
  Value* s = b.CreateLoad(b.getInt32Ty(), state);
  SwitchInst* sw = b.CreateSwitch(s, done, static_cast<unsigned>(starts.size()));
  b.SetInsertPoint(done);
  b.CreateRetVoid();

  for (std::size_t ri = 0; ri < starts.size(); ++ri) {
    // The blocks of this region.
    std::vector<BasicBlock*> blocks;
    std::set<BasicBlock*> in_region;
    std::vector<BasicBlock*> work{starts[ri]};
    while (!work.empty()) {
      BasicBlock* bb = work.back();
      work.pop_back();
      if (barrier_index.count(bb) || !in_region.insert(bb).second) continue;
      blocks.push_back(bb);
      for (BasicBlock* succ : successors(bb)) work.push_back(succ);
    }
    // The loop over local ids: z, y, x.
    auto* pre = BasicBlock::Create(c, "region.pre", &f, dispatch);
    sw->addCase(b.getInt32(static_cast<std::uint32_t>(ri)), pre);
    b.SetInsertPoint(pre);
    struct Level {
      BasicBlock *head, *latch, *exit;
      PHINode* iv;
    };
    Level lv[3];
    Value* bounds[3] = {n2, n1, n0};
    BasicBlock* prev = pre;
    for (int d = 0; d < 3; ++d) {
      lv[d].head = BasicBlock::Create(c, "region.head", &f, dispatch);
      lv[d].latch = BasicBlock::Create(c, "region.latch", &f, dispatch);
      lv[d].exit = BasicBlock::Create(c, "region.exit", &f, dispatch);
      b.SetInsertPoint(prev);
      b.CreateBr(lv[d].head);
      b.SetInsertPoint(lv[d].head);
      lv[d].iv = b.CreatePHI(b.getInt64Ty(), 2);
      lv[d].iv->addIncoming(b.getInt64(0), prev);
      prev = lv[d].head;
    }
    // Innermost body: clone the region.
    ValueToValueMapTy vmap;
    std::vector<BasicBlock*> clones;
    for (BasicBlock* bb : blocks) {
      BasicBlock* clone = CloneBasicBlock(bb, vmap, ".r" + std::to_string(ri), &f);
      clone->moveBefore(dispatch);
      vmap[bb] = clone;
      clones.push_back(clone);
    }
    Value* x = lv[2].iv;
    Value* y = lv[1].iv;
    Value* z = lv[0].iv;
    b.SetInsertPoint(lv[2].head);
    Value* wi = b.CreateAdd(
        b.CreateMul(b.CreateAdd(b.CreateMul(z, n1, "", true, true), y, "", true, true), n0, "",
                    true, true),
        x, "wi", true, true);
    b.CreateBr(cast<BasicBlock>(vmap[starts[ri]]));
    // Exits: into a barrier block, or a return.
    std::map<std::uint32_t, BasicBlock*> exits;
    auto exit_to = [&](std::uint32_t next) {
      auto it = exits.find(next);
      if (it != exits.end()) return it->second;
      auto* e = BasicBlock::Create(c, "region.next", &f, dispatch);
      BranchInst::Create(lv[2].latch, e);
      exits[next] = e;
      return e;
    };
    for (BasicBlock* clone : clones) {
      Instruction* term = clone->getTerminator();
      RemapInstruction(term, vmap, RF_IgnoreMissingLocals | RF_NoModuleLevelChanges);
      if (isa<ReturnInst>(term)) {
        IRBuilder<> tb(term);
        tb.CreateBr(exit_to(kEnd));
        term->eraseFromParent();
        continue;
      }
      for (unsigned i = 0; i < term->getNumSuccessors(); ++i) {
        BasicBlock* succ = term->getSuccessor(i);
        // Successors still pointing at original blocks are barrier blocks (the rest were
        // remapped to this region's clones).
        auto it = barrier_index.find(succ);
        if (it != barrier_index.end()) term->setSuccessor(i, exit_to(it->second));
      }
    }
    // Which region comes next. With one way out (most regions: straight-line code between
    // barriers) every work-item asks for it. With several, each way counts the work-items
    // that take it: a sum the vectoriser can keep in vector registers (the last work-item's
    // choice and an "any disagreed" flag, kept before, were loop-carried values it could not
    // vectorise: a loop around a barrier kept its region scalar). All or none of the group
    // must take each way; anything else is a divergent barrier.
    std::vector<std::pair<std::uint32_t, AllocaInst*>> takers;
    if (exits.size() == 1) {
      IRBuilder<>(pre->getTerminator()).CreateStore(b.getInt32(exits.begin()->first), state);
    } else {
      for (auto& [next, e] : exits) {
        AllocaInst* count =
            IRBuilder<>(entry, entry->begin())
                .CreateAlloca(b.getInt64Ty(), nullptr, "region.takers");
        IRBuilder<>(pre->getTerminator()).CreateStore(b.getInt64(0), count);
        IRBuilder<> eb(e->getTerminator());
        eb.CreateStore(eb.CreateAdd(eb.CreateLoad(eb.getInt64Ty(), count), eb.getInt64(1)), count);
        takers.push_back({next, count});
      }
    }
    for (BasicBlock* clone : clones)
      for (Instruction& i : *clone) {
        if (&i == clone->getTerminator()) continue;
        RemapInstruction(&i, vmap, RF_IgnoreMissingLocals | RF_NoModuleLevelChanges);
      }
    read_uniform_slots_once(clones, pre->getTerminator(), base, items);
    // Placeholders: this region's ids and private slots.
    for (BasicBlock* clone : clones)
      for (Instruction& i : make_early_inc_range(*clone)) {
        auto* call = dyn_cast<CallInst>(&i);
        if (call == nullptr || call->getCalledFunction() == nullptr) continue;
        StringRef name = call->getCalledFunction()->getName();
        IRBuilder<> pb(call);
        if (name == "__hetmm_wi_id") {
          auto d = cast<ConstantInt>(call->getArgOperand(0))->getZExtValue();
          call->replaceAllUsesWith(d == 0 ? x : d == 1 ? y : z);
          call->eraseFromParent();
        } else if (name == "__hetmm_wi_private") {
          Value* off = pb.CreateAdd(pb.CreateMul(call->getArgOperand(0), items, "", true, true),
                                    pb.CreateMul(wi, call->getArgOperand(1), "", true, true), "",
                                    true, true);
          call->replaceAllUsesWith(pb.CreateInBoundsGEP(pb.getInt8Ty(), base, off));
          call->eraseFromParent();
        }
      }
    // Latches and exits of the three loops, innermost first.
    for (int d = 2; d >= 0; --d) {
      b.SetInsertPoint(lv[d].latch);
      Value* next = b.CreateAdd(lv[d].iv, b.getInt64(1), "", true, true);
      lv[d].iv->addIncoming(next, lv[d].latch);
      BranchInst* br = b.CreateCondBr(b.CreateICmpULT(next, bounds[d]), lv[d].head, lv[d].exit);
      if (d == 2) br->setMetadata("llvm.loop", work_item_loop_id(c, static_cast<unsigned>(ri)));
      b.SetInsertPoint(lv[d].exit);
      if (d > 0) b.CreateBr(lv[d - 1].latch);
    }
    // The whole group is through: check agreement. No fence: a barrier orders memory among
    // the group's work-items only (work-group scope), and they all run on this thread; memory
    // reaches other threads at the kernel's completion or through the kernel's own atomics.
    // (A seq_cst fence here cost 6% of transpose's time: two per group.)
    b.SetInsertPoint(lv[0].exit);
    if (takers.empty()) {
      b.CreateBr(dispatch);
      continue;
    }
    Value* chosen = b.getInt32(kEnd);
    Value* diverged = b.getFalse();
    for (auto& [next, count] : takers) {
      Value* n = b.CreateLoad(b.getInt64Ty(), count);
      Value* some = b.CreateICmpNE(n, b.getInt64(0));
      chosen = b.CreateSelect(some, b.getInt32(next), chosen);
      diverged = b.CreateOr(diverged, b.CreateAnd(some, b.CreateICmpNE(n, items)));
    }
    b.CreateStore(chosen, state);
    auto* report = BasicBlock::Create(c, "region.diverged", &f, dispatch);
    b.CreateCondBr(diverged, report, dispatch);
    b.SetInsertPoint(report);
    b.CreateCall(divergence, {ctx});
    b.CreateBr(dispatch);
  }
  // The original body is now dead.
  for (BasicBlock* bb : originals) bb->dropAllReferences();
  for (BasicBlock* bb : originals) bb->eraseFromParent();
  return true;
}

}  // namespace

std::size_t form_barrier_regions(Function& kernel) {
  Module& m = *kernel.getParent();
  LLVMContext& c = m.getContext();
  ValueToValueMapTy vmap;
  Function* copy = CloneFunction(&kernel, vmap);
  Regions r{*copy, m.getDataLayout(),
            m.getOrInsertFunction("__hetmm_wi_private",
                                  FunctionType::get(Type::getInt8PtrTy(c),
                                                    {Type::getInt64Ty(c), Type::getInt64Ty(c),
                                                     Type::getInt1Ty(c)},
                                                    false)),
            m.getOrInsertFunction("__hetmm_wi_id",
                                  FunctionType::get(Type::getInt64Ty(c), {Type::getInt32Ty(c)}, false))};
  FunctionCallee divergence = m.getOrInsertFunction(
      "hetmm_jit_divergence", FunctionType::get(Type::getVoidTy(c), {Type::getInt8PtrTy(c)}, false));
  std::size_t stride = 0;
  std::vector<BasicBlock*> barrier_blocks;
  bool ok = inline_callees(*copy);
  if (ok) promote_scalars(*copy);
  if (ok) stride = demote_and_privatize(r, barrier_blocks);
  ok = ok && stride != 0 && !barrier_blocks.empty() && build_regions(r, barrier_blocks, divergence);
  if (ok) ok = !verifyFunction(*copy);
  if (!ok) {
    copy->eraseFromParent();
    return 0;
  }
  // The copy's body replaces the kernel's.
  kernel.dropAllReferences();
  while (!kernel.empty()) kernel.begin()->eraseFromParent();
  for (unsigned i = 0; i < kernel.arg_size(); ++i) copy->getArg(i)->replaceAllUsesWith(kernel.getArg(i));
  kernel.getBasicBlockList().splice(kernel.end(), copy->getBasicBlockList());
  copy->eraseFromParent();
  return stride;
}

}  // namespace hetmm::spirv
