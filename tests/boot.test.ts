// Boot specialization of the reference kernel: what `boot` removes and
// folds compared with `stock`, what it must keep (state a later unit may
// reach), and a second, separately compiled module linking to the live
// kernel's state and changing it.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { makeTargetMachine } from '../dist/src/kernel/compile.js';
import { REFERENCE } from '../dist/src/kernel/image.js';
import { KernelInstance } from '../dist/src/kernel/instance.js';
import { instanceOptions, prepareBoot, type PreparedBoot } from '../dist/src/kernel/run.js';
import { Linkage, Module, type Value, Visibility } from '../dist/src/native/llvm.js';

let stock: PreparedBoot;
let boot: PreparedBoot;
let bootRing: PreparedBoot;

beforeAll(async () => {
  stock = await prepareBoot({ image: REFERENCE, mode: 'stock', nic: 'virtq', sysctls: [] });
  boot = await prepareBoot({ image: REFERENCE, mode: 'boot', nic: 'virtq', sysctls: [] });
  bootRing = await prepareBoot({ image: REFERENCE, mode: 'boot', nic: 'ring', sysctls: [] });
});

afterAll(() => {
  for (const p of [stock, boot, bootRing]) p?.dispose();
});

/** Instructions of `m` (in the functions `inFunction` accepts) that `match`. */
function countInstructions(m: Module, match: (i: Value) => boolean, inFunction: (f: Value) => boolean = () => true): number {
  let n = 0;
  for (const fn of m.functions()) {
    if (!inFunction(fn)) continue;
    for (const inst of fn.instructions()) if (match(inst)) n++;
  }
  return n;
}

const loadsOf = (m: Module, variable: string) => countInstructions(m, (i) => i.isLoad() && i.loadPointer()?.name === variable);
const callsTo = (m: Module, callee: string) => countInstructions(m, (i) => i.isCall() && i.calledFunction()?.name === callee);

function defines(m: Module, name: string): boolean {
  const f = m.getFunction(name);
  return !!f && !f.isDeclaration();
}

/** Functions of a source file: tagged with its unit in the pristine IR. */
function functionsOfUnit(p: PreparedBoot, unit: string): string[] {
  return [...p.image.pristine.functions()].filter((f: Value) => !f.isDeclaration() && f.getStringAttribute('kjit-unit') === unit).map((f: Value) => f.name);
}

describe('boot specialization', () => {
  it('folds a boot-constant sysctl: its loads and the branches it guarded are gone', () => {
    /* kernel.audit defaults to 0 and is fixed at boot */
    expect(loadsOf(stock.compiled.optimized, 'sysctl_kernel_audit')).toBeGreaterThan(0);
    expect(callsTo(stock.compiled.optimized, 'audit_syscall')).toBeGreaterThan(0);
    expect(loadsOf(boot.compiled.optimized, 'sysctl_kernel_audit')).toBe(0);
    /* no call site is left; the function itself stays, promoted, for later units */
    expect(callsTo(boot.compiled.optimized, 'audit_syscall')).toBe(0);
    const folded = boot.compiled.report.folded.find((f) => f.name === 'kernel.audit');
    expect(folded).toMatchObject({ value: '0' });
    expect(folded!.loads).toBeGreaterThan(0);
    /* a runtime sysctl is never folded */
    expect(loadsOf(boot.compiled.optimized, 'sysctl_kernel_trace')).toBeGreaterThan(0);
  });

  it('a boot parameter changes what is folded', async () => {
    const audited = await prepareBoot({ image: REFERENCE, mode: 'boot', nic: 'virtq', sysctls: ['kernel.audit=1'] });
    try {
      expect(loadsOf(audited.compiled.optimized, 'sysctl_kernel_audit')).toBe(0);
      /* now every system call records: the record code (a call to
       * audit_syscall, or its body inlined: an increment of audit_count) is on
       * the syscall path; without audit only init's reset to 0 is left */
      const auditPath = (m: Module) =>
        countInstructions(
          m,
          (i) =>
            (i.isCall() && i.calledFunction()?.name === 'audit_syscall') ||
            (i.isStore() && i.operand(1)?.name === 'audit_count' && i.operand(0)?.constIntValue() !== 0n),
          (f) => !f.name.startsWith('audit_'),
        );
      expect(auditPath(audited.compiled.optimized)).toBeGreaterThan(0);
      expect(auditPath(boot.compiled.optimized)).toBe(0);
      expect(audited.compiled.report.folded.find((f) => f.name === 'kernel.audit')).toMatchObject({ value: '1' });
    } finally {
      audited.dispose();
    }
  });

  it('removes the absent NIC driver and keeps the present one', () => {
    const ring = functionsOfUnit(boot, 'kernel/drivers/net/ring.c');
    const virtq = functionsOfUnit(boot, 'kernel/drivers/net/virtq.c');
    expect(ring.length).toBeGreaterThan(3);
    expect(virtq.length).toBeGreaterThan(3);
    for (const name of ring) {
      expect(defines(stock.compiled.optimized, name) || stock.compiled.report.removed.some((r) => r.name === name)).toBe(true);
    }
    expect(defines(stock.compiled.optimized, 'ring_xmit')).toBe(true);
    for (const name of ring) expect(defines(boot.compiled.optimized, name)).toBe(false);
    const removed = new Map(boot.compiled.report.removed.map((r) => [r.name, r.reason]));
    expect(removed.get('ring_xmit')).toMatch(/ring-e1000, a device this machine does not have/);
    /* with the other NIC it is the other way round */
    for (const name of virtq) expect(defines(bootRing.compiled.optimized, name)).toBe(false);
    expect(new Map(bootRing.compiled.report.removed.map((r) => [r.name, r.reason])).get('virtq_xmit')).toMatch(/virtq-net/);
  });

  it('keeps every function that a present device or the kernel may reach, as a hidden external symbol', () => {
    const m = boot.compiled.optimized;
    const removed = new Set(boot.compiled.report.removed.map((r) => r.name));
    let internal = 0;
    for (const fn of boot.image.pristine.functions()) {
      if (fn.isDeclaration() || removed.has(fn.name)) continue;
      const kept = m.getFunction(fn.name);
      expect(kept && !kept.isDeclaration(), fn.name).toBe(true);
      if (fn.linkage === Linkage.Internal) {
        internal++;
        expect(kept!.linkage).toBe(Linkage.External);
        expect(kept!.visibility).toBe(Visibility.Hidden);
      }
    }
    expect(internal).toBeGreaterThan(100);
    expect(boot.compiled.report.promoted.functions).toBe(internal);
    /* only what nothing references and the absent driver's code are gone */
    expect(new Set(boot.compiled.report.removed.map((r) => r.reason.split(',')[0]))).toEqual(
      new Set(['never referenced', 'driver for ring-e1000']),
    );
  });

  it('keeps state: every global survives, internal ones as hidden external symbols', () => {
    const m = boot.compiled.optimized;
    /* the absent driver's operations table stays (emptied), as do all sysctl variables */
    expect(m.getGlobal('ring_netdev_ops')).not.toBeNull();
    for (const s of boot.image.tables.sysctls) expect(m.getGlobal(s.variable)?.isDeclaration()).toBe(false);
    /* static (internal) state of the pristine image is promoted, not removed */
    const internals = [...boot.image.pristine.globals()].filter((g: Value) => !g.isDeclaration() && g.linkage === Linkage.Internal);
    expect(internals.length).toBeGreaterThan(50);
    for (const g of internals) {
      const kept = m.getGlobal(g.name);
      expect(kept, g.name).not.toBeNull();
      expect(kept!.linkage).toBe(Linkage.External);
      expect(kept!.visibility).toBe(Visibility.Hidden);
    }
    expect(boot.compiled.report.promoted.globals).toBe(internals.length);
  });

  it('compiles stock per source file for generic x86-64, boot whole for this CPU', () => {
    expect(stock.compiled.report.units).toBeGreaterThan(30);
    expect(stock.compiled.target.cpu).toBe('x86-64');
    expect(boot.compiled.report.units).toBe(1);
    expect(boot.compiled.target.cpu).not.toBe('x86-64');
    /* the same mitigations in both */
    for (const p of [stock, boot]) {
      const fn = [...p.compiled.optimized.functions()].find((f: Value) => !f.isDeclaration())!;
      expect(fn.getStringAttribute('target-features')).toMatch(/\+retpoline-indirect-calls/);
    }
  });
});

describe('a second module links to the live kernel', () => {
  it('reads and updates promoted internal state of the running kernel', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kjit-probe-'));
    const src = join(dir, 'probe.c');
    writeFileSync(
      src,
      `#include <stdint.h>
/* static in ir/kernel/core/sched.c and core/audit.c; promoted at boot */
extern unsigned ntasks;
extern uint64_t audit_count;
unsigned probe_ntasks(void) { return __atomic_load_n(&ntasks, __ATOMIC_RELAXED); }
uint64_t probe_audit_count(void) { return __atomic_load_n(&audit_count, __ATOMIC_RELAXED); }
void probe_reset_audit(void) { __atomic_store_n(&audit_count, 0, __ATOMIC_RELAXED); }
`,
    );
    const bc = join(dir, 'probe.bc');
    const cc = spawnSync('clang-19', ['-O2', '-fPIE', '-emit-llvm', '-c', src, '-o', bc], { encoding: 'utf8' });
    expect(cc.stderr).toBe('');

    const audited = await prepareBoot({ image: REFERENCE, mode: 'boot', nic: 'virtq', sysctls: ['kernel.audit=1'] });
    const { opts } = instanceOptions(audited, { workload: 'web', rate: 0, concurrency: 4, seed: 1n, counting: false, seconds: 60 });
    const instance = KernelInstance.load(audited.compiled.objects, opts);
    try {
      instance.start();
      while (instance.cb.get('ops_done') < 5000n) await new Promise((r) => setTimeout(r, 10));

      const probe = Module.parseBitcode(audited.image.pristine.context, readFileSync(bc), 'probe');
      using tm = makeTargetMachine(audited.compiled.target);
      instance.jit.addObject(tm.emitObject(probe));
      probe.dispose();

      const call = (name: string, proto: string) => instance.jit.call(name, proto) as number | bigint;
      /* the probe and the kernel name the same memory */
      expect(instance.jit.lookup('ntasks')).toBeGreaterThan(0n);
      expect(Number(call('probe_ntasks', 'uint32_t (void)'))).toBe(9); /* 8 workers + init */
      const before = BigInt(call('probe_audit_count', 'uint64_t (void)'));
      expect(before).toBeGreaterThan(1000n); /* the kernel audits every system call */

      /* reset it and read it back at once (the kernel may lose a reset that
       * races its own increment: retry); then the kernel keeps counting from
       * the new value */
      let after = before;
      for (let attempt = 0; attempt < 5 && after >= before; attempt++) {
        call('probe_reset_audit', 'void (void)');
        after = BigInt(call('probe_audit_count', 'uint64_t (void)'));
      }
      expect(after).toBeLessThan(before);
      await new Promise((r) => setTimeout(r, 50));
      expect(BigInt(call('probe_audit_count', 'uint64_t (void)'))).toBeGreaterThan(after);

      instance.requestStop();
      await instance.join();
      instance.checkHealthy('after the probe');
    } finally {
      await instance.dispose();
      audited.dispose();
    }
  });
});
