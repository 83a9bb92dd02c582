/**
 * @fileoverview `kjit bench bootscale` (issue 10): how fast a tiered boot
 * reaches its first operation and its peak, on the reference kernel and on
 * a large foreign image (tree-sitter parsing C), against a full -O2 boot.
 *
 * Every run is a fresh `kjit run ... --json` process, so the time to the
 * first operation includes Node's own start-up (the clock starts when the
 * process does).  Per image, each round alternates:
 *   full-o2        mode boot, compiled-object cache off: the whole image at -O2
 *   full-o2-warm   mode boot, cache filled
 *   tiered-cold    mode tiered, cache emptied before the run
 *   tiered-warm    mode tiered, cache filled (by the cold run before it)
 * The tiered runs share one profile store per image, seeded by one
 * unmeasured tiered run first (a machine that has run this workload before;
 * with an empty store a tiered boot compiles everything with the fast tier
 * and nothing lazily).  Peak = median of the last third's 1 s windows (the
 * pgo engine's timeline; a boot-mode run has no warm-up, its peak is its
 * throughput); time to 95% of peak from the first operation.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { ProgressLine } from '../src/cli/progress.js';
import { ExitCode, KjitError } from '../src/errors.js';
import { TREE_SITTER_SPEC } from '../src/kernel/build-foreign.js';
import { ROOT } from '../src/paths.js';
import { emitReport, machineEnv } from './env.js';
import { spread } from './stats.js';

export interface BenchBootscaleOptions {
  runs: number;
  seconds: number;
  images: readonly string[];
  json: boolean;
  out?: string | undefined;
}

export const BOOTSCALE_IMAGES = ['kernel', 'tree-sitter'] as const;
const ARMS = ['full-o2', 'full-o2-warm', 'tiered-cold', 'tiered-warm'] as const;
type Arm = (typeof ARMS)[number];

interface RunOut {
  ms_to_first_op: number;
  peak: number;
  time_to_95_s: number | null;
  checksum: string;
  cache: string;
  functions_eager: number;
  functions_lazy: number;
  functions_never: number;
  lazy_wait_max_ms: number | null;
}

interface ImageArgs {
  name: string;
  args: string[];
  workload: string | null;
}

function imageArgs(name: string): ImageArgs {
  if (name === 'kernel') return { name, args: ['--workload', 'web'], workload: 'web' };
  if (name === 'tree-sitter') return { name, args: ['--image', TREE_SITTER_SPEC.path, '--init', TREE_SITTER_SPEC.init, '--entry', TREE_SITTER_SPEC.entry], workload: null };
  throw new KjitError(`unknown image '${name}'`, `use some of: ${BOOTSCALE_IMAGES.join(', ')}`);
}

function runOnce(img: ImageArgs, arm: Arm, seconds: number, env: { cache: string; db: string }, ops?: number): RunOut {
  const tiered = arm.startsWith('tiered');
  /* the tiered arms' cache is emptied before each cold run; the full -O2 arms keep theirs */
  const cache = join(env.cache, tiered ? 'tiered' : 'full');
  const args = [
    join(ROOT, 'bin', 'kjit.js'),
    'run',
    ...img.args,
    '--mode',
    tiered ? 'tiered' : 'boot',
    ...(ops !== undefined ? ['--ops', String(ops)] : ['--seconds', String(seconds)]),
    '--no-count',
    '--json',
    ...(arm === 'full-o2' ? ['--no-cache'] : []),
    ...(tiered ? ['--profile-db', env.db] : ['--no-profile-db']),
  ];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', env: { ...process.env, KJIT_CACHE_DIR: cache }, maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new KjitError(`kjit run (${img.name}, ${arm}) failed: ${r.stderr.trim().split('\n').slice(-3).join(' ')}`, 'fix the run first (run it by hand with the same flags)', ExitCode.FAILURE);
  const j = JSON.parse(r.stdout) as {
    ops_per_sec: number;
    checksum: string;
    boot: { ms_to_first_op: number; cache: string; functions_eager: number; functions_lazy: number; functions_never: number; lazy?: { wait_max_ms: number } };
    rejit?: { peak_ops_per_sec?: number; time_to_95pct_peak_s?: number | null };
  };
  const peak = j.rejit?.peak_ops_per_sec ?? j.ops_per_sec;
  return {
    ms_to_first_op: j.boot.ms_to_first_op,
    peak,
    time_to_95_s: j.rejit?.peak_ops_per_sec !== undefined ? (j.rejit.time_to_95pct_peak_s ?? null) : 0,
    checksum: j.checksum,
    cache: j.boot.cache,
    functions_eager: j.boot.functions_eager,
    functions_lazy: j.boot.functions_lazy,
    functions_never: j.boot.functions_never,
    lazy_wait_max_ms: j.boot.lazy?.wait_max_ms ?? null,
  };
}

/** Operations per checksum run: the same count in every arm, so the checksums must agree. */
const CHECK_OPS: Record<string, number> = { kernel: 20000, 'tree-sitter': 300 };

export async function benchBootscale(o: BenchBootscaleOptions): Promise<number> {
  if (!(o.runs >= 1 && Number.isInteger(o.runs))) throw new KjitError(`--runs ${o.runs} is not a run count`, 'pass an integer >= 1 (5 or more for a report)');
  if (!(o.seconds >= 5)) throw new KjitError(`--seconds ${o.seconds} is too short to reach a peak`, 'pass at least 5 (20 or more for the large image)');
  const images = o.images.map(imageArgs);
  const progress = new ProgressLine('bench bootscale', 0, process.stderr.isTTY === true && !o.json);
  const log = (s: string) => {
    if (!o.json) progress.log(s);
  };
  const root = mkdtempSync(join(tmpdir(), 'kjit-bench-bootscale-'));
  try {
    /* per image: the seeding runs and the checksum runs, then runs x arms timed runs */
    progress.total = images.length * (2 * o.seconds + ARMS.length * 2 + o.runs * ARMS.length * (o.seconds + 2));
    const rows: { image: string; workload: string | null; checksums: { ops: number | undefined; agree: boolean; by_arm: Record<string, string> }; arms: Record<string, unknown> }[] = [];
    for (const img of images) {
      const env = { cache: join(root, `${img.name}-cache`), db: join(root, `${img.name}.db`) };
      progress.start(`${img.name}: seeding the profile store and the cache`);
      runOnce(img, 'tiered-cold', o.seconds, env);
      runOnce(img, 'full-o2-warm', 2, env);
      progress.step(2 * o.seconds);
      /* checksums: a fixed number of operations in every arm */
      const checksums: Record<string, string> = {};
      for (const arm of ARMS) {
        progress.start(`${img.name}: checksum, ${arm}`);
        if (arm === 'tiered-cold') rmSync(join(env.cache, 'tiered'), { recursive: true, force: true });
        checksums[arm] = runOnce(img, arm, o.seconds, env, CHECK_OPS[img.name]).checksum;
        progress.step(2);
      }
      const agree = new Set(Object.values(checksums)).size === 1;
      const runs: Record<Arm, RunOut[]> = { 'full-o2': [], 'full-o2-warm': [], 'tiered-cold': [], 'tiered-warm': [] };
      for (let r = 0; r < o.runs; r++) {
        for (const arm of ARMS) {
          progress.start(`${img.name}: round ${r + 1}/${o.runs}, ${arm}`);
          if (arm === 'tiered-cold') rmSync(join(env.cache, 'tiered'), { recursive: true, force: true });
          const out = runOnce(img, arm, o.seconds, env);
          runs[arm].push(out);
          log(
            `bootscale: ${img.name} ${arm}: first op ${out.ms_to_first_op.toFixed(0)} ms (cache ${out.cache}), peak ${out.peak.toFixed(0)} ops/s` +
              `${out.time_to_95_s !== null ? `, 95% at ${out.time_to_95_s.toFixed(1)} s` : ''}; functions eager ${out.functions_eager}, lazy ${out.functions_lazy}, never ${out.functions_never}`,
          );
          progress.step(o.seconds + 2);
        }
      }
      const full = spread(runs['full-o2'].map((x) => x.peak)).median;
      const arms = Object.fromEntries(
        ARMS.map((arm) => {
          const xs = runs[arm];
          const t95 = xs.map((x) => x.time_to_95_s).filter((t): t is number => t !== null);
          const peak = spread(xs.map((x) => x.peak)).median;
          return [
            arm,
            {
              ms_to_first_op_median: spread(xs.map((x) => x.ms_to_first_op)).median,
              ms_to_first_op_runs: xs.map((x) => x.ms_to_first_op),
              peak_ops_per_sec_median: peak,
              peak_vs_full_o2: peak / full,
              time_to_95pct_peak_s_median: t95.length ? spread(t95).median : null,
              cache: xs.map((x) => x.cache),
              functions_eager: xs.at(-1)!.functions_eager,
              functions_lazy: xs.at(-1)!.functions_lazy,
              functions_never: xs.at(-1)!.functions_never,
              lazy_wait_max_ms: xs.some((x) => x.lazy_wait_max_ms !== null) ? Math.max(...xs.map((x) => x.lazy_wait_max_ms ?? 0)) : null,
            },
          ];
        }),
      );
      rows.push({ image: img.name, workload: img.workload, checksums: { ops: CHECK_OPS[img.name], agree, by_arm: checksums }, arms });
    }
    progress.finish();
    const report = { format: 'kjit-bench-bootscale/1', env: { ...machineEnv(), runs: o.runs, seconds_per_run: o.seconds }, suite: 'bootscale', rows };
    emitReport(report, o, () => {
      const lines = [`bootscale: ${o.runs} alternated runs of ${o.seconds} s per image and arm, fresh processes (first op from process start)`];
      for (const row of rows) {
        lines.push(`${row.image}${row.workload ? ` (${row.workload})` : ''}: checksums ${row.checksums.agree ? 'agree' : 'DIFFER'}`);
        for (const arm of ARMS) {
          const a = row.arms[arm] as { ms_to_first_op_median: number; peak_ops_per_sec_median: number; peak_vs_full_o2: number; time_to_95pct_peak_s_median: number | null; functions_eager: number; functions_lazy: number; functions_never: number };
          lines.push(
            `  ${arm.padEnd(13)} first op ${a.ms_to_first_op_median.toFixed(0).padStart(5)} ms  peak ${a.peak_ops_per_sec_median.toFixed(0).padStart(7)} ops/s (${a.peak_vs_full_o2.toFixed(3)}x full -O2)` +
              `${a.time_to_95pct_peak_s_median !== null ? `  95% at ${a.time_to_95pct_peak_s_median.toFixed(1)} s` : ''}  eager/lazy/never ${a.functions_eager}/${a.functions_lazy}/${a.functions_never}`,
          );
        }
      }
      return `${lines.join('\n')}\n`;
    });
    return rows.every((r) => r.checksums.agree) ? ExitCode.OK : ExitCode.FAILURE;
  } finally {
    progress.finish();
    rmSync(root, { recursive: true, force: true });
  }
}
