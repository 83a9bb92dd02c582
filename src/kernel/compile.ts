/**
 * @fileoverview From an image's pristine IR to object code, for one mode:
 * specialize, optimize (whole image or per source file), and emit objects
 * with kjit's own target machine (PIC, small code model: everything lives in
 * one code region).  The image's assembly is emitted as an object of its own
 * (see docs/llvm-notes.md for why it never goes through ORC as IR).
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

import { LIBLLVM_PATH } from '../native/llvm-c.js';
import { Context, hostCPUFeatures, hostCPUName, Linkage, Module, TargetMachine, Visibility } from '../native/llvm.js';
import { cacheEnabled, cacheKey, readEntry, writeEntry } from './cache.js';
import { type BootConfig } from './bootconfig.js';
import type { Image } from './image.js';
import type { ModeSpec } from './modes.js';
import {
  setPatchableEntries,
  definedFunctionNames,
  detachImplementations,
  internalizeFunctions,
  restoreExternal,
  type FoldReport,
  foldLoads,
  instrumentCounts,
  promoteInternals,
  setTarget,
  type TargetSpec,
} from './specialize.js';
import { extractUnit, unitsOf } from './units.js';

export const TRIPLE = 'x86_64-pc-linux-gnu';
export const GENERIC_TARGET: TargetSpec = {
  cpu: 'x86-64',
  features: '+cmov,+cx8,+fxsr,+mmx,+sse,+sse2,+x87',
  mitigations: true,
};

export function hostTarget(): TargetSpec {
  return { cpu: hostCPUName(), features: hostCPUFeatures(), mitigations: true };
}

/** The assembler only needs to accept every instruction asm/ uses; the
 * routines run only where their selector chose them. */
const ASM_TARGET: TargetSpec = { cpu: 'x86-64', features: '+avx2,+sse4.2,+bmi2,+popcnt', mitigations: false };

export interface RemovedFunction {
  name: string;
  reason: string;
}

export interface CompileReport {
  mode: string;
  target: TargetSpec;
  units: number;
  functionsBefore: number;
  functionsAfter: number;
  promoted: { functions: number; globals: number };
  folded: { name: string; variable: string; value: string; loads: number }[];
  removed: RemovedFunction[];
  objectBytes: number;
  /** The first this-many objects hold the image's assembly; the rest its compiled code. */
  asmObjects: number;
  ms: { specialize: number; optimize: number; codegen: number; total: number };
}

export interface CompiledImage {
  /** Object files, asm first. */
  objects: Uint8Array[];
  report: CompileReport;
  /** The optimized module (owned; parsed on first use after a cache hit):
   * counting builds instrument a copy of it. */
  readonly optimized: Module;
  target: TargetSpec;
  /** Compiled now ('miss'), loaded from the object cache ('hit'), or the cache was off. */
  cache: 'hit' | 'miss' | 'off';
  dispose(): void;
}

export interface CompileOptions {
  /** Use the compiled-object cache (default: on unless KJIT_CACHE=0). */
  cache?: boolean;
  /** Give every function a 5-byte patchable entry, so versions can be installed (src/rejit). */
  patchable?: boolean;
  /** Drop the image's assembly instead of emitting it (a re-JIT unit: the routines are already live). */
  dropAssembly?: boolean;
}

function cacheKeyFor(image: Image, mode: ModeSpec, config: BootConfig, target: TargetSpec, patchable: boolean): string {
  return cacheKey({
    patchable,
    image: image.hash,
    runtime: image.runtimeHash,
    mode,
    target,
    llvm: LIBLLVM_PATH,
    values: config.values.map((v) => [v.sysctl.variable, v.value.toString(), v.bootFixed, v.selector]),
    absent: config.absentDevices.map((a) => [a.selector, a.value.toString(), a.impl]),
  });
}

function lazyCompiled(
  objects: Uint8Array[],
  report: CompileReport,
  target: TargetSpec,
  cache: CompiledImage['cache'],
  load: () => Module,
): CompiledImage {
  let module: Module | null = null;
  return {
    objects,
    report,
    target,
    cache,
    get optimized(): Module {
      module ??= load();
      return module;
    },
    dispose: () => module?.dispose(),
  };
}

export async function compileImage(image: Image, mode: ModeSpec, config: BootConfig, options: CompileOptions = {}): Promise<CompiledImage> {
  const t0 = performance.now();
  const target = mode.hostCpu ? hostTarget() : GENERIC_TARGET;
  const useCache = options.cache ?? cacheEnabled();
  const key = cacheKeyFor(image, mode, config, target, options.patchable === true);
  if (useCache) {
    const hit = readEntry(key);
    if (hit) {
      const report = { ...(hit.meta as CompileReport), ms: { specialize: 0, optimize: 0, codegen: 0, total: performance.now() - t0 } };
      const ctx = image.context;
      return lazyCompiled(hit.objects, report, target, 'hit', () =>
        Module.parseBitcode(ctx, readFileSync(hit.bitcodePath), `${image.name} (${mode.name}, cached)`),
      );
    }
  }
  const compiled = await compileFresh(image, mode, config, target, t0, options);
  if (useCache) writeEntry(key, compiled.objects, compiled.report, compiled.optimized.toBitcode());
  compiled.cache = useCache ? 'miss' : 'off';
  return compiled;
}


/** kjit's target machine for code in the code region: PIC, small code model. */
export function makeTargetMachine(t: TargetSpec): TargetMachine {
  return TargetMachine.create({
    triple: TRIPLE,
    cpu: t.cpu,
    features: [t.features, ...(t.mitigations ? ['+retpoline-indirect-calls', '+retpoline-indirect-branches'] : [])]
      .filter(Boolean)
      .join(','),
    optLevel: 2,
    relocModel: 'pic',
    codeModel: 'small',
  });
}

/** Emit the module-level assembly of `m` (then removed from `m`) as an object. */
function emitAssembly(m: Module): Uint8Array | null {
  const asm = m.inlineAsm;
  if (!asm.trim()) return null;
  m.inlineAsm = '';
  const am = m.context.createModule('kjit-asm');
  try {
    am.triple = TRIPLE;
    am.dataLayout = m.dataLayout;
    am.inlineAsm = asm;
    using tm = makeTargetMachine(ASM_TARGET);
    return tm.emitObject(am);
  } finally {
    am.dispose();
  }
}

export interface Specialized {
  /** The image's assembly, emitted (null if it has none). */
  asmObject: Uint8Array | null;
  /** Functions defined before specialization. */
  before: Set<string>;
  removedReasons: Map<string, string>;
  fold: Map<string, bigint>;
  folded: FoldReport;
  promoted: { functions: number; globals: number };
}

/**
 * Boot specialization of `m` (a clone of an image's pristine IR) for one mode
 * and machine, in place: the image's assembly is moved out and emitted,
 * absent drivers removed, boot-fixed values folded, internals promoted, every
 * function pointed at the target.  Re-JIT units apply exactly the same steps
 * to their own clone, so a version agrees with the code it replaces.
 */
export function specialize(m: Module, mode: ModeSpec, config: BootConfig, target: TargetSpec, options: CompileOptions = {}): Specialized {
  /* Functions the assembly calls (e.g. task_entry from the context switch)
   * must keep their symbols: the asm object links to them by name. */
  const asmWords = new Set(m.inlineAsm.match(/[A-Za-z_.$][\w.$]*/g) ?? []);
  let asmObject: Uint8Array | null = null;
  if (options.dropAssembly) m.inlineAsm = '';
  else asmObject = emitAssembly(m);
  const before = definedFunctionNames(m);
  const pinned = (name: string) => name.startsWith('kjit_') || asmWords.has(name);

  /* 1. devirtualization: the operations tables of devices this machine does
   * not have are emptied (the tables stay, as state), and every function
   * only they reached is deleted. */
  const removedReasons = new Map<string, string>();
  if (mode.devirtualize && config.absentDevices.length) {
    const external = internalizeFunctions(m, pinned);
    /* first what nothing references at all, so it is not blamed on a driver */
    m.runPasses('globaldce', null);
    const reachable = definedFunctionNames(m);
    for (const name of before) if (!reachable.has(name)) removedReasons.set(name, 'never referenced');
    detachImplementations(m, config.absentDevices.map((a) => a.impl).filter((x): x is string => !!x));
    m.runPasses('globaldce', null);
    const alive = definedFunctionNames(m);
    const why = `driver for ${config.absentDevices.map((a) => a.name).join(', ')}, a device this machine does not have`;
    for (const name of reachable) if (!alive.has(name)) removedReasons.set(name, why);
    /* survivors keep their symbols: per-file builds link by name, and boot
     * promotes every function anyway (below) */
    restoreExternal(m, external);
  }
  /* 2. folding */
  const fold = new Map<string, bigint>();
  for (const v of config.values) {
    if (!v.bootFixed) continue;
    if (v.selector ? mode.devirtualize : mode.foldOptions) fold.set(v.sysctl.variable, v.value);
  }
  const folded: FoldReport = foldLoads(m, fold);

  /* 3. promotion: every internal function and global becomes a hidden
   * external symbol with its (unique) name, so re-JIT units built later from
   * the pristine IR link to this live copy: its state, and its functions
   * (each stays a real function that can be redirected). Measured cost
   * against internal functions: about 1% of throughput, 40% more code. */
  const promoted = mode.promote ? promoteInternals(m, 'all') : { functions: 0, globals: 0 };
  setTarget(m, target);
  if (options.patchable) setPatchableEntries(m);
  return { asmObject, before, removedReasons, fold, folded, promoted };
}

async function compileFresh(
  image: Image,
  mode: ModeSpec,
  config: BootConfig,
  target: TargetSpec,
  t0: number,
  options: CompileOptions,
): Promise<CompiledImage> {
  const m = image.pristine.clone();
  let done = false;
  try {
    const { asmObject, before, removedReasons, fold, folded, promoted } = specialize(m, mode, config, target, options);
    const tSpecialized = performance.now();

    using tm = makeTargetMachine(target);
    let optimized: Module;
    let units = 1;
    if (mode.wholeImage) {
      m.runPasses(mode.pipeline, tm);
      optimized = m;
    } else {
      const names = unitsOf(m);
      units = names.length;
      let linked: Module | null = null;
      for (const unit of names) {
        const u = extractUnit(m, unit);
        u.runPasses(mode.pipeline, tm);
        if (!linked) linked = u;
        else linked.link(u);
      }
      m.dispose();
      optimized = linked!;
    }
    const tOptimized = performance.now();
    const code = await emitParallel(optimized, target, CODEGEN_THREADS);
    const tEmitted = performance.now();

    const after = definedFunctionNames(optimized);
    for (const name of before) {
      if (!after.has(name) && !removedReasons.has(name)) removedReasons.set(name, 'deleted by the optimizer (inlined into every caller, or reachable only from folded-away branches)');
    }
    const objects = asmObject ? [asmObject, ...code] : code;
    done = true;
    return lazyCompiled(objects, {
        mode: mode.name,
        target,
        units,
        functionsBefore: before.size,
        functionsAfter: after.size,
        promoted,
        folded: config.values
          .filter((v) => fold.has(v.sysctl.variable))
          .map((v) => ({
            name: v.sysctl.name,
            variable: v.sysctl.variable,
            value: v.value.toString(),
            loads: folded.loads.get(v.sysctl.variable) ?? 0,
          })),
        removed: [...removedReasons].map(([name, reason]) => ({ name, reason })),
        objectBytes: objects.reduce((s, o) => s + o.byteLength, 0),
        asmObjects: asmObject ? 1 : 0,
        ms: {
          specialize: tSpecialized - t0,
          optimize: tOptimized - tSpecialized,
          codegen: tEmitted - tOptimized,
          total: tEmitted - t0,
        },
      }, target, 'off', () => optimized);
  } finally {
    if (!done) m.dispose();
  }
}

/** Code generation runs on this many threads (the machine has two cores). */
export const CODEGEN_THREADS = Number(process.env.KJIT_CODEGEN_THREADS ?? Math.max(1, Math.min(2, availableParallelism())));

/**
 * Machine code for `m` as `parts` objects generated concurrently, each
 * partition in an LLVM context of its own (contexts are not thread-safe).
 * Every local symbol becomes a hidden external one first, so code in one
 * object can reach functions and data of the other; functions are dealt to
 * partitions by size, data stays in the first.  `m` is not changed.
 */
export async function emitParallel(m: Module, target: TargetSpec, parts: number): Promise<Uint8Array[]> {
  if (parts <= 1) {
    using tm = makeTargetMachine(target);
    return [tm.emitObject(m)];
  }
  const work = m.clone();
  const owner = new Map<string, number>();
  let bitcode: Uint8Array;
  try {
    let anon = 0;
    const load = new Array<number>(parts).fill(0);
    const fns: { name: string; weight: number }[] = [];
    for (const v of [...work.functions(), ...work.globals()]) {
      if (v.isDeclaration() || v.name.startsWith('llvm.')) continue;
      if (!v.name) v.name = `kjit.anon.${anon++}`;
      if (v.linkage === Linkage.Internal || v.linkage === Linkage.Private) {
        v.linkage = Linkage.External;
        v.visibility = Visibility.Hidden;
      }
      if (v.isFunction()) fns.push({ name: v.name, weight: 1 + v.blockCount });
    }
    fns.sort((a, b) => b.weight - a.weight);
    for (const f of fns) {
      const p = load.indexOf(Math.min(...load));
      owner.set(f.name, p);
      load[p]! += f.weight;
    }
    bitcode = work.toBitcode();
  } finally {
    work.dispose();
  }
  const jobs: { ctx: Context; mod: Module; tm: TargetMachine }[] = [];
  try {
    for (let p = 0; p < parts; p++) {
      const ctx = Context.create();
      const mod = Module.parseBitcode(ctx, bitcode, `${m.name}#${p}`);
      jobs.push({ ctx, mod, tm: makeTargetMachine(target) });
      for (const fn of mod.functions()) {
        if (!fn.isDeclaration() && owner.get(fn.name) !== p) fn.linkage = Linkage.AvailableExternally;
      }
      if (p > 0) {
        for (const g of mod.globals()) {
          if (g.name.startsWith('llvm.')) g.erase();
          else if (!g.isDeclaration()) g.linkage = Linkage.AvailableExternally;
        }
      }
      mod.runPasses('elim-avail-extern', null);
    }
    return await Promise.all(jobs.map((j) => j.tm.emitObjectAsync(j.mod)));
  } finally {
    for (const j of jobs) {
      j.mod.dispose();
      j.tm.dispose();
      j.ctx.dispose();
    }
  }
}

/** A counting build of a compiled image: same optimized code plus counters. */
export function compileCounting(compiled: CompiledImage, sysctlVariables: ReadonlySet<string>): Uint8Array[] {
  const m = compiled.optimized.clone();
  try {
    instrumentCounts(m, sysctlVariables);
    using tm = makeTargetMachine(compiled.target);
    const code = tm.emitObject(m);
    return [...compiled.objects.slice(0, compiled.report.asmObjects), code];
  } finally {
    m.dispose();
  }
}
