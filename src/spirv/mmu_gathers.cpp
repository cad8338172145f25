// Gathers (J7, J8): prefetches for probed gathers, the scans that range a gather's index in
// place and on device frames, and the checks of a work-item loop around kernel loops.
#include "spirv/mmu_ir.hpp"

namespace hetmm::spirv::mmu {

std::optional<GatherIndex> gather_index(Value* ptr, Loop* l) {
  auto* gep = dyn_cast<GetElementPtrInst>(through_addrspace_casts(ptr));
  if (gep == nullptr || gep->getNumIndices() != 1 || !l->contains(gep)) return std::nullopt;
  Value* index = gep->idx_begin()->get();
  auto* ext = dyn_cast<CastInst>(index);
  if (ext != nullptr && (isa<ZExtInst>(ext) || isa<SExtInst>(ext))) index = ext->getOperand(0);
  else ext = nullptr;
  auto* load = dyn_cast<LoadInst>(index);
  if (load == nullptr || !load->isSimple() || !l->contains(load)) return std::nullopt;
  return GatherIndex{gep, ext, load};
}

void prefetch_gathered(Instruction* inst, Value* ptr, Loop* l,
                       const std::vector<std::pair<Instruction*, Value*>>& probed,
                       ValueToValueMapTy& vmap, PredicatedScalarEvolution& pse,
                       ScalarEvolution& se, SCEVExpander& expander, DominatorTree& dt,
                       LoopInfo& li, const FramePrefetch* frames) {
  constexpr std::int64_t kAhead = 16;  // iterations
  std::optional<GatherIndex> gathered = gather_index(ptr, l);
  if (!gathered) return;
  auto [gep, ext, load] = *gathered;
  // The index's load must be range-checked (direct in the in-place copy), not probed itself.
  if (!vmap.count(load) ||
      !vmap.count(gep) || (ext != nullptr && !vmap.count(ext)) ||
      std::any_of(probed.begin(), probed.end(), [&](auto& pr) { return pr.first == load; }))
    return;
  Value* q = load->getPointerOperand();
  auto* ar = dyn_cast<SCEVAddRecExpr>(pse.getSCEV(q));
  const SCEV* btc = pse.getBackedgeTakenCount();
  if (ar == nullptr || ar->getLoop() != l || !ar->isAffine() || isa<SCEVCouldNotCompute>(btc))
    return;
  auto* step = dyn_cast<SCEVConstant>(ar->getStepRecurrence(se));
  if (step == nullptr || step->getAPInt().getSExtValue() <= 0) return;
  auto* clone_header = dyn_cast<BasicBlock>(vmap[l->getHeader()]);
  Loop* fast = clone_header != nullptr ? li.getLoopFor(clone_header) : nullptr;
  if (fast == nullptr || fast->getLoopPreheader() == nullptr) return;
  Instruction* at = fast->getLoopPreheader()->getTerminator();
  Type* i64 = Type::getInt64Ty(inst->getContext());
  const SCEV* last = se.getPtrToIntExpr(ar->evaluateAtIteration(btc, se), i64);
  if (isa<SCEVCouldNotCompute>(last) || !expander.isSafeToExpandAt(last, at) ||
      !expander.isSafeToExpandAt(btc, at))
    return;
  Value* last_v = expander.expandCodeFor(last, i64, at);
  // Only loops long enough for prefetches to land ahead of most accesses: in a short one (a CSR
  // row of 16) the index ahead is clamped to the last, and reading it each time costs a load.
  Value* long_enough = IRBuilder<>(at).CreateICmpUGE(
      expander.expandCodeFor(btc, btc->getType(), at), ConstantInt::get(btc->getType(), 2 * kAhead));
  auto* cinst = cast<Instruction>(vmap[inst]);
  auto* cload = cast<LoadInst>(vmap[load]);
  Value* index_delta = nullptr;
  if (frames != nullptr) {
    index_delta = frames->delta_of(load);
    if (index_delta == nullptr) return;
  }
  IRBuilder<> b(cinst);
  // The loop-invariant test alone first (a branch on a register where the loop is short), the
  // held flag inside.
  b.SetInsertPoint(SplitBlockAndInsertIfThen(long_enough, cinst, false, nullptr, &dt, &li));
  if (frames != nullptr)
    b.SetInsertPoint(SplitBlockAndInsertIfThen(b.CreateLoad(b.getInt1Ty(), frames->held),
                                               &*b.GetInsertPoint(), false, nullptr, &dt, &li));
  Value* here = b.CreatePtrToInt(cload->getPointerOperand(), i64);
  Value* ahead = b.CreateAdd(here, b.getInt64(kAhead * step->getAPInt().getSExtValue()));
  ahead = b.CreateSelect(b.CreateICmpULE(ahead, last_v), ahead, here);
  if (index_delta != nullptr) ahead = b.CreateAdd(ahead, index_delta);
  LoadInst* next = b.CreateAlignedLoad(cload->getType(),
                                       b.CreateIntToPtr(ahead, cload->getPointerOperandType()),
                                       cload->getAlign(), "mmu.ahead");
  Value* next_index = next;
  if (ext != nullptr) {
    Instruction* e = cast<Instruction>(vmap[ext])->clone();
    e->setOperand(0, next);
    next_index = b.Insert(e);
  }
  Instruction* g = cast<Instruction>(vmap[gep])->clone();
  g->setOperand(g->getNumOperands() - 1, next_index);
  b.Insert(g);
  Value* element = b.CreatePtrToInt(g, i64);
  if (frames != nullptr) {
    // On the access's kept run when the element lies in it, else from its block entry.
    const KeptRun& k = *frames->kept;
    Value* kept_delta = b.CreateLoad(i64, k.delta);
    Value* in_kept = b.CreateICmpULT(b.CreateSub(element, b.CreateLoad(i64, k.lo)),
                                     b.CreateLoad(i64, k.len));
    BasicBlock* kept_head = b.GetInsertBlock();
    Instruction* lookup_term =
        SplitBlockAndInsertIfThen(b.CreateNot(in_kept), &*b.GetInsertPoint(), false, nullptr, &dt, &li);
    IRBuilder<> lb(lookup_term);
    LocalProbe entry = emit_local_block_probe(lb, frames->ctx, element, element, false, lb.getTrue());
    Value* looked_up = lb.CreateSelect(entry.hit, entry.delta, lb.getInt64(0));
    b.SetInsertPoint(lookup_term->getParent()->getSingleSuccessor()->getFirstNonPHI());
    PHINode* d = b.CreatePHI(i64, 2, "mmu.ahead.delta");
    d->addIncoming(kept_delta, kept_head);
    d->addIncoming(looked_up, lookup_term->getParent());
    element = b.CreateAdd(element, d);
  }
  Value* target = b.CreateIntToPtr(element, b.getInt8PtrTy());
  b.CreateIntrinsic(Intrinsic::prefetch, {b.getInt8PtrTy()},
                    {target, b.getInt32(0), b.getInt32(3), b.getInt32(1)});
}

// A loop before `then` (a terminator, left as the last block's) over `count` (>= 1) elements
// like `like`'s (type, alignment, address space) at first, first + step, ...: their least and
// greatest value, signed or not. LLVM vectorises it: scans are short (a CSR row: 16), so one
// vector a step with its tail masked (masked lanes read nothing), not the 32-wide interleaved
// body that a row of 16 would skip for the scalar remainder. Registered in `li`; the caller
// recalculates the dominator tree.
std::pair<Value*, Value*> emit_scan(Instruction* then, Value* first, std::int64_t step,
                                    Value* count, LoadInst* like, bool is_signed, LoopInfo& li) {
  BasicBlock* entry = then->getParent();
  Loop* parent = li.getLoopFor(entry);
  BasicBlock* body = SplitBlock(entry, then, static_cast<DominatorTree*>(nullptr), nullptr,
                                nullptr, "mmu.scan");
  BasicBlock* done = SplitBlock(body, then, static_cast<DominatorTree*>(nullptr), nullptr,
                                nullptr, "mmu.scan.done");
  body->getTerminator()->eraseFromParent();
  auto* t = cast<IntegerType>(like->getType());
  const unsigned as = like->getPointerAddressSpace();
  IRBuilder<> eb(entry->getTerminator());
  Type* i64 = eb.getInt64Ty();
  Value* base = eb.CreateIntToPtr(first, eb.getInt8PtrTy(as));
  IRBuilder<> sb(body);
  PHINode* i = sb.CreatePHI(i64, 2, "mmu.scan.i");
  PHINode* lo = sb.CreatePHI(t, 2, "mmu.scan.min");
  PHINode* hi = sb.CreatePHI(t, 2, "mmu.scan.max");
  Value* p = sb.CreateGEP(sb.getInt8Ty(), base, sb.CreateMul(i, sb.getInt64(step)));
  Value* v = sb.CreateAlignedLoad(t, sb.CreateBitCast(p, t->getPointerTo(as)), like->getAlign(),
                                  "mmu.scan.index");
  Value* next_lo = sb.CreateBinaryIntrinsic(is_signed ? Intrinsic::smin : Intrinsic::umin, lo, v);
  Value* next_hi = sb.CreateBinaryIntrinsic(is_signed ? Intrinsic::smax : Intrinsic::umax, hi, v);
  // An exact count (not `next <= last`, which SCEV cannot count: last might be the largest
  // i64) for the vectoriser.
  Value* next = sb.CreateNUWAdd(i, sb.getInt64(1));
  BranchInst* latch = sb.CreateCondBr(sb.CreateICmpNE(next, count), body, done);
  LLVMContext& c = then->getContext();
  auto option = [&](const char* name, Metadata* value) -> Metadata* {
    return MDNode::get(c, {MDString::get(c, name), value});
  };
  Metadata* one = ConstantAsMetadata::get(sb.getInt32(1));
  Metadata* yes = ConstantAsMetadata::get(sb.getTrue());
  MDNode* id = MDNode::getDistinct(c, {nullptr, option("llvm.loop.vectorize.enable", yes),
                                       option("llvm.loop.interleave.count", one),
                                       option("llvm.loop.vectorize.predicate.enable", yes)});
  id->replaceOperandWith(0, id);
  latch->setMetadata(LLVMContext::MD_loop, id);
  const unsigned bits = t->getBitWidth();
  i->addIncoming(sb.getInt64(0), entry);
  i->addIncoming(next, body);
  lo->addIncoming(ConstantInt::get(t, is_signed ? APInt::getSignedMaxValue(bits)
                                                : APInt::getMaxValue(bits)),
                  entry);
  lo->addIncoming(next_lo, body);
  hi->addIncoming(ConstantInt::get(t, is_signed ? APInt::getSignedMinValue(bits)
                                                : APInt::getMinValue(bits)),
                  entry);
  hi->addIncoming(next_hi, body);
  register_one_block_loop(body, done, parent, li);
  return {next_lo, next_hi};
}

// The least and greatest element a gather of `p` reads where its index lies in [min, max]:
// process addresses [lo, hi).
std::pair<Value*, Value*> gathered_range(IRBuilder<>& b, const ScanPlan& p, Value* min, Value* max) {
  const DataLayout& dl = b.GetInsertBlock()->getModule()->getDataLayout();
  Type* i64 = b.getInt64Ty();
  auto widen = [&](Value* v) { return p.signed_index() ? b.CreateSExt(v, i64) : b.CreateZExt(v, i64); };
  Value* base = b.CreatePtrToInt(p.index.gep->getPointerOperand(), i64);
  Value* elt = b.getInt64(dl.getTypeAllocSize(p.index.gep->getSourceElementType()));
  Value* lo = b.CreateAdd(base, b.CreateMul(widen(min), elt));
  Value* hi = b.CreateAdd(b.CreateAdd(base, b.CreateMul(widen(max), elt)),
                          b.getInt64(dl.getTypeStoreSize(p.inst->getType())));
  return {lo, hi};
}

// Before `at`, and-ed into `ok`: the check of the elements plan's gather reads when its index
// lies in [min, max] (J7), kept where it passed, the runtime's answer over several blocks too.
Value* check_gathered(Instruction* at, const ScanPlan& p, Value* min, Value* max, Value* ok,
                      Value* ctx, Value* epoch_ok, const Runtime& rt, DominatorTree& dt,
                      LoopInfo& li) {
  IRBuilder<> b(at);
  auto [lo, hi] = gathered_range(b, p, min, max);
  KeptRun kept = kept_in_place(at->getFunction());
  return emit_range_check(at, ctx, epoch_ok, lo, hi, false, ok, rt, dt, li, &kept, true);
}

// The gathers of loop l a scan can range, or none where the loop could change an index.
std::vector<ScanPlan> plan_scans(Loop* l, const std::vector<std::pair<Instruction*, Value*>>& probed,
                                 const std::vector<AccessRange>& ranges,
                                 PredicatedScalarEvolution& pse, ScalarEvolution& se) {
  auto ranged = [&](const Instruction* i) {
    return std::any_of(ranges.begin(), ranges.end(), [&](const AccessRange& r) { return r.inst == i; });
  };
  for (BasicBlock* bb : l->blocks())
    for (Instruction& i : *bb) {
      if (auto* st = dyn_cast<StoreInst>(&i); st != nullptr && needs_mmu(st->getPointerOperand()) &&
                                              !ranged(st))
        return {};
      if (isa<AtomicRMWInst>(i) || isa<AtomicCmpXchgInst>(i) || isa<FenceInst>(i)) return {};
      if (auto* cb = dyn_cast<CallBase>(&i)) {
        Function* fn = cb->getCalledFunction();
        if (fn == nullptr || !fn->isIntrinsic() || isa<MemIntrinsic>(cb)) return {};
      }
    }
  if (isa<SCEVCouldNotCompute>(pse.getBackedgeTakenCount())) return {};
  std::vector<ScanPlan> plans;
  for (auto& [inst, ptr] : probed) {
    auto* load = dyn_cast<LoadInst>(inst);
    if (load == nullptr || !load->isSimple()) continue;
    std::optional<GatherIndex> g = gather_index(ptr, l);
    if (!g || !ranged(g->load) || !l->isLoopInvariant(g->gep->getPointerOperand())) continue;
    // At most 32 bits: base + index * element size cannot wrap in 64.
    Type* t = g->load->getType();
    if (!t->isIntegerTy() || t->getIntegerBitWidth() > 32) continue;
    auto* ar = dyn_cast<SCEVAddRecExpr>(pse.getSCEV(g->load->getPointerOperand()));
    if (ar == nullptr || ar->getLoop() != l || !ar->isAffine()) continue;
    auto* step = dyn_cast<SCEVConstant>(ar->getStepRecurrence(se));
    if (step == nullptr || step->getAPInt().getSExtValue() <= 0) continue;
    plans.push_back({inst, *g, ar});
  }
  return plans;
}

std::map<Loop*, ItemLoop> item_loop_checks(
    const std::vector<std::pair<Instruction*, Value*>>& work, Value* ctx, const Runtime& rt,
    ScalarEvolution& se, SCEVExpander& expander, DominatorTree& dt, LoopInfo& li,
    std::map<Instruction*, Value*>& checks, std::map<Instruction*, ItemFrames>& item_frames) {
  std::map<Loop*, ItemLoop> items;
  std::vector<Loop*> order;  // as the accesses meet them: the same code every compile
  if (work.empty()) return items;
  const DataLayout& dl = work.front().first->getModule()->getDataLayout();
  Type* i64 = Type::getInt64Ty(work.front().first->getContext());
  for (auto& [inst, ptr] : work) {
    Loop* w = li.getLoopFor(inst->getParent());
    if (w == nullptr || w->isInnermost() || !work_item_mark(*w)) continue;
    auto* load = dyn_cast<LoadInst>(inst);
    auto* store = dyn_cast<StoreInst>(inst);
    if ((load == nullptr || !load->isSimple()) && (store == nullptr || !store->isSimple())) continue;
    auto [it, fresh] = items.try_emplace(w);
    if (fresh) order.push_back(w);
    ItemLoop& item = it->second;
    if (fresh && (w->getLoopPreheader() != nullptr ||
                  InsertPreheaderForLoop(w, &dt, &li, nullptr, false) != nullptr)) {
      item.loop = w;
      item.pse = std::make_unique<PredicatedScalarEvolution>(se, *w);
    }
    if (item.loop == nullptr) continue;
    PredicatedScalarEvolution& pse = *item.pse;
    const SCEV* btc = pse.getBackedgeTakenCount();
    if (isa<SCEVCouldNotCompute>(btc)) continue;
    const SCEV* at = address_scev(se, ptr);
    const SCEV *first = at, *last = at;
    if (!se.isLoopInvariant(at, w)) {
      SmallPtrSet<const SCEVPredicate*, 4> assumed;
      const SCEVAddRecExpr* ar = dyn_cast<SCEVAddRecExpr>(at);
      if (ar == nullptr) ar = se.convertSCEVToAddRecWithPredicates(at, w, assumed);
      if (ar == nullptr || ar->getLoop() != w || !ar->isAffine()) continue;
      for (const SCEVPredicate* p : assumed) pse.addPredicate(*p);
      first = ar->getStart();
      last = ar->evaluateAtIteration(btc, se);
    }
    first = se.getPtrToIntExpr(first, i64);
    last = se.getPtrToIntExpr(last, i64);
    if (isa<SCEVCouldNotCompute>(first) || isa<SCEVCouldNotCompute>(last)) continue;
    Type* t = store != nullptr ? store->getValueOperand()->getType() : inst->getType();
    item.ranges.push_back({inst, first, last, dl.getTypeStoreSize(t), se.getPointerBase(at), true});
  }
  for (Loop* w : order) {
    ItemLoop& item = items[w];
    if (item.loop == nullptr || item.ranges.empty()) continue;
    Instruction* where = w->getLoopPreheader()->getTerminator();
    const std::vector<RangeGroup> groups = group_ranges(se, item.ranges);
    bool safe = true;
    for (const RangeGroup& g : groups)
      safe = safe && expander.isSafeToExpandAt(g.lo, where) && expander.isSafeToExpandAt(g.hi, where);
    if (!safe) {
      item.ranges.clear();
      continue;
    }
    IRBuilder<> b(where);
    Value* ok = b.getTrue();
    if (!item.pse->getPredicate().isAlwaysTrue())
      ok = b.CreateNot(expander.expandCodeForPredicate(&item.pse->getPredicate(), where));
    std::vector<LocalRange> spans;
    for (const RangeGroup& g : groups)
      spans.push_back({g.insts, expander.expandCodeFor(g.lo, i64, where),
                       expander.expandCodeFor(g.hi, i64, where), g.write});
    b.SetInsertPoint(where);
    Probe epochs = emit_epochs(b, ctx);
    item.ok = emit_in_place_union(where, ctx, epochs, spans, ok, rt, dt, li, "mmu.items.inplace");
    for (const AccessRange& r : item.ranges) checks[r.inst] = item.ok;
    // On device: where they are not in place, each group's run of frames, found in an epoch
    // read (acquire) before the block entries, as a loop's frame check does (J4). The
    // runtime may be called here: nothing holds `active` yet.
    {
      BasicBlock* head = where->getParent();
      Instruction* at =
          SplitBlockAndInsertIfThen(IRBuilder<>(where).CreateNot(item.ok), where, false, nullptr, &dt, &li);
      IRBuilder<> fb(at);
      Probe frame_epochs = emit_epochs(fb, ctx, AtomicOrdering::Acquire);
      Value* epoch = frame_epochs.dev_epoch;
      Value* epoch_ok = frame_epochs.epoch_ok;
      Value* all = ok;
      std::vector<Value*> deltas;
      for (const LocalRange& r : spans) {
        Value* d = frame_delta(fb, r, ctx, epoch_ok, rt, dt, li);
        deltas.push_back(d);
        all = fb.CreateAnd(all, fb.CreateICmpNE(d, fb.getInt64(0)));
      }
      BasicBlock* found = fb.GetInsertBlock();
      IRBuilder<> jb(where);
      auto join = [&](Value* v, Value* none, const char* name) {
        PHINode* phi = jb.CreatePHI(v->getType(), 2, name);
        phi->addIncoming(none, head);
        phi->addIncoming(v, found);
        return phi;
      };
      Value* frames_ok = join(all, jb.getFalse(), "mmu.items.frames");
      Value* used_epoch = join(epoch, jb.getInt64(0), "mmu.items.epoch");
      for (std::size_t g = 0; g < spans.size(); ++g) {
        Value* delta = join(deltas[g], jb.getInt64(0), "mmu.items.delta");
        for (Instruction* inst : spans[g].insts) item_frames[inst] = {frames_ok, delta, used_epoch};
      }
    }
  }
  return items;
}

// The least and greatest value over the group of `load`, a load of the work-item loop's checked
// ranges (J8), emitted once in the loop's preheader; valid where item.ok holds. Null where the
// load cannot be scanned.
std::optional<std::pair<Value*, Value*>> scan_item_load(ItemLoop& item, LoadInst* load,
                                                        bool is_signed, ScalarEvolution& se,
                                                        SCEVExpander& expander,
                                                        DominatorTree& dt, LoopInfo& li) {
  if (item.ok == nullptr) return std::nullopt;
  for (const ItemLoop::Scan& s : item.scans)
    if (s.load == load && s.is_signed == is_signed) return std::make_pair(s.min, s.max);
  Type* t = load->getType();
  if (!t->isIntegerTy() || t->getIntegerBitWidth() > 32 ||
      std::none_of(item.ranges.begin(), item.ranges.end(),
                   [&](const AccessRange& r) { return r.inst == load; }))
    return std::nullopt;
  const auto* ar = dyn_cast<SCEVAddRecExpr>(item.pse->getSCEV(load->getPointerOperand()));
  const SCEV* btc = item.pse->getBackedgeTakenCount();
  if (ar == nullptr || ar->getLoop() != item.loop || !ar->isAffine()) return std::nullopt;
  const auto* step = dyn_cast<SCEVConstant>(ar->getStepRecurrence(se));
  if (step == nullptr || step->getAPInt().getSExtValue() <= 0) return std::nullopt;
  Instruction* where = item.loop->getLoopPreheader()->getTerminator();
  Type* i64 = Type::getInt64Ty(load->getContext());
  const SCEV* first = se.getPtrToIntExpr(ar->getStart(), i64);
  if (isa<SCEVCouldNotCompute>(first) || !expander.isSafeToExpandAt(first, where) ||
      !expander.isSafeToExpandAt(btc, where))
    return std::nullopt;
  IRBuilder<> b(where);
  Value* first_v = expander.expandCodeFor(first, i64, where);
  Value* count = b.CreateAdd(b.CreateZExtOrTrunc(expander.expandCodeFor(btc, btc->getType(), where), i64),
                             b.getInt64(1));
  BasicBlock* head = where->getParent();
  Instruction* then = SplitBlockAndInsertIfThen(item.ok, where, false, nullptr, &dt, &li);
  auto [lo, hi] = emit_scan(then, first_v, step->getAPInt().getSExtValue(), count, load,
                            is_signed, li);
  dt.recalculate(*where->getFunction());
  b.SetInsertPoint(where);
  PHINode* min = b.CreatePHI(t, 2, "mmu.items.min");
  min->addIncoming(Constant::getNullValue(t), head);
  min->addIncoming(lo, then->getParent());
  PHINode* max = b.CreatePHI(t, 2, "mmu.items.max");
  max->addIncoming(Constant::getNullValue(t), head);
  max->addIncoming(hi, then->getParent());
  item.scans.push_back({load, is_signed, min, max});
  return std::make_pair(static_cast<Value*>(min), static_cast<Value*>(max));
}

// J7 for a whole nest: where the nest check passed in place, the union of a gather's index
// range over the group (its range group's span, just checked in place) is scanned once, and the
// gathers' ranges checked: every entry of the loop in that group then runs the plain copy without
// a scan of its own. The nest is a run of joined groups (4096 CSR rows, 64K indices: 8
// instructions a row for the scan, whose reads bring the indices into the cache for the rows);
// spans of more than kNestScanMax indices are left to the entries' scans.
Value* nest_gathers(const NestCheck& n, const std::vector<RangeGroup>& groups,
                    const std::vector<LocalRange>& spans, const std::vector<ScanPlan>& scans,
                    Value* ctx, const Runtime& rt, const Probe& epochs, DominatorTree& dt,
                    LoopInfo& li) {
  constexpr std::uint64_t kNestScanMax = std::uint64_t{1} << 18;
  Instruction* where = cast<Instruction>(n.in_place)->getParent()->getTerminator();
  Function* f = where->getFunction();
  const DataLayout& dl = f->getParent()->getDataLayout();
  IRBuilder<> b(where);
  // Each gather's index span, scanned element by element (naturally aligned indices: every one
  // the loop reads lies on the span's grid).
  struct Span {
    std::size_t plan;
    Value* lo;
    Value* count;
  };
  std::vector<Span> found;
  Value* go = n.in_place;
  for (std::size_t k = 0; k < scans.size(); ++k) {
    LoadInst* index = scans[k].index.load;
    const std::uint64_t size = dl.getTypeStoreSize(index->getType());
    if (index->getAlign().value() < size) return nullptr;
    auto g = std::find_if(groups.begin(), groups.end(), [&](const RangeGroup& r) {
      return !r.write && std::find(r.insts.begin(), r.insts.end(), index) != r.insts.end();
    });
    if (g == groups.end()) return nullptr;
    const LocalRange& span = spans[static_cast<std::size_t>(g - groups.begin())];
    if (!isPowerOf2_64(size)) return nullptr;
    Value* count = b.CreateLShr(b.CreateSub(span.hi, span.lo), Log2_64(size));
    go = b.CreateAnd(go, b.CreateICmpULE(count, b.getInt64(kNestScanMax)));
    go = b.CreateAnd(go, b.CreateICmpNE(count, b.getInt64(0)));
    found.push_back({k, span.lo, count});
  }
  BasicBlock* head = where->getParent();
  Instruction* then = SplitBlockAndInsertIfThen(go, where, false, nullptr, &dt, &li);
  std::vector<std::pair<Value*, Value*>> bounds;
  for (const Span& sp : found) {
    const ScanPlan& p = scans[sp.plan];
    bounds.push_back(emit_scan(then, sp.lo, static_cast<std::int64_t>(dl.getTypeStoreSize(p.index.load->getType())),
                               sp.count, p.index.load, p.signed_index(), li));
  }
  dt.recalculate(*f);
  IRBuilder<> cb(then);
  Value* ok = cb.getTrue();
  for (std::size_t k = 0; k < found.size(); ++k)
    ok = check_gathered(then, scans[found[k].plan], bounds[k].first, bounds[k].second, ok, ctx,
                        epochs.epoch_ok, rt, dt, li);
  b.SetInsertPoint(where);
  PHINode* result = b.CreatePHI(b.getInt1Ty(), 2, "mmu.nest.gathers");
  result->addIncoming(b.getFalse(), head);
  result->addIncoming(ok, then->getParent());
  return result;
}

namespace {

// A loop entry of more than kScanMax iterations probes instead: its index read twice would cost
// more than the probes it saves.
constexpr std::uint64_t kScanMax = 4096;

}  // namespace

// Whether the loop's iteration count, the plans' index starts and its stores' bounds can be
// computed at `at`.
bool scans_expandable(Instruction* at, const std::vector<ScanPlan>& plans,
                      const std::vector<AccessRange>& ranges, PredicatedScalarEvolution& pse,
                      SCEVExpander& expander) {
  bool safe = expander.isSafeToExpandAt(pse.getBackedgeTakenCount(), at);
  for (const ScanPlan& p : plans) safe = safe && expander.isSafeToExpandAt(p.at->getStart(), at);
  for (const AccessRange& r : ranges)
    if (isa<StoreInst>(r.inst))
      safe = safe && expander.isSafeToExpandAt(r.first, at) && expander.isSafeToExpandAt(r.last, at);
  return safe;
}

// The indices of `plans` and whether to scan them, computed at `at` (scans_expandable).
IndexScans plan_index_scans(Instruction* at, const std::vector<ScanPlan>& plans,
                            const std::vector<AccessRange>& ranges, PredicatedScalarEvolution& pse,
                            ScalarEvolution& se, SCEVExpander& expander) {
  const DataLayout& dl = at->getModule()->getDataLayout();
  IRBuilder<> b(at);
  Type* i64 = b.getInt64Ty();
  const SCEV* btc = pse.getBackedgeTakenCount();
  Value* trips = b.CreateZExtOrTrunc(expander.expandCodeFor(btc, btc->getType(), at), i64);
  IndexScans out;
  out.count = b.CreateAdd(trips, b.getInt64(1));
  out.go = b.CreateICmpULT(trips, b.getInt64(kScanMax));
  for (const ScanPlan& p : plans) {
    const bool is_signed = p.signed_index();
    auto it = std::find_if(out.indices.begin(), out.indices.end(), [&](const ScannedIndex& x) {
      return x.load == p.index.load && x.is_signed == is_signed;
    });
    if (it == out.indices.end()) {
      ScannedIndex x{p.index.load, is_signed};
      x.first = expander.expandCodeFor(se.getPtrToIntExpr(p.at->getStart(), i64), i64, at);
      x.step = cast<SCEVConstant>(p.at->getStepRecurrence(se))->getAPInt().getSExtValue();
      out.indices.push_back(x);
      it = out.indices.end() - 1;
    }
    out.index_of.push_back(static_cast<std::size_t>(it - out.indices.begin()));
  }
  // The loop's stores must lie outside every index's range.
  for (const AccessRange& w : ranges) {
    if (!isa<StoreInst>(w.inst)) continue;
    Value* a = expander.expandCodeFor(se.getPtrToIntExpr(w.first, i64), i64, at);
    Value* z = expander.expandCodeFor(se.getPtrToIntExpr(w.last, i64), i64, at);
    Value* lo = b.CreateBinaryIntrinsic(Intrinsic::umin, a, z);
    Value* hi = b.CreateAdd(b.CreateBinaryIntrinsic(Intrinsic::umax, a, z), b.getInt64(w.bytes));
    for (const ScannedIndex& x : out.indices) {
      Value* last = b.CreateAdd(x.first, b.CreateMul(trips, b.getInt64(x.step)));
      Value* end = b.CreateAdd(last, b.getInt64(dl.getTypeStoreSize(x.load->getType())));
      out.go = b.CreateAnd(out.go, b.CreateOr(b.CreateICmpULE(end, lo), b.CreateICmpULE(hi, x.first)));
    }
  }
  return out;
}

// The scans and checks of J7 in the preheader of `fast` (loop l's in-place copy): whether every
// planned gather's range passed, or null where they cannot be emitted. Every entry of an epoch
// in which a check failed (a gather into device memory) probes instead: no scan and no call
// each time.
Value* scan_gathers(Loop* fast, const std::vector<ScanPlan>& plans,
                    const std::vector<AccessRange>& ranges, Value* ctx, const Runtime& rt,
                    PredicatedScalarEvolution& pse, ScalarEvolution& se, SCEVExpander& expander,
                    DominatorTree& dt, LoopInfo& li, Value* nest_ok) {
  BasicBlock* pre = fast->getLoopPreheader();
  if (pre == nullptr) return nullptr;
  Instruction* at = pre->getTerminator();
  Function* f = pre->getParent();
  Type* i64 = Type::getInt64Ty(f->getContext());
  if (!scans_expandable(at, plans, ranges, pse, expander)) return nullptr;
  // Where the nest's scan covered this entry (nest_gathers): nothing else to compute.
  Instruction* entry_at = at;
  BasicBlock* entry_head = at->getParent();
  if (nest_ok != nullptr)
    at = SplitBlockAndInsertIfThen(IRBuilder<>(at).CreateNot(nest_ok), at, false, nullptr, &dt, &li);

  IndexScans scans = plan_index_scans(at, plans, ranges, pse, se, expander);
  IRBuilder<> b(at);
  Probe epochs = emit_epochs(b, ctx);
  AllocaInst* failed = entry_i64(f, ~std::uint64_t{0});
  Value* go = b.CreateAnd(scans.go, b.CreateICmpNE(b.CreateLoad(i64, failed), epochs.dev_epoch));
  BasicBlock* head = at->getParent();
  Instruction* then = SplitBlockAndInsertIfThen(go, at, false, nullptr, &dt, &li);
  for (ScannedIndex& x : scans.indices)
    std::tie(x.min, x.max) = emit_scan(then, x.first, x.step, scans.count, x.load, x.is_signed, li);
  dt.recalculate(*f);
  IRBuilder<> cb(then);
  Value* ok = cb.getTrue();
  for (std::size_t k = 0; k < plans.size(); ++k) {
    const ScannedIndex& x = scans.indices[scans.index_of[k]];
    ok = check_gathered(then, plans[k], x.min, x.max, ok, ctx, epochs.epoch_ok, rt, dt, li);
  }
  cb.SetInsertPoint(then);
  cb.CreateStore(cb.CreateSelect(ok, cb.CreateLoad(i64, failed), epochs.dev_epoch), failed);
  IRBuilder<> ab(at);
  PHINode* result = ab.CreatePHI(ab.getInt1Ty(), 2, "mmu.scan.ok");
  result->addIncoming(ab.getFalse(), head);
  result->addIncoming(ok, then->getParent());
  if (nest_ok == nullptr) return result;
  IRBuilder<> eb(entry_at);
  PHINode* either = eb.CreatePHI(eb.getInt1Ty(), 2, "mmu.scan.nest");
  either->addIncoming(eb.getTrue(), entry_head);
  either->addIncoming(result, at->getParent());
  return either;
}

// J7 in device frames. The held clone (J5) of a loop whose every probed access is a planned
// gather scans, while it holds `active`, each index where its range's frames are (the index is
// a ranged access: it reads what the clone will), and looks up the gathered range
// [&base[min], &base[max]] in the run of frames it last found in this epoch, else in the
// worker's block entries, block by block (emit_frame_run_probe): where it lies in one run of
// frames, a copy of the clone of its own runs with every access on its frame and no escape,
// and vectorises. No runtime call: under `active` the worker's TLB must stay the published
// epoch's (J5); a range the entries do not cover runs the held clone, whose probes fill them
// for the next entry.
// Unlike in place (J1), an index that a racing writer changed after the scan must not reach a
// frame outside the checked run (another buffer's data, or a frame since reused): each gather
// clamps its address to the run. OpenCL gives a racing read no defined value; it may read a
// wrong element of the run, never another buffer's memory.
// An entry of an epoch in which the entries said the range is in place (a gather of host data
// from a loop on the device's) skips the scan.
void scan_frame_gathers(FrameVersion& fv, Loop* l, const std::vector<ScanPlan>& plans,
                        const std::vector<LocalRange>& local, const std::vector<AccessRange>& ranges,
                        Value* ctx, PredicatedScalarEvolution& pse, ScalarEvolution& se,
                        SCEVExpander& expander, DominatorTree& dt, LoopInfo& li) {
  auto* header = dyn_cast_or_null<BasicBlock>(fv.vmap.lookup(l->getHeader()));
  Loop* held = header != nullptr ? li.getLoopFor(header) : nullptr;
  if (held == nullptr || held->getHeader() != header || held->getLoopPreheader() == nullptr)
    return;
  for (const ScanPlan& p : plans)
    if (range_delta(fv, local, p.index.load) == nullptr) return;
  Instruction* at = held->getLoopPreheader()->getTerminator();
  if (!scans_expandable(at, plans, ranges, pse, expander)) return;
  Function* f = at->getFunction();
  LLVMContext& c = f->getContext();
  Type* i64 = Type::getInt64Ty(c);
  IndexScans scans = plan_index_scans(at, plans, ranges, pse, se, expander);
  IRBuilder<> b(at);
  AllocaInst* in_place = entry_i64(f, ~std::uint64_t{0});  // the epoch that found one in place
  Value* go = b.CreateAnd(scans.go, b.CreateICmpNE(b.CreateLoad(i64, in_place), fv.epoch));
  BasicBlock* head = at->getParent();
  Instruction* then = SplitBlockAndInsertIfThen(go, at, false, nullptr, &dt, &li);
  for (ScannedIndex& x : scans.indices) {
    Value* first = IRBuilder<>(then).CreateAdd(x.first, range_delta(fv, local, x.load));
    std::tie(x.min, x.max) = emit_scan(then, first, x.step, scans.count, x.load, x.is_signed, li);
  }
  dt.recalculate(*f);
  // Each gathered range in the run of frames this gather's check last found in this epoch: two
  // compares; else the block entries. The copy then reads at the kept run's delta and clamps to
  // it, values from earlier entries: its gathers' addresses wait for the index's loads only, not
  // for the scan and a block entry's loads behind it (a short CSR row's FMA chain overlaps the
  // next row's gathers, as in place). The scan's answer is a branch, which the core predicts.
  Value* ok = IRBuilder<>(then).getTrue();
  std::vector<KeptFrames> kept;
  for (std::size_t k = 0; k < plans.size(); ++k) {
    kept.push_back({{entry_i64(f, 0), entry_i64(f, 0), entry_i64(f, 0)},
                    entry_i64(f, ~std::uint64_t{0})});
    const KeptFrames& kf = kept.back();
    const ScannedIndex& x = scans.indices[scans.index_of[k]];
    IRBuilder<> cb(then);
    auto [lo, hi] = gathered_range(cb, plans[k], x.min, x.max);
    Value* last = cb.CreateSub(hi, cb.getInt64(1));
    Value* in_kept = cb.CreateAnd(cb.CreateICmpEQ(cb.CreateLoad(i64, kf.epoch), fv.epoch),
                                  cb.CreateAnd(cb.CreateICmpULT(lo, hi), in_kept_run(cb, lo, last, kf.run)));
    BasicBlock* kept_head = then->getParent();
    Instruction* miss = SplitBlockAndInsertIfThen(cb.CreateNot(in_kept), then, false, nullptr, &dt, &li);
    IRBuilder<> mb(miss);
    FrameRangeProbe probe = emit_frame_run_probe(mb, ctx, lo, last, false, dt, li);
    Value* hit = mb.CreateAnd(probe.both, probe.same_delta);
    auto keep = [&](AllocaInst* slot, Value* v) {
      mb.CreateStore(mb.CreateSelect(hit, v, mb.CreateLoad(i64, slot)), slot);
    };
    keep(kf.run.lo, probe.run_lo);
    keep(kf.run.len, mb.CreateSub(probe.run_end, probe.run_lo));
    keep(kf.run.delta, probe.delta);
    keep(kf.epoch, fv.epoch);
    // Host data gathered from a loop on the device's (the entries say so): no scan this epoch.
    mb.CreateStore(mb.CreateSelect(probe.in_place, fv.epoch, mb.CreateLoad(i64, in_place)), in_place);
    BasicBlock* miss_end = mb.GetInsertBlock();
    cb.SetInsertPoint(then);
    PHINode* passed = cb.CreatePHI(cb.getInt1Ty(), 2, "mmu.fscan.passed");
    passed->addIncoming(cb.getTrue(), kept_head);
    passed->addIncoming(hit, miss_end);
    ok = cb.CreateAnd(ok, passed);
  }
  BasicBlock* scanned = then->getParent();
  IRBuilder<> ab(at);
  PHINode* all = ab.CreatePHI(ab.getInt1Ty(), 2, "mmu.fscan.ok");
  all->addIncoming(ab.getFalse(), head);
  all->addIncoming(ok, scanned);
  // The runs the copy reads on, computed before the copy's branch.
  const DataLayout& dl = f->getParent()->getDataLayout();
  struct Run {
    Value* lo;
    Value* last;  // of an element
    Value* delta;
  };
  std::vector<Run> runs;
  for (std::size_t k = 0; k < plans.size(); ++k) {
    Value* run_lo = ab.CreateLoad(i64, kept[k].run.lo);
    Value* run_last = ab.CreateSub(ab.CreateAdd(run_lo, ab.CreateLoad(i64, kept[k].run.len)),
                                   ab.getInt64(dl.getTypeStoreSize(plans[k].inst->getType())));
    runs.push_back({run_lo, run_last, ab.CreateLoad(i64, kept[k].run.delta)});
  }
  ValueToValueMapTy plain;
  if (!version_loop(held, all, dt, li, se, plain)) return;
  auto in_copy = [&](Instruction* inst) { return cast<Instruction>(plain[fv.vmap[inst]]); };
  auto at_delta = [&](IRBuilder<>& ib, Value* p, Value* delta) {
    auto* pt = cast<PointerType>(p->getType());
    Value* bytes = ib.CreateBitCast(p, Type::getInt8PtrTy(c, pt->getAddressSpace()));
    return ib.CreateBitCast(ib.CreateGEP(ib.getInt8Ty(), bytes, delta, "mmu.frame"), pt);
  };
  // The copy's ranged accesses on their frames, as the held clone's run while held.
  for (std::size_t i = 0; i < local.size(); ++i)
    for (Instruction* inst : local[i].insts) {
      Instruction* ci = in_copy(inst);
      unsigned index = isa<StoreInst>(ci) ? StoreInst::getPointerOperandIndex() : 0;
      IRBuilder<> ib(ci);
      ci->setOperand(index, at_delta(ib, ci->getOperand(index), fv.deltas[i]));
    }
  // Its gathers on their kept run's frames, each address clamped to the run.
  for (std::size_t k = 0; k < plans.size(); ++k) {
    auto [run_lo, run_last, delta] = runs[k];
    auto* gather = cast<LoadInst>(in_copy(plans[k].inst));
    IRBuilder<> ib(gather);
    Value* va = ib.CreatePtrToInt(gather->getPointerOperand(), i64);
    va = ib.CreateBinaryIntrinsic(Intrinsic::umin, ib.CreateBinaryIntrinsic(Intrinsic::umax, va, run_lo),
                                  run_last);
    gather->setOperand(0, ib.CreateIntToPtr(ib.CreateAdd(va, delta), gather->getPointerOperandType()));
  }
}

}  // namespace hetmm::spirv::mmu
