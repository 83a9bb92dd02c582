// A user-written re-JIT policy for `kjit run --mode pgo --policy examples/policies/hottest-only.js`.
// It gets what the engine observed (src/pgo/policy.ts, PolicyInput) and returns decisions:
// { kind: 'instrument' | 'optimize' | 'revert' | 'leave', function, reason, numbers, fold? }.
// Pure: no I/O, the same input gives the same decisions (kjit replay relies on it).
//
// This one re-JITs only the single hottest function that has IR, and folds nothing.
export default function hottestOnly(input) {
  const candidates = input.functions.filter((f) => f.jitable && f.failures + f.regressions === 0);
  const hottest = candidates.sort((a, b) => b.selfPct - a.selfPct)[0];
  return input.functions.map((f) => {
    if (f !== hottest) return { kind: 'leave', function: f.name, reason: 'not-the-hottest', numbers: { self_pct: f.selfPct } };
    if (!f.counts || !f.counts.current) return { kind: 'instrument', function: f.name, reason: 'needs-counts', numbers: { self_pct: f.selfPct } };
    if (f.live.kind === 'optimized' && f.live.countsId === f.counts.id) return { kind: 'leave', function: f.name, reason: 'optimized', numbers: {} };
    return { kind: 'optimize', function: f.name, reason: 'hottest', fold: {}, numbers: { self_pct: f.selfPct } };
  });
}
