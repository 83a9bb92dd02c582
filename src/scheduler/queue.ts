/**
 * @fileoverview The job queue (policy, pure; the clock is injected): what
 * the compile server and the installer do next.  A policy offers jobs; the
 * queue admits them by expected benefit over cost against a threshold that
 * rises with pressure, orders them, drops the stale ones, and learns from
 * each job done.  Carrying a job out is the caller's.
 *
 * Order.  Urgent kinds first, oldest first among them: evict (memory is
 * being taken back, with a deadline), patch (a fix the user asked for),
 * despecialize (a specialization no longer holds).  Then every other job
 * by score = benefitMs / costMs, highest first:
 *   benefitMs = sampleShare x kernelLoad x expected speedup x horizonMs:
 *     the kernel CPU the job should save over the horizon; the expected
 *     speedup is the last one measured for this function and kind, else
 *     the mean measured for the kind (from `kindMeanAfter` measurements),
 *     else the prior; instrumenting is worth `instrumentWorth` of what
 *     optimizing is expected to give (it is only a step towards it);
 *   costMs = the compile-time model's prediction for the unit's IR size
 *     (src/scheduler/compile-model.ts).
 *
 * Thresholds (as HotSpot's tiered policy, compilationPolicy.cpp
 * threshold_scale): a job is admitted when its score reaches
 *   minScore x (queued / loadFeedback + 1)
 *            x (reverseFree > increaseAt ? exp(reverseFree - increaseAt) : 1)
 * where reverseFree = 1 / (1 - pressure) and pressure is the share of the
 * memory budget in use: half full, thresholds start rising; 80% full they
 * are x2.7; 90%, x400.  Hysteresis ("necessary to avoid jitter"): a
 * function and kind once admitted stays admitted until its score falls
 * below leaveRatio of the threshold, so a score wavering around the
 * threshold does not queue, drop, queue the same job.
 *
 * Staleness.  A job not started within ttlMs is dropped; a newer job for a
 * function supersedes every job queued for it (the policy's latest word
 * wins).  Beyond maxQueued the lowest-scoring job goes.  A patch (the user
 * asked for it) is never stale nor pushed out; only a newer patch for its
 * function supersedes it.  cancel() drops jobs on demand (a
 * revocation cancels queued compiles).
 */

import { CompileTimeModel } from './compile-model.js';

export type JobKind = 'instrument' | 'optimize' | 'specialize' | 'despecialize' | 'evict' | 'patch';

export const QUEUE_PARAMS = {
  /** A job not started within this is stale (ms). */
  ttlMs: 30_000,
  /** Benefit is kernel CPU saved over this horizon (ms). */
  horizonMs: 10_000,
  /** Admit at score >= this x the scale (1: save at least the compile's CPU). */
  minScore: 1,
  /** Hysteresis: an admitted function and kind leaves below this share of the threshold. */
  leaveRatio: 0.6,
  /** HotSpot's Tier*LoadFeedback: thresholds grow by one for every this many queued jobs. */
  loadFeedback: 8,
  /** HotSpot's IncreaseFirstTierCompileThresholdAt, as capacity / free: 2 = half full. */
  increaseAt: 2,
  /** Expected speedups before any is measured (share of the function's time saved). */
  priorSpeedup: { optimize: 0.1, specialize: 0.15 } as Record<'optimize' | 'specialize', number>,
  /** What instrumenting is worth, as a share of what optimizing is expected to give. */
  instrumentWorth: 0.5,
  /** Use a kind's mean measured speedup once it has this many measurements. */
  kindMeanAfter: 3,
  /** At most this many jobs queued. */
  maxQueued: 64,
  /** What a job that compiles nothing (evict, despecialize) costs (ms). */
  noCompileMs: 1,
  /** Drops remembered for inspection. */
  dropLog: 64,
};

export type QueueParams = typeof QUEUE_PARAMS;

const URGENT: Partial<Record<JobKind, number>> = { evict: 0, patch: 1, despecialize: 2 };
const COMPILES: Record<JobKind, boolean> = { instrument: true, optimize: true, specialize: true, patch: true, despecialize: false, evict: false };

export interface JobSpec {
  kind: JobKind;
  fn: string;
  /** The unit's IR size, in the compile-time model's measure. */
  irSize: number;
  /** The function's share of the kernel's samples (0..1). */
  sampleShare: number;
  /** The policy's reason, carried for the logs. */
  reason?: string;
  /** Whatever the caller needs to carry the job out. */
  payload?: unknown;
}

export interface Job extends JobSpec {
  id: number;
  enqueuedMs: number;
  /** As of the last scoring. */
  benefitMs: number;
  costMs: number;
  score: number;
}

export type DropReason = 'stale' | 'superseded' | 'below-threshold' | 'queue-full' | 'cancelled';
export type RefuseReason = 'below-threshold' | 'queue-full' | 'bad-input';

export interface Scoring {
  benefitMs: number;
  costMs: number;
  score: number;
  threshold: number;
  /** Where the expected speedup came from. */
  speedupFrom: 'function' | 'kind' | 'prior' | 'urgent';
}

export type OfferResult = { queued: true; job: Job; scoring: Scoring } | { queued: false; reason: RefuseReason; scoring: Scoring | null };

export interface Drop {
  job: Job;
  reason: DropReason;
  atMs: number;
}

export interface QueueStats {
  queued: number;
  running: number;
  done: number;
  failed: number;
  dropped: number;
  droppedBy: Record<DropReason, number>;
  refused: number;
  /** The admission threshold now. */
  threshold: number;
}

export interface QueueLoad {
  /** Share of the memory budget in use (0..1). */
  pressure?: number;
  /** Share of the time the kernel is busy (1 - idle fraction). */
  kernelLoad?: number;
}

export class JobQueue {
  readonly params: QueueParams;
  readonly model: CompileTimeModel;
  private readonly clock: () => number;
  private readonly queued: Job[] = [];
  private readonly running = new Map<number, Job>();
  private readonly admitted = new Set<string>();
  private readonly speedups = new Map<string, number>();
  private readonly kindSpeedups: Record<string, number[]> = {};
  private readonly drops: Drop[] = [];
  private nextId = 1;
  private pressure = 0;
  private kernelLoad = 1;
  private readonly counts = { done: 0, failed: 0, dropped: 0, refused: 0 };
  private readonly droppedBy: Record<DropReason, number> = { stale: 0, superseded: 0, 'below-threshold': 0, 'queue-full': 0, cancelled: 0 };

  constructor(opts: { clock: () => number; params?: Partial<QueueParams>; model?: CompileTimeModel }) {
    this.clock = opts.clock;
    this.params = { ...QUEUE_PARAMS, ...opts.params };
    this.model = opts.model ?? new CompileTimeModel();
  }

  setLoad(load: QueueLoad): void {
    if (load.pressure !== undefined) this.pressure = Math.min(1, Math.max(0, load.pressure));
    if (load.kernelLoad !== undefined) this.kernelLoad = Math.min(1, Math.max(0, load.kernelLoad));
  }

  /** The admission threshold now (minScore scaled by queue length and memory pressure). */
  threshold(): number {
    const p = this.params;
    let k = this.queued.length / p.loadFeedback + 1;
    const reverseFree = 1 / Math.max(1e-3, 1 - this.pressure);
    if (reverseFree > p.increaseAt) k *= Math.exp(reverseFree - p.increaseAt);
    return p.minScore * k;
  }

  /** The expected speedup of `kind` for `fn`, and where it came from. */
  expectedSpeedup(fn: string, kind: JobKind): { speedup: number; from: Scoring['speedupFrom'] } {
    const p = this.params;
    if (kind === 'instrument') {
      const o = this.expectedSpeedup(fn, 'optimize');
      return { speedup: o.speedup * p.instrumentWorth, from: o.from };
    }
    const own = this.speedups.get(`${fn}\0${kind}`);
    if (own !== undefined) return { speedup: own, from: 'function' };
    const all = this.kindSpeedups[kind] ?? [];
    if (all.length >= p.kindMeanAfter) return { speedup: all.reduce((a, b) => a + b, 0) / all.length, from: 'kind' };
    return { speedup: p.priorSpeedup[kind as 'optimize' | 'specialize'] ?? 0, from: 'prior' };
  }

  score(spec: JobSpec): Scoring {
    const threshold = this.threshold();
    if (URGENT[spec.kind] !== undefined) return { benefitMs: Infinity, costMs: this.costOf(spec), score: Infinity, threshold, speedupFrom: 'urgent' };
    const { speedup, from } = this.expectedSpeedup(spec.fn, spec.kind);
    const benefitMs = spec.sampleShare * this.kernelLoad * speedup * this.params.horizonMs;
    const costMs = this.costOf(spec);
    return { benefitMs, costMs, score: benefitMs / costMs, threshold, speedupFrom: from };
  }

  /** Offer a job: queued, or refused with why. */
  offer(spec: JobSpec): OfferResult {
    if (!spec.fn || !Number.isFinite(spec.irSize) || spec.irSize < 0 || !(spec.sampleShare >= 0 && spec.sampleShare <= 1) || !(spec.kind in COMPILES)) {
      this.counts.refused++;
      return { queued: false, reason: 'bad-input', scoring: null };
    }
    const now = this.clock();
    this.dropStale(now);
    const s = this.score(spec);
    const key = admitKey(spec);
    const bar = this.admitted.has(key) ? s.threshold * this.params.leaveRatio : s.threshold;
    if (!(s.score >= bar)) {
      this.admitted.delete(key);
      this.counts.refused++;
      return { queued: false, reason: 'below-threshold', scoring: s };
    }
    this.admitted.add(key);
    for (const old of this.queued.filter((j) => j.fn === spec.fn && (j.kind !== 'patch' || spec.kind === 'patch'))) this.drop(old, 'superseded', now);
    const job: Job = { ...spec, id: this.nextId++, enqueuedMs: now, benefitMs: s.benefitMs, costMs: s.costMs, score: s.score };
    this.queued.push(job);
    if (this.queued.length > this.params.maxQueued) {
      const worst = this.ordered()
        .filter((j) => j.kind !== 'patch')
        .pop();
      if (worst) this.drop(worst, 'queue-full', now);
      if (worst === job) return { queued: false, reason: 'queue-full', scoring: s };
    }
    return { queued: true, job, scoring: s };
  }

  /**
   * The job to carry out now (it is then running until done() or failed()),
   * or null.  Stale jobs, and jobs whose score fell below the hysteresis
   * level (a speedup measured meanwhile, more pressure), are dropped first.
   */
  next(): Job | null {
    const now = this.clock();
    this.dropStale(now);
    const threshold = this.threshold();
    for (const job of [...this.queued]) {
      const s = this.score(job);
      Object.assign(job, { benefitMs: s.benefitMs, costMs: s.costMs, score: s.score });
      if (s.score < threshold * this.params.leaveRatio) {
        this.admitted.delete(admitKey(job));
        this.drop(job, 'below-threshold', now);
      }
    }
    const job = this.ordered()[0];
    if (!job) return null;
    this.queued.splice(this.queued.indexOf(job), 1);
    this.running.set(job.id, job);
    return job;
  }

  /** The queued jobs in the order next() would take them. */
  ordered(): Job[] {
    return [...this.queued].sort(byOrder);
  }

  /**
   * A job was carried out.  `compileMs` (jobs that compiled) teaches the
   * compile-time model; `speedup`, if already measured, the benefit model
   * (or call recordSpeedup later).
   */
  done(job: Job, result: { compileMs?: number; speedup?: number } = {}): void {
    if (!this.running.delete(job.id)) return;
    this.counts.done++;
    if (result.compileMs !== undefined && COMPILES[job.kind]) this.model.add(job.irSize, result.compileMs);
    if (result.speedup !== undefined) this.recordSpeedup(job.fn, job.kind, result.speedup);
  }

  /** A job could not be carried out (the old code keeps running; a failure never stops the kernel). */
  failed(job: Job): void {
    if (this.running.delete(job.id)) this.counts.failed++;
  }

  /** What a version of `kind` achieved for `fn`: the share of its time saved (negative: slower). */
  recordSpeedup(fn: string, kind: JobKind, speedup: number): void {
    if (!Number.isFinite(speedup)) return;
    this.speedups.set(`${fn}\0${kind}`, speedup);
    (this.kindSpeedups[kind] ??= []).push(speedup);
  }

  /** Drop queued jobs (all, or those `which` picks): a revocation cancels queued compiles. Returns how many. */
  cancel(which: (job: Job) => boolean = () => true, reason: DropReason = 'cancelled'): number {
    const now = this.clock();
    const gone = this.queued.filter(which);
    for (const job of gone) this.drop(job, reason, now);
    return gone.length;
  }

  /** The last drops, oldest first. */
  recentDrops(): readonly Drop[] {
    return this.drops;
  }

  stats(): QueueStats {
    return {
      queued: this.queued.length,
      running: this.running.size,
      ...this.counts,
      droppedBy: { ...this.droppedBy },
      threshold: this.threshold(),
    };
  }

  private costOf(spec: JobSpec): number {
    return COMPILES[spec.kind] ? this.model.predict(spec.irSize) : this.params.noCompileMs;
  }

  private dropStale(now: number): void {
    for (const job of this.queued.filter((j) => j.kind !== 'patch' && now - j.enqueuedMs > this.params.ttlMs)) this.drop(job, 'stale', now);
  }

  private drop(job: Job, reason: DropReason, now: number): void {
    const i = this.queued.indexOf(job);
    if (i < 0) return;
    this.queued.splice(i, 1);
    this.counts.dropped++;
    this.droppedBy[reason]++;
    this.drops.push({ job, reason, atMs: now });
    if (this.drops.length > this.params.dropLog) this.drops.shift();
  }
}

function admitKey(spec: JobSpec): string {
  return `${spec.fn}\0${spec.kind}`;
}

function byOrder(a: Job, b: Job): number {
  const ua = URGENT[a.kind] ?? Infinity;
  const ub = URGENT[b.kind] ?? Infinity;
  if (ua !== ub) return ua - ub;
  if (ua !== Infinity) return a.enqueuedMs - b.enqueuedMs || a.id - b.id;
  return b.score - a.score || a.enqueuedMs - b.enqueuedMs || a.id - b.id;
}
