// The ranges of indices SCEV does not give as affine recurrences: a grid-stride loop's
// (StridedExit), a quotient of the induction variable (`b[i / cols]`), a butterfly's partner
// (`in[i ^ j]`), and addresses through PHIs of one index.
#include "spirv/mmu_ir.hpp"

namespace hetmm::spirv::mmu {

// The one SCEV every incoming value of PHI `v` has, or null. After sinking, OpenCL's
// `if (edge) out[i] = 0; else out[i] = s;` stores once through a PHI of two copies of the same
// index, which SCEV leaves unknown; its value is that index on either way in.
const SCEV* same_scev_phi(ScalarEvolution& se, Value* v) {
  auto* phi = dyn_cast<PHINode>(v);
  if (phi == nullptr || phi->getNumIncomingValues() == 0 || !se.isSCEVable(phi->getType()))
    return nullptr;
  const SCEV* s = se.getSCEV(phi->getIncomingValue(0));
  for (Value* in : phi->incoming_values())
    if (in == phi || se.getSCEV(in) != s) return nullptr;
  return s;
}

namespace {

// An address's SCEV with such PHIs replaced by their one SCEV (a bounded number of levels).
class SamePhiRewriter : public SCEVRewriteVisitor<SamePhiRewriter> {
 public:
  SamePhiRewriter(ScalarEvolution& se, int depth) : SCEVRewriteVisitor(se), depth_(depth) {}
  const SCEV* visitUnknown(const SCEVUnknown* u) {
    if (depth_ == 0) return u;
    if (const SCEV* s = same_scev_phi(SE, u->getValue())) return SamePhiRewriter(SE, depth_ - 1).visit(s);
    return u;
  }

 private:
  int depth_;
};

}  // namespace

// The addresses a loop's access `ptr` = &base[x ^ c] can reach, where x is affine in loop l and
// c invariant (the partner of a bitonic sort's or an FFT's butterfly): the bits below x's
// highest changing bit take every value, the ones above are x's first value's xor c, so the
// index lies in [(x0 ^ c) & ~m, (x0 ^ c) | m] with m the mask of the bits x0 ^ x_last has at or
// below its highest. Computed in l's preheader; a wrapping x gives an empty range (lo > hi: the
// check fails). Returns the first and last address's SCEVs, or nulls.
std::pair<const SCEV*, const SCEV*> xor_index_range(Value* ptr, Loop* l, const SCEV* btc,
                                                    ScalarEvolution& se,
                                                    SCEVExpander& expander) {
  const std::pair<const SCEV*, const SCEV*> none{nullptr, nullptr};
  auto* gep = dyn_cast<GetElementPtrInst>(ptr);
  if (gep == nullptr || gep->getNumIndices() != 1 ||
      !se.isLoopInvariant(se.getSCEV(gep->getPointerOperand()), l))
    return none;
  Value* index = gep->idx_begin()->get();
  const bool widened = isa<ZExtInst>(index);
  if (widened) index = cast<ZExtInst>(index)->getOperand(0);
  auto* x = dyn_cast<BinaryOperator>(index);
  if (x == nullptr || x->getOpcode() != Instruction::Xor) return none;
  Type* t = x->getType();
  Type* i64 = Type::getInt64Ty(t->getContext());
  if (!widened && t != i64) return none;  // sign-extended: another range
  Value* var = x->getOperand(0);
  Value* c = x->getOperand(1);
  if (!se.isLoopInvariant(se.getSCEV(c), l)) std::swap(var, c);
  auto* ar = dyn_cast<SCEVAddRecExpr>(se.getSCEV(var));
  auto* c_inst = dyn_cast<Instruction>(c);
  if (!se.isLoopInvariant(se.getSCEV(c), l) || (c_inst != nullptr && l->contains(c_inst)) ||
      ar == nullptr || ar->getLoop() != l || !ar->isAffine() || !ar->getStepRecurrence(se)->isOne())
    return none;
  Instruction* where = l->getLoopPreheader()->getTerminator();
  if (!expander.isSafeToExpandAt(ar->getStart(), where) || !expander.isSafeToExpandAt(btc, where))
    return none;
  IRBuilder<> b(where);
  // x runs from x0 up by one for btc + 1 iterations; it must not wrap in its width.
  Value* x0 = expander.expandCodeFor(ar->getStart(), t, where);
  Value* count = expander.expandCodeFor(btc, i64, where);
  const unsigned bits = t->getIntegerBitWidth();
  Value* x0_64 = b.CreateZExtOrTrunc(x0, i64);
  Value* room = bits >= 64 ? b.CreateNot(x0_64)
                           : b.CreateSub(b.getInt64((std::uint64_t{1} << bits) - 1), x0_64);
  Value* fits = b.CreateICmpULE(count, room);
  Value* x1 = b.CreateAdd(x0, b.CreateZExtOrTrunc(count, t));
  Value* d = b.CreateXor(x0, x1);
  Value* lz = b.CreateBinaryIntrinsic(Intrinsic::ctlz, d, b.getFalse());
  Value* m = b.CreateSelect(b.CreateICmpEQ(d, ConstantInt::get(t, 0)), ConstantInt::get(t, 0),
                            b.CreateLShr(Constant::getAllOnesValue(t), lz));
  Value* y = b.CreateXor(x0, c);
  // A wrapping x: a range far larger than any check accepts, so the loop runs probed.
  Value* lo = b.CreateSelect(fits, b.CreateZExtOrTrunc(b.CreateAnd(y, b.CreateNot(m)), i64),
                             b.getInt64(0));
  Value* hi = b.CreateSelect(fits, b.CreateZExtOrTrunc(b.CreateOr(y, m), i64),
                             b.getInt64(std::uint64_t{1} << 40));
  const DataLayout& dl = where->getModule()->getDataLayout();
  const SCEV* scale = se.getConstant(i64, dl.getTypeAllocSize(gep->getSourceElementType()));
  const SCEV* p = se.getSCEV(gep->getPointerOperand());
  return {se.getAddExpr(p, se.getMulExpr(scale, se.getSCEV(lo))),
          se.getAddExpr(p, se.getMulExpr(scale, se.getSCEV(hi)))};
}

// Grid-stride loops, `for (i = gid; i < n; i += get_global_size(0))`: the step is not a
// constant, so SCEV cannot count the iterations (i might wrap past n and go on). Where the IV D
// the latch compares, D = {d0,+,s}, cannot wrap while it is below n (n - 1 + s fits in D's type:
// assumed, and checked at the loop's entry), every value D has in an iteration lies in
// [d0, n - 1 + s]: each backedge taken saw D < n, and the last iteration's D is one step past
// such a value. An access whose address moves by m steps of D's (m a constant) then lies between
// its first address and first + m * (n - 1 + s - d0): a bound rather than its last address, at
// most one step past it, and invariant in the loop around (the nest check checks the union over
// a group's work-items once). Other exits only end the loop sooner.
// v widened to `to` as a compare of that signedness reads it (a no-op where already as wide).
const SCEV* widen_as_compared(ScalarEvolution& se, const SCEV* v, Type* to, bool is_signed) {
  return is_signed ? se.getNoopOrSignExtend(v, to) : se.getNoopOrZeroExtend(v, to);
}

std::optional<StridedExit> strided_exit(Loop* l, ScalarEvolution& se) {
  BasicBlock* latch = l->getLoopLatch();
  if (latch == nullptr || !l->isLoopExiting(latch)) return std::nullopt;
  auto* br = dyn_cast<BranchInst>(latch->getTerminator());
  auto* cmp = br != nullptr && br->isConditional() ? dyn_cast<ICmpInst>(br->getCondition())
                                                   : nullptr;
  if (cmp == nullptr) return std::nullopt;
  // The predicate under which the loop goes on, with D on the left.
  ICmpInst::Predicate on = cmp->getPredicate();
  if (br->getSuccessor(0) != l->getHeader()) on = ICmpInst::getInversePredicate(on);
  const SCEV* lhs = se.getSCEV(cmp->getOperand(0));
  const SCEV* n = se.getSCEV(cmp->getOperand(1));
  if (se.isLoopInvariant(lhs, l)) {
    std::swap(lhs, n);
    on = ICmpInst::getSwappedPredicate(on);
  }
  auto* d = dyn_cast<SCEVAddRecExpr>(lhs);
  if ((on != ICmpInst::ICMP_ULT && on != ICmpInst::ICMP_SLT) || d == nullptr ||
      d->getLoop() != l || !d->isAffine() || !d->getType()->isIntegerTy() ||
      !se.isLoopInvariant(n, l))
    return std::nullopt;
  const bool is_signed = on == ICmpInst::ICMP_SLT;
  const unsigned bits = d->getType()->getIntegerBitWidth();
  if (bits > 64 || (bits == 64 && is_signed)) return std::nullopt;
  Type* i64 = Type::getInt64Ty(l->getHeader()->getContext());
  auto widen = [&](const SCEV* v) { return widen_as_compared(se, v, i64, is_signed); };
  const SCEV* s = d->getStepRecurrence(se);
  StridedExit e{d, widen(d->getStart()), widen(s), nullptr, nullptr, is_signed, {}};
  const SCEV* zero = se.getZero(d->getType());
  e.assumed.push_back(se.getComparePredicate(ICmpInst::ICMP_NE, n, zero));
  if (bits == 64) {  // s <= ~(n - 1): n - 1 + s does not wrap
    e.dmax = se.getAddExpr(se.getAddExpr(n, s), se.getMinusOne(i64));
    e.assumed.push_back(se.getComparePredicate(
        ICmpInst::ICMP_ULE, s, se.getNotSCEV(se.getMinusSCEV(n, se.getOne(i64)))));
  } else {  // in i64, where n - 1 + s cannot wrap: at most D's type's greatest value
    e.dmax = se.getAddExpr(se.getAddExpr(widen(n), e.step), se.getMinusOne(i64));
    const APInt top = is_signed ? APInt::getSignedMaxValue(bits) : APInt::getMaxValue(bits);
    e.top = se.getConstant(top.zext(64));
    e.assumed.push_back(se.getComparePredicate(is_signed ? ICmpInst::ICMP_SLE : ICmpInst::ICMP_ULE,
                                               e.dmax, e.top));
    if (is_signed) e.assumed.push_back(se.getComparePredicate(ICmpInst::ICMP_SGE, s, zero));
  }
  // d0 <= n - 1 + s and not too far below it: m * (dmax - d0) cannot wrap for |m| <= 2^16.
  e.assumed.push_back(se.getComparePredicate(ICmpInst::ICMP_ULE, se.getMinusSCEV(e.dmax, e.d0),
                                             se.getConstant(i64, std::uint64_t{1} << 40)));
  return e;
}

// InstCombine turns a 32-bit counter stepped by a 64-bit size (`i += get_global_size(0)` with an
// int or uint i) into a 64-bit PHI whose low half is the counter: p' = ext(trunc(p)) + s, the
// extension written `and p, 0xffffffff` or `ashr (shl p, 32), 32`, and the compare on trunc(p').
// SCEV sees no recurrence in that. Loop l gets the counter back as a 32-bit PHI q (q' = q +
// trunc(s)); the extension becomes ext(q) and trunc(p') becomes q'. The same values: trunc(p)
// is q at every iteration, by induction.
void narrow_counters(Loop* l) {
  using namespace llvm::PatternMatch;
  BasicBlock* latch = l->getLoopLatch();
  BasicBlock* header = l->getHeader();
  if (latch == nullptr) return;
  SmallVector<PHINode*, 4> phis;
  for (PHINode& p : header->phis()) phis.push_back(&p);
  for (PHINode* p : phis) {
    if (!p->getType()->isIntegerTy(64) || p->getNumIncomingValues() != 2) continue;
    const unsigned from_latch = p->getIncomingBlock(0) == latch ? 0 : 1;
    if (p->getIncomingBlock(from_latch) != latch) continue;
    BasicBlock* entering = p->getIncomingBlock(1 - from_latch);
    auto* next = dyn_cast<BinaryOperator>(p->getIncomingValue(from_latch));
    if (next == nullptr || next->getOpcode() != Instruction::Add) continue;
    auto extension = [&](Value* v, bool* is_signed) {
      *is_signed = match(v, m_AShr(m_Shl(m_Specific(p), m_SpecificInt(32)), m_SpecificInt(32)));
      return *is_signed || match(v, m_And(m_Specific(p), m_SpecificInt(0xffffffffu)));
    };
    bool is_signed = false;
    Value* ext = next->getOperand(0);
    Value* step = next->getOperand(1);
    if (!extension(ext, &is_signed)) {
      std::swap(ext, step);
      if (!extension(ext, &is_signed)) continue;
    }
    if (!l->isLoopInvariant(step) || !isa<Instruction>(ext)) continue;
    Type* i32 = Type::getInt32Ty(p->getContext());
    IRBuilder<> eb(entering->getTerminator());
    Value* q0 = eb.CreateTrunc(p->getIncomingValue(1 - from_latch), i32);
    Value* q_step = eb.CreateTrunc(step, i32);  // invariant: defined before the loop
    PHINode* q = PHINode::Create(i32, 2, "mmu.counter", &header->front());
    IRBuilder<> nb(next->getNextNode());
    Value* q_next = nb.CreateAdd(q, q_step);
    q->addIncoming(q0, entering);
    q->addIncoming(q_next, latch);
    IRBuilder<> hb(&*header->getFirstInsertionPt());
    ext->replaceAllUsesWith(is_signed ? hb.CreateSExt(q, p->getType()) : hb.CreateZExt(q, p->getType()));
    SmallVector<User*, 4> users(next->users());
    for (User* u : users)
      if (auto* t = dyn_cast<TruncInst>(u); t != nullptr && t->getType() == i32)
        t->replaceAllUsesWith(q_next);
  }
}

namespace {

// In an address over a D narrower than 64 bits, the widening (sign- or zero-, as the compare
// reads D) of a recurrence X = {x0,+,s} with D's step -- D itself, D's value before the step (the
// IV a rotated loop's body uses), i - lag -- as the i64 recurrence it is while X does not wrap
// either: X moves as D does, so its last value is at most x0 + (n - 1 + s - d0), assumed to fit
// in D's type.
class StridedWidener : public SCEVRewriteVisitor<StridedWidener> {
 public:
  StridedWidener(ScalarEvolution& se, const StridedExit& e, SmallVectorImpl<const SCEVPredicate*>& assumed)
      : SCEVRewriteVisitor(se), e_(e), assumed_(assumed) {}
  const SCEV* visitSignExtendExpr(const SCEVSignExtendExpr* x) {
    return e_.is_signed ? widened(x->getOperand(), x) : x;
  }
  const SCEV* visitZeroExtendExpr(const SCEVZeroExtendExpr* x) {
    return e_.is_signed ? x : widened(x->getOperand(), x);
  }

 private:
  const SCEV* widened(const SCEV* op, const SCEV* as_is) {
    auto* x = dyn_cast<SCEVAddRecExpr>(op);
    if (x == nullptr || x->getLoop() != e_.iv->getLoop() || !x->isAffine() ||
        x->getStepRecurrence(SE) != e_.iv->getStepRecurrence(SE) || as_is->getType() != e_.d0->getType())
      return as_is;
    const SCEV* x0 = widen_as_compared(SE, x->getStart(), as_is->getType(), e_.is_signed);
    if (x != e_.iv)
      assumed_.push_back(SE.getComparePredicate(
          e_.is_signed ? ICmpInst::ICMP_SLE : ICmpInst::ICMP_ULE,
          SE.getAddExpr(x0, SE.getMinusSCEV(e_.dmax, e_.d0)), e_.top));
    return SE.getAddRecExpr(x0, e_.step, x->getLoop(), SCEV::FlagAnyWrap);
  }
  const StridedExit& e_;
  SmallVectorImpl<const SCEVPredicate*>& assumed_;
};

}  // namespace

// The first address and the bound (StridedExit) of access `at` in a grid-stride loop, and what
// they assume; nulls where its address does not move by a constant number of D's steps.
std::pair<const SCEV*, const SCEV*> strided_range(const StridedExit& e, const SCEV* at, Loop* l,
                                                  ScalarEvolution& se,
                                                  SmallVectorImpl<const SCEVPredicate*>& assumed) {
  const std::pair<const SCEV*, const SCEV*> none{nullptr, nullptr};
  if (e.iv->getType()->getIntegerBitWidth() < 64) at = StridedWidener(se, e, assumed).visit(at);
  auto* ar = dyn_cast<SCEVAddRecExpr>(at);
  if (ar == nullptr || ar->getLoop() != l || !ar->isAffine()) return none;
  const SCEV* rs = ar->getStepRecurrence(se);
  std::int64_t m = 0;
  if (rs == e.step) {
    m = 1;
  } else if (auto* mul = dyn_cast<SCEVMulExpr>(rs);
             mul != nullptr && mul->getNumOperands() == 2 && mul->getOperand(1) == e.step &&
             isa<SCEVConstant>(mul->getOperand(0))) {
    m = cast<SCEVConstant>(mul->getOperand(0))->getAPInt().getSExtValue();
  }
  if (m == 0 || m > (1 << 16) || m < -(1 << 16)) return none;
  const SCEV* first = ar->getStart();
  Type* i64 = e.dmax->getType();
  const SCEV* span = se.getMulExpr(se.getConstant(i64, static_cast<std::uint64_t>(m), true),
                                   se.getMinusSCEV(e.dmax, e.d0));
  return {first, se.getAddExpr(first, span)};
}

namespace {

// The addresses a loop's access can reach when its address is invariant plus c * (x /u d), with
// x an affine recurrence of loop l that rises by a constant step (without wrapping: assumed and
// checked), d invariant and c a small positive constant: a row's bias `b[i / cols]`, scan's
// `sums[i / per_block - 1]`. The quotient rises with x, so the addresses lie between those at
// x's first and last value. The quotients are computed in l's preheader (with d = 0 read as 1:
// the loop itself would divide by zero), and a span of quotients over 2^40 makes the range too
// large for any check. Returns the first and last address's SCEVs, or nulls.
class ReplaceNode : public SCEVRewriteVisitor<ReplaceNode> {
 public:
  ReplaceNode(ScalarEvolution& se, const SCEV* from, const SCEV* to)
      : SCEVRewriteVisitor(se), from_(from), to_(to) {}
  const SCEV* visit(const SCEV* s) { return s == from_ ? to_ : SCEVRewriteVisitor::visit(s); }

 private:
  const SCEV* from_;
  const SCEV* to_;
};

}  // namespace

std::pair<const SCEV*, const SCEV*> quotient_index_range(const SCEV* at, Loop* l,
                                                         const SCEV* btc, ScalarEvolution& se,
                                                         SCEVExpander& expander,
                                                         PredicatedScalarEvolution& pse) {
  const std::pair<const SCEV*, const SCEV*> none{nullptr, nullptr};
  auto* sum = dyn_cast<SCEVAddExpr>(at);
  if (sum == nullptr) return none;
  const SCEVUDivExpr* q = nullptr;
  for (const SCEV* term : sum->operands()) {
    if (se.isLoopInvariant(term, l)) continue;
    const SCEV* t = term;
    if (auto* mul = dyn_cast<SCEVMulExpr>(t); mul != nullptr && mul->getNumOperands() == 2) {
      auto* c = dyn_cast<SCEVConstant>(mul->getOperand(0));
      if (c == nullptr || c->getAPInt().isNegative() || c->getAPInt().ugt(1 << 16)) return none;
      t = mul->getOperand(1);
    }
    if (auto* z = dyn_cast<SCEVZeroExtendExpr>(t)) t = z->getOperand();
    auto* div = dyn_cast<SCEVUDivExpr>(t);
    if (div == nullptr || q != nullptr) return none;  // one quotient, the only varying term
    q = div;
  }
  if (q == nullptr) return none;
  // (A 32-bit id, widened: its recurrence assumes no wrap, as the affine accesses' do.)
  SmallPtrSet<const SCEVPredicate*, 4> assumed;
  auto* x = dyn_cast<SCEVAddRecExpr>(q->getLHS());
  if (x == nullptr) x = se.convertSCEVToAddRecWithPredicates(q->getLHS(), l, assumed);
  auto* step = x != nullptr ? dyn_cast<SCEVConstant>(x->getStepRecurrence(se)) : nullptr;
  if (x == nullptr || x->getLoop() != l || !x->isAffine() || step == nullptr ||
      step->getAPInt().isNegative() || !se.isLoopInvariant(q->getRHS(), l))
    return none;
  Instruction* where = l->getLoopPreheader()->getTerminator();
  const SCEV* x_last = x->evaluateAtIteration(btc, se);
  if (!expander.isSafeToExpandAt(x->getStart(), where) || !expander.isSafeToExpandAt(x_last, where) ||
      !expander.isSafeToExpandAt(q->getRHS(), where))
    return none;
  for (const SCEVPredicate* p : assumed) pse.addPredicate(*p);
  if (!x->hasNoUnsignedWrap())
    pse.addPredicate(*se.getWrapPredicate(x, SCEVWrapPredicate::IncrementNUSW));
  Type* t = x->getType();
  IRBuilder<> b(where);
  Value* d = expander.expandCodeFor(q->getRHS(), t, where);
  d = b.CreateSelect(b.CreateICmpEQ(d, ConstantInt::get(t, 0)), ConstantInt::get(t, 1), d);
  Value* q0 = b.CreateUDiv(expander.expandCodeFor(x->getStart(), t, where), d);
  Value* q1 = b.CreateUDiv(expander.expandCodeFor(x_last, t, where), d);
  // Quotients far apart: a last one so far off that no check takes the range.
  Value* near = b.CreateICmpULE(b.CreateSub(q1, q0), ConstantInt::get(t, std::uint64_t{1} << 40));
  q1 = b.CreateSelect(near, q1, b.CreateAdd(q0, ConstantInt::get(t, std::uint64_t{1} << 50)));
  return {ReplaceNode(se, q, se.getSCEV(q0)).visit(at), ReplaceNode(se, q, se.getSCEV(q1)).visit(at)};
}

// An address's SCEV as the range checks see it: through address-space casts, PHIs of one index.
const SCEV* address_scev(ScalarEvolution& se, Value* ptr) {
  return SamePhiRewriter(se, 4).visit(se.getSCEV(through_addrspace_casts(ptr)));
}

}  // namespace hetmm::spirv::mmu
