/*
 * @fileoverview Socket demultiplexing: connected sockets in a hash of their
 * 4-tuple (jhash, 4096 chains), bound and listening sockets in a hash of
 * their local port.  A received segment is looked up in the first, then
 * the second, as Linux's __inet_lookup does.  At boot the table is loaded
 * with idle background connections (a server's long-lived SSH sessions)
 * so that its chains are as long as a busy host's.
 */
#include <kernel/lib.h>
#include <kernel/mm.h>
#include <kernel/uapi.h>
#include <kernel/workload.h>

#include "net_priv.h"

#define EHASH_BITS 12
#define EHASH_SIZE (1u << EHASH_BITS)
#define BHASH_BITS 8
#define BHASH_SIZE (1u << BHASH_BITS)

static struct hlist_head ehash[EHASH_SIZE];
static struct hlist_head bhash[BHASH_SIZE];
static struct kmem_cache *sock_cache;
static u32 nsocks;
/* Fixed rather than random: runs must be reproducible, and nothing here
 * faces an attacker who could aim at one chain. */
static const u32 inet_hash_secret = 0x5f3759dfu;

static u32 inet_ehashfn(be32 laddr, be16 lport, be32 faddr, be16 fport) {
  return jhash_3words(laddr, faddr, (u32)lport << 16 | fport, inet_hash_secret) & (EHASH_SIZE - 1);
}

static u32 inet_bhashfn(u8 protocol, be16 lport) { return hash_32((u32)protocol << 16 | ntohs(lport), BHASH_BITS); }

void sock_hash_init(void) { sock_cache = kmem_cache_create("sock", sizeof(struct sock), 8); }

struct sock *sk_alloc(u8 type, u8 protocol) {
  struct sock *sk = kmem_cache_zalloc(sock_cache);
  if (!sk) return NULL;
  sk->type = type;
  sk->protocol = protocol;
  sk->state = TCP_CLOSED;
  sk->mss = TCP_MSS_DEFAULT;
  wait_queue_init(&sk->wq);
  INIT_LIST_HEAD(&sk->syn_q);
  INIT_LIST_HEAD(&sk->accept_q);
  INIT_LIST_HEAD(&sk->accept_node);
  INIT_LIST_HEAD(&sk->rxq);
  nsocks++;
  return sk;
}

void sk_free(struct sock *sk) {
  inet_unhash(sk);
  struct list_head *pos, *n;
  list_for_each_safe(pos, n, &sk->rxq) {
    list_del(pos);
    kfree(list_entry(pos, struct dgram, node));
  }
  kfree(sk->rbuf);
  kmem_cache_free(sock_cache, sk);
  nsocks--;
}

void inet_ehash_insert(struct sock *sk) {
  hlist_add_head(&sk->hnode, &ehash[inet_ehashfn(sk->laddr, sk->lport, sk->faddr, sk->fport)]);
  sk->hashed = SK_EHASH;
}

void inet_bhash_insert(struct sock *sk) {
  hlist_add_head(&sk->hnode, &bhash[inet_bhashfn(sk->protocol, sk->lport)]);
  sk->hashed = SK_BHASH;
}

void inet_unhash(struct sock *sk) {
  if (sk->hashed == SK_UNHASHED) return;
  hlist_del(&sk->hnode);
  sk->hashed = SK_UNHASHED;
}

bool inet_port_in_use(u8 protocol, be16 port) {
  for (struct hlist_node *n = bhash[inet_bhashfn(protocol, port)].first; n; n = n->next) {
    const struct sock *sk = hlist_entry(n, struct sock, hnode);
    if (sk->protocol == protocol && sk->lport == port) return true;
  }
  return false;
}

/* saddr/sport: the remote end (the packet's source); daddr/dport: ours. */
struct sock *inet_lookup_established(u8 protocol, be32 saddr, be16 sport, be32 daddr, be16 dport) {
  struct hlist_head *head = &ehash[inet_ehashfn(daddr, dport, saddr, sport)];
  for (struct hlist_node *n = head->first; n; n = n->next) {
    struct sock *sk = hlist_entry(n, struct sock, hnode);
    if (sk->faddr == saddr && sk->fport == sport && sk->laddr == daddr && sk->lport == dport &&
        sk->protocol == protocol)
      return sk;
  }
  return NULL;
}

/* A socket bound to the exact address beats one bound to INADDR_ANY. */
struct sock *inet_lookup_bound(u8 protocol, be32 daddr, be16 dport) {
  struct sock *wild = NULL;
  for (struct hlist_node *n = bhash[inet_bhashfn(protocol, dport)].first; n; n = n->next) {
    struct sock *sk = hlist_entry(n, struct sock, hnode);
    if (sk->protocol != protocol || sk->lport != dport) continue;
    if (sk->laddr == daddr) return sk;
    if (sk->laddr == 0) wild = sk;
  }
  return wild;
}

struct sock *inet_lookup(u8 protocol, be32 saddr, be16 sport, be32 daddr, be16 dport) {
  struct sock *sk = inet_lookup_established(protocol, saddr, sport, daddr, dport);
  return sk ? sk : inet_lookup_bound(protocol, daddr, dport);
}

u32 sock_hash_count(void) { return nsocks; }

void sock_hash_populate_background(u32 n) {
  for (u32 i = 0; i < n; i++) {
    struct sock *sk = sk_alloc(SOCK_STREAM, IPPROTO_TCP);
    if (!sk) panic("net: out of memory for background sockets");
    u32 host = i + 1; /* 10.2.0.1, 10.2.0.2, ... */
    sk->laddr = htonl(SERVER_IP);
    sk->lport = htons(22);
    sk->faddr = htonl(IPV4_ADDR(10, 2, host >> 8, host & 0xff));
    sk->fport = htons((u16)(1024 + (i * 7919u) % 60000));
    sk->state = TCP_ESTABLISHED;
    sk->iss = sk->snd_una = sk->snd_nxt = hash_32(i, 32);
    sk->irs = sk->rcv_nxt = hash_32(~i, 32);
    sk->snd_wnd = 65535;
    sk->mss = TCP_MSS;
    inet_ehash_insert(sk);
  }
}
