/*
 * @fileoverview kmalloc: power-of-two size classes from 16 bytes to one page
 * served by slab caches; anything larger comes straight from the page
 * allocator, its order remembered in the head page's descriptor.
 */
#include <kernel/lib.h>

#include "mm_internal.h"

#define KMALLOC_MIN_SHIFT 4
#define KMALLOC_MAX_SHIFT 12
static struct kmem_cache *kmalloc_caches[KMALLOC_MAX_SHIFT + 1];
static const char *const kmalloc_names[KMALLOC_MAX_SHIFT + 1] = {
    [4] = "kmalloc-16",  [5] = "kmalloc-32",   [6] = "kmalloc-64",   [7] = "kmalloc-128", [8] = "kmalloc-256",
    [9] = "kmalloc-512", [10] = "kmalloc-1k", [11] = "kmalloc-2k", [12] = "kmalloc-4k"};

static unsigned size_shift(size_t size) {
  unsigned s = KMALLOC_MIN_SHIFT;
  while ((1ul << s) < size) s++;
  return s;
}

static struct kmem_cache *cache_for(unsigned shift) {
  struct kmem_cache *c = kmalloc_caches[shift];
  if (unlikely(!c)) {
    c = kmem_cache_create(kmalloc_names[shift], 1ul << shift, 1ul << (shift < 6 ? shift : 6));
    kmalloc_caches[shift] = c;
  }
  return c;
}

void *kmalloc(size_t size) {
  if (size == 0) size = 1;
  unsigned shift = size_shift(size);
  if (shift <= KMALLOC_MAX_SHIFT) return kmem_cache_alloc(cache_for(shift));
  unsigned order = shift - PAGE_SHIFT;
  void *p = alloc_pages(order);
  if (p) {
    struct page *pg = virt_to_page(p);
    pg->flags = PG_LARGE;
    pg->order = (u8)order;
  }
  return p;
}

void *kzalloc(size_t size) {
  void *p = kmalloc(size);
  if (p) memset(p, 0, size);
  return p;
}

void kfree(void *p) {
  if (!p) return;
  struct page *pg = virt_to_page(p);
  if (pg->flags & PG_LARGE) {
    unsigned order = pg->order;
    pg->flags = 0;
    free_pages(p, order);
    return;
  }
  BUG_ON(!(pg->flags & PG_SLAB));
  kmem_cache_free(pg->slab_head->cache, p);
}
