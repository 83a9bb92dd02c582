/*
 * @fileoverview Slab caches: objects of one size carved from page blocks,
 * with a free list threaded through the free objects.  Slabs with free
 * objects sit on the cache's partial list; full slabs are off-list; an empty
 * slab beyond the first is returned to the page allocator.
 *
 * vm.slab_debug (fixed at boot, folded by kjit in boot mode):
 *   1: freed objects are filled with POISON_FREE, and the poison is checked
 *      when the object is handed out again (catches writes after free);
 *   2: additionally every object sits between two red zones checked on free
 *      (catches overruns).
 * Both cost real work on every allocation and free when on.
 */
#include <kernel/lib.h>
#include <kernel/sysctl.h>

#include "mm_internal.h"

#define POISON_FREE 0x6b
#define REDZONE_BYTE 0xbb
#define REDZONE 16
#define MAX_CACHES 48
#define SLAB_MIN_OBJECTS 8

struct kmem_cache {
  const char *name;
  size_t object_size; /* what callers asked for */
  size_t stride;      /* with red zones and alignment */
  size_t offset;      /* object start within its stride (after the red zone) */
  unsigned order;     /* pages per slab: 2^order */
  unsigned per_slab;
  int debug;          /* vm.slab_debug when the cache was created */
  struct list_head partial;
  u64 inuse, total;
};

static struct kmem_cache caches[MAX_CACHES];
static unsigned ncaches;

struct kmem_cache *kmem_cache_create(const char *name, size_t size, size_t align) {
  if (ncaches == MAX_CACHES) panic("kmem_cache_create(%s): too many caches", name);
  if (align < 8) align = 8;
  struct kmem_cache *c = &caches[ncaches++];
  c->name = name;
  c->object_size = size;
  c->debug = (int)sysctl_vm_slab_debug;
  size_t body = ALIGN_UP(size < sizeof(void *) ? sizeof(void *) : size, align);
  c->offset = c->debug >= 2 ? ALIGN_UP((size_t)REDZONE, align) : 0;
  c->stride = ALIGN_UP(c->offset + body + (c->debug >= 2 ? REDZONE : 0), align);
  c->order = 0;
  while ((PAGE_SIZE << c->order) / c->stride < SLAB_MIN_OBJECTS && c->order < 4) c->order++;
  c->per_slab = (unsigned)((PAGE_SIZE << c->order) / c->stride);
  INIT_LIST_HEAD(&c->partial);
  return c;
}

static void *obj_at(struct page *slab, struct kmem_cache *c, unsigned i) {
  return (u8 *)page_to_virt(slab) + (size_t)i * c->stride + c->offset;
}

static bool new_slab(struct kmem_cache *c) {
  u8 *mem = alloc_pages(c->order);
  if (!mem) return false;
  struct page *head = virt_to_page(mem);
  for (unsigned i = 0; i < (1u << c->order); i++) {
    head[i].flags = PG_SLAB;
    head[i].slab_head = head;
  }
  head->cache = c;
  head->inuse = 0;
  head->freelist = NULL;
  /* Thread the free list back to front so objects go out in address order. */
  for (unsigned i = c->per_slab; i-- > 0;) {
    void *obj = obj_at(head, c, i);
    if (c->debug >= 2) {
      memset((u8 *)obj - c->offset, REDZONE_BYTE, c->offset);
      memset((u8 *)obj + c->object_size, REDZONE_BYTE,
             c->stride - c->offset - c->object_size);
    }
    if (c->debug >= 1) memset(obj, POISON_FREE, c->object_size);
    *(void **)obj = head->freelist;
    head->freelist = obj;
  }
  list_add(&head->lru, &c->partial);
  c->total += c->per_slab;
  return true;
}

static void check_poison(struct kmem_cache *c, const u8 *obj) {
  /* The first word held the free-list link. */
  for (size_t i = sizeof(void *); i < c->object_size; i++)
    if (obj[i] != POISON_FREE)
      panic("slab %s: object %p modified after free (byte %lu)", c->name, (void *)obj,
            (unsigned long)i);
}

static void check_redzones(struct kmem_cache *c, const u8 *obj) {
  for (size_t i = 1; i <= c->offset; i++)
    if (obj[-(long)i] != REDZONE_BYTE) panic("slab %s: red zone before %p overwritten", c->name, (void *)obj);
  size_t tail = c->stride - c->offset - c->object_size;
  for (size_t i = 0; i < tail; i++)
    if (obj[c->object_size + i] != REDZONE_BYTE)
      panic("slab %s: red zone after %p overwritten", c->name, (void *)obj);
}

void *kmem_cache_alloc(struct kmem_cache *c) {
  if (list_empty(&c->partial) && !new_slab(c)) return NULL;
  struct page *slab = list_first_entry(&c->partial, struct page, lru);
  void *obj = slab->freelist;
  slab->freelist = *(void **)obj;
  if (++slab->inuse == c->per_slab) list_del(&slab->lru); /* full: off the partial list */
  c->inuse++;
  if (unlikely(sysctl_vm_slab_debug)) {
    if (c->debug >= 1) check_poison(c, obj);
  }
  return obj;
}

void *kmem_cache_zalloc(struct kmem_cache *c) {
  void *obj = kmem_cache_alloc(c);
  if (obj) memset(obj, 0, c->object_size);
  return obj;
}

void kmem_cache_free(struct kmem_cache *c, void *obj) {
  if (!obj) return;
  struct page *slab = virt_to_page(obj)->slab_head;
  if (unlikely(slab->cache != c)) panic("kmem_cache_free(%s): %p belongs to another cache", c->name, obj);
  if (unlikely(sysctl_vm_slab_debug)) {
    if (c->debug >= 2) check_redzones(c, obj);
    if (c->debug >= 1) memset(obj, POISON_FREE, c->object_size);
  }
  bool was_full = slab->inuse == c->per_slab;
  *(void **)obj = slab->freelist;
  slab->freelist = obj;
  slab->inuse--;
  c->inuse--;
  if (was_full) list_add(&slab->lru, &c->partial);
  /* Keep one empty slab per cache; give the rest back. */
  if (slab->inuse == 0 && c->partial.next != &slab->lru) {
    list_del(&slab->lru);
    c->total -= c->per_slab;
    struct page *head = slab;
    for (unsigned i = 0; i < (1u << c->order); i++) head[i].flags = 0;
    free_pages(page_to_virt(head), c->order);
  }
}

int kmem_cache_stats(unsigned index, const char **name, u64 *inuse, u64 *total, u64 *objsize) {
  if (index >= ncaches) return -1;
  *name = caches[index].name;
  *inuse = caches[index].inuse;
  *total = caches[index].total;
  *objsize = caches[index].object_size;
  return 0;
}
