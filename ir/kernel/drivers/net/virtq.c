/*
 * @fileoverview Driver for the virtqueue NIC (virtio-net-like, 1af4:1000).
 * Two split virtqueues: receive offers empty skbs as device-writable
 * buffers, transmit offers frames with the virtio_net_hdr pushed into their
 * headroom (one descriptor per frame: the device accepts any layout).  Each
 * descriptor head carries its skb as the "token" returned by the used ring.
 *
 * Only virtq_netdev_ops is visible outside this file: kjit removes the
 * whole driver when this device is absent by emptying that table.
 */
#include <kernel/lib.h>
#include <kernel/mm.h>

#include "../../hw/nic_hw.h"
#include "../../hw/nic_virtq_regs.h"
#include "../../net/skbuff.h"
#include "netdev.h"

#define VIRTQ_RX_BUF_SIZE 2048 /* header + the longest frame */

struct vq {
  struct vring_desc *desc;
  struct vring_avail *avail;
  struct vring_used *used;
  u16 size;
  u16 free_head; /* free descriptors are chained through .next */
  u16 num_free;
  u16 last_used; /* our progress through the used ring */
  struct sk_buff *token[VQ_SIZE];
};

struct virtq_priv {
  struct virtq_regs *regs;
  struct vq q[VQ_NUM];
};

static struct virtq_priv *virtq_priv(struct net_device *dev) { return dev->priv; }

static int vq_setup(struct virtq_priv *p, int qi) {
  struct vq *q = &p->q[qi];
  u8 *mem = alloc_pages(1);
  if (!mem) return -ENOMEM;
  memset(mem, 0, 2 * PAGE_SIZE);
  q->size = VQ_SIZE;
  q->desc = (struct vring_desc *)mem;
  q->avail = (struct vring_avail *)(mem + VQ_SIZE * sizeof(struct vring_desc));
  q->used = (struct vring_used *)ALIGN_UP((uintptr_t)(q->avail + 1), 64);
  for (u16 i = 0; i < VQ_SIZE; i++) q->desc[i].next = (u16)(i + 1);
  q->free_head = 0;
  q->num_free = VQ_SIZE;
  struct virtq_queue_regs *qr = &p->regs->queue[qi];
  qr->size = VQ_SIZE;
  qr->desc = (u64)(uintptr_t)q->desc;
  qr->avail = (u64)(uintptr_t)q->avail;
  qr->used = (u64)(uintptr_t)q->used;
  qr->ready = 1;
  return 0;
}

/* Offer one buffer; false when the queue has no free descriptor. */
static bool vq_add(struct vq *q, void *buf, u32 len, u16 flags, struct sk_buff *token) {
  if (q->num_free == 0) return false;
  u16 head = q->free_head;
  struct vring_desc *d = &q->desc[head];
  q->free_head = d->next;
  q->num_free--;
  d->addr = (u64)(uintptr_t)buf;
  d->len = len;
  d->flags = flags;
  q->token[head] = token;
  u16 idx = q->avail->idx;
  q->avail->ring[idx % q->size] = head;
  WRITE_ONCE(q->avail->idx, (u16)(idx + 1)); /* the entry before the index */
  return true;
}

static void vq_kick(struct virtq_priv *p, int qi) { hw_writel(&p->regs->notify[qi], hw_readl(&p->regs->notify[qi]) + 1); }

static bool vq_has_used(const struct vq *q) { return q->last_used != READ_ONCE(q->used->idx); }

/* Next buffer the device returned, its descriptor back on the free list. */
static struct sk_buff *vq_get_used(struct vq *q, u32 *len) {
  if (!vq_has_used(q)) return NULL;
  struct vring_used_elem e = q->used->ring[q->last_used % q->size];
  q->last_used++;
  u16 id = (u16)e.id;
  struct sk_buff *skb = q->token[id];
  q->token[id] = NULL;
  q->desc[id].next = q->free_head;
  q->free_head = id;
  q->num_free++;
  *len = e.len;
  return skb;
}

static u32 virtq_refill(struct net_device *dev) {
  struct virtq_priv *p = virtq_priv(dev);
  struct vq *rx = &p->q[VQ_RX];
  u32 added = 0;
  while (rx->num_free) {
    struct sk_buff *skb = alloc_skb(VIRTQ_RX_BUF_SIZE);
    if (unlikely(!skb)) break;
    /* 2 + the 12-byte header + Ethernet: the IP header lands aligned. */
    skb_reserve(skb, NET_IP_ALIGN);
    vq_add(rx, skb->data, VIRTQ_RX_BUF_SIZE - NET_IP_ALIGN, VRING_DESC_F_WRITE, skb);
    added++;
  }
  if (added) vq_kick(p, VQ_RX);
  return added;
}

static u32 virtq_poll(struct net_device *dev, u32 budget) {
  struct vq *rx = &virtq_priv(dev)->q[VQ_RX];
  const u32 hlen = sizeof(struct virtio_net_hdr);
  u32 done = 0;
  while (done < budget) {
    u32 len;
    struct sk_buff *skb = vq_get_used(rx, &len);
    if (!skb) break;
    done++;
    if (unlikely(len <= hlen)) {
      dev->rx_errors++;
      kfree_skb(skb);
      continue;
    }
    skb_put(skb, len);
    skb_pull(skb, hlen);
    dev->rx_packets++;
    dev->rx_bytes += skb->len;
    netif_receive_skb(dev, skb);
  }
  return done;
}

static int virtq_xmit(struct net_device *dev, struct sk_buff *skb) {
  struct virtq_priv *p = virtq_priv(dev);
  struct virtio_net_hdr *h = skb_push(skb, sizeof(*h));
  memset(h, 0, sizeof(*h));
  h->gso_type = VIRTIO_NET_HDR_GSO_NONE;
  if (!vq_add(&p->q[VQ_TX], skb->data, skb->len, 0, skb)) {
    skb_pull(skb, sizeof(*h)); /* BUSY: hand it back as it came */
    return NETDEV_TX_BUSY;
  }
  vq_kick(p, VQ_TX);
  dev->tx_packets++;
  dev->tx_bytes += skb->len - sizeof(*h);
  return NETDEV_TX_OK;
}

static u32 virtq_tx_clean(struct net_device *dev) {
  struct vq *tx = &virtq_priv(dev)->q[VQ_TX];
  u32 cleaned = 0, len;
  struct sk_buff *skb;
  while ((skb = vq_get_used(tx, &len))) {
    kfree_skb(skb);
    cleaned++;
  }
  return cleaned;
}

static bool virtq_pending(struct net_device *dev) {
  struct virtq_priv *p = virtq_priv(dev);
  return vq_has_used(&p->q[VQ_RX]) || vq_has_used(&p->q[VQ_TX]);
}

static int virtq_open(struct net_device *dev) {
  struct virtq_regs *regs = hw_iomap(NIC_DEVID_VIRTQ);
  if (!regs) return -EIO;
  struct virtq_priv *p = kzalloc(sizeof(*p));
  if (!p) return -ENOMEM;
  p->regs = regs;
  dev->priv = p;
  /* The virtio initialisation sequence: acknowledge, driver, features,
   * queues, then DRIVER_OK. */
  regs->status = VIRTIO_STATUS_ACKNOWLEDGE;
  regs->status |= VIRTIO_STATUS_DRIVER;
  regs->driver_features = regs->device_features & (VIRTIO_NET_F_MAC | VIRTIO_F_ANY_LAYOUT);
  if (!(regs->driver_features & VIRTIO_F_ANY_LAYOUT)) return -EIO; /* we push the header */
  regs->status |= VIRTIO_STATUS_FEATURES_OK;
  int err = vq_setup(p, VQ_RX);
  if (!err) err = vq_setup(p, VQ_TX);
  if (err) return err;
  if (regs->driver_features & VIRTIO_NET_F_MAC) __builtin_memcpy(dev->mac, regs->mac, 6);
  virtq_refill(dev);
  regs->status |= VIRTIO_STATUS_DRIVER_OK;
  return 0;
}

const struct netdev_ops virtq_netdev_ops = {
    .name = "virtq",
    .open = virtq_open,
    .xmit = virtq_xmit,
    .poll = virtq_poll,
    .tx_clean = virtq_tx_clean,
    .refill = virtq_refill,
    .pending = virtq_pending,
};
