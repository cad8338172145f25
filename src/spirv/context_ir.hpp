// Layer spirv: includes every layer.
// IR that reads the hidden work-group context (KernelContext, kernel_context.hpp), shared by the
// kernel ABI, barrier-region and MMU passes. Every field is constant while a group runs, so the
// loads carry !invariant.load and LLVM hoists them out of the work-item loops.
#pragma once

#include <llvm/IR/IRBuilder.h>

namespace hetmm::spirv {

// A pointer to the field at `offset`, typed as `type`*.
inline llvm::Value* ctx_field_ptr(llvm::IRBuilder<>& b, llvm::Value* ctx, unsigned offset,
                                  llvm::Type* type) {
  llvm::Value* p = b.CreateConstInBoundsGEP1_64(b.getInt8Ty(), ctx, offset);
  return b.CreateBitCast(p, type->getPointerTo());
}

// An invariant load of `type` from `ptr` (a context field or an element of one of its arrays).
inline llvm::LoadInst* load_invariant(llvm::IRBuilder<>& b, llvm::Type* type, llvm::Value* ptr) {
  llvm::LoadInst* l = b.CreateAlignedLoad(type, ptr, llvm::Align(8));
  l->setMetadata(llvm::LLVMContext::MD_invariant_load, llvm::MDNode::get(b.getContext(), {}));
  return l;
}

// The field at `offset`, as `type`.
inline llvm::LoadInst* load_ctx_field(llvm::IRBuilder<>& b, llvm::Value* ctx, unsigned offset,
                                      llvm::Type* type) {
  return load_invariant(b, type, ctx_field_ptr(b, ctx, offset, type));
}

}  // namespace hetmm::spirv
