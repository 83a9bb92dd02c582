/*
 * @fileoverview Directories of the ext-like file system: files of 4 KiB
 * blocks holding variable-length entry records (inode, record length, name
 * length, type, name), ext2 style, each block checksummed as metadata.
 * Lookup scans the blocks record by record, verifying every block it reads;
 * insertion splits the slack of an existing record or appends a block;
 * removal merges the record into its predecessor.
 */
#include "ext.h"

static struct ext_dirent *dirent_at(u8 *block, u32 off) { return (struct ext_dirent *)(block + off); }

/* A record that would walk us off the block means the block is corrupt
 * (possible only with fs.ext_csum off, or a bug). */
static bool dirent_valid(const struct ext_dirent *de, u32 off) {
  return de->rec_len >= EXT_DIRENT_HEADER && (de->rec_len & 3) == 0 && off + de->rec_len <= EXT_CSUM_OFFSET &&
         (u32)de->name_len + EXT_DIRENT_HEADER <= de->rec_len;
}

static void dirent_fill(struct ext_dirent *de, u32 ino, const char *name, u32 len, u8 type) {
  de->inode = ino;
  de->name_len = (u8)len;
  de->file_type = type;
  memcpy(de->name, name, len);
}

void ext_dir_init_block(u8 *data, u32 ino, u32 parent_ino) {
  memset(data, 0, EXT_BLOCK_SIZE);
  struct ext_dirent *dot = dirent_at(data, 0);
  dirent_fill(dot, ino, ".", 1, EXT_FT_DIR);
  dot->rec_len = (u16)EXT_DIR_REC_LEN(1);
  struct ext_dirent *dotdot = dirent_at(data, dot->rec_len);
  dirent_fill(dotdot, parent_ino, "..", 2, EXT_FT_DIR);
  dotdot->rec_len = (u16)(EXT_CSUM_OFFSET - dot->rec_len);
}

static u8 ext_file_type(u32 mode) {
  switch (mode & S_IFMT) {
  case S_IFREG:
    return EXT_FT_REG;
  case S_IFDIR:
    return EXT_FT_DIR;
  case S_IFLNK:
    return EXT_FT_SYMLINK;
  default:
    return EXT_FT_UNKNOWN;
  }
}

/* ---- walking the blocks ---------------------------------------------------------------- */

static u64 dir_nblocks(struct inode *dir) { return dir->i_size / EXT_BLOCK_SIZE; }

/* Read directory block `index` (verified); -ENOENT for a hole. */
static int dir_read_block(struct inode *dir, u64 index, struct ext_buf *bh) {
  u32 block;
  int err = ext_bmap(dir, index, false, &block);
  if (err) return err;
  if (!block) return -ENOENT;
  return ext_bread(dir->i_sb, block, bh);
}

/* Find `name` in one block: its offset and the previous record's. */
static int search_block(u8 *data, const struct qstr *name, u32 *off_out, s32 *prev_out) {
  s32 prev = -1;
  for (u32 off = 0; off < EXT_CSUM_OFFSET;) {
    struct ext_dirent *de = dirent_at(data, off);
    if (!dirent_valid(de, off)) return -EIO;
    if (de->inode && de->name_len == name->len && memcmp(de->name, name->name, name->len) == 0) {
      *off_out = off;
      *prev_out = prev;
      return 1;
    }
    prev = (s32)off;
    off += de->rec_len;
  }
  return 0;
}

/* Locate an entry: the block (left read in bh on success) and offsets. */
static int find_entry(struct inode *dir, const struct qstr *name, struct ext_buf *bh, u32 *off, s32 *prev) {
  u64 n = dir_nblocks(dir);
  for (u64 i = 0; i < n; i++) {
    int err = dir_read_block(dir, i, bh);
    if (err == -ENOENT) continue;
    if (err) return err;
    err = search_block(bh->data, name, off, prev);
    if (err == 1) return 0;
    ext_brelse(bh);
    if (err < 0) return err;
  }
  return -ENOENT;
}

int ext_find_entry(struct inode *dir, const struct qstr *name, u32 *ino) {
  struct ext_buf bh;
  u32 off;
  s32 prev;
  int err = find_entry(dir, name, &bh, &off, &prev);
  if (err) return err;
  *ino = dirent_at(bh.data, off)->inode;
  ext_brelse(&bh);
  return 0;
}

/* ---- changing directories ------------------------------------------------------------------ */

/* Room for a record of `need` bytes in this block: a free record large
 * enough, or the slack after a used record. */
static struct ext_dirent *find_slot(u8 *data, u32 need, int *err) {
  for (u32 off = 0; off < EXT_CSUM_OFFSET;) {
    struct ext_dirent *de = dirent_at(data, off);
    if (!dirent_valid(de, off)) {
      *err = -EIO;
      return NULL;
    }
    u32 used = de->inode ? EXT_DIR_REC_LEN(de->name_len) : 0;
    if (de->rec_len - used >= need) {
      if (!used) return de;
      struct ext_dirent *slot = dirent_at(data, off + used);
      slot->rec_len = (u16)(de->rec_len - used);
      de->rec_len = (u16)used;
      return slot;
    }
    off += de->rec_len;
  }
  return NULL;
}

static int dir_changed(struct inode *dir) {
  inode_touch(dir);
  return ext_write_inode(dir);
}

/* Append a block holding one record that spans it. */
static int add_entry_new_block(struct inode *dir, const struct qstr *name, u32 ino, u8 type) {
  u64 index = dir_nblocks(dir);
  u32 block;
  int err = ext_bmap(dir, index, true, &block);
  if (err) return err;
  struct ext_buf bh;
  if ((err = ext_bnew(dir->i_sb, block, &bh))) return err;
  struct ext_dirent *de = dirent_at(bh.data, 0);
  dirent_fill(de, ino, name->name, name->len, type);
  de->rec_len = (u16)EXT_CSUM_OFFSET;
  err = ext_bwrite(dir->i_sb, &bh);
  ext_brelse(&bh);
  if (err) return err;
  dir->i_size += EXT_BLOCK_SIZE;
  return dir_changed(dir);
}

int ext_add_entry(struct inode *dir, const struct qstr *name, u32 ino, u8 type) {
  u32 need = EXT_DIR_REC_LEN(name->len);
  u64 n = dir_nblocks(dir);
  for (u64 i = 0; i < n; i++) {
    struct ext_buf bh;
    int err = dir_read_block(dir, i, &bh);
    if (err == -ENOENT) continue;
    if (err) return err;
    struct ext_dirent *de = find_slot(bh.data, need, &err);
    if (de) {
      dirent_fill(de, ino, name->name, name->len, type);
      err = ext_bwrite(dir->i_sb, &bh);
    }
    ext_brelse(&bh);
    if (err) return err;
    if (de) return dir_changed(dir);
  }
  return add_entry_new_block(dir, name, ino, type);
}

int ext_delete_entry(struct inode *dir, const struct qstr *name) {
  struct ext_buf bh;
  u32 off;
  s32 prev;
  int err = find_entry(dir, name, &bh, &off, &prev);
  if (err) return err;
  struct ext_dirent *de = dirent_at(bh.data, off);
  if (prev >= 0)
    dirent_at(bh.data, (u32)prev)->rec_len += de->rec_len;
  else
    de->inode = 0;
  err = ext_bwrite(dir->i_sb, &bh);
  ext_brelse(&bh);
  return err ? err : dir_changed(dir);
}

int ext_make_empty(struct inode *dir, u32 parent_ino) {
  u32 block;
  int err = ext_bmap(dir, 0, true, &block);
  if (err) return err;
  struct ext_buf bh;
  if ((err = ext_bnew(dir->i_sb, block, &bh))) return err;
  ext_dir_init_block(bh.data, (u32)dir->i_ino, parent_ino);
  err = ext_bwrite(dir->i_sb, &bh);
  ext_brelse(&bh);
  dir->i_size = EXT_BLOCK_SIZE;
  return err;
}

/* ---- inode operations of directories ------------------------------------------------------------ */

static int ext_lookup(struct inode *dir, struct dentry *dentry) {
  if (dentry->d_name.len > 255) return -ENAMETOOLONG;
  u32 ino;
  int err = ext_find_entry(dir, &dentry->d_name, &ino);
  if (err == -ENOENT) return 0; /* negative */
  if (err) return err;
  struct inode *inode = ext_iget(dir->i_sb, ino);
  if (IS_ERR(inode)) return (int)PTR_ERR(inode);
  d_instantiate(dentry, inode);
  return 0;
}

/* A new inode entered in dir: undo the inode if the entry cannot be added. */
static int ext_link_new(struct inode *dir, struct dentry *dentry, struct inode *inode) {
  int err = ext_add_entry(dir, &dentry->d_name, (u32)inode->i_ino, ext_file_type(inode->i_mode));
  if (err) {
    inode->i_nlink = 0;
    iput(inode);
    return err;
  }
  d_instantiate(dentry, inode);
  return 0;
}

static int ext_create(struct inode *dir, struct dentry *dentry, u32 mode) {
  struct inode *inode = ext_new_inode(dir, mode);
  if (IS_ERR(inode)) return (int)PTR_ERR(inode);
  return ext_link_new(dir, dentry, inode);
}

static int ext_mkdir(struct inode *dir, struct dentry *dentry, u32 mode) {
  struct inode *inode = ext_new_inode(dir, mode);
  if (IS_ERR(inode)) return (int)PTR_ERR(inode);
  int err = ext_make_empty(inode, (u32)dir->i_ino);
  if (!err) err = ext_write_inode(inode);
  if (err) {
    inode->i_nlink = 0;
    iput(inode);
    return err;
  }
  if ((err = ext_link_new(dir, dentry, inode))) return err;
  dir->i_nlink++; /* the child's ".." */
  return ext_write_inode(dir);
}

static int ext_symlink(struct inode *dir, struct dentry *dentry, const char *target) {
  struct inode *inode = ext_new_inode(dir, S_IFLNK | 0777);
  if (IS_ERR(inode)) return (int)PTR_ERR(inode);
  int err = ext_store_symlink(inode, target);
  if (err) {
    inode->i_nlink = 0;
    iput(inode);
    return err;
  }
  return ext_link_new(dir, dentry, inode);
}

static int ext_unlink(struct inode *dir, struct dentry *dentry) {
  struct inode *inode = dentry->d_inode;
  int err = ext_delete_entry(dir, &dentry->d_name);
  if (err) return err;
  inode->i_nlink--;
  return ext_write_inode(inode);
}

const struct inode_operations ext_dir_iops = {
    .lookup = ext_lookup,
    .create = ext_create,
    .mkdir = ext_mkdir,
    .symlink = ext_symlink,
    .unlink = ext_unlink,
    .getattr = ext_getattr,
    .setattr = ext_setattr,
};

const struct file_operations ext_dir_fops = {
    .read = generic_dir_read,
    .poll = generic_file_poll,
    .fstat = generic_file_fstat,
};
