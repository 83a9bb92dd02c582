/**
 * @fileoverview `kjit bench store`: what the profile store costs a run.
 *
 * Flush: a profile of 100,000 samples over a call graph of 2,000 functions
 * with 10,000 distinct caller -> callee edges (a ProfileBuilder fed
 * synthetic chains of 4 to 9 frames) is written as one boot's flush:
 * extracting its aggregates (aggregatesOf) and the transaction
 * (flushProfile), each run into a fresh boot of the same database (every
 * row an insert: the first flush of a boot, the costliest); then a
 * re-flush of the same boot with every count grown (every row an update),
 * as a periodic flush of a long run does.  Median over `runs`; target: the
 * whole flush under 50 ms.
 *
 * Size: 10 boots of 60 s with the aggregates a real boot has (`kjit run
 * --workload web --seconds 60`: 59,000 samples, 124 functions with
 * samples, 310 edges, 349 distinct chains of 6.4 frames on average; kv
 * and fs have fewer), rounded up, plus exact counts of 30 functions, 20
 * compile-log entries and 50 decisions a boot; six flushes a boot (every
 * 10 s).  The file's size after them, the growth per boot, and 100 boots
 * projected and simulated, with the default retention (STORE_PARAMS.keepBoots
 * per image family, machine class and workload) and, as a bound, with
 * every boot of another workload so that retention keeps all 100.  Target:
 * under 50 MB.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { ExitCode } from '../src/errors.js';
import type { FunctionCounts } from '../src/sampler/counts.js';
import { ProfileBuilder } from '../src/sampler/profile.js';
import { STORE_PARAMS } from '../src/store/params.js';
import { aggregatesOf } from '../src/store/session.js';
import { type BootInfo, type ProfileAggregates, ProfileStore } from '../src/store/store.js';
import { ProgressLine } from '../src/cli/progress.js';
import { emitReport, machineEnv } from './env.js';
import { seededRandom, type Spread, spread } from './stats.js';

export interface BenchStoreOptions {
  json: boolean;
  runs: number;
  out?: string;
}

/** A real boot of 60 s (web, the largest of the reference workloads), rounded up. */
export const BOOT_60S = { samples: 60_000, functions: 150, edges: 350, chains: 400, chainFrames: 6.5, countedFunctions: 30, compileLog: 20, decisions: 50 };

const FLUSH = { samples: 100_000, functions: 2_000, calleesPerFunction: 5 };

/** The progress line's weights, in simulated boots (what each takes about as long as, measured). */
const WEIGHT = { profiles: 18, flushRound: 1.5 };

function bootInfo(imageFunctions: number, workload: string): BootInfo {
  const names = Array.from({ length: imageFunctions }, (_, i) => `fn_${i}`);
  return {
    image: {
      hash: 'b'.repeat(64),
      runtimeHash: 'r'.repeat(64),
      name: 'kernel.bc',
      path: '/bench/kernel.bc',
      init: 'kernel_init',
      run: 'kernel_run',
      functions: () => new Map(names.map((n, i) => [n, (i * 2654435761).toString(16).padStart(32, '0').slice(0, 32)])),
    },
    machine: { cpuModel: 'bench', llvmCpu: 'znver4', features: '+avx2' },
    workload,
    mode: 'boot',
    sysctls: { 'kernel.audit': '0 (default)' },
  };
}

/** A profile of `samples` chains over `functions` functions, each calling `callees` others (about functions x callees edges). */
function syntheticProfile(samples: number, functions: number, callees: number, seed: number): ProfileBuilder {
  const random = seededRandom(seed);
  const calls = Array.from({ length: functions }, (_, f) => Array.from({ length: callees }, (_, k) => (f * 7919 + k * 104729 + 1) % functions));
  const b = new ProfileBuilder();
  for (let s = 0; s < samples; s++) {
    let f = Math.floor(random() * functions);
    const depth = 4 + Math.floor(random() * 6);
    const chain = [`fn_${f}`];
    for (let d = 1; d < depth; d++) {
      f = calls[f]![Math.floor(random() * callees)]!;
      chain.push(`fn_${f}`);
    }
    b.add(chain.reverse()); /* leaf first */
  }
  return b;
}

/** Aggregates the size of a real boot's, `scale` of the way through it. */
function bootAggregates(random: () => number, scale: number): ProfileAggregates {
  const n = BOOT_60S;
  const w = (x: number) => Math.max(1, Math.round(x * scale));
  return {
    samples: w(n.samples),
    functions: Array.from({ length: n.functions }, (_, i) => ({ function: `fn_${i}`, self: w((n.samples / n.functions) * random()), total: w((n.samples / 10) * random()) })),
    edges: Array.from({ length: n.edges }, (_, i) => ({ caller: `fn_${i % n.functions}`, callee: `fn_${(i * 31 + 7) % n.functions}`, samples: w(1000 * random()) })),
    hotPaths: Array.from({ length: n.chains }, (_, i) => ({
      chain: Array.from({ length: Math.round(n.chainFrames + (random() - 0.5) * 4) }, (_, k) => `fn_${(i * 13 + k * 17) % n.functions}`),
      samples: w(200 * random()),
    })),
  };
}

function bootCounts(random: () => number): FunctionCounts[] {
  return Array.from({ length: BOOT_60S.countedFunctions }, (_, i) => ({
    function: `fn_${i}`,
    ir_hash: (i * 2654435761).toString(16).padStart(32, '0').slice(0, 32),
    shape: 'b2.2.2.2.3.2.2.5.2.2|i2',
    entry: Math.round(random() * 1e6),
    branches: [2, 2, 2, 2, 3, 2, 2, 5, 2, 2].map((k) => Array.from({ length: k }, () => Math.round(random() * 1e6))),
    icalls: [0, 1].map(() => ({ total: 1000, targets: [0, 1, 2, 3].map((t) => ({ function: `fn_${t + 40}`, count: 250 })) })),
    window: { ms: 200, ops: 40_000 },
  }));
}

function simulateBoot(store: ProfileStore, random: () => number, workload: string): void {
  const id = store.recordBoot(bootInfo(951, workload));
  for (let k = 1; k <= 6; k++) store.flushProfile(id, bootAggregates(random, k / 6));
  store.flushCounts(id, bootCounts(random));
  for (let i = 0; i < BOOT_60S.compileLog; i++) {
    store.logCompile(id, { function: `fn_${i}`, version: i + 1, tier: 'optimized', reason: 'hot and stable', compile_ms: 40, code_bytes: 2048, outcome: 'installed', at_s: i });
  }
  for (let i = 0; i < BOOT_60S.decisions; i++) {
    store.logDecision(id, { kind: 'reoptimize', function: `fn_${i % 40}`, reason: 'hot-and-stable', numbers: { self_pct: 3.5, samples: 1200, stable_s: 10 }, at_s: i });
  }
  store.endBoot(id, { status: 'ended', seconds: 60, ops: 13_000_000 });
}

/** The database's bytes on disk after a checkpoint (the file, and its -wal if any). */
function fileBytes(store: ProfileStore, path: string): number {
  store.db.pragma('wal_checkpoint(TRUNCATE)');
  const wal = `${path}-wal`;
  let bytes = statSync(path).size;
  try {
    bytes += statSync(wal).size;
  } catch {
    /* no -wal */
  }
  return bytes;
}

export async function benchStore(o: BenchStoreOptions): Promise<number> {
  /* on a terminal: what runs now, how far along, the time left; in simulated boots (the size part's 200), a
   * flush round and building the synthetic profiles weighed as the boots they take about as long as */
  const progress = new ProgressLine('bench store', WEIGHT.profiles + (o.runs + 1) * WEIGHT.flushRound + 200, process.stderr.isTTY === true && !o.json);
  const log = (s: string) => progress.log(s);
  const dir = mkdtempSync(join(tmpdir(), 'kjit-bench-store-'));
  try {
    /* ---- flush ---- */
    progress.start(`flush: synthetic profiles of ${FLUSH.samples} samples`);
    const profile = syntheticProfile(FLUSH.samples, FLUSH.functions, FLUSH.calleesPerFunction, 0x6b6a);
    const grown = syntheticProfile(FLUSH.samples * 1.1, FLUSH.functions, FLUSH.calleesPerFunction, 0x6b6a);
    progress.step(WEIGHT.profiles);
    const flushDb = join(dir, 'flush.db');
    const store = ProfileStore.open(flushDb);
    const extract: number[] = [];
    const first: number[] = [];
    const again: number[] = [];
    let agg: ProfileAggregates | null = null;
    /* one unmeasured round: statements prepared, pages cached */
    for (let r = -1; r < o.runs; r++) {
      progress.start(r < 0 ? 'flush: unmeasured round' : `flush ${r + 1}/${o.runs}`);
      const id = store.recordBoot(bootInfo(FLUSH.functions, 'flush'));
      let t = performance.now();
      agg = aggregatesOf(profile);
      const te = performance.now() - t;
      t = performance.now();
      store.flushProfile(id, agg);
      const tf = performance.now() - t;
      const more = aggregatesOf(grown);
      t = performance.now();
      store.flushProfile(id, more);
      const ta = performance.now() - t;
      store.endBoot(id, { status: 'ended' }, Infinity);
      progress.step(WEIGHT.flushRound);
      if (r < 0) continue;
      extract.push(te);
      first.push(tf);
      again.push(ta);
      log(`bench: flush ${r + 1}/${o.runs}: aggregates ${te.toFixed(1)} ms, first flush ${tf.toFixed(1)} ms, re-flush ${ta.toFixed(1)} ms`);
    }
    store.close();
    const total = first.map((f, i) => f + extract[i]!);
    const flush = {
      samples: agg!.samples,
      functions: agg!.functions.length,
      edges: agg!.edges.length,
      hot_paths: agg!.hotPaths.length,
      aggregates_ms: spread(extract),
      first_flush_ms: spread(first),
      reflush_ms: spread(again),
      total_ms: spread(total),
      synchronous: STORE_PARAMS.synchronous,
      target_ms: 50,
      meets_target: spread(total).median < 50,
    };

    /* ---- size ---- */
    const random = seededRandom(0x5157);
    const sizeDb = join(dir, 'size.db');
    const sized = ProfileStore.open(sizeDb);
    const empty = fileBytes(sized, sizeDb);
    /* one boot simulated, a step of progress */
    const simulate = (s: ProfileStore, workload: string, what: string) => {
      progress.start(what);
      simulateBoot(s, random, workload);
      progress.step(1);
    };
    simulate(sized, 'web', 'size: boot 1/100 (one key)');
    const afterOne = fileBytes(sized, sizeDb);
    for (let b = 1; b < 10; b++) simulate(sized, 'web', `size: boot ${b + 1}/100 (one key)`);
    const afterTen = fileBytes(sized, sizeDb);
    const perBoot = (afterTen - afterOne) / 9;
    const base = afterOne - perBoot;
    for (let b = 10; b < 100; b++) simulate(sized, 'web', `size: boot ${b + 1}/100 (one key)`);
    const hundredOneKey = fileBytes(sized, sizeDb);
    sized.close();
    const allDb = join(dir, 'all.db');
    const all = ProfileStore.open(allDb);
    for (let b = 0; b < 100; b++) simulate(all, `w${b % 5}`, `size: boot ${b + 1}/100 (5 workloads, all kept)`); /* 5 workloads x 20 boots: all kept */
    const hundredAll = fileBytes(all, allDb);
    all.close();
    progress.finish();
    const MB = 1024 * 1024;
    const size = {
      boot: BOOT_60S,
      keep_boots: STORE_PARAMS.keepBoots,
      empty_bytes: empty,
      after_1_boot_bytes: afterOne,
      after_10_boots_bytes: afterTen,
      per_boot_bytes: Math.round(perBoot),
      projected_100_boots_bytes: Math.round(base + Math.min(100, STORE_PARAMS.keepBoots) * perBoot),
      projected_100_boots_all_kept_bytes: Math.round(base + 100 * perBoot),
      simulated_100_boots_one_key_bytes: hundredOneKey,
      simulated_100_boots_all_kept_bytes: hundredAll,
      target_bytes: 50 * MB,
      meets_target: Math.max(hundredAll, base + 100 * perBoot) < 50 * MB,
    };
    const report = { format: 'kjit-bench-store/1', env: { ...machineEnv(), runs: o.runs }, suite: 'store', flush, size };
    emitReport(report, o, () => readable(flush, size));
    return ExitCode.OK;
  } finally {
    progress.finish();
    rmSync(dir, { recursive: true, force: true });
  }
}

function readable(
  f: { samples: number; functions: number; edges: number; hot_paths: number; aggregates_ms: Spread; first_flush_ms: Spread; reflush_ms: Spread; total_ms: Spread; meets_target: boolean },
  s: Record<string, unknown> & { per_boot_bytes: number; after_10_boots_bytes: number; projected_100_boots_bytes: number; projected_100_boots_all_kept_bytes: number; simulated_100_boots_one_key_bytes: number; simulated_100_boots_all_kept_bytes: number; meets_target: boolean },
): string {
  const ms = (x: Spread) => `${x.median.toFixed(1)} ms (${x.min.toFixed(1)}-${x.max.toFixed(1)}, n=${x.n})`;
  const mb = (b: number) => `${(b / 1048576).toFixed(2)} MiB`;
  return [
    `flush of ${f.samples} samples' aggregates: ${f.functions} functions, ${f.edges} edges, ${f.hot_paths} hot paths (medians)`,
    `  aggregates   ${ms(f.aggregates_ms)}`,
    `  first flush  ${ms(f.first_flush_ms)}`,
    `  total        ${ms(f.total_ms)}  target < 50 ms: ${f.meets_target ? 'met' : 'NOT met'}`,
    `  re-flush     ${ms(f.reflush_ms)} (every row updated)`,
    `size: 10 boots of 60 s ${mb(s.after_10_boots_bytes)}, ${(s.per_boot_bytes / 1024).toFixed(0)} KiB a boot`,
    `  100 boots    projected ${mb(s.projected_100_boots_bytes)} (retention ${String(s.keep_boots)} per key), ${mb(s.projected_100_boots_all_kept_bytes)} if all are kept;`,
    `               simulated ${mb(s.simulated_100_boots_one_key_bytes)} (one key), ${mb(s.simulated_100_boots_all_kept_bytes)} (5 workloads, all kept)  target < 50 MiB: ${s.meets_target ? 'met' : 'NOT met'}`,
    '',
  ].join('\n');
}
