// Installing versions of a function into a running kernel: the entry is
// redirected and restored while the kernel runs, the new code runs, and the
// kernel's results stay exactly those of an undisturbed run.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { REFERENCE } from '../dist/src/kernel/image.js';
import { KernelInstance } from '../dist/src/kernel/instance.js';
import { execute, instanceOptions, prepareBoot, type PreparedBoot } from '../dist/src/kernel/run.js';
import { readU64 } from '../dist/src/native/libc.js';
import { Installer } from '../dist/src/rejit/installer.js';
import { type Module, type Value } from '../dist/src/native/llvm.js';

let p: PreparedBoot;
const OPS = 150_000n;
const run = { workload: 'web', rate: 0, concurrency: 4, seed: 11n, counting: false, ops: OPS };

beforeAll(async () => {
  p = await prepareBoot({ image: REFERENCE, mode: 'boot', nic: 'virtq', sysctls: [], patchable: true });
});
afterAll(() => p?.dispose());

function callSites(m: Module, callee: string): number {
  let n = 0;
  for (const fn of m.functions()) for (const i of fn.instructions()) if (i.isCall() && (i.calledFunction() as Value | null)?.name === callee) n++;
  return n;
}

/** A function the booted kernel really calls (not inlined everywhere). */
function hotCalledFunction(): string {
  for (const name of ['kmem_cache_alloc', 'kmem_cache_free', 'kfree', 'kmalloc', 'd_lookup']) {
    if (callSites(p.compiled.optimized, name) > 0) return name;
  }
  throw new Error('no candidate function is called in the boot image');
}

describe('installing versions into a running kernel', () => {
  it('every function starts with a patchable entry', () => {
    const fn = [...p.compiled.optimized.functions()].find((f: Value) => !f.isDeclaration())!;
    expect(fn.getStringAttribute('patchable-function-entry')).toBe('5');
  });

  it('redirects a hot function back and forth while the kernel runs, without changing its results', async () => {
    const undisturbed = await execute(p, run);
    const fn = hotCalledFunction();
    const { opts } = instanceOptions(p, run);
    const instance = KernelInstance.load(p.compiled.objects, opts);
    const installer = new Installer(instance, p);
    try {
      expect(installer.entryTarget(fn)).toBeNull(); /* the NOP */
      const v1 = installer.compile(fn, 'instrumented', { countEntries: true });
      const v2 = installer.compile(fn, 'optimized');
      expect(v1.state).toBe('compiled');
      expect(v1.inlines.length).toBeGreaterThanOrEqual(0);
      expect(installer.codeMap.find(v1.address)).toBe(v1);

      instance.start();
      while (instance.cb.get('ops_done') < 2000n) await new Promise((r) => setTimeout(r, 1));
      const hitsAddress = instance.jit.lookup(`${v1.symbol}.hits`);
      const readHits = () => readU64(hitsAddress);

      let cycles = 0;
      const latencies: number[] = [];
      while (instance.cb.getNumber('state') === 2 /* RUNNING */ && instance.cb.get('ops_done') < OPS - 20_000n) {
        latencies.push(installer.activate(v1));
        expect(installer.entryTarget(fn)).toBe(v1.address);
        await new Promise((r) => setImmediate(r));
        latencies.push(installer.activate(v2));
        await new Promise((r) => setImmediate(r));
        installer.revert(fn);
        expect(installer.entryTarget(fn)).toBeNull();
        cycles++;
      }
      await instance.join();
      instance.checkHealthy('after installs');
      expect(cycles).toBeGreaterThan(20);
      expect(readHits()).toBeGreaterThan(0n); /* the instrumented version really ran */
      expect(instance.cb.get('ops_done')).toBe(OPS);
      expect(`0x${instance.cb.get('checksum').toString(16).padStart(16, '0')}`).toBe(undisturbed.checksum);
      const s = installer.summary();
      expect(s.installs).toBe(cycles * 2);
      expect(s.reverts).toBe(cycles);
      expect(s.versionsLive).toBe(0);
      latencies.sort((a, b) => a - b);
      expect(latencies[Math.floor(latencies.length / 2)]).toBeLessThan(50); /* ms; the benchmark measures it properly */
      expect(installer.freeRetired()).toBe(2);
      expect(v1.state).toBe('freed');
      expect(installer.codeMap.find(v1.address)?.id).toBe(v1.id); /* attribution survives */
    } finally {
      await instance.dispose();
    }
  });

  it('refuses a function the image does not have', () => {
    const { opts } = instanceOptions(p, run);
    const instance = KernelInstance.load(p.compiled.objects, opts);
    const installer = new Installer(instance, p);
    try {
      expect(() => installer.compile('no_such_function', 'optimized')).toThrow(/phase 'build'.*no function 'no_such_function'/);
    } finally {
      void instance.dispose();
    }
  });
});
