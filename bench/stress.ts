/**
 * @fileoverview `kjit bench stress`: installs and reverts of hot functions,
 * thousands of them, into a kernel running a closed-loop workload for a
 * fixed number of operations; fresh versions are compiled as it goes and the
 * retired ones freed after their grace periods.  Passes when the checksum is
 * the undisturbed run's and resident memory after the run is within 5 MB of
 * before (so freed versions really give their memory back).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { getHeapStatistics } from 'node:v8';

import { ExitCode, KjitError } from '../src/errors.js';
import { REFERENCE } from '../src/kernel/image.js';
import { KernelInstance } from '../src/kernel/instance.js';
import { execute, instanceOptions, prepareBoot } from '../src/kernel/run.js';
import { trimHeap } from '../src/native/libc.js';
import { Installer } from '../src/rejit/installer.js';
import { machineEnv } from './env.js';

export interface BenchStressOptions {
  json: boolean;
  ops: bigint;
  /** Install or revert operations to do at least. */
  installs: number;
  functions: string[];
  out?: string;
}

/** Resident memory in use: free heap pages are returned first, so only live memory counts. */
function rssBytes(): number {
  global.gc?.();
  trimHeap();
  const status = readFileSync('/proc/self/status', 'utf8');
  if (process.env.KJIT_DEBUG) {
    const heap = getHeapStatistics();
    process.stderr.write(`${status.split('\n').filter((l) => /^Rss/.test(l)).join(' ')} v8 heap ${(heap.total_heap_size / 2 ** 20).toFixed(1)} MB (used ${(heap.used_heap_size / 2 ** 20).toFixed(1)})\n`);
  }
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function benchStress(o: BenchStressOptions): Promise<number> {
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const p = await prepareBoot({ image: REFERENCE, mode: 'boot', nic: 'virtq', sysctls: [], patchable: true });
  try {
    const run = { workload: 'web', rate: 0, concurrency: 4, seed: 9n, counting: false, ops: o.ops };
    const undisturbed = await execute(p, run);
    log(`bench stress: undisturbed run ${undisturbed.checksum} (${undisturbed.ops} ops in ${undisturbed.seconds.toFixed(1)} s)`);

    /* warm up the same paths once, so the baseline RSS includes LLVM's one-time allocations */
    {
      const { opts } = instanceOptions(p, run);
      const warm = KernelInstance.load(p.compiled.objects, { ...opts, opsLimit: 1000n });
      const installer = new Installer(warm, p);
      for (const fn of o.functions) installer.compile(fn, 'optimized');
      warm.start();
      await warm.join();
      await installer.freeRetired();
      await warm.dispose();
    }
    global.gc?.();
    const rssBefore = rssBytes();

    const { opts } = instanceOptions(p, run);
    const instance = KernelInstance.load(p.compiled.objects, opts);
    const installer = new Installer(instance, p);
    let operations = 0;
    let compiled = 0;
    let freed = 0;
    let checksum = '';
    const t0 = performance.now();
    try {
      instance.start();
      while (instance.cb.get('ops_done') < 1000n) await sleep(1);
      let round = 0;
      while (instance.cb.getNumber('state') === 2 /* RUNNING */) {
        /* fresh versions every round: old ones retire, wait for grace, are freed */
        const versions = o.functions.map((fn) => installer.compile(fn, 'optimized'));
        compiled += versions.length;
        for (let i = 0; i < 100 && instance.cb.getNumber('state') === 2; i++) {
          for (const v of versions) {
            await installer.activate(v);
            await installer.revert(v.fn);
            operations += 2;
          }
        }
        freed += await installer.freeRetired(5000);
        round++;
        if (round % 5 === 0) log(`bench stress: ${operations} installs+reverts, ${compiled} versions compiled, ${freed} freed`);
      }
      await instance.join();
      instance.checkHealthy('under stress');
      checksum = `0x${instance.cb.get('checksum').toString(16).padStart(16, '0')}`;
      freed += await installer.freeRetired();
    } finally {
      await instance.dispose();
    }
    const seconds = (performance.now() - t0) / 1000;
    global.gc?.();
    const rssAfter = rssBytes();
    const report = {
      format: 'kjit-bench-stress/1',
      env: { ...machineEnv(), workload: 'web', seed: '9', functions: o.functions },
      ops: Number(o.ops),
      install_and_revert_operations: operations,
      versions_compiled: compiled,
      versions_freed: freed,
      seconds,
      checksum,
      checksum_undisturbed: undisturbed.checksum,
      checksum_ok: checksum === undisturbed.checksum,
      rss_before_mb: rssBefore / 2 ** 20,
      rss_after_mb: rssAfter / 2 ** 20,
      rss_growth_mb: (rssAfter - rssBefore) / 2 ** 20,
      passed: checksum === undisturbed.checksum && rssAfter - rssBefore <= 5 * 2 ** 20 && operations >= o.installs,
    };
    const text = `${JSON.stringify(report, null, 2)}\n`;
    if (o.out) writeFileSync(o.out, text);
    if (o.json) process.stdout.write(text);
    else {
      process.stdout.write(
        `${operations} installs+reverts of ${o.functions.join(', ')} (${compiled} versions compiled, ${freed} freed after grace) during ${report.ops} ops of web in ${seconds.toFixed(1)} s\n` +
          `checksum ${checksum} ${report.checksum_ok ? '= undisturbed run' : `!= undisturbed ${undisturbed.checksum}`}\n` +
          `resident memory ${report.rss_before_mb.toFixed(1)} -> ${report.rss_after_mb.toFixed(1)} MB (${report.rss_growth_mb >= 0 ? '+' : ''}${report.rss_growth_mb.toFixed(1)} MB)\n`,
      );
    }
    if (operations < o.installs) {
      throw new KjitError(`only ${operations} installs and reverts happened before the run ended`, 'raise --ops', ExitCode.FAILURE);
    }
    return report.passed ? ExitCode.OK : ExitCode.FAILURE;
  } finally {
    p.dispose();
  }
}
