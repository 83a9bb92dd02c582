// The compiled-object cache: the same boot inputs reuse objects, any change
// of input compiles again, and a damaged entry is rebuilt, never trusted.
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

import { REFERENCE } from '../dist/src/kernel/image.js';
import { execute, prepareBoot } from '../dist/src/kernel/run.js';

let dir = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'kjit-cache-'));
  process.env.KJIT_CACHE_DIR = dir;
});

const run = { workload: 'kv', ops: 2000n, rate: 0, concurrency: 4, seed: 3n, counting: true };

describe('compiled-object cache', () => {
  it('reuses the objects of an identical boot and gives identical results', async () => {
    const first = await prepareBoot({ image: REFERENCE, mode: 'boot', nic: 'virtq', sysctls: [] });
    const a = await execute(first, run);
    first.dispose();
    expect(a.boot.cache).toBe('miss');
    expect(readdirSync(dir)).toHaveLength(1);

    const second = await prepareBoot({ image: REFERENCE, mode: 'boot', nic: 'virtq', sysctls: [] });
    expect(second.compiled.cache).toBe('hit');
    expect(second.compiled.report.functionsAfter).toBe(first.compiled.report.functionsAfter);
    const b = await execute(second, run); /* the counting build parses the cached optimized IR */
    second.dispose();
    expect(b.checksum).toBe(a.checksum);
    expect(b.indirect_calls_per_op).toBe(a.indirect_calls_per_op);
    expect(b.sysctl_loads_per_op).toBe(a.sysctl_loads_per_op);
  });

  it('compiles again when a boot input changes', async () => {
    const p = await prepareBoot({ image: REFERENCE, mode: 'boot', nic: 'virtq', sysctls: ['kernel.audit=1'] });
    expect(p.compiled.cache).toBe('miss');
    p.dispose();
    const q = await prepareBoot({ image: REFERENCE, mode: 'boot', nic: 'ring', sysctls: [] });
    expect(q.compiled.cache).toBe('miss');
    q.dispose();
    expect(readdirSync(dir)).toHaveLength(3);
  });

  it('ignores a damaged entry and rebuilds it', async () => {
    for (const entry of readdirSync(dir)) writeFileSync(join(dir, entry, 'meta.json'), '{"objects": 2, "me');
    const p = await prepareBoot({ image: REFERENCE, mode: 'boot', nic: 'virtq', sysctls: [] });
    expect(p.compiled.cache).toBe('miss');
    const r = await execute(p, { ...run, counting: false });
    expect(r.ops).toBe(2000);
    p.dispose();
    const again = await prepareBoot({ image: REFERENCE, mode: 'boot', nic: 'virtq', sysctls: [] });
    expect(again.compiled.cache).toBe('hit'); /* rebuilt in place */
    again.dispose();
  });

  it('is bypassed on request', async () => {
    const p = await prepareBoot({ image: REFERENCE, mode: 'boot', nic: 'virtq', sysctls: [], cache: false });
    expect(p.compiled.cache).toBe('off');
    p.dispose();
  });
});
