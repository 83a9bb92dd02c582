/*
 * @fileoverview Shadow variables (kjit_shadow.h): an open-addressing table
 * of KJIT_SHADOW_SLOTS slots keyed by (object, id), data inline in the slot.
 * Only the kernel thread touches it (patched kernel code, and the runtime
 * at quiescent points answering the host's "free the ids of a reverted
 * patch" requests), so it needs no locks; the host reads the counters.
 * Deleted slots become tombstones so probe chains stay intact; a table
 * whose tombstones fill it is rebuilt in place when an insert finds no
 * free slot.
 */
#include <stdint.h>
#include <string.h>

#include "kjit_rt.h"
#include "kjit_shadow.h"

enum { EMPTY = 0, USED = 1, DEAD = 2 };

struct slot {
  uint64_t obj, id, state, pad;
  _Alignas(16) uint8_t data[KJIT_SHADOW_MAX];
};

static struct slot table[KJIT_SHADOW_SLOTS];

#define STORE(f, v) __atomic_store_n(&kjit_cb.f[0], (v), __ATOMIC_RELAXED)

static uint64_t hash(uint64_t obj, uint64_t id) {
  uint64_t h = (obj ^ (id * 0x9e3779b97f4a7c15ull)) * 0xff51afd7ed558ccdull;
  return (h ^ (h >> 29)) % KJIT_SHADOW_SLOTS;
}

static struct slot *find(uint64_t obj, uint64_t id) {
  uint64_t h = hash(obj, id);
  for (uint64_t i = 0; i < KJIT_SHADOW_SLOTS; i++) {
    struct slot *s = &table[(h + i) % KJIT_SHADOW_SLOTS];
    if (s->state == EMPTY) return 0;
    if (s->state == USED && s->obj == obj && s->id == id) return s;
  }
  return 0;
}

void *kjit_shadow_get(const void *obj, uint64_t id) {
  struct slot *s = find((uint64_t)(uintptr_t)obj, id);
  return s ? s->data : 0;
}

static void release(struct slot *s) {
  s->state = DEAD;
  STORE(shadow_live, kjit_cb.shadow_live[0] - 1);
}

void *kjit_shadow_get_or_alloc(const void *obj, uint64_t id, uint64_t size) {
  uint64_t o = (uint64_t)(uintptr_t)obj;
  struct slot *s = find(o, id);
  if (s) return s->data;
  if (size > KJIT_SHADOW_MAX) {
    STORE(shadow_full, kjit_cb.shadow_full[0] + 1);
    return 0;
  }
  uint64_t h = hash(o, id);
  for (uint64_t i = 0; i < KJIT_SHADOW_SLOTS; i++) {
    s = &table[(h + i) % KJIT_SHADOW_SLOTS];
    if (s->state == USED) continue;
    s->obj = o;
    s->id = id;
    memset(s->data, 0, sizeof s->data);
    s->state = USED;
    STORE(shadow_live, kjit_cb.shadow_live[0] + 1);
    return s->data;
  }
  STORE(shadow_full, kjit_cb.shadow_full[0] + 1);
  return 0;
}

void kjit_shadow_free(const void *obj, uint64_t id) {
  struct slot *s = find((uint64_t)(uintptr_t)obj, id);
  if (s) release(s);
}

static void free_ids(uint64_t lo, uint64_t hi) {
  for (uint64_t i = 0; i < KJIT_SHADOW_SLOTS; i++) {
    if (table[i].state == USED && table[i].id >= lo && table[i].id < hi) release(&table[i]);
  }
}

void kjit_shadow_free_all(uint64_t id) { free_ids(id, id + 1); }

/* At a quiescent point: free the ids the host named (a reverted patch's). */
void kjit_shadow_poll(void) {
  uint64_t req = __atomic_load_n(&kjit_cb.shadow_free_request[0], __ATOMIC_ACQUIRE);
  if (req == kjit_cb.shadow_free_done[0]) return;
  free_ids(kjit_cb.shadow_free_lo[0], kjit_cb.shadow_free_hi[0]);
  __atomic_store_n(&kjit_cb.shadow_free_done[0], req, __ATOMIC_RELEASE);
}

/* The host's path when the kernel thread is not running. */
void kjit_shadow_free_range(uint64_t lo, uint64_t hi) { free_ids(lo, hi); }
