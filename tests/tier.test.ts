// The whole-image tier: instrumented and profile-guided (with run-time
// sysctls folded behind guards) tiers of the reference kernel compute what
// its boot code computes, on workloads that write sysctls themselves
// (phases toggles kernel.trace), on every workload, and a tier's counts are real.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { REFERENCE } from '../dist/src/kernel/image.js';
import { execute, prepareBoot, type PreparedBoot } from '../dist/src/kernel/run.js';
import { readWords } from '../dist/src/native/libc.js';
import { summarize } from '../dist/src/pgo/metadata.js';
import { decodeCounts, functionAt } from '../dist/src/sampler/instrument.js';
import type { FunctionCounts } from '../dist/src/sampler/counts.js';
import { functionIrHashes } from '../dist/src/store/ir-hash.js';
import { withKernel } from './kernel.js';

let p: PreparedBoot;
let functions: string[] = [];
const OPS = 30_000n;
const run = (workload: string) => ({ workload, rate: 0, concurrency: 4, seed: 3n, counting: false, ops: OPS, ...(workload === 'phases' ? { workloadArg: 5000n } : {}) });

beforeAll(async () => {
  p = await prepareBoot({ image: REFERENCE, mode: 'boot', nic: 'virtq', sysctls: [], patchable: true });
  const removed = new Set(p.compiled.report.removed.map((r) => r.name));
  for (const f of p.image.pristine.functions()) {
    if (!f.isDeclaration() && !removed.has(f.name) && !f.name.startsWith('kjit_') && !f.isVarArg()) functions.push(f.name);
  }
});
afterAll(() => p?.dispose());

describe('a tier of the whole image', () => {
  for (const workload of ['phases', 'web', 'kv', 'fs', 'firewall']) {
    it(`instrumented, then profile-guided and specialized, gives the boot code's checksum (${workload})`, async () => {
      const reference = (await execute(p, run(workload))).checksum;
      const hashes = functionIrHashes(p.image.pristine);
      /* 1. an instrumented tier live from the first operation to the last */
      const counts = await withKernel(p, run(workload), async ({ instance, installer }) => {
        const { versions } = await installer.compileTier({ functions, instrument: true, pipeline: 'default<O1>' });
        expect(versions.length).toBeGreaterThan(500);
        await installer.commit(versions);
        instance.start();
        await instance.join();
        instance.checkHealthy('instrumented tier');
        expect(`0x${instance.cb.get('checksum').toString(16).padStart(16, '0')}`).toBe(reference);
        const out: FunctionCounts[] = [];
        for (const v of versions) {
          const c = decodeCounts(readWords(v.data!.address, v.data!.words), v.data!.counts!, (a) => functionAt(instance, a), {
            function: v.fn,
            ir_hash: hashes.get(v.fn)!,
            window: { ms: 0, ops: Number(OPS) },
          });
          if (c.entry > 0) out.push(c);
        }
        return out;
      });
      expect(counts.length).toBeGreaterThan(50);
      /* something ran at least once per operation */
      expect(Math.max(...counts.map((c) => c.entry))).toBeGreaterThanOrEqual(Number(OPS));
      /* 2. the profile-guided tier, every run-time sysctl folded at its boot value */
      const fold = Object.fromEntries(p.config.values.filter((v) => !v.bootFixed).map((v) => [v.sysctl.variable, v.value.toString()]));
      await withKernel(p, run(workload), async ({ instance, installer }) => {
        const { versions, unit } = await installer.compileTier({ functions, profile: { counts, summary: summarize(counts) }, specialize: fold, pipeline: 'default<O3>' });
        expect(unit.profile.applied).toBe(counts.length);
        expect(unit.profile.stale).toBe(0);
        const guarded = versions.filter((v) => v.build?.specialized?.length);
        expect(guarded.length).toBeGreaterThan(0);
        if (workload === 'phases') {
          /* the workload flips kernel.trace itself: the guards must send those calls to boot code */
          expect(guarded.some((v) => v.build!.specialized!.some((s) => s.variable === 'sysctl_kernel_trace'))).toBe(true);
        }
        await installer.commit(versions);
        instance.start();
        await instance.join();
        instance.checkHealthy('profile-guided tier');
        expect(`0x${instance.cb.get('checksum').toString(16).padStart(16, '0')}`).toBe(reference);
        /* reverted to boot code, and freed after a grace period */
        await installer.commit([], versions.map((v) => v.fn));
        expect(await installer.freeRetired()).toBe(versions.length);
      });
    });
  }
});
