/*
 * @fileoverview Superblocks and the file systems' bring-up: sget() creates
 * the superblock of a new mount and lets the file system type fill it in;
 * fs_init() builds the VFS caches, mounts tmpfs on /, formats the RAM disk
 * and mounts the ext-like file system on /data, mounts procfs on /proc,
 * populates the trees the workloads use and registers the system calls.
 */
#include <kernel/fs.h>

#include "blockdev.h"
#include "vfs.h"

#define EXT_DEV_BLOCKS 2048      /* 8 MiB RAM disk */
#define EXT_INODE_TABLE_BLOCKS 32 /* 31 inodes per block: 992 inodes */

static u64 next_dev = 1;

struct super_block *sget(const struct file_system_type *type, const char *id, void *data) {
  struct super_block *sb = kzalloc(sizeof(*sb));
  if (!sb) return ERR_PTR(-ENOMEM);
  sb->s_dev = next_dev++;
  sb->s_id = id;
  sb->s_type = type;
  sb->s_next_ino = 1;
  int err = type->fill_super(sb, data);
  if (err) {
    kfree(sb);
    return ERR_PTR(err);
  }
  BUG_ON(!sb->s_root);
  return sb;
}

static void must(int err, const char *what) {
  if (err) panic("fs_init: %s: error %d", what, err);
}

/* The directory skeleton of the root file system (as an initramfs would
 * carry it): mount points and the world-writable /tmp. */
static void make_skeleton(void) {
  must(do_mkdirat(AT_FDCWD, "/data", 0755), "mkdir /data");
  must(do_mkdirat(AT_FDCWD, "/proc", 0555), "mkdir /proc");
  must(do_mkdirat(AT_FDCWD, "/tmp", 01777), "mkdir /tmp");
  must(do_mkdirat(AT_FDCWD, "/srv", 0755), "mkdir /srv");
}

static void mount_data(void) {
  struct block_device *bdev = ramdisk_create("ram0", EXT_DEV_BLOCKS);
  if (!bdev) panic("fs_init: no memory for the RAM disk");
  must(ext_mkfs(bdev, EXT_INODE_TABLE_BLOCKS), "mkfs ram0");
  must(do_mount(&ext_fs_type, "/dev/ram0", "/data", bdev), "mount /data");
}

void fs_init(void) {
  files_init();
  inode_cache_init();
  dcache_init();
  pagecache_init();
  mnt_init();

  must(mount_root(&tmpfs_fs_type, "rootfs", NULL), "mount /");
  make_skeleton();
  mount_data();
  must(do_mount(&proc_fs_type, "proc", "/proc", NULL), "mount /proc");

  fs_populate();

  read_write_syscalls_init();
  open_syscalls_init();
  stat_syscalls_init();
  namei_syscalls_init();
  select_syscalls_init();

  u64 lookups, hits, dentries, pages, phits, pmisses;
  dcache_stats(&lookups, &hits, &dentries);
  pagecache_stats(&pages, &phits, &pmisses);
  printk("fs: tmpfs on /, ext on /data (%u blocks), proc on /proc; %lu dentries, %lu cached pages",
         EXT_DEV_BLOCKS, (unsigned long)dentries, (unsigned long)pages);
}
