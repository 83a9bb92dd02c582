/**
 * @fileoverview A run's timeline, as `kjit report` draws it: once a second,
 * the kernel's throughput, latency percentiles and idle share over that
 * second (from the control block's counters and latency histogram), the
 * code region's bytes in use, the process's resident memory, and the JIT's
 * CPU (the compile server, and Node's main thread, which links, installs,
 * drains the sampler and runs the policy); and the run's events: installs,
 * rollbacks, reverts, evictions, sysctl changes, workload phases, live
 * patches, faults.  The profile store keeps it per boot (StoreSession.watch
 * starts it, each flush writes it, the end of the run completes its events
 * from the RunResult and the kernel log).
 *
 * Reading the control block is only ever done while the instance is alive:
 * the timer checks `isDisposed` first (disposal happens on this thread).
 */
import type { KernelInstance } from '../kernel/instance.js';
import { latencyFromHistogram, type PreparedBoot, type RunResult } from '../kernel/run.js';
import { CodeRegion } from '../native/codemem.js';
import { KernelState } from '../native/control-block.js';
import type { PgoEngine } from '../pgo/engine.js';
import type { Installer } from '../rejit/installer.js';
import { compileServer } from '../scheduler/compile-server.js';
import { threadCpuMs } from '../scheduler/proc.js';

export const TIMELINE_PARAMS = {
  /** One point per this many ms. */
  everyMs: 1000,
  /** Points kept per boot (a day of a serving kernel at one a second; older ones are thinned to every other). */
  maxPoints: 86_400,
  /** Events kept per boot (the newest). */
  maxEvents: 5_000,
};

export interface TimelinePointRecord {
  /** Seconds since the run's first operation (continuing across kernel restarts), at the end of the window. */
  t_s: number;
  /** Operations completed since the run started. */
  ops: number;
  ops_per_sec: number;
  /** Latency percentiles of the operations completed in the window (us; from scheduled arrival); null: none completed. */
  p50_us: number | null;
  p99_us: number | null;
  /** Share of the window the kernel spent in its blocking idle loop. */
  idle: number | null;
  /** Bytes of JIT code in use in kjit's code region. */
  code_bytes: number | null;
  rss_bytes: number;
  /** CPU of the compile server over the window, as a share of one CPU; null: no compile server (no re-JIT). */
  compile_cpu: number | null;
  /** CPU of Node's main thread (linking, installing, sampling drain, policy) over the window, as a share of one CPU. */
  main_cpu: number | null;
  /** The memory budget the kernel grants the JIT now, and what the JIT uses of it (its code and its compile server); null: no budget (absent in older boots). */
  grant_bytes?: number | null;
  budget_used_bytes?: number | null;
}

export type RunEventKind = 'install' | 'rollback' | 'revert' | 'evict' | 'sysctl' | 'phase' | 'patch' | 'fault' | 'instrument' | 'pgo';

export interface RunEvent {
  at_s: number;
  kind: RunEventKind;
  text: string;
}

/** What StoreSession.watch needs of a kernel the run booted (a fault in patched code boots another). */
export interface WatchTarget {
  instance: KernelInstance;
  prepared: PreparedBoot;
  installer?: Installer | null;
  engine?: PgoEngine | null;
  /** The memory budget negotiated with the kernel (src/scheduler/budget.ts), if the run has one. */
  budget?: { used(): number } | null;
  /** Seconds the run's earlier kernels ran (this kernel's clock starts there). */
  offsetS?: number;
}

/** The kind of one of the pgo engine's event lines (engine.ts `event`). */
export function classifyEngineEvent(text: string): RunEventKind {
  if (/^installed\b/.test(text)) return 'install';
  if (/^rolled back\b/.test(text)) return 'rollback';
  if (/^(reverted|de-specialized)\b/.test(text)) return 'revert';
  if (/^evicted\b/.test(text)) return 'evict';
  if (/^sysctl\b/.test(text)) return 'sysctl';
  if (/^counted\b/.test(text)) return 'instrument';
  return 'pgo';
}

/** Events of the pgo engine's timeline ("a; b" in a point's event: each its own). */
export function engineEvents(timeline: readonly { t_s: number; event?: string }[]): RunEvent[] {
  /* the engine joins a second's events with '; ' (an event's own text may hold one: split only before an event's first word) */
  const next = /; (?=(?:installed|rolled back|reverted|de-specialized|evicted|sysctl|counted|the policy)\b)/;
  return timeline.flatMap((p) => (p.event ? p.event.split(next).map((text) => ({ at_s: p.t_s, kind: classifyEngineEvent(text), text })) : []));
}

/** The time at which the run had completed `ops` operations, interpolated between points (null: outside them). */
export function timeOfOps(points: readonly TimelinePointRecord[], ops: number): number | null {
  let prev = { t_s: 0, ops: 0 };
  for (const p of points) {
    if (p.ops >= ops) {
      const span = p.ops - prev.ops;
      return span > 0 ? prev.t_s + ((ops - prev.ops) / span) * (p.t_s - prev.t_s) : p.t_s;
    }
    prev = p;
  }
  return null;
}

/** Phase changes of the `phases` workload, from the kernel log ("phases: operation N starts phase P (kind) ..."). */
export function phaseEvents(log: string, points: readonly TimelinePointRecord[]): RunEvent[] {
  const out: RunEvent[] = [];
  for (const m of log.matchAll(/phases: operation (\d+) starts phase (\d+) \((\w+)\)/g)) {
    const ops = Number(m[1]);
    if (ops === 0) continue; /* the first phase starts with the run */
    const at = timeOfOps(points, ops);
    if (at !== null) out.push({ at_s: Math.round(at * 1000) / 1000, kind: 'phase', text: `phase ${m[2]}: ${m[3]} (operation ${ops})` });
  }
  return out;
}

interface Reading {
  tMs: number;
  ops: number;
  idleNs: bigint;
  hist: BigUint64Array;
  latSumNs: bigint;
  compileMs: number | null;
  mainMs: number | null;
}

export class RunTimeline {
  readonly points: TimelinePointRecord[] = [];
  private readonly live: RunEvent[] = [];
  private timer: NodeJS.Timeout | null = null;
  private target: WatchTarget | null = null;
  private last: Reading | null = null;
  /** Operations of the kernels before the current one. */
  private opsBefore = 0;
  private opsOfCurrent = 0;
  private final: RunEvent[] | null = null;

  /** Record this kernel from now on (the previous one, if any, is done). */
  watch(t: WatchTarget): void {
    this.opsBefore += this.opsOfCurrent;
    this.opsOfCurrent = 0;
    this.target = t;
    this.last = this.read();
    if (!this.timer) {
      this.timer = setInterval(() => this.tick(), TIMELINE_PARAMS.everyMs);
      this.timer.unref();
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.target = null;
  }

  /** An event the host saw (a fault, a patch) at `atS` seconds into the run. */
  addEvent(e: RunEvent): void {
    this.live.push(e);
    if (this.live.length > TIMELINE_PARAMS.maxEvents) this.live.shift();
  }

  /** The events so far: the host's, and the pgo engine's (or, once the run ended, the final list). */
  events(): RunEvent[] {
    if (this.final) return this.final;
    const engine = this.target?.engine;
    return sortEvents([...this.live, ...(engine ? engineEvents(engine.history.timeline) : [])]);
  }

  /** The run ended: its events from what it reported (and the kernel log's phase changes). */
  finish(r: RunResult): RunEvent[] {
    this.stop();
    const ev: RunEvent[] = [...this.live];
    if (r.rejit.timeline) ev.push(...engineEvents(r.rejit.timeline));
    for (const p of r.rejit.patches) ev.push({ at_s: p.at_s, kind: 'patch', text: `live patch ${p.fn} from ${p.file}: ${p.functions.length} function(s) re-JITted` });
    for (const x of r.rejit.restarts) {
      const at = timeOfOps(this.points, x.after_ops + this.opsBefore);
      ev.push({ at_s: at ?? this.points.at(-1)?.t_s ?? 0, kind: 'fault', text: `fault in ${x.version}: ${x.action}` });
    }
    ev.push(...phaseEvents(r.log, this.points));
    this.final = sortEvents(ev).slice(-TIMELINE_PARAMS.maxEvents);
    return this.final;
  }

  private read(): Reading | null {
    const t = this.target;
    if (!t || t.instance.isDisposed) return null;
    const cb = t.instance.cb;
    return {
      tMs: performance.now(),
      ops: cb.getNumber('ops_done'),
      idleNs: cb.get('idle_ns'),
      hist: cb.array('lat_hist').slice(),
      latSumNs: cb.get('lat_sum_ns'),
      compileMs: t.installer ? compileServer(t.prepared).cpuMs() : null,
      mainMs: threadCpuMs(process.pid),
    };
  }

  private tick(): void {
    const t = this.target;
    const now = this.read();
    const before = this.last;
    if (!t || !now) return;
    this.last = now;
    /* the kernel's clock starts at its first operation */
    const first = t.instance.cb.get('t_first_op_ns');
    /* nothing before the first operation, nor once the kernel stopped (the run may take a while to end) */
    if (!before || first === 0n || t.instance.cb.getNumber('state') !== KernelState.RUNNING) return;
    const dtS = (now.tMs - before.tMs) / 1000;
    if (dtS <= 0) return;
    const delta = now.hist.map((c, i) => c - (before.hist[i] ?? 0n));
    const done = delta.reduce((s, c) => s + c, 0n);
    const lat = done > 0n ? latencyFromHistogram(delta, now.latSumNs - before.latSumNs, 1n << 62n) : null;
    const share = (a: number | null, b: number | null) => (a === null || b === null ? null : Math.max(0, (a - b) / 1000 / dtS));
    const sinceFirstS = Number(process.hrtime.bigint() - first) / 1e9;
    this.opsOfCurrent = now.ops;
    let region: number | null = null;
    try {
      region = CodeRegion.get().stats().bytesInUse;
    } catch {
      region = null;
    }
    const r3 = (x: number) => Math.round(x * 1000) / 1000;
    this.points.push({
      t_s: r3((t.offsetS ?? 0) + sinceFirstS),
      ops: this.opsBefore + now.ops,
      ops_per_sec: Math.round((now.ops - before.ops) / dtS),
      p50_us: lat ? lat.p50 : null,
      p99_us: lat ? lat.p99 : null,
      idle: r3(Math.min(1, Number(now.idleNs - before.idleNs) / 1e9 / dtS)),
      code_bytes: region,
      rss_bytes: process.memoryUsage.rss(),
      compile_cpu: share(now.compileMs, before.compileMs),
      main_cpu: share(now.mainMs, before.mainMs),
      grant_bytes: t.budget ? t.instance.cb.getNumber('grant_bytes') : null,
      budget_used_bytes: t.budget ? t.budget.used() : null,
    });
    if (this.points.length > TIMELINE_PARAMS.maxPoints) {
      /* thin the older half to every other point: a long-serving kernel keeps its whole span at a coarser grain */
      const half = Math.floor(this.points.length / 2);
      const older = this.points.splice(0, half).filter((_, i) => i % 2 === 1);
      this.points.unshift(...older);
    }
  }
}

function sortEvents(ev: RunEvent[]): RunEvent[] {
  return ev.sort((a, b) => a.at_s - b.at_s);
}

/** What a run reported, as the store keeps it for `kjit report` and `kjit explain` (no per-sample data). */
export function runSummary(r: RunResult): object {
  const j = r.rejit;
  const p = r.profile;
  return {
    mode: r.mode,
    workload: r.workload,
    seconds: r.seconds,
    ops: r.ops,
    ops_per_sec: r.ops_per_sec,
    cpu_ns_per_op: r.cpu_ns_per_op,
    latency_us: r.latency_us,
    idle_fraction: r.idle_fraction,
    checksum: r.checksum,
    boot_ms: r.boot.ms,
    boot_cache: r.boot.cache,
    config: { rate: r.config.rate, concurrency: r.config.concurrency, cpu: r.config.cpu, nic: r.config.nic, sysctls: r.config.sysctls },
    rejit: {
      installs: j.installs,
      reverts: j.reverts,
      rollbacks: j.rollbacks,
      restarts: j.restarts,
      versions_live: j.versions_live,
      patches: j.patches,
      policy: j.policy ?? null,
      compile_ms_total: j.compile_ms_total ?? null,
      compiles: j.compiles ?? null,
      compile_failures: j.compile_failures ?? null,
      versions_kept: j.versions_kept ?? null,
      versions_rolled_back: j.versions_rolled_back ?? null,
      windows: j.windows ?? null,
      verdicts: j.verdicts ?? [],
      time_to_95pct_peak_s: j.time_to_95pct_peak_s ?? null,
      peak_ops_per_sec: j.peak_ops_per_sec ?? null,
    },
    profile: p
      ? {
          samples: p.samples,
          achieved_hz: p.achieved_hz,
          requested_hz: p.requested_hz,
          dropped: p.dropped,
          cost_share: p.cost_share,
          top: p.top,
          versions: p.versions,
          inlined: p.inlined,
          throttled: p.throttled,
        }
      : null,
  };
}
