// The offline-pgo mode (DESIGN.md section 8, issue 7): a two-stage clang PGO
// build of the reference kernel, trained on the run's workload.  It must
// compute what every other mode computes, carry the training profile into
// the IR LLVM optimizes, and be rebuilt exactly when its inputs change.
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { KjitError } from '../dist/src/errors.js';
import { parseBootParameters, resolveBootConfig, type BootConfig } from '../dist/src/kernel/bootconfig.js';
import { type Image, loadImage, REFERENCE } from '../dist/src/kernel/image.js';
import { cpuFeatureBits, hostMachine } from '../dist/src/kernel/machine.js';
import { MODES } from '../dist/src/kernel/modes.js';
import { checkOfflinePgoTools, offlinePgoImage, sourceStamp } from '../dist/src/kernel/offline-pgo.js';
import { execute, prepareBoot, type PreparedBoot } from '../dist/src/kernel/run.js';
import { Context, Module } from '../dist/src/native/llvm.js';
import { ROOT } from '../dist/src/paths.js';

const WORKLOADS = ['web', 'kv', 'fs', 'firewall', 'phases'];
const OPS = 3000n;
/* phases: trained as `kjit bench boot` trains it (20,000 operations per phase), so the
 * two share cached builds; run with short phases, so 3,000 operations cross several */
const trainArg = (w: string) => (w === 'phases' ? { workloadArg: 20000n } : {});
const argFor = (w: string) => (w === 'phases' ? { workloadArg: 1000n } : {});
const run = { rate: 0, concurrency: 4, seed: 5n, counting: false, ops: OPS };

/** Textual IR of a bitcode file. */
function irText(path: string): string {
  const ctx = Context.create();
  try {
    const m = Module.parseBitcode(ctx, readFileSync(path), path);
    try {
      return m.print();
    } finally {
      m.dispose();
    }
  } finally {
    ctx.dispose();
  }
}

/** The function_entry_count clang gave `fn` (null: none). */
function entryCount(ir: string, fn: string): number | null {
  const def = new RegExp(`^define [^\\n]*@${fn}\\([^\\n]*!prof !(\\d+)`, 'm').exec(ir);
  if (!def) return null;
  const md = new RegExp(`^!${def[1]} = !\\{!"function_entry_count", i64 (\\d+)\\}`, 'm').exec(ir);
  return md ? Number(md[1]) : null;
}

describe('offline-pgo computes what stock computes', () => {
  let stock: PreparedBoot;
  beforeAll(async () => {
    stock = await prepareBoot({ image: REFERENCE, mode: 'stock', nic: 'virtq', sysctls: [] });
  });
  afterAll(() => stock?.dispose());

  for (const workload of WORKLOADS) {
    it(`${workload}: same checksum for ${OPS} operations, profile trained on ${workload}`, async () => {
      const p = await prepareBoot({ image: REFERENCE, mode: 'offline-pgo', nic: 'virtq', sysctls: [], workload, ...trainArg(workload) });
      try {
        expect(p.offlinePgo?.workload).toBe(workload);
        const a = await execute(stock, { ...run, ...argFor(workload), workload });
        const b = await execute(p, { ...run, ...argFor(workload), workload });
        expect(b.ops).toBe(Number(OPS));
        expect(b.checksum).toBe(a.checksum);
        expect(b.offline_pgo?.training.ops).toBeGreaterThan(0);
        /* the profile reached the optimizer: O3 ran on IR with a profile summary and weights */
        if (workload === 'kv') {
          const optimized = p.compiled.optimized.print();
          expect(optimized).toMatch(/!"ProfileSummary"/);
          expect(optimized).toMatch(/!"branch_weights"/);
          /* same mitigations as every mode */
          expect(p.compiled.report.target.mitigations).toBe(true);
          expect(optimized).toMatch(/"target-features"="[^"]*\+retpoline-indirect-calls/);
        }
      } finally {
        p.dispose();
      }
    });
  }
});

describe('offline-pgo build', () => {
  let dir = '';
  const ctx = Context.create();
  const saved = process.env.KJIT_OFFLINE_PGO_DIR;
  const mode = MODES['offline-pgo']!;
  let image: Image;
  const configFor = (sysctls: readonly string[]): BootConfig => {
    const machine = hostMachine('virtq');
    const facts = { cpuFeatureBits: cpuFeatureBits(machine, image.tables.cpuFeatureFlags), deviceIds: machine.devices.map((d) => d.id) };
    return resolveBootConfig(image.tables, facts, parseBootParameters(sysctls));
  };
  const request = (workload: string, extra: { sysctls?: string[] } = {}) => ({
    mode,
    config: configFor(extra.sysctls ?? []),
    nic: 'virtq' as const,
    sysctls: extra.sysctls ?? [],
    workload,
    workloadArg: 0n,
    trainOps: 20000n,
  });

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'kjit-offline-pgo-'));
    process.env.KJIT_OFFLINE_PGO_DIR = dir;
    image = loadImage(ctx, REFERENCE);
  });
  afterAll(() => {
    image?.dispose();
    ctx.dispose();
    if (saved === undefined) delete process.env.KJIT_OFFLINE_PGO_DIR;
    else process.env.KJIT_OFFLINE_PGO_DIR = saved;
  });

  it('builds both stages, trains, and reuses the result for the same inputs', async () => {
    const first = await offlinePgoImage(request('kv'));
    expect(first.report.cache).toBe('miss');
    expect(first.report.training).toMatchObject({ ops: 20000, seed: '1', concurrency: 4 });
    expect(first.report.profile.functions).toBeGreaterThan(100);
    for (const f of ['stage2.bc', 'train.profraw', 'train.profdata', 'meta.json']) expect(existsSync(join(first.report.dir, f))).toBe(true);
    const again = await offlinePgoImage(request('kv'));
    expect(again.report.cache).toBe('hit');
    expect(again.path).toBe(first.path);
  });

  it("puts the training profile into the IR: branch weights, entry counts, a summary, per workload", async () => {
    const kv = irText((await offlinePgoImage(request('kv'))).path);
    const fs = await offlinePgoImage(request('fs'));
    expect(fs.report.cache).toBe('miss');
    const fsIr = irText(fs.path);
    for (const ir of [kv, fsIr]) {
      expect(ir).toMatch(/!"ProfileSummary"/);
      expect(ir).toMatch(/!"branch_weights", i32 \d+/);
      expect(ir).toMatch(/!"function_entry_count", i64 [1-9]/);
    }
    /* kv routes every packet; fs walks paths (each also does a little of the other at boot) */
    const kvRoutes = entryCount(kv, 'fib_lookup')!;
    const fsRoutes = entryCount(fsIr, 'fib_lookup')!;
    const kvWalks = entryCount(kv, 'lookup_one')!;
    const fsWalks = entryCount(fsIr, 'lookup_one')!;
    expect(kvRoutes).toBeGreaterThan(20000);
    expect(fsRoutes * 10).toBeLessThan(kvRoutes);
    expect(fsWalks).toBeGreaterThan(20000);
    expect(kvWalks * 10).toBeLessThan(fsWalks);
    /* the instrumented stage depends on the sources and the CPU only: both workloads share it */
    expect(readdirSync(dir).filter((n) => n.startsWith('stage1-'))).toHaveLength(1);
    expect(readdirSync(dir).filter((n) => n.startsWith('profile-'))).toHaveLength(2);
  });

  it('trains again when the boot configuration changes', async () => {
    const audited = await offlinePgoImage(request('kv', { sysctls: ['kernel.audit=1'] }));
    expect(audited.report.cache).toBe('miss');
    expect(audited.path).not.toBe((await offlinePgoImage(request('kv'))).path);
  });

  it('keys on the content of every source file', () => {
    const copy = mkdtempSync(join(tmpdir(), 'kjit-sources-'));
    cpSync(join(ROOT, 'ir'), join(copy, 'ir'), { recursive: true });
    cpSync(join(ROOT, 'asm'), join(copy, 'asm'), { recursive: true });
    const before = sourceStamp(copy);
    expect(sourceStamp(copy)).toBe(before);
    const file = join(copy, 'ir', 'kernel', 'net', 'route.c');
    const text = readFileSync(file, 'utf8');
    writeFileSync(file, `${text}\n/* changed */\n`);
    expect(sourceStamp(copy)).not.toBe(before);
    writeFileSync(file, text);
    expect(sourceStamp(copy)).toBe(before);
  });

  it('fails with the fix when a training run fails, and leaves no entry behind', async () => {
    const entries = readdirSync(dir).length;
    await expect(offlinePgoImage(request('no-such-workload'))).rejects.toThrow(/training run \(no-such-workload, 20000 ops\) failed.*unknown workload/s);
    expect(readdirSync(dir).length).toBe(entries);
  });

  it('says how to install the tools when they are missing', () => {
    const path = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      expect(() => checkOfflinePgoTools()).toThrow(KjitError);
      expect(() => checkOfflinePgoTools()).toThrow(/needs clang-19.*libclang-rt-19-dev/s);
    } finally {
      process.env.PATH = path;
    }
  });

  it('refuses images other than the reference kernel and unknown workloads before building', async () => {
    const ll = join(dir, 'foreign.ll');
    writeFileSync(ll, 'define void @init() {\n  ret void\n}\ndefine i64 @entry(i64 %i) {\n  ret i64 %i\n}\n');
    await expect(
      prepareBoot({ image: { path: ll, init: 'init', entry: 'entry' }, mode: 'offline-pgo', nic: 'virtq', sysctls: [] }),
    ).rejects.toThrow(/rebuilds the reference kernel/);
    await expect(prepareBoot({ image: REFERENCE, mode: 'offline-pgo', nic: 'virtq', sysctls: [], workload: 'nope' })).rejects.toThrow(/unknown workload 'nope'/);
  });
});
