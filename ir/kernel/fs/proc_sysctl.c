/*
 * @fileoverview /proc/sys: one file per sysctl of the kernel's table
 * (kjit_sysctls[], the runtime contract), "net.nic_model" appearing as
 * /proc/sys/net/nic_model.  Reading formats the current value through
 * sysctl_read(); writing parses a decimal number and hands it to
 * sysctl_write(), which enforces the range and the boot-fixed flag.
 * Read-only sysctls are mode 0444, the others 0644 (root writes them).
 */
#include "proc_internal.h"

#include "kjit_rt.h"

static const struct inode_operations proc_sys_root_iops;
static const struct inode_operations proc_sys_dir_iops;
static const struct inode_operations proc_sys_file_iops;
static const struct file_operations proc_sys_fops;

/* Length of the group part of a dotted name: "net" in "net.nic_model". */
static u32 sysctl_group_len(const char *name) {
  const char *dot = strchr(name, '.');
  return dot ? (u32)(dot - name) : (u32)strlen(name);
}

/* ---- values ----------------------------------------------------------------------- */

static int sysctl_show(struct proc_inode *pi, char *buf, size_t size) {
  s64 v;
  int err = sysctl_read(kjit_sysctls[pi->sysctl].name, &v);
  if (err) return err;
  return ksnprintf(buf, size, "%ld\n", (long)v);
}

static const struct proc_entry sysctl_entry = {"sysctl", S_IFREG | 0644, sysctl_show};

/* "value\n" as `echo value > /proc/sys/a/b` writes it. */
static int parse_value(const char *s, s64 *value) {
  const char *p = s, *end;
  if (*p == '-' || *p == '+') p++;
  if (!kisdigit(*p)) return -EINVAL;
  *value = katol(s, &end);
  while (*end == '\n' || *end == ' ') end++;
  return *end ? -EINVAL : 0;
}

static long proc_sys_write(struct file *f, const void *buf, size_t len, u64 *pos) {
  char text[32];
  s64 value;
  if (len == 0) return 0;
  if (len >= sizeof(text)) return -EINVAL;
  kmemcpy(text, buf, len);
  text[len] = 0;
  int err = parse_value(text, &value);
  if (!err) err = sysctl_write(kjit_sysctls[PROC_I(f->inode)->sysctl].name, value);
  if (err) return err;
  *pos += len;
  return (long)len;
}

/* ---- the tree ----------------------------------------------------------------------- */

struct inode *proc_sys_root(struct super_block *sb) {
  bool fresh;
  struct inode *inode = proc_get_inode(sb, PROC_SYS_INO, S_IFDIR | 0555, &fresh);
  if (inode && fresh) inode->i_op = &proc_sys_root_iops;
  return inode;
}

/* /proc/sys/<group>: the directory is named after the first sysctl of the
 * group, whose index it keeps. */
static int proc_sys_root_lookup(struct inode *dir, struct dentry *dentry) {
  const struct qstr *name = &dentry->d_name;
  for (u32 i = 0; i < kjit_nsysctls; i++) {
    const char *full = kjit_sysctls[i].name;
    u32 glen = sysctl_group_len(full);
    if (glen != name->len || full[glen] != '.' || memcmp(full, name->name, glen) != 0) continue;
    bool fresh;
    struct inode *inode = proc_get_inode(dir->i_sb, PROC_SYSDIR_INO(i), S_IFDIR | 0555, &fresh);
    if (!inode) return -ENOMEM;
    if (fresh) {
      inode->i_op = &proc_sys_dir_iops;
      PROC_I(inode)->sysctl = i;
    }
    d_instantiate(dentry, inode);
    return 0;
  }
  return -ENOENT;
}

static int proc_sys_dir_lookup(struct inode *dir, struct dentry *dentry) {
  const char *group = kjit_sysctls[PROC_I(dir)->sysctl].name;
  u32 glen = sysctl_group_len(group);
  for (u32 i = 0; i < kjit_nsysctls; i++) {
    const char *full = kjit_sysctls[i].name;
    if (strncmp(full, group, glen + 1) != 0 || !proc_name_eq(&dentry->d_name, full + glen + 1)) continue;
    u32 mode = S_IFREG | ((kjit_sysctls[i].flags & KJIT_SYSCTL_RO) ? 0444 : 0644);
    bool fresh;
    struct inode *inode = proc_get_inode(dir->i_sb, PROC_SYSFILE_INO(i), mode, &fresh);
    if (!inode) return -ENOMEM;
    if (fresh) {
      inode->i_op = &proc_sys_file_iops;
      inode->i_fop = &proc_sys_fops;
      PROC_I(inode)->entry = &sysctl_entry;
      PROC_I(inode)->sysctl = i;
    }
    d_instantiate(dentry, inode);
    return 0;
  }
  return -ENOENT;
}

static const struct inode_operations proc_sys_root_iops = {.lookup = proc_sys_root_lookup, .getattr = generic_getattr};
static const struct inode_operations proc_sys_dir_iops = {.lookup = proc_sys_dir_lookup, .getattr = generic_getattr};
static const struct inode_operations proc_sys_file_iops = {.getattr = generic_getattr};

static const struct file_operations proc_sys_fops = {
    .read = proc_file_read,
    .write = proc_sys_write,
    .poll = generic_file_poll,
    .fstat = generic_file_fstat,
    .release = proc_file_release,
};
