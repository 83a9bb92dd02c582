/*
 * @fileoverview The VFS's private interface, shared by the files of fs/:
 * inodes, dentries, superblocks and mounts, the operation tables every file
 * system fills in (all per-file-system behaviour is reached through them,
 * called indirectly), the dentry cache, the page cache, the path walk and
 * the kernel-internal entry points populate.c and procfs use.
 *
 * Object lifetimes, kept deliberately simple:
 *   - dentries, once attached to the tree, live for the whole run (a dcache
 *     without a shrinker); unlink turns a dentry negative instead of freeing
 *     it, and negative dentries are kept too;
 *   - inodes are reference counted (i_count): a positive dentry holds one
 *     reference and every open file holds one; an inode whose count drops to
 *     zero stays in the inode hash while it still has links, and is evicted
 *     (page cache dropped, blocks freed) once it has none.
 */
#ifndef FS_VFS_H
#define FS_VFS_H

#include <kernel/file.h>
#include <kernel/lib.h>
#include <kernel/mm.h>
#include <kernel/sched.h>
#include <kernel/syscall.h>
#include <kernel/sysctl.h>
#include <kernel/types.h>
#include <kernel/uapi.h>

#define FS_PATH_MAX 512 /* bytes of a path, NUL included */
#define FS_NAME_MAX 255 /* bytes of one component */
#define MAX_NESTED_LINKS 8 /* symlink nesting depth before ELOOP */
#define MAX_TOTAL_LINKS 40 /* symlinks followed by one walk before ELOOP */

#define EFBIG 27 /* not in types.h: file larger than the block map allows */

/* Permission masks (inode_permission). */
#define MAY_EXEC 1
#define MAY_WRITE 2
#define MAY_READ 4

#define POLLNVAL 0x020 /* not in file.h: pollfd with a bad descriptor */

/* ---- error pointers -------------------------------------------------------- */

#define MAX_ERRNO 4095
static inline void *ERR_PTR(long err) { return (void *)(intptr_t)err; }
static inline long PTR_ERR(const void *p) { return (long)(intptr_t)p; }
static inline bool IS_ERR(const void *p) { return (uintptr_t)p >= (uintptr_t)-MAX_ERRNO; }

/* ---- names --------------------------------------------------------------------- */

/* A path component: points into the path being walked (not NUL-terminated). */
struct qstr {
  const char *name;
  u32 len;
  u32 hash; /* full_name_hash(name, len, 0) */
};

struct super_block;
struct inode;
struct dentry;
struct vfsmount;

/* ---- operation tables ------------------------------------------------------------ */

#define ATTR_MODE 1u
#define ATTR_UID 2u
#define ATTR_GID 4u
#define ATTR_SIZE 8u

struct iattr {
  u32 valid; /* ATTR_* */
  u32 mode;  /* permission bits only */
  u32 uid, gid;
  u64 size;
};

struct inode_operations {
  /* Resolve `dentry->d_name` in `dir`: on success the dentry is either
   * instantiated (d_instantiate) or left negative; return 0 or -errno (an
   * error result is not cached). */
  int (*lookup)(struct inode *dir, struct dentry *dentry);
  /* Create an object for the negative `dentry` and instantiate it. */
  int (*create)(struct inode *dir, struct dentry *dentry, u32 mode);
  int (*mkdir)(struct inode *dir, struct dentry *dentry, u32 mode);
  int (*symlink)(struct inode *dir, struct dentry *dentry, const char *target);
  /* Remove the directory entry; the VFS then makes the dentry negative. */
  int (*unlink)(struct inode *dir, struct dentry *dentry);
  /* Copy the link target into buf, NUL-terminated; returns its length. */
  int (*readlink)(struct dentry *dentry, char *buf, size_t size);
  int (*getattr)(struct dentry *dentry, struct kstat *st);
  int (*setattr)(struct dentry *dentry, const struct iattr *attr);
};

/* Backing store of the page cache (block size == page size everywhere). */
struct address_space_operations {
  /* Fill a page-cache page with page `index` of the file (zeroes for holes). */
  int (*readpage)(struct inode *inode, u64 index, void *page);
  /* The page was modified: write it back (or keep it: tmpfs). */
  int (*writepage)(struct inode *inode, u64 index, const void *page);
};

struct super_operations {
  struct inode *(*alloc_inode)(struct super_block *sb);
  void (*destroy_inode)(struct inode *inode);
  int (*write_inode)(struct inode *inode);   /* metadata back to disk */
  void (*evict_inode)(struct inode *inode);  /* last link and last use gone */
};

/* ---- inodes ------------------------------------------------------------------- */

#define I_HASHED 1u

struct inode {
  u64 i_ino;
  u32 i_mode;
  u32 i_uid, i_gid;
  u32 i_nlink;
  u64 i_size;
  u64 i_mtime;  /* logical clock (fs_clock_tick), never real time */
  u64 i_blocks; /* 512-byte units, for stat */
  u32 i_count;
  u32 i_flags;
  struct super_block *i_sb;
  const struct inode_operations *i_op;
  const struct file_operations *i_fop;
  const struct address_space_operations *i_aops;
  struct hlist_node i_hash;  /* inode hash: (sb, ino) */
  struct list_head i_pages;  /* page-cache pages of this file */
  u64 i_nrpages;
  void *i_private;
};

static inline bool i_is_dir(const struct inode *i) { return S_ISDIR(i->i_mode); }
static inline bool i_is_lnk(const struct inode *i) { return S_ISLNK(i->i_mode); }
static inline bool i_is_reg(const struct inode *i) { return S_ISREG(i->i_mode); }

/* fs/inode.c */
void inode_cache_init(void);
struct inode *new_inode(struct super_block *sb);
/* A cached inode of sb with this number (a new reference), or NULL. */
struct inode *ilookup(struct super_block *sb, u64 ino);
void insert_inode_hash(struct inode *inode);
void iget(struct inode *inode);
void iput(struct inode *inode);
void mark_inode_dirty(struct inode *inode);
void inode_touch(struct inode *inode); /* mtime = next logical tick */
u64 fs_clock_tick(void);
u32 fs_uid(void);
u32 fs_gid(void);
int inode_permission(struct inode *inode, int mask);
void generic_fillattr(struct inode *inode, struct kstat *st);
int generic_getattr(struct dentry *dentry, struct kstat *st);
/* mode / uid / gid changes valid for any in-memory inode (setattr helpers). */
void setattr_copy(struct inode *inode, const struct iattr *attr);

/* ---- dentries ------------------------------------------------------------------- */

#define DNAME_INLINE_LEN 40
#define DCACHE_MOUNTED 1u  /* a file system is mounted on this dentry */
#define DCACHE_HASHED 2u   /* on a dentry-hash chain */
#define DCACHE_ATTACHED 4u /* on its parent's child list */

struct dentry {
  struct hlist_node d_hash;   /* dentry-cache hash chain */
  struct dentry *d_parent;    /* itself for a file system's root */
  struct qstr d_name;         /* name points at d_iname or a kmalloc copy */
  struct inode *d_inode;      /* NULL: negative dentry */
  struct super_block *d_sb;
  u32 d_flags;
  struct list_head d_child;   /* in d_parent->d_subdirs */
  struct list_head d_subdirs; /* children */
  char d_iname[DNAME_INLINE_LEN];
};

/* fs/dcache.c */
void dcache_init(void);
struct dentry *d_alloc(struct dentry *parent, const struct qstr *name);
struct dentry *d_alloc_root(struct inode *root);
void d_free(struct dentry *dentry); /* an unattached dentry only */
void d_instantiate(struct dentry *dentry, struct inode *inode);
void d_attach(struct dentry *dentry); /* hash it and link it to its parent */
struct dentry *d_lookup(const struct dentry *parent, const struct qstr *name);
struct dentry *d_lookup_child(const struct dentry *parent, const struct qstr *name);
void d_delete(struct dentry *dentry); /* unlinked: becomes negative */
void dcache_stats(u64 *lookups, u64 *hits, u64 *dentries);

/* ---- superblocks and mounts -------------------------------------------------------- */

struct file_system_type {
  const char *name;
  /* Fill sb (s_op, s_root ...) from the device or data given to mount. */
  int (*fill_super)(struct super_block *sb, void *data);
};

struct super_block {
  u64 s_dev;
  const char *s_id; /* device name: "tmpfs", "ram0", "proc" */
  const struct file_system_type *s_type;
  const struct super_operations *s_op;
  struct dentry *s_root;
  struct vfsmount *s_mnt; /* each super block is mounted once */
  u64 s_next_ino;         /* in-memory file systems number their inodes */
  void *s_fs_info;
};

struct vfsmount {
  struct super_block *mnt_sb;
  struct dentry *mnt_root;
  struct dentry *mnt_mountpoint; /* NULL for the root mount */
  struct vfsmount *mnt_parent;   /* itself for the root mount */
  const char *mnt_devname;
  char mnt_path[64];
  struct hlist_node mnt_hash; /* mount hash, keyed by the mount point */
  struct list_head mnt_list;  /* every mount, in mount order */
};

/* fs/super.c */
struct super_block *sget(const struct file_system_type *type, const char *id, void *data);

/* fs/mount.c */
void mnt_init(void);
int mount_root(const struct file_system_type *type, const char *dev, void *data);
int do_mount(const struct file_system_type *type, const char *dev, const char *dir, void *data);
struct vfsmount *lookup_mnt(const struct dentry *mountpoint);
struct dentry *fs_root(void);
int mounts_show(char *buf, size_t size); /* /proc/mounts */

/* ---- the page cache ---------------------------------------------------------------- */

/* fs/pagecache.c */
void pagecache_init(void);
long pagecache_read(struct inode *inode, void *buf, size_t len, u64 *pos);
long pagecache_write(struct inode *inode, const void *buf, size_t len, u64 *pos);
/* Drop the pages past `size` and zero the tail of the last one. */
void pagecache_truncate(struct inode *inode, u64 size);
void pagecache_stats(u64 *pages, u64 *hits, u64 *misses);

/* ---- path walk ------------------------------------------------------------------------ */

#define LOOKUP_FOLLOW 1u    /* follow a symlink in the last component */
#define LOOKUP_DIRECTORY 2u /* the last component must be a directory */

/* fs/namei.c: paths are kernel strings. */
int filename_lookup(int dfd, const char *name, unsigned flags, struct dentry **res);
/* Kinds of last component. */
enum { LAST_NORM = 0, LAST_ROOT = 1, LAST_DOT = 2, LAST_DOTDOT = 3 };
struct nameparent {
  struct dentry *dir; /* the directory that would contain the last component */
  struct qstr last;   /* points into the name that was walked */
  int type;           /* LAST_* */
  bool must_be_dir;   /* the name ended with '/' */
};
int filename_parentat(int dfd, const char *name, struct nameparent *np);
/* One component in a directory, through the dentry cache or the file
 * system; the result may be negative.  The caller has checked MAY_EXEC. */
struct dentry *lookup_one(struct dentry *dir, const struct qstr *name);
/* The dentry open() works on, created if O_CREAT asks for it. */
int filename_open_dentry(int dfd, const char *name, int flags, u32 mode, struct dentry **res);
int do_mkdirat(int dfd, const char *name, u32 mode);
int do_symlinkat(const char *target, int dfd, const char *name);
int do_unlinkat(int dfd, const char *name);
/* Copy a user path into a kernel buffer of FS_PATH_MAX bytes. */
long getname(u64 upath, char *kbuf);
void namei_syscalls_init(void);

/* ---- files ------------------------------------------------------------------------------ */

/* fs/open.c */
struct file *filp_open(int dfd, const char *name, int flags, u32 mode); /* or ERR_PTR */
struct file *dentry_open(struct dentry *dentry, int flags);
void open_syscalls_init(void);

/* fs/read_write.c: generic operations file systems put in their tables. */
long generic_file_read(struct file *f, void *buf, size_t len, u64 *pos);
long generic_file_write(struct file *f, const void *buf, size_t len, u64 *pos);
unsigned generic_file_poll(struct file *f, struct poll_table *pt);
long generic_dir_read(struct file *f, void *buf, size_t len, u64 *pos);
long kernel_read(struct file *f, void *buf, size_t len);
long kernel_write(struct file *f, const void *buf, size_t len);
void read_write_syscalls_init(void);

/* fs/stat.c */
int vfs_getattr(struct dentry *dentry, struct kstat *st);
int generic_file_fstat(struct file *f, struct kstat *st);
int vfs_stat(int dfd, const char *name, unsigned flags, struct kstat *st);
int vfs_setattr(struct dentry *dentry, const struct iattr *attr);
int vfs_readlink(struct dentry *dentry, char *buf, size_t size);
void stat_syscalls_init(void);

/* fs/select.c */
void select_syscalls_init(void);

/* fs/file.c */
void files_init(void);

/* ---- the file systems --------------------------------------------------------------------- */

extern const struct file_system_type tmpfs_fs_type;
extern const struct file_system_type ext_fs_type;
extern const struct file_system_type proc_fs_type;

/* fs/extfs.c: format the block device before mounting it. */
struct block_device;
int ext_mkfs(struct block_device *bdev, u32 inode_table_blocks);

/* fs/populate.c */
void fs_populate(void);

#endif
