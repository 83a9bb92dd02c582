/**
 * @fileoverview A run's use of the profile store (`kjit run --profile-db`,
 * `kjit serve`): at boot, the merged profile of earlier boots of this image
 * family, machine class and workload is loaded (stale functions left out);
 * while the kernel runs, what it learns is flushed every
 * STORE_PARAMS.flushEveryMs (the sampled profile, exact counts, the
 * timeline of timeline.ts once watch() is called); when it stops, a last
 * flush, the compile log of the run's patches, the run's summary, and the
 * boot's end.
 *
 * The store never stops a kernel: a write that fails (disk full, the file
 * removed) is reported once on stderr and the run goes on without it.
 */
import { ExitCode, KjitError } from '../errors.js';
import { hostMachine } from '../kernel/machine.js';
import type { Image } from '../kernel/image.js';
import type { PreparedBoot, RunResult } from '../kernel/run.js';
import type { StoredUse } from '../kernel/tiers.js';
import { hostCPUFeatures, hostCPUName } from '../native/llvm.js';
import type { FunctionCounts } from '../sampler/counts.js';
import type { ProfileBuilder } from '../sampler/profile.js';
import { functionIrHashes } from './ir-hash.js';
import type { MergedProfile } from './merge.js';
import { STORE_PARAMS } from './params.js';
import { type CompileEntry, type DecisionEntry, type ImageInfo, type MachineInfo, type ProfileAggregates, ProfileStore } from './store.js';
import { RunTimeline, runSummary, type WatchTarget } from './timeline.js';

/** What `kjit run --json` reports as `profile_store`. */
export interface ProfileStoreSummary {
  path: string;
  /** Earlier boots whose profiles were merged at boot. */
  reused_boots: number;
  /** Stored functions applied to this image (same IR, or the same IR under another name). */
  functions_matched: number;
  /** Stored functions whose IR is no longer in the image: not applied. */
  functions_stale: number;
  /** Self samples of the matched functions in the reused boots (unweighted). */
  samples_loaded: number;
}

export function imageInfo(p: PreparedBoot | { image: Image }): ImageInfo {
  const { image } = p;
  return {
    hash: image.hash,
    runtimeHash: image.runtimeHash,
    name: image.name,
    path: image.spec.path,
    init: image.spec.init,
    entry: image.spec.entry,
    run: image.spec.run,
    functions: () => functionIrHashes(image.pristine),
  };
}

/** This machine; its class is LLVM's name for the CPU (what code is tuned for). */
export function hostMachineInfo(): MachineInfo {
  return { cpuModel: hostMachine().cpuModel, llvmCpu: hostCPUName(), features: hostCPUFeatures() };
}

/** A sampled profile's aggregates, as the store keeps them. */
export function aggregatesOf(profile: ProfileBuilder): ProfileAggregates {
  return {
    samples: profile.samples,
    functions: profile.top(Infinity).map((t) => ({ function: t.function, ...profile.counts(t.function) })),
    edges: profile.edgeList(),
    hotPaths: profile.hottestStacks(STORE_PARAMS.hotPathsPerBoot),
  };
}

/**
 * What earlier boots of `image` on this machine class with `workload` saw
 * run (samples and counted entries per function, by this image's names;
 * null if the store has no such boot), and the merged profile it comes from
 * (the run's StoreSession reuses it); null if the store cannot be read
 * (a tiered boot then plans without a profile; the run reports the store's
 * problem when it opens it).
 */
export function storedUse(path: string, image: Image, workload: string): { uses: Map<string, StoredUse> | null; merged: MergedProfile } | null {
  let store: ProfileStore;
  try {
    store = ProfileStore.open(path);
  } catch {
    return null;
  }
  try {
    const info = imageInfo({ image });
    const merged = store.loadMerged({ family: info.name, machineClass: hostMachineInfo().llvmCpu, workload, functions: store.imageFunctionsOf(info) });
    if (!merged.boots.length) return { uses: null, merged };
    const uses = new Map<string, StoredUse>();
    for (const f of merged.functions) uses.set(f.function, { samples: f.total, entries: 0 });
    for (const c of merged.counts) uses.set(c.function, { samples: uses.get(c.function)?.samples ?? 0, entries: c.entry });
    /* what earlier boots compiled on first call ran too, though no sample may have seen it */
    for (const name of store.lazilyCompiled(merged.boots.map((b) => b.id))) {
      const u = uses.get(name);
      if (!u || (u.samples === 0 && u.entries === 0)) uses.set(name, { samples: u?.samples ?? 0, entries: 1 });
    }
    return { uses, merged };
  } catch {
    return null;
  } finally {
    store.close();
  }
}

export class StoreSession {
  readonly bootId: number;
  /** The profile of earlier boots, merged, by this image's names. */
  readonly loaded: MergedProfile;
  private profile: (() => ProfileBuilder | null) | null = null;
  private timer: NodeJS.Timeout | null = null;
  private pendingCounts: FunctionCounts[] = [];
  private broken: string | null = null;
  private ended = false;
  /** The run's timeline and events (kjit report): recorded once watch() is called, written with every flush. */
  readonly timeline = new RunTimeline();

  private constructor(
    readonly store: ProfileStore,
    p: PreparedBoot,
    workload: string,
    private readonly log: (line: string) => void,
  ) {
    const image = imageInfo(p);
    const machine = hostMachineInfo();
    /* a tiered boot merged the same boots already to plan its tiers (p.stored): the first run of
     * it reuses that (later runs of the same prepared boot merge again: the store has grown) */
    const stored = p.stored?.path === store.path && p.stored.workload === workload ? p.stored.merged : null;
    if (stored) p.stored = undefined;
    this.loaded = stored ?? store.loadMerged({ family: image.name, machineClass: machine.llvmCpu, workload, functions: store.imageFunctionsOf(image) });
    this.bootId = store.recordBoot({
      image,
      machine,
      workload,
      mode: p.mode.name,
      sysctls: Object.fromEntries(p.config.values.map((v) => [v.sysctl.name, `${v.value} (${v.source}${v.bootFixed ? ', boot-fixed' : ''})`])),
    });
  }

  /** Opens the store at `path` and records a boot of `p`; a bad file is moved aside (and said so), a newer one refused. */
  static open(path: string, p: PreparedBoot, workload: string, log = (line: string) => process.stderr.write(`${line}\n`)): StoreSession {
    let store: ProfileStore;
    try {
      store = ProfileStore.open(path);
    } catch (e) {
      if (e instanceof KjitError) throw e;
      throw new KjitError(`cannot open profile store ${path}: ${(e as Error).message}`, 'pass --profile-db with a writable path, or --no-profile-db', ExitCode.BAD_INPUT, { cause: e });
    }
    if (store.recovered) {
      log(`kjit: profile store ${path} ${store.recovered.problem} — fix: moved aside to ${store.recovered.movedTo}; a new store was started`);
    }
    try {
      return new StoreSession(store, p, workload, log);
    } catch (e) {
      store.close();
      throw e;
    }
  }

  /** Flush `profile` (the run's sampling, cumulative) every STORE_PARAMS.flushEveryMs until end(). */
  track(profile: (() => ProfileBuilder | null) | null): void {
    this.profile = profile;
    if (this.timer || !profile) return;
    this.timer = setInterval(() => this.flush(), STORE_PARAMS.flushEveryMs);
    this.timer.unref();
  }

  /**
   * Record the timeline of this kernel (throughput, latency, idle, code
   * bytes, JIT CPU each second; the pgo engine's events): call it for each
   * kernel the run boots, before it starts.  Written with every flush.
   */
  watch(t: WatchTarget): void {
    this.timeline.watch(t);
    if (!this.timer) {
      /* no sampling: the timeline alone is flushed */
      this.timer = setInterval(() => this.flush(), STORE_PARAMS.flushEveryMs);
      this.timer.unref();
    }
  }

  /** Exact counts of an instrumentation window: written with the next flush. */
  addCounts(counts: readonly FunctionCounts[]): void {
    this.pendingCounts.push(...counts);
  }

  logCompile(e: CompileEntry): void {
    this.guard(() => this.store.logCompile(this.bootId, e));
  }

  logDecision(d: DecisionEntry): void {
    this.guard(() => this.store.logDecision(this.bootId, d));
  }

  /** Writes what the run learned so far. */
  flush(): void {
    this.guard(() => {
      const profile = this.profile?.();
      if (profile && profile.samples > 0) this.store.flushProfile(this.bootId, aggregatesOf(profile));
      if (this.pendingCounts.length) {
        this.store.flushCounts(this.bootId, this.pendingCounts);
        this.pendingCounts = [];
      }
      if (this.timeline.points.length) this.store.saveTimeline(this.bootId, this.timeline.points, this.timeline.events());
    });
  }

  /** The last flush, the run's patches in the compile log, and the boot's end; returns what --json reports. */
  end(status: 'ended' | 'failed', r?: RunResult): ProfileStoreSummary {
    if (!this.ended) {
      this.ended = true;
      if (this.timer) clearInterval(this.timer);
      this.timeline.stop();
      if (r) this.timeline.finish(r);
      this.flush();
      if (r) for (const e of compileEntries(r)) this.logCompile(e);
      if (r) this.guard(() => this.store.saveSummary(this.bootId, runSummary(r)));
      this.guard(() => this.store.endBoot(this.bootId, { status, ...(r ? { seconds: r.seconds, ops: r.ops } : {}) }));
      this.store.close();
    }
    return this.summary();
  }

  summary(): ProfileStoreSummary {
    const m = this.loaded.matching;
    return {
      path: this.store.path,
      reused_boots: this.loaded.boots.length,
      functions_matched: m.functions_matched,
      functions_stale: m.functions_stale,
      samples_loaded: m.samples_matched,
    };
  }

  private guard(write: () => void): void {
    if (this.broken !== null || !this.store.db.open) return;
    try {
      write();
    } catch (e) {
      this.broken = (e as Error).message;
      this.log(`kjit: writing profile store ${this.store.path} failed: ${this.broken} — fix: check the disk and the file; this run goes on without the store`);
    }
  }
}

/** The compile log of a run's live patches (and of the rollbacks faults caused). */
export function compileEntries(r: RunResult): CompileEntry[] {
  const out: CompileEntry[] = [];
  for (const pt of r.rejit.patches) {
    for (const fn of pt.functions) {
      out.push({ function: fn, tier: 'patched', reason: `live patch ${pt.fn}=${pt.file}`, compile_ms: pt.compile_ms, outcome: 'installed', at_s: pt.at_s });
    }
  }
  for (const x of r.rejit.restarts) {
    const fn = x.version.split(' ')[0]!;
    out.push({ function: fn, tier: 'patched', reason: `live patch ${x.patch}`, outcome: 'rolled-back', why: `${x.fault}: ${x.action}` });
  }
  return out;
}
