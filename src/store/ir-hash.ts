/**
 * @fileoverview The content hash of a function's IR: what profiles are keyed
 * by (DESIGN.md section 6), never an address or a name alone.  The hash is of
 * the function's printed definition with what does not describe its code
 * left out: its own name (so a renamed or moved function with the same body
 * hashes the same), attribute-group and metadata numbers (they depend on the
 * rest of the module).  Callee and global names stay: a call to another
 * function is different code.
 */
import { createHash } from 'node:crypto';
import type { Module, Value } from '../native/llvm.js';

/** Printed IR of `fn`, normalized as described above. */
export function normalizedFunctionText(fn: Value): string {
  return normalizeDefinition(fn.print(), fn.name);
}

/** A function's printed definition (`define ... }`), normalized as described above; `own` is its name. */
export function normalizeDefinition(text: string, own: string): string {
  return text
    .split('\n')
    .map((line) =>
      line
        .replace(/\s*![A-Za-z_.][\w.]* !\d+/g, '') /* metadata attachments (!dbg !12, !prof !7) */
        .replace(/\s#\d+/g, '') /* attribute groups */
        .replace(/;.*$/, '') /* comments (predecessor lists, attribute notes) */
        .trimEnd(),
    )
    .filter((line) => line.length > 0)
    .join('\n')
    .split(`@${own}(`)
    .join('@<self>(')
    .split(`@"${own}"(`)
    .join('@<self>(');
}

const sha = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 32);

export function functionIrHash(fn: Value): string {
  return sha(normalizedFunctionText(fn));
}

/**
 * IR hash of every defined function of `m`, by name.  The module is printed
 * once and cut into its definitions (in the module's order of functions):
 * printing each function on its own numbers the whole module again every
 * time (about 1 s for the reference kernel, against 0.1 s).  The text of a
 * definition is the same either way, but for the `; Function Attrs` comment
 * the normalization drops; if the cut does not find one definition per
 * defined function, each is printed on its own.
 */
export function functionIrHashes(m: Module): Map<string, string> {
  const defined = [...m.functions()].filter((f) => !f.isDeclaration());
  const lines = m.print().split('\n');
  const texts: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i]!.startsWith('define ')) continue;
    let j = i;
    while (j < lines.length && lines[j] !== '}') j++;
    texts.push(lines.slice(i, j + 1).join('\n'));
    i = j;
  }
  const out = new Map<string, string>();
  const aligned = texts.length === defined.length && defined.every((f, k) => texts[k]!.includes(`@${f.name}(`) || texts[k]!.includes(`@"${f.name}"(`));
  defined.forEach((f, k) => out.set(f.name, aligned ? sha(normalizeDefinition(texts[k]!, f.name)) : functionIrHash(f)));
  return out;
}
