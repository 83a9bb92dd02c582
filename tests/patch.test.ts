// Live patches: a function replaced with user IR takes effect through every
// caller, including callers boot inlined it into; bad patches are refused
// with a clear error and change nothing.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type Kernel, withKernel as withKernelOf } from './kernel.js';
import { execute, prepareBoot, type PreparedBoot } from '../dist/src/kernel/run.js';
import { readU64 } from '../dist/src/native/libc.js';
import { applyPatch, inlinersOf, patchSet, revertPatch } from '../dist/src/rejit/patch.js';

let dir = '';
let p: PreparedBoot;
const program = (step: string, scale = 'x * 3') => `#include <stdint.h>
uint64_t bias;
void init(void) { bias = 7; }
/* small: boot inlines them into both callers */
uint64_t step(uint64_t x) { return ${step}; }
uint64_t scale(uint64_t x) { return ${scale}; }
__attribute__((noinline)) uint64_t odd(uint64_t i) { return scale(step(i)); }
__attribute__((noinline)) uint64_t even(uint64_t i) { return step(i) * 5 + scale(i); }
__attribute__((noinline)) uint64_t entry(uint64_t i) { return (i & 1) ? odd(i) : even(i); }
`;

function cc(name: string, source: string, ...flags: string[]): string {
  const c = join(dir, `${name}.c`);
  writeFileSync(c, source);
  const out = join(dir, `${name}${flags.includes('-S') ? '.ll' : '.bc'}`);
  const r = spawnSync('clang-19', ['-O2', '-Xclang', '-disable-llvm-passes', '-emit-llvm', '-c', ...flags, c, '-o', out], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return out;
}

const image = () => ({ path: join(dir, 'prog.bc'), init: 'init', entry: 'entry' });
const run = { rate: 0, concurrency: 1, seed: 1n, counting: false, ops: 20_000n };
const hex = (v: bigint) => `0x${v.toString(16).padStart(16, '0')}`;

/** The checksum of a build of the test program from other sources (the fix made in C). */
async function checksumOf(name: string, ops = run.ops): Promise<string> {
  const other = await prepareBoot({ image: { ...image(), path: join(dir, `${name}.bc`) }, mode: 'boot', nic: 'virtq', sysctls: [] });
  try {
    return (await execute(other, { ...run, ops })).checksum;
  } finally {
    other.dispose();
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kjit-patch-'));
  cc('prog', program('x + bias'));
  cc('fixed', program('x + bias * 2'));
  cc('both', program('x + bias * 2', 'x * 3 + 1'));
  cc('scaled', program('x + bias', 'x * 3 + 1'));
  p = await prepareBoot({ image: image(), mode: 'boot', nic: 'virtq', sysctls: [], patchable: true });
});
afterAll(() => p?.dispose());

/** A kernel of the test program with an installer, for `body`; disposed after it. */
const withKernel = <T>(opts: typeof run, body: (k: Kernel) => Promise<T>) => withKernelOf(p, opts, body);

async function patchedRun(file: string, fn = 'step') {
  return withKernel(run, async ({ instance, installer }) => {
    const applied = await applyPatch(p, installer, { fn, file, atSeconds: 0 });
    instance.start();
    await instance.join();
    instance.checkHealthy('with the patch');
    return { applied, checksum: instance.cb.get('checksum'), installer };
  });
}

describe('live patches', () => {
  it('finds the callers boot inlined the function into', () => {
    expect(inlinersOf(p, 'step').sort()).toEqual(['even', 'odd']);
    expect(inlinersOf(p, 'scale').sort()).toEqual(['even', 'odd']);
  });

  it('takes effect through every caller, inlined ones included', async () => {
    const patch = join(dir, 'step.ll');
    writeFileSync(patch, '@bias = external global i64\ndefine i64 @step(i64 %x) {\n  %b = load i64, ptr @bias\n  %b2 = shl i64 %b, 1\n  %r = add i64 %x, %b2\n  ret i64 %r\n}\n');
    const { applied, checksum } = await patchedRun(patch);
    expect(applied.versions.map((v) => v.fn).sort()).toEqual(['even', 'odd', 'step']);
    /* the same program with the fix in its source gives the same results */
    const fixed = await prepareBoot({ image: { ...image(), path: join(dir, 'fixed.bc') }, mode: 'boot', nic: 'virtq', sysctls: [] });
    try {
      const expected = await execute(fixed, run);
      const original = await execute(p, run);
      expect(`0x${checksum.toString(16).padStart(16, '0')}`).toBe(expected.checksum);
      expect(expected.checksum).not.toBe(original.checksum);
    } finally {
      fixed.dispose();
    }
  });

  it('reverts: the original code runs again', async () => {
    const patch = join(dir, 'step2.ll');
    writeFileSync(patch, 'define i64 @step(i64 %x) {\n  ret i64 %x\n}\n');
    await withKernel(run, async ({ instance, installer }) => {
      const applied = await applyPatch(p, installer, { fn: 'step', file: patch, atSeconds: 0 });
      await revertPatch(installer, applied);
      for (const fn of ['step', 'odd', 'even']) expect(installer.entryTarget(fn)).toBeNull();
      instance.start();
      await instance.join();
      const original = await execute(p, run);
      expect(`0x${instance.cb.get('checksum').toString(16).padStart(16, '0')}`).toBe(original.checksum);
    });
  });

  const refused = async (source: string, fn: string, message: RegExp) => {
    const file = join(dir, `bad-${Math.random().toString(36).slice(2)}.ll`);
    writeFileSync(file, source);
    await withKernel(run, async ({ instance, installer }) => {
      await expect(applyPatch(p, installer, { fn, file, atSeconds: 0 })).rejects.toThrow(message);
      expect(installer.entryTarget('step')).toBeNull(); /* nothing changed */
      expect(installer.summary().installs).toBe(0);
    });
  };

  it('refuses a patch that does not parse', () => refused('define i64 @step(i64 %x) {\n  ret i64 %y\n', 'step', /not valid LLVM IR/));
  it('refuses a patch that fails verification', () =>
    refused('define i64 @step(i64 %x) {\n  %a = add i64 %b, 1\n  %b = add i64 %a, 1\n  ret i64 %a\n}\n', 'step', /fails LLVM verification/));
  it('refuses an unknown function', () => refused('define i64 @nope(i64 %x) {\n  ret i64 %x\n}\n', 'nope', /no function 'nope' to patch/));
  it('refuses a changed signature', () => refused('define i32 @step(i32 %x) {\n  ret i32 %x\n}\n', 'step', /may not change a signature/));
  it('refuses a patch that redefines other image code', () =>
    refused('define i64 @step(i64 %x) {\n  ret i64 %x\n}\ndefine i64 @odd(i64 %x) {\n  ret i64 %x\n}\n', 'step', /also defines odd/));
});

describe('kjit run --patch', () => {
  it('patches the reference kernel while it runs, re-JITting every function that inlined the patched one', () => {
    /* csum_fold with the same results, counting its calls in new (shadow) state */
    const patch = join(import.meta.dirname, '..', 'examples', 'patches', 'csum_fold_counted.c');
    const ll = join(dir, 'fold.ll');
    spawnSync('clang-19', ['-O2', '-Xclang', '-disable-llvm-passes', '-emit-llvm', '-S', patch, '-o', ll]);
    const kjit = (...args: string[]) =>
      spawnSync(process.execPath, [join(import.meta.dirname, '..', 'bin', 'kjit.js'), 'run', '--workload', 'web', '--ops', '1500000', '--seed', '5', '--no-count', '--json', ...args], {
        encoding: 'utf8',
      });
    const plain = kjit();
    const patched = kjit('--patch', `csum_fold=${ll}@0.2`);
    expect(patched.status, patched.stderr).toBe(0);
    const a = JSON.parse(plain.stdout);
    const b = JSON.parse(patched.stdout);
    const applied = b.rejit.patches[0];
    expect(applied.fn).toBe('csum_fold');
    expect(applied.functions).toEqual(expect.arrayContaining(['csum_fold', 'tcp_v4_rcv', 'udp_rcv']));
    expect(b.rejit.installs).toBe(applied.functions.length);
    /* it went live while operations were still running */
    expect(applied.at_s + (applied.compile_ms + applied.apply_ms) / 1000).toBeLessThan(b.seconds);
    /* same semantics: the same results */
    expect(b.checksum).toBe(a.checksum);
  });
});

describe('a faulting patch', () => {
  it('is rolled back and blacklisted, and the kernel restarts and keeps serving', () => {
    const bad = join(dir, 'faulty.ll');
    /* step faults for one input: a null dereference */
    writeFileSync(
      bad,
      '@bias = external global i64\ndefine i64 @step(i64 %x) {\n  %is = icmp eq i64 %x, 3001\n  br i1 %is, label %boom, label %ok\nboom:\n  %v = load volatile i64, ptr null\n  ret i64 %v\nok:\n  %b = load i64, ptr @bias\n  %r = add i64 %x, %b\n  ret i64 %r\n}\n',
    );
    const r = spawnSync(
      process.execPath,
      [join(import.meta.dirname, '..', 'bin', 'kjit.js'), 'run', '--image', image().path, '--init', 'init', '--entry', 'entry', '--ops', '20000', '--no-count', '--json', '--patch', `step=${bad}`],
      { encoding: 'utf8' },
    );
    expect(r.status, r.stderr).toBe(0);
    /* the fault is in whichever patched version ran it: step itself or a caller it was inlined into */
    expect(r.stderr).toMatch(/faulted in (step|odd|even) v\d+ \(patched\) from patch step=.*patch rolled back and blacklisted; kernel restarted/);
    const j = JSON.parse(r.stdout);
    expect(j.rejit.faults).toBe(1);
    expect(j.rejit.rollbacks).toBe(1);
    expect(j.rejit.restarts[0].after_ops).toBeGreaterThan(0);
    expect(j.rejit.restarts[0].fault).toMatch(/SIGSEGV at address 0x0/);
    /* the restarted kernel ran the rest without the patch */
    expect(j.ops).toBe(20000);
    expect(j.rejit.installs).toBe(0);
  });
});

describe('patch sets', () => {
  const stepFix = () => {
    const f = join(dir, 'set-step.ll');
    writeFileSync(f, '@bias = external global i64\ndefine i64 @step(i64 %x) {\n  %b = load i64, ptr @bias\n  %b2 = shl i64 %b, 1\n  %r = add i64 %x, %b2\n  ret i64 %r\n}\n');
    return { fn: 'step', file: f, atSeconds: 0 };
  };
  /* in C, with file-local state and a helper of its own */
  const scaleFix = () => {
    const f = join(dir, 'set-scale.c');
    writeFileSync(f, '#include <stdint.h>\nstatic uint64_t calls;\nstatic uint64_t plus_one(uint64_t v) { return v + 1; }\nuint64_t scale(uint64_t x) { calls++; return plus_one(x * 3); }\n');
    return { fn: 'scale', file: f, atSeconds: 0 };
  };

  it('applies two patches as one transition, and stacks them in a function both were inlined into', async () => {
    /* a running kernel: the four entries change in one request, at one quiescent point */
    {
      await withKernel({ ...run, ops: 0n }, async ({ instance, installer }) => {
        instance.start();
        while (instance.cb.get('ops_done') < 100n) await new Promise((r) => setTimeout(r, 1));
        const requests = instance.cb.get('poke_request');
        const [a, b] = await patchSet(p, installer).apply([stepFix(), scaleFix()]);
        /* odd and even carry both patches */
        expect(a!.versions.map((v) => v.fn).sort()).toEqual(['even', 'odd', 'step']);
        expect(b!.versions.map((v) => v.fn).sort()).toEqual(['even', 'odd', 'scale']);
        expect(installer.summary().installs).toBe(4);
        expect(instance.cb.get('poke_request') - requests).toBe(1n);
        expect(instance.cb.get('poke_done')).toBe(instance.cb.get('poke_request'));
        expect(b!.state).toEqual(['scale.kjit.state.calls']);
        const calls = instance.jit.lookup('scale.kjit.state.calls');
        const t0 = readU64(calls);
        while (readU64(calls) === t0) await new Promise((r) => setTimeout(r, 1));
        instance.requestStop();
        await instance.join();
        instance.checkHealthy('with two patches');
      });
    }
    /* the same set before the first operation: the results of the program with both fixes in C */
    await withKernel(run, async ({ instance, installer }) => {
      await patchSet(p, installer).apply([stepFix(), scaleFix()]);
      instance.start();
      await instance.join();
      instance.checkHealthy('with two patches');
      expect(hex(instance.cb.get('checksum'))).toBe(await checksumOf('both'));
      /* the patch's state counted every call that went through the patched code */
      expect(readU64(instance.jit.lookup('scale.kjit.state.calls'))).toBe(20_000n);
    });
  });

  it('applies patches one after another; reverting one rebuilds the callers with the other alone, keeping its state', async () => {
    await withKernel(run, async ({ instance, installer }) => {
      const set = patchSet(p, installer);
      const [b] = await set.apply([scaleFix()]);
      const [a] = await set.apply([stepFix()]);
      /* applying step's patch rebuilt odd and even with scale's patch still in them */
      expect(a!.versions.map((v) => v.fn).sort()).toEqual(['even', 'odd', 'step']);
      await set.revert([a!]);
      expect(installer.entryTarget('step')).toBeNull();
      for (const fn of ['odd', 'even', 'scale']) expect(installer.liveVersion(fn)?.kind).toBe('patched');
      expect(set.patches()).toEqual([b]);
      instance.start();
      await instance.join();
      instance.checkHealthy('after reverting one of two patches');
      expect(hex(instance.cb.get('checksum'))).toBe(await checksumOf('scaled'));
      /* one state, linked by every version: all calls were counted in it */
      expect(readU64(instance.jit.lookup('scale.kjit.state.calls'))).toBe(20_000n);
    });
  });

  it('kjit run applies patches due at the same moment as one transition', async () => {
    const r = spawnSync(
      process.execPath,
      [join(import.meta.dirname, '..', 'bin', 'kjit.js'), 'run', '--image', image().path, '--init', 'init', '--entry', 'entry', '--ops', '20000', '--concurrency', '1', '--seed', '1', '--no-count', '--json',
        '--patch', `step=${stepFix().file}@0`, '--patch', `scale=${scaleFix().file}@0`],
      /* a second or two of work: the command must not linger after it (an idle compile server holds nothing) */
      { encoding: 'utf8', timeout: 20_000 },
    );
    expect(r.signal, 'kjit run did not exit within 20 s').toBeNull();
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    /* odd and even were rebuilt once, carrying both patches */
    expect(j.rejit.installs).toBe(4);
    expect(j.checksum).toBe(await checksumOf('both'));
  });

  it('refuses a second patch of a patched function, changing nothing', async () => {
    await withKernel(run, async ({ instance, installer }) => {
      const set = patchSet(p, installer);
      await set.apply([stepFix()]);
      const before = installer.summary().installs;
      await expect(set.apply([scaleFix(), stepFix()])).rejects.toThrow(/step is already patched/);
      expect(installer.summary().installs).toBe(before);
      expect(installer.entryTarget('scale')).toBeNull();
    });
  });
});

describe('shadow variables', () => {
  it('keep per-object state beside live objects, and go with the patch', async () => {
    /* scale with the same results, counting calls per "object" (16 of them) in a shadow variable */
    const file = join(dir, 'shadow-scale.c');
    writeFileSync(
      file,
      `#include <stdint.h>
#include "kjit_shadow.h"
static char seen_key;
struct seen { uint64_t calls; };
uint64_t scale(uint64_t x) {
  struct seen *s = kjit_shadow_get_or_alloc((void *)(uintptr_t)(x / 2 % 16 + 1), KJIT_SHADOW_ID(&seen_key), sizeof *s);
  if (s) s->calls++;
  return x * 3;
}
`,
    );
    await withKernel(run, async ({ instance, installer }) => {
      const set = patchSet(p, installer);
      const [applied] = await set.apply([{ fn: 'scale', file, atSeconds: 0 }]);
      instance.start();
      await instance.join();
      instance.checkHealthy('with a shadow-variable patch');
      expect(hex(instance.cb.get('checksum'))).toBe((await execute(p, run)).checksum);
      expect(instance.cb.get('shadow_live')).toBe(16n);
      expect(instance.cb.get('shadow_full')).toBe(0n);
      const key = instance.jit.lookup('scale.kjit.state.seen_key');
      let calls = 0n;
      for (let obj = 1n; obj <= 16n; obj++) {
        const at = instance.jit.call('kjit_shadow_get', 'uint64_t (uint64_t, uint64_t)', obj, key) as bigint;
        expect(at).not.toBe(0n);
        calls += readU64(BigInt(at));
      }
      expect(calls).toBe(20_000n); /* every operation calls scale once */
      await set.revert([applied!]);
      await installer.freeRetired();
      await set.releaseState();
      expect(instance.cb.get('shadow_live')).toBe(0n);
    });
  });
});

