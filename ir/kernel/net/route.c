/*
 * @fileoverview IPv4 routing: a path-compressed binary trie holding the
 * forwarding table, searched for the longest matching prefix.  Input asks
 * "is this destination ours, and is the source plausible?" (a loose
 * reverse-path check, as fib_validate_source does); output picks the next
 * hop and our source address.
 *
 * Each trie node covers a prefix (key, plen) and carries the route for
 * exactly that prefix, if any; its children differ in bit `plen`.  Nodes
 * exist only where routes are or where two subtrees branch, so a lookup
 * visits at most one node per distinct branching point on its path.
 */
#include <kernel/lib.h>
#include <kernel/mm.h>
#include <kernel/workload.h>

#include "net_priv.h"

struct rt_node {
  u32 key; /* host order, masked to plen */
  u8 plen;
  struct fib_entry *fe; /* route for exactly key/plen, or NULL */
  struct rt_node *child[2];
};

static struct rt_node *fib_root;
static struct kmem_cache *fib_node_cache;
static struct kmem_cache *fib_entry_cache;
static u32 fib_nroutes;

static inline u32 prefix_mask(unsigned plen) { return plen ? ~0u << (32 - plen) : 0; }
static inline unsigned key_bit(u32 key, unsigned pos) { return (key >> (31 - pos)) & 1; }

/* Length of the common prefix of a and b, at most max bits. */
static unsigned common_prefix(u32 a, u32 b, unsigned max) {
  u32 diff = a ^ b;
  unsigned n = diff ? (unsigned)__builtin_clz(diff) : 32;
  return n < max ? n : max;
}

static struct rt_node *rt_node_new(u32 key, unsigned plen, struct fib_entry *fe) {
  struct rt_node *n = kmem_cache_zalloc(fib_node_cache);
  if (!n) panic("route: out of memory for trie nodes");
  n->key = key & prefix_mask(plen);
  n->plen = (u8)plen;
  n->fe = fe;
  return n;
}

static void fib_insert_entry(u32 key, unsigned plen, struct fib_entry *fe) {
  struct rt_node **pp = &fib_root;
  key &= prefix_mask(plen);
  for (;;) {
    struct rt_node *n = *pp;
    if (!n) {
      *pp = rt_node_new(key, plen, fe);
      return;
    }
    unsigned common = common_prefix(key, n->key, MIN(plen, (unsigned)n->plen));
    if (common == n->plen) {
      if (plen == n->plen) { /* the same prefix: the new route replaces the old */
        if (n->fe) {
          kmem_cache_free(fib_entry_cache, n->fe);
          fib_nroutes--;
        }
        n->fe = fe;
        return;
      }
      pp = &n->child[key_bit(key, n->plen)]; /* n covers key: descend */
      continue;
    }
    /* n and the new prefix diverge (or the new one covers n): put a node
     * at the branching point above n. */
    struct rt_node *up = rt_node_new(key, common, common == plen ? fe : NULL);
    up->child[key_bit(n->key, common)] = n;
    if (common != plen) up->child[key_bit(key, common)] = rt_node_new(key, plen, fe);
    *pp = up;
    return;
  }
}

const struct fib_entry *fib_lookup(be32 addr) {
  u32 a = ntohl(addr);
  const struct fib_entry *best = NULL;
  const struct rt_node *n = fib_root;
  while (n) {
    if ((a ^ n->key) & prefix_mask(n->plen)) break; /* n's prefix does not match: nothing longer can */
    if (n->fe) best = n->fe;
    if (n->plen == 32) break;
    n = n->child[key_bit(a, n->plen)];
  }
  return best;
}

static bool ipv4_is_martian_source(u32 a) {
  return (a >> 24) == 0 || (a >> 28) == 0xe || a == 0xffffffffu; /* 0/8, multicast, broadcast */
}

int ip_route_input(be32 saddr, be32 daddr) {
  const struct fib_entry *d = fib_lookup(daddr);
  if (!d || d->type != RTN_LOCAL) return -EINVAL; /* not ours, and this host does not forward */
  ((struct fib_entry *)d)->uses++;
  if (ipv4_is_martian_source(ntohl(saddr))) return -EINVAL;
  const struct fib_entry *s = fib_lookup(saddr);
  if (!s || s->type != RTN_UNICAST) return -EINVAL; /* we could not answer it */
  return 0;
}

int ip_route_output(be32 daddr, be32 saddr, struct rtable *rt) {
  const struct fib_entry *fe = fib_lookup(daddr);
  if (unlikely(!fe || fe->type != RTN_UNICAST)) {
    NET_INC(ip_out_no_routes);
    return -ENETUNREACH;
  }
  ((struct fib_entry *)fe)->uses++;
  rt->daddr = daddr;
  rt->saddr = saddr ? saddr : fe->prefsrc;
  rt->nexthop = fe->gateway ? fe->gateway : daddr;
  return 0;
}

u32 route_count(void) { return fib_nroutes; }

/* ---- the table installed at boot ------------------------------------------ */

static void route_add(u32 prefix, unsigned plen, u8 type, u32 gateway) {
  struct fib_entry *fe = kmem_cache_zalloc(fib_entry_cache);
  if (!fe) panic("route: out of memory");
  fe->prefix = htonl(prefix & prefix_mask(plen));
  fe->plen = (u8)plen;
  fe->type = type;
  fe->gateway = htonl(gateway);
  fe->prefsrc = htonl(SERVER_IP);
  fe->dev = &nic0;
  fib_nroutes++;
  fib_insert_entry(prefix, plen, fe);
}

void route_init(void) {
  fib_node_cache = kmem_cache_create("fib_node", sizeof(struct rt_node), 8);
  fib_entry_cache = kmem_cache_create("fib_entry", sizeof(struct fib_entry), 8);

  /* Our address, the local subnet and its broadcast addresses. */
  route_add(SERVER_IP, 32, RTN_LOCAL, 0);
  route_add(IPV4_ADDR(10, 0, 0, 0), 24, RTN_UNICAST, 0);
  route_add(IPV4_ADDR(10, 0, 0, 0), 32, RTN_BROADCAST, 0);
  route_add(IPV4_ADDR(10, 0, 0, 255), 32, RTN_BROADCAST, 0);
  route_add(0, 0, RTN_UNICAST, GATEWAY_IP);

  /* The clients' network, with more specific routes inside it learnt from
   * the site's routers: lookups for client addresses walk deep. */
  route_add(CLIENT_NET, 16, RTN_UNICAST, GATEWAY_IP);
  for (u32 j = 0; j < 16; j++) route_add(CLIENT_NET | (16 * j) << 8, 20, RTN_UNICAST, IPV4_ADDR(10, 0, 0, 253));
  for (u32 j = 0; j < 32; j++)
    route_add(CLIENT_NET | (8 * j) << 8 | 16 * (j % 16), 28, RTN_UNICAST, IPV4_ADDR(10, 0, 0, 252));
  route_add(IPV4_ADDR(10, 2, 0, 0), 16, RTN_UNICAST, GATEWAY_IP);

  /* Branch offices: 10.16-19.<b>.0/24 behind four routers. */
  for (u32 a = 0; a < 4; a++)
    for (u32 b = 0; b < 220; b++) route_add(IPV4_ADDR(10, 16 + a, b, 0), 24, RTN_UNICAST, IPV4_ADDR(10, 0, 0, 250 + a));
  for (u32 k = 0; k < 16; k++) route_add(IPV4_ADDR(10, 0, 1, 16 * k), 28, RTN_UNICAST, IPV4_ADDR(10, 0, 0, 251));

  /* Partner networks; every fourth is null-routed. */
  for (u32 i = 0; i < 32; i++)
    route_add(IPV4_ADDR(172, 16 + i, 0, 0), 16, i % 4 == 3 ? RTN_BLACKHOLE : RTN_UNICAST, GATEWAY_IP);
  for (u32 k = 0; k < 16; k++) route_add(IPV4_ADDR(192, 168, 16 * k, 0), 20, RTN_UNICAST, GATEWAY_IP);

  route_add(IPV4_ADDR(100, 64, 0, 0), 10, RTN_UNREACHABLE, 0);
  route_add(IPV4_ADDR(127, 0, 0, 0), 8, RTN_BLACKHOLE, 0);
  route_add(IPV4_ADDR(224, 0, 0, 0), 4, RTN_BLACKHOLE, 0);
  printk("route: %u routes", fib_nroutes);
}
