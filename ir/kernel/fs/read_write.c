/*
 * @fileoverview read, write and lseek, and the generic file operations the
 * disk-like file systems put in their tables (data through the page cache).
 *
 * User buffers: the system call checks the whole user range once with
 * access_ok() and hands the checked pointer to the file's ->read/->write as
 * a kernel pointer (user memory is part of the kernel's arena here), so the
 * page cache copies straight into the program's buffer, page by page, with
 * kmemcpy: what copy_to_user() would do, without a bounce buffer.
 */
#include "vfs.h"

#define MAX_RW_COUNT 0x7ffff000ul /* Linux's cap on one transfer */

/* ---- generic file operations ------------------------------------------------------ */

long generic_file_read(struct file *f, void *buf, size_t len, u64 *pos) {
  return pagecache_read(f->inode, buf, len, pos);
}

long generic_file_write(struct file *f, const void *buf, size_t len, u64 *pos) {
  struct inode *inode = f->inode;
  if (f->flags & O_APPEND) *pos = inode->i_size;
  long n = pagecache_write(inode, buf, len, pos);
  if (n > 0) {
    inode_touch(inode);
    mark_inode_dirty(inode);
  }
  return n;
}

/* Regular files never block. */
unsigned generic_file_poll(struct file *f, struct poll_table *pt) { return POLLIN | POLLOUT; }

long generic_dir_read(struct file *f, void *buf, size_t len, u64 *pos) { return -EISDIR; }

/* ---- the VFS side ----------------------------------------------------------------------- */

static bool file_readable(const struct file *f) { return (f->flags & O_ACCMODE) != O_WRONLY; }
static bool file_writable(const struct file *f) { return (f->flags & O_ACCMODE) != O_RDONLY; }

static long vfs_read(struct file *f, void *buf, size_t len) {
  if (!file_readable(f)) return -EBADF;
  if (!f->f_op->read) return -EINVAL;
  if (len > MAX_RW_COUNT) len = MAX_RW_COUNT;
  return f->f_op->read(f, buf, len, &f->pos);
}

static long vfs_write(struct file *f, const void *buf, size_t len) {
  if (!file_writable(f)) return -EBADF;
  if (!f->f_op->write) return -EINVAL;
  if (len > MAX_RW_COUNT) len = MAX_RW_COUNT;
  return f->f_op->write(f, buf, len, &f->pos);
}

long kernel_read(struct file *f, void *buf, size_t len) { return vfs_read(f, buf, len); }
long kernel_write(struct file *f, const void *buf, size_t len) { return vfs_write(f, buf, len); }

/* ---- system calls --------------------------------------------------------------------------- */

static long sys_read(u64 fd, u64 ubuf, u64 len, u64 d, u64 e, u64 f) {
  struct file *file = fd_lookup((int)fd);
  if (!file) return -EBADF;
  void *buf = (void *)(uintptr_t)ubuf;
  if (!access_ok(buf, len)) return -EFAULT;
  return vfs_read(file, buf, len);
}

static long sys_write(u64 fd, u64 ubuf, u64 len, u64 d, u64 e, u64 f) {
  struct file *file = fd_lookup((int)fd);
  if (!file) return -EBADF;
  const void *buf = (const void *)(uintptr_t)ubuf;
  if (!access_ok(buf, len)) return -EFAULT;
  return vfs_write(file, buf, len);
}

static long sys_lseek(u64 fd, u64 offset, u64 whence, u64 d, u64 e, u64 f) {
  struct file *file = fd_lookup((int)fd);
  if (!file) return -EBADF;
  if (!file->inode) return -ESPIPE; /* sockets, queues */
  s64 base;
  switch (whence) {
  case SEEK_SET:
    base = 0;
    break;
  case SEEK_CUR:
    base = (s64)file->pos;
    break;
  case SEEK_END:
    base = (s64)file->inode->i_size;
    break;
  default:
    return -EINVAL;
  }
  s64 pos = base + (s64)offset;
  if (pos < 0) return -EINVAL;
  file->pos = (u64)pos;
  return pos;
}

void read_write_syscalls_init(void) {
  syscall_register(SYS_read, sys_read, "read");
  syscall_register(SYS_write, sys_write, "write");
  syscall_register(SYS_lseek, sys_lseek, "lseek");
}
