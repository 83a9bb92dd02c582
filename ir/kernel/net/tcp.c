/*
 * @fileoverview TCP socket operations for the system calls: listen,
 * accept, send (segmented at the peer's MSS, within its window: a writer
 * blocks until ACKs open the window), receive from the in-order ring,
 * shutdown and close (FIN, or RST when unread data would be lost).
 */
#include <kernel/file.h>
#include <kernel/lib.h>
#include <kernel/sched.h>
#include <kernel/uapi.h>

#include "net_priv.h"

int tcp_listen(struct sock *sk, int backlog) {
  if (!sk->bound) return -EINVAL;
  if (sk->state != TCP_CLOSED && sk->state != TCP_LISTEN) return -EINVAL;
  sk->backlog = backlog < 1 ? 1 : backlog > SOMAXCONN ? SOMAXCONN : (u32)backlog;
  tcp_set_state(sk, TCP_LISTEN);
  return 0;
}

struct sock *tcp_accept(struct sock *lsk, bool nonblock, long *err) {
  if (lsk->state != TCP_LISTEN) {
    *err = -EINVAL;
    return NULL;
  }
  if (list_empty(&lsk->accept_q)) {
    if (nonblock) {
      *err = -EAGAIN;
      return NULL;
    }
    int r = wait_event(&lsk->wq, !list_empty(&lsk->accept_q));
    if (r) {
      *err = r;
      return NULL;
    }
  }
  struct sock *sk = list_first_entry(&lsk->accept_q, struct sock, accept_node);
  list_del(&sk->accept_node);
  lsk->accept_len--;
  sk->parent = NULL;
  return sk;
}

static bool tcp_can_send(const struct sock *sk) {
  return (sk->state == TCP_ESTABLISHED || sk->state == TCP_CLOSE_WAIT) && !(sk->shutdown & SEND_SHUTDOWN) &&
         !sk->err;
}

static long tcp_send_error(const struct sock *sk) { return sk->err ? -(long)sk->err : -EPIPE; }

long tcp_sendmsg(struct sock *sk, struct sk_iter *it, size_t len, bool nonblock) {
  if (sk->err) return -(long)sk->err;
  if (sk->shutdown & SEND_SHUTDOWN) return -EPIPE;
  if (sk->state == TCP_LISTEN || sk->state == TCP_CLOSED) return -ENOTCONN;
  size_t sent = 0;
  while (sent < len) {
    if (!tcp_can_send(sk)) return sent ? (long)sent : tcp_send_error(sk);
    u32 room = tcp_send_room(sk);
    if (!room) {
      if (nonblock) return sent ? (long)sent : -EAGAIN;
      int r = wait_event(&sk->wq, tcp_send_room(sk) || !tcp_can_send(sk));
      if (r) return sent ? (long)sent : r;
      continue;
    }
    u32 chunk = (u32)MIN(len - sent, (size_t)MIN(room, sk->mss));
    struct sk_buff *skb = alloc_skb_tx(chunk);
    if (!skb) return sent ? (long)sent : -ENOMEM;
    if (sk_iter_copy_from(it, skb_put(skb, chunk), chunk)) {
      kfree_skb(skb);
      return sent ? (long)sent : -EFAULT;
    }
    sent += chunk;
    tcp_send_data(sk, skb, sent == len);
  }
  return (long)sent;
}

static bool tcp_readable(const struct sock *sk) {
  return sk->rlen || (sk->shutdown & RCV_SHUTDOWN) || sk->err || sk->state == TCP_CLOSED;
}

long tcp_recvmsg(struct sock *sk, struct sk_iter *it, size_t len, bool nonblock) {
  if (sk->state == TCP_LISTEN) return -ENOTCONN;
  if (!sk->rlen) {
    if (!tcp_readable(sk)) {
      if (nonblock) return -EAGAIN;
      int r = wait_event(&sk->wq, tcp_readable(sk));
      if (r) return r;
    }
    if (!sk->rlen) return sk->err ? -(long)sk->err : 0; /* 0: end of stream */
  }
  u32 n = (u32)MIN(len, (size_t)sk->rlen);
  u32 first = MIN(n, TCP_RCVBUF - sk->rhead);
  if (sk_iter_copy_to(it, sk->rbuf + sk->rhead, first) || (n > first && sk_iter_copy_to(it, sk->rbuf, n - first)))
    return -EFAULT;
  u32 window_before = tcp_rcv_window(sk);
  sk->rhead = (sk->rhead + n) % TCP_RCVBUF;
  sk->rlen -= n;
  /* Reading reopened a window the peer saw as too small to send into:
   * tell it (no timer would probe otherwise). */
  if (window_before < sk->mss && tcp_rcv_window(sk) >= sk->mss && sk->state == TCP_ESTABLISHED)
    tcp_send_ctl(sk, TCP_FLAG_ACK);
  return n;
}

unsigned tcp_poll(struct sock *sk) {
  if (sk->state == TCP_LISTEN) return list_empty(&sk->accept_q) ? 0 : POLLIN;
  unsigned mask = 0;
  if (tcp_readable(sk)) mask |= POLLIN;
  if (tcp_can_send(sk) && tcp_send_room(sk)) mask |= POLLOUT;
  if (sk->err) mask |= POLLERR;
  if (sk->state == TCP_CLOSED || sk->shutdown == (RCV_SHUTDOWN | SEND_SHUTDOWN)) mask |= POLLHUP;
  return mask;
}

/* Close our sending half: FIN after the data already sent. */
static int tcp_send_fin(struct sock *sk) {
  if (sk->shutdown & SEND_SHUTDOWN) return 0;
  if (sk->state == TCP_ESTABLISHED)
    tcp_set_state(sk, TCP_FIN_WAIT1);
  else if (sk->state == TCP_CLOSE_WAIT)
    tcp_set_state(sk, TCP_LAST_ACK);
  else
    return -ENOTCONN;
  sk->shutdown |= SEND_SHUTDOWN;
  tcp_send_ctl(sk, TCP_FLAG_FIN | TCP_FLAG_ACK);
  return 0;
}

int tcp_shutdown(struct sock *sk, int how) {
  if (how < 0 || how > 2) return -EINVAL;
  if (how != SHUT_WR) sk->shutdown |= RCV_SHUTDOWN;
  if (how == 0) {
    wake_up_all(&sk->wq);
    return 0;
  }
  int err = tcp_send_fin(sk);
  wake_up_all(&sk->wq);
  return err;
}

/* Drop every connection a closing listener still holds. */
static void tcp_listen_stop(struct sock *lsk) {
  struct list_head *queues[2] = {&lsk->syn_q, &lsk->accept_q};
  for (int q = 0; q < 2; q++) {
    while (!list_empty(queues[q])) {
      struct sock *child = list_first_entry(queues[q], struct sock, accept_node);
      tcp_send_ctl(child, TCP_FLAG_RST | TCP_FLAG_ACK);
      tcp_done(child);
    }
  }
}

void tcp_close(struct sock *sk) {
  sk->orphan = true;
  switch (sk->state) {
  case TCP_LISTEN:
    tcp_listen_stop(sk);
    sk_free(sk);
    return;
  case TCP_CLOSED:
    sk_free(sk);
    return;
  case TCP_ESTABLISHED:
  case TCP_CLOSE_WAIT:
    if (sk->rlen) { /* unread data would be lost silently: reset instead */
      tcp_send_ctl(sk, TCP_FLAG_RST | TCP_FLAG_ACK);
      tcp_done(sk);
      return;
    }
    tcp_send_fin(sk);
    return;
  default:
    return; /* FIN already sent: the peer's ACK or FIN ends it (tcp_done) */
  }
}

void tcp_init(void) {
  static const struct net_protocol tcp_protocol = {.handler = tcp_v4_rcv, .name = "tcp"};
  inet_add_protocol(&tcp_protocol, IPPROTO_TCP);
}
