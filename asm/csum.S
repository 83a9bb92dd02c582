/*
 * @fileoverview Checksums: the Internet checksum as a 64-bit add-with-carry
 * chain (the cpu.csum selector's fast variant) and CRC32C with the SSE4.2
 * crc32 instruction (cpu.crc32c).  Both work on the raw running value; the
 * callers fold/invert (lib.h).
 */
	.text

/* u64 csum_partial_adc(const void *buf, size_t len, u64 sum)
 * One's-complement sum of the buffer taken as little-endian 64-bit words
 * (congruent, modulo 0xffff, to the RFC 1071 sum of 16-bit words in memory
 * order); the tail is zero-padded so byte positions keep their parity. */
	.globl	csum_partial_adc
	.type	csum_partial_adc,@function
	.p2align 4
csum_partial_adc:
	movq	%rdx, %rax
	movq	%rsi, %rcx
	shrq	$5, %rcx
	jz	.Lcsum_words
	clc
.Lcsum_32:
	adcq	(%rdi), %rax
	adcq	8(%rdi), %rax
	adcq	16(%rdi), %rax
	adcq	24(%rdi), %rax
	leaq	32(%rdi), %rdi
	decq	%rcx
	jnz	.Lcsum_32
	adcq	$0, %rax
.Lcsum_words:
	movq	%rsi, %rcx
	andq	$31, %rcx
	shrq	$3, %rcx
	jz	.Lcsum_tail
.Lcsum_8:
	addq	(%rdi), %rax
	adcq	$0, %rax
	leaq	8(%rdi), %rdi
	decq	%rcx
	jnz	.Lcsum_8
.Lcsum_tail:
	movq	%rsi, %r11
	andq	$7, %r11
	jz	.Lcsum_done
	/* Gather the last 1..7 bytes into %rdx, little-endian, zero-padded. */
	xorl	%edx, %edx
	xorl	%ecx, %ecx
.Lcsum_byte:
	movzbq	(%rdi), %r9
	shlq	%cl, %r9
	orq	%r9, %rdx
	incq	%rdi
	addl	$8, %ecx
	decq	%r11
	jnz	.Lcsum_byte
	addq	%rdx, %rax
	adcq	$0, %rax
.Lcsum_done:
	ret
	.size	csum_partial_adc, .-csum_partial_adc

/* u32 crc32c_sse42(u32 crc, const void *buf, size_t len) */
	.globl	crc32c_sse42
	.type	crc32c_sse42,@function
	.p2align 4
crc32c_sse42:
	movl	%edi, %eax
	movq	%rdx, %rcx
	shrq	$3, %rcx
	jz	.Lcrc_tail
.Lcrc_8:
	crc32q	(%rsi), %rax
	addq	$8, %rsi
	decq	%rcx
	jnz	.Lcrc_8
.Lcrc_tail:
	andq	$7, %rdx
	jz	.Lcrc_done
.Lcrc_1:
	crc32b	(%rsi), %eax
	incq	%rsi
	decq	%rdx
	jnz	.Lcrc_1
.Lcrc_done:
	ret
	.size	crc32c_sse42, .-crc32c_sse42

/* No executable stack needed. */
	.section .note.GNU-stack,"",@progbits
