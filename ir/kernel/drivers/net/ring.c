/*
 * @fileoverview Driver for the ring-descriptor NIC (e1000-like, 8086:100e).
 * Receive buffers are skbs posted on the receive descriptor ring; a frame
 * the device completed becomes that skb, and the slot gets a fresh one on
 * refill.  Transmit posts the skb's data on the transmit ring and frees it
 * once the device reports the descriptor done.
 *
 * Only ring_netdev_ops is visible outside this file: kjit removes the whole
 * driver when this device is absent by emptying that table.
 */
#include <kernel/lib.h>
#include <kernel/mm.h>

#include "../../hw/nic_hw.h"
#include "../../hw/nic_ring_regs.h"
#include "../../net/skbuff.h"
#include "netdev.h"

struct ring_priv {
  struct ring_regs *regs;
  struct ring_rx_desc *rx_ring;
  struct ring_tx_desc *tx_ring;
  struct sk_buff *rx_skb[RING_RX_DESCS];
  struct sk_buff *tx_skb[RING_TX_DESCS];
  u32 rx_next_to_clean; /* next descriptor the device may have completed */
  u32 rx_next_to_use;   /* next descriptor to give a buffer (= RDT) */
  u32 rx_unfilled;      /* descriptors without a buffer */
  u32 tx_next_to_use;   /* = TDT */
  u32 tx_next_to_clean;
};

static struct ring_priv *ring_priv(struct net_device *dev) { return dev->priv; }

static u32 ring_refill(struct net_device *dev) {
  struct ring_priv *p = ring_priv(dev);
  u32 filled = 0;
  /* One descriptor always stays empty: RDH == RDT means "no buffers",
   * so a completely full ring would look empty to the device. */
  while (p->rx_unfilled > 1) {
    struct sk_buff *skb = alloc_skb(RING_RX_BUF_SIZE);
    if (unlikely(!skb)) break; /* try again on the next poll */
    skb_reserve(skb, NET_IP_ALIGN);
    struct ring_rx_desc *d = &p->rx_ring[p->rx_next_to_use];
    d->addr = (u64)(uintptr_t)skb->data;
    d->status = 0;
    d->errors = 0;
    p->rx_skb[p->rx_next_to_use] = skb;
    p->rx_next_to_use = (p->rx_next_to_use + 1) % RING_RX_DESCS;
    p->rx_unfilled--;
    filled++;
  }
  if (filled) hw_writel(&p->regs->rdt, p->rx_next_to_use);
  return filled;
}

/* Take the skb of a completed receive descriptor off the ring. */
static struct sk_buff *ring_rx_take(struct ring_priv *p, u32 *len, bool *bad) {
  struct ring_rx_desc *d = &p->rx_ring[p->rx_next_to_clean];
  u8 status = READ_ONCE(d->status);
  if (!(status & RXD_STAT_DD)) return NULL;
  struct sk_buff *skb = p->rx_skb[p->rx_next_to_clean];
  p->rx_skb[p->rx_next_to_clean] = NULL;
  *len = d->length;
  *bad = d->errors || !(status & RXD_STAT_EOP);
  d->status = 0;
  p->rx_next_to_clean = (p->rx_next_to_clean + 1) % RING_RX_DESCS;
  p->rx_unfilled++;
  return skb;
}

static u32 ring_poll(struct net_device *dev, u32 budget) {
  struct ring_priv *p = ring_priv(dev);
  u32 done = 0;
  /* Reading the cause register acknowledges the "interrupt". */
  hw_writel(&p->regs->icr, hw_readl(&p->regs->icr) & ~(u32)ICR_RXT0);
  while (done < budget) {
    u32 len;
    bool bad;
    struct sk_buff *skb = ring_rx_take(p, &len, &bad);
    if (!skb) break;
    done++;
    if (unlikely(bad || len == 0)) {
      dev->rx_errors++;
      kfree_skb(skb);
      continue;
    }
    skb_put(skb, len);
    dev->rx_packets++;
    dev->rx_bytes += len;
    netif_receive_skb(dev, skb);
  }
  return done;
}

static int ring_xmit(struct net_device *dev, struct sk_buff *skb) {
  struct ring_priv *p = ring_priv(dev);
  u32 ntu = p->tx_next_to_use, next = (ntu + 1) % RING_TX_DESCS;
  if (next == p->tx_next_to_clean) return NETDEV_TX_BUSY; /* full: keep one gap */
  struct ring_tx_desc *d = &p->tx_ring[ntu];
  d->addr = (u64)(uintptr_t)skb->data;
  d->length = (u16)skb->len;
  d->cmd = TXD_CMD_EOP | TXD_CMD_IFCS | TXD_CMD_RS;
  d->status = 0;
  p->tx_skb[ntu] = skb;
  p->tx_next_to_use = next;
  hw_writel(&p->regs->tdt, next); /* the doorbell */
  dev->tx_packets++;
  dev->tx_bytes += skb->len;
  return NETDEV_TX_OK;
}

static u32 ring_tx_clean(struct net_device *dev) {
  struct ring_priv *p = ring_priv(dev);
  u32 cleaned = 0;
  while (p->tx_next_to_clean != p->tx_next_to_use) {
    struct ring_tx_desc *d = &p->tx_ring[p->tx_next_to_clean];
    if (!(READ_ONCE(d->status) & TXD_STAT_DD)) break;
    kfree_skb(p->tx_skb[p->tx_next_to_clean]);
    p->tx_skb[p->tx_next_to_clean] = NULL;
    p->tx_next_to_clean = (p->tx_next_to_clean + 1) % RING_TX_DESCS;
    cleaned++;
  }
  return cleaned;
}

static bool ring_pending(struct net_device *dev) {
  struct ring_priv *p = ring_priv(dev);
  if (READ_ONCE(p->rx_ring[p->rx_next_to_clean].status) & RXD_STAT_DD) return true;
  return p->tx_next_to_clean != p->tx_next_to_use &&
         (READ_ONCE(p->tx_ring[p->tx_next_to_clean].status) & TXD_STAT_DD);
}

static int ring_open(struct net_device *dev) {
  struct ring_regs *regs = hw_iomap(NIC_DEVID_RING);
  if (!regs) return -EIO;
  struct ring_priv *p = kzalloc(sizeof(*p));
  void *rx = alloc_pages(0), *tx = alloc_pages(0); /* 256 x 16 bytes each */
  if (!p || !rx || !tx) return -ENOMEM;
  memset(rx, 0, PAGE_SIZE);
  memset(tx, 0, PAGE_SIZE);
  p->regs = regs;
  p->rx_ring = rx;
  p->tx_ring = tx;
  p->rx_unfilled = RING_RX_DESCS;
  dev->priv = p;
  __builtin_memcpy(dev->mac, regs->mac, 6);

  regs->rdba = (u64)(uintptr_t)rx;
  regs->rdlen = RING_RX_DESCS * sizeof(struct ring_rx_desc);
  regs->rdh = regs->rdt = 0;
  regs->rbsize = RING_RX_BUF_SIZE - NET_IP_ALIGN;
  regs->tdba = (u64)(uintptr_t)tx;
  regs->tdlen = RING_TX_DESCS * sizeof(struct ring_tx_desc);
  regs->tdh = regs->tdt = 0;
  ring_refill(dev);
  hw_writel(&regs->rctl, RCTL_EN);
  hw_writel(&regs->tctl, TCTL_EN);
  if (!(hw_readl(&regs->status) & STATUS_LU)) printk("%s: link down", dev->name);
  return 0;
}

const struct netdev_ops ring_netdev_ops = {
    .name = "ring",
    .open = ring_open,
    .xmit = ring_xmit,
    .poll = ring_poll,
    .tx_clean = ring_tx_clean,
    .refill = ring_refill,
    .pending = ring_pending,
};
