/*
 * @fileoverview Kernel task context switch.
 *
 * switch_context(from, to): the callee-saved registers of the System V ABI
 * are pushed on the current task's stack, the stack pointer is saved in
 * from->rsp (offset 0 of struct task_context) and the other task's stack is
 * loaded; popping its registers and returning resumes it where it called
 * switch_context, or, for a task that never ran, in task_trampoline.
 * Caller-saved registers need no saving: the compiler assumes a call
 * clobbers them.
 */
	.text
	.globl	switch_context
	.type	switch_context,@function
	.p2align 4
switch_context:
	pushq	%rbp
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	movq	%rsp, (%rdi)
	movq	(%rsi), %rsp
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	ret
	.size	switch_context, .-switch_context

/*
 * First code a new task runs.  sched.c builds its initial stack so that
 * switch_context "returns" here with %rbx = the task.  %rbp = 0 ends the
 * frame-pointer chain that the sampler walks.
 */
	.globl	task_trampoline
	.type	task_trampoline,@function
	.p2align 4
task_trampoline:
	movq	%rbx, %rdi
	xorl	%ebp, %ebp
	call	task_entry@PLT
	ud2
	.size	task_trampoline, .-task_trampoline

/* No executable stack needed. */
	.section .note.GNU-stack,"",@progbits
