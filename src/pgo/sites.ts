/**
 * @fileoverview The profile sites of a function: its conditional branches
 * and switches (each with its successors) and its indirect calls, numbered
 * in IR order.  Instrumentation (src/rejit/unit.ts) counts them and PGO
 * attaches metadata to them; both number them on the same IR (the pristine
 * function after boot's specialization, before any optimization), so site k
 * of a count is site k of the code it is applied to, and `shape` guards it.
 */
import type { Value } from '../native/llvm.js';

export interface BranchSite {
  kind: 'br' | 'switch';
  inst: Value;
  /** br: 2 (true, false); switch: 1 + cases (default first). */
  successors: number;
}

export interface Sites {
  branches: BranchSite[];
  icalls: Value[];
}

export function profileSites(fn: Value): Sites {
  const branches: BranchSite[] = [];
  const icalls: Value[] = [];
  for (const block of fn.blocks()) {
    for (const inst of block.instructions()) {
      if (inst.isConditionalBranch()) branches.push({ kind: 'br', inst, successors: 2 });
      else if (inst.isSwitch()) branches.push({ kind: 'switch', inst, successors: inst.successorCount });
      else if (inst.isIndirectCall()) icalls.push(inst);
    }
  }
  return { branches, icalls };
}

/** What the counts of a function must match to be applied: successors per branch site, and indirect calls. */
export function siteShape(s: { branches: readonly { successors: number }[] | readonly number[][]; icalls: readonly unknown[] }): string {
  const succ = s.branches.map((b) => (Array.isArray(b) ? b.length : (b as { successors: number }).successors));
  return `b${succ.join('.')}|i${s.icalls.length}`;
}
