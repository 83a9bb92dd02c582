/*
 * @fileoverview The device layer: the one NIC, the choice of its driver,
 * the transmit queue in front of the driver, and the receive softirq.
 *
 * The driver is reached only through nic_ops_by_model[], indexed by the
 * boot-fixed net.nic_model selector read afresh at every call: once kjit
 * folds the selector, each of these indirect calls becomes a direct call to
 * the present driver, and the absent driver is unreachable.
 */
#include <kernel/lib.h>
#include <kernel/net.h>
#include <kernel/sysctl.h>

#include "../drivers/net/netdev.h"
#include "../hw/nic_hw.h"
#include "kjit_rt.h"
#include "net_priv.h"

static const struct netdev_ops *const nic_ops_by_model[2] = {&ring_netdev_ops, &virtq_netdev_ops};
static const u32 nic_devid_by_model[2] = {NIC_DEVID_RING, NIC_DEVID_VIRTQ};

/* The active driver's operations (deliberately not cached anywhere). */
#define nic_ops() (nic_ops_by_model[sysctl_net_nic_model])

struct net_device nic0 = {.name = "eth0", .mtu = ETH_DATA_LEN};

/* Frames the driver had no descriptor for, sent in order once
 * tx_clean frees some (a FIFO qdisc). */
static struct list_head qdisc = LIST_HEAD_INIT(qdisc);
static u32 qdisc_len;

void net_dev_init(void) {
  s64 model = sysctl_net_nic_model;
  if (model < 0 || model >= (s64)ARRAY_SIZE(nic_ops_by_model))
    panic("net: net.nic_model=%ld was not resolved before boot", (long)model);
  u32 devid = nic_devid_by_model[model];
  bool present = false;
  for (u32 i = 0; i < kjit_hw_ndevices(); i++)
    if (kjit_hw_device(i) == devid) present = true;
  if (!present) panic("net: net.nic_model=%ld names device %04x:%04x, which is not on the bus", (long)model,
                      devid >> 16, devid & 0xffff);
  nic0.devid = devid;
  int err = nic_ops()->open(&nic0);
  if (err) panic("net: %s: cannot open the %s driver: %d", nic0.name, nic_ops()->name, err);
  printk("net: %s: %s driver, device %04x:%04x, mac %02x:%02x:%02x:%02x:%02x:%02x", nic0.name, nic_ops()->name,
         devid >> 16, devid & 0xffff, nic0.mac[0], nic0.mac[1], nic0.mac[2], nic0.mac[3], nic0.mac[4], nic0.mac[5]);
}

/* Push queued frames into the ring while it has room. */
static void qdisc_run(void) {
  while (!list_empty(&qdisc)) {
    struct sk_buff *skb = list_first_entry(&qdisc, struct sk_buff, list);
    list_del(&skb->list);
    if (nic_ops()->xmit(&nic0, skb) != NETDEV_TX_OK) {
      list_add(&skb->list, &qdisc);
      NET_INC(dev_qdisc_requeues);
      return;
    }
    qdisc_len--;
  }
}

void dev_queue_xmit(struct sk_buff *skb) {
  NET_INC(eth_tx_frames);
  /* Frames queued earlier go first: bypassing them would reorder a TCP
   * stream on the wire. */
  if (likely(list_empty(&qdisc)) && nic_ops()->xmit(&nic0, skb) == NETDEV_TX_OK) return;
  nic0.tx_busy++;
  list_add_tail(&skb->list, &qdisc);
  qdisc_len++;
}

void netif_receive_skb(struct net_device *dev, struct sk_buff *skb) {
  skb->dev = dev;
  eth_rcv(skb);
}

u32 net_rx_action(void) {
  u32 budget = (u32)READ_ONCE(sysctl_net_rx_budget);
  u32 done = nic_ops()->poll(&nic0, budget);
  nic_ops()->refill(&nic0);
  net_mib.dev_tx_cleaned += nic_ops()->tx_clean(&nic0);
  qdisc_run();
  return done;
}

bool net_pending(void) { return qdisc_len != 0 || nic_ops()->pending(&nic0); }
