/*
 * @fileoverview Tasks and the scheduler.  Kernel tasks ("processes") run on
 * their own stacks on the one kernel thread; the scheduler switches between
 * them with an assembly context switch (asm/switch.S).  A task runs until it
 * blocks on a wait queue or yields; every return to the scheduler is a
 * quiescent state, reported to the runtime (kjit_quiescent) so that replaced
 * code can be freed once no task can be inside it.  When no task can run and
 * no operation is due, the scheduler blocks the thread (kjit_idle_until):
 * idle time is real idle CPU.
 */
#ifndef KERNEL_SCHED_H
#define KERNEL_SCHED_H

#include <kernel/types.h>

#define MAX_TASKS 16
#define TASK_STACK_ORDER 4 /* 64 KiB stacks, lowest page a guard */
#define TASK_COMM_LEN 16
#define TRACE_BUF_ENTRIES 256

struct file;
struct dentry;
struct seccomp_filter;

enum task_state { TASK_RUNNABLE = 0, TASK_BLOCKED = 1, TASK_DEAD = 2 };

/* Saved context of a switched-out task: only the stack pointer; the callee-
 * saved registers live on the task's stack (asm/switch.S). */
struct task_context {
  u64 rsp;
};

struct trace_entry {
  u64 tsc;
  u32 nr;
  s32 ret;
};

struct fd_table; /* fs/ */

struct task {
  struct task_context ctx; /* must stay first: switch.S uses offset 0 */
  u32 id;                  /* 0 .. MAX_TASKS-1: scheduler slot and quiescent-counter index */
  u32 pid;
  u32 uid, gid;
  enum task_state state;
  char comm[TASK_COMM_LEN];
  struct list_head run_node; /* on the run queue while runnable */
  void *stack;               /* base of the stack allocation */
  void (*fn)(void *);
  void *arg;
  u64 switches;              /* times scheduled in */
  /* file system */
  struct fd_table *files;
  struct dentry *cwd;
  /* "user memory": a region of the arena owned by the task; copy_{to,from}_user
   * check that user pointers fall inside it */
  u8 *user_base;
  u64 user_size;
  /* system-call hooks */
  const struct seccomp_filter *seccomp;
  struct trace_entry trace[TRACE_BUF_ENTRIES];
  u32 trace_head;
  u64 syscalls;
  /* a wait may be interrupted by the scheduler shutting down */
  bool stopping;
};

extern struct task *current;

void sched_init(void);
/* Create a runnable task executing fn(arg); returns NULL when out of slots. */
struct task *task_create(const char *comm, void (*fn)(void *), void *arg, u32 uid, u32 gid);
/* Give up the CPU; the task stays runnable. */
void sched_yield(void);
/* Block the current task until woken (the caller has queued itself). */
void schedule_blocked(void);
/* Make a blocked task runnable. */
void wake_up_task(struct task *t);
/* Run the tasks until the run queue is empty; returns the number of task
 * switches performed.  Called by the main loop (user/main.c). */
u64 sched_run_once(void);
bool sched_has_runnable(void);
struct task *task_by_index(u32 i);
u32 task_count(void);
/* Mark every task as stopping and wake them so they can exit. */
void sched_stop_all(void);

/* ---- wait queues ----------------------------------------------------------- */

struct wait_entry {
  struct list_head node;
  struct task *task;
  bool woken;
};

struct wait_queue {
  struct list_head waiters;
};

static inline void wait_queue_init(struct wait_queue *wq) { INIT_LIST_HEAD(&wq->waiters); }
void wait_entry_add(struct wait_queue *wq, struct wait_entry *e);
void wait_entry_remove(struct wait_entry *e);
/* Wake every task waiting on the queue. */
void wake_up_all(struct wait_queue *wq);
/* Sleep on one queue until cond() holds; returns -EINTR if the scheduler is
 * stopping.  `cond` is re-checked after every wake-up. */
#define wait_event(wq, cond)                               \
  ({                                                       \
    int __ret = 0;                                         \
    while (!(cond)) {                                      \
      if (current->stopping) {                             \
        __ret = -EINTR;                                    \
        break;                                             \
      }                                                    \
      struct wait_entry __we;                              \
      wait_entry_add((wq), &__we);                         \
      if (!(cond)) schedule_blocked();                     \
      wait_entry_remove(&__we);                            \
    }                                                      \
    __ret;                                                 \
  })

/* asm/switch.S: save callee-saved registers on the current stack, store the
 * stack pointer into from->rsp, load to->rsp, restore, return into `to`. */
void switch_context(struct task_context *from, struct task_context *to);
/* asm/switch.S: first instruction of a new task; calls task_entry(). */
void task_trampoline(void);

#endif
