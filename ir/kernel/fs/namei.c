/*
 * @fileoverview The path walk, component by component, as Linux's
 * fs/namei.c does it: a search-permission check on each directory, the name
 * hash of each component, a dentry-cache lookup (when fs.dcache is on) and
 * the file system's ->lookup on a miss, mount points crossed on the way down
 * and on the way up through "..", and symlinks followed recursively with a
 * nesting limit and the fs.protected_symlinks check.  Also the calls that
 * change the namespace: mkdir, symlink, unlink, and open's O_CREAT.
 */
#include "vfs.h"

struct nameidata {
  struct dentry *dentry; /* where the walk is */
  struct dentry *root;
  struct qstr last;      /* the last component, resolved by walk_last() */
  int last_type;
  unsigned flags;        /* LOOKUP_* */
  unsigned depth;        /* symlinks being followed, nested */
  unsigned total_links;  /* symlinks followed by this walk */
};

static int link_path_walk(const char *name, struct nameidata *nd);
static int walk_last(struct nameidata *nd);

/* ---- start ---------------------------------------------------------------------- */

/* Where a walk starts: the root for absolute names, else the task's working
 * directory or the directory open on dfd. */
static int path_init(struct nameidata *nd, int dfd, const char *name, unsigned flags) {
  nd->root = fs_root();
  nd->flags = flags;
  nd->depth = 0;
  nd->total_links = 0;
  nd->last_type = LAST_ROOT;
  if (*name == '/') {
    nd->dentry = nd->root;
    return 0;
  }
  if (dfd == AT_FDCWD) {
    nd->dentry = current && current->cwd ? current->cwd : nd->root;
    return 0;
  }
  struct file *f = current ? fd_lookup(dfd) : NULL;
  if (!f) return -EBADF;
  if (!f->dentry || !f->inode || !i_is_dir(f->inode)) return -ENOTDIR;
  nd->dentry = f->dentry;
  return 0;
}

/* ---- permission checks ----------------------------------------------------------- */

/* Search permission on the directory we are about to look into. */
static int may_lookup(const struct nameidata *nd) {
  return inode_permission(nd->dentry->d_inode, MAY_EXEC);
}

/* fs.protected_symlinks: in a sticky world-writable directory (/tmp), a
 * symlink is followed only by its owner or when the directory's owner also
 * owns the link.  Stops an attacker from planting a link in /tmp that a
 * victim then follows.  Root is not exempt, as in Linux. */
static int may_follow_link(const struct nameidata *nd, const struct dentry *link) {
  if (!READ_ONCE(sysctl_fs_protected_symlinks)) return 0;
  const struct inode *inode = link->d_inode;
  const struct inode *dir = nd->dentry->d_inode;
  if (fs_uid() == inode->i_uid) return 0;
  if ((dir->i_mode & (S_ISVTX | 0002)) != (S_ISVTX | 0002)) return 0;
  if (dir->i_uid == inode->i_uid) return 0;
  return -EACCES;
}

/* ---- one component ------------------------------------------------------------------- */

/* Split off the next component: its length, its kind and its hash. */
static int get_component(const char *name, struct qstr *this, int *type) {
  u32 len = 0;
  while (name[len] && name[len] != '/')
    if (++len > FS_NAME_MAX) return -ENAMETOOLONG;
  this->name = name;
  this->len = len;
  this->hash = 0;
  *type = LAST_NORM;
  if (name[0] == '.') {
    if (len == 1) *type = LAST_DOT;
    else if (len == 2 && name[1] == '.') *type = LAST_DOTDOT;
  }
  if (*type == LAST_NORM) this->hash = full_name_hash(name, len, 0);
  return 0;
}

/* Ask the file system.  With the hash off there may be a dentry for this
 * name already (created while it was on): use it rather than a duplicate. */
static struct dentry *lookup_slow(struct dentry *dir, const struct qstr *name, bool cached) {
  struct inode *inode = dir->d_inode;
  if (!inode->i_op->lookup) return ERR_PTR(-ENOTDIR);
  struct dentry *dentry = d_alloc(dir, name);
  if (!dentry) return ERR_PTR(-ENOMEM);
  int err = inode->i_op->lookup(inode, dentry);
  if (err) {
    d_free(dentry);
    return ERR_PTR(err);
  }
  if (!cached) {
    struct dentry *alias = d_lookup_child(dir, name);
    if (alias) {
      d_free(dentry);
      return alias;
    }
  }
  d_attach(dentry);
  return dentry;
}

struct dentry *lookup_one(struct dentry *dir, const struct qstr *name) {
  bool cached = READ_ONCE(sysctl_fs_dcache_enable);
  if (likely(cached)) {
    struct dentry *dentry = d_lookup(dir, name);
    if (dentry) return dentry;
  }
  return lookup_slow(dir, name, cached);
}

/* Step onto whatever is mounted here (mounts may be stacked). */
static struct dentry *follow_mount(struct dentry *dentry) {
  while (dentry->d_flags & DCACHE_MOUNTED) {
    struct vfsmount *mnt = lookup_mnt(dentry);
    if (!mnt) break;
    dentry = mnt->mnt_root;
  }
  return dentry;
}

/* "..": the parent, climbing out of mounted file systems through their mount
 * points; never above the walk's root. */
static void follow_dotdot(struct nameidata *nd) {
  struct dentry *d = nd->dentry;
  while (d != nd->root) {
    if (d != d->d_sb->s_root) {
      d = d->d_parent;
      break;
    }
    struct vfsmount *mnt = d->d_sb->s_mnt;
    if (!mnt || !mnt->mnt_mountpoint) break;
    d = mnt->mnt_mountpoint;
  }
  nd->dentry = d;
}

/* Follow the symlink `link` found in nd->dentry: walk its target from the
 * root (absolute) or from the directory holding the link (relative).  The
 * target is resolved completely, its own last component included; the
 * outer walk's state is saved around it. */
static int follow_link(struct nameidata *nd, struct dentry *link) {
  struct inode *inode = link->d_inode;
  if (nd->depth >= MAX_NESTED_LINKS || nd->total_links >= MAX_TOTAL_LINKS) return -ELOOP;
  int err = may_follow_link(nd, link);
  if (err) return err;
  if (!inode->i_op->readlink) return -EINVAL;
  char target[FS_PATH_MAX];
  int len = inode->i_op->readlink(link, target, sizeof(target));
  if (len < 0) return len;
  if (len == 0) return -ENOENT;

  struct qstr saved_last = nd->last;
  int saved_type = nd->last_type;
  unsigned saved_flags = nd->flags;
  nd->total_links++;
  nd->depth++;
  nd->flags = LOOKUP_FOLLOW;
  if (target[0] == '/') nd->dentry = nd->root;
  err = link_path_walk(target, nd);
  if (!err) err = walk_last(nd);
  nd->depth--;
  nd->last = saved_last;
  nd->last_type = saved_type;
  nd->flags = saved_flags;
  return err;
}

static int walk_component(struct nameidata *nd, const struct qstr *name, int type, bool follow) {
  if (type == LAST_DOTDOT) {
    follow_dotdot(nd);
    return 0;
  }
  if (type != LAST_NORM) return 0; /* "." and "/" */
  struct dentry *dentry = lookup_one(nd->dentry, name);
  if (IS_ERR(dentry)) return (int)PTR_ERR(dentry);
  if (!dentry->d_inode) return -ENOENT;
  dentry = follow_mount(dentry);
  if (follow && i_is_lnk(dentry->d_inode)) return follow_link(nd, dentry);
  nd->dentry = dentry;
  return 0;
}

/* ---- whole names ------------------------------------------------------------------------ */

/* Walk every component but the last, which is left in nd->last for the
 * caller: a lookup resolves it, a creation creates it. */
static int link_path_walk(const char *name, struct nameidata *nd) {
  while (*name == '/') name++;
  nd->last_type = LAST_ROOT;
  if (!*name) return 0;
  for (;;) {
    int err = may_lookup(nd);
    if (err) return err;
    struct qstr this;
    int type;
    err = get_component(name, &this, &type);
    if (err) return err;
    name += this.len;
    bool slash = false;
    while (*name == '/') {
      name++;
      slash = true;
    }
    if (!*name) {
      if (slash) nd->flags |= LOOKUP_FOLLOW | LOOKUP_DIRECTORY; /* "dir/" */
      nd->last = this;
      nd->last_type = type;
      return 0;
    }
    err = walk_component(nd, &this, type, true);
    if (err) return err;
    if (!i_is_dir(nd->dentry->d_inode)) return -ENOTDIR;
  }
}

static int walk_last(struct nameidata *nd) {
  int err = walk_component(nd, &nd->last, nd->last_type, nd->flags & LOOKUP_FOLLOW);
  if (err) return err;
  if ((nd->flags & LOOKUP_DIRECTORY) && !i_is_dir(nd->dentry->d_inode)) return -ENOTDIR;
  return 0;
}

int filename_lookup(int dfd, const char *name, unsigned flags, struct dentry **res) {
  struct nameidata nd;
  if (!*name) return -ENOENT;
  int err = path_init(&nd, dfd, name, flags);
  if (!err) err = link_path_walk(name, &nd);
  if (!err) err = walk_last(&nd);
  if (!err) *res = nd.dentry;
  return err;
}

int filename_parentat(int dfd, const char *name, struct nameparent *np) {
  struct nameidata nd;
  if (!*name) return -ENOENT;
  int err = path_init(&nd, dfd, name, 0);
  if (!err) err = link_path_walk(name, &nd);
  if (err) return err;
  np->dir = nd.dentry;
  np->last = nd.last;
  np->type = nd.last_type;
  np->must_be_dir = nd.flags & LOOKUP_DIRECTORY;
  return 0;
}

/* ---- creating and removing names ------------------------------------------------------------ */

static int may_create(struct dentry *dir) { return inode_permission(dir->d_inode, MAY_WRITE | MAY_EXEC); }

/* Sticky directories (/tmp): only the owner of the file, the owner of the
 * directory or root may remove a name from them. */
static int may_delete(struct dentry *dir, struct dentry *victim) {
  int err = inode_permission(dir->d_inode, MAY_WRITE | MAY_EXEC);
  if (err) return err;
  u32 uid = fs_uid();
  if ((dir->d_inode->i_mode & S_ISVTX) && uid != 0 && uid != victim->d_inode->i_uid &&
      uid != dir->d_inode->i_uid)
    return -EPERM;
  if (victim->d_flags & DCACHE_MOUNTED) return -EBUSY;
  return 0;
}

/* Resolve the parent of `name` and look up its last component, which must
 * be an ordinary name; the result may be negative. */
static int lookup_create(int dfd, const char *name, struct nameparent *np, struct dentry **res) {
  int err = filename_parentat(dfd, name, np);
  if (err) return err;
  if (np->type != LAST_NORM) return -EEXIST;
  struct dentry *dentry = lookup_one(np->dir, &np->last);
  if (IS_ERR(dentry)) return (int)PTR_ERR(dentry);
  *res = dentry;
  return 0;
}

static int vfs_create(struct dentry *dir, struct dentry *dentry, u32 mode) {
  int err = may_create(dir);
  if (err) return err;
  if (!dir->d_inode->i_op->create) return -EACCES;
  return dir->d_inode->i_op->create(dir->d_inode, dentry, S_IFREG | (mode & 07777));
}

int filename_open_dentry(int dfd, const char *name, int flags, u32 mode, struct dentry **res) {
  struct dentry *dentry;
  int err;
  if (!(flags & O_CREAT)) {
    unsigned lf = (flags & O_NOFOLLOW) ? 0 : LOOKUP_FOLLOW;
    if (flags & O_DIRECTORY) lf |= LOOKUP_DIRECTORY;
    err = filename_lookup(dfd, name, lf, &dentry);
    if (err) return err;
    if (i_is_lnk(dentry->d_inode)) return -ELOOP; /* O_NOFOLLOW */
    *res = dentry;
    return 0;
  }
  struct nameparent np;
  err = filename_parentat(dfd, name, &np);
  if (err) return err;
  if (np.type != LAST_NORM || np.must_be_dir) return -EISDIR;
  dentry = lookup_one(np.dir, &np.last);
  if (IS_ERR(dentry)) return (int)PTR_ERR(dentry);
  if (!dentry->d_inode) {
    err = vfs_create(np.dir, dentry, mode);
    if (err) return err;
    *res = dentry;
    return 0;
  }
  if (flags & O_EXCL) return -EEXIST;
  dentry = follow_mount(dentry);
  if (i_is_lnk(dentry->d_inode)) {
    if (flags & O_NOFOLLOW) return -ELOOP;
    /* An existing link: resolve it as a plain open would (a dangling link
     * is not created through). */
    return filename_lookup(dfd, name, LOOKUP_FOLLOW, res);
  }
  *res = dentry;
  return 0;
}

int do_mkdirat(int dfd, const char *name, u32 mode) {
  struct nameparent np;
  struct dentry *dentry;
  int err = lookup_create(dfd, name, &np, &dentry);
  if (err) return err;
  if (dentry->d_inode) return -EEXIST;
  if ((err = may_create(np.dir))) return err;
  struct inode *dir = np.dir->d_inode;
  if (!dir->i_op->mkdir) return -EPERM;
  return dir->i_op->mkdir(dir, dentry, S_IFDIR | (mode & 07777));
}

int do_symlinkat(const char *target, int dfd, const char *name) {
  struct nameparent np;
  struct dentry *dentry;
  if (!*target) return -ENOENT;
  if (strnlen(target, FS_PATH_MAX) >= FS_PATH_MAX) return -ENAMETOOLONG;
  int err = lookup_create(dfd, name, &np, &dentry);
  if (err) return err;
  if (np.must_be_dir) return -ENOENT;
  if (dentry->d_inode) return -EEXIST;
  if ((err = may_create(np.dir))) return err;
  struct inode *dir = np.dir->d_inode;
  if (!dir->i_op->symlink) return -EPERM;
  return dir->i_op->symlink(dir, dentry, target);
}

int do_unlinkat(int dfd, const char *name) {
  struct nameparent np;
  int err = filename_parentat(dfd, name, &np);
  if (err) return err;
  if (np.type != LAST_NORM) return -EISDIR;
  struct dentry *dentry = lookup_one(np.dir, &np.last);
  if (IS_ERR(dentry)) return (int)PTR_ERR(dentry);
  if (!dentry->d_inode) return -ENOENT;
  if (i_is_dir(dentry->d_inode)) return -EISDIR;
  if (np.must_be_dir) return -ENOTDIR;
  if ((err = may_delete(np.dir, dentry))) return err;
  struct inode *dir = np.dir->d_inode;
  if (!dir->i_op->unlink) return -EPERM;
  err = dir->i_op->unlink(dir, dentry);
  if (err) return err;
  d_delete(dentry);
  return 0;
}

/* ---- system calls ---------------------------------------------------------------------------- */

long getname(u64 upath, char *kbuf) {
  long n = strncpy_from_user(kbuf, (const void *)(uintptr_t)upath, FS_PATH_MAX);
  if (n == 0) return -ENOENT;
  return n;
}

static long sys_mkdir(u64 upath, u64 mode, u64 c, u64 d, u64 e, u64 f) {
  char path[FS_PATH_MAX];
  long n = getname(upath, path);
  if (n < 0) return n;
  return do_mkdirat(AT_FDCWD, path, (u32)mode);
}

static long sys_unlink(u64 upath, u64 b, u64 c, u64 d, u64 e, u64 f) {
  char path[FS_PATH_MAX];
  long n = getname(upath, path);
  if (n < 0) return n;
  return do_unlinkat(AT_FDCWD, path);
}

static long sys_symlink(u64 utarget, u64 upath, u64 c, u64 d, u64 e, u64 f) {
  char target[FS_PATH_MAX], path[FS_PATH_MAX];
  long n = getname(utarget, target);
  if (n < 0) return n;
  if ((n = getname(upath, path)) < 0) return n;
  return do_symlinkat(target, AT_FDCWD, path);
}

void namei_syscalls_init(void) {
  syscall_register(SYS_mkdir, sys_mkdir, "mkdir");
  syscall_register(SYS_unlink, sys_unlink, "unlink");
  syscall_register(SYS_symlink, sys_symlink, "symlink");
}
