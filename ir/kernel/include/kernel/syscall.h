/*
 * @fileoverview System calls: one entry point (syscall_entry) in front of a
 * numbered dispatch table of handlers, called indirectly.  Before dispatch it
 * runs the hooks the sysctls switch on: seccomp-like filter (a small bytecode
 * program per task), trace point (timestamp into the task's buffer) and, on
 * exit, the audit record (formatted into the audit ring).
 *
 * Handlers take six u64 arguments (user pointers among them) and return a
 * value or a negative errno.  They check user pointers with access_ok() and
 * move data with copy_from_user()/copy_to_user().
 */
#ifndef KERNEL_SYSCALL_H
#define KERNEL_SYSCALL_H

#include <kernel/types.h>

/* Numbers follow x86-64 Linux where a call exists there. */
#define SYS_read 0
#define SYS_write 1
#define SYS_open 2
#define SYS_close 3
#define SYS_stat 4
#define SYS_fstat 5
#define SYS_lstat 6
#define SYS_poll 7
#define SYS_lseek 8
#define SYS_getpid 39
#define SYS_socket 41
#define SYS_connect 42
#define SYS_accept 43
#define SYS_sendto 44
#define SYS_recvfrom 45
#define SYS_shutdown 48
#define SYS_bind 49
#define SYS_listen 50
#define SYS_getuid 102
#define SYS_mkdir 83
#define SYS_unlink 87
#define SYS_symlink 88
#define SYS_readlink 89
#define SYS_openat 257
#define SYS_sysctl 156 /* _sysctl: kjit's form: (name, &old, new or NULL) */
#define SYS_fwctl 300  /* firewall rule management (iptables-like) */
#define SYS_jobq 301   /* open this task's job queue (fs workload) */
#define NR_SYSCALLS 302

#define AT_FDCWD (-100)

typedef long (*syscall_fn)(u64 a, u64 b, u64 c, u64 d, u64 e, u64 f);

/* The table (core/syscall.c) is filled by subsystem init functions. */
extern syscall_fn sys_call_table[NR_SYSCALLS];
void syscall_register(unsigned nr, syscall_fn fn, const char *name);
const char *syscall_name(unsigned nr);

/* The entry point every user program's system call goes through. */
long syscall_entry(unsigned nr, u64 a, u64 b, u64 c, u64 d, u64 e, u64 f);

/* ---- user memory ------------------------------------------------------------- */

bool access_ok(const void *uptr, size_t len);
/* Return 0 or -EFAULT. */
long copy_from_user(void *dst, const void *usrc, size_t len);
long copy_to_user(void *udst, const void *src, size_t len);
/* Copy a NUL-terminated user string of at most max-1 bytes; returns its
 * length, -EFAULT, or -ENAMETOOLONG. */
long strncpy_from_user(char *dst, const void *usrc, size_t max);

/* ---- hooks ------------------------------------------------------------------- */

/* Seccomp-like filter: a program over (nr, args) returning an action. */
enum seccomp_op {
  SC_LD_NR,     /* acc = nr */
  SC_LD_ARG,    /* acc = args[k] */
  SC_JEQ,       /* if acc == k: pc += jt else pc += jf */
  SC_JGT,       /* if acc > k: pc += jt else pc += jf */
  SC_JSET,      /* if acc & k: pc += jt else pc += jf */
  SC_AND,       /* acc &= k */
  SC_RET,       /* return k */
};
#define SECCOMP_RET_ALLOW 0x7fff0000u
#define SECCOMP_RET_ERRNO 0x00050000u /* low 16 bits: errno */
#define SECCOMP_RET_KILL 0u

struct seccomp_insn {
  u16 op;
  u8 jt, jf;
  u32 k;
};
struct seccomp_filter {
  u32 len;
  struct seccomp_insn insns[64];
};
u32 seccomp_run(const struct seccomp_filter *f, unsigned nr, const u64 args[6]);

/* Audit ring (core/audit.c) */
void audit_syscall(unsigned nr, const u64 args[6], long ret);
u64 audit_records(void);

void syscalls_init(void);

#endif
