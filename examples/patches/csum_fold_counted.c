/*
 * A live patch for the reference kernel's csum_fold (ir/kernel/lib/checksum.c):
 * the same results, plus new state the patch brings with it (a call count, in
 * the patch's state unit; per-object state goes in shadow variables,
 * ir/runtime/kjit_shadow.h).  Boot inlines csum_fold into many callers, so
 * applying it re-JITs each of them too.
 *   npx kjit run --patch csum_fold=examples/patches/csum_fold_counted.c@0.5
 */
#include <stdint.h>

uint64_t csum_fold_patched_calls;

uint16_t csum_fold(uint64_t sum) {
  csum_fold_patched_calls++;
  sum = (sum & 0xffffffffull) + (sum >> 32);
  sum = (sum & 0xffffffffull) + (sum >> 32);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}
