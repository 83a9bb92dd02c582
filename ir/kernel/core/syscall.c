/*
 * @fileoverview The system-call layer (include/kernel/syscall.h): the
 * numbered dispatch table the subsystems fill in, the one entry point every
 * user program's call goes through with its hooks (seccomp filter, trace
 * point, audit record), user-memory access, and the calls that belong to no
 * subsystem (getpid, getuid, _sysctl).
 *
 * Hooks are switched by sysctls: kernel.seccomp and kernel.trace at run
 * time (READ_ONCE), kernel.audit at boot (a plain load kjit may fold).  None
 * of them changes what a call returns to a program that keeps to its filter.
 */
#include <kernel/lib.h>
#include <kernel/sched.h>
#include <kernel/syscall.h>
#include <kernel/sysctl.h>

#include "internal.h"

syscall_fn sys_call_table[NR_SYSCALLS];
static const char *sys_call_names[NR_SYSCALLS];

void syscall_register(unsigned nr, syscall_fn fn, const char *name) {
  if (nr >= NR_SYSCALLS) panic("syscall_register(%s): number %u out of range", name, nr);
  if (sys_call_table[nr]) panic("syscall_register(%s): %u is already %s", name, nr, sys_call_names[nr]);
  sys_call_table[nr] = fn;
  sys_call_names[nr] = name;
}

const char *syscall_name(unsigned nr) {
  if (nr >= NR_SYSCALLS || !sys_call_names[nr]) return "?";
  return sys_call_names[nr];
}

/* ---- user memory -------------------------------------------------------------- */

/* A user pointer is good when the whole range lies in the calling task's
 * user memory.  No task, no user memory. */
bool access_ok(const void *uptr, size_t len) {
  const struct task *t = current;
  if (!t || !t->user_base) return false;
  uintptr_t p = (uintptr_t)uptr, base = (uintptr_t)t->user_base;
  if (p < base) return false;
  u64 off = (u64)(p - base);
  return len <= t->user_size && off <= t->user_size - len;
}

long copy_from_user(void *dst, const void *usrc, size_t len) {
  if (!access_ok(usrc, len)) return -EFAULT;
  if (len) kmemcpy(dst, usrc, len);
  return 0;
}

long copy_to_user(void *udst, const void *src, size_t len) {
  if (!access_ok(udst, len)) return -EFAULT;
  if (len) kmemcpy(udst, src, len);
  return 0;
}

long strncpy_from_user(char *dst, const void *usrc, size_t max) {
  const struct task *t = current;
  if (!t || !t->user_base || max == 0) return -EFAULT;
  const char *s = usrc;
  uintptr_t p = (uintptr_t)s, base = (uintptr_t)t->user_base;
  if (p < base || p - base >= t->user_size) return -EFAULT;
  size_t avail = (size_t)(t->user_size - (p - base)); /* bytes up to the end of user memory */
  for (size_t i = 0; i < max; i++) {
    if (i == avail) return -EFAULT;
    dst[i] = s[i];
    if (!s[i]) return (long)i;
  }
  dst[max - 1] = 0;
  return -ENAMETOOLONG;
}

/* ---- seccomp -------------------------------------------------------------------- */

/* Classic-BPF-like: jumps are relative to the next instruction and only go
 * forward, so a program ends within `len` steps; running off its end kills. */
u32 seccomp_run(const struct seccomp_filter *f, unsigned nr, const u64 args[6]) {
  u64 acc = 0;
  u32 len = MIN(f->len, (u32)ARRAY_SIZE(f->insns));
  for (u32 pc = 0; pc < len; pc++) {
    const struct seccomp_insn *in = &f->insns[pc];
    switch (in->op) {
    case SC_LD_NR:
      acc = nr;
      break;
    case SC_LD_ARG:
      acc = in->k < 6 ? args[in->k] : 0;
      break;
    case SC_JEQ:
      pc += acc == in->k ? in->jt : in->jf;
      break;
    case SC_JGT:
      pc += acc > in->k ? in->jt : in->jf;
      break;
    case SC_JSET:
      pc += (acc & in->k) ? in->jt : in->jf;
      break;
    case SC_AND:
      acc &= in->k;
      break;
    case SC_RET:
      return in->k;
    default:
      return SECCOMP_RET_KILL;
    }
  }
  return SECCOMP_RET_KILL;
}

/* ---- the entry point ---------------------------------------------------------------- */

static __noinline long seccomp_denied(struct task *t, unsigned nr, u32 action) {
  if ((action & 0xffff0000u) == SECCOMP_RET_ERRNO) return -(long)(action & 0xffffu);
  printk("seccomp: %s (pid %u) killed for system call %u (%s)", t->comm, t->pid, nr, syscall_name(nr));
  task_exit();
}

static void trace_point(struct task *t, u64 tsc, unsigned nr, long ret) {
  struct trace_entry *e = &t->trace[t->trace_head % TRACE_BUF_ENTRIES];
  e->tsc = tsc;
  e->nr = nr;
  e->ret = (s32)ret;
  t->trace_head++;
}

long syscall_entry(unsigned nr, u64 a, u64 b, u64 c, u64 d, u64 e, u64 f) {
  struct task *t = current;
  const u64 args[6] = {a, b, c, d, e, f};
  bool trace = t && READ_ONCE(sysctl_kernel_trace);
  u64 tsc = trace ? rdtsc_ordered() : 0;
  long ret;
  if (t) t->syscalls++;
  if (t && t->seccomp && READ_ONCE(sysctl_kernel_seccomp)) {
    u32 action = seccomp_run(t->seccomp, nr, args);
    if (unlikely(action != SECCOMP_RET_ALLOW)) {
      ret = seccomp_denied(t, nr, action);
      goto out;
    }
  }
  if (unlikely(nr >= NR_SYSCALLS || !sys_call_table[nr]))
    ret = -ENOSYS;
  else
    ret = sys_call_table[nr](a, b, c, d, e, f);
out:
  if (trace) trace_point(t, tsc, nr, ret);
  if (sysctl_kernel_audit) audit_syscall(nr, args, ret);
  return ret;
}

/* ---- calls of the core -------------------------------------------------------------------- */

static long sys_getpid(u64 a, u64 b, u64 c, u64 d, u64 e, u64 f) { return current ? (long)current->pid : 0; }

static long sys_getuid(u64 a, u64 b, u64 c, u64 d, u64 e, u64 f) { return current ? (long)current->uid : 0; }

/* _sysctl(name, old, new): read the value into *old if old is not NULL, then
 * set it from *new if new is not NULL (root only). */
static long sys_sysctl(u64 uname, u64 uold, u64 unew, u64 d, u64 e, u64 f) {
  char name[64];
  long n = strncpy_from_user(name, (const void *)(uintptr_t)uname, sizeof(name));
  if (n < 0) return n == -ENAMETOOLONG ? -ENOENT : n;
  s64 value;
  int err = sysctl_read(name, &value);
  if (err) return err;
  if (uold && copy_to_user((void *)(uintptr_t)uold, &value, sizeof(value))) return -EFAULT;
  if (unew) {
    if (current && current->uid != 0) return -EPERM;
    if (copy_from_user(&value, (const void *)(uintptr_t)unew, sizeof(value))) return -EFAULT;
    return sysctl_write(name, value);
  }
  return 0;
}

void syscalls_init(void) {
  audit_init();
  syscall_register(SYS_getpid, sys_getpid, "getpid");
  syscall_register(SYS_getuid, sys_getuid, "getuid");
  syscall_register(SYS_sysctl, sys_sysctl, "sysctl");
}
