/**
 * @fileoverview The compile server (DESIGN.md section 7): re-JIT units are
 * built in a child process with its own LLVM (src/scheduler/compile-worker.ts),
 * never in the process the kernel runs in.  An LLVM crash or an out-of-
 * memory kills only the server, and the optimizer's heap churn (measured: a
 * unit leaves ~15 KB of fragmented, unreturnable heap behind) stays out of
 * the kernel's process.  The main thread only links the object code.
 *
 * Mechanism: one server per prepared boot, started on first use (or by
 * warm()), jobs answered in order.  It is recycled after RECYCLE_JOBS jobs
 * (a fresh process gives its fragmented heap back), stopped after IDLE_MS
 * without work, and never keeps Node running.
 *
 * Priority.  The server runs at SCHED_IDLE, on the CPUs asked (`cpus`).
 * Under full load SCHED_IDLE gets nothing, so a token bucket
 * (src/scheduler/token-bucket.ts, the policy) lifts it to SCHED_OTHER at a
 * high nice value while it spends its guaranteed minimum share; this file
 * only reads its CPU while it has work, when the bucket asks
 * (TokenBucket.nextStepInMs), and switches the policy of its threads (all
 * of them: a policy is per thread).  `batch` (kjit run --batch) runs it at
 * normal priority instead, and the caller waits with drain() between its
 * measured intervals, so compiles never overlap them.
 *
 * Memory.  `memoryLimitBytes`, the compiler's share of the JIT's budget, is
 * the address space (RLIMIT_AS) the server's compiles may add to the server
 * as it is when ready (Node, LLVM and the image's IR: ServerReady.baseline*;
 * the budget must count that baseline too).  A new limit is applied to the
 * running server at once (prlimit); if it already maps more than the new
 * limit allows it is killed (its memory is back at once) and its jobs go
 * to a new server: lowering never waits for a compile to end.
 *
 * Deaths.  A server that dies (LLVM fatal error, allocation beyond its
 * limit, a crash, a kill) is replaced.  The job it was building (jobs are
 * answered in order: the oldest one it had) is tried again RETRIES times,
 * then blacklisted: later requests for the same unit fail at once, with
 * why.  The jobs queued behind it are resent, never blamed.  Raising the
 * memory limit forgives what the old limit killed.  A server that dies
 * before it is ready MAX_START_FAILURES times in a row is not started again
 * until resetFailures() or a new memory limit.
 */
import { type ChildProcess, fork } from 'node:child_process';

import { KjitError } from '../errors.js';
import type { PreparedBoot } from '../kernel/run.js';
import { RLIM_INFINITY, RLIMIT_AS, SCHED_IDLE, SCHED_OTHER, processLimit, setNice, setSchedulerPolicy } from '../native/libc.js';
import type { BuiltUnit, UnitRequest } from '../rejit/unit.js';
import type { BuiltImageUnit, ImageUnitRequest } from '../rejit/image-unit.js';
import type { ServerFault, ServerReady, ServerReply, ServerRequest, ServerSettings } from './compile-worker.js';
import { processCpuMs, processMemory, threadIds } from './proc.js';
import { BUCKET_PARAMS, niceForShare, TokenBucket } from './token-bucket.js';

const WORKER = new URL('./compile-worker.js', import.meta.url);

export const SERVER_PARAMS = {
  /** Recycle the process after this many jobs (its fragmented heap goes back). */
  recycleJobs: 256,
  /** Stop the process after this long without work (ms). */
  idleMs: 30_000,
  /** Times a job that killed the server is tried again before it is blacklisted. */
  retries: 1,
  /** Deaths before ready in a row after which the server is not started again. */
  maxStartFailures: 2,
  /** The server's nice value at SCHED_IDLE (it does not count there; kept for the lift). */
  idleNice: 19,
};

/** How a server died. */
export type DeathCause = 'memory' | 'llvm-fatal' | 'crash' | 'killed';

export class CompileServerError extends Error {
  /** How the server died (null: it did not; the job was refused). */
  readonly death: DeathCause | null;
  /** The unit is blacklisted: it will not be built again. */
  readonly blacklisted: boolean;
  /** The job was cancelled before it was answered (cancel(): a revocation of the memory budget). */
  readonly cancelled: boolean;
  constructor(message: string, death: DeathCause | null = null, blacklisted = false, cancelled = false) {
    super(message);
    this.name = 'CompileServerError';
    this.death = death;
    this.blacklisted = blacklisted;
    this.cancelled = cancelled;
  }
}

export interface CompileServerOptions {
  /** CPUs the server may run on (--cpus); null: any. */
  cpus: number[] | null;
  /** The compiler's share of the memory budget (bytes): see the file comment; null: no limit. */
  memoryLimitBytes: number | null;
  /** Guaranteed share of a core under full load (token bucket); 0: SCHED_IDLE only. */
  minShare: number;
  /** Nice value while lifted; null: niceForShare(minShare). */
  liftNice: number | null;
  /** --batch: normal priority, no bucket; the caller compiles between measured intervals (drain()). */
  batch: boolean;
  /** Times a job that killed the server is tried again before it is blacklisted. */
  retries: number;
}

export const DEFAULT_SERVER_OPTIONS: CompileServerOptions = {
  cpus: null,
  memoryLimitBytes: null,
  minShare: BUCKET_PARAMS.minShare,
  liftNice: null,
  /* KJIT_COMPILE_BATCH=1 (the tests set it): normal priority, so a test's compiles do not wait for other processes' load */
  batch: process.env.KJIT_COMPILE_BATCH === '1',
  retries: SERVER_PARAMS.retries,
};

export interface BlacklistEntry {
  key: string;
  fn: string;
  kind: string;
  death: DeathCause;
  /** The server's last words the last time. */
  message: string;
}

export interface CompileServerStats {
  /** Processes started (first start, recycling, idle stop and restarts). */
  starts: number;
  /** Deaths plus kills to apply a lowered memory limit. */
  restarts: number;
  deaths: Record<DeathCause, number>;
  limitRestarts: number;
  /** Units built, and jobs that failed (an error, a death after the retries, a refusal, a cancel). */
  built: number;
  failed: number;
  retried: number;
  /** Jobs cancelled before they were answered (cancel()). */
  cancelled: number;
  blacklisted: BlacklistEntry[];
  /** CPU ms of every server process so far (the running one read now). */
  cpuMs: number;
  /** Highest RSS any server process reached (bytes), and the running one's baseline when ready. */
  peakRssBytes: number;
  baselineRssBytes: number;
  /** Token bucket: lifts to SCHED_OTHER and wall ms spent lifted; why lifting is off, if it is. */
  lifts: number;
  liftedMs: number;
  liftProblem: string | null;
  /** What the running server reported when ready (null: none running or not ready yet). */
  ready: ServerReady | null;
}

/** What identifies a unit for the blacklist. */
export function unitKey(req: UnitRequest): string {
  const r = req as UnitRequest & { instrument?: string };
  return [req.fn, req.kind, req.countEntries ? 'hits' : '', r.instrument ?? '', req.source ? `src${req.source.byteLength}:${sourceHash(req.source)}` : ''].join('/');
}

function sourceHash(b: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  return h >>> 0;
}

/**
 * Why a server died, from how it ended and its last words.  Under an
 * address-space limit a silent SIGSEGV or SIGBUS is taken for the limit:
 * a thread's stack that cannot grow faults without a word (measured: a
 * 1 MB limit killed the server so; 4 MB, with std::bad_alloc).
 */
export function classifyDeath(code: number | null, signal: NodeJS.Signals | null, stderr: string, limited = false): DeathCause {
  if (/out of memory|bad_alloc|allocation failed|cannot allocate memory|ENOMEM/i.test(stderr)) return 'memory';
  if (/LLVM ERROR/.test(stderr)) return 'llvm-fatal';
  if (limited && (signal === 'SIGSEGV' || signal === 'SIGBUS') && stderr.trim() === '') return 'memory';
  if (signal === 'SIGKILL' || signal === 'SIGTERM' || signal === 'SIGINT') return 'killed';
  return code === 0 && !signal ? 'killed' : 'crash';
}

/* What to quote of a dead server's stderr: LLVM's or the allocator's own line, else its last lines (not Node's stack dump). */
function lastWords(stderr: string): string {
  const lines = stderr.trim().split('\n');
  const own = lines.filter((l) => /LLVM ERROR|bad_alloc|out of memory|terminate called/i.test(l));
  return (own.length ? own : lines).slice(-3).join(' / ');
}

interface ServerProcess {
  child: ChildProcess;
  pid: number;
  ready: ServerReady | null;
  /** The memory limit it was started with or last given. */
  limitBytes: number | null;
  /** Its CPU ms as last known (its answers, the bucket's reads). */
  cpuMs: number;
  peakRssBytes: number;
  stderr: string;
  /** Why kjit is ending it (null: it is not). */
  ending: 'closed' | 'recycled' | 'restart' | null;
  /* its CPU is in closedCpuMs already */
  counted?: boolean;
  served: number;
}

interface Job {
  id: number;
  fn: string;
  key: string;
  req: UnitRequest;
  fault: ServerFault | undefined;
  /** Deaths it caused. */
  deaths: number;
  proc: ServerProcess | null;
  resolve: (u: BuiltUnit) => void;
  reject: (e: Error) => void;
}

export class CompileServer {
  private proc: ServerProcess | null = null;
  private readonly jobs = new Map<number, Job>();
  private readonly blacklist = new Map<string, BlacklistEntry>();
  private readonly drains: (() => void)[] = [];
  private nextJob = 1;
  private idle: NodeJS.Timeout | null = null;
  private opts: CompileServerOptions;
  /* the running process was started with other settings: recycle it when idle */
  private stale = false;
  private startFailures = 0;
  private bucket: TokenBucket | null = null;
  private bucketTimer: NodeJS.Timeout | null = null;
  private lifted = false;
  private liftProblem: string | null = null;
  private closedCpuMs = 0;
  private peakRssBytes = 0;
  private readonly counts = { starts: 0, restarts: 0, limitRestarts: 0, built: 0, failed: 0, retried: 0, cancelled: 0 };
  private readonly deaths: Record<DeathCause, number> = { memory: 0, 'llvm-fatal': 0, crash: 0, killed: 0 };

  constructor(
    private readonly init: () => ServerRequest & { type: 'init' },
    opts: Partial<CompileServerOptions> = {},
  ) {
    this.opts = { ...DEFAULT_SERVER_OPTIONS, ...opts };
    this.resetBucket();
  }

  /** Processes started so far (recycled, idle-stopped or died). */
  get starts(): number {
    return this.counts.starts;
  }

  /** The server process's pid, if it is running. */
  get pid(): number | undefined {
    return this.proc?.pid;
  }

  get options(): Readonly<CompileServerOptions> {
    return this.opts;
  }

  /** Jobs sent and not answered yet. */
  get pending(): number {
    return this.jobs.size;
  }

  /** Start the process now, so the first unit does not wait for it. */
  warm(): void {
    if (this.startFailures < SERVER_PARAMS.maxStartFailures) this.process();
  }

  /**
   * Build a unit.  Rejects with a CompileServerError if the server died on
   * it more than `retries` times (the unit is then blacklisted), if it is
   * blacklisted, or if the server cannot start; with the build's own error
   * if the unit cannot be built.  `fault` injects a death (tests only).
   */
  build(req: UnitRequest, opts: { fault?: ServerFault } = {}): Promise<BuiltUnit> {
    const key = unitKey(req);
    const banned = this.blacklist.get(key);
    if (banned) {
      this.counts.failed++;
      return Promise.reject(
        new CompileServerError(`${req.fn} (${req.kind}) is blacklisted: it killed the compile server (${banned.death}): ${banned.message}`, banned.death, true),
      );
    }
    if (this.startFailures >= SERVER_PARAMS.maxStartFailures) {
      this.counts.failed++;
      return Promise.reject(new CompileServerError(`the compile server died ${this.startFailures} times before it was ready; not starting it again (resetFailures())`));
    }
    return new Promise<BuiltUnit>((resolve, reject) => {
      const job: Job = { id: this.nextJob++, fn: req.fn, key, req, fault: opts.fault, deaths: 0, proc: null, resolve, reject };
      this.jobs.set(job.id, job);
      this.dispatch(job);
    });
  }

  /** A tier of many functions (src/rejit/image-unit.ts): one job like a unit. */
  buildImage(req: ImageUnitRequest): Promise<BuiltImageUnit> {
    return this.build({ fn: `[tier ${req.id}]`, kind: 'optimized', id: req.id, image: req }) as unknown as Promise<BuiltImageUnit>;
  }

  /**
   * Cancel every job not answered yet (a revocation of the memory budget
   * cancels queued compiles): each is rejected with a CompileServerError
   * whose `cancelled` is set, and nobody is blamed (no retry, no
   * blacklist).  A server that had any of them is killed (as for a lowered
   * limit: its memory is back at once, and the compile under way does not
   * run on); the next job starts a new one.  Returns how many.
   */
  cancel(why: string): number {
    const gone = [...this.jobs.values()];
    if (gone.length === 0) return 0;
    for (const job of gone) {
      this.jobs.delete(job.id);
      this.counts.failed++;
      this.counts.cancelled++;
      job.reject(new CompileServerError(`${job.fn}: the compile was cancelled: ${why}`, null, false, true));
    }
    /* a last step: no work, so the bucket drops the server back to SCHED_IDLE */
    this.stopBucket();
    if (this.jobs.size === 0) this.stepBucket();
    const proc = this.proc;
    if (proc && gone.some((j) => j.proc === proc)) {
      this.counts.limitRestarts++;
      this.stop(proc, 'restart');
    }
    for (const resolve of this.drains.splice(0)) resolve();
    return gone.length;
  }

  /**
   * Stop the server process now if it has no job out: its memory is back
   * at once (a revocation took the compiler's share); the next job starts
   * a new one.  Counted as a kill for a lowered limit.  True if one was stopped.
   */
  release(): boolean {
    const proc = this.proc;
    if (!proc || this.jobs.size > 0) return false;
    this.counts.limitRestarts++;
    this.stop(proc, 'restart');
    return true;
  }

  /** Resolves once no job is out (--batch: the caller compiles between its measured intervals). */
  drain(): Promise<void> {
    if (this.jobs.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.drains.push(resolve));
  }

  /**
   * Change settings at run time.  A memory limit applies at once
   * (setMemoryLimit), so do the bucket's; CPUs and --batch apply to the
   * next process: the running one is recycled as soon as it has no jobs.
   */
  configure(opts: Partial<CompileServerOptions>): void {
    const { memoryLimitBytes, ...rest } = opts;
    const before = this.opts;
    this.opts = { ...this.opts, ...rest };
    if (rest.minShare !== undefined || rest.liftNice !== undefined || rest.batch !== undefined) this.resetBucket();
    const changed = (['cpus', 'batch'] as const).some((k) => JSON.stringify(before[k]) !== JSON.stringify(this.opts[k]));
    if (changed && this.proc) {
      this.stale = true;
      if (this.jobs.size === 0) this.stop(this.proc, 'recycled');
    }
    if (memoryLimitBytes !== undefined) this.setMemoryLimit(memoryLimitBytes);
  }

  /**
   * The compiler's share of the memory budget (bytes; null: none), applied
   * to the running server at once.  Returns what happened to it: 'applied'
   * (RLIMIT_AS changed), 'restarted' (it mapped more than the new limit: it
   * was killed and its jobs go to a new server), 'next-start' (none
   * running, or not ready yet: it gets the limit when it is).
   */
  setMemoryLimit(bytes: number | null): 'applied' | 'restarted' | 'next-start' {
    if (bytes !== null && !(bytes >= 0)) throw new RangeError(`memory limit ${bytes} is not a number of bytes`);
    const old = this.opts.memoryLimitBytes;
    this.opts = { ...this.opts, memoryLimitBytes: bytes };
    this.startFailures = 0;
    if (bytes === null || (old !== null && bytes > old)) {
      for (const [key, e] of this.blacklist) if (e.death === 'memory') this.blacklist.delete(key);
    }
    const proc = this.proc;
    if (!proc || !proc.ready) return 'next-start';
    return this.applyLimit(proc);
  }

  /** Forget deaths before ready (the server may be started again) and, with `blacklist`, the blacklist. */
  resetFailures(blacklist = false): void {
    this.startFailures = 0;
    if (blacklist) this.blacklist.clear();
  }

  /** CPU ms every server process used so far: the JIT's compile CPU. */
  cpuMs(): number {
    const p = this.proc;
    if (p) p.cpuMs = Math.max(p.cpuMs, processCpuMs(p.pid) ?? 0);
    return this.closedCpuMs + (p ? p.cpuMs : 0);
  }

  stats(): CompileServerStats {
    const p = this.proc;
    if (p) this.peakRssBytes = Math.max(this.peakRssBytes, processMemory(p.pid)?.peakRssBytes ?? 0);
    return {
      ...this.counts,
      deaths: { ...this.deaths },
      blacklisted: [...this.blacklist.values()],
      cpuMs: this.cpuMs(),
      peakRssBytes: this.peakRssBytes,
      baselineRssBytes: p?.ready?.baselineRssBytes ?? 0,
      lifts: this.bucket?.lifts ?? 0,
      liftedMs: this.bucket?.liftedMs ?? 0,
      liftProblem: this.liftProblem,
      ready: p?.ready ?? null,
    };
  }

  close(): void {
    if (this.idle) clearTimeout(this.idle);
    this.idle = null;
    this.stopBucket();
    if (this.proc) this.stop(this.proc, 'closed');
  }

  /* ---- processes ------------------------------------------------------------ */

  private settings(): ServerSettings {
    const o = this.opts;
    return { idle: !o.batch, nice: o.batch ? 0 : SERVER_PARAMS.idleNice, cpus: o.cpus, memoryLimitBytes: o.memoryLimitBytes };
  }

  private process(): ServerProcess {
    if (this.proc) return this.proc;
    const child = fork(WORKER, [], { serialization: 'advanced', stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    const proc: ServerProcess = {
      child,
      pid: child.pid!,
      ready: null,
      limitBytes: this.opts.memoryLimitBytes,
      cpuMs: 0,
      peakRssBytes: 0,
      stderr: '',
      ending: null,
      served: 0,
    };
    this.proc = proc;
    this.stale = false;
    this.counts.starts++;
    this.lifted = false;
    this.bucket?.restart();
    child.stderr!.on('data', (d: Buffer) => (proc.stderr = (proc.stderr + d.toString('utf8')).slice(-2000)));
    child.on('message', (r: ServerReply) => this.answer(proc, r));
    child.on('exit', (code, signal) => this.exited(proc, code, signal));
    child.on('error', () => {}); /* reported by 'exit' */
    child.send({ ...this.init(), settings: this.settings() });
    this.hold(false);
    return proc;
  }

  private dispatch(job: Job): void {
    const proc = this.process();
    job.proc = proc;
    this.hold(true);
    proc.child.send({ type: 'unit', job: job.id, req: job.req, ...(job.fault ? { fault: job.fault } : {}) } satisfies ServerRequest);
    this.startBucket();
  }

  /* kjit ends a process: why decides what happens to its jobs (exited) */
  private stop(proc: ServerProcess, why: 'closed' | 'recycled' | 'restart'): void {
    proc.ending = why;
    proc.cpuMs = Math.max(proc.cpuMs, processCpuMs(proc.pid) ?? 0);
    /* its CPU counts from now on (not only once 'exit' comes): cpuMs() no longer sees it */
    this.closedCpuMs += proc.cpuMs;
    proc.counted = true;
    if (this.proc === proc) this.proc = null;
    proc.child.kill(why === 'restart' ? 'SIGKILL' : 'SIGTERM');
  }

  /* While jobs are out the server keeps the event loop alive; otherwise not. */
  private hold(busy: boolean): void {
    const child = this.proc?.child;
    if (!child) return;
    if (this.idle) clearTimeout(this.idle);
    this.idle = null;
    /* the process, its IPC channel and its stderr pipe are each a handle of the loop */
    const stderr = child.stderr as (NodeJS.ReadableStream & { ref?: () => void; unref?: () => void }) | null;
    if (busy) {
      child.ref();
      child.channel?.ref();
      stderr?.ref?.();
      return;
    }
    child.unref();
    child.channel?.unref();
    stderr?.unref?.();
    this.idle = setTimeout(() => this.close(), SERVER_PARAMS.idleMs);
    this.idle.unref();
  }

  private answer(proc: ServerProcess, r: ServerReply): void {
    if ('ready' in r) {
      proc.ready = r.ready;
      this.startFailures = 0;
      /* the limit changed while it started */
      if (proc.limitBytes !== this.opts.memoryLimitBytes && this.proc === proc) this.applyLimit(proc);
      return;
    }
    proc.cpuMs = Math.max(proc.cpuMs, r.cpuMs);
    proc.peakRssBytes = Math.max(proc.peakRssBytes, r.peakRssBytes);
    this.peakRssBytes = Math.max(this.peakRssBytes, r.peakRssBytes);
    const job = this.jobs.get(r.job);
    if (!job || job.proc !== proc) return;
    this.jobs.delete(r.job);
    proc.served++;
    if (r.ok) {
      this.counts.built++;
      job.resolve(r.unit);
    } else {
      this.counts.failed++;
      const e = r.error;
      job.reject(e.problem !== undefined && e.fix !== undefined ? new KjitError(e.problem, e.fix, e.exitCode) : new Error(e.message));
    }
    if (this.jobs.size === 0) this.quiet(proc);
  }

  /* no jobs left: recycle, or let the process idle */
  private quiet(proc: ServerProcess): void {
    for (const resolve of this.drains.splice(0)) resolve();
    /* a last step: the bucket is charged for the job, and an idle server goes back to SCHED_IDLE */
    this.stopBucket();
    this.stepBucket();
    if (this.proc !== proc) return;
    if (proc.served >= SERVER_PARAMS.recycleJobs || this.stale) this.stop(proc, 'recycled');
    else this.hold(false);
  }

  private exited(proc: ServerProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.proc === proc) this.proc = null;
    if (!proc.counted) this.closedCpuMs += proc.cpuMs;
    const mine = [...this.jobs.values()].filter((j) => j.proc === proc).sort((a, b) => a.id - b.id);
    const why = signal ? `was killed by ${signal}` : `exited with code ${code}`;
    const words = lastWords(proc.stderr);
    const fail = (job: Job, e: Error) => {
      this.jobs.delete(job.id);
      this.counts.failed++;
      job.reject(e);
    };
    if (proc.ending === 'closed') {
      for (const job of mine) fail(job, new CompileServerError(`the compile server was closed while building ${job.fn}`));
    } else if (proc.ending !== null) {
      /* recycled or restarted for a new limit: its jobs are nobody's fault */
      if (proc.ending === 'restart') this.counts.restarts++;
      for (const job of mine) this.dispatch(job);
    } else {
      const death = classifyDeath(code, signal, proc.stderr, proc.limitBytes !== null);
      this.deaths[death]++;
      this.counts.restarts++;
      if (!proc.ready) {
        this.startFailures++;
        if (this.startFailures >= SERVER_PARAMS.maxStartFailures) {
          for (const job of mine) fail(job, new CompileServerError(`the compile server ${why} before it was ready (${this.startFailures} times)${words ? `: ${words}` : ''}`, death));
        } else {
          for (const job of mine) this.dispatch(job);
        }
      } else {
        const [culprit, ...behind] = mine;
        if (culprit) {
          culprit.deaths++;
          const message = `the compile server ${why} while building ${culprit.fn}${words ? `: ${words}` : ''}`;
          if (culprit.deaths > this.opts.retries) {
            const kind = culprit.req.kind;
            this.blacklist.set(culprit.key, { key: culprit.key, fn: culprit.fn, kind, death, message });
            fail(culprit, new CompileServerError(`${message} (${culprit.deaths} times: ${culprit.fn} (${kind}) is blacklisted)`, death, true));
          } else {
            this.counts.retried++;
            this.dispatch(culprit);
          }
        }
        for (const job of behind) this.dispatch(job);
      }
    }
    if (this.jobs.size === 0) {
      this.stopBucket();
      for (const resolve of this.drains.splice(0)) resolve();
    }
  }

  /* ---- memory limit (mechanism) ------------------------------------------- */

  private applyLimit(proc: ServerProcess): 'applied' | 'restarted' {
    const bytes = this.opts.memoryLimitBytes;
    proc.limitBytes = bytes;
    const soft = bytes === null ? RLIM_INFINITY : BigInt(proc.ready!.baselineVmBytes + bytes);
    try {
      processLimit(proc.pid, RLIMIT_AS, soft);
    } catch {
      /* it is gone: 'exit' follows */
    }
    const vm = processMemory(proc.pid)?.vmBytes ?? 0;
    if (bytes !== null && vm > Number(soft)) {
      this.counts.limitRestarts++;
      this.stop(proc, 'restart');
      /* its jobs are resent on 'exit'; with none, the next job starts a new one */
      return 'restarted';
    }
    return 'applied';
  }

  /* ---- priority (mechanism; the token bucket decides) ------------------------ */

  private resetBucket(): void {
    this.stopBucket();
    if (this.lifted && this.proc) this.setLifted(this.proc, false);
    const o = this.opts;
    this.bucket = o.batch || o.minShare <= 0 ? null : new TokenBucket(performance.now(), { minShare: o.minShare });
  }

  private startBucket(): void {
    if (!this.bucket || this.bucketTimer || this.liftProblem) return;
    this.schedule(BUCKET_PARAMS.tickMs);
  }

  private schedule(ms: number): void {
    this.bucketTimer = setTimeout(() => {
      this.bucketTimer = null;
      this.stepBucket();
    }, ms);
    this.bucketTimer.unref();
  }

  private stopBucket(): void {
    if (this.bucketTimer) clearTimeout(this.bucketTimer);
    this.bucketTimer = null;
  }

  /* one step: read the server's CPU, let the bucket decide, switch; again when the bucket says */
  private stepBucket(): void {
    const proc = this.proc;
    const bucket = this.bucket;
    const hasWork = this.jobs.size > 0;
    if (!bucket || !proc || this.liftProblem) return;
    const cpu = processCpuMs(proc.pid);
    if (cpu === null) return; /* gone: 'exit' follows, and the next job starts the steps again */
    proc.cpuMs = Math.max(proc.cpuMs, cpu);
    const d = bucket.step(performance.now(), cpu, hasWork);
    if (d.lift !== this.lifted) this.setLifted(proc, d.lift);
    if (hasWork && !this.liftProblem) this.schedule(bucket.nextStepInMs(hasWork));
  }

  private setLifted(proc: ServerProcess, lift: boolean): void {
    const nice = this.opts.liftNice ?? niceForShare(this.opts.minShare);
    try {
      for (const tid of threadIds(proc.pid)) {
        if (lift) {
          setNice(tid, nice);
          setSchedulerPolicy(tid, SCHED_OTHER);
        } else {
          setSchedulerPolicy(tid, SCHED_IDLE);
        }
      }
      this.lifted = lift;
    } catch (e) {
      const err = e as Error & { errno?: number };
      if (err.errno === 3 /* ESRCH: a thread ended meanwhile */) return;
      /* EPERM: leaving SCHED_IDLE needs CAP_SYS_NICE or RLIMIT_NICE >= 20 - nice */
      this.liftProblem = err.message;
      this.stopBucket();
    }
  }
}

const servers = new WeakMap<PreparedBoot, CompileServer>();
const all = new Set<CompileServer>();
process.on('exit', () => {
  for (const s of all) s.close();
});

/**
 * The compile server of a prepared boot (one per boot, shared by its
 * instances).  `opts` (--cpus, --batch, a memory limit, the minimum share)
 * reconfigure it (CompileServer.configure).
 */
export function compileServer(p: PreparedBoot, opts?: Partial<CompileServerOptions>): CompileServer {
  let s = servers.get(p);
  if (!s) {
    s = new CompileServer(
      () => ({
        type: 'init',
        pristine: p.pristineBitcode(),
        mode: p.mode.name,
        config: p.config,
        target: p.compiled.target,
        removed: p.compiled.report.removed.map((r) => r.name),
      }),
      opts,
    );
    servers.set(p, s);
    all.add(s);
  } else if (opts) {
    s.configure(opts);
  }
  return s;
}
