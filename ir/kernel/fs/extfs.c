/*
 * @fileoverview The ext-like file system: mkfs, mounting, inodes read from
 * and written to the checksummed inode table, file data through the page
 * cache (a miss copies the block from the device into the page), symlinks
 * and the file-system type.  Directories are in ext_dir.c, the block layer
 * (metadata buffers, bitmaps, block maps) in ext_balloc.c.  Layout: ext.h.
 */
#include "ext.h"

static struct kmem_cache *ext_inode_cachep;

static const struct inode_operations ext_file_iops;
static const struct inode_operations ext_symlink_iops;
static const struct file_operations ext_file_fops;
static const struct address_space_operations ext_aops;

/* ---- in-memory inodes --------------------------------------------------------------- */

static struct inode *ext_alloc_inode(struct super_block *sb) {
  struct ext_inode *ei = kmem_cache_zalloc(ext_inode_cachep);
  return ei ? &ei->vfs : NULL;
}

static void ext_destroy_inode(struct inode *inode) { kmem_cache_free(ext_inode_cachep, EXT_I(inode)); }

/* A fast symlink keeps its target where the block pointers would be. */
static bool ext_fast_symlink(struct inode *inode) { return i_is_lnk(inode) && EXT_I(inode)->i_nblocks == 0; }

static void ext_set_ops(struct inode *inode) {
  switch (inode->i_mode & S_IFMT) {
  case S_IFDIR:
    inode->i_op = &ext_dir_iops;
    inode->i_fop = &ext_dir_fops;
    break;
  case S_IFLNK:
    inode->i_op = &ext_symlink_iops;
    inode->i_aops = &ext_aops; /* slow symlinks read their block through the page cache */
    break;
  default:
    inode->i_op = &ext_file_iops;
    inode->i_fop = &ext_file_fops;
    inode->i_aops = &ext_aops;
    break;
  }
}

/* ---- the inode table ------------------------------------------------------------------- */

static int ext_inode_location(struct super_block *sb, u32 ino, u32 *block, u32 *offset) {
  if (ino == 0 || ino > EXT_SB(sb)->s.s_inodes_count) return -EIO;
  *block = EXT_INODE_TABLE + (ino - 1) / EXT_INODES_PER_BLOCK;
  *offset = ((ino - 1) % EXT_INODES_PER_BLOCK) * EXT_INODE_SIZE;
  return 0;
}

static void raw_to_inode(const struct ext_inode_disk *raw, struct inode *inode) {
  struct ext_inode *ei = EXT_I(inode);
  inode->i_mode = raw->i_mode;
  inode->i_nlink = raw->i_links;
  inode->i_uid = raw->i_uid;
  inode->i_gid = raw->i_gid;
  inode->i_size = raw->i_size;
  inode->i_mtime = raw->i_mtime;
  ei->i_nblocks = raw->i_blocks;
  inode->i_blocks = (u64)raw->i_blocks * (EXT_BLOCK_SIZE / 512);
  memcpy(ei->i_block, raw->i_block, sizeof(ei->i_block));
}

static void inode_to_raw(struct inode *inode, struct ext_inode_disk *raw) {
  struct ext_inode *ei = EXT_I(inode);
  memset(raw, 0, sizeof(*raw));
  raw->i_mode = (u16)inode->i_mode;
  raw->i_links = (u16)inode->i_nlink;
  raw->i_uid = inode->i_uid;
  raw->i_gid = inode->i_gid;
  raw->i_size = inode->i_size;
  raw->i_mtime = inode->i_mtime;
  raw->i_blocks = ei->i_nblocks;
  memcpy(raw->i_block, ei->i_block, sizeof(raw->i_block));
}

struct inode *ext_iget(struct super_block *sb, u32 ino) {
  struct inode *inode = ilookup(sb, ino);
  if (inode) return inode;
  u32 block, offset;
  int err = ext_inode_location(sb, ino, &block, &offset);
  if (err) return ERR_PTR(err);
  struct ext_buf bh;
  if ((err = ext_bread(sb, block, &bh))) return ERR_PTR(err);
  const struct ext_inode_disk *raw = (const struct ext_inode_disk *)(bh.data + offset);
  if (raw->i_mode == 0 || raw->i_links == 0) {
    ext_brelse(&bh);
    return ERR_PTR(-EIO); /* a directory entry naming a free inode */
  }
  inode = new_inode(sb);
  if (!inode) {
    ext_brelse(&bh);
    return ERR_PTR(-ENOMEM);
  }
  inode->i_ino = ino;
  raw_to_inode(raw, inode);
  ext_brelse(&bh);
  ext_set_ops(inode);
  insert_inode_hash(inode);
  return inode;
}

/* Read-modify-write of the inode's slot in its table block. */
static int ext_write_raw(struct super_block *sb, u32 ino, const struct ext_inode_disk *raw) {
  u32 block, offset;
  int err = ext_inode_location(sb, ino, &block, &offset);
  if (err) return err;
  struct ext_buf bh;
  if ((err = ext_bread(sb, block, &bh))) return err;
  memcpy(bh.data + offset, raw, sizeof(*raw));
  err = ext_bwrite(sb, &bh);
  ext_brelse(&bh);
  return err;
}

int ext_write_inode(struct inode *inode) {
  struct ext_inode_disk raw;
  inode_to_raw(inode, &raw);
  return ext_write_raw(inode->i_sb, (u32)inode->i_ino, &raw);
}

struct inode *ext_new_inode(struct inode *dir, u32 mode) {
  struct super_block *sb = dir->i_sb;
  u32 ino;
  int err = ext_new_ino(sb, &ino);
  if (err) return ERR_PTR(err);
  struct inode *inode = new_inode(sb);
  if (!inode) {
    ext_free_ino(sb, ino);
    return ERR_PTR(-ENOMEM);
  }
  inode->i_ino = ino;
  inode->i_mode = mode;
  inode->i_uid = fs_uid();
  inode->i_gid = fs_gid();
  inode->i_nlink = S_ISDIR(mode) ? 2 : 1;
  ext_set_ops(inode);
  insert_inode_hash(inode);
  if ((err = ext_write_inode(inode))) {
    inode->i_nlink = 0;
    iput(inode);
    return ERR_PTR(err);
  }
  return inode;
}

/* The last link and the last user are gone: free blocks and the inode. */
static void ext_evict_inode(struct inode *inode) {
  struct super_block *sb = inode->i_sb;
  if (!ext_fast_symlink(inode)) ext_truncate_blocks(inode, 0);
  struct ext_inode_disk raw;
  memset(&raw, 0, sizeof(raw));
  ext_write_raw(sb, (u32)inode->i_ino, &raw);
  ext_free_ino(sb, (u32)inode->i_ino);
}

static int ext_sop_write_inode(struct inode *inode) { return ext_write_inode(inode); }

static const struct super_operations ext_sops = {
    .alloc_inode = ext_alloc_inode,
    .destroy_inode = ext_destroy_inode,
    .write_inode = ext_sop_write_inode,
    .evict_inode = ext_evict_inode,
};

/* ---- file data: the page cache's backing store ---------------------------------------------- */

/* Page cache miss: copy the file block from the device into the page. */
static int ext_readpage(struct inode *inode, u64 index, void *page) {
  u32 block;
  int err = ext_bmap(inode, index, false, &block);
  if (err) return err;
  if (!block) {
    memset(page, 0, PAGE_SIZE);
    return 0;
  }
  return bdev_read_block(EXT_SB(inode->i_sb)->bdev, block, page);
}

/* Write-through: map (allocating if needed) and copy the page to its block. */
static int ext_writepage(struct inode *inode, u64 index, const void *page) {
  u32 block;
  int err = ext_bmap(inode, index, true, &block);
  if (err) return err;
  return bdev_write_block(EXT_SB(inode->i_sb)->bdev, block, page);
}

static const struct address_space_operations ext_aops = {
    .readpage = ext_readpage,
    .writepage = ext_writepage,
};

/* ---- attributes -------------------------------------------------------------------------------- */

int ext_getattr(struct dentry *dentry, struct kstat *st) {
  generic_fillattr(dentry->d_inode, st);
  return 0;
}

int ext_setattr(struct dentry *dentry, const struct iattr *attr) {
  struct inode *inode = dentry->d_inode;
  if ((attr->valid & ATTR_SIZE) && i_is_reg(inode)) {
    pagecache_truncate(inode, attr->size);
    ext_truncate_blocks(inode, (attr->size + EXT_BLOCK_SIZE - 1) / EXT_BLOCK_SIZE);
    inode->i_size = attr->size;
  }
  setattr_copy(inode, attr);
  return ext_write_inode(inode);
}

/* ---- symlinks ------------------------------------------------------------------------------------- */

int ext_store_symlink(struct inode *inode, const char *target) {
  size_t len = strlen(target);
  if (len <= EXT_FAST_LINK_MAX) {
    memcpy(EXT_I(inode)->i_block, target, len);
    inode->i_size = len;
    return ext_write_inode(inode);
  }
  u64 pos = 0;
  long n = pagecache_write(inode, target, len, &pos);
  if (n < 0) return (int)n;
  return ext_write_inode(inode);
}

static int ext_readlink(struct dentry *dentry, char *buf, size_t size) {
  struct inode *inode = dentry->d_inode;
  size_t len = (size_t)MIN(inode->i_size, (u64)size - 1);
  if (ext_fast_symlink(inode)) {
    memcpy(buf, EXT_I(inode)->i_block, len);
  } else {
    u64 pos = 0;
    long n = pagecache_read(inode, buf, len, &pos);
    if (n < 0) return (int)n;
    len = (size_t)n;
  }
  buf[len] = 0;
  return (int)len;
}

static const struct inode_operations ext_file_iops = {
    .getattr = ext_getattr,
    .setattr = ext_setattr,
};

static const struct inode_operations ext_symlink_iops = {
    .readlink = ext_readlink,
    .getattr = ext_getattr,
    .setattr = ext_setattr,
};

static const struct file_operations ext_file_fops = {
    .read = generic_file_read,
    .write = generic_file_write,
    .poll = generic_file_poll,
    .fstat = generic_file_fstat,
};

/* ---- mkfs ----------------------------------------------------------------------------------------- */

static int mkfs_write(struct block_device *bdev, u32 block, u8 *buf) {
  ext_set_csum(block, buf);
  return bdev_write_block(bdev, block, buf);
}

static void bitmap_fill(u8 *map, u32 nbits) {
  for (u32 b = 0; b < nbits; b++) map[b >> 3] |= (u8)(1u << (b & 7));
}

/* Write an empty file system: superblock, bitmaps, a zeroed inode table and
 * the root directory (inode 2, one block holding "." and ".."). */
int ext_mkfs(struct block_device *bdev, u32 inode_table_blocks) {
  u8 *buf = kzalloc(EXT_BLOCK_SIZE);
  if (!buf) return -ENOMEM;
  u32 first_data = EXT_INODE_TABLE + inode_table_blocks, root_block = first_data;
  int err = 0;
  if (bdev->block_size != EXT_BLOCK_SIZE || bdev->nblocks > EXT_BITS_PER_BITMAP || first_data + 1 >= bdev->nblocks) {
    err = -EINVAL;
    goto out;
  }
  struct ext_super_disk s = {
      .s_magic = EXT_MAGIC,
      .s_block_size = EXT_BLOCK_SIZE,
      .s_blocks_count = bdev->nblocks,
      .s_inodes_count = inode_table_blocks * EXT_INODES_PER_BLOCK,
      .s_inode_table_blocks = inode_table_blocks,
      .s_first_data_block = first_data,
      .s_root_ino = EXT_ROOT_INO,
      .s_mkfs_time = fs_clock_tick(),
      .s_volume_name = "data",
  };
  s.s_free_blocks = bdev->nblocks - first_data - 1;
  s.s_free_inodes = s.s_inodes_count - (EXT_FIRST_INO - 1);
  memcpy(buf, &s, sizeof(s));
  if ((err = mkfs_write(bdev, EXT_SB_BLOCK, buf))) goto out;

  memset(buf, 0, EXT_BLOCK_SIZE);
  bitmap_fill(buf, root_block + 1); /* metadata and the root directory's block */
  if ((err = mkfs_write(bdev, EXT_BLOCK_BITMAP, buf))) goto out;
  memset(buf, 0, EXT_BLOCK_SIZE);
  bitmap_fill(buf, EXT_FIRST_INO); /* inode 0 (none) and the reserved 1 .. 10 */
  if ((err = mkfs_write(bdev, EXT_INODE_BITMAP, buf))) goto out;

  for (u32 i = 0; i < inode_table_blocks; i++) {
    memset(buf, 0, EXT_BLOCK_SIZE);
    if (i == 0) {
      struct ext_inode_disk *root = (struct ext_inode_disk *)(buf + (EXT_ROOT_INO - 1) * EXT_INODE_SIZE);
      root->i_mode = S_IFDIR | 0755;
      root->i_links = 2;
      root->i_size = EXT_BLOCK_SIZE;
      root->i_mtime = s.s_mkfs_time;
      root->i_blocks = 1;
      root->i_block[0] = root_block;
    }
    if ((err = mkfs_write(bdev, EXT_INODE_TABLE + i, buf))) goto out;
  }
  ext_dir_init_block(buf, EXT_ROOT_INO, EXT_ROOT_INO);
  err = mkfs_write(bdev, root_block, buf);
out:
  kfree(buf);
  return err;
}

/* ---- mounting -------------------------------------------------------------------------------------- */

static int ext_load_bitmap(struct super_block *sb, u32 block, u8 **map) {
  struct ext_buf bh;
  int err = ext_bread(sb, block, &bh);
  if (err) return err;
  *map = bh.data; /* keep the buffer: it is the in-memory bitmap */
  return 0;
}

static int ext_fill_super(struct super_block *sb, void *data) {
  if (!ext_inode_cachep) ext_inode_cachep = kmem_cache_create("ext_inode_cache", sizeof(struct ext_inode), 8);
  struct ext_sb_info *sbi = kzalloc(sizeof(*sbi));
  if (!ext_inode_cachep || !sbi) return -ENOMEM;
  sbi->bdev = data;
  sb->s_fs_info = sbi;
  sb->s_op = &ext_sops;
  struct ext_buf bh;
  int err = ext_bread(sb, EXT_SB_BLOCK, &bh);
  if (err) return err;
  memcpy(&sbi->s, bh.data, sizeof(sbi->s));
  ext_brelse(&bh);
  if (sbi->s.s_magic != EXT_MAGIC || sbi->s.s_block_size != EXT_BLOCK_SIZE) return -EINVAL;
  sbi->block_goal = sbi->s.s_first_data_block;
  if ((err = ext_load_bitmap(sb, EXT_BLOCK_BITMAP, &sbi->block_bitmap))) return err;
  if ((err = ext_load_bitmap(sb, EXT_INODE_BITMAP, &sbi->inode_bitmap))) return err;
  struct inode *root = ext_iget(sb, sbi->s.s_root_ino);
  if (IS_ERR(root)) return (int)PTR_ERR(root);
  sb->s_root = d_alloc_root(root);
  return sb->s_root ? 0 : -ENOMEM;
}

const struct file_system_type ext_fs_type = {
    .name = "extfs",
    .fill_super = ext_fill_super,
};
