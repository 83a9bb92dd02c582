/*
 * @fileoverview open, openat and close: resolve the name (namei.c), check
 * the access the caller asks for against the inode, truncate if asked, and
 * make a struct file whose operations are the inode's (so every later read
 * or write on it goes through the file system's table, indirectly).
 */
#include "vfs.h"

static int acc_to_may(int flags) {
  int acc = flags & O_ACCMODE, mask = 0;
  if (acc != O_WRONLY) mask |= MAY_READ;
  if (acc != O_RDONLY) mask |= MAY_WRITE;
  return mask;
}

/* The final permission check of open: mode bits against what the caller
 * will do with the file, and what makes no sense (writing a directory). */
static int may_open(struct dentry *dentry, int flags) {
  struct inode *inode = dentry->d_inode;
  int mask = acc_to_may(flags);
  if (i_is_dir(inode)) {
    if (mask & MAY_WRITE) return -EISDIR;
  } else if (flags & O_DIRECTORY) {
    return -ENOTDIR;
  }
  if (flags & O_TRUNC) mask |= MAY_WRITE;
  return inode_permission(inode, mask);
}

static int handle_truncate(struct dentry *dentry) {
  struct iattr attr = {.valid = ATTR_SIZE, .size = 0};
  return vfs_setattr(dentry, &attr);
}

struct file *dentry_open(struct dentry *dentry, int flags) {
  struct inode *inode = dentry->d_inode;
  if (!inode->i_fop) return ERR_PTR(-EINVAL);
  struct file *f = file_alloc(inode->i_fop, NULL, (u32)flags & ~(u32)(O_CREAT | O_EXCL | O_TRUNC));
  if (!f) return ERR_PTR(-ENFILE);
  iget(inode);
  f->inode = inode;
  f->dentry = dentry;
  f->pos = 0;
  return f;
}

struct file *filp_open(int dfd, const char *name, int flags, u32 mode) {
  struct dentry *dentry;
  int err = filename_open_dentry(dfd, name, flags, mode, &dentry);
  if (err) return ERR_PTR(err);
  if ((err = may_open(dentry, flags))) return ERR_PTR(err);
  if ((flags & O_TRUNC) && i_is_reg(dentry->d_inode) && (err = handle_truncate(dentry)))
    return ERR_PTR(err);
  return dentry_open(dentry, flags);
}

static long do_sys_open(int dfd, u64 upath, int flags, u32 mode) {
  char path[FS_PATH_MAX];
  long n = getname(upath, path);
  if (n < 0) return n;
  struct file *f = filp_open(dfd, path, flags, mode);
  if (IS_ERR(f)) return PTR_ERR(f);
  int fd = fd_install(f);
  if (fd < 0) file_put(f);
  return fd;
}

static long sys_open(u64 upath, u64 flags, u64 mode, u64 d, u64 e, u64 f) {
  return do_sys_open(AT_FDCWD, upath, (int)flags, (u32)mode);
}

static long sys_openat(u64 dfd, u64 upath, u64 flags, u64 mode, u64 e, u64 f) {
  return do_sys_open((int)(s64)dfd, upath, (int)flags, (u32)mode);
}

/* Works for every kind of file: sockets and job queues are files too. */
static long sys_close(u64 fd, u64 b, u64 c, u64 d, u64 e, u64 f) { return fd_close((int)fd); }

void open_syscalls_init(void) {
  syscall_register(SYS_open, sys_open, "open");
  syscall_register(SYS_openat, sys_openat, "openat");
  syscall_register(SYS_close, sys_close, "close");
}
