/*
 * @fileoverview Memory copy and fill variants.  The kernel picks one with
 * the cpu.copy selector (lib.h kmemcpy): rep movsb is fastest on CPUs with
 * ERMS/FSRM, the AVX2 loop on CPUs without them, rep movsq everywhere.
 * All return dst, like memcpy.
 */
	.text

/* void *copy_erms(void *dst, const void *src, size_t n) */
	.globl	copy_erms
	.type	copy_erms,@function
	.p2align 4
copy_erms:
	movq	%rdi, %rax
	movq	%rdx, %rcx
	rep movsb
	ret
	.size	copy_erms, .-copy_erms

/* void *copy_generic(void *dst, const void *src, size_t n): 8 bytes at a
 * time, then the tail. */
	.globl	copy_generic
	.type	copy_generic,@function
	.p2align 4
copy_generic:
	movq	%rdi, %rax
	movq	%rdx, %rcx
	shrq	$3, %rcx
	rep movsq
	movq	%rdx, %rcx
	andq	$7, %rcx
	rep movsb
	ret
	.size	copy_generic, .-copy_generic

/* void *copy_avx2(void *dst, const void *src, size_t n): 64 bytes per
 * iteration with unaligned 32-byte loads and stores; the tail by bytes.
 * vzeroupper avoids the AVX-SSE transition penalty in the caller. */
	.globl	copy_avx2
	.type	copy_avx2,@function
	.p2align 4
copy_avx2:
	movq	%rdi, %rax
	cmpq	$64, %rdx
	jb	.Lavx2_tail
.Lavx2_loop:
	vmovdqu	(%rsi), %ymm0
	vmovdqu	32(%rsi), %ymm1
	vmovdqu	%ymm0, (%rdi)
	vmovdqu	%ymm1, 32(%rdi)
	addq	$64, %rsi
	addq	$64, %rdi
	subq	$64, %rdx
	cmpq	$64, %rdx
	jae	.Lavx2_loop
	vzeroupper
.Lavx2_tail:
	movq	%rdx, %rcx
	rep movsb
	ret
	.size	copy_avx2, .-copy_avx2

/* void *kmemset_stosb(void *dst, int c, size_t n) */
	.globl	kmemset_stosb
	.type	kmemset_stosb,@function
	.p2align 4
kmemset_stosb:
	movq	%rdi, %r9
	movl	%esi, %eax
	movq	%rdx, %rcx
	rep stosb
	movq	%r9, %rax
	ret
	.size	kmemset_stosb, .-kmemset_stosb

/* void *kmemmove_asm(void *dst, const void *src, size_t n): copies backwards
 * when dst overlaps the end of src. */
	.globl	kmemmove_asm
	.type	kmemmove_asm,@function
	.p2align 4
kmemmove_asm:
	movq	%rdi, %rax
	movq	%rdx, %rcx
	cmpq	%rsi, %rdi
	jbe	.Lmove_fwd
	leaq	(%rsi,%rdx), %r8
	cmpq	%r8, %rdi
	jae	.Lmove_fwd
	leaq	-1(%rsi,%rdx), %rsi
	leaq	-1(%rdi,%rdx), %rdi
	std
	rep movsb
	cld
	ret
.Lmove_fwd:
	rep movsb
	ret
	.size	kmemmove_asm, .-kmemmove_asm

/* No executable stack needed. */
	.section .note.GNU-stack,"",@progbits
