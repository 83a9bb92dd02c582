/*
 * @fileoverview The firewall: one ordered chain of rules on local input,
 * iptables-style.  A rule matches on masked source and destination
 * addresses, a destination-port range and the protocol; the first match
 * decides (ACCEPT, DROP, or REJECT with an ICMP port-unreachable), and a
 * packet no rule matches is accepted.  Rules are managed with SYS_fwctl.
 */
#include <kernel/lib.h>
#include <kernel/mm.h>
#include <kernel/sched.h>
#include <kernel/syscall.h>
#include <kernel/uapi.h>

#include "net_priv.h"

#define FW_MAX_RULES 4096

struct fw_rule {
  be32 src, src_mask;
  be32 dst, dst_mask;
  u16 dport_lo, dport_hi;
  u8 proto;
  u8 verdict;
  u64 hits; /* packets this rule decided (iptables -v) */
};

static struct fw_rule *fw_rules;
static u32 fw_nrules, fw_capacity;

static bool fw_rule_match(const struct fw_rule *r, u8 proto, be32 saddr, be32 daddr, u16 dport) {
  /* Source first: most rules of a real chain are about who is talking. */
  if ((saddr & r->src_mask) != r->src) return false;
  if ((daddr & r->dst_mask) != r->dst) return false;
  if (r->proto && r->proto != proto) return false;
  return dport >= r->dport_lo && dport <= r->dport_hi;
}

static void fw_count_verdict(u8 verdict) {
  if (verdict == FW_ACCEPT)
    NET_INC(fw_accepted);
  else if (verdict == FW_DROP)
    NET_INC(fw_dropped);
  else
    NET_INC(fw_rejected);
}

int fw_filter(const struct sk_buff *skb, u8 protocol, be32 saddr, be32 daddr, u16 dport) {
  (void)skb;
  for (u32 i = 0; i < fw_nrules; i++) {
    struct fw_rule *r = &fw_rules[i];
    if (fw_rule_match(r, protocol, saddr, daddr, dport)) {
      r->hits++;
      fw_count_verdict(r->verdict);
      return r->verdict;
    }
  }
  NET_INC(fw_accepted); /* the chain's policy */
  return FW_ACCEPT;
}

u32 fw_rule_count(void) { return fw_nrules; }

static int fw_grow(void) {
  u32 cap = fw_capacity ? fw_capacity * 2 : 64;
  struct fw_rule *rules = kmalloc(cap * sizeof(*rules));
  if (!rules) return -ENOMEM;
  if (fw_nrules) memcpy(rules, fw_rules, fw_nrules * sizeof(*rules));
  kfree(fw_rules);
  fw_rules = rules;
  fw_capacity = cap;
  return 0;
}

static int fw_append(const struct fw_rule_spec *spec) {
  if (spec->verdict > FW_REJECT || spec->dport_lo > spec->dport_hi) return -EINVAL;
  if (fw_nrules == FW_MAX_RULES) return -ENOSPC;
  if (fw_nrules == fw_capacity) {
    int err = fw_grow();
    if (err) return err;
  }
  struct fw_rule *r = &fw_rules[fw_nrules++];
  /* Store addresses pre-masked so matching is one AND and one compare. */
  r->src = spec->src & spec->src_mask;
  r->src_mask = spec->src_mask;
  r->dst = spec->dst & spec->dst_mask;
  r->dst_mask = spec->dst_mask;
  r->dport_lo = spec->dport_lo;
  r->dport_hi = spec->dport_hi;
  r->proto = spec->proto;
  r->verdict = spec->verdict;
  r->hits = 0;
  return 0;
}

static long sys_fwctl(u64 cmd, u64 uspec, u64 c, u64 d, u64 e, u64 f) {
  if (cmd == FW_COUNT) return fw_nrules;
  if (current->uid != 0) return -EPERM; /* changing the chain is the administrator's */
  if (cmd == FW_FLUSH) {
    fw_nrules = 0;
    return 0;
  }
  if (cmd != FW_APPEND) return -EINVAL;
  struct fw_rule_spec spec;
  if (copy_from_user(&spec, (const void *)(uintptr_t)uspec, sizeof(spec))) return -EFAULT;
  return fw_append(&spec);
}

static void fw_default(be32 src, be32 mask, u8 proto, u16 lo, u16 hi, u8 verdict) {
  struct fw_rule_spec s = {.src = src, .src_mask = mask, .dport_lo = lo, .dport_hi = hi, .proto = proto,
                           .verdict = verdict};
  if (fw_append(&s)) panic("firewall: cannot install the default rules");
}

void fw_init(void) {
  /* Martian sources, then services this host never offers. */
  fw_default(htonl(IPV4_ADDR(0, 0, 0, 0)), htonl(0xff000000u), 0, 0, 65535, FW_DROP);
  fw_default(htonl(IPV4_ADDR(127, 0, 0, 0)), htonl(0xff000000u), 0, 0, 65535, FW_DROP);
  fw_default(htonl(IPV4_ADDR(224, 0, 0, 0)), htonl(0xf0000000u), 0, 0, 65535, FW_DROP);
  fw_default(0, 0, IPPROTO_TCP, 23, 23, FW_DROP);               /* telnet */
  fw_default(0, 0, IPPROTO_TCP, 111, 111, FW_REJECT);           /* portmapper */
  fw_default(0, 0, IPPROTO_UDP, 137, 139, FW_REJECT);           /* NetBIOS */
  syscall_register(SYS_fwctl, sys_fwctl, "fwctl");
}
