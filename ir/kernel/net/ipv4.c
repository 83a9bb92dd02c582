/*
 * @fileoverview IPv4: header validation on receive (version, length,
 * checksum when net.csum_verify is on, options, fragments, TTL), dispatch
 * through the protocol table, the local-input step every transport protocol
 * runs (firewall chain, then route check), and header building on send.
 */
#include <kernel/lib.h>
#include <kernel/sysctl.h>
#include <kernel/uapi.h>

#include "net_priv.h"

/* Protocol handlers by IP protocol number, registered at init and called
 * indirectly for every packet, as Linux's inet_protos[]. */
static const struct net_protocol *inet_protos[256];
static u16 ip_ident;

void inet_add_protocol(const struct net_protocol *prot, u8 protocol) {
  if (inet_protos[protocol]) panic("inet: protocol %u registered twice", protocol);
  inet_protos[protocol] = prot;
}

/* Parse the options of a received header into skb->ipcb.  Unknown options
 * are skipped; malformed ones and source routes reject the packet (a host
 * that does not forward has no use for source routing, and it is an old
 * spoofing tool: Linux's accept_source_route=0). */
static int ip_options_compile(struct sk_buff *skb, const u8 *opt, u32 optlen) {
  struct ip_cb *cb = &skb->ipcb;
  cb->optlen = (u8)optlen;
  for (u32 i = 0; i < optlen;) {
    u8 type = opt[i];
    if (type == IPOPT_END) break;
    if (type == IPOPT_NOOP) {
      i++;
      continue;
    }
    if (i + 1 >= optlen) return -EINVAL;
    u8 len = opt[i + 1];
    if (len < 2 || i + len > optlen) return -EINVAL;
    switch (type) {
    case IPOPT_RR:
      if (len < 3 || opt[i + 2] < 4) return -EINVAL;
      cb->rr_offset = (u8)i;
      break;
    case IPOPT_TS:
      if (len < 4 || opt[i + 2] < 5) return -EINVAL;
      cb->ts_offset = (u8)i;
      break;
    case IPOPT_LSRR:
    case IPOPT_SSRR:
      return -EPERM;
    case IPOPT_RA:
      if (len != 4) return -EINVAL;
      cb->router_alert = 1;
      break;
    default:
      break;
    }
    i += len;
  }
  return 0;
}

/* The checks that do not depend on who the packet is for.  0 or the
 * counter-worthy reason it is dropped. */
static int ip_validate(struct sk_buff *skb, const struct iphdr *iph, u32 *hlen) {
  *hlen = iph->ihl * 4u;
  if (unlikely(iph->version != 4 || iph->ihl < 5 || !skb_may_pull(skb, *hlen))) goto hdr_error;
  if (sysctl_net_csum_verify && unlikely(ip_fast_csum(iph, iph->ihl) != 0)) {
    NET_INC(ip_in_csum_errors);
    return -EIO;
  }
  u32 tot = ntohs(iph->tot_len);
  if (unlikely(tot < *hlen || tot > skb->len)) goto hdr_error;
  skb_trim(skb, tot); /* strip the Ethernet padding of short frames */
  if (unlikely(iph->ttl == 0)) goto hdr_error; /* no sender may emit TTL 0 */
  if (unlikely(*hlen > sizeof(*iph)) && ip_options_compile(skb, (const u8 *)(iph + 1), *hlen - sizeof(*iph)) < 0) {
    NET_INC(ip_in_opt_errors);
    return -EINVAL;
  }
  if (unlikely(ntohs(iph->frag_off) & (IP_MF | IP_OFFSET))) {
    NET_INC(ip_in_frag_drops); /* no reassembly: this stack sends DF and MSS-sized segments */
    return -EINVAL;
  }
  return 0;
hdr_error:
  NET_INC(ip_in_hdr_errors);
  return -EINVAL;
}

int ip_rcv(struct sk_buff *skb) {
  NET_INC(ip_in_receives);
  if (unlikely(!skb_may_pull(skb, sizeof(struct iphdr)))) {
    NET_INC(ip_in_hdr_errors);
    goto drop;
  }
  skb_reset_network_header(skb);
  const struct iphdr *iph = (const struct iphdr *)skb->data;
  u32 hlen;
  if (ip_validate(skb, iph, &hlen) < 0) goto drop;
  skb->protocol = iph->protocol;
  skb_pull(skb, hlen);
  skb_reset_transport_header(skb);

  const struct net_protocol *prot = inet_protos[iph->protocol];
  if (unlikely(!prot)) {
    NET_INC(ip_in_unknown_protos);
    /* Only a packet that was really for us deserves an answer. */
    if (ip_route_input(iph->saddr, iph->daddr) == 0) icmp_send(skb, ICMP_DEST_UNREACH, ICMP_PROT_UNREACH);
    goto drop;
  }
  NET_INC(ip_in_delivers);
  return prot->handler(skb);
drop:
  kfree_skb(skb);
  return -1;
}

int ip_local_in(struct sk_buff *skb, u8 protocol, be16 dport) {
  const struct iphdr *iph = ip_hdr(skb);
  if (READ_ONCE(sysctl_net_firewall)) {
    int verdict = fw_filter(skb, protocol, iph->saddr, iph->daddr, ntohs(dport));
    if (unlikely(verdict != FW_ACCEPT)) {
      if (verdict == FW_REJECT) icmp_send(skb, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH);
      kfree_skb(skb);
      return -EPERM;
    }
  }
  if (unlikely(ip_route_input(iph->saddr, iph->daddr) < 0)) {
    NET_INC(ip_in_addr_errors);
    kfree_skb(skb);
    return -ENETUNREACH;
  }
  return 0;
}

void ip_output(struct sk_buff *skb, const struct rtable *rt, u8 protocol) {
  struct iphdr *iph = skb_push(skb, sizeof(*iph));
  skb_reset_network_header(skb);
  iph->version = 4;
  iph->ihl = 5;
  iph->tos = 0;
  iph->tot_len = htons((u16)skb->len);
  iph->id = htons(ip_ident++);
  iph->frag_off = htons(IP_DF);
  iph->ttl = IPDEFTTL;
  iph->protocol = protocol;
  iph->saddr = rt->saddr;
  iph->daddr = rt->daddr;
  iph->check = 0;
  iph->check = ip_fast_csum(iph, 5);
  NET_INC(ip_out_requests);
  eth_output(skb, rt->nexthop);
}
