/**
 * @fileoverview From a raw sample's addresses to a call chain of functions
 * (pure: no native memory is read here, so it is tested without a kernel).
 *
 * An address is looked up, in order, in
 *   1. the boot image's code symbols (never freed while its kernel runs);
 *   2. the code map of installed versions (src/rejit/versions.ts): the
 *      function and its version.  The code map keeps freed ranges, and an
 *      address can be reused by a later version; the most recent version
 *      covering it wins, which is right because the sampler drains the ring
 *      whenever versions are freed (Installer.onFreed), before anything new
 *      can be linked at their addresses: a sample is always attributed while
 *      the code it hit is still the most recent at its address;
 *   3. a fallback (the JIT's own symbol table: code a version's object holds
 *      besides the version, such as a patch's local functions);
 * else it is native code outside the image (libc, the vDSO): "[native]".
 *
 * Chains: the leaf is the pc itself; each return address is looked up one
 * byte back (inside the call instruction, not after it).  The chain stops at
 * the first return address that is not kjit code (a stale or foreign word).
 * When the pc is in code that has no frame of its own yet -- an assembly
 * routine (they set up none), the first instruction of a function (the
 * patchable entry's NOP and the `push %rbp` after it), native code, or JIT
 * code only the fallback names (RTDyld's call stubs, one `jmp` each) --
 * the frame-pointer chain starts at the caller's caller; the return address
 * is then the word at the stack pointer (sp0), which is put back as the
 * caller when it is kjit code and not already the chain's first entry.  Not
 * covered: the one instruction after `push %rbp` (`mov %rsp, %rbp`), where
 * the return address is one word higher, and epilogues after `pop %rbp`.
 *
 * Inlined code: without debug information an address inside a function
 * that boot (or a version) inlined a callee into is attributed to the outer
 * function only.  inline-map.ts lists which functions such code may contain.
 */

/** A function's code: [start, end). */
export interface CodeSymbol {
  start: number;
  end: number;
  name: string;
  /** An assembly routine: no frame of its own, its return address is at the stack pointer. */
  frameless: boolean;
  /** Begins with the 5-byte patchable NOP (boot code compiled with patchable entries). */
  patchable: boolean;
}

/** What the code map tells about an address (CodeMap.find, src/rejit/versions.ts). */
export interface VersionInfo {
  id: number;
  fn: string;
  kind: string;
  address: bigint;
  size: number;
}

export interface VersionLookup {
  find(address: bigint): VersionInfo | null;
  /** Changes when a version is added (then cached look-ups are dropped). */
  readonly size: number;
}

/** One frame of a chain. */
export interface Frame {
  /** The function (for a version: the function it is a version of). */
  fn: string;
  /** 'boot', or the version: `v3 patched`. */
  version: string;
  /** Known kjit code (false: native code outside the image). */
  known: boolean;
  symbol: CodeSymbol | null;
}

export const NATIVE = '[native]';
const NATIVE_FRAME: Frame = { fn: NATIVE, version: 'native', known: false, symbol: null };
/** Bytes of the patchable entry's NOP; the `push %rbp` follows it. */
const PATCHABLE_NOP_BYTES = 5;

/** Sorted, non-overlapping code symbols with binary search. */
export class SymbolTable {
  private readonly starts: Float64Array;
  private readonly symbols: CodeSymbol[];

  constructor(symbols: readonly CodeSymbol[]) {
    this.symbols = [...symbols].filter((s) => s.end > s.start).sort((a, b) => a.start - b.start);
    this.starts = Float64Array.from(this.symbols, (s) => s.start);
  }

  get size(): number {
    return this.symbols.length;
  }

  find(address: number): CodeSymbol | null {
    let lo = 0;
    let hi = this.starts.length - 1;
    let best = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.starts[mid]! <= address) {
        best = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (best < 0) return null;
    const s = this.symbols[best]!;
    return address < s.end ? s : null;
  }
}

/** The raw sample fields the symbolizer needs (ring.ts's RawSample). */
export interface SampleAddresses {
  pc: number;
  sp0: number | null;
  frames: readonly number[];
}

export class Symbolizer {
  private cache = new Map<number, Frame>();
  private versionsSeen = -1;
  /** Entries kept before the cache starts over (distinct addresses seen). */
  static readonly CACHE_LIMIT = 200_000;

  constructor(
    private readonly boot: SymbolTable,
    private readonly versions: VersionLookup | null = null,
    private readonly fallback: ((address: number) => string | null) | null = null,
  ) {}

  /** The frame at a code address (exact: callers pass a return address minus one). */
  frameAt(address: number): Frame {
    if (this.versions && this.versions.size !== this.versionsSeen) {
      this.versionsSeen = this.versions.size;
      this.cache.clear();
    }
    let f = this.cache.get(address);
    if (f) return f;
    f = this.lookup(address);
    if (this.cache.size >= Symbolizer.CACHE_LIMIT) this.cache.clear();
    this.cache.set(address, f);
    return f;
  }

  private lookup(address: number): Frame {
    const s = this.boot.find(address);
    if (s) return { fn: s.name, version: 'boot', known: true, symbol: s };
    const v = this.versions?.find(BigInt(address));
    if (v) {
      const start = Number(v.address);
      return {
        fn: v.fn,
        version: `v${v.id} ${v.kind}`,
        known: true,
        symbol: { start, end: start + v.size, name: v.fn, frameless: false, patchable: false },
      };
    }
    const name = this.fallback?.(address);
    if (name) return { fn: name, version: 'jit', known: true, symbol: null };
    return NATIVE_FRAME;
  }

  /** Whether the pc is where its function has not pushed a frame (see the file comment). */
  private static frameless(leaf: Frame, pc: number): boolean {
    const s = leaf.symbol;
    if (!leaf.known || !s) return true; /* native code, or JIT code no table sizes (a call stub) */
    if (s.frameless) return true;
    const offset = pc - s.start;
    return offset === 0 || (s.patchable && offset <= PATCHABLE_NOP_BYTES);
  }

  /** The chain of a sample, leaf first. */
  chain(sample: SampleAddresses): Frame[] {
    const leaf = this.frameAt(sample.pc);
    const out: Frame[] = [leaf];
    const frames = sample.frames;
    if (sample.sp0 !== null && Symbolizer.frameless(leaf, sample.pc) && sample.sp0 !== frames[0]) {
      const caller = this.frameAt(sample.sp0 - 1);
      if (caller.known) out.push(caller);
    }
    for (const ret of frames) {
      const f = this.frameAt(ret - 1);
      if (!f.known) break;
      out.push(f);
    }
    return out;
  }
}
