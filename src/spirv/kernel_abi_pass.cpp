// The kernel ABI pass: turns OpenCL kernels into functions the work-group driver can call.
//
// Why hidden parameters rather than thread-locals or a context global: the same JIT code runs on
// every worker at once, and work-items of a group run either as an IR loop (ids are loop
// variables the optimiser sees) or as fibers (each with its own ids). Passing (ctx, lx, ly, lz)
// down every call keeps ids in registers and lets LLVM fold get_global_id(0) into an add.
#include "spirv/context_ir.hpp"
#include "spirv/kernel_context.hpp"
#include "spirv/passes.hpp"

#include "hetmm/hetmm.hpp"

#include <llvm/Analysis/LoopInfo.h>
#include <llvm/IR/Constants.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Instructions.h>
#include <llvm/IR/Module.h>
#include <llvm/IR/ReplaceConstant.h>

#include <map>
#include <set>

namespace hetmm::spirv {
namespace {

using namespace llvm;

struct Hidden {
  Value* ctx;
  Value* lid[3];
};

Hidden hidden_of(Function* f) {
  unsigned n = f->arg_size();
  return {f->getArg(n - 4), {f->getArg(n - 3), f->getArg(n - 2), f->getArg(n - 1)}};
}

// ctx-><array at offset>[dim], or `fallback` for dim >= 3 (the OpenCL rule for out-of-range
// dimensions: ids 0, sizes 1).
Value* ctx_dim(IRBuilder<>& b, Value* ctx, unsigned offset, Value* dim, std::uint64_t fallback) {
  Type* i64 = b.getInt64Ty();
  if (auto* c = dyn_cast<ConstantInt>(dim)) {
    std::uint64_t d = c->getZExtValue();
    if (d >= 3) return ConstantInt::get(i64, fallback);
    return load_ctx_field(b, ctx, offset + 8 * unsigned(d), i64);
  }
  Value* d64 = b.CreateZExtOrTrunc(dim, i64);
  Value* in_range = b.CreateICmpULT(d64, ConstantInt::get(i64, 3));
  Value* idx = b.CreateSelect(in_range, d64, ConstantInt::get(i64, 0));
  Value* base = ctx_field_ptr(b, ctx, offset, i64);
  Value* v = load_invariant(b, i64, b.CreateInBoundsGEP(i64, base, idx));
  return b.CreateSelect(in_range, v, ConstantInt::get(i64, fallback));
}

Value* local_id(IRBuilder<>& b, const Hidden& h, Value* dim) {
  Type* i64 = b.getInt64Ty();
  if (auto* c = dyn_cast<ConstantInt>(dim)) {
    std::uint64_t d = c->getZExtValue();
    return d < 3 ? h.lid[d] : ConstantInt::get(i64, 0);
  }
  Value* d64 = b.CreateZExtOrTrunc(dim, i64);
  Value* v = b.CreateSelect(b.CreateICmpEQ(d64, ConstantInt::get(i64, 2)), h.lid[2],
                            ConstantInt::get(i64, 0));
  v = b.CreateSelect(b.CreateICmpEQ(d64, ConstantInt::get(i64, 1)), h.lid[1], v);
  return b.CreateSelect(b.CreateICmpEQ(d64, ConstantInt::get(i64, 0)), h.lid[0], v);
}

// The value of a work-item built-in call, or nullptr when `name` is not one.
Value* work_item_builtin(IRBuilder<>& b, const Hidden& h, StringRef name, CallInst* call) {
  namespace o = ctx_offset;
  Value* ctx = h.ctx;
  Type* i64 = b.getInt64Ty();
  auto arg = [&] { return call->getArgOperand(0); };
  if (name == "_Z12get_local_idj") return local_id(b, h, arg());
  if (name == "_Z12get_group_idj") return ctx_dim(b, ctx, o::group_id, arg(), 0);
  if (name == "_Z14get_local_sizej") return ctx_dim(b, ctx, o::local_size, arg(), 1);
  if (name == "_Z23get_enqueued_local_sizej")
    return ctx_dim(b, ctx, o::enqueued_local_size, arg(), 1);
  if (name == "_Z15get_global_sizej") return ctx_dim(b, ctx, o::global_size, arg(), 1);
  if (name == "_Z14get_num_groupsj") return ctx_dim(b, ctx, o::num_groups, arg(), 1);
  if (name == "_Z17get_global_offsetj") return ctx_dim(b, ctx, o::global_offset, arg(), 0);
  if (name == "_Z12get_work_dimv")
    return b.CreateTrunc(load_ctx_field(b, ctx, o::work_dim, i64),
                         call->getType());
  auto global_id = [&](Value* d) {
    Value* g = b.CreateMul(ctx_dim(b, ctx, o::group_id, d, 0),
                           ctx_dim(b, ctx, o::enqueued_local_size, d, 1));
    return b.CreateAdd(b.CreateAdd(g, local_id(b, h, d)),
                       ctx_dim(b, ctx, o::global_offset, d, 0));
  };
  if (name == "_Z13get_global_idj") return global_id(arg());
  // to_global / to_local / to_private (OpenCL 2.0): which memory a generic pointer points
  // into, known to the runtime only by address range (the group's __local arena, the
  // work-items' private memory); null when it is another kind.
  if (name == "__to_global" || name == "__to_local" || name == "__to_private") {
    Value* p = call->getArgOperand(0);
    Value* va = b.CreatePtrToInt(p, i64);
    auto in = [&](unsigned base_off, unsigned span_off) {
      Value* base = load_ctx_field(b, ctx, base_off, i64);
      Value* span = load_ctx_field(b, ctx, span_off, i64);
      return b.CreateICmpULT(b.CreateSub(va, base), span);
    };
    Value* local = in(o::local_base, o::local_span);
    Value* priv = in(o::private_lo, o::private_span);
    Value* keep = name == "__to_local"     ? local
                  : name == "__to_private" ? priv
                                           : b.CreateNot(b.CreateOr(local, priv));
    Type* rt = call->getType();
    Value* converted = b.CreatePointerBitCastOrAddrSpaceCast(p, rt);
    return b.CreateSelect(keep, converted, ConstantPointerNull::get(cast<PointerType>(rt)));
  }
  auto c = [&](unsigned d) { return b.getInt32(d); };
  if (name == "_Z20get_global_linear_idv") {
    // ((gz - oz) * sy + (gy - oy)) * sx + (gx - ox)
    Value* v = nullptr;
    for (int d = 2; d >= 0; --d) {
      Value* rel = b.CreateSub(global_id(c(d)), ctx_dim(b, ctx, o::global_offset, c(d), 0));
      v = v == nullptr ? rel
                       : b.CreateAdd(b.CreateMul(v, ctx_dim(b, ctx, o::global_size, c(d), 1)), rel);
    }
    return v;
  }
  if (name == "_Z19get_local_linear_idv") {
    Value* v = h.lid[2];
    v = b.CreateAdd(b.CreateMul(v, ctx_dim(b, ctx, o::local_size, c(1), 1)), h.lid[1]);
    return b.CreateAdd(b.CreateMul(v, ctx_dim(b, ctx, o::local_size, c(0), 1)), h.lid[0]);
  }
  return nullptr;
}

bool is_barrier(StringRef name) {
  return name.startswith("_Z7barrierj") || name.startswith("_Z18work_group_barrierj");
}

// The functions in `work` and every function that calls one of them, directly or not.
std::set<Function*> with_callers(std::vector<Function*> work) {
  std::set<Function*> all;
  while (!work.empty()) {
    Function* f = work.back();
    work.pop_back();
    if (!all.insert(f).second) continue;
    for (User* u : f->users())
      if (auto* call = dyn_cast<CallInst>(u)) work.push_back(call->getFunction());
  }
  return all;
}

// Functions that reach a barrier, directly or through calls.
std::set<Function*> barrier_users(Module& m) {
  std::vector<Function*> work;
  for (Function& f : m)
    if (f.isDeclaration() && is_barrier(f.getName()))
      for (User* u : f.users())
        if (auto* call = dyn_cast<CallInst>(u)) work.push_back(call->getFunction());
  return with_callers(std::move(work));
}

// Functions that read the shape of their work-group along x, directly or through calls: the
// local id, group id or local size in dimension 0 (or one known only at run time), or the
// local linear id. A kernel that reads none of them (and has no barriers or __local memory)
// cannot tell a run of its groups along x from one wide group: the driver runs such a run as
// one loop (kernel_driver.cpp), global ids unchanged.
std::set<Function*> group_shape_x_readers(Module& m) {
  std::vector<Function*> work;
  for (Function& f : m) {
    if (!f.isDeclaration()) continue;
    StringRef name = f.getName();
    bool linear = name == "_Z19get_local_linear_idv";
    bool per_dim = name == "_Z12get_local_idj" || name == "_Z12get_group_idj" ||
                   name == "_Z14get_local_sizej" || name == "_Z23get_enqueued_local_sizej";
    if (!linear && !per_dim) continue;
    for (User* u : f.users())
      if (auto* call = dyn_cast<CallInst>(u)) {
        auto* dim = linear ? nullptr : dyn_cast<ConstantInt>(call->getArgOperand(0));
        if (dim == nullptr || dim->isZero()) work.push_back(call->getFunction());
      }
  }
  return with_callers(std::move(work));
}

// The same function with (i8* ctx, i64 lx, i64 ly, i64 lz) appended; the body moves over.
Function* with_hidden_params(Function* f) {
  LLVMContext& c = f->getContext();
  FunctionType* ft = f->getFunctionType();
  std::vector<Type*> params(ft->param_begin(), ft->param_end());
  Type* i64 = Type::getInt64Ty(c);
  params.push_back(Type::getInt8PtrTy(c));
  params.insert(params.end(), {i64, i64, i64});
  auto* nft = FunctionType::get(ft->getReturnType(), params, ft->isVarArg());
  Function* nf = Function::Create(nft, f->getLinkage(), f->getAddressSpace(), "", f->getParent());
  nf->takeName(f);
  nf->copyAttributesFrom(f);
  nf->copyMetadata(f, 0);
  nf->getBasicBlockList().splice(nf->begin(), f->getBasicBlockList());
  for (unsigned i = 0; i < f->arg_size(); ++i) {
    f->getArg(i)->replaceAllUsesWith(nf->getArg(i));
    nf->getArg(i)->takeName(f->getArg(i));
  }
  unsigned n = nf->arg_size();
  nf->getArg(n - 4)->setName("hetmm.ctx");
  nf->getArg(n - 3)->setName("hetmm.lx");
  nf->getArg(n - 2)->setName("hetmm.ly");
  nf->getArg(n - 1)->setName("hetmm.lz");
  nf->addParamAttr(n - 4, Attribute::NoAlias);
  nf->addParamAttr(n - 4, Attribute::NoCapture);
  // The context is always there: its invariant loads may then be hoisted out of loops even from
  // code that runs conditionally (region loops recompute ids and group ids in their bodies).
  nf->addParamAttr(n - 4, Attribute::getWithDereferenceableBytes(nf->getContext(),
                                                                 sizeof(KernelContext)));
  nf->addParamAttr(n - 4, Attribute::getWithAlignment(nf->getContext(), Align(8)));
  return nf;
}

// Module-scope __local variables (OpenCL function-scope `__local` declarations) become slices
// of the group's arena: each worker runs its own groups, so one global instance would be shared
// by groups running at once.
std::size_t lower_local_variables(Module& m) {
  const DataLayout& dl = m.getDataLayout();
  std::size_t offset = 0;
  std::vector<GlobalVariable*> locals;
  for (GlobalVariable& g : m.globals())
    if (g.getAddressSpace() == 3 && !g.use_empty()) locals.push_back(&g);
  for (GlobalVariable* g : locals) {
    std::size_t align = std::max<std::size_t>(g->getAlign() ? g->getAlign()->value() : 16, 16);
    offset = (offset + align - 1) / align * align;
    std::size_t at = offset;
    offset += dl.getTypeAllocSize(g->getValueType());
    // Constant-expression users (GEPs into a local array) become instructions first.
    for (bool again = true; again;) {
      again = false;
      for (User* u : make_early_inc_range(g->users())) {
        auto* ce = dyn_cast<ConstantExpr>(u);
        if (ce == nullptr) continue;
        std::vector<Instruction*> insts;
        for (User* cu : ce->users())
          if (auto* i = dyn_cast<Instruction>(cu)) insts.push_back(i);
        for (Instruction* i : insts) convertConstantExprsToInstructions(i, ce);
        again = true;
      }
    }
    for (Use& use : make_early_inc_range(g->uses())) {
      auto* inst = dyn_cast<Instruction>(use.getUser());
      if (inst == nullptr)
        throw Error(Errc::invalid_argument,
                    "SPIR-V module: __local variable " + g->getName().str() +
                        " is used outside a function, which hetmm cannot place per work-group");
      Instruction* where = inst;
      if (auto* phi = dyn_cast<PHINode>(inst)) where = phi->getIncomingBlock(use)->getTerminator();
      IRBuilder<> b(where);
      Hidden h = hidden_of(inst->getFunction());
      Value* base = load_ctx_field(b, h.ctx, ctx_offset::local_base, b.getInt8PtrTy());
      Value* p = b.CreateConstInBoundsGEP1_64(b.getInt8Ty(), base, at);
      p = b.CreateAddrSpaceCast(p, b.getInt8PtrTy(3));
      use.set(b.CreateBitCast(p, g->getType()));
    }
    g->eraseFromParent();
  }
  return offset;
}

// void __hetmm_run_<k>(i8* ctx, i8** args, i64 x0, x1, y0, y1, z0, z1): calls the kernel for
// every local id in the box. args[i] points at argument i's bytes (for pointers: the pointer).
// mark_x: the x loop is the kernel's work-item loop (not for a kernel with barrier regions,
// whose runner runs one whole group per call and whose region loops carry the mark).
Function* make_runner(Module& m, Function* kernel, const std::string& name, bool mark_x) {
  LLVMContext& c = m.getContext();
  Type* i64 = Type::getInt64Ty(c);
  Type* i8p = Type::getInt8PtrTy(c);
  auto* ft = FunctionType::get(Type::getVoidTy(c),
                               {i8p, i8p->getPointerTo(), i64, i64, i64, i64, i64, i64}, false);
  Function* run = Function::Create(ft, GlobalValue::ExternalLinkage, name, m);
  run->addParamAttr(0, Attribute::NoAlias);
  run->addParamAttr(0, Attribute::getWithDereferenceableBytes(c, sizeof(KernelContext)));
  run->addParamAttr(0, Attribute::getWithAlignment(c, Align(8)));
  auto* entry = BasicBlock::Create(c, "entry", run);
  IRBuilder<> b(entry);
  Value* ctx = run->getArg(0);
  Value* args = run->getArg(1);
  unsigned nargs = kernel->arg_size() - kHiddenParams;
  std::vector<Value*> values;
  for (unsigned i = 0; i < nargs; ++i) {
    Argument* param = kernel->getArg(i);
    Type* t = param->getType();
    Value* slot = b.CreateLoad(i8p, b.CreateConstInBoundsGEP1_64(i8p, args, i));
    if (param->hasByValAttr()) {
      values.push_back(b.CreateBitCast(slot, t));
    } else if (t->isPointerTy()) {
      // Loaded as the parameter's own type: an address-space cast from a private pointer here
      // would let InstCombine fold accesses back into address space 0, out of the MMU's sight.
      values.push_back(b.CreateLoad(t, b.CreateBitCast(slot, t->getPointerTo())));
    } else {
      values.push_back(b.CreateAlignedLoad(t, b.CreateBitCast(slot, t->getPointerTo()), Align(1)));
    }
  }
  // for z in [z0,z1) for y in [y0,y1) for x in [x0,x1): kernel(args..., ctx, x, y, z)
  auto loop = [&](Value* lo, Value* hi, const char* label, auto&& body) {
    BasicBlock* pre = b.GetInsertBlock();
    auto* head = BasicBlock::Create(c, std::string(label) + ".head", run);
    auto* inner = BasicBlock::Create(c, std::string(label) + ".body", run);
    auto* done = BasicBlock::Create(c, std::string(label) + ".done", run);
    b.CreateBr(head);
    b.SetInsertPoint(head);
    PHINode* iv = b.CreatePHI(i64, 2, label);
    iv->addIncoming(lo, pre);
    b.CreateCondBr(b.CreateICmpULT(iv, hi), inner, done);
    b.SetInsertPoint(inner);
    body(iv);
    Value* next = b.CreateAdd(iv, ConstantInt::get(i64, 1), "", true, true);
    iv->addIncoming(next, b.GetInsertBlock());
    BranchInst* latch = b.CreateBr(head);
    if (std::string_view(label) == "x" && mark_x)
      latch->setMetadata("llvm.loop", work_item_loop_id(c, 0));
    b.SetInsertPoint(done);
  };
  loop(run->getArg(6), run->getArg(7), "z", [&](Value* z) {
    loop(run->getArg(4), run->getArg(5), "y", [&](Value* y) {
      loop(run->getArg(2), run->getArg(3), "x", [&](Value* x) {
        std::vector<Value*> call_args = values;
        call_args.insert(call_args.end(), {ctx, x, y, z});
        CallInst* call = b.CreateCall(kernel, call_args);
        call->setAttributes(kernel->getAttributes());
      });
    });
  });
  b.CreateRetVoid();
  return run;
}

}  // namespace

MDNode* work_item_loop_id(LLVMContext& c, unsigned region) {
  Metadata* mark = MDNode::get(
      c, {MDString::get(c, kWorkItemLoopMark),
          ConstantAsMetadata::get(ConstantInt::get(Type::getInt32Ty(c), region))});
  // The loop's accesses join this group once they are known (mark_parallel_accesses).
  Metadata* parallel = MDNode::get(c, {MDString::get(c, "llvm.loop.parallel_accesses"),
                                       MDNode::getDistinct(c, {})});
  auto self = MDNode::getTemporary(c, None);
  MDNode* id = MDNode::getDistinct(c, {self.get(), mark, parallel});
  id->replaceOperandWith(0, id);
  return id;
}

std::optional<WorkItemMark> work_item_mark(const Loop& l) {
  MDNode* mark = findOptionMDForLoop(&l, kWorkItemLoopMark);
  MDNode* parallel = findOptionMDForLoop(&l, "llvm.loop.parallel_accesses");
  if (mark == nullptr || mark->getNumOperands() != 2 || parallel == nullptr ||
      parallel->getNumOperands() != 2)
    return std::nullopt;
  auto* region = mdconst::dyn_extract<ConstantInt>(mark->getOperand(1));
  auto* group = dyn_cast<MDNode>(parallel->getOperand(1));
  if (region == nullptr || group == nullptr) return std::nullopt;
  return WorkItemMark{static_cast<unsigned>(region->getZExtValue()), group};
}

AbiResult apply_kernel_abi(Module& m, const std::vector<std::string>& kernel_names) {
  LLVMContext& c = m.getContext();
  AbiResult result;
  std::set<Function*> with_barriers = barrier_users(m);
  std::set<std::string> barrier_names;
  for (Function* f : with_barriers) barrier_names.insert(f->getName().str());
  std::set<std::string> shape_x_names;
  for (Function* f : group_shape_x_readers(m)) shape_x_names.insert(f->getName().str());

  // 1. Hidden parameters on every defined function; call sites pass their caller's along.
  std::vector<std::pair<Function*, Function*>> moved;
  for (Function& f : m)
    if (!f.isDeclaration() && !f.isIntrinsic()) moved.push_back({&f, nullptr});
  for (auto& [from, to] : moved) to = with_hidden_params(from);
  for (auto& [from, to] : moved) {
    for (User* u : make_early_inc_range(from->users())) {
      auto* call = dyn_cast<CallInst>(u);
      if (call == nullptr || call->getCalledOperand() != from)
        throw Error(Errc::invalid_argument,
                    "SPIR-V module: function " + to->getName().str() +
                        " is used other than by a direct call (function pointers are not "
                        "supported)");
      Hidden h = hidden_of(call->getFunction());
      std::vector<Value*> args(call->arg_begin(), call->arg_end());
      args.insert(args.end(), {h.ctx, h.lid[0], h.lid[1], h.lid[2]});
      IRBuilder<> b(call);
      CallInst* nc = b.CreateCall(to, args);
      nc->setAttributes(call->getAttributes());
      nc->setCallingConv(call->getCallingConv());
      nc->setDebugLoc(call->getDebugLoc());
      nc->takeName(call);
      call->replaceAllUsesWith(nc);
      call->eraseFromParent();
    }
    from->replaceAllUsesWith(UndefValue::get(from->getType()));
    from->eraseFromParent();
  }

  // 2. Work-item built-ins and barriers.
  FunctionCallee barrier = m.getOrInsertFunction(
      "hetmm_jit_barrier", FunctionType::get(Type::getVoidTy(c), {Type::getInt8PtrTy(c)}, false));
  std::vector<Function*> declarations;
  for (Function& f : m)
    if (f.isDeclaration()) declarations.push_back(&f);
  for (Function* decl : declarations) {
    StringRef name = decl->getName();
    bool barrier_call = is_barrier(name);
    for (User* u : make_early_inc_range(decl->users())) {
      auto* call = dyn_cast<CallInst>(u);
      if (call == nullptr || call->getFunction()->arg_size() < kHiddenParams) continue;
      Hidden h = hidden_of(call->getFunction());
      IRBuilder<> b(call);
      if (barrier_call) {
        // Work-items of the group run as fibers on one thread; the fence orders their memory
        // for the other threads that may read it (global memory is shared with the CPU).
        b.CreateFence(AtomicOrdering::SequentiallyConsistent);
        b.CreateCall(barrier, {h.ctx});
        call->eraseFromParent();
        continue;
      }
      Value* v = work_item_builtin(b, h, name, call);
      if (v == nullptr) break;
      if (v->getType() != call->getType() && v->getType()->isIntegerTy())
        v = b.CreateZExtOrTrunc(v, call->getType());
      call->replaceAllUsesWith(v);
      call->eraseFromParent();
    }
  }

  // 3. __local variables.
  result.static_local_bytes = lower_local_variables(m);

  // 4. Runners, one per kernel; everything else is internal so that it inlines and folds.
  for (const std::string& k : kernel_names) {
    Function* f = m.getFunction(k);
    if (f == nullptr) continue;
    AbiKernel info;
    info.name = k;
    info.run_symbol = "__hetmm_run_" + k;
    info.uses_barriers = barrier_names.count(k) != 0;
    info.reads_group_shape_x = shape_x_names.count(k) != 0;
    if (info.uses_barriers) info.wi_private_bytes = form_barrier_regions(*f);
    f->setLinkage(GlobalValue::InternalLinkage);
    f->addFnAttr(Attribute::AlwaysInline);
    make_runner(m, f, info.run_symbol, info.wi_private_bytes == 0);
    result.kernels.push_back(std::move(info));
  }
  for (Function& f : m)
    if (!f.isDeclaration() && !f.getName().startswith("__hetmm_run_"))
      f.setLinkage(GlobalValue::InternalLinkage);
  for (GlobalVariable& g : m.globals())
    if (!g.isDeclaration()) g.setLinkage(GlobalValue::InternalLinkage);
  return result;
}

}  // namespace hetmm::spirv
