/*
 * @fileoverview Tasks and the scheduler (include/kernel/sched.h).  Every
 * task runs on its own 64 KiB stack, carved from the page allocator, whose
 * lowest page is made inaccessible (a guard page: an overflow faults instead
 * of corrupting the neighbour).  The scheduler runs on the kernel thread's
 * own stack; it switches into a task with switch_context (asm/switch.S) and
 * the task switches back when it blocks, yields or exits.  Each return to
 * the scheduler is a quiescent state of that task, reported to the runtime.
 *
 * The run queue is FIFO: tasks run in the order they became runnable, so a
 * run is the same sequence of steps every time for the same inputs.
 */
#include <kernel/file.h>
#include <kernel/lib.h>
#include <kernel/mm.h>
#include <kernel/sched.h>

#include "internal.h"
#include "kjit_rt.h"

#define TASK_STACK_SIZE (PAGE_SIZE << TASK_STACK_ORDER)

struct task *current;

static struct task *tasks[MAX_TASKS];
static u32 ntasks;
static u32 next_pid = 1;
static struct list_head runq = LIST_HEAD_INIT(runq);
/* Tasks that yielded during a sched_run_once pass: they run again in the
 * next pass, so a task that keeps yielding cannot hold the main loop. */
static struct list_head yieldq = LIST_HEAD_INIT(yieldq);
/* Where the scheduler's own stack pointer is kept while a task runs. */
static struct task_context sched_ctx;

void sched_init(void) {
  INIT_LIST_HEAD(&runq);
  INIT_LIST_HEAD(&yieldq);
  ntasks = 0;
  next_pid = 1;
  current = NULL;
}

/* ---- task creation and exit -------------------------------------------------- */

/* First C code of a new task: asm/switch.S's task_trampoline calls it with
 * the task (from %rbx).  Referenced only from assembly, hence `used`. */
__attribute__((used, noreturn)) void task_entry(struct task *t) {
  t->fn(t->arg);
  task_exit();
}

void task_exit(void) {
  struct task *t = current;
  BUG_ON(!t);
  /* Close whatever the program left open (sockets, queues, files). */
  fd_table_free(t->files);
  t->files = NULL;
  t->state = TASK_DEAD;
  switch_context(&t->ctx, &sched_ctx);
  panic("task %s: scheduled after its exit", t->comm);
}

struct task *task_create(const char *comm, void (*fn)(void *), void *arg, u32 uid, u32 gid) {
  if (ntasks == MAX_TASKS || ntasks >= KJIT_MAX_TASKS) return NULL;
  struct task *t = kzalloc(sizeof(*t));
  if (!t) return NULL;
  u8 *stack = alloc_pages(TASK_STACK_ORDER);
  if (!stack) {
    kfree(t);
    return NULL;
  }
  if (kjit_guard_page(stack) != 0) panic("task_create(%s): cannot guard the stack", comm);
  t->id = ntasks;
  t->pid = next_pid++;
  t->uid = uid;
  t->gid = gid;
  t->state = TASK_RUNNABLE;
  strlcpy(t->comm, comm, sizeof(t->comm));
  t->stack = stack;
  t->fn = fn;
  t->arg = arg;

  /* The initial stack, as switch_context expects to find a switched-out
   * task's: six callee-saved registers (r15 at the lowest address), then
   * the return address, task_trampoline.  %rbx carries the task; %rbp = 0
   * ends the frame chain.  After the `ret` into task_trampoline the stack
   * pointer is 16-byte aligned, so its call into task_entry sees the ABI's
   * alignment. */
  u64 *top = (u64 *)(stack + TASK_STACK_SIZE - 16);
  top[-1] = (u64)(uintptr_t)task_trampoline;
  top[-2] = 0;                    /* rbp */
  top[-3] = (u64)(uintptr_t)t;    /* rbx */
  top[-4] = 0;                    /* r12 */
  top[-5] = 0;                    /* r13 */
  top[-6] = 0;                    /* r14 */
  top[-7] = 0;                    /* r15 */
  t->ctx.rsp = (u64)(uintptr_t)&top[-7];

  tasks[ntasks++] = t;
  kjit_task_register(t->id);
  kjit_task_stack(t->id, &t->ctx.rsp, (u64)(uintptr_t)stack, (u64)(uintptr_t)(stack + TASK_STACK_SIZE));
  list_add_tail(&t->run_node, &runq);
  return t;
}

/* A dead task's stack and user memory go back; its descriptor stays, so
 * /proc/<pid> of a program that has exited still answers with its name. */
static void task_reap(struct task *t) {
  if (t->stack) {
    kjit_unguard_page(t->stack);
    free_pages(t->stack, TASK_STACK_ORDER);
    t->stack = NULL;
  }
}

/* ---- switching ------------------------------------------------------------------ */

static void switch_to_scheduler(void) {
  struct task *t = current;
  switch_context(&t->ctx, &sched_ctx);
}

void sched_yield(void) {
  struct task *t = current;
  if (!t) return;
  list_add_tail(&t->run_node, &yieldq);
  switch_to_scheduler();
}

void schedule_blocked(void) {
  struct task *t = current;
  BUG_ON(!t);
  t->state = TASK_BLOCKED;
  switch_to_scheduler();
}

void wake_up_task(struct task *t) {
  if (t->state != TASK_BLOCKED) return; /* running, already queued, or dead */
  t->state = TASK_RUNNABLE;
  list_add_tail(&t->run_node, &runq);
}

u64 sched_run_once(void) {
  BUG_ON(current); /* the scheduler runs on the kernel thread's stack only */
  u64 switches = 0;
  while (!list_empty(&runq)) {
    struct task *t = list_first_entry(&runq, struct task, run_node);
    list_del(&t->run_node);
    if (t->state != TASK_RUNNABLE) continue;
    current = t;
    t->switches++;
    switches++;
    switch_context(&sched_ctx, &t->ctx);
    current = NULL;
    kjit_quiescent(t->id);
    if (t->state == TASK_DEAD) task_reap(t);
  }
  /* Yielders run again next time. */
  while (!list_empty(&yieldq)) {
    struct list_head *n = yieldq.next;
    list_del(n);
    list_add_tail(n, &runq);
  }
  return switches;
}

bool sched_has_runnable(void) { return !list_empty(&runq) || !list_empty(&yieldq); }

struct task *task_by_index(u32 i) { return i < ntasks ? tasks[i] : NULL; }

u32 task_count(void) { return ntasks; }

void sched_stop_all(void) {
  for (u32 i = 0; i < ntasks; i++) {
    struct task *t = tasks[i];
    if (t->state == TASK_DEAD) continue;
    t->stopping = true;
    wake_up_task(t);
  }
}

/* ---- wait queues ---------------------------------------------------------------- */

void wait_entry_add(struct wait_queue *wq, struct wait_entry *e) {
  e->task = current;
  e->woken = false;
  list_add_tail(&e->node, &wq->waiters);
}

void wait_entry_remove(struct wait_entry *e) { list_del(&e->node); }

void wake_up_all(struct wait_queue *wq) {
  struct list_head *pos;
  list_for_each(pos, &wq->waiters) {
    struct wait_entry *e = list_entry(pos, struct wait_entry, node);
    e->woken = true;
    if (e->task) wake_up_task(e->task);
  }
}
