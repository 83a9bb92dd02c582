/**
 * @fileoverview The sampler's throttle (policy, pure): from what sampling
 * cost the kernel thread over the last interval, decide the rate.  The
 * mechanism (src/sampler/sampler.ts writes cb.sample_hz; the kernel thread
 * re-arms its timer at its next quiescent point) never decides.
 *
 * share = ticks x cost of one sample / CPU time of the kernel thread, over
 * the interval.  Above maxCpuShare the rate is cut so the share lands at
 * targetShare of the limit; once the share is below raiseBelow of the limit
 * the rate doubles back towards what was asked (hysteresis: a rate is never
 * raised straight back to where it was just cut from, so it does not jitter).
 */

export const THROTTLE_PARAMS = {
  /** Sampling may cost at most this share of the kernel thread's CPU. */
  maxCpuShare: 0.02,
  /** A cut aims at this fraction of the limit. */
  targetShare: 0.7,
  /** Raise again only below this fraction of the limit. */
  raiseBelow: 0.35,
  /** Never below this rate (Hz). */
  minHz: 19,
  /** Decide this often (ms). */
  everyMs: 500,
  /** Ignore intervals with less kernel CPU than this (ns): too little to measure. */
  minCpuNs: 20_000_000,
};

export type ThrottleReason = 'over-budget' | 'under-budget' | 'within-budget' | 'too-little-cpu' | 'at-requested';

export interface ThrottleDecision {
  kind: 'keep' | 'lower' | 'raise';
  hz: number;
  reason: ThrottleReason;
  numbers: { share: number; maxShare: number; armedHz: number; requestedHz: number };
}

export interface ThrottleInput {
  requestedHz: number;
  armedHz: number;
  /** CPU ns one sample costs (cb.sample_cost_ns). */
  costNs: number;
  /** Ticks and kernel-thread CPU ns over the interval. */
  ticks: number;
  cpuNs: number;
  maxShare?: number;
}

export function decideRate(i: ThrottleInput): ThrottleDecision {
  const maxShare = i.maxShare ?? THROTTLE_PARAMS.maxCpuShare;
  const share = i.cpuNs > 0 ? (i.ticks * i.costNs) / i.cpuNs : 0;
  const numbers = { share, maxShare, armedHz: i.armedHz, requestedHz: i.requestedHz };
  const keep = (reason: ThrottleReason): ThrottleDecision => ({ kind: 'keep', hz: i.armedHz, reason, numbers });
  if (i.cpuNs < THROTTLE_PARAMS.minCpuNs || i.armedHz === 0) return keep('too-little-cpu');
  if (share > maxShare) {
    const hz = Math.max(THROTTLE_PARAMS.minHz, Math.floor((i.armedHz * maxShare * THROTTLE_PARAMS.targetShare) / share));
    return hz < i.armedHz ? { kind: 'lower', hz, reason: 'over-budget', numbers } : keep('over-budget');
  }
  if (i.armedHz >= i.requestedHz) return keep('at-requested');
  if (share < maxShare * THROTTLE_PARAMS.raiseBelow) {
    return { kind: 'raise', hz: Math.min(i.requestedHz, i.armedHz * 2), reason: 'under-budget', numbers };
  }
  return keep('within-budget');
}
