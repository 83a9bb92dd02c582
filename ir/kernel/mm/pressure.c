/*
 * @fileoverview Memory pressure on demand: a phase of the machine's work
 * that allocates heavily (a bulk copy filling the page cache, say), sized
 * by the run-time sysctl vm.pressure_mb.  At each of the allocator's
 * pressure checks (mm/grant.c, at quiescent points) the kernel takes
 * 4 MiB blocks from the page allocator, or gives them back, toward that
 * size; blocks it cannot get now it tries again at the next check (the
 * JIT's grant is revoked meanwhile, and its blocks come back to the free
 * lists).  The blocks are never touched (unless vm.zero_pages): what
 * matters is the page allocator's free count, as for any allocation.
 */
#include <kernel/lib.h>
#include <kernel/mm.h>
#include <kernel/sysctl.h>

#define PRESSURE_ORDER (MAX_ORDER - 1)
#define PRESSURE_BLOCK_MB ((PAGE_SIZE << PRESSURE_ORDER) >> 20)
#define PRESSURE_MAX_BLOCKS (4096 / PRESSURE_BLOCK_MB)

static void *blocks[PRESSURE_MAX_BLOCKS];
static u64 nblocks;

u64 mm_pressure_step(void) {
  u64 want = (u64)READ_ONCE(sysctl_vm_pressure_mb) / PRESSURE_BLOCK_MB;
  if (want > PRESSURE_MAX_BLOCKS) want = PRESSURE_MAX_BLOCKS;
  if (want != nblocks) {
    while (nblocks > want) free_pages(blocks[--nblocks], PRESSURE_ORDER);
    while (nblocks < want) {
      void *b = alloc_pages(PRESSURE_ORDER);
      if (!b) break; /* tried again at the next check */
      blocks[nblocks++] = b;
    }
  }
  return nblocks * (PAGE_SIZE << PRESSURE_ORDER);
}
