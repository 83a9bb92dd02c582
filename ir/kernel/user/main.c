/*
 * @fileoverview The kernel's main loop (the image's `run`): hands out
 * operations as they arrive, routes each to where its request enters the
 * machine (the NIC, through the wire, or a worker's job queue), runs the
 * network softirq and the scheduler, and blocks the thread when there is
 * nothing to do.  For the phases mix it also switches phases and flips
 * kernel.trace at each switch, as an operator's script would.
 */
#include <kernel/lib.h>
#include <kernel/net.h>
#include <kernel/sched.h>
#include <kernel/sysctl.h>
#include <kernel/workload.h>

#include "kjit_rt.h"

#define DISPATCH_BATCH 32

static struct {
  bool exhausted;     /* the runtime has no more operations */
  u64 wait_until;     /* open loop: arrival of the next operation */
  bool have_held;     /* an operation claimed but not yet placed */
  u64 held_op, held_arrival;
  u64 phase;
} loop;

static void maybe_switch_phase(u64 op) {
  if (workload_config.workload != W_PHASES) return;
  u64 phase = op / workload_config.phase_ops;
  if (phase == loop.phase) return;
  loop.phase = phase;
  sysctl_write("kernel.trace", (s64)(phase & 1));
  printk("phases: operation %lu starts phase %lu (%s), kernel.trace=%lu", (unsigned long)op,
         (unsigned long)phase, kjit_workloads[phase_kind(phase)], (unsigned long)(phase & 1));
}

/* Place an operation; false if its entry point is full right now. */
static bool place(u64 op, u64 arrival) {
  enum workload_id kind = op_kind(op);
  if (kind == W_FS) {
    struct job j = {op, arrival, hash64(workload_config.seed ^ (op * 0x9e3779b97f4a7c15ull))};
    return jobq_post(op_task(op), &j);
  }
  if (!wire_can_accept()) return false;
  wire_inject(op, arrival, kind);
  return true;
}

static void dispatch(void) {
  loop.wait_until = 0;
  if (loop.have_held) {
    if (!place(loop.held_op, loop.held_arrival)) return;
    loop.have_held = false;
  }
  for (u32 n = 0; n < DISPATCH_BATCH && !loop.exhausted; n++) {
    u64 arrival;
    s64 op = kjit_op_next(&arrival);
    if (op == KJIT_OP_DONE) {
      loop.exhausted = true;
      break;
    }
    if (op == KJIT_OP_WAIT) {
      loop.wait_until = arrival; /* 0: closed loop at its concurrency */
      break;
    }
    maybe_switch_phase((u64)op);
    if (!place((u64)op, arrival)) {
      loop.have_held = true;
      loop.held_op = (u64)op;
      loop.held_arrival = arrival;
      break;
    }
  }
}

void kernel_run(void) {
  /* Let user space come up: init loads its configuration, the workers open
   * their sockets and block in poll(). */
  while (sched_has_runnable()) sched_run_once();
  printk("user space ready; serving");

  for (;;) {
    dispatch();
    net_rx_action();
    sched_run_once();
    wire_collect();
    if (loop.exhausted && kjit_ops_in_flight() == 0) break;
    if (sched_has_runnable() || net_pending() || wire_pending() || loop.have_held) continue;
    if (loop.wait_until) {
      kjit_idle_until(loop.wait_until); /* open loop: nothing due before then */
      continue;
    }
    if (!loop.exhausted && kjit_ops_in_flight() == 0) continue; /* ask again */
    panic("stalled: %lu operations in flight and nothing can run",
          (unsigned long)kjit_ops_in_flight());
  }

  sched_stop_all();
  while (sched_has_runnable()) sched_run_once();
  printk("kernel: stopped after %lu operations", (unsigned long)kjit_cb.ops_done[0]);
}
