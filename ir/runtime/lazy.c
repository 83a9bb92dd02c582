/*
 * @fileoverview Functions compiled on first call (boot tiers, issue 10).
 *
 * A boot that leaves a function to be compiled later gives it boot code of
 * two instructions after the usual 5-byte patchable entry:
 *
 *     f:  nopl 8(%rax,%rax,1)          the patchable entry (patch.c)
 *         movl $INDEX, %r11d
 *         jmp  kjit_lazy_trampoline
 *
 * The trampoline saves every register that may carry an argument, asks the
 * host for f's code (kjit_lazy_enter), restores them and jumps to the code,
 * so f's caller and f see an ordinary call whatever f's signature (stack
 * arguments, sret, varargs' %al are all untouched).  The host compiles f
 * (with the rest of its unit), writes the code's address into
 * lazy_addr[INDEX] and then installs it like any version: the entry's NOP
 * becomes `jmp` to the code (the one redirection mechanism, patch.c), after
 * which calls no longer reach the stub.  Until then, and after a later
 * version is reverted, calls go through the stub and find the address.
 *
 * Waiting: the kernel thread writes INDEX + 1 to lazy_pending, one byte to
 * the host's pipe (lazy_fd) so its event loop wakes at once, and sleeps on
 * the lazy_seq futex until the address is there.  It is inside kernel code
 * meanwhile, not at a quiescent point: the host must not wait for one
 * before it has written the address.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <linux/futex.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "kjit_rt.h"

#define LOAD(f) __atomic_load_n(&kjit_cb.f[0], __ATOMIC_RELAXED)
#define STORE(f, v) __atomic_store_n(&kjit_cb.f[0], (uint64_t)(v), __ATOMIC_RELAXED)

uint64_t kjit_lazy_enter(uint32_t index);
void kjit_lazy_failed(void);

/* What the host hands out as a lazy function's code when it could not build
 * it: the kernel stops here (and the host reports why). */
void kjit_lazy_failed(void) { kjit_panic("a function compiled on first call did not build (the host says why)"); }

uint64_t kjit_lazy_enter(uint32_t index) {
  if (index >= KJIT_LAZY_MAX) kjit_panic("kjit_lazy_enter: index beyond KJIT_LAZY_MAX");
  uint64_t code = __atomic_load_n(&kjit_cb.lazy_addr[index], __ATOMIC_ACQUIRE);
  if (code) return code;

  uint64_t t0 = kjit_now_ns();
  uint32_t *word = (uint32_t *)&kjit_cb.lazy_seq[0];
  STORE(lazy_pending, (uint64_t)index + 1);
  STORE(lazy_requests, LOAD(lazy_requests) + 1);
  uint64_t fd = LOAD(lazy_fd);
  if (!fd) kjit_panic("a function left to be compiled on first call was called, and no host listens for it");
  for (;;) {
    uint32_t seen = __atomic_load_n(word, __ATOMIC_ACQUIRE);
    code = __atomic_load_n(&kjit_cb.lazy_addr[index], __ATOMIC_ACQUIRE);
    if (code) break;
    /* (re)ring: the host reads every byte; a second one after a timeout is harmless */
    char b = 1;
    (void)!write((int)(fd - 1), &b, 1);
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 100 * 1000 * 1000};
    while (syscall(SYS_futex, word, FUTEX_WAIT | FUTEX_PRIVATE_FLAG, seen, &ts, NULL, 0) != 0 && errno == EINTR) {
    }
  }
  STORE(lazy_pending, 0);
  uint64_t waited = kjit_now_ns() - t0;
  STORE(lazy_wait_ns, LOAD(lazy_wait_ns) + waited);
  if (waited > LOAD(lazy_wait_max_ns)) STORE(lazy_wait_max_ns, waited);
  return code;
}

/* Saves the argument registers (%rdi %rsi %rdx %rcx %r8 %r9, %rax for
 * varargs' vector count, %r10 for a static chain, %xmm0-7), keeps a frame
 * pointer for the sampler's walk, and keeps %rsp 16-byte aligned at the
 * call.  %r11 carries the index in and the code address out (scratch in the
 * System V ABI at a call). */
__asm__(
    ".text\n"
    ".globl kjit_lazy_trampoline\n"
    ".hidden kjit_lazy_trampoline\n"
    ".type kjit_lazy_trampoline,@function\n"
    ".p2align 4\n"
    "kjit_lazy_trampoline:\n"
    "  pushq %rbp\n"
    "  movq %rsp, %rbp\n"
    "  pushq %rdi\n"
    "  pushq %rsi\n"
    "  pushq %rdx\n"
    "  pushq %rcx\n"
    "  pushq %r8\n"
    "  pushq %r9\n"
    "  pushq %rax\n"
    "  pushq %r10\n"
    "  subq $128, %rsp\n"
    "  movdqu %xmm0, 0(%rsp)\n"
    "  movdqu %xmm1, 16(%rsp)\n"
    "  movdqu %xmm2, 32(%rsp)\n"
    "  movdqu %xmm3, 48(%rsp)\n"
    "  movdqu %xmm4, 64(%rsp)\n"
    "  movdqu %xmm5, 80(%rsp)\n"
    "  movdqu %xmm6, 96(%rsp)\n"
    "  movdqu %xmm7, 112(%rsp)\n"
    "  movl %r11d, %edi\n"
    "  call kjit_lazy_enter\n"
    "  movq %rax, %r11\n"
    "  movdqu 0(%rsp), %xmm0\n"
    "  movdqu 16(%rsp), %xmm1\n"
    "  movdqu 32(%rsp), %xmm2\n"
    "  movdqu 48(%rsp), %xmm3\n"
    "  movdqu 64(%rsp), %xmm4\n"
    "  movdqu 80(%rsp), %xmm5\n"
    "  movdqu 96(%rsp), %xmm6\n"
    "  movdqu 112(%rsp), %xmm7\n"
    "  addq $128, %rsp\n"
    "  popq %r10\n"
    "  popq %rax\n"
    "  popq %r9\n"
    "  popq %r8\n"
    "  popq %rcx\n"
    "  popq %rdx\n"
    "  popq %rsi\n"
    "  popq %rdi\n"
    "  popq %rbp\n"
    "  jmp *%r11\n"
    ".size kjit_lazy_trampoline, .-kjit_lazy_trampoline\n");
