/*
 * @fileoverview Block devices as the ext-like file system sees them: fixed
 * size blocks read and written whole through the driver's operations table.
 * The only driver is a RAM disk (blockdev.c).
 */
#ifndef FS_BLOCKDEV_H
#define FS_BLOCKDEV_H

#include <kernel/types.h>

struct block_device;

struct block_device_operations {
  int (*read_block)(struct block_device *bdev, u32 block, void *dst);
  int (*write_block)(struct block_device *bdev, u32 block, const void *src);
};

struct block_device {
  const char *name;
  u32 block_size;
  u32 nblocks;
  const struct block_device_operations *ops;
  void *private_data; /* the driver's */
  u64 reads, writes;
};

static inline int bdev_read_block(struct block_device *bdev, u32 block, void *dst) {
  return bdev->ops->read_block(bdev, block, dst);
}
static inline int bdev_write_block(struct block_device *bdev, u32 block, const void *src) {
  return bdev->ops->write_block(bdev, block, src);
}

/* A RAM disk of nblocks blocks of PAGE_SIZE bytes, zero-filled. */
struct block_device *ramdisk_create(const char *name, u32 nblocks);
/* The memory behind a block (tests and fault injection only). */
void *ramdisk_block_ptr(struct block_device *bdev, u32 block);

#endif
