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
#include "device/device_backend.hpp"
#include "os/asymmetric_fence.hpp"
#include "spirv/context_ir.hpp"
#include "spirv/kernel_context.hpp"
#include "spirv/passes.hpp"

#include "hetmm/hetmm.hpp"

#include <llvm/Analysis/AssumptionCache.h>
#include <llvm/Analysis/LoopInfo.h>
#include <llvm/Analysis/ScalarEvolution.h>
#include <llvm/Analysis/ScalarEvolutionExpressions.h>
#include <llvm/Analysis/TargetLibraryInfo.h>
#include <llvm/Analysis/TargetTransformInfo.h>
#include <llvm/ADT/SmallPtrSet.h>
#include <llvm/ADT/Triple.h>
#include <llvm/IR/Dominators.h>
#include <llvm/Analysis/ValueTracking.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Instructions.h>
#include <llvm/IR/IntrinsicInst.h>
#include <llvm/IR/MDBuilder.h>
#include <llvm/IR/Operator.h>
#include <llvm/IR/PatternMatch.h>
#include <llvm/IR/Module.h>
#include <llvm/Transforms/Utils/BasicBlockUtils.h>
#include <llvm/Transforms/Utils/Cloning.h>
#include <llvm/Transforms/Utils/LoopUtils.h>
#include <llvm/Transforms/Utils/LowerMemIntrinsics.h>
#include <llvm/Transforms/Utils/ScalarEvolutionExpander.h>

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <tuple>

namespace hetmm::spirv {
namespace {

using namespace llvm;
namespace pte = hetmm::device::pte;

bool device_space(unsigned as) { return as == 1 || as == 2 || as == 4; }

bool needs_mmu(Value* ptr) {
  auto* t = dyn_cast<PointerType>(ptr->getType());
  if (t == nullptr || !device_space(t->getAddressSpace())) return false;
  // Program-scope variables live in JIT memory, not in the process data the device mirrors.
  return !isa<GlobalVariable>(getUnderlyingObject(ptr, 0));
}

struct Runtime {
  FunctionCallee load, store, atomic, refill, range, local_range;
};

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

// The TLB probe before `b`'s insertion point: whether the access may run in place (system
// memory, J1) or in a device frame (local), and the frame's host address.
struct Probe {
  Value* in_place;    // i1
  Value* local;       // i1
  Value* host;        // i64: the frame address of va when local
  Value* dev_epoch;   // i64: the shootdown epoch the probe saw
  Value* dev_epoch_ptr;
  Value* epoch_ok;    // i1: the TLB holds translations of that epoch
};

// A block entry read for [lo, last] (J2, J4): `covers` when the entry is lo's block's, of
// this epoch, and its run (block_run: first | last << 32, page indices) holds every page of
// [lo, last] (one block); the entry's bits; the run's process addresses, [run_lo, run_lo +
// run_len), for kept answers (J6). In-place entries and runs of frames alike have runs.
struct BlockEntry {
  Value* covers;
  Value* bits;
  Value* block;
  Value* run_lo;
  Value* run_len;
};
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

// The block-TLB probe (J2), on a page-TLB miss: does va's block entry hold a run of pages
// mapped in place (the whole block, or the part of it a buffer or the heap covers), with the
// needed right in this epoch, covering [lo, last]? Then the access runs in place.
struct InPlaceProbe {
  Value* hit;
  Value* run_lo;
  Value* run_len;
};
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

// The block-TLB probe for a range in device frames (J4): [lo, last] in one block whose entry
// says its pages are in one run of frames with the needed right (the run: block_run).
struct LocalProbe {
  Value* hit;           // i1: the range lies in a run of frames with the right
  Value* delta;         // i64: frame address - process address there
  Value* not_in_place;  // i1: the block entry says the range is in frames (so not in place)
  Value* in_place;      // i1: the block entry says the range is in place (so not in frames)
  Value* run_lo;        // i64: where hit, the process addresses the run covers: [run_lo,
  Value* run_len;       //      run_lo + run_len), all at `delta`
};
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

// The epochs: the device's shootdown epoch and the one the worker's TLBs hold.
Probe emit_epochs(IRBuilder<>& b, Value* ctx) {
  Type* i64 = b.getInt64Ty();
  Type* i64p = i64->getPointerTo();
  Probe p;
  p.dev_epoch_ptr = load_ctx_field(b, ctx, ctx_offset::device_epoch, i64p);
  LoadInst* dev_epoch = b.CreateAlignedLoad(i64, p.dev_epoch_ptr, Align(8));
  dev_epoch->setAtomic(AtomicOrdering::Monotonic);
  p.dev_epoch = dev_epoch;
  Value* tlb_epoch = b.CreateAlignedLoad(i64, load_ctx_field(b, ctx, ctx_offset::tlb_epoch, i64p), Align(8));
  p.epoch_ok = b.CreateICmpEQ(dev_epoch, tlb_epoch);
  return p;
}

// The page TLB's entry for [lo, last] when both lie in one page: hit when it holds that page in
// this epoch with (bits & mask) == want; delta = frame address - process address there.
struct PageEntry {
  Value* hit;
  Value* delta;
  Value* same;  // i1: the entry holds that page in this epoch
  Value* bits;  // i64: its PTE
};
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

// A run of pages an access or a check found in its block entry, kept (J6): process addresses
// [lo, lo + len), at `delta` for a run of frames. A probed access of a held loop keeps the run
// of frames its last probe found: while the loop holds `active`, the worker's block entries are
// those of the published epoch (J5), so the run stays as the entry said; its next access in the
// run is a compare. Emptied (len 0) at every entry of the loop.
struct KeptRun {
  AllocaInst* lo;
  AllocaInst* len;
  AllocaInst* delta;
};

// A probed access outside held loops keeps the run of frames its last probe found, with the
// epoch it found it in (rewrite): valid while the epoch has not moved.
struct KeptFrames {
  KeptRun run;
  AllocaInst* epoch;  // i64; ~0 (never an epoch) until a run is kept
};

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

// Rewrites one access into head / in-place / local / slow / join blocks.
void rewrite(Instruction* inst, Value* ptr, Value* range_ok, const Runtime& rt,
             const DataLayout& dl, bool keep) {
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
  Value* va_last = span > 1 ? b.CreateAdd(va, b.getInt64(span - 1)) : va;
  KeptRun kept{};
  if (keep) {
    kept = kept_in_place(f);
    b.CreateCondBr(in_kept_run(b, va, va_last, kept), in_place_bb, probe_bb);
  } else {
    b.CreateBr(probe_bb);
  }
  b.SetInsertPoint(probe_bb);
  PHINode* attempt = b.CreatePHI(b.getInt32Ty(), 2, "mmu.attempt");
  attempt->addIncoming(b.getInt32(0), kept_bb);
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
    PHINode* phi = b.CreatePHI(inst->getType(), 3);
    inst->replaceAllUsesWith(phi);
    phi->addIncoming(inst, in_place_bb);
    phi->addIncoming(local_inst, local_bb);
    phi->addIncoming(slow_result, slow_bb);
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

// One range check before `where`, and-ed into `ok`: inline when [lo, hi) lies in one block the
// worker's block TLB holds in place (J2; the common case of a work-group's loop over a row),
// else through hetmm_jit_range. A loop over 64 work-items of a stencil costs a few
// instructions, not seven calls.
Value* emit_range_check(Instruction* where, Value* ctx, Value* epoch_ok, Value* lo, Value* hi,
                        bool write, Value* ok, const Runtime& rt, DominatorTree& dt,
                        LoopInfo& li, const KeptRun* kept_run = nullptr,
                        bool keep_called = false) {
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

// A range checked for the device-frame version of a loop: the access, its range (expanded in the
// in-place check's block, which dominates what follows) and whether it writes.
struct LocalRange {
  std::vector<Instruction*> insts;  // the accesses the range covers
  Value* lo;
  Value* hi;
  bool write;
  bool invariant = false;  // the same range at every entry of the loop (its parent's invariant)
  const SCEV* lo_s = nullptr;  // lo and hi before expansion (expand_bounds)
  const SCEV* hi_s = nullptr;
  Value* skip = nullptr;  // i1: the accesses do not run in this loop entry (skip_terms)
};

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

// A loop entered again and again over the same range (the centroids of k-means, a filter's
// taps: invariant in the enclosing work-item loop) keeps the last passing answer of its check in
// the function's frame, with the epoch it was found in: within one epoch nothing invalidated
// (a page's residency or a frame changes only with an invalidation, which bumps the epoch), so
// the answer holds, and the check is a load and a compare. Only passing answers are kept: a
// range may become mappable without an invalidation.
struct CheckCache {
  AllocaInst* epoch;   // i64: the epoch of the kept answer; ~0 (never an epoch) when none
  AllocaInst* lo;      // i64: the range it is for (an invariant of the parent loop may still
  AllocaInst* hi;      //      change with the loop around that: the next row of a matmul)
  AllocaInst* answer;  // i64: the answer (in place: 1; frames: the delta)
};
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

// A gather's address, `base[ext(idx)]`: the element's GEP (one index), the extension (zext,
// sext or none) and the index's load, a plain load in loop l.
struct GatherIndex {
  GetElementPtrInst* gep;
  CastInst* ext;
  LoadInst* load;
};
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

// A gather `base[idx[i]]` keeps its probe, and its loads, each a likely cache miss behind the
// probe's branches, barely overlap (5x the bare loop). In the in-place copy of the loop (J1:
// the ranges were found in place), the index a few iterations ahead is read (clamped to the
// index's checked range, so the read stays in it) and its element prefetched: a prefetch never
// faults, and a stale or foreign address costs nothing but the prefetch.
// In the frame version (J5: `frames`), the index ahead is read on its frame (its range's delta)
// and the element's frame found from its block entry, both only while the loop holds `active`
// (after an escape a frame may be gone).
struct FramePrefetch {
  Value* ctx;
  AllocaInst* held;
  std::function<Value*(Instruction*)> delta_of;  // a ranged access's delta in the clone, or null
  const KeptRun* kept = nullptr;                 // the gathered access's kept run (rewrite_held)
};
void prefetch_gathered(Instruction* inst, Value* ptr, Loop* l,
                       const std::vector<std::pair<Instruction*, Value*>>& probed,
                       ValueToValueMapTy& vmap, PredicatedScalarEvolution& pse,
                       ScalarEvolution& se, SCEVExpander& expander, DominatorTree& dt,
                       LoopInfo& li, const FramePrefetch* frames = nullptr) {
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

// An access of a frame loop that also has probed accesses (J5), rewritten once every loop is
// versioned (rewrite_held).
struct HeldAccess {
  Instruction* inst;  // in the clone
  Value* delta;       // a ranged access: its range's delta; a probed one: null
  AllocaInst* held;   // i1: the loop still holds `active` (J5)
  KeptRun kept{};     // a probed access's run (J5)
};

// The block entries' answer for [lo, last] in device frames (J4): its part in lo's block, and
// the part that crosses into the next block (a row of a matrix that does not start at a block),
// each within its block's run. One delta serves both where they are equal: a run of frames
// across chunks that lie side by side, which frame placement arranges
// (device/sim/frame_pool.hpp). Emitted at b, which is left after it.
struct FrameRangeProbe {
  Value* both;        // i1: each part lies in a run of frames the worker knows, with the right
  Value* same_delta;  // i1: at one delta
  Value* delta;       // i64: the first part's delta
  Value* in_place;    // i1: lo's block entry says its part is in place (so not in frames)
  Value* run_lo;      // i64: where both at one delta, the process addresses of the run(s) of
  Value* run_end;     //      frames that hold [lo, last]: [run_lo, run_end), all at `delta`
};
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

// A loop's checks once for the loop around it (the nest check). A loop's own checks run at each
// of its entries: for a work-group's x loop, once per row of work-items, so a 64x4 group of a
// stencil paid them 4 times and a 16x16 tile 16 times, often as much as the row's work. Where
// every range of the loop is affine (or invariant) in the enclosing loop too, the union of its
// values over that loop's iterations is checked once, in that loop's preheader: in place, and
// where not, in device frames. Each entry of the inner loop then tests the answer (and its own
// no-wrap predicate) and checks its own range only where the nest check failed.
// An answer holds for the nest as a row's does for its row: an in-place answer may go stale,
// which J1 tolerates, and a frame answer is used only under a grace period published with the
// epoch read before the nest check read any PTE (J4): an entry that finds the epoch moved runs
// probed.
struct NestCheck {
  Value* in_place = nullptr;    // i1: every range in place (and the nest's no-wrap predicate)
  Value* frames = nullptr;      // i1: every range in one run of frames (null: not checked)
  Value* epoch = nullptr;       // i64: the epoch read before the checks (acquire)
  std::vector<Value*> deltas;   // per range group: its run's delta where `frames`
  Value* gathers_ok = nullptr;  // i1: every J7 gather of the loop in place for the nest
};

// What version_local made: the frame clone of a loop and what its accesses run on.
struct FrameVersion {
  ValueToValueMapTy vmap;          // the loop's values -> the clone's
  std::vector<Value*> deltas;      // per range (group): its run's delta in the clone
  Value* epoch = nullptr;          // i64: the epoch whose grace period the clone holds
  AllocaInst* held = nullptr;      // i1 (J5), with probed accesses only
  std::vector<KeptRun> kept_runs;  // per probed access (J5)
};

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
  LoadInst* epoch = b.CreateAlignedLoad(i64, epoch_ptr, Align(8));
  epoch->setAtomic(AtomicOrdering::Acquire);  // before any PTE the checks read (J2, J4)
  Value* tlb_epoch = b.CreateAlignedLoad(i64, load_ctx_field(b, ctx, ctx_offset::tlb_epoch, i64p),
                                         Align(8));
  Value* epoch_ok = b.CreateICmpEQ(epoch, tlb_epoch);
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

struct StridedExit {
  const SCEVAddRecExpr* iv;  // D, in its own type
  const SCEV* d0;            // D's first value, widened to i64 as the compare reads it
  const SCEV* step;          // s, widened
  const SCEV* dmax;          // n - 1 + s, in i64
  const SCEV* top;           // D's type's greatest value (signed or not, as compared), in i64
  bool is_signed;
  SmallVector<const SCEVPredicate*, 4> assumed;  // checked at the loop's entry
};

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

// The loop-invariant conditions under which an access's block never runs in a loop entry: each
// term (v, negate) skips it when v (or !v) holds. The boundary branch of a stencil, `if (x == 0
// || y == 0 || z == 0 || ...) { out[i] = in[i]; return; }`, guards its taps with the terms y
// == 0, z == 0, ... of the x loop: in a boundary row no tap runs, so their range (which reaches a
// plane before the array) needs no check there. Found on the dominating branches inside the
// loop whose edge to the access is the only way in: an or-chain taken false or an and-chain
// taken true, whose invariant operands decide it for the whole entry.
using Guard = std::vector<std::pair<Value*, bool>>;
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
  std::sort(terms.begin(), terms.end());
  terms.erase(std::unique(terms.begin(), terms.end()), terms.end());
  return terms;
}

// The guard's skip condition, built before `at` (null for none).
Value* emit_skip(Instruction* at, const Guard& g) {
  if (g.empty()) return nullptr;
  IRBuilder<> b(at);
  Value* skip = b.getFalse();
  for (auto [v, negate] : g) skip = b.CreateOr(skip, negate ? b.CreateNot(v) : v);
  return skip;
}

// The ranges a loop's checks cover: the accesses of one kind (read or write) through one base
// pointer share one check over the union of their ranges, so that a 3x3 convolution checks its
// input once, not once per tap. Their distances are rarely constants to SCEV (32-bit indices
// sign-extended, without the no-wrap flags SPIR-V 1.0 cannot carry), so the union is computed at
// run time (umin / umax). The cost: accesses far apart in one array (a[i] and a[i + n/2]) check
// a union that can span blocks whose frames are not one run (inline, the frame check takes two
// adjacent blocks; hetmm_jit_local_range up to 64 at one delta), and run probed where two
// checks would each have passed.
struct AccessRange {
  Instruction* inst;
  const SCEV* first;  // the address at the first and at the last iteration (i64)
  const SCEV* last;
  std::uint64_t bytes;
  const SCEV* base;  // the pointer the address is based on (ScalarEvolution::getPointerBase)
  bool affine = true;  // else a butterfly's partner (xor_index_range): checked on its own, as
                       // its union with i's range may span the array
  Guard skip{};        // where the access never runs (skip_terms): its range needs no check
};
struct RangeGroup {
  const SCEV* lo;
  const SCEV* hi;
  bool write;
  std::vector<Instruction*> insts;
  SmallVector<const SCEV*, 8> los, his;  // the terms of lo's umin and hi's umax
  Guard skip{};                          // its accesses' (one guard a group)
};
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
  Loop* scan = li.AllocateLoop();
  if (parent != nullptr) parent->addChildLoop(scan);
  else li.addTopLevelLoop(scan);
  scan->addBasicBlockToLoop(body, li);
  if (parent != nullptr) parent->addBasicBlockToLoop(done, li);
  return {next_lo, next_hi};
}

// J7: a gather whose index is a ranged load of the same loop (spmv's x[cols[j]], a lookup
// src[idx[i]]) keeps its probe in the in-place copy, its addresses being data. Where the loop is
// short and nothing in it can change the index, the in-place copy first scans the index's range
// for its smallest and largest value (a loop LLVM vectorises): every element the gather reads
// lies in [&base[min], &base[max]], one range check, and a copy of its own runs with the
// gather as a plain load (and unrolls, or vectorises into gathers, as PoCL's does). The scan
// reads the index where that copy will, in place (its checks passed: J1); the loop has no
// atomics and no calls, and its stores lie outside the index's range (checked with the scan).
// A writer racing with the launch (another group, the host) is a data race in OpenCL's model;
// an index it changed still lands in process memory, where a stale address faults home or fails
// and recovers (J1), as any in-place access does.
struct ScanPlan {
  Instruction* inst;  // the gather (a load)
  GatherIndex index;
  const SCEVAddRecExpr* at;  // the index's address in the loop
  // The index as the GEP reads it: sign-extended, or as it is (GEP indices are signed).
  bool signed_index() const { return index.ext == nullptr || isa<SExtInst>(index.ext); }
};

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

// J8: a work-item loop around kernel loops (spmv's rows around a row's nonzeros, k-means' points
// around the centroids) touches some arrays directly, once per work-item (row_ptr[r], y[r],
// points[i]), and probed each such access. Where the address is affine in the work-item loop,
// the range a group touches is checked once in the loop's preheader, in place (J1), and each
// access branches on that answer. The loads among them that bound a kernel loop (a CSR row's
// first and last nonzero) are scanned there on demand for their least and greatest value over
// the group (scan_item_load), so that the nest check covers the kernel loop's ranges for the
// whole group although they depend on data.
struct ItemLoop {
  Loop* loop = nullptr;
  std::unique_ptr<PredicatedScalarEvolution> pse;
  std::vector<AccessRange> ranges;
  Value* ok = nullptr;  // in the preheader: every range in place
  struct Scan {
    LoadInst* load;
    bool is_signed;
    Value* min;
    Value* max;
  };
  std::vector<Scan> scans;
};

// An address's SCEV as the range checks see it: through address-space casts, PHIs of one index.
const SCEV* address_scev(ScalarEvolution& se, Value* ptr) {
  return SamePhiRewriter(se, 4).visit(se.getSCEV(through_addrspace_casts(ptr)));
}

std::map<Loop*, ItemLoop> item_loop_checks(
    const std::vector<std::pair<Instruction*, Value*>>& work, Value* ctx, const Runtime& rt,
    ScalarEvolution& se, SCEVExpander& expander, DominatorTree& dt, LoopInfo& li,
    std::map<Instruction*, Value*>& checks) {
  std::map<Loop*, ItemLoop> items;
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
  for (auto& [w, item] : items) {
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

// The indices J7 scans at a loop's entry: one scan per index load and signedness (x[cols[j]]
// and y[cols[j]] share one), over the loop's iterations, where the loop is short and none of
// its stores lands in an index's range.
struct ScannedIndex {
  LoadInst* load;
  bool is_signed;          // sext, or a GEP index used as it is (GEPs sign-extend)
  Value* first = nullptr;  // i64: the index's process address in the first iteration
  std::int64_t step = 0;
  Value* min = nullptr;    // the scan's answers
  Value* max = nullptr;
};
struct IndexScans {
  Value* count = nullptr;  // i64: the loop's iterations
  Value* go = nullptr;     // i1: at most kScanMax, and no store into an index's range
  std::vector<ScannedIndex> indices;
  std::vector<std::size_t> index_of;  // per plan
};

// A loop entry of more than kScanMax iterations probes instead: its index read twice would cost
// more than the probes it saves.
constexpr std::uint64_t kScanMax = 4096;

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
// [&base[min], &base[max]] in the worker's block entries: where it lies in a run of frames
// (two side by side at one delta where it crosses a block), a copy of the clone of its own runs
// with every access on its frame and no escape, and vectorises. No runtime call: under
// `active` the worker's TLB must stay the published epoch's (J5); a range the entries do not
// cover runs the held clone, whose probes fill them for the next entry.
// Unlike in place (J1), an index that a racing writer changed after the scan must not reach a
// frame outside the checked range (another buffer's data, or a frame since reused): each
// gather clamps its index to [min, max]. OpenCL gives a racing read no defined value; it may
// read a wrong element of the checked range, never another buffer's memory.
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
    FrameRangeProbe probe = emit_frame_range_probe(mb, ctx, lo, last, false, mb.getTrue(), dt, li);
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

// Loop range checks: for the loads and stores of an innermost loop whose addresses are affine
// in the loop (or invariant), one call in the preheader checks that every page of the range
// the loop will touch is mapped in place with the needed right. The accesses then skip the
// probe while that holds: the loop is versioned on the check (version_loop), or, where it cannot
// be, each access branches on it. Returns, per access, the check it branches on (absent: probe
// every time, or versioned).
std::map<Instruction*, Value*> range_checks(Function& f, const Runtime& rt,
                                            const std::vector<std::pair<Instruction*, Value*>>& work,
                                            std::vector<std::pair<Instruction*, Value*>>& cloned,
                                            std::set<Instruction*>& cold) {
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
  std::map<Loop*, ItemLoop> items = item_loop_checks(work, ctx, rt, se, expander, dt, li, checks);
  struct LoopCheck {
    std::unique_ptr<PredicatedScalarEvolution> pse;  // no-wrap assumptions, checked at entry
    std::vector<AccessRange> ranges;
    std::vector<std::pair<Instruction*, Value*>> probed;  // not analysable: probed in both copies
    bool failed = false;
    std::optional<StridedExit> strided;  // where SCEV cannot count the iterations
    bool strided_tried = false;
  };
  std::map<Loop*, LoopCheck> loops;
  std::vector<HeldAccess> held;  // J5: rewritten last
  // Accesses whose range cannot be known (a gather's data-dependent load, atomics) keep their
  // probe in both copies of a versioned loop; the others skip it in the fast copy.
  for (auto& [inst, ptr] : work) {
    Loop* l = li.getLoopFor(inst->getParent());
    if (l == nullptr || !l->isInnermost()) continue;
    LoopCheck& lc = loops[l];
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
  for (auto& [l, lc] : loops) {
    if (lc.failed || lc.ranges.empty()) continue;
    // A guard pays where it drops a range that reaches past what the loop touches anyway: the
    // same array read unguarded too (a stencil's centre beside its taps). An array only ever
    // read under a guard (a tile load under `row < n`) keeps one group and one check: splitting
    // its check behind the guard cost matmul_tiled's frame version a third of its speed.
    {
      std::set<const SCEV*> unguarded;
      for (const AccessRange& r : lc.ranges)
        if (r.skip.empty()) unguarded.insert(r.base);
      for (AccessRange& r : lc.ranges)
        if (!unguarded.count(r.base)) r.skip.clear();
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
      std::sort(terms.begin(), terms.end());
      terms.erase(std::unique(terms.begin(), terms.end()), terms.end());
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

}  // namespace

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
    std::map<Instruction*, Value*> checks = range_checks(f, rt, work, cloned, cold);
    work.insert(work.end(), cloned.begin(), cloned.end());
    for (auto& [inst, ptr] : work) {
      auto it = checks.find(inst);
      rewrite(inst, ptr, it == checks.end() ? nullptr : it->second, rt, dl, !cold.count(inst));
    }
    rewritten += work.size();
  }
  return rewritten;
}

}  // namespace hetmm::spirv
