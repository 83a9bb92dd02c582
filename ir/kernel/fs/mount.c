/*
 * @fileoverview The mount table: which file system's root hides which
 * directory.  Mounts are found by their mount point through a small hash
 * (Linux's mount_hashtable), which the path walk consults whenever it steps
 * onto a dentry flagged DCACHE_MOUNTED; ".." from a mounted root climbs back
 * through the mount point (namei.c).  The root mount has no mount point.
 */
#include "vfs.h"

#define MNT_HASH_BITS 5

static struct hlist_head mount_hashtable[1u << MNT_HASH_BITS];
static struct list_head mounts = LIST_HEAD_INIT(mounts);
static struct vfsmount *root_mnt;

void mnt_init(void) {
  INIT_LIST_HEAD(&mounts);
  root_mnt = NULL;
}

static struct hlist_head *mnt_hash(const struct dentry *mountpoint) {
  return &mount_hashtable[hash_32((u32)((uintptr_t)mountpoint >> 4), MNT_HASH_BITS)];
}

struct vfsmount *lookup_mnt(const struct dentry *mountpoint) {
  struct hlist_node *n;
  for (n = mnt_hash(mountpoint)->first; n; n = n->next) {
    struct vfsmount *m = hlist_entry(n, struct vfsmount, mnt_hash);
    if (m->mnt_mountpoint == mountpoint) return m;
  }
  return NULL;
}

struct dentry *fs_root(void) { return root_mnt ? root_mnt->mnt_root : NULL; }

static struct vfsmount *alloc_mnt(const struct file_system_type *type, const char *dev, void *data,
                                  long *err) {
  struct super_block *sb = sget(type, dev, data);
  if (IS_ERR(sb)) {
    *err = PTR_ERR(sb);
    return NULL;
  }
  struct vfsmount *m = kzalloc(sizeof(*m));
  if (!m) {
    *err = -ENOMEM;
    return NULL;
  }
  m->mnt_sb = sb;
  m->mnt_root = sb->s_root;
  m->mnt_devname = dev;
  sb->s_mnt = m;
  return m;
}

int mount_root(const struct file_system_type *type, const char *dev, void *data) {
  long err = 0;
  struct vfsmount *m = alloc_mnt(type, dev, data, &err);
  if (!m) return (int)err;
  m->mnt_parent = m;
  strlcpy(m->mnt_path, "/", sizeof(m->mnt_path));
  list_add_tail(&m->mnt_list, &mounts);
  root_mnt = m;
  return 0;
}

/* Mount a new instance of `type` on the directory `dir`.  One file system
 * per mount point: mounting over a mount point is refused (EBUSY). */
int do_mount(const struct file_system_type *type, const char *dev, const char *dir, void *data) {
  struct dentry *mp;
  int err = filename_lookup(AT_FDCWD, dir, LOOKUP_FOLLOW | LOOKUP_DIRECTORY, &mp);
  if (err) return err;
  if (mp->d_flags & DCACHE_MOUNTED) return -EBUSY;
  long lerr = 0;
  struct vfsmount *m = alloc_mnt(type, dev, data, &lerr);
  if (!m) return (int)lerr;
  m->mnt_mountpoint = mp;
  m->mnt_parent = mp->d_sb->s_mnt;
  strlcpy(m->mnt_path, dir, sizeof(m->mnt_path));
  hlist_add_head(&m->mnt_hash, mnt_hash(mp));
  list_add_tail(&m->mnt_list, &mounts);
  mp->d_flags |= DCACHE_MOUNTED;
  return 0;
}

/* /proc/mounts: "device mountpoint type options 0 0", in mount order. */
int mounts_show(char *buf, size_t size) {
  size_t len = 0;
  struct list_head *pos;
  list_for_each(pos, &mounts) {
    struct vfsmount *m = list_entry(pos, struct vfsmount, mnt_list);
    if (len >= size) break;
    len += (size_t)ksnprintf(buf + len, size - len, "%s %s %s rw,relatime 0 0\n", m->mnt_devname,
                             m->mnt_path, m->mnt_sb->s_type->name);
  }
  return (int)MIN(len, size ? size - 1 : 0);
}
