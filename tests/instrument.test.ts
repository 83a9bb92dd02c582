// Instrumentation windows and live probes: exact counts of a function with
// known branch behaviour and known indirect-call targets, computed
// independently; a probe counts every call and leaves the results unchanged;
// bad requests change nothing.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type Kernel, withKernel as withKernelOf } from './kernel.js';
import { execute, prepareBoot, type PreparedBoot } from '../dist/src/kernel/run.js';
import { decodeCounts, instrumentationWindow } from '../dist/src/sampler/instrument.js';
import { decodeProbe, probeFunction } from '../dist/src/sampler/probe.js';
import { PROBE_LAYOUT } from '../dist/src/rejit/unit.js';

let dir = '';
let p: PreparedBoot;

/* classify(i): one if, one switch, a nested conditional choosing a table
 * slot, one indirect call through a table init() fills at run time. */
const program = `#include <stdint.h>
typedef uint64_t (*op_fn)(uint64_t);
__attribute__((noinline)) uint64_t op_a(uint64_t x) { return x * 3; }
__attribute__((noinline)) uint64_t op_b(uint64_t x) { return x + 11; }
__attribute__((noinline)) uint64_t op_c(uint64_t x) { return x ^ 0x55; }
op_fn ops[3];
void init(void) { ops[0] = op_a; ops[1] = op_b; ops[2] = op_c; }
__attribute__((noinline)) uint64_t classify(uint64_t i) {
  uint64_t r = 0;
  if (i % 3 == 0) r += 1;
  switch (i % 5) {
  case 0: r += 2; break;
  case 1: r += 3; break;
  case 3: r += 7; break;
  default: r += 4;
  }
  uint64_t k = i % 7;
  r += ops[k < 4 ? 0 : (k < 6 ? 1 : 2)](i);
  return r;
}
__attribute__((noinline)) uint64_t entry(uint64_t i) { return classify(i) + 1; }
`;

const N = 20_000;
const run = { rate: 0, concurrency: 1, seed: 1n, counting: false, ops: BigInt(N) };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kjit-instr-'));
  writeFileSync(join(dir, 'prog.c'), program);
  const r = spawnSync('clang-19', ['-O2', '-Xclang', '-disable-llvm-passes', '-emit-llvm', '-c', join(dir, 'prog.c'), '-o', join(dir, 'prog.bc')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  p = await prepareBoot({ image: { path: join(dir, 'prog.bc'), init: 'init', entry: 'entry' }, mode: 'boot', nic: 'virtq', sysctls: [], patchable: true });
});
afterAll(() => p?.dispose());

const withKernel = <T>(body: (k: Kernel) => Promise<T>, opts = run) => withKernelOf(p, opts, body);

/** What the counts of classify over i = 0..n-1 must be, computed from the C above. */
function expected(n: number) {
  let third = 0;
  const sw = { 0: 0, 1: 0, 3: 0, other: 0 };
  const k = { lt4: 0, lt6: 0, six: 0 };
  for (let i = 0; i < n; i++) {
    if (i % 3 === 0) third++;
    const m = i % 5;
    if (m === 0 || m === 1 || m === 3) sw[m]++;
    else sw.other++;
    const q = i % 7;
    if (q < 4) k.lt4++;
    else if (q < 6) k.lt6++;
    else k.six++;
  }
  return {
    rows: [
      [third, n - third],
      [sw.other, sw[0], sw[1], sw[3]],
      [k.lt4, n - k.lt4],
      /* k < 6 ? 1 : 2 has constant arms: clang emits a select, not a branch */
    ],
    targets: [
      { function: 'op_a', count: k.lt4 },
      { function: 'op_b', count: k.lt6 },
      { function: 'op_c', count: k.six },
    ],
  };
}

const sortRows = (rows: number[][]) => rows.map((r) => r.join(',')).sort();

describe('instrumentation window', () => {
  it('counts entries, branches, switch cases and indirect-call targets exactly', async () => {
    const { counts, checksum } = await withKernel(async ({ instance, installer }) => {
      /* the window is live before the first operation and closes after the last */
      const w = await instrumentationWindow(instance, installer, 'classify', { ms: 60_000, afterInstall: () => instance.start() });
      await instance.join();
      instance.checkHealthy('with an instrumentation window');
      expect(installer.entryTarget('classify')).toBeNull(); /* the boot code runs again */
      return { counts: w.counts, checksum: instance.cb.get('checksum') };
    });
    const want = expected(N);
    expect(counts.entry).toBe(N);
    expect(counts.window.ops).toBe(N);
    expect(counts.branches).toHaveLength(3);
    expect(sortRows(counts.branches)).toEqual(sortRows(want.rows));
    expect(counts.icalls).toHaveLength(1);
    expect(counts.icalls[0]!.total).toBe(N);
    expect(counts.icalls[0]!.targets).toEqual(want.targets);
    expect(counts.shape).toBe(`b${counts.branches.map((r) => r.length).join('.')}|i1`);
    /* the instrumented kernel computed what the plain one does */
    const reference = await execute(p, run);
    expect(checksum).toBe(BigInt(reference.checksum));
  });

  it('reads a window of a running kernel and puts the previous version back', async () => {
    await withKernel(async ({ instance, installer }) => {
      instance.start();
      while (instance.cb.getNumber('ops_done') === 0) await new Promise((r) => setTimeout(r, 1));
      const previous = await installer.compile('classify', 'optimized');
      await installer.activate(previous);
      const w = await instrumentationWindow(instance, installer, 'classify', { ms: 30 });
      expect(installer.entryTarget('classify')).toBe(previous.address); /* the previous version again */
      expect(previous.state).toBe('live');
      expect(w.counts.entry).toBeGreaterThan(0);
      expect(w.counts.window.ops).toBeGreaterThan(0);
      expect(w.counts.icalls[0]!.total).toBe(w.counts.entry);
      const rowSum = w.counts.branches[0]!.reduce((a, b) => a + b, 0);
      expect(rowSum).toBe(w.counts.entry);
      instance.requestStop();
      await instance.join();
      instance.checkHealthy('after a window');
      await installer.freeRetired(); /* the instrumented version, after its grace period */
      expect(installer.versionsOf('classify').filter((v) => v.kind === 'instrumented').every((v) => v.state === 'freed')).toBe(true);
    }, { ...run, ops: 500_000_000n });
  });

  it('refuses an unknown function and installs nothing', async () => {
    await withKernel(async ({ installer }) => {
      await expect(instrumentationWindow(null as never, installer, 'no_such_fn', { ms: 10 })).rejects.toThrow(/no function 'no_such_fn'/);
      expect(installer.summary().installs).toBe(0);
    });
  });
});

describe('decoding', () => {
  it('splits the words by the layout and names targets', () => {
    const words = new BigUint64Array(1 + 2 + 3 + PROBE_LAYOUT.vpWords);
    words.set([10n, 7n, 3n, 5n, 4n, 1n]);
    const site = 6;
    words.set([10n, 1n, 0x1000n, 6n, 0x2000n, 3n], site);
    const c = decodeCounts(words, { branches: [2, 3], icalls: 1, shape: 'b2.3|i1' }, (a) => (a === 0x1000n ? 'f' : null), {
      function: 'g',
      ir_hash: 'h',
      window: { ms: 1, ops: 2 },
    });
    expect(c.entry).toBe(10);
    expect(c.branches).toEqual([[7, 3], [5, 4, 1]]);
    expect(c.icalls).toEqual([{ total: 10, targets: [{ function: 'f', count: 6 }, { function: '[unknown]', count: 3 }] }]);
  });

  it('turns a probe histogram into percentiles', () => {
    const words = new BigUint64Array(PROBE_LAYOUT.probeHeadWords + PROBE_LAYOUT.latBuckets);
    words[0] = 100n;
    words[1] = 100n * 1000n;
    words[2] = 5000n;
    words[PROBE_LAYOUT.probeHeadWords + 80] = 100n; /* bucket 80: [512, 544) ns */
    const r = decodeProbe(words, 'f', 2);
    expect(r.calls).toBe(100);
    expect(r.calls_per_sec).toBe(50);
    expect(r.histogram).toEqual([{ lo_ns: 512, hi_ns: 544, count: 100 }]);
    expect(r.latency_us.p50).toBeGreaterThanOrEqual(0.512);
    expect(r.latency_us.p50).toBeLessThanOrEqual(0.544);
  });
});

describe('live probe', () => {
  it('counts every call, times them, and leaves the checksum unchanged', async () => {
    const { result, checksum } = await withKernel(async ({ instance, installer }) => {
      /* the probe goes live before the first operation and ends with the run */
      const probing = probeFunction(instance, installer, 'classify', 60);
      while (installer.entryTarget('classify') === null) await new Promise((r) => setTimeout(r, 2));
      instance.start();
      await instance.join();
      const result = await probing;
      instance.checkHealthy('with a probe');
      return { result, checksum: instance.cb.get('checksum') };
    });
    expect(result.calls).toBe(N);
    expect(result.histogram.reduce((s, h) => s + h.count, 0)).toBe(N);
    expect(result.latency_us.p50).toBeGreaterThan(0);
    const reference = await execute(p, run);
    expect(checksum).toBe(BigInt(reference.checksum));
  });
});
