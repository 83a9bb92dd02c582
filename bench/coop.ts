/**
 * @fileoverview `kjit bench coop`: does the JIT cooperate with the kernel
 * (DESIGN.md section 7, issue 8)?
 *
 * (a) Full load on a shared core: the kernel thread (closed loop) and the
 *     compile server pinned to the same CPU; one arm with the compile
 *     server kept busy (two real re-JIT units always queued: the hottest
 *     functions' optimized versions, built and discarded, so the kernel's
 *     code is the same in both arms), one without any compile.  Alternated
 *     runs; full_load_ratio = median throughput with / without, bootstrap
 *     95% interval.  The server runs at SCHED_IDLE with its token bucket
 *     (2% guaranteed share): the target is >= 0.97.
 * (b) 70% load: the same pinning, open loop at 70% of the saturation
 *     measured in (a); a batch of jobs is queued at the start (an
 *     instrumented tier of the whole image, then optimized versions of the
 *     hottest functions): did every job finish, in idle time (the token
 *     bucket never had to lift the server: it got its CPU at SCHED_IDLE),
 *     and how long did it take.
 * (c) Budget revoked mid-run: the pgo mode with its memory budget, open
 *     loop at half of saturation; once the JIT holds code, a memory-hungry
 *     phase (vm.pressure_mb) takes the kernel's free memory and its
 *     allocator revokes the whole grant; measured from the kernel's
 *     revocation to back under the grant (code evicted, compiles
 *     cancelled, server limit lowered): target <= 100 ms.  Then the phase
 *     ends, the JIT asks again, and the next revocation follows.
 */
import { median } from 'simple-statistics';

import { KjitError } from '../src/errors.js';
import { REFERENCE } from '../src/kernel/image.js';
import { type ExecuteRequest, execute, type LiveRun, type PreparedBoot, prepareBoot, type RunResult } from '../src/kernel/run.js';
import { affinityOf, setAffinity, writeU64 } from '../src/native/libc.js';
import { compileServer } from '../src/scheduler/compile-server.js';
import type { RevocationRecord } from '../src/scheduler/budget.js';
import { ProgressLine } from '../src/cli/progress.js';
import { emitReport, machineEnv } from './env.js';
import { ratioOfMedians, spread } from './stats.js';

export interface BenchCoopOptions {
  json: boolean;
  runs: number;
  seconds: number;
  workload: string;
  /** The CPU the kernel thread and the compile server share in (a) and (b). */
  cpu: number;
  /** Revocations measured in (c). */
  revocations: number;
  out?: string;
}

/** Functions (a) and (b) build versions of: hot on every workload of the reference kernel. */
const HOT = ['kmem_cache_alloc', 'kmem_cache_free', 'kmalloc', 'kfree', 'tcp_transmit_skb', 'ip_route_input', 'inet_lookup', 'sys_poll', 'd_lookup', 'csum_partial'];

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The functions with boot code a tier may replace (as the pgo engine picks them), at most `max`. */
function tierFunctions(live: LiveRun, max: number): string[] {
  const removed = new Set(live.prepared.compiled.report.removed.map((r) => r.name));
  const out: string[] = [];
  for (const f of live.prepared.image.pristine.functions()) {
    if (f.isDeclaration() || removed.has(f.name) || f.name.startsWith('kjit_') || f.isVarArg()) continue;
    if (live.instance.jit.tryLookup(f.name) !== null) out.push(f.name);
  }
  return out.slice(0, max);
}

function hotFunctions(live: LiveRun): string[] {
  return HOT.filter((f) => live.prepared.image.pristine.getFunction(f) && live.instance.jit.tryLookup(f) !== null);
}

interface LoadRun {
  opsPerSec: number;
  /** Kernel thread CPU per operation (ns), and its CPU over the run's wall time. */
  cpuNsPerOp: number;
  kernelShare: number;
  idle: number;
  jitCpuMs: number;
  jobs: number;
  lifts: number;
  liftedMs: number;
}

export async function benchCoop(o: BenchCoopOptions): Promise<number> {
  /* on a terminal: what runs now, how far along, the time left (in seconds of runs: (a), (b) twice, (c)) */
  const bSeconds = Math.max(o.seconds, 30);
  const cSeconds = 15 + o.revocations * 15;
  const progress = new ProgressLine('bench coop', o.runs * 2 * o.seconds + 2 * bSeconds + cSeconds, process.stderr.isTTY === true && !o.json);
  const log = (s: string) => {
    if (!o.json) progress.log(s);
  };
  const boot = await prepareBoot({ image: REFERENCE, mode: 'boot', nic: 'virtq', sysctls: [], patchable: true });
  let pgo: PreparedBoot | null = null;
  /* Node's main thread (the control plane: linking, installing, polling) off the shared CPU, so (a) and (b) measure the compile server alone */
  const mainCpus = affinityOf(0);
  const others = mainCpus.filter((c) => c !== o.cpu);
  if (others.length) setAffinity(0, others);
  try {
    if (!boot.image.tables.workloads.includes(o.workload)) throw new KjitError(`unknown workload '${o.workload}'`, `use one of: ${boot.image.tables.workloads.join(', ')}`);
    const server = compileServer(boot, { cpus: [o.cpu], batch: false });
    /* (the server is configured once: configuring it again would start its token bucket over) */
    const base: ExecuteRequest = { workload: o.workload, rate: 0, concurrency: 4, seed: 1n, counting: false, sampleHz: 0, kernelCpus: [o.cpu] };

    /* before each run: the server started, pinned, with the image read (a cancel at the end of a run kills it): no run pays for that */
    const warmServer = async () => {
      server.warm();
      for (const t0 = performance.now(); !server.stats().ready && performance.now() - t0 < 60_000; ) await sleep(20);
    };

    /* ---- (a) full load on one core, with and without compiles ---------------------------------- */
    const load = async (compiling: boolean, req: ExecuteRequest): Promise<LoadRun & { r: RunResult }> => {
      await warmServer();
      const s0 = server.stats();
      let jobs = 0;
      const r = await execute(boot, {
        ...req,
        attach: (live) => {
          if (!compiling) return async () => {};
          let stop = false;
          const fns = hotFunctions(live);
          /* two jobs always queued: the server never lacks work */
          const worker = async (k: number) => {
            for (let i = k; !stop; i += 2) {
              try {
                const v = await live.installer!.compile(fns[i % fns.length]!, 'optimized');
                jobs++;
                if (live.installer!.alive) live.installer!.discard(v);
              } catch {
                if (stop) return;
              }
            }
          };
          const workers = [worker(0), worker(1)];
          return async () => {
            stop = true;
            server.cancel('the run ended');
            await Promise.all(workers);
          };
        },
      });
      const s1 = server.stats();
      return { r, opsPerSec: r.ops_per_sec, cpuNsPerOp: r.cpu_ns_per_op, kernelShare: (r.cpu_ns_per_op * r.ops) / (r.seconds * 1e9), idle: r.idle_fraction, jitCpuMs: s1.cpuMs - s0.cpuMs, jobs, lifts: s1.lifts - s0.lifts, liftedMs: s1.liftedMs - s0.liftedMs };
    };
    const withJit: LoadRun[] = [];
    const without: LoadRun[] = [];
    for (let i = 0; i < o.runs; i++) {
      for (const compiling of i % 2 === 0 ? [false, true] : [true, false]) {
        progress.start(`(a) full load, run ${i + 1}/${o.runs}: ${compiling ? 'compile server busy' : 'no JIT'}`);
        const run = await load(compiling, { ...base, seconds: o.seconds });
        progress.step(o.seconds);
        (compiling ? withJit : without).push(run);
        log(`coop (a) run ${i + 1}/${o.runs} ${compiling ? 'compiling' : 'no JIT   '}: ${Math.round(run.opsPerSec)} ops/s, kernel ${run.cpuNsPerOp.toFixed(0)} CPU ns/op and ${(run.kernelShare * 100).toFixed(1)}% of the core, server CPU ${run.jitCpuMs.toFixed(0)} ms (${((run.jitCpuMs / (o.seconds * 1000)) * 100).toFixed(2)}% of the core), ${run.jobs} units built, ${run.lifts} lifts`);
      }
    }
    const ratio = ratioOfMedians(withJit.map((r) => r.opsPerSec), without.map((r) => r.opsPerSec));
    const saturation = median(without.map((r) => r.opsPerSec));

    /* ---- (b) 70% load: a batch of jobs, in idle time? -------------------------------------------- */
    const rate = Math.round(0.7 * saturation);
    /* the same load without jobs: what the kernel's latency and idle time are without the JIT */
    progress.start(`(b) 70% load (${rate} ops/s), no jobs`);
    await warmServer();
    const quiet = await execute(boot, { ...base, rate, seconds: bSeconds });
    progress.step(bSeconds);
    log(`coop (b) 70% load (${rate} ops/s), no jobs: ${Math.round(quiet.ops_per_sec)} ops/s, idle ${(quiet.idle_fraction * 100).toFixed(1)}%, p99 ${quiet.latency_us.p99} us`);
    progress.start(`(b) 70% load (${rate} ops/s), a batch of jobs queued`);
    await warmServer();
    const s0 = server.stats();
    const queued: { job: string; doneAtS: number | null; ms: number; ok: boolean; error?: string }[] = [];
    let queuedAt = 0;
    const b = await execute(boot, {
      ...base,
      rate,
      seconds: bSeconds,
      attach: (live) => {
        queuedAt = performance.now();
        const inst = live.installer!;
        const track = (job: string, p: Promise<unknown>) => {
          const entry: (typeof queued)[number] = { job, doneAtS: null, ms: 0, ok: false };
          queued.push(entry);
          return p.then(
            (x) => {
              entry.ok = true;
              entry.doneAtS = (performance.now() - queuedAt) / 1000;
              return x;
            },
            (e: Error) => {
              entry.error = e.message.split('\n')[0];
              entry.doneAtS = (performance.now() - queuedAt) / 1000;
            },
          );
        };
        /* as the pgo engine starts: an instrumented tier over the image, then versions of what is hot */
        const all = [
          track('tier (instrumented, whole image)', inst.compileTier({ functions: tierFunctions(live, live.instance.cb.array('poke_site').length), instrument: true, pipeline: 'default<O1>' }).then((t) => t.versions.forEach((v) => inst.discard(v)))),
          ...hotFunctions(live).map((f) => track(`${f} (optimized)`, inst.compile(f, 'optimized').then((v) => inst.discard(v)))),
        ];
        return () => Promise.all(all).then(() => {});
      },
    });
    progress.step(bSeconds);
    const s1 = server.stats();
    const allDone = queued.every((q) => q.ok && q.doneAtS !== null && q.doneAtS <= bSeconds);
    const lastS = Math.max(...queued.map((q) => q.doneAtS ?? Infinity));
    /* in idle time: every job done while the kernel kept up with its arrival rate */
    const keptUp = b.ops_per_sec >= 0.99 * rate;
    log(`coop (b) 70% load with ${queued.length} jobs queued: ${Math.round(b.ops_per_sec)} ops/s, idle ${(b.idle_fraction * 100).toFixed(1)}%, p99 ${b.latency_us.p99} us; the last job done at ${lastS.toFixed(1)} s; server CPU ${(s1.cpuMs - s0.cpuMs).toFixed(0)} ms`);

    /* ---- (c) budget revocations ------------------------------------------------------------------- */
    setAffinity(0, mainCpus);
    progress.start('(c) compiling the pgo mode');
    pgo = await prepareBoot({ image: REFERENCE, mode: 'pgo', nic: 'virtq', sysctls: [] });
    const records: RevocationRecord[] = [];
    const residentBefore: number[] = [];
    progress.start(`(c) budget revocations: pgo mode at ${Math.round(saturation / 2)} ops/s, ${cSeconds} s`);
    let budgetReport: RunResult['budget'];
    const c = await execute(pgo, {
      workload: o.workload,
      rate: Math.round(saturation / 2),
      concurrency: 4,
      seed: 1n,
      counting: false,
      seconds: cSeconds,
      attach: (live) => {
        let stop = false;
        const driver = (async () => {
          const budget = live.budget!;
          const pressure = live.instance.jit.lookup('sysctl_vm_pressure_mb');
          for (let i = 0; i < o.revocations && !stop; i++) {
            /* the JIT holds code (a window, a tier, versions) and its grant */
            progress.start(`(c) budget revocations: waiting for the JIT to hold code (${i + 1}/${o.revocations})`);
            const t0 = performance.now();
            while (!stop && (budget.shares.grantBytes === 0 || budget.codeBytes() === 0) && performance.now() - t0 < 15_000) await sleep(50);
            if (stop) break;
            progress.start(`(c) budget revocation ${i + 1}/${o.revocations}: memory pressure on`);
            residentBefore.push(budget.codeBytes());
            const r = budget.report();
            const freeMb = Math.floor(((r.kernel_free_bytes ?? 0) + r.grant_bytes) / 2 ** 20);
            const seen = r.revocation_log.length;
            /* the memory-hungry phase takes all but 16 MiB of what the kernel could give */
            writeU64(pressure, BigInt(Math.max(4, freeMb - 16)));
            const t1 = performance.now();
            while (!stop && budget.report().revocation_log.length === seen && performance.now() - t1 < 3000) await sleep(5);
            await sleep(200);
            writeU64(pressure, 0n);
            const got = budget.report().revocation_log.slice(seen);
            records.push(...got);
            log(`coop (c) revocation ${i + 1}/${o.revocations}: ${got.map((g) => `${(g.from_bytes / 2 ** 20).toFixed(0)} -> ${(g.to_bytes / 2 ** 20).toFixed(0)} MiB, back under in ${g.back_under_ms?.toFixed(1) ?? 'NOT'} ms (seen after ${g.seen_ms.toFixed(1)} ms), ${g.evicted_versions} versions evicted, ${g.cancelled_jobs} compiles cancelled, server ${g.server}`).join('; ') || 'no revocation seen'}`);
            /* the phase is over: the JIT asks again (BUDGET_PARAMS.reaskMs) */
            progress.start(`(c) budget revocation ${i + 1}/${o.revocations}: waiting for the JIT to ask again`);
            const t2 = performance.now();
            while (!stop && budget.shares.grantBytes === 0 && performance.now() - t2 < 20_000) await sleep(50);
          }
        })();
        return async () => {
          stop = true;
          await driver;
          budgetReport = live.budget?.report();
        };
      },
    });
    progress.step(cSeconds);
    progress.finish();
    budgetReport = c.budget ?? budgetReport;
    const backUnder = records.map((r) => r.back_under_ms);
    const measured = backUnder.filter((x): x is number => x !== null);

    const env = { ...machineEnv(), cpu_pinning: `(a), (b): kernel thread and compile server on CPU ${o.cpu}; Node's main thread on CPUs ${others.join(',') || 'the same'}; (c): none` };
    const report = {
      format: 1,
      env,
      suite: 'coop',
      workload: o.workload,
      runs: o.runs,
      seconds: o.seconds,
      full_load: {
        full_load_ratio: ratio.ratio,
        ratio_ci95: ratio.ci95,
        target: 0.97,
        ops_per_sec: { with_jit: withJit.map((r) => r.opsPerSec), without_jit: without.map((r) => r.opsPerSec) },
        server_cpu_share: spread(withJit.map((r) => r.jitCpuMs / (o.seconds * 1000))),
        /* where the rest of a loss goes: the kernel thread's CPU per operation (caches the compiler evicts) and its share of the core */
        kernel_cpu_ns_per_op: { with_jit: withJit.map((r) => r.cpuNsPerOp), without_jit: without.map((r) => r.cpuNsPerOp) },
        kernel_cpu_share: { with_jit: withJit.map((r) => r.kernelShare), without_jit: without.map((r) => r.kernelShare) },
        units_built_per_run: withJit.map((r) => r.jobs),
        lifts_per_run: withJit.map((r) => r.lifts),
      },
      load_70pct: {
        rate,
        saturation_ops_per_sec: saturation,
        seconds: bSeconds,
        ops_per_sec: b.ops_per_sec,
        idle_fraction: b.idle_fraction,
        latency_us: b.latency_us,
        without_jobs: { ops_per_sec: quiet.ops_per_sec, idle_fraction: quiet.idle_fraction, latency_us: quiet.latency_us },
        jobs: queued,
        all_jobs_done: allDone,
        all_done_at_s: Number.isFinite(lastS) ? lastS : null,
        kernel_kept_up: keptUp,
        in_idle_time: allDone && keptUp,
        /* the token bucket lifted the server (at the start of a busy spell its bucket is full: one lift is its burst) */
        lifts: s1.lifts - s0.lifts,
        lifted_ms: s1.liftedMs - s0.liftedMs,
        server_cpu_ms: s1.cpuMs - s0.cpuMs,
      },
      revocation: {
        revocations: records.length,
        back_under_ms: backUnder,
        back_under_ms_max: measured.length ? Math.max(...measured) : null,
        back_under_ms_median: measured.length ? median(measured) : null,
        all_back_under: backUnder.length > 0 && backUnder.every((x) => x !== null),
        target_ms: 100,
        code_bytes_before: residentBefore,
        records,
        budget: budgetReport ?? null,
        scheduler: c.scheduler,
      },
    };
    emitReport(report, o, () => {
      const f = report.full_load;
      const l = report.load_70pct;
      const rv = report.revocation;
      return [
        `coop (${o.workload}; kernel thread and compile server on CPU ${o.cpu}):`,
        `  (a) full load, ${o.runs} alternated runs of ${o.seconds} s: with the compile server busy / without: ${f.full_load_ratio.toFixed(4)} [${f.ratio_ci95[0].toFixed(4)}, ${f.ratio_ci95[1].toFixed(4)}] (target >= 0.97); server CPU ${(f.server_cpu_share.median * 100).toFixed(2)}% of the core`,
        `  (b) 70% load (${rate} ops/s of ${Math.round(saturation)}), ${bSeconds} s: ${l.jobs.filter((j) => j.ok).length}/${l.jobs.length} jobs done, the last at ${l.all_done_at_s?.toFixed(1) ?? '-'} s, kernel ${l.kernel_kept_up ? 'kept up' : 'did NOT keep up'}: ${l.in_idle_time ? 'all in idle time' : 'NOT all in idle time'}; p99 ${l.latency_us.p99} us (${l.without_jobs.latency_us.p99} us without jobs); ${l.lifts} token-bucket lifts`,
        `  (c) ${rv.revocations} revocations: back under the grant in ${rv.back_under_ms.map((x) => (x === null ? 'NOT' : x.toFixed(1))).join(', ')} ms (max ${rv.back_under_ms_max?.toFixed(1) ?? '-'}, target <= 100)`,
        '',
      ].join('\n');
    });
    return 0;
  } finally {
    progress.finish();
    setAffinity(0, mainCpus);
    boot.dispose();
    pgo?.dispose();
  }
}
