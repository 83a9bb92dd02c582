/**
 * @fileoverview `kjit bench instrument`: what an instrumentation window
 * costs.  One reference kernel (boot mode, patchable) runs a workload at
 * saturation; for each function, `runs` rounds alternate a plain interval
 * (the boot code) and an instrumentation window of the same length (the
 * function with edge counters and indirect-call recording), in an order that
 * flips every round.  Throughput in each interval comes from the kernel's
 * own operation counter, so the slowdown while a window is live is
 * 1 - median(window ops/s) / median(plain ops/s), with a bootstrap 95%
 * interval; the window's compile, install (redirect) and removal
 * (redirect back) are timed too.  A window that counted no calls
 * fails the benchmark (the function is not on the workload's path).
 */
import { KjitError } from '../src/errors.js';
import { REFERENCE } from '../src/kernel/image.js';
import { KernelInstance } from '../src/kernel/instance.js';
import { instanceOptions, prepareBoot } from '../src/kernel/run.js';
import { Installer } from '../src/rejit/installer.js';
import { instrumentationWindow } from '../src/sampler/instrument.js';
import { ProgressLine } from '../src/cli/progress.js';
import { emitReport, machineEnv } from './env.js';
import { ratioOfMedians, spread } from './stats.js';

export interface BenchInstrumentOptions {
  json: boolean;
  runs: number;
  /** Length of each interval, ms. */
  windowMs: number;
  workload: string;
  functions: string[];
  out?: string;
}

/** Hot functions of the web workload that keep their own code in boot mode (kjit status lists them). */
export const INSTRUMENT_BENCH_FUNCTIONS = ['tcp_transmit_skb', 'ip_route_input', 'inet_lookup'];

interface Row {
  function: string;
  ops_per_sec_plain_median: number;
  ops_per_sec_window_median: number;
  /** 1 - ratio of medians (0.01 = 1% slower while the window is live). */
  slowdown: number;
  slowdown_ci95: [number, number];
  compile_ms_median: number;
  install_ms_median: number;
  remove_ms_median: number;
  entries_per_op_median: number;
  branch_sites: number;
  icall_sites: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function benchInstrument(o: BenchInstrumentOptions): Promise<number> {
  /* on a terminal: what runs now, how far along, the time left (in seconds of intervals: a plain one and a window per round and function) */
  const intervalS = o.windowMs / 1000;
  const progress = new ProgressLine('bench instrument', o.functions.length * o.runs * 2 * intervalS, process.stderr.isTTY === true && !o.json);
  const log = (s: string) => progress.log(s);
  const p = await prepareBoot({ image: REFERENCE, mode: 'boot', nic: 'virtq', sysctls: [], patchable: true });
  try {
    if (!p.image.tables.workloads.includes(o.workload)) {
      throw new KjitError(`unknown workload '${o.workload}'`, `use one of: ${p.image.tables.workloads.join(', ')}`);
    }
    for (const fn of o.functions) {
      if (!p.compiled.optimized.getFunction(fn)) throw new KjitError(`boot mode has no code of its own for '${fn}'`, 'pass --functions with functions `kjit status` lists as hot');
    }
    const { opts } = instanceOptions(p, { workload: o.workload, rate: 0, concurrency: 4, seed: 1n, counting: false });
    const instance = KernelInstance.load(p.compiled.objects, opts);
    const installer = new Installer(instance, p);
    const rows: Row[] = [];
    try {
      instance.start();
      while (instance.cb.getNumber('ops_done') === 0) await sleep(1);
      await sleep(300); /* warm */
      const plainInterval = async () => {
        const ops0 = instance.cb.getNumber('ops_done');
        const t0 = performance.now();
        await sleep(o.windowMs);
        return ((instance.cb.getNumber('ops_done') - ops0) * 1000) / (performance.now() - t0);
      };
      for (const fn of o.functions) {
        const plain: number[] = [];
        const windowed: number[] = [];
        const times = { compile: [] as number[], install: [] as number[], remove: [] as number[], entries: [] as number[] };
        let sites = { branches: 0, icalls: 0 };
        for (let r = 0; r < o.runs; r++) {
          const order = r % 2 === 0 ? ['plain', 'window'] : ['window', 'plain'];
          for (const kind of order) {
            progress.start(`${fn} ${r + 1}/${o.runs}: ${kind === 'plain' ? 'plain interval' : 'instrumentation window'}`);
            if (kind === 'plain') {
              plain.push(await plainInterval());
              progress.step(intervalS);
              continue;
            }
            const w = await instrumentationWindow(instance, installer, fn, { ms: o.windowMs });
            await installer.freeRetired();
            progress.step(intervalS);
            windowed.push((w.counts.window.ops * 1000) / w.counts.window.ms);
            times.compile.push(w.compile_ms);
            times.install.push(w.install_ms);
            times.remove.push(w.remove_ms);
            times.entries.push(w.counts.entry / Math.max(1, w.counts.window.ops));
            sites = { branches: w.counts.branches.length, icalls: w.counts.icalls.length };
            if (w.counts.entry === 0) throw new Error(`the window on ${fn} counted no entries: is it called by the ${o.workload} workload?`);
          }
        }
        instance.checkHealthy(`during windows on ${fn}`);
        const ratio = ratioOfMedians(windowed, plain);
        rows.push({
          function: fn,
          ops_per_sec_plain_median: spread(plain).median,
          ops_per_sec_window_median: spread(windowed).median,
          slowdown: 1 - ratio.ratio,
          slowdown_ci95: [1 - ratio.ci95[1], 1 - ratio.ci95[0]],
          compile_ms_median: spread(times.compile).median,
          install_ms_median: spread(times.install).median,
          remove_ms_median: spread(times.remove).median,
          entries_per_op_median: spread(times.entries).median,
          branch_sites: sites.branches,
          icall_sites: sites.icalls,
        });
        log(`bench instrument: ${fn} done (${o.runs} windows)`);
      }
      instance.requestStop();
      await instance.join();
      instance.checkHealthy('after the instrumentation benchmark');
    } finally {
      await instance.dispose();
    }
    progress.finish();
    const report = {
      format: 1,
      env: machineEnv(),
      suite: 'instrument',
      workload: o.workload,
      window_ms: o.windowMs,
      runs: o.runs,
      rows,
    };
    emitReport(report, o, () =>
      [
        `instrumentation windows: ${o.workload}, ${o.runs} alternated ${o.windowMs} ms intervals plain vs window per function`,
        ...rows.map(
          (r) =>
            `  ${r.function.padEnd(20)} slowdown ${(r.slowdown * 100).toFixed(1)}% [${(r.slowdown_ci95[0] * 100).toFixed(1)}, ${(r.slowdown_ci95[1] * 100).toFixed(1)}]` +
            `  compile ${r.compile_ms_median.toFixed(0)} ms, install ${r.install_ms_median.toFixed(2)} ms, remove ${r.remove_ms_median.toFixed(2)} ms` +
            `  (${r.entries_per_op_median.toFixed(2)} calls/op, ${r.branch_sites} branch sites, ${r.icall_sites} indirect calls)`,
        ),
        '',
      ].join('\n'),
    );
    return 0;
  } finally {
    progress.finish();
    p.dispose();
  }
}
