/*
 * @fileoverview The workloads: named mixes of requests that the emulated
 * outside world (the wire, hw/wire.c, and the job queues, core/jobq.c) sends
 * to the user programs (user/worker.c) running as kernel tasks.
 *
 * Operation i goes to worker task (i % nworkers).  Its kind is the workload's
 * (for `phases`, the kind of the phase op i falls in: phases switch every
 * `phase_ops` operations among web, kv, fs and firewall, and flip
 * kernel.trace at each switch).  Requests are drawn from a generator seeded
 * with (seed, i), so a fixed operation count gives a fixed checksum in every
 * mode, whatever order concurrent tasks finish in: each task's state is its
 * own, and shared state (caches) never changes a result.
 */
#ifndef KERNEL_WORKLOAD_H
#define KERNEL_WORKLOAD_H

#include <kernel/types.h>

enum workload_id { W_WEB = 0, W_KV = 1, W_FS = 2, W_FIREWALL = 3, W_PHASES = 4, W_COUNT = 5 };

#define NWORKERS 8
#define SERVER_IP 0x0a000001u      /* 10.0.0.1, host order */
#define CLIENT_NET 0x0a010000u     /* 10.1.0.0/16: the wire's clients */
#define GATEWAY_IP 0x0a0000feu     /* 10.0.0.254 */
#define WEB_PORT_BASE 8000         /* worker t listens on 8000 + t */
#define KV_PORT_BASE 9000          /* worker t's UDP key-value port */
#define FW_PORT_BASE 7000          /* worker t's UDP echo port behind the firewall */
#define FW_WORKLOAD_RULES 400      /* rules loaded for the firewall / phases mixes */
#define KV_KEYS 4096               /* distinct keys per worker */
#define KV_VALUE_MAX 64
#define DEFAULT_PHASE_OPS 200000

struct workload_config {
  enum workload_id workload;
  u64 seed;
  u64 phase_ops;
  u32 nworkers;
};
extern struct workload_config workload_config;

static inline u32 op_task(u64 op) { return (u32)(op % workload_config.nworkers); }
static inline enum workload_id phase_kind(u64 phase) {
  static const enum workload_id order[4] = {W_WEB, W_KV, W_FS, W_FIREWALL};
  return order[phase % 4];
}
static inline enum workload_id op_kind(u64 op) {
  if (workload_config.workload != W_PHASES) return workload_config.workload;
  return phase_kind(op / workload_config.phase_ops);
}

/* ---- job queues (fs workload): core/jobq.c --------------------------------- */

struct job {
  u64 op;
  u64 arrival_ns;
  u64 arg; /* fs: index of the path set to work on */
};
struct job_result {
  u64 op;
  u64 arrival_ns;
  u64 result;
};
void jobq_init(void);
/* Queue a job for worker `task`; returns false if its queue is full. */
bool jobq_post(u32 task, const struct job *j);
bool jobq_pending(void);

/* ---- the wire (hw/wire.c): the network's far end -------------------------- */

void wire_init(void);
/* Room to inject another request now? */
bool wire_can_accept(void);
/* Start operation `op` (kind web, kv or firewall): send its first frame(s). */
void wire_inject(u64 op, u64 arrival_ns, enum workload_id kind);
/* Take frames the NIC transmitted, advance client state machines, complete
 * operations (kjit_op_complete).  Returns frames handled. */
u32 wire_collect(void);
/* Frames or retransmissions waiting on the wire's side. */
bool wire_pending(void);

/* ---- paths the workloads use (fs/populate.c) ------------------------------ */

/* Files the web workload requests (all under /srv/www). */
u32 web_npaths(void);
const char *web_path(u32 i);
/* Path sets of the fs workload: deep paths spread over tmpfs, ext and proc. */
u32 fs_npaths(void);
const char *fs_path(u32 i);

#endif
