/*
 * @fileoverview Redirecting live code: the 5-byte patchable entry LLVM puts
 * at the start of every function compiled with
 * "patchable-function-entry"="5" (one NOP, 0f 1f 44 00 08, at the 16-byte
 * aligned entry, before the frame set-up) is rewritten into `jmp rel32` to
 * another version of the function, or back into the NOP.
 *
 * Only the host's main thread pokes, one poke at a time; the kernel thread
 * may be executing the very bytes being written.  The code pages are never
 * writable in the execution view: bytes are written through the region's
 * writable alias (ir/runtime/codemem.c), which maps the same memory.
 *
 * Protocol (the x86 cross-modifying-code rule, as Linux's text_poke_bp):
 *   1. publish the poke (site, the instruction being installed) where the
 *      trap handler finds it, with release order;
 *   2. write int3 (0xcc) over the site's first byte through the alias;
 *   3. membarrier(PRIVATE_EXPEDITED_SYNC_CORE): every thread of the process
 *      executes a core-serializing instruction, so from here on any core that
 *      reaches the site fetches the int3, never a stale first byte next to
 *      new tail bytes.  A thread that hits the int3 traps; kjit_poke_trap()
 *      emulates the instruction being installed (jumps to the new target, or
 *      for a restore skips the 5 bytes), so it never executes a torn one;
 *   4. write bytes 1..4 (the rel32, or the NOP's tail) through the alias;
 *   5. membarrier: the tail is visible to every core before the first byte
 *      changes;
 *   6. write the first byte (0xe9, or the NOP's 0x0f);
 *   7. membarrier: every core now sees the whole new instruction;
 *   8. retract the poke.
 * A thread can take the int3 trap during steps 2..7 and run its handler
 * only after step 8 (membarrier serializes cores; it does not wait for a
 * pending signal).  So the handler does not rely on the record alone: every
 * site ever poked is remembered, and a trap at such a site whose first byte
 * is no longer int3 simply re-executes the site, which now holds a whole
 * instruction (old or new, both correct).
 * The site is 16-byte aligned, so its 5 bytes lie in one cache line.
 *
 * That protocol is for code another thread may be executing.  kjit's kernel
 * runs on one thread, so the default path avoids cross-modification
 * altogether (and the protocol's three IPIs per poke, which showed up in
 * request latency): the host posts the poke in the control block and the
 * kernel thread itself writes the bytes at its next quiescent point
 * (kjit_poke_poll), where no task is between a call and the entry's NOP,
 * then executes a serializing instruction before it runs kernel code again.
 * A request may carry a set of entries (a patch and every function it was
 * inlined into, or a set of patches): the kernel thread checks them all and
 * then writes them all before it runs kernel code again, so the set changes
 * as one transition.  The int3 protocol remains for a kernel that is not at
 * a quiescent point soon enough (and for when the kernel is not running at
 * all); it writes one entry at a time.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <linux/membarrier.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "kjit_rt.h"

static const uint8_t patch_nop[KJIT_PATCH_BYTES] = {0x0f, 0x1f, 0x44, 0x00, 0x08};

/* The poke in progress (step 1 .. 8), read by the trap handler. */
static struct {
  uint64_t site;   /* execution address of the first byte; 0 = none */
  uint64_t resume; /* where a thread that traps at the site continues */
} poke;

static int membarrier_ready;

/* Every site ever poked (open addressing; written by the poking thread
 * before its first int3, read by trap handlers). */
#define POKED_SLOTS 16384
static uint64_t poked[POKED_SLOTS];

static uint64_t *poked_slot(uint64_t site) {
  uint64_t h = (site >> 4) * 0x9e3779b97f4a7c15ull;
  for (uint64_t i = 0; i < POKED_SLOTS; i++) {
    uint64_t *slot = &poked[(h + i) % POKED_SLOTS];
    uint64_t v = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (v == site || v == 0) return slot;
  }
  return NULL;
}

static int remember_site(uint64_t site) {
  uint64_t *slot = poked_slot(site);
  if (!slot) return -ENOSPC;
  __atomic_store_n(slot, site, __ATOMIC_RELEASE);
  return 0;
}

static int was_poked(uint64_t site) {
  uint64_t *slot = poked_slot(site);
  return slot && __atomic_load_n(slot, __ATOMIC_ACQUIRE) == site;
}

/* The process registers once for core-serializing membarriers. */
static int membarrier_register(void) {
  if (membarrier_ready) return 0;
  if (syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0) != 0) return -errno;
  membarrier_ready = 1;
  return 0;
}

static int sync_cores(void) {
  return syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0) == 0 ? 0 : -errno;
}

/* What the 5 bytes at `site` are: 0 the NOP, 1 a jmp rel32 (target in
 * *target), -1 anything else (not a patchable entry). */
int kjit_patch_read(uint64_t site, uint64_t *target) {
  const uint8_t *p = (const uint8_t *)site;
  if (memcmp(p, patch_nop, KJIT_PATCH_BYTES) == 0) return 0;
  if (p[0] == 0xe9) {
    int32_t rel;
    memcpy(&rel, p + 1, 4);
    if (target) *target = site + KJIT_PATCH_BYTES + (int64_t)rel;
    return 1;
  }
  return -1;
}

static int poke_bytes(uint64_t site, uint8_t *alias, const uint8_t insn[KJIT_PATCH_BYTES], uint64_t resume) {
  /* 0: make sure membarrier is registered before touching code, and
   * remember the site for trap handlers */
  int err = membarrier_register();
  if (err) return err;
  if ((err = remember_site(site))) return err;
  __atomic_store_n(&poke.resume, resume, __ATOMIC_RELAXED);
  __atomic_store_n(&poke.site, site, __ATOMIC_RELEASE); /* 1 */
  __atomic_store_n(&alias[0], (uint8_t)0xcc, __ATOMIC_RELEASE); /* 2 */
  if ((err = sync_cores())) goto out; /* 3 */
  for (int i = 1; i < KJIT_PATCH_BYTES; i++) __atomic_store_n(&alias[i], insn[i], __ATOMIC_RELAXED); /* 4 */
  if ((err = sync_cores())) goto out; /* 5 */
  __atomic_store_n(&alias[0], insn[0], __ATOMIC_RELEASE); /* 6 */
  err = sync_cores(); /* 7 */
out:
  if (err) {
    /* A registered membarrier does not fail; if it ever did, the int3 stays
     * armed with its emulation in place, which keeps every caller correct. */
    return err;
  }
  __atomic_store_n(&poke.site, 0, __ATOMIC_RELEASE); /* 8 */
  return 0;
}

/*
 * Point the patchable entry at `site` (execution address; `alias` is the same
 * byte in the writable view) to `target`: a jmp rel32, so `target` must be
 * within +-2 GiB (it is: all code is in one region of at most 1 GiB).
 * `expect_target` is what the entry must point to now (0: the NOP): a poke
 * never overwrites bytes it does not recognise.  Returns 0 or -errno.
 */
int kjit_patch_redirect(uint64_t site, uint64_t alias, uint64_t target, uint64_t expect_target) {
  if (site % 16) return -EINVAL;
  uint64_t now = 0;
  int kind = kjit_patch_read(site, &now);
  if (kind < 0) return -ENOEXEC;
  if ((kind == 0 && expect_target != 0) || (kind == 1 && now != expect_target)) return -ESTALE;
  int64_t rel = (int64_t)target - (int64_t)(site + KJIT_PATCH_BYTES);
  if (rel < INT32_MIN || rel > INT32_MAX) return -ERANGE;
  uint8_t insn[KJIT_PATCH_BYTES] = {0xe9};
  int32_t rel32 = (int32_t)rel;
  memcpy(insn + 1, &rel32, 4);
  return poke_bytes(site, (uint8_t *)alias, insn, target);
}

/* Put the NOP back: calls run the code at `site` again.  `expect_target` as above. */
int kjit_patch_restore(uint64_t site, uint64_t alias, uint64_t expect_target) {
  if (site % 16) return -EINVAL;
  uint64_t now = 0;
  int kind = kjit_patch_read(site, &now);
  if (kind < 0) return -ENOEXEC;
  if (kind == 0) return 0;
  if (now != expect_target) return -ESTALE;
  return poke_bytes(site, (uint8_t *)alias, patch_nop, site + KJIT_PATCH_BYTES);
}

/* Called by the runtime's SIGTRAP handler: 1 if the trap was a thread
 * reaching a site being poked (it now resumes where the new instruction
 * leads), 0 if it is not ours. */
int kjit_patch_trap(void *ucv) {
  ucontext_t *uc = (ucontext_t *)ucv;
  uint64_t site = (uint64_t)uc->uc_mcontext.gregs[REG_RIP] - 1;
  if (!was_poked(site)) return 0;
  uint64_t resume = site; /* the poke is over: run the whole instruction now there */
  if (__atomic_load_n((const uint8_t *)site, __ATOMIC_ACQUIRE) == 0xcc &&
      __atomic_load_n(&poke.site, __ATOMIC_ACQUIRE) == site)
    resume = __atomic_load_n(&poke.resume, __ATOMIC_RELAXED); /* mid-poke: emulate the new one */
  /* (an int3 with no matching record re-traps until its poke has finished) */
  uc->uc_mcontext.gregs[REG_RIP] = (greg_t)resume;
  __atomic_add_fetch(&kjit_cb.patch_traps[0], 1, __ATOMIC_RELAXED);
  return 1;
}

/* ---- pokes done by the kernel thread at a quiescent point ------------------ */

/* A core-serializing instruction for this thread: IRET to the next
 * instruction (as Linux's sync_core does).  CPUID would do too, but in a VM
 * it exits to the hypervisor: 3.6 us here against 40 ns for IRET.  The
 * frame is built below the red zone, which the caller may be using. */
static void serialize(void) {
  unsigned long tmp;
  __asm__ volatile(
      "sub $128, %%rsp\n\t"
      "mov %%ss, %0\n\t"
      "pushq %q0\n\t"      /* SS */
      "pushq %%rsp\n\t"
      "addq $8, (%%rsp)\n\t" /* RSP before the SS push */
      "pushfq\n\t"         /* RFLAGS */
      "mov %%cs, %0\n\t"
      "pushq %q0\n\t"      /* CS */
      "leaq 1f(%%rip), %q0\n\t"
      "pushq %q0\n\t"      /* RIP */
      "iretq\n"
      "1:\n\t"
      "add $128, %%rsp"
      : "=&r"(tmp)
      :
      : "cc", "memory");
}

/* Called at quiescent points on the kernel thread: carry out a posted poke
 * request, a set of entries that change together.  poke_old/poke_new hold
 * each entry's 5 bytes (little-endian, low bits).  All or nothing: every
 * entry is checked against its expected bytes before any is written, and
 * the kernel runs no code of its own between the first write and the last,
 * so no task sees part of the set. */
void kjit_poke_poll(void) {
  uint64_t req = __atomic_load_n(&kjit_cb.poke_request[0], __ATOMIC_ACQUIRE);
  if (req == kjit_cb.poke_done[0]) return;
  uint64_t n = kjit_cb.poke_n[0];
  int64_t rc = n == 0 || n > KJIT_POKE_BATCH ? -EINVAL : 0;
  for (uint64_t i = 0; i < n && rc == 0; i++) {
    uint64_t site = kjit_cb.poke_site[i], now = 0;
    if (site % 16 || !kjit_cb.poke_alias[i]) {
      rc = -EINVAL;
      break;
    }
    memcpy(&now, (const void *)site, KJIT_PATCH_BYTES);
    if (now != kjit_cb.poke_old[i]) rc = -ESTALE;
  }
  if (rc == 0) {
    for (uint64_t i = 0; i < n; i++) {
      uint8_t *alias = (uint8_t *)kjit_cb.poke_alias[i];
      uint64_t want = kjit_cb.poke_new[i];
      memcpy(alias + 1, (const uint8_t *)&want + 1, KJIT_PATCH_BYTES - 1);
      __atomic_store_n(&alias[0], (uint8_t)want, __ATOMIC_RELEASE);
    }
    serialize(); /* this core runs the new bytes from here on */
  }
  __atomic_store_n(&kjit_cb.poke_result[0], (uint64_t)rc, __ATOMIC_RELAXED);
  __atomic_store_n(&kjit_cb.poke_done[0], req, __ATOMIC_RELEASE);
}
