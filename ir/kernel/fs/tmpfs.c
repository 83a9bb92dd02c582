/*
 * @fileoverview tmpfs: a file system that lives in memory only.  Directories
 * keep their entries in a list (name, name hash, inode), which ->lookup
 * scans: the work the dentry cache saves.  Regular files have no backing
 * store: their data lives in the page cache alone (->readpage of a page that
 * was never written is a hole of zeroes, ->writepage keeps the page).
 * Symlink targets are kept in a kmalloc'd string.
 */
#include "vfs.h"

struct tmpfs_dirent {
  struct list_head list;
  struct inode *inode;
  u32 len;
  u32 hash;
  char name[];
};

struct tmpfs_inode {
  struct inode vfs;
  struct list_head entries; /* directories: struct tmpfs_dirent */
  u32 nentries;
  char *link; /* symlinks: the target */
};

static struct kmem_cache *tmpfs_inode_cache;

static struct tmpfs_inode *TMPFS_I(struct inode *inode) { return container_of(inode, struct tmpfs_inode, vfs); }

static const struct inode_operations tmpfs_dir_iops;
static const struct inode_operations tmpfs_file_iops;
static const struct inode_operations tmpfs_symlink_iops;
static const struct file_operations tmpfs_file_fops;
static const struct file_operations tmpfs_dir_fops;
static const struct address_space_operations tmpfs_aops;

/* ---- inodes ---------------------------------------------------------------------- */

static struct inode *tmpfs_alloc_inode(struct super_block *sb) {
  struct tmpfs_inode *ti = kmem_cache_zalloc(tmpfs_inode_cache);
  if (!ti) return NULL;
  INIT_LIST_HEAD(&ti->entries);
  return &ti->vfs;
}

static void tmpfs_destroy_inode(struct inode *inode) {
  struct tmpfs_inode *ti = TMPFS_I(inode);
  kfree(ti->link);
  kmem_cache_free(tmpfs_inode_cache, ti);
}

static const struct super_operations tmpfs_sops = {
    .alloc_inode = tmpfs_alloc_inode,
    .destroy_inode = tmpfs_destroy_inode,
};

static struct inode *tmpfs_get_inode(struct super_block *sb, u32 mode) {
  struct inode *inode = new_inode(sb);
  if (!inode) return NULL;
  inode->i_ino = sb->s_next_ino++;
  inode->i_mode = mode;
  inode->i_uid = fs_uid();
  inode->i_gid = fs_gid();
  switch (mode & S_IFMT) {
  case S_IFDIR:
    inode->i_op = &tmpfs_dir_iops;
    inode->i_fop = &tmpfs_dir_fops;
    inode->i_nlink = 2;
    break;
  case S_IFLNK:
    inode->i_op = &tmpfs_symlink_iops;
    break;
  default:
    inode->i_op = &tmpfs_file_iops;
    inode->i_fop = &tmpfs_file_fops;
    inode->i_aops = &tmpfs_aops;
    break;
  }
  return inode;
}

/* ---- directories ------------------------------------------------------------------- */

static struct tmpfs_dirent *tmpfs_find(struct inode *dir, const struct qstr *name) {
  struct list_head *pos;
  list_for_each(pos, &TMPFS_I(dir)->entries) {
    struct tmpfs_dirent *de = list_entry(pos, struct tmpfs_dirent, list);
    if (de->hash == name->hash && de->len == name->len && memcmp(de->name, name->name, name->len) == 0)
      return de;
  }
  return NULL;
}

static int tmpfs_add_entry(struct inode *dir, const struct qstr *name, struct inode *inode) {
  struct tmpfs_dirent *de = kmalloc(sizeof(*de) + name->len + 1);
  if (!de) return -ENOMEM;
  de->inode = inode;
  de->len = name->len;
  de->hash = name->hash;
  memcpy(de->name, name->name, name->len);
  de->name[name->len] = 0;
  list_add_tail(&de->list, &TMPFS_I(dir)->entries);
  TMPFS_I(dir)->nentries++;
  dir->i_size += name->len + 1; /* a directory's "size": bytes of names */
  inode_touch(dir);
  return 0;
}

static int tmpfs_lookup(struct inode *dir, struct dentry *dentry) {
  struct tmpfs_dirent *de = tmpfs_find(dir, &dentry->d_name);
  if (de) {
    iget(de->inode);
    d_instantiate(dentry, de->inode);
  }
  return 0; /* not found: a negative dentry */
}

/* Make an inode of `mode` and enter it in dir under the dentry's name. */
static int tmpfs_mknod(struct inode *dir, struct dentry *dentry, u32 mode, struct inode **res) {
  struct inode *inode = tmpfs_get_inode(dir->i_sb, mode);
  if (!inode) return -ENOSPC;
  int err = tmpfs_add_entry(dir, &dentry->d_name, inode);
  if (err) {
    inode->i_nlink = 0;
    iput(inode);
    return err;
  }
  d_instantiate(dentry, inode);
  if (res) *res = inode;
  return 0;
}

static int tmpfs_create(struct inode *dir, struct dentry *dentry, u32 mode) {
  return tmpfs_mknod(dir, dentry, mode, NULL);
}

static int tmpfs_mkdir(struct inode *dir, struct dentry *dentry, u32 mode) {
  int err = tmpfs_mknod(dir, dentry, mode, NULL);
  if (!err) dir->i_nlink++; /* the child's ".." */
  return err;
}

static int tmpfs_symlink(struct inode *dir, struct dentry *dentry, const char *target) {
  size_t len = strlen(target);
  char *copy = kmalloc(len + 1);
  if (!copy) return -ENOMEM;
  memcpy(copy, target, len + 1);
  struct inode *inode;
  int err = tmpfs_mknod(dir, dentry, S_IFLNK | 0777, &inode);
  if (err) {
    kfree(copy);
    return err;
  }
  TMPFS_I(inode)->link = copy;
  inode->i_size = len;
  return 0;
}

static int tmpfs_unlink(struct inode *dir, struct dentry *dentry) {
  struct tmpfs_dirent *de = tmpfs_find(dir, &dentry->d_name);
  if (!de) return -ENOENT;
  list_del(&de->list);
  TMPFS_I(dir)->nentries--;
  dir->i_size -= de->len + 1;
  de->inode->i_nlink--;
  kfree(de);
  inode_touch(dir);
  return 0;
}

/* ---- files and links ------------------------------------------------------------------- */

static int tmpfs_readlink(struct dentry *dentry, char *buf, size_t size) {
  const char *link = TMPFS_I(dentry->d_inode)->link;
  size_t len = strlcpy(buf, link, size);
  return (int)MIN(len, size - 1);
}

static int tmpfs_getattr(struct dentry *dentry, struct kstat *st) {
  struct inode *inode = dentry->d_inode;
  generic_fillattr(inode, st);
  st->st_blocks = inode->i_nrpages * (PAGE_SIZE / 512);
  return 0;
}

static int tmpfs_setattr(struct dentry *dentry, const struct iattr *attr) {
  struct inode *inode = dentry->d_inode;
  if (attr->valid & ATTR_SIZE) {
    pagecache_truncate(inode, attr->size);
    inode->i_size = attr->size;
  }
  setattr_copy(inode, attr);
  return 0;
}

/* A page nobody wrote: a hole. */
static int tmpfs_readpage(struct inode *inode, u64 index, void *page) {
  memset(page, 0, PAGE_SIZE);
  return 0;
}

/* The page cache is the storage: nothing to write back. */
static int tmpfs_writepage(struct inode *inode, u64 index, const void *page) {
  inode->i_blocks = inode->i_nrpages * (PAGE_SIZE / 512);
  return 0;
}

static const struct address_space_operations tmpfs_aops = {
    .readpage = tmpfs_readpage,
    .writepage = tmpfs_writepage,
};

static const struct inode_operations tmpfs_dir_iops = {
    .lookup = tmpfs_lookup,
    .create = tmpfs_create,
    .mkdir = tmpfs_mkdir,
    .symlink = tmpfs_symlink,
    .unlink = tmpfs_unlink,
    .getattr = tmpfs_getattr,
    .setattr = tmpfs_setattr,
};

static const struct inode_operations tmpfs_file_iops = {
    .getattr = tmpfs_getattr,
    .setattr = tmpfs_setattr,
};

static const struct inode_operations tmpfs_symlink_iops = {
    .readlink = tmpfs_readlink,
    .getattr = tmpfs_getattr,
    .setattr = tmpfs_setattr,
};

static const struct file_operations tmpfs_file_fops = {
    .read = generic_file_read,
    .write = generic_file_write,
    .poll = generic_file_poll,
    .fstat = generic_file_fstat,
};

static const struct file_operations tmpfs_dir_fops = {
    .read = generic_dir_read,
    .poll = generic_file_poll,
    .fstat = generic_file_fstat,
};

/* ---- mounting ----------------------------------------------------------------------------- */

static int tmpfs_fill_super(struct super_block *sb, void *data) {
  if (!tmpfs_inode_cache) tmpfs_inode_cache = kmem_cache_create("tmpfs_inode_cache", sizeof(struct tmpfs_inode), 8);
  if (!tmpfs_inode_cache) return -ENOMEM;
  sb->s_op = &tmpfs_sops;
  struct inode *root = tmpfs_get_inode(sb, S_IFDIR | 0755);
  if (!root) return -ENOMEM;
  sb->s_root = d_alloc_root(root);
  return sb->s_root ? 0 : -ENOMEM;
}

const struct file_system_type tmpfs_fs_type = {
    .name = "tmpfs",
    .fill_super = tmpfs_fill_super,
};
