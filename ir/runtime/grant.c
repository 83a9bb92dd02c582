/*
 * @fileoverview The runtime's half of the JIT's memory grant (DESIGN.md
 * section 7): the JIT asks the kernel for memory through the control block,
 * the kernel's allocator decides (kjit_mm_grant, kjit_rt.h), and may take
 * memory back under pressure.  This file only carries requests and answers;
 * the policy is the kernel's (the reference kernel: ir/kernel/mm/grant.c),
 * or the weak default below for images without one.
 *
 * Protocol (fields grant_* of kjit_cb.h):
 *   1. the host writes grant_ask, then bumps grant_request and rings the
 *      doorbell (KernelInstance.request);
 *   2. at its next quiescent point the kernel thread calls
 *      kjit_mm_grant(ask, held, 1, ...), publishes the answer in
 *      grant_bytes (then bumps grant_seq), then sets grant_done = the request;
 *   3. every KJIT_GRANT_CHECK_EVERY quiescent points it calls
 *      kjit_mm_grant(ask, held, 0, ...): a lower answer is a revocation
 *      (grant_revocations, grant_revoked_ns, grant_seq), which the host sees
 *      when it next reads grant_seq; it then evicts, cancels and lowers its
 *      limits (src/scheduler/budget.ts).
 * Between checks a quiescent point costs one load, one compare and one
 * increment.
 */
#include "kjit_rt.h"

#define LOAD(f) __atomic_load_n(&kjit_cb.f[0], __ATOMIC_RELAXED)
#define STORE(f, v) __atomic_store_n(&kjit_cb.f[0], (uint64_t)(v), __ATOMIC_RELAXED)

/* Images without an allocator of their own: a fixed amount, never revoked. */
__attribute__((weak)) uint64_t kjit_mm_grant(uint64_t ask_bytes, uint64_t granted_bytes, int asking,
                                             uint64_t *free_bytes) {
  (void)free_bytes;
  if (!asking) return granted_bytes;
  return ask_bytes < KJIT_GRANT_DEFAULT_BYTES ? ask_bytes : KJIT_GRANT_DEFAULT_BYTES;
}

static uint32_t quiescent_points;

void kjit_grant_poll(void) {
  uint64_t req = __atomic_load_n(&kjit_cb.grant_request[0], __ATOMIC_ACQUIRE);
  int asking = req != kjit_cb.grant_done[0];
  if (!asking && (++quiescent_points & (KJIT_GRANT_CHECK_EVERY - 1))) return;
  uint64_t held = kjit_cb.grant_bytes[0], ask = LOAD(grant_ask), free_bytes = 0;
  uint64_t now = kjit_mm_grant(ask, held, asking, &free_bytes);
  if (!asking) {
    STORE(grant_checks, kjit_cb.grant_checks[0] + 1);
    if (now > held) now = held; /* only the JIT's asking raises a grant */
  }
  if (free_bytes) STORE(grant_free_bytes, free_bytes);
  if (now != held) {
    /* lowered below what the JIT asked and held: the kernel took it back */
    if (now < held && now < ask) {
      STORE(grant_revoked_ns, kjit_now_ns());
      STORE(grant_revocations, kjit_cb.grant_revocations[0] + 1);
    }
    STORE(grant_bytes, now);
    __atomic_store_n(&kjit_cb.grant_seq[0], kjit_cb.grant_seq[0] + 1, __ATOMIC_RELEASE);
  }
  if (asking) __atomic_store_n(&kjit_cb.grant_done[0], req, __ATOMIC_RELEASE);
}
