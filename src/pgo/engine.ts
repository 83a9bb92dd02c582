/**
 * @fileoverview Online profile-guided re-JIT (mode `pgo`): the mechanism
 * that carries out the policy's decisions on a running kernel.  Every round
 * (PGO_PARAMS.tickMs) it observes (recent self samples per function, exact
 * counts and their age, live versions, the run-time sysctls and how long
 * each has been unchanged), asks the policy (policy.ts, pure), logs what
 * changed in the decisions, and unless in dry-run mode:
 *   - reverts versions whose folded sysctl changed (de-specialization);
 *   - runs instrumentation windows for functions that need exact counts
 *     (src/sampler/instrument.ts);
 *   - compiles optimized versions (the profile as metadata, stable
 *     run-time sysctls folded behind a guard) and keeps them only if the
 *     interleaved regression check finds them faster (abtest.ts); a
 *     compile that fails or a set that is not faster leaves the previous
 *     code running, and counts as a setback for the policy's backoff.
 * What it learns (counts, compiles, decisions) goes to the profile store
 * when the run has one; a warm start takes the store's merged counts.
 */
import type { KernelInstance } from '../kernel/instance.js';
import type { PreparedBoot } from '../kernel/run.js';
import { readU64, readWords } from '../native/libc.js';
import type { Installer } from '../rejit/installer.js';
import type { CodeVersion } from '../rejit/versions.js';
import type { FunctionCounts } from '../sampler/counts.js';
import { decodeCounts, functionAt, instrumentationWindow } from '../sampler/instrument.js';
import type { SamplingRun } from '../sampler/sampler.js';
import { functionIrHashes } from '../store/ir-hash.js';
import type { StoreSession } from '../store/session.js';
import type { SpendGate } from '../scheduler/budget.js';
import { type AbParams, DEFAULT_AB, interleave, type Verdict } from './abtest.js';
import { despecialize } from './despecialize.js';
import { readTier, tierId, tierKey, writeTier } from './tier-cache.js';
import { summarize } from './metadata.js';
import { guarded, type NamedPolicy, type TraceWriter } from './policies.js';
import { DEFAULT_POLICY, type Decision, decideTier, defaultPolicy, type FunctionState, type Policy, type PolicyInput, type PolicyParams, type SysctlState } from './policy.js';

export const PGO_PARAMS = {
  tickMs: 250,
  /** The whole-image instrumentation window. */
  tierWindowMs: 250,
  /** Samples before the window instruments only what was sampled (fewer: everything). */
  tierMinSamples: 300,
  /** The tier's pipeline (offline PGO builds use O3 too). */
  tierPipeline: 'default<O3>',
  /** Instrumentation window length. */
  windowMs: 150,
  /** Samples older than this do not count as recent hotness. */
  recentS: 2,
  /** Functions (by self samples) the policy looks at each round. */
  candidates: 40,
  /** The compile time assumed before any was measured (ms). */
  priorCompileMs: 150,
};

export type RejitMode = 'normal' | 'safe' | 'dry-run';

/** Code a per-function version or window may link, asked of the memory budget (bytes; measured: one to three pages). */
const PER_FUNCTION_CODE_BYTES = 16 << 10;

export interface TimelinePoint {
  t_s: number;
  ops_per_sec: number;
  event?: string;
}

interface FunctionHistory {
  counts: FunctionCounts | null;
  countsId: number;
  countsAtS: number;
  failures: number;
  regressions: number;
  setbackAtS: number | null;
  speedups: number[];
  wasHot: boolean;
  /** The version the engine made live, with what it was built from. */
  live: { version: CodeVersion; countsId: number | null; folded: Record<string, string> } | null;
  lastDecision: string;
}

/** What the engine learned, kept across kernel restarts of one run. */
export class PgoHistory {
  readonly functions = new Map<string, FunctionHistory>();
  readonly timeline: TimelinePoint[] = [];
  readonly decisions: (Decision & { at_s: number })[] = [];
  compileMs: number[] = [];
  /** The whole-image tier: what is live, its setbacks. */
  readonly tier: {
    live: { versions: CodeVersion[]; folded: Record<string, string> } | null;
    failures: number;
    failedAtS: number | null;
    speedup: number | null;
    lastDecision: string;
    /** The tier cache was looked at (once per run). */
    triedCache: boolean;
  } = { live: null, failures: 0, failedAtS: null, speedup: null, lastDecision: '', triedCache: false };
  compiles = 0;
  failures = 0;
  kept = 0;
  rolledBack = 0;
  verdicts: (Verdict & { at_s: number; functions: string[] })[] = [];
  private nextCounts = 1;

  fn(name: string): FunctionHistory {
    let h = this.functions.get(name);
    if (!h) {
      h = { counts: null, countsId: 0, countsAtS: 0, failures: 0, regressions: 0, setbackAtS: null, speedups: [], wasHot: false, live: null, lastDecision: '' };
      this.functions.set(name, h);
    }
    return h;
  }

  setCounts(c: FunctionCounts, atS: number): void {
    const h = this.fn(c.function);
    h.counts = c;
    h.countsId = this.nextCounts++;
    h.countsAtS = atS;
  }
}

export interface EngineOptions {
  policy?: NamedPolicy;
  /** The whole-image tier (default on; false: per-function versions only). */
  tier?: boolean;
  /** The workload's name: part of the tier cache's key. */
  workload?: string;
  /** Record every round's observed state and decisions (--record-trace). */
  trace?: TraceWriter;
  params?: PolicyParams;
  ab?: AbParams;
  mode: () => RejitMode;
  /** Seconds into the run (the timeline's clock). */
  nowS: () => number;
  log?: (line: string) => void;
  /** The memory budget the kernel granted (src/scheduler/budget.ts): asked before every build; none: no limit. */
  budget?: SpendGate;
  /** --batch: awaited before each regression check, so no compile overlaps its measured intervals (CompileServer.drain). */
  beforeCheck?: () => Promise<void>;
}

export interface PgoSummary {
  /** The whole-image tier: live or not, its functions, the speedup the check measured when it went live. */
  tier: { live: boolean; functions: number; folded: Record<string, string>; speedup: number | null; failures: number };
  policy: string;
  /** The chosen policy threw or answered nonsense (the default took over). */
  policy_problem: string | null;
  compile_ms_total: number;
  compiles: number;
  compile_failures: number;
  versions_kept: number;
  versions_rolled_back: number;
  windows: number;
  verdicts: { at_s: number; functions: string[]; keep: boolean; ratio: number; p: number; reason: string }[];
  /** The latest decision per function (what `kjit explain` reads). */
  decisions: { function: string; kind: string; reason: string; at_s: number }[];
}

interface Sysctl {
  name: string;
  variable: string;
  address: bigint;
  value: bigint;
  changedAtS: number;
}

export class PgoEngine {
  private timer: NodeJS.Timeout | null = null;
  private secondTimer: NodeJS.Timeout | null = null;
  private busy: Promise<void> | null = null;
  private stopped = false;
  private readonly sysctls: Sysctl[];
  private readonly snapshots: { t: number; samples: number; counts: Map<string, { self: number; total: number }> }[] = [];
  /** Functions with indirect calls in their IR, and how many. */
  private lastOps = { t: 0, ops: 0 };
  private pendingEvent: string[] = [];
  windows = 0;

  constructor(
    private readonly instance: KernelInstance,
    private readonly installer: Installer,
    private readonly p: PreparedBoot,
    private readonly sampling: SamplingRun,
    private readonly store: StoreSession | null,
    readonly history: PgoHistory,
    private readonly o: EngineOptions,
  ) {
    this.policy = guarded(o.policy ?? { name: 'default', policy: defaultPolicy }, (problem) => {
      this.policyProblem = problem;
      this.event(problem);
      store?.logDecision({ kind: 'policy-error', function: null, reason: problem, numbers: {}, at_s: o.nowS() });
    });
    const now = o.nowS();
    this.sysctls = p.config.values
      .filter((v) => !v.bootFixed)
      .flatMap((v) => {
        const address = instance.jit.tryLookup(v.sysctl.variable);
        /* unchanged since boot: as stable as a value can be */
        return address === null ? [] : [{ name: v.sysctl.name, variable: v.sysctl.variable, address, value: v.value, changedAtS: now - 1e6 }];
      });
  }

  /* What the image's IR says (its functions' hashes, their indirect calls): worked out on first use,
   * after the kernel has started (printing and walking a large image costs a few hundred ms). */
  private hashesOnce: Map<string, string> | null = null;
  private get hashes(): Map<string, string> {
    return (this.hashesOnce ??= functionIrHashes(this.p.image.pristine));
  }
  private icallOnce: Map<string, number> | null = null;
  private get icallFunctions(): Map<string, number> {
    if (this.icallOnce) return this.icallOnce;
    const out = new Map<string, number>();
    for (const f of this.p.image.pristine.functions()) {
      if (f.isDeclaration()) continue;
      let n = 0;
      for (const i of f.instructions()) if (i.isIndirectCall()) n++;
      if (n) out.set(f.name, n);
    }
    return (this.icallOnce = out);
  }

  /** A warm start: the store's counts for this IR (on the first tick). */
  private warmStarted = false;
  private warmStart(): void {
    if (this.warmStarted) return;
    this.warmStarted = true;
    const now = this.o.nowS();
    for (const c of this.store?.loaded.counts ?? []) {
      if (this.hashes.get(c.function) === c.ir_hash) this.history.setCounts(c, now);
    }
  }

  private readonly policy: Policy;
  /** What went wrong with the chosen policy (null: nothing; the default took over if not). */
  policyProblem: string | null = null;

  private log(line: string): void {
    this.o.log?.(line);
  }

  start(): void {
    this.lastOps = { t: performance.now(), ops: this.instance.cb.getNumber('ops_done') };
    this.timer = setInterval(() => this.tick(), PGO_PARAMS.tickMs);
    this.secondTimer = setInterval(() => this.second(), 1000);
  }

  /** Stop deciding; wait for a job under way (its versions stay as they are: the run is ending). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.secondTimer) clearInterval(this.secondTimer);
    this.timer = this.secondTimer = null;
    await this.busy;
  }

  /** One point of the timeline per second: throughput, and what happened in it. */
  private second(): void {
    if (this.instance.isDisposed) return;
    const t = performance.now();
    const ops = this.instance.cb.getNumber('ops_done');
    const point: TimelinePoint = { t_s: Math.round(this.o.nowS() * 1000) / 1000, ops_per_sec: ((ops - this.lastOps.ops) * 1000) / (t - this.lastOps.t) };
    if (this.pendingEvent.length) point.event = this.pendingEvent.splice(0).join('; ');
    this.history.timeline.push(point);
    this.lastOps = { t, ops };
  }

  private event(text: string): void {
    this.pendingEvent.push(text);
    this.log(`pgo: ${text}`);
  }

  private tick(): void {
    if (this.busy || this.stopped || this.o.mode() === 'safe' || this.instance.isDisposed) return;
    this.warmStart();
    this.busy = this.round()
      .catch((e) => this.log(`pgo: round failed: ${(e as Error).message}`))
      .finally(() => {
        this.busy = null;
      });
  }

  /* ---- observing ------------------------------------------------------------- */

  private readSysctls(): SysctlState[] {
    const now = this.o.nowS();
    return this.sysctls.map((s) => {
      const v = BigInt.asIntN(64, readU64(s.address));
      if (v !== s.value) {
        this.event(`sysctl ${s.name}: ${s.value} -> ${v}`); /* the timeline marks it (kjit report) */
        s.value = v;
        s.changedAtS = now;
      }
      return { name: s.name, variable: s.variable, value: v.toString(), stableS: now - s.changedAtS };
    });
  }

  /**
   * Self and total shares (%) per candidate over the last
   * PGO_PARAMS.recentS seconds (all samples so far early on).  Candidates:
   * the hottest functions by self samples, and every function with
   * indirect calls that the sampled chains pass through.
   */
  private recentShares(): Map<string, { self: number; total: number }> {
    this.sampling.live?.drain();
    const prof = this.sampling.profile;
    const names = new Set(prof.top(PGO_PARAMS.candidates).map((t) => t.function));
    for (const name of this.icallFunctions.keys()) if (prof.counts(name).total > 0) names.add(name);
    const t = performance.now();
    const now = new Map([...names].map((n) => [n, prof.counts(n)]));
    this.snapshots.push({ t, samples: prof.samples, counts: now });
    while (this.snapshots.length > 2 && t - this.snapshots[1]!.t >= PGO_PARAMS.recentS * 1000) this.snapshots.shift();
    const old = this.snapshots[0]!;
    const recent = prof.samples - old.samples;
    const out = new Map<string, { self: number; total: number }>();
    /* a warm start knows what was hot before its own samples say so */
    const loaded = this.store?.loaded;
    if (prof.samples < 200 && loaded && loaded.samples > 0) {
      for (const f of loaded.functions) out.set(f.function, { self: (f.self / loaded.samples) * 100, total: (f.total / loaded.samples) * 100 });
      return out;
    }
    for (const [n, c] of now) {
      const o = old.counts.get(n) ?? { self: 0, total: 0 };
      const share = (x: number, ox: number) => (recent >= 200 ? (x - ox) / recent : prof.samples ? x / prof.samples : 0) * 100;
      out.set(n, { self: share(c.self, o.self), total: share(c.total, o.total) });
    }
    return out;
  }

  private jitable(name: string): boolean {
    if (name.startsWith('kjit_') || name.startsWith('[')) return false;
    const f = this.p.image.pristine.getFunction(name);
    return !!f && !f.isDeclaration() && this.instance.jit.tryLookup(name) !== null;
  }

  private observe(): { functions: FunctionState[]; sysctls: SysctlState[] } {
    const now = this.o.nowS();
    const shares = this.recentShares();
    const meanCompile = this.history.compileMs.length
      ? this.history.compileMs.reduce((s, x) => s + x, 0) / this.history.compileMs.length
      : PGO_PARAMS.priorCompileMs;
    const functions: FunctionState[] = [];
    for (const [name, share] of shares) {
      const h = this.history.fn(name);
      const c = h.counts;
      const icallsPerS = c && c.window.ms > 0 ? (c.icalls.reduce((s, x) => s + x.total, 0) * 1000) / c.window.ms : 0;
      const live = h.live && h.live.version.state === 'live' ? h.live : null;
      if (h.live && !live) h.live = null;
      functions.push({
        name,
        selfPct: share.self,
        totalPct: share.total,
        icallSites: this.icallFunctions.get(name) ?? 0,
        icallsPerS,
        jitable: this.jitable(name),
        counts: h.counts ? { id: h.countsId, ageS: now - h.countsAtS, current: h.counts.ir_hash === this.hashes.get(name), entries: h.counts.entry } : null,
        live: live ? { kind: 'optimized', countsId: live.countsId, folded: live.folded } : { kind: 'boot' },
        wasHot: h.wasHot,
        failures: h.failures,
        regressions: h.regressions,
        sinceSetbackS: h.setbackAtS === null ? null : now - h.setbackAtS,
        speedups: h.speedups,
        expectedCompileMs: meanCompile,
      });
    }
    return { functions, sysctls: this.readSysctls() };
  }

  /* ---- one round ------------------------------------------------------------- */

  private async round(): Promise<void> {
    if (this.o.tier !== false) {
      const settled = await this.tierStep();
      /* per-function decisions wait until the tier was tried */
      if (!settled) return;
    }
    const { functions, sysctls } = this.observe();
    const params = this.o.params ?? DEFAULT_POLICY;
    const input: PolicyInput = { nowS: this.o.nowS(), functions, sysctls, busy: 0, kernelBusyShare: 1 };
    const decisions = this.policy(input, params);
    this.o.trace?.write(input, decisions);
    const now = this.o.nowS();
    for (const d of decisions) {
      const h = this.history.fn(d.function);
      h.wasHot = d.reason !== 'not-hot' && d.reason !== 'not-ir';
      const key = `${d.kind}:${d.reason}`;
      if (key === h.lastDecision) continue; /* log changes, not every round */
      h.lastDecision = key;
      this.history.decisions.push({ ...d, at_s: now });
      this.store?.logDecision({ kind: d.kind, function: d.function, reason: d.reason, numbers: d.numbers, at_s: now });
    }
    if (this.o.mode() !== 'normal') return;
    const reverts = decisions.filter((d) => d.kind === 'revert');
    if (reverts.length) await this.revert(reverts.map((d) => d.function), reverts[0]!.reason);
    const windows = decisions.filter((d) => d.kind === 'instrument');
    if (windows.length) await this.instrument(windows.map((d) => d.function));
    if (this.stopped) return;
    const optimize = decisions.filter((d) => d.kind === 'optimize');
    if (optimize.length) await this.optimize(optimize);
    await this.installer.freeRetired(200);
  }

  /* ---- the image tier ---------------------------------------------------------- */

  /** Functions a tier replaces: every one with boot code (patchable entry), not the runtime's, at most a poke request's worth. */
  private tierFunctions(): string[] {
    const removed = new Set(this.p.compiled.report.removed.map((r) => r.name));
    const out: string[] = [];
    for (const f of this.p.image.pristine.functions()) {
      if (f.isDeclaration() || removed.has(f.name) || f.name.startsWith('kjit_') || f.isVarArg()) continue;
      if (this.instance.jit.tryLookup(f.name) === null) continue;
      out.push(f.name);
    }
    const max = this.instance.cb.array('poke_site').length;
    if (out.length <= max) return out;
    const prof = this.sampling.profile;
    return out.sort((a, b) => prof.counts(b).total - prof.counts(a).total).slice(0, max);
  }

  /** One step of the tier's life; true once per-function decisions may follow (the tier was tried). */
  private async tierStep(): Promise<boolean> {
    const now = this.o.nowS();
    const t = this.history.tier;
    this.noticeEviction();
    const counted = [...this.history.functions.values()].filter((h) => h.counts && h.counts.ir_hash === this.hashes.get(h.counts.function)).length;
    const d = decideTier(
      {
        nowS: now,
        uptimeS: now,
        counted,
        live: t.live ? { folded: t.live.folded } : null,
        failures: t.failures,
        sinceFailureS: t.failedAtS === null ? null : now - t.failedAtS,
        sysctls: this.readSysctls(),
      },
      this.o.params ?? DEFAULT_POLICY,
    );
    if (d.reason !== t.lastDecision) {
      t.lastDecision = d.reason;
      this.history.decisions.push({ kind: `tier-${d.kind}` as Decision['kind'], function: '[tier]', reason: d.reason, numbers: { counted }, at_s: now });
      this.store?.logDecision({ kind: `tier-${d.kind}`, function: null, reason: d.reason, numbers: { counted }, at_s: now });
    }
    if (this.o.mode() !== 'normal') return true;
    if (d.kind === 'count') {
      if (this.affordable('[tier]', this.tierCodeBytes())) await this.tierWindow();
      return false;
    }
    if (d.kind === 'build') {
      if (this.affordable('[tier]', this.tierCodeBytes())) await this.tierBuild(d.fold);
      return true;
    }
    return d.reason !== 'starting';
  }

  /**
   * An instrumentation window over the image: exact counts of every function
   * that ran.  Only the functions the sampler has seen on a chain are
   * instrumented (a smaller unit compiles in a fraction of the time); the
   * others get no profile and are compiled as boot compiled them.
   */
  private async tierWindow(): Promise<void> {
    const prof = this.sampling.profile;
    this.sampling.live?.drain();
    const all = this.tierFunctions();
    const seen = all.filter((f) => prof.counts(f).total > 0);
    const fns = prof.samples >= PGO_PARAMS.tierMinSamples ? seen : all;
    const t0 = performance.now();
    /* counts are exact at any optimization level: the window's code is compiled fast */
    const { versions, unit } = await this.installer.compileTier({ functions: fns, instrument: true, pipeline: 'default<O1>' });
    this.history.compileMs.push(unit.ms);
    if (this.stopped) {
      for (const v of versions) this.installer.discard(v);
      return;
    }
    const previous = versions.map((v) => this.installer.liveVersion(v.fn));
    for (const v of previous) if (v) v.pinned = true;
    let ms = 0;
    const ops0 = this.instance.cb.getNumber('ops_done');
    try {
      await this.installer.commit(versions);
      const w0 = performance.now();
      await new Promise((r) => setTimeout(r, PGO_PARAMS.tierWindowMs));
      ms = performance.now() - w0;
    } finally {
      await this.installer.commit(
        previous.filter((v): v is CodeVersion => v !== null),
        versions.filter((_, i) => previous[i] === null).map((v) => v.fn),
      );
      for (const v of previous) if (v) v.pinned = false;
    }
    const ops = this.instance.cb.getNumber('ops_done') - ops0;
    /* the memory budget evicted the window's code meanwhile: its counters are gone with it */
    if (versions.some((v) => v.state === 'freed')) {
      this.event('the window over the image was cut short: the kernel took its memory back');
      return;
    }
    const got: FunctionCounts[] = [];
    for (const v of versions) {
      if (!v.data?.counts) continue;
      const c = decodeCounts(readWords(v.data.address, v.data.words), v.data.counts, (a) => functionAt(this.instance, a), {
        function: v.fn,
        ir_hash: this.hashes.get(v.fn) ?? '',
        window: { ms, ops },
      });
      if (c.entry === 0) continue;
      this.history.setCounts(c, this.o.nowS());
      got.push(c);
    }
    this.windows++;
    this.store?.addCounts(got);
    this.event(`counted ${got.length} of ${versions.length} functions in a ${Math.round(ms)} ms window over the whole image (compiled in ${Math.round(performance.now() - t0 - ms)} ms)`);
  }

  /** Build the tier with every count and `fold`, keep it if the regression check finds it faster. */
  private async tierBuild(fold: Record<string, string>): Promise<void> {
    const t = this.history.tier;
    const all = [...this.history.functions.values()].map((h) => h.counts).filter((c): c is FunctionCounts => c !== null);
    let built: Awaited<ReturnType<Installer['compileTier']>>;
    const functions = this.tierFunctions();
    const key = this.o.workload ? tierKey(this.p, { functions, fold, workload: this.o.workload }) : null;
    /* a warm run (its profile store had counts) starts from the tier kept last time, if any */
    const cached = key && !t.live && !t.triedCache && (this.store?.loaded.counts.length ?? 0) > 0 ? readTier(key) : null;
    t.triedCache = true;
    try {
      if (cached) {
        const unit = { object: cached.object, versions: cached.versions, profile: cached.profile, irInstructions: 0, ms: 0 };
        built = { versions: this.installer.linkTier(cached.id, unit), unit };
        this.event(`linked the tier kept by an earlier run (${cached.versions.length} functions) instead of compiling one`);
      } else {
        built = await this.installer.compileTier(
          { functions, profile: { counts: all, summary: summarize(all) }, specialize: fold, pipeline: PGO_PARAMS.tierPipeline },
          key && !t.live ? { id: tierId(key) } : {},
        );
      }
    } catch (e) {
      if (this.overBudget('[tier]', e)) return; /* not the tier's fault: tried again when the budget allows */
      t.failures++;
      t.failedAtS = this.o.nowS();
      this.event(`the tier did not build: ${(e as Error).message.split('\n')[0]}`);
      this.store?.logCompile({ function: '[tier]', tier: 'tier', reason: 'build', outcome: 'failed', why: (e as Error).message, at_s: this.o.nowS() });
      return;
    }
    this.history.compileMs.push(built.unit.ms);
    this.history.compiles++;
    if (this.stopped) {
      for (const v of built.versions) this.installer.discard(v);
      return;
    }
    await this.o.beforeCheck?.();
    const verdict = await interleave(this.instance, this.installer, built.versions, this.o.ab ?? DEFAULT_AB);
    const now = this.o.nowS();
    this.history.verdicts.push({ ...verdict, at_s: now, functions: ['[tier]'] });
    const p = built.unit.profile;
    const what = `a tier of ${built.versions.length} functions (${p.applied} with counts, ${Object.keys(fold).length} sysctls folded; compiled in ${Math.round(built.unit.ms)} ms)`;
    this.store?.logCompile({ function: '[tier]', tier: 'tier', reason: t.live ? 'rebuild' : 'first', compile_ms: built.unit.ms, outcome: verdict.keep ? 'installed' : 'rolled-back', why: verdict.reason, at_s: now });
    if (!verdict.keep) {
      t.failures++;
      t.failedAtS = now;
      this.history.rolledBack += built.versions.length;
      this.event(`rolled back ${what}: ${verdict.reason}`);
      return;
    }
    const folded = new Map<string, string>();
    for (const v of built.versions) {
      const h = this.history.fn(v.fn);
      const f = Object.fromEntries((v.build?.specialized ?? []).map((x) => [x.variable, x.value]));
      for (const [k, val] of Object.entries(f)) folded.set(k, val);
      h.live = { version: v, countsId: h.counts ? h.countsId : null, folded: f };
    }
    t.live = { versions: built.versions, folded: Object.fromEntries(folded) };
    if (key && !cached && built.versions[0]?.id === tierId(key)) {
      writeTier(key, { id: tierId(key), object: built.unit.object, versions: built.unit.versions, profile: built.unit.profile, ms: built.unit.ms });
    }
    t.speedup = 1 / verdict.ratio - 1;
    this.history.kept += built.versions.length;
    this.event(`installed ${what}: ${verdict.reason}`);
  }

  private async revert(fns: string[], reason: string): Promise<void> {
    const live = fns.filter((f) => this.history.fn(f).live?.version.state === 'live');
    if (!live.length) return;
    await this.installer.commit([], live);
    for (const f of live) this.history.fn(f).live = null;
    this.event(`reverted ${live.length} version(s) to boot code (${reason}): ${live.join(', ')}`);
  }

  private async instrument(fns: string[]): Promise<void> {
    const got: FunctionCounts[] = [];
    await Promise.all(
      fns.map(async (fn) => {
        if (!this.affordable(fn, PER_FUNCTION_CODE_BYTES)) return;
        try {
          const w = await instrumentationWindow(this.instance, this.installer, fn, { ms: PGO_PARAMS.windowMs, irHash: this.hashes.get(fn) ?? '' });
          this.windows++;
          this.history.setCounts(w.counts, this.o.nowS());
          if (w.counts.entry > 0) got.push(w.counts);
        } catch (e) {
          if (this.overBudget(fn, e)) return;
          this.setback(fn, 'failures', `instrumentation failed: ${(e as Error).message}`);
        }
      }),
    );
    if (got.length) {
      this.store?.addCounts(got);
      this.event(`counted ${got.length} function(s) in ${PGO_PARAMS.windowMs} ms windows`);
    }
  }

  private setback(fn: string, kind: 'failures' | 'regressions', why: string): void {
    const h = this.history.fn(fn);
    h[kind]++;
    h.setbackAtS = this.o.nowS();
    this.log(`pgo: ${fn}: ${why}`);
  }

  private async optimize(ds: Decision[]): Promise<void> {
    const all = [...this.history.functions.values()].map((h) => h.counts).filter((c): c is FunctionCounts => c !== null);
    const summary = summarize(all);
    const pipeline = `pgo-icall-prom,${this.p.mode.pipeline}`;
    const fresh: { d: Decision; v: CodeVersion; countsId: number }[] = [];
    for (const d of ds) {
      if (this.stopped) break;
      const h = this.history.fn(d.function);
      if (!h.counts) continue;
      if (!this.affordable(d.function, PER_FUNCTION_CODE_BYTES)) continue;
      const t0 = performance.now();
      try {
        const v = await this.installer.compile(d.function, 'optimized', { profile: { counts: h.counts, summary }, specialize: d.fold ?? {}, pipeline });
        const ms = performance.now() - t0;
        this.history.compileMs.push(v.times.compiledMs);
        this.history.compiles++;
        if (v.build?.profile && !v.build.profile.applied) this.log(`pgo: ${d.function}: profile not applied (${v.build.profile.reason})`);
        this.store?.logCompile({ function: d.function, version: v.id, tier: 'optimized', reason: d.reason, compile_ms: ms, code_bytes: v.size, outcome: 'installed', at_s: this.o.nowS() });
        fresh.push({ d, v, countsId: h.countsId });
      } catch (e) {
        if (this.overBudget(d.function, e)) continue;
        this.history.failures++;
        this.setback(d.function, 'failures', `compile failed: ${(e as Error).message}`);
        this.store?.logCompile({ function: d.function, tier: 'optimized', reason: d.reason, outcome: 'failed', why: (e as Error).message, at_s: this.o.nowS() });
      }
    }
    if (!fresh.length || this.stopped) {
      for (const f of fresh) this.installer.discard(f.v);
      return;
    }
    await this.o.beforeCheck?.();
    const verdict = await interleave(this.instance, this.installer, fresh.map((f) => f.v), this.o.ab ?? DEFAULT_AB);
    const names = fresh.map((f) => f.d.function);
    this.history.verdicts.push({ ...verdict, at_s: this.o.nowS(), functions: names });
    const speedup = Number.isFinite(verdict.ratio) ? 1 / verdict.ratio - 1 : 0;
    for (const f of fresh) {
      const h = this.history.fn(f.d.function);
      h.speedups.push(speedup);
      if (verdict.keep) {
        const folded = Object.fromEntries((f.v.build?.specialized ?? []).map((s) => [s.variable, s.value]));
        h.live = { version: f.v, countsId: f.countsId, folded };
      } else {
        this.setback(f.d.function, 'regressions', verdict.reason);
        this.store?.logCompile({ function: f.d.function, version: f.v.id, tier: 'optimized', reason: f.d.reason, outcome: 'rolled-back', why: verdict.reason, at_s: this.o.nowS() });
      }
    }
    if (verdict.keep) this.history.kept += fresh.length;
    else this.history.rolledBack += fresh.length;
    this.event(`${verdict.keep ? 'installed' : 'rolled back'} ${fresh.length} optimized version(s): ${verdict.reason}`);
  }

  /**
   * Before the host writes `variable` (a sysctl): put generic code back
   * wherever a live version folded it, and wait until no kernel task can
   * be inside the folded code any more.  Resolves with the functions
   * de-specialized.
   */
  async despecialize(variable: string, timeoutMs = 2000): Promise<string[]> {
    await this.busy;
    const folded = [...this.history.functions].filter(([, h]) => h.live && h.live.version.state === 'live' && variable in h.live.folded);
    if (!folded.length) return [];
    await despecialize(
      this.installer,
      folded.map(([, h]) => h.live!.version),
      timeoutMs,
    );
    for (const [, h] of folded) h.live = null;
    const fns = folded.map(([name]) => name);
    this.event(`de-specialized ${fns.length} function(s) before a write of ${variable}: ${fns.join(', ')}`);
    return fns;
  }

  /* ---- the memory budget (issue 8; src/scheduler/budget.ts) ------------------------ */

  /** Code a tier may link (bytes): at most what boot's whole image linked. */
  private tierCodeBytes(): number {
    return this.p.compiled.report.objectBytes;
  }

  /** May `what` be built now?  If not it is skipped ('over-budget', logged once per spell) and tried again in a later round. */
  private affordable(what: string, codeBytes: number): boolean {
    if (!this.o.budget || this.o.budget.canSpend(codeBytes)) {
      this.overBudgetNow.delete(what);
      return true;
    }
    this.skipOverBudget(what, { code_bytes: codeBytes });
    return false;
  }

  /** Did a build or window of `what` fail because of the budget (refused link, cancelled by a revocation)?  Then it is no setback. */
  private overBudget(what: string, e: unknown): boolean {
    if (!this.o.budget?.overBudget(e)) return false;
    this.skipOverBudget(what, {});
    this.log(`pgo: ${what}: over the memory budget: ${(e as Error).message.split('\n')[0]}`);
    return true;
  }

  private readonly overBudgetNow = new Set<string>();

  private skipOverBudget(what: string, numbers: Record<string, number>): void {
    if (this.overBudgetNow.has(what)) return;
    this.overBudgetNow.add(what);
    const at_s = this.o.nowS();
    this.history.decisions.push({ kind: what === '[tier]' ? ('tier-build' as Decision['kind']) : 'leave', function: what, reason: 'over-budget', numbers, at_s });
    this.store?.logDecision({ kind: what === '[tier]' ? 'tier-build' : 'leave', function: what === '[tier]' ? null : what, reason: 'over-budget', numbers, at_s });
  }

  /** The budget evicted the tier (its versions are back to boot code): it is no longer live, and is built again when allowed. */
  private noticeEviction(): void {
    const t = this.history.tier;
    if (t.live && !t.live.versions.some((v) => v.state === 'live')) {
      t.live = null;
      this.event('the tier was evicted (the kernel took memory back): boot code again');
    }
  }

  summary(): PgoSummary {
    const latest = new Map<string, { function: string; kind: string; reason: string; at_s: number }>();
    for (const d of this.history.decisions) latest.set(d.function, { function: d.function, kind: d.kind, reason: d.reason, at_s: d.at_s });
    return {
      tier: {
        live: this.history.tier.live !== null,
        functions: this.history.tier.live?.versions.length ?? 0,
        folded: this.history.tier.live?.folded ?? {},
        speedup: this.history.tier.speedup,
        failures: this.history.tier.failures,
      },
      policy: this.o.policy?.name ?? 'default',
      policy_problem: this.policyProblem,
      compile_ms_total: this.history.compileMs.reduce((s, x) => s + x, 0),
      compiles: this.history.compiles,
      compile_failures: this.history.failures,
      versions_kept: this.history.kept,
      versions_rolled_back: this.history.rolledBack,
      windows: this.windows,
      verdicts: this.history.verdicts.map((v) => ({ at_s: v.at_s, functions: v.functions, keep: v.keep, ratio: v.ratio, p: v.p, reason: v.reason })),
      decisions: [...latest.values()],
    };
  }
}

/**
 * Peak and time to 95% of peak (DESIGN.md section 8): the peak is the
 * median throughput over the last third of the run's 1-second windows;
 * time to 95% is the first moment after which every window stays at or
 * above 95% of it (0 if the first already did).
 */
export function peakOf(timeline: readonly TimelinePoint[]): { peak: number; timeTo95: number | null } {
  if (timeline.length === 0) return { peak: 0, timeTo95: null };
  const last = timeline.slice(Math.floor((timeline.length * 2) / 3)).map((p) => p.ops_per_sec).sort((a, b) => a - b);
  const mid = Math.floor(last.length / 2);
  const peak = last.length % 2 ? last[mid]! : (last[mid - 1]! + last[mid]!) / 2;
  let from: number | null = null;
  for (let i = timeline.length - 1; i >= 0; i--) {
    if (timeline[i]!.ops_per_sec < 0.95 * peak) break;
    from = i;
  }
  if (from === null) return { peak, timeTo95: null };
  /* the window i covers (t_{i-1}, t_i]: reaching 95% happened at its start */
  return { peak, timeTo95: from === 0 ? 0 : timeline[from - 1]!.t_s };
}
