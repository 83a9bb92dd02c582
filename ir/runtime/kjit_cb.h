/*
 * @fileoverview The control block: the one place where the kernel and the
 * kjit host exchange state (counters, histograms, requests, fault reports).
 *
 * Its layout is defined ONCE, here, as an X-macro.  The C struct is generated
 * from the list, and so is `kjit_cb_layout`, a table of field names, offsets
 * and sizes that the runtime exports; the TypeScript side builds its views
 * from that table (src/native/control-block.ts) and never from a second copy.
 *
 * Every field is a 64-bit word or an array of them, naturally aligned, so a
 * plain aligned load on x86-64 never observes a torn value.  The kernel thread
 * writes with relaxed atomics; the host reads at any time.  Fields the host
 * writes (stop, doorbell, limits) are read by the kernel with relaxed atomics.
 */
#ifndef KJIT_CB_H
#define KJIT_CB_H

#include <stdint.h>

#define KJIT_CB_MAGIC 0x3142434a494a4bULL /* "KJIJCB1" little-endian */
#define KJIT_CB_VERSION 4ULL

#define KJIT_LAT_SUB_BITS 4                 /* 16 sub-buckets per power of two */
#define KJIT_LAT_MIN_SHIFT 5                /* values below 32 ns share bucket 0 */
#define KJIT_LAT_BUCKETS 512
#define KJIT_MAX_TASKS 64
#define KJIT_GRACE_RANGES 64                /* retired code ranges one grace request can carry */
#define KJIT_POKE_BATCH 1024                /* patchable entries one poke request rewrites together (a whole-image tier) */
#define KJIT_HW_MAX_DEVICES 8
#define KJIT_LAZY_MAX 4096                  /* functions a boot may leave to be compiled on first call (lazy.c) */
#define KJIT_MSG_WORDS 32                   /* 256-byte message (panic / fault text) */
#define KJIT_LOG_WORDS 1024                 /* 8 KiB kernel log ring ("dmesg") */
#define KJIT_SAMPLE_SLOTS 1024              /* sample ring slots (ir/runtime/sampler.c) */
#define KJIT_SAMPLE_SLOT_WORDS 32           /* one slot: seq, meta, pc, sp0, then return addresses */
#define KJIT_SAMPLE_HEAD_WORDS 4            /* words before the return addresses */
#define KJIT_SAMPLE_DEPTH (KJIT_SAMPLE_SLOT_WORDS - KJIT_SAMPLE_HEAD_WORDS) /* return addresses per sample */
#define KJIT_SAMPLE_TRUNCATED (1ULL << 8)   /* meta: the chain went on beyond KJIT_SAMPLE_DEPTH */
#define KJIT_SAMPLE_SP0 (1ULL << 9)         /* meta: sp0 (the word at the stack pointer) was read */
#define KJIT_SAMPLE_CLOCK_THREAD 0          /* ticks: a clock thread sleeps to CLOCK_MONOTONIC deadlines and signals the kernel thread */
#define KJIT_SAMPLE_CLOCK_TIMER 1           /* ticks: timer_create(CLOCK_MONOTONIC, SIGEV_THREAD_ID -> the kernel thread) */

/* Kernel instance states (field `state`). */
enum kjit_state {
  KJIT_STATE_NEW = 0,
  KJIT_STATE_BOOTING = 1,   /* thread started, image init running */
  KJIT_STATE_RUNNING = 2,   /* init done, operations flowing */
  KJIT_STATE_STOPPED = 3,   /* thread returned normally */
  KJIT_STATE_FAULTED = 4,   /* a synchronous fault in kernel code: see fault_* */
  KJIT_STATE_PANICKED = 5,  /* kjit_panic(): see msg */
};

/* CPU features the kernel detects with cpuid and the host reads from
 * /proc/cpuinfo; alternatives (kjit_rt.h) match on these bits. */
#define KJIT_CPU_SSE42 (1ULL << 0)
#define KJIT_CPU_POPCNT (1ULL << 1)
#define KJIT_CPU_AVX2 (1ULL << 2)
#define KJIT_CPU_BMI2 (1ULL << 3)
#define KJIT_CPU_ERMS (1ULL << 4)
#define KJIT_CPU_FSRM (1ULL << 5)

/* X(name, words, doc): `words` 64-bit words. */
#define KJIT_CB_FIELDS(X)                                                            \
  X(magic, 1, "KJIT_CB_MAGIC once the runtime has initialised the block")            \
  X(version, 1, "KJIT_CB_VERSION")                                                   \
  X(size, 1, "sizeof(struct kjit_cb) in bytes")                                      \
  X(state, 1, "enum kjit_state")                                                     \
  X(stop, 1, "host -> kernel: non-zero asks the kernel to finish")                   \
  X(doorbell, 1, "futex word (low 32 bits): the host bumps it to wake an idle kernel") \
  X(ops_limit, 1, "host -> kernel: stop after this many operations (0 = no limit)")  \
  X(rate_milli, 1, "host -> kernel: open-loop arrival rate in ops/s x 1000 (0 = closed loop)") \
  X(seed, 1, "host -> kernel: seed of the deterministic request generator")          \
  X(workload, 1, "host -> kernel: workload id (image-defined; see kjit_workloads)")  \
  X(workload_arg, 1, "host -> kernel: workload parameter (phases: ops per phase)")   \
  X(concurrency, 1, "host -> kernel: closed loop: operations kept in flight")        \
  X(t_thread_ns, 1, "CLOCK_MONOTONIC when the kernel thread started")                \
  X(t_first_op_ns, 1, "CLOCK_MONOTONIC when the first operation was handed out")     \
  X(t_end_ns, 1, "CLOCK_MONOTONIC when the kernel thread finished")                  \
  X(cpu_first_op_ns, 1, "kernel thread CPU time (CLOCK_THREAD_CPUTIME_ID) at the first operation") \
  X(cpu_end_ns, 1, "kernel thread CPU time when it finished")                        \
  X(t_origin_ns, 1, "open loop: arrival time of operation 0")                        \
  X(ops_issued, 1, "operations handed to the kernel")                                \
  X(ops_done, 1, "operations completed")                                             \
  X(checksum, 1, "order-independent checksum of (operation, result) pairs")          \
  X(idle_ns, 1, "time the kernel thread spent blocked in its idle loop")             \
  X(idle_waits, 1, "number of idle blocks")                                          \
  X(lat_count, 1, "latency samples (= ops_done)")                                    \
  X(lat_sum_ns, 1, "sum of latencies")                                               \
  X(lat_max_ns, 1, "largest latency")                                                \
  X(lat_hist, KJIT_LAT_BUCKETS, "log-linear latency histogram (see kjit_lat_bucket)") \
  X(count_indirect_calls, 1, "counting builds only: indirect calls executed")        \
  X(count_sysctl_loads, 1, "counting builds only: sysctl loads executed")            \
  X(grace_request, 1, "host -> kernel: bumped after writing grace_lo/hi/n: is any task inside these ranges?") \
  X(grace_done, 1, "kernel -> host: the last request no task's stack reaches into (then they may be freed)") \
  X(grace_checks, 1, "stack scans done for grace requests")                          \
  X(grace_busy, 1, "scans that found a return address inside a range (retried later)") \
  X(grace_n, 1, "host -> kernel: ranges in grace_lo/grace_hi")                       \
  X(grace_lo, KJIT_GRACE_RANGES, "host -> kernel: start of each retired code range") \
  X(grace_hi, KJIT_GRACE_RANGES, "host -> kernel: end of each retired code range")   \
  X(poke_request, 1, "host -> kernel: bumped after writing poke_*: rewrite poke_n patchable entries together at one quiescent point") \
  X(poke_done, 1, "kernel -> host: the last poke request carried out")               \
  X(poke_result, 1, "kernel -> host: 0, or -errno (ESTALE: an entry was not its poke_old; then none was written)") \
  X(poke_n, 1, "host -> kernel: entries in poke_site/alias/old/new")                 \
  X(poke_site, KJIT_POKE_BATCH, "host -> kernel: execution address of each entry")  \
  X(poke_alias, KJIT_POKE_BATCH, "host -> kernel: the same byte in the writable alias") \
  X(poke_old, KJIT_POKE_BATCH, "host -> kernel: the 5 bytes expected there now (little-endian)") \
  X(poke_new, KJIT_POKE_BATCH, "host -> kernel: the 5 bytes to write")              \
  X(shadow_live, 1, "shadow variables allocated (kjit_shadow.h)")                     \
  X(shadow_full, 1, "shadow allocations refused: table full or too large")          \
  X(shadow_free_request, 1, "host -> kernel: bumped after writing shadow_free_lo/hi: free those ids") \
  X(shadow_free_done, 1, "kernel -> host: the last shadow free request carried out") \
  X(shadow_free_lo, 1, "host -> kernel: first id to free")                           \
  X(shadow_free_hi, 1, "host -> kernel: end of the ids to free")                     \
  X(grant_request, 1, "host -> kernel: bumped after writing grant_ask: the JIT asks for a memory budget (answered at a quiescent point; grant.c)") \
  X(grant_ask, 1, "host -> kernel: bytes the JIT asks for (0: it gives its grant back)") \
  X(grant_done, 1, "kernel -> host: the last grant request answered")                \
  X(grant_bytes, 1, "kernel -> host: bytes the kernel grants the JIT now; it may lower them at any quiescent point (a revocation)") \
  X(grant_seq, 1, "kernel -> host: bumped after every change of grant_bytes")        \
  X(grant_revocations, 1, "kernel -> host: times the kernel lowered the grant below what the JIT asked and held") \
  X(grant_revoked_ns, 1, "kernel -> host: CLOCK_MONOTONIC of the last revocation")   \
  X(grant_free_bytes, 1, "kernel -> host: the kernel's free memory when it last decided (0: its policy does not say)") \
  X(grant_checks, 1, "pressure checks: the kernel's grant hook called without a request") \
  X(patch_traps, 1, "threads that reached a code site while it was being rewritten (emulated)") \
  X(fault_count, 1, "synchronous faults taken in kernel code")                       \
  X(fault_signo, 1, "signal of the last fault")                                      \
  X(fault_code, 1, "si_code of the last fault")                                      \
  X(fault_addr, 1, "si_addr of the last fault")                                      \
  X(fault_pc, 1, "program counter of the last fault")                                \
  X(msg, KJIT_MSG_WORDS, "NUL-terminated text: panic message")                       \
  X(ntasks, 1, "kernel tasks registered for quiescent-state tracking")               \
  X(qs, KJIT_MAX_TASKS, "per-task quiescent-state counters")                         \
  X(hw_cpu_features, 1, "host -> kernel: KJIT_CPU_* bits of the machine")            \
  X(hw_ndevices, 1, "host -> kernel: number of devices present")                     \
  X(hw_devices, KJIT_HW_MAX_DEVICES, "host -> kernel: (vendor << 16 | device) ids present") \
  X(sample_hz, 1, "host -> kernel: sampling timer rate in Hz (0 = off); read at start and at quiescent points") \
  X(sample_cap, 1, "host -> kernel, before start: ring slots the producer fills (0 = all KJIT_SAMPLE_SLOTS)") \
  X(sample_clock, 1, "host -> kernel, before start: what makes ticks (KJIT_SAMPLE_CLOCK_*)") \
  X(sample_armed_hz, 1, "kernel -> host: the rate the sampling timer runs at now (0 = not armed)") \
  X(sample_armed_ns, 1, "CLOCK_MONOTONIC when the sampling timer was first armed")  \
  X(sample_disarmed_ns, 1, "CLOCK_MONOTONIC when the sampling timer was deleted (0 = armed)") \
  X(sample_error, 1, "0, or -errno: why the sampler could not start (then it stays off)") \
  X(sample_cost_ns, 1, "CPU ns one sample costs the kernel thread (delivery, handler, return), calibrated when armed") \
  X(sample_ticks, 1, "sampling signals the handler took (timer expirations delivered)") \
  X(sample_overruns, 1, "timer expirations merged into a signal still pending (never delivered)") \
  X(sample_idle, 1, "ticks that found the kernel blocked idle: counted, not recorded") \
  X(sample_dropped, 1, "samples lost because the ring was full")                   \
  X(sample_head, 1, "kernel -> host: samples published into the ring, ever")        \
  X(sample_tail, 1, "host -> kernel: samples the host consumed, ever")             \
  X(sample_ring, KJIT_SAMPLE_SLOTS * KJIT_SAMPLE_SLOT_WORDS, "sample slots (protocol in sampler.c)") \
  X(lazy_fd, 1, "host -> kernel: 1 + the pipe the kernel writes a byte to when it waits for a lazy function (0: none)") \
  X(lazy_pending, 1, "kernel -> host: 1 + index of the lazy function the kernel thread waits for (0: none)") \
  X(lazy_seq, 1, "futex word (low 32 bits): the host bumps it after writing lazy_addr entries") \
  X(lazy_requests, 1, "kernel -> host: first calls of lazy functions that had to wait for the host") \
  X(lazy_wait_ns, 1, "kernel -> host: time the kernel thread waited for lazy functions, in all") \
  X(lazy_wait_max_ns, 1, "kernel -> host: the longest single wait")                 \
  X(lazy_addr, KJIT_LAZY_MAX, "host -> kernel: code of each lazy function once compiled (0: not yet)") \
  X(arena_bytes, 1, "bytes of kernel memory the runtime mapped for the image")       \
  X(log_head, 1, "bytes ever written to the log ring")                               \
  X(log, KJIT_LOG_WORDS, "kernel log ring (text)")

struct kjit_cb {
#define KJIT_CB_DECLARE(name, words, doc) uint64_t name[words];
  KJIT_CB_FIELDS(KJIT_CB_DECLARE)
#undef KJIT_CB_DECLARE
};

/* One row of the exported layout table. */
struct kjit_cb_field {
  const char *name;
  uint64_t offset; /* bytes from the start of the block */
  uint64_t words;  /* number of 64-bit words */
};

/* Bucket of a latency value (ns): 16 linear sub-buckets per power of two. */
static inline uint32_t kjit_lat_bucket(uint64_t ns) {
  if (ns < (1ULL << KJIT_LAT_MIN_SHIFT)) return 0;
  uint32_t msb = 63 - (uint32_t)__builtin_clzll(ns);
  uint32_t sub = (uint32_t)(ns >> (msb - KJIT_LAT_SUB_BITS)) & ((1u << KJIT_LAT_SUB_BITS) - 1);
  uint32_t b = ((msb - KJIT_LAT_MIN_SHIFT + 1) << KJIT_LAT_SUB_BITS) + sub;
  return b < KJIT_LAT_BUCKETS ? b : KJIT_LAT_BUCKETS - 1;
}

#endif
