// The re-JIT policies (pure), their guard against broken user policies, the
// regression check's verdict, peaks, and replaying a recorded trace.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { judge } from '../dist/src/pgo/abtest.js';
import { peakOf } from '../dist/src/pgo/engine.js';
import { guarded, loadPolicy, readTrace, replay, TraceWriter } from '../dist/src/pgo/policies.js';
import { conservativePolicy, DEFAULT_POLICY, decideTier, defaultPolicy, type FunctionState, type PolicyInput, thresholdPolicy } from '../dist/src/pgo/policy.js';

const fn = (name: string, over: Partial<FunctionState> = {}): FunctionState => ({
  name,
  selfPct: 5,
  totalPct: 5,
  icallSites: 0,
  icallsPerS: 0,
  jitable: true,
  counts: null,
  live: { kind: 'boot' },
  wasHot: false,
  failures: 0,
  regressions: 0,
  sinceSetbackS: null,
  speedups: [],
  expectedCompileMs: 100,
  ...over,
});
const input = (functions: FunctionState[], over: Partial<PolicyInput> = {}): PolicyInput => ({
  nowS: 10,
  functions,
  sysctls: [{ name: 'net.firewall', variable: 'sysctl_net_firewall', value: '1', stableS: 5 }],
  busy: 0,
  kernelBusyShare: 1,
  ...over,
});
const decide = (fs: FunctionState[], over: Partial<PolicyInput> = {}) => Object.fromEntries(defaultPolicy(input(fs, over)).map((d) => [d.function, d]));

describe('the default policy', () => {
  it('instruments a hot function without counts, then optimizes it with the stable sysctls folded', () => {
    expect(decide([fn('f')]).f).toMatchObject({ kind: 'instrument', reason: 'needs-counts' });
    const d = decide([fn('f', { counts: { id: 3, ageS: 1, current: true, entries: 10 } })]).f!;
    expect(d).toMatchObject({ kind: 'optimize', reason: 'hot', fold: { sysctl_net_firewall: '1' } });
    expect(d.numbers.counts_id).toBe(3);
  });

  it('folds only sysctls stable long enough', () => {
    const d = decide([fn('f', { counts: { id: 1, ageS: 1, current: true, entries: 10 } })], {
      sysctls: [{ name: 'kernel.trace', variable: 'sysctl_kernel_trace', value: '0', stableS: 0.2 }],
    }).f!;
    expect(d.fold).toEqual({});
  });

  it('has hysteresis: 0.8% is not hot for a newcomer but stays hot for a function that was', () => {
    expect(decide([fn('f', { selfPct: 0.8 })]).f!.reason).toBe('not-hot');
    expect(decide([fn('f', { selfPct: 0.8, wasHot: true })]).f!.kind).toBe('instrument');
  });

  it('takes functions with indirect calls on hot chains even when their own time is small', () => {
    expect(decide([fn('f', { selfPct: 0.1, totalPct: 20, icallSites: 1 })]).f!.kind).toBe('instrument');
    expect(decide([fn('f', { selfPct: 0.1, totalPct: 20 })]).f!.reason).toBe('not-hot');
  });

  it('backs off after a setback, doubling, and blacklists after maxFailures', () => {
    const counts = { id: 1, ageS: 1, current: true, entries: 10 };
    expect(decide([fn('f', { counts, regressions: 1, sinceSetbackS: 2 })]).f!.reason).toBe('backing-off');
    expect(decide([fn('f', { counts, regressions: 1, sinceSetbackS: 6 })]).f!.kind).toBe('optimize');
    expect(decide([fn('f', { counts, regressions: 2, sinceSetbackS: 6 })]).f!.reason).toBe('backing-off'); /* 10 s now */
    expect(decide([fn('f', { counts, failures: 1, regressions: 2, sinceSetbackS: 1000 })]).f!.reason).toBe('blacklisted');
  });

  it('reverts a version whose folded sysctl changed, and leaves an optimized one alone otherwise', () => {
    const counts = { id: 1, ageS: 1, current: true, entries: 10 };
    const live = { kind: 'optimized' as const, countsId: 1, folded: { sysctl_net_firewall: '0' } };
    expect(decide([fn('f', { counts, live })]).f).toMatchObject({ kind: 'revert', reason: 'sysctl-changed' });
    expect(decide([fn('f', { counts, live: { ...live, folded: { sysctl_net_firewall: '1' } } })]).f!.reason).toBe('optimized');
    /* newer counts: optimized again */
    expect(decide([fn('f', { counts: { ...counts, id: 2 }, live: { ...live, folded: {} } })]).f).toMatchObject({ kind: 'optimize', reason: 'refresh' });
  });

  it('never re-JITs what has no IR, refreshes stale counts, and weighs benefit against compile cost', () => {
    expect(decide([fn('copy_erms', { jitable: false })]).copy_erms!.reason).toBe('not-ir');
    expect(decide([fn('f', { counts: { id: 1, ageS: 1, current: false, entries: 10 } })]).f!.reason).toBe('counts-stale');
    expect(decide([fn('f', { counts: { id: 1, ageS: 500, current: true, entries: 10 } })]).f!.reason).toBe('counts-old');
    /* 1.2% of the time, a 5% prior, 300 s: 0.18 s of benefit < 2 s of compile */
    const d = decide([fn('f', { selfPct: 1.2, counts: { id: 1, ageS: 1, current: true, entries: 10 }, expectedCompileMs: 2000 })]).f!;
    expect(d.reason).toBe('not-worth-it');
    expect(d.numbers.benefit_s).toBeCloseTo(0.18, 5);
  });

  it('limits jobs per round, hottest first', () => {
    const fs = Array.from({ length: 20 }, (_, i) => fn(`f${i}`, { selfPct: 20 - i }));
    const out = defaultPolicy(input(fs));
    expect(out.filter((d) => d.kind === 'instrument').map((d) => d.function)).toEqual(fs.slice(0, DEFAULT_POLICY.maxJobs).map((f) => f.name));
    expect(out.filter((d) => d.reason === 'queued')).toHaveLength(20 - DEFAULT_POLICY.maxJobs);
  });
});

describe('the default policy, more', () => {
  it('leaves a function hot by samples but never entered while counted (a long-running loop)', () => {
    expect(decide([fn('worker_main', { counts: { id: 1, ageS: 1, current: true, entries: 0 } })]).worker_main!.reason).toBe('not-entered');
  });
});

describe('the image tier', () => {
  const sysctl = (value: string, stableS: number) => [{ name: 'net.firewall', variable: 'sysctl_net_firewall', value, stableS }];
  const state = (over: Partial<Parameters<typeof decideTier>[0]> = {}) => ({ nowS: 5, uptimeS: 5, counted: 300, live: null, failures: 0, sinceFailureS: null, sysctls: sysctl('1', 5), ...over });
  it('counts first, then builds with the stable sysctls folded, then leaves a live tier alone', () => {
    expect(decideTier(state({ counted: 0 }))).toEqual({ kind: 'count', reason: 'needs-counts' });
    expect(decideTier(state())).toEqual({ kind: 'build', reason: 'no-tier', fold: { sysctl_net_firewall: '1' } });
    expect(decideTier(state({ sysctls: sysctl('1', 0.1) }))).toEqual({ kind: 'build', reason: 'no-tier', fold: {} });
    expect(decideTier(state({ live: { folded: { sysctl_net_firewall: '1' } } })).reason).toBe('live');
  });
  it('rebuilds once a folded sysctl changed and settled; backs off and gives up after failures', () => {
    const live = { folded: { sysctl_net_firewall: '1' } };
    expect(decideTier(state({ live, sysctls: sysctl('0', 0.2) })).reason).toBe('sysctl-settling');
    expect(decideTier(state({ live, sysctls: sysctl('0', 3) }))).toEqual({ kind: 'build', reason: 'sysctl-changed', fold: { sysctl_net_firewall: '0' } });
    expect(decideTier(state({ failures: 1, sinceFailureS: 2 })).reason).toBe('backing-off');
    expect(decideTier(state({ failures: 1, sinceFailureS: 11 })).kind).toBe('build');
    expect(decideTier(state({ failures: 3, sinceFailureS: 1000 })).reason).toBe('blacklisted');
  });
});

describe('the other built-in policies', () => {
  it('threshold: no benefit model, blacklists at the first setback', () => {
    const counts = { id: 1, ageS: 1, current: true, entries: 10 };
    expect(thresholdPolicy(input([fn('f', { selfPct: 1.2, counts, expectedCompileMs: 2000 })]))[0]!.kind).toBe('optimize');
    expect(thresholdPolicy(input([fn('f', { counts, regressions: 1, sinceSetbackS: 1000 })]))[0]!.reason).toBe('blacklisted');
  });

  it('conservative: only clearly hot functions, one job a round, nothing folded', () => {
    const out = conservativePolicy(input([fn('a', { selfPct: 10, counts: { id: 1, ageS: 1, current: true, entries: 10 } }), fn('b', { selfPct: 9 }), fn('c', { selfPct: 2 })]));
    expect(out.find((d) => d.function === 'a')).toMatchObject({ kind: 'optimize', fold: {} });
    expect(out.find((d) => d.function === 'b')!.reason).toBe('queued');
    expect(out.find((d) => d.function === 'c')!.reason).toBe('not-hot');
  });
});

describe('a broken policy', () => {
  it('that throws or answers nonsense is reported once and the default takes over', () => {
    const problems: string[] = [];
    const throwing = guarded({ name: 'bad', policy: () => { throw new Error('boom'); } }, (p) => problems.push(p));
    const i = input([fn('f')]);
    expect(throwing(i)).toEqual(defaultPolicy(i));
    expect(throwing(i)).toEqual(defaultPolicy(i));
    expect(problems).toEqual(['policy bad threw: boom; the default policy takes over']);
    for (const [answer, problem] of [
      [42, /not an array/],
      [[{ kind: 'explode', function: 'f', reason: 'x' }], /unknown kind/],
      [[{ kind: 'optimize', function: 'nope', reason: 'x' }], /not a function of the input/],
      [[{ kind: 'optimize', function: 'f' }], /no reason/],
    ] as const) {
      const seen: string[] = [];
      const p = guarded({ name: 'odd', policy: () => answer as never }, (x) => seen.push(x));
      expect(p(i)).toEqual(defaultPolicy(i));
      expect(seen[0]).toMatch(problem);
    }
  });

  it('is refused at load time with a clear error when it is not a policy', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kjit-policy-'));
    writeFileSync(join(dir, 'none.js'), 'export const x = 1;\n');
    writeFileSync(join(dir, 'broken.js'), 'export default function (\n');
    await expect(loadPolicy(join(dir, 'none.js'))).rejects.toThrow(/exports no function/);
    await expect(loadPolicy(join(dir, 'broken.js'))).rejects.toThrow(/does not load/);
    await expect(loadPolicy(join(dir, 'missing.js'))).rejects.toThrow(/does not exist/);
    await expect(loadPolicy('fastest')).rejects.toThrow(/unknown policy 'fastest'/);
    expect((await loadPolicy('conservative')).policy).toBe(conservativePolicy);
  });
});

describe('traces', () => {
  it('replay reproduces the recorded decisions of the same policy, and shows another policy\'s', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kjit-trace-'));
    const path = join(dir, 't.jsonl');
    const w = new TraceWriter(path, 'default');
    const rounds = [
      input([fn('f'), fn('g', { selfPct: 0.2 })], { nowS: 1 }),
      input([fn('f', { counts: { id: 1, ageS: 0.5, current: true, entries: 10 } }), fn('g', { selfPct: 3 })], { nowS: 2 }),
    ];
    for (const r of rounds) w.write(r, defaultPolicy(r));
    const trace = readTrace(path);
    expect(trace).toHaveLength(2);
    const same = replay(trace, { name: 'default', policy: defaultPolicy });
    expect(same.differing).toBe(0);
    expect(same.counts).toEqual({ instrument: 2, optimize: 1 });
    const other = replay(trace, { name: 'conservative', policy: conservativePolicy });
    expect(other.differing).toBeGreaterThan(0);
    writeFileSync(join(dir, 'bad.jsonl'), 'nope\n');
    expect(() => readTrace(join(dir, 'bad.jsonl'))).toThrow(/line 1 .* is not JSON/);
  });
});

describe('the regression check and peaks', () => {
  it('keeps new code only when it is faster by the test', () => {
    const old = [100, 101, 99, 100, 102, 100, 101, 99, 100, 101];
    expect(judge(old, old.map((x) => x * 0.95)).keep).toBe(true);
    expect(judge(old, old.map((x) => x * 1.05))).toMatchObject({ keep: false });
    expect(judge(old, old.map((x) => x * 1.05)).reason).toMatch(/^not faster/);
    /* faster on the median by a hair, but within the noise */
    const noisy = judge([100, 120, 80, 110, 90, 105, 95], [99, 119, 79, 109, 89, 104, 94]);
    expect(noisy.keep).toBe(false);
    expect(noisy.reason).toMatch(/not shown faster/);
    expect(judge([1, 2], [1, 2]).reason).toMatch(/too few/);
  });

  it('peak is the median of the last third; time to 95% the first moment it stays there', () => {
    const t = [50, 60, 90, 96, 100, 99, 100, 101, 100].map((ops, i) => ({ t_s: i + 1, ops_per_sec: ops }));
    const { peak, timeTo95 } = peakOf(t);
    expect(peak).toBe(100);
    expect(timeTo95).toBe(3); /* the window ending at 4 s starts the streak */
    expect(peakOf([]).timeTo95).toBeNull();
  });
});
