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
import { compileServer } from '../dist/src/scheduler/compile-server.js';

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
      const v1 = await installer.compile(fn, 'instrumented', { countEntries: true });
      const v2 = await installer.compile(fn, 'optimized');
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
        latencies.push(await installer.activate(v1));
        expect(installer.entryTarget(fn)).toBe(v1.address);
        await new Promise((r) => setImmediate(r));
        latencies.push(await installer.activate(v2));
        await new Promise((r) => setImmediate(r));
        await installer.revert(fn);
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
      expect(s.pokes.kernel).toBe(cycles * 3); /* every rewrite at a quiescent point of the running kernel */
      latencies.sort((a, b) => a - b);
      expect(latencies[Math.floor(latencies.length / 2)]).toBeLessThan(50); /* ms; the benchmark measures it properly */
      expect(await installer.freeRetired()).toBe(2); /* the kernel has stopped: no grace needed */
      expect(v1.state).toBe('freed');
      expect(installer.codeMap.find(v1.address)?.id).toBe(v1.id); /* attribution survives */
    } finally {
      await instance.dispose();
    }
  });

  it('frees retired code only after no kernel stack reaches into it', async () => {
    /* Workers park inside sys_poll (blocked on a wait queue) whenever they
     * have no job, so code of sys_poll is on some task's stack nearly always. */
    const fn = 'sys_poll';
    const { opts } = instanceOptions(p, { ...run, ops: 0n }); /* runs until stopped */
    const instance = KernelInstance.load(p.compiled.objects, opts);
    const installer = new Installer(instance, p);
    const cb = instance.cb;
    /* ask the runtime directly whether any stack reaches into [lo, hi) */
    const ask = async (lo: bigint, hi: bigint, waitMs: number) => {
      const checks = cb.get('grace_checks');
      const busy = cb.get('grace_busy');
      cb.array('grace_lo')[0] = lo;
      cb.array('grace_hi')[0] = hi;
      cb.set('grace_n', 1);
      const request = cb.get('grace_request') + 1n;
      cb.set('grace_request', request);
      instance.ringDoorbell();
      await new Promise((r) => setTimeout(r, waitMs));
      return { answered: cb.get('grace_done') >= request, checks: cb.get('grace_checks') - checks, busy: cb.get('grace_busy') - busy };
    };
    try {
      const v = await installer.compile(fn, 'optimized');
      instance.start();
      while (cb.get('ops_done') < 1000n) await new Promise((r) => setTimeout(r, 1));
      await installer.activate(v);
      /* while it is live, tasks are always inside it: never answered */
      const live = await ask(v.address, v.address + BigInt(v.size), 100);
      expect(live.answered).toBe(false);
      expect(live.checks).toBeGreaterThan(100);
      expect(live.busy).toBeGreaterThanOrEqual(live.checks - 1n); /* every scan found it (counters read while it scans) */
      /* the boot code of sys_poll is no longer entered: answered at once */
      const entry = installer.entryOf(fn);
      const boot = await ask(entry, entry + 64n, 100);
      expect(boot.answered).toBe(true);

      await installer.revert(fn);
      expect(v.state).toBe('retired');
      expect(await installer.freeRetired(5000)).toBe(1);
      expect(v.state).toBe('freed');
      expect(installer.graceMs.length).toBe(1);
      /* and the kernel goes on serving from the boot code */
      const after = cb.get('ops_done');
      while (cb.get('ops_done') < after + 5000n) await new Promise((r) => setTimeout(r, 1));
      instance.checkHealthy('after freeing a retired version');
    } finally {
      await instance.dispose();
    }
  });

  it('refuses a function the image does not have', async () => {
    const { opts } = instanceOptions(p, run);
    const instance = KernelInstance.load(p.compiled.objects, opts);
    const installer = new Installer(instance, p);
    try {
      await expect(installer.compile('no_such_function', 'optimized')).rejects.toThrow(/phase 'build'.*no function 'no_such_function'/);
    } finally {
      await instance.dispose();
    }
  });
});

describe('the compile server', () => {
  it('builds units in a process of its own; one that dies is replaced and its job built by the new one (deaths: tests/scheduler.test.ts)', async () => {
    const server = compileServer(p);
    server.warm();
    const pid = server.pid!;
    expect(pid).not.toBe(process.pid);
    const starts = server.starts;
    const job = server.build({ fn: 'sys_poll', kind: 'optimized', id: 9001 });
    process.kill(pid, 'SIGKILL');
    const unit = await job;
    expect(unit.symbol).toBe('sys_poll.kjit.v9001');
    expect(unit.object.byteLength).toBeGreaterThan(0);
    expect(server.starts).toBe(starts + 1);
    expect(server.pid).not.toBe(pid);
  });
});

