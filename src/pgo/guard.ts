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
import { foldLoads } from '../kernel/specialize.js';
import type { Module, Value } from '../native/llvm.js';

/** Bytes of the patchable NOP at every boot function's entry (LLVM-KOFFI.md). */
export const PATCHABLE_ENTRY_BYTES = 5;

export interface FoldedSysctl {
  variable: string;
  value: string;
  loads: number;
}

/**
 * Fold `values` (variable -> value) into `fn` (the version, renamed from
 * `original`) and the bodies it may inline, and guard its entry.  Returns
 * the variables that had loads to fold (no guard when none had).
 */
export function specializeWithGuard(m: Module, fn: Value, original: string, values: ReadonlyMap<string, bigint>): FoldedSysctl[] {
  if (values.size === 0) return [];
  if (fn.isVarArg()) throw new KjitError(`${original} takes variable arguments; its calls cannot be forwarded to the generic code`, 'leave it unspecialized');
  const { loads } = foldLoads(m, values);
  const folded = [...values].filter(([name]) => (loads.get(name) ?? 0) > 0).map(([name, value]) => ({ variable: name, value: value.toString(), loads: loads.get(name)! }));
  if (folded.length === 0) return [];
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
  const boot = m.getFunction(original) ?? m.addFunction(original, fnType);
  const r = b.call(fnType, b.offsetPointer(boot, PATCHABLE_ENTRY_BYTES), fn.params());
  b.ret(fn.returnTypeString() === 'void' ? null : r);
  return folded;
}
