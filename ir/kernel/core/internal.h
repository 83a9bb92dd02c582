/*
 * @fileoverview Interfaces private to core/ (the scheduler, system calls,
 * sysctls, job queues, audit and bring-up): what kernel_init (core/init.c)
 * needs from the other core files beyond the shared headers.
 */
#ifndef CORE_INTERNAL_H
#define CORE_INTERNAL_H

#include <kernel/sched.h>
#include <kernel/types.h>

/* core/sched.c: the current task ends (after its function returned, or
 * killed by its seccomp filter); never returns. */
__attribute__((noreturn)) void task_exit(void);

/* core/sysctl.c: boot is over; boot-fixed sysctls refuse writes from now on. */
void sysctl_boot_done(void);

/* core/jobq.c: queue `q` (the worker index op_task() names) belongs to task t:
 * its SYS_jobq opens that queue. */
void jobq_bind(u32 q, struct task *t);

/* core/audit.c */
void audit_init(void);

#endif
