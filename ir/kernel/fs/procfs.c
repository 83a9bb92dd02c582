/*
 * @fileoverview procfs: files whose content is generated when read.  The
 * root holds version, cpuinfo, meminfo, slabinfo and mounts, a "self"
 * symlink to the reader's own directory, one directory per task
 * (/proc/<pid>/status and comm) and the sysctl tree (proc_sysctl.c).
 * Lookups are answered from the live kernel state every time they reach the
 * file system; misses are not cached (a task may appear later).
 */
#include "proc_internal.h"

#include "kjit_rt.h"

static struct kmem_cache *proc_inode_cachep;

static const struct inode_operations proc_root_iops;
static const struct inode_operations proc_pid_iops;
static const struct inode_operations proc_file_iops;
static const struct inode_operations proc_self_iops;
static const struct file_operations proc_dir_fops;
static const struct file_operations proc_file_fops;

/* ---- generators ------------------------------------------------------------------- */

static int version_show(struct proc_inode *pi, char *buf, size_t size) {
  return ksnprintf(buf, size, "kjit reference kernel version 1.0 (freestanding C compiled to LLVM IR) #1\n");
}

static int cpuinfo_show(struct proc_inode *pi, char *buf, size_t size) {
  static const struct {
    u64 bit;
    const char *name;
  } flags[] = {{KJIT_CPU_SSE42, "sse4_2"}, {KJIT_CPU_POPCNT, "popcnt"}, {KJIT_CPU_AVX2, "avx2"},
               {KJIT_CPU_BMI2, "bmi2"},    {KJIT_CPU_ERMS, "erms"},     {KJIT_CPU_FSRM, "fsrm"}};
  u64 features = kjit_hw_cpu_features();
  int n = ksnprintf(buf, size, "processor\t: 0\nvendor_id\t: kjit\nmodel name\t: machine description\nflags\t\t:");
  for (size_t i = 0; i < ARRAY_SIZE(flags) && (size_t)n < size; i++)
    if (features & flags[i].bit) n += ksnprintf(buf + n, size - (size_t)n, " %s", flags[i].name);
  if ((size_t)n < size) n += ksnprintf(buf + n, size - (size_t)n, "\n");
  return n;
}

static int meminfo_show(struct proc_inode *pi, char *buf, size_t size) {
  u64 pages, hits, misses, lookups, dhits, dentries;
  pagecache_stats(&pages, &hits, &misses);
  dcache_stats(&lookups, &dhits, &dentries);
  const unsigned long kb = PAGE_SIZE / 1024;
  return ksnprintf(buf, size, "MemTotal:       %8lu kB\nMemFree:        %8lu kB\nCached:         %8lu kB\nDentries:       %8lu\n",
                   (unsigned long)mm_total_pages() * kb, (unsigned long)mm_free_pages() * kb,
                   (unsigned long)pages * kb, (unsigned long)dentries);
}

static int slabinfo_show(struct proc_inode *pi, char *buf, size_t size) {
  int n = ksnprintf(buf, size, "slabinfo - version: 2.1\n# name\t<active_objs> <num_objs> <objsize>\n");
  const char *name;
  u64 inuse, total, objsize;
  for (unsigned i = 0; (size_t)n < size && kmem_cache_stats(i, &name, &inuse, &total, &objsize) == 0; i++)
    n += ksnprintf(buf + n, size - (size_t)n, "%s\t%8lu %8lu %6lu\n", name, (unsigned long)inuse,
                   (unsigned long)total, (unsigned long)objsize);
  return n;
}

static int mounts_file_show(struct proc_inode *pi, char *buf, size_t size) { return mounts_show(buf, size); }

static const struct proc_entry proc_root_entries[] = {
    {"version", S_IFREG | 0444, version_show},   {"cpuinfo", S_IFREG | 0444, cpuinfo_show},
    {"meminfo", S_IFREG | 0444, meminfo_show},   {"slabinfo", S_IFREG | 0400, slabinfo_show},
    {"mounts", S_IFREG | 0444, mounts_file_show},
};

/* ---- per-task files ------------------------------------------------------------------ */

static struct task *proc_task(u32 pid) {
  for (u32 i = 0; i < task_count(); i++) {
    struct task *t = task_by_index(i);
    if (t && t->pid == pid) return t;
  }
  return NULL;
}

static const char *task_state_name(const struct task *t) {
  switch (t->state) {
  case TASK_RUNNABLE:
    return "R (running)";
  case TASK_BLOCKED:
    return "S (sleeping)";
  default:
    return "X (dead)";
  }
}

static int status_show(struct proc_inode *pi, char *buf, size_t size) {
  struct task *t = proc_task(pi->pid);
  if (!t) return -ESRCH;
  return ksnprintf(buf, size,
                   "Name:\t%s\nState:\t%s\nPid:\t%u\nUid:\t%u\t%u\t%u\t%u\nGid:\t%u\t%u\t%u\t%u\n"
                   "voluntary_ctxt_switches:\t%lu\nsyscalls:\t%lu\n",
                   t->comm, task_state_name(t), t->pid, t->uid, t->uid, t->uid, t->uid, t->gid, t->gid, t->gid,
                   t->gid, (unsigned long)t->switches, (unsigned long)t->syscalls);
}

static int comm_show(struct proc_inode *pi, char *buf, size_t size) {
  struct task *t = proc_task(pi->pid);
  if (!t) return -ESRCH;
  return ksnprintf(buf, size, "%s\n", t->comm);
}

static const struct proc_entry proc_pid_entries[] = {
    {"status", S_IFREG | 0444, status_show},
    {"comm", S_IFREG | 0444, comm_show},
};

/* ---- inodes ---------------------------------------------------------------------------- */

static struct inode *proc_alloc_inode(struct super_block *sb) {
  struct proc_inode *pi = kmem_cache_zalloc(proc_inode_cachep);
  return pi ? &pi->vfs : NULL;
}

static void proc_destroy_inode(struct inode *inode) { kmem_cache_free(proc_inode_cachep, PROC_I(inode)); }

static const struct super_operations proc_sops = {
    .alloc_inode = proc_alloc_inode,
    .destroy_inode = proc_destroy_inode,
};

/* The inode for `ino`, from the inode hash or new (then *fresh is set and
 * the caller fills in what is specific to it). */
struct inode *proc_get_inode(struct super_block *sb, u64 ino, u32 mode, bool *fresh) {
  struct inode *inode = ilookup(sb, ino);
  *fresh = false;
  if (inode) return inode;
  inode = new_inode(sb);
  if (!inode) return NULL;
  inode->i_ino = ino;
  inode->i_mode = mode;
  inode->i_mtime = 0; /* generated content has no history */
  if (S_ISDIR(mode)) {
    inode->i_nlink = 2;
    inode->i_fop = &proc_dir_fops;
  }
  insert_inode_hash(inode);
  *fresh = true;
  return inode;
}

static struct inode *proc_file_inode(struct super_block *sb, u64 ino, const struct proc_entry *e, u32 pid) {
  bool fresh;
  struct inode *inode = proc_get_inode(sb, ino, e->mode, &fresh);
  if (inode && fresh) {
    inode->i_op = &proc_file_iops;
    inode->i_fop = &proc_file_fops;
    PROC_I(inode)->entry = e;
    PROC_I(inode)->pid = pid;
  }
  return inode;
}

static struct inode *proc_pid_inode(struct super_block *sb, struct task *t) {
  bool fresh;
  struct inode *inode = proc_get_inode(sb, PROC_PID_INO(t->pid), S_IFDIR | 0555, &fresh);
  if (inode && fresh) {
    inode->i_op = &proc_pid_iops;
    inode->i_uid = t->uid;
    inode->i_gid = t->gid;
    PROC_I(inode)->pid = t->pid;
  }
  return inode;
}

int proc_name_eq(const struct qstr *name, const char *s) {
  return strnlen(s, name->len + 1) == name->len && memcmp(name->name, s, name->len) == 0;
}

static int proc_instantiate(struct dentry *dentry, struct inode *inode) {
  if (!inode) return -ENOMEM;
  d_instantiate(dentry, inode);
  return 0;
}

/* ---- lookups -------------------------------------------------------------------------------- */

static bool parse_pid(const struct qstr *name, u32 *pid) {
  u32 v = 0;
  if (name->len == 0 || name->len > 9) return false;
  for (u32 i = 0; i < name->len; i++) {
    if (!kisdigit(name->name[i])) return false;
    v = v * 10 + (u32)(name->name[i] - '0');
  }
  *pid = v;
  return true;
}

static int proc_root_lookup(struct inode *dir, struct dentry *dentry) {
  struct super_block *sb = dir->i_sb;
  const struct qstr *name = &dentry->d_name;
  for (u32 i = 0; i < ARRAY_SIZE(proc_root_entries); i++)
    if (proc_name_eq(name, proc_root_entries[i].name))
      return proc_instantiate(dentry, proc_file_inode(sb, PROC_FILE_INO(i), &proc_root_entries[i], 0));
  if (proc_name_eq(name, "self")) {
    bool fresh;
    struct inode *inode = proc_get_inode(sb, PROC_SELF_INO, S_IFLNK | 0777, &fresh);
    if (inode && fresh) inode->i_op = &proc_self_iops;
    return proc_instantiate(dentry, inode);
  }
  if (proc_name_eq(name, "sys")) return proc_instantiate(dentry, proc_sys_root(sb));
  u32 pid;
  struct task *t;
  if (parse_pid(name, &pid) && (t = proc_task(pid))) return proc_instantiate(dentry, proc_pid_inode(sb, t));
  return -ENOENT;
}

static int proc_pid_lookup(struct inode *dir, struct dentry *dentry) {
  u32 pid = PROC_I(dir)->pid;
  if (!proc_task(pid)) return -ENOENT;
  for (u32 i = 0; i < ARRAY_SIZE(proc_pid_entries); i++)
    if (proc_name_eq(&dentry->d_name, proc_pid_entries[i].name))
      return proc_instantiate(dentry, proc_file_inode(dir->i_sb, PROC_PID_INO(pid) + 1 + i, &proc_pid_entries[i], pid));
  return -ENOENT;
}

/* /proc/self: the reader's own directory, resolved at each use. */
static int proc_self_readlink(struct dentry *dentry, char *buf, size_t size) {
  if (!current) return -ENOENT;
  int n = ksnprintf(buf, size, "%u", current->pid);
  return (int)MIN((size_t)n, size - 1);
}

/* ---- reading ------------------------------------------------------------------------------------ */

/* One kmalloc-4k object. */
struct proc_buf {
  size_t len;
  char data[PROC_BUF_SIZE - sizeof(size_t)];
};

/* Generate at the first read and at every read from offset 0, then serve
 * the rest of the snapshot, as seq_file does. */
long proc_file_read(struct file *f, void *buf, size_t len, u64 *pos) {
  struct proc_inode *pi = PROC_I(f->inode);
  struct proc_buf *pb = f->private_data;
  if (!pb || *pos == 0) {
    if (!pb && !(pb = f->private_data = kmalloc(sizeof(*pb)))) return -ENOMEM;
    int n = pi->entry->show(pi, pb->data, sizeof(pb->data));
    if (n < 0) {
      pb->len = 0;
      return n;
    }
    pb->len = MIN((size_t)n, sizeof(pb->data) - 1);
  }
  if (*pos >= pb->len) return 0;
  size_t n = (size_t)MIN((u64)len, pb->len - *pos);
  kmemcpy(buf, pb->data + *pos, n);
  *pos += n;
  return (long)n;
}

void proc_file_release(struct file *f) { kfree(f->private_data); }

static const struct inode_operations proc_root_iops = {.lookup = proc_root_lookup, .getattr = generic_getattr};
static const struct inode_operations proc_pid_iops = {.lookup = proc_pid_lookup, .getattr = generic_getattr};
static const struct inode_operations proc_file_iops = {.getattr = generic_getattr};
static const struct inode_operations proc_self_iops = {.readlink = proc_self_readlink, .getattr = generic_getattr};

static const struct file_operations proc_dir_fops = {
    .read = generic_dir_read,
    .poll = generic_file_poll,
    .fstat = generic_file_fstat,
};

static const struct file_operations proc_file_fops = {
    .read = proc_file_read,
    .poll = generic_file_poll,
    .fstat = generic_file_fstat,
    .release = proc_file_release,
};

/* ---- mounting -------------------------------------------------------------------------------------- */

static int proc_fill_super(struct super_block *sb, void *data) {
  if (!proc_inode_cachep) proc_inode_cachep = kmem_cache_create("proc_inode_cache", sizeof(struct proc_inode), 8);
  if (!proc_inode_cachep) return -ENOMEM;
  sb->s_op = &proc_sops;
  bool fresh;
  struct inode *root = proc_get_inode(sb, PROC_ROOT_INO, S_IFDIR | 0555, &fresh);
  if (!root) return -ENOMEM;
  root->i_op = &proc_root_iops;
  sb->s_root = d_alloc_root(root);
  return sb->s_root ? 0 : -ENOMEM;
}

const struct file_system_type proc_fs_type = {
    .name = "proc",
    .fill_super = proc_fill_super,
};
