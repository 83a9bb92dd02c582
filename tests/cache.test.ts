// The compiled-object cache: the same boot inputs reuse objects, any change
// of input compiles again, and a damaged entry is rebuilt, never trusted.
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
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

/** The object entries (the cache also keeps what it learned of each image, under images/). */
const entries = () => readdirSync(dir).filter((n) => /^[0-9a-f]{40}$/.test(n));

const run = { workload: 'kv', ops: 2000n, rate: 0, concurrency: 4, seed: 3n, counting: true };

describe('compiled-object cache', () => {
  it('reuses the objects of an identical boot and gives identical results', async () => {
    const first = await prepareBoot({ image: REFERENCE, mode: 'boot', nic: 'virtq', sysctls: [] });
    const a = await execute(first, run);
    first.dispose();
    expect(a.boot.cache).toBe('miss');
    expect(entries()).toHaveLength(1);

    const second = await prepareBoot({ image: REFERENCE, mode: 'boot', nic: 'virtq', sysctls: [] });
    expect(second.compiled.cache).toBe('hit');
    /* a warm boot links the cached objects before it parses the image's IR */
    expect(second.image.parsed).toBe(false);
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
    expect(entries()).toHaveLength(3);
  });

  it('ignores a damaged entry and rebuilds it', async () => {
    for (const entry of entries()) writeFileSync(join(dir, entry, 'meta.json'), '{"objects": 2, "me');
    const p = await prepareBoot({ image: REFERENCE, mode: 'boot', nic: 'virtq', sysctls: [] });
    expect(p.compiled.cache).toBe('miss');
    const r = await execute(p, { ...run, counting: false });
    expect(r.ops).toBe(2000);
    p.dispose();
    const again = await prepareBoot({ image: REFERENCE, mode: 'boot', nic: 'virtq', sysctls: [] });
    expect(again.compiled.cache).toBe('hit'); /* rebuilt in place */
    again.dispose();
  });

  it('never links an object that changed since it was written', async () => {
    const p = await prepareBoot({ image: REFERENCE, mode: 'boot', nic: 'virtq', sysctls: [] });
    expect(p.compiled.cache).toBe('hit');
    p.dispose();
    /* the entry just used: reading an entry marks it recently used */
    const entry = entries().sort((a, b) => statSync(join(dir, b)).mtimeMs - statSync(join(dir, a)).mtimeMs)[0]!;
    const path = join(dir, entry, '1.o');
    const bytes = readFileSync(path);
    bytes[bytes.length >> 1] ^= 0xff; /* one flipped byte in the middle of the code */
    writeFileSync(path, bytes);
    const q = await prepareBoot({ image: REFERENCE, mode: 'boot', nic: 'virtq', sysctls: [] });
    expect(q.compiled.cache).toBe('miss');
    const r = await execute(q, { ...run, counting: false });
    expect(r.ops).toBe(2000);
    q.dispose();
  });

  it('is bypassed on request', async () => {
    const p = await prepareBoot({ image: REFERENCE, mode: 'boot', nic: 'virtq', sysctls: [], cache: false });
    expect(p.compiled.cache).toBe('off');
    p.dispose();
  });
});
