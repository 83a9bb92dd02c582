/**
 * @fileoverview Boot specialization: IR-to-IR transformations that make an
 * image's code fit the machine and configuration it boots on.  Each is a
 * small function over a module that reports what it did (the boot report
 * prints it).  They never remove state: globals a later re-JIT unit may link
 * to always survive.
 */
import type { Module, Value } from '../native/llvm.js';
import { Linkage, Visibility } from '../native/llvm.js';

/** Indirect-call protection of the `stock` build (-mretpoline); every mode keeps it. */
export const MITIGATION_FEATURES = ['+retpoline-indirect-calls', '+retpoline-indirect-branches'];

export interface TargetSpec {
  cpu: string;
  /** Comma-separated LLVM feature string without mitigations. */
  features: string;
  mitigations: boolean;
}

export function featureString(t: TargetSpec): string {
  const parts = t.features ? t.features.split(',').filter(Boolean) : [];
  if (t.mitigations) parts.push(...MITIGATION_FEATURES);
  return parts.join(',');
}

/** Point every function at a CPU: LLVM's backends read these attributes per function. */
export function setTarget(m: Module, t: TargetSpec): number {
  const features = featureString(t);
  let n = 0;
  for (const fn of m.functions()) {
    if (fn.isDeclaration()) continue;
    fn.setStringAttribute('target-cpu', t.cpu);
    fn.setStringAttribute('tune-cpu', t.cpu === 'x86-64' ? 'generic' : t.cpu);
    fn.setStringAttribute('target-features', features);
    n++;
  }
  return n;
}

/**
 * Keep the frame pointer in every function ("frame-pointer"="all"): the
 * sampler walks call chains by frame pointers, and grace periods scan kernel
 * stacks by them.  The reference kernel and the runtime are compiled with
 * them; a foreign image compiled without them (clang's default at -O2) gets
 * them here, before any mode compiles it.  Returns how many functions
 * changed.
 */
export function keepFramePointers(m: Module): number {
  let n = 0;
  for (const fn of m.functions()) {
    if (fn.isDeclaration() || fn.getStringAttribute('frame-pointer') === 'all') continue;
    fn.setStringAttribute('frame-pointer', 'all');
    n++;
  }
  return n;
}

/** LLVM's entry NOP length for a patchable function entry: room for one jmp rel32. */
export const PATCHABLE_ENTRY_BYTES = 5;

/** Start every defined function with a 5-byte NOP that a jmp rel32 can replace (src/rejit). */
export function setPatchableEntries(m: Module): number {
  let n = 0;
  for (const fn of m.functions()) {
    if (fn.isDeclaration()) continue;
    fn.setStringAttribute('patchable-function-entry', String(PATCHABLE_ENTRY_BYTES));
    n++;
  }
  return n;
}

export interface PromotionReport {
  functions: number;
  globals: number;
}

/**
 * Give every internal function and global a hidden external symbol with its
 * (already unique) name, so a later unit built from the pristine IR links to
 * this live copy instead of duplicating state.  dso_local: all of kjit's code
 * and data are in one region, so references need no GOT.
 */
export function promoteInternals(m: Module, which: 'all' | 'globals' = 'all'): PromotionReport {
  const report = { functions: 0, globals: 0 };
  const promote = (v: Value) => {
    v.linkage = Linkage.External;
    v.visibility = Visibility.Hidden; /* hidden implies dso_local */
  };
  if (which === 'all') {
    for (const fn of m.functions()) {
      if (!fn.isDeclaration() && fn.linkage === Linkage.Internal) {
        promote(fn);
        report.functions++;
      }
    }
  }
  for (const g of m.globals()) {
    if (!g.isDeclaration() && g.linkage === Linkage.Internal) {
      promote(g);
      report.globals++;
    }
  }
  return report;
}

export interface FoldReport {
  /** variable name -> loads replaced by its value */
  loads: Map<string, number>;
}

/**
 * Replace every load of each variable by its boot-time value.  Stores stay
 * (the variable remains real state, readable by the host and by code that is
 * not specialized), so the value must be fixed for the life of the boot.
 */
export function foldLoads(m: Module, values: ReadonlyMap<string, bigint>): FoldReport {
  const loads = new Map<string, number>();
  for (const [name, value] of values) {
    const g = m.getGlobal(name);
    if (!g) continue;
    let n = 0;
    for (const user of [...g.users()]) {
      if (!user.isLoad() || user.loadPointer()?.name !== name) continue;
      const type = user.type();
      if (!type.isInteger()) continue;
      user.replaceAllUsesWith(type.constInt(value));
      user.erase();
      n++;
    }
    loads.set(name, n);
  }
  return { loads };
}

/** Zero the initializer of each operations table, so that the functions only
 * it referenced become dead (the table itself, as state, stays). */
export function detachImplementations(m: Module, tables: readonly string[]): string[] {
  const done: string[] = [];
  for (const name of tables) {
    const g = m.getGlobal(name);
    const init = g?.initializer;
    if (!g || !init) continue;
    g.initializer = init.type().constNull();
    done.push(name);
  }
  return done;
}

/**
 * Give every defined, externally visible function that `pinned` does not
 * name internal linkage (so dead ones can be deleted).  Returns the names it
 * changed, for restoreExternal().
 */
export function internalizeFunctions(m: Module, pinned: (name: string) => boolean): Set<string> {
  const changed = new Set<string>();
  for (const fn of m.functions()) {
    if (fn.isDeclaration() || pinned(fn.name)) continue;
    const l = fn.linkage;
    if (l === Linkage.Internal || l === Linkage.Private) continue;
    fn.linkage = Linkage.Internal;
    changed.add(fn.name);
  }
  return changed;
}

/** Undo internalizeFunctions() for the functions that survived. */
export function restoreExternal(m: Module, names: ReadonlySet<string>): void {
  for (const name of names) {
    const fn = m.getFunction(name);
    if (fn && !fn.isDeclaration()) fn.linkage = Linkage.External;
  }
}

export function definedFunctionNames(m: Module): Set<string> {
  const out = new Set<string>();
  for (const fn of m.functions()) if (!fn.isDeclaration()) out.add(fn.name);
  return out;
}

/**
 * Counting build: before every indirect call and every load of a sysctl
 * variable, increment the matching control-block counter.  Applied to the
 * optimized module, so it counts what the optimized code executes.
 */
export function instrumentCounts(
  m: Module,
  sysctlVariables: ReadonlySet<string>,
): { indirectCalls: number; sysctlLoads: number } {
  const cb = m.getGlobal('kjit_cb');
  if (!cb) throw new Error('counting build: the image has no kjit_cb (runtime not linked)');
  const offsets = controlBlockOffsets(m);
  const indirectAt = offsets.get('count_indirect_calls');
  const loadAt = offsets.get('count_sysctl_loads');
  if (indirectAt === undefined || loadAt === undefined) throw new Error('counting build: the control block has no counters');
  const sites = { indirectCalls: 0, sysctlLoads: 0 };
  using builder = m.createBuilder();
  for (const fn of m.functions()) {
    if (fn.isDeclaration()) continue;
    for (const inst of fn.instructions()) {
      if (inst.isIndirectCall()) {
        builder.incrementBefore(inst, cb, indirectAt);
        sites.indirectCalls++;
      } else if (inst.isLoad()) {
        const p = inst.loadPointer();
        if (p && sysctlVariables.has(p.name)) {
          builder.incrementBefore(inst, cb, loadAt);
          sites.sysctlLoads++;
        }
      }
    }
  }
  return sites;
}

/** Byte offset of each control-block field, from the runtime's exported layout table. */
export function controlBlockOffsets(m: Module): Map<string, number> {
  const out = new Map<string, number>();
  const n = m.getGlobal('kjit_cb_nfields')?.initializer?.constIntValue() ?? 0n;
  const table = m.getGlobal('kjit_cb_layout')?.initializer;
  if (!table) return out;
  for (let i = 0; i < Number(n); i++) {
    const row = table.aggregateElement(i);
    const namePtr = row?.aggregateElement(0);
    const name = namePtr?.isGlobalVariable() ? namePtr.initializer?.constString()?.replace(/\0+$/, '') : null;
    const offset = row?.aggregateElement(1)?.constIntValue();
    if (name && offset !== null && offset !== undefined) out.set(name, Number(offset));
  }
  return out;
}
