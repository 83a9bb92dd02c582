/*
 * @fileoverview The ext-like file system's on-disk format and its private
 * interface.  Layout of the device (4 KiB blocks):
 *
 *   0            superblock
 *   1            block bitmap
 *   2            inode bitmap
 *   3 ..         inode table (31 inodes of 128 bytes per block)
 *   then         data blocks: file data, directory blocks, indirect blocks
 *
 * Every metadata block (superblock, bitmaps, inode table, directory and
 * indirect blocks) ends with a CRC32C of the rest of the block, seeded with
 * the block number (so a block written to the wrong place fails too).  It
 * is verified each time the block is read when fs.ext_csum is set (a
 * boot-fixed sysctl, read plainly) and recomputed on every write.  File data
 * blocks carry no checksum; they are read through the page cache.
 *
 * An inode maps its data with 12 direct block pointers and one single
 * indirect block (1023 pointers): files up to 4 MiB.  Short symlink targets
 * live in the block-pointer area (a "fast" symlink), longer ones in a data
 * block.  Directories are files of entry records like ext2's.
 */
#ifndef FS_EXT_H
#define FS_EXT_H

#include "blockdev.h"
#include "vfs.h"

#define EXT_MAGIC 0x4b4a5445u /* "ETJK" */
#define EXT_BLOCK_SIZE 4096u
#define EXT_CSUM_OFFSET (EXT_BLOCK_SIZE - 4)
#define EXT_CSUM_SEED 0x6b6a6974u /* "kjit" */
#define EXT_NDIR_BLOCKS 12
#define EXT_IND_BLOCK 12
#define EXT_N_BLOCKS 15
#define EXT_ADDR_PER_BLOCK (EXT_CSUM_OFFSET / 4) /* 1023 */
#define EXT_MAX_FILE_BLOCKS (EXT_NDIR_BLOCKS + EXT_ADDR_PER_BLOCK)
#define EXT_INODE_SIZE 128u
#define EXT_INODES_PER_BLOCK (EXT_CSUM_OFFSET / EXT_INODE_SIZE) /* 31 */
#define EXT_BITS_PER_BITMAP (EXT_CSUM_OFFSET * 8)
#define EXT_ROOT_INO 2u
#define EXT_FIRST_INO 11u /* 1 .. 10 reserved, as in ext2 */
#define EXT_FAST_LINK_MAX (EXT_N_BLOCKS * 4 - 1)

#define EXT_SB_BLOCK 0u
#define EXT_BLOCK_BITMAP 1u
#define EXT_INODE_BITMAP 2u
#define EXT_INODE_TABLE 3u

struct ext_super_disk {
  u32 s_magic;
  u32 s_block_size;
  u32 s_blocks_count;
  u32 s_inodes_count;
  u32 s_free_blocks;
  u32 s_free_inodes;
  u32 s_inode_table_blocks;
  u32 s_first_data_block;
  u32 s_root_ino;
  u32 s_state;
  u64 s_mkfs_time; /* logical */
  char s_volume_name[16];
};

struct ext_inode_disk {
  u16 i_mode;
  u16 i_links;
  u32 i_uid;
  u32 i_gid;
  u32 i_flags;
  u64 i_size;
  u64 i_mtime;
  u32 i_blocks;                /* blocks in use, indirect block included */
  u32 i_block[EXT_N_BLOCKS];   /* or the target of a fast symlink */
  u8 i_pad[32];
};
_Static_assert(sizeof(struct ext_inode_disk) == EXT_INODE_SIZE, "ext inode size");

/* Directory entry record, 4-byte aligned; rec_len spans to the next one. */
struct ext_dirent {
  u32 inode; /* 0: unused record */
  u16 rec_len;
  u8 name_len;
  u8 file_type;
  char name[];
};
#define EXT_DIRENT_HEADER 8u
#define EXT_DIR_REC_LEN(name_len) (((name_len) + EXT_DIRENT_HEADER + 3u) & ~3u)
enum { EXT_FT_UNKNOWN = 0, EXT_FT_REG = 1, EXT_FT_DIR = 2, EXT_FT_SYMLINK = 7 };

/* In memory. */
struct ext_sb_info {
  struct block_device *bdev;
  struct ext_super_disk s;
  u8 *block_bitmap; /* copies of the bitmap blocks, written through */
  u8 *inode_bitmap;
  u32 block_goal;   /* next-fit allocation cursor */
  u64 csum_errors;
};

struct ext_inode {
  struct inode vfs;
  u32 i_block[EXT_N_BLOCKS];
  u32 i_nblocks;
};

static inline struct ext_sb_info *EXT_SB(struct super_block *sb) { return sb->s_fs_info; }
static inline struct ext_inode *EXT_I(struct inode *inode) { return container_of(inode, struct ext_inode, vfs); }

/* A metadata block read from the device into memory (a buffer head). */
struct ext_buf {
  u32 blocknr;
  u8 *data;
};

/* ext_balloc.c: metadata I/O, bitmaps, block maps. */
int ext_bread(struct super_block *sb, u32 block, struct ext_buf *bh);
int ext_bnew(struct super_block *sb, u32 block, struct ext_buf *bh); /* zeroed, not read */
int ext_bwrite(struct super_block *sb, struct ext_buf *bh);
void ext_brelse(struct ext_buf *bh);
void ext_set_csum(u32 block, u8 *data);
int ext_new_block(struct super_block *sb, u32 *block);
void ext_free_block(struct super_block *sb, u32 block);
int ext_new_ino(struct super_block *sb, u32 *ino);
void ext_free_ino(struct super_block *sb, u32 ino);
int ext_write_super(struct super_block *sb);
/* Device block of file block `index`; 0 for a hole unless `create`. */
int ext_bmap(struct inode *inode, u64 index, bool create, u32 *block);
/* Free the blocks behind file blocks `first` and beyond. */
void ext_truncate_blocks(struct inode *inode, u64 first);

/* ext_dir.c */
int ext_find_entry(struct inode *dir, const struct qstr *name, u32 *ino);
int ext_add_entry(struct inode *dir, const struct qstr *name, u32 ino, u8 file_type);
int ext_delete_entry(struct inode *dir, const struct qstr *name);
int ext_make_empty(struct inode *dir, u32 parent_ino);
extern const struct inode_operations ext_dir_iops;
extern const struct file_operations ext_dir_fops;

void ext_dir_init_block(u8 *data, u32 ino, u32 parent_ino);

/* extfs.c */
struct inode *ext_iget(struct super_block *sb, u32 ino); /* or ERR_PTR */
struct inode *ext_new_inode(struct inode *dir, u32 mode); /* or ERR_PTR */
int ext_write_inode(struct inode *inode);
int ext_getattr(struct dentry *dentry, struct kstat *st);
int ext_setattr(struct dentry *dentry, const struct iattr *attr);
int ext_store_symlink(struct inode *inode, const char *target);

#endif
