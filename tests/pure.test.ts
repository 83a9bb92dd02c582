// Pure pieces, no native code: boot configuration decisions, the latency
// histogram's bucket bounds (mirror of kjit_lat_bucket in kjit_cb.h),
// benchmark statistics, the code map, patch specs.
import { describe, expect, it } from 'vitest';

import { parseBootParameters, resolveBootConfig } from '../dist/src/kernel/bootconfig.js';
import { bucketBounds, latencyFromHistogram } from '../dist/src/kernel/run.js';
import { parsePatchSpec } from '../dist/src/rejit/patch.js';
import { CodeMap, type CodeVersion } from '../dist/src/rejit/versions.js';
import { geomean, ratioOfMedians, spread } from '../dist/bench/stats.js';

const sysctl = (name: string, flags: bigint, def = 0n, min = -1n, max = 1n) => ({
  name,
  variable: `sysctl_${name.replace('.', '_')}`,
  defaultValue: def,
  min,
  max,
  flags,
  description: '',
});
const tables = {
  sysctls: [sysctl('net.nic_model', 1n | 2n | 4n, -1n), sysctl('cpu.copy', 1n | 2n | 4n, -1n, -1n, 2n), sysctl('kernel.audit', 1n), sysctl('kernel.trace', 0n)],
  alternatives: [
    { selector: 'sysctl_net_nic_model', value: 1n, kind: 1n, match: 0x1af41000n, impl: 'virtq_netdev_ops', name: 'virtq-net' },
    { selector: 'sysctl_net_nic_model', value: 0n, kind: 1n, match: 0x8086100en, impl: 'ring_netdev_ops', name: 'ring-e1000' },
    { selector: 'sysctl_cpu_copy', value: 2n, kind: 2n, match: 0b100n, impl: null, name: 'copy-avx2' },
    { selector: 'sysctl_cpu_copy', value: 0n, kind: 2n, match: 0n, impl: null, name: 'copy-generic' },
  ],
  workloads: ['web'],
  cpuFeatureFlags: ['sse4_2', 'popcnt', 'avx2'],
};

describe('boot configuration', () => {
  it('picks the first alternative the machine meets, and lists the absent devices', () => {
    const c = resolveBootConfig(tables, { cpuFeatureBits: 0b111n, deviceIds: [0x1af41000] });
    const v = Object.fromEntries(c.values.map((x) => [x.sysctl.name, x]));
    expect(v['net.nic_model']).toMatchObject({ value: 1n, source: 'probed', bootFixed: true, selector: true });
    expect(v['cpu.copy']!.value).toBe(2n);
    expect(v['kernel.trace']).toMatchObject({ value: 0n, bootFixed: false });
    expect(c.absentDevices.map((a) => a.name)).toEqual(['ring-e1000']);
    const noAvx = resolveBootConfig(tables, { cpuFeatureBits: 0b011n, deviceIds: [0x8086100e] });
    expect(noAvx.values.find((x) => x.sysctl.name === 'cpu.copy')!.value).toBe(0n);
    expect(noAvx.absentDevices.map((a) => a.name)).toEqual(['virtq-net']);
  });

  it('takes boot parameters and refuses unknown names, bad values and absent devices', () => {
    const params = parseBootParameters(['kernel.audit=1']);
    const c = resolveBootConfig(tables, { cpuFeatureBits: 0n, deviceIds: [0x1af41000] }, params);
    expect(c.values.find((x) => x.sysctl.name === 'kernel.audit')).toMatchObject({ value: 1n, source: 'boot parameter' });
    expect(() => parseBootParameters(['audit'])).toThrow(/malformed --sysctl 'audit'/);
    expect(() => resolveBootConfig(tables, { cpuFeatureBits: 0n, deviceIds: [] }, parseBootParameters(['kernel.nope=1']))).toThrow(
      /unknown sysctl 'kernel.nope'/,
    );
    expect(() => resolveBootConfig(tables, { cpuFeatureBits: 0n, deviceIds: [] }, parseBootParameters(['kernel.audit=5']))).toThrow(/out of range/);
    expect(() =>
      resolveBootConfig(tables, { cpuFeatureBits: 0n, deviceIds: [0x1af41000] }, parseBootParameters(['net.nic_model=0'])),
    ).toThrow(/a device this machine does not have/);
    expect(() => resolveBootConfig(tables, { cpuFeatureBits: 0n, deviceIds: [] })).toThrow(/no implementation of net.nic_model/);
  });
});

describe('latency histogram', () => {
  /* the C bucket function, transcribed, to check the bounds against */
  const bucketOf = (ns: number): number => {
    if (ns < 32) return 0;
    const msb = 31 - Math.clz32(ns);
    const sub = (ns >>> (msb - 4)) & 15;
    return Math.min(((msb - 5 + 1) << 4) + sub, 511);
  };

  it('bucket bounds contain exactly the values the runtime puts there', () => {
    for (const ns of [0, 31, 32, 33, 47, 48, 1000, 1023, 1024, 65_535, 1_000_000, 123_456_789]) {
      const [lo, hi] = bucketBounds(bucketOf(ns));
      expect(ns).toBeGreaterThanOrEqual(lo);
      expect(ns).toBeLessThan(hi);
    }
  });

  it('percentiles interpolate inside buckets and never exceed the maximum', () => {
    const hist = new BigUint64Array(512);
    hist[bucketOf(10_000)] = 990n;
    hist[bucketOf(500_000)] = 10n;
    const l = latencyFromHistogram(hist, 990n * 10_000n + 10n * 500_000n, 520_000n);
    expect(l.p50).toBeGreaterThanOrEqual(9.728);
    expect(l.p50).toBeLessThan(10.24);
    expect(l.p999).toBeGreaterThan(450);
    expect(l.p999).toBeLessThanOrEqual(520);
    expect(l.mean).toBeCloseTo(14.9, 1);
  });
});

describe('benchmark statistics', () => {
  it('ratio of medians with a bootstrap interval that contains it', () => {
    const a = [110, 112, 108, 111, 109];
    const b = [100, 101, 99, 100, 102];
    const r = ratioOfMedians(a, b);
    expect(r.ratio).toBeCloseTo(110 / 100, 6);
    expect(r.ci95[0]).toBeLessThanOrEqual(r.ratio);
    expect(r.ci95[1]).toBeGreaterThanOrEqual(r.ratio);
    expect(r.ci95[0]).toBeGreaterThan(1.0);
    expect(ratioOfMedians(a, b)).toEqual(r); /* seeded: recomputable */
    expect(geomean([1, 4])).toBeCloseTo(2, 9);
    expect(spread([3, 1, 2])).toEqual({ median: 2, min: 1, max: 3, n: 3 });
  });
});

describe('code map and patch specs', () => {
  const version = (id: number, address: bigint, size: number): CodeVersion => ({
    id,
    fn: 'f',
    kind: 'optimized',
    symbol: `f.kjit.v${id}`,
    address,
    size,
    inlines: [],
    state: 'live',
    reason: '',
    tracker: null,
    times: { compiledMs: 0 },
  });

  it('attributes an address to the newest version that covered it', () => {
    const map = new CodeMap();
    map.add(version(1, 0x1000n, 0x100));
    map.add(version(2, 0x2000n, 0x80));
    map.add(version(3, 0x1000n, 0x40)); /* reused after version 1 was freed */
    expect(map.find(0x1010n)?.id).toBe(3);
    expect(map.find(0x1080n)?.id).toBe(1);
    expect(map.find(0x2000n)?.id).toBe(2);
    expect(map.find(0x2080n)).toBeNull();
    expect(map.find(0xfffn)).toBeNull();
  });

  it('parses FUNCTION=FILE[@SECONDS]', () => {
    expect(parsePatchSpec('tcp_v4_rcv=fix.ll@2.5')).toEqual({ fn: 'tcp_v4_rcv', file: 'fix.ll', atSeconds: 2.5 });
    expect(parsePatchSpec('f=/tmp/a.bc')).toEqual({ fn: 'f', file: '/tmp/a.bc', atSeconds: 0 });
    expect(() => parsePatchSpec('fix.ll')).toThrow(/malformed --patch/);
  });
});
