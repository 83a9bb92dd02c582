/*
 * @fileoverview The page allocator: a binary buddy system over the arena the
 * machine gives the kernel.  Free blocks of 2^order pages sit on per-order
 * lists; allocation splits a larger block, freeing merges a block with its
 * buddy (the block whose index differs only in bit `order`) while the buddy
 * is free and of the same order.
 */
#include <kernel/lib.h>
#include <kernel/sysctl.h>

#include "mm_internal.h"

static struct {
  u8 *base;       /* first page handed out (after the descriptors) */
  u64 npages;
  struct page *pages;
  struct list_head free[MAX_ORDER];
  u64 nfree;
} zone;

struct page *virt_to_page(const void *addr) {
  u64 idx = (u64)((const u8 *)addr - zone.base) >> PAGE_SHIFT;
  BUG_ON(idx >= zone.npages);
  return &zone.pages[idx];
}

void *page_to_virt(const struct page *p) { return zone.base + ((u64)(p - zone.pages) << PAGE_SHIFT); }

static u64 page_index(const struct page *p) { return (u64)(p - zone.pages); }

static void free_list_add(struct page *p, unsigned order) {
  p->flags = PG_FREE;
  p->order = (u8)order;
  list_add(&p->lru, &zone.free[order]);
}

static void free_list_del(struct page *p) {
  list_del(&p->lru);
  p->flags = 0;
}

void mm_init(void *arena, u64 bytes) {
  u8 *start = (u8 *)ALIGN_UP((u64)(uintptr_t)arena, PAGE_SIZE);
  u64 usable = bytes - (u64)(start - (u8 *)arena);
  /* The descriptors live at the start of the arena; the pages after them. */
  u64 total = usable >> PAGE_SHIFT;
  u64 desc_pages = (total * sizeof(struct page) + PAGE_SIZE - 1) >> PAGE_SHIFT;
  if (total <= desc_pages + 64) panic("mm_init: arena of %lu bytes is too small", (unsigned long)bytes);
  zone.pages = (struct page *)start;
  zone.npages = total - desc_pages;
  zone.base = start + (desc_pages << PAGE_SHIFT);
  for (unsigned o = 0; o < MAX_ORDER; o++) INIT_LIST_HEAD(&zone.free[o]);
  for (u64 i = 0; i < zone.npages; i++) {
    zone.pages[i].flags = 0;
    INIT_LIST_HEAD(&zone.pages[i].lru);
  }
  /* Carve the pages into the largest aligned blocks that fit. */
  u64 i = 0;
  while (i < zone.npages) {
    unsigned order = MAX_ORDER - 1;
    while (order && ((i & ((1ull << order) - 1)) || i + (1ull << order) > zone.npages)) order--;
    free_list_add(&zone.pages[i], order);
    i += 1ull << order;
  }
  zone.nfree = zone.npages;
  printk("mm: %lu pages (%lu MiB) for the page allocator, %lu pages of descriptors",
         (unsigned long)zone.npages, (unsigned long)(zone.npages >> 8), (unsigned long)desc_pages);
}

void *alloc_pages(unsigned order) {
  if (order >= MAX_ORDER) return NULL;
  unsigned o = order;
  while (o < MAX_ORDER && list_empty(&zone.free[o])) o++;
  if (o == MAX_ORDER) return NULL;
  struct page *p = list_first_entry(&zone.free[o], struct page, lru);
  free_list_del(p);
  /* Split: the upper halves go back on the lower lists. */
  while (o > order) {
    o--;
    free_list_add(p + (1ull << o), o);
  }
  p->order = (u8)order;
  zone.nfree -= 1ull << order;
  void *addr = page_to_virt(p);
  if (unlikely(READ_ONCE(sysctl_vm_zero_pages))) memset(addr, 0, PAGE_SIZE << order);
  return addr;
}

void free_pages(void *addr, unsigned order) {
  if (!addr) return;
  struct page *p = virt_to_page(addr);
  BUG_ON(p->flags & PG_FREE);
  zone.nfree += 1ull << order;
  u64 idx = page_index(p);
  while (order < MAX_ORDER - 1) {
    u64 buddy_idx = idx ^ (1ull << order);
    if (buddy_idx + (1ull << order) > zone.npages) break;
    struct page *buddy = &zone.pages[buddy_idx];
    if (!(buddy->flags & PG_FREE) || buddy->order != order) break;
    free_list_del(buddy);
    idx &= ~(1ull << order);
    order++;
  }
  free_list_add(&zone.pages[idx], order);
}

u64 mm_free_pages(void) { return zone.nfree; }
u64 mm_total_pages(void) { return zone.npages; }
