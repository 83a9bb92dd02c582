/**
 * @fileoverview Installing versions of functions into a running kernel.
 * Mechanism only: it carries out install and revert requests, it never
 * decides what to install.
 *
 * A version goes through named phases; each either completes or leaves the
 * previous version running:
 *   build     re-JIT unit from the pristine IR (src/rejit/unit.ts), built
 *             in the compile server's process (src/scheduler);
 *   link      its object added to the instance's LLJIT under a resource
 *             tracker of its own, its address looked up;  -> 'compiled'
 *   redirect  the function's patchable entry rewritten to jump to it
 *             (ir/runtime/patch.c);                       -> 'live'
 * Revert rewrites the entry back to the NOP (or to the previous version).
 * A version that stops being live is 'retired': new calls no longer reach
 * it, but a kernel task may still be running in it or be suspended inside
 * it.  Its code is freed (its resource tracker removed) only after a grace
 * period: the runtime, at a quiescent point, found no return address inside
 * it on any kernel stack (ir/runtime/grace.c), or the kernel thread ended.
 */
import type { PreparedBoot } from '../kernel/run.js';
import type { KernelInstance } from '../kernel/instance.js';
import { KernelState } from '../native/control-block.js';
import { objectSymbols, type ResourceTracker } from '../native/llvm.js';
import { CodeRegion } from '../native/codemem.js';
import { type EntryChange, Redirector } from './redirect.js';
import { type CompileServer, compileServer } from '../scheduler/compile-server.js';
import { JitCpuMeter } from '../scheduler/stats.js';
import type { BuiltImageUnit, ImageUnitRequest } from './image-unit.js';
import type { UnitRequest } from './unit.js';
import { CodeMap, type CodeVersion, type VersionKind } from './versions.js';

export type InstallPhase = 'build' | 'link' | 'redirect';

/** What a version is built with (src/rejit/unit.ts UnitRequest). */
export type CompileOptions = Partial<Pick<UnitRequest, 'countEntries' | 'source' | 'instrument' | 'profile' | 'specialize' | 'pipeline' | 'inlineDepth'>>;

export class InstallError extends Error {
  readonly phase: InstallPhase;
  readonly fn: string;
  constructor(fn: string, phase: InstallPhase, cause: unknown) {
    super(`installing a version of ${fn} failed in phase '${phase}': ${(cause as Error).message ?? String(cause)}`, { cause });
    this.name = 'InstallError';
    this.phase = phase;
    this.fn = fn;
  }
}

export interface InstallerStats {
  installs: number;
  reverts: number;
  failures: number;
  versionsLive: number;
  versionsRetired: number;
  /** Entry rewrites done by the kernel thread at quiescent points / by the host (int3 protocol). */
  pokes: { kernel: number; host: number };
}

/** The end of a version's code (at least one byte: a range for the grace check). */
const endOf = (v: CodeVersion): bigint => v.address + BigInt(Math.max(1, v.size));

export class Installer {
  readonly codeMap = new CodeMap();
  private readonly byFunction = new Map<string, CodeVersion[]>();
  private readonly redirector: Redirector;
  private readonly server: CompileServer;
  private nextId = 1;
  private readonly stats = { installs: 0, reverts: 0, failures: 0 };
  /** Versions evicted (evict()): never made live again. */
  private readonly evicted = new Set<CodeVersion>();
  /** Main-thread CPU of linking (the JIT's CPU besides the compile server's). */
  readonly jitCpu = new JitCpuMeter();

  constructor(
    private readonly instance: KernelInstance,
    prepared: PreparedBoot,
  ) {
    this.redirector = new Redirector(instance, CodeRegion.get());
    this.server = compileServer(prepared);
  }

  /**
   * Start the compile server now rather than at the first build (it needs
   * the image's IR serialized on this thread: call it once the kernel runs,
   * so its first operation does not wait for that).
   */
  warmServer(): void {
    this.server.warm();
  }

  /** The function's own entry (where its patchable NOP is). */
  entryOf(fn: string): bigint {
    return this.instance.jit.lookup(fn);
  }

  /** False once the instance is disposed: its JIT freed everything, trackers included. */
  get alive(): boolean {
    return !this.instance.isDisposed;
  }

  /** A symbol of the running image (or of code and data added to it). */
  addressOf(symbol: string): bigint {
    return this.instance.jit.lookup(symbol);
  }

  versionsOf(fn: string): readonly CodeVersion[] {
    return this.byFunction.get(fn) ?? [];
  }

  /** The code a function compiled on first call got then (it never goes away), if any. */
  baselineOf(fn: string): CodeVersion | null {
    return this.versionsOf(fn).find((v) => v.kind === 'baseline' && v.state !== 'freed') ?? null;
  }

  liveVersion(fn: string): CodeVersion | null {
    return this.versionsOf(fn).find((v) => v.state === 'live') ?? null;
  }

  /**
   * Phases build (in the compile server's process) and link (here): a
   * version ready to go live.
   */
  async compile(
    fn: string,
    kind: VersionKind,
    opts: CompileOptions = {},
  ): Promise<CodeVersion> {
    const id = this.nextId++;
    let phase: InstallPhase = 'build';
    try {
      const unit = await this.server.build({
        fn,
        kind,
        id,
        ...(opts.countEntries ? { countEntries: true } : {}),
        ...(opts.source ? { source: opts.source } : {}),
        ...(opts.instrument ? { instrument: opts.instrument } : {}),
        ...(opts.profile ? { profile: opts.profile } : {}),
        ...(opts.specialize ? { specialize: opts.specialize } : {}),
        ...(opts.pipeline ? { pipeline: opts.pipeline } : {}),
        ...(opts.inlineDepth !== undefined ? { inlineDepth: opts.inlineDepth } : {}),
      });
      phase = 'link';
      const jit = this.instance.jit;
      return this.underTracker(unit.object, (tracker) => {
        const address = this.jitCpu.run(() => jit.lookup(unit.symbol));
        const size = objectSymbols(unit.object).find((s) => s.name === unit.symbol)?.size ?? 0;
        const version: CodeVersion = {
          id,
          fn,
          kind,
          symbol: unit.symbol,
          address,
          size,
          inlines: unit.inlines,
          state: 'compiled',
          reason: kind,
          tracker,
          times: { compiledMs: unit.ms },
          ...(unit.data ? { data: { ...unit.data, address: jit.lookup(unit.data.symbol) } } : {}),
          build: {
            irInstructions: unit.irInstructions,
            ...(unit.profile ? { profile: unit.profile } : {}),
            ...(unit.specialized ? { specialized: unit.specialized } : {}),
          },
        };
        this.byFunction.set(fn, [...this.versionsOf(fn), version]);
        this.codeMap.add(version);
        this.instance.codeLinked(unit.object); /* profilers (jitdump) learn of its code */
        return version;
      });
    } catch (e) {
      this.stats.failures++;
      throw new InstallError(fn, phase, e);
    }
  }

  /* Redirects run one at a time: each checks the entry's current bytes. */
  private tail: Promise<unknown> = Promise.resolve();
  private exclusive<T>(step: () => Promise<T>): Promise<T> {
    const run = this.tail.then(step, step);
    this.tail = run.catch(() => {});
    return run;
  }

  /** Phase redirect: `version` becomes what calls to its function run. Resolves with the time it took in ms. */
  activate(version: CodeVersion): Promise<number> {
    return this.commit([version]);
  }

  /** The function's own (boot) code runs again; the live version is retired. */
  async revert(fn: string): Promise<void> {
    await this.commit([], [fn]);
  }

  /**
   * One transition: every version in `activate` becomes live and every
   * function in `revert` runs its own code again, all at the same moment
   * for the kernel (src/rejit/redirect.ts); the versions they replace are
   * retired.  Nothing changes if any entry cannot be rewritten.  Resolves
   * with the time it took in ms.
   */
  commit(activate: readonly CodeVersion[], revert: readonly string[] = [], opts: { hostFallback?: boolean } = {}): Promise<number> {
    return this.exclusive(() => this.commitNow(activate, revert, opts));
  }

  private async commitNow(activate: readonly CodeVersion[], revert: readonly string[], opts: { hostFallback?: boolean } = {}): Promise<number> {
    const t0 = performance.now();
    const fns = [...activate.map((v) => v.fn), ...revert];
    const twice = fns.find((fn, i) => fns.indexOf(fn) !== i);
    if (twice) throw new Error(`a transition names ${twice} twice`);
    for (const v of activate) {
      if (v.state !== 'compiled' && v.state !== 'retired') throw new Error(`version ${v.id} of ${v.fn} is ${v.state}, not installable`);
      if (this.evicted.has(v)) throw new Error(`version ${v.id} of ${v.fn} was evicted (the memory budget was revoked), not installable`);
    }
    const changes: EntryChange[] = [];
    const replaced: CodeVersion[] = [];
    for (const v of activate) {
      const current = this.liveVersion(v.fn);
      changes.push({ site: this.entryOf(v.fn), to: v.address, from: current ? current.address : null });
      if (current) replaced.push(current);
    }
    /* a function compiled on first call (src/rejit/lazy.ts) goes back to that code, not to its stub */
    const reverted = revert.map((fn) => this.liveVersion(fn)).filter((v): v is CodeVersion => v !== null && v.kind !== 'baseline');
    const floors: CodeVersion[] = [];
    for (const v of reverted) {
      const floor = this.baselineOf(v.fn);
      if (floor) floors.push(floor);
      changes.push({ site: this.entryOf(v.fn), to: floor ? floor.address : null, from: v.address });
    }
    try {
      await this.redirector.apply(changes, opts);
    } catch (e) {
      this.stats.failures++;
      throw new InstallError(fns.join(', '), 'redirect', e);
    }
    for (const v of [...replaced, ...reverted]) v.state = 'retired';
    for (const v of floors) v.state = 'live';
    const ms = performance.now() - t0;
    for (const v of activate) {
      v.state = 'live';
      v.times.liveMs = ms;
    }
    this.stats.installs += activate.length;
    this.stats.reverts += reverted.length;
    return ms;
  }

  /**
   * Link a data object (a patch's state unit) under a tracker of its own and
   * materialize it, so its symbols resolve for the versions linked after it.
   * The caller frees it (tracker.remove) once no version that uses it can run.
   */
  linkData(object: Uint8Array, symbols: readonly string[]): ResourceTracker {
    return this.underTracker(object, (tracker) => {
      for (const name of symbols) this.instance.jit.lookup(name);
      return tracker;
    });
  }

  /**
   * Add `object` to the JIT under a resource tracker of its own and run
   * `then` with it; if anything fails, the object's code and data go again.
   * Linking counts as the main thread's JIT CPU.
   */
  private underTracker<T>(object: Uint8Array, then: (tracker: ResourceTracker) => T): T {
    const jit = this.instance.jit;
    const tracker = jit.createResourceTracker();
    try {
      this.jitCpu.run(() => jit.addObject(object, tracker));
      return then(tracker);
    } catch (e) {
      tracker.remove();
      tracker.dispose();
      throw e;
    }
  }

  /**
   * Free the shadow variables (ir/runtime/kjit_shadow.h) whose ids are in
   * [lo, hi): the kernel thread does it at its next quiescent point, or the
   * host directly when that thread is not running.
   */
  async freeShadow(lo: bigint, hi: bigint, timeoutMs = 1000): Promise<void> {
    if (this.instance.isDisposed) return;
    const cb = this.instance.cb;
    if (!this.kernelRunning()) {
      if (cb.getNumber('state') !== KernelState.BOOTING) this.instance.jit.call('kjit_shadow_free_range', 'void (uint64_t, uint64_t)', lo, hi);
      return;
    }
    cb.set('shadow_free_lo', lo);
    cb.set('shadow_free_hi', hi);
    await this.instance.request('shadow_free', timeoutMs);
  }

  /** Free a compiled version that never went live (a transition that was abandoned). */
  discard(version: CodeVersion): void {
    if (version.state !== 'compiled') throw new Error(`version ${version.id} of ${version.fn} is ${version.state}; only a compiled one can be discarded`);
    this.free(version);
  }

  /** Where the function's entry points now. */
  entryTarget(fn: string): bigint | null {
    const e = this.redirector.read(this.entryOf(fn));
    return e.kind === 'jmp' ? e.target : null;
  }

  /**
   * What may be freed after a grace period: retired versions with code of
   * their own, and tiers all of whose versions are retired (one range: the
   * tier's code), each as the versions it frees and the range to check.
   */
  private retired(): { versions: CodeVersion[]; lo: bigint; hi: bigint }[] {
    const out: { versions: CodeVersion[]; lo: bigint; hi: bigint }[] = [];
    for (const versions of this.byFunction.values()) {
      for (const v of versions) {
        if (v.state === 'retired' && v.tracker && !v.pinned) out.push({ versions: [v], lo: v.address, hi: endOf(v) });
      }
    }
    for (const t of this.tiers) {
      /* (some versions of an evicted tier were freed without ever going live) */
      const done = (v: CodeVersion) => v.state === 'freed' || v.state === 'failed';
      if (t.tracker && t.versions.every((v) => (v.state === 'retired' || done(v)) && !v.pinned) && !t.versions.every(done)) {
        out.push({ versions: t.versions.filter((v) => !done(v)), lo: t.lo, hi: t.hi });
      }
    }
    return out;
  }

  /**
   * The code objects linked for versions and not freed yet, each a tier
   * (all its versions: one object) or one version, with an estimate of
   * its pages.  Patches are not in it: the user asked for them, and
   * nothing evicts them.
   */
  resident(): { versions: CodeVersion[]; tier: number | null; bytes: number }[] {
    const out: { versions: CodeVersion[]; tier: number | null; bytes: number }[] = [];
    const page = (n: number) => Math.ceil(n / 4096) * 4096;
    for (const versions of this.byFunction.values()) {
      for (const v of versions) {
        /* its code, and the page of data or constants most versions have */
        if (v.tracker && v.state !== 'freed' && v.kind !== 'patched') out.push({ versions: [v], tier: null, bytes: page(v.size) + 4096 });
      }
    }
    for (const t of this.tiers) {
      if (t.tracker) out.push({ versions: t.versions.filter((v) => v.state !== 'freed' && v.state !== 'failed'), tier: t.id, bytes: page(Number(t.hi - t.lo)) + 4096 });
    }
    return out;
  }

  /**
   * Evict versions (the kernel took memory back): each function goes back
   * to its own (boot) code, and the versions can never be made live again,
   * so a transition that names one fails (an instrumentation window or a
   * regression check under way ends with an error and leaves boot code).
   * Compiled versions that never went live are freed at once, the others
   * after a grace period (freeRetired); pins are dropped, since what was
   * pinned to go live again never will.  Resolves with the versions freed.
   */
  async evict(versions: readonly CodeVersion[], timeoutMs = 1000): Promise<number> {
    for (const v of versions) {
      this.evicted.add(v);
      v.pinned = false;
    }
    const live = [...new Set(versions.filter((v) => v.state === 'live').map((v) => v.fn))];
    if (live.length) await this.commit([], live);
    let n = 0;
    for (const v of versions) {
      if (v.state === 'compiled') {
        this.free(v);
        n++;
      }
    }
    return n + (await this.freeRetired(timeoutMs));
  }

  private free(v: CodeVersion): void {
    const before = v.beforeFree;
    v.beforeFree = undefined;
    before?.(v);
    if (v.tier) {
      v.state = 'freed';
      v.times.freedMs = performance.now();
      const t = this.tiers.find((x) => x.id === v.tier);
      if (t?.tracker && t.versions.every((x) => x.state === 'freed' || x.state === 'failed')) {
        t.tracker.remove();
        t.tracker.dispose();
        t.tracker = null;
        this.tiers.splice(this.tiers.indexOf(t), 1);
      }
    } else {
      v.tracker!.remove();
      v.tracker!.dispose();
      v.tracker = null;
      v.state = 'freed';
      v.times.freedMs = performance.now();
    }
    this.evicted.delete(v);
    for (const hook of this.freeHooks) hook();
  }

  private readonly tiers: { id: number; tracker: ResourceTracker | null; versions: CodeVersion[]; lo: bigint; hi: bigint }[] = [];

  /**
   * Phases build and link for a tier (src/rejit/image-unit.ts): one object
   * with a version of each function, linked under one resource tracker,
   * freed as a whole once every version in it is retired and a grace period
   * found no task inside its code.  Resolves with the versions ('compiled').
   */
  async compileTier(req: Omit<ImageUnitRequest, 'id'>, opts: { id?: number } = {}): Promise<{ versions: CodeVersion[]; unit: BuiltImageUnit }> {
    const id = opts.id ?? this.nextId++;
    let unit: BuiltImageUnit;
    try {
      unit = await this.server.buildImage({ ...req, id });
    } catch (e) {
      this.stats.failures++;
      throw new InstallError(`[tier ${id}]`, 'build', e);
    }
    return { versions: this.linkTier(id, unit, req.instrument === true), unit };
  }

  /**
   * Phase link for a tier built here or read back from the tier cache
   * (src/pgo/tier-cache.ts).  With `baseline`, the versions are boot code
   * compiled late (src/rejit/lazy.ts): kind 'baseline', never evicted nor
   * freed (the object stays until the kernel's JIT goes), and what a revert
   * of a later version returns to.
   */
  linkTier(id: number, unit: BuiltImageUnit, instrumented = false, opts: { baseline?: boolean } = {}): CodeVersion[] {
    try {
      const jit = this.instance.jit;
      return this.underTracker(unit.object, (tracker) => {
        const sizes = new Map(objectSymbols(unit.object).map((s) => [s.name, s.size]));
        this.instance.codeLinked(unit.object);
        const versions: CodeVersion[] = unit.versions.map((u) => {
          const v: CodeVersion = {
            id,
            fn: u.fn,
            kind: opts.baseline ? 'baseline' : instrumented ? 'instrumented' : u.specialized ? 'specialized' : 'optimized',
            symbol: u.symbol,
            address: this.jitCpu.run(() => jit.lookup(u.symbol)),
            size: sizes.get(u.symbol) ?? 0,
            inlines: [],
            state: 'compiled',
            reason: opts.baseline ? 'compiled on first call' : `tier ${id}`,
            tracker: null,
            /* boot code compiled late belongs to no tier: never evicted nor freed */
            ...(opts.baseline ? { pinned: true } : { tier: id }),
            times: { compiledMs: unit.ms },
            ...(u.data ? { data: { ...u.data, address: jit.lookup(u.data.symbol) } } : {}),
            build: { irInstructions: 0, ...(u.specialized ? { specialized: u.specialized } : {}) },
          };
          this.byFunction.set(u.fn, [...this.versionsOf(u.fn), v]);
          this.codeMap.add(v);
          return v;
        });
        if (opts.baseline) return versions;
        const lo = versions.reduce((m, v) => (v.address < m ? v.address : m), versions[0]!.address);
        const hi = versions.reduce((m, v) => (endOf(v) > m ? endOf(v) : m), 0n);
        this.tiers.push({ id, tracker, versions, lo, hi });
        return versions;
      });
    } catch (e) {
      this.stats.failures++;
      throw new InstallError(`[tier ${id}]`, 'link', e);
    }
  }

  private readonly freeHooks: (() => void)[] = [];

  /** Run `hook` after versions are freed (data they used may go then too). */
  onFreed(hook: () => void): void {
    this.freeHooks.push(hook);
  }

  private kernelRunning(): boolean {
    const state = this.instance.cb.getNumber('state');
    return state === KernelState.RUNNING || state === KernelState.BOOTING;
  }

  /**
   * Free the code of retired versions once no kernel stack reaches into it.
   * A grace request carries at most KJIT_GRACE_RANGES ranges; the rest wait
   * for the next call.  Resolves with the number freed (0 on timeout: they
   * stay retired and are tried again later).
   */
  async freeRetired(timeoutMs = 1000): Promise<number> {
    let batch = this.retired();
    const freeAll = () => {
      let n = 0;
      for (const r of batch) for (const v of r.versions) if (v.state !== 'freed') (this.free(v), n++);
      return n;
    };
    if (!this.kernelRunning()) return freeAll();
    const cb = this.instance.cb;
    const lo = cb.array('grace_lo');
    batch = batch.slice(0, lo.length);
    if (batch.length === 0) return 0;
    const hi = cb.array('grace_hi');
    batch.forEach((r, i) => {
      lo[i] = r.lo;
      hi[i] = r.hi;
    });
    cb.set('grace_n', batch.length);
    const started = performance.now();
    const { answered } = await this.instance.request('grace', timeoutMs);
    if (!answered && this.kernelRunning()) return 0; /* still retired: tried again later */
    this.graceMs.push(performance.now() - started);
    return freeAll();
  }

  /**
   * Wait, without freeing anything, until no kernel task is inside the code
   * of `versions` (no longer live: nothing new enters them through their
   * entries).  False on timeout.  De-specialization uses it: a tier's
   * versions stay linked (other versions of the tier still call them
   * directly, and their guards send those calls to boot code).
   */
  async waitGrace(versions: readonly CodeVersion[], timeoutMs = 1000): Promise<boolean> {
    if (!this.kernelRunning() || versions.length === 0) return true;
    const cb = this.instance.cb;
    const lo = cb.array('grace_lo');
    const hi = cb.array('grace_hi');
    for (let i = 0; i < versions.length; i += lo.length) {
      const chunk = versions.slice(i, i + lo.length);
      chunk.forEach((v, k) => {
        lo[k] = v.address;
        hi[k] = endOf(v);
      });
      cb.set('grace_n', chunk.length);
      const { answered } = await this.instance.request('grace', timeoutMs);
      if (!answered && this.kernelRunning()) return false;
    }
    return true;
  }

  /** How long grace periods took (ms), for the install benchmark. */
  readonly graceMs: number[] = [];

  summary(): InstallerStats {
    let live = 0;
    let retired = 0;
    for (const versions of this.byFunction.values()) {
      for (const v of versions) {
        if (v.state === 'live') live++;
        if (v.state === 'retired') retired++;
      }
    }
    return { ...this.stats, versionsLive: live, versionsRetired: retired, pokes: { ...this.redirector.counts } };
  }
}
