/**
 * @fileoverview The scheduler's figures as `kjit run --json` reports them
 * (issue 8: `scheduler: {...}`), built from the compile server, the job
 * queue and what the rest of the run measured; and a meter for the JIT's
 * CPU on the main thread (linking and installing).
 *
 * Without a memory budget (modes other than pgo, or --budget off) its
 * fields are null (budget_bytes_max, budget_used_bytes_max,
 * eviction_ms_max) and 0 (revocations).
 */
import { callingThreadCpuNs } from '../native/libc.js';
import type { CompileServer, CompileServerStats } from './compile-server.js';
import type { JobQueue, QueueStats } from './queue.js';

export interface SchedulerStats {
  /** Share of the run the kernel spent idle (its blocking idle loop); null: not reported. */
  idle_fraction: number | null;
  /** CPU ms of the JIT: every compile server process plus linking and installing on the main thread. */
  jit_cpu_ms: number;
  /** Jobs carried out, and jobs dropped before they started (stale, superseded, below threshold, cancelled). */
  jobs_done: number;
  jobs_dropped: number;
  /** The compile server's deaths and kills to apply a lowered memory limit. */
  server_restarts: number;
  /** The largest memory budget granted, and the most of it in use (bytes); null: no budget. */
  budget_bytes_max: number | null;
  budget_used_bytes_max: number | null;
  revocations: number;
  /** The longest time from a revocation to being back under the budget (ms). */
  eviction_ms_max: number | null;
}

export interface BudgetFigures {
  bytesMax: number;
  usedBytesMax: number;
  revocations: number;
  evictionMsMax: number | null;
}

export interface SchedulerSources {
  server?: CompileServer | CompileServerStats | null;
  queue?: JobQueue | QueueStats | null;
  idleFraction?: number | null;
  /** Main-thread JIT CPU (JitCpuMeter.ms). */
  mainThreadJitMs?: number;
  budget?: BudgetFigures | null;
}

/**
 * The `scheduler` object of `kjit run --json`.  Without a queue, jobs_done
 * counts the units the server built and jobs_dropped is 0.
 */
export function schedulerStats(s: SchedulerSources): SchedulerStats {
  const server = s.server ? ('stats' in s.server ? s.server.stats() : s.server) : null;
  const queue = s.queue ? ('stats' in s.queue ? s.queue.stats() : s.queue) : null;
  const round = (x: number) => Math.round(x * 1000) / 1000;
  return {
    idle_fraction: s.idleFraction ?? null,
    jit_cpu_ms: round((server?.cpuMs ?? 0) + (s.mainThreadJitMs ?? 0)),
    jobs_done: queue ? queue.done : (server?.built ?? 0),
    jobs_dropped: queue ? queue.dropped : (server?.cancelled ?? 0),
    server_restarts: server?.restarts ?? 0,
    budget_bytes_max: s.budget?.bytesMax ?? null,
    budget_used_bytes_max: s.budget?.usedBytesMax ?? null,
    revocations: s.budget?.revocations ?? 0,
    eviction_ms_max: s.budget?.evictionMsMax ?? null,
  };
}

/**
 * The compile server's figures since `before` (the server outlives runs:
 * a run reports its own share): counters and CPU as differences, the rest
 * as they are now.
 */
export function serverSince(before: CompileServerStats, now: CompileServerStats): CompileServerStats {
  const d = (k: 'starts' | 'restarts' | 'limitRestarts' | 'built' | 'failed' | 'retried' | 'cancelled' | 'cpuMs' | 'lifts' | 'liftedMs') => Math.max(0, now[k] - before[k]);
  return {
    ...now,
    starts: d('starts'),
    restarts: d('restarts'),
    limitRestarts: d('limitRestarts'),
    built: d('built'),
    failed: d('failed'),
    retried: d('retried'),
    cancelled: d('cancelled'),
    cpuMs: d('cpuMs'),
    lifts: d('lifts'),
    liftedMs: d('liftedMs'),
    deaths: Object.fromEntries(Object.entries(now.deaths).map(([k, n]) => [k, Math.max(0, n - before.deaths[k as keyof typeof now.deaths])])) as CompileServerStats['deaths'],
  };
}

/** CPU the main thread spends on the JIT: wrap each synchronous link or install step in run(). */
export class JitCpuMeter {
  private ns = 0n;

  run<T>(step: () => T): T {
    const t0 = callingThreadCpuNs();
    try {
      return step();
    } finally {
      this.ns += callingThreadCpuNs() - t0;
    }
  }

  get ms(): number {
    return Number(this.ns) / 1e6;
  }
}
