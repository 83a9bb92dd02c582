/*
 * @fileoverview ICMP: answers echo requests, counts the errors other hosts
 * send, and generates destination-unreachable errors (unknown protocol,
 * closed port, firewall REJECT) quoting the offending header and the first
 * 8 bytes of its payload, as RFC 792 asks.
 */
#include <kernel/lib.h>
#include <kernel/sysctl.h>
#include <kernel/uapi.h>

#include "net_priv.h"

static bool icmp_is_error(u8 type) {
  return type == ICMP_DEST_UNREACH || type == ICMP_TIME_EXCEEDED || type == 4 /* source quench */ ||
         type == 5 /* redirect */ || type == 12 /* parameter problem */;
}

/* Checksum the message in skb and send it to rt's destination. */
static void icmp_push_reply(struct sk_buff *skb, const struct rtable *rt) {
  struct icmphdr *ih = (struct icmphdr *)skb->data;
  ih->checksum = 0;
  ih->checksum = csum_fold(csum_partial(skb->data, skb->len, 0));
  NET_INC(icmp_out_msgs);
  ip_output(skb, rt, IPPROTO_ICMP);
}

void icmp_send(const struct sk_buff *skb_in, u8 type, u8 code) {
  const struct iphdr *iph = ip_hdr(skb_in);
  /* RFC 1122: never an error about an error, nor about a broadcast. */
  if (iph->protocol == IPPROTO_ICMP) {
    const struct icmphdr *ih = (const struct icmphdr *)skb_transport_header(skb_in);
    if (skb_in->len < sizeof(*ih) || icmp_is_error(ih->type)) return;
  }
  const struct fib_entry *dst = fib_lookup(iph->daddr);
  if (dst && dst->type == RTN_BROADCAST) return;

  struct rtable rt;
  if (ip_route_output(iph->saddr, 0, &rt) < 0) return;
  u32 quote = MIN(iph->ihl * 4u + 8, (u32)ntohs(iph->tot_len));
  struct sk_buff *skb = alloc_skb_tx(sizeof(struct icmphdr) + quote);
  if (!skb) return;
  struct icmphdr *ih = skb_put(skb, sizeof(*ih));
  ih->type = type;
  ih->code = code;
  ih->un.unused = 0;
  kmemcpy(skb_put(skb, quote), iph, quote);
  if (type == ICMP_DEST_UNREACH) NET_INC(icmp_out_unreachs);
  icmp_push_reply(skb, &rt);
}

static void icmp_echo(const struct sk_buff *skb) {
  const struct iphdr *iph = ip_hdr(skb);
  struct rtable rt;
  if (ip_route_output(iph->saddr, iph->daddr, &rt) < 0) return;
  struct sk_buff *reply = alloc_skb_tx(skb->len);
  if (!reply) return;
  struct icmphdr *ih = skb_put(reply, skb->len);
  kmemcpy(ih, skb->data, skb->len); /* identifier, sequence and data come back as sent */
  ih->type = ICMP_ECHOREPLY;
  ih->code = 0;
  icmp_push_reply(reply, &rt);
}

static int icmp_rcv(struct sk_buff *skb) {
  NET_INC(icmp_in_msgs);
  if (unlikely(!skb_may_pull(skb, sizeof(struct icmphdr)))) goto error;
  if (sysctl_net_csum_verify && unlikely(csum_fold(csum_partial(skb->data, skb->len, 0)) != 0)) goto error;
  const struct icmphdr *ih = (const struct icmphdr *)skb->data;
  if (ip_local_in(skb, IPPROTO_ICMP, 0) < 0) return -1;
  if (ih->type == ICMP_ECHO) {
    NET_INC(icmp_in_echos);
    icmp_echo(skb);
  } else if (icmp_is_error(ih->type)) {
    NET_INC(icmp_in_errors); /* no connected socket here cares about remote errors */
  }
  kfree_skb(skb);
  return 0;
error:
  NET_INC(icmp_in_errors);
  kfree_skb(skb);
  return -1;
}

static const struct net_protocol icmp_protocol = {.handler = icmp_rcv, .name = "icmp"};

void icmp_init(void) { inet_add_protocol(&icmp_protocol, IPPROTO_ICMP); }
