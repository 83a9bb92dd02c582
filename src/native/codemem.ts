/**
 * @fileoverview The code region (ir/runtime/codemem.c) seen from the host.
 * kjit compiles the code-memory manager once per process in a small loader
 * LLJIT that uses LLVM's own memory manager, reserves the region, and hands
 * its functions to every kernel LLJIT as the RTDyld memory-manager callbacks
 * (docs/llvm-notes.md).  The region outlives every kernel JIT of the process.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';

import koffi from 'koffi';

import { KjitError } from '../errors.js';
import { CODEMEM_IR } from '../paths.js';
import { LIBLLVM_PATH } from './llvm-c.js';
import { Context, createRTDyldLayerFunctionAddress, LLJIT, Module, TargetMachine } from './llvm.js';

/** Largest region: every rel32 between two pieces of JIT code must reach. */
export const REGION_BYTES = 1 << 30;

export interface CodeRegionStats {
  bytesInUse: number;
  peakBytes: number;
  limitBytes: number;
  regionBytes: number;
  liveObjects: number;
  objectsEver: number;
  failedAllocations: number;
  /** Objects whose link failed because an allocation was refused (over the limit, or the region full). */
  objectsRefused: number;
}

function readCodememIR(): Buffer {
  if (!existsSync(CODEMEM_IR)) {
    throw new KjitError(`kjit's code-memory manager IR (${CODEMEM_IR}) is missing`, 'run `npm run setup`', 1);
  }
  return readFileSync(CODEMEM_IR);
}

/** `path`'s bytes if `path.sha256` holds `key` and the bytes' own hash; else null. */
function readVerified(path: string, key: string): Uint8Array | null {
  try {
    const [k, sum] = readFileSync(`${path}.sha256`, 'utf8').split('\n');
    if (k !== key) return null;
    const bytes = new Uint8Array(readFileSync(path));
    return createHash('sha256').update(bytes).digest('hex') === sum ? bytes : null;
  } catch {
    return null;
  }
}

function writeVerified(path: string, key: string, bytes: Uint8Array): void {
  try {
    writeFileSync(`${path}.tmp-${process.pid}`, bytes);
    renameSync(`${path}.tmp-${process.pid}`, path);
    writeFileSync(`${path}.sha256`, `${key}\n${createHash('sha256').update(bytes).digest('hex')}\n`);
  } catch {
    /* read-only build directory: compile again next time */
  }
}

export class CodeRegion {
  private static instance: CodeRegion | undefined;

  readonly base: bigint;
  readonly alias: bigint;
  readonly size: number;
  /** For LLJIT.create({ creator }). */
  readonly creator: { fn: bigint; ctx: bigint; layer: 'rtdyld' };
  private readonly fns: Record<string, bigint>;
  private readonly loader: LLJIT;

  private constructor(loader: LLJIT, fns: Record<string, bigint>) {
    this.loader = loader;
    this.fns = fns;
    this.base = BigInt(koffi.call(fns.kjit_codemem_base!, koffi.proto('uint64_t (void)')) as number | bigint);
    this.alias = BigInt(koffi.call(fns.kjit_codemem_alias!, koffi.proto('uint64_t (void)')) as number | bigint);
    this.size = Number(koffi.call(fns.kjit_codemem_size!, koffi.proto('uint64_t (void)')));
    this.creator = { fn: fns.kjit_codemem_layer_creator!, ctx: createRTDyldLayerFunctionAddress(), layer: 'rtdyld' };
  }

  /** The process's region; CodeRegion.getAsync() sets it up (prepareBoot does). */
  static get(): CodeRegion {
    if (!CodeRegion.instance) throw new Error('the code region is not set up yet: await CodeRegion.getAsync() first');
    return CodeRegion.instance;
  }

  private static pending: Promise<CodeRegion> | undefined;

  /**
   * The process's region, created on first use.  The memory manager's code
   * is generated on a libuv thread, so a caller can compile an image meanwhile.
   */
  static getAsync(): Promise<CodeRegion> {
    if (CodeRegion.instance) return Promise.resolve(CodeRegion.instance);
    CodeRegion.pending ??= (async () => {
      const ir = readCodememIR();
      /* The manager's object is kept beside its IR, under the hash of the IR
       * and of the LLVM that compiled it (a warm boot saves ~40 ms); a
       * mismatched or damaged file is compiled again and replaced. */
      const key = createHash('sha256').update(ir).update(LIBLLVM_PATH).digest('hex');
      const objPath = `${CODEMEM_IR.replace(/\.bc$/, '')}.o`;
      const cached = readVerified(objPath, key);
      if (cached) return CodeRegion.instance ?? CodeRegion.install(cached);
      const ctx = Context.create();
      const m = Module.parseBitcode(ctx, ir, 'codemem');
      const tm = TargetMachine.create({ triple: 'x86_64-pc-linux-gnu', cpu: 'x86-64', features: '', optLevel: 2, relocModel: 'pic', codeModel: 'small' });
      try {
        await m.runPassesAsync('default<O2>', tm);
        const object = await tm.emitObjectAsync(m);
        writeVerified(objPath, key, object);
        return CodeRegion.instance ?? CodeRegion.install(object);
      } finally {
        m.dispose();
        tm.dispose();
        ctx.dispose();
      }
    })();
    return CodeRegion.pending;
  }

  private static install(object: Uint8Array): CodeRegion {
    /* LLVM's default memory manager places the loader itself. */
    const loader = LLJIT.create();
    loader.addProcessSymbols();
    loader.addObject(object);
    const names = [
      'kjit_codemem_init', 'kjit_codemem_release', 'kjit_codemem_base', 'kjit_codemem_alias', 'kjit_codemem_size',
      'kjit_codemem_set_limit', 'kjit_codemem_stats', 'kjit_codemem_last_code', 'kjit_codemem_layer_creator',
    ];
    const fns = Object.fromEntries(names.map((n) => [n, loader.lookup(n)]));
    const rc = koffi.call(fns.kjit_codemem_init!, koffi.proto('int (uint64_t)'), REGION_BYTES) as number;
    if (rc !== 0) {
      loader.dispose();
      throw new KjitError(`cannot reserve the ${REGION_BYTES >> 20} MiB code region (errno ${-rc})`, 'check the address-space limit (ulimit -v)', 1);
    }
    CodeRegion.instance = new CodeRegion(loader, fns);
    return CodeRegion.instance;
  }

  stats(): CodeRegionStats {
    const out = new BigUint64Array(9);
    koffi.call(this.fns.kjit_codemem_stats!, koffi.proto('void (_Out_ uint64_t *out)'), out);
    const n = (i: number) => Number(out[i]);
    return {
      bytesInUse: n(0),
      peakBytes: n(1),
      limitBytes: n(2),
      regionBytes: n(3),
      liveObjects: n(4),
      objectsEver: n(5),
      failedAllocations: n(6),
      objectsRefused: n(8),
    };
  }

  /**
   * Limit the bytes objects may hold (whole pages; at most the region):
   * the code share of the JIT's memory grant (src/scheduler/budget.ts).
   * Objects already linked keep their memory; an object that needs more
   * than the limit leaves fails to link, cleanly (ir/runtime/codemem.c).
   */
  setLimit(bytes: number): void {
    koffi.call(this.fns.kjit_codemem_set_limit!, koffi.proto('void (uint64_t)'), bytes);
  }

  /** Compiled code of the loader JIT (the memory manager itself), for diagnostics. */
  get loaderJit(): LLJIT {
    return this.loader;
  }

  /** Code pages [lo, hi) of the object finalized last (lo = hi = 0: it had no code). */
  lastCode(): { lo: bigint; hi: bigint } {
    const lo = [0n];
    const hi = [0n];
    koffi.call(this.fns.kjit_codemem_last_code!, koffi.proto('void (_Out_ uint64_t *lo, _Out_ uint64_t *hi)'), lo, hi);
    return { lo: BigInt(lo[0]!), hi: BigInt(hi[0]!) };
  }

  contains(address: bigint): boolean {
    return address >= this.base && address < this.base + BigInt(this.size);
  }
}
