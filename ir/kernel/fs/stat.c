/*
 * @fileoverview Attributes: stat, lstat and fstat (through the inode's
 * ->getattr and the file's ->fstat), setattr (truncate, chown, chmod; used
 * by open's O_TRUNC and by the boot-time population), and readlink.
 */
#include "vfs.h"

int vfs_getattr(struct dentry *dentry, struct kstat *st) {
  struct inode *inode = dentry->d_inode;
  memset(st, 0, sizeof(*st));
  if (inode->i_op->getattr) return inode->i_op->getattr(dentry, st);
  generic_fillattr(inode, st);
  return 0;
}

/* ->fstat of files that have a dentry. */
int generic_file_fstat(struct file *f, struct kstat *st) { return vfs_getattr(f->dentry, st); }

int vfs_stat(int dfd, const char *name, unsigned flags, struct kstat *st) {
  struct dentry *dentry;
  int err = filename_lookup(dfd, name, flags, &dentry);
  if (err) return err;
  return vfs_getattr(dentry, st);
}

/* Only root may give a file away; size changes need write access, which
 * open() has already checked for O_TRUNC. */
int vfs_setattr(struct dentry *dentry, const struct iattr *attr) {
  struct inode *inode = dentry->d_inode;
  if ((attr->valid & (ATTR_UID | ATTR_GID)) && fs_uid() != 0) return -EPERM;
  if ((attr->valid & ATTR_MODE) && fs_uid() != 0 && fs_uid() != inode->i_uid) return -EPERM;
  if ((attr->valid & ATTR_SIZE) && i_is_dir(inode)) return -EISDIR;
  if (!inode->i_op->setattr) return -EPERM;
  return inode->i_op->setattr(dentry, attr);
}

int vfs_readlink(struct dentry *dentry, char *buf, size_t size) {
  struct inode *inode = dentry->d_inode;
  if (!i_is_lnk(inode) || !inode->i_op->readlink) return -EINVAL;
  return inode->i_op->readlink(dentry, buf, size);
}

/* ---- system calls --------------------------------------------------------------------- */

static long stat_common(u64 upath, u64 ust, unsigned flags) {
  char path[FS_PATH_MAX];
  struct kstat st;
  long n = getname(upath, path);
  if (n < 0) return n;
  int err = vfs_stat(AT_FDCWD, path, flags, &st);
  if (err) return err;
  return copy_to_user((void *)(uintptr_t)ust, &st, sizeof(st));
}

static long sys_stat(u64 upath, u64 ust, u64 c, u64 d, u64 e, u64 f) {
  return stat_common(upath, ust, LOOKUP_FOLLOW);
}

static long sys_lstat(u64 upath, u64 ust, u64 c, u64 d, u64 e, u64 f) { return stat_common(upath, ust, 0); }

static long sys_fstat(u64 fd, u64 ust, u64 c, u64 d, u64 e, u64 f) {
  struct file *file = fd_lookup((int)fd);
  struct kstat st;
  if (!file) return -EBADF;
  if (!file->f_op->fstat) return -EINVAL;
  memset(&st, 0, sizeof(st));
  int err = file->f_op->fstat(file, &st);
  if (err) return err;
  return copy_to_user((void *)(uintptr_t)ust, &st, sizeof(st));
}

/* readlink(path, buf, size): the target, not NUL-terminated, truncated to
 * size. */
static long sys_readlink(u64 upath, u64 ubuf, u64 size, u64 d, u64 e, u64 f) {
  char path[FS_PATH_MAX], target[FS_PATH_MAX];
  struct dentry *dentry;
  if ((s64)size <= 0) return -EINVAL;
  long n = getname(upath, path);
  if (n < 0) return n;
  int err = filename_lookup(AT_FDCWD, path, 0, &dentry);
  if (err) return err;
  int len = vfs_readlink(dentry, target, sizeof(target));
  if (len < 0) return len;
  size_t copy = MIN((size_t)len, (size_t)size);
  if (copy_to_user((void *)(uintptr_t)ubuf, target, copy)) return -EFAULT;
  return (long)copy;
}

void stat_syscalls_init(void) {
  syscall_register(SYS_stat, sys_stat, "stat");
  syscall_register(SYS_lstat, sys_lstat, "lstat");
  syscall_register(SYS_fstat, sys_fstat, "fstat");
  syscall_register(SYS_readlink, sys_readlink, "readlink");
}
