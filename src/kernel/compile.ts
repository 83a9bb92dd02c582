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
import { extractUnit, isRuntimeUnit, unitOf, unitsOf } from './units.js';
import { DEFAULT_TIER_PARAMS, planFits, planTiers, type StoredUse, type TierCandidate, type TierParams } from './tiers.js';

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
  /** A tiered boot: the functions optimized at boot, how many got the fast tier, and the lazy ones (`lazy[i]`: the
   * function of lazy slot i, ir/runtime/lazy.c; `lazyUnits[i]`: its source file). */
  tiers?: { hot: string[]; fast: number; lazy: string[]; lazyUnits: string[]; why: string };
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
  /** A tiered boot with lazy functions: the specialized IR their units are cut from (src/rejit/lazy.ts). */
  lazySource(): Uint8Array | null;
  /** A tiered boot compiled now: what its plan was made from (kept with the cached objects, for planFits). */
  candidates?: TierCandidate[];
  dispose(): void;
}

export interface CompileOptions {
  /** Use the compiled-object cache (default: on unless KJIT_CACHE=0). */
  cache?: boolean;
  /** Give every function a 5-byte patchable entry, so versions can be installed (src/rejit). */
  patchable?: boolean;
  /** Drop the image's assembly instead of emitting it (a re-JIT unit: the routines are already live). */
  dropAssembly?: boolean;
  /** A tiered boot (mode.bootTiers): what the stored profile says ran, and the policy (src/kernel/tiers.ts). */
  tiers?: { profile: ReadonlyMap<string, StoredUse> | null; params: TierParams; roots: readonly string[] };
}

/** The compiled-object cache key of a boot: every input of the result (cache.ts). */
export function cacheKeyFor(image: Image, mode: ModeSpec, config: BootConfig, target: TargetSpec, patchable: boolean, tiers: CompileOptions['tiers']): string {
  return cacheKey({
    patchable,
    image: image.hash,
    runtime: image.runtimeHash,
    mode,
    target,
    llvm: LIBLLVM_PATH,
    values: config.values.map((v) => [v.sysctl.variable, v.value.toString(), v.bootFixed, v.selector]),
    absent: config.absentDevices.map((a) => [a.selector, a.value.toString(), a.impl]),
    /* not the profile: a cached plan is checked against it (planFits) */
    tiers: tiers ? { params: tiers.params, roots: tiers.roots } : null,
  });
}

function lazyCompiled(
  objects: Uint8Array[],
  report: CompileReport,
  target: TargetSpec,
  cache: CompiledImage['cache'],
  load: () => Module,
  lazySource: () => Uint8Array | null = () => null,
  candidates?: TierCandidate[],
): CompiledImage {
  let module: Module | null = null;
  return {
    objects,
    report,
    target,
    cache,
    lazySource,
    ...(candidates ? { candidates } : {}),
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
  const key = cacheKeyFor(image, mode, config, target, options.patchable === true, options.tiers);
  let fits: { fits: boolean; why: string } | null = null;
  if (useCache) {
    const hit = readEntry(key);
    const meta = hit?.meta as (CompileReport & { candidates?: TierCandidate[] }) | undefined;
    /* a tiered boot's cached plan must still fit the stored profile */
    fits =
      !meta?.tiers || !options.tiers
        ? null
        : planFits({ candidates: meta.candidates ?? [], hot: meta.tiers.hot, lazy: meta.tiers.lazy }, options.tiers.profile, options.tiers.params);
    if (hit && meta && fits?.fits !== false) {
      const { candidates: _, ...cachedReport } = meta;
      const report = {
        ...cachedReport,
        ...(cachedReport.tiers && fits ? { tiers: { ...cachedReport.tiers, why: `${cachedReport.tiers.why} (cached boot: ${fits.why})` } } : {}),
        ms: { specialize: 0, optimize: 0, codegen: 0, total: performance.now() - t0 },
      };
      const ctx = image.context;
      return lazyCompiled(
        hit.objects,
        report,
        target,
        'hit',
        () => Module.parseBitcode(ctx, readFileSync(hit.bitcodePath), `${image.name} (${mode.name}, cached)`),
        () => hit.lazySource(),
      );
    }
  }
  const compiled = await compileFresh(image, mode, config, target, t0, options);
  if (fits && !fits.fits && compiled.report.tiers) compiled.report.tiers.why += ` (the cached boot did not fit: ${fits.why})`;
  if (useCache) {
    const meta = compiled.candidates ? { ...compiled.report, candidates: compiled.candidates } : compiled.report;
    writeEntry(key, compiled.objects, meta, compiled.optimized.toBitcode(), compiled.lazySource());
  }
  compiled.cache = useCache ? 'miss' : 'off';
  return compiled;
}


/** kjit's target machine for code in the code region: PIC, small code model. */
export function makeTargetMachine(t: TargetSpec, optLevel: 0 | 1 | 2 | 3 = 2): TargetMachine {
  return TargetMachine.create({
    triple: TRIPLE,
    cpu: t.cpu,
    features: [t.features, ...(t.mitigations ? ['+retpoline-indirect-calls', '+retpoline-indirect-branches'] : [])]
      .filter(Boolean)
      .join(','),
    optLevel,
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
  /** Functions that must keep boot code of their own: the runtime's, and those the image's assembly names. */
  pinned: (name: string) => boolean;
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
  return { asmObject, before, removedReasons, fold, folded, promoted, pinned };
}

/** The fast tier's IR passes: registers for locals, local clean-up, no inlining (~10x faster than O2 on a large image). */
export const FAST_PIPELINE = 'function(sroa,early-cse,instcombine<no-verify-fixpoint>,simplifycfg)';

interface TierModules {
  /** The hot functions, optimized (the caller emits and disposes it); null if none. */
  hot: Module | null;
  /** The lazy functions' boot code (ir/runtime/lazy.c), as an object; null if none. */
  stubs: Uint8Array | null;
  lazySource: Uint8Array | null;
  candidates: TierCandidate[];
  report: NonNullable<CompileReport['tiers']>;
}

/**
 * A tiered boot (src/kernel/tiers.ts), in place on the specialized module
 * `m`: the hot functions are moved out into a module of their own, optimized
 * with the mode's pipeline (the rest of the image there for inlining only);
 * the lazy ones become stubs; `m` keeps the fast tier and gets its passes.
 */
function tierModules(m: Module, sp: Specialized, tm: TargetMachine, options: CompileOptions, pipeline: string): TierModules {
  const t = options.tiers ?? { profile: null, params: DEFAULT_TIER_PARAMS, roots: [] };
  const roots = new Set(t.roots);
  /* the runtime stays eager (it is what waits, and runs in signal handlers), and so do varargs
   * functions: re-JIT units (src/rejit/image-unit.ts) do not build them */
  const candidates = [...m.functions()]
    .filter((f) => !f.isDeclaration())
    .map((f) => ({ name: f.name, blocks: f.blockCount, pinned: sp.pinned(f.name) || roots.has(f.name) || f.name === '' || f.isVarArg() || isRuntimeUnit(unitOf(f)) }));
  const plan = planTiers(candidates, t.profile, t.params);
  /* the specialized IR before any tier touches it: lazy units are cut from it */
  const lazySource = plan.lazy.length ? m.toBitcode() : null;
  const lazyUnits = plan.lazy.map((name) => unitOf(m.getFunction(name)!));
  let hot: Module | null = null;
  if (plan.hot.length) {
    hot = m.clone();
    const isHot = new Set(plan.hot);
    for (const g of hot.globals()) {
      if (g.name.startsWith('llvm.')) g.erase();
      /* data lives in the fast tier's object; private constants (no symbol to link to) are copied */
      else if (!g.isDeclaration() && !(g.isConstantGlobal && g.linkage === Linkage.Private)) g.linkage = Linkage.AvailableExternally;
    }
    /* other functions: bodies only of what the hot code calls directly, for inlining;
     * optimizing every body of the image for a few hot functions would cost as much as a full boot */
    const inlinable = callees(hot, isHot, 1);
    for (const f of hot.functions()) if (!f.isDeclaration() && !isHot.has(f.name) && !inlinable.has(f.name)) f.linkage = Linkage.AvailableExternally;
    hot.runPasses('elim-avail-extern', null);
    for (const f of hot.functions()) if (!f.isDeclaration() && !isHot.has(f.name)) f.linkage = Linkage.AvailableExternally;
    hot.inlineAsm = '';
    hot.runPasses(`${pipeline},elim-avail-extern`, tm);
  }
  const elsewhere = new Set([...plan.hot, ...plan.lazy]);
  for (const f of m.functions()) if (!f.isDeclaration() && elsewhere.has(f.name)) f.linkage = Linkage.AvailableExternally;
  m.runPasses(`elim-avail-extern,${FAST_PIPELINE}`, tm);
  let stubs: Uint8Array | null = null;
  if (plan.lazy.length) {
    const am = m.context.createModule('kjit-lazy-stubs');
    try {
      am.triple = TRIPLE;
      am.dataLayout = m.dataLayout;
      am.inlineAsm = lazyStubsAsm(plan.lazy);
      using atm = makeTargetMachine(ASM_TARGET);
      stubs = atm.emitObject(am);
    } finally {
      am.dispose();
    }
  }
  return { hot, stubs, lazySource, candidates, report: { hot: plan.hot, fast: plan.fast.length, lazy: plan.lazy, lazyUnits, why: plan.why } };
}

/** Functions defined in `m` that `from` call directly, up to `depth` calls deep (not `from` themselves). */
function callees(m: Module, from: ReadonlySet<string>, depth: number): Set<string> {
  const out = new Set<string>();
  let frontier = [...from];
  for (let d = 0; d < depth && frontier.length; d++) {
    const next: string[] = [];
    for (const name of frontier) {
      const f = m.getFunction(name);
      if (!f || f.isDeclaration()) continue;
      for (const inst of f.instructions()) {
        if (!inst.isCall()) continue;
        const c = inst.calledFunction();
        if (!c || c.isDeclaration() || from.has(c.name) || out.has(c.name)) continue;
        out.add(c.name);
        next.push(c.name);
      }
    }
    frontier = next;
  }
  return out;
}

/** A symbol as the assembler reads it. */
function asmSymbol(name: string): string {
  return /^[A-Za-z_.$][\w.$]*$/.test(name) ? name : `"${name.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/**
 * The boot code of lazy functions (ir/runtime/lazy.c): the patchable entry
 * (the same NOP LLVM emits, so the one redirection mechanism installs the
 * compiled code over it), then the function's lazy slot in %r11d and a jump
 * to the trampoline.
 */
export function lazyStubsAsm(names: readonly string[]): string {
  const out = ['.text'];
  names.forEach((name, i) => {
    const s = asmSymbol(name);
    out.push(
      `.globl ${s}`,
      `.hidden ${s}`,
      `.type ${s},@function`,
      '.p2align 4',
      `${s}:`,
      '  .byte 0x0f, 0x1f, 0x44, 0x00, 0x08',
      `  movl $${i}, %r11d`,
      '  jmp kjit_lazy_trampoline',
      `.size ${s}, .-${s}`,
    );
  });
  return `${out.join('\n')}\n`;
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
    const sp = specialize(m, mode, config, target, options);
    const { asmObject, before, removedReasons, fold, folded, promoted } = sp;
    const tSpecialized = performance.now();

    using tm = makeTargetMachine(target);
    let optimized: Module;
    let units = 1;
    let tiers: TierModules | null = null;
    if (mode.bootTiers) {
      tiers = tierModules(m, sp, tm, options, mode.pipeline);
      optimized = m;
    } else if (mode.wholeImage) {
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
    const code: Uint8Array[] = [];
    if (tiers) {
      if (tiers.stubs) code.push(tiers.stubs);
      /* one thread each: splitting a module for two threads costs more than fast code generation saves */
      if (tiers.hot) {
        try {
          code.push(...(await emitParallel(tiers.hot, target, 1)));
        } finally {
          tiers.hot.dispose();
        }
      }
      code.push(...(await emitParallel(optimized, target, 1, 0)));
    } else code.push(...(await emitParallel(optimized, target, CODEGEN_THREADS)));
    const tEmitted = performance.now();

    const after = definedFunctionNames(optimized);
    /* a tiered boot's other tiers: the hot module's functions, and the stubs */
    for (const name of [...(tiers?.report.hot ?? []), ...(tiers?.report.lazy ?? [])]) after.add(name);
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
        ...(tiers ? { tiers: tiers.report } : {}),
        ms: {
          specialize: tSpecialized - t0,
          optimize: tOptimized - tSpecialized,
          codegen: tEmitted - tOptimized,
          total: tEmitted - t0,
        },
      }, target, 'off', () => optimized, () => tiers?.lazySource ?? null, tiers?.candidates);
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
export async function emitParallel(m: Module, target: TargetSpec, parts: number, optLevel: 0 | 1 | 2 | 3 = 2): Promise<Uint8Array[]> {
  if (parts <= 1) {
    using tm = makeTargetMachine(target, optLevel);
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
      jobs.push({ ctx, mod, tm: makeTargetMachine(target, optLevel) });
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
