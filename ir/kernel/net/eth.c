/*
 * @fileoverview Ethernet: accept frames addressed to us (or broadcast) and
 * pass IPv4 up; frame outgoing packets for the gateway, whose address is
 * fixed (this host has one router and no ARP).
 */
#include <kernel/lib.h>

#include "../drivers/net/netdev.h"
#include "net_priv.h"

static const u8 eth_gateway_mac[ETH_ALEN] = ETH_GATEWAY_MAC_INIT;

static bool eth_is_broadcast(const u8 *a) { return (a[0] & a[1] & a[2] & a[3] & a[4] & a[5]) == 0xff; }

static bool eth_addr_equal(const u8 *a, const u8 *b) { return __builtin_memcmp(a, b, ETH_ALEN) == 0; }

int eth_rcv(struct sk_buff *skb) {
  NET_INC(eth_rx_frames);
  if (unlikely(!skb_may_pull(skb, ETH_HLEN))) goto drop;
  skb_reset_mac_header(skb);
  const struct ethhdr *eh = (const struct ethhdr *)skb->data;
  if (unlikely(!eth_addr_equal(eh->h_dest, skb->dev->mac) && !eth_is_broadcast(eh->h_dest))) {
    NET_INC(eth_rx_not_for_us);
    goto drop;
  }
  if (unlikely(eh->h_proto != htons(ETH_P_IP))) {
    NET_INC(eth_rx_not_ip); /* ARP, IPv6 ...: this host speaks IPv4 only */
    goto drop;
  }
  skb_pull(skb, ETH_HLEN);
  return ip_rcv(skb);
drop:
  kfree_skb(skb);
  return -1;
}

void eth_output(struct sk_buff *skb, be32 nexthop) {
  struct ethhdr *eh = skb_push(skb, ETH_HLEN);
  /* Every next hop is reached through the gateway's MAC: the on-link
   * neighbours are virtual and the router proxies for them. */
  (void)nexthop;
  __builtin_memcpy(eh->h_dest, eth_gateway_mac, ETH_ALEN);
  __builtin_memcpy(eh->h_source, nic0.mac, ETH_ALEN);
  eh->h_proto = htons(ETH_P_IP);
  skb_reset_mac_header(skb);
  dev_queue_xmit(skb);
}
