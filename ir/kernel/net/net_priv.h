/*
 * @fileoverview The network stack's internal interfaces between its files:
 * the layers of the receive and send paths, the protocol table, routing,
 * the firewall, and the MIB counters procfs shows (net_proc.h).
 */
#ifndef NET_NET_PRIV_H
#define NET_NET_PRIV_H

#include <kernel/types.h>

#include "net_proc.h"
#include "proto_hdr.h"
#include "skbuff.h"
#include "sock.h"

struct net_device;
struct poll_table;

#define IPV4_ADDR(a, b, c, d) (((u32)(a) << 24) | ((u32)(b) << 16) | ((u32)(c) << 8) | (u32)(d))

/* ---- devices (net/dev.c) ------------------------------------------------------ */
void net_dev_init(void);
extern struct net_device nic0;
/* Queue a fully built frame for transmission; consumes the skb. */
void dev_queue_xmit(struct sk_buff *skb);

/* ---- Ethernet (net/eth.c) --------------------------------------------------- */
int eth_rcv(struct sk_buff *skb);
void eth_output(struct sk_buff *skb, be32 nexthop);

/* ---- IPv4 (net/ipv4.c) ------------------------------------------------------ */
struct net_protocol {
  int (*handler)(struct sk_buff *skb); /* consumes the skb */
  const char *name;
};
void inet_add_protocol(const struct net_protocol *prot, u8 protocol);
int ip_rcv(struct sk_buff *skb);
/* The route an outgoing packet takes: chosen before the transport header is
 * built, because its checksum covers the source address the route picks. */
struct rtable {
  be32 saddr;   /* our address toward daddr */
  be32 daddr;
  be32 nexthop; /* gateway or daddr itself */
};
/* Build the IP header in front of skb->data and send it along rt.
 * Consumes the skb. */
void ip_output(struct sk_buff *skb, const struct rtable *rt, u8 protocol);
/* Local input for a transport protocol: the firewall chain, then the route
 * check.  0 to deliver, or negative when the packet was consumed. */
int ip_local_in(struct sk_buff *skb, u8 protocol, be16 dport);
static inline struct iphdr *ip_hdr(const struct sk_buff *skb) { return (struct iphdr *)skb_network_header(skb); }

/* ---- routing (net/route.c) ---------------------------------------------------- */
enum rtn_type { RTN_UNICAST = 1, RTN_LOCAL, RTN_BROADCAST, RTN_BLACKHOLE, RTN_UNREACHABLE };
struct fib_entry {
  be32 prefix; /* network order, masked */
  u8 plen;
  u8 type;     /* enum rtn_type */
  be32 gateway; /* 0: on-link */
  be32 prefsrc;
  struct net_device *dev;
  u64 uses;
};
void route_init(void);
const struct fib_entry *fib_lookup(be32 addr);
/* Input: is `daddr` ours, is `saddr` a sane source?  0 or -errno. */
int ip_route_input(be32 saddr, be32 daddr);
/* Output: fill rt for daddr (saddr: the socket's bound address, or 0 to
 * take the route's preferred source); 0 or -ENETUNREACH. */
int ip_route_output(be32 daddr, be32 saddr, struct rtable *rt);
u32 route_count(void);

/* ---- firewall (net/firewall.c) ------------------------------------------------ */
void fw_init(void);
int fw_filter(const struct sk_buff *skb, u8 protocol, be32 saddr, be32 daddr, u16 dport);
u32 fw_rule_count(void);

/* ---- ICMP (net/icmp.c) -------------------------------------------------------- */
void icmp_init(void);
/* Answer the packet in skb_in (its IP header at the network offset) with an
 * ICMP error quoting its header and first 8 bytes.  Does not consume it. */
void icmp_send(const struct sk_buff *skb_in, u8 type, u8 code);

/* ---- UDP (net/udp.c) ---------------------------------------------------------- */
struct sk_iter; /* socket.c: a user or kernel buffer */
void udp_init(void);
long udp_sendmsg(struct sock *sk, struct sk_iter *it, size_t len, be32 daddr, be16 dport);
long udp_recvmsg(struct sock *sk, struct sk_iter *it, size_t len, bool nonblock, be32 *saddr, be16 *sport);
unsigned udp_poll(struct sock *sk);
void udp_close(struct sock *sk);

/* ---- TCP (net/tcp*.c) --------------------------------------------------------- */
void tcp_init(void);
int tcp_listen(struct sock *sk, int backlog);
struct sock *tcp_accept(struct sock *sk, bool nonblock, long *err);
long tcp_sendmsg(struct sock *sk, struct sk_iter *it, size_t len, bool nonblock);
long tcp_recvmsg(struct sock *sk, struct sk_iter *it, size_t len, bool nonblock);
unsigned tcp_poll(struct sock *sk);
int tcp_shutdown(struct sock *sk, int how);
void tcp_close(struct sock *sk);
/* tcp_output.c */
void tcp_send_ctl(struct sock *sk, u8 flags);
void tcp_send_synack(struct sock *sk);
int tcp_send_data(struct sock *sk, struct sk_buff *skb, bool push);
void tcp_send_reset(const struct sk_buff *skb_in, const struct tcphdr *th, u32 seg_len);
u32 tcp_rcv_window(const struct sock *sk);
/* tcp_input.c */
int tcp_v4_rcv(struct sk_buff *skb);
void tcp_set_state(struct sock *sk, u8 state);
void tcp_done(struct sock *sk);
u32 tcp_send_room(const struct sock *sk);

/* ---- sockets (net/socket.c) --------------------------------------------------- */
struct sk_iter {
  u8 *ptr;
  bool user; /* ptr is a user address: go through copy_{from,to}_user */
};
long sk_iter_copy_from(struct sk_iter *it, void *dst, size_t n);
long sk_iter_copy_to(struct sk_iter *it, const void *src, size_t n);
void socket_init(void);
void sock_release_orphan(struct sock *sk);

#endif
