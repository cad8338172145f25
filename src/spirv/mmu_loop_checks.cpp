// Loop range checks (J1, J4): the range an innermost loop's affine accesses touch, checked once at
// its entry (and once for a loop nest), and the loop versioned on the answer: a copy in place,
// a copy on device frames, and the probed original.
#include "spirv/mmu_ir.hpp"

namespace hetmm::spirv::mmu {

// Versions loop l on `ok` (computed in its preheader): a clone whose accesses stay as they are
// (in place, J1) runs when the check holds, the original (whose accesses get probes) when it
// does not. One clean copy of the loop is what the vectoriser needs: leaving the check on every
// access for LLVM to unswitch works only while the loop is small enough for its thresholds (a
// 5-point stencil is not). Returns false, changing nothing, for a loop without exits.
bool version_loop(Loop* l, Value* ok, DominatorTree& dt, LoopInfo& li, ScalarEvolution& se,
                  ValueToValueMapTy& vmap) {
  SmallVector<BasicBlock*, 4> exits;
  l->getUniqueExitBlocks(exits);
  if (exits.empty()) return false;
  formLCSSA(*l, dt, &li, &se);  // values used after the loop go through exit PHIs
  BasicBlock* check = l->getLoopPreheader();
  BasicBlock* ph = SplitBlock(check, check->getTerminator(), &dt, &li, nullptr, "mmu.ph");
  SmallVector<BasicBlock*, 16> blocks;
  Loop* fast = cloneLoopWithPreheader(ph, check, l, vmap, ".mmu.fast", &li, &dt, blocks);
  remapInstructionsInBlocks(blocks, vmap);
  Instruction* term = check->getTerminator();
  BranchInst::Create(fast->getLoopPreheader(), ph, ok, term);
  term->eraseFromParent();
  // The clone leaves through the same exits: their PHIs take its values too.
  for (BasicBlock* e : exits)
    for (PHINode& pn : e->phis()) {
      unsigned n = pn.getNumIncomingValues();
      for (unsigned i = 0; i < n; ++i) {
        BasicBlock* from = pn.getIncomingBlock(i);
        if (!l->contains(from)) continue;
        Value* v = pn.getIncomingValue(i);
        auto it = vmap.find(v);
        pn.addIncoming(it != vmap.end() ? static_cast<Value*>(it->second) : v,
                       cast<BasicBlock>(vmap[from]));
      }
    }
  dt.recalculate(*check->getParent());
  se.forgetLoop(l);
  return true;
}

// One range check before `where`, and-ed into `ok`: inline when [lo, hi) lies in one block the
// worker's block TLB holds in place (J2; the common case of a work-group's loop over a row),
// else through hetmm_jit_range. A loop over 64 work-items of a stencil costs a few
// instructions, not seven calls.
Value* emit_range_check(Instruction* where, Value* ctx, Value* epoch_ok, Value* lo, Value* hi,
                        bool write, Value* ok, const Runtime& rt, DominatorTree& dt,
                        LoopInfo& li, const KeptRun* kept_run,
                        bool keep_called) {
  IRBuilder<> b(where);
  Type* i64 = b.getInt64Ty();
  Value* last = b.CreateSub(hi, ConstantInt::get(i64, 1));
  // Within the run this check last found in place (kept_in_place): passes on a compare.
  const KeptRun kept = kept_run != nullptr ? *kept_run : kept_in_place(where->getFunction());
  Value* in_kept = range_in_kept_run(b, lo, hi, kept);
  BasicBlock* kept_head = where->getParent();
  Instruction* probe_term =
      SplitBlockAndInsertIfThen(b.CreateNot(in_kept), where, false, nullptr, &dt, &li);
  b.SetInsertPoint(probe_term);
  InPlaceProbe run = emit_block_probe(b, ctx, lo, last, write, epoch_ok);
  Value* block_hit = b.CreateAnd(run.hit, b.CreateICmpULT(lo, hi));
  keep_run(b, kept, block_hit, run.run_lo, run.run_len);
  Value* inline_ok = block_hit;
  // A range inside one page of a block that is not all in place (a small buffer in the heap:
  // a filter in __constant memory) passes on its page's TLB entry, which the call fills.
  const std::uint64_t right = write ? pte::kWrite : 0;
  PageEntry page = emit_page_entry(b, ctx, lo, last, pte::kValid | right,
                                   pte::kValid | pte::kLocal | right, epoch_ok);
  inline_ok = b.CreateOr(inline_ok, page.hit);
  inline_ok = b.CreateAnd(inline_ok, b.CreateICmpULT(lo, hi));
  // A range whose first page the worker knows is in a device frame is not in place: no call to
  // learn it again.
  Value* known_local = emit_known_local(b, ctx, lo, epoch_ok);
  BasicBlock* head = probe_term->getParent();
  Instruction* then_term = SplitBlockAndInsertIfThen(
      b.CreateNot(b.CreateOr(inline_ok, known_local)), probe_term, false, nullptr, &dt, &li);
  b.SetInsertPoint(then_term);
  Value* called = b.CreateICmpNE(b.CreateCall(rt.range, {ctx, lo, hi, b.getInt64(write ? 1 : 0)}),
                                 b.getInt64(0));
  // A range over several blocks (a gather's, J7) keeps itself where the runtime passed it.
  if (keep_called) keep_run(b, kept, called, lo, b.CreateSub(hi, lo));
  b.SetInsertPoint(probe_term);
  PHINode* probed = b.CreatePHI(b.getInt1Ty(), 2, "mmu.range.probed");
  probed->addIncoming(inline_ok, head);
  probed->addIncoming(called, then_term->getParent());
  b.SetInsertPoint(where);
  PHINode* passed = b.CreatePHI(b.getInt1Ty(), 2, "mmu.range.ok");
  passed->addIncoming(b.getTrue(), kept_head);
  passed->addIncoming(probed, probe_term->getParent());
  return b.CreateAnd(ok, passed);
}

// `check(t)`'s answer (an i1 available at t) where `skip` does not hold, else true: emitted
// before `at` in a branch of its own, so that a skipped range costs no check (J1-J4 hold for
// the accesses that run; those under `skip` do not run in this loop entry).
Value* unless_skipped(Instruction* at, Value* skip, DominatorTree& dt, LoopInfo& li,
                      const std::function<Value*(Instruction*)>& check) {
  if (skip == nullptr) return check(at);
  BasicBlock* head = at->getParent();
  Instruction* t = SplitBlockAndInsertIfThen(IRBuilder<>(at).CreateNot(skip), at, false, nullptr,
                                             &dt, &li);
  Value* passed = check(t);
  IRBuilder<> b(at);
  PHINode* p = b.CreatePHI(passed->getType(), 2, "mmu.unskipped");
  p->addIncoming(ConstantInt::get(passed->getType(), 1), head);  // true, or a dummy delta
  p->addIncoming(passed, t->getParent());
  return p;
}

// Registers `body`, a loop of one block that the pass built before `done` (its only exit), in
// `li`, inside `parent` (the loop around the code it was built in, or null) with `done`.
void register_one_block_loop(BasicBlock* body, BasicBlock* done, Loop* parent, LoopInfo& li) {
  Loop* loop = li.AllocateLoop();
  if (parent != nullptr) parent->addChildLoop(loop);
  else li.addTopLevelLoop(loop);
  loop->addBasicBlockToLoop(body, li);
  if (parent != nullptr) parent->addBasicBlockToLoop(done, li);
}

// Whether loop l calls nothing but LLVM intrinsics (no runtime entry point, no builtin that
// could touch memory through the MMU or switch fibers): required to hold `active` across it.
bool calls_only_intrinsics(Loop* l) {
  for (BasicBlock* bb : l->blocks())
    for (Instruction& i : *bb)
      if (auto* cb = dyn_cast<CallBase>(&i)) {
        Function* fn = cb->getCalledFunction();
        if (fn == nullptr || !fn->isIntrinsic() || isa<MemIntrinsic>(cb)) return false;
      }
  return true;
}

// The ranges' bounds, computed before `at`: only on the way that checks them, so that a loop
// entry the nest check answered computes none. SCEVExpander puts an expression that evolves in
// the loop around `at` in that loop's header (to dominate any use in the loop); what it put
// there for these bounds serves them alone (a fresh expander's), and moves down to them.
void expand_bounds(std::vector<LocalRange>& ranges, ScalarEvolution& se, LoopInfo& li,
                   Instruction* at) {
  SCEVExpander expander(se, at->getModule()->getDataLayout(), "mmu.row");
  Type* i64 = Type::getInt64Ty(at->getContext());
  for (LocalRange& r : ranges) {
    r.lo = expander.expandCodeFor(r.lo_s, i64, at);
    r.hi = expander.expandCodeFor(r.hi_s, i64, at);
  }
  Loop* around = li.getLoopFor(at->getParent());
  if (around == nullptr || around->getHeader() == at->getParent()) return;
  SmallPtrSet<Instruction*, 32> inserted;
  for (Instruction* i : expander.getAllInsertedInstructions()) inserted.insert(i);
  Instruction* before = at;  // the first of what was inserted beside `at`: its operands come first
  for (Instruction& i : *at->getParent())
    if (inserted.contains(&i)) {
      before = &i;
      break;
    }
  std::vector<Instruction*> moving;
  for (Instruction& i : *around->getHeader())
    if (!isa<PHINode>(i) && inserted.contains(&i)) moving.push_back(&i);
  for (Instruction* i : moving) i->moveBefore(before);
}

CheckCache make_check_cache(Function* f) {
  return {entry_i64(f, ~std::uint64_t{0}), entry_i64(f, 0), entry_i64(f, 0), entry_i64(f, 0)};
}

// Before `where`: the kept answer when it is for [lo, hi) in `epoch`, else `compute(at)`'s
// (emitted in a branch; 0 is a failed answer), kept when it passed.
Value* cached_check(Instruction* where, Value* epoch, Value* lo, Value* hi, DominatorTree& dt,
                    LoopInfo& li, const std::function<Value*(Instruction*)>& compute) {
  Function* f = where->getFunction();
  CheckCache cache = make_check_cache(f);
  IRBuilder<> b(where);
  Type* i64 = b.getInt64Ty();
  Value* kept = b.CreateLoad(i64, cache.answer);
  Value* hit = b.CreateICmpEQ(b.CreateLoad(i64, cache.epoch), epoch);
  hit = b.CreateAnd(hit, b.CreateICmpEQ(b.CreateLoad(i64, cache.lo), lo));
  hit = b.CreateAnd(hit, b.CreateICmpEQ(b.CreateLoad(i64, cache.hi), hi));
  BasicBlock* head = where->getParent();
  Instruction* miss = SplitBlockAndInsertIfThen(b.CreateNot(hit), where, false, nullptr, &dt, &li);
  Value* answer = compute(miss);
  IRBuilder<> mb(miss);
  Value* passed = mb.CreateICmpNE(answer, mb.getInt64(0));
  mb.CreateStore(mb.CreateSelect(passed, epoch, mb.getInt64(~std::uint64_t{0})), cache.epoch);
  mb.CreateStore(lo, cache.lo);
  mb.CreateStore(hi, cache.hi);
  mb.CreateStore(answer, cache.answer);
  b.SetInsertPoint(where);
  PHINode* result = b.CreatePHI(i64, 2, "mmu.cached");
  result->addIncoming(kept, head);
  result->addIncoming(answer, miss->getParent());
  return result;
}

// Address-space casts are no-ops here (device addresses are process addresses), but they hide
// the GEP arithmetic from SCEV and from pattern matches: the pointer under them.
Value* through_addrspace_casts(Value* p) {
  while (auto* c = dyn_cast<AddrSpaceCastOperator>(p)) p = c->getOperand(0);
  return p;
}

std::vector<RangeGroup> group_ranges(ScalarEvolution& se, const std::vector<AccessRange>& ranges) {
  struct Members {
    const SCEV* base;
    bool write;
    bool affine;
    SmallVector<const SCEV*, 8> los, his;
    std::vector<Instruction*> insts;
    Guard skip;
  };
  std::vector<Members> groups;
  for (const AccessRange& r : ranges) {
    bool write = isa<StoreInst>(r.inst);
    const SCEV* base = r.base;
    auto g = std::find_if(groups.begin(), groups.end(), [&](const Members& m) {
      return r.affine && m.affine && m.base == base && m.write == write && m.skip == r.skip;
    });
    if (g == groups.end())
      g = groups.insert(groups.end(), {base, write, r.affine, {}, {}, {}, r.skip});
    const SCEV* size = se.getConstant(r.first->getType(), r.bytes);
    g->los.push_back(r.first);
    g->los.push_back(r.last);
    g->his.push_back(se.getAddExpr(r.first, size));
    g->his.push_back(se.getAddExpr(r.last, size));
    g->insts.push_back(r.inst);
  }
  std::vector<RangeGroup> out;
  for (Members& g : groups)
    out.push_back({se.getUMinExpr(g.los), se.getUMaxExpr(g.his), g.write, std::move(g.insts),
                   g.los, g.his, g.skip});
  return out;
}

// Every range in place (and `ok`), checked before `where` (a loop nest's or a work-item loop's
// preheader): false at once where the first range's first page is known to be in a frame.
Value* emit_in_place_union(Instruction* where, Value* ctx, const Probe& epochs,
                           const std::vector<LocalRange>& ranges, Value* ok, const Runtime& rt,
                           DominatorTree& dt, LoopInfo& li, const char* name) {
  IRBuilder<> b(where);
  Value* first_local = emit_local_block_probe(b, ctx, ranges.front().lo, ranges.front().lo,
                                              false, epochs.epoch_ok)
                           .not_in_place;
  BasicBlock* head = where->getParent();
  Instruction* at =
      SplitBlockAndInsertIfThen(b.CreateNot(first_local), where, false, nullptr, &dt, &li);
  Value* chain = ok;
  for (const LocalRange& r : ranges)
    chain = emit_range_check(at, ctx, epochs.epoch_ok, r.lo, r.hi, r.write, chain, rt, dt, li);
  b.SetInsertPoint(where);
  PHINode* in_place = b.CreatePHI(b.getInt1Ty(), 2, name);
  in_place->addIncoming(b.getFalse(), head);
  in_place->addIncoming(chain, at->getParent());
  return in_place;
}

std::optional<NestCheck> nest_check(Loop* l, const std::vector<RangeGroup>& groups,
                                    bool frames_ok, Value* ctx, const Runtime& rt,
                                    ScalarEvolution& se, DominatorTree& dt, LoopInfo& li,
                                    SCEVExpander& expander, ItemLoop* item,
                                    const std::vector<ScanPlan>& scans) {
  Loop* outer = l->getParentLoop();
  if (outer == nullptr || groups.empty()) return std::nullopt;
  // Only where a work-item loop is one of the two (rows of a group, a row's work-items around a
  // kernel loop): a kernel's own loop around a loop (a filter's rows of taps) runs a few times
  // and would pay the nest check's code, in place and in frames, for little.
  if (!work_item_mark(*l) && !work_item_mark(*outer)) return std::nullopt;
  // Ranges the outer loop does not move gain nothing: the loop's kept answer is a load.
  bool varies = false;
  for (const RangeGroup& g : groups)
    varies = varies || !se.isLoopInvariant(g.lo, outer) || !se.isLoopInvariant(g.hi, outer);
  if (!varies) return std::nullopt;
  if (outer->getLoopPreheader() == nullptr &&
      InsertPreheaderForLoop(outer, &dt, &li, nullptr, false) == nullptr)
    return std::nullopt;
  PredicatedScalarEvolution pse(se, *outer);
  const SCEV* btc = pse.getBackedgeTakenCount();
  if (isa<SCEVCouldNotCompute>(btc)) return std::nullopt;
  Instruction* where = outer->getLoopPreheader()->getTerminator();
  // A term c0 + c * ext(U), U a load the work-item loop ranges (J8: a CSR row's bound), c0
  // invariant and c a positive constant: its least (or greatest) value over the group is U's
  // least (greatest) value's term, from the work-item loop's scan of U.
  bool scanned = false;
  auto scanned_bound = [&](const SCEV* t, bool greatest) -> const SCEV* {
    if (item == nullptr || item->loop != outer) return nullptr;
    const SCEV* c0 = se.getZero(t->getType());
    const SCEV* v = t;
    if (const auto* add = dyn_cast<SCEVAddExpr>(t)) {
      SmallVector<const SCEV*, 4> invariant;
      v = nullptr;
      for (const SCEV* op : add->operands()) {
        if (se.isLoopInvariant(op, outer)) invariant.push_back(op);
        else if (v != nullptr) return nullptr;
        else v = op;
      }
      if (!invariant.empty()) c0 = se.getAddExpr(invariant);
    }
    const SCEV* c = se.getOne(t->getType());
    if (const auto* mul = dyn_cast<SCEVMulExpr>(v); mul != nullptr && mul->getNumOperands() == 2) {
      const auto* k = dyn_cast<SCEVConstant>(mul->getOperand(0));
      if (k == nullptr || k->getAPInt().isNonPositive() || k->getAPInt().ugt(1u << 16)) return nullptr;
      c = k;
      v = mul->getOperand(1);
    }
    bool is_signed = false;
    const SCEV* inner = nullptr;
    if (const auto* z = dyn_cast<SCEVZeroExtendExpr>(v)) inner = z->getOperand();
    else if (const auto* sx = dyn_cast<SCEVSignExtendExpr>(v)) inner = sx->getOperand(), is_signed = true;
    const auto* u = dyn_cast_or_null<SCEVUnknown>(inner);
    auto* load = u != nullptr ? dyn_cast<LoadInst>(u->getValue()) : nullptr;
    if (load == nullptr) return nullptr;
    auto bounds = scan_item_load(*item, load, is_signed, se, expander, dt, li);
    if (!bounds) return nullptr;
    scanned = true;
    const SCEV* m = se.getUnknown(greatest ? bounds->second : bounds->first);
    m = is_signed ? se.getSignExtendExpr(m, v->getType()) : se.getZeroExtendExpr(m, v->getType());
    return se.getAddExpr(c0, se.getMulExpr(c, m));
  };
  // A term over the outer loop: itself where invariant, else its first and last value (affine
  // without wrapping, which is assumed and checked: so one of the two is its least, the other its
  // greatest), else its scanned bound.
  auto widen = [&](const SmallVectorImpl<const SCEV*>& terms, SmallVectorImpl<const SCEV*>& out,
                   bool greatest) {
    for (const SCEV* t : terms) {
      if (se.isLoopInvariant(t, outer)) {
        out.push_back(t);
        continue;
      }
      SmallPtrSet<const SCEVPredicate*, 4> assumed;
      const auto* ar = dyn_cast<SCEVAddRecExpr>(t);
      if (ar == nullptr) ar = se.convertSCEVToAddRecWithPredicates(t, outer, assumed);
      if (ar == nullptr || ar->getLoop() != outer || !ar->isAffine()) {
        const SCEV* bound = scanned_bound(t, greatest);
        if (bound == nullptr) return false;
        out.push_back(bound);
        continue;
      }
      for (const SCEVPredicate* p : assumed) pse.addPredicate(*p);
      out.push_back(ar->getStart());
      out.push_back(ar->evaluateAtIteration(btc, se));
    }
    return true;
  };
  std::vector<std::pair<const SCEV*, const SCEV*>> spans;
  for (const RangeGroup& g : groups) {
    SmallVector<const SCEV*, 16> los, his;
    if (!widen(g.los, los, false) || !widen(g.his, his, true)) return std::nullopt;
    const SCEV* lo = se.getUMinExpr(los);
    const SCEV* hi = se.getUMaxExpr(his);
    if (!expander.isSafeToExpandAt(lo, where) || !expander.isSafeToExpandAt(hi, where))
      return std::nullopt;
    spans.push_back({lo, hi});
  }
  IRBuilder<> b(where);
  Type* i64 = b.getInt64Ty();
  NestCheck n;
  Probe epochs = emit_epochs(b, ctx);
  cast<LoadInst>(epochs.dev_epoch)->setOrdering(AtomicOrdering::Acquire);  // before PTEs (J4)
  n.epoch = epochs.dev_epoch;
  Value* pred_ok = b.getTrue();
  if (!pse.getPredicate().isAlwaysTrue())
    pred_ok = b.CreateNot(expander.expandCodeForPredicate(&pse.getPredicate(), where));
  if (scanned) pred_ok = b.CreateAnd(pred_ok, item->ok);  // the scans read in place (J8)
  std::vector<LocalRange> ranges;
  for (std::size_t i = 0; i < groups.size(); ++i)
    ranges.push_back({groups[i].insts, expander.expandCodeFor(spans[i].first, i64, where),
                      expander.expandCodeFor(spans[i].second, i64, where), groups[i].write});
  Value* in_place =
      emit_in_place_union(where, ctx, epochs, ranges, pred_ok, rt, dt, li, "mmu.nest.inplace");
  b.SetInsertPoint(where);
  n.in_place = in_place;
  if (!scans.empty()) n.gathers_ok = nest_gathers(n, groups, ranges, scans, ctx, rt, epochs, dt, li);
  // Scanned bounds are the in-place scans' (J8): no frame version of the nest.
  if (!frames_ok || scanned) return n;
  // Else in frames.
  BasicBlock* head2 = where->getParent();
  Instruction* at2 = SplitBlockAndInsertIfThen(b.CreateNot(in_place), where, false, nullptr, &dt, &li);
  IRBuilder<> fb(at2);
  Value* all = pred_ok;
  std::vector<Value*> found;
  for (const LocalRange& r : ranges) {
    Value* d = kept_frame_delta(fb, r, ctx, epochs.dev_epoch, epochs.epoch_ok, rt, dt, li);
    found.push_back(d);
    all = fb.CreateAnd(all, fb.CreateICmpNE(d, fb.getInt64(0)));
  }
  b.SetInsertPoint(where);
  PHINode* frames = b.CreatePHI(b.getInt1Ty(), 2, "mmu.nest.frames");
  frames->addIncoming(b.getFalse(), head2);
  frames->addIncoming(all, at2->getParent());
  n.frames = frames;
  for (Value* d : found) {
    PHINode* p = b.CreatePHI(i64, 2, "mmu.nest.delta");
    p->addIncoming(b.getInt64(0), head2);
    p->addIncoming(d, at2->getParent());
    n.deltas.push_back(p);
  }
  return n;
}

// Loop range checks: for the loads and stores of an innermost loop whose addresses are affine
// in the loop (or invariant), one call in the preheader checks that every page of the range
// the loop will touch is mapped in place with the needed right. The accesses then skip the
// probe while that holds: the loop is versioned on the check (version_loop), or, where it cannot
// be, each access branches on it. Returns, per access, the check it branches on (absent: probe
// every time, or versioned).
std::map<Instruction*, Value*> range_checks(Function& f, const Runtime& rt,
                                            const std::vector<std::pair<Instruction*, Value*>>& work,
                                            std::vector<std::pair<Instruction*, Value*>>& cloned,
                                            std::set<Instruction*>& cold,
                                            std::map<Instruction*, ItemFrames>& item_frames) {
  std::map<Instruction*, Value*> checks;
  const DataLayout& dl = f.getParent()->getDataLayout();
  DominatorTree dt(f);
  LoopInfo li(dt);
  if (li.empty()) return checks;
  for (Loop* l : li.getLoopsInPreorder())
    if (l->isInnermost()) narrow_counters(l);
  TargetLibraryInfoImpl tlii(Triple(f.getParent()->getTargetTriple()));
  TargetLibraryInfo tli(tlii, &f);
  AssumptionCache ac(f);
  ScalarEvolution se(f, tli, ac, dt, li);
  SCEVExpander expander(se, dl, "mmu.range");
  Type* i64 = Type::getInt64Ty(f.getContext());
  Value* ctx = ctx_of(f);
  std::map<Loop*, ItemLoop> items = item_loop_checks(work, ctx, rt, se, expander, dt, li, checks, item_frames);
  struct LoopCheck {
    std::unique_ptr<PredicatedScalarEvolution> pse;  // no-wrap assumptions, checked at entry
    std::vector<AccessRange> ranges;
    std::vector<std::pair<Instruction*, Value*>> probed;  // not analysable: probed in both copies
    bool failed = false;
    std::optional<StridedExit> strided;  // where SCEV cannot count the iterations
    bool strided_tried = false;
  };
  std::map<Loop*, LoopCheck> loops;
  std::vector<Loop*> loop_order;  // as the accesses meet them: the same code every compile
  std::vector<HeldAccess> held;  // J5: rewritten last
  // Accesses whose range cannot be known (a gather's data-dependent load, atomics) keep their
  // probe in both copies of a versioned loop; the others skip it in the fast copy.
  for (auto& [inst, ptr] : work) {
    Loop* l = li.getLoopFor(inst->getParent());
    if (l == nullptr || !l->isInnermost()) continue;
    auto [found, fresh] = loops.try_emplace(l);
    if (fresh) loop_order.push_back(l);
    LoopCheck& lc = found->second;
    if (lc.failed) continue;
    if (lc.pse == nullptr) lc.pse = std::make_unique<PredicatedScalarEvolution>(se, *l);
    PredicatedScalarEvolution& pse = *lc.pse;
    auto fail = [&] { lc.failed = true; };
    auto probed = [&, inst = inst, ptr = ptr] { lc.probed.push_back({inst, ptr}); };
    if (!isa<LoadInst>(inst) && !isa<StoreInst>(inst)) { probed(); continue; }
    if (cast<Instruction>(inst)->isAtomic()) { probed(); continue; }
    if (l->getLoopPreheader() == nullptr &&
        InsertPreheaderForLoop(l, &dt, &li, nullptr, false) == nullptr) { fail(); continue; }
    Value* base = through_addrspace_casts(ptr);
    const SCEV* at = address_scev(se, ptr);
    const SCEV *first = at, *last = at;
    bool affine = true;
    if (!se.isLoopInvariant(at, l)) {
      // Kernels index with 32-bit ints whose no-overflow flags SPIR-V 1.0 cannot carry: as
      // the vectoriser does, assume no wrap and check that assumption at loop entry.
      SmallPtrSet<const SCEVPredicate*, 4> assumed;
      const SCEVAddRecExpr* ar = dyn_cast<SCEVAddRecExpr>(at);
      if (ar == nullptr) ar = se.convertSCEVToAddRecWithPredicates(at, l, assumed);
      const SCEV* btc = pse.getBackedgeTakenCount();
      if (isa<SCEVCouldNotCompute>(btc)) {
        // A grid-stride loop: a bound for each access instead of its last address.
        if (!lc.strided_tried) lc.strided = strided_exit(l, se), lc.strided_tried = true;
        if (!lc.strided) {
          fail();
          continue;
        }
        SmallVector<const SCEVPredicate*, 4> strided_assumed;
        std::tie(first, last) = strided_range(*lc.strided, at, l, se, strided_assumed);
        if (first == nullptr) {
          probed();
          continue;
        }
        for (const SCEVPredicate* p : lc.strided->assumed) pse.addPredicate(*p);
        for (const SCEVPredicate* p : strided_assumed) pse.addPredicate(*p);
      } else if (ar == nullptr || ar->getLoop() != l || !ar->isAffine()) {
        // A quotient of the IV (`b[i / cols]`): its range from the IV's, at the loop's entry.
        auto [q_first, q_last] = quotient_index_range(at, l, btc, se, expander, pse);
        if (q_first != nullptr) {
          first = q_first;
          last = q_last;
          affine = false;
        } else {
          // A butterfly's partner, `in[i ^ j]`: its range from i's, at the loop's entry.
          auto [xor_first, xor_last] = xor_index_range(base, l, btc, se, expander);
          if (xor_first == nullptr) {
            probed();
            continue;
          }
          first = xor_first;
          last = xor_last;
          affine = false;
        }
      } else {
        for (const SCEVPredicate* p : assumed) pse.addPredicate(*p);
        first = ar->getStart();
        last = ar->evaluateAtIteration(btc, se);
      }
    }
    first = se.getPtrToIntExpr(first, i64);
    last = se.getPtrToIntExpr(last, i64);
    if (isa<SCEVCouldNotCompute>(first) || isa<SCEVCouldNotCompute>(last)) { probed(); continue; }
    bool write = isa<StoreInst>(inst);
    Type* t = write ? cast<StoreInst>(inst)->getValueOperand()->getType() : inst->getType();
    lc.ranges.push_back({inst, first, last, dl.getTypeStoreSize(t), se.getPointerBase(at), affine,
                         skip_terms(inst, l, dt)});
  }
  for (Loop* l : loop_order) {
    LoopCheck& lc = loops[l];
    if (lc.failed || lc.ranges.empty()) continue;
    // A guard pays where it drops a range that reaches past what the loop touches anyway: the
    // taps of a stencil beside its centre, which runs under fewer terms. Terms that guard every
    // access of an array (a bounds check `y < ny` around the whole body; a tile load under
    // `row < n`) drop nothing: that array keeps one group and one check, without them. Splitting
    // a check behind such a guard cost matmul_tiled's frame version a third of its speed; keeping
    // the bounds check's terms on a stencil's centre took every guard off its taps.
    {
      auto has = [](const Guard& g, const Guard::value_type& term) {
        return std::find(g.begin(), g.end(), term) != g.end();
      };
      std::map<const SCEV*, Guard> common;  // per array: the terms all its accesses have
      for (const AccessRange& r : lc.ranges) {
        auto [it, fresh] = common.try_emplace(r.base, r.skip);
        if (!fresh) std::erase_if(it->second, [&](const auto& term) { return !has(r.skip, term); });
      }
      for (AccessRange& r : lc.ranges)
        std::erase_if(r.skip, [&](const auto& term) { return has(common[r.base], term); });
    }
    Instruction* where = l->getLoopPreheader()->getTerminator();
    bool safe = true;
    for (const AccessRange& r : lc.ranges)
      safe = safe && expander.isSafeToExpandAt(r.first, where) &&
             expander.isSafeToExpandAt(r.last, where);
    if (!safe) {
      lc.failed = true;
      continue;
    }
    IRBuilder<> b(where);
    Value* ok = b.getTrue();
    if (!lc.pse->getPredicate().isAlwaysTrue())
      ok = b.CreateNot(expander.expandCodeForPredicate(&lc.pse->getPredicate(), where));
    Value* pred_ok = ok;
    std::vector<LocalRange> local;
    Loop* parent = l->getParentLoop();
    const std::vector<RangeGroup> groups = group_ranges(se, lc.ranges);
    for (const RangeGroup& g : groups) {
      local.push_back({g.insts, nullptr, nullptr, g.write,
                       parent != nullptr && se.isLoopInvariant(g.lo, parent) &&
                           se.isLoopInvariant(g.hi, parent),
                       g.lo, g.hi});
      local.back().skip = emit_skip(where, g.skip);
    }
    const bool frames_ok = calls_only_intrinsics(l);
    const std::vector<ScanPlan> scans = plan_scans(l, lc.probed, lc.ranges, *lc.pse, se);
    auto item = items.find(parent);
    std::optional<NestCheck> nest =
        nest_check(l, groups, frames_ok, ctx, rt, se, dt, li, expander,
                   item != items.end() ? &item->second : nullptr, scans);
    // Where the nest check passed in place, only the loop's own predicate is left to test;
    // else the loop's own ranges are checked here.
    {
      IRBuilder<> hb(where);
      BasicBlock* head = where->getParent();
      // (Data the nest check found in frames needs no in-place check either.)
      Value* nest_ok = hb.getFalse();
      Value* head_ok = hb.getFalse();
      if (nest) {
        nest_ok = nest->frames ? hb.CreateOr(nest->in_place, nest->frames) : nest->in_place;
        head_ok = hb.CreateAnd(ok, nest->in_place);
      }
      Instruction* row =
          SplitBlockAndInsertIfThen(hb.CreateNot(nest_ok), where, false, nullptr, &dt, &li);
      // Data the worker knows is in device memory (the first range's first page is in a frame)
      // skips the in-place checks, which could only fail, for the frame version's.
      IRBuilder<> rb(row);
      expand_bounds(local, se, li, row);
      // Every range in the run its check last found in place (kept_in_place): a compare each,
      // nothing more (a CSR row's slices of cols and vals).
      std::vector<KeptRun> kept(local.size());
      Value* all_kept = rb.getTrue();
      for (std::size_t i = 0; i < local.size(); ++i) {
        if (local[i].invariant) {  // kept per epoch instead (cached_check)
          all_kept = rb.getFalse();
          continue;
        }
        kept[i] = kept_in_place(where->getFunction());
        Value* in_kept = range_in_kept_run(rb, local[i].lo, local[i].hi, kept[i]);
        if (local[i].skip != nullptr) in_kept = rb.CreateOr(in_kept, local[i].skip);
        all_kept = rb.CreateAnd(all_kept, in_kept);
      }
      BasicBlock* kept_head = row->getParent();
      Instruction* checks =
          SplitBlockAndInsertIfThen(rb.CreateNot(all_kept), row, false, nullptr, &dt, &li);
      rb.SetInsertPoint(checks);
      // The epochs once for all the loop's checks (an entry of an older epoch is at worst a
      // stale in-place translation, which J1 tolerates).
      Probe epochs = emit_epochs(rb, ctx);
      Value* epoch_ok = epochs.epoch_ok;
      Value* first_local =
          emit_local_block_probe(rb, ctx, local.front().lo, local.front().lo, false, epoch_ok)
              .not_in_place;
      BasicBlock* row_head = checks->getParent();
      Instruction* at = SplitBlockAndInsertIfThen(rb.CreateNot(first_local), checks, false,
                                                  nullptr, &dt, &li);
      Value* chain = ok;
      for (std::size_t i = 0; i < local.size(); ++i) {
        const LocalRange& r = local[i];
        Value* passed = unless_skipped(at, r.skip, dt, li, [&](Instruction* t) -> Value* {
          if (!r.invariant)
            return emit_range_check(t, ctx, epoch_ok, r.lo, r.hi, r.write,
                                    ConstantInt::getTrue(t->getContext()), rt, dt, li, &kept[i]);
          Value* kept = cached_check(t, epochs.dev_epoch, r.lo, r.hi, dt, li, [&](Instruction* miss) {
            Value* ok = emit_range_check(miss, ctx, epoch_ok, r.lo, r.hi, r.write,
                                         ConstantInt::getTrue(miss->getContext()), rt, dt, li);
            return IRBuilder<>(miss).CreateZExt(ok, i64);
          });
          return IRBuilder<>(t).CreateICmpNE(kept, ConstantInt::get(i64, 0));
        });
        chain = IRBuilder<>(at).CreateAnd(chain, passed);
      }
      rb.SetInsertPoint(checks);
      PHINode* checked = rb.CreatePHI(rb.getInt1Ty(), 2, "mmu.row.checked");
      checked->addIncoming(rb.getFalse(), row_head);
      checked->addIncoming(chain, at->getParent());
      rb.SetInsertPoint(row);
      PHINode* row_ok = rb.CreatePHI(rb.getInt1Ty(), 2, "mmu.row.ok");
      row_ok->addIncoming(ok, kept_head);
      row_ok->addIncoming(checked, checks->getParent());
      hb.SetInsertPoint(where);
      PHINode* in_place_ok = hb.CreatePHI(hb.getInt1Ty(), 2, "mmu.inplace.ok");
      in_place_ok->addIncoming(head_ok, head);
      in_place_ok->addIncoming(row_ok, row->getParent());
      ok = in_place_ok;
    }
    ValueToValueMapTy vmap;
    if (version_loop(l, ok, dt, li, se, vmap)) {
      // The ranged accesses of the original run only where the checks failed.
      for (const AccessRange& r : lc.ranges) cold.insert(r.inst);
      auto in = [](ValueToValueMapTy& map, Value* v) {
        return map.count(v) ? static_cast<Value*>(map[v]) : v;
      };
      for (auto& [inst, ptr] : lc.probed) cloned.push_back({cast<Instruction>(vmap[inst]), in(vmap, ptr)});
      // J7: the in-place copy's gathers ranged by a scan of their indices, in a copy of its own.
      if (!scans.empty()) {
        auto* fast_header = cast<BasicBlock>(vmap[l->getHeader()]);
        Loop* fast = li.getLoopFor(fast_header);
        Value* scanned_ok = fast != nullptr && fast->getHeader() == fast_header
                                ? scan_gathers(fast, scans, lc.ranges, ctx, rt, *lc.pse, se,
                                               expander, dt, li, nest ? nest->gathers_ok : nullptr)
                                : nullptr;
        ValueToValueMapTy plain;
        if (scanned_ok != nullptr && version_loop(fast, scanned_ok, dt, li, se, plain))
          for (auto& [inst, ptr] : lc.probed) {
            if (std::any_of(scans.begin(), scans.end(),
                            [&](const ScanPlan& p) { return p.inst == inst; }))
              continue;
            cloned.push_back({cast<Instruction>(plain[vmap[inst]]), in(plain, in(vmap, ptr))});
          }
      }
      // The guards' terms (skip_terms) decide nothing in most entries (a stencil's interior
      // rows), yet the vectorised copy ORs each into every step's mask: LLVM does not unswitch a
      // loop this large. The clean copy gets a version for entries where no term decides, with
      // each term's value known there.
      Guard terms;
      for (const AccessRange& r : lc.ranges) terms.insert(terms.end(), r.skip.begin(), r.skip.end());
      drop_repeated_terms(terms);
      auto* clean_header = cast<BasicBlock>(vmap[l->getHeader()]);
      Loop* clean = li.getLoopFor(clean_header);
      if (!terms.empty() && scans.empty() && lc.probed.empty() && clean != nullptr &&
          clean->getHeader() == clean_header && clean->getLoopPreheader() != nullptr) {
        std::vector<BasicBlock*> blocks(clean->blocks().begin(), clean->blocks().end());
        Instruction* at = clean->getLoopPreheader()->getTerminator();
        Value* none = IRBuilder<>(at).CreateNot(emit_skip(at, terms));
        ValueToValueMapTy decided;
        if (version_loop(clean, none, dt, li, se, decided))
          for (BasicBlock* bb : blocks)
            for (Instruction& i : *cast<BasicBlock>(decided[bb]))
              for (Use& u : i.operands())
                for (auto [v, negate] : terms)
                  if (u.get() == v) u.set(ConstantInt::getBool(v->getContext(), negate));
      }
      // Prefetches for the copy that probes its gathers (in a plain copy, as in PoCL's loop,
      // the out-of-order core overlaps the misses itself).
      for (auto& [inst, ptr] : lc.probed)
        prefetch_gathered(inst, ptr, l, lc.probed, vmap, *lc.pse, se, expander, dt, li);
      // Data in device memory: a third version, on the frames (J4).
      FrameVersion fv;
      if (frames_ok && version_local(l, ctx, pred_ok, local, nest ? &*nest : nullptr, lc.probed,
                                     held, fv, rt, dt, li, se) &&
          !lc.probed.empty()) {
        // J7 in frames: gathers ranged by a scan, in a copy of the held clone's own.
        if (!scans.empty() && scans.size() == lc.probed.size())
          scan_frame_gathers(fv, l, scans, local, lc.ranges, ctx, *lc.pse, se, expander, dt, li);
        // Last: the blocks this adds inside the held clone are not ways out of it.
        FramePrefetch frames{ctx, fv.held, [&](Instruction* access) {
                               return range_delta(fv, local, access);
                             }};
        for (std::size_t i = 0; i < lc.probed.size(); ++i) {
          frames.kept = &fv.kept_runs[i];
          prefetch_gathered(lc.probed[i].first, lc.probed[i].second, l, lc.probed, fv.vmap,
                            *lc.pse, se, expander, dt, li, &frames);
        }
      }
      continue;
    }
    for (const AccessRange& r : lc.ranges) checks[r.inst] = ok;
  }
  // Last, with no analysis left to keep up to date: the held loops' accesses (J5).
  for (const HeldAccess& h : held) rewrite_held(h, dl, cloned);
  return checks;
}

}  // namespace hetmm::spirv::mmu
