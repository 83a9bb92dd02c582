/*
 * @fileoverview Inodes: allocation through the file system's super
 * operations, the inode hash (sb, ino) that keeps one in-memory inode per
 * file, reference counting with eviction of unlinked files, the logical
 * clock used for timestamps, and the permission check of every path-walk
 * step and every open.
 */
#include "vfs.h"

#define INODE_HASH_BITS 10

static struct hlist_head inode_hashtable[1u << INODE_HASH_BITS];
static struct kmem_cache *inode_cachep; /* file systems without their own inode type */
static u64 fs_clock;                    /* logical time: deterministic timestamps */

void inode_cache_init(void) {
  inode_cachep = kmem_cache_create("inode_cache", sizeof(struct inode), 8);
  if (!inode_cachep) panic("inode_cache_init: out of memory");
}

u64 fs_clock_tick(void) { return ++fs_clock; }

void inode_touch(struct inode *inode) { inode->i_mtime = fs_clock_tick(); }

/* Credentials of whoever is calling: the current task, or the kernel itself
 * (boot-time population runs before any task exists). */
u32 fs_uid(void) { return current ? current->uid : 0; }
u32 fs_gid(void) { return current ? current->gid : 0; }

/* ---- allocation ------------------------------------------------------------------- */

static struct inode *alloc_inode(struct super_block *sb) {
  if (sb->s_op && sb->s_op->alloc_inode) return sb->s_op->alloc_inode(sb);
  return kmem_cache_zalloc(inode_cachep);
}

static void destroy_inode(struct inode *inode) {
  struct super_block *sb = inode->i_sb;
  if (sb->s_op && sb->s_op->destroy_inode)
    sb->s_op->destroy_inode(inode);
  else
    kmem_cache_free(inode_cachep, inode);
}

struct inode *new_inode(struct super_block *sb) {
  struct inode *inode = alloc_inode(sb);
  if (!inode) return NULL;
  inode->i_sb = sb;
  inode->i_count = 1;
  inode->i_nlink = 1;
  inode->i_flags = 0;
  inode->i_mtime = fs_clock_tick();
  INIT_LIST_HEAD(&inode->i_pages);
  inode->i_nrpages = 0;
  inode->i_hash.next = NULL;
  inode->i_hash.pprev = NULL;
  return inode;
}

/* ---- the inode hash ---------------------------------------------------------------- */

static struct hlist_head *inode_bucket(const struct super_block *sb, u64 ino) {
  u64 key = (u64)(uintptr_t)sb ^ (ino * 0x9e3779b97f4a7c15ull);
  return &inode_hashtable[hash_32((u32)(key ^ (key >> 32)), INODE_HASH_BITS)];
}

struct inode *ilookup(struct super_block *sb, u64 ino) {
  struct hlist_node *n;
  for (n = inode_bucket(sb, ino)->first; n; n = n->next) {
    struct inode *inode = hlist_entry(n, struct inode, i_hash);
    if (inode->i_ino == ino && inode->i_sb == sb) {
      inode->i_count++;
      return inode;
    }
  }
  return NULL;
}

void insert_inode_hash(struct inode *inode) {
  hlist_add_head(&inode->i_hash, inode_bucket(inode->i_sb, inode->i_ino));
  inode->i_flags |= I_HASHED;
}

/* ---- references ------------------------------------------------------------------------ */

void iget(struct inode *inode) { inode->i_count++; }

/* No name and no user left: give the file's storage back. */
static void evict(struct inode *inode) {
  if (inode->i_flags & I_HASHED) {
    hlist_del(&inode->i_hash);
    inode->i_flags &= ~I_HASHED;
  }
  pagecache_truncate(inode, 0);
  if (inode->i_sb->s_op && inode->i_sb->s_op->evict_inode) inode->i_sb->s_op->evict_inode(inode);
  destroy_inode(inode);
}

void iput(struct inode *inode) {
  if (!inode) return;
  BUG_ON(inode->i_count == 0);
  if (--inode->i_count) return;
  /* Linked inodes stay cached in the hash (no shrinker): the next lookup
   * finds them without asking the file system. */
  if (inode->i_nlink == 0) evict(inode);
}

void mark_inode_dirty(struct inode *inode) {
  const struct super_operations *op = inode->i_sb->s_op;
  if (op && op->write_inode) op->write_inode(inode);
}

/* ---- permissions --------------------------------------------------------------------------- */

/* Classic UNIX mode bits: owner, else group, else others.  The superuser
 * bypasses read and write checks, and search checks on directories; it may
 * execute a file only if some execute bit is set (as Linux's
 * capable_wrt_inode_uidgid path does). */
static int generic_permission(const struct inode *inode, int mask) {
  u32 uid = fs_uid(), mode = inode->i_mode;
  if (uid == 0) {
    if (!(mask & MAY_EXEC) || i_is_dir(inode) || (mode & 0111)) return 0;
    return -EACCES;
  }
  if (uid == inode->i_uid)
    mode >>= 6;
  else if (fs_gid() == inode->i_gid)
    mode >>= 3;
  return ((u32)mask & ~mode & 7) ? -EACCES : 0;
}

int inode_permission(struct inode *inode, int mask) { return generic_permission(inode, mask); }

/* ---- attributes ------------------------------------------------------------------------------ */

void generic_fillattr(struct inode *inode, struct kstat *st) {
  st->st_dev = inode->i_sb->s_dev;
  st->st_ino = inode->i_ino;
  st->st_mode = inode->i_mode;
  st->st_nlink = inode->i_nlink;
  st->st_uid = inode->i_uid;
  st->st_gid = inode->i_gid;
  st->st_size = inode->i_size;
  st->st_blocks = inode->i_blocks;
  st->st_mtime_ns = inode->i_mtime;
}

int generic_getattr(struct dentry *dentry, struct kstat *st) {
  generic_fillattr(dentry->d_inode, st);
  return 0;
}

void setattr_copy(struct inode *inode, const struct iattr *attr) {
  if (attr->valid & ATTR_MODE) inode->i_mode = (inode->i_mode & S_IFMT) | (attr->mode & 07777);
  if (attr->valid & ATTR_UID) inode->i_uid = attr->uid;
  if (attr->valid & ATTR_GID) inode->i_gid = attr->gid;
  inode_touch(inode);
}
