/*
 * @fileoverview The ext-like file system's block layer: metadata blocks read
 * into buffers with their CRC32C verified (fs.ext_csum) and written back
 * with it recomputed, the block and inode bitmaps (next-fit allocation), and
 * the block map that turns a file's block index into a device block through
 * the direct pointers or the single indirect block.
 */
#include "ext.h"

/* ---- checksummed metadata I/O ---------------------------------------------------------- */

static u32 ext_csum(u32 block, const u8 *data) { return crc32c(EXT_CSUM_SEED ^ block, data, EXT_CSUM_OFFSET); }

void ext_set_csum(u32 block, u8 *data) {
  u32 c = ext_csum(block, data);
  memcpy(data + EXT_CSUM_OFFSET, &c, sizeof(c));
}

static bool ext_csum_verify(u32 block, const u8 *data) {
  u32 stored;
  memcpy(&stored, data + EXT_CSUM_OFFSET, sizeof(stored));
  return stored == ext_csum(block, data);
}

static __noinline void ext_csum_error(struct super_block *sb, u32 block) {
  struct ext_sb_info *sbi = EXT_SB(sb);
  if (sbi->csum_errors++ < 8)
    printk("ext: %s: metadata block %u fails its checksum", sbi->bdev->name, block);
}

/* Every metadata read comes here: copy the block off the device and, when
 * fs.ext_csum is on, check it before anyone trusts a pointer in it. */
int ext_bread(struct super_block *sb, u32 block, struct ext_buf *bh) {
  struct ext_sb_info *sbi = EXT_SB(sb);
  bh->blocknr = block;
  bh->data = kmalloc(EXT_BLOCK_SIZE);
  if (!bh->data) return -ENOMEM;
  int err = bdev_read_block(sbi->bdev, block, bh->data);
  if (!err && sysctl_fs_ext_csum && !ext_csum_verify(block, bh->data)) {
    ext_csum_error(sb, block);
    err = -EIO;
  }
  if (err) ext_brelse(bh);
  return err;
}

int ext_bnew(struct super_block *sb, u32 block, struct ext_buf *bh) {
  bh->blocknr = block;
  bh->data = kzalloc(EXT_BLOCK_SIZE);
  return bh->data ? 0 : -ENOMEM;
}

int ext_bwrite(struct super_block *sb, struct ext_buf *bh) {
  ext_set_csum(bh->blocknr, bh->data);
  return bdev_write_block(EXT_SB(sb)->bdev, bh->blocknr, bh->data);
}

void ext_brelse(struct ext_buf *bh) {
  kfree(bh->data);
  bh->data = NULL;
}

int ext_write_super(struct super_block *sb) {
  struct ext_buf bh;
  int err = ext_bnew(sb, EXT_SB_BLOCK, &bh);
  if (err) return err;
  memcpy(bh.data, &EXT_SB(sb)->s, sizeof(struct ext_super_disk));
  err = ext_bwrite(sb, &bh);
  ext_brelse(&bh);
  return err;
}

/* ---- bitmaps ---------------------------------------------------------------------------------- */

static bool test_bit(const u8 *map, u32 bit) { return map[bit >> 3] & (1u << (bit & 7)); }
static void set_bit(u8 *map, u32 bit) { map[bit >> 3] |= (u8)(1u << (bit & 7)); }
static void clear_bit(u8 *map, u32 bit) { map[bit >> 3] &= (u8)~(1u << (bit & 7)); }

/* The in-memory bitmap is the whole block: write it through with its CRC. */
static int write_bitmap(struct super_block *sb, u32 block, u8 *map) {
  ext_set_csum(block, map);
  return bdev_write_block(EXT_SB(sb)->bdev, block, map);
}

/* First clear bit in [lo, hi), starting the search at `from` and wrapping. */
static s64 find_clear_bit(const u8 *map, u32 lo, u32 hi, u32 from) {
  if (from < lo || from >= hi) from = lo;
  for (u32 n = 0, b = from; n < hi - lo; n++) {
    if (!test_bit(map, b)) return b;
    if (++b == hi) b = lo;
  }
  return -1;
}

int ext_new_block(struct super_block *sb, u32 *block) {
  struct ext_sb_info *sbi = EXT_SB(sb);
  if (sbi->s.s_free_blocks == 0) return -ENOSPC;
  s64 b = find_clear_bit(sbi->block_bitmap, sbi->s.s_first_data_block, sbi->s.s_blocks_count, sbi->block_goal);
  if (b < 0) return -ENOSPC;
  set_bit(sbi->block_bitmap, (u32)b);
  int err = write_bitmap(sb, EXT_BLOCK_BITMAP, sbi->block_bitmap);
  if (err) return err;
  sbi->s.s_free_blocks--;
  sbi->block_goal = (u32)b + 1;
  *block = (u32)b;
  return ext_write_super(sb);
}

void ext_free_block(struct super_block *sb, u32 block) {
  struct ext_sb_info *sbi = EXT_SB(sb);
  if (block < sbi->s.s_first_data_block || block >= sbi->s.s_blocks_count) return;
  if (!test_bit(sbi->block_bitmap, block)) return;
  clear_bit(sbi->block_bitmap, block);
  write_bitmap(sb, EXT_BLOCK_BITMAP, sbi->block_bitmap);
  sbi->s.s_free_blocks++;
  ext_write_super(sb);
}

int ext_new_ino(struct super_block *sb, u32 *ino) {
  struct ext_sb_info *sbi = EXT_SB(sb);
  if (sbi->s.s_free_inodes == 0) return -ENOSPC;
  s64 i = find_clear_bit(sbi->inode_bitmap, EXT_FIRST_INO, sbi->s.s_inodes_count + 1, EXT_FIRST_INO);
  if (i < 0) return -ENOSPC;
  set_bit(sbi->inode_bitmap, (u32)i);
  int err = write_bitmap(sb, EXT_INODE_BITMAP, sbi->inode_bitmap);
  if (err) return err;
  sbi->s.s_free_inodes--;
  *ino = (u32)i;
  return ext_write_super(sb);
}

void ext_free_ino(struct super_block *sb, u32 ino) {
  struct ext_sb_info *sbi = EXT_SB(sb);
  if (ino < EXT_FIRST_INO || ino > sbi->s.s_inodes_count || !test_bit(sbi->inode_bitmap, ino)) return;
  clear_bit(sbi->inode_bitmap, ino);
  write_bitmap(sb, EXT_INODE_BITMAP, sbi->inode_bitmap);
  sbi->s.s_free_inodes++;
  ext_write_super(sb);
}

/* ---- block maps ------------------------------------------------------------------------------- */

static int alloc_mapped_block(struct inode *inode, u32 *slot) {
  int err = ext_new_block(inode->i_sb, slot);
  if (err) return err;
  EXT_I(inode)->i_nblocks++;
  inode->i_blocks = (u64)EXT_I(inode)->i_nblocks * (EXT_BLOCK_SIZE / 512);
  return 0;
}

/* The indirect block, allocated (zeroed, checksummed) on first use. */
static int get_indirect(struct inode *inode, bool create, u32 *ind) {
  struct ext_inode *ei = EXT_I(inode);
  if (ei->i_block[EXT_IND_BLOCK] || !create) {
    *ind = ei->i_block[EXT_IND_BLOCK];
    return 0;
  }
  u32 b;
  int err = alloc_mapped_block(inode, &b);
  if (err) return err;
  struct ext_buf bh;
  if ((err = ext_bnew(inode->i_sb, b, &bh))) return err;
  err = ext_bwrite(inode->i_sb, &bh);
  ext_brelse(&bh);
  if (err) return err;
  ei->i_block[EXT_IND_BLOCK] = b;
  *ind = b;
  return 0;
}

int ext_bmap(struct inode *inode, u64 index, bool create, u32 *block) {
  struct ext_inode *ei = EXT_I(inode);
  int err;
  if (index < EXT_NDIR_BLOCKS) {
    if (!ei->i_block[index] && create && (err = alloc_mapped_block(inode, &ei->i_block[index]))) return err;
    *block = ei->i_block[index];
    return 0;
  }
  index -= EXT_NDIR_BLOCKS;
  if (index >= EXT_ADDR_PER_BLOCK) return -EFBIG;
  u32 ind;
  if ((err = get_indirect(inode, create, &ind))) return err;
  if (!ind) {
    *block = 0; /* a hole */
    return 0;
  }
  struct ext_buf bh;
  if ((err = ext_bread(inode->i_sb, ind, &bh))) return err;
  u32 *map = (u32 *)bh.data;
  if (!map[index] && create) {
    err = alloc_mapped_block(inode, &map[index]);
    if (!err) err = ext_bwrite(inode->i_sb, &bh);
  }
  *block = map[index];
  ext_brelse(&bh);
  return err;
}

/* Free the blocks mapping file blocks `first` and beyond. */
void ext_truncate_blocks(struct inode *inode, u64 first) {
  struct ext_inode *ei = EXT_I(inode);
  struct super_block *sb = inode->i_sb;
  for (u64 i = first; i < EXT_NDIR_BLOCKS; i++) {
    if (!ei->i_block[i]) continue;
    ext_free_block(sb, ei->i_block[i]);
    ei->i_block[i] = 0;
    ei->i_nblocks--;
  }
  u32 ind = ei->i_block[EXT_IND_BLOCK];
  if (ind) {
    u64 start = first > EXT_NDIR_BLOCKS ? first - EXT_NDIR_BLOCKS : 0;
    struct ext_buf bh;
    if (ext_bread(sb, ind, &bh) == 0) { /* a corrupt map leaks its blocks, as without fsck */
      u32 *map = (u32 *)bh.data;
      for (u64 j = start; j < EXT_ADDR_PER_BLOCK; j++) {
        if (!map[j]) continue;
        ext_free_block(sb, map[j]);
        map[j] = 0;
        ei->i_nblocks--;
      }
      if (start) ext_bwrite(sb, &bh);
      ext_brelse(&bh);
    }
    if (!start) {
      ext_free_block(sb, ind);
      ei->i_block[EXT_IND_BLOCK] = 0;
      ei->i_nblocks--;
    }
  }
  inode->i_blocks = (u64)ei->i_nblocks * (EXT_BLOCK_SIZE / 512);
}
