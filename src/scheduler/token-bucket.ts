/**
 * @fileoverview The compile server's guaranteed minimum CPU share (policy,
 * pure): a token bucket over the server's CPU time.  The mechanism
 * (src/scheduler/compile-server.ts) only moves the server between
 * SCHED_IDLE and SCHED_OTHER at the nice value given here.
 *
 * SCHED_IDLE gives the server the CPU nobody else wants, which under full
 * load is nothing (CFS weight 3 against 1024 for a nice-0 thread: 0.3%).
 * The bucket earns `minShare` ms of CPU per ms of wall time and is spent by
 * every ms the server runs while it has work, whatever its policy: CPU it
 * got from idle time counts toward its minimum too.  When the bucket holds
 * `liftAtMs` and the server has work, it is lifted to SCHED_OTHER at
 * `liftNice`; when the bucket is empty (or the work is done) it drops back
 * to SCHED_IDLE.  Lift and drop at different levels (hysteresis), so the
 * server does not flap between policies every tick.  The bucket holds at
 * most `capacityMs`: after a quiet spell a job gets that much at once.
 * What the server overspends while lifted (the mechanism looks only every
 * so often) is owed: the bucket goes below zero, down to -capacityMs, and
 * the debt is earned back before the next lift, so the share holds on
 * average however coarse the steps.  CPU it got at SCHED_IDLE is never
 * owed.  nextStepInMs() says when a step could change the decision, so
 * the mechanism wakes a few times a second, not every tick (a Node timer
 * wake-up costs ~0.15 ms of CPU on this VM: 50 Hz would be 0.8% of a core).
 *
 * Why not nice 19 as DESIGN.md says: CFS shares a core by weight, and
 * nice 19 weighs 15 against 1024, 1.44% of a core shared with one busy
 * nice-0 thread, below the 2% default.  The lift uses the weakest nice
 * whose weight reaches the share (niceForShare: 2% -> nice 17, 2.2%);
 * `liftNice: 19` forces DESIGN.md's value.
 */

export const BUCKET_PARAMS = {
  /** Guaranteed share of one core for the compile server under full load. */
  minShare: 0.02,
  /** Most CPU ms the bucket holds (a burst after a quiet spell). */
  capacityMs: 100,
  /** Lift only once this many CPU ms are in the bucket (hysteresis: drop at 0). */
  liftAtMs: 5,
  /** The mechanism steps the bucket at most this often while the server has work (ms)... */
  tickMs: 20,
  /** ...and at least this often (ms). */
  maxTickMs: 500,
};

/** CFS weights of nice 0..19 (kernel/sched/core.c, sched_prio_to_weight). */
const NICE_WEIGHT = [1024, 820, 655, 526, 423, 335, 272, 215, 172, 137, 110, 87, 70, 56, 45, 36, 29, 23, 18, 15];

/**
 * The largest nice value (weakest priority) at which a thread gets at least
 * `share` of a core it shares with `competitors` busy nice-0 threads.
 */
export function niceForShare(share: number, competitors = 1): number {
  for (let nice = 19; nice >= 0; nice--) {
    const w = NICE_WEIGHT[nice]!;
    if (w / (w + 1024 * competitors) >= share) return nice;
  }
  return 0;
}

/** The share of a core a thread at `nice` gets against `competitors` busy nice-0 threads. */
export function shareAtNice(nice: number, competitors = 1): number {
  const w = NICE_WEIGHT[Math.max(0, Math.min(19, nice))]!;
  return w / (w + 1024 * competitors);
}

export interface BucketOptions {
  minShare: number;
  capacityMs: number;
  liftAtMs: number;
}

export type BucketReason = 'no-work' | 'starved' | 'spent' | 'within-share' | 'disabled';

export interface BucketDecision {
  /** Run the server at SCHED_OTHER (true) or SCHED_IDLE (false). */
  lift: boolean;
  reason: BucketReason;
  numbers: { tokensMs: number; earnedMs: number; spentMs: number };
}

export class TokenBucket {
  readonly opts: BucketOptions;
  /** CPU ms the server may still run lifted. */
  tokensMs: number;
  lifted = false;
  /** Lifts so far, and wall ms spent lifted. */
  lifts = 0;
  liftedMs = 0;
  private lastMs: number;
  private lastCpuMs: number | null = null;
  /* the server's CPU per wall ms over the last step */
  private lastRate = 0;

  constructor(nowMs: number, opts: Partial<BucketOptions> = {}) {
    this.opts = {
      minShare: opts.minShare ?? BUCKET_PARAMS.minShare,
      capacityMs: opts.capacityMs ?? BUCKET_PARAMS.capacityMs,
      liftAtMs: opts.liftAtMs ?? BUCKET_PARAMS.liftAtMs,
    };
    if (!(this.opts.minShare >= 0 && this.opts.minShare <= 1)) throw new RangeError(`minShare ${this.opts.minShare} is not a share in [0, 1]`);
    this.tokensMs = this.opts.capacityMs;
    this.lastMs = nowMs;
  }

  /**
   * Advance to `nowMs`: earn the share of the wall time since the last step,
   * spend the CPU the server used since then (`serverCpuMs` is its running
   * total; a new server process starts a new total: call restart()), and
   * decide whether it runs lifted until the next step.
   */
  step(nowMs: number, serverCpuMs: number, hasWork: boolean): BucketDecision {
    const dt = Math.max(0, nowMs - this.lastMs);
    if (this.lifted) this.liftedMs += dt;
    this.lastMs = nowMs;
    const earnedMs = dt * this.opts.minShare;
    const spentMs = this.lastCpuMs === null ? 0 : Math.max(0, serverCpuMs - this.lastCpuMs);
    this.lastCpuMs = serverCpuMs;
    this.lastRate = dt > 0 ? spentMs / dt : 0;
    /* overspending while lifted is owed; CPU from idle time is not */
    const floor = this.lifted ? -this.opts.capacityMs : Math.min(0, this.tokensMs);
    this.tokensMs = Math.min(this.opts.capacityMs, Math.max(floor, this.tokensMs + earnedMs - (hasWork ? spentMs : 0)));
    const numbers = { tokensMs: this.tokensMs, earnedMs, spentMs };
    const decide = (lift: boolean, reason: BucketReason): BucketDecision => {
      if (lift && !this.lifted) this.lifts++;
      this.lifted = lift;
      return { lift, reason, numbers };
    };
    if (this.opts.minShare === 0) return decide(false, 'disabled');
    if (!hasWork) return decide(false, 'no-work');
    if (this.lifted) return this.tokensMs > 0 ? decide(true, 'starved') : decide(false, 'spent');
    return this.tokensMs >= this.opts.liftAtMs ? decide(true, 'starved') : decide(false, 'within-share');
  }

  /**
   * When (ms from the last step) a step could next change the decision:
   * lifted, when the tokens could run out at the rate the server ran at
   * over the last step; not lifted, when enough is earned to lift.  Within
   * [tickMs, maxTickMs].
   */
  nextStepInMs(hasWork: boolean): number {
    const { tickMs, maxTickMs } = BUCKET_PARAMS;
    const o = this.opts;
    let ms: number;
    if (!hasWork || o.minShare === 0) ms = maxTickMs;
    else if (this.lifted) ms = this.tokensMs / Math.max(this.lastRate - o.minShare, 0.05);
    else ms = (o.liftAtMs - this.tokensMs) / o.minShare;
    return Math.min(maxTickMs, Math.max(tickMs, ms));
  }

  /** The server process was replaced: its CPU total starts again. */
  restart(): void {
    this.lastCpuMs = null;
  }
}
