/*
 * @fileoverview procfs internals shared by procfs.c (the root, per-task
 * directories, the generated files) and proc_sysctl.c (/proc/sys).  Every
 * procfs file is generated on read by its entry's ->show, into a buffer the
 * open file keeps until it is read from offset 0 again or closed.
 */
#ifndef FS_PROC_INTERNAL_H
#define FS_PROC_INTERNAL_H

#include "vfs.h"

#define PROC_BUF_SIZE 4096

/* Inode numbers: fixed for the static entries, derived for the others, so
 * the inode hash finds the same inode however often the name is looked up. */
#define PROC_ROOT_INO 1
#define PROC_SELF_INO 2
#define PROC_SYS_INO 3
#define PROC_FILE_INO(i) (0x10u + (i))
#define PROC_SYSDIR_INO(i) (0x100u + (i))
#define PROC_SYSFILE_INO(i) (0x200u + (i))
#define PROC_PID_INO(pid) (0x10000u + (u64)(pid) * 16u)

struct proc_inode;

struct proc_entry {
  const char *name;
  u32 mode;
  int (*show)(struct proc_inode *pi, char *buf, size_t size);
};

struct proc_inode {
  struct inode vfs;
  const struct proc_entry *entry; /* files */
  u32 pid;                        /* per-task directories and files */
  u32 sysctl;                     /* /proc/sys: index in kjit_sysctls */
};

static inline struct proc_inode *PROC_I(struct inode *inode) { return container_of(inode, struct proc_inode, vfs); }

/* procfs.c */
struct inode *proc_get_inode(struct super_block *sb, u64 ino, u32 mode, bool *fresh);
long proc_file_read(struct file *f, void *buf, size_t len, u64 *pos);
void proc_file_release(struct file *f);
int proc_name_eq(const struct qstr *name, const char *s);

/* proc_sysctl.c */
struct inode *proc_sys_root(struct super_block *sb);

#endif
