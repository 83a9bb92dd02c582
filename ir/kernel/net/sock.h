/*
 * @fileoverview Internet sockets: the protocol control block shared by TCP
 * and UDP, the TCP states, and the demultiplexing hash tables
 * (net/sock_hash.c).
 */
#ifndef NET_SOCK_H
#define NET_SOCK_H

#include <kernel/sched.h>
#include <kernel/types.h>

struct file;
struct sk_buff;

enum tcp_state {
  TCP_CLOSED = 0,
  TCP_LISTEN,
  TCP_SYN_RCVD,
  TCP_ESTABLISHED,
  TCP_FIN_WAIT1,
  TCP_FIN_WAIT2,
  TCP_CLOSE_WAIT,
  TCP_CLOSING,
  TCP_LAST_ACK,
  TCP_TIME_WAIT,
};

#define RCV_SHUTDOWN 1  /* the peer sent FIN: reads see end of file */
#define SEND_SHUTDOWN 2 /* we sent FIN: no more writes */

enum sk_hash_kind { SK_UNHASHED = 0, SK_EHASH, SK_BHASH };

#define TCP_MSS_DEFAULT 536
#define TCP_MSS 1460
#define TCP_RCVBUF 8192   /* per connection receive ring */
#define UDP_RCVQ_MAX 512  /* datagrams queued before the socket drops */
#define SOMAXCONN 4096

/* A queued datagram: the payload is copied out of the skb so the receive
 * buffer goes straight back to the driver. */
struct dgram {
  struct list_head node;
  be32 saddr;
  be16 sport;
  u32 len;
  u8 data[];
};

struct sock {
  struct hlist_node hnode; /* ehash (4-tuple) or bhash (local port) chain */
  u8 hashed;               /* enum sk_hash_kind */
  u8 type;                 /* SOCK_STREAM / SOCK_DGRAM */
  u8 protocol;             /* IPPROTO_TCP / IPPROTO_UDP */
  u8 state;                /* enum tcp_state (UDP: CLOSED) */
  u8 shutdown;             /* RCV_SHUTDOWN | SEND_SHUTDOWN */
  bool orphan;             /* no file refers to it any more */
  bool bound;
  int err;                 /* pending error (ECONNRESET ...) */
  be32 laddr, faddr;
  be16 lport, fport;
  struct wait_queue wq;    /* readers, writers, accept() and poll() */

  /* TCP sequence space (host order) */
  u32 iss, snd_una, snd_nxt, snd_wnd;
  u32 irs, rcv_nxt;
  u32 mss;                 /* peer's MSS, capped at TCP_MSS */
  /* TCP receive ring: in-order bytes not yet read */
  u8 *rbuf;
  u32 rhead, rlen;

  /* TCP listener: half-open connections, and connections completed but
   * not yet accepted (a child is on one of the two through accept_node) */
  struct list_head syn_q;
  struct list_head accept_q;
  u32 accept_len, backlog;
  struct sock *parent;       /* the listener, until accepted */
  struct list_head accept_node;

  /* UDP receive queue */
  struct list_head rxq;
  u32 rxq_len;
};

/* net/sock_hash.c */
void sock_hash_init(void);
struct sock *sk_alloc(u8 type, u8 protocol);
void sk_free(struct sock *sk);
void inet_ehash_insert(struct sock *sk);
void inet_bhash_insert(struct sock *sk);
void inet_unhash(struct sock *sk);
bool inet_port_in_use(u8 protocol, be16 port);
struct sock *inet_lookup_established(u8 protocol, be32 saddr, be16 sport, be32 daddr, be16 dport);
struct sock *inet_lookup_bound(u8 protocol, be32 daddr, be16 dport);
/* Established first, then the listener / bound socket. */
struct sock *inet_lookup(u8 protocol, be32 saddr, be16 sport, be32 daddr, be16 dport);
void sock_hash_populate_background(u32 n);
u32 sock_hash_count(void);

#endif
