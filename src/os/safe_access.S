// Memory accesses that may fault and recover, like the kernel's copy_from_user.
//
// Each function's one faulting instruction is listed in hetmm_extable together with a fixup
// address. The SIGSEGV/SIGBUS handler (src/host/signal_dispatch.cpp) finds the faulting RIP in
// the table and resumes at the fixup, which returns -1. Nothing is saved on the hot path: no
// sigsetjmp, no syscall, and C++ frames are never jumped over.
#if defined(__x86_64__)
        .text

// int hetmm_safe_copy(void* dst, const void* src, size_t n)
        .globl  hetmm_safe_copy
        .type   hetmm_safe_copy, @function
hetmm_safe_copy:
        movq    %rdx, %rcx
.Lcopy_insn:
        rep movsb
        xorl    %eax, %eax
        ret
.Lcopy_fix:
        movl    $-1, %eax
        ret
        .size   hetmm_safe_copy, .-hetmm_safe_copy

// int hetmm_safe_loadN(const void* src, void* out)
.macro SAFE_LOAD n, reg, mov
        .globl  hetmm_safe_load\n
        .type   hetmm_safe_load\n, @function
hetmm_safe_load\n:
.Lload\n\()_insn:
        \mov    (%rdi), \reg
        \mov    \reg, (%rsi)
        xorl    %eax, %eax
        ret
.Lload\n\()_fix:
        movl    $-1, %eax
        ret
        .size   hetmm_safe_load\n, .-hetmm_safe_load\n
.endm
        SAFE_LOAD 1, %al, movb
        SAFE_LOAD 2, %ax, movw
        SAFE_LOAD 4, %eax, movl
        SAFE_LOAD 8, %rax, movq

// int hetmm_safe_storeN(void* dst, uint64_t value)
.macro SAFE_STORE n, reg, mov
        .globl  hetmm_safe_store\n
        .type   hetmm_safe_store\n, @function
hetmm_safe_store\n:
.Lstore\n\()_insn:
        \mov    \reg, (%rdi)
        xorl    %eax, %eax
        ret
.Lstore\n\()_fix:
        movl    $-1, %eax
        ret
        .size   hetmm_safe_store\n, .-hetmm_safe_store\n
.endm
        SAFE_STORE 1, %sil, movb
        SAFE_STORE 2, %si, movw
        SAFE_STORE 4, %esi, movl
        SAFE_STORE 8, %rsi, movq

// int hetmm_safe_xaddN(void* dst, uint64_t value, uint64_t* old)
.macro SAFE_XADD n, reg, xadd
        .globl  hetmm_safe_xadd\n
        .type   hetmm_safe_xadd\n, @function
hetmm_safe_xadd\n:
        movq    %rsi, %rax
.Lxadd\n\()_insn:
        lock \xadd \reg, (%rdi)
        movq    %rsi, (%rdx)
        xorl    %eax, %eax
        ret
.Lxadd\n\()_fix:
        movl    $-1, %eax
        ret
        .size   hetmm_safe_xadd\n, .-hetmm_safe_xadd\n
.endm
        SAFE_XADD 1, %sil, xaddb
        SAFE_XADD 2, %si, xaddw
        SAFE_XADD 4, %esi, xaddl
        SAFE_XADD 8, %rsi, xaddq

        .section .data.rel.ro,"aw"
        .balign 8
        .globl  hetmm_extable
        .globl  hetmm_extable_end
hetmm_extable:
        .quad   .Lcopy_insn, .Lcopy_fix
        .quad   .Lload1_insn, .Lload1_fix
        .quad   .Lload2_insn, .Lload2_fix
        .quad   .Lload4_insn, .Lload4_fix
        .quad   .Lload8_insn, .Lload8_fix
        .quad   .Lstore1_insn, .Lstore1_fix
        .quad   .Lstore2_insn, .Lstore2_fix
        .quad   .Lstore4_insn, .Lstore4_fix
        .quad   .Lstore8_insn, .Lstore8_fix
        .quad   .Lxadd1_insn, .Lxadd1_fix
        .quad   .Lxadd2_insn, .Lxadd2_fix
        .quad   .Lxadd4_insn, .Lxadd4_fix
        .quad   .Lxadd8_insn, .Lxadd8_fix
hetmm_extable_end:
#else
#error "hetmm's recoverable accesses are written for x86-64"
#endif
        .section .note.GNU-stack,"",@progbits
