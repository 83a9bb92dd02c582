/*
 * @fileoverview Open files and descriptor tables (include/kernel/file.h):
 * the objects every task reads and writes through, whatever is behind them
 * (a file of one of the file systems, a socket, a job queue).  Also the
 * poll-table hook files use to register their wait queues, and the file
 * state a new task starts with.
 */
#include "vfs.h"

static struct kmem_cache *file_cache;
static struct kmem_cache *fd_table_cache;

void files_init(void) {
  file_cache = kmem_cache_create("filp", sizeof(struct file), 8);
  fd_table_cache = kmem_cache_create("files_cache", sizeof(struct fd_table), 8);
  if (!file_cache || !fd_table_cache) panic("files_init: out of memory");
}

/* ---- struct file ------------------------------------------------------------ */

struct file *file_alloc(const struct file_operations *ops, void *private_data, u32 flags) {
  struct file *f = kmem_cache_zalloc(file_cache);
  if (!f) return NULL;
  f->f_op = ops;
  f->refcount = 1;
  f->flags = flags;
  f->private_data = private_data;
  return f;
}

void file_get(struct file *f) { f->refcount++; }

/* The last reference is gone: let the owner of the file clean up its side
 * (socket, queue, procfs buffer ...), then drop the inode reference the VFS
 * took at open time, as Linux's __fput does after ->release. */
static void __fput(struct file *f) {
  if (f->f_op && f->f_op->release) f->f_op->release(f);
  if (f->inode) iput(f->inode);
  kmem_cache_free(file_cache, f);
}

void file_put(struct file *f) {
  BUG_ON(f->refcount == 0);
  if (--f->refcount == 0) __fput(f);
}

/* ---- descriptor tables ---------------------------------------------------------- */

struct fd_table *fd_table_alloc(void) { return kmem_cache_zalloc(fd_table_cache); }

void fd_table_free(struct fd_table *t) {
  if (!t) return;
  for (int fd = 0; fd < MAX_FDS; fd++) {
    struct file *f = t->fd[fd];
    if (!f) continue;
    t->fd[fd] = NULL;
    file_put(f);
  }
  kmem_cache_free(fd_table_cache, t);
}

/* Like POSIX: the lowest free descriptor. */
int fd_install(struct file *f) {
  struct fd_table *t = current->files;
  for (int fd = 0; fd < MAX_FDS; fd++) {
    if (!t->fd[fd]) {
      t->fd[fd] = f;
      return fd;
    }
  }
  return -EMFILE;
}

struct file *fd_lookup(int fd) {
  struct fd_table *t = current->files;
  if (unlikely((unsigned)fd >= MAX_FDS || !t)) return NULL;
  return t->fd[fd];
}

int fd_close(int fd) {
  struct fd_table *t = current->files;
  if ((unsigned)fd >= MAX_FDS || !t || !t->fd[fd]) return -EBADF;
  struct file *f = t->fd[fd];
  t->fd[fd] = NULL;
  file_put(f);
  return 0;
}

/* ---- poll ------------------------------------------------------------------------- */

/* A file's ->poll registers the polling task on each wait queue whose wake-up
 * would change the file's readiness.  select.c guarantees every file room
 * for two queues in the table it passes; a file that registers more is a
 * bug we would rather see than a lost wake-up. */
void poll_wait(struct wait_queue *wq, struct poll_table *pt) {
  if (!pt || !wq) return;
  if (unlikely(pt->n >= ARRAY_SIZE(pt->entries)))
    panic("poll_wait: a file registered more wait queues than its poll table holds");
  wait_entry_add(wq, &pt->entries[pt->n++]);
}

/* ---- tasks -------------------------------------------------------------------------- */

void fs_task_init(struct task *t) {
  t->files = fd_table_alloc();
  if (!t->files) panic("fs_task_init(%s): out of memory", t->comm);
  t->cwd = fs_root();
}
