/*
 * @fileoverview The NIC driver interface.  Each driver exports exactly one
 * symbol, its operations table; everything else in a driver is static and
 * reachable only through that table, so removing a driver's table (kjit does,
 * for the device that is absent) removes the whole driver.  The stack calls
 * the active driver only through nic_ops_by_model[sysctl_net_nic_model]
 * (net/dev.c).
 */
#ifndef DRIVERS_NET_NETDEV_H
#define DRIVERS_NET_NETDEV_H

#include <kernel/types.h>

struct sk_buff;

struct net_device {
  const char *name;
  u32 devid;
  u8 mac[6];
  u32 mtu;
  void *priv; /* the driver's state */
  u64 rx_packets, rx_bytes, rx_errors;
  u64 tx_packets, tx_bytes, tx_busy;
};

enum netdev_tx { NETDEV_TX_OK = 0, NETDEV_TX_BUSY = 1 };

struct netdev_ops {
  const char *name;
  /* Map the registers, allocate the DMA rings, enable the device. */
  int (*open)(struct net_device *dev);
  /* Post a frame (skb->data .. len) on the transmit ring; the driver owns
   * the skb until tx_clean.  NETDEV_TX_BUSY: ring full, skb untouched. */
  int (*xmit)(struct net_device *dev, struct sk_buff *skb);
  /* NAPI receive: hand up to `budget` frames to netif_receive_skb(). */
  u32 (*poll)(struct net_device *dev, u32 budget);
  /* Free the buffers of frames the device has sent. */
  u32 (*tx_clean)(struct net_device *dev);
  /* Give the device fresh receive buffers for the ones poll consumed. */
  u32 (*refill)(struct net_device *dev);
  /* Received frames waiting, or sent buffers to reclaim? */
  bool (*pending)(struct net_device *dev);
};

extern const struct netdev_ops ring_netdev_ops;
extern const struct netdev_ops virtq_netdev_ops;

/* net/dev.c: every received frame enters the stack here. */
void netif_receive_skb(struct net_device *dev, struct sk_buff *skb);

#endif
