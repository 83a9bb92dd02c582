/**
 * @fileoverview A kernel instance: compiled objects linked into a fresh
 * LLJIT (code in kjit's code region), the machine's memory (the arena),
 * the control block, and the kernel thread.
 *
 * Lifecycle, in order:
 *   load()   link objects, resolve the runtime's symbols, open the control
 *            block, write the machine description and boot parameters;
 *   start()  pthread_create(kjit_thread_main): from here on only the kernel
 *            thread runs kernel code; the host only reads and writes memory;
 *   stop()   ask the kernel to finish (stop flag + doorbell), join the thread;
 *   dispose() only after the join: free the JIT's code, then the arena.
 */
import { appendFileSync } from 'node:fs';

import { KjitError, ExitCode } from '../errors.js';
import { CodeRegion } from '../native/codemem.js';
import { ControlBlock, KernelState, CB_MAGIC } from '../native/control-block.js';
import * as libc from '../native/libc.js';
import { type JitSymbol, LLJIT } from '../native/llvm.js';
import { Jitdump } from '../sampler/jitdump.js';
import type { BootConfig } from './bootconfig.js';

export interface InstanceOptions {
  workload: number;
  seed: bigint;
  opsLimit: bigint;
  /** ops/s; 0 = closed loop */
  rate: number;
  concurrency: number;
  workloadArg: bigint;
  arenaBytes: number;
  /** Sampling timer rate (Hz; 0 = off) and ring slots the kernel may fill (0 = all). */
  sampleHz: number;
  sampleRingSlots: number;
  /** What makes the ticks: a clock thread (default) or a timer on the kernel thread (ir/runtime/sampler.c). */
  sampleClock?: SampleClock;
  /** Write /tmp/perf-PID.map (appendPerfMap). */
  perfMap?: boolean;
  /** Name the code in the process's jitdump file, for `perf inject --jit` (src/sampler/jitdump.ts). */
  jitdump?: boolean;
  cpuFeatureBits: bigint;
  deviceIds: readonly number[];
  config: BootConfig;
}

export interface FaultReport {
  kind: 'fault' | 'panic';
  signal?: string;
  address?: bigint;
  pc?: bigint;
  symbol?: string;
  message: string;
}

/**
 * perf's JIT interface: /tmp/perf-PID.map lists "START SIZE name" in hex, so
 * `perf report` (and simpler tools) name kernel functions (--perf-map,
 * KJIT_PERF_MAP=1).  Versions installed later are appended as they appear.
 */
export function appendPerfMap(symbols: readonly { address: bigint; size: number; name: string }[]): void {
  const lines = symbols.map((s) => `${s.address.toString(16)} ${s.size.toString(16)} ${s.name}\n`);
  appendFileSync(`/tmp/perf-${process.pid}.map`, lines.join(''));
}

/** The functions among placed symbols (code sections), each address and name once. */
function functionsOf(symbols: readonly JitSymbol[]): JitSymbol[] {
  const seen = new Set<string>();
  return symbols.filter((s) => {
    const key = `${s.address}:${s.name}`;
    if (!s.section.startsWith('.text') || seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** Mirrors KJIT_SAMPLE_CLOCK_* (ir/runtime/kjit_cb.h). */
export type SampleClock = 'thread' | 'timer';
const SAMPLE_CLOCK_THREAD = 0;
const SAMPLE_CLOCK_TIMER = 1;

const SIGNALS: Record<number, string> = { 4: 'SIGILL', 7: 'SIGBUS', 8: 'SIGFPE', 11: 'SIGSEGV' };

export class KernelInstance {
  readonly jit: LLJIT;
  readonly cb: ControlBlock;
  private readonly arena: { addr: bigint; bytes: number };
  private thread: bigint | null = null;
  private joined = false;
  private disposed = false;

  /** After dispose() nothing of the instance may be touched: its JIT, code and memory are gone. */
  get isDisposed(): boolean {
    return this.disposed;
  }
  /** Entry point of the kernel thread (the runtime's kjit_thread_main). */
  private readonly threadMain: bigint;
  readonly linkMs: number;

  private constructor(
    jit: LLJIT,
    cb: ControlBlock,
    arena: { addr: bigint; bytes: number },
    threadMain: bigint,
    linkMs: number,
    /** The jitdump file this kernel's code is named in (--jitdump), or null. */
    readonly jitdump: Jitdump | null = null,
  ) {
    this.jit = jit;
    this.cb = cb;
    this.arena = arena;
    this.threadMain = threadMain;
    this.linkMs = linkMs;
  }

  static load(objects: readonly Uint8Array[], opts: InstanceOptions): KernelInstance {
    const t0 = performance.now();
    const region = CodeRegion.get();
    const jit = LLJIT.create({ creator: region.creator });
    let arena: { addr: bigint; bytes: number } | null = null;
    try {
      jit.addProcessSymbols();
      for (const o of objects) jit.addObject(o);
      const cbAddr = jit.lookup('kjit_cb');
      const cb = ControlBlock.open(cbAddr, jit.lookup('kjit_cb_layout'), jit.lookup('kjit_cb_nfields'));
      arena = { addr: libc.mmapAnonymous(opts.arenaBytes), bytes: opts.arenaBytes };
      libc.writeU64(jit.lookup('kjit_arena_addr'), arena.addr);
      cb.set('arena_bytes', opts.arenaBytes);
      cb.set('workload', opts.workload);
      cb.set('seed', opts.seed);
      cb.set('ops_limit', opts.opsLimit);
      cb.set('rate_milli', BigInt(Math.round(opts.rate * 1000)));
      cb.set('concurrency', opts.concurrency);
      cb.set('workload_arg', opts.workloadArg);
      cb.set('sample_hz', opts.sampleHz);
      cb.set('sample_cap', opts.sampleRingSlots);
      cb.set('sample_clock', opts.sampleClock === 'timer' ? SAMPLE_CLOCK_TIMER : SAMPLE_CLOCK_THREAD);
      cb.set('hw_cpu_features', opts.cpuFeatureBits);
      cb.set('hw_ndevices', opts.deviceIds.length);
      const devices = cb.array('hw_devices');
      opts.deviceIds.forEach((id, i) => (devices[i] = BigInt(id)));
      /* Boot parameters: every sysctl starts at its configured value (for a
       * folded one, the value the code was specialized for). */
      for (const v of opts.config.values) {
        libc.writeI64(jit.lookup(v.sysctl.variable), v.value);
      }
      if (opts.perfMap || process.env.KJIT_PERF_MAP) appendPerfMap(jit.symbols());
      const jitdump = opts.jitdump ? Jitdump.open() : null;
      jitdump?.codeLoaded(functionsOf(jit.symbols()));
      return new KernelInstance(jit, cb, arena, jit.lookup('kjit_thread_main'), performance.now() - t0, jitdump);
    } catch (e) {
      if (arena) libc.munmap(arena.addr, arena.bytes);
      jit.dispose();
      throw e;
    }
  }

  /**
   * `object` was just linked into this kernel's JIT (a version): with
   * --jitdump, its functions get JIT_CODE_LOAD records.  Only the code the
   * object brought counts: a weak function another object already defines
   * (the retpoline thunk) resolves to that copy, outside the object's pages.
   */
  codeLinked(object: Uint8Array): void {
    if (!this.jitdump) return;
    const { lo, hi } = CodeRegion.get().lastCode();
    this.jitdump.codeLoaded(functionsOf(this.jit.objectPlacement(object)).filter((f) => f.address >= lo && f.address < hi));
  }

  start(): void {
    if (this.thread !== null) throw new Error('kernel instance started twice');
    this.thread = libc.pthreadCreate(this.threadMain, 0n);
  }

  /** Pin the running kernel thread to `cpus` (kjit bench coop: the kernel and the compile server on one core). */
  pinTo(cpus: readonly number[]): void {
    if (this.thread === null || this.joined) throw new Error('no running kernel thread');
    libc.setPthreadAffinity(this.thread, cpus);
  }

  get state(): number {
    return this.cb.getNumber('state');
  }

  /** Ask the kernel to finish its operations and return. */
  requestStop(): void {
    this.cb.set('stop', 1);
    this.ringDoorbell();
  }

  /** Wake the kernel if it is blocked idle (it then re-reads the control block). */
  ringDoorbell(): void {
    /* the futex is the low 32 bits of the doorbell word; the host is its only writer */
    const w = this.cb.array('doorbell');
    w[0] = (w[0]! & ~0xffffffffn) | ((w[0]! + 1n) & 0xffffffffn);
    libc.futexWake(this.cb.addressOf('doorbell'), 1);
  }

  /**
   * A request to the kernel thread (the host -> kernel half of the control
   * block's protocol): the caller has written the request's fields; this
   * bumps `<kind>_request` (last, so the kernel sees the fields with it),
   * rings the doorbell, and waits for `<kind>_done` to reach it (the kernel
   * answers at its next quiescent point).  `spins` polls go by back to back
   * first (a running kernel answers in microseconds), then it polls every
   * millisecond.  `answered` is false if the kernel stopped running (or was
   * disposed) or `timeoutMs` passed first.
   */
  async request(kind: 'grace' | 'poke' | 'shadow_free' | 'grant', timeoutMs: number, spins = 0): Promise<{ id: bigint; answered: boolean }> {
    const cb = this.cb;
    const id = cb.get(`${kind}_request`) + 1n;
    cb.set(`${kind}_request`, id);
    this.ringDoorbell();
    const t0 = performance.now();
    for (let n = 1; ; n++) {
      if (this.disposed) return { id, answered: false };
      if (cb.get(`${kind}_done`) >= id) return { id, answered: true };
      const state = cb.getNumber('state');
      if ((state !== KernelState.RUNNING && state !== KernelState.BOOTING) || performance.now() - t0 > timeoutMs) return { id, answered: false };
      if (n > spins) await new Promise((r) => setTimeout(r, n > 2 * spins ? 1 : 0));
    }
  }

  private joining: Promise<void> | null = null;

  /** Wait for the kernel thread to return (one pthread_join, however many callers). */
  join(): Promise<void> {
    if (this.thread === null || this.joined) return Promise.resolve();
    this.joining ??= libc.pthreadJoinAsync(this.thread).then(() => {
      this.joined = true;
    });
    return this.joining;
  }

  threadCpuNs(): bigint {
    if (this.thread === null || this.joined) throw new Error('no running kernel thread');
    return libc.threadCpuNs(this.thread);
  }

  /** What went wrong, if the kernel faulted or panicked. */
  failure(): FaultReport | null {
    const s = this.state;
    if (s === KernelState.FAULTED) {
      const signo = this.cb.getNumber('fault_signo');
      const pc = this.cb.get('fault_pc');
      const address = this.cb.get('fault_addr');
      const symbol = this.jit.symbolize(pc);
      return {
        kind: 'fault',
        signal: SIGNALS[signo] ?? `signal ${signo}`,
        address,
        pc,
        ...(symbol ? { symbol } : {}),
        message: `${SIGNALS[signo] ?? `signal ${signo}`} at address 0x${address.toString(16)}, pc 0x${pc.toString(16)}${symbol ? ` (${symbol})` : ''}`,
      };
    }
    if (s === KernelState.PANICKED) return { kind: 'panic', message: this.cb.text('msg') };
    return null;
  }

  checkHealthy(during: string): void {
    if (this.cb.get('magic') !== CB_MAGIC && this.state !== KernelState.NEW) {
      throw new KjitError(`the kernel's control block is damaged ${during}`, 'report this as a kjit bug', ExitCode.KERNEL_FAULT);
    }
    const f = this.failure();
    if (f) {
      throw new KjitError(
        `the kernel ${f.kind === 'fault' ? 'faulted' : 'panicked'} ${during}: ${f.message}`,
        f.kind === 'fault'
          ? 'the image has a bug at that location; run with --log to see the kernel log'
          : 'see the panic message; run with --log to see the kernel log',
        ExitCode.KERNEL_FAULT,
      );
    }
  }

  /** Join (if started) and free everything: code first, then the machine's memory. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    if (this.thread !== null && !this.joined) {
      this.requestStop();
      await this.join();
    }
    this.disposed = true;
    this.cb.close();
    this.jit.dispose();
    libc.munmap(this.arena.addr, this.arena.bytes);
  }
}
