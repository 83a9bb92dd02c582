/**
 * @fileoverview A tier of the whole image: one re-JIT unit with a version of
 * every function in `functions`, built from the pristine IR through boot's
 * specialization like any unit (src/rejit/unit.ts), optimized together, so
 * calls between them are direct calls between the new versions and the
 * optimizer sees the whole hot path (as boot and an offline PGO build do).
 * Everything else links to the live image: other functions are there for
 * inlining only (available_externally), mutable data is declared.
 *
 * What must keep pointing at boot code does: every use of a function other
 * than a direct call (its address stored in kernel data, compared by an
 * indirect-call promotion, in a table) refers to the function's boot symbol,
 * so no address of code that will be freed one day ever reaches kernel
 * state.  Direct calls are pointed at the new versions after indirect-call
 * promotion and before the optimizer, so promoted calls can be inlined too.
 */
import { KjitError } from '../errors.js';
import { makeTargetMachine, specialize } from '../kernel/compile.js';
import { Context, Linkage, Module, type Value, Visibility } from '../native/llvm.js';
import { foldWithGuards, type FoldedSysctl } from '../pgo/guard.js';
import { attachCounts, type SummaryNumbers, summaryMetadata } from '../pgo/metadata.js';
import type { FunctionCounts } from '../sampler/counts.js';
import { functionIrHashes } from '../store/ir-hash.js';
import { instrument, type UnitBase, type UnitData, versionSymbol } from './unit.js';

export interface ImageUnitRequest {
  /** Unique among the instance's versions: names the tier's symbols. */
  id: number;
  /** Functions to give new versions (each must have boot code: a patchable entry). */
  functions: string[];
  /** Count every function's entries, branches and indirect calls (an image instrumentation window). */
  instrument?: boolean;
  /** Exact counts by function, and the summary they make: attached where the IR is the counted one. */
  profile?: { counts: FunctionCounts[]; summary: SummaryNumbers };
  /** Run-time sysctl variables to fold, behind guards (src/pgo/guard.ts). */
  specialize?: Record<string, string>;
  /** The pass pipeline after indirect-call promotion (default: the mode's). */
  pipeline?: string;
  /** Code generation's optimization level (default 2; 0: fast instruction selection, the fast tier's). */
  codegenOptLevel?: 0 | 1 | 2 | 3;
}

export interface ImageUnitVersion {
  fn: string;
  symbol: string;
  data?: UnitData;
  /** What was folded in it (specialization). */
  specialized?: FoldedSysctl[];
  /** Whether its counts were attached (false: none, stale, or another shape). */
  profiled: boolean;
}

export interface BuiltImageUnit {
  object: Uint8Array;
  versions: ImageUnitVersion[];
  profile: { applied: number; stale: number; missing: number };
  irInstructions: number;
  ms: number;
}

export function buildImageUnit(p: UnitBase, req: ImageUnitRequest): BuiltImageUnit {
  const t0 = performance.now();
  const ctx = Context.create();
  const m = Module.parseBitcode(ctx, p.pristineBitcode, `kjit.tier${req.id}`);
  try {
    if (p.specialized) m.inlineAsm = ''; /* the routines are live already */
    else specialize(m, p.mode, p.config, p.target, { dropAssembly: true });
    const want = new Set(req.functions);
    const candidates: Value[] = [];
    for (const f of m.functions()) {
      if (f.isDeclaration() || !want.has(f.name)) continue;
      if (p.removed?.has(f.name)) continue;
      if (f.isVarArg()) continue;
      candidates.push(f);
    }
    if (candidates.length === 0) throw new KjitError('none of the functions asked for has boot code to replace', 'name functions of the running kernel');
    const isCandidate = new Set(candidates.map((f) => f.name));
    const original = new Map<string, Value>(); /* new name -> boot symbol */

    /* 1. data: mutable globals link to the live image; constants stay for folding */
    for (const g of m.globals()) {
      if (g.name.startsWith('llvm.')) g.erase();
      else if (!g.isDeclaration() && !g.isConstantGlobal) g.linkage = Linkage.AvailableExternally;
    }
    m.runPasses('elim-avail-extern', null);
    /* private constants (string literals) have no symbol in the live image: the tier keeps its own copy */
    for (const g of m.globals()) {
      if (!g.isDeclaration() && g.isConstantGlobal && g.linkage !== Linkage.Private) g.linkage = Linkage.AvailableExternally;
    }
    /* 2. other functions: for inlining only (those boot removed are kept, as
     * available_externally code no call can reach once inlined) */
    for (const f of m.functions()) if (!f.isDeclaration() && !isCandidate.has(f.name)) f.linkage = Linkage.AvailableExternally;

    /* 3. counts and profile, on the IR as boot specialized it */
    const hashes = req.profile ? functionIrHashes(p.pristine) : null;
    const byName = new Map((req.profile?.counts ?? []).map((c) => [c.function, c]));
    const profile = { applied: 0, stale: 0, missing: 0 };
    const profiled = new Set<string>();
    for (const f of candidates) {
      if (!req.profile) break;
      const c = byName.get(f.name);
      if (!c) {
        profile.missing++;
        continue;
      }
      if (c.ir_hash && c.ir_hash !== hashes!.get(f.name)) {
        profile.stale++;
        continue;
      }
      if (attachCounts(m, f, c).applied) {
        profile.applied++;
        profiled.add(f.name);
      } else profile.stale++;
    }
    if (req.profile && profile.applied) m.addModuleFlag('ProfileSummary', summaryMetadata(req.profile.summary));

    /* 4. the versions under their own symbols; every use but a direct call keeps the boot symbol */
    const versions: ImageUnitVersion[] = [];
    for (const f of candidates) {
      const name = f.name;
      const symbol = versionSymbol(name, req.id);
      f.name = symbol;
      f.linkage = Linkage.External;
      f.visibility = Visibility.Hidden;
      f.removeStringAttribute('patchable-function-entry');
      const boot = m.addFunction(name, f.valueType());
      f.replaceAllUsesWith(boot);
      original.set(symbol, boot);
      versions.push({ fn: name, symbol, profiled: profiled.has(name) });
    }
    const bootOf = (f: Value) => original.get(f.name) ?? f;

    /* 5. instrumentation, or specialization */
    let irInstructions = 0;
    for (const v of versions) {
      const f = m.getFunction(v.symbol)!;
      if (req.instrument) v.data = instrument(m, f, v.symbol, 'counts');
      for (const _ of f.instructions()) irInstructions++;
    }
    if (req.specialize && !req.instrument) {
      const values = new Map(Object.entries(req.specialize).map(([k, v]) => [k, BigInt(v)]));
      const may = (f: Value) => !f.isVarArg() && (original.has(f.name) || (!f.isDeclaration() && !p.removed?.has(f.name)));
      const folded = foldWithGuards(m, values, may, bootOf);
      for (const v of versions) {
        const s = folded.get(v.symbol);
        if (s) v.specialized = s;
      }
    }
    const problem = m.verify();
    if (problem) throw new KjitError(`the tier of ${versions.length} functions fails verification: ${problem.split('\n')[0]}`, 'report this as a kjit bug', 1);

    /* 6. promotion of hot indirect calls compares with boot symbols; then
     * direct calls to a function with a new version call it directly */
    using tm = makeTargetMachine(p.target, req.codegenOptLevel ?? 2);
    if (req.profile) m.runPasses('pgo-icall-prom', tm);
    const newOf = new Map([...original].map(([symbol, boot]) => [boot.name, m.getFunction(symbol)!]));
    for (const f of m.functions()) {
      if (f.isDeclaration()) continue;
      for (const inst of f.instructions()) {
        if (!inst.isCall()) continue;
        const callee = inst.calledFunction();
        const target = callee ? newOf.get(callee.name) : undefined;
        if (target && callee!.isDeclaration()) inst.setCallee(target);
      }
    }
    m.runPasses(req.pipeline ?? p.mode.pipeline, tm);
    const object = tm.emitObject(m);
    return { object, versions, profile, irInstructions, ms: performance.now() - t0 };
  } finally {
    m.dispose();
    ctx.dispose();
  }
}
