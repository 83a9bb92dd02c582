/**
 * @fileoverview Why a function was or was not optimized, in plain words:
 * the policy's latest decision for it in a boot (src/pgo/policy.ts reasons,
 * with the numbers it was made on), refined by what became of its compiles
 * (a regression rolled back, a failed compile).  `kjit explain` prints it;
 * `kjit report` shows it per function.  Pure: the store's rows in, words out.
 */

/** A decision row as the store keeps it. */
export interface DecisionRow {
  kind: string;
  function: string | null;
  reason: string;
  numbers: Record<string, unknown>;
  at_s: number | null;
}

/** A compile-log row as the store keeps it. */
export interface CompileRow {
  function: string;
  version: number | null;
  tier: string;
  reason: string;
  compile_ms: number | null;
  code_bytes: number | null;
  outcome: string;
  why: string | null;
  at_s: number | null;
}

/** What a function came to, in one word (the `state` of `kjit explain --json`). */
export type FunctionStateName =
  | 'optimized'
  | 'rolled-back'
  | 'compile-failed'
  | 'blacklisted'
  | 'backing-off'
  | 'reverted'
  | 'not-hot'
  | 'not-ir'
  | 'not-worth-it'
  | 'instrumenting'
  | 'stale-profile'
  | 'queued'
  | 'patched'
  | 'not-considered'
  | 'not-re-jitted';

export interface Why {
  state: FunctionStateName;
  /** The policy's reason (policy.ts), or what stands in for one (compile outcomes, the mode). */
  reason: string;
  /** One plain sentence. */
  why: string;
  numbers: Record<string, unknown>;
  /** Seconds into the run the deciding event happened (null: not known). */
  at_s: number | null;
}

const n = (x: unknown, digits = 2): string => (typeof x === 'number' && Number.isFinite(x) ? Number(x.toFixed(digits)).toString() : String(x ?? '?'));
const pct = (x: unknown): string => `${n(x, 2)}%`;
const secs = (x: unknown): string => (typeof x === 'number' ? `${x !== 0 && Math.abs(x) < 0.001 ? x.toExponential(1) : n(x, Math.abs(x) < 1 ? 3 : 1)} s` : '? s');

/** The sentence for a policy reason and its numbers. */
export function describeReason(reason: string, num: Record<string, unknown>): string {
  switch (reason) {
    case 'not-ir':
      return 'kjit cannot compile it: it has no IR in the image (assembly, the kjit runtime or native code)';
    case 'blacklisted':
      return `given up: ${n(num.failures, 0)} failed compile(s) or fault(s) and ${n(num.regressions, 0)} regression(s) reached the limit`;
    case 'backing-off':
      return `backing off after a setback (a regression or a failure): waits ${secs(num.wait_s)}, ${secs(num.since_s)} so far`;
    case 'not-hot':
      return `not hot enough: ${pct(num.self_pct)} of recent samples in its own code (threshold ${pct(num.threshold_pct)}), on ${pct(num.total_pct)} of call chains`;
    case 'sysctl-changed':
      return 'reverted to boot code: a sysctl its optimized version had folded changed value';
    case 'needs-counts':
      return `hot (${pct(num.self_pct)} self), but no exact counts yet: an instrumentation window was run to count its branches and indirect calls`;
    case 'counts-old':
      return `hot (${pct(num.self_pct)} self), and its exact counts were old: counted again`;
    case 'counts-stale':
      return `stale profile: its stored counts are of other IR (the function changed since they were taken), so they were not used; counted again`;
    case 'optimized':
      return `optimized: the version running was built with its current exact counts (${pct(num.self_pct)} self)`;
    case 'not-worth-it':
      if (typeof num.speedup === 'number' && num.speedup <= 0) {
        return `not worth it: its earlier optimized versions were not faster (measured speedup ${n(num.speedup * 100, 2)}%), so no saving is expected for a compile cost of ${secs(num.cost_s)}`;
      }
      return `not worth it: expected saving ${secs(num.benefit_s)} of kernel time over the horizon (speedup ${n(num.speedup, 3)}) is below the compile cost ${secs(num.cost_s)}`;
    case 'queued':
      return `waiting: ${n(num.busy, 0)} other job(s) already took this round's slots`;
    case 'hot':
      return `optimized because hot: ${pct(num.self_pct)} self, expected saving ${secs(num.benefit_s)} against a compile cost of ${secs(num.cost_s)}`;
    case 'refresh':
      return `re-optimized with newer exact counts (${pct(num.self_pct)} self)`;
    default:
      return reason;
  }
}

const STATE_OF_REASON: Record<string, FunctionStateName> = {
  'not-ir': 'not-ir',
  blacklisted: 'blacklisted',
  'backing-off': 'backing-off',
  'not-hot': 'not-hot',
  'sysctl-changed': 'reverted',
  'needs-counts': 'instrumenting',
  'counts-old': 'instrumenting',
  'counts-stale': 'stale-profile',
  optimized: 'optimized',
  'not-worth-it': 'not-worth-it',
  queued: 'queued',
  hot: 'optimized',
  refresh: 'optimized',
};

/**
 * Why `fn` ended the boot as it did.  `decisions` and `compiles` are the
 * boot's rows for it, oldest first; `online`: the boot's mode re-JITs
 * (pgo).
 */
export function whyOf(fn: string, o: { mode: string; online: boolean; decisions: readonly DecisionRow[]; compiles: readonly CompileRow[] }): Why {
  const why = whyOfDecisions(fn, o);
  /* a tiered boot left it for its first call (src/rejit/lazy.ts): say when that came */
  const lazy = o.compiles.find((c) => c.tier === 'lazy');
  return lazy ? { ...why, why: `${why.why}; its code was compiled on first call at ${(lazy.at_s ?? 0).toFixed(2)} s (fast tier, ${Math.round(lazy.compile_ms ?? 0)} ms for its source file)` } : why;
}

function whyOfDecisions(fn: string, o: { mode: string; online: boolean; decisions: readonly DecisionRow[]; compiles: readonly CompileRow[] }): Why {
  const last = o.decisions.at(-1);
  const patched = o.compiles.filter((c) => c.tier === 'patched');
  const lastCompile = o.compiles.filter((c) => c.tier !== 'lazy').at(-1);
  if (!last) {
    if (patched.length) {
      const p = patched.at(-1)!;
      return { state: 'patched', reason: 'live-patch', why: `${p.reason}: ${p.outcome}${p.why ? ` (${p.why})` : ''}`, numbers: {}, at_s: p.at_s };
    }
    if (!o.online) {
      return { state: 'not-re-jitted', reason: 'mode', why: `this boot ran in mode ${o.mode}: only the pgo mode re-optimizes functions while the kernel runs`, numbers: {}, at_s: null };
    }
    return {
      state: 'not-considered',
      reason: 'not-sampled',
      why: `the policy never looked at ${fn}: it was never among the hottest sampled functions nor on a sampled chain with indirect calls`,
      numbers: {},
      at_s: null,
    };
  }
  const base: Why = { state: STATE_OF_REASON[last.reason] ?? 'not-considered', reason: last.reason, why: describeReason(last.reason, last.numbers), numbers: last.numbers, at_s: last.at_s };
  /* what became of the compile a 'hot' or 'refresh' decision asked for */
  if ((last.reason === 'hot' || last.reason === 'refresh') && lastCompile && lastCompile.tier !== 'patched' && (lastCompile.at_s ?? 0) >= (last.at_s ?? 0)) {
    if (lastCompile.outcome === 'rolled-back') {
      return { ...base, state: 'rolled-back', reason: 'regression', why: `compiled, then rolled back: the interleaved check found it ${lastCompile.why ?? 'not faster'}`, at_s: lastCompile.at_s };
    }
    if (lastCompile.outcome === 'failed') {
      return { ...base, state: 'compile-failed', reason: 'compile-failed', why: `its compile failed: ${lastCompile.why ?? 'unknown error'}; the boot code keeps running`, at_s: lastCompile.at_s };
    }
  }
  /* a backoff or a blacklisting names its setback */
  if (last.reason === 'backing-off' || last.reason === 'blacklisted') {
    const setback = [...o.compiles].reverse().find((c) => c.outcome === 'rolled-back' || c.outcome === 'failed');
    if (setback) return { ...base, why: `${base.why}; last setback: ${setback.outcome === 'rolled-back' ? `a regression (${setback.why ?? 'not faster'})` : `a failed compile (${setback.why ?? ''})`}` };
  }
  return base;
}
