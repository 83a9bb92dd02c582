/*
 * @fileoverview The wire: the far end of the network.  Every web, kv or
 * firewall operation is a tiny client out there, run by this file: it puts
 * the client's frames on the link (into the present NIC's receive ring,
 * through its device model), takes the frames the NIC transmits, advances
 * the client's protocol and, when the client has its answer, completes the
 * operation with a result that depends only on (seed, op) and the server's
 * replies.
 *
 * Clients:
 *   web       TCP: SYN -> SYN-ACK; ACK + "GET <path> HTTP/1.0"; ACK each
 *             response segment; on the server's FIN send ACK + FIN; the
 *             server's ACK of that FIN completes the operation.
 *   kv        UDP "G <key>\n" (90%) or "S <key> <value>\n"; the reply
 *             datagram completes it.
 *   firewall  a 64-byte UDP datagram from a random client address; the echo
 *             or the ICMP port-unreachable of a REJECT rule completes it.
 * Results hash the reply payload as one byte stream (CRC32C over the bytes
 * in order, and their count), so how the server segmented its reply, which
 * depends on timing through the window, never shows in a result.
 *
 * A client's frames are not built in advance: an operation with something
 * to send sits once on a FIFO, and its frame is built from its state when
 * the receive ring has room.  That is the bounded backlog (one entry per
 * operation) and it coalesces ACKs, as a real client's delayed ACK would.
 */
#include <kernel/lib.h>
#include <kernel/uapi.h>
#include <kernel/workload.h>

#include "../net/proto_hdr.h"
#include "kjit_rt.h"
#include "nic_hw.h"

#define WIRE_MAX_OPS 128    /* clients in flight; at most a worker's listen backlog */
#define WIRE_INDEX_BITS 9   /* (client address, port) -> client */
#define WIRE_REQ_MAX 320
#define WIRE_TCP_WINDOW 32768
#define WIRE_MSS 1460
#define WIRE_TTL 57         /* the clients are seven hops away */
#define WIRE_FW_PAYLOAD 64
#define ETH_ZLEN 60         /* shortest frame: shorter ones are padded */
#define NO_SLOT 0xffffu

enum wire_state { WS_FREE = 0, WS_SYN_SENT, WS_ESTABLISHED, WS_FIN_SENT, WS_DGRAM_SENT };

/* What a client has to send next (bits of wire_op.pending). */
#define SEND_SYN 0x01
#define SEND_REQ 0x02 /* request payload (with ACK on TCP) */
#define SEND_ACK 0x04
#define SEND_FIN 0x08

/* Result tags of the ways an operation can end besides a normal reply. */
#define RESULT_TAG_UNREACH 0x554e52454143480full /* ICMP port unreachable */
#define RESULT_TAG_RESET 0x5253540000000000ull   /* TCP reset */

struct wire_op {
  u64 op, arrival_ns;
  u8 kind;    /* enum workload_id */
  u8 state;   /* enum wire_state */
  u8 pending; /* SEND_* */
  bool queued;
  bool ip_option; /* this client's datagram carries a Router Alert option */
  be32 caddr;     /* the client (network order) */
  be16 cport;
  be16 sport;     /* the server's port */
  u32 iss, snd_nxt, rcv_nxt;
  u32 crc;        /* CRC32C of the reply bytes so far */
  u64 rx_bytes;
  u16 req_len;
  u16 hnext;      /* index chain */
  struct list_head txnode;
  char req[WIRE_REQ_MAX];
};

static const struct nic_hw_model *wire_nic;
static struct wire_op wire_ops[WIRE_MAX_OPS];
static u16 wire_free[WIRE_MAX_OPS];
static u32 wire_nfree;
static u16 wire_index[1u << WIRE_INDEX_BITS];
static struct list_head wire_txq = LIST_HEAD_INIT(wire_txq);
static u16 wire_ip_id;
/* Frames are built and parsed 2 bytes into their buffers so that the IP
 * header behind the Ethernet header is aligned. */
static u8 wire_frame_buf[NIC_FRAME_MAX + 2] __aligned(8);
static u8 wire_rx_buf[NIC_FRAME_MAX + 2] __aligned(8);
#define wire_frame (wire_frame_buf + 2)
#define wire_rx (wire_rx_buf + 2)
static struct {
  u64 injected, completed, frames_in, frames_out, ring_full, stray;
} wire_stats;

/* ---- the table of clients -------------------------------------------------- */

static u32 wire_hash(be32 addr, be16 port) { return hash_32(addr ^ ((u32)port << 7) ^ port, WIRE_INDEX_BITS); }

static struct wire_op *wire_find(be32 addr, be16 port) {
  for (u16 i = wire_index[wire_hash(addr, port)]; i != NO_SLOT; i = wire_ops[i].hnext)
    if (wire_ops[i].caddr == addr && wire_ops[i].cport == port) return &wire_ops[i];
  return NULL;
}

static void wire_index_add(struct wire_op *o) {
  u16 *head = &wire_index[wire_hash(o->caddr, o->cport)];
  o->hnext = *head;
  *head = (u16)(o - wire_ops);
}

static void wire_index_del(struct wire_op *o) {
  u16 slot = (u16)(o - wire_ops);
  for (u16 *p = &wire_index[wire_hash(o->caddr, o->cport)]; *p != NO_SLOT; p = &wire_ops[*p].hnext) {
    if (*p == slot) {
      *p = o->hnext;
      return;
    }
  }
}

static struct wire_op *wire_op_alloc(void) {
  if (!wire_nfree) return NULL;
  struct wire_op *o = &wire_ops[wire_free[--wire_nfree]];
  memset(o, 0, offsetof(struct wire_op, req));
  INIT_LIST_HEAD(&o->txnode);
  return o;
}

static void wire_want(struct wire_op *o, u8 what) {
  o->pending |= what;
  if (!o->queued) {
    o->queued = true;
    list_add_tail(&o->txnode, &wire_txq);
  }
}

static void wire_complete(struct wire_op *o, u64 result) {
  kjit_op_complete(o->op, o->arrival_ns, result);
  wire_stats.completed++;
  if (o->queued) list_del(&o->txnode);
  wire_index_del(o);
  o->state = WS_FREE;
  wire_free[wire_nfree++] = (u16)(o - wire_ops);
}

/* The reply as one byte stream, tagged with the kind of operation. */
static u64 wire_stream_result(const struct wire_op *o) {
  return hash64(((u64)o->crc << 32 | (o->rx_bytes & 0xffffffffu)) ^ ((u64)o->kind << 56));
}

/* ---- building frames ------------------------------------------------------ */

static void *wire_eth_ip(u8 *f, const struct wire_op *o, u8 proto, u32 l4len, u32 *hlen) {
  static const u8 nic_mac[ETH_ALEN] = NIC_HW_MAC_INIT, gw_mac[ETH_ALEN] = ETH_GATEWAY_MAC_INIT;
  struct ethhdr *eh = (struct ethhdr *)f;
  __builtin_memcpy(eh->h_dest, nic_mac, ETH_ALEN);
  __builtin_memcpy(eh->h_source, gw_mac, ETH_ALEN);
  eh->h_proto = htons(ETH_P_IP);
  struct iphdr *iph = (struct iphdr *)(f + ETH_HLEN);
  u32 optlen = o->ip_option ? 4 : 0;
  iph->version = 4;
  iph->ihl = (u8)(5 + optlen / 4);
  iph->tos = 0;
  iph->tot_len = htons((u16)(sizeof(*iph) + optlen + l4len));
  iph->id = htons(wire_ip_id++);
  iph->frag_off = htons(IP_DF);
  iph->ttl = WIRE_TTL;
  iph->protocol = proto;
  iph->saddr = o->caddr;
  iph->daddr = htonl(SERVER_IP);
  if (optlen) {
    u8 *opt = (u8 *)(iph + 1);
    opt[0] = IPOPT_RA;
    opt[1] = 4;
    opt[2] = opt[3] = 0;
  }
  iph->check = 0;
  iph->check = ip_fast_csum(iph, iph->ihl);
  *hlen = ETH_HLEN + sizeof(*iph) + optlen;
  return f + *hlen;
}

static u32 wire_pad(u8 *f, u32 len) {
  if (len >= ETH_ZLEN) return len;
  memset(f + len, 0, ETH_ZLEN - len);
  return ETH_ZLEN;
}

static u32 wire_build_udp(u8 *f, const struct wire_op *o) {
  u32 hlen, ulen = sizeof(struct udphdr) + o->req_len;
  struct udphdr *uh = wire_eth_ip(f, o, IPPROTO_UDP, ulen, &hlen);
  uh->source = o->cport;
  uh->dest = o->sport;
  uh->len = htons((u16)ulen);
  uh->check = 0;
  memcpy(uh + 1, o->req, o->req_len);
  u16 check = csum_tcpudp_magic(o->caddr, htonl(SERVER_IP), ulen, IPPROTO_UDP, csum_partial(uh, ulen, 0));
  uh->check = check ? check : 0xffff;
  return wire_pad(f, hlen + ulen);
}

static u32 wire_build_tcp(u8 *f, const struct wire_op *o, u32 seq, u8 flags, const void *data, u32 dlen) {
  bool syn = flags & TCP_FLAG_SYN;
  u32 thlen = sizeof(struct tcphdr) + (syn ? TCPOLEN_MSS : 0), hlen;
  struct tcphdr *th = wire_eth_ip(f, o, IPPROTO_TCP, thlen + dlen, &hlen);
  th->source = o->cport;
  th->dest = o->sport;
  th->seq = htonl(seq);
  th->ack_seq = (flags & TCP_FLAG_ACK) ? htonl(o->rcv_nxt) : 0;
  th->res1 = 0;
  th->doff = (u8)(thlen / 4);
  th->flags = flags;
  th->window = htons(WIRE_TCP_WINDOW);
  th->check = 0;
  th->urg_ptr = 0;
  if (syn) {
    u8 *opt = (u8 *)(th + 1);
    be16 mss = htons(WIRE_MSS);
    opt[0] = TCPOPT_MSS;
    opt[1] = TCPOLEN_MSS;
    __builtin_memcpy(opt + 2, &mss, 2);
  }
  memcpy((u8 *)th + thlen, data, dlen);
  th->check = csum_tcpudp_magic(o->caddr, htonl(SERVER_IP), thlen + dlen, IPPROTO_TCP, csum_partial(th, thlen + dlen, 0));
  return wire_pad(f, hlen + thlen + dlen);
}

/* Put the client's next frame on the link; false if the NIC had no
 * receive buffer (the state is only advanced once the frame is in). */
static bool wire_send_one(struct wire_op *o) {
  u32 len;
  u8 sent;
  if (o->kind != W_WEB) {
    len = wire_build_udp(wire_frame, o);
    sent = SEND_REQ;
  } else if (o->pending & SEND_SYN) {
    len = wire_build_tcp(wire_frame, o, o->iss, TCP_FLAG_SYN, NULL, 0);
    sent = SEND_SYN;
  } else if (o->pending & SEND_REQ) {
    len = wire_build_tcp(wire_frame, o, o->snd_nxt, TCP_FLAG_ACK | TCP_FLAG_PSH, o->req, o->req_len);
    sent = SEND_REQ | SEND_ACK;
  } else if (o->pending & SEND_FIN) {
    len = wire_build_tcp(wire_frame, o, o->snd_nxt, TCP_FLAG_ACK | TCP_FLAG_FIN, NULL, 0);
    sent = SEND_FIN | SEND_ACK;
  } else {
    len = wire_build_tcp(wire_frame, o, o->snd_nxt, TCP_FLAG_ACK, NULL, 0);
    sent = SEND_ACK;
  }
  if (!wire_nic->rx_deliver(wire_frame, len)) {
    wire_stats.ring_full++;
    return false;
  }
  wire_stats.frames_out++;
  o->pending &= (u8)~sent;
  if (sent & SEND_SYN) o->snd_nxt = o->iss + 1;
  if (o->kind == W_WEB && (sent & SEND_REQ)) o->snd_nxt += o->req_len;
  if (sent & SEND_FIN) {
    o->snd_nxt++;
    o->state = WS_FIN_SENT;
  }
  if (o->kind != W_WEB) o->state = WS_DGRAM_SENT;
  return true;
}

/* Inject what the clients have to send, in order, while the ring has room. */
static void wire_flush(void) {
  while (!list_empty(&wire_txq)) {
    struct wire_op *o = list_first_entry(&wire_txq, struct wire_op, txnode);
    while (o->pending)
      if (!wire_send_one(o)) return;
    list_del(&o->txnode);
    o->queued = false;
  }
}

/* ---- starting operations ---------------------------------------------------- */

/* A client endpoint unique among the operations in flight: op * odd is a
 * bijection modulo 2^30, split into 15 bits of host and 15 of port. */
static void wire_client_endpoint(u64 op, be32 *addr, be16 *port) {
  u32 x = (u32)(op * 0x9e3779b1u) & ((1u << 30) - 1);
  *addr = htonl(CLIENT_NET | ((x >> 15) + 1));
  *port = htons((u16)(1024 + (x & 0x7fff)));
}

static void wire_make_web(struct wire_op *o, struct krand *r) {
  u32 n = web_npaths();
  const char *path = n ? web_path((u32)(krand_next(r) % n)) : "/";
  o->req_len = (u16)MIN(ksnprintf(o->req, WIRE_REQ_MAX, "GET %s HTTP/1.0\r\nHost: kjit\r\n\r\n", path), WIRE_REQ_MAX - 1);
  o->iss = (u32)krand_next(r);
  o->sport = htons((u16)(WEB_PORT_BASE + op_task(o->op)));
  o->state = WS_SYN_SENT;
  o->pending = SEND_SYN;
}

static void wire_make_kv(struct wire_op *o, struct krand *r) {
  u32 key = (u32)(krand_next(r) % KV_KEYS);
  bool set = krand_next(r) % 10 == 0;
  int n;
  if (set) {
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    char value[KV_VALUE_MAX + 1];
    u32 vlen = 8 + (u32)(krand_next(r) % (KV_VALUE_MAX - 8 + 1));
    for (u32 i = 0; i < vlen; i++) value[i] = alphabet[krand_next(r) % (sizeof(alphabet) - 1)];
    value[vlen] = 0;
    n = ksnprintf(o->req, WIRE_REQ_MAX, "S k%u %s\n", key, value);
  } else {
    n = ksnprintf(o->req, WIRE_REQ_MAX, "G k%u\n", key);
  }
  o->req_len = (u16)n;
  o->ip_option = (krand_next(r) & 7) == 0; /* some clients' stacks add options */
  o->sport = htons((u16)(KV_PORT_BASE + op_task(o->op)));
  o->pending = SEND_REQ;
}

static void wire_make_firewall(struct wire_op *o, struct krand *r) {
  o->caddr = htonl(CLIENT_NET | (u32)(krand_next(r) & 0xffff));
  o->cport = htons((u16)(1024 + o->op % 64000));
  int n = ksnprintf(o->req, WIRE_REQ_MAX, "F %lu ", (unsigned long)o->op);
  for (int i = n; i < WIRE_FW_PAYLOAD; i++) o->req[i] = (char)('a' + (o->op + (u64)i) % 26);
  o->req_len = WIRE_FW_PAYLOAD;
  o->sport = htons((u16)(FW_PORT_BASE + op_task(o->op)));
  o->pending = SEND_REQ;
}

void wire_inject(u64 op, u64 arrival_ns, enum workload_id kind) {
  struct wire_op *o = wire_op_alloc();
  if (!o) panic("wire: operation %lu injected with no free client", (unsigned long)op);
  struct krand r;
  krand_seed(&r, workload_config.seed ^ hash64(op));
  o->op = op;
  o->arrival_ns = arrival_ns;
  o->kind = (u8)kind;
  wire_client_endpoint(op, &o->caddr, &o->cport);
  if (kind == W_WEB)
    wire_make_web(o, &r);
  else if (kind == W_KV)
    wire_make_kv(o, &r);
  else if (kind == W_FIREWALL)
    wire_make_firewall(o, &r);
  else
    panic("wire: operation %lu has kind %d, which does not travel by network", (unsigned long)op, kind);
  /* Two random firewall clients may draw the same address and port: move
   * the newcomer to a free port so each reply finds its client. */
  while (wire_find(o->caddr, o->cport)) {
    u16 port = ntohs(o->cport);
    o->cport = htons(port == 65535 ? 1024 : (u16)(port + 1));
  }
  wire_index_add(o);
  wire_stats.injected++;
  wire_want(o, 0);
  wire_flush();
}

/* ---- frames from the server ------------------------------------------------- */

static void wire_tcp_input(struct wire_op *o, const struct tcphdr *th, const u8 *data, u32 dlen) {
  u32 seq = ntohl(th->seq), ack = ntohl(th->ack_seq);
  if (th->flags & TCP_FLAG_RST) {
    wire_complete(o, hash64(RESULT_TAG_RESET ^ o->kind));
    return;
  }
  if (o->state == WS_SYN_SENT) {
    if ((th->flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) != (TCP_FLAG_SYN | TCP_FLAG_ACK) || ack != o->iss + 1) return;
    if (o->pending & SEND_SYN) return; /* an answer to a SYN not yet sent? not ours */
    o->rcv_nxt = seq + 1;
    o->state = WS_ESTABLISHED;
    wire_want(o, SEND_REQ);
    return;
  }
  if (dlen) {
    if (seq == o->rcv_nxt) {
      o->crc = crc32c(o->crc, data, dlen);
      o->rx_bytes += dlen;
      o->rcv_nxt += dlen;
    }
    wire_want(o, SEND_ACK); /* in order: acknowledge; otherwise: a duplicate ACK */
  }
  /* The server's FIN, once everything before it has arrived. */
  if ((th->flags & TCP_FLAG_FIN) && o->state == WS_ESTABLISHED && seq + dlen == o->rcv_nxt) {
    o->rcv_nxt++;
    wire_want(o, SEND_FIN);
  }
  if (o->state == WS_FIN_SENT && (th->flags & TCP_FLAG_ACK) && ack == o->snd_nxt)
    wire_complete(o, wire_stream_result(o));
}

static void wire_udp_input(struct wire_op *o, const u8 *data, u32 dlen) {
  if (o->state != WS_DGRAM_SENT) return;
  o->crc = crc32c(0, data, dlen);
  o->rx_bytes = dlen;
  wire_complete(o, wire_stream_result(o));
}

/* Destination unreachable: the quoted header names the client. */
static void wire_icmp_input(const struct icmphdr *ih, u32 len) {
  if (ih->type != ICMP_DEST_UNREACH || len < sizeof(*ih) + sizeof(struct iphdr) + 8) return;
  const struct iphdr *q = (const struct iphdr *)(ih + 1);
  if (len < sizeof(*ih) + q->ihl * 4u + 8) return;
  const be16 *ports = (const be16 *)((const u8 *)q + q->ihl * 4u);
  struct wire_op *o = wire_find(q->saddr, ports[0]);
  if (!o) {
    wire_stats.stray++;
    return;
  }
  u64 tag = RESULT_TAG_UNREACH ^ ((u64)ih->code << 40) ^ ((u64)q->protocol << 32);
  wire_complete(o, hash64(tag ^ ((u64)ntohs(ports[0]) << 16 | ntohs(ports[1])) ^ ((u64)o->kind << 56)));
}

static void wire_receive(const u8 *f, u32 len) {
  const struct ethhdr *eh = (const struct ethhdr *)f;
  if (len < ETH_HLEN + sizeof(struct iphdr) || eh->h_proto != htons(ETH_P_IP)) goto stray;
  const struct iphdr *iph = (const struct iphdr *)(f + ETH_HLEN);
  u32 hlen = iph->ihl * 4u, tot = ntohs(iph->tot_len);
  if (hlen < sizeof(*iph) || tot < hlen || ETH_HLEN + tot > len) goto stray;
  const u8 *l4 = (const u8 *)iph + hlen;
  u32 l4len = tot - hlen;
  if (iph->protocol == IPPROTO_ICMP) {
    wire_icmp_input((const struct icmphdr *)l4, l4len);
    return;
  }
  if (l4len < 8) goto stray;
  const be16 *ports = (const be16 *)l4; /* source, destination */
  struct wire_op *o = wire_find(iph->daddr, ports[1]);
  if (!o) goto stray;
  if (iph->protocol == IPPROTO_TCP && o->kind == W_WEB && l4len >= sizeof(struct tcphdr)) {
    const struct tcphdr *th = (const struct tcphdr *)l4;
    u32 thlen = th->doff * 4u;
    if (thlen < sizeof(*th) || thlen > l4len) goto stray;
    wire_tcp_input(o, th, l4 + thlen, l4len - thlen);
    return;
  }
  if (iph->protocol == IPPROTO_UDP && o->kind != W_WEB) {
    wire_udp_input(o, l4 + sizeof(struct udphdr), l4len - (u32)sizeof(struct udphdr));
    return;
  }
stray:
  wire_stats.stray++; /* nothing out here is waiting for it */
}

/* ---- the interface to the main loop ------------------------------------------- */

void wire_init(void) {
  /* The device the driver brought up; failing that the first one the
   * machine has that we know how to emulate. */
  const struct nic_hw_model *first = NULL;
  for (u32 i = 0; i < kjit_hw_ndevices() && !wire_nic; i++) {
    const struct nic_hw_model *m = hw_nic_model(kjit_hw_device(i));
    if (!m) continue;
    if (!first) first = m;
    if (m->up()) wire_nic = m;
  }
  if (!wire_nic) wire_nic = first;
  if (!wire_nic) panic("wire: no network device on the machine");
  for (u32 i = 0; i < WIRE_MAX_OPS; i++) wire_free[i] = (u16)(WIRE_MAX_OPS - 1 - i);
  wire_nfree = WIRE_MAX_OPS;
  memset(wire_index, 0xff, sizeof(wire_index));
  INIT_LIST_HEAD(&wire_txq);
  printk("wire: attached to %s, %u clients", wire_nic->name, WIRE_MAX_OPS);
}

bool wire_can_accept(void) { return wire_nfree != 0; }

u32 wire_collect(void) {
  u32 n = 0, len;
  while ((len = wire_nic->tx_take(wire_rx, NIC_FRAME_MAX))) {
    wire_stats.frames_in++;
    wire_receive(wire_rx, len);
    n++;
  }
  wire_flush();
  return n;
}

bool wire_pending(void) { return !list_empty(&wire_txq); }
