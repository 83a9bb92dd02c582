/**
 * @fileoverview The inline map of boot code: which functions' bodies a
 * function's live code may contain.  kjit generates no debug information,
 * so a sample inside inlined code cannot be split from the function it was
 * inlined into; the profile names, for its top functions, what their code
 * may contain: the callees their pristine IR calls and their boot code no
 * longer does (inlined, or folded away), transitively.  Versions carry the
 * same list themselves (CodeVersion.inlines).
 */
import type { Module, Value } from '../native/llvm.js';

function calledNames(fn: Value): Set<string> {
  const out = new Set<string>();
  for (const i of fn.instructions()) {
    if (!i.isCall()) continue;
    const callee = i.calledFunction()?.name;
    if (callee && !callee.startsWith('llvm.')) out.add(callee);
  }
  return out;
}

/** Functions whose bodies `fn`'s optimized code may contain (sorted). */
export function inlinedInto(pristine: Module, optimized: Module, fn: string): string[] {
  const live = optimized.getFunction(fn);
  const source = pristine.getFunction(fn);
  if (!live || live.isDeclaration() || !source || source.isDeclaration()) return [];
  const stillCalled = calledNames(live);
  const found = new Set<string>();
  const work = [source];
  while (work.length) {
    const f = work.pop()!;
    for (const callee of calledNames(f)) {
      if (callee === fn || found.has(callee) || stillCalled.has(callee)) continue;
      const body = pristine.getFunction(callee);
      if (!body || body.isDeclaration()) continue;
      found.add(callee);
      work.push(body);
    }
  }
  return [...found].sort();
}
