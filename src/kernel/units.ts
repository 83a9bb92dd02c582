/**
 * @fileoverview Compilation units: which source file each function and
 * global of an image came from.  The build tags them (function attribute
 * "kjit-unit", global metadata !kjit.unit); `stock` uses the tags to compile
 * the image one source file at a time, as a distribution kernel is built
 * (no cross-file inlining), before linking the optimized files together.
 */
import type { Module, Value } from '../native/llvm.js';
import { Linkage } from '../native/llvm.js';

export const UNIT_ATTR = 'kjit-unit';
export const UNIT_MD = 'kjit.unit';
/** Unit of definitions that carry no tag (a foreign image's own code, glue). */
export const UNTAGGED_UNIT = '(image)';

/** Units of the kjit runtime (build-ir.ts tags them runtime/FILE) and of the glue loadImage generates. */
export function isRuntimeUnit(unit: string): boolean {
  return unit.startsWith('runtime/') || unit === 'kjit/glue';
}

export function tagUnit(m: Module, unit: string): void {
  for (const fn of m.functions()) {
    if (!fn.isDeclaration()) fn.setStringAttribute(UNIT_ATTR, unit);
  }
  for (const g of m.globals()) {
    if (!g.isDeclaration()) g.setMetadataString(UNIT_MD, unit);
  }
}

export function unitOf(v: Value): string {
  if (v.isFunction()) return v.getStringAttribute(UNIT_ATTR) ?? UNTAGGED_UNIT;
  return v.getMetadataString(UNIT_MD) ?? UNTAGGED_UNIT;
}

/** Units with at least one definition, in first-seen order. */
export function unitsOf(m: Module): string[] {
  const seen = new Set<string>();
  for (const fn of m.functions()) if (!fn.isDeclaration()) seen.add(unitOf(fn));
  for (const g of m.globals()) if (!g.isDeclaration() && !g.name.startsWith('llvm.')) seen.add(unitOf(g));
  return [...seen];
}

const LOCAL = new Set<number>([Linkage.Internal, Linkage.Private]);

/**
 * A copy of `m` that defines only the functions and globals of `unit`; every
 * other definition becomes an external declaration, and other units' local
 * symbols (which `unit` cannot reference) are dropped.  The caller owns the
 * result.
 *
 * Bodies are removed by LLVM itself: foreign definitions are marked
 * available_externally and the `elim-avail-extern` pass turns them into
 * declarations (deleting a body instruction by instruction through the C API
 * would cost minutes for a whole kernel).
 */
export function extractUnit(m: Module, unit: string): Module {
  const u = m.clone();
  const foreignLocals: { name: string; isFunction: boolean; unit: string }[] = [];
  for (const fn of u.functions()) {
    if (fn.isDeclaration()) continue;
    const owner = unitOf(fn);
    if (owner === unit) continue;
    if (LOCAL.has(fn.linkage)) foreignLocals.push({ name: fn.name, isFunction: true, unit: owner });
    fn.linkage = Linkage.AvailableExternally;
  }
  for (const g of u.globals()) {
    if (g.name.startsWith('llvm.')) {
      /* llvm.used and friends list symbols of every unit */
      g.erase();
      continue;
    }
    if (g.isDeclaration()) continue;
    const owner = unitOf(g);
    if (owner === unit) continue;
    if (LOCAL.has(g.linkage)) foreignLocals.push({ name: g.name, isFunction: false, unit: owner });
    g.linkage = Linkage.AvailableExternally;
  }
  /* Bodies and initializers go; globaldce then drops what nothing references
   * any more (including dead constant expressions over other units' strings). */
  u.runPasses('elim-avail-extern,globaldce', null);
  for (const l of foreignLocals) {
    const v = l.isFunction ? u.getFunction(l.name) : u.getGlobal(l.name);
    if (!v || !l.name) continue;
    if (v.hasUses()) {
      u.dispose();
      throw new Error(`unit ${unit} references ${l.name}, a local symbol of unit ${l.unit}`);
    }
    v.erase();
  }
  return u;
}
