/*
 * @fileoverview Recording for instrumentation windows and live probes
 * (kjit_probe.h).  Only kernel code running on the kernel thread calls
 * these, so plain loads and stores suffice; the host reads the tables after
 * the version was retired and a grace period showed no task inside it.
 */
#include <stdint.h>

#include "kjit_cb.h"
#include "kjit_probe.h"
#include "kjit_rt.h"

/* Layout constants the host checks before it reads a table. */
const uint64_t kjit_probe_layout[3] = {KJIT_VP_TARGETS, KJIT_PROBE_HEAD_WORDS, KJIT_LAT_BUCKETS};

void kjit_vp_record(uint64_t *site, const void *target) {
  uint64_t t = (uint64_t)(uintptr_t)target;
  site[0]++;
  for (int i = 0; i < KJIT_VP_TARGETS; i++) {
    uint64_t *e = &site[2 + 2 * i];
    if (e[0] == t) {
      e[1]++;
      return;
    }
    if (e[0] == 0) {
      e[0] = t;
      e[1] = 1;
      return;
    }
  }
  site[1]++;
}

uint64_t kjit_probe_now(void) { return kjit_now_ns(); }

void kjit_probe_record(uint64_t *probe, uint64_t t0) {
  uint64_t ns = kjit_now_ns() - t0;
  probe[0]++;
  probe[1] += ns;
  if (ns > probe[2]) probe[2] = ns;
  probe[KJIT_PROBE_HEAD_WORDS + kjit_lat_bucket(ns)]++;
}
