/*
 * @fileoverview Socket buffers: a slab-allocated descriptor (struct sk_buff)
 * over a kmalloc'd data buffer with headroom for the headers each layer
 * pushes on the way down, and offsets of the headers each layer parsed on
 * the way up.
 */
#ifndef NET_SKBUFF_H
#define NET_SKBUFF_H

#include <kernel/lib.h>
#include <kernel/types.h>

struct net_device;

/* Room in front of payload for Ethernet + IPv4 (with options) + TCP (with
 * options) + the virtqueue NIC's header: every transmitted skb reserves it. */
#define MAX_HEADER 128
/* Receive buffers start this far into their allocation so that the IP
 * header behind the 14-byte Ethernet header is 4-byte aligned. */
#define NET_IP_ALIGN 2

/* What ip_rcv learned, kept for the layers above (Linux's IPCB). */
struct ip_cb {
  u8 optlen;
  u8 router_alert;
  u8 rr_offset, ts_offset;
};

struct sk_buff {
  struct list_head list; /* the qdisc while waiting for a transmit descriptor */
  u8 *head;              /* start of the buffer */
  u8 *data;              /* start of the bytes of the current layer */
  u32 len;               /* bytes from data */
  u32 size;              /* of the buffer */
  u16 mac_off, network_off, transport_off; /* from head */
  u8 protocol;           /* IP protocol (receive) */
  struct ip_cb ipcb;
  struct net_device *dev;
};

void skb_init(void);
struct sk_buff *alloc_skb(u32 size);
/* Buffer for an outgoing packet with `payload` bytes after MAX_HEADER. */
struct sk_buff *alloc_skb_tx(u32 payload);
void kfree_skb(struct sk_buff *skb);
u64 skb_in_use(void);

static inline u32 skb_headroom(const struct sk_buff *skb) { return (u32)(skb->data - skb->head); }
static inline u32 skb_tailroom(const struct sk_buff *skb) { return skb->size - skb_headroom(skb) - skb->len; }
static inline u8 *skb_tail(const struct sk_buff *skb) { return skb->data + skb->len; }

static inline void skb_reserve(struct sk_buff *skb, u32 n) { skb->data += n; }

static inline void *skb_put(struct sk_buff *skb, u32 n) {
  BUG_ON(n > skb_tailroom(skb));
  u8 *tail = skb_tail(skb);
  skb->len += n;
  return tail;
}

static inline void *skb_push(struct sk_buff *skb, u32 n) {
  BUG_ON(n > skb_headroom(skb));
  skb->data -= n;
  skb->len += n;
  return skb->data;
}

static inline void *skb_pull(struct sk_buff *skb, u32 n) {
  if (unlikely(n > skb->len)) return NULL;
  skb->data += n;
  skb->len -= n;
  return skb->data;
}

/* Are at least n bytes of the current layer present? (Linux's
 * pskb_may_pull: the buffer is linear here, so no pulling is needed.) */
static inline bool skb_may_pull(const struct sk_buff *skb, u32 n) { return skb->len >= n; }

static inline void skb_trim(struct sk_buff *skb, u32 len) {
  if (len < skb->len) skb->len = len;
}

static inline void skb_reset_mac_header(struct sk_buff *skb) { skb->mac_off = (u16)skb_headroom(skb); }
static inline void skb_reset_network_header(struct sk_buff *skb) { skb->network_off = (u16)skb_headroom(skb); }
static inline void skb_reset_transport_header(struct sk_buff *skb) { skb->transport_off = (u16)skb_headroom(skb); }
static inline u8 *skb_mac_header(const struct sk_buff *skb) { return skb->head + skb->mac_off; }
static inline u8 *skb_network_header(const struct sk_buff *skb) { return skb->head + skb->network_off; }
static inline u8 *skb_transport_header(const struct sk_buff *skb) { return skb->head + skb->transport_off; }

#endif
