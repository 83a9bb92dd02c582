// The reference kernel gives the same checksum for the same workload and
// operation count in every mode: specialization must never change results.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { REFERENCE } from '../dist/src/kernel/image.js';
import { execute, prepareBoot, type PreparedBoot } from '../dist/src/kernel/run.js';

const WORKLOADS = ['web', 'kv', 'fs', 'firewall', 'phases'];
const OPS = 4000n;
const prepared = new Map<string, PreparedBoot>();
const base = { rate: 0, concurrency: 4, seed: 7n, counting: false, ops: OPS };

beforeAll(async () => {
  for (const mode of ['stock', 'boot']) {
    prepared.set(mode, await prepareBoot({ image: REFERENCE, mode, nic: 'virtq', sysctls: [] }));
  }
  prepared.set('boot-ring', await prepareBoot({ image: REFERENCE, mode: 'boot', nic: 'ring', sysctls: [] }));
});

afterAll(() => {
  for (const p of prepared.values()) p.dispose();
});

describe('equal checksums across modes', () => {
  for (const workload of WORKLOADS) {
    it(`${workload}: stock and boot (both NIC models) agree`, async () => {
      const arg = workload === 'phases' ? { workloadArg: 1000n } : {};
      const sums: Record<string, string> = {};
      for (const [name, p] of prepared) {
        const r = await execute(p, { ...base, ...arg, workload });
        expect(r.ops).toBe(Number(OPS));
        sums[name] = r.checksum;
      }
      expect(sums.boot).toBe(sums.stock);
      expect(sums['boot-ring']).toBe(sums.stock);
      /* the checksum depends on the work done: another seed gives another one */
      const other = await execute(prepared.get('boot')!, { ...base, ...arg, workload, seed: 8n });
      expect(other.checksum).not.toBe(sums.stock);
    });
  }

  it('closed loop with more operations in flight gives the same checksum', async () => {
    const a = await execute(prepared.get('boot')!, { ...base, workload: 'web', concurrency: 1 });
    const b = await execute(prepared.get('boot')!, { ...base, workload: 'web', concurrency: 8 });
    expect(b.checksum).toBe(a.checksum);
  });
});
