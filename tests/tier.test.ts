// The whole-image tier: instrumented and profile-guided (with run-time
// sysctls folded behind guards) tiers of the reference kernel compute what
// its boot code computes, on workloads that write sysctls themselves
// (phases toggles kernel.trace), on every workload, and a tier's counts are real.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { REFERENCE } from '../dist/src/kernel/image.js';
import { execute, prepareBoot, type PreparedBoot } from '../dist/src/kernel/run.js';
import { summarize } from '../dist/src/pgo/metadata.js';
import { instrumentedTierCounts, tierFunctions, withKernel } from './kernel.js';

let p: PreparedBoot;
let functions: string[] = [];
const OPS = 30_000n;
const run = (workload: string) => ({ workload, rate: 0, concurrency: 4, seed: 3n, counting: false, ops: OPS, ...(workload === 'phases' ? { workloadArg: 5000n } : {}) });

beforeAll(async () => {
  p = await prepareBoot({ image: REFERENCE, mode: 'boot', nic: 'virtq', sysctls: [], patchable: true });
  functions = tierFunctions(p);
});
afterAll(() => p?.dispose());

describe('a tier of the whole image', () => {
  for (const workload of ['phases', 'web', 'kv', 'fs', 'firewall']) {
    it(`instrumented, then profile-guided and specialized, gives the boot code's checksum (${workload})`, async () => {
      const reference = (await execute(p, run(workload))).checksum;
      /* 1. an instrumented tier live from the first operation to the last */
      const { versions, counts } = await instrumentedTierCounts(p, run(workload), functions, reference);
      expect(versions).toBeGreaterThan(500);
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
