/*
 * @fileoverview CPU identification and the ordered time-stamp counter.
 */
	.text

/* void kjit_cpuid(u32 leaf, u32 subleaf, u32 out[4]) */
	.globl	kjit_cpuid
	.type	kjit_cpuid,@function
	.p2align 4
kjit_cpuid:
	pushq	%rbx
	movq	%rdx, %r8
	movl	%edi, %eax
	movl	%esi, %ecx
	cpuid
	movl	%eax, 0(%r8)
	movl	%ebx, 4(%r8)
	movl	%ecx, 8(%r8)
	movl	%edx, 12(%r8)
	popq	%rbx
	ret
	.size	kjit_cpuid, .-kjit_cpuid

/* u64 rdtsc_ordered(void): lfence keeps the read from passing earlier loads. */
	.globl	rdtsc_ordered
	.type	rdtsc_ordered,@function
	.p2align 4
rdtsc_ordered:
	lfence
	rdtsc
	shlq	$32, %rdx
	orq	%rdx, %rax
	ret
	.size	rdtsc_ordered, .-rdtsc_ordered

/* No executable stack needed. */
	.section .note.GNU-stack,"",@progbits
