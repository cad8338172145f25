// The MMU rewrite: every access through a __global (1), __constant (2) or generic (4) pointer
// goes through the device MMU, as the kernel's Thread::load/store would.
//
// Per access (see kernel_context.hpp, J1-J3):
//   fast  the device's shootdown epoch equals the worker's TLB epoch, the access stays in one
//         page, the TLB slot holds that page in place (system memory) with the needed right:
//         the original instruction runs on the process address itself;
//   slow  a call into the runtime, which walks the page table, raises device faults, accesses
//         device frames under the shootdown protocol and splits page-straddling accesses.
// Translation happens at the access, never on the pointer value: device addresses are process
// addresses, so pointers stored in memory stay valid on both sides.
//
// Not rewritten: private (0) and __local (3) memory, and program-scope variables (JIT memory,
// not process data). A generic pointer into the work-item's stack or the group's __local arena
// is recognised by address range and accessed directly.
#include "spirv/mmu_ir.hpp"

#include "hetmm/hetmm.hpp"

namespace hetmm::spirv {
namespace mmu {

// Rewrites one access into head / in-place / local / slow / join blocks.
void rewrite(Instruction* inst, Value* ptr, Value* range_ok, const Runtime& rt,
             const DataLayout& dl, bool keep, const ItemFrames* item) {
  Function* f = inst->getFunction();
  LLVMContext& c = f->getContext();
  Value* ctx = ctx_of(*f);
  Type* value_type = nullptr;
  bool write = false;
  if (auto* l = dyn_cast<LoadInst>(inst)) {
    value_type = l->getType();
  } else if (auto* s = dyn_cast<StoreInst>(inst)) {
    value_type = s->getValueOperand()->getType();
    write = true;
  } else if (auto* a = dyn_cast<AtomicRMWInst>(inst)) {
    value_type = a->getValOperand()->getType();
    write = true;
  } else {
    value_type = cast<AtomicCmpXchgInst>(inst)->getNewValOperand()->getType();
    write = true;
  }
  std::uint64_t bytes = dl.getTypeStoreSize(value_type);
  const std::uint64_t span = probe_span(inst, bytes);
  unsigned as = ptr->getType()->getPointerAddressSpace();
  bool atomic_rmw = isa<AtomicRMWInst>(inst) || isa<AtomicCmpXchgInst>(inst);
  if (atomic_rmw && bytes != 4 && bytes != 8)
    throw Error(Errc::invalid_argument, "SPIR-V module: " + std::to_string(bytes) +
                                            "-byte atomics are not supported on device memory");

  BasicBlock* head = inst->getParent();
  BasicBlock* join = head->splitBasicBlock(inst, "mmu.join");
  head->getTerminator()->eraseFromParent();
  auto* in_place_bb = BasicBlock::Create(c, "mmu.inplace", f, join);
  auto* check_local = BasicBlock::Create(c, "mmu.checklocal", f, join);
  auto* enter_local = BasicBlock::Create(c, "mmu.enter", f, join);
  auto* local_bb = BasicBlock::Create(c, "mmu.local", f, join);
  auto* abort_local = BasicBlock::Create(c, "mmu.abort", f, join);
  auto* slow_bb = BasicBlock::Create(c, "mmu.slow", f, join);
  MDNode* likely = MDBuilder(c).createBranchWeights(2000, 1);

  auto* probe_bb = BasicBlock::Create(c, "mmu.probe", f, join);
  auto* refill_bb = BasicBlock::Create(c, "mmu.refill", f, join);
  IRBuilder<> b(head);
  Value* va = b.CreatePtrToInt(ptr, b.getInt64Ty());
  // Inside a loop whose whole address range was found in place at its entry and that could
  // not be versioned (version_loop): no probe while the check holds (J1).
  auto* kept_bb = BasicBlock::Create(c, "mmu.kept", f, join);
  if (range_ok != nullptr)
    b.CreateCondBr(range_ok, in_place_bb, kept_bb, likely);
  else
    b.CreateBr(kept_bb);
  // In the run of in-place pages the last probe found: no probe either.
  // (Not for an access whose loop was versioned on its range: it runs probed only where that
  // check failed, and the kept answers' code would cost compile time for little.)
  b.SetInsertPoint(kept_bb);
  // A work-item loop's direct access whose group was found in device frames in the loop's
  // preheader (J8 on device): that epoch published and re-checked, the access at the group's
  // delta. Where the epoch moved, the probe below.
  Instruction* item_inst = nullptr;
  BasicBlock* item_bb = nullptr;
  if (item != nullptr) {
    auto* enter = BasicBlock::Create(c, "mmu.item.enter", f, join);
    item_bb = BasicBlock::Create(c, "mmu.item.frame", f, join);
    auto* abort = BasicBlock::Create(c, "mmu.item.abort", f, join);
    auto* rest = BasicBlock::Create(c, "mmu.kept.rest", f, join);
    b.CreateCondBr(item->ok, enter, rest, likely);
    b.SetInsertPoint(enter);
    Value* active = load_ctx_field(b, ctx, ctx_offset::active, b.getInt64Ty()->getPointerTo());
    emit_publish(b, item->epoch, active);
    Value* epoch_ptr = load_ctx_field(b, ctx, ctx_offset::device_epoch,
                                      b.getInt64Ty()->getPointerTo());
    LoadInst* again = b.CreateAlignedLoad(b.getInt64Ty(), epoch_ptr, Align(8));
    again->setAtomic(AtomicOrdering::SequentiallyConsistent);
    b.CreateCondBr(b.CreateICmpEQ(again, item->epoch), item_bb, abort, likely);
    b.SetInsertPoint(abort);
    b.CreateAlignedStore(b.getInt64(0), active, Align(8))->setAtomic(AtomicOrdering::Release);
    b.CreateBr(rest);
    b.SetInsertPoint(item_bb);
    item_inst = inst->clone();
    const unsigned index = isa<StoreInst>(inst) ? StoreInst::getPointerOperandIndex() : 0;
    item_inst->setOperand(index, b.CreateIntToPtr(b.CreateAdd(va, item->delta), ptr->getType()));
    b.Insert(item_inst);
    b.CreateAlignedStore(b.getInt64(0), active, Align(8))->setAtomic(AtomicOrdering::Release);
    b.CreateBr(join);
    b.SetInsertPoint(rest);
  }
  Value* va_last = span > 1 ? b.CreateAdd(va, b.getInt64(span - 1)) : va;
  KeptRun kept{};
  BasicBlock* kept_end = b.GetInsertBlock();
  if (keep) {
    kept = kept_in_place(f);
    b.CreateCondBr(in_kept_run(b, va, va_last, kept), in_place_bb, probe_bb);
  } else {
    b.CreateBr(probe_bb);
  }
  b.SetInsertPoint(probe_bb);
  PHINode* attempt = b.CreatePHI(b.getInt32Ty(), 2, "mmu.attempt");
  attempt->addIncoming(b.getInt32(0), kept_end);
  Probe probe = emit_epochs(b, ctx);
  // In the run of frames this access last found, in the epoch it found it in: the run holds
  // (frames change only with an invalidation, which moves the epoch), and the access enters
  // the shootdown protocol below at once.
  Type* i64 = b.getInt64Ty();
  KeptFrames frames_kept{};
  Value* fk_host = nullptr;
  auto* block_bb = BasicBlock::Create(c, "mmu.block", f, join);
  if (keep) {
    frames_kept = {{entry_i64(f, 0), entry_i64(f, 0), entry_i64(f, 0)},
                   entry_i64(f, ~std::uint64_t{0})};  // ~0: never an epoch
    fk_host = b.CreateAdd(va, b.CreateLoad(i64, frames_kept.run.delta));
    Value* in_fk = b.CreateAnd(b.CreateICmpEQ(b.CreateLoad(i64, frames_kept.epoch), probe.dev_epoch),
                               in_kept_run(b, va, va_last, frames_kept.run));
    b.CreateCondBr(in_fk, enter_local, block_bb);
  } else {
    b.CreateBr(block_bb);
  }
  // Block entries first: a kernel's arrays in system memory are mostly whole blocks in place,
  // and the page probe's hash and loads then stay off the path (gather: 2x).
  b.SetInsertPoint(block_bb);
  auto* page_bb = BasicBlock::Create(c, "mmu.page", f, join);
  auto* frame_block_bb = BasicBlock::Create(c, "mmu.frameblock", f, join);
  auto* keep_bb = BasicBlock::Create(c, "mmu.keep", f, join);
  InPlaceProbe in_place = emit_block_probe(b, ctx, va, va_last, write, probe.epoch_ok);
  b.CreateCondBr(in_place.hit, keep_bb, frame_block_bb);
  b.SetInsertPoint(keep_bb);
  if (keep) keep_joined(b, kept, in_place.run_lo, in_place.run_len, nullptr);
  b.CreateBr(in_place_bb);
  // Then the same block entry for a block in one run of device frames (J4): data in device
  // memory stays off the page TLB, which a gather over a few MiB would miss on most accesses.
  b.SetInsertPoint(frame_block_bb);
  LocalProbe frames = emit_local_block_probe(b, ctx, va, va_last, write, probe.epoch_ok);
  Value* frame_block_host = b.CreateAdd(va, frames.delta);
  auto* keep_frames_bb = BasicBlock::Create(c, "mmu.keepframes", f, join);
  b.CreateCondBr(frames.hit, keep_frames_bb, page_bb);
  b.SetInsertPoint(keep_frames_bb);
  if (keep) {
    // Joined only within the epoch the kept run is of.
    Value* same_epoch = b.CreateICmpEQ(b.CreateLoad(i64, frames_kept.epoch), probe.dev_epoch);
    b.CreateStore(b.CreateSelect(same_epoch, b.CreateLoad(i64, frames_kept.run.len), b.getInt64(0)),
                  frames_kept.run.len);
    keep_joined(b, frames_kept.run, frames.run_lo, frames.run_len, frames.delta);
    b.CreateStore(probe.dev_epoch, frames_kept.epoch);
  }
  b.CreateBr(enter_local);
  b.SetInsertPoint(page_bb);
  emit_page_probe(b, ctx, va, span, write, as, probe);
  b.CreateCondBr(probe.in_place, in_place_bb, check_local, likely);

  // A miss: refill the TLB from the device page table (cheap, no fault) and probe again; at
  // most twice, so that an invalidation storm cannot keep the access here.
  b.SetInsertPoint(refill_bb);
  Value* filled = b.CreateCall(rt.refill, {ctx, va, b.getInt64(bytes), b.getInt64(write ? 1 : 0)});
  Value* again_ok = b.CreateAnd(b.CreateICmpNE(filled, b.getInt64(0)),
                                b.CreateICmpULT(attempt, b.getInt32(2)));
  attempt->addIncoming(b.CreateAdd(attempt, b.getInt32(1)), refill_bb);

  // In place (J1): the original instruction on the process address.
  b.SetInsertPoint(in_place_bb);
  BranchInst* in_place_br = b.CreateBr(join);
  inst->moveBefore(in_place_br);

  // A device frame: the same access on the frame, inside the shootdown protocol.
  b.SetInsertPoint(refill_bb);
  b.CreateCondBr(again_ok, probe_bb, slow_bb);
  b.SetInsertPoint(check_local);
  b.CreateCondBr(probe.local, enter_local, refill_bb);
  b.SetInsertPoint(enter_local);
  PHINode* frame_host = b.CreatePHI(b.getInt64Ty(), 3, "mmu.frame");
  if (keep) frame_host->addIncoming(fk_host, probe_bb);
  frame_host->addIncoming(frame_block_host, keep_frames_bb);
  frame_host->addIncoming(probe.host, check_local);
  Value* active = load_ctx_field(b, ctx, ctx_offset::active, b.getInt64Ty()->getPointerTo());
  emit_publish(b, probe.dev_epoch, active);
  LoadInst* again = b.CreateAlignedLoad(b.getInt64Ty(), probe.dev_epoch_ptr, Align(8));
  again->setAtomic(AtomicOrdering::SequentiallyConsistent);
  b.CreateCondBr(b.CreateICmpEQ(again, probe.dev_epoch), local_bb, abort_local);
  b.SetInsertPoint(abort_local);
  b.CreateAlignedStore(b.getInt64(0), active, Align(8))->setAtomic(AtomicOrdering::Release);
  b.CreateBr(slow_bb);
  b.SetInsertPoint(local_bb);
  Value* frame_ptr = b.CreateIntToPtr(frame_host, ptr->getType());
  Instruction* local_inst = inst->clone();
  unsigned ptr_index = isa<StoreInst>(inst) ? StoreInst::getPointerOperandIndex() : 0;
  local_inst->setOperand(ptr_index, frame_ptr);
  b.Insert(local_inst);
  b.CreateAlignedStore(b.getInt64(0), active, Align(8))->setAtomic(AtomicOrdering::Release);
  b.CreateBr(join);

  // The slow path: the runtime does the whole access.
  b.SetInsertPoint(slow_bb);
  Value* slow_result = nullptr;
  if (isa<LoadInst>(inst)) {
    AllocaInst* tmp = entry_alloca(f, value_type);
    b.CreateCall(rt.load, {ctx, va, b.CreateBitCast(tmp, b.getInt8PtrTy()), b.getInt64(bytes)});
    slow_result = b.CreateLoad(value_type, tmp);
  } else if (auto* st = dyn_cast<StoreInst>(inst)) {
    AllocaInst* tmp = entry_alloca(f, value_type);
    b.CreateStore(st->getValueOperand(), tmp);
    b.CreateCall(rt.store, {ctx, va, b.CreateBitCast(tmp, b.getInt8PtrTy()), b.getInt64(bytes)});
  } else if (auto* a = dyn_cast<AtomicRMWInst>(inst)) {
    Value* old = b.CreateCall(rt.atomic, {ctx, va, b.getInt32(atomic_op(a->getOperation())),
                                          b.getInt64(bytes), to_i64(b, a->getValOperand(), dl),
                                          b.getInt64(0)});
    slow_result = from_i64(b, old, value_type, dl);
  } else {
    auto* x = cast<AtomicCmpXchgInst>(inst);
    Value* expected = to_i64(b, x->getCompareOperand(), dl);
    Value* old = b.CreateCall(rt.atomic, {ctx, va, b.getInt32(std::uint32_t(AtomicOp::cmpxchg)),
                                          b.getInt64(bytes), to_i64(b, x->getNewValOperand(), dl),
                                          expected});
    Value* ok = b.CreateICmpEQ(old, expected);
    Value* pair = UndefValue::get(x->getType());
    pair = b.CreateInsertValue(pair, from_i64(b, old, value_type, dl), 0);
    slow_result = b.CreateInsertValue(pair, ok, 1);
  }
  b.CreateBr(join);

  if (slow_result != nullptr) {
    b.SetInsertPoint(&*join->getFirstInsertionPt());
    PHINode* phi = b.CreatePHI(inst->getType(), 4);
    inst->replaceAllUsesWith(phi);
    phi->addIncoming(inst, in_place_bb);
    phi->addIncoming(local_inst, local_bb);
    phi->addIncoming(slow_result, slow_bb);
    if (item_inst != nullptr) phi->addIncoming(item_inst, item_bb);
  }
}

// memcpy/memmove/memset on device pointers become loops of loads and stores first, so that the
// rewrite sees every byte they touch.
void expand_mem_intrinsics(Function& f, const TargetTransformInfo& tti) {
  std::vector<MemIntrinsic*> work;
  for (BasicBlock& bb : f)
    for (Instruction& i : bb)
      if (auto* mi = dyn_cast<MemIntrinsic>(&i)) {
        bool device = needs_mmu(mi->getRawDest());
        if (auto* mt = dyn_cast<MemTransferInst>(mi)) device |= needs_mmu(mt->getRawSource());
        if (device) work.push_back(mi);
      }
  for (MemIntrinsic*& mi : work) {
    // LLVM 15 expands a memmove by comparing its pointers through a bitcast, invalid between
    // address spaces. Private, global, constant and __local memory never overlap: such a move
    // is a copy; against a generic pointer, both become generic (every address is one).
    auto* mv = dyn_cast<MemMoveInst>(mi);
    if (mv == nullptr) continue;
    unsigned das = mv->getDestAddressSpace(), sas = mv->getSourceAddressSpace();
    if (das == sas) continue;
    IRBuilder<> b(mv);
    Value *dst = mv->getRawDest(), *src = mv->getRawSource();
    CallInst* replacement = nullptr;
    if (das != 4 && sas != 4) {
      replacement = b.CreateMemCpy(dst, mv->getDestAlign(), src, mv->getSourceAlign(),
                                   mv->getLength(), mv->isVolatile());
    } else {
      Type* generic = Type::getInt8PtrTy(f.getContext(), 4);
      replacement = b.CreateMemMove(b.CreateAddrSpaceCast(dst, generic), mv->getDestAlign(),
                                    b.CreateAddrSpaceCast(src, generic), mv->getSourceAlign(),
                                    mv->getLength(), mv->isVolatile());
    }
    replacement->copyMetadata(*mv);
    mv->eraseFromParent();
    mi = cast<MemIntrinsic>(replacement);
  }
  for (MemIntrinsic* mi : work) {
    if (auto* cpy = dyn_cast<MemCpyInst>(mi)) expandMemCpyAsLoop(cpy, tti);
    else if (auto* mv = dyn_cast<MemMoveInst>(mi)) expandMemMoveAsLoop(mv);
    else if (auto* set = dyn_cast<MemSetInst>(mi)) expandMemSetAsLoop(set);
    else continue;
    mi->eraseFromParent();
  }
}

}  // namespace mmu

using namespace llvm;
using namespace mmu;

std::size_t apply_mmu_rewrite(Module& m) {
  const DataLayout& dl = m.getDataLayout();
  TargetTransformInfo tti(dl);
  Runtime rt = declare_runtime(m);
  std::size_t rewritten = 0;
  for (Function& f : m) {
    if (f.isDeclaration() || f.arg_size() < kHiddenParams) continue;
    expand_mem_intrinsics(f, tti);
    std::vector<std::pair<Instruction*, Value*>> work;
    for (BasicBlock& bb : f)
      for (Instruction& i : bb) {
        Value* ptr = nullptr;
        if (auto* l = dyn_cast<LoadInst>(&i)) ptr = l->getPointerOperand();
        else if (auto* s = dyn_cast<StoreInst>(&i)) ptr = s->getPointerOperand();
        else if (auto* a = dyn_cast<AtomicRMWInst>(&i)) ptr = a->getPointerOperand();
        else if (auto* x = dyn_cast<AtomicCmpXchgInst>(&i)) ptr = x->getPointerOperand();
        if (ptr != nullptr && needs_mmu(ptr)) work.push_back({&i, ptr});
      }
    std::vector<std::pair<Instruction*, Value*>> cloned;
    std::set<Instruction*> cold;
    std::map<Instruction*, ItemFrames> item_frames;
    std::map<Instruction*, Value*> checks = range_checks(f, rt, work, cloned, cold, item_frames);
    work.insert(work.end(), cloned.begin(), cloned.end());
    for (auto& [inst, ptr] : work) {
      auto it = checks.find(inst);
      auto frames = item_frames.find(inst);
      rewrite(inst, ptr, it == checks.end() ? nullptr : it->second, rt, dl, !cold.count(inst),
              frames == item_frames.end() ? nullptr : &frames->second);
    }
    rewritten += work.size();
  }
  return rewritten;
}

}  // namespace hetmm::spirv
