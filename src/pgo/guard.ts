/**
 * @fileoverview Run-time specialization with a guard.  In a version built
 * for the current values of some run-time sysctls, every load of them
 * (in the function and in the callee bodies it may inline) is folded to
 * the value, and the function starts with a guard that rereads them: if
 * any changed, the call goes to the function's boot code instead (its
 * entry + 5, past the patchable NOP that now jumps here), which reads them
 * as usual.  So the folded code is never run for a value it was not built
 * for, whoever writes the sysctl, the host or the kernel itself; a write
 * through kjit's control channel also puts the generic code back first
 * (de-specialization, src/control/service.ts), because a call already past
 * the guard keeps the folded value until it returns.
 */
import { KjitError } from '../errors.js';
import type { Module, Value } from '../native/llvm.js';

/** Bytes of the patchable NOP at every boot function's entry (LLVM-KOFFI.md). */
export const PATCHABLE_ENTRY_BYTES = 5;

export interface FoldedSysctl {
  variable: string;
  value: string;
  loads: number;
}

/**
 * Fold `values` (variable -> value) in the functions `may` allows, and put
 * a guard at the entry of each function that had a load folded: it rereads
 * the variables and, if any changed, calls the function's boot code
 * (`bootOf(fn)` + 5) with the same arguments instead.  A guarded callee
 * inlined into a caller brings its guard along, so folded code never runs
 * for other values, wherever the optimizer puts it.  Returns, per function
 * (by name), what was folded in it.
 */
export function foldWithGuards(
  m: Module,
  values: ReadonlyMap<string, bigint>,
  may: (fn: Value) => boolean,
  bootOf: (fn: Value) => Value,
): Map<string, FoldedSysctl[]> {
  const per = new Map<string, { fn: Value; folded: Map<string, FoldedSysctl> }>();
  for (const [name, value] of values) {
    const g = m.getGlobal(name);
    if (!g) continue;
    for (const user of [...g.users()]) {
      if (!user.isLoad() || user.loadPointer()?.name !== name || !user.type().isInteger()) continue;
      const fn = user.parentFunction();
      if (!may(fn)) continue;
      user.replaceAllUsesWith(user.type().constInt(value));
      user.erase();
      const e = per.get(fn.name) ?? { fn, folded: new Map<string, FoldedSysctl>() };
      const f = e.folded.get(name) ?? { variable: name, value: value.toString(), loads: 0 };
      f.loads++;
      e.folded.set(name, f);
      per.set(fn.name, e);
    }
  }
  const out = new Map<string, FoldedSysctl[]>();
  for (const [name, { fn, folded }] of per) {
    addGuard(m, fn, bootOf(fn), [...folded.values()]);
    out.set(name, [...folded.values()]);
  }
  return out;
}

/** The entry guard of `fn`: `folded` still hold their values, or the call goes to `boot` + 5. */
function addGuard(m: Module, fn: Value, boot: Value, folded: readonly FoldedSysctl[]): void {
  if (fn.isVarArg()) throw new KjitError(`${fn.name} takes variable arguments; its calls cannot be forwarded to the generic code`, 'leave it unspecialized');
  const ctx = m.context;
  const oldEntry = fn.blocks().next().value as Value;
  const guard = fn.prependBlock('kjit.guard', ctx);
  const generic = fn.appendBlock('kjit.generic', ctx);
  using b = m.createBuilder();
  /* static allocas stay in the entry block, or they would become dynamic */
  b.positionAtEnd(guard);
  for (const inst of [...oldEntry.instructions()]) if (inst.isAlloca()) b.move(inst);
  let ok: Value | null = null;
  for (const f of folded) {
    const g = m.getGlobal(f.variable)!;
    const type = g.valueType();
    const same = b.icmpEq(b.load(type, g), type.constInt(BigInt(f.value)));
    ok = ok ? b.and(ok, same) : same;
  }
  b.condBr(ok!, oldEntry, generic);
  b.positionAtEnd(generic);
  const fnType = fn.valueType();
  const r = b.call(fnType, b.offsetPointer(boot, PATCHABLE_ENTRY_BYTES), fn.params());
  b.ret(fn.returnTypeString() === 'void' ? null : r);
}

/**
 * The single-function form: fold `values` into `fn` (the version, renamed
 * from `original`) and the callee bodies it may inline that still have boot
 * code (`live`), each guarded.  Returns what was folded, summed over them.
 */
export function specializeWithGuard(
  m: Module,
  fn: Value,
  original: string,
  values: ReadonlyMap<string, bigint>,
  live: (name: string) => boolean,
): FoldedSysctl[] {
  if (values.size === 0) return [];
  const bootOf = (f: Value) => (f.name === fn.name ? (m.getFunction(original) ?? m.addFunction(original, fn.valueType())) : f);
  const may = (f: Value) => f.name === fn.name || (f.isDeclaration() === false && live(f.name) && !f.isVarArg());
  const per = foldWithGuards(m, values, may, bootOf);
  const total = new Map<string, FoldedSysctl>();
  for (const list of per.values()) {
    for (const f of list) {
      const t = total.get(f.variable) ?? { ...f, loads: 0 };
      t.loads += f.loads;
      total.set(f.variable, t);
    }
  }
  return [...total.values()];
}
