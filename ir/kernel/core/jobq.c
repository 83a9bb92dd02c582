/*
 * @fileoverview Job queues (include/kernel/workload.h): how fs-workload
 * operations reach the workers.  Worker t opens its queue with SYS_jobq and
 * gets a file: poll() reports POLLIN while jobs wait, read() takes the next
 * struct job, and write() of a struct job_result completes that operation
 * (kjit_op_complete), the way a server would answer on a pipe.
 */
#include <kernel/file.h>
#include <kernel/lib.h>
#include <kernel/mm.h>
#include <kernel/sched.h>
#include <kernel/syscall.h>
#include <kernel/uapi.h>
#include <kernel/workload.h>

#include "internal.h"
#include "kjit_rt.h"

#define JOBQ_SIZE 256

struct jobq {
  struct job ring[JOBQ_SIZE];
  u32 head, len;
  struct wait_queue wq; /* the worker, waiting in read() or poll() */
  struct task *owner;
  u64 posted, taken, completed;
};

static struct jobq *jobqs[NWORKERS];

static struct jobq *jobq_of(u32 q) { return q < NWORKERS ? jobqs[q] : NULL; }

bool jobq_post(u32 task, const struct job *j) {
  struct jobq *q = jobq_of(task);
  if (!q) panic("jobq_post: no queue for worker %u", task);
  if (q->len == JOBQ_SIZE) return false;
  q->ring[(q->head + q->len) % JOBQ_SIZE] = *j;
  q->len++;
  q->posted++;
  wake_up_all(&q->wq);
  return true;
}

bool jobq_pending(void) {
  for (u32 i = 0; i < NWORKERS; i++)
    if (jobqs[i] && jobqs[i]->len) return true;
  return false;
}

void jobq_bind(u32 qi, struct task *t) {
  struct jobq *q = jobq_of(qi);
  if (!q) panic("jobq_bind: no queue %u", qi);
  q->owner = t;
}

/* ---- the queue as a file ---------------------------------------------------------- */

static long jobq_read(struct file *f, void *buf, size_t len, u64 *pos) {
  struct jobq *q = f->private_data;
  if (len < sizeof(struct job)) return -EINVAL;
  if (!q->len) {
    if (f->flags & O_NONBLOCK) return -EAGAIN;
    int err = wait_event(&q->wq, q->len != 0);
    if (err) return err;
  }
  struct job j = q->ring[q->head];
  q->head = (q->head + 1) % JOBQ_SIZE;
  q->len--;
  q->taken++;
  kmemcpy(buf, &j, sizeof(j));
  return sizeof(j);
}

static long jobq_write(struct file *f, const void *buf, size_t len, u64 *pos) {
  struct jobq *q = f->private_data;
  if (len == 0 || len % sizeof(struct job_result)) return -EINVAL;
  for (size_t off = 0; off < len; off += sizeof(struct job_result)) {
    struct job_result r;
    kmemcpy(&r, (const u8 *)buf + off, sizeof(r));
    kjit_op_complete(r.op, r.arrival_ns, r.result);
    q->completed++;
  }
  return (long)len;
}

static unsigned jobq_poll(struct file *f, struct poll_table *pt) {
  struct jobq *q = f->private_data;
  if (pt) poll_wait(&q->wq, pt);
  return (q->len ? POLLIN : 0) | POLLOUT;
}

static int jobq_fstat(struct file *f, struct kstat *st) {
  struct jobq *q = f->private_data;
  memset(st, 0, sizeof(*st));
  st->st_mode = S_IFIFO | 0600;
  st->st_nlink = 1;
  st->st_uid = q->owner ? q->owner->uid : 0;
  st->st_gid = q->owner ? q->owner->gid : 0;
  st->st_size = q->len * sizeof(struct job);
  return 0;
}

static const struct file_operations jobq_fops = {
    .read = jobq_read,
    .write = jobq_write,
    .poll = jobq_poll,
    .fstat = jobq_fstat,
};

/* jobq(): a descriptor for the calling task's queue. */
static long sys_jobq(u64 a, u64 b, u64 c, u64 d, u64 e, u64 f) {
  struct jobq *q = NULL;
  for (u32 i = 0; i < NWORKERS; i++)
    if (jobqs[i] && jobqs[i]->owner == current) q = jobqs[i];
  if (!q || !current) return -ENOENT;
  struct file *file = file_alloc(&jobq_fops, q, O_RDWR);
  if (!file) return -ENFILE;
  int fd = fd_install(file);
  if (fd < 0) file_put(file);
  return fd;
}

void jobq_init(void) {
  for (u32 i = 0; i < NWORKERS; i++) {
    struct jobq *q = kzalloc(sizeof(*q));
    if (!q) panic("jobq_init: out of memory");
    wait_queue_init(&q->wq);
    jobqs[i] = q;
  }
  syscall_register(SYS_jobq, sys_jobq, "jobq");
}
