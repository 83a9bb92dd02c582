/**
 * @fileoverview Compiling on first call (boot tiers, issue 10): the host's
 * half of ir/runtime/lazy.c.  Mechanism only; which functions are lazy is
 * src/kernel/tiers.ts.
 *
 * The kernel thread, at the first call of a lazy function, writes its slot
 * to `lazy_pending`, a byte to our pipe, and sleeps.  The byte wakes the
 * event loop here; the function's whole source unit (its file: what it is
 * likely to call next; while the kernel boots, every lazy function left) is built with the fast tier from the boot's
 * specialized IR (a re-JIT unit, src/rejit/image-unit.ts, run on this
 * thread: the compile server may be busy with an optimizing build), linked,
 * and each function's code address written to its slot; then the kernel
 * thread is woken (futex on `lazy_seq`) and goes on.  Only then are the
 * entries redirected (Installer.commit, by the kernel thread itself: see
 * redirect()): it must reach a quiescent point for that, and it was not at
 * one while it waited.
 *
 * The code is the function's boot code from then on: a version of kind
 * 'baseline', never evicted or freed (a later version that is reverted
 * leaves the entry's NOP, the stub, and the slot, which leads here again).
 */
import { Socket } from 'node:net';

import { FAST_PIPELINE } from '../kernel/compile.js';
import type { KernelInstance } from '../kernel/instance.js';
import type { PreparedBoot } from '../kernel/run.js';
import * as libc from '../native/libc.js';
import { buildImageUnit } from './image-unit.js';
import type { Installer } from './installer.js';
import { unitBase } from './unit.js';
import type { CodeVersion } from './versions.js';

export interface LazyStats {
  /** Functions compiled on (or with a unit of) a first call. */
  compiled: number;
  /** Functions built while the kernel booted and never called (code without a caller). */
  prefetched: number;
  /** Units built. */
  units: number;
  /** First calls the kernel thread had to wait for. */
  requests: number;
  /** The kernel thread's waits: total and longest, ms. */
  waitMs: number;
  waitMaxMs: number;
  /** The builds here (main thread): total and longest, ms. */
  buildMs: number;
  buildMaxMs: number;
  failures: string[];
}

export class LazyCompiler {
  private readonly names: readonly string[];
  private readonly units: readonly string[];
  private readonly slotOf = new Map<string, number>();
  /** Slots whose function has been published. */
  private readonly done = new Set<number>();
  /** Built while the kernel booted, not called yet: published at their first call, without a build. */
  private readonly ready = new Map<number, CodeVersion>();
  private pipe: { write: number; socket: Socket } | null = null;
  private nextId = 1_000_000; /* version ids apart from the installer's */
  private readonly s = { units: 0, buildMs: 0, buildMaxMs: 0, failures: [] as string[] };

  constructor(
    private readonly instance: KernelInstance,
    private readonly p: PreparedBoot,
    private readonly installer: Installer,
  ) {
    const t = p.compiled.report.tiers;
    this.names = t?.lazy ?? [];
    this.units = t?.lazyUnits ?? [];
    this.names.forEach((n, i) => this.slotOf.set(n, i));
  }

  private linkOutside: <T>(link: () => T) => T = (link) => link();

  /** Called after each unit is built and linked (the run logs it in the profile store's compile log). */
  onUnit: ((u: { functions: string[]; ms: number; codeBytes: number }) => void) | null = null;

  /** Link outside the memory budget's grant (MemoryBudget.bootCode): this is boot code. */
  setBudget(budget: { bootCode<T>(link: () => T): T } | null): void {
    if (budget) this.linkOutside = (link) => budget.bootCode(link);
  }

  /** Listen for first calls; before the kernel thread starts. */
  start(): void {
    if (!this.names.length || this.pipe) return;
    const [read, write] = libc.pipe();
    const socket = new Socket({ fd: read, readable: true, writable: false });
    socket.on('data', () => this.serve());
    socket.on('error', () => {});
    this.pipe = { write, socket };
    this.instance.cb.set('lazy_fd', BigInt(write + 1));
  }

  /** After the kernel thread has been joined. */
  stop(): void {
    if (this.redirectTimer) clearTimeout(this.redirectTimer);
    this.redirectTimer = null;
    if (!this.pipe) return;
    this.pipe.socket.destroy(); /* closes the read end */
    libc.closeFd(this.pipe.write);
    this.pipe = null;
  }

  /* (synchronous: no other byte is read while it builds; the one kernel thread waits for one function at a time) */
  private serve(): void {
    if (this.instance.isDisposed) return;
    const pending = this.instance.cb.getNumber('lazy_pending');
    if (pending === 0 || this.done.has(pending - 1)) return;
    const ready = this.ready.get(pending - 1);
    if (ready) this.release([ready], 0);
    else this.compileUnitOf(pending - 1);
  }

  /**
   * Build and link the lazy functions of slot `slot`'s unit that have no
   * code yet, and publish them.  Before the first operation (the kernel is
   * still booting: every wait is on the way to it) every lazy function left
   * is built in the same unit, one wait instead of one per source file; only
   * those of `slot`'s unit are published, the others wait, built, in `ready`
   * for their own first call (so what is published is what was called
   * through its entry; a direct call from another function of the same
   * build goes straight to the new code and is not seen).
   */
  private compileUnitOf(slot: number): void {
    const unit = this.units[slot];
    const booting = this.instance.cb.get('t_first_op_ns') === 0n;
    const batch = this.names.map((n, i) => ({ n, i })).filter(({ i }) => !this.done.has(i) && !this.ready.has(i) && (booting || this.units[i] === unit));
    const t0 = performance.now();
    let versions: CodeVersion[];
    try {
      const base = { ...unitBase(this.p), pristineBitcode: this.p.compiled.lazySource()!, specialized: true };
      const id = this.nextId++;
      const built = buildImageUnit(base, { id, functions: batch.map((b) => b.n), pipeline: `elim-avail-extern,${FAST_PIPELINE}`, codegenOptLevel: 0 });
      versions = this.linkOutside(() => this.installer.linkTier(id, built, false, { baseline: true }));
    } catch (e) {
      /* nothing can run the function now: the kernel stops in kjit_lazy_failed (a panic) rather than wait for ever */
      this.s.failures.push(`${this.names[slot]} (unit ${unit}): ${(e as Error).message.split('\n')[0]}`);
      const failed = this.instance.jit.lookup('kjit_lazy_failed');
      this.publish(batch.map((b) => [b.i, failed]));
      return;
    }
    const ms = performance.now() - t0;
    this.s.units++;
    this.s.buildMs += ms;
    this.s.buildMaxMs = Math.max(this.s.buildMaxMs, ms);
    const now: CodeVersion[] = [];
    for (const v of versions) {
      const i = this.slotOf.get(v.fn);
      if (i === undefined) continue;
      if (this.units[i] === unit) now.push(v);
      else this.ready.set(i, v);
    }
    this.release(now, ms);
  }

  /** Publish built versions (their functions were called), log them, and redirect their entries. */
  private release(versions: readonly CodeVersion[], ms: number): void {
    for (const v of versions) this.ready.delete(this.slotOf.get(v.fn)!);
    this.onUnit?.({ functions: versions.map((v) => v.fn), ms, codeBytes: versions.reduce((n, v) => n + v.size, 0) });
    this.publish(versions.map((v) => [this.slotOf.get(v.fn)!, v.address] as [number, bigint]));
    this.unredirected.push(...versions);
    this.redirectSoon();
  }

  /**
   * Calls skip the stub once the entries jump to the code.  Only the kernel
   * thread rewrites them, at a quiescent point once it runs its workload: the
   * host's int3 protocol would race with a thread booting through these very
   * stubs.  Until then (or if it does not get there in time: tried again),
   * the stub leads to the code.
   */
  private readonly unredirected: CodeVersion[] = [];
  private redirectTimer: NodeJS.Timeout | null = null;
  private redirectSoon(): void {
    if (this.quiesced || this.redirectTimer || this.inFlight || !this.unredirected.length || !this.pipe) return;
    this.redirectTimer = setTimeout(() => {
      this.redirectTimer = null;
      void this.redirect();
    }, 20);
    this.redirectTimer.unref();
  }

  private inFlight: Promise<void> | null = null;

  /** Stop redirecting (before the instance goes; first calls are still served until stop()). */
  async quiesce(): Promise<void> {
    this.quiesced = true;
    if (this.redirectTimer) clearTimeout(this.redirectTimer);
    this.redirectTimer = null;
    await this.inFlight;
  }
  private quiesced = false;

  private redirect(): Promise<void> {
    this.inFlight = this.redirectNow().finally(() => {
      this.inFlight = null;
      this.redirectSoon();
    });
    return this.inFlight;
  }

  private async redirectNow(): Promise<void> {
    if (this.quiesced || this.instance.isDisposed || !this.pipe) return;
    const batch = this.unredirected.splice(0).filter((v) => v.state === 'compiled' && this.installer.liveVersion(v.fn) === null);
    if (!batch.length) return;
    try {
      /* (refused at once while the kernel still boots: it pokes only once it runs its workload) */
      await this.installer.commit(batch, [], { hostFallback: false });
    } catch {
      this.unredirected.push(...batch); /* not this time: tried again (redirect) */
    }
  }

  /** Write code addresses into their slots, then wake the kernel thread. */
  private publish(slots: readonly [number, bigint][]): void {
    const addr = this.instance.cb.array('lazy_addr');
    for (const [i, a] of slots) {
      Atomics.store(addr, i, a);
      this.done.add(i);
    }
    Atomics.add(this.instance.cb.array('lazy_seq'), 0, 1n);
    libc.futexWake(this.instance.cb.addressOf('lazy_seq'), 1);
  }

  stats(): LazyStats {
    const cb = this.instance.isDisposed ? null : this.instance.cb;
    return {
      compiled: this.done.size,
      prefetched: this.ready.size,
      units: this.s.units,
      requests: cb ? cb.getNumber('lazy_requests') : this.last?.requests ?? 0,
      waitMs: cb ? cb.getNumber('lazy_wait_ns') / 1e6 : this.last?.waitMs ?? 0,
      waitMaxMs: cb ? cb.getNumber('lazy_wait_max_ns') / 1e6 : this.last?.waitMaxMs ?? 0,
      buildMs: this.s.buildMs,
      buildMaxMs: this.s.buildMaxMs,
      failures: this.s.failures,
    };
  }

  private last: LazyStats | null = null;

  /** Keep the kernel's counters (call before the instance is disposed). */
  snapshot(): LazyStats {
    this.last = this.stats();
    return this.last;
  }
}
