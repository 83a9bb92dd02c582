// Boot tiers (issue 10): the tier policy; a tiered boot, eager and lazy,
// computes what a full -O2 boot computes, cold and from the cache; a lazy
// function first called while the main thread compiles something else; the
// cache key changes with every input; a damaged lazy source is recompiled.
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

import { cacheKeyFor, hostTarget, lazyStubsAsm } from '../dist/src/kernel/compile.js';
import { REFERENCE } from '../dist/src/kernel/image.js';
import { MODES } from '../dist/src/kernel/modes.js';
import { execute, prepareBoot } from '../dist/src/kernel/run.js';
import { DEFAULT_TIER_PARAMS, planFits, planTiers, type StoredUse } from '../dist/src/kernel/tiers.js';

const fn = (name: string, blocks = 10, pinned = false) => ({ name, blocks, pinned });
const use = (samples: number, entries = 0): StoredUse => ({ samples, entries });

describe('the tier policy', () => {
  const functions = [fn('kjit_rt', 5, true), fn('hot1', 100), fn('hot2', 50), fn('warm'), fn('cold'), fn('huge', 5000)];

  it('without a profile: everything fast, nothing lazy unless asked', () => {
    const plan = planTiers(functions, null);
    expect(plan.hot).toEqual([]);
    expect(plan.lazy).toEqual([]);
    expect(plan.fast).toHaveLength(functions.length);
    const all = planTiers(functions, null, { ...DEFAULT_TIER_PARAMS, lazy: 'all' });
    expect(all.lazy).toEqual(['hot1', 'hot2', 'warm', 'cold', 'huge']); /* never the pinned runtime */
    expect(all.fast).toEqual(['kjit_rt']);
  });

  it('with a profile: the hottest within the block budget optimized, what never ran lazy', () => {
    const profile = new Map([
      ['huge', use(900)],
      ['hot1', use(500)],
      ['hot2', use(300)],
      ['warm', use(0, 12)],
    ]);
    const plan = planTiers(functions, profile);
    expect(plan.hot).toEqual(['hot1', 'hot2']); /* hottest first; 'huge' is over the 1500-block budget */
    expect(plan.why).toContain('huge');
    expect(plan.lazy).toEqual(['cold']);
    expect(plan.fast).toEqual(['kjit_rt', 'warm', 'huge']);
    expect(planTiers(functions, profile, { ...DEFAULT_TIER_PARAMS, lazy: 'off' }).lazy).toEqual([]);
  });

  it('a cached plan serves a later profile unless something it left lazy ran, or the hot set moved', () => {
    const before = new Map([['hot1', use(500)], ['hot2', use(300)], ['warm', use(0, 12)]]);
    const cached = planTiers(functions, before);
    const plan = { candidates: functions, hot: cached.hot, lazy: cached.lazy };
    /* weights change, the same functions run: it fits */
    expect(planFits(plan, new Map([['hot1', use(700)], ['hot2', use(280)], ['warm', use(1, 20)]])).fits).toBe(true);
    /* a function it left for its first call has run since: it does not */
    const ran = planFits(plan, new Map([...before, ['cold', use(0, 1)]]));
    expect(ran).toMatchObject({ fits: false });
    expect(ran.why).toContain('cold');
    /* the hot set is another: it does not */
    expect(planFits(plan, new Map([['warm', use(900)], ['cold', use(800)], ['hot1', use(1)], ['hot2', use(1)]])).fits).toBe(false);
    /* no profile now: the cached plan is valid code */
    expect(planFits(plan, null).fits).toBe(true);
  });

  it('stubs are the patchable NOP, the slot and a jump to the trampoline', () => {
    const asm = lazyStubsAsm(['f', 'odd name']);
    expect(asm).toContain('f:\n  .byte 0x0f, 0x1f, 0x44, 0x00, 0x08\n  movl $0, %r11d\n  jmp kjit_lazy_trampoline');
    expect(asm).toContain('"odd name":');
    expect(asm).toContain('movl $1, %r11d');
  });
});

describe('a tiered boot of the reference kernel', () => {
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'kjit-tiers-'));
    process.env.KJIT_CACHE_DIR = dir;
  });
  const run = { workload: 'web', ops: 20_000n, rate: 0, concurrency: 4, seed: 5n, counting: false, sampleHz: 0 };
  let reference = '';

  it('gives the full -O2 boot checksum: eager, lazy, cold and from the cache', async () => {
    const full = await prepareBoot({ image: REFERENCE, mode: 'boot', nic: 'virtq', sysctls: [], cache: false });
    reference = (await execute(full, run)).checksum;
    full.dispose();

    const cold = await prepareBoot({ image: REFERENCE, mode: 'tiered', nic: 'virtq', sysctls: [], lazy: 'all' });
    expect(cold.compiled.cache).toBe('miss');
    const a = await execute(cold, run);
    cold.dispose();
    expect(a.checksum).toBe(reference);
    expect(a.boot.functions_lazy).toBeGreaterThan(50); /* (built while it booted, published at their first call) */
    const t = a.boot.tiers!;
    expect(a.boot.functions_eager + a.boot.functions_lazy + a.boot.functions_never).toBe(t.hot + t.fast + t.lazy);
    expect(a.boot.functions_eager).toBe(t.hot + t.fast);
    /* lazy first calls during boot: everything left built at once, published call by call */
    expect(a.boot.lazy!.units_built).toBeGreaterThanOrEqual(1);
    expect(a.boot.lazy!.first_calls_waited).toBeLessThanOrEqual(a.boot.functions_lazy);
    expect(a.boot.lazy!.built_never_called).toBeLessThanOrEqual(a.boot.functions_never);
    expect(a.boot.lazy!.wait_max_ms).toBeGreaterThan(0);

    const warm = await prepareBoot({ image: REFERENCE, mode: 'tiered', nic: 'virtq', sysctls: [], lazy: 'all' });
    expect(warm.compiled.cache).toBe('hit');
    expect(warm.image.parsed).toBe(false);
    const b = await execute(warm, run);
    warm.dispose();
    expect(b.checksum).toBe(reference);
    expect(b.boot.functions_lazy).toBe(a.boot.functions_lazy);

    const eager = await prepareBoot({ image: REFERENCE, mode: 'tiered', nic: 'virtq', sysctls: [], lazy: 'off', cache: false });
    const c = await execute(eager, run);
    eager.dispose();
    expect(c.checksum).toBe(reference);
    expect(c.boot.functions_lazy).toBe(0);
    expect(c.boot.functions_never).toBe(0);
  });

  it('serves a first call while the main thread compiles something else', async () => {
    const p = await prepareBoot({ image: REFERENCE, mode: 'tiered', nic: 'virtq', sysctls: [], lazy: 'all', cache: false });
    /* the kernel starts, and its first calls arrive while this thread is busy compiling another boot */
    const running = execute(p, run);
    const other = prepareBoot({ image: REFERENCE, mode: 'boot', nic: 'ring', sysctls: [], cache: false });
    const [r, q] = await Promise.all([running, other]);
    q.dispose();
    p.dispose();
    expect(r.checksum).toBe(reference);
    expect(r.boot.lazy!.units_built).toBeGreaterThan(0);
  });

  it('misses the cache when an input changes, and never uses a damaged lazy source', async () => {
    const p = await prepareBoot({ image: REFERENCE, mode: 'tiered', nic: 'virtq', sysctls: [], lazy: 'all' });
    expect(p.compiled.cache).toBe('hit');
    const tiers = { profile: null, params: { ...DEFAULT_TIER_PARAMS, lazy: 'all' as const }, roots: ['kernel_init', 'kernel_run'] };
    const key = (o: { target?: object; sysctl?: string; lazy?: 'off'; hash?: string }) =>
      cacheKeyFor(
        { ...p.image, hash: o.hash ?? p.image.hash } as typeof p.image,
        MODES.tiered!,
        o.sysctl ? { ...p.config, values: p.config.values.map((v) => (v.sysctl.name === o.sysctl ? { ...v, value: v.value + 1n } : v)) } : p.config,
        { ...hostTarget(), ...o.target },
        true,
        { ...tiers, params: { ...tiers.params, lazy: o.lazy ?? 'all' } },
      );
    const base = key({});
    expect(key({})).toBe(base);
    expect(key({ target: { features: `${hostTarget().features},-avx2` } })).not.toBe(base);
    expect(key({ sysctl: 'kernel.audit' })).not.toBe(base);
    expect(key({ lazy: 'off' })).not.toBe(base); /* the profile itself is checked against the cached plan (planFits) */
    expect(key({ hash: 'another image' })).not.toBe(base);
    p.dispose();

    /* the lazy source of the entry just used: one flipped byte and it is compiled again */
    const entry = readdirSync(dir)
      .filter((n) => /^[0-9a-f]{40}$/.test(n) && readdirSync(join(dir, n)).includes('lazy.bc'))
      .sort((a, b) => statSync(join(dir, b)).mtimeMs - statSync(join(dir, a)).mtimeMs)[0]!;
    const bc = readFileSync(join(dir, entry, 'lazy.bc'));
    bc[bc.length >> 1] ^= 0x40;
    writeFileSync(join(dir, entry, 'lazy.bc'), bc);
    const again = await prepareBoot({ image: REFERENCE, mode: 'tiered', nic: 'virtq', sysctls: [], lazy: 'all' });
    expect(again.compiled.cache).toBe('miss');
    const r = await execute(again, run);
    again.dispose();
    expect(r.checksum).toBe(reference);
  });
});
