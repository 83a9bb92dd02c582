/*
 * @fileoverview The network stack's interface to the rest of the kernel.
 * Internals live in net/ and drivers/net/ (their own headers); the NIC
 * device models and the wire in hw/.
 */
#ifndef KERNEL_NET_H
#define KERNEL_NET_H

#include <kernel/types.h>

/* Probe the NIC (driver chosen by the net.nic_model selector), register the
 * protocols, the routes (~1k), the default firewall rules, the socket
 * system calls, and the idle background sockets that load the demux table. */
void net_init(void);
/* Softirq: poll the NIC's receive ring (net.rx_budget packets at most) up the
 * stack, and reclaim transmitted buffers.  Returns packets handled. */
u32 net_rx_action(void);
/* Frames waiting in the NIC's receive ring or buffers waiting to be reclaimed. */
bool net_pending(void);

#endif
