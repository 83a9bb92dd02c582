// Issue 5, the sampler: timer samples of the running kernel, symbolized
// through the boot image's symbols and the code map, aggregated into a flat
// profile, caller -> callee edges and hot paths, written as collapsed stacks
// and pprof.  The pure parts run without a kernel; the rest boots small
// foreign images (whose hottest function is known by construction) and the
// reference kernel.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { REFERENCE } from '../dist/src/kernel/image.js';
import { execute, prepareBoot, type PreparedBoot } from '../dist/src/kernel/run.js';
import { CodeMap, type CodeVersion } from '../dist/src/rejit/versions.js';
import { fromFolded, fromPprof, toFolded, toPprof } from '../dist/src/sampler/outputs.js';
import { OTHER_CHAINS, PROFILE_PARAMS, ProfileBuilder } from '../dist/src/sampler/profile.js';
import { type RawSample, SampleRing } from '../dist/src/sampler/ring.js';
import { Symbolizer, SymbolTable } from '../dist/src/sampler/symbols.js';
import { decideRate, THROTTLE_PARAMS } from '../dist/src/sampler/throttle.js';

const KJIT = join(import.meta.dirname, '..', 'bin', 'kjit.js');
let dir = '';

function kjit(...args: string[]) {
  const r = spawnSync(process.execPath, [KJIT, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function cc(name: string, source: string): string {
  const c = join(dir, `${name}.c`);
  writeFileSync(c, source);
  const bc = join(dir, `${name}.bc`);
  const r = spawnSync('clang-19', ['-O2', '-Xclang', '-disable-llvm-passes', '-emit-llvm', '-c', c, '-o', bc], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return bc;
}

/* hot() runs 4 times the iterations of cold(), with the same loop body: by
 * construction 80% of an operation's time is in hot, 20% in cold.  Compiled
 * like any foreign image: without frame pointers (kjit adds them). */
const LOOP = (name: string) => `__attribute__((noinline)) uint64_t ${name}(uint64_t n) {
  uint64_t x = n;
  for (uint64_t k = 0; k < n; k++) { x = x * 6364136223846793005ull + k; __asm__ volatile("" : "+r"(x)); }
  return x;
}`;
const SPLIT = `#include <stdint.h>
void init(void) {}
${LOOP('hot')}
${LOOP('cold')}
__attribute__((noinline)) uint64_t entry(uint64_t i) { return hot(40000) ^ cold(10000); }
`;

/* ---- pure parts ----------------------------------------------------------------- */

describe('profile aggregation', () => {
  it('counts self, total (once per sample, even when recursive), edges and hot paths', () => {
    const p = new ProfileBuilder();
    for (let i = 0; i < 6; i++) p.add(['leaf', 'mid', 'root']);
    for (let i = 0; i < 3; i++) p.add(['other', 'root']);
    p.add(['rec', 'rec', 'rec', 'root']); /* recursion */
    expect(p.samples).toBe(10);
    expect(p.counts('leaf')).toEqual({ self: 6, total: 6 });
    expect(p.counts('root')).toEqual({ self: 0, total: 10 });
    expect(p.counts('rec')).toEqual({ self: 1, total: 1 });
    const top = p.top();
    expect(top[0]).toEqual({ function: 'leaf', self_pct: 60, total_pct: 60 });
    expect(top.find((t) => t.function === 'root')).toEqual({ function: 'root', self_pct: 0, total_pct: 100 });
    const edges = p.edgeList();
    expect(edges.find((e) => e.caller === 'root' && e.callee === 'mid')!.samples).toBe(6);
    expect(edges.find((e) => e.caller === 'rec' && e.callee === 'rec')!.samples).toBe(1); /* once per sample */
    expect(p.hotPaths(2)).toEqual([
      { chain: ['root', 'mid', 'leaf'], pct: 60 },
      { chain: ['root', 'other'], pct: 30 },
    ]);
  });

  it('keeps memory bounded: chains beyond the limit count as one, self and total stay exact', () => {
    const keep = PROFILE_PARAMS.maxChains;
    PROFILE_PARAMS.maxChains = 3;
    try {
      const p = new ProfileBuilder();
      for (let i = 0; i < 10; i++) p.add([`f${i}`, 'root']);
      expect(p.samples).toBe(10);
      expect(p.counts('f9')).toEqual({ self: 1, total: 1 });
      const stacks = p.stacks();
      expect(stacks).toHaveLength(4);
      expect(stacks.find((s) => s.chain[0] === OTHER_CHAINS)!.samples).toBe(7);
      expect(p.hotPaths().every((h) => h.chain[0] !== OTHER_CHAINS)).toBe(true);
    } finally {
      PROFILE_PARAMS.maxChains = keep;
    }
  });

  it('writes collapsed stacks and pprof that read back to the same chains and counts', () => {
    const p = new ProfileBuilder();
    for (let i = 0; i < 5; i++) p.add(['c', 'b', 'a']);
    p.add(['d; odd name', 'a']);
    const stacks = p.stacks();
    const folded = toFolded(stacks);
    expect(folded).toBe('a;b;c 5\na;d__odd_name 1\n');
    expect(fromFolded(folded)).toEqual([
      { chain: ['a', 'b', 'c'], samples: 5 },
      { chain: ['a', 'd__odd_name'], samples: 1 },
    ]);
    const back = fromPprof(toPprof(stacks, { periodNs: 1e9 / 997 }));
    expect(back.periodNs).toBe(Math.round(1e9 / 997));
    const key = (s: { chain: readonly string[]; samples: number }) => `${s.chain.join(';')} ${s.samples}`;
    expect(back.stacks.map(key).sort()).toEqual(stacks.map(key).sort());
  });
});

describe('symbolization', () => {
  const table = new SymbolTable([
    { start: 0x1000, end: 0x1100, name: 'caller', frameless: false, patchable: true },
    { start: 0x1100, end: 0x1200, name: 'callee', frameless: false, patchable: true },
    { start: 0x2000, end: 0x2040, name: 'asm_leaf', frameless: true, patchable: false },
    { start: 0x3000, end: 0x3100, name: 'root', frameless: false, patchable: true },
  ]);

  it('finds functions by address, and nothing between or outside them', () => {
    expect(table.find(0x1000)?.name).toBe('caller');
    expect(table.find(0x10ff)?.name).toBe('caller');
    expect(table.find(0x1100)?.name).toBe('callee');
    expect(table.find(0x2040)).toBeNull();
    expect(table.find(0xfff)).toBeNull();
  });

  it('builds chains from return addresses and stops at the first foreign one', () => {
    const s = new Symbolizer(table);
    /* a return address points after the call: looked up one byte back */
    const chain = s.chain({ pc: 0x1150, sp0: null, frames: [0x1050, 0x3010, 0x9999, 0x3020] });
    expect(chain.map((f) => f.fn)).toEqual(['callee', 'caller', 'root']);
    expect(s.chain({ pc: 0x10, sp0: null, frames: [] })[0]!.fn).toBe('[native]');
  });

  it('puts back the caller of code that has no frame yet (assembly leaves, first instructions)', () => {
    const s = new Symbolizer(table);
    /* in an assembly leaf the frame chain starts at its caller's caller; the return address is at the stack pointer */
    expect(s.chain({ pc: 0x2010, sp0: 0x1050, frames: [0x3010] }).map((f) => f.fn)).toEqual(['asm_leaf', 'caller', 'root']);
    /* at a patchable entry's NOP or its push %rbp: the same */
    expect(s.chain({ pc: 0x1105, sp0: 0x1050, frames: [0x3010] }).map((f) => f.fn)).toEqual(['callee', 'caller', 'root']);
    /* inside the body the frame chain is complete: sp0 is ignored */
    expect(s.chain({ pc: 0x1120, sp0: 0x3050, frames: [0x1050, 0x3010] }).map((f) => f.fn)).toEqual(['callee', 'caller', 'root']);
    /* a word at the stack pointer that is not code is not a caller */
    expect(s.chain({ pc: 0x2010, sp0: 0x42, frames: [0x3010] }).map((f) => f.fn)).toEqual(['asm_leaf', 'root']);
  });

  it('attributes an address to the version that was there when it was drained, never to a later reuse', () => {
    const map = new CodeMap();
    const version = (id: number, fn: string): CodeVersion =>
      ({ id, fn, kind: 'patched', symbol: `${fn}.kjit.v${id}`, address: 0x8000n, size: 0x100, inlines: [], state: 'live', reason: '', tracker: null, times: { compiledMs: 0 } }) as CodeVersion;
    map.add(version(1, 'alpha'));
    const s = new Symbolizer(table, map);
    expect(s.frameAt(0x8010)).toMatchObject({ fn: 'alpha', version: 'v1 patched' });
    /* alpha's version was freed (the sampler drained first) and beta's took its place */
    map.add(version(2, 'beta'));
    expect(s.frameAt(0x8010)).toMatchObject({ fn: 'beta', version: 'v2 patched' });
  });
});

describe('the sample ring (host side)', () => {
  /** A control block of `slots` slots of 8 words, laid out as the runtime lays it out. */
  function fakeRing(slots: number) {
    const words = new BigUint64Array(slots * 8);
    const fields: Record<string, bigint> = { sample_head: 0n, sample_tail: 0n, sample_cap: 0n };
    const cb = {
      halves: () => new Uint32Array(words.buffer),
      get: (f: string) => fields[f]!,
      getNumber: (f: string) => Number(fields[f]!),
      set: (f: string, v: bigint | number) => (fields[f] = BigInt(v)),
    };
    const publish = (pc: number, frames: number[]) => {
      const i = Number(fields.sample_head!);
      const base = (i % slots) * 8;
      words[base] = BigInt(i);
      words[base + 1] = BigInt(frames.length) | (1n << 9n);
      words[base + 2] = BigInt(pc);
      words[base + 3] = 0x1234n;
      frames.forEach((f, d) => (words[base + 4 + d] = BigInt(f)));
      fields.sample_head = BigInt(i + 1);
    };
    const ring = new SampleRing(cb as never, { slotWords: 8, headWords: 4, truncatedFlag: 1 << 8, sp0Flag: 1 << 9 });
    return { ring, publish, fields, words };
  }

  it('reads what was published, in order, across the wrap, and gives the slots back', () => {
    const { ring, publish, fields } = fakeRing(4);
    const got: RawSample[] = [];
    for (let round = 0; round < 5; round++) {
      for (let k = 0; k < 3; k++) publish(0x7f0000001000 + round * 16 + k, [0x7f0000002000, 0x7f0000003000 + k]);
      expect(ring.drain((s) => got.push(s))).toEqual({ read: 3, corrupt: 0 });
      expect(fields.sample_tail).toBe(fields.sample_head);
    }
    expect(got.map((s) => s.seq)).toEqual([...Array(15).keys()]);
    expect(got[14]).toEqual({ seq: 14, pc: 0x7f0000001000 + 4 * 16 + 2, sp0: 0x1234, frames: [0x7f0000002000, 0x7f0000003002], truncated: false });
  });

  it('counts a slot that does not hold the sample it should as corrupt and skips it', () => {
    const { ring, publish, words } = fakeRing(4);
    publish(0x1000, []);
    publish(0x2000, []);
    words[8] = 99n; /* slot 1's seq */
    const got: RawSample[] = [];
    expect(ring.drain((s) => got.push(s))).toEqual({ read: 1, corrupt: 1 });
    expect(got[0]!.pc).toBe(0x1000);
  });
});

describe('throttle', () => {
  const base = { requestedHz: 4000, costNs: 10_000, cpuNs: 1e9 };
  it('cuts a rate that costs more than the limit, to below the limit', () => {
    const d = decideRate({ ...base, armedHz: 4000, ticks: 4000 }); /* 4% */
    expect(d.kind).toBe('lower');
    expect(d.reason).toBe('over-budget');
    expect((d.hz * base.costNs) / base.cpuNs).toBeLessThan(THROTTLE_PARAMS.maxCpuShare);
  });
  it('keeps a rate within the limit, and raises a cut one only well below it (hysteresis)', () => {
    expect(decideRate({ ...base, armedHz: 1000, ticks: 1000 }).kind).toBe('keep'); /* 1%, cut earlier */
    const up = decideRate({ ...base, armedHz: 500, ticks: 500 }); /* 0.5% */
    expect(up).toMatchObject({ kind: 'raise', hz: 1000 });
    expect(decideRate({ ...base, armedHz: 4000, ticks: 1000, maxShare: 0.5 }).reason).toBe('at-requested');
    expect(decideRate({ ...base, armedHz: 4000, ticks: 4000, cpuNs: 1000 }).reason).toBe('too-little-cpu');
  });
});

/* ---- with a kernel ------------------------------------------------------------------ */

let split: PreparedBoot;
let reference: PreparedBoot;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kjit-sampler-'));
  split = await prepareBoot({ image: { path: cc('split', SPLIT), init: 'init', entry: 'entry' }, mode: 'boot', nic: 'virtq', sysctls: [], patchable: true });
  reference = await prepareBoot({ image: REFERENCE, mode: 'boot', nic: 'virtq', sysctls: [] });
});
afterAll(() => {
  split?.dispose();
  reference?.dispose();
});

const closed = { rate: 0, concurrency: 1, seed: 1n, counting: false };

describe('sampling a running kernel', () => {
  it('puts the function that takes 80% of a foreign image\'s time on top, with its share, in the flat profile and the hot paths', async () => {
    const r = await execute(split, { ...closed, seconds: 2, sampleHz: 997 });
    const p = r.profile!;
    /* (fewer on a machine busy with other work: ticks that find the kernel thread descheduled merge) */
    expect(p.samples).toBeGreaterThan(500);
    expect(p.achieved_hz).toBeGreaterThan(997 * 0.5);
    expect(p.achieved_hz).toBeLessThan(997 * 1.1);
    expect(p.corrupt).toBe(0);
    expect(p.top[0]!.function).toBe('hot');
    expect(Math.abs(p.top[0]!.self_pct - 80)).toBeLessThanOrEqual(10);
    const cold = p.top.find((t) => t.function === 'cold')!;
    expect(Math.abs(cold.self_pct - 20)).toBeLessThanOrEqual(10);
    /* frame pointers were added to code compiled without them: the chain reaches entry */
    const entry = p.top.find((t) => t.function === 'entry');
    expect(entry?.total_pct ?? 0).toBeGreaterThan(90);
    expect(p.hot_paths[0]!.chain.slice(-2)).toEqual(['entry', 'hot']);
    expect(Math.abs(p.hot_paths[0]!.pct - 80)).toBeLessThanOrEqual(10);
    expect(p.edges.find((e) => e.caller === 'entry' && e.callee === 'hot')).toBeTruthy();
  });

  it('drops and counts samples when the ring is full, and never corrupts one', async () => {
    /* a 4-slot ring at 10 kHz, drained every 20 ms: most samples find it full */
    const r = await execute(split, { ...closed, seconds: 1, sampleHz: 9973, sampleRingSlots: 4, sampleMaxShare: null });
    const p = r.profile!;
    expect(p.dropped).toBeGreaterThan(100);
    expect(p.samples).toBeGreaterThan(50);
    expect(p.corrupt).toBe(0);
    /* every sample that was kept names the image's code */
    const known = new Set(['hot', 'cold', 'entry', 'kjit_thread_main', '[native]']);
    const sum = p.top.filter((t) => known.has(t.function) || t.function.startsWith('kjit_')).reduce((s, t) => s + t.self_pct, 0);
    expect(sum).toBeGreaterThan(99);
    expect(p.top[0]!.function).toBe('hot');
  });

  it('attributes samples in an installed version to its function and version', async () => {
    const patch = join(dir, 'hot-patch.c');
    writeFileSync(patch, `#include <stdint.h>\n${LOOP('hot')}\n`);
    const r = await execute(split, { ...closed, seconds: 1.5, sampleHz: 997, patches: [{ fn: 'hot', file: patch, atSeconds: 0.2 }] });
    const p = r.profile!;
    expect(p.top[0]!.function).toBe('hot');
    const v = p.versions.find((x) => x.function === 'hot');
    expect(v?.version).toMatch(/^v\d+ patched$/);
    expect(v!.samples).toBeGreaterThan(p.samples * 0.5);
  });

  it('names real kernel functions in the reference kernel\'s web workload', async () => {
    const r = await execute(reference, { ...closed, concurrency: 4, workload: 'web', seconds: 1, sampleHz: 997 });
    const p = r.profile!;
    expect(p.samples).toBeGreaterThan(300);
    const defined = (name: string) => !!reference.image.pristine.getFunction(name);
    const named = p.top.filter((t) => defined(t.function));
    expect(named.length).toBeGreaterThanOrEqual(p.top.length - 2); /* [native] aside */
    expect(named.reduce((s, t) => s + t.self_pct, 0)).toBeGreaterThan(50);
    /* chains start where kernel code starts: the kernel thread or a task */
    for (const h of p.hot_paths) expect(['kjit_thread_main', 'task_trampoline']).toContain(h.chain[0]);
    expect(p.hot_paths.some((h) => h.chain.includes('syscall_entry'))).toBe(true);
  });

  it('throttles itself when sampling costs more than its share of the kernel thread\'s CPU, and says so', async () => {
    const r = await execute(split, { ...closed, seconds: 1.5, sampleHz: 9973, sampleMaxShare: 0.005 });
    const p = r.profile!;
    expect(p.throttled.length).toBeGreaterThan(0);
    expect(p.throttled[0]).toMatchObject({ from_hz: 9973, reason: 'over-budget' });
    expect(p.throttled[0]!.to_hz).toBeLessThan(9973);
    expect(p.throttled[0]!.share).toBeGreaterThan(0.005);
    expect(p.achieved_hz).toBeLessThan(9973 * 0.8);
    expect(p.top[0]!.function).toBe('hot');
  });

  it('is off unless asked for', async () => {
    const r = await execute(split, { ...closed, ops: 100n });
    expect(r.profile).toBeUndefined();
  });
});

describe('kjit run', () => {
  it('samples by default, reports the profile in its JSON, and writes collapsed stacks and pprof', () => {
    const image = join(dir, 'split.bc');
    const folded = join(dir, 'out.folded');
    const pb = join(dir, 'out.pb.gz');
    const r = kjit('run', '--image', image, '--init', 'init', '--entry', 'entry', '--seconds', '1', '--no-count', '--json', '--profile-out', folded);
    expect(r.stderr).toBe('');
    const j = JSON.parse(r.stdout);
    expect(Object.keys(j.profile)).toEqual(expect.arrayContaining(['samples', 'dropped', 'achieved_hz', 'top', 'hot_paths']));
    expect(j.profile.requested_hz).toBe(997);
    expect(Object.keys(j.profile.top[0])).toEqual(['function', 'self_pct', 'total_pct']);
    expect(Object.keys(j.profile.hot_paths[0])).toEqual(['chain', 'pct']);
    const stacks = fromFolded(readFileSync(folded, 'utf8'));
    expect(stacks.reduce((s, x) => s + x.samples, 0)).toBe(j.profile.samples);
    expect(stacks.some((s) => s.chain.at(-1) === 'hot')).toBe(true);
    const fast = JSON.parse(kjit('run', '--image', image, '--init', 'init', '--entry', 'entry', '--seconds', '0.5', '--no-count', '--json', '--sample-hz', '3989', '--profile-out', pb).stdout);
    const back = fromPprof(readFileSync(pb));
    expect(back.periodNs).toBe(Math.round(1e9 / fast.profile.achieved_hz)); /* the period of the rate achieved */
    expect(back.stacks.reduce((s, x) => s + x.samples, 0)).toBe(fast.profile.samples);
    expect(back.stacks.some((s) => s.chain.at(-1) === 'hot')).toBe(true);
    const off = JSON.parse(kjit('run', '--image', image, '--init', 'init', '--entry', 'entry', '--ops', '100', '--no-count', '--json', '--sample-hz', '0').stdout);
    expect(off.profile).toBeUndefined();
    expect(existsSync(join(dir, 'never.folded'))).toBe(false);
  });
});
