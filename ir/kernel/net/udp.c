/*
 * @fileoverview UDP: datagram receive (length and pseudo-header checksum
 * checks, local input, socket lookup, copy into the socket's datagram
 * queue) and send (header, checksum, route, IP).
 */
#include <kernel/file.h>
#include <kernel/lib.h>
#include <kernel/mm.h>
#include <kernel/sched.h>
#include <kernel/sysctl.h>
#include <kernel/uapi.h>

#include "net_priv.h"

#define UDP_MAX_PAYLOAD (ETH_DATA_LEN - sizeof(struct iphdr) - sizeof(struct udphdr)) /* we never fragment */

static bool udp_csum_ok(const struct sk_buff *skb, const struct udphdr *uh, u32 ulen) {
  if (!sysctl_net_csum_verify || uh->check == 0) return true; /* 0: the sender did not checksum */
  const struct iphdr *iph = ip_hdr(skb);
  return csum_tcpudp_magic(iph->saddr, iph->daddr, ulen, IPPROTO_UDP, csum_partial(uh, ulen, 0)) == 0;
}

/* Copy the payload into the socket's queue; the skb goes back at once. */
static int udp_queue_rcv(struct sock *sk, struct sk_buff *skb) {
  const struct udphdr *uh = (const struct udphdr *)skb->data;
  u32 len = skb->len - sizeof(*uh);
  struct dgram *dg = NULL;
  if (sk->rxq_len < UDP_RCVQ_MAX) dg = kmalloc(sizeof(*dg) + len);
  if (unlikely(!dg)) {
    NET_INC(udp_rcvbuf_errors);
    kfree_skb(skb);
    return -ENOMEM;
  }
  dg->saddr = ip_hdr(skb)->saddr;
  dg->sport = uh->source;
  dg->len = len;
  kmemcpy(dg->data, uh + 1, len);
  kfree_skb(skb);
  list_add_tail(&dg->node, &sk->rxq);
  sk->rxq_len++;
  NET_INC(udp_in_datagrams);
  wake_up_all(&sk->wq);
  return 0;
}

static int udp_rcv(struct sk_buff *skb) {
  if (unlikely(!skb_may_pull(skb, sizeof(struct udphdr)))) goto error;
  const struct udphdr *uh = (const struct udphdr *)skb->data;
  u32 ulen = ntohs(uh->len);
  if (unlikely(ulen < sizeof(*uh) || ulen > skb->len)) goto error;
  skb_trim(skb, ulen);
  if (unlikely(!udp_csum_ok(skb, uh, ulen))) {
    NET_INC(udp_csum_errors);
    goto error;
  }
  if (ip_local_in(skb, IPPROTO_UDP, uh->dest) < 0) return -1;
  const struct iphdr *iph = ip_hdr(skb);
  struct sock *sk = inet_lookup(IPPROTO_UDP, iph->saddr, uh->source, iph->daddr, uh->dest);
  if (unlikely(!sk)) {
    NET_INC(udp_no_ports);
    icmp_send(skb, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH);
    kfree_skb(skb);
    return -1;
  }
  return udp_queue_rcv(sk, skb);
error:
  NET_INC(udp_in_errors);
  kfree_skb(skb);
  return -1;
}

long udp_sendmsg(struct sock *sk, struct sk_iter *it, size_t len, be32 daddr, be16 dport) {
  if (len > UDP_MAX_PAYLOAD) return -EMSGSIZE;
  if (!daddr || !dport) return -EDESTADDRREQ;
  struct rtable rt;
  int err = ip_route_output(daddr, sk->laddr, &rt);
  if (err) return err;
  u32 ulen = (u32)(sizeof(struct udphdr) + len);
  struct sk_buff *skb = alloc_skb_tx(ulen);
  if (!skb) return -ENOMEM;
  struct udphdr *uh = skb_put(skb, sizeof(*uh));
  if (sk_iter_copy_from(it, skb_put(skb, (u32)len), len)) {
    kfree_skb(skb);
    return -EFAULT;
  }
  uh->source = sk->lport;
  uh->dest = dport;
  uh->len = htons((u16)ulen);
  uh->check = 0;
  u16 check = csum_tcpudp_magic(rt.saddr, daddr, ulen, IPPROTO_UDP, csum_partial(uh, ulen, 0));
  uh->check = check ? check : 0xffff; /* 0 would mean "no checksum" */
  NET_INC(udp_out_datagrams);
  ip_output(skb, &rt, IPPROTO_UDP);
  return (long)len;
}

long udp_recvmsg(struct sock *sk, struct sk_iter *it, size_t len, bool nonblock, be32 *saddr, be16 *sport) {
  if (list_empty(&sk->rxq)) {
    if (nonblock) return -EAGAIN;
    int err = wait_event(&sk->wq, !list_empty(&sk->rxq));
    if (err) return err;
  }
  struct dgram *dg = list_first_entry(&sk->rxq, struct dgram, node);
  list_del(&dg->node);
  sk->rxq_len--;
  size_t n = MIN(len, (size_t)dg->len); /* the rest of a long datagram is discarded */
  long err = sk_iter_copy_to(it, dg->data, n);
  *saddr = dg->saddr;
  *sport = dg->sport;
  kfree(dg);
  return err ? err : (long)n;
}

unsigned udp_poll(struct sock *sk) { return (list_empty(&sk->rxq) ? 0 : POLLIN) | POLLOUT; }

void udp_close(struct sock *sk) { sk_free(sk); }

static const struct net_protocol udp_protocol = {.handler = udp_rcv, .name = "udp"};

void udp_init(void) { inet_add_protocol(&udp_protocol, IPPROTO_UDP); }
