/*
 * @fileoverview Socket-buffer allocation: descriptors from their own slab
 * cache (every packet allocates one, so the cache's debug options cost per
 * packet), data from kmalloc's size classes.
 */
#include <kernel/mm.h>

#include "net_priv.h"

static struct kmem_cache *skbuff_head_cache;
static u64 skb_live;

void skb_init(void) { skbuff_head_cache = kmem_cache_create("skbuff_head", sizeof(struct sk_buff), 8); }

struct sk_buff *alloc_skb(u32 size) {
  struct sk_buff *skb = kmem_cache_alloc(skbuff_head_cache);
  if (unlikely(!skb)) return NULL;
  u8 *data = kmalloc(size);
  if (unlikely(!data)) {
    kmem_cache_free(skbuff_head_cache, skb);
    return NULL;
  }
  /* Only the descriptor is cleared: the data is written before it is read. */
  memset(skb, 0, sizeof(*skb));
  INIT_LIST_HEAD(&skb->list);
  skb->head = skb->data = data;
  skb->size = size;
  skb_live++;
  return skb;
}

struct sk_buff *alloc_skb_tx(u32 payload) {
  struct sk_buff *skb = alloc_skb(MAX_HEADER + payload);
  if (likely(skb)) skb_reserve(skb, MAX_HEADER);
  return skb;
}

void kfree_skb(struct sk_buff *skb) {
  if (!skb) return;
  kfree(skb->head);
  kmem_cache_free(skbuff_head_cache, skb);
  skb_live--;
}

u64 skb_in_use(void) { return skb_live; }
