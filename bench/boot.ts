/**
 * @fileoverview `kjit bench boot`: saturation throughput of every workload
 * in `stock`, `boot` and the ablation modes (DESIGN.md section 8), measured
 * side by side in one process.  Each mode is compiled once; every run boots
 * a fresh kernel from those objects.  Runs are alternated (round r visits
 * the modes in an order rotated by r) so drift in the machine's speed hits
 * every mode alike.  Ratios are ratios of medians with a bootstrap 95%
 * interval.  Also measured: that every mode gives the same checksum for the
 * same operation count, and boot-to-first-operation of `kjit run` in a fresh
 * process.  `--modes ...,offline-pgo` adds the two-stage clang PGO build,
 * prepared once per workload (each trains on its own workload).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

import { ExitCode, KjitError } from '../src/errors.js';
import { REFERENCE } from '../src/kernel/image.js';
import { ABLATIONS, MODES, modeByName, RUN_MODES } from '../src/kernel/modes.js';
import { execute, type PreparedBoot, prepareBoot } from '../src/kernel/run.js';
import { ROOT } from '../src/paths.js';
import { ProgressLine } from '../src/cli/progress.js';
import { emitReport, machineEnv } from './env.js';
import { geomean, ratioOfMedians, spread } from './stats.js';

export interface BenchBootOptions {
  json: boolean;
  runs: number;
  seconds: number;
  workloads?: string[];
  modes?: string[];
  out?: string;
}

interface Row {
  workload: string;
  mode: string;
  ops_per_sec_median: number;
  ops_per_sec_min: number;
  ops_per_sec_max: number;
  runs: number[];
  ratio_vs_stock: number;
  ratio_ci95: [number, number];
  cpu_ns_per_op_median: number;
}

const CHECKSUM_OPS = 5000n;
/** Operations per phase for `phases`, so a 1 s run crosses several phases. */
const PHASE_OPS = 20000n;

/** `kjit run --ops 1` in fresh processes: boot to first operation from process start. */
function measureBootToFirstOp(mode: string, runs: number, cache: boolean): number[] {
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const args = [join(ROOT, 'bin', 'kjit.js'), 'run', '--mode', mode, '--ops', '1', '--no-count', '--no-profile-db', '--json', ...(cache ? [] : ['--no-cache'])];
    const r = spawnSync(process.execPath, args, { encoding: 'utf8' });
    if (r.status !== 0) throw new KjitError(`kjit run failed while measuring boot time: ${r.stderr.trim()}`, 'fix the run first', ExitCode.FAILURE);
    out.push((JSON.parse(r.stdout) as { boot: { ms: number } }).boot.ms);
  }
  return out;
}

export async function benchBoot(opts: BenchBootOptions): Promise<number> {
  if (!(opts.runs >= 1 && Number.isInteger(opts.runs))) throw new KjitError(`--runs ${opts.runs} is not a run count`, 'pass an integer >= 1 (5 or more for a report)');
  if (!(opts.seconds > 0)) throw new KjitError(`--seconds ${opts.seconds} is not a duration`, 'pass seconds per run, e.g. --seconds 1');
  /* offline-pgo is not in the default list: it builds and trains once per
   * workload (cached), and is the baseline of `kjit bench pgo`; ask for it with --modes */
  const modes = opts.modes ?? [...RUN_MODES, ...ABLATIONS];
  if (!modes.includes('stock')) modes.unshift('stock');
  for (const mode of modes) modeByName(mode);
  /* on a terminal: what runs now, how far along, the time left (in seconds of runs, set once the workloads are known) */
  const progress = new ProgressLine('bench boot', 0, process.stderr.isTTY === true && !opts.json);
  const log = (s: string) => progress.log(s);
  const argFor = (w: string) => (w === 'phases' ? { workloadArg: PHASE_OPS } : {});

  /* one compiled image per mode; per mode and workload for offline-pgo, whose profile is the workload's */
  const prepared = new Map<string, PreparedBoot>();
  const perWorkload = (mode: string) => MODES[mode]?.offlinePgo === true;
  const slot = (mode: string, w: string) => (perWorkload(mode) ? `${mode}\u0000${w}` : mode);
  const preparedFor = (mode: string, w: string) => prepared.get(slot(mode, w))!;
  try {
    const prepare = async (mode: string, w?: string) => {
      const t0 = performance.now();
      const training = w === undefined ? {} : { workload: w, ...argFor(w) };
      prepared.set(w === undefined ? mode : slot(mode, w), await prepareBoot({ image: REFERENCE, mode, nic: 'virtq', sysctls: [], ...training }));
      log(`bench: compiled ${mode}${w === undefined ? '' : ` (trained on ${w})`} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    };
    for (const mode of modes) if (!perWorkload(mode)) await prepare(mode);
    const any = prepared.get('stock')!;
    const workloads = opts.workloads ?? any.image.tables.workloads;
    for (const w of workloads) {
      if (!any.image.tables.workloads.includes(w)) {
        throw new KjitError(`unknown workload '${w}'`, `use some of: ${any.image.tables.workloads.join(', ')}`);
      }
    }
    for (const mode of modes) if (perWorkload(mode)) for (const w of workloads) await prepare(mode, w);
    const base = { rate: 0, concurrency: 4, seed: 1n, counting: false };
    /* a checksum run and a boot-time measurement count as about half a second each */
    const nBoot = Math.max(3, Math.min(opts.runs, 5));
    progress.total = workloads.length * modes.length * (0.5 + opts.runs * opts.seconds) + 2 * nBoot * 0.5;

    /* 1. correctness: equal checksums for a fixed operation count */
    const checksums: Record<string, Record<string, string>> = {};
    for (const w of workloads) {
      checksums[w] = {};
      for (const mode of modes) {
        progress.start(`checksum: ${w} ${mode}`);
        const r = await execute(preparedFor(mode, w), { ...base, ...argFor(w), workload: w, ops: CHECKSUM_OPS });
        progress.step(0.5);
        checksums[w][mode] = r.checksum;
      }
    }
    const checksumsAgree = Object.values(checksums).every((byMode) => new Set(Object.values(byMode)).size === 1);
    log(`bench: checksums for ${CHECKSUM_OPS} ops ${checksumsAgree ? 'agree in every mode' : 'DIFFER between modes'}`);

    /* 2. throughput, alternated */
    const samples = new Map<string, { ops: number[]; cpu: number[] }>();
    const key = (w: string, m: string) => `${w}\u0000${m}`;
    for (let round = 0; round < opts.runs; round++) {
      for (const w of workloads) {
        const order = modes.map((_, i) => modes[(i + round) % modes.length]!);
        for (const mode of order) {
          progress.start(`round ${round + 1}/${opts.runs}: ${w} ${mode}`);
          const r = await execute(preparedFor(mode, w), { ...base, ...argFor(w), workload: w, seconds: opts.seconds });
          progress.step(opts.seconds);
          const s = samples.get(key(w, mode)) ?? { ops: [], cpu: [] };
          s.ops.push(r.ops_per_sec);
          s.cpu.push(r.cpu_ns_per_op);
          samples.set(key(w, mode), s);
        }
      }
      log(`bench: round ${round + 1}/${opts.runs} done`);
    }

    const rows: Row[] = [];
    for (const w of workloads) {
      const stock = samples.get(key(w, 'stock'))!;
      for (const mode of modes) {
        const s = samples.get(key(w, mode))!;
        const sp = spread(s.ops);
        const ratio = ratioOfMedians(s.ops, stock.ops);
        rows.push({
          workload: w,
          mode,
          ops_per_sec_median: sp.median,
          ops_per_sec_min: sp.min,
          ops_per_sec_max: sp.max,
          runs: s.ops,
          ratio_vs_stock: ratio.ratio,
          ratio_ci95: ratio.ci95,
          cpu_ns_per_op_median: spread(s.cpu).median,
        });
      }
    }
    const geo: Record<string, number> = {};
    for (const mode of modes) geo[mode] = geomean(rows.filter((r) => r.mode === mode).map((r) => r.ratio_vs_stock));

    /* 3. boot to first operation, fresh process each time */
    /* cold: compiling; warm: the compiled-object cache has this boot (the runs above filled it) */
    progress.start('boot to first operation, in fresh processes');
    const coldRuns = measureBootToFirstOp('boot', nBoot, false);
    const warmRuns = measureBootToFirstOp('boot', nBoot, true);
    progress.finish();

    const report = {
      format: 'kjit-bench-boot/1',
      env: {
        ...machineEnv(),
        runs: opts.runs,
        seconds_per_run: opts.seconds,
        concurrency: base.concurrency,
        nic: 'virtio-net',
        seed: base.seed.toString(),
        checksum_ops: Number(CHECKSUM_OPS),
      },
      suite: 'boot',
      rows,
      geomean_ratio_vs_stock: geo,
      checksums: { ops: Number(CHECKSUM_OPS), agree: checksumsAgree, by_workload: checksums },
      boot_to_first_op_ms: {
        mode: 'boot',
        compiled: { median: spread(coldRuns).median, runs: coldRuns },
        cached: { median: spread(warmRuns).median, runs: warmRuns },
      },
      modes: Object.fromEntries(modes.map((m) => [m, MODES[m]!.summary])),
    };
    emitReport(report, opts, () => formatTable(report.rows, geo, report.boot_to_first_op_ms, checksumsAgree));
    return checksumsAgree ? ExitCode.OK : ExitCode.FAILURE;
  } finally {
    progress.finish();
    for (const p of prepared.values()) p.dispose();
  }
}

function formatTable(
  rows: Row[],
  geo: Record<string, number>,
  boot: { compiled: { median: number }; cached: { median: number } },
  agree: boolean,
): string {
  const lines = [
    `${'workload'.padEnd(10)} ${'mode'.padEnd(12)} ${'ops/s median'.padStart(13)} ${'min'.padStart(10)} ${'max'.padStart(10)} ${'vs stock'.padStart(9)}  95% CI`,
  ];
  for (const r of rows) {
    lines.push(
      `${r.workload.padEnd(10)} ${r.mode.padEnd(12)} ${r.ops_per_sec_median.toFixed(0).padStart(13)} ${r.ops_per_sec_min.toFixed(0).padStart(10)} ` +
        `${r.ops_per_sec_max.toFixed(0).padStart(10)} ${r.ratio_vs_stock.toFixed(3).padStart(9)}  [${r.ratio_ci95[0].toFixed(3)}, ${r.ratio_ci95[1].toFixed(3)}]`,
    );
  }
  lines.push('', 'geomean vs stock: ' + Object.entries(geo).map(([m, g]) => `${m} ${g.toFixed(3)}`).join(', '));
  lines.push(
    `boot to first operation (kjit run, boot mode, median): ${boot.compiled.median.toFixed(0)} ms compiling, ${boot.cached.median.toFixed(0)} ms from the object cache`,
  );
  lines.push(`checksums: ${agree ? 'equal in every mode' : 'DIFFER between modes (a correctness bug)'}`);
  return `${lines.join('\n')}\n`;
}
