/**
 * @fileoverview `kjit bench pgo`: online profile-guided re-JIT against the
 * static builds (DESIGN.md section 8).  Per workload, fixed-length runs of
 * `stock`, `boot`, `pgo` cold (no profile store), `pgo` warm (a store
 * filled by an earlier pgo run of the same workload, which is not
 * measured), `offline-pgo` (the two-stage clang PGO build trained on the
 * workload) and the ablations, alternated round by round (round r visits
 * the modes rotated by r), `runs` runs each.
 *
 * Every run's throughput is sampled 4 times a second; from its 1-second
 * windows come the **peak** (median over the last third of the run) and the
 * **time to 95% of peak** (the first moment after which every window stays
 * at or above 95% of it).  Ratios are of median peaks, with a bootstrap 95%
 * interval over runs; geomeans over workloads get theirs by resampling every
 * workload's runs together.  `phases` also reports, per phase change, the
 * dip (lowest window after it, relative to the window before) and the time
 * to recover to 95% of the window before.
 *
 * With `image` (`--image FILE --init SYM --entry SYM`) it measures a foreign
 * image instead of the reference kernel: by default `stock`, `boot` and
 * `pgo` cold (offline-pgo rebuilds the reference kernel's sources only).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { median, quantile, sampleWithReplacement } from 'simple-statistics';

import { KjitError } from '../src/errors.js';
import { type ImageSpec, REFERENCE } from '../src/kernel/image.js';
import { ABLATIONS, MODES, modeByName } from '../src/kernel/modes.js';
import { type ExecuteRequest, execute, type PreparedBoot, prepareBoot, type RunResult } from '../src/kernel/run.js';
import { peakOf, type TimelinePoint } from '../src/pgo/engine.js';
import { seededRandom } from '../src/random.js';
import type { BenchBootOptions } from './boot.js';
import { ProgressLine } from '../src/cli/progress.js';
import { emitReport, machineEnv } from './env.js';
import { geomean, ratioOfMedians, spread } from './stats.js';

/** The flags of `kjit bench boot`, and a foreign image to measure instead of the reference kernel. */
export type BenchPgoOptions = BenchBootOptions & { image?: ImageSpec };

/** The bench's rows: modes, plus pgo split into cold and warm. */
export const PGO_BENCH_MODES = ['stock', 'boot', 'pgo-cold', 'pgo-warm', 'offline-pgo', ...ABLATIONS] as const;
/** The default rows for a foreign image. */
export const PGO_BENCH_FOREIGN_MODES = ['stock', 'boot', 'pgo-cold'] as const;
/** Operations per phase for `phases`: a 60 s run crosses several. */
const PHASE_OPS = 2_000_000n;

interface RunSample {
  peak: number;
  timeTo95: number | null;
  opsPerSec: number;
  compileMs: number;
  checksumOk: boolean;
  timeline: TimelinePoint[];
}

interface Row {
  workload: string;
  mode: string;
  peak_ops_per_sec_median: number;
  ops_per_sec_median: number;
  runs: number[];
  ratio_vs_stock: number;
  ratio_ci95: [number, number];
  time_to_95pct_peak_s_median: number | null;
  compile_ms_median: number;
}

/** 1-second windows of a run from its progress samples (elapsed s, ops completed). */
export function windowsOf(points: readonly { t: number; ops: number }[]): TimelinePoint[] {
  const out: TimelinePoint[] = [];
  let last = { t: 0, ops: 0 };
  for (let s = 1; ; s++) {
    const p = points.find((x) => x.t >= s);
    if (!p) break;
    out.push({ t_s: p.t, ops_per_sec: (p.ops - last.ops) / (p.t - last.t) });
    last = p;
  }
  return out;
}

/** Per phase change of `phases`: how deep throughput dipped and how long it took to come back to 95% of before. */
export function phaseDips(timeline: readonly TimelinePoint[], opsPerPhase: number): { at_s: number; dip: number; recover_s: number | null }[] {
  const out: { at_s: number; dip: number; recover_s: number | null }[] = [];
  let ops = 0;
  let nextChange = opsPerPhase;
  for (let i = 0; i < timeline.length; i++) {
    const w = timeline[i]!;
    const prevT = i ? timeline[i - 1]!.t_s : 0;
    ops += w.ops_per_sec * (w.t_s - prevT);
    if (ops < nextChange || i === 0) continue;
    nextChange += opsPerPhase * Math.ceil((ops - nextChange + 1) / opsPerPhase);
    const before = timeline[i - 1]!.ops_per_sec;
    const after = timeline.slice(i, i + 10);
    const low = Math.min(...after.map((x) => x.ops_per_sec));
    const back = after.findIndex((x) => x.ops_per_sec >= 0.95 * before);
    out.push({ at_s: timeline[i - 1]!.t_s, dip: 1 - low / before, recover_s: back < 0 ? null : after[back]!.t_s - timeline[i - 1]!.t_s });
  }
  return out;
}

/** Geomean over workloads of the ratio of median peaks, with a bootstrap interval resampling every workload's runs. */
function geomeanRatio(byWorkload: { num: number[]; den: number[] }[], resamples = 2000): { ratio: number; ci95: [number, number] } {
  const point = geomean(byWorkload.map((w) => median(w.num) / median(w.den)));
  const random = seededRandom(0x70676f);
  const boots: number[] = [];
  for (let b = 0; b < resamples; b++) {
    boots.push(
      geomean(
        byWorkload.map((w) => median(sampleWithReplacement(w.num, w.num.length, random)) / median(sampleWithReplacement(w.den, w.den.length, random))),
      ),
    );
  }
  return { ratio: point, ci95: [quantile(boots, 0.025), quantile(boots, 0.975)] };
}

export async function benchPgo(o: BenchPgoOptions): Promise<number> {
  if (!(o.runs >= 1 && Number.isInteger(o.runs))) throw new KjitError(`--runs ${o.runs} is not a run count`, 'pass an integer >= 1 (5 or more for a report)');
  if (!(o.seconds >= 3)) throw new KjitError(`--seconds ${o.seconds} is too short for a peak`, 'pass at least 3 (60 for time to peak)');
  const image = o.image ?? REFERENCE;
  const modes = [...(o.modes ?? (o.image ? PGO_BENCH_FOREIGN_MODES : PGO_BENCH_MODES))];
  if (!modes.includes('stock')) modes.unshift('stock');
  for (const m of modes) if (m !== 'pgo-cold' && m !== 'pgo-warm') modeByName(m);
  /* on a terminal: what runs now, how far along, the time left (total set once the workloads are known) */
  const progress = new ProgressLine('bench pgo', 0, process.stderr.isTTY === true && !o.json);
  const log = (s: string) => progress.log(s);
  const compiledMode = (m: string) => (m.startsWith('pgo-') ? 'pgo' : m);
  const perWorkload = (m: string) => MODES[compiledMode(m)]?.offlinePgo === true;
  const prepared = new Map<string, PreparedBoot>();
  const dir = mkdtempSync(join(tmpdir(), 'kjit-bench-pgo-'));
  const argFor = (w: string) => (w === 'phases' ? { workloadArg: PHASE_OPS } : {});
  try {
    for (const m of new Set(modes.filter((x) => !perWorkload(x)).map(compiledMode))) {
      const t0 = performance.now();
      prepared.set(m, await prepareBoot({ image, mode: m, nic: 'virtq', sysctls: [] }));
      log(`bench pgo: compiled ${m} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
    const any = prepared.get('stock')!;
    const workloads = o.workloads ?? any.image.tables.workloads;
    for (const w of workloads) if (!any.image.tables.workloads.includes(w)) throw new KjitError(`unknown workload '${w}'`, `use some of: ${any.image.tables.workloads.join(', ')}`);
    for (const m of modes.filter(perWorkload)) {
      for (const w of workloads) prepared.set(`${m}\u0000${w}`, await prepareBoot({ image, mode: m, nic: 'virtq', sysctls: [], workload: w, ...argFor(w) }));
    }
    const preparedFor = (m: string, w: string) => prepared.get(perWorkload(m) ? `${m}\u0000${w}` : compiledMode(m))!;
    const base = { rate: 0, concurrency: 4, seed: 1n, counting: false };
    const store = (w: string) => join(dir, `${w}.db`);

    /* the checksum every mode must give for a fixed operation count (a foreign image's operations may be slow) */
    const checkOps = o.image ? 5_000n : 200_000n;
    const reference = new Map<string, string>();
    for (const w of workloads) reference.set(w, (await execute(any, { ...base, ...argFor(w), workload: w, ops: checkOps })).checksum);
    const checksumOk = async (m: string, w: string) => (await execute(preparedFor(m, w), { ...base, ...argFor(w), workload: w, ops: checkOps })).checksum === reference.get(w);

    const runOnce = async (m: string, w: string, extra: Partial<ExecuteRequest> = {}): Promise<RunSample> => {
      const points: { t: number; ops: number }[] = [];
      const r: RunResult = await execute(preparedFor(m, w), {
        ...base,
        ...argFor(w),
        workload: w,
        seconds: o.seconds,
        onProgress: (p) => points.push({ t: p.elapsedS, ops: p.ops }),
        ...(m === 'pgo-warm' ? { profileDb: store(w) } : {}),
        ...extra,
      });
      const timeline = windowsOf(points);
      const { peak, timeTo95 } = peakOf(timeline);
      return { peak, timeTo95, opsPerSec: r.ops_per_sec, compileMs: r.rejit.compile_ms_total ?? 0, checksumOk: true, timeline };
    };

    const total = o.runs * workloads.length * modes.length;
    progress.total = (total + (modes.includes('pgo-warm') ? workloads.length : 0)) * o.seconds;
    /* the warm store: one unmeasured pgo run per workload */
    if (modes.includes('pgo-warm')) {
      for (const w of workloads) {
        progress.start(`filling the warm store: ${w} pgo`);
        await execute(prepared.get('pgo')!, { ...base, ...argFor(w), workload: w, seconds: o.seconds, profileDb: store(w) });
        progress.step(o.seconds);
        log(`bench pgo: filled the warm store for ${w}`);
      }
    }

    const samples = new Map<string, RunSample[]>();
    const key = (w: string, m: string) => `${w}\u0000${m}`;
    let done = 0;
    for (let round = 0; round < o.runs; round++) {
      for (const w of workloads) {
        const order = modes.map((_, i) => modes[(i + round) % modes.length]!);
        for (const m of order) {
          progress.start(`run ${done + 1}/${total}: ${w} ${m}`);
          const s = await runOnce(m, w);
          progress.step(o.seconds);
          samples.set(key(w, m), [...(samples.get(key(w, m)) ?? []), s]);
          done++;
          log(`bench pgo: ${done}/${total} ${w} ${m}: peak ${Math.round(s.peak)} ops/s${s.timeTo95 !== null ? `, 95% of peak at ${s.timeTo95.toFixed(1)} s` : ''}`);
        }
      }
    }
    progress.start('checksums of every mode');
    /* checksums, after the timed runs: static modes at checkOps operations; the
     * pgo modes over as many operations as a timed run of boot completed, so
     * their tier is live for most of them, against boot over the same count */
    const checksums: Record<string, Record<string, boolean>> = {};
    for (const w of workloads) {
      checksums[w] = {};
      const bootRuns = samples.get(key(w, 'boot'))?.map((x) => x.opsPerSec);
      const long = BigInt(Math.max(10_000, Math.round(((bootRuns ? median(bootRuns) : 200_000) * o.seconds) / 10_000) * 10_000));
      let longRef: string | null = null;
      for (const m of modes) {
        if (!m.startsWith('pgo-')) {
          checksums[w][m] = await checksumOk(m, w);
          continue;
        }
        longRef ??= (await execute(any, { ...base, ...argFor(w), workload: w, ops: long })).checksum;
        const r = await execute(preparedFor(m, w), { ...base, ...argFor(w), workload: w, ops: long, ...(m === 'pgo-warm' ? { profileDb: store(w) } : {}) });
        checksums[w][m] = r.checksum === longRef;
        if (!r.rejit.tier?.live) log(`bench pgo: note: ${w} ${m}'s checksum run (${long} operations) ended before its tier went live`);
      }
    }

    progress.finish();
    const rows: Row[] = [];
    for (const w of workloads) {
      const stock = samples.get(key(w, 'stock'))!.map((s) => s.peak);
      for (const m of modes) {
        const ss = samples.get(key(w, m))!;
        const peaks = ss.map((s) => s.peak);
        const ratio = ratioOfMedians(peaks, stock);
        const t95 = ss.map((s) => s.timeTo95).filter((t): t is number => t !== null);
        rows.push({
          workload: w,
          mode: m,
          peak_ops_per_sec_median: spread(peaks).median,
          ops_per_sec_median: spread(ss.map((s) => s.opsPerSec)).median,
          runs: peaks,
          ratio_vs_stock: ratio.ratio,
          ratio_ci95: ratio.ci95,
          time_to_95pct_peak_s_median: t95.length ? spread(t95).median : null,
          compile_ms_median: spread(ss.map((s) => s.compileMs)).median,
        });
      }
    }
    const peaksOf = (w: string, m: string) => samples.get(key(w, m))!.map((s) => s.peak);
    const geo: Record<string, { ratio: number; ci95: [number, number] }> = {};
    for (const m of modes) geo[m.replace('-', '_')] = geomeanRatio(workloads.map((w) => ({ num: peaksOf(w, m), den: peaksOf(w, 'stock') })));
    const vsOffline =
      modes.includes('pgo-cold') && modes.includes('offline-pgo')
        ? {
            cold: geomeanRatio(workloads.map((w) => ({ num: peaksOf(w, 'pgo-cold'), den: peaksOf(w, 'offline-pgo') }))),
            ...(modes.includes('pgo-warm') ? { warm: geomeanRatio(workloads.map((w) => ({ num: peaksOf(w, 'pgo-warm'), den: peaksOf(w, 'offline-pgo') }))) } : {}),
          }
        : null;
    const phases = workloads.includes('phases')
      ? Object.fromEntries(modes.map((m) => [m, samples.get(key('phases', m))!.map((s) => phaseDips(s.timeline, Number(PHASE_OPS)))]))
      : null;
    const vsBoot = modes.includes('boot')
      ? Object.fromEntries(
          modes.filter((m) => m.startsWith('pgo-')).map((m) => [m.slice(4), geomeanRatio(workloads.map((w) => ({ num: peaksOf(w, m), den: peaksOf(w, 'boot') })))]),
        )
      : null;
    const report = {
      format: 1,
      env: machineEnv(),
      suite: 'pgo',
      ...(o.image ? { image: { path: o.image.path, init: o.image.init, entry: o.image.entry } } : {}),
      runs: o.runs,
      seconds: o.seconds,
      rows,
      geomean_ratio_vs_stock: geo,
      geomean_ratio_pgo_vs_offline_pgo: vsOffline,
      geomean_ratio_pgo_vs_boot: vsBoot,
      checksums_agree: Object.values(checksums).every((byMode) => Object.values(byMode).every(Boolean)),
      checksums,
      ...(phases ? { phases } : {}),
    };
    emitReport(report, o, () => {
      const lines = [`pgo${o.image ? ` (${o.image.path})` : ''}: ${o.runs} alternated runs of ${o.seconds} s per workload and mode; peak = median of the last third's 1 s windows`];
      for (const r of rows) {
        lines.push(
          `  ${r.workload.padEnd(9)} ${r.mode.padEnd(12)} peak ${Math.round(r.peak_ops_per_sec_median).toString().padStart(8)} ops/s  x${r.ratio_vs_stock.toFixed(3)} [${r.ratio_ci95[0].toFixed(3)}, ${r.ratio_ci95[1].toFixed(3)}]` +
            (r.time_to_95pct_peak_s_median !== null ? `  95% of peak at ${r.time_to_95pct_peak_s_median.toFixed(1)} s` : '') +
            (r.compile_ms_median ? `  compile ${r.compile_ms_median.toFixed(0)} ms` : ''),
        );
      }
      lines.push(`geomean vs stock: ${Object.entries(geo).map(([m, g]) => `${m} ${g.ratio.toFixed(3)} [${g.ci95[0].toFixed(3)}, ${g.ci95[1].toFixed(3)}]`).join(', ')}`);
      if (vsBoot) lines.push(`pgo vs boot: ${Object.entries(vsBoot).map(([k, g]) => `${k} ${g.ratio.toFixed(3)} [${g.ci95[0].toFixed(3)}, ${g.ci95[1].toFixed(3)}]`).join(', ')}`);
      if (vsOffline) lines.push(`pgo vs offline-pgo: ${Object.entries(vsOffline).map(([k, g]) => `${k} ${g.ratio.toFixed(3)} [${g.ci95[0].toFixed(3)}, ${g.ci95[1].toFixed(3)}]`).join(', ')}`);
      lines.push(`checksums: ${report.checksums_agree ? 'identical in every mode' : 'DIFFER'}`, '');
      return lines.join('\n');
    });
    return report.checksums_agree ? 0 : 1;
  } finally {
    progress.finish();
    for (const p of prepared.values()) p.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}
