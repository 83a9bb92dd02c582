/*
 * @fileoverview TCP output: header building and checksum for data
 * segments, control segments (SYN-ACK, ACK, FIN, RST) and resets answering
 * segments that have no connection.
 */
#include <kernel/lib.h>
#include <kernel/uapi.h>

#include "net_priv.h"

u32 tcp_rcv_window(const struct sock *sk) {
  u32 free = TCP_RCVBUF - sk->rlen;
  return free < 65535 ? free : 65535;
}

/* Push the header in front of the segment's payload (already in skb),
 * checksum the whole segment and send it along rt. */
static void tcp_build_and_send(struct sk_buff *skb, const struct rtable *rt, be16 sport, be16 dport, u32 seq,
                               u32 ack, u8 flags, u16 window, bool mss_option) {
  u32 hlen = sizeof(struct tcphdr) + (mss_option ? TCPOLEN_MSS : 0);
  struct tcphdr *th = skb_push(skb, hlen);
  th->source = sport;
  th->dest = dport;
  th->seq = htonl(seq);
  th->ack_seq = (flags & TCP_FLAG_ACK) ? htonl(ack) : 0;
  th->res1 = 0;
  th->doff = (u8)(hlen / 4);
  th->flags = flags;
  th->window = htons(window);
  th->check = 0;
  th->urg_ptr = 0;
  if (mss_option) {
    u8 *opt = (u8 *)(th + 1);
    be16 mss = htons(TCP_MSS);
    opt[0] = TCPOPT_MSS;
    opt[1] = TCPOLEN_MSS;
    __builtin_memcpy(opt + 2, &mss, 2);
  }
  th->check = csum_tcpudp_magic(rt->saddr, rt->daddr, skb->len, IPPROTO_TCP, csum_partial(th, skb->len, 0));
  NET_INC(tcp_out_segs);
  ip_output(skb, rt, IPPROTO_TCP);
}

static int tcp_transmit_skb(struct sock *sk, struct sk_buff *skb, u32 seq, u8 flags, bool mss_option) {
  struct rtable rt;
  int err = ip_route_output(sk->faddr, sk->laddr, &rt);
  if (unlikely(err)) {
    kfree_skb(skb);
    return err;
  }
  tcp_build_and_send(skb, &rt, sk->lport, sk->fport, seq, sk->rcv_nxt, flags, (u16)tcp_rcv_window(sk), mss_option);
  return 0;
}

void tcp_send_ctl(struct sock *sk, u8 flags) {
  struct sk_buff *skb = alloc_skb_tx(0);
  if (unlikely(!skb)) return;
  u32 seq = sk->snd_nxt;
  if (flags & TCP_FLAG_FIN) sk->snd_nxt++; /* FIN occupies one sequence number */
  if (flags & TCP_FLAG_RST) NET_INC(tcp_out_rsts);
  tcp_transmit_skb(sk, skb, seq, flags, false);
}

void tcp_send_synack(struct sock *sk) {
  struct sk_buff *skb = alloc_skb_tx(0);
  if (unlikely(!skb)) return;
  sk->snd_nxt = sk->iss + 1;
  tcp_transmit_skb(sk, skb, sk->iss, TCP_FLAG_SYN | TCP_FLAG_ACK, true);
}

int tcp_send_data(struct sock *sk, struct sk_buff *skb, bool push) {
  u32 seq = sk->snd_nxt;
  sk->snd_nxt += skb->len;
  return tcp_transmit_skb(sk, skb, seq, TCP_FLAG_ACK | (push ? TCP_FLAG_PSH : 0), false);
}

/* RFC 793 "reset generation" for a segment no connection wants: take the
 * sequence number from its ACK if it has one, else acknowledge it. */
void tcp_send_reset(const struct sk_buff *skb_in, const struct tcphdr *th, u32 seg_len) {
  if (th->flags & TCP_FLAG_RST) return; /* never answer a reset */
  const struct iphdr *iph = ip_hdr(skb_in);
  struct rtable rt;
  if (ip_route_output(iph->saddr, iph->daddr, &rt) < 0) return;
  struct sk_buff *skb = alloc_skb_tx(0);
  if (!skb) return;
  u32 seq = 0, ack = 0;
  u8 flags = TCP_FLAG_RST;
  if (th->flags & TCP_FLAG_ACK) {
    seq = ntohl(th->ack_seq);
  } else {
    ack = ntohl(th->seq) + seg_len + !!(th->flags & TCP_FLAG_SYN) + !!(th->flags & TCP_FLAG_FIN);
    flags |= TCP_FLAG_ACK;
  }
  NET_INC(tcp_out_rsts);
  tcp_build_and_send(skb, &rt, th->dest, th->source, seq, ack, flags, 0, false);
}
