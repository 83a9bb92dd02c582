/*
 * @fileoverview poll(): ask each file for its readiness through its
 * ->poll operation; if nothing is ready and the caller may wait, the first
 * pass has also registered the task on every file's wait queue(s) through
 * the poll tables, so the task blocks and polls again after each wake-up.
 * All wait entries are removed before returning.
 *
 * Timeouts: the kernel has no timer wheel, so a positive timeout waits like
 * an infinite one (until an event, or until the scheduler stops the task
 * with -EINTR); 0 never blocks.  The user programs use -1 and 0 only.
 */
#include <kernel/ulib.h>

#include "vfs.h"

#define POLL_MAX_FDS MAX_FDS
#define POLL_ROOM_PER_FILE 2 /* wait queues one file may register */
#define POLL_ENTRIES (sizeof(((struct poll_table *)0)->entries) / sizeof(struct wait_entry))
#define POLL_FILES_PER_TABLE (POLL_ENTRIES / POLL_ROOM_PER_FILE)
#define POLL_INLINE_TABLES 2 /* on the stack: enough for 8 descriptors */

struct poll_wqueues {
  struct poll_table *tables;
  u32 ntables;
  u32 cur;
  struct poll_table inline_tables[POLL_INLINE_TABLES];
};

static int poll_initwait(struct poll_wqueues *pw, u32 nfds) {
  pw->ntables = (u32)((nfds + POLL_FILES_PER_TABLE - 1) / POLL_FILES_PER_TABLE);
  if (pw->ntables == 0) pw->ntables = 1;
  pw->tables = pw->inline_tables;
  if (pw->ntables > POLL_INLINE_TABLES) {
    pw->tables = kmalloc(sizeof(struct poll_table) * pw->ntables);
    if (!pw->tables) return -ENOMEM;
  }
  for (u32 i = 0; i < pw->ntables; i++) pw->tables[i].n = 0;
  pw->cur = 0;
  return 0;
}

static void poll_freewait(struct poll_wqueues *pw) {
  for (u32 t = 0; t <= pw->cur && t < pw->ntables; t++) {
    struct poll_table *pt = &pw->tables[t];
    for (u32 i = 0; i < pt->n; i++) wait_entry_remove(&pt->entries[i]);
    pt->n = 0;
  }
  if (pw->tables != pw->inline_tables) kfree(pw->tables);
}

/* A table with room for one more file's wait queues. */
static struct poll_table *poll_table_for(struct poll_wqueues *pw) {
  struct poll_table *pt = &pw->tables[pw->cur];
  if (pt->n + POLL_ROOM_PER_FILE > POLL_ENTRIES) {
    BUG_ON(pw->cur + 1 >= pw->ntables);
    pt = &pw->tables[++pw->cur];
  }
  return pt;
}

static unsigned do_pollfd(struct pollfd *pfd, struct poll_table *pt) {
  unsigned mask = 0;
  if (pfd->fd >= 0) {
    struct file *f = fd_lookup(pfd->fd);
    if (!f) {
      mask = POLLNVAL;
    } else {
      mask = f->f_op->poll ? f->f_op->poll(f, pt) : (POLLIN | POLLOUT);
      mask &= (u16)pfd->events | POLLERR | POLLHUP;
    }
  }
  pfd->revents = (s16)mask;
  return mask;
}

static long do_poll(struct pollfd *fds, u32 nfds, struct poll_wqueues *pw, bool can_block) {
  bool registering = can_block;
  for (;;) {
    long count = 0;
    for (u32 i = 0; i < nfds; i++) {
      struct poll_table *pt = registering ? poll_table_for(pw) : NULL;
      if (do_pollfd(&fds[i], pt)) count++;
    }
    /* Entries stay on the queues: later passes only look. */
    registering = false;
    if (count || !can_block) return count;
    if (current->stopping) return -EINTR;
    schedule_blocked();
  }
}

static long sys_poll(u64 ufds, u64 nfds, u64 timeout, u64 d, u64 e, u64 f) {
  struct pollfd fds[POLL_MAX_FDS];
  struct poll_wqueues pw;
  struct pollfd *user = (struct pollfd *)(uintptr_t)ufds;
  if (nfds > POLL_MAX_FDS) return -EINVAL;
  if (copy_from_user(fds, user, sizeof(struct pollfd) * nfds)) return -EFAULT;
  if (poll_initwait(&pw, (u32)nfds)) return -ENOMEM;
  long ret = do_poll(fds, (u32)nfds, &pw, (s64)timeout != 0);
  poll_freewait(&pw);
  if (ret < 0) return ret;
  for (u64 i = 0; i < nfds; i++)
    if (copy_to_user(&user[i].revents, &fds[i].revents, sizeof(fds[i].revents))) return -EFAULT;
  return ret;
}

void select_syscalls_init(void) { syscall_register(SYS_poll, sys_poll, "poll"); }
