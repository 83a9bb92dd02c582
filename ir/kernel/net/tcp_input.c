/*
 * @fileoverview TCP input: segment validation, connection lookup, the
 * passive open on listeners, and the state machine of RFC 793 for the
 * synchronized states (ACK processing, in-order data into the receive
 * ring, FIN handling, resets).  The wire is lossless and in order, so
 * there are no retransmission timers and out-of-order segments are
 * dropped with a duplicate ACK.  TIME_WAIT is left at once: keeping the
 * connection for 2*MSL would only hold memory on a lossless wire.
 */
#include <kernel/lib.h>
#include <kernel/mm.h>
#include <kernel/sysctl.h>
#include <kernel/uapi.h>

#include "net_priv.h"

/* What the state machine needs from a segment, in host order. */
struct tcp_seg {
  u32 seq, ack;
  u32 len; /* payload bytes */
  u16 window;
  u16 mss; /* from the SYN's option, 0 if absent */
  u8 flags;
  const u8 *payload;
};

static const u32 tcp_isn_secret = 0x2545f491u;

/* Initial sequence numbers from the connection's 4-tuple (RFC 6528 without
 * the clock, which would make runs differ). */
static u32 tcp_isn(const struct sock *sk) {
  return jhash_3words(sk->laddr, sk->faddr, (u32)sk->lport << 16 | sk->fport, tcp_isn_secret);
}

void tcp_set_state(struct sock *sk, u8 state) { sk->state = state; }

u32 tcp_send_room(const struct sock *sk) {
  u32 in_flight = sk->snd_nxt - sk->snd_una;
  return sk->snd_wnd > in_flight ? sk->snd_wnd - in_flight : 0;
}

/* A child the listener still holds: on the SYN queue while half-open, on
 * the accept queue once established. */
static void tcp_unlink_child(struct sock *sk) {
  if (sk->state != TCP_SYN_RCVD) sk->parent->accept_len--;
  list_del(&sk->accept_node);
  sk->parent = NULL;
}

/* The connection is over.  A socket no file holds (closed by its program,
 * or a child nobody accepted yet) is freed; otherwise readers and writers
 * wake to see the end. */
void tcp_done(struct sock *sk) {
  bool unowned = sk->orphan || sk->parent;
  if (sk->parent) tcp_unlink_child(sk);
  tcp_set_state(sk, TCP_CLOSED);
  inet_unhash(sk);
  if (unowned) {
    sk_free(sk);
    return;
  }
  wake_up_all(&sk->wq);
}

static void tcp_reset(struct sock *sk) {
  if (sk->state == TCP_ESTABLISHED || sk->state == TCP_CLOSE_WAIT) NET_INC(tcp_estab_resets);
  sk->err = ECONNRESET;
  tcp_done(sk);
}

static bool tcp_csum_ok(const struct sk_buff *skb) {
  if (!sysctl_net_csum_verify) return true;
  const struct iphdr *iph = ip_hdr(skb);
  return csum_tcpudp_magic(iph->saddr, iph->daddr, skb->len, IPPROTO_TCP, csum_partial(skb->data, skb->len, 0)) == 0;
}

static u16 tcp_parse_mss(const struct tcphdr *th) {
  const u8 *opt = (const u8 *)(th + 1), *end = (const u8 *)th + th->doff * 4;
  while (opt < end) {
    if (*opt == TCPOPT_EOL) break;
    if (*opt == TCPOPT_NOP) {
      opt++;
      continue;
    }
    if (opt + 1 >= end || opt[1] < 2 || opt + opt[1] > end) break;
    if (*opt == TCPOPT_MSS && opt[1] == TCPOLEN_MSS) {
      be16 mss;
      __builtin_memcpy(&mss, opt + 2, 2);
      return ntohs(mss);
    }
    opt += opt[1];
  }
  return 0;
}

static void tcp_parse(const struct sk_buff *skb, const struct tcphdr *th, struct tcp_seg *seg) {
  u32 hlen = th->doff * 4u;
  seg->seq = ntohl(th->seq);
  seg->ack = ntohl(th->ack_seq);
  seg->flags = th->flags;
  seg->window = ntohs(th->window);
  seg->len = skb->len - hlen;
  seg->payload = skb->data + hlen;
  seg->mss = (th->flags & TCP_FLAG_SYN) && hlen > sizeof(*th) ? tcp_parse_mss(th) : 0;
}

/* ---- passive open -------------------------------------------------------- */

static void tcp_listen_rcv(struct sock *lsk, const struct sk_buff *skb, const struct tcp_seg *seg) {
  const struct tcphdr *th = (const struct tcphdr *)skb->data;
  if (seg->flags & TCP_FLAG_RST) return;
  if (seg->flags & TCP_FLAG_ACK) { /* no such half-open connection */
    tcp_send_reset(skb, th, seg->len);
    return;
  }
  if (!(seg->flags & TCP_FLAG_SYN)) return;
  if (lsk->accept_len >= lsk->backlog) {
    NET_INC(tcp_listen_overflows); /* the client will retry */
    return;
  }
  struct sock *child = sk_alloc(SOCK_STREAM, IPPROTO_TCP);
  if (!child) return;
  const struct iphdr *iph = ip_hdr(skb);
  child->laddr = iph->daddr;
  child->lport = th->dest;
  child->faddr = iph->saddr;
  child->fport = th->source;
  child->bound = true;
  child->irs = seg->seq;
  child->rcv_nxt = seg->seq + 1;
  child->iss = tcp_isn(child);
  child->snd_una = child->iss;
  child->snd_wnd = seg->window;
  child->mss = seg->mss ? MIN(seg->mss, (u16)TCP_MSS) : TCP_MSS_DEFAULT;
  child->parent = lsk;
  list_add_tail(&child->accept_node, &lsk->syn_q);
  tcp_set_state(child, TCP_SYN_RCVD);
  inet_ehash_insert(child);
  NET_INC(tcp_passive_opens);
  tcp_send_synack(child);
}

/* The handshake's last ACK: the child moves to the accept queue. */
static void tcp_synrcvd_complete(struct sock *sk) {
  struct sock *lsk = sk->parent;
  tcp_set_state(sk, TCP_ESTABLISHED);
  list_del(&sk->accept_node);
  list_add_tail(&sk->accept_node, &lsk->accept_q);
  lsk->accept_len++;
  wake_up_all(&lsk->wq);
}

/* ---- synchronized states -------------------------------------------------- */

/* Returns false when the segment must go no further. */
static bool tcp_ack(struct sock *sk, const struct sk_buff *skb, const struct tcp_seg *seg) {
  if (seq_after(seg->ack, sk->snd_nxt)) { /* acknowledges what we never sent */
    tcp_send_ctl(sk, TCP_FLAG_ACK);
    return false;
  }
  if (sk->state == TCP_SYN_RCVD) {
    if (!seq_after(seg->ack, sk->snd_una)) {
      tcp_send_reset(skb, (const struct tcphdr *)skb->data, seg->len);
      return false;
    }
    tcp_synrcvd_complete(sk);
  }
  bool advanced = seq_after(seg->ack, sk->snd_una);
  if (advanced) sk->snd_una = seg->ack;
  if (advanced || sk->snd_wnd != seg->window) {
    sk->snd_wnd = seg->window;
    wake_up_all(&sk->wq); /* writers waiting for window */
  }
  return true;
}

static bool tcp_fin_acked(const struct sock *sk) { return (sk->shutdown & SEND_SHUTDOWN) && sk->snd_una == sk->snd_nxt; }

/* Advance the closing states on the ACK.  False if the socket is gone. */
static bool tcp_ack_state(struct sock *sk) {
  if (!tcp_fin_acked(sk)) return true;
  switch (sk->state) {
  case TCP_FIN_WAIT1:
    tcp_set_state(sk, TCP_FIN_WAIT2);
    return true;
  case TCP_CLOSING:
    tcp_set_state(sk, TCP_TIME_WAIT);
    tcp_done(sk);
    return false;
  case TCP_LAST_ACK:
    tcp_done(sk);
    return false;
  default:
    return true;
  }
}

/* Append in-order payload to the receive ring. */
static void tcp_data_queue(struct sock *sk, const u8 *data, u32 len) {
  if (!sk->rbuf && !(sk->rbuf = kmalloc(TCP_RCVBUF))) return; /* dropped: the peer retransmits */
  u32 n = MIN(len, TCP_RCVBUF - sk->rlen); /* beyond our window: not accepted */
  u32 tail = (sk->rhead + sk->rlen) % TCP_RCVBUF;
  u32 first = MIN(n, TCP_RCVBUF - tail);
  kmemcpy(sk->rbuf + tail, data, first);
  if (n > first) kmemcpy(sk->rbuf, data + first, n - first);
  sk->rlen += n;
  sk->rcv_nxt += n;
  wake_up_all(&sk->wq);
}

static bool tcp_can_receive(const struct sock *sk) {
  return sk->state == TCP_ESTABLISHED || sk->state == TCP_FIN_WAIT1 || sk->state == TCP_FIN_WAIT2;
}

/* The peer closed its half. */
static void tcp_fin(struct sock *sk) {
  sk->rcv_nxt++;
  sk->shutdown |= RCV_SHUTDOWN;
  switch (sk->state) {
  case TCP_ESTABLISHED:
    tcp_set_state(sk, TCP_CLOSE_WAIT);
    break;
  case TCP_FIN_WAIT1:
    tcp_set_state(sk, tcp_fin_acked(sk) ? TCP_TIME_WAIT : TCP_CLOSING);
    break;
  case TCP_FIN_WAIT2:
    tcp_set_state(sk, TCP_TIME_WAIT);
    break;
  default:
    break;
  }
  wake_up_all(&sk->wq);
}

static void tcp_rcv_state_process(struct sock *sk, const struct sk_buff *skb, const struct tcp_seg *seg) {
  if (seg->flags & TCP_FLAG_RST) {
    /* Only a reset at the expected sequence number counts (RFC 5961):
     * anything else could be a blind attack. */
    if (seg->seq == sk->rcv_nxt) tcp_reset(sk);
    return;
  }
  if (seg->flags & TCP_FLAG_SYN) {
    if (sk->state == TCP_SYN_RCVD && seg->seq == sk->irs)
      tcp_send_synack(sk); /* our SYN-ACK was lost: send it again */
    else
      tcp_send_ctl(sk, TCP_FLAG_ACK); /* challenge ACK */
    return;
  }
  if (!(seg->flags & TCP_FLAG_ACK)) return;
  if (!tcp_ack(sk, skb, seg) || !tcp_ack_state(sk)) return;

  bool fin = seg->flags & TCP_FLAG_FIN;
  if (!seg->len && !fin) return; /* a pure ACK needs no answer */
  if (seg->seq != sk->rcv_nxt) {
    NET_INC(tcp_ooo_drops);
    tcp_send_ctl(sk, TCP_FLAG_ACK); /* duplicate ACK: tell the peer where we are */
    return;
  }
  if (seg->len) {
    if (sk->orphan) { /* nobody will read it: RFC 2525 says reset */
      tcp_send_ctl(sk, TCP_FLAG_RST | TCP_FLAG_ACK);
      tcp_done(sk);
      return;
    }
    if (tcp_can_receive(sk)) tcp_data_queue(sk, seg->payload, seg->len);
  }
  if (fin && tcp_can_receive(sk)) tcp_fin(sk);
  tcp_send_ctl(sk, TCP_FLAG_ACK);
  if (sk->state == TCP_TIME_WAIT) tcp_done(sk);
}

int tcp_v4_rcv(struct sk_buff *skb) {
  NET_INC(tcp_in_segs);
  if (unlikely(!skb_may_pull(skb, sizeof(struct tcphdr)))) goto error;
  const struct tcphdr *th = (const struct tcphdr *)skb->data;
  if (unlikely(th->doff < 5 || !skb_may_pull(skb, th->doff * 4u))) goto error;
  if (unlikely(!tcp_csum_ok(skb))) {
    NET_INC(tcp_csum_errors);
    goto error;
  }
  if (ip_local_in(skb, IPPROTO_TCP, th->dest) < 0) return -1;

  struct tcp_seg seg;
  tcp_parse(skb, th, &seg);
  const struct iphdr *iph = ip_hdr(skb);
  struct sock *sk = inet_lookup(IPPROTO_TCP, iph->saddr, th->source, iph->daddr, th->dest);
  if (!sk || sk->state == TCP_CLOSED)
    tcp_send_reset(skb, th, seg.len);
  else if (sk->state == TCP_LISTEN)
    tcp_listen_rcv(sk, skb, &seg);
  else
    tcp_rcv_state_process(sk, skb, &seg);
  kfree_skb(skb);
  return 0;
error:
  NET_INC(tcp_in_errs);
  kfree_skb(skb);
  return -1;
}
