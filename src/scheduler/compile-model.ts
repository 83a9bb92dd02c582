/**
 * @fileoverview How long a re-JIT unit takes to compile (policy, pure): a
 * line fitted online to (IR size, compile ms) of the last units built, by
 * least squares (simple-statistics).  Until it has `minPoints` points of at
 * least two different sizes it answers with a prior line.  The job queue
 * (src/scheduler/queue.ts) divides a job's expected benefit by this cost.
 *
 * IR size is whatever measure the caller uses, consistently: the prior is
 * in instructions of the unit's function plus the callees it may inline.
 * Measured on the reference image (boot mode, 2-core znver3 VM): a unit is
 * dominated by a fixed cost, parsing and specializing the whole image's
 * bitcode (~60 ms), plus a few us per instruction optimized.
 */
import { linearRegression, rSquared } from 'simple-statistics';

export const MODEL_PARAMS = {
  /** The prior line: compile ms = priorFixedMs + priorMsPerUnit x size. */
  priorFixedMs: 60,
  priorMsPerUnit: 0.01,
  /** Fit only with this many points (and two sizes at least). */
  minPoints: 5,
  /** Fit over the most recent this many points (compile times drift as the server's load does). */
  window: 128,
  /** No prediction below this (ms). */
  minMs: 1,
};

export interface CompileTimeFit {
  source: 'prior' | 'fit';
  /** ms per unit of size, and ms at size 0. */
  msPerUnit: number;
  fixedMs: number;
  points: number;
  /** Of the fit (null for the prior). */
  r2: number | null;
}

export class CompileTimeModel {
  private readonly points: [number, number][] = [];
  private cached: CompileTimeFit | null = null;

  constructor(private readonly params: typeof MODEL_PARAMS = MODEL_PARAMS) {}

  /** A unit of `size` took `ms` to compile. */
  add(size: number, ms: number): void {
    if (!Number.isFinite(size) || !Number.isFinite(ms) || size < 0 || ms < 0) return;
    this.points.push([size, ms]);
    if (this.points.length > this.params.window) this.points.shift();
    this.cached = null;
  }

  get size(): number {
    return this.points.length;
  }

  fit(): CompileTimeFit {
    if (this.cached) return this.cached;
    const p = this.params;
    const prior: CompileTimeFit = { source: 'prior', msPerUnit: p.priorMsPerUnit, fixedMs: p.priorFixedMs, points: this.points.length, r2: null };
    const xs = new Set(this.points.map(([x]) => x));
    if (this.points.length < p.minPoints || xs.size < 2) return (this.cached = prior);
    let { m, b } = linearRegression(this.points);
    if (m < 0) {
      /* noise made it slope down: bigger units are not cheaper; use their mean */
      m = 0;
      b = this.points.reduce((s, [, y]) => s + y, 0) / this.points.length;
    }
    const r2 = rSquared(this.points, (x: number) => m * x + b);
    return (this.cached = { source: 'fit', msPerUnit: m, fixedMs: b, points: this.points.length, r2: Number.isFinite(r2) ? r2 : null });
  }

  /** Expected compile ms of a unit of `size`. */
  predict(size: number): number {
    const f = this.fit();
    return Math.max(this.params.minMs, f.fixedMs + f.msPerUnit * size);
  }
}
