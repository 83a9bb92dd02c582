/*
 * @fileoverview Bring-up: kernel_init() (the image's `init`) reads the
 * workload the host asked for, builds every subsystem on the arena the
 * runtime mapped, and creates the user programs: the workers (pids 1 ..
 * NWORKERS, one per job queue and port set) and init (pid NWORKERS + 1),
 * each with its own user memory and, for the workers, a seccomp filter
 * allowing the calls a server makes.  kernel_run() (user/main.c) then runs
 * them.  Also the workload names the host reads (kjit_workloads).
 */
#include <kernel/fs.h>
#include <kernel/lib.h>
#include <kernel/mm.h>
#include <kernel/net.h>
#include <kernel/sched.h>
#include <kernel/syscall.h>
#include <kernel/sysctl.h>
#include <kernel/workload.h>

#include "internal.h"
#include "kjit_rt.h"

#define USER_MEM_ORDER 8 /* 1 MiB of user memory per program */
#define WORKER_UID 1000  /* worker t runs as uid WORKER_UID + t */
#define WORKER_GID 1000

/* Index = enum workload_id = what the host writes into cb.workload. */
const char *const kjit_workloads[] = {"web", "kv", "fs", "firewall", "phases"};
const uint64_t kjit_nworkloads = ARRAY_SIZE(kjit_workloads);
_Static_assert(ARRAY_SIZE(kjit_workloads) == W_COUNT, "a name per workload");

struct workload_config workload_config;

void worker_main(void *arg);
void init_task_main(void *arg);

/* ---- the workers' seccomp filter ---------------------------------------------------- */

/* Allow what a server does; anything else (mkdir, unlink, fwctl, sysctl
 * ...) fails with EPERM.  Layout, n = the number of allowed calls:
 *   0          acc = nr
 *   1          nr > the last number: to n+2
 *   2 .. n+1   nr == allowed[i]: to n+3
 *   n+2        return errno EPERM
 *   n+3        return allow                                                */
static struct seccomp_filter worker_filter;

static void build_worker_filter(void) {
  static const u32 allowed[] = {SYS_read,     SYS_write,   SYS_open,   SYS_openat,   SYS_close,  SYS_stat,
                                SYS_fstat,    SYS_lstat,   SYS_poll,   SYS_lseek,    SYS_readlink, SYS_getpid,
                                SYS_getuid,   SYS_socket,  SYS_bind,   SYS_listen,   SYS_accept, SYS_sendto,
                                SYS_recvfrom, SYS_shutdown, SYS_jobq};
  struct seccomp_filter *f = &worker_filter;
  u32 n = ARRAY_SIZE(allowed), pc = 0;
  BUG_ON(n + 4 > ARRAY_SIZE(f->insns));
  f->insns[pc++] = (struct seccomp_insn){SC_LD_NR, 0, 0, 0};
  f->insns[pc++] = (struct seccomp_insn){SC_JGT, (u8)n, 0, NR_SYSCALLS - 1};
  for (u32 i = 0; i < n; i++, pc++) f->insns[pc] = (struct seccomp_insn){SC_JEQ, (u8)(n - i), 0, allowed[i]};
  f->insns[pc++] = (struct seccomp_insn){SC_RET, 0, 0, SECCOMP_RET_ERRNO | EPERM};
  f->insns[pc++] = (struct seccomp_insn){SC_RET, 0, 0, SECCOMP_RET_ALLOW};
  f->len = pc;
}

/* ---- programs ------------------------------------------------------------------------------ */

static struct task *spawn(const char *comm, void (*fn)(void *), void *arg, u32 uid, u32 gid) {
  struct task *t = task_create(comm, fn, arg, uid, gid);
  if (!t) panic("kernel_init: cannot create task %s", comm);
  u8 *mem = alloc_pages(USER_MEM_ORDER);
  if (!mem) panic("kernel_init: no user memory for %s", comm);
  memset(mem, 0, PAGE_SIZE << USER_MEM_ORDER);
  t->user_base = mem;
  t->user_size = PAGE_SIZE << USER_MEM_ORDER;
  fs_task_init(t);
  return t;
}

/* The CPU as cpuid describes it, in KJIT_CPU_* bits, for the log: the
 * selectors were resolved from the machine description the host wrote. */
static u64 cpu_detect(void) {
  u32 r[4];
  u64 bits = 0;
  kjit_cpuid(0, 0, r);
  u32 max_leaf = r[0];
  kjit_cpuid(1, 0, r);
  if (r[2] & (1u << 20)) bits |= KJIT_CPU_SSE42;
  if (r[2] & (1u << 23)) bits |= KJIT_CPU_POPCNT;
  if (max_leaf >= 7) {
    kjit_cpuid(7, 0, r);
    if (r[1] & (1u << 5)) bits |= KJIT_CPU_AVX2;
    if (r[1] & (1u << 8)) bits |= KJIT_CPU_BMI2;
    if (r[1] & (1u << 9)) bits |= KJIT_CPU_ERMS;
    if (r[3] & (1u << 4)) bits |= KJIT_CPU_FSRM;
  }
  return bits;
}

void kernel_init(void) {
  u64 w = kjit_cb.workload[0];
  if (w >= W_COUNT) panic("kernel_init: unknown workload %lu", (unsigned long)w);
  workload_config.workload = (enum workload_id)w;
  workload_config.seed = kjit_cb.seed[0];
  workload_config.phase_ops = kjit_cb.workload_arg[0] ? kjit_cb.workload_arg[0] : DEFAULT_PHASE_OPS;
  workload_config.nworkers = NWORKERS;

  u64 bytes;
  void *arena = kjit_arena(&bytes);
  if (!arena || !bytes) panic("kernel_init: the runtime mapped no arena");
  mm_init(arena, bytes);

  u64 cpu = cpu_detect(), described = kjit_hw_cpu_features();
  printk("cpu: cpuid features %lx, machine description %lx; copy=%ld csum=%ld crc32c=%ld", (unsigned long)cpu,
         (unsigned long)described, (long)sysctl_cpu_copy, (long)sysctl_cpu_csum, (long)sysctl_cpu_crc32c);
  if (described & ~cpu) printk("cpu: warning: the machine description claims features cpuid does not report");

  sched_init();
  syscalls_init();
  fs_init();
  net_init();
  jobq_init();
  wire_init();

  build_worker_filter();
  for (u32 i = 0; i < NWORKERS; i++) {
    char comm[TASK_COMM_LEN];
    ksnprintf(comm, sizeof(comm), "worker-%u", i);
    struct task *t = spawn(comm, worker_main, (void *)(uintptr_t)i, WORKER_UID + i, WORKER_GID);
    t->seccomp = &worker_filter;
    jobq_bind(i, t);
  }
  spawn("init", init_task_main, NULL, 0, 0);

  sysctl_boot_done();
  printk("kernel: workload %s, seed %lu, %u workers; booted", kjit_workloads[workload_config.workload],
         (unsigned long)workload_config.seed, workload_config.nworkers);
}
