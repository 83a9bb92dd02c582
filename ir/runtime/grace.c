/*
 * @fileoverview Grace periods: telling the host when no kernel task can be
 * inside some retired code any more, so it may free it.
 *
 * The host writes the address ranges of retired versions into the control
 * block (grace_lo/grace_hi/grace_n), then bumps grace_request (release).  At
 * each quiescent point -- the scheduler got control back from a task
 * (kjit_quiescent), or the kernel is about to block idle -- no task is
 * running: every task is suspended with its registers saved on its own
 * stack, and the kernel thread itself is in the scheduler loop.  There the
 * runtime walks every stack by its frame pointers (all kernel code keeps
 * them) and looks for a return address inside a range:
 *   - the kernel thread's own stack, from this frame up to kjit_thread_main;
 *   - each task's stack, from the context switch_context saved (six
 *     callee-saved registers, rbp fifth, then the return address), within
 *     the stack bounds the kernel registered (kjit_task_stack).
 * If none is found, grace_done = grace_request: the host may free the
 * ranges.  Otherwise the check is repeated at the next quiescent point (a
 * task parked inside retired code for ever keeps it alive for ever, which
 * is the only correct answer).
 */
#include <stdint.h>

#include "kjit_rt.h"

#define LOAD(f) __atomic_load_n(&kjit_cb.f[0], __ATOMIC_RELAXED)
#define STORE(f, v) __atomic_store_n(&kjit_cb.f[0], (uint64_t)(v), __ATOMIC_RELAXED)

static struct {
  const uint64_t *saved_rsp; /* where switch_context keeps the task's stack pointer */
  uint64_t lo, hi;           /* the task's stack */
} stacks[KJIT_MAX_TASKS];

/* The kernel thread's outermost kernel frame (set in kjit_thread_main). */
uint64_t kjit_main_frame_top;

void kjit_task_stack(uint32_t task, const uint64_t *saved_rsp, uint64_t lo, uint64_t hi) {
  if (task >= KJIT_MAX_TASKS) return;
  stacks[task].lo = lo;
  stacks[task].hi = hi;
  __atomic_store_n(&stacks[task].saved_rsp, saved_rsp, __ATOMIC_RELEASE);
}

int kjit_task_stack_of(uint64_t sp, uint64_t *lo, uint64_t *hi) {
  uint64_t n = LOAD(ntasks); /* ids below it: the few cache lines a sample touches */
  if (n > KJIT_MAX_TASKS) n = KJIT_MAX_TASKS;
  for (uint32_t t = 0; t < n; t++) {
    if (!__atomic_load_n(&stacks[t].saved_rsp, __ATOMIC_ACQUIRE)) continue;
    if (sp >= stacks[t].lo && sp < stacks[t].hi) {
      *lo = stacks[t].lo;
      *hi = stacks[t].hi;
      return 1;
    }
  }
  return 0;
}

static int in_ranges(uint64_t pc, uint64_t n) {
  for (uint64_t i = 0; i < n; i++)
    if (pc >= kjit_cb.grace_lo[i] && pc < kjit_cb.grace_hi[i]) return 1;
  return 0;
}

/* 1 if a return address in the frame chain from `rbp` (bounded by the stack
 * [lo, hi)) -- or `first_ret`, the frame-less switch_context's own return
 * address -- lies in a range. */
static int stack_uses(uint64_t rbp, uint64_t first_ret, uint64_t lo, uint64_t hi, uint64_t n) {
  if (first_ret && in_ranges(first_ret, n)) return 1;
  for (int depth = 0; rbp && depth < 512; depth++) {
    if (rbp < lo || rbp + 16 > hi || (rbp & 7)) return 0;
    const uint64_t *frame = (const uint64_t *)rbp;
    if (in_ranges(frame[1], n)) return 1;
    if (frame[0] <= rbp) return 0; /* callers' frames are higher up */
    rbp = frame[0];
  }
  return 0;
}

/* At a quiescent point of the kernel thread: answer a pending request. */
void kjit_grace_poll(void) {
  uint64_t req = __atomic_load_n(&kjit_cb.grace_request[0], __ATOMIC_ACQUIRE);
  if (req == kjit_cb.grace_done[0]) return;
  uint64_t n = LOAD(grace_n);
  if (n > KJIT_GRACE_RANGES) n = KJIT_GRACE_RANGES;
  STORE(grace_checks, kjit_cb.grace_checks[0] + 1);
  uint64_t here = (uint64_t)__builtin_frame_address(0);
  int busy = stack_uses(here, 0, here, kjit_main_frame_top + 16, n);
  for (uint32_t t = 0; !busy && t < KJIT_MAX_TASKS; t++) {
    const uint64_t *slot = __atomic_load_n(&stacks[t].saved_rsp, __ATOMIC_ACQUIRE);
    if (!slot) continue;
    uint64_t rsp = *slot;
    if (rsp < stacks[t].lo || rsp + 7 * 8 > stacks[t].hi) continue; /* not switched out (cannot happen here) */
    const uint64_t *saved = (const uint64_t *)rsp; /* r15 r14 r13 r12 rbx rbp ret */
    busy = stack_uses(saved[5], saved[6], stacks[t].lo, stacks[t].hi, n);
  }
  if (busy) {
    STORE(grace_busy, kjit_cb.grace_busy[0] + 1);
    return;
  }
  __atomic_store_n(&kjit_cb.grace_done[0], req, __ATOMIC_RELEASE);
}
