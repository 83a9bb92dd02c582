/*
 * @fileoverview Page descriptors shared by the page allocator and the slab
 * allocator (one per page of the arena, like Linux's struct page).
 */
#ifndef MM_INTERNAL_H
#define MM_INTERNAL_H

#include <kernel/mm.h>

#define PG_FREE 0x1  /* head of a free buddy block */
#define PG_SLAB 0x2  /* belongs to a slab (see slab_head) */
#define PG_LARGE 0x4 /* head of a kmalloc allocation beyond the size classes */

struct kmem_cache;

struct page {
  u32 flags;
  u8 order; /* of the free block or allocation this page heads */
  struct list_head lru; /* buddy free list or the cache's slab lists */
  /* slab pages */
  struct page *slab_head; /* first page of the slab */
  struct kmem_cache *cache;
  void *freelist;
  u32 inuse;
};

struct page *virt_to_page(const void *addr);
void *page_to_virt(const struct page *p);

#endif
