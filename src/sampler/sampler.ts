/**
 * @fileoverview The sampler of a running kernel: the host half of
 * ir/runtime/sampler.c.  A SamplingRun spans one run (a fault in patched
 * code restarts the kernel: the profile goes on); a Sampler serves one
 * kernel instance: it drains that kernel's ring (ring.ts), symbolizes each
 * sample (symbols.ts) through the boot image's symbols and the installer's
 * code map, adds it to the run's profile (profile.ts), and carries out the
 * throttle's decisions (throttle.ts) by writing the rate the kernel thread
 * follows.
 *
 * Drain points (each must come before anything could make an address mean
 * other code): a timer of the run (every 20 ms), every time the installer
 * frees versions (Installer.onFreed: before a later version can be linked
 * at their addresses), and after the kernel thread was joined (before its
 * code and control block are freed).
 */
import type { KernelInstance } from '../kernel/instance.js';
import type { PreparedBoot } from '../kernel/run.js';
import { CodeRegion } from '../native/codemem.js';
import { readU64 } from '../native/libc.js';
import { objectSymbols } from '../native/llvm.js';
import { ProfileBuilder } from './profile.js';
import { type RawSample, SampleRing, type SampleFormat } from './ring.js';
import { type CodeSymbol, Symbolizer, SymbolTable, type VersionLookup } from './symbols.js';
import { decideRate, THROTTLE_PARAMS, type ThrottleDecision } from './throttle.js';

/** Tunables of sampling (the throttle's are in throttle.ts, the profile's in profile.ts). */
export const SAMPLER_PARAMS = {
  /** `kjit run`'s default rate: odd, so it does not beat with periodic work at round rates. */
  defaultHz: 997,
  /** Highest rate accepted (the runtime caps at 100 kHz; beyond ~20 kHz the handler is most of the cost). */
  maxHz: 20_000,
  /** The host drains the ring this often (ms): 1,024 slots hold 100 ms at 10 kHz. */
  drainEveryMs: 20,
};

export interface SamplerOptions {
  /** Timer rate asked for (Hz). */
  hz: number;
  /** Throttle: the largest share of the kernel thread's CPU sampling may cost; null: never throttle. */
  maxShare: number | null;
}

export interface ThrottleEvent {
  at_s: number;
  from_hz: number;
  to_hz: number;
  share: number;
  reason: string;
}

/** Code in kjit's code region that no symbol table names: the stubs through which RTDyld links calls to libc. */
export const JIT_UNKNOWN = '[jit]';

/** What one run's sampling counted, over every kernel it booted. */
export class SamplingRun {
  readonly profile = new ProfileBuilder();
  ticks = 0;
  idle = 0;
  dropped = 0;
  overruns = 0;
  corrupt = 0;
  truncated = 0;
  /** Seconds the timers were armed (closed kernels only; a live one adds its own). */
  armedS = 0;
  costNs = 0;
  error = 0;
  readonly throttles: ThrottleEvent[] = [];
  live: Sampler | null = null;

  constructor(readonly options: SamplerOptions) {}

  /** Ticks and armed seconds so far, the live kernel's included. */
  private sums(): { ticks: number; armedS: number } {
    const live = this.live?.counters();
    return { ticks: this.ticks + (live?.ticks ?? 0), armedS: this.armedS + (live?.armedS ?? 0) };
  }

  /** Timer expirations delivered per second of armed time. */
  achievedHz(): number {
    const { ticks, armedS } = this.sums();
    return armedS > 0 ? ticks / armedS : 0;
  }

  /** The hottest functions by self samples, shares of all samples (kjit status). */
  hotFunctions(n: number): { fn: string; share: number }[] {
    this.live?.drain();
    return this.profile.top(n).map((t) => ({ fn: t.function, share: t.self_pct / 100 }));
  }
}

/** The slot format the image's runtime exports. */
function sampleFormat(instance: KernelInstance): SampleFormat {
  const at = instance.jit.lookup('kjit_sample_format');
  const word = (i: number) => Number(readU64(at + BigInt(8 * i)));
  return { slotWords: word(0), headWords: word(1), truncatedFlag: word(2), sp0Flag: word(3) };
}

/** The boot image's code, as the symbolizer wants it. */
function bootSymbols(instance: KernelInstance, p: PreparedBoot): SymbolTable {
  const asm = new Set<string>();
  for (const o of p.compiled.objects.slice(0, p.compiled.report.asmObjects)) for (const s of objectSymbols(o)) asm.add(s.name);
  const code: CodeSymbol[] = [];
  for (const s of instance.jit.baseSymbols()) {
    if (!s.section.startsWith('.text') && !s.section.startsWith('.ltext')) continue;
    const start = Number(s.address);
    const frameless = asm.has(s.name);
    code.push({ start, end: start + s.size, name: s.name, frameless, patchable: p.patchable && !frameless });
  }
  return new SymbolTable(code);
}

export class Sampler {
  private readonly ring: SampleRing;
  private symbolizer: Symbolizer | null = null;
  private lastThrottleMs = 0;
  private lastTicks = 0;
  private lastCpuNs = 0;
  private armedHz: number;
  private closed = false;

  constructor(
    private readonly instance: KernelInstance,
    private readonly prepared: PreparedBoot,
    private readonly run: SamplingRun,
    /** The installer's code map, when versions can be installed. */
    private readonly versions: VersionLookup | null,
    /** Seconds since the run's first operation (throttle events say when). */
    private readonly elapsedS: () => number,
  ) {
    this.ring = new SampleRing(instance.cb, sampleFormat(instance));
    this.armedHz = run.options.hz;
    run.live = this;
  }

  private symbols(): Symbolizer {
    if (this.symbolizer) return this.symbolizer;
    /* built on first use, not at boot: reading the symbol tables takes a while */
    const region = CodeRegion.get();
    const lo = Number(region.base);
    const hi = lo + region.size;
    /* JIT code that is neither boot code nor a version (a patch's local function): the JIT's own table */
    const inRegion = (a: number): string | null => {
      if (a < lo || a >= hi) return null;
      const name = this.instance.jit.symbolize(BigInt(a));
      return name ? name.replace(/\+0x[0-9a-f]+$/, '') : JIT_UNKNOWN;
    };
    this.symbolizer = new Symbolizer(bootSymbols(this.instance, this.prepared), this.versions, inRegion);
    return this.symbolizer;
  }

  private readonly onSample = (s: RawSample): void => {
    const chain = this.symbols().chain(s);
    if (s.truncated) this.run.truncated++;
    const leaf = chain[0]!;
    this.run.profile.add(
      chain.map((f) => f.fn),
      leaf.version.startsWith('v') ? leaf.version : null, /* an installed version: `v3 patched` */
    );
  };

  /** Move every published sample into the profile.  Safe to call at any time while the instance lives. */
  drain(): number {
    if (this.closed || this.instance.isDisposed) return 0;
    const { read, corrupt } = this.ring.drain(this.onSample);
    this.run.corrupt += corrupt;
    return read;
  }

  /** Counters of this kernel's sampler (from its control block). */
  counters(): { ticks: number; idle: number; dropped: number; overruns: number; armedS: number; costNs: number; error: number } {
    const cb = this.instance.cb;
    const armed = cb.get('sample_armed_ns');
    const end = cb.get('sample_disarmed_ns');
    const now = end !== 0n ? end : process.hrtime.bigint(); /* both CLOCK_MONOTONIC */
    return {
      ticks: cb.getNumber('sample_ticks'),
      idle: cb.getNumber('sample_idle'),
      dropped: cb.getNumber('sample_dropped'),
      overruns: cb.getNumber('sample_overruns'),
      armedS: armed !== 0n && now > armed ? Number(now - armed) / 1e9 : 0,
      costNs: cb.getNumber('sample_cost_ns'),
      error: Number(BigInt.asIntN(64, cb.get('sample_error'))),
    };
  }

  /** Called from the run's poll loop: drain, and let the throttle decide now and then. */
  poll(): ThrottleDecision | null {
    this.drain();
    if (this.run.options.maxShare === null) return null;
    const now = performance.now();
    if (now - this.lastThrottleMs < THROTTLE_PARAMS.everyMs) return null;
    let cpuNs: number;
    try {
      cpuNs = Number(this.instance.threadCpuNs());
    } catch {
      return null; /* the thread ended meanwhile */
    }
    const c = this.counters();
    const first = this.lastThrottleMs === 0;
    const d = decideRate({
      requestedHz: this.run.options.hz,
      armedHz: this.armedHz,
      costNs: c.costNs,
      ticks: c.ticks - this.lastTicks,
      cpuNs: cpuNs - this.lastCpuNs,
      maxShare: this.run.options.maxShare,
    });
    this.lastThrottleMs = now;
    this.lastTicks = c.ticks;
    this.lastCpuNs = cpuNs;
    if (first || d.kind === 'keep') return first ? null : d;
    this.run.throttles.push({ at_s: this.elapsedS(), from_hz: this.armedHz, to_hz: d.hz, share: d.numbers.share, reason: d.reason });
    this.armedHz = d.hz;
    this.instance.cb.set('sample_hz', d.hz); /* the kernel re-arms at its next quiescent point */
    return d;
  }

  /** The kernel thread was joined: take the last samples and add this kernel's counters to the run's. */
  finish(): void {
    if (this.closed) return;
    this.drain();
    const c = this.counters();
    const r = this.run;
    r.ticks += c.ticks;
    r.idle += c.idle;
    r.dropped += c.dropped;
    r.overruns += c.overruns;
    r.armedS += c.armedS;
    r.costNs = c.costNs || r.costNs;
    r.error = c.error || r.error;
    this.closed = true;
    if (r.live === this) r.live = null;
  }
}
