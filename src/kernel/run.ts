/**
 * @fileoverview One kernel run, start to finish: load the image, decide the
 * boot configuration, compile it in the requested mode, boot it on its own
 * thread, drive a workload for a duration or an exact operation count, and
 * measure.  Everything `kjit run` prints and `kjit bench` aggregates comes
 * from here; the numbers are read from the kernel's control block, never
 * estimated.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

import { ExitCode, KjitError } from '../errors.js';
import { KernelState } from '../native/control-block.js';
import { CodeRegion } from '../native/codemem.js';
import { Context } from '../native/llvm.js';
import { BUILD_IR } from '../paths.js';
import { type BootConfig, parseBootParameters, resolveBootConfig } from './bootconfig.js';
import { type CompiledImage, type CompileOptions, type CompileReport, compileCounting, compileImage } from './compile.js';
import { DEFAULT_TIER_PARAMS, type LazyPolicy } from './tiers.js';
import { LazyCompiler, type LazyStats } from '../rejit/lazy.js';
import { type Image, type ImageSpec, loadImage, REFERENCE } from './image.js';
import { appendPerfMap, type InstanceOptions, KernelInstance, type SampleClock } from './instance.js';
import { Installer } from '../rejit/installer.js';
import type { AppliedPatch, PatchSpec } from '../rejit/patch.js';
import { cpuFeatureBits, hostMachine, NIC_DEVICES, type NicModel } from './machine.js';
import { modeByName, type ModeSpec } from './modes.js';
import type { OfflinePgoReport } from './offline-pgo.js';
import { inlinedInto } from '../sampler/inline-map.js';
import { Jitdump } from '../sampler/jitdump.js';
/* what only some runs need is loaded by those runs (a plain boot's first operation waits for every module loaded) */
import type { PgoEngine, PgoSummary, TimelinePoint } from '../pgo/engine.js';
import type { NamedPolicy } from '../pgo/policies.js';
import { profileFormatOf, toFolded, toPprof } from '../sampler/outputs.js';
import { type Edge, type HotPath, PROFILE_PARAMS, type TopFunction } from '../sampler/profile.js';
import { Sampler, SAMPLER_PARAMS, SamplingRun, type ThrottleEvent } from '../sampler/sampler.js';
/* the profile store (and SQLite) is loaded only by runs that use one */
import type { ProfileStoreSummary, StoreSession } from '../store/session.js';
import type { MergedProfile } from '../store/merge.js';
import { THROTTLE_PARAMS } from '../sampler/throttle.js';
import type { BudgetParams, BudgetReport, MemoryBudget } from '../scheduler/budget.js';
import { type CompileServerOptions, compileServer } from '../scheduler/compile-server.js';
import { type BudgetFigures, type SchedulerStats, schedulerStats, serverSince } from '../scheduler/stats.js';

export interface Progress {
  elapsedS: number;
  ops: number;
  opsPerSec: number;
  state: number;
}

export interface LatencySummary {
  p50: number;
  p99: number;
  p999: number;
  mean: number;
  max: number;
}

export interface BootSummary {
  /** From the clock start (process start for `kjit run`) to the first operation. */
  ms: number;
  /** The same (the name issue 10's contract uses). */
  ms_to_first_op: number;
  /** Functions compiled at boot / on first call (or with a first-called function's unit) / left lazy and never called. */
  functions_eager: number;
  functions_lazy: number;
  functions_never: number;
  /** Compiled-object cache: the boot's objects (one entry), hit or missed. */
  cache_hits: number;
  cache_misses: number;
  /** A tiered boot: functions per tier and why (src/kernel/tiers.ts). */
  tiers?: { hot: number; fast: number; lazy: number; why: string };
  /** A tiered boot's first calls: units built on the main thread, and how long the kernel thread waited. */
  lazy?: { units_built: number; built_never_called: number; first_calls_waited: number; wait_ms: number; wait_max_ms: number; build_ms: number; build_max_ms: number };
  /** 'hit': objects came from the compiled-object cache; 'miss': compiled and cached; 'off': compiled, cache off. */
  cache: 'hit' | 'miss' | 'off';
  functions_before: number;
  functions_after: number;
  code_bytes: number;
  /** Where the time went. */
  phases_ms: { load_ir: number; specialize: number; optimize: number; codegen: number; link: number; kernel_init: number };
}

export interface RunResult {
  mode: string;
  workload: string;
  image: string;
  seconds: number;
  ops: number;
  ops_per_sec: number;
  cpu_ns_per_op: number;
  latency_us: LatencySummary;
  idle_fraction: number;
  indirect_calls_per_op: number | null;
  sysctl_loads_per_op: number | null;
  checksum: string;
  boot: BootSummary;
  config: {
    nic: string;
    cpu: string;
    features: string;
    concurrency: number;
    rate: number;
    seed: string;
    sysctls: Record<string, string>;
  };
  report: CompileReport;
  /** What was installed into the running kernel. */
  rejit: RejitSummary;
  /** The sampled profile (absent when sampling was off). */
  profile?: ProfileReport;
  /** With a profile store (--profile-db): what was reused at boot (src/store/session.ts). */
  profile_store?: ProfileStoreSummary;
  /** `offline-pgo`: the training run and profile its image was built with. */
  offline_pgo?: OfflinePgoReport;
  /** With --jitdump: the process's jitdump file and the JIT_CODE_LOAD records in it so far (error: why writing stopped). */
  jitdump?: { path: string; records: number; bytes: number; error?: string };
  /** The cooperative scheduler (src/scheduler/stats.ts): idle share, JIT CPU, compile jobs, the memory budget. */
  scheduler: SchedulerStats;
  /** With a memory budget (the pgo mode): the grant, its revocations and how each was met (src/scheduler/budget.ts). */
  budget?: BudgetReport;
  log: string;
}

/**
 * The sampled profile of a run (src/sampler).  samples: samples recorded
 * (ticks that found the kernel busy and a free ring slot); dropped: lost to a
 * full ring; achieved_hz: timer expirations delivered per second the timer
 * was armed (idle ticks included: they are taken, then skipped).  Shares are
 * percentages of `samples`; chains are root first.
 */
export interface ProfileReport {
  samples: number;
  dropped: number;
  achieved_hz: number;
  top: TopFunction[];
  hot_paths: HotPath[];
  requested_hz: number;
  idle_skipped: number;
  /** Expirations merged into a pending signal (lost ticks). */
  overruns: number;
  /** Chains longer than a ring slot holds (their outermost frames are missing). */
  truncated_chains: number;
  /** Ring slots that broke the ring's protocol (expected: 0). */
  corrupt: number;
  /** CPU cost of one sample (calibrated by the kernel thread) and its share of the kernel thread's CPU. */
  cost_ns_per_sample: number;
  cost_share: number;
  /** Rate changes of the throttle (empty: never throttled). */
  throttled: ThrottleEvent[];
  edges: Edge[];
  /** Self samples in code other than boot code, by version. */
  versions: { function: string; version: string; samples: number }[];
  /** For the top functions, the functions their boot code may contain inlined (not split out: no debug info). */
  inlined: { function: string; may_contain: string[] }[];
  /** Why sampling could not start, if it could not. */
  error?: string;
}

/** Process start on CLOCK_MONOTONIC (Node's hrtime uses the same clock). */
export function processStartNs(): bigint {
  return process.hrtime.bigint() - BigInt(Math.round(performance.now() * 1e6));
}

const DEFAULT_ARENA = 256 << 20;

/* ---- latency histogram (mirrors kjit_lat_bucket in ir/runtime/kjit_cb.h) ---- */

const LAT_SUB_BITS = 4;
const LAT_MIN_SHIFT = 5;

export function bucketBounds(b: number): [number, number] {
  if (b < 1 << LAT_SUB_BITS) return b === 0 ? [0, 1 << LAT_MIN_SHIFT] : [0, 0];
  const msb = (b >> LAT_SUB_BITS) + LAT_MIN_SHIFT - 1;
  const sub = b & ((1 << LAT_SUB_BITS) - 1);
  const width = 2 ** (msb - LAT_SUB_BITS);
  const low = 2 ** msb + sub * width;
  return [low, low + width];
}

export function latencyFromHistogram(hist: BigUint64Array, sumNs: bigint, maxNs: bigint): LatencySummary {
  const counts = Array.from(hist, Number);
  const total = counts.reduce((s, c) => s + c, 0);
  const pct = (p: number): number => {
    if (total === 0) return 0;
    const target = p * total;
    let seen = 0;
    for (let b = 0; b < counts.length; b++) {
      const c = counts[b]!;
      if (c === 0) continue;
      if (seen + c >= target) {
        const [lo, hi] = bucketBounds(b);
        return Math.min(lo + ((target - seen) / c) * (hi - lo), Number(maxNs));
      }
      seen += c;
    }
    return Number(maxNs);
  };
  const us = (ns: number) => Math.round(ns) / 1000;
  return {
    p50: us(pct(0.5)),
    p99: us(pct(0.99)),
    p999: us(pct(0.999)),
    mean: total ? us(Number(sumNs) / total) : 0,
    max: us(Number(maxNs)),
  };
}

/* ---- the run ------------------------------------------------------------------ */

function workloadId(image: Image, name: string): number {
  const i = image.tables.workloads.indexOf(name);
  if (i < 0) {
    const known = image.tables.workloads.join(', ') || 'none';
    throw new KjitError(`unknown workload '${name}' for image ${image.name}`, `use one of: ${known}`);
  }
  return i;
}

/** The reference image rebuilt from source with the boot-fixed values as -D constants. */
async function tailoredImagePath(config: BootConfig): Promise<string> {
  const defines = config.values
    .filter((v) => v.bootFixed)
    .map((v) => `KJIT_TAILOR_${v.sysctl.variable.replace(/^sysctl_/, '')}=${v.value}`)
    .sort();
  const tag = defines.join(',').replace(/[^A-Za-z0-9]+/g, '-').slice(0, 120);
  const out = join(BUILD_IR, 'tailored', `kernel-${tag}.bc`);
  if (!existsSync(out)) {
    mkdirSync(join(BUILD_IR, 'tailored'), { recursive: true });
    await (await import('./build-ir.js')).buildKernelImage({ defines, out });
  }
  return out;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Start the kernel, let it run (for `seconds` or to its op limit), stop and join it. */
async function drive(
  instance: KernelInstance,
  req: {
    seconds?: number;
    onProgress?: (p: Progress) => void;
    signal?: AbortSignal;
    onTick?: (elapsedS: number) => Promise<void>;
    /** Right after the kernel thread started. */
    onStart?: () => void;
  },
): Promise<void> {
  const cb = instance.cb;
  instance.start();
  req.onStart?.();
  /* an interrupted run (Ctrl-C) ends like a finished one: stop, join, report */
  const onAbort = () => instance.requestStop();
  req.signal?.addEventListener('abort', onAbort, { once: true });
  if (req.signal?.aborted) onAbort(); /* stopped while it booted: the event has passed */
  let firstOpAt: number | null = null;
  let lastReport = performance.now();
  let stopping = false;
  const joined = instance.join();
  let finished = false;
  void joined.then(() => (finished = true), () => (finished = true));
  try {
    while (!finished) {
      await Promise.race([sleep(20), joined]);
      const state = cb.getNumber('state');
      if (state === KernelState.FAULTED || state === KernelState.PANICKED) break;
      if (firstOpAt === null && cb.get('t_first_op_ns') !== 0n) firstOpAt = performance.now();
      const now = performance.now();
      if (req.seconds !== undefined && !stopping && firstOpAt !== null && now - firstOpAt >= req.seconds * 1000) {
        stopping = true;
        instance.requestStop();
      }
      if (req.onTick && firstOpAt !== null && !stopping) await req.onTick((now - firstOpAt) / 1000);
      if (req.onProgress && now - lastReport >= 250 && firstOpAt !== null) {
        lastReport = now;
        const elapsedS = (now - firstOpAt) / 1000;
        const ops = cb.getNumber('ops_done');
        req.onProgress({ elapsedS, ops, opsPerSec: elapsedS > 0 ? ops / elapsedS : 0, state });
      }
    }
  } catch (e) {
    /* a failure of the host's own work (a patch that did not build) stops the kernel first */
    instance.requestStop();
    await joined;
    throw e;
  } finally {
    req.signal?.removeEventListener('abort', onAbort);
  }
  await joined;
}

interface Measured {
  seconds: number;
  ops: number;
  checksum: bigint;
  cpuNs: bigint;
  idleNs: bigint;
  latency: LatencySummary;
  firstOpNs: bigint;
  threadStartNs: bigint;
  countIndirect: bigint;
  countSysctl: bigint;
  log: string;
}

function measure(instance: KernelInstance): Measured {
  const cb = instance.cb;
  const first = cb.get('t_first_op_ns');
  const end = cb.get('t_end_ns');
  return {
    seconds: first && end > first ? Number(end - first) / 1e9 : 0,
    ops: cb.getNumber('ops_done'),
    checksum: cb.get('checksum'),
    cpuNs: cb.get('cpu_end_ns') - cb.get('cpu_first_op_ns'),
    idleNs: cb.get('idle_ns'),
    latency: latencyFromHistogram(cb.array('lat_hist'), cb.get('lat_sum_ns'), cb.get('lat_max_ns')),
    firstOpNs: first,
    threadStartNs: cb.get('t_thread_ns'),
    countIndirect: cb.get('count_indirect_calls'),
    countSysctl: cb.get('count_sysctl_loads'),
    log: cb.logText(),
  };
}

export interface BootRequest {
  image: ImageSpec;
  mode: string;
  nic: NicModel;
  /** Boot parameters, `name=value`. */
  sysctls: readonly string[];
  /** Use the compiled-object cache (default on; KJIT_CACHE=0 or --no-cache turn it off). */
  cache?: boolean;
  /** Patchable function entries, so versions can be installed while it runs. */
  patchable?: boolean;
  /** `offline-pgo` trains on this workload (default: the image's first) with this parameter (0: its default). */
  workload?: string;
  workloadArg?: bigint;
  /** A tiered boot (mode `tiered`): which functions wait for their first call (src/kernel/tiers.ts; default 'profile'). */
  lazy?: LazyPolicy;
  /** A tiered boot plans with what earlier boots in this profile store saw run (null/absent: no profile). */
  profileDb?: string | null;
}

/** An image compiled for one mode and machine: any number of runs can boot from it. */
export interface PreparedBoot {
  image: Image;
  mode: ModeSpec;
  config: BootConfig;
  facts: { cpuFeatureBits: bigint; deviceIds: number[] };
  compiled: CompiledImage;
  /** Compiled with patchable entries (BootRequest.patchable): versions can be installed. */
  patchable: boolean;
  /** How the `offline-pgo` image was built (its training workload, profile, cache). */
  offlinePgo?: OfflinePgoReport;
  /** A tiered boot planned with this store's merged profile (the first run's StoreSession of the same store and workload takes it). */
  stored?: { path: string; workload: string; merged: MergedProfile };
  loadMs: number;
  /** Objects of the counting build (made on first use). */
  countingObjects(): Uint8Array[];
  /** The image's pristine IR as bitcode (re-JIT units parse it into contexts of their own). */
  pristineBitcode(): Uint8Array;
  dispose(): void;
}

export async function prepareBoot(req: BootRequest): Promise<PreparedBoot> {
  const mode: ModeSpec = modeByName(req.mode);
  if (!NIC_DEVICES[req.nic]) {
    throw new KjitError(`unknown NIC model '${req.nic}'`, `use one of: ${Object.keys(NIC_DEVICES).join(', ')}`);
  }
  const params = parseBootParameters(req.sysctls);
  const t0 = performance.now();
  /* the code region's memory manager is generated meanwhile on another thread */
  const region = CodeRegion.getAsync();
  region.catch(() => {}); /* awaited below; never an unhandled rejection */
  const ctx = Context.create();
  const owned: Image[] = [];
  const release = () => {
    for (const i of owned.reverse()) i.dispose();
    ctx.dispose();
  };
  try {
    const image = loadImage(ctx, req.image);
    owned.push(image);
    const machine = hostMachine(req.nic);
    const facts = { cpuFeatureBits: cpuFeatureBits(machine, image.tables.cpuFeatureFlags), deviceIds: machine.devices.map((d) => d.id) };
    const config = resolveBootConfig(image.tables, facts, params);
    let source = image;
    if (mode.tailored) {
      if (req.image.path !== REFERENCE.path) {
        throw new KjitError('the tailored mode rebuilds the reference kernel from source', 'use it without --image');
      }
      source = loadImage(ctx, { ...REFERENCE, path: await tailoredImagePath(config) });
      owned.push(source);
    }
    let offlinePgo: OfflinePgoReport | undefined;
    if (mode.offlinePgo) {
      if (req.image.path !== REFERENCE.path) {
        throw new KjitError('the offline-pgo mode rebuilds the reference kernel from source', 'use it without --image');
      }
      const workload = req.workload ?? image.tables.workloads[0]!;
      workloadId(image, workload);
      const built = await (await import('./offline-pgo.js')).offlinePgoImage({ mode, config, nic: req.nic, sysctls: req.sysctls, workload, workloadArg: req.workloadArg ?? 0n });
      source = loadImage(ctx, { ...REFERENCE, path: built.path });
      owned.push(source);
      offlinePgo = built.report;
    }
    let tiers: CompileOptions['tiers'];
    let stored: PreparedBoot['stored'];
    if (mode.bootTiers) {
      const params = { ...DEFAULT_TIER_PARAMS, lazy: req.lazy ?? DEFAULT_TIER_PARAMS.lazy };
      const workload = req.workload ?? image.tables.workloads[0]!;
      const use = req.profileDb ? (await import('../store/session.js')).storedUse(req.profileDb, image, workload) : null;
      if (use && req.profileDb) stored = { path: req.profileDb, workload, merged: use.merged };
      tiers = { profile: use?.uses ?? null, params, roots: [req.image.init, req.image.entry, req.image.run].filter((x): x is string => !!x) };
    }
    const loadMs = performance.now() - t0;
    const compiled = await compileImage(source, mode, config, {
      ...(req.cache === undefined ? {} : { cache: req.cache }),
      ...(req.patchable || mode.online ? { patchable: true } : {}),
      ...(tiers ? { tiers } : {}),
    });
    await region;
    let counting: Uint8Array[] | null = null;
    let bitcode: Uint8Array | null = null;
    return {
      pristineBitcode: () => (bitcode ??= source.pristine.toBitcode()),
      image,
      mode,
      config,
      facts,
      compiled,
      patchable: req.patchable === true || mode.online === true,
      ...(offlinePgo ? { offlinePgo } : {}),
      ...(stored ? { stored } : {}),
      loadMs,
      countingObjects: () => (counting ??= compileCounting(compiled, new Set(image.tables.sysctls.map((s) => s.variable)))),
      dispose: () => {
        compiled.dispose();
        release();
      },
    };
  } catch (e) {
    release();
    throw e;
  }
}

export interface ExecuteRequest {
  workload?: string;
  /** Run for this long (from the first operation); 0: until `signal` aborts (kjit serve) ... */
  seconds?: number;
  /** ... or exactly this many operations. */
  ops?: bigint;
  /** Open-loop arrival rate in ops/s; 0 = closed loop. */
  rate: number;
  concurrency: number;
  seed: bigint;
  /** Workload parameter (phases: operations per phase); 0 = the image's default. */
  workloadArg?: bigint;
  /** Also run a counting build to measure indirect calls and sysctl loads per operation. */
  counting: boolean;
  countingOps?: bigint;
  /** CLOCK_MONOTONIC ns the boot clock starts at (default: when this process started). */
  clockStartNs?: bigint;
  arenaBytes?: number;
  onProgress?: (p: Progress) => void;
  /** Aborting stops the kernel early; the run is measured up to that point. */
  signal?: AbortSignal;
  /** Live patches to apply during the run (the image must be prepared with patchable entries). */
  patches?: readonly PatchSpec[];
  /** Sample the kernel at this rate (Hz; 0 or absent: off). */
  sampleHz?: number;
  /** The throttle's limit: sampling may cost this share of the kernel thread's CPU (null: never throttle). */
  sampleMaxShare?: number | null;
  /** Ring slots the kernel may fill (tests of overflow; default all). */
  sampleRingSlots?: number;
  /** What makes the ticks (default: a clock thread; see ir/runtime/sampler.c). */
  sampleClock?: SampleClock;
  /** Write the sampled stacks here at the end: FILE.folded (collapsed stacks) or FILE.pb.gz (pprof). */
  profileOut?: string;
  /** Write /tmp/perf-PID.map: the boot image's symbols, then every version as it is installed. */
  perfMap?: boolean;
  /** Write the jitdump file (src/sampler/jitdump.ts): every function of the boot image and of each version as it is linked. */
  jitdump?: boolean;
  /** The profile store (src/store): load the merged profile at boot, flush what the run learns, while it runs and at its end. */
  profileDb?: string;
  /**
   * The host's own services (kjit serve's control channel) see each kernel
   * the run boots (a fault in patched code boots another) from before it
   * starts until the returned function resolves; it is called once the
   * kernel thread was joined, and the kernel's code is freed only after it.
   */
  attach?: (live: LiveRun) => () => Promise<void>;
  /** The pgo mode: the re-JIT mode right now (the control channel may switch it; default normal). */
  rejitMode?: () => 'normal' | 'safe' | 'dry-run';
  /** The pgo mode: where its events go (installs, rollbacks, de-specializations). */
  pgoLog?: (line: string) => void;
  /** The pgo mode's policy (default: the benefit/cost one; src/pgo/policies.ts). */
  policy?: NamedPolicy;
  /** The pgo mode: write every round's observed state and decisions to this file (JSON lines) for `kjit replay`. */
  recordTrace?: string;
  /**
   * The memory budget negotiated with the kernel (src/scheduler/budget.ts):
   * its parameters (the ask, the shares), or false for none.  Default: on
   * in the pgo mode, off otherwise.
   */
  budget?: Partial<BudgetParams> | false;
  /** The compile server's CPUs (--cpus) and --batch (normal priority; the pgo engine drains it before each regression check). */
  compileServer?: Partial<Pick<CompileServerOptions, 'cpus' | 'batch'>>;
  /** Pin the kernel thread to these CPUs once it runs (kjit bench coop). */
  kernelCpus?: number[];
}

/** A running kernel, as ExecuteRequest.attach sees it. */
export interface LiveRun {
  readonly prepared: PreparedBoot;
  /** The workload's name. */
  readonly workload: string;
  readonly instance: KernelInstance;
  /** Installs versions; null unless the image has patchable entries. */
  readonly installer: Installer | null;
  /** The pgo mode's re-JIT engine (de-specializes before a sysctl write); null in other modes. */
  readonly pgo: PgoEngine | null;
  /** The run's sampling (profile so far); null when sampling is off. */
  readonly sampling: SamplingRun | null;
  /** The memory budget the kernel granted (the pgo mode); null without one. */
  readonly budget: MemoryBudget | null;
  /** The profile store's session (the profile loaded at boot; logs); null without --profile-db. */
  readonly store: StoreSession | null;
  /** Patches applied to this kernel, oldest first, reverted ones included. */
  readonly patches: readonly AppliedPatch[];
  /** The applied patches that are still live, oldest first. */
  livePatches(): AppliedPatch[];
  /**
   * Apply a patch now, as one transition (applyPatch); it is part of the
   * run's rejit summary, and live again if the kernel restarts.
   */
  applyPatch(spec: PatchSpec): Promise<AppliedPatch>;
  /** Undo a live patch (revertPatch); its code is freed after a grace period. */
  revertPatch(applied: AppliedPatch): Promise<void>;
}

function validate(req: ExecuteRequest): void {
  if (req.seconds === undefined && req.ops === undefined) throw new Error('a run needs seconds or ops');
  if (req.seconds === 0 && !req.signal) throw new Error('a run until stopped needs an AbortSignal');
  if (req.seconds !== undefined && !(req.seconds >= 0)) {
    throw new KjitError(`--seconds must be positive, or 0 to run until stopped (got ${req.seconds})`, 'pass a duration such as --seconds 5, or --ops N');
  }
  if (req.ops !== undefined && req.ops <= 0n) throw new KjitError(`--ops must be positive (got ${req.ops})`, 'pass a count such as --ops 100000');
  if (!(Number.isInteger(req.concurrency) && req.concurrency >= 1 && req.concurrency <= 64)) {
    throw new KjitError(`--concurrency ${req.concurrency} is out of range`, 'use an integer from 1 to 64');
  }
  if (!(req.rate >= 0 && Number.isFinite(req.rate))) {
    throw new KjitError(`--rate ${req.rate} is not a rate`, 'pass operations per second, e.g. --rate 20000');
  }
  validateSampling(req);
}

/** --sample-hz and --profile-out (also checked by the CLI before it boots anything). */
export function validateSampling(req: { sampleHz?: number; profileOut?: string }): void {
  const hz = req.sampleHz ?? 0;
  if (!(Number.isInteger(hz) && hz >= 0 && hz <= SAMPLER_PARAMS.maxHz)) {
    throw new KjitError(
      `--sample-hz ${hz} is out of range`,
      `pass an integer from 1 to ${SAMPLER_PARAMS.maxHz} (${SAMPLER_PARAMS.defaultHz} by default), or 0 to turn sampling off`,
    );
  }
  if (req.profileOut !== undefined) {
    if (!profileFormatOf(req.profileOut)) {
      throw new KjitError(`--profile-out ${req.profileOut} has an unknown extension`, 'name the file FILE.folded (collapsed stacks) or FILE.pb.gz (pprof)');
    }
    if (hz === 0) throw new KjitError('--profile-out needs sampling, and --sample-hz is 0', 'drop --sample-hz 0, or drop --profile-out');
    const dir = dirname(req.profileOut);
    if (!existsSync(dir)) throw new KjitError(`the directory of --profile-out ${req.profileOut} does not exist`, `create ${dir} first, or write the profile elsewhere`);
  }
}

/** What KernelInstance.load needs for one run of a prepared image. */
export function instanceOptions(p: PreparedBoot, req: ExecuteRequest): { workloadName: string; opts: InstanceOptions } {
  const workloadName = req.workload ?? p.image.tables.workloads[0] ?? 'entry';
  const workload = workloadId(p.image, workloadName);
  const opts: InstanceOptions = {
    workload,
    seed: req.seed,
    opsLimit: req.ops ?? 0n,
    rate: req.rate,
    concurrency: req.concurrency,
    workloadArg: req.workloadArg ?? 0n,
    arenaBytes: req.arenaBytes ?? DEFAULT_ARENA,
    sampleHz: req.sampleHz ?? 0,
    sampleRingSlots: req.sampleRingSlots ?? 0,
    ...(req.sampleClock ? { sampleClock: req.sampleClock } : {}),
    ...(req.perfMap ? { perfMap: true } : {}),
    ...(req.jitdump ? { jitdump: true } : {}),
    cpuFeatureBits: p.facts.cpuFeatureBits,
    deviceIds: p.facts.deviceIds,
    config: p.config,
  };
  return { workloadName, opts };
}

/** Boot a prepared image on a fresh JIT and kernel thread, run the workload, measure (and use the profile store if asked). */
export async function execute(p: PreparedBoot, req: ExecuteRequest): Promise<RunResult> {
  validate(req);
  const store = req.profileDb ? (await import('../store/session.js')).StoreSession.open(req.profileDb, p, instanceOptions(p, req).workloadName) : null;
  try {
    const r = await executeRun(p, req, store);
    return store ? { ...r, profile_store: store.end('ended', r) } : r;
  } catch (e) {
    store?.end('failed');
    throw e;
  }
}

async function executeRun(p: PreparedBoot, req: ExecuteRequest, store: StoreSession | null): Promise<RunResult> {
  const clockStart = req.clockStartNs ?? processStartNs();
  /* the pgo mode samples all the time (it needs to know what is hot) */
  const sampleHz = req.sampleHz || (p.mode.online ? SAMPLER_PARAMS.defaultHz : 0);
  const { workloadName, opts } = instanceOptions(p, { ...req, sampleHz });
  const applied: AppliedPatch[] = [];
  const restarts: Restart[] = [];
  const blacklisted = new Set<PatchSpec>();
  const reverted = new Set<PatchSpec>();
  let pending = [...(req.patches ?? [])].sort((a, b) => a.atSeconds - b.atSeconds);
  /* what the kernels before this one did (a fault in patched code restarts the kernel) */
  let earlier = { ops: 0, seconds: 0 };
  let m: Measured;
  let lastInstaller: Installer | null = null;
  let linkMs = 0;
  const pgo = p.mode.online ? await import('../pgo/engine.js') : null;
  const pgoHistory = pgo ? new pgo.PgoHistory() : null;
  const trace = pgoHistory && req.recordTrace ? new (await import('../pgo/policies.js')).TraceWriter(req.recordTrace, req.policy?.name ?? 'default') : null;
  const patches = req.patches?.length || req.attach ? await import('../rejit/patch.js') : null;
  let lastEngine: PgoEngine | null = null;
  let lastLazy: LazyCompiler | null = null;
  /* the cooperative scheduler's figures, this run's share of them (the compile server outlives runs) */
  const usesServer = !!(req.patches?.length || (req.attach && p.patchable) || p.mode.online);
  const server = usesServer ? compileServer(p, req.compileServer) : null;
  const server0 = server?.stats() ?? null;
  let mainThreadJitMs = 0;
  const budgets: BudgetFigures[] = [];
  let lastBudget: MemoryBudget | null = null;
  const budgetOn = req.budget !== false && (p.mode.online || req.budget !== undefined);
  const sampling = sampleHz ? new SamplingRun({ hz: sampleHz, maxShare: req.sampleMaxShare === undefined ? THROTTLE_PARAMS.maxCpuShare : req.sampleMaxShare }) : null;
  store?.track(sampling ? () => sampling.profile : null);
  /* Segments: a fault in a patched version restarts the kernel (its state
   * may be inconsistent) without that patch, which is blacklisted. */
  for (;;) {
    const opsLimit = req.ops === undefined ? 0n : req.ops - BigInt(earlier.ops);
    const instance = KernelInstance.load(p.compiled.objects, { ...opts, opsLimit });
    if (!restarts.length) linkMs = instance.linkMs;
    const installer = req.patches?.length || (req.attach && p.patchable) || p.mode.online ? new Installer(instance, p) : null;
    lastInstaller = installer;
    /* a tiered boot's functions left for their first call (before the kernel thread starts) */
    const lazy = installer && p.compiled.report.tiers?.lazy.length ? new LazyCompiler(instance, p, installer) : null;
    if (lazy && store) {
      lazy.onUnit = (u) => {
        const at = earlier.seconds + (firstOp() ? Number(process.hrtime.bigint() - firstOp()) / 1e9 : 0);
        for (const fn of u.functions) store.logCompile({ function: fn, tier: 'lazy', reason: 'first call', compile_ms: u.ms, outcome: 'installed', at_s: at });
      };
    }
    lazy?.start();
    lastLazy = lazy ?? lastLazy;
    const firstOp = () => instance.cb.get('t_first_op_ns');
    const sampler = sampling
      ? new Sampler(instance, p, sampling, installer?.codeMap ?? null, () => earlier.seconds + (firstOp() ? Number(process.hrtime.bigint() - firstOp()) / 1e9 : 0))
      : null;
    /* freed code's addresses may be reused: attribute its samples first */
    if (sampler) installer?.onFreed(() => sampler.drain());
    /* versions join the perf map as they appear */
    const mapped = new Set<number>();
    const mapVersions = () => {
      const fresh = installer!.codeMap.list().filter((r) => !mapped.has(r.version.id));
      for (const r of fresh) mapped.add(r.version.id);
      if (fresh.length) appendPerfMap(fresh.map((r) => ({ address: r.lo, size: Number(r.hi - r.lo), name: r.version.symbol })));
    };
    /* on a timer of its own: drive() awaits the host's work (a patch being applied) between its turns */
    const poll = () => {
      if (instance.isDisposed) return;
      void sampler?.poll();
      if (req.perfMap && installer) mapVersions();
    };
    const poller = sampler || req.perfMap ? setInterval(poll, SAMPLER_PARAMS.drainEveryMs) : null;
    /* patches applied to this kernel */
    const here: AppliedPatch[] = [];
    /* patches given together (due at the same moment) go live as one transition */
    const applySet = async (specs: readonly PatchSpec[], again: boolean) => {
      if (!installer) throw new Error('a patch for a kernel without an installer');
      const set = await patches!.patchSet(p, installer).apply(specs);
      if (!again) applied.push(...set);
      here.push(...set);
      return set;
    };
    const apply = async (spec: PatchSpec, again: boolean) => (await applySet([spec], again))[0]!;
    const budget =
      budgetOn && installer && server
        ? new (await import('../scheduler/budget.js')).MemoryBudget(instance, installer, server, {
            ...(req.budget ? { params: req.budget } : {}),
            heat: (fn) => sampling?.profile.counts(fn).total ?? 0,
            ...(req.pgoLog ? { log: req.pgoLog } : {}),
          })
        : null;
    lastBudget = budget ?? lastBudget;
    lazy?.setBudget(budget);
    budget?.start();
    const engine =
      pgoHistory && installer && sampling
        ? new pgo!.PgoEngine(instance, installer, p, sampling, store, pgoHistory, {
            mode: () => req.rejitMode?.() ?? 'normal',
            workload: workloadName,
            nowS: () => earlier.seconds + (firstOp() ? Number(process.hrtime.bigint() - firstOp()) / 1e9 : 0),
            ...(req.pgoLog ? { log: req.pgoLog } : {}),
            ...(req.policy ? { policy: req.policy } : {}),
            ...(trace ? { trace } : {}),
            ...(budget ? { budget } : {}),
            ...(server?.options.batch ? { beforeCheck: () => server.drain() } : {}),
          })
        : null;
    lastEngine = engine ?? lastEngine;
    engine?.start();
    store?.watch({ instance, prepared: p, installer, engine, budget, offsetS: earlier.seconds }); /* the timeline kjit report draws */
    const detach = req.attach?.({
      prepared: p,
      workload: workloadName,
      instance,
      installer,
      pgo: engine,
      sampling,
      budget,
      store,
      patches: here,
      livePatches: () => here.filter((a) => !reverted.has(a.spec)),
      applyPatch: async (spec) => {
        const a = await apply(spec, false);
        await installer!.freeRetired(); /* versions it replaced */
        return a;
      },
      revertPatch: async (a) => {
        if (!installer) throw new Error('a revert for a kernel without an installer');
        await patches!.revertPatch(installer, a);
        reverted.add(a.spec);
        await installer.freeRetired();
      },
    });
    let restartAfter: Restart | null = null;
    try {
      /* after a restart, the patches that were live go live again at once */
      const again = restarts.length ? applied.filter((a) => !blacklisted.has(a.spec) && !reverted.has(a.spec)).map((a) => a.spec) : [];
      const applyDue = async (elapsedS: number) => {
        while (installer && pending.length && pending[0]!.atSeconds <= earlier.seconds + elapsedS) {
          const at = pending[0]!.atSeconds;
          const due = pending.filter((s) => s.atSeconds === at);
          pending = pending.filter((s) => s.atSeconds !== at);
          await applySet(due, false);
        }
      };
      if (again.length) await applySet(again, true);
      await applyDue(0);
      const seconds = req.seconds ? Math.max(0.001, req.seconds - earlier.seconds) : undefined;
      await drive(instance, {
        ...(seconds !== undefined ? { seconds } : {}),
        ...(req.onProgress ? { onProgress: req.onProgress } : {}),
        ...(req.signal ? { signal: req.signal } : {}),
        ...(installer ? { onTick: applyDue } : {}),
        onStart: () => {
          if (req.kernelCpus) instance.pinTo(req.kernelCpus);
          installer?.warmServer();
        },
      });
      await engine?.stop();
      clearInterval(poller ?? undefined);
      poll();
      sampler?.finish();
      const lazyFailed = lazy?.stats().failures[0];
      if (lazyFailed) {
        throw new KjitError(`a function compiled on first call did not build: ${lazyFailed}`, 'run with --lazy off (everything compiled at boot) and report this as a kjit bug', ExitCode.KERNEL_FAULT);
      }
      const fault = instance.failure();
      const version = fault?.kind === 'fault' && fault.pc !== undefined && installer ? installer.codeMap.find(fault.pc) : null;
      const culprit = version ? here.find((a) => a.versions.includes(version)) : undefined;
      if (fault && version && !culprit && pgoHistory && version.kind !== 'baseline') {
        /* a version the engine made: never again for this run */
        const h = pgoHistory.fn(version.fn);
        h.failures = Number.MAX_SAFE_INTEGER;
        h.live = null;
        restartAfter = {
          after_ops: instance.cb.getNumber('ops_done'),
          fault: fault.message,
          version: `${version.fn} v${version.id} (${version.kind})`,
          patch: '',
          action: 'version rolled back and blacklisted; kernel restarted (its state may be inconsistent)',
        };
      } else if (fault && version && culprit) {
        blacklisted.add(culprit.spec);
        restartAfter = {
          after_ops: instance.cb.getNumber('ops_done'),
          fault: fault.message,
          version: `${version.fn} v${version.id} (${version.kind})`,
          patch: `${culprit.spec.fn}=${culprit.spec.file}`,
          action: 'patch rolled back and blacklisted; kernel restarted (its state may be inconsistent)',
        };
      } else {
        if (pending.length && !req.signal?.aborted) {
          throw new KjitError(
            `the run ended before patch ${pending[0]!.fn}=${pending[0]!.file}@${pending[0]!.atSeconds} was due`,
            'apply it earlier or run longer',
          );
        }
        instance.checkHealthy(instance.cb.get('t_first_op_ns') === 0n ? 'during boot' : 'while running the workload');
        if (instance.cb.getNumber('state') !== KernelState.STOPPED) {
          throw new KjitError('the kernel thread returned without stopping cleanly', 'run with --log to see the kernel log', ExitCode.KERNEL_FAULT);
        }
      }
      m = measure(instance);
    } catch (e) {
      if (e instanceof KjitError && process.env.KJIT_LOG) process.stderr.write(instance.cb.logText());
      throw e;
    } finally {
      try {
        await lazy?.quiesce();
        await engine?.stop();
        await budget?.stop();
        if (budget) budgets.push(budget.figures());
        mainThreadJitMs += installer?.jitCpu.ms ?? 0;
        clearInterval(poller ?? undefined);
        sampler?.finish(); /* (if the run failed) its control block is about to go */
        await detach?.();
      } finally {
        lazy?.snapshot();
        await instance.dispose(); /* (the kernel thread may wait for a lazy function until it is joined) */
        lazy?.stop();
      }
    }
    if (!restartAfter) break;
    restarts.push(restartAfter);
    process.stderr.write(`kjit: the kernel faulted in ${restartAfter.version} from patch ${restartAfter.patch}: ${restartAfter.action}\n`);
    if (restarts.length > 8) throw new KjitError('the kernel faulted in patched code more than 8 times', 'fix the patches', ExitCode.KERNEL_FAULT);
    const done = { ops: earlier.ops + m.ops, seconds: earlier.seconds + m.seconds };
    /* no other kernel if this one did what was asked, or the run was stopped meanwhile */
    if ((req.ops !== undefined && BigInt(done.ops) >= req.ops) || (req.seconds && done.seconds >= req.seconds) || req.signal?.aborted) break;
    earlier = done;
    pending = pending.filter((s) => !blacklisted.has(s));
  }
  if (restarts.length) {
    /* the measurements below are the last instance's; totals cover all */
    m = { ...m, ops: m.ops + earlier.ops, seconds: m.seconds + earlier.seconds };
  }
  if (m.ops === 0) {
    throw new KjitError('the kernel completed no operation', 'run longer, or check the workload with --log', ExitCode.FAILURE);
  }

  let perOp: { indirect: number; sysctl: number } | null = null;
  /* a tiered boot's code is split across tiers and stubs: the counting build (one module) does not apply */
  if (req.counting && !p.mode.bootTiers) {
    const countOps = req.countingOps ?? (req.ops !== undefined && req.ops < 20000n ? req.ops : 20000n);
    const counter = KernelInstance.load(p.countingObjects(), { ...opts, opsLimit: countOps, rate: 0, sampleHz: 0 });
    try {
      await drive(counter, {});
      counter.checkHealthy('in the counting build');
      const c = measure(counter);
      perOp = { indirect: Number(c.countIndirect) / c.ops, sysctl: Number(c.countSysctl) / c.ops };
    } finally {
      await counter.dispose();
    }
  }

  const profile = sampling ? profileReport(p, sampling, Number(m.cpuNs)) : undefined;
  /* the period of a sample is the rate achieved (the throttle may have cut the one asked) */
  if (sampling && req.profileOut) writeProfile(req.profileOut, sampling, sampling.achievedHz() || req.sampleHz!);

  const r = p.compiled.report;
  return {
    mode: p.mode.name,
    workload: workloadName,
    image: p.image.spec.path,
    seconds: m.seconds,
    ops: m.ops,
    ops_per_sec: m.seconds > 0 ? m.ops / m.seconds : 0,
    cpu_ns_per_op: Number(m.cpuNs) / m.ops,
    latency_us: m.latency,
    idle_fraction: m.seconds > 0 ? Math.min(1, Number(m.idleNs) / 1e9 / m.seconds) : 0,
    indirect_calls_per_op: perOp ? perOp.indirect : null,
    sysctl_loads_per_op: perOp ? perOp.sysctl : null,
    checksum: `0x${m.checksum.toString(16).padStart(16, '0')}`,
    boot: {
      ms: Number(m.firstOpNs - clockStart) / 1e6,
      ms_to_first_op: Number(m.firstOpNs - clockStart) / 1e6,
      ...bootCounts(p, lastLazy?.stats() ?? null),
      cache: p.compiled.cache,
      functions_before: r.functionsBefore,
      functions_after: r.functionsAfter,
      code_bytes: r.objectBytes,
      phases_ms: {
        load_ir: p.loadMs,
        specialize: r.ms.specialize,
        optimize: r.ms.optimize,
        codegen: r.ms.codegen,
        link: linkMs,
        kernel_init: Number(m.firstOpNs - m.threadStartNs) / 1e6,
      },
    },
    config: {
      nic: p.config.chosen.find((a) => a.kind === 1n)?.name ?? 'none',
      cpu: p.compiled.target.cpu,
      features: p.compiled.target.features,
      concurrency: req.concurrency,
      rate: req.rate,
      seed: req.seed.toString(),
      sysctls: Object.fromEntries(p.config.values.map((v) => [v.sysctl.name, `${v.value} (${v.source}${v.bootFixed ? ', boot-fixed' : ''})`])),
    },
    report: r,
    rejit: { ...rejitSummary(lastInstaller, applied, restarts), ...(lastEngine && pgo ? pgoReport(lastEngine, pgo.peakOf) : {}) },
    scheduler: schedulerStats({
      server: server && server0 ? serverSince(server0, server.stats()) : null,
      idleFraction: m.seconds > 0 ? Math.min(1, Number(m.idleNs) / 1e9 / m.seconds) : null,
      mainThreadJitMs,
      budget: budgets.length
        ? {
            bytesMax: Math.max(...budgets.map((b) => b.bytesMax)),
            usedBytesMax: Math.max(...budgets.map((b) => b.usedBytesMax)),
            revocations: budgets.reduce((n, b) => n + b.revocations, 0),
            evictionMsMax: budgets.some((b) => b.evictionMsMax !== null) ? Math.max(...budgets.map((b) => b.evictionMsMax ?? 0)) : null,
          }
        : null,
    }),
    ...(lastBudget ? { budget: lastBudget.report() } : {}),
    ...(profile ? { profile } : {}),
    ...(p.offlinePgo ? { offline_pgo: p.offlinePgo } : {}),
    ...(req.jitdump ? { jitdump: jitdumpReport() } : {}),
    log: m.log,
  };
}

/** The pgo mode's part of RunResult.rejit. */
function pgoReport(engine: PgoEngine, peakOf: typeof import('../pgo/engine.js').peakOf): PgoRejitReport {
  const timeline = engine.history.timeline;
  const { peak, timeTo95 } = peakOf(timeline);
  return { ...engine.summary(), time_to_95pct_peak_s: timeTo95, peak_ops_per_sec: peak, timeline };
}

function jitdumpReport(): NonNullable<RunResult['jitdump']> {
  const f = Jitdump.open();
  return { path: f.path, records: f.records, bytes: f.bytes, ...(f.error ? { error: f.error } : {}) };
}

/** The run's profile as RunResult reports it. */
function profileReport(p: PreparedBoot, s: SamplingRun, cpuNs: number): ProfileReport {
  const summary = s.profile.summary();
  const optimized = p.compiled.optimized;
  const inlined = summary.top
    .filter((t) => p.image.pristine.getFunction(t.function))
    .map((t) => ({ function: t.function, may_contain: inlinedInto(p.image.pristine, optimized, t.function) }))
    .filter((x) => x.may_contain.length > 0);
  return {
    samples: summary.samples,
    dropped: s.dropped,
    achieved_hz: s.achievedHz(),
    top: summary.top,
    hot_paths: summary.hot_paths,
    requested_hz: s.options.hz,
    idle_skipped: s.idle,
    overruns: s.overruns,
    truncated_chains: s.truncated,
    corrupt: s.corrupt,
    cost_ns_per_sample: s.costNs,
    cost_share: cpuNs > 0 ? (s.ticks * s.costNs) / cpuNs : 0,
    throttled: s.throttles,
    edges: s.profile.edgeList(PROFILE_PARAMS.hotPaths * 2),
    versions: s.profile.versions(),
    inlined,
    ...(s.error ? { error: `the sampling clock could not be armed (errno ${-s.error}): no samples` } : {}),
  };
}

function writeProfile(file: string, s: SamplingRun, hz: number): void {
  const stacks = s.profile.stacks();
  writeFileSync(file, profileFormatOf(file) === 'folded' ? toFolded(stacks) : toPprof(stacks, { periodNs: 1e9 / hz }));
}

/** A restart of the kernel after a fault in patched code. */
export interface Restart {
  after_ops: number;
  fault: string;
  version: string;
  patch: string;
  action: string;
}

/** What the pgo mode adds to RunResult.rejit (src/pgo/engine.ts). */
export interface PgoRejitReport extends PgoSummary {
  /** First moment after which every 1-second window stays at or above 95% of the peak (null: never). */
  time_to_95pct_peak_s: number | null;
  /** Median throughput over the last third of the run's 1-second windows. */
  peak_ops_per_sec: number;
  timeline: TimelinePoint[];
}

export interface RejitSummary extends Partial<PgoRejitReport> {
  installs: number;
  reverts: number;
  rollbacks: number;
  faults: number;
  /** Kernel restarts after faults in patched versions (the checksum covers the last instance). */
  restarts: Restart[];
  versions_live: number;
  versions_waiting_grace: number;
  patches: { fn: string; file: string; at_s: number; functions: string[]; compile_ms: number; apply_ms: number }[];
}

function rejitSummary(installer: Installer | null, applied: readonly AppliedPatch[], restarts: readonly Restart[]): RejitSummary {
  const s = installer?.summary();
  return {
    installs: s?.installs ?? 0,
    reverts: s?.reverts ?? 0,
    rollbacks: restarts.length,
    faults: restarts.length,
    restarts: [...restarts],
    versions_live: s?.versionsLive ?? 0,
    versions_waiting_grace: s?.versionsRetired ?? 0,
    patches: applied.map((a) => ({
      fn: a.spec.fn,
      file: a.spec.file,
      at_s: a.spec.atSeconds,
      functions: a.versions.map((v) => v.fn),
      compile_ms: a.ms.compile,
      apply_ms: a.ms.apply,
    })),
  };
}

/** prepareBoot + execute + release: what `kjit run` does. */
/**
 * How a boot compiled the image's functions (issue 10): eagerly (at boot,
 * any tier), lazily (on first call, or with a first-called function's
 * unit) or never (left lazy and never called); the compiled-object cache's
 * hits and misses (the boot's objects are one entry; lazily built units are
 * not cached).
 */
function bootCounts(p: PreparedBoot, lazy: LazyStats | null) {
  const t = p.compiled.report.tiers;
  const eager = t ? t.hot.length + t.fast : p.compiled.report.functionsAfter;
  const lazyDone = lazy?.compiled ?? 0;
  return {
    functions_eager: eager,
    functions_lazy: lazyDone,
    functions_never: (t?.lazy.length ?? 0) - lazyDone,
    cache_hits: p.compiled.cache === 'hit' ? 1 : 0,
    cache_misses: p.compiled.cache === 'miss' ? 1 : 0,
    ...(t
      ? {
          tiers: { hot: t.hot.length, fast: t.fast, lazy: t.lazy.length, why: t.why },
          ...(lazy
            ? {
                lazy: {
                  units_built: lazy.units,
                  built_never_called: lazy.prefetched,
                  first_calls_waited: lazy.requests,
                  wait_ms: lazy.waitMs,
                  wait_max_ms: lazy.waitMaxMs,
                  build_ms: lazy.buildMs,
                  build_max_ms: lazy.buildMaxMs,
                },
              }
            : {}),
        }
      : {}),
  };
}

export async function runKernel(req: BootRequest & ExecuteRequest): Promise<RunResult> {
  const clockStartNs = req.clockStartNs ?? processStartNs();
  const p = await prepareBoot(req);
  try {
    return await execute(p, { ...req, clockStartNs });
  } finally {
    p.dispose();
  }
}
