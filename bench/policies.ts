/**
 * @fileoverview `kjit bench policies`: the re-JIT policies side by side
 * (issue 8).  Per workload, fixed-length runs of `stock` and of the `pgo`
 * mode with each policy (built in: default, threshold, conservative; or a
 * PATH.js), alternated round by round, cold (no profile store).  Per run:
 * the peak (median of the last third of its 1-second windows, peakOf), the
 * time to 95% of it, and the JIT's CPU (compile server plus main-thread
 * linking: RunResult.scheduler.jit_cpu_ms).  Per policy and workload: the
 * ratio of median peaks vs stock with a bootstrap 95% interval.
 */
import { KjitError } from '../src/errors.js';
import { REFERENCE } from '../src/kernel/image.js';
import { execute, type PreparedBoot, prepareBoot } from '../src/kernel/run.js';
import { peakOf } from '../src/pgo/engine.js';
import { ProgressLine } from '../src/cli/progress.js';
import { loadPolicy, type NamedPolicy } from '../src/pgo/policies.js';
import { emitReport, machineEnv } from './env.js';
import { windowsOf } from './pgo.js';
import { ratioOfMedians, spread } from './stats.js';

export interface BenchPoliciesOptions {
  json: boolean;
  runs: number;
  seconds: number;
  workloads: string[];
  policies: string[];
  out?: string;
}

interface Sample {
  peak: number;
  timeTo95: number | null;
  jitCpuMs: number;
  compiles: number;
  kept: number;
}

export async function benchPolicies(o: BenchPoliciesOptions): Promise<number> {
  /* on a terminal: what runs now, how far along, the time left (in seconds of runs: stock and every policy, per workload and round) */
  const progress = new ProgressLine('bench policies', o.runs * o.workloads.length * (1 + o.policies.length) * o.seconds, process.stderr.isTTY === true && !o.json);
  const log = (s: string) => {
    if (!o.json) progress.log(s);
  };
  const policies: NamedPolicy[] = [];
  for (const spec of o.policies) policies.push(await loadPolicy(spec));
  const prepared: PreparedBoot[] = [];
  try {
    const stock = await prepareBoot({ image: REFERENCE, mode: 'stock', nic: 'virtq', sysctls: [] });
    prepared.push(stock);
    const pgo = await prepareBoot({ image: REFERENCE, mode: 'pgo', nic: 'virtq', sysctls: [] });
    prepared.push(pgo);
    for (const w of o.workloads) if (!stock.image.tables.workloads.includes(w)) throw new KjitError(`unknown workload '${w}'`, `use some of: ${stock.image.tables.workloads.join(', ')}`);
    const arms = ['stock', ...policies.map((p) => p.name)];
    const samples = new Map<string, Sample[]>();
    const key = (w: string, arm: string) => `${w}\u0000${arm}`;
    for (let round = 0; round < o.runs; round++) {
      for (const w of o.workloads) {
        const order = arms.map((_, i) => arms[(i + round) % arms.length]!);
        for (const arm of order) {
          const policy = policies.find((p) => p.name === arm);
          const points: { t: number; ops: number }[] = [];
          progress.start(`round ${round + 1}/${o.runs}: ${w} ${arm === 'stock' ? 'stock' : `pgo, policy ${arm}`}`);
          const r = await execute(arm === 'stock' ? stock : pgo, {
            workload: w,
            rate: 0,
            concurrency: 4,
            seed: 1n,
            counting: false,
            seconds: o.seconds,
            onProgress: (p) => points.push({ t: p.elapsedS, ops: p.ops }),
            ...(policy ? { policy } : {}),
          });
          progress.step(o.seconds);
          const { peak, timeTo95 } = peakOf(windowsOf(points));
          const s: Sample = { peak, timeTo95, jitCpuMs: r.scheduler.jit_cpu_ms, compiles: r.rejit.compiles ?? 0, kept: r.rejit.versions_kept ?? 0 };
          samples.set(key(w, arm), [...(samples.get(key(w, arm)) ?? []), s]);
          log(`policies: ${w} ${arm}: peak ${Math.round(peak)} ops/s${timeTo95 !== null ? `, 95% of peak at ${timeTo95.toFixed(1)} s` : ''}, JIT CPU ${Math.round(s.jitCpuMs)} ms, ${s.compiles} compiles, ${s.kept} versions kept`);
        }
      }
    }
    const rows = o.workloads.flatMap((w) => {
      const base = samples.get(key(w, 'stock'))!.map((s) => s.peak);
      return policies.map((p) => {
        const ss = samples.get(key(w, p.name))!;
        const ratio = ratioOfMedians(
          ss.map((s) => s.peak),
          base,
        );
        const t95 = ss.map((s) => s.timeTo95).filter((t): t is number => t !== null);
        return {
          workload: w,
          policy: p.name,
          peak_ops_per_sec_median: spread(ss.map((s) => s.peak)).median,
          stock_peak_ops_per_sec_median: spread(base).median,
          ratio_vs_stock: ratio.ratio,
          ratio_ci95: ratio.ci95,
          time_to_95pct_peak_s_median: t95.length ? spread(t95).median : null,
          time_to_95pct_peak_s: ss.map((s) => s.timeTo95),
          jit_cpu_ms_median: spread(ss.map((s) => s.jitCpuMs)).median,
          compiles_median: spread(ss.map((s) => s.compiles)).median,
          versions_kept_median: spread(ss.map((s) => s.kept)).median,
        };
      });
    });
    progress.finish();
    const report = { format: 1, env: machineEnv(), suite: 'policies', runs: o.runs, seconds: o.seconds, workloads: o.workloads, policies: policies.map((p) => p.name), rows };
    emitReport(report, o, () => {
      const lines = [`policies: ${o.runs} alternated run(s) of ${o.seconds} s per workload and arm (pgo mode, cold); peak = median of the last third's 1 s windows`];
      for (const r of rows) {
        lines.push(
          `  ${r.workload.padEnd(9)} ${r.policy.padEnd(13)} x${r.ratio_vs_stock.toFixed(3)} [${r.ratio_ci95[0].toFixed(3)}, ${r.ratio_ci95[1].toFixed(3)}] vs stock` +
            `  95% of peak at ${r.time_to_95pct_peak_s_median === null ? '-' : `${r.time_to_95pct_peak_s_median.toFixed(1)} s`}  JIT CPU ${Math.round(r.jit_cpu_ms_median)} ms  (${r.compiles_median} compiles, ${r.versions_kept_median} versions kept)`,
        );
      }
      lines.push('');
      return lines.join('\n');
    });
    return 0;
  } finally {
    progress.finish();
    for (const p of prepared) p.dispose();
  }
}
