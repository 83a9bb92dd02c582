/*
 * @fileoverview Shadow variables for live patches (as Linux livepatch's
 * klp_shadow_*): a fix that needs a new field in a live structure keeps it
 * beside the object instead, in a side table keyed by (object, id), so no
 * structure changes layout while the kernel runs.
 *
 *   static char conn_key;   // its address is the id: the variables go with the patch
 *   struct extra { uint64_t retries; };
 *   struct extra *x = kjit_shadow_get_or_alloc(sk, KJIT_SHADOW_ID(&conn_key), sizeof *x);
 *   if (x) x->retries++;
 *
 * An id that is the address of one of the patch's own variables is freed
 * for every object when the patch is reverted (kjit frees the ids inside the
 * patch's state unit); any other id lives until kjit_shadow_free or
 * kjit_shadow_free_all.  Data is zeroed on allocation, at most
 * KJIT_SHADOW_MAX bytes, 16-byte aligned.  Only kernel code (the kernel
 * thread) may call these; they do not block and never allocate from the
 * kernel's own allocators.
 */
#ifndef KJIT_SHADOW_H
#define KJIT_SHADOW_H

#include <stdint.h>

#define KJIT_SHADOW_MAX 48   /* bytes of data per variable */
#define KJIT_SHADOW_SLOTS 4096

#define KJIT_SHADOW_ID(p) ((uint64_t)(uintptr_t)(p))

/* The variable `id` of `obj`, or NULL. */
void *kjit_shadow_get(const void *obj, uint64_t id);
/* The variable, allocated (zeroed) if it does not exist yet; NULL if `size`
 * is over KJIT_SHADOW_MAX or the table is full (counted in shadow_full). */
void *kjit_shadow_get_or_alloc(const void *obj, uint64_t id, uint64_t size);
/* Free one variable (nothing if it does not exist). */
void kjit_shadow_free(const void *obj, uint64_t id);
/* Free variable `id` of every object. */
void kjit_shadow_free_all(uint64_t id);

#endif
