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
import { Context, Linkage, Module, type Value, Visibility } from '../native/llvm.js';
import type { VersionKind } from './versions.js';

/** What a unit is built from: the image as boot saw it (the compile server has its own copy). */
export interface UnitBase {
  pristineBitcode: Uint8Array;
  /** The pristine module, for lookups by name. */
  pristine: Module;
  mode: ModeSpec;
  config: BootConfig;
  target: TargetSpec;
}

export function unitBase(p: PreparedBoot): UnitBase {
  return { pristineBitcode: p.pristineBitcode(), pristine: p.image.pristine, mode: p.mode, config: p.config, target: p.compiled.target };
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
}

export interface BuiltUnit {
  object: Uint8Array;
  symbol: string;
  hitsSymbol: string | null;
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
      if (!g.isDeclaration() && g.isConstantGlobal && g.linkage !== Linkage.Internal) g.linkage = Linkage.AvailableExternally;
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
    const problem = m.verify();
    if (problem) throw new KjitError(`the version of ${req.fn} fails verification: ${problem.split('\n')[0]}`, 'report this as a kjit bug', 1);
    using tm = makeTargetMachine(p.target);
    m.runPasses(p.mode.pipeline, tm);
    const object = tm.emitObject(m);
    return { object, symbol, hitsSymbol, inlines: [...inlines], ms: performance.now() - t0 };
  } finally {
    m.dispose();
    ctx.dispose();
  }
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

