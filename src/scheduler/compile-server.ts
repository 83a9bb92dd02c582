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
 * without work, and never keeps Node running.  A server that dies fails the
 * jobs it had, with its last words; the next job starts a new one.
 * Priorities and the memory limit are the scheduler's (a later issue).
 */
import { type ChildProcess, fork } from 'node:child_process';

import { KjitError } from '../errors.js';
import type { PreparedBoot } from '../kernel/run.js';
import type { BuiltUnit, UnitRequest } from '../rejit/unit.js';
import type { ServerReply, ServerRequest } from './compile-worker.js';

const WORKER = new URL('./compile-worker.js', import.meta.url);
const RECYCLE_JOBS = 256;
const IDLE_MS = 30_000;

export class CompileServerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CompileServerError';
  }
}

interface Job {
  fn: string;
  child: ChildProcess;
  resolve: (u: BuiltUnit) => void;
  reject: (e: Error) => void;
}

export class CompileServer {
  private child: ChildProcess | null = null;
  private readonly jobs = new Map<number, Job>();
  private nextJob = 1;
  private served = 0;
  private idle: NodeJS.Timeout | null = null;
  /** Processes started so far (recycled, idle-stopped or died). */
  starts = 0;

  constructor(private readonly init: () => ServerRequest & { type: 'init' }) {}

  /** The server process's pid, if it is running. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Start the process now, so the first unit does not wait for it. */
  warm(): void {
    this.process();
  }

  build(req: UnitRequest): Promise<BuiltUnit> {
    const child = this.process();
    const job = this.nextJob++;
    return new Promise<BuiltUnit>((resolve, reject) => {
      this.jobs.set(job, { fn: req.fn, child, resolve, reject });
      this.hold(true);
      child.send({ type: 'unit', job, req } satisfies ServerRequest);
    });
  }

  close(): void {
    if (this.idle) clearTimeout(this.idle);
    this.idle = null;
    this.child?.kill();
    this.child = null;
  }

  private process(): ChildProcess {
    if (this.child) return this.child;
    const child = fork(WORKER, [], { serialization: 'advanced', stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    this.child = child;
    this.starts++;
    this.served = 0;
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString('utf8')).slice(-2000)));
    child.on('message', (r: ServerReply) => this.answer(child, r));
    child.on('exit', (code, signal) => this.exited(child, code, signal, stderr));
    child.on('error', () => {}); /* reported by 'exit' */
    child.send(this.init());
    this.hold(false);
    return child;
  }

  /* While jobs are out the server keeps the event loop alive; otherwise not. */
  private hold(busy: boolean): void {
    const child = this.child;
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
    this.idle = setTimeout(() => this.close(), IDLE_MS);
    this.idle.unref();
  }

  private answer(child: ChildProcess, r: ServerReply): void {
    const job = this.jobs.get(r.job);
    if (!job) return;
    this.jobs.delete(r.job);
    this.served++;
    if (r.ok) job.resolve(r.unit);
    else {
      const e = r.error;
      job.reject(e.problem !== undefined && e.fix !== undefined ? new KjitError(e.problem, e.fix, e.exitCode) : new Error(e.message));
    }
    if (this.jobs.size === 0) {
      if (this.served >= RECYCLE_JOBS && this.child === child) this.close();
      else this.hold(false);
    }
  }

  private exited(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null, stderr: string): void {
    if (this.child === child) this.child = null;
    const why = signal ? `was killed by ${signal}` : `exited with code ${code}`;
    const words = stderr.trim().split('\n').slice(-3).join(' / ');
    for (const [id, job] of this.jobs) {
      if (job.child !== child) continue; /* a recycled process exiting late: its jobs were all answered */
      this.jobs.delete(id);
      job.reject(new CompileServerError(`the compile server ${why} while building ${job.fn}${words ? `: ${words}` : ''}`));
    }
  }
}

const servers = new WeakMap<PreparedBoot, CompileServer>();
const all = new Set<CompileServer>();
process.on('exit', () => {
  for (const s of all) s.close();
});

/** The compile server of a prepared boot (one per boot, shared by its instances). */
export function compileServer(p: PreparedBoot): CompileServer {
  let s = servers.get(p);
  if (!s) {
    s = new CompileServer(() => ({ type: 'init', pristine: p.pristineBitcode(), mode: p.mode.name, config: p.config, target: p.compiled.target }));
    servers.set(p, s);
    all.add(s);
  }
  return s;
}
