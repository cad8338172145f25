// Loops on device frames (J4, J5): the version of a loop that runs each access at process
// address + its run of frames' delta while it holds the shootdown protocol's `active`, and the
// held accesses of a loop that also probes.
#include "spirv/mmu_ir.hpp"

namespace hetmm::spirv::mmu {

FrameRangeProbe emit_frame_range_probe(IRBuilder<>& b, Value* ctx, Value* lo, Value* last,
                                       bool write, Value* epoch_ok, DominatorTree& dt,
                                       LoopInfo& li) {
  Type* i64 = b.getInt64Ty();
  constexpr std::uint64_t kBlockMask = (std::uint64_t{1} << 21) - 1;
  Value* one_block = b.CreateICmpEQ(b.CreateLShr(lo, 21), b.CreateLShr(last, 21));
  Value* lo_end = b.CreateSelect(one_block, last, b.CreateOr(lo, kBlockMask));
  Value* hi_start = b.CreateSelect(one_block, lo, b.CreateAnd(last, ~kBlockMask));
  LocalProbe head_part = emit_local_block_probe(b, ctx, lo, lo_end, write, epoch_ok);
  Value* head_end = b.CreateAdd(head_part.run_lo, head_part.run_len);
  // The next block's entry only for a range that crosses into it (rare: kept off the path).
  Value* tail_hit = nullptr;
  Value* tail_delta = nullptr;
  Value* tail_end = nullptr;
  {
    BasicBlock* before = b.GetInsertBlock();
    Instruction* cross = SplitBlockAndInsertIfThen(b.CreateNot(one_block), &*b.GetInsertPoint(),
                                                   false, nullptr, &dt, &li);
    IRBuilder<> tb(cross);
    LocalProbe tail_part = emit_local_block_probe(tb, ctx, hi_start, last, write, epoch_ok);
    Value* adjacent = tb.CreateICmpEQ(tb.CreateLShr(last, 21),
                                      tb.CreateAdd(tb.CreateLShr(lo, 21), tb.getInt64(1)));
    b.SetInsertPoint(cross->getParent()->getSingleSuccessor()->getFirstNonPHI());
    PHINode* h = b.CreatePHI(b.getInt1Ty(), 2, "mmu.tail.hit");
    h->addIncoming(b.getTrue(), before);
    h->addIncoming(tb.CreateAnd(tail_part.hit, adjacent), cross->getParent());
    PHINode* d = b.CreatePHI(i64, 2, "mmu.tail.delta");
    d->addIncoming(head_part.delta, before);
    d->addIncoming(tail_part.delta, cross->getParent());
    // Where both hit, the head's run reaches its block's end and the tail's starts at the next
    // block's start: one run.
    PHINode* e = b.CreatePHI(i64, 2, "mmu.tail.end");
    e->addIncoming(head_end, before);
    e->addIncoming(tb.CreateAdd(tail_part.run_lo, tail_part.run_len), cross->getParent());
    tail_hit = h;
    tail_delta = d;
    tail_end = e;
  }
  return {b.CreateAnd(head_part.hit, tail_hit), b.CreateICmpEQ(head_part.delta, tail_delta),
          head_part.delta, head_part.in_place, head_part.run_lo, tail_end};
}

// The block entries' answer for [lo, last] over any number of blocks, up to kRunBlocksMax (a
// gather's range over a table of several MiB): each block's part within its block's run of
// frames, all at one delta, so that the parts are one run. Emitted at b as a loop over the
// blocks after lo's, which stops at the first that fails; b is left after it. Registered in
// `li`; recalculates `dt`.
FrameRangeProbe emit_frame_run_probe(IRBuilder<>& b, Value* ctx, Value* lo, Value* last,
                                     bool write, DominatorTree& dt, LoopInfo& li) {
  constexpr std::uint64_t kRunBlocksMax = 64;
  constexpr std::uint64_t kBlockMask = (std::uint64_t{1} << 21) - 1;
  Type* i64 = b.getInt64Ty();
  Value* lo_block = b.CreateLShr(lo, 21);
  Value* last_block = b.CreateLShr(last, 21);
  LocalProbe head = emit_local_block_probe(
      b, ctx, lo, b.CreateBinaryIntrinsic(Intrinsic::umin, last, b.CreateOr(lo, kBlockMask)), write,
      b.getTrue());
  Value* head_end = b.CreateAdd(head.run_lo, head.run_len);
  Value* more = b.CreateICmpNE(last_block, lo_block);
  Value* few = b.CreateICmpULE(b.CreateSub(last_block, lo_block), b.getInt64(kRunBlocksMax));
  Value* enter = b.CreateAnd(head.hit, b.CreateAnd(more, few));
  Value* head_only = b.CreateAnd(head.hit, b.CreateNot(more));
  Value* second = b.CreateAdd(lo_block, b.getInt64(1));
  BasicBlock* entry = b.GetInsertBlock();
  Function* f = entry->getParent();
  Loop* parent = li.getLoopFor(entry);
  BasicBlock* done = entry->splitBasicBlock(b.GetInsertPoint(), "mmu.run.done");
  auto* body = BasicBlock::Create(b.getContext(), "mmu.run.block", f, done);
  entry->getTerminator()->eraseFromParent();
  IRBuilder<>(entry).CreateCondBr(enter, body, done);
  IRBuilder<> lb(body);
  PHINode* block = lb.CreatePHI(i64, 2, "mmu.run.blk");
  block->addIncoming(second, entry);
  Value* part_lo = lb.CreateShl(block, 21);
  Value* is_last = lb.CreateICmpEQ(block, last_block);
  Value* part_last = lb.CreateSelect(is_last, last, lb.CreateOr(part_lo, kBlockMask));
  LocalProbe part = emit_local_block_probe(lb, ctx, part_lo, part_last, write, lb.getTrue());
  Value* good = lb.CreateAnd(part.hit, lb.CreateICmpEQ(part.delta, head.delta));
  Value* part_end = lb.CreateAdd(part.run_lo, part.run_len);
  block->addIncoming(lb.CreateAdd(block, lb.getInt64(1)), body);
  lb.CreateCondBr(lb.CreateAnd(good, lb.CreateNot(is_last)), body, done);
  b.SetInsertPoint(done, done->getFirstInsertionPt());
  PHINode* hit = b.CreatePHI(b.getInt1Ty(), 2, "mmu.run.hit");
  hit->addIncoming(head_only, entry);
  hit->addIncoming(good, body);
  PHINode* end = b.CreatePHI(i64, 2, "mmu.run.end");
  end->addIncoming(head_end, entry);
  end->addIncoming(part_end, body);
  register_one_block_loop(body, done, parent, li);
  dt.recalculate(*f);
  return {hit, b.getTrue(), head.delta, head.in_place, head.run_lo, end};
}

// The delta of range r's run of frames (J4), or 0: inline from the block entries when the range
// lies in a run of frames the worker knows, else the runtime checks the range's pages (and
// fills the block entries it can). Emitted at b, which is left after it.
Value* frame_delta(IRBuilder<>& b, const LocalRange& r, Value* ctx, Value* epoch_ok,
                   const Runtime& rt, DominatorTree& dt, LoopInfo& li) {
  Type* i64 = b.getInt64Ty();
  Value* last = b.CreateSub(r.hi, b.getInt64(1));
  FrameRangeProbe parts = emit_frame_range_probe(b, ctx, r.lo, last, r.write, epoch_ok, dt, li);
  Value* both = parts.both;
  Value* same_delta = parts.same_delta;
  Value* block_hit = b.CreateAnd(both, same_delta);
  Value* block_delta = parts.delta;
  // Two runs the worker knows, at two deltas: the probed loop runs, with no call to learn it
  // again.
  Value* known_split = b.CreateAnd(both, b.CreateNot(same_delta));
  // The rest off the common path, where the block entries answered: a range inside one page
  // (a small group's slice of an array) on that page's TLB entry, else the runtime.
  Value* fast = b.CreateAnd(block_hit, b.CreateICmpULT(r.lo, r.hi));
  BasicBlock* hot = b.GetInsertBlock();
  Instruction* cold_term = SplitBlockAndInsertIfThen(b.CreateNot(fast), &*b.GetInsertPoint(),
                                                     false, nullptr, &dt, &li);
  BasicBlock* after = cold_term->getParent()->getSingleSuccessor();
  IRBuilder<> cb(cold_term);
  std::uint64_t need = pte::kValid | pte::kLocal | (r.write ? pte::kWrite : 0);
  PageEntry page = emit_page_entry(cb, ctx, r.lo, last, need, need, epoch_ok);
  Value* page_hit = cb.CreateAnd(page.hit, cb.CreateICmpULT(r.lo, r.hi));
  Value* inline_delta = cb.CreateSelect(page_hit, page.delta, cb.getInt64(0));
  BasicBlock* cold_head = cb.GetInsertBlock();
  Instruction* call_term = SplitBlockAndInsertIfThen(
      cb.CreateNot(cb.CreateOr(page_hit, known_split)), cold_term, false, nullptr, &dt, &li);
  IRBuilder<> callb(call_term);
  Value* called =
      callb.CreateCall(rt.local_range, {ctx, r.lo, r.hi, callb.getInt64(r.write ? 1 : 0)});
  cb.SetInsertPoint(cold_term);
  PHINode* cold_delta = cb.CreatePHI(i64, 2, "mmu.frame.cold");
  cold_delta->addIncoming(inline_delta, cold_head);
  cold_delta->addIncoming(called, call_term->getParent());
  b.SetInsertPoint(after->getFirstNonPHI());
  PHINode* d = b.CreatePHI(i64, 2, "mmu.frame.delta");
  d->addIncoming(block_delta, hot);
  d->addIncoming(cold_delta, cold_term->getParent());
  return d;
}

// frame_delta for a check that keeps its answer (J6): the run of frames the block entry gave
// it, with the epoch read before the checks (`epoch`). In that epoch the run holds, so the
// next check over it is compares: two arrays whose runs share a block (and its one entry) no
// longer send every other row's check to the runtime (matmul_tiled's tiles on the device).
Value* kept_frame_delta(IRBuilder<>& b, const LocalRange& r, Value* ctx, Value* epoch,
                        Value* epoch_ok, const Runtime& rt, DominatorTree& dt, LoopInfo& li) {
  Function* f = b.GetInsertBlock()->getParent();
  Type* i64 = b.getInt64Ty();
  KeptFrames kept{{entry_i64(f, 0), entry_i64(f, 0), entry_i64(f, 0)},
                  entry_i64(f, ~std::uint64_t{0})};
  Value* last = b.CreateSub(r.hi, b.getInt64(1));
  Value* in_kept = b.CreateAnd(b.CreateICmpEQ(b.CreateLoad(i64, kept.epoch), epoch),
                               b.CreateAnd(b.CreateICmpULT(r.lo, r.hi),
                                           in_kept_run(b, r.lo, last, kept.run)));
  Value* kept_delta = b.CreateLoad(i64, kept.run.delta);
  BasicBlock* head = b.GetInsertBlock();
  Instruction* miss =
      SplitBlockAndInsertIfThen(b.CreateNot(in_kept), &*b.GetInsertPoint(), false, nullptr, &dt, &li);
  IRBuilder<> mb(miss);
  Value* found = frame_delta(mb, r, ctx, epoch_ok, rt, dt, li);
  // The run the entry now holds, when it is the one the answer came from; else the range itself
  // (one over several blocks, which no one entry covers: a grid-stride loop's rest of its array).
  LocalProbe entry = emit_local_block_probe(mb, ctx, r.lo, last, r.write, epoch_ok);
  Value* keep = mb.CreateICmpNE(found, mb.getInt64(0));
  Value* entry_run = mb.CreateAnd(entry.hit, mb.CreateICmpEQ(entry.delta, found));
  keep_run(mb, kept.run, keep, mb.CreateSelect(entry_run, entry.run_lo, r.lo),
           mb.CreateSelect(entry_run, entry.run_len, mb.CreateSub(r.hi, r.lo)));
  mb.CreateStore(mb.CreateSelect(keep, found, mb.CreateLoad(i64, kept.run.delta)), kept.run.delta);
  mb.CreateStore(mb.CreateSelect(keep, epoch, mb.CreateLoad(i64, kept.epoch)), kept.epoch);
  BasicBlock* miss_end = mb.GetInsertBlock();
  b.SetInsertPoint(miss->getParent()->getSingleSuccessor()->getFirstNonPHI());
  PHINode* d = b.CreatePHI(i64, 2, "mmu.frame.kept");
  d->addIncoming(kept_delta, head);
  d->addIncoming(found, miss_end);
  return d;
}

// The device-frame version of loop l (J4), after version_loop gave it its in-place version:
// where every range lies in one contiguous run of device frames, a clone runs each access at
// process address + the run's delta, holding the shootdown protocol's `active` for the whole
// loop; otherwise the probed original runs. `pred_ok` is the loop's no-wrap predicate.
// With probed accesses too (`probed`: a gather's data-dependent load), the clone's accesses
// become HeldAccess entries (J5). Returns false where no clone was made.
bool version_local(Loop* l, Value* ctx, Value* pred_ok, std::vector<LocalRange> ranges,
                   const NestCheck* nest,
                   const std::vector<std::pair<Instruction*, Value*>>& probed,
                   std::vector<HeldAccess>& held_out, FrameVersion& out, const Runtime& rt,
                   DominatorTree& dt, LoopInfo& li, ScalarEvolution& se) {
  BasicBlock* check = l->getLoopPreheader();
  LLVMContext& c = check->getContext();
  Instruction* term = check->getTerminator();
  IRBuilder<> b(term);
  Type* i64 = b.getInt64Ty();
  Type* i64p = i64->getPointerTo();
  Value* epoch_ptr = load_ctx_field(b, ctx, ctx_offset::device_epoch, i64p);
  // The nest check's answer where it found every range in frames, else this entry's own.
  BasicBlock* head = check;
  Instruction* row = term;
  if (nest != nullptr && nest->frames != nullptr) {
    row = SplitBlockAndInsertIfThen(b.CreateNot(nest->frames), term, false, nullptr, &dt, &li);
    b.SetInsertPoint(row);
  }
  expand_bounds(ranges, se, li, row);
  Probe epochs = emit_epochs(b, ctx, AtomicOrdering::Acquire);
  Value* epoch = epochs.dev_epoch;
  Value* epoch_ok = epochs.epoch_ok;
  Value* all = pred_ok;
  std::vector<Value*> deltas;
  for (const LocalRange& r : ranges) {
    // A range whose accesses do not run in this entry (skip) takes a dummy delta, never used.
    Instruction* where = &*b.GetInsertPoint();
    Value* d = unless_skipped(where, r.skip, dt, li, [&](Instruction* at) -> Value* {
      if (r.invariant)  // the same range at every entry: the kept delta of this epoch, else checked
        return cached_check(at, epoch, r.lo, r.hi, dt, li, [&](Instruction* miss) {
          IRBuilder<> cb(miss);
          return frame_delta(cb, r, ctx, epoch_ok, rt, dt, li);
        });
      IRBuilder<> cb(at);
      return kept_frame_delta(cb, r, ctx, epoch, epoch_ok, rt, dt, li);
    });
    b.SetInsertPoint(where);
    deltas.push_back(d);
    all = b.CreateAnd(all, b.CreateICmpNE(d, b.getInt64(0)));
  }
  Value* used_epoch = epoch;
  if (row != term) {
    BasicBlock* row_end = row->getParent();
    b.SetInsertPoint(term);
    auto join = [&](Value* nested, Value* own, const char* name) {
      PHINode* p = b.CreatePHI(own->getType(), 2, name);
      p->addIncoming(nested, head);
      p->addIncoming(own, row_end);
      return p;
    };
    used_epoch = join(nest->epoch, epoch, "mmu.frame.epoch");
    all = join(pred_ok, all, "mmu.frame.ok");
    for (std::size_t i = 0; i < deltas.size(); ++i)
      deltas[i] = join(nest->deltas[i], deltas[i], "mmu.frame.delta");
  }
  Value* active = load_ctx_field(b, ctx, ctx_offset::active, i64p);
  Value* zero = b.getInt64(0);
  emit_publish(b, b.CreateSelect(all, used_epoch, zero), active);
  LoadInst* again = b.CreateAlignedLoad(i64, epoch_ptr, Align(8));
  again->setAtomic(AtomicOrdering::SequentiallyConsistent);
  Value* go = b.CreateAnd(all, b.CreateICmpEQ(again, used_epoch));
  b.CreateAlignedStore(b.CreateSelect(go, used_epoch, zero), active, Align(8))
      ->setAtomic(AtomicOrdering::Release);

  AllocaInst* held = nullptr;
  std::vector<KeptRun> kept_runs;  // per probed access
  if (!probed.empty()) {
    held = entry_alloca(check->getParent(), b.getInt1Ty());
    b.CreateStore(go, held);
    for (std::size_t i = 0; i < probed.size(); ++i) {
      Function* f = check->getParent();
      kept_runs.push_back({entry_i64(f, 0), entry_i64(f, 0), entry_i64(f, 0)});
      b.CreateStore(b.getInt64(0), kept_runs.back().len);  // emptied at every entry
    }
  }
  std::vector<BasicBlock*> original(l->blocks().begin(), l->blocks().end());
  ValueToValueMapTy& vmap = out.vmap;
  if (!version_loop(l, go, dt, li, se, vmap)) {  // cannot happen: the in-place version worked
    b.SetInsertPoint(term->getParent()->getTerminator());
    b.CreateAlignedStore(zero, active, Align(8))->setAtomic(AtomicOrdering::Release);
    return false;
  }
  out.deltas = deltas;
  out.epoch = used_epoch;
  out.held = held;
  out.kept_runs = kept_runs;
  if (!probed.empty()) {
    for (std::size_t i = 0; i < probed.size(); ++i)
      held_out.push_back({cast<Instruction>(vmap[probed[i].first]), nullptr, held, kept_runs[i]});
  }
  // The clone's accesses go to the frames.
  for (std::size_t i = 0; i < ranges.size(); ++i)
    for (Instruction* inst : ranges[i].insts) {
      auto* ci = cast<Instruction>(vmap[inst]);
      if (held != nullptr) {
        held_out.push_back({ci, deltas[i], held});
        continue;
      }
      unsigned index = isa<StoreInst>(ci) ? StoreInst::getPointerOperandIndex() : 0;
      Value* p = ci->getOperand(index);
      auto* pt = cast<PointerType>(p->getType());
      b.SetInsertPoint(ci);
      Value* bytes = b.CreateBitCast(p, Type::getInt8PtrTy(c, pt->getAddressSpace()));
      Value* moved = b.CreateGEP(b.getInt8Ty(), bytes, deltas[i], "mmu.frame");
      ci->setOperand(index, b.CreateBitCast(moved, pt));
    }
  // Every way out of the clone ends the grace period.
  SmallPtrSet<BasicBlock*, 16> clone;
  for (BasicBlock* bb : original) clone.insert(cast<BasicBlock>(vmap[bb]));
  std::vector<std::pair<BasicBlock*, BasicBlock*>> exits;
  for (BasicBlock* bb : clone)
    for (BasicBlock* succ : successors(bb))
      if (!clone.contains(succ)) exits.push_back({bb, succ});
  for (auto& [from, to] : exits) {
    BasicBlock* edge = SplitEdge(from, to, &dt, &li);
    b.SetInsertPoint(edge->getTerminator());
    b.CreateAlignedStore(zero, active, Align(8))->setAtomic(AtomicOrdering::Release);
  }
  return true;
}

// The delta of the range (group) that access `inst` of loop l belongs to, in the frame clone.
Value* range_delta(const FrameVersion& fv, const std::vector<LocalRange>& ranges,
                   const Instruction* inst) {
  for (std::size_t i = 0; i < ranges.size(); ++i)
    for (Instruction* r : ranges[i].insts)
      if (r == inst) return fv.deltas[i];
  return nullptr;
}

// J5, per access of a held frame loop: while the loop holds `active` (held), a ranged access runs
// at its range's delta and a probed one on the frame its block entry gives (no epoch check: the
// worker's TLB is the epoch's the loop published, and only this worker's own runtime calls,
// which come after an escape, change it); a probed access that finds no frame there ends the
// grace period first (the escape: active = 0, held = false), and from then on every access of
// the loop takes the full probe, which may run in place, fault or wait. The access stays in
// the probed arm, returned in `probed_out` for rewrite().
void rewrite_held(const HeldAccess& h, const DataLayout& dl,
                  std::vector<std::pair<Instruction*, Value*>>& probed_out) {
  Instruction* inst = h.inst;
  Function* f = inst->getFunction();
  LLVMContext& c = f->getContext();
  Value* ctx = ctx_of(*f);
  const unsigned index = isa<StoreInst>(inst) ? StoreInst::getPointerOperandIndex() : 0;
  Value* ptr = inst->getOperand(index);
  auto* pt = cast<PointerType>(ptr->getType());
  BasicBlock* head = inst->getParent();
  BasicBlock* probed_bb = head->splitBasicBlock(inst, "mmu.held.probed");
  BasicBlock* join = probed_bb->splitBasicBlock(inst->getNextNode(), "mmu.held.join");
  head->getTerminator()->eraseFromParent();
  auto* frame_bb = BasicBlock::Create(c, "mmu.held.frame", f, probed_bb);
  IRBuilder<> b(head);
  Type* i64 = b.getInt64Ty();
  Value* is_held = b.CreateLoad(b.getInt1Ty(), h.held);
  Value* delta = h.delta;
  if (delta != nullptr) {
    b.CreateCondBr(is_held, frame_bb, probed_bb);
  } else {
    bool write = !isa<LoadInst>(inst);
    Type* value_type = isa<LoadInst>(inst) ? inst->getType()
                       : isa<StoreInst>(inst) ? cast<StoreInst>(inst)->getValueOperand()->getType()
                       : isa<AtomicRMWInst>(inst) ? cast<AtomicRMWInst>(inst)->getValOperand()->getType()
                       : cast<AtomicCmpXchgInst>(inst)->getNewValOperand()->getType();
    Value* va = b.CreatePtrToInt(ptr, i64);
    const std::uint64_t span = probe_span(inst, dl.getTypeStoreSize(value_type));
    Value* last = span > 1 ? b.CreateAdd(va, ConstantInt::get(i64, span - 1)) : va;
    // In the run this access last found: no block entry to read.
    const KeptRun& kept = h.kept;
    Value* kept_lo = b.CreateLoad(i64, kept.lo);
    Value* kept_len = b.CreateLoad(i64, kept.len);
    Value* kept_delta = b.CreateLoad(i64, kept.delta);
    Value* in_kept = b.CreateAnd(b.CreateICmpULT(b.CreateSub(va, kept_lo), kept_len),
                                 b.CreateICmpULT(b.CreateSub(last, kept_lo), kept_len));
    auto* lookup = BasicBlock::Create(c, "mmu.held.lookup", f, probed_bb);
    b.CreateCondBr(b.CreateAnd(is_held, in_kept), frame_bb, lookup);
    b.SetInsertPoint(lookup);
    LocalProbe frame = emit_local_block_probe(b, ctx, va, last, write, b.getTrue());
    auto* escape = BasicBlock::Create(c, "mmu.held.escape", f, probed_bb);
    auto* keep_bb = BasicBlock::Create(c, "mmu.held.keep", f, probed_bb);
    b.CreateCondBr(b.CreateAnd(is_held, frame.hit), keep_bb, escape);
    b.SetInsertPoint(keep_bb);
    keep_joined(b, kept, frame.run_lo, frame.run_len, frame.delta);
    b.CreateBr(frame_bb);
    delta = PHINode::Create(i64, 2, "mmu.held.delta", frame_bb);
    cast<PHINode>(delta)->addIncoming(kept_delta, head);
    cast<PHINode>(delta)->addIncoming(frame.delta, keep_bb);
    IRBuilder<> e(escape);
    Value* active = load_ctx_field(e, ctx, ctx_offset::active, i64->getPointerTo());
    e.CreateAlignedStore(e.getInt64(0), active, Align(8))->setAtomic(AtomicOrdering::Release);
    e.CreateStore(e.getFalse(), h.held);
    e.CreateBr(probed_bb);
  }
  IRBuilder<> fb(frame_bb);
  Instruction* direct = inst->clone();
  Value* bytes = fb.CreateBitCast(ptr, Type::getInt8PtrTy(c, pt->getAddressSpace()));
  Value* moved = fb.CreateGEP(fb.getInt8Ty(), bytes, delta, "mmu.frame");
  direct->setOperand(index, fb.CreateBitCast(moved, pt));
  fb.Insert(direct);
  fb.CreateBr(join);
  if (!inst->getType()->isVoidTy()) {
    PHINode* phi = PHINode::Create(inst->getType(), 2, "mmu.held", &join->front());
    inst->replaceAllUsesWith(phi);
    phi->addIncoming(direct, frame_bb);
    phi->addIncoming(inst, probed_bb);
  }
  probed_out.push_back({inst, ptr});
}

}  // namespace hetmm::spirv::mmu
