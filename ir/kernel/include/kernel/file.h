/*
 * @fileoverview Open files and file descriptors, shared by the VFS (fs/),
 * sockets (net/) and the job queues (core/jobq.c): everything a task reads
 * or writes is a `struct file` reached through its descriptor table, and its
 * behaviour comes from an operations table called indirectly.
 */
#ifndef KERNEL_FILE_H
#define KERNEL_FILE_H

#include <kernel/sched.h>
#include <kernel/types.h>

#define MAX_FDS 64

#define O_RDONLY 0
#define O_WRONLY 1
#define O_RDWR 2
#define O_ACCMODE 3
#define O_CREAT 0100
#define O_EXCL 0200
#define O_TRUNC 01000
#define O_APPEND 02000
#define O_NONBLOCK 04000
#define O_DIRECTORY 0200000
#define O_NOFOLLOW 0400000

#define POLLIN 0x001
#define POLLOUT 0x004
#define POLLERR 0x008
#define POLLHUP 0x010

struct file;
struct kstat;
struct poll_table;

struct file_operations {
  /* Return bytes transferred or a negative errno.  `buf` is a kernel pointer:
   * the system-call layer has already checked and copied user memory. */
  long (*read)(struct file *f, void *buf, size_t len, u64 *pos);
  long (*write)(struct file *f, const void *buf, size_t len, u64 *pos);
  /* Readiness mask (POLLIN ...); when `pt` is non-NULL, also register the
   * caller on the file's wait queue(s) through poll_wait(). */
  unsigned (*poll)(struct file *f, struct poll_table *pt);
  int (*fstat)(struct file *f, struct kstat *st);
  void (*release)(struct file *f);
};

struct file {
  const struct file_operations *f_op;
  u32 refcount;
  u32 flags; /* O_* */
  u64 pos;
  void *private_data; /* inode-specific, socket, job queue ... */
  struct dentry *dentry; /* NULL for sockets and queues */
  struct inode *inode;
};

struct fd_table {
  struct file *fd[MAX_FDS];
};

/* fs/file.c */
struct file *file_alloc(const struct file_operations *ops, void *private_data, u32 flags);
void file_get(struct file *f);
void file_put(struct file *f); /* calls f_op->release on the last reference */
struct fd_table *fd_table_alloc(void);
void fd_table_free(struct fd_table *t); /* closes everything */
/* Install in the current task's table; returns the descriptor or -EMFILE. */
int fd_install(struct file *f);
/* The file behind a descriptor of the current task (no new reference), or NULL. */
struct file *fd_lookup(int fd);
int fd_close(int fd);

/* poll support: a file's poll() calls poll_wait() for each wait queue it
 * would wake when its readiness changes. */
struct poll_table {
  struct wait_entry entries[8];
  u32 n;
};
void poll_wait(struct wait_queue *wq, struct poll_table *pt);

#endif
