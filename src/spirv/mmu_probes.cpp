// The MMU rewrite's inline probes (kernel_context.hpp, J2, J4, J6): the worker's page and
// block TLB entries read in the kernel's own code, the shootdown protocol's publish, and the
// runs of pages an access or a check keeps from one probe to the next.
#include "os/asymmetric_fence.hpp"
#include "spirv/mmu_ir.hpp"

#include "hetmm/hetmm.hpp"

namespace hetmm::spirv::mmu {

bool device_space(unsigned as) { return as == 1 || as == 2 || as == 4; }

bool needs_mmu(Value* ptr) {
  auto* t = dyn_cast<PointerType>(ptr->getType());
  if (t == nullptr || !device_space(t->getAddressSpace())) return false;
  // Program-scope variables live in JIT memory, not in the process data the device mirrors.
  return !isa<GlobalVariable>(getUnderlyingObject(ptr, 0));
}

Runtime declare_runtime(Module& m) {
  LLVMContext& c = m.getContext();
  Type* i64 = Type::getInt64Ty(c);
  Type* i32 = Type::getInt32Ty(c);
  Type* i8p = Type::getInt8PtrTy(c);
  Type* v = Type::getVoidTy(c);
  return {m.getOrInsertFunction("hetmm_jit_load", FunctionType::get(v, {i8p, i64, i8p, i64}, false)),
          m.getOrInsertFunction("hetmm_jit_store", FunctionType::get(v, {i8p, i64, i8p, i64}, false)),
          m.getOrInsertFunction("hetmm_jit_atomic",
                                FunctionType::get(i64, {i8p, i64, i32, i64, i64, i64}, false)),
          m.getOrInsertFunction("hetmm_jit_refill",
                                FunctionType::get(i64, {i8p, i64, i64, i64}, false)),
          m.getOrInsertFunction("hetmm_jit_range",
                                FunctionType::get(i64, {i8p, i64, i64, i64}, false)),
          m.getOrInsertFunction("hetmm_jit_local_range",
                                FunctionType::get(i64, {i8p, i64, i64, i64}, false))};
}

BlockEntry read_block_entry(IRBuilder<>& b, Value* ctx, Value* lo, Value* last, Value* epoch_ok) {
  Type* i64 = b.getInt64Ty();
  auto k = [&](std::uint64_t v) { return ConstantInt::get(i64, v); };
  Value* block = b.CreateLShr(lo, k(21));
  Value* slot = b.CreateAnd(block, k(detail::WorkerContext::kBlockTlbEntries - 1));
  Value* table = load_ctx_field(b, ctx, ctx_offset::block_tlb, i64->getPointerTo());
  Value* entry = b.CreateInBoundsGEP(i64, table, b.CreateShl(slot, k(1)));
  Value* tag = b.CreateAlignedLoad(i64, entry, Align(8));
  Value* bits = b.CreateAlignedLoad(i64, b.CreateConstInBoundsGEP1_64(i64, entry, 1), Align(8));
  Value* run = b.CreateAlignedLoad(
      i64, b.CreateInBoundsGEP(i64, load_ctx_field(b, ctx, ctx_offset::block_run, i64->getPointerTo()),
                               slot),
      Align(8));
  Value* run_first = b.CreateAnd(run, k(0xffffffff));
  Value* run_last = b.CreateLShr(run, k(32));
  Value* covers = b.CreateAnd(epoch_ok, b.CreateICmpEQ(block, b.CreateLShr(last, k(21))));
  covers = b.CreateAnd(covers, b.CreateICmpEQ(tag, block));
  covers = b.CreateAnd(covers,
                       b.CreateICmpUGE(b.CreateAnd(b.CreateLShr(lo, k(12)), k(511)), run_first));
  covers = b.CreateAnd(covers,
                       b.CreateICmpULE(b.CreateAnd(b.CreateLShr(last, k(12)), k(511)), run_last));
  Value* run_lo = b.CreateAdd(b.CreateShl(block, k(21)), b.CreateShl(run_first, k(12)));
  Value* run_len = b.CreateShl(b.CreateSub(b.CreateAdd(run_last, k(1)), run_first), k(12));
  return {covers, bits, block, run_lo, run_len};
}

InPlaceProbe emit_block_probe(IRBuilder<>& b, Value* ctx, Value* lo, Value* last, bool write,
                              Value* epoch_ok) {
  Type* i64 = b.getInt64Ty();
  BlockEntry e = read_block_entry(b, ctx, lo, last, epoch_ok);
  // In place: no kLocal (a run of device frames, J4), and kWrite for a write.
  std::uint64_t mask = pte::kLocal | (write ? pte::kWrite : 0);
  Value* hit = b.CreateAnd(e.covers, b.CreateICmpEQ(b.CreateAnd(e.bits, ConstantInt::get(i64, mask)),
                                                    ConstantInt::get(i64, write ? pte::kWrite : 0)));
  return {hit, e.run_lo, e.run_len};
}

LocalProbe emit_local_block_probe(IRBuilder<>& b, Value* ctx, Value* lo, Value* last, bool write,
                                  Value* epoch_ok) {
  Type* i64 = b.getInt64Ty();
  auto k = [&](std::uint64_t v) { return ConstantInt::get(i64, v); };
  BlockEntry e = read_block_entry(b, ctx, lo, last, epoch_ok);
  std::uint64_t need = pte::kValid | pte::kLocal | (write ? pte::kWrite : 0);
  Value* hit = b.CreateAnd(e.covers, b.CreateICmpEQ(b.CreateAnd(e.bits, k(need)), k(need)));
  Value* delta = b.CreateSub(b.CreateAnd(e.bits, k(pte::kAddrMask)), b.CreateShl(e.block, k(21)));
  Value* not_in_place =
      b.CreateAnd(e.covers, b.CreateICmpNE(b.CreateAnd(e.bits, k(pte::kLocal)), k(0)));
  Value* in_place = b.CreateAnd(e.covers, b.CreateICmpEQ(b.CreateAnd(e.bits, k(pte::kLocal)), k(0)));
  return {hit, delta, not_in_place, in_place, e.run_lo, e.run_len};
}

// The shootdown protocol's publish of `active` (device/sim/worker.hpp): a plain store and a
// compiler barrier where the invalidator fences for both sides (membarrier), else a
// sequentially consistent store. The choice is fixed for the process and part of the kernel
// cache's key (compile.cpp).
void emit_publish(IRBuilder<>& b, Value* value, Value* active) {
  StoreInst* publish = b.CreateAlignedStore(value, active, Align(8));
  if (os::asymmetric_fences()) {
    publish->setAtomic(AtomicOrdering::Monotonic);
    b.CreateFence(AtomicOrdering::SequentiallyConsistent, SyncScope::SingleThread);
  } else {
    publish->setAtomic(AtomicOrdering::SequentiallyConsistent);
  }
}

// The epochs: the device's shootdown epoch and the one the worker's TLBs hold. A check whose
// answer rests on frames reads the device's with acquire, before any PTE it reads (J2, J4).
Probe emit_epochs(IRBuilder<>& b, Value* ctx, AtomicOrdering order) {
  Type* i64 = b.getInt64Ty();
  Type* i64p = i64->getPointerTo();
  Probe p;
  p.dev_epoch_ptr = load_ctx_field(b, ctx, ctx_offset::device_epoch, i64p);
  LoadInst* dev_epoch = b.CreateAlignedLoad(i64, p.dev_epoch_ptr, Align(8));
  dev_epoch->setAtomic(order);
  p.dev_epoch = dev_epoch;
  Value* tlb_epoch = b.CreateAlignedLoad(i64, load_ctx_field(b, ctx, ctx_offset::tlb_epoch, i64p), Align(8));
  p.epoch_ok = b.CreateICmpEQ(dev_epoch, tlb_epoch);
  return p;
}

PageEntry emit_page_entry(IRBuilder<>& b, Value* ctx, Value* lo, Value* last, std::uint64_t want,
                          std::uint64_t mask, Value* epoch_ok) {
  Type* i64 = b.getInt64Ty();
  auto k = [&](std::uint64_t v) { return ConstantInt::get(i64, v); };
  Value* vpn = b.CreateLShr(lo, k(12));
  Value* slot = b.CreateLShr(b.CreateMul(vpn, k(detail::WorkerContext::kTlbHash)),
                             k(64 - detail::WorkerContext::kTlbShift));
  Value* entry = b.CreateInBoundsGEP(i64, load_ctx_field(b, ctx, ctx_offset::tlb, i64->getPointerTo()),
                                     b.CreateShl(slot, k(1)));
  Value* tag = b.CreateAlignedLoad(i64, entry, Align(8));
  Value* bits = b.CreateAlignedLoad(i64, b.CreateConstInBoundsGEP1_64(i64, entry, 1), Align(8));
  Value* same = b.CreateAnd(epoch_ok, b.CreateICmpEQ(vpn, b.CreateLShr(last, k(12))));
  same = b.CreateAnd(same, b.CreateICmpEQ(tag, vpn));
  Value* hit = b.CreateAnd(same, b.CreateICmpEQ(b.CreateAnd(bits, k(mask)), k(want)));
  return {hit, b.CreateSub(b.CreateAnd(bits, k(pte::kAddrMask)), b.CreateShl(vpn, k(12))), same,
          bits};
}

// The page-TLB probe, after emit_epochs.
void emit_page_probe(IRBuilder<>& b, Value* ctx, Value* va, std::uint64_t bytes, bool write,
                     unsigned as, Probe& p) {
  LLVMContext& c = b.getContext();
  Type* i64 = b.getInt64Ty();
  auto k = [&](std::uint64_t v) { return ConstantInt::get(i64, v); };
  PageEntry page = emit_page_entry(b, ctx, va, b.CreateAdd(va, k(bytes - 1)), 0, 0, p.epoch_ok);
  Value* bits = page.bits;
  std::uint64_t mask = pte::kLocal | (write ? pte::kWrite : 0);
  std::uint64_t want = write ? pte::kWrite : 0;
  Value* rights = b.CreateAnd(bits, k(mask));
  p.in_place = b.CreateAnd(page.same, b.CreateICmpEQ(rights, k(want)));
  p.local = b.CreateAnd(page.same, b.CreateICmpEQ(rights, k(want | pte::kLocal)));
  p.host = b.CreateOr(b.CreateAnd(bits, k(pte::kAddrMask)), b.CreateAnd(va, k(4095)));
  if (as == 4) {
    // Generic pointers into private or __local memory are not device memory.
    Value* lo = load_ctx_field(b, ctx, ctx_offset::private_lo, i64);
    Value* span = load_ctx_field(b, ctx, ctx_offset::private_span, i64);
    Value* lbase = b.CreatePtrToInt(load_ctx_field(b, ctx, ctx_offset::local_base, Type::getInt8PtrTy(c)), i64);
    Value* lspan = load_ctx_field(b, ctx, ctx_offset::local_span, i64);
    Value* priv = b.CreateICmpULT(b.CreateSub(va, lo), span);
    Value* local = b.CreateICmpULT(b.CreateSub(va, lbase), lspan);
    p.in_place = b.CreateOr(p.in_place, b.CreateOr(priv, local));
  }
}

// The hidden context: the first parameter of a runner (kernels are inlined into them), the
// fourth from last of every other function (kernel_abi_pass.cpp).
Value* ctx_of(Function& f) {
  if (f.getName().startswith("__hetmm_run_")) return f.getArg(0);
  return f.getArg(f.arg_size() - kHiddenParams);
}

AllocaInst* entry_alloca(Function* f, Type* t) {
  IRBuilder<> b(&*f->getEntryBlock().getFirstInsertionPt());
  return b.CreateAlloca(t);
}

// An i64 in the function's frame holding `value` from its entry on: state kept across a call's
// accesses is never read uninitialised (an undefined compare that an optimiser may fold either
// way).
AllocaInst* entry_i64(Function* f, std::uint64_t value) {
  AllocaInst* slot = entry_alloca(f, Type::getInt64Ty(f->getContext()));
  IRBuilder<> b(slot->getNextNode());
  b.CreateStore(b.getInt64(value), slot);
  return slot;
}

Value* to_i64(IRBuilder<>& b, Value* v, const DataLayout& dl) {
  Type* t = v->getType();
  if (t->isPointerTy()) return b.CreatePtrToInt(v, b.getInt64Ty());
  if (t->isFloatingPointTy())
    v = b.CreateBitCast(v, b.getIntNTy(unsigned(dl.getTypeSizeInBits(t))));
  return b.CreateZExtOrTrunc(v, b.getInt64Ty());
}

Value* from_i64(IRBuilder<>& b, Value* v, Type* t, const DataLayout& dl) {
  if (t->isPointerTy()) return b.CreateIntToPtr(v, t);
  if (t->isFloatingPointTy())
    return b.CreateBitCast(b.CreateTrunc(v, b.getIntNTy(unsigned(dl.getTypeSizeInBits(t)))), t);
  return b.CreateTrunc(v, t);
}

std::uint32_t atomic_op(AtomicRMWInst::BinOp op) {
  using A = AtomicOp;
  switch (op) {
    case AtomicRMWInst::Xchg: return std::uint32_t(A::xchg);
    case AtomicRMWInst::Add: return std::uint32_t(A::add);
    case AtomicRMWInst::Sub: return std::uint32_t(A::sub);
    case AtomicRMWInst::And: return std::uint32_t(A::and_);
    case AtomicRMWInst::Or: return std::uint32_t(A::or_);
    case AtomicRMWInst::Xor: return std::uint32_t(A::xor_);
    case AtomicRMWInst::Max: return std::uint32_t(A::max);
    case AtomicRMWInst::Min: return std::uint32_t(A::min);
    case AtomicRMWInst::UMax: return std::uint32_t(A::umax);
    case AtomicRMWInst::UMin: return std::uint32_t(A::umin);
    case AtomicRMWInst::FAdd: return std::uint32_t(A::fadd) | 0x100;
    case AtomicRMWInst::FSub: return std::uint32_t(A::fsub) | 0x100;
    default:
      throw Error(Errc::invalid_argument, std::string("SPIR-V module: atomic operation ") +
                                              AtomicRMWInst::getOperationName(op).str() +
                                              " is not supported on device memory");
  }
}

// The last run of in-place pages an access (or a range check) found in its block entry with its
// right (J1, J6), kept for the rest of the call (a group, or a run of joined groups): its next
// access in that run is a compare, not the probe's epoch and block-entry loads. An in-place
// answer may go stale, which J1 tolerates, as it does for a loop's range check over the same
// call. One per access: each tends to stay in one array (spmv's x[col[j]], row_ptr[r] and its
// rows' ranges). Empty (len 0) at the call's entry; registers once promoted.
KeptRun kept_in_place(Function* f) { return {entry_i64(f, 0), entry_i64(f, 0), nullptr}; }

// Whether [lo, last] lies in the kept run.
Value* in_kept_run(IRBuilder<>& b, Value* lo, Value* last, const KeptRun& kept) {
  Type* i64 = b.getInt64Ty();
  Value* start = b.CreateLoad(i64, kept.lo);
  Value* len = b.CreateLoad(i64, kept.len);
  return b.CreateAnd(b.CreateICmpULT(b.CreateSub(lo, start), len),
                     b.CreateICmpULT(b.CreateSub(last, start), len));
}

// The kept run after a probe found [run_lo, run_lo + run_len) (at `delta` for frames, else
// null): a run next to the kept one (and, for frames, at the same delta: frames side by side)
// joins it, so that an array across a block boundary (its two blocks' runs) is one kept run
// instead of two that replace each other access by access; any other replaces it.
void keep_joined(IRBuilder<>& b, const KeptRun& kept, Value* run_lo, Value* run_len,
                 Value* delta) {
  Type* i64 = b.getInt64Ty();
  Value* kept_lo = b.CreateLoad(i64, kept.lo);
  Value* kept_len = b.CreateLoad(i64, kept.len);
  Value* some = b.CreateICmpNE(kept_len, b.getInt64(0));
  if (delta != nullptr) some = b.CreateAnd(some, b.CreateICmpEQ(b.CreateLoad(i64, kept.delta), delta));
  Value* after = b.CreateAnd(some, b.CreateICmpEQ(b.CreateAdd(kept_lo, kept_len), run_lo));
  Value* before = b.CreateAnd(some, b.CreateICmpEQ(b.CreateAdd(run_lo, run_len), kept_lo));
  b.CreateStore(b.CreateSelect(after, kept_lo, run_lo), kept.lo);
  b.CreateStore(b.CreateSelect(b.CreateOr(after, before), b.CreateAdd(kept_len, run_len), run_len),
                kept.len);
  if (delta != nullptr) b.CreateStore(delta, kept.delta);
}

// Keeps the probe's run where it hit (else what was kept stays).
void keep_run(IRBuilder<>& b, const KeptRun& kept, Value* hit, Value* run_lo, Value* run_len) {
  Type* i64 = b.getInt64Ty();
  b.CreateStore(b.CreateSelect(hit, run_lo, b.CreateLoad(i64, kept.lo)), kept.lo);
  b.CreateStore(b.CreateSelect(hit, run_len, b.CreateLoad(i64, kept.len)), kept.len);
}

// The bytes a probe must see of an access of `bytes`: 1 where it is naturally aligned (the IR's
// alignment is a promise), since it cannot then straddle a page or a block and its last byte
// lies wherever its first does (runs are whole pages); else all of them.
std::uint64_t probe_span(const Instruction* inst, std::uint64_t bytes) {
  Align align = isa<LoadInst>(inst)          ? cast<LoadInst>(inst)->getAlign()
                : isa<StoreInst>(inst)       ? cast<StoreInst>(inst)->getAlign()
                : isa<AtomicRMWInst>(inst)   ? cast<AtomicRMWInst>(inst)->getAlign()
                                             : cast<AtomicCmpXchgInst>(inst)->getAlign();
  return (bytes != 0 && (bytes & (bytes - 1)) == 0 && bytes <= 4096 && align.value() >= bytes)
             ? 1
             : bytes;
}

// Whether the worker knows va's page is in a device frame, from its block's run of frames or
// its page entry (this epoch).
Value* emit_known_local(IRBuilder<>& b, Value* ctx, Value* va, Value* epoch_ok) {
  Type* i64 = b.getInt64Ty();
  Value* known = emit_local_block_probe(b, ctx, va, va, false, epoch_ok).not_in_place;
  PageEntry page = emit_page_entry(b, ctx, va, va, 0, 0, epoch_ok);
  Value* page_local = b.CreateICmpNE(b.CreateAnd(page.bits, ConstantInt::get(i64, pte::kLocal)),
                                     ConstantInt::get(i64, 0));
  return b.CreateOr(known, b.CreateAnd(page.same, page_local));
}

// Whether [lo, hi) is not empty and lies in the kept run.
Value* range_in_kept_run(IRBuilder<>& b, Value* lo, Value* hi, const KeptRun& kept) {
  return b.CreateAnd(b.CreateICmpULT(lo, hi),
                     in_kept_run(b, lo, b.CreateSub(hi, b.getInt64(1)), kept));
}

}  // namespace hetmm::spirv::mmu
