/*
 * @fileoverview The audit ring: with kernel.audit=1 (a boot parameter),
 * every system call leaves a formatted record here on its way out, as
 * Linux's audit subsystem would queue one for auditd.  The ring keeps the
 * most recent records; nobody reads it during a run, but the formatting is
 * real work on every call, which is what the option costs.
 */
#include <kernel/lib.h>
#include <kernel/sched.h>
#include <kernel/syscall.h>

#include "internal.h"

#define AUDIT_RING_SIZE (64 * 1024)
#define AUDIT_RECORD_MAX 192

static char audit_ring[AUDIT_RING_SIZE];
static u64 audit_head; /* bytes ever written */
static u64 audit_count;
static u64 audit_serial;

void audit_init(void) {
  audit_head = 0;
  audit_count = 0;
  audit_serial = 0;
}

void audit_syscall(unsigned nr, const u64 args[6], long ret) {
  char rec[AUDIT_RECORD_MAX];
  const struct task *t = current;
  int n = ksnprintf(rec, sizeof(rec),
                    "type=SYSCALL msg=audit(%lu): syscall=%u (%s) success=%s exit=%ld a0=%lx a1=%lx a2=%lx a3=%lx "
                    "pid=%u uid=%u comm=\"%s\"\n",
                    (unsigned long)++audit_serial, nr, syscall_name(nr), ret < 0 ? "no" : "yes", ret,
                    (unsigned long)args[0], (unsigned long)args[1], (unsigned long)args[2], (unsigned long)args[3],
                    t ? t->pid : 0, t ? t->uid : 0, t ? t->comm : "kernel");
  size_t len = MIN((size_t)n, sizeof(rec) - 1);
  for (size_t i = 0; i < len; i++) audit_ring[(audit_head + i) % AUDIT_RING_SIZE] = rec[i];
  audit_head += len;
  audit_count++;
}

u64 audit_records(void) { return audit_count; }
