/**
 * @fileoverview What the control channel's commands do to a running kernel
 * (`kjit serve`).  The decisions are decide.ts's; this carries them out on
 * the kernel that ExecuteRequest.attach hands over (src/kernel/run.ts):
 * status from the control block, the installer and the code region;
 * sysctls read and written at their variables' addresses; patches applied
 * and reverted as one transition each (src/rejit/patch.ts).  Commands that
 * change something run one at a time, in arrival order; a failure leaves
 * the kernel as it was and is a refusal to the client.
 */
import { firstLine, KjitError } from '../errors.js';
import type { SysctlValue } from '../kernel/bootconfig.js';
import type { LiveRun } from '../kernel/run.js';
import type { PgoEngine } from '../pgo/engine.js';
import { SysctlFlag } from '../kernel/tables.js';
import { CodeRegion } from '../native/codemem.js';
import { KernelState } from '../native/control-block.js';
import { monotonicNs, readU64, writeI64 } from '../native/libc.js';
import { InstallError } from '../rejit/installer.js';
import { type AppliedPatch, checkPatch, inlinersOf, type PatchSpec } from '../rejit/patch.js';
import { probeFunction } from '../sampler/probe.js';
import { PROBE_DEFAULT_SECONDS } from './client.js';
import { decidePatch, decideSysctlWrite, findSysctl, foldedInto } from './decide.js';
import type { Journal } from './journal.js';
import { type Outcome, type RejitMode, type Refusal, refusal, type Request } from './protocol.js';
import type { RequestHandler, ServerCounters } from './server.js';

export const SERVICE_PARAMS = {
  /** Operations and idle time are sampled this often; status reports the last such interval. */
  sampleMs: 1000,
  /** Samples kept: enough to always have one at least sampleMs old. */
  samplesKept: 3,
  /** Functions status lists as hot (by self samples since the kernel started). */
  hotFunctions: 10,
};

export interface ServiceOptions {
  image: string;
  /** As asked for; null: the image's default (known once it boots). */
  workload: string | null;
  mode: string;
  rejitMode: RejitMode;
  /** Compiled with patchable entries (BootRequest.patchable). */
  patchable: boolean;
  /** Booted with --safe (so without patchable entries). */
  safeAtStart: boolean;
  journal: Journal | null;
  /** Seconds between journal snapshots. */
  flushEveryS: number;
  /** One line for the operator (stderr). */
  log: (line: string) => void;
}

export interface PatchReport {
  fn: string;
  file: string;
  at_s: number;
  functions: string[];
  compile_ms: number;
  apply_ms: number;
}

export interface SysctlReport {
  name: string;
  /** int64 values as decimal strings */
  value: string;
  min: string;
  max: string;
  boot_fixed: boolean;
  /** Its boot value is compiled into the code (this mode folds it). */
  folded: boolean;
  read_only: boolean;
  description: string;
}

export interface StatusReport {
  pid: number;
  image: string;
  workload: string | null;
  mode: string;
  /** booting, running, stopped, faulted, panicked (the kernel's); stopping (the run is ending) */
  state: string;
  uptime_s: number;
  /** Figures of the current kernel (a fault in patched code restarts it: they start again). */
  ops: number;
  checksum: string | null;
  throughput: { ops_per_sec: number | null; interval_s: number | null; ops_per_sec_since_start: number | null };
  idle_share: { last_interval: number | null; since_start: number | null };
  hot_functions: { available: boolean; reason: string; functions: { fn: string; share: number }[] };
  versions: {
    installs: number;
    reverts: number;
    live: number;
    waiting_grace: number;
    list: { fn: string; id: number; kind: string; state: string; bytes: number; patch: string }[];
  };
  patches: PatchReport[];
  rejit_mode: RejitMode;
  safe: boolean;
  dry_run: boolean;
  patchable: boolean;
  memory: {
    arena_bytes: number | null;
    code_region: { bytes_in_use: number; peak_bytes: number; limit_bytes: number; region_bytes: number } | null;
    rss_bytes: number;
    /** The memory budget the kernel granted the JIT (src/scheduler/budget.ts); null: none (only the pgo mode negotiates one). */
    grant: {
      ask_bytes: number;
      grant_bytes: number;
      code_share_bytes: number;
      compiler_share_bytes: number;
      /** In use now: code linked since boot, and the compile server above its ready baseline. */
      code_bytes: number;
      server_bytes: number;
      revocations: number;
      eviction_ms_max: number | null;
    } | null;
    /** One line: the grant, or why there is none. */
    grant_note: string;
  };
  restarts: number;
  /** The pgo mode's online re-JIT (null in other modes): what it compiled and kept, what is optimized now, its latest events. */
  pgo?: {
    policy: string;
    compiles: number;
    versions_kept: number;
    versions_rolled_back: number;
    windows: number;
    compile_ms_total: number;
    optimized: string[];
    recent_events: { t_s: number; event: string }[];
  } | null;
  control: { socket: string; connections: number; requests: ServerCounters['requests']; refused: number; peers_refused: number };
}

const STATE_NAMES: Record<number, string> = {
  [KernelState.NEW]: 'booting',
  [KernelState.BOOTING]: 'booting',
  [KernelState.RUNNING]: 'running',
  [KernelState.STOPPED]: 'stopped',
  [KernelState.FAULTED]: 'faulted',
  [KernelState.PANICKED]: 'panicked',
};

interface Sample {
  tNs: bigint;
  ops: number;
  idleNs: bigint;
}

const ok = (result: unknown): Outcome => ({ ok: true, result });
const no = (r: Refusal): Outcome => ({ ok: false, refusal: r });

function describePatch(a: AppliedPatch): PatchReport {
  return { fn: a.spec.fn, file: a.spec.file, at_s: a.spec.atSeconds, functions: a.versions.map((v) => v.fn), compile_ms: a.ms.compile, apply_ms: a.ms.apply };
}

/** The status report's memory grant (null without a budget: only the pgo mode negotiates one). */
function grantStatus(run: LiveRun): Pick<StatusReport['memory'], 'grant' | 'grant_note'> {
  const b = run.budget;
  if (!b) return { grant: null, grant_note: 'no memory budget (only the pgo mode asks the kernel for one)' };
  const r = b.report();
  const grant = {
    ask_bytes: r.ask_bytes,
    grant_bytes: r.grant_bytes,
    code_share_bytes: b.shares.codeBytes,
    compiler_share_bytes: b.shares.compilerBytes,
    code_bytes: b.codeBytes(),
    server_bytes: b.serverBytes(),
    revocations: r.revocations,
    eviction_ms_max: r.evictionMsMax,
  };
  const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
  return {
    grant,
    grant_note:
      `${mib(grant.grant_bytes)} granted of ${mib(grant.ask_bytes)} asked; in use: code ${mib(grant.code_bytes)} of ${mib(grant.code_share_bytes)}, ` +
      `compile server ${mib(grant.server_bytes)} of ${mib(grant.compiler_share_bytes)}; ${grant.revocations} revocation(s)` +
      (grant.eviction_ms_max !== null ? `, back under in ${grant.eviction_ms_max.toFixed(1)} ms at most` : ''),
  };
}

/** The status report's view of the pgo engine (kjit top shows it). */
function pgoStatus(engine: PgoEngine): NonNullable<StatusReport['pgo']> {
  const s = engine.summary();
  return {
    policy: s.policy,
    compiles: s.compiles,
    versions_kept: s.versions_kept,
    versions_rolled_back: s.versions_rolled_back,
    windows: s.windows,
    compile_ms_total: s.compile_ms_total,
    optimized: [...engine.history.functions].filter(([, h]) => h.live?.version.state === 'live').map(([name]) => name),
    recent_events: engine.history.timeline.filter((p) => p.event).slice(-5).map((p) => ({ t_s: p.t_s, event: p.event! })),
  };
}

export class ControlService implements RequestHandler {
  private run: LiveRun | null = null;
  private phase: 'booting' | 'stopping' = 'booting';
  private attachments = 0;
  private rejitMode: RejitMode;
  private samples: Sample[] = [];
  private timers: NodeJS.Timeout[] = [];
  private last: StatusReport | null = null;
  private tail: Promise<unknown> = Promise.resolve();
  /** The server's counters and socket, for status (set once it listens). */
  server: { path: string; counters: ServerCounters } | null = null;

  constructor(private readonly opts: ServiceOptions) {
    this.rejitMode = opts.rejitMode;
  }

  /** The re-JIT mode now (the pgo engine reads it every round). */
  get mode(): RejitMode {
    return this.rejitMode;
  }

  /** ExecuteRequest.attach: serve this kernel until the returned function is called. */
  readonly attach = (run: LiveRun): (() => Promise<void>) => {
    this.run = run;
    this.attachments++;
    this.samples = [];
    this.sample();
    if (this.timers.length === 0) {
      this.timers.push(setInterval(() => this.sample(), SERVICE_PARAMS.sampleMs).unref());
      const journal = this.opts.journal;
      if (journal) this.timers.push(setInterval(() => journal.append({ kind: 'snapshot', final: false, status: this.status() }), this.opts.flushEveryS * 1000).unref());
    }
    return async () => {
      this.last = this.status(); /* joined, not freed yet: the final figures */
      this.run = null;
      this.phase = 'stopping';
      await this.tail; /* a change under way ends before the kernel's code is freed */
    };
  };

  /** The run is over: the final snapshot goes to the journal (the kernel's last state: stopped, or how it failed). */
  stop(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    const final = { ...(this.last ?? this.bootingStatus()), ...this.identity(), state: this.last?.state ?? 'stopped' };
    this.opts.journal?.append({ kind: 'snapshot', final: true, status: final });
  }

  async handle(req: Request): Promise<Outcome> {
    switch (req.cmd) {
      case 'status':
        return ok(this.status());
      case 'sysctl':
        if (req.value === undefined) return this.readSysctls(req.name);
        return this.exclusive(() => this.writeSysctl(req.name!, req.value!));
      case 'patch':
        return this.exclusive(() => this.patch(req.function, req.ir));
      case 'revert':
        return this.exclusive(() => this.revert(req.function));
      case 'mode':
        return req.set === undefined ? ok(this.modeReport()) : this.exclusive(() => this.setMode(req.set!));
      case 'probe':
        /* exclusive: no patch or mode change replaces the function while it is probed */
        return this.exclusive(() => this.probe(req.function, req.seconds ?? PROBE_DEFAULT_SECONDS));
    }
  }

  private exclusive(step: () => Promise<Outcome>): Promise<Outcome> {
    const run = this.tail.then(step, step);
    this.tail = run.catch(() => {});
    return run;
  }

  private event(event: string, line: string, detail: Record<string, unknown>): void {
    this.opts.log(line);
    this.opts.journal?.append({ kind: 'event', event, detail });
  }

  private live(): LiveRun | Refusal {
    if (this.run) return this.run;
    return this.phase === 'booting'
      ? refusal('not-ready', 'the kernel is still booting', 'retry in a moment (kjit status shows when it runs)')
      : refusal('not-ready', 'the kernel is stopping', 'start a new instance with kjit serve');
  }

  /* ---- status ------------------------------------------------------------------ */

  private sample(): void {
    const run = this.run;
    if (!run) return;
    this.samples.push({ tNs: monotonicNs(), ops: run.instance.cb.getNumber('ops_done'), idleNs: run.instance.cb.get('idle_ns') });
    if (this.samples.length > SERVICE_PARAMS.samplesKept) this.samples.shift();
  }

  private modeReport() {
    return { rejit_mode: this.rejitMode, safe: this.rejitMode === 'safe', dry_run: this.rejitMode === 'dry-run', patchable: this.whyNotPatchable() === null };
  }

  private whyNotPatchable(): string | null {
    if (this.opts.patchable) return null;
    return this.opts.safeAtStart ? 'it booted with --safe' : `mode ${this.opts.mode} compiles none; boot does`;
  }

  status(): StatusReport {
    const run = this.run;
    if (!run) return this.last ? { ...this.last, ...this.identity(), state: this.phase } : this.bootingStatus();
    const cb = run.instance.cb;
    const now = monotonicNs();
    const ops = cb.getNumber('ops_done');
    const idleNs = cb.get('idle_ns');
    const first = cb.get('t_first_op_ns');
    const sinceS = first !== 0n && now > first ? Number(now - first) / 1e9 : 0;
    const base = [...this.samples].reverse().find((s) => now - s.tNs >= BigInt(SERVICE_PARAMS.sampleMs) * 1_000_000n);
    const intervalS = base ? Number(now - base.tNs) / 1e9 : null;
    const stats = run.installer?.summary();
    const region = CodeRegion.get().stats();
    const versions = run.patches.flatMap((a) =>
      a.versions.map((v) => ({ fn: v.fn, id: v.id, kind: v.kind, state: v.state, bytes: v.size, patch: `${a.spec.fn}=${a.spec.file}` })),
    );
    return {
      ...this.identity(),
      state: STATE_NAMES[cb.getNumber('state')] ?? 'unknown',
      ops,
      checksum: `0x${cb.get('checksum').toString(16).padStart(16, '0')}`,
      throughput: {
        ops_per_sec: base && intervalS ? (ops - base.ops) / intervalS : null,
        interval_s: intervalS,
        ops_per_sec_since_start: sinceS > 0 ? ops / sinceS : null,
      },
      idle_share: {
        last_interval: base && intervalS ? Math.min(1, Number(idleNs - base.idleNs) / 1e9 / intervalS) : null,
        since_start: sinceS > 0 ? Math.min(1, Number(idleNs) / 1e9 / sinceS) : null,
      },
      versions: {
        installs: stats?.installs ?? 0,
        reverts: stats?.reverts ?? 0,
        live: stats?.versionsLive ?? 0,
        waiting_grace: stats?.versionsRetired ?? 0,
        list: versions,
      },
      patches: run.livePatches().map(describePatch),
      pgo: run.pgo ? pgoStatus(run.pgo) : null,
      memory: {
        arena_bytes: cb.getNumber('arena_bytes'),
        code_region: { bytes_in_use: region.bytesInUse, peak_bytes: region.peakBytes, limit_bytes: region.limitBytes, region_bytes: region.regionBytes },
        rss_bytes: process.memoryUsage.rss(),
        ...grantStatus(run),
      },
    };
  }

  /** The live sampler's flat profile (self samples since the run started), or why there is none. */
  private hotFunctions(): StatusReport['hot_functions'] {
    const sampling = this.run?.sampling ?? null;
    if (!sampling) {
      if (this.last) return this.last.hot_functions; /* the final figures of a kernel that stopped */
      return { available: false, reason: this.run || this.phase === 'stopping' ? 'sampling is off (--sample-hz 0)' : 'the kernel is still booting', functions: [] };
    }
    const functions = sampling.hotFunctions(SERVICE_PARAMS.hotFunctions);
    if (functions.length === 0) return { available: false, reason: 'no samples yet', functions: [] };
    return { available: true, reason: `sampled at ${sampling.achievedHz().toFixed(0)} Hz: share of the samples since the kernel started`, functions };
  }

  /** The fields that do not need a kernel. */
  private identity() {
    const server = this.server;
    return {
      pid: process.pid,
      image: this.opts.image,
      workload: this.run?.workload ?? this.last?.workload ?? this.opts.workload,
      mode: this.opts.mode,
      uptime_s: process.uptime(),
      hot_functions: this.hotFunctions(),
      ...this.modeReport(),
      restarts: Math.max(0, this.attachments - 1),
      control: {
        socket: server?.path ?? '',
        connections: server?.counters.connections ?? 0,
        requests: server?.counters.requests ?? {},
        refused: server?.counters.refused ?? 0,
        peers_refused: server?.counters.peersRefused ?? 0,
      },
    };
  }

  private bootingStatus(): StatusReport {
    return {
      ...this.identity(),
      state: this.phase,
      ops: 0,
      checksum: null,
      throughput: { ops_per_sec: null, interval_s: null, ops_per_sec_since_start: null },
      idle_share: { last_interval: null, since_start: null },
      versions: { installs: 0, reverts: 0, live: 0, waiting_grace: 0, list: [] },
      patches: [],
      memory: { arena_bytes: null, code_region: null, rss_bytes: process.memoryUsage.rss(), grant: null, grant_note: 'no kernel running' },
    };
  }

  /* ---- sysctls ----------------------------------------------------------------- */

  private sysctlReport(run: LiveRun, v: SysctlValue): SysctlReport {
    const s = v.sysctl;
    return {
      name: s.name,
      value: BigInt.asIntN(64, readU64(run.instance.jit.lookup(s.variable))).toString(),
      min: s.min.toString(),
      max: s.max.toString(),
      boot_fixed: v.bootFixed,
      folded: foldedInto(v, run.prepared.mode),
      read_only: (s.flags & SysctlFlag.RO) !== 0n,
      description: s.description,
    };
  }

  private readSysctls(name: string | undefined): Outcome {
    const run = this.live();
    if (!('instance' in run)) return no(run);
    const values = run.prepared.config.values;
    if (name === undefined) return ok({ sysctls: values.map((v) => this.sysctlReport(run, v)) });
    const v = findSysctl(values, name);
    return 'sysctl' in v ? ok(this.sysctlReport(run, v)) : no(v);
  }

  private async writeSysctl(name: string, text: string): Promise<Outcome> {
    const run = this.live();
    if (!('instance' in run)) return no(run);
    const v = findSysctl(run.prepared.config.values, name);
    if (!('sysctl' in v)) return no(v);
    const d = decideSysctlWrite(v, run.prepared.mode, text);
    if (!d.ok) return no(d.refusal);
    const previous = this.sysctlReport(run, v).value;
    /* code that folded the old value stops running first (pgo mode) */
    let despecialized: string[] = [];
    if (run.pgo && previous !== d.value.toString()) {
      try {
        despecialized = await run.pgo.despecialize(v.sysctl.variable);
      } catch (e) {
        return no(refusal('internal', `the write of ${name} was not done: ${(e as Error).message}`, 'retry; kjit status shows what runs'));
      }
    }
    /* one aligned 8-byte store: the kernel's next read of the variable sees it */
    writeI64(run.instance.jit.lookup(v.sysctl.variable), d.value);
    this.event('sysctl', `sysctl ${name}: ${previous} -> ${d.value}`, { name, previous, value: d.value.toString(), despecialized });
    return ok({ ...this.sysctlReport(run, v), previous, despecialized });
  }

  /* ---- re-JIT ------------------------------------------------------------------ */

  private elapsedS(run: LiveRun): number {
    const first = run.instance.cb.get('t_first_op_ns');
    return first === 0n ? 0 : Number(monotonicNs() - first) / 1e9;
  }

  private async patch(fn: string, file: string): Promise<Outcome> {
    const run = this.live();
    if (!('instance' in run)) return no(run);
    const d = decidePatch(this.rejitMode, this.whyNotPatchable());
    if (d.kind === 'refuse') return no(d.refusal);
    const spec: PatchSpec = { fn, file, atSeconds: this.elapsedS(run) };
    try {
      if (d.kind === 'check-only') {
        checkPatch(run.prepared, spec);
        const functions = [fn, ...inlinersOf(run.prepared, fn)];
        this.event('dry-run', `dry run: a patch of ${fn} from ${file} would re-JIT ${functions.length} function(s): ${functions.join(', ')}`, { fn, file, functions });
        return ok({ dry_run: true, fn, file, functions });
      }
      const a = await run.applyPatch(spec);
      const r = describePatch(a);
      this.event('patch', `patched ${fn} from ${file}: ${r.functions.length} function(s) re-JITted, compiled in ${r.compile_ms.toFixed(0)} ms, live in ${r.apply_ms.toFixed(2)} ms`, { ...r });
      return ok({ dry_run: false, ...r });
    } catch (e) {
      if (e instanceof KjitError) return no(refusal('patch-refused', e.problem, e.fix));
      if (e instanceof InstallError) return no(refusal('patch-refused', firstLine(e.message), 'the previous code keeps running; fix the patch and retry'));
      throw e;
    }
  }

  /**
   * A live probe (src/sampler/probe.ts): refused, with nothing installed, for
   * a function the kernel does not have, in safe or dry-run mode, or when the
   * code has no patchable entries.
   */
  private async probe(fn: string, seconds: number): Promise<Outcome> {
    const run = this.live();
    if (!('instance' in run)) return no(run);
    if (!run.prepared.image.pristine.getFunction(fn) || run.instance.jit.tryLookup(fn) === null) {
      const known = run.prepared.image.pristine.getFunction(fn) !== null;
      return no(
        refusal(
          'no-such-function',
          known ? `boot inlined ${fn} into its callers and dropped its own code` : `the kernel has no function '${fn}'`,
          known ? 'probe one of its callers' : 'kjit status lists hot functions; names are the C names',
        ),
      );
    }
    if (this.rejitMode !== 'normal') {
      return no(refusal('probe-refused', `a probe installs code, and re-JIT is in ${this.rejitMode} mode`, 'kjit mode normal, then probe again'));
    }
    const d = decidePatch(this.rejitMode, this.whyNotPatchable());
    if (d.kind === 'refuse') return no(d.refusal);
    if (!run.installer) return no(refusal('not-patchable', 'this kernel runs without an installer', 'restart it with kjit serve in boot mode'));
    try {
      const r = { ...(await probeFunction(run.instance, run.installer, fn, seconds)), inlined_into: inlinersOf(run.prepared, fn) };
      this.event('probe', `probed ${fn} for ${r.seconds.toFixed(1)} s: ${r.calls} calls, p50 ${r.latency_us.p50} us, p99 ${r.latency_us.p99} us`, { fn, calls: r.calls });
      return ok(r);
    } catch (e) {
      if (e instanceof KjitError) return no(refusal('probe-refused', e.problem, e.fix));
      if (e instanceof InstallError) return no(refusal('probe-refused', firstLine(e.message), 'the previous code keeps running'));
      throw e;
    }
  }

  private async revert(fn: string | undefined): Promise<Outcome> {
    const run = this.live();
    if (!('instance' in run)) return no(run);
    const target = run.livePatches().filter((a) => fn === undefined || a.spec.fn === fn).at(-1);
    if (!target) {
      return no(refusal('no-patch', fn === undefined ? 'no patch is live' : `no live patch of ${fn}`, 'kjit status lists the live patches'));
    }
    const r = describePatch(target);
    if (this.rejitMode === 'dry-run') {
      this.event('dry-run', `dry run: reverting the patch of ${r.fn} would restore ${r.functions.length} function(s)`, { revert: r });
      return ok({ dry_run: true, reverted: r });
    }
    await run.revertPatch(target);
    this.event('revert', `reverted the patch of ${r.fn} from ${r.file}: ${r.functions.length} function(s) run their previous code`, { ...r });
    return ok({ dry_run: false, reverted: r });
  }

  /** Entering safe mode puts the boot code back: every live patch is reverted, newest first. */
  private async setMode(next: RejitMode): Promise<Outcome> {
    const previous = this.rejitMode;
    const reverted: PatchReport[] = [];
    const run = this.run; /* detach() may drop it meanwhile; the kernel lives until this ends */
    if (next === 'safe' && run) {
      for (const a of run.livePatches().reverse()) {
        await run.revertPatch(a);
        reverted.push(describePatch(a));
      }
    }
    this.rejitMode = next;
    this.event('mode', `re-JIT mode ${previous} -> ${next}${reverted.length ? `; reverted ${reverted.map((r) => r.fn).join(', ')}` : ''}`, { previous, mode: next, reverted });
    return ok({ ...this.modeReport(), previous, reverted });
  }
}
