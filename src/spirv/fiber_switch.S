// Stack switching for work-items that wait at barriers (spirv/fiber.hpp).
//
// hetmm_fiber_switch(void** save_sp, void* to_sp): pushes the callee-saved registers, stores
// the stack pointer in *save_sp, switches to to_sp and pops that context's registers. A new
// context (hetmm_fiber_prepare) "returns" into hetmm_fiber_start, which calls entry(arg) with
// entry in r12 and arg in rbx. The System V ABI makes every other register caller-saved, and
// MXCSR / the x87 control word are the same for every fiber of a thread, so this is the whole
// context.
    .text
    .globl hetmm_fiber_switch
    .hidden hetmm_fiber_switch
    .type hetmm_fiber_switch, @function
hetmm_fiber_switch:
    .cfi_startproc
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    // pop + indirect jump, not ret: ret would miss the return-stack predictor on every switch
    // (the return address belongs to another stack); the indirect predictor learns the target.
    popq %rax
    jmpq *%rax
    .cfi_endproc
    .size hetmm_fiber_switch, .-hetmm_fiber_switch

    .globl hetmm_fiber_start
    .hidden hetmm_fiber_start
    .type hetmm_fiber_start, @function
hetmm_fiber_start:
    .cfi_startproc
    .cfi_undefined rip
    movq %rbx, %rdi
    callq *%r12
    ud2
    .cfi_endproc
    .size hetmm_fiber_start, .-hetmm_fiber_start

    .section .note.GNU-stack,"",@progbits
