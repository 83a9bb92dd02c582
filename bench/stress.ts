/**
 * @fileoverview `kjit bench stress`: installs and reverts of hot functions,
 * thousands of them, and patch/revert cycles (a same-results patch of
 * csum_fold and the dozen functions boot inlined it into) in a kernel
 * running a closed-loop workload for a fixed number of operations; fresh
 * versions are compiled as it goes and the retired ones freed after their
 * grace periods.  Passes when the checksum is the undisturbed run's and
 * resident memory after the run is within 5 MB of before (so freed versions
 * really give their memory back).
 *
 * "Before" is measured after a warm-up that does the same things on a
 * short-lived instance (LLVM's one-time allocations).  Both resident memory
 * and the memory kjit keeps (native memory, i.e. resident minus V8's heap
 * pages, plus live JavaScript objects after a full collection) must grow by
 * 5 MB at most.  The report also gives the capacity V8 keeps beside live
 * objects: its young generation grows as objects survive scavenges, up to a
 * cap, and is never given back (bin/kjit.js keeps it at 1 MB semi-spaces).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { getHeapSpaceStatistics, getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

import { ExitCode, KjitError } from '../src/errors.js';
import { REFERENCE } from '../src/kernel/image.js';
import { KernelInstance } from '../src/kernel/instance.js';
import { execute, instanceOptions, prepareBoot } from '../src/kernel/run.js';
import { trimHeap } from '../src/native/libc.js';
import { Installer } from '../src/rejit/installer.js';
import { type PatchSpec, patchSet } from '../src/rejit/patch.js';
import { ROOT } from '../src/paths.js';
import { ProgressLine } from '../src/cli/progress.js';
import { emitReport, machineEnv } from './env.js';

export interface BenchStressOptions {
  json: boolean;
  ops: bigint;
  /** Install or revert operations to do at least. */
  installs: number;
  functions: string[];
  out?: string;
}

/* a full collection on demand, without asking users for --expose-gc */
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

interface Memory {
  rss: number;
  /** Resident pages of V8's heap: live objects plus capacity V8 keeps (its young generation grows as objects survive scavenges, up to a cap, and is never given back). */
  v8Resident: number;
  /** Live JavaScript objects after a full collection. */
  v8Live: number;
  newSpace: number;
}

/** Resident memory in use: garbage collected and free heap pages returned first, so only live memory counts. */
function memory(): Memory {
  gc();
  trimHeap();
  const status = readFileSync('/proc/self/status', 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  const newSpace = getHeapSpaceStatistics().find((sp) => sp.space_name === 'new_space')?.space_size ?? 0;
  const heap = getHeapStatistics();
  return { rss: m ? Number(m[1]) * 1024 : 0, v8Resident: heap.total_physical_size, v8Live: heap.used_heap_size, newSpace };
}

const MB = 2 ** 20;
const PATCH: PatchSpec = { fn: 'csum_fold', file: join(ROOT, 'examples', 'patches', 'csum_fold_counted.c'), atSeconds: 0 };

const signed = (mb: number) => `${mb >= 0 ? '+' : ''}${mb.toFixed(1)}`;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function benchStress(o: BenchStressOptions): Promise<number> {
  /* on a terminal: what runs now, how far along, the time left; in operations of the workload (the undisturbed
   * run's and the stressed run's, and those the warm-up instance ran meanwhile, added once known) */
  const progress = new ProgressLine('bench stress', 2 * Number(o.ops), process.stderr.isTTY === true && !o.json);
  const log = (s: string) => progress.log(s);
  const p = await prepareBoot({ image: REFERENCE, mode: 'boot', nic: 'virtq', sysctls: [], patchable: true });
  try {
    const run = { workload: 'web', rate: 0, concurrency: 4, seed: 9n, counting: false, ops: o.ops };
    progress.start(`undisturbed run: ${o.ops} operations of web`);
    const undisturbed = await execute(p, run);
    progress.step(Number(o.ops));
    log(`bench stress: undisturbed run ${undisturbed.checksum} (${undisturbed.ops} ops in ${undisturbed.seconds.toFixed(1)} s)`);

    /* One round: fresh versions of each function (old ones retire, wait for
     * grace, are freed), 100 installs and reverts of each, and every third
     * round one patch/revert cycle.  Stops early when the kernel does. */
    const counts = { operations: 0, patchCycles: 0, compiled: 0, freed: 0 };
    const running = (k: KernelInstance) => k.cb.getNumber('state') === 2; /* RUNNING */
    let rounds = 0;
    const round = async (k: KernelInstance, installer: Installer) => {
      rounds++;
      const versions = await Promise.all(o.functions.map((fn) => installer.compile(fn, 'optimized')));
      counts.compiled += versions.length;
      for (let i = 0; i < 100 && running(k); i++) {
        for (const v of versions) {
          await installer.activate(v);
          await installer.revert(v.fn);
          counts.operations += 2;
        }
      }
      if (running(k) && rounds % 3 === 1) {
        const set = patchSet(p, installer);
        const [applied] = await set.apply([PATCH]);
        counts.compiled += applied!.versions.length;
        await set.revert([applied!]);
        counts.patchCycles++;
      }
      counts.freed += await installer.freeRetired(5000);
    };

    /* warm-up: the same work on a short-lived instance */
    const warmRounds = 4;
    {
      const { opts } = instanceOptions(p, run);
      const warm = KernelInstance.load(p.compiled.objects, { ...opts, opsLimit: 0n });
      const installer = new Installer(warm, p);
      warm.start();
      while (warm.cb.get('ops_done') < 1000n) await sleep(1);
      for (let i = 0; i < warmRounds; i++) {
        progress.start(`warm-up round ${i + 1}/${warmRounds} on a short-lived instance`);
        await round(warm, installer);
      }
      warm.requestStop();
      await warm.join();
      const warmOps = warm.cb.getNumber('ops_done');
      progress.total += warmOps;
      progress.step(warmOps);
      await installer.freeRetired();
      await warm.dispose();
      Object.assign(counts, { operations: 0, patchCycles: 0, compiled: 0, freed: 0 });
    }
    const before = memory();

    const { opts } = instanceOptions(p, run);
    const instance = KernelInstance.load(p.compiled.objects, opts);
    const installer = new Installer(instance, p);
    let checksum = '';
    const t0 = performance.now();
    try {
      instance.start();
      while (instance.cb.get('ops_done') < 1000n) await sleep(1);
      /* the operations the stressed run has done so far are its progress */
      let opsSeen = 0;
      for (let n = 1; running(instance); n++) {
        progress.start(`stressed run: ${counts.operations} installs+reverts, ${counts.patchCycles} patch/revert cycles so far`);
        await round(instance, installer);
        const opsNow = Math.min(instance.cb.getNumber('ops_done'), Number(o.ops));
        progress.step(opsNow - opsSeen);
        opsSeen = opsNow;
        if (n % 10 === 0) log(`bench stress: ${counts.operations} installs+reverts, ${counts.patchCycles} patch/revert cycles, ${counts.compiled} versions compiled, ${counts.freed} freed`);
      }
      progress.start('stressed run: joining the kernel, freeing the last versions');
      await instance.join();
      instance.checkHealthy('under stress');
      checksum = `0x${instance.cb.get('checksum').toString(16).padStart(16, '0')}`;
      counts.freed += await installer.freeRetired();
    } finally {
      await instance.dispose();
    }
    const installerTotals = installer.summary();
    const seconds = (performance.now() - t0) / 1000;
    const after = memory();
    progress.finish();
    /* what kjit keeps: native memory (everything resident but V8's heap) and live JavaScript objects */
    const growth = after.rss - after.v8Resident + after.v8Live - (before.rss - before.v8Resident + before.v8Live);
    const report = {
      format: 'kjit-bench-stress/2',
      env: { ...machineEnv(), workload: 'web', seed: '9', functions: o.functions, patch: 'csum_fold=examples/patches/csum_fold_counted.c' },
      ops: Number(o.ops),
      install_and_revert_operations: counts.operations,
      /* every entry change, those of patch cycles included */
      entry_changes: installerTotals.installs + installerTotals.reverts,
      patch_revert_cycles: counts.patchCycles,
      versions_compiled: counts.compiled,
      versions_freed: counts.freed,
      seconds,
      checksum,
      checksum_undisturbed: undisturbed.checksum,
      checksum_ok: checksum === undisturbed.checksum,
      rss_before_mb: before.rss / MB,
      rss_after_mb: after.rss / MB,
      rss_growth_mb: (after.rss - before.rss) / MB,
      /* the pass criterion: native memory plus live JS objects */
      kept_growth_mb: growth / MB,
      native_growth_mb: (after.rss - after.v8Resident - (before.rss - before.v8Resident)) / MB,
      v8_live_growth_mb: (after.v8Live - before.v8Live) / MB,
      v8_capacity_growth_mb: (after.v8Resident - after.v8Live - (before.v8Resident - before.v8Live)) / MB,
      v8_young_generation_mb: { before: before.newSpace / MB, after: after.newSpace / MB },
      warm_up_rounds: warmRounds,
      passed:
        checksum === undisturbed.checksum &&
        after.rss - before.rss <= 5 * MB &&
        growth <= 5 * MB &&
        installerTotals.installs + installerTotals.reverts >= o.installs,
    };
    emitReport(
      report,
      o,
      () =>
        `${report.install_and_revert_operations} installs+reverts of ${o.functions.join(', ')} and ${report.patch_revert_cycles} patch/revert cycles of csum_fold ` +
          `(${report.versions_compiled} versions compiled, ${report.versions_freed} freed after grace) during ${report.ops} ops of web in ${seconds.toFixed(1)} s\n` +
          `checksum ${checksum} ${report.checksum_ok ? '= undisturbed run' : `!= undisturbed ${undisturbed.checksum}`}\n` +
          `resident memory ${report.rss_before_mb.toFixed(1)} -> ${report.rss_after_mb.toFixed(1)} MB (${signed(report.rss_growth_mb)} MB): ` +
          `native ${signed(report.native_growth_mb)}, live JS objects ${signed(report.v8_live_growth_mb)}, ` +
          `capacity V8 keeps ${signed(report.v8_capacity_growth_mb)} (young generation ${report.v8_young_generation_mb.before} -> ${report.v8_young_generation_mb.after} MB)\n` +
          `kept by kjit (native + live JS): ${signed(report.kept_growth_mb)} MB (limit +5 MB, for it and for resident memory)\n`
    );
    if (report.entry_changes < o.installs) {
      throw new KjitError(`only ${report.entry_changes} installs and reverts happened before the run ended`, 'raise --ops', ExitCode.FAILURE);
    }
    return report.passed ? ExitCode.OK : ExitCode.FAILURE;
  } finally {
    progress.finish();
    p.dispose();
  }
}
