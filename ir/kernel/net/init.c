/*
 * @fileoverview Bringing the network up: buffers, the NIC and its driver,
 * protocols, routes, the default firewall chain, the socket system calls,
 * and the background connections that give the demultiplexing table a
 * busy server's load.  Also the counters procfs shows.
 */
#include <kernel/lib.h>
#include <kernel/net.h>

#include "../drivers/net/netdev.h"
#include "net_priv.h"

#define BACKGROUND_SOCKETS 3000

struct net_mib net_mib;

void net_init(void) {
  skb_init();
  sock_hash_init();
  net_dev_init();
  icmp_init();
  udp_init();
  tcp_init();
  route_init();
  fw_init();
  socket_init();
  sock_hash_populate_background(BACKGROUND_SOCKETS);
  printk("net: %s up, %u routes, %u firewall rules, %u sockets", nic0.name, route_count(), fw_rule_count(),
         sock_hash_count());
}

int net_proc_show(char *buf, size_t size) {
  int n = 0;
#define NET_MIB_SHOW(name)                                                                              \
  n += ksnprintf(buf + MIN((size_t)n, size), size - MIN((size_t)n, size), "%s %lu\n", #name, \
                 (unsigned long)net_mib.name);
  NET_MIB_FIELDS(NET_MIB_SHOW)
#undef NET_MIB_SHOW
  n += ksnprintf(buf + MIN((size_t)n, size), size - MIN((size_t)n, size),
                 "%s %lu\n%s %lu\n%s %lu\n%s %lu\n", "dev_rx_packets", (unsigned long)nic0.rx_packets,
                 "dev_tx_packets", (unsigned long)nic0.tx_packets, "dev_tx_busy", (unsigned long)nic0.tx_busy,
                 "skb_in_use", (unsigned long)skb_in_use());
  return n;
}
