/*
 * @fileoverview On-the-wire headers (Ethernet, IPv4, UDP, TCP, ICMP) and the
 * Internet-checksum helpers built on lib.h's csum_partial.  Shared by the
 * stack and by the wire (hw/wire.c), which speaks the same protocols from
 * the far end.
 */
#ifndef NET_PROTO_HDR_H
#define NET_PROTO_HDR_H

#include <kernel/lib.h>
#include <kernel/types.h>

#define ETH_ALEN 6
#define ETH_HLEN 14
#define ETH_DATA_LEN 1500
#define ETH_FRAME_LEN 1514
#define ETH_P_IP 0x0800
#define ETH_P_ARP 0x0806
/* The router every packet leaves through (no ARP: its address is fixed). */
#define ETH_GATEWAY_MAC_INIT {0x52, 0x54, 0x00, 0x0a, 0x00, 0xfe}

struct ethhdr {
  u8 h_dest[ETH_ALEN];
  u8 h_source[ETH_ALEN];
  be16 h_proto;
} __packed;

struct iphdr {
  u8 ihl : 4, version : 4; /* little-endian bit order */
  u8 tos;
  be16 tot_len;
  be16 id;
  be16 frag_off;
  u8 ttl;
  u8 protocol;
  u16 check;
  be32 saddr;
  be32 daddr;
};
#define IP_DF 0x4000
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff
#define IPDEFTTL 64

/* IP options (RFC 791) */
#define IPOPT_END 0
#define IPOPT_NOOP 1
#define IPOPT_RR 7
#define IPOPT_TS 68
#define IPOPT_LSRR 131
#define IPOPT_SSRR 137
#define IPOPT_RA 148

struct udphdr {
  be16 source;
  be16 dest;
  be16 len;
  u16 check;
};

struct tcphdr {
  be16 source;
  be16 dest;
  be32 seq;
  be32 ack_seq;
  u8 res1 : 4, doff : 4;
  u8 flags;
  be16 window;
  u16 check;
  be16 urg_ptr;
};
#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_PSH 0x08
#define TCP_FLAG_ACK 0x10
#define TCPOPT_EOL 0
#define TCPOPT_NOP 1
#define TCPOPT_MSS 2
#define TCPOLEN_MSS 4

struct icmphdr {
  u8 type;
  u8 code;
  u16 checksum;
  union {
    struct {
      be16 id;
      be16 sequence;
    } echo;
    be32 gateway;
    u32 unused;
  } un;
};
#define ICMP_ECHOREPLY 0
#define ICMP_DEST_UNREACH 3
#define ICMP_ECHO 8
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PROT_UNREACH 2
#define ICMP_PORT_UNREACH 3

/* Checksum of an IP header: 0 when it is valid (a header that contains its
 * own checksum sums to all ones). */
static inline u16 ip_fast_csum(const void *iph, unsigned ihl) { return csum_fold(csum_partial(iph, ihl * 4u, 0)); }

/* One's-complement addition of two 64-bit partial sums: the carry out of
 * bit 63 comes back in at bit 0. */
static inline u64 csum_add64(u64 a, u64 b) {
  u64 r = a + b;
  return r + (r < b);
}

/* Partial sum of the TCP/UDP pseudo-header (addresses as on the wire).  The
 * pseudo-header words are added unfolded (they stay far below 2^64), but
 * `sum` may use all 64 bits (csum_partial_adc's does), so it is added with
 * the end-around carry: dropping that carry would change the checksum. */
static inline u64 csum_tcpudp_nofold(be32 saddr, be32 daddr, u32 len, u8 proto, u64 sum) {
  return csum_add64(sum, (u64)saddr + daddr + htons((u16)len) + htons(proto));
}

static inline u16 csum_tcpudp_magic(be32 saddr, be32 daddr, u32 len, u8 proto, u64 sum) {
  return csum_fold(csum_tcpudp_nofold(saddr, daddr, len, proto, sum));
}

/* Sequence-number arithmetic modulo 2^32. */
static inline bool seq_before(u32 a, u32 b) { return (s32)(a - b) < 0; }
static inline bool seq_after(u32 a, u32 b) { return (s32)(b - a) < 0; }

#endif
