/**
 * @fileoverview The re-JIT policy (pure: STYLE.md, mechanism and policy
 * apart).  Given what the sampler and the instrumentation windows observed,
 * what earlier versions achieved and what the budget allows, it decides what
 * to instrument, optimize (with the profile and with run-time sysctls that
 * stayed unchanged folded behind a guard), revert, or leave alone, every
 * decision with its reason and the numbers it was made from.  The engine
 * (engine.ts) carries decisions out and feeds the outcomes back as history.
 *
 * The default policy, per function, in order:
 *   - not JIT-able (assembly, the runtime, no IR)      -> leave ('not-ir')
 *   - blacklisted (faults, failed compiles, regressions) -> leave ('blacklisted')
 *   - backing off after a failure or a regression      -> leave ('backing-off')
 *   - below the hotness threshold (with hysteresis), by its own samples,
 *     or, for a function with indirect calls, by the chains it is on -> leave ('not-hot')
 *   - a live version folded a sysctl that has changed  -> revert ('sysctl-changed')
 *   - no exact counts yet, or counts of older IR       -> instrument ('needs-counts')
 *   - counted, but never entered during the window     -> leave ('not-entered')
 *   - optimized already with these counts              -> leave ('optimized')
 *     (a version keeps the sysctls it folded until one changes: then it is
 *     reverted, and optimized again with the values stable by then)
 *   - expected benefit below its expected compile cost -> leave ('not-worth-it')
 *     (benefit: its share of the time times the speedup its versions got,
 *     or a prior, plus the retpolines its promoted indirect calls save)
 *   - otherwise                                        -> optimize ('hot')
 * and at most `maxJobs` instrument or optimize decisions per round, hottest
 * first (the rest wait: 'queued').
 */

export interface PolicyParams {
  /** Self share of samples (%) to become a candidate ... */
  hotPct: number;
  /** ... and to stop being one (hysteresis: a function hovering at the threshold is not re-JITed back and forth). */
  coldPct: number;
  /** Seconds a run-time sysctl must stay unchanged before it is folded. */
  stableS: number;
  /** Counts older than this are refreshed by a new window. */
  countsMaxAgeS: number;
  /** Instrument/optimize decisions per round. */
  maxJobs: number;
  /** First backoff after a failure or regression, doubled each time. */
  backoffS: number;
  /** Failures (compile, fault) or regressions before a function is blacklisted. */
  maxFailures: number;
  /** Expected gain of an optimized version, as a share of the function's time, before any was measured. */
  priorSpeedup: number;
  /** Kernel seconds a version must be expected to save over the horizon, per second of compile it costs. */
  benefitOverCost: number;
  /** Seconds of future run the benefit is counted over. */
  horizonS: number;
  /** A function with indirect calls is a candidate when on this share (%) of the sampled call chains (total samples). */
  icallTotalPct: number;
  /** Time an indirect call through a retpoline costs more than a direct one (ns). */
  retpolineNs: number;
}

export const DEFAULT_POLICY: PolicyParams = {
  hotPct: 1.0,
  coldPct: 0.5,
  stableS: 1.0,
  countsMaxAgeS: 120,
  maxJobs: 12,
  backoffS: 5,
  maxFailures: 3,
  priorSpeedup: 0.05,
  benefitOverCost: 1,
  horizonS: 300,
  icallTotalPct: 3,
  retpolineNs: 10,
};

export interface FunctionState {
  name: string;
  /** Self share of recent samples, %. */
  selfPct: number;
  /** Share of recent samples with the function anywhere in the chain, %. */
  totalPct: number;
  /** Indirect calls in its IR (value profiles may turn their hot targets into direct calls). */
  icallSites: number;
  /** Indirect calls per second through it, from its counts (0 if none). */
  icallsPerS: number;
  /** Has IR kjit can compile (not assembly, not the runtime). */
  jitable: boolean;
  /** Exact counts: which (an id), their age in seconds, and whether they are of this IR; null: none. */
  counts: { id: number; ageS: number; current: boolean; entries: number } | null;
  /** The live version: boot code, or a version built with these counts and these sysctls folded. */
  live: { kind: 'boot' } | { kind: 'optimized'; countsId: number | null; folded: Record<string, string> };
  /** Was a candidate last round (hysteresis). */
  wasHot: boolean;
  failures: number;
  regressions: number;
  /** Seconds since the last failure or regression (null: none). */
  sinceSetbackS: number | null;
  /** Speedups (old time / new time - 1) its earlier versions achieved. */
  speedups: number[];
  /** Compile time expected for it (ms), from the compile-time model. */
  expectedCompileMs: number;
}

export interface SysctlState {
  name: string;
  variable: string;
  value: string;
  /** Seconds since it last changed. */
  stableS: number;
}

export interface PolicyInput {
  nowS: number;
  functions: readonly FunctionState[];
  sysctls: readonly SysctlState[];
  /** Jobs (compiles, windows) already under way. */
  busy: number;
  /** The kernel thread's share of one CPU doing kernel work (for benefit in seconds). */
  kernelBusyShare: number;
}

export type DecisionKind = 'instrument' | 'optimize' | 'revert' | 'leave';

export interface Decision {
  kind: DecisionKind;
  function: string;
  reason: string;
  /** For optimize: the run-time sysctls to fold (variable -> value). */
  fold?: Record<string, string>;
  numbers: Record<string, number>;
}

export type Policy = (input: PolicyInput, params?: PolicyParams) => Decision[];

/** The run-time sysctls stable long enough to fold. */
export function foldable(sysctls: readonly SysctlState[], params: PolicyParams): Record<string, string> {
  const out: Record<string, string> = {};
  for (const s of sysctls) if (s.stableS >= params.stableS) out[s.variable] = s.value;
  return out;
}

export const defaultPolicy: Policy = (input, params = DEFAULT_POLICY) => {
  const out: Decision[] = [];
  const fold = foldable(input.sysctls, params);
  const current = new Map(input.sysctls.map((s) => [s.variable, s.value]));
  let jobs = input.busy;
  const ranked = [...input.functions].sort((a, b) => b.selfPct - a.selfPct || (a.name < b.name ? -1 : 1));
  for (const f of ranked) {
    const n = { self_pct: f.selfPct };
    const leave = (reason: string, more: Record<string, number> = {}) => out.push({ kind: 'leave', function: f.name, reason, numbers: { ...n, ...more } });
    if (!f.jitable) {
      leave('not-ir');
      continue;
    }
    if (f.live.kind === 'optimized') {
      const changed = Object.entries(f.live.folded).find(([v, val]) => current.get(v) !== undefined && current.get(v) !== val);
      if (changed) {
        out.push({ kind: 'revert', function: f.name, reason: 'sysctl-changed', numbers: n });
        continue;
      }
    }
    const setbacks = f.failures + f.regressions;
    if (setbacks >= params.maxFailures) {
      leave('blacklisted', { failures: f.failures, regressions: f.regressions });
      continue;
    }
    if (setbacks > 0 && f.sinceSetbackS !== null) {
      const wait = params.backoffS * 2 ** (setbacks - 1);
      if (f.sinceSetbackS < wait) {
        leave('backing-off', { wait_s: wait, since_s: f.sinceSetbackS });
        continue;
      }
    }
    const threshold = f.wasHot ? params.coldPct : params.hotPct;
    const icallHot = f.icallSites > 0 && f.totalPct >= (f.wasHot ? params.icallTotalPct / 2 : params.icallTotalPct);
    if (f.selfPct < threshold && !icallHot) {
      leave('not-hot', { threshold_pct: threshold, total_pct: f.totalPct });
      continue;
    }
    if (!f.counts || !f.counts.current || f.counts.ageS > params.countsMaxAgeS) {
      if (jobs >= params.maxJobs) {
        leave('queued', { busy: jobs });
        continue;
      }
      jobs++;
      out.push({ kind: 'instrument', function: f.name, reason: f.counts ? (f.counts.current ? 'counts-old' : 'counts-stale') : 'needs-counts', numbers: n });
      continue;
    }
    if (f.counts.entries === 0) {
      /* hot by its samples, but never entered while counted (a loop that runs for long: a
       * task's main function): a new version would not run until it is called again */
      leave('not-entered');
      continue;
    }
    if (f.live.kind === 'optimized' && f.live.countsId === f.counts.id) {
      leave('optimized');
      continue;
    }
    /* expected benefit: the function's share of the kernel's time times the
     * speedup its versions achieved (or the prior), over the horizon */
    const speedup = f.speedups.length ? f.speedups.reduce((s, x) => s + x, 0) / f.speedups.length : params.priorSpeedup;
    const benefitS =
      ((f.selfPct / 100) * input.kernelBusyShare * Math.max(0, speedup) + (f.icallsPerS * params.retpolineNs) / 1e9) * params.horizonS;
    const costS = f.expectedCompileMs / 1000;
    if (benefitS < costS * params.benefitOverCost) {
      leave('not-worth-it', { benefit_s: benefitS, cost_s: costS, speedup });
      continue;
    }
    if (jobs >= params.maxJobs) {
      leave('queued', { busy: jobs });
      continue;
    }
    jobs++;
    out.push({ kind: 'optimize', function: f.name, reason: f.live.kind === 'optimized' ? 'refresh' : 'hot', fold, numbers: { ...n, benefit_s: benefitS, cost_s: costS, speedup, counts_id: f.counts.id } });
  }
  return out;
};

/**
 * A counter-threshold policy, like ORC's re-optimization layer or HotSpot's
 * tiers: a function is instrumented once its self samples pass a fixed
 * threshold and optimized as soon as it has counts, with no benefit model;
 * a setback blacklists it at once.
 */
export const thresholdPolicy: Policy = (input, params = DEFAULT_POLICY) =>
  defaultPolicy(input, { ...params, benefitOverCost: 0, maxFailures: 1, coldPct: params.hotPct });

/**
 * For latency-sensitive servers: few changes, each well justified.  Only
 * clearly hot functions (3x the default threshold), one job per round,
 * nothing folded (no de-specialization pauses on sysctl writes), long
 * backoff, and a function is given up after its first setback.
 */
export const conservativePolicy: Policy = (input, params = DEFAULT_POLICY) =>
  defaultPolicy(
    { ...input, sysctls: [] },
    { ...params, hotPct: params.hotPct * 3, coldPct: params.hotPct * 2, maxJobs: 1, backoffS: params.backoffS * 6, maxFailures: 1, benefitOverCost: params.benefitOverCost * 4 },
  );

export const POLICIES: Record<string, Policy> = { default: defaultPolicy, threshold: thresholdPolicy, conservative: conservativePolicy };

/**
 * Check what a policy (perhaps a user's module) returned: an array of
 * decisions of known kinds, each naming a function the input had and a
 * reason.  Returns the problem, or null.
 */
export function checkDecisions(input: PolicyInput, out: unknown): string | null {
  if (!Array.isArray(out)) return `returned ${out === null ? 'null' : typeof out}, not an array of decisions`;
  const names = new Set(input.functions.map((f) => f.name));
  for (const [i, d] of out.entries()) {
    if (typeof d !== 'object' || d === null) return `decision ${i} is not an object`;
    const x = d as Partial<Decision>;
    if (!['instrument', 'optimize', 'revert', 'leave'].includes(x.kind as string)) return `decision ${i} has unknown kind ${JSON.stringify(x.kind)}`;
    if (typeof x.function !== 'string' || !names.has(x.function)) return `decision ${i} names ${JSON.stringify(x.function)}, not a function of the input`;
    if (typeof x.reason !== 'string' || !x.reason) return `decision ${i} has no reason`;
    if (x.numbers !== undefined && (typeof x.numbers !== 'object' || x.numbers === null)) return `decision ${i} has numbers that are not an object`;
    if (x.fold !== undefined && (typeof x.fold !== 'object' || x.fold === null)) return `decision ${i} has a fold that is not an object`;
  }
  return null;
}

/* ---- the image tier ------------------------------------------------------------ */

/**
 * The whole-image tier (src/rejit/image-unit.ts): every function with boot
 * code recompiled together with its exact counts, as an offline PGO build
 * would be, and the stable run-time sysctls folded behind guards.  Its
 * decisions are pure too: count (an instrumentation window over the whole
 * image), build, or leave it.
 */
export interface TierState {
  nowS: number;
  /** Seconds the kernel has run. */
  uptimeS: number;
  /** Functions with exact counts of this IR (from a window or the store). */
  counted: number;
  /** A tier is live: what it folded; null: none. */
  live: { folded: Record<string, string> } | null;
  /** Tier builds that were not faster, or failed, and when the last was. */
  failures: number;
  sinceFailureS: number | null;
  sysctls: readonly SysctlState[];
}

export interface TierParams {
  /** Run this long before counting (the sampler and caches settle). */
  startS: number;
  /** Counted functions needed to build a tier without a window of its own (a warm start). */
  minCounted: number;
  maxFailures: number;
  backoffS: number;
}

export const DEFAULT_TIER: TierParams = { startS: 0.4, minCounted: 20, maxFailures: 3, backoffS: 10 };

export type TierDecision =
  | { kind: 'count'; reason: string }
  | { kind: 'build'; reason: string; fold: Record<string, string> }
  | { kind: 'leave'; reason: string };

export function decideTier(s: TierState, policy: PolicyParams = DEFAULT_POLICY, params: TierParams = DEFAULT_TIER): TierDecision {
  if (s.failures >= params.maxFailures) return { kind: 'leave', reason: 'blacklisted' };
  if (s.failures > 0 && s.sinceFailureS !== null && s.sinceFailureS < params.backoffS * 2 ** (s.failures - 1)) return { kind: 'leave', reason: 'backing-off' };
  if (s.uptimeS < params.startS) return { kind: 'leave', reason: 'starting' };
  if (s.counted < params.minCounted) return { kind: 'count', reason: 'needs-counts' };
  const current = new Map(s.sysctls.map((x) => [x.variable, x]));
  const fold = foldable(s.sysctls, policy);
  if (!s.live) return { kind: 'build', reason: 'no-tier', fold };
  const changed = Object.entries(s.live.folded).filter(([v, val]) => current.get(v) !== undefined && current.get(v)!.value !== val);
  if (!changed.length) return { kind: 'leave', reason: 'live' };
  /* its guards keep it correct meanwhile; rebuild once the values settle */
  if (changed.some(([v]) => current.get(v)!.stableS < policy.stableS)) return { kind: 'leave', reason: 'sysctl-settling' };
  return { kind: 'build', reason: 'sysctl-changed', fold };
}
