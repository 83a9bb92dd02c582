/**
 * @fileoverview One status line for long commands (benchmarks, long runs):
 * what runs now, how far along, and the estimated time left, redrawn in
 * place on stderr when it is a terminal; nothing at all with --json or when
 * stderr is not a terminal (log lines then go on as before).
 */

/** "1 min 05 s", "42 s", "2 h 03 min". */
export function duration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(Math.round(s % 60)).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.round((s % 3600) / 60)).padStart(2, '0')} min`;
}

/** The time left when `done` of `total` units took `elapsedS` (null until something is done). */
export function eta(done: number, total: number, elapsedS: number): number | null {
  return done > 0 && total >= done ? (elapsedS / done) * (total - done) : null;
}

export class ProgressLine {
  private done = 0;
  private now = '';
  /** When the first step started (what came before, such as compiling, is not work the estimate can scale). */
  private t0: number | null = null;
  private shown = false;

  /**
   * `total`: the work in any unit (seconds of runs, runs); `enabled`: draw
   * at all (default: stderr is a terminal).  Pass `json` to stay quiet.
   */
  constructor(
    private readonly label: string,
    /** May be set once the work is known (0: no percentage or estimate yet). */
    public total: number,
    private readonly enabled = process.stderr.isTTY === true,
    private readonly out: (s: string) => void = (s) => process.stderr.write(s),
  ) {}

  /** `what` starts now. */
  start(what: string): void {
    this.t0 ??= performance.now();
    this.now = what;
    this.draw();
  }

  /** The current step is done (`weight` units). */
  step(weight = 1): void {
    this.done += weight;
    this.draw();
  }

  /** A log line, printed above the status line. */
  log(line: string): void {
    if (this.shown) this.out('\r\x1b[K');
    this.out(`${line}\n`);
    this.shown = false;
    this.draw();
  }

  /** Clear the status line (the command prints its result next). */
  finish(): void {
    if (this.shown) this.out('\r\x1b[K');
    this.shown = false;
  }

  /** The status line's text. */
  text(): string {
    const elapsed = this.t0 === null ? 0 : (performance.now() - this.t0) / 1000;
    const left = eta(this.done, this.total, elapsed);
    const pct = this.total > 0 ? Math.min(100, (this.done / this.total) * 100) : 0;
    return `${this.label}: ${pct.toFixed(0)}%, ${duration(elapsed)} elapsed, ${left === null ? 'time left: estimating' : `about ${duration(left)} left`}${this.now ? ` · now: ${this.now}` : ''}`;
  }

  private draw(): void {
    if (!this.enabled) return;
    const cols = process.stderr.columns || 120;
    const t = this.text();
    this.out(`\r${t.length >= cols ? `${t.slice(0, cols - 2)}…` : t}\x1b[K`);
    this.shown = true;
  }
}
