/*
 * @fileoverview Network counters for procfs (/proc/net/snmp-like).  A
 * procfs generator includes this header and calls net_proc_show().
 */
#ifndef NET_NET_PROC_H
#define NET_NET_PROC_H

#include <kernel/types.h>

#define NET_MIB_FIELDS(X)                                                          \
  X(eth_rx_frames) X(eth_rx_not_for_us) X(eth_rx_not_ip) X(eth_tx_frames)          \
  X(ip_in_receives) X(ip_in_hdr_errors) X(ip_in_csum_errors) X(ip_in_addr_errors)  \
  X(ip_in_opt_errors) X(ip_in_frag_drops) X(ip_in_unknown_protos) X(ip_in_delivers) \
  X(ip_out_requests) X(ip_out_no_routes)                                           \
  X(icmp_in_msgs) X(icmp_in_errors) X(icmp_in_echos) X(icmp_out_msgs) X(icmp_out_unreachs) \
  X(udp_in_datagrams) X(udp_no_ports) X(udp_in_errors) X(udp_csum_errors)          \
  X(udp_rcvbuf_errors) X(udp_out_datagrams)                                        \
  X(tcp_in_segs) X(tcp_out_segs) X(tcp_in_errs) X(tcp_csum_errors) X(tcp_out_rsts) \
  X(tcp_passive_opens) X(tcp_estab_resets) X(tcp_listen_overflows) X(tcp_ooo_drops) \
  X(fw_accepted) X(fw_dropped) X(fw_rejected)                                      \
  X(dev_qdisc_requeues) X(dev_tx_cleaned)

struct net_mib {
#define NET_MIB_MEMBER(name) u64 name;
  NET_MIB_FIELDS(NET_MIB_MEMBER)
#undef NET_MIB_MEMBER
};
extern struct net_mib net_mib;

#define NET_INC(field) (net_mib.field++)

/* Format the counters as "name value" lines; returns the length written
 * (ksnprintf semantics: may exceed size when truncated). */
int net_proc_show(char *buf, size_t size);

#endif
