// Profile-guided re-JIT units: exact counts become the metadata LLVM's PGO
// passes read (pinned below), a hot indirect-call target is promoted to a
// guarded direct call, counts of other IR are never applied, and run-time
// specialization folds a variable behind a guard that sends calls to the
// boot code once the variable changes.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { withKernel } from './kernel.js';
import { execute, prepareBoot, type PreparedBoot } from '../dist/src/kernel/run.js';
import { buildUnit, unitBase } from '../dist/src/rejit/unit.js';
import { instrumentationWindow } from '../dist/src/sampler/instrument.js';
import { guidOf, scaleWeights, summarize } from '../dist/src/pgo/metadata.js';
import { despecialize } from '../dist/src/pgo/despecialize.js';
import { readWords, writeI64 } from '../dist/src/native/libc.js';
import type { FunctionCounts } from '../dist/src/sampler/counts.js';

let dir = '';
const boots: PreparedBoot[] = [];

const program = `#include <stdint.h>
typedef uint64_t (*op_fn)(uint64_t);
uint64_t op_a(uint64_t x) { return x * 3; }
uint64_t op_b(uint64_t x) { return x + 11; }
op_fn ops[2];
int64_t mode = 1;      /* a run-time "sysctl" */
void init(void) { ops[0] = op_a; ops[1] = op_b; }
__attribute__((noinline)) uint64_t classify(uint64_t i) {
  uint64_t r = 0;
  if (i % 3 == 0) r += 1;
  if (mode) r += 100; else r += 7;
  r += ops[i % 10 == 9](i);
  return r;
}
__attribute__((noinline)) uint64_t entry(uint64_t i) {
  if (i == 12345) mode = 0;   /* the kernel itself writes the variable mid-run */
  return classify(i) + 1;
}
`;

const N = 20_000;
const run = { rate: 0, concurrency: 1, seed: 1n, counting: false, ops: BigInt(N) };

async function boot(): Promise<PreparedBoot> {
  const p = await prepareBoot({ image: { path: join(dir, 'prog.bc'), init: 'init', entry: 'entry' }, mode: 'boot', nic: 'virtq', sysctls: [], patchable: true });
  boots.push(p);
  return p;
}

/* each operation records when the value it saw changed */
const writes = `#include <stdint.h>
int64_t mode = 1;
uint64_t trans_i[65536];
int64_t trans_v[65536];
uint64_t ntrans;
int64_t last_seen = 1;
void init(void) {}
__attribute__((noinline)) uint64_t classify(uint64_t i) { return mode ? i * 3 : i + 7; }
__attribute__((noinline)) uint64_t entry(uint64_t i) {
  uint64_t r = classify(i);
  int64_t seen = r == i * 3;
  if (seen != last_seen && ntrans < 65536) { trans_i[ntrans] = i; trans_v[ntrans] = seen; ntrans++; last_seen = seen; }
  return r;
}
`;

function cc(name: string, source: string): void {
  writeFileSync(join(dir, `${name}.c`), source);
  const r = spawnSync('clang-19', ['-O2', '-Xclang', '-disable-llvm-passes', '-emit-llvm', '-c', join(dir, `${name}.c`), '-o', join(dir, `${name}.bc`)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'kjit-pgo-'));
  cc('prog', program);
  cc('writes', writes);
});
afterAll(() => boots.forEach((p) => p.dispose()));

async function windowCounts(p: PreparedBoot): Promise<FunctionCounts> {
  return withKernel(p, run, async ({ instance, installer }) => {
    const w = await instrumentationWindow(instance, installer, 'classify', { ms: 60_000, afterInstall: () => instance.start() });
    await instance.join();
    instance.checkHealthy('window');
    return w.counts;
  });
}

describe('profile arithmetic', () => {
  it('GUIDs are the low 64 bits (little-endian) of the MD5 of the name', () => {
    /* md5("op_a") = 9c8a3e5bd2... computed independently with md5sum */
    const md5 = spawnSync('sh', ['-c', 'printf op_a | md5sum'], { encoding: 'utf8' }).stdout.slice(0, 16);
    const le = BigInt('0x' + md5.match(/../g)!.reverse().join(''));
    expect(guidOf('op_a')).toBe(le);
  });

  it('scales weights into i32 keeping ratios and zeros', () => {
    expect(scaleWeights([3, 1])).toEqual([3, 1]);
    const s = scaleWeights([2 ** 40, 2 ** 38, 0]);
    expect(s[0]).toBe(0xffffffff);
    expect(s[1]! / s[0]!).toBeCloseTo(0.25, 6);
    expect(s[2]).toBe(0);
  });

  it('summarizes counts as LLVM does: cutoffs of the total', () => {
    const c = (entry: number, branches: number[][]): FunctionCounts => ({ function: 'f', ir_hash: '', shape: '', entry, branches, icalls: [], window: { ms: 1, ops: 1 } });
    const s = summarize([c(100, [[90, 10]]), c(10, [[5, 5]])]);
    expect(s.totalCount).toBe(220n);
    expect(s.maxCount).toBe(100n);
    expect(s.maxFunctionCount).toBe(100n);
    expect(s.maxInternalCount).toBe(90n);
    expect(s.numCounts).toBe(6);
    /* 50% of 220 = 110: covered by 100 + 90 -> min count 90, 2 counts */
    expect(s.detailed.find(([cut]) => cut === 500000)).toEqual([500000, 90n, 2]);
    expect(s.detailed.find(([cut]) => cut === 999999)).toEqual([999999, 5n, 6]);
  });
});

describe('a profile-guided unit', () => {
  it('carries branch weights, entry count, value profile and summary; promotes the hot indirect call', async () => {
    const p = await boot();
    const counts = await windowCounts(p);
    expect(counts.entry).toBe(N);
    const summary = summarize([counts]);
    const unit = buildUnit(unitBase(p), {
      fn: 'classify',
      kind: 'optimized',
      id: 900,
      profile: { counts, summary },
      pipeline: 'pgo-icall-prom,default<O2>',
      keepIr: true,
    });
    expect(unit.profile).toMatchObject({ applied: true, valueProfiled: 1 });
    const before = unit.ir!.before;
    /* i % 3 == 0: 6667 of 20000; mode: always 1 until op 12345 */
    expect(before).toContain('!{!"branch_weights", i32 6667, i32 13333}');
    expect(before).toContain('!{!"branch_weights", i32 12345, i32 7655}');
    expect(before).toContain('!{!"function_entry_count", i64 20000}');
    const a = counts.icalls[0]!.targets.find((t) => t.function === 'op_a')!.count;
    const b = counts.icalls[0]!.targets.find((t) => t.function === 'op_b')!.count;
    expect(a).toBe(18000);
    expect(b).toBe(2000);
    expect(before).toContain(`!{!"VP", i32 0, i64 20000, i64 ${BigInt.asIntN(64, guidOf('op_a'))}, i64 18000, i64 ${BigInt.asIntN(64, guidOf('op_b'))}, i64 2000}`);
    expect(before).toMatch(/!\{i32 1, !"ProfileSummary", /);
    /* promoted: a compare with op_a's address guards a direct call (inlined: x * 3) */
    const after = unit.ir!.after;
    expect(after).toMatch(/icmp eq ptr %\S+, @op_a/);
    expect(after).toMatch(/mul i64 %\S+, 3/);
    expect(after).not.toMatch(/call i64 @op_a/); /* inlined */
  });

  it('refuses counts of other IR, and counts of another shape', async () => {
    const p = boots[0] ?? (await boot());
    const counts = await windowCounts(p);
    const summary = summarize([counts]);
    const base = unitBase(p);
    const stale = buildUnit(base, { fn: 'classify', kind: 'optimized', id: 901, profile: { counts: { ...counts, ir_hash: 'f'.repeat(32) }, summary }, keepIr: true });
    expect(stale.profile).toMatchObject({ applied: false });
    expect(stale.profile!.reason).toMatch(/stale/);
    expect(stale.ir!.before).not.toContain('branch_weights');
    const reshaped = buildUnit(base, { fn: 'classify', kind: 'optimized', id: 902, profile: { counts: { ...counts, shape: 'b2|i0' }, summary } });
    expect(reshaped.profile).toMatchObject({ applied: false });
  });
});

describe('run-time specialization', () => {
  it('folds the variable behind a guard; when the kernel changes it, calls go to the boot code', async () => {
    const p = boots[0] ?? (await boot());
    const reference = await execute(p, run);
    await withKernel(p, run, async ({ instance, installer }) => {
      const v = await installer.compile('classify', 'specialized', { specialize: { mode: '1' } });
      expect(v.build?.specialized).toEqual([{ variable: 'mode', value: '1', loads: 1 }]);
      await installer.activate(v);
      instance.start();
      await instance.join();
      instance.checkHealthy('specialized');
      /* op 12345 set mode = 0: every later op took the guard's way to the boot code */
      expect(instance.cb.get('checksum')).toBe(BigInt(reference.checksum));
    });
  });
});

describe('a sysctl written while specialized code is live', () => {
  it('no operation that starts after the write returns sees the old value (200 writes against a running kernel)', async () => {
    const p = await prepareBoot({ image: { path: join(dir, 'writes.bc'), init: 'init', entry: 'entry' }, mode: 'boot', nic: 'virtq', sysctls: [], patchable: true });
    boots.push(p);
    const opts = { ...run, ops: 2_000_000_000n };
    const writes: { before: number; after: number; value: number }[] = [];
    let reverted = 0;
    await withKernel(p, opts, async ({ instance, installer }) => {
      const mode = instance.jit.lookup('mode');
      instance.start();
      while (instance.cb.getNumber('ops_done') === 0) await new Promise((r) => setTimeout(r, 1));
      let value = 1;
      let live: Awaited<ReturnType<typeof installer.compile>> | null = null;
      for (let k = 0; k < 200; k++) {
        if (k % 5 === 0) {
          /* specialized code for the current value goes live */
          live = await installer.compile('classify', 'specialized', { specialize: { mode: String(value) } });
          expect(live.build?.specialized?.[0]?.loads).toBeGreaterThan(0);
          await installer.activate(live);
        }
        if (live?.state === 'live') reverted++;
        await despecialize(installer, live ? [live] : []);
        value = 1 - value;
        /* operations up to `before` completed before the write began ... */
        const before = instance.cb.getNumber('ops_done');
        writeI64(mode, BigInt(value));
        /* ... and every one from `after` on started after it returned */
        writes.push({ before, after: instance.cb.getNumber('ops_done') + 1, value });
        await new Promise((r) => setTimeout(r, k % 3));
      }
      instance.requestStop();
      await instance.join();
      instance.checkHealthy('hammered');
      /* the last operation the kernel ran: nothing after it can be checked */
      const last = instance.cb.getNumber('ops_done') - 1;
      const n = Number(readWords(instance.jit.lookup('ntrans'), 1)[0]);
      expect(n).toBeLessThan(65536);
      const ti = readWords(instance.jit.lookup('trans_i'), n);
      const tv = readWords(instance.jit.lookup('trans_v'), n);
      /* the value op i saw: the last transition at or before i (1 before any) */
      let t = 0;
      const seenAt = (i: number) => {
        while (t + 1 < n && Number(ti[t + 1]) <= i) t++;
        return t < n && Number(ti[t]) <= i ? Number(tv[t]) : 1;
      };
      let checked = 0;
      writes.forEach((w, k) => {
        const until = k + 1 < writes.length ? writes[k + 1]!.before - 1 : Math.min(w.after + 1000, last);
        for (const i of [w.after, Math.floor((w.after + until) / 2), until]) {
          if (i < w.after || i > until) continue;
          expect(seenAt(i), `op ${i} after write ${k} (value ${w.value})`).toBe(w.value);
          checked++;
        }
      });
      expect(checked).toBeGreaterThan(300);
      expect(reverted).toBeGreaterThan(30); /* specialized code was live at those writes */
    });
  });
});
