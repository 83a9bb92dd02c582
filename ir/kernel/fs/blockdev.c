/*
 * @fileoverview The RAM disk: the in-memory block device under the ext-like
 * file system.  Its blocks are page-allocator memory taken in chunks of
 * 2^RD_CHUNK_ORDER pages; a block number selects a chunk and a page in it.
 * Reads and writes copy whole blocks with kmemcpy, as a DMA engine would
 * move them between the device and memory.
 */
#include <kernel/lib.h>
#include <kernel/mm.h>

#include "blockdev.h"

#define RD_CHUNK_ORDER 8 /* 1 MiB chunks */
#define RD_BLOCKS_PER_CHUNK (1u << RD_CHUNK_ORDER)

struct ramdisk {
  u32 nchunks;
  u8 **chunks;
};

void *ramdisk_block_ptr(struct block_device *bdev, u32 block) {
  struct ramdisk *rd = bdev->private_data;
  return rd->chunks[block / RD_BLOCKS_PER_CHUNK] + (size_t)(block % RD_BLOCKS_PER_CHUNK) * PAGE_SIZE;
}

static int ramdisk_read_block(struct block_device *bdev, u32 block, void *dst) {
  if (unlikely(block >= bdev->nblocks)) return -EIO;
  kmemcpy(dst, ramdisk_block_ptr(bdev, block), PAGE_SIZE);
  bdev->reads++;
  return 0;
}

static int ramdisk_write_block(struct block_device *bdev, u32 block, const void *src) {
  if (unlikely(block >= bdev->nblocks)) return -EIO;
  kmemcpy(ramdisk_block_ptr(bdev, block), src, PAGE_SIZE);
  bdev->writes++;
  return 0;
}

static const struct block_device_operations ramdisk_ops = {
    .read_block = ramdisk_read_block,
    .write_block = ramdisk_write_block,
};

struct block_device *ramdisk_create(const char *name, u32 nblocks) {
  struct block_device *bdev = kzalloc(sizeof(*bdev));
  struct ramdisk *rd = kzalloc(sizeof(*rd));
  if (!bdev || !rd) return NULL;
  rd->nchunks = (nblocks + RD_BLOCKS_PER_CHUNK - 1) / RD_BLOCKS_PER_CHUNK;
  rd->chunks = kzalloc(sizeof(u8 *) * rd->nchunks);
  if (!rd->chunks) return NULL;
  for (u32 c = 0; c < rd->nchunks; c++) {
    rd->chunks[c] = alloc_pages(RD_CHUNK_ORDER);
    if (!rd->chunks[c]) return NULL;
    memset(rd->chunks[c], 0, PAGE_SIZE << RD_CHUNK_ORDER);
  }
  bdev->name = name;
  bdev->block_size = PAGE_SIZE;
  bdev->nblocks = nblocks;
  bdev->ops = &ramdisk_ops;
  bdev->private_data = rd;
  return bdev;
}
