/*
 * @fileoverview What instrumented and probing versions of kernel functions
 * call (src/rejit/unit.ts builds them, src/sampler/instrument.ts and
 * src/sampler/probe.ts read what they record).  The storage is in the
 * version's own object; the runtime only does the recording, on the kernel
 * thread, without locks.
 */
#ifndef KJIT_PROBE_H
#define KJIT_PROBE_H

#include <stdint.h>

/* An indirect-call site's table: [0] calls, [1] calls to a target the table
 * had no room for, then KJIT_VP_TARGETS pairs (target address, calls). */
#define KJIT_VP_TARGETS 8
#define KJIT_VP_WORDS (2 + 2 * KJIT_VP_TARGETS)

/* A probe: [0] calls, [1] sum of ns, [2] max ns, then the log-linear
 * histogram of kjit_lat_bucket (kjit_cb.h). */
#define KJIT_PROBE_HEAD_WORDS 3

void kjit_vp_record(uint64_t *site, const void *target);
uint64_t kjit_probe_now(void);
void kjit_probe_record(uint64_t *probe, uint64_t t0);

#endif
