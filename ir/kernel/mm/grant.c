/*
 * @fileoverview The kernel's side of the JIT's memory grant
 * (kjit_mm_grant, ir/runtime/kjit_rt.h; DESIGN.md section 7).  Like a
 * virtio balloon with deflate-on-OOM: what the kernel grants the JIT it
 * takes from its page allocator (4 MiB blocks held here, never touched),
 * so granted memory is memory the kernel's own work can no longer
 * allocate; under pressure it takes blocks back, and the host must then
 * shrink to the new grant.
 *
 * Policy, in pages of the page allocator (total = all of them):
 *   - a request grants min(ask, GRANT_SHARE_PCT% of what the kernel could
 *     give (free + already granted), what leaves GRANT_HIGH_PCT% of total
 *     free), in whole blocks; asking for less gives the rest back;
 *   - a pressure check (the runtime calls one every KJIT_GRANT_CHECK_EVERY
 *     quiescent points) revokes when free pages fell below GRANT_LOW_PCT%
 *     of total: blocks come back until GRANT_HIGH_PCT% is free, or none
 *     is granted.  Low and high watermarks apart (hysteresis, as Linux's
 *     kswapd wakes at low and sleeps at high): a grant is not taken back
 *     and asked again at every small allocation;
 *   - only the JIT's asking raises a grant (the runtime enforces it).
 * The pressure checks also run the pressure phase (mm/pressure.c).  A
 * check that changes nothing costs a sysctl load and two compares.
 */
#include <kernel/lib.h>
#include <kernel/mm.h>

#include "kjit_rt.h"

#define GRANT_ORDER (MAX_ORDER - 1)                   /* granted in blocks of 2^10 pages (4 MiB) */
#define GRANT_BLOCK_PAGES (1ull << GRANT_ORDER)
#define GRANT_MAX_BLOCKS 1024                         /* 4 GiB */
#define GRANT_SHARE_PCT 50                            /* at most half of what the kernel could give */
#define GRANT_LOW_PCT 12                              /* revoke below this share of pages free ... */
#define GRANT_HIGH_PCT 25                             /* ... until this share is free again */

static void *blocks[GRANT_MAX_BLOCKS];
static u64 nblocks;

static void grant_blocks(u64 want) {
  while (nblocks > want) free_pages(blocks[--nblocks], GRANT_ORDER);
  while (nblocks < want) {
    void *b = alloc_pages(GRANT_ORDER);
    if (!b) break; /* fragmented: grant what whole blocks there are */
    blocks[nblocks++] = b;
  }
}

uint64_t kjit_mm_grant(uint64_t ask_bytes, uint64_t granted_bytes, int asking, uint64_t *free_bytes) {
  (void)granted_bytes; /* the kernel's own record is nblocks */
  mm_pressure_step();
  u64 total = mm_total_pages(), free = mm_free_pages();
  u64 high = total * GRANT_HIGH_PCT / 100;
  if (asking) {
    u64 could = free + nblocks * GRANT_BLOCK_PAGES;
    u64 cap = could * GRANT_SHARE_PCT / 100;
    if (could < high) cap = 0;
    else if (cap > could - high) cap = could - high;
    u64 want = (ask_bytes >> PAGE_SHIFT) / GRANT_BLOCK_PAGES;
    if (want > cap / GRANT_BLOCK_PAGES) want = cap / GRANT_BLOCK_PAGES;
    if (want > GRANT_MAX_BLOCKS) want = GRANT_MAX_BLOCKS;
    if (want != nblocks) {
      grant_blocks(want);
      printk("mm: JIT asked for %lu MiB, granted %lu MiB (%lu MiB free)", (unsigned long)(ask_bytes >> 20),
             (unsigned long)((nblocks * GRANT_BLOCK_PAGES) >> 8), (unsigned long)(mm_free_pages() >> 8));
    }
  } else if (nblocks && free < total * GRANT_LOW_PCT / 100) {
    u64 back = (high - free + GRANT_BLOCK_PAGES - 1) / GRANT_BLOCK_PAGES;
    grant_blocks(nblocks > back ? nblocks - back : 0);
    printk("mm: memory pressure (%lu MiB free): JIT grant revoked to %lu MiB", (unsigned long)(free >> 8),
           (unsigned long)((nblocks * GRANT_BLOCK_PAGES) >> 8));
  }
  *free_bytes = mm_free_pages() << PAGE_SHIFT;
  return (nblocks * GRANT_BLOCK_PAGES) << PAGE_SHIFT;
}
