/*
 * @fileoverview Memory: a buddy page allocator over the arena the machine
 * gives the kernel, slab caches on top of it, and kmalloc size classes.
 * vm.slab_debug (boot) turns on poisoning of freed objects and red zones
 * checked on free: real work on every allocation when on.
 */
#ifndef KERNEL_MM_H
#define KERNEL_MM_H

#include <kernel/types.h>

#define PAGE_SHIFT 12
#define PAGE_SIZE (1ul << PAGE_SHIFT)
#define MAX_ORDER 11 /* blocks of 1 .. 1024 pages */

void mm_init(void *arena, u64 bytes);
/* 2^order contiguous pages, PAGE_SIZE aligned, or NULL. */
void *alloc_pages(unsigned order);
void free_pages(void *addr, unsigned order);
static inline void *alloc_page(void) { return alloc_pages(0); }
static inline void free_page(void *p) { free_pages(p, 0); }
u64 mm_free_pages(void);
u64 mm_total_pages(void);

/* Memory pressure on demand (vm.pressure_mb): take or give back blocks
 * toward the sysctl's value.  Called at the allocator's pressure checks
 * (mm/grant.c).  Returns the bytes held. */
u64 mm_pressure_step(void);

struct kmem_cache;
struct kmem_cache *kmem_cache_create(const char *name, size_t size, size_t align);
void *kmem_cache_alloc(struct kmem_cache *c);
void *kmem_cache_zalloc(struct kmem_cache *c);
void kmem_cache_free(struct kmem_cache *c, void *obj);
/* For /proc: name, objects in use, total objects, object size. */
int kmem_cache_stats(unsigned index, const char **name, u64 *inuse, u64 *total, u64 *objsize);

/* Size classes 16 .. 4096 bytes from slab caches, larger from pages. */
void *kmalloc(size_t size);
void *kzalloc(size_t size);
void kfree(void *p);

#endif
