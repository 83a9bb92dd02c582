/**
 * @fileoverview Building a version of one function of a booted image: a
 * re-JIT unit.  It starts, like boot did, from the image's pristine IR and
 * goes through exactly boot's specialization (so it agrees with the live
 * code on folded values, promoted names and target), then keeps only the
 * function, renamed to a symbol of its own, plus the bodies of the functions
 * it calls (to depth 2) as available_externally so the optimizer may inline
 * them.  Everything else is a declaration that links to the live image.
 */
import { KjitError } from '../errors.js';
import type { BootConfig } from '../kernel/bootconfig.js';
import { makeTargetMachine, specialize } from '../kernel/compile.js';
import type { ModeSpec } from '../kernel/modes.js';
import type { PreparedBoot } from '../kernel/run.js';
import type { TargetSpec } from '../kernel/specialize.js';
import { Context, Linkage, Module, type Type, type Value, Visibility } from '../native/llvm.js';
import { specializeWithGuard, type FoldedSysctl } from '../pgo/guard.js';
import { type AppliedProfile, attachCounts, type SummaryNumbers, summaryMetadata } from '../pgo/metadata.js';
import { profileSites, siteShape } from '../pgo/sites.js';
import type { FunctionCounts } from '../sampler/counts.js';
import type { ImageUnitRequest } from './image-unit.js';
import { functionIrHash } from '../store/ir-hash.js';
import type { VersionKind } from './versions.js';

/** What a unit is built from: the image as boot saw it (the compile server has its own copy). */
export interface UnitBase {
  pristineBitcode: Uint8Array;
  /** The pristine module, for lookups by name. */
  pristine: Module;
  mode: ModeSpec;
  config: BootConfig;
  target: TargetSpec;
  /** Functions boot compiled away: they have no code of their own to fall back to. */
  removed?: ReadonlySet<string>;
  /** `pristineBitcode` is already specialized as boot specialized it (a tiered boot's lazy source). */
  specialized?: boolean;
}

export function unitBase(p: PreparedBoot): UnitBase {
  return {
    pristineBitcode: p.pristineBitcode(),
    pristine: p.image.pristine,
    mode: p.mode,
    config: p.config,
    target: p.compiled.target,
    removed: new Set(p.compiled.report.removed.map((r) => r.name)),
  };
}

export interface UnitRequest {
  fn: string;
  kind: VersionKind;
  /** Unique among this instance's versions. */
  id: number;
  /** Count entries into the version in a global `<symbol>.hits`. */
  countEntries?: boolean;
  /** Callee depth whose bodies the optimizer may inline. */
  inlineDepth?: number;
  /**
   * Bitcode to build from (default: the image's pristine IR); a live patch
   * passes the pristine IR with patched bodies.  What the image does not
   * have (a patch's helpers and constants) is copied into the version as
   * local code and data; a patch's mutable state lives in its state unit
   * (buildStateUnit) and is linked to, never defined here.
   */
  source?: Uint8Array;
  /**
   * Instrument the version: 'counts' counts entries, every conditional
   * branch's and switch's successors, and records indirect-call targets
   * (an instrumentation window, src/sampler/instrument.ts); 'probe' counts
   * calls and records their latencies (a live probe, src/sampler/probe.ts).
   * The data is in the version's own object, under BuiltUnit.data.symbol.
   */
  instrument?: 'counts' | 'probe';
  /**
   * Profile-guided optimization: the function's exact counts become `!prof`
   * metadata (src/pgo/metadata.ts) under a module ProfileSummary, so LLVM's
   * PGO-aware passes act; counts for other IR (another ir_hash, another
   * shape) are never applied (BuiltUnit.profile says why).
   */
  profile?: { counts: FunctionCounts; summary: SummaryNumbers };
  /** Run-time sysctl variables to fold to these values, behind an entry guard (src/pgo/guard.ts). */
  specialize?: Record<string, string>;
  /** The pass pipeline (default: the mode's). */
  pipeline?: string;
  /** Return the unit's IR before and after optimization (tests, `kjit explain`). */
  keepIr?: boolean;
  /** A tier of many functions instead (src/rejit/image-unit.ts): the compile server builds it with buildImageUnit. */
  image?: ImageUnitRequest;
}

/** Where the counts of a 'counts' version are, in i64 words of its data. */
export interface CountsLayout {
  /** Word 0 is the entry count; then each branch site's successors, in order. */
  branches: number[];
  /** Then one KJIT_VP_WORDS table per indirect call, in order. */
  icalls: number;
  shape: string;
}

export interface UnitData {
  symbol: string;
  words: number;
  counts?: CountsLayout;
}

export interface BuiltUnit {
  object: Uint8Array;
  symbol: string;
  hitsSymbol: string | null;
  /** The instrumentation's data (UnitRequest.instrument). */
  data: UnitData | null;
  /** What became of UnitRequest.profile. */
  profile?: AppliedProfile;
  /** The sysctls folded behind the guard (UnitRequest.specialize), with the loads folded. */
  specialized?: FoldedSysctl[];
  /** IR instructions in the function before optimization (the compile-time model's size). */
  irInstructions: number;
  /** UnitRequest.keepIr: the unit's module before and after optimization. */
  ir?: { before: string; after: string };
  /** Functions whose bodies the version may contain (the inline map). */
  inlines: string[];
  ms: number;
}

export function versionSymbol(fn: string, id: number): string {
  return `${fn}.kjit.v${id}`;
}

function directCallees(fn: Value): Set<string> {
  const out = new Set<string>();
  for (const inst of fn.instructions()) {
    if (!inst.isCall()) continue;
    const callee = inst.calledFunction();
    if (callee && !callee.isDeclaration() && !callee.name.startsWith('llvm.')) out.add(callee.name);
  }
  return out;
}

/** Functions reachable from `root` by direct calls within `depth` steps. */
function calleesWithin(m: Module, root: Value, depth: number): Set<string> {
  const seen = new Set<string>();
  let frontier = [root];
  for (let d = 0; d < depth && frontier.length; d++) {
    const next: Value[] = [];
    for (const f of frontier) {
      for (const name of directCallees(f)) {
        if (seen.has(name) || name === root.name) continue;
        seen.add(name);
        const callee = m.getFunction(name);
        if (callee) next.push(callee);
      }
    }
    frontier = next;
  }
  return seen;
}

export function buildUnit(p: UnitBase, req: UnitRequest): BuiltUnit {
  const t0 = performance.now();
  /* A context of its own, disposed with the unit: constants and metadata a
   * context uniques are never freed while it lives, so building every
   * version in the image's context would grow memory with each one. */
  const ctx = Context.create();
  const m = Module.parseBitcode(ctx, req.source ?? p.pristineBitcode, `${req.fn}.kjit.unit`);
  try {
    specialize(m, p.mode, p.config, p.target, { dropAssembly: true });
    const fn = m.getFunction(req.fn);
    if (!fn || fn.isDeclaration()) {
      throw new KjitError(`the image defines no function '${req.fn}' (or boot removed it)`, 'name a function of the running kernel');
    }
    const inlines = calleesWithin(m, fn, req.inlineDepth ?? 2);
    /* the recorded targets of indirect calls: promoted to direct calls, their bodies may be inlined */
    for (const site of req.profile?.counts.icalls ?? []) {
      for (const t of site.targets) {
        const target = m.getFunction(t.function);
        if (target && !target.isDeclaration()) inlines.add(t.function);
      }
    }
    /* Code and constants the image does not have come from a patch: each
     * version gets its own local copy (two versions may not both define a
     * symbol).  Everything else links to the live image. */
    const pristine = p.pristine;
    const local = (v: Value, isFunction: boolean) =>
      !v.isDeclaration() && !(isFunction ? pristine.getFunction(v.name) : pristine.getGlobal(v.name));
    /* 1. everything but the function and its callees becomes a declaration */
    for (const f of m.functions()) {
      if (f.isDeclaration() || f.name === req.fn) continue;
      if (local(f, true)) f.linkage = Linkage.Internal;
      else if (!inlines.has(f.name)) f.linkage = Linkage.AvailableExternally;
    }
    for (const g of m.globals()) {
      if (g.name.startsWith('llvm.')) g.erase();
      else if (g.isConstantGlobal && local(g, false)) g.linkage = Linkage.Internal;
      else if (!g.isDeclaration() && !g.isConstantGlobal) g.linkage = Linkage.AvailableExternally;
    }
    m.runPasses('elim-avail-extern', null);
    /* 2. the callees' bodies and constant data (operations tables: calls
     * through them fold to direct calls as in boot) are there for the
     * optimizer, never emitted: the live copies stay in use */
    for (const name of inlines) {
      const f = m.getFunction(name);
      if (f && !f.isDeclaration() && !local(f, true)) f.linkage = Linkage.AvailableExternally;
    }
    for (const g of m.globals()) {
      /* private constants (string literals) have no symbol in the live image: the version keeps its own copy */
      if (!g.isDeclaration() && g.isConstantGlobal && g.linkage !== Linkage.Internal && g.linkage !== Linkage.Private) g.linkage = Linkage.AvailableExternally;
    }
    /* 3. the version itself, under its own symbol */
    const symbol = versionSymbol(req.fn, req.id);
    fn.name = symbol;
    fn.linkage = Linkage.External;
    fn.visibility = Visibility.Hidden;
    fn.removeStringAttribute('patchable-function-entry');
    let hitsSymbol: string | null = null;
    if (req.countEntries) {
      hitsSymbol = `${symbol}.hits`;
      const i64 = m.context.int64Type();
      const hits = m.addGlobal(i64, hitsSymbol);
      hits.initializer = i64.constInt(0n);
      hits.visibility = Visibility.Hidden;
      using b = m.createBuilder();
      const first = fn.instructions().next().value as Value;
      b.incrementBefore(first, hits, 0);
    }
    const data = req.instrument ? instrument(m, fn, symbol, req.instrument) : null;
    let profile: AppliedProfile | undefined;
    if (req.profile) {
      const pristineFn = p.pristine.getFunction(req.fn);
      const hash = pristineFn ? functionIrHash(pristineFn) : '';
      if (req.profile.counts.ir_hash && req.profile.counts.ir_hash !== hash) {
        profile = { applied: false, reason: `stale: the profile is of other IR (hash ${req.profile.counts.ir_hash.slice(0, 12)}, the image has ${hash.slice(0, 12)})`, branches: 0, icalls: 0, valueProfiled: 0 };
      } else {
        profile = attachCounts(m, fn, req.profile.counts);
        if (profile.applied) m.addModuleFlag('ProfileSummary', summaryMetadata(req.profile.summary));
      }
    }
    const specialized = req.specialize
      ? specializeWithGuard(m, fn, req.fn, new Map(Object.entries(req.specialize).map(([k, v]) => [k, BigInt(v)])), (name) => !p.removed?.has(name))
      : undefined;
    let irInstructions = 0;
    for (const _ of fn.instructions()) irInstructions++;
    const problem = m.verify();
    if (problem) throw new KjitError(`the version of ${req.fn} fails verification: ${problem.split('\n')[0]}`, 'report this as a kjit bug', 1);
    using tm = makeTargetMachine(p.target);
    const irBefore = req.keepIr ? m.print() : '';
    m.runPasses(req.pipeline ?? p.mode.pipeline, tm);
    const ir = req.keepIr ? { before: irBefore, after: m.print() } : undefined;
    const object = tm.emitObject(m);
    return {
      object,
      symbol,
      hitsSymbol,
      data,
      inlines: [...inlines],
      ms: performance.now() - t0,
      irInstructions,
      ...(ir ? { ir } : {}),
      ...(profile ? { profile } : {}),
      ...(specialized ? { specialized } : {}),
    };
  } finally {
    m.dispose();
    ctx.dispose();
  }
}

/** Mirrors ir/runtime/kjit_probe.h (checked against kjit_probe_layout at run time). */
export const PROBE_LAYOUT = { vpTargets: 8, vpWords: 2 + 2 * 8, probeHeadWords: 3, latBuckets: 512 } as const;

/**
 * Add the instrumentation to `fn` (the version, already renamed to
 * `symbol`), before any optimization: the optimizer then keeps the counts
 * exact while it optimizes around them (they are memory every unknown call
 * may read, so they are not held in registers across calls that may switch
 * kernel tasks).
 */
export function instrument(m: Module, fn: Value, symbol: string, kind: 'counts' | 'probe'): UnitData {
  const ctx = m.context;
  const i64 = ctx.int64Type();
  const ptr = ctx.ptrType();
  using b = m.createBuilder();
  const entry = fn.blocks().next().value!.instructions().next().value as Value;
  const declare = (name: string, ret: Type, params: Type[]) => {
    const type = ctx.functionType(ret, params);
    return { fn: m.getFunction(name) ?? m.addFunction(name, type), type };
  };
  const dataGlobal = (name: string, words: number) => {
    const g = m.addGlobal(ctx.arrayType(i64, words), name);
    g.initializer = ctx.arrayType(i64, words).constNull();
    g.visibility = Visibility.Hidden;
    return g;
  };
  if (kind === 'probe') {
    const words = PROBE_LAYOUT.probeHeadWords + PROBE_LAYOUT.latBuckets;
    const name = `${symbol}.probe`;
    const probe = dataGlobal(name, words);
    const now = declare('kjit_probe_now', i64, []);
    const record = declare('kjit_probe_record', ctx.voidType(), [ptr, i64]);
    const returns = [...fn.instructions()].filter((i) => i.isReturn());
    const mustTail = [...fn.instructions()].some((i) => i.isMustTailCall());
    if (mustTail) throw new KjitError(`${fn.name} ends in a musttail call; a probe cannot time it`, 'probe one of its callers instead');
    const t0 = b.positionBefore(entry).call(now.type, now.fn, []);
    for (const ret of returns) b.positionBefore(ret).call(record.type, record.fn, [probe, t0]);
    return { symbol: name, words };
  }
  const sites = profileSites(fn);
  const branchWords = sites.branches.reduce((n, s) => n + s.successors, 0);
  const words = 1 + branchWords + sites.icalls.length * PROBE_LAYOUT.vpWords;
  const name = `${symbol}.counts`;
  const counts = dataGlobal(name, words);
  b.positionBefore(entry).incrementElement(counts, i64.constInt(0n));
  let at = 1;
  for (const site of sites.branches) {
    b.positionBefore(site.inst);
    const cond = site.inst.condition();
    let index: Value;
    if (site.kind === 'br') {
      index = b.select(cond, i64.constInt(BigInt(at)), i64.constInt(BigInt(at + 1)));
    } else {
      index = i64.constInt(BigInt(at)); /* the default */
      site.inst.switchCaseValues().forEach((v, k) => {
        index = b.select(b.icmpEq(cond, v), i64.constInt(BigInt(at + 1 + k)), index);
      });
    }
    b.incrementElement(counts, index);
    at += site.successors;
  }
  const record = declare('kjit_vp_record', ctx.voidType(), [ptr, ptr]);
  for (const call of sites.icalls) {
    b.positionBefore(call);
    b.call(record.type, record.fn, [b.elementAddress(counts, at), call.calledValue()!]);
    at += PROBE_LAYOUT.vpWords;
  }
  const layout = { branches: sites.branches.map((s) => s.successors), icalls: sites.icalls.length };
  return { symbol: name, words, counts: { ...layout, shape: siteShape(sites) } };
}

/**
 * A patch's state unit: the mutable globals a patch brings (its "shadow"
 * state: counters, new fields kept beside live structures), defined once in
 * an object of their own, so every version built from the patch, and every
 * later rebuild of them, links to the same storage, which lives exactly as
 * long as the patch.  `patch` is the patch's own bitcode; `names` its state.
 */
export function buildStateUnit(target: TargetSpec, patch: Uint8Array, names: readonly string[]): Uint8Array {
  const ctx = Context.create();
  const m = Module.parseBitcode(ctx, patch, 'patch.state');
  try {
    const keep = new Set(names);
    for (const f of m.functions()) if (!f.isDeclaration()) f.linkage = Linkage.AvailableExternally;
    for (const g of m.globals()) {
      if (keep.has(g.name)) {
        g.linkage = Linkage.External;
        g.visibility = Visibility.Hidden;
      } else if (!g.isDeclaration()) {
        g.linkage = g.isConstantGlobal ? Linkage.Internal : Linkage.AvailableExternally;
      }
    }
    m.runPasses('elim-avail-extern,globaldce', null);
    using tm = makeTargetMachine(target);
    return tm.emitObject(m);
  } finally {
    m.dispose();
    ctx.dispose();
  }
}

