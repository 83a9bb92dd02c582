/*
 * @fileoverview The init program: configures the system before any request
 * is served, then exits.  For the firewall and phases workloads it loads a
 * long rule chain, the way a firewall script would at boot: first hundreds
 * of rules for networks this server never hears from (every accepted packet
 * walks past all of them), then the rules that reject part of the clients.
 */
#include <kernel/lib.h>
#include <kernel/uapi.h>
#include <kernel/ulib.h>
#include <kernel/workload.h>

void *u_alloc(size_t n);

#define REJECT_RULES 20

static void append(struct fw_rule_spec *r) {
  long e = u_syscall(SYS_fwctl, FW_APPEND, U(r), 0, 0, 0, 0);
  if (e < 0) panic("init: fwctl append: %ld", e);
}

static void load_firewall(void) {
  struct fw_rule_spec *r = u_alloc(sizeof(*r));
  for (u32 k = 0; k < FW_WORKLOAD_RULES - REJECT_RULES; k++) {
    *r = (struct fw_rule_spec){0};
    r->src = htonl(0xac100000u | ((k & 0xff) << 8) | ((k >> 8) << 16)); /* 172.16+.k.0/24 */
    r->src_mask = htonl(0xffffff00u);
    r->dst_mask = 0;
    r->dport_lo = 0;
    r->dport_hi = 65535;
    r->proto = (k % 3) == 0 ? IPPROTO_TCP : IPPROTO_UDP;
    r->verdict = FW_DROP;
    append(r);
  }
  /* Reject clients in 10.1.(13j).0/24 on the echo ports: about 8% of them. */
  for (u32 j = 0; j < REJECT_RULES; j++) {
    *r = (struct fw_rule_spec){0};
    r->src = htonl(CLIENT_NET | ((13 * j) & 0xff) << 8);
    r->src_mask = htonl(0xffffff00u);
    r->dport_lo = FW_PORT_BASE;
    r->dport_hi = FW_PORT_BASE + NWORKERS - 1;
    r->proto = IPPROTO_UDP;
    r->verdict = FW_REJECT;
    append(r);
  }
  printk("init: %ld firewall rules loaded", u_syscall(SYS_fwctl, FW_COUNT, 0, 0, 0, 0, 0));
}

void init_task_main(void *arg) {
  enum workload_id w = workload_config.workload;
  if (w == W_FIREWALL || w == W_PHASES) load_firewall();
}
