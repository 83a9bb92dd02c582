/*
 * @fileoverview The file systems' interface to the rest of the kernel.
 * Internals (VFS, dentry cache, tmpfs, ext, procfs, page cache) live in fs/
 * with their own header.
 */
#ifndef KERNEL_FS_H
#define KERNEL_FS_H

#include <kernel/types.h>

struct task;

/* Mount tmpfs on /, the ext-like file system on /data and procfs on /proc,
 * populate the trees the workloads use (web docroot, deep fs paths), and
 * register the file system calls. */
void fs_init(void);
/* A fresh task's working directory (the root) and descriptor table. */
void fs_task_init(struct task *t);

#endif
