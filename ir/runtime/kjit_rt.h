/*
 * @fileoverview The kjit runtime's contract with an image (the reference
 * kernel or any foreign IR).  The runtime is C compiled to IR and linked into
 * every image at boot; everything here runs on the kernel thread.
 *
 * An image provides either
 *   - `init` + `entry(uint64 i) -> uint64` (a "foreign" image): the runtime
 *     calls init once, then entry once per operation, folding each result into
 *     the checksum; or
 *   - `init` + `run` (a "kernel" image, like the reference kernel): run()
 *     drives itself and asks the runtime for operations (kjit_op_next), reports
 *     their completion (kjit_op_complete) and blocks in kjit_idle_until when it
 *     has nothing to do.
 * kjit generates the glue (kjit_image_init / kjit_image_run /
 * kjit_image_entry) at boot from the symbol names the user gives.
 *
 * An image may also export two tables the host reads from the IR before it
 * compiles anything (so they must be constant, statically initialised):
 *   - kjit_sysctls[]: its configuration variables, with a flag saying which
 *     are fixed at boot (those are folded into the code in `boot` mode);
 *   - kjit_alternatives[]: for each "selector" sysctl, the implementations to
 *     choose from and what each needs (a device present, CPU features).  The
 *     runtime picks the first match at boot (stock); kjit picks the same one
 *     from the same table before compiling (boot) and removes the others when
 *     they are devices that are absent.
 */
#ifndef KJIT_RT_H
#define KJIT_RT_H

#include <stddef.h>
#include <stdint.h>

#include "kjit_cb.h"

/* ---- operations ---------------------------------------------------------- */

#define KJIT_OP_WAIT (-1) /* next operation not due yet: *arrival_ns says when */
#define KJIT_OP_DONE (-2) /* no more operations: finish outstanding work and return */

/* Claim the next operation.  Returns its index (>= 0) and its scheduled
 * arrival time (open loop) or now (closed loop). */
int64_t kjit_op_next(uint64_t *arrival_ns);
/* An operation finished with `result`: folds it into the checksum and records
 * its latency from the scheduled arrival. */
void kjit_op_complete(uint64_t op, uint64_t arrival_ns, uint64_t result);
/* Number of operations claimed but not completed. */
uint64_t kjit_ops_in_flight(void);

/* ---- time, idle, quiescence --------------------------------------------- */

uint64_t kjit_now_ns(void); /* CLOCK_MONOTONIC */
/* Block the kernel thread until `deadline_ns` (CLOCK_MONOTONIC; 0 = until the
 * host rings the doorbell).  Counts as idle time.  Returns early on a stop
 * request or doorbell. */
void kjit_idle_until(uint64_t deadline_ns);
/* Has the host asked the kernel to stop? */
int kjit_stop_requested(void);
/* Task `task` passed a quiescent point (it returned to the scheduler and holds
 * no pointer into code that might be replaced). */
void kjit_task_register(uint32_t task);
void kjit_quiescent(uint32_t task);

/* ---- memory, machine, log, panic ---------------------------------------- */

/* The kernel's memory: one arena mapped by the runtime before init. */
void *kjit_arena(uint64_t *bytes);
/* Make a page of kernel memory inaccessible (a stack guard) or accessible
 * again.  Returns 0 or -1. */
int kjit_guard_page(void *page);
int kjit_unguard_page(void *page);
/* The machine description the host wrote (devices present, CPU features). */
uint64_t kjit_hw_cpu_features(void);
uint32_t kjit_hw_ndevices(void);
uint32_t kjit_hw_device(uint32_t i); /* vendor << 16 | device */
/* Append a line to the kernel log ring (the host prints it on request). */
void kjit_log(const char *msg);
/* Stop the kernel now: records `msg` and unwinds to the runtime. */
__attribute__((noreturn)) void kjit_panic(const char *msg);

/* ---- the JIT's memory grant (grant.c) -------------------------------------- */

/* The kernel's memory policy for the JIT (DESIGN.md section 7): the JIT asks
 * for `ask_bytes`; the kernel answers with what it grants now.  The runtime
 * calls it at quiescent points on the kernel thread: with `asking` = 1 when
 * the host posted a request (grant up to ask_bytes, or take back what is
 * above it), and with `asking` = 0 every KJIT_GRANT_CHECK_EVERY quiescent
 * points (a pressure check: a lower answer is a revocation; a higher one is
 * ignored, only the JIT's asking raises a grant).  `granted_bytes` is what
 * the JIT holds now.  It may write its free memory to *free_bytes (for the
 * host's reports).  It must be cheap when nothing changes.
 *
 * The runtime's weak default (images without an allocator of their own)
 * grants up to KJIT_GRANT_DEFAULT_BYTES and never revokes; the reference
 * kernel's allocator decides from its free pages (ir/kernel/mm/grant.c). */
#define KJIT_GRANT_DEFAULT_BYTES (128ull << 20)
#define KJIT_GRANT_CHECK_EVERY 1024 /* quiescent points between pressure checks (a power of two) */
uint64_t kjit_mm_grant(uint64_t ask_bytes, uint64_t granted_bytes, int asking, uint64_t *free_bytes);
/* At a quiescent point: answer a grant request, or check for pressure (runtime-internal). */
void kjit_grant_poll(void);

/* ---- counting builds ------------------------------------------------------ */
/* kjit inserts increments of these (through the control block) before every
 * indirect call and every sysctl load of a counting build; nothing else uses
 * them. */
extern struct kjit_cb kjit_cb;

/* ---- configuration tables (read by the host from the IR) ---------------- */

#define KJIT_SYSCTL_BOOT 1u     /* fixed once the kernel has booted */
#define KJIT_SYSCTL_SELECTOR 2u /* selects an implementation (see alternatives) */
#define KJIT_SYSCTL_RO 4u       /* not writable from the host at run time */

struct kjit_sysctl {
  const char *name;  /* "net.nic_model" */
  int64_t *var;      /* the variable the kernel reads on its hot paths */
  int64_t min, max;  /* accepted range */
  uint64_t flags;    /* KJIT_SYSCTL_* */
  const char *desc;  /* one line */
};

#define KJIT_ALT_DEVICE 1u /* match: a device id present on the bus */
#define KJIT_ALT_CPU 2u    /* match: all of these KJIT_CPU_* bits present (0 = always) */

struct kjit_alternative {
  int64_t *selector;  /* the selector sysctl this alternative sets */
  int64_t value;      /* value of the selector when this one is chosen */
  uint64_t kind;      /* KJIT_ALT_* */
  uint64_t match;     /* device id or CPU feature mask */
  const void *impl;   /* the implementation's ops table (devices), or NULL */
  const char *name;   /* "virtq-net" */
};

/* Defined by the image (weak empty defaults in the runtime). */
extern const struct kjit_sysctl kjit_sysctls[];
extern const uint64_t kjit_nsysctls;
extern const struct kjit_alternative kjit_alternatives[];
extern const uint64_t kjit_nalternatives;

/* Workload names, index = the id the host writes into cb.workload. */
extern const char *const kjit_workloads[];
extern const uint64_t kjit_nworkloads;

/* Chosen at boot by the runtime (stock: run time; boot: the values are the
 * ones kjit folded, and kjit checks they agree after init). */
void kjit_select_alternatives(void);

/* ---- redirecting live code (patch.c) -------------------------------------- */

/* Bytes of a patchable function entry ("patchable-function-entry"="5"). */
#define KJIT_PATCH_BYTES 5
int kjit_patch_read(uint64_t site, uint64_t *target);
int kjit_patch_redirect(uint64_t site, uint64_t alias, uint64_t target, uint64_t expect_target);
int kjit_patch_restore(uint64_t site, uint64_t alias, uint64_t expect_target);
int kjit_patch_trap(void *ucontext);
/* At a quiescent point: carry out a poke the host posted (runtime-internal). */
void kjit_poke_poll(void);

/* ---- grace periods (grace.c) ------------------------------------------------ */

/* The kernel tells the runtime where a task's stack is and where its saved
 * stack pointer lives (for the stack scans of grace periods). */
void kjit_task_stack(uint32_t task, const uint64_t *saved_rsp, uint64_t lo, uint64_t hi);
/* At a quiescent point: answer a pending grace request (runtime-internal). */
void kjit_grace_poll(void);
extern uint64_t kjit_main_frame_top;

/* Bounds [lo, hi) of the stack of a task (registered with kjit_task_register
 * and kjit_task_stack) that holds `sp`: 1, or 0 if none does.
 * Async-signal-safe (the sampler's handler calls it). */
int kjit_task_stack_of(uint64_t sp, uint64_t *lo, uint64_t *hi);

/* ---- sampling (sampler.c) ------------------------------------------------------ */

/* On the kernel thread: arm the sampling timer at cb.sample_hz (at start),
 * follow a changed rate (at quiescent points), delete it (at the end). */
void kjit_sampler_start(void);
void kjit_sampler_poll(void);
void kjit_sampler_stop(void);
/* Non-zero while the kernel thread is blocked in kjit_idle_until: ticks
 * that land then are counted as idle and not recorded. */
extern volatile int kjit_sampler_idle;

/* ---- shadow variables (shadow.c, kjit_shadow.h) ------------------------------ */

/* At a quiescent point: free the ids the host asked to (runtime-internal). */
void kjit_shadow_poll(void);
/* Free every id in [lo, hi) (the host, while the kernel thread is not running). */
void kjit_shadow_free_range(uint64_t lo, uint64_t hi);

#endif
