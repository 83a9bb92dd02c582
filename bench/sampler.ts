/**
 * @fileoverview `kjit bench sampler`: what always-on sampling costs.  The
 * reference kernel (boot mode) runs a workload at saturation with sampling
 * off and at about 1, 4 and 10 kHz, alternated in one process (round r
 * visits the rates in an order rotated by r, so drift in the machine's speed
 * hits every rate alike), `runs` runs each.  Per rate: the achieved rate
 * (timer expirations delivered per armed second), the median throughput,
 * and the overhead against sampling off: 1 - the ratio of medians, with a
 * bootstrap 95% interval.  The throttle is off here: each row measures the
 * rate it names.  Every run samples into its own ring and profile, drained
 * as in `kjit run`, so the cost of draining is in the numbers (on the
 * host's thread, not the kernel's).
 */

import { ExitCode, KjitError } from '../src/errors.js';
import { REFERENCE } from '../src/kernel/image.js';
import type { SampleClock } from '../src/kernel/instance.js';
import { execute, prepareBoot } from '../src/kernel/run.js';
import { ProgressLine } from '../src/cli/progress.js';
import { emitReport, machineEnv } from './env.js';
import { ratioOfMedians, spread } from './stats.js';

export interface BenchSamplerOptions {
  json: boolean;
  runs: number;
  seconds: number;
  workload: string;
  /** What makes the ticks (ir/runtime/sampler.c): the clock thread (default) or a timer on the kernel thread. */
  clock?: SampleClock;
  out?: string;
}

/** Requested rates: off, then odd rates near 1, 4 and 10 kHz. */
export const SAMPLER_BENCH_RATES = [0, 997, 3989, 9973] as const;

interface Row {
  hz: number;
  achieved_hz: number;
  ops_per_sec_median: number;
  /** 1 - ops/s ratio to sampling off (0.01 = 1%). */
  overhead: number;
  overhead_ci95: [number, number];
  ops_per_sec_runs: number[];
  achieved_hz_runs: number[];
  samples_median: number;
  dropped_total: number;
  cost_ns_per_sample_median: number;
  cpu_ns_per_op_median: number;
}

export async function benchSampler(o: BenchSamplerOptions): Promise<number> {
  /* on a terminal: what runs now, how far along, the time left (in seconds of runs: the warm-up, then every rate each round) */
  const warmS = Math.min(1, o.seconds);
  const progress = new ProgressLine('bench sampler', warmS + o.runs * SAMPLER_BENCH_RATES.length * o.seconds, process.stderr.isTTY === true && !o.json);
  const log = (s: string) => progress.log(s);
  const p = await prepareBoot({ image: REFERENCE, mode: 'boot', nic: 'virtq', sysctls: [] });
  try {
    if (!p.image.tables.workloads.includes(o.workload)) {
      throw new KjitError(`unknown workload '${o.workload}'`, `use one of: ${p.image.tables.workloads.join(', ')}`);
    }
    const clock: SampleClock = o.clock ?? 'thread';
    const base = { workload: o.workload, rate: 0, concurrency: 4, seed: 1n, counting: false, seconds: o.seconds, sampleMaxShare: null, sampleClock: clock };
    /* one unmeasured run first: code and caches warm for every rate alike */
    progress.start('warm-up run (not measured)');
    await execute(p, { ...base, seconds: warmS });
    progress.step(warmS);
    const runs = new Map<number, { ops: number[]; hz: number[]; samples: number[]; dropped: number; cost: number[]; cpu: number[] }>();
    for (const hz of SAMPLER_BENCH_RATES) runs.set(hz, { ops: [], hz: [], samples: [], dropped: 0, cost: [], cpu: [] });
    for (let round = 0; round < o.runs; round++) {
      const order = SAMPLER_BENCH_RATES.map((_, i) => SAMPLER_BENCH_RATES[(i + round) % SAMPLER_BENCH_RATES.length]!);
      for (const hz of order) {
        progress.start(`round ${round + 1}/${o.runs}: ${hz === 0 ? 'sampling off' : `sampling at ${hz} Hz`}`);
        const r = await execute(p, { ...base, sampleHz: hz });
        progress.step(o.seconds);
        const s = runs.get(hz)!;
        s.ops.push(r.ops_per_sec);
        s.cpu.push(r.cpu_ns_per_op);
        s.hz.push(r.profile?.achieved_hz ?? 0);
        s.samples.push(r.profile?.samples ?? 0);
        s.dropped += r.profile?.dropped ?? 0;
        s.cost.push(r.profile?.cost_ns_per_sample ?? 0);
      }
      log(`bench: round ${round + 1}/${o.runs} done`);
    }
    const off = runs.get(0)!.ops;
    const rows: Row[] = SAMPLER_BENCH_RATES.map((hz) => {
      const s = runs.get(hz)!;
      const ratio = hz === 0 ? { ratio: 1, ci95: [1, 1] as [number, number] } : ratioOfMedians(s.ops, off);
      return {
        hz,
        achieved_hz: spread(s.hz).median,
        ops_per_sec_median: spread(s.ops).median,
        overhead: 1 - ratio.ratio,
        /* the interval of 1 - ratio: its ends swap */
        overhead_ci95: [1 - ratio.ci95[1], 1 - ratio.ci95[0]],
        ops_per_sec_runs: s.ops,
        achieved_hz_runs: s.hz,
        samples_median: spread(s.samples).median,
        dropped_total: s.dropped,
        cost_ns_per_sample_median: spread(s.cost).median,
        cpu_ns_per_op_median: spread(s.cpu).median,
      };
    });
    const report = {
      format: 'kjit-bench-sampler/1',
      env: {
        ...machineEnv(),
        runs: o.runs,
        seconds_per_run: o.seconds,
        workload: o.workload,
        mode: 'boot',
        concurrency: base.concurrency,
        nic: 'virtio-net',
        seed: base.seed.toString(),
        throttle: 'off',
        clock,
      },
      suite: 'sampler',
      rows,
      overhead_at_1khz: rows.find((r) => r.hz === 997)!.overhead,
    };
    progress.finish();
    emitReport(report, o, () => formatTable(rows, o));
    return ExitCode.OK;
  } finally {
    progress.finish();
    p.dispose();
  }
}

function formatTable(rows: readonly Row[], o: BenchSamplerOptions): string {
  const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
  const lines = [
    `sampling cost, ${o.workload} (boot mode, closed loop, ${o.clock ?? 'thread'} clock), ${o.runs} alternated runs of ${o.seconds} s per rate`,
    `${'asked Hz'.padStart(9)} ${'achieved'.padStart(9)} ${'ops/s median'.padStart(13)} ${'overhead'.padStart(9)}  95% CI              ${'samples'.padStart(8)} ${'dropped'.padStart(8)} ${'ns/sample'.padStart(10)}`,
  ];
  for (const r of rows) {
    lines.push(
      `${String(r.hz).padStart(9)} ${r.achieved_hz.toFixed(0).padStart(9)} ${r.ops_per_sec_median.toFixed(0).padStart(13)} ${pct(r.overhead).padStart(9)}  ` +
        `[${pct(r.overhead_ci95[0])}, ${pct(r.overhead_ci95[1])}]`.padEnd(20) +
        ` ${r.samples_median.toFixed(0).padStart(8)} ${String(r.dropped_total).padStart(8)} ${r.cost_ns_per_sample_median.toFixed(0).padStart(10)}`,
    );
  }
  return `${lines.join('\n')}\n`;
}
