/**
 * @fileoverview `kjit bench install`: what the install mechanism costs.
 *   (a) baseline cost: boot with and without patchable entries, saturation
 *       throughput, alternated runs, ratio of medians with a bootstrap CI;
 *   (b) request latency (open loop, from scheduled arrival) with no installs
 *       vs while one hot function is redirected back and forth continuously:
 *       separate runs of each kind, and (the primary estimate) installing and
 *       quiet 100 ms windows alternated within runs;
 *   (c) install latency (a compiled version, request to live) and grace
 *       period length (revert to freed) distributions.
 */

import { ExitCode, KjitError } from '../src/errors.js';
import { REFERENCE } from '../src/kernel/image.js';
import { KernelInstance } from '../src/kernel/instance.js';
import { execute, instanceOptions, latencyFromHistogram, prepareBoot, type PreparedBoot } from '../src/kernel/run.js';
import { Installer } from '../src/rejit/installer.js';
import type { CodeVersion } from '../src/rejit/versions.js';
import { ProgressLine } from '../src/cli/progress.js';
import { emitReport, machineEnv } from './env.js';
import { bootstrapRatio, ratioOfMedians, spread } from './stats.js';

/** A tail quantile of every request of a set of runs (their histograms summed). */
function pooled(histograms: readonly BigUint64Array[], q: 'p99' | 'p999'): number {
  const sum = new BigUint64Array(histograms[0]!.length);
  for (const h of histograms) h.forEach((c, i) => (sum[i] += c));
  return latencyFromHistogram(sum, 0n, BigInt(Number.MAX_SAFE_INTEGER))[q];
}

export interface BenchInstallOptions {
  json: boolean;
  runs: number;
  seconds: number;
  workload: string;
  fn: string;
  /** Pause between install cycles (0: back to back). */
  installGapMs: number;
  out?: string;
}

function quantiles(xs: number[]): { p50: number; p99: number; p999: number; max: number; n: number } {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return { p50: q(0.5), p99: q(0.99), p999: q(0.999), max: s[s.length - 1]!, n: s.length };
}

/** One install cycle of a function: one version live, the other, then its own code again. */
async function installCycle(installer: Installer, v1: CodeVersion, v2: CodeVersion): Promise<void> {
  await installer.activate(v1);
  await new Promise((r) => setImmediate(r));
  await installer.activate(v2);
  await new Promise((r) => setImmediate(r));
  await installer.revert(v1.fn);
}

/** One open-loop run; with `installs`, the function is redirected continuously meanwhile. */
async function latencyRun(p: PreparedBoot, o: BenchInstallOptions, rate: number, installs: boolean) {
  const { opts } = instanceOptions(p, { workload: o.workload, rate, concurrency: 4, seed: 1n, counting: false });
  const instance = KernelInstance.load(p.compiled.objects, opts);
  const installer = new Installer(instance, p);
  let cycles = 0;
  try {
    const v1 = await installer.compile(o.fn, 'optimized');
    const v2 = await installer.compile(o.fn, 'optimized');
    instance.start();
    while (instance.cb.get('ops_done') === 0n) await new Promise((r) => setTimeout(r, 1)); /* booted */
    const t0 = performance.now();
    while (performance.now() - t0 < o.seconds * 1000) {
      if (installs) {
        await installCycle(installer, v1, v2);
        cycles++;
      }
      await new Promise((r) => setTimeout(r, installs ? o.installGapMs : 20));
    }
    instance.requestStop();
    await instance.join();
    instance.checkHealthy('during the install benchmark');
    const cb = instance.cb;
    return {
      latency: latencyFromHistogram(cb.array('lat_hist'), cb.get('lat_sum_ns'), cb.get('lat_max_ns')),
      histogram: BigUint64Array.from(cb.array('lat_hist')),
      cycles,
      traps: Number(cb.get('patch_traps')),
      hostPokes: installer.summary().pokes.host,
    };
  } finally {
    await instance.dispose();
  }
}

/**
 * Installing and quiet windows alternated inside one run: the latency
 * histogram is read at every window's end, and the requests completed in a
 * window count for its kind.  VM noise (a descheduled vCPU) lands on both
 * kinds alike, where separate runs would give it to one.
 */
async function windowedRun(p: PreparedBoot, o: BenchInstallOptions, rate: number, windowMs: number) {
  const { opts } = instanceOptions(p, { workload: o.workload, rate, concurrency: 4, seed: 1n, counting: false });
  const instance = KernelInstance.load(p.compiled.objects, opts);
  const installer = new Installer(instance, p);
  const windows: { installing: boolean; histogram: BigUint64Array }[] = [];
  try {
    const v1 = await installer.compile(o.fn, 'optimized');
    const v2 = await installer.compile(o.fn, 'optimized');
    instance.start();
    while (instance.cb.get('ops_done') === 0n) await new Promise((r) => setTimeout(r, 1));
    const hist = instance.cb.array('lat_hist');
    let last = BigUint64Array.from(hist);
    const t0 = performance.now();
    for (let w = 0; performance.now() - t0 < o.seconds * 1000; w++) {
      const installing = w % 2 === 1;
      const end = performance.now() + windowMs;
      while (performance.now() < end) {
        if (installing) {
          await installCycle(installer, v1, v2);
          await new Promise((r) => setTimeout(r, o.installGapMs));
        } else {
          await new Promise((r) => setTimeout(r, Math.max(1, end - performance.now())));
        }
      }
      const now = BigUint64Array.from(hist);
      windows.push({ installing, histogram: now.map((c, i) => c - last[i]!) });
      last = now;
    }
    instance.requestStop();
    await instance.join();
    instance.checkHealthy('during the install benchmark');
    return windows;
  } finally {
    await instance.dispose();
  }
}

export async function benchInstall(o: BenchInstallOptions): Promise<number> {
  if (!(o.runs >= 1)) throw new KjitError(`--runs ${o.runs} is not a run count`, 'pass an integer >= 1');
  /* on a terminal: what runs now, how far along, the time left (in seconds of runs: five runs of o.seconds a round, and (c): 40 compiles, about 3 s) */
  const progress = new ProgressLine('bench install', o.runs * 5 * o.seconds + 3, process.stderr.isTTY === true && !o.json);
  const log = (s: string) => progress.log(s);
  const plain = await prepareBoot({ image: REFERENCE, mode: 'boot', nic: 'virtq', sysctls: [] });
  const patchable = await prepareBoot({ image: REFERENCE, mode: 'boot', nic: 'virtq', sysctls: [], patchable: true });
  try {
    if (!patchable.compiled.optimized.getFunction(o.fn)) throw new KjitError(`no function '${o.fn}' in the boot image`, 'pass --function NAME of a kernel function');
    /* (a) baseline cost */
    const tput: Record<'plain' | 'patchable', number[]> = { plain: [], patchable: [] };
    for (let r = 0; r < o.runs; r++) {
      for (const k of r % 2 ? (['plain', 'patchable'] as const) : (['patchable', 'plain'] as const)) {
        progress.start(`baseline round ${r + 1}/${o.runs}: ${k}`);
        const res = await execute(k === 'plain' ? plain : patchable, { workload: o.workload, seconds: o.seconds, rate: 0, concurrency: 4, seed: 1n, counting: false });
        progress.step(o.seconds);
        tput[k].push(res.ops_per_sec);
      }
      log(`bench install: baseline round ${r + 1}/${o.runs}`);
    }
    const cost = ratioOfMedians(tput.patchable, tput.plain);

    /* (b) latency at half of saturation, without and with continuous installs */
    const rate = Math.round(spread(tput.patchable).median / 2);
    const quiet: number[] = [];
    const busy: number[] = [];
    const quietP99: number[] = [];
    const busyP99: number[] = [];
    const quietHist: BigUint64Array[] = [];
    const busyHist: BigUint64Array[] = [];
    let cycles = 0;
    let traps = 0;
    let hostPokes = 0;
    for (let r = 0; r < o.runs; r++) {
      for (const installs of r % 2 ? [false, true] : [true, false]) {
        progress.start(`latency round ${r + 1}/${o.runs}: ${installs ? 'installing' : 'no installs'} at ${rate} ops/s`);
        const res = await latencyRun(patchable, o, rate, installs);
        progress.step(o.seconds);
        (installs ? busy : quiet).push(res.latency.p999);
        (installs ? busyP99 : quietP99).push(res.latency.p99);
        (installs ? busyHist : quietHist).push(res.histogram);
        if (installs) {
          cycles += res.cycles;
          traps += res.traps;
          hostPokes += res.hostPokes;
        }
      }
      log(`bench install: latency round ${r + 1}/${o.runs}`);
    }

    /* (b') the same, installing and quiet windows alternated within runs */
    const windowMs = 100;
    const quietWindows: BigUint64Array[] = [];
    const busyWindows: BigUint64Array[] = [];
    for (let r = 0; r < o.runs; r++) {
      progress.start(`windowed latency round ${r + 1}/${o.runs}: ${windowMs} ms windows`);
      for (const w of await windowedRun(patchable, o, rate, windowMs)) (w.installing ? busyWindows : quietWindows).push(w.histogram);
      progress.step(o.seconds);
      log(`bench install: windowed latency round ${r + 1}/${o.runs}`);
    }

    /* (c) install latency and grace periods */
    const { opts } = instanceOptions(patchable, { workload: o.workload, rate: 0, concurrency: 4, seed: 1n, counting: false });
    const instance = KernelInstance.load(patchable.compiled.objects, opts);
    const installer = new Installer(instance, patchable);
    const installMs: number[] = [];
    progress.start('install latency and grace periods: 40 versions');
    try {
      const versions = await Promise.all(Array.from({ length: 40 }, () => installer.compile(o.fn, 'optimized')));
      instance.start();
      while (instance.cb.get('ops_done') < 1000n) await new Promise((r) => setTimeout(r, 1));
      for (const v of versions) {
        installMs.push(await installer.activate(v));
        await new Promise((r) => setTimeout(r, 5));
        await installer.revert(o.fn);
        if ((await installer.freeRetired(5000)) !== 1) throw new KjitError('a grace period did not end within 5 s', 'see grace_busy in the control block', ExitCode.FAILURE);
      }
      instance.requestStop();
      await instance.join();
    } finally {
      await instance.dispose();
    }
    progress.step(3);
    progress.finish();

    const report = {
      format: 'kjit-bench-install/2',
      env: {
        ...machineEnv(),
        runs: o.runs,
        seconds_per_run: o.seconds,
        workload: o.workload,
        function: o.fn,
        seed: '1',
      },
      suite: 'install',
      baseline: {
        ops_per_sec_plain: spread(tput.plain),
        ops_per_sec_patchable: spread(tput.patchable),
        ratio: cost.ratio,
        ratio_ci95: cost.ci95,
        cost_percent: (1 - cost.ratio) * 100,
      },
      latency: {
        rate_ops_per_sec: rate,
        p999_us_no_installs: spread(quiet),
        p999_us_installing: spread(busy),
        p99_us_no_installs: spread(quietP99),
        p99_us_installing: spread(busyP99),
        p999_ratio: ratioOfMedians(busy, quiet),
        /* every request of all runs of a kind together: the tail of ~rate x seconds x runs requests */
        pooled_p999_us_no_installs: pooled(quietHist, 'p999'),
        pooled_p999_us_installing: pooled(busyHist, 'p999'),
        pooled_p999_ratio: bootstrapRatio(busyHist, quietHist, (runs) => pooled(runs, 'p999')),
        pooled_p99_ratio: bootstrapRatio(busyHist, quietHist, (runs) => pooled(runs, 'p99')),
        /* alternated windows inside runs (the primary estimate) */
        windows: { ms: windowMs, installing: busyWindows.length, quiet: quietWindows.length },
        windowed_p999_us_no_installs: pooled(quietWindows, 'p999'),
        windowed_p999_us_installing: pooled(busyWindows, 'p999'),
        windowed_p999_ratio: bootstrapRatio(busyWindows, quietWindows, (ws) => pooled(ws, 'p999')),
        windowed_p99_ratio: bootstrapRatio(busyWindows, quietWindows, (ws) => pooled(ws, 'p99')),
        install_cycles: cycles,
        install_gap_ms: o.installGapMs,
        int3_traps: traps,
        host_pokes: hostPokes,
      },
      install_ms: quantiles(installMs),
      grace_ms: quantiles(installer.graceMs),
    };
    emitReport(report, o, () => {
      const b = report.baseline;
      const l = report.latency;
      return [
        `baseline cost of patchable entries (${o.workload}): throughput ratio ${b.ratio.toFixed(4)} [${b.ratio_ci95[0].toFixed(4)}, ${b.ratio_ci95[1].toFixed(4)}] (${b.cost_percent.toFixed(2)}%)`,
        `latency at ${rate} ops/s: p99.9 ${l.p999_us_no_installs.median.toFixed(1)} us without installs, ${l.p999_us_installing.median.toFixed(1)} us while installing (ratio of medians ${l.p999_ratio.ratio.toFixed(3)} [${l.p999_ratio.ci95[0].toFixed(3)}, ${l.p999_ratio.ci95[1].toFixed(3)}]); ${cycles} install cycles, ${traps} int3 traps`,
        `  alternated ${windowMs} ms windows within runs: p99.9 ${l.windowed_p999_us_no_installs.toFixed(1)} us quiet vs ${l.windowed_p999_us_installing.toFixed(1)} us installing (ratio ${l.windowed_p999_ratio.ratio.toFixed(3)} [${l.windowed_p999_ratio.ci95[0].toFixed(3)}, ${l.windowed_p999_ratio.ci95[1].toFixed(3)}]); p99 ratio ${l.windowed_p99_ratio.ratio.toFixed(3)} [${l.windowed_p99_ratio.ci95[0].toFixed(3)}, ${l.windowed_p99_ratio.ci95[1].toFixed(3)}]`,
        `  all requests pooled: p99.9 ${l.pooled_p999_us_no_installs.toFixed(1)} us vs ${l.pooled_p999_us_installing.toFixed(1)} us (ratio ${l.pooled_p999_ratio.ratio.toFixed(3)} [${l.pooled_p999_ratio.ci95[0].toFixed(3)}, ${l.pooled_p999_ratio.ci95[1].toFixed(3)}]); p99 ratio ${l.pooled_p99_ratio.ratio.toFixed(3)} [${l.pooled_p99_ratio.ci95[0].toFixed(3)}, ${l.pooled_p99_ratio.ci95[1].toFixed(3)}]`,
        `install (compiled version to live): p50 ${report.install_ms.p50.toFixed(3)} ms, p99 ${report.install_ms.p99.toFixed(3)} ms`,
        `grace period (revert to freed): p50 ${report.grace_ms.p50.toFixed(3)} ms, max ${report.grace_ms.max.toFixed(3)} ms`,
        '',
      ].join('\n');
    });
    return ExitCode.OK;
  } finally {
    progress.finish();
    plain.dispose();
    patchable.dispose();
  }
}
