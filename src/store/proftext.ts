/**
 * @fileoverview Exact counts as LLVM's text instrumentation profile (what
 * `llvm-profdata merge --text` writes and `llvm-profdata merge` reads), and
 * back (pure).
 *
 * One record per function:
 *   - name: the function's name; Func Hash: the first 60 bits of its IR hash;
 *   - counters: the entry count, then each branch site's successors in IR
 *     order (br: true, false; switch: default, case 1, ...), then each
 *     indirect call's total: kjit's per-site layout (src/pgo/sites.ts), not
 *     the counters clang's -fprofile-generate places, so clang's
 *     -fprofile-use cannot apply these (its CFG hash differs) — the header
 *     says `:ir` and `:entry_first` because counter 0 is the entry count;
 *   - value sites (IPVK_IndirectCallTarget): each indirect call's targets.
 * The indexed .profdata format keeps a target only as the MD5 of its name,
 * and names it again only if a record of that name exists: every target
 * that is not itself a record gets a record with hash 0 and one zero
 * counter, which import skips.
 *
 * A `# kjit {...}` comment before a record's hash carries what the format
 * has no place for (the whole IR hash, the shape, successors per site, the
 * window).  llvm-profdata drops comments: a profile that went through it is
 * decoded with the layout the store knows for that function's IR hash.
 */
import type { FunctionCounts } from '../sampler/counts.js';

export interface CountsLayout {
  ir_hash: string;
  shape: string;
  /** Successors per branch site. */
  branches: number[];
  icalls: number;
}

export function layoutOf(c: FunctionCounts): CountsLayout {
  return { ir_hash: c.ir_hash, shape: c.shape, branches: c.branches.map((b) => b.length), icalls: c.icalls.length };
}

/**
 * The profile's Func Hash: the IR hash's first 60 bits, as an unsigned
 * decimal.  LLVM reserves bits 60 to 63 of a function hash (bit 60 marks a
 * context-sensitive record, which llvm-profdata drops from a profile that is
 * not one): they are zero.
 */
export function funcHash(irHash: string): string {
  return (BigInt(`0x${irHash.slice(0, 16).padEnd(16, '0')}`) & 0x0fff_ffff_ffff_ffffn).toString();
}

const EXTERNAL = '** External Symbol **';
const UNKNOWN = '[unknown]';

export function toProftext(counts: readonly FunctionCounts[]): string {
  const out = ['# kjit exact counts: counters = entry, branch successors per site, indirect-call totals (kjit site layout, not clang\'s)', ':ir', ':entry_first'];
  const named = new Set(counts.map((c) => c.function));
  const targets = new Set<string>();
  for (const c of [...counts].sort((a, b) => (a.function < b.function ? -1 : a.function > b.function ? 1 : 0))) {
    const r = (x: number) => Math.max(0, Math.round(x));
    const counters = [c.entry, ...c.branches.flat(), ...c.icalls.map((s) => s.total)].map(r);
    const meta = { ir_hash: c.ir_hash, shape: c.shape, branches: c.branches.map((b) => b.length), icalls: c.icalls.length, window: c.window };
    out.push(c.function, `# kjit ${JSON.stringify(meta)}`, '# Func Hash:', funcHash(c.ir_hash), '# Num Counters:', String(counters.length), '# Counter Values:', ...counters.map(String));
    if (c.icalls.length) {
      out.push('# Num Value Kinds:', '1', '# ValueKind = IPVK_IndirectCallTarget:', '0', '# NumValueSites:', String(c.icalls.length));
      for (const site of c.icalls) {
        const kept = site.targets.filter((t) => r(t.count) > 0);
        out.push(String(kept.length), ...kept.map((t) => `${t.function}:${r(t.count)}`));
        for (const t of kept) if (!named.has(t.function)) targets.add(t.function);
      }
    }
    out.push('');
  }
  for (const t of [...targets].sort()) out.push(t, '# a call target only (kjit): no counts', '# Func Hash:', '0', '# Num Counters:', '1', '# Counter Values:', '0', '');
  return `${out.join('\n')}\n`;
}

/** A record as the text format has it. */
export interface ProftextRecord {
  name: string;
  hash: string;
  counters: number[];
  /** Indirect-call sites: targets and counts. */
  icallSites: { function: string; count: number }[][];
  /** From a `# kjit` comment, when the text still has it. */
  layout: (CountsLayout & { window?: { ms: number; ops: number } }) | null;
}

export class ProftextError extends Error {}

export function parseProftext(text: string): ProftextRecord[] {
  const records: ProftextRecord[] = [];
  const lines = text.split('\n');
  let i = 0;
  let meta: ProftextRecord['layout'] = null;
  /* the next line that is not a comment (a kjit comment is remembered for the record it precedes) */
  const next = (): string | null => {
    while (i < lines.length) {
      const line = lines[i++]!.trimEnd();
      if (line.startsWith('# kjit {')) {
        try {
          meta = JSON.parse(line.slice('# kjit '.length)) as ProftextRecord['layout'];
        } catch {
          throw new ProftextError(`line ${i}: a kjit comment that is not JSON`);
        }
        continue;
      }
      if (line === '' || line.startsWith('#')) continue;
      return line;
    }
    return null;
  };
  const int = (what: string): number => {
    const line = next();
    if (line === null || !/^\d+$/.test(line)) throw new ProftextError(`line ${i}: expected ${what}, found ${line === null ? 'the end' : `'${line}'`}`);
    return Number(line);
  };
  let pending: string | null = next();
  while (pending !== null && pending.startsWith(':')) {
    if (pending === ':temporal_prof_traces') throw new ProftextError('temporal profile traces are not counts kjit reads');
    pending = next();
  }
  while (pending !== null) {
    const name = pending;
    meta = null;
    const hashLine = next();
    if (hashLine === null || !/^\d+$/.test(hashLine)) throw new ProftextError(`line ${i}: function ${name} has no hash`);
    const layout: ProftextRecord['layout'] = meta;
    const n = int('the number of counters');
    const counters: number[] = [];
    for (let k = 0; k < n; k++) counters.push(int(`counter ${k + 1} of ${n}`));
    const icallSites: ProftextRecord['icallSites'] = [];
    pending = next();
    if (pending !== null && /^\d+$/.test(pending)) {
      const kinds = Number(pending);
      for (let k = 0; k < kinds; k++) {
        const kind = int('a value kind');
        const sites = int('the number of value sites');
        for (let s = 0; s < sites; s++) {
          const values = int('the number of values of a site');
          const site: { function: string; count: number }[] = [];
          for (let v = 0; v < values; v++) {
            const line = next();
            const at = line?.lastIndexOf(':') ?? -1;
            if (line === null || at <= 0 || !/^\d+$/.test(line.slice(at + 1))) throw new ProftextError(`line ${i}: expected target:count in ${name}`);
            const target = line.slice(0, at);
            site.push({ function: target === EXTERNAL ? UNKNOWN : target, count: Number(line.slice(at + 1)) });
          }
          if (kind === 0) icallSites.push(site);
        }
      }
      pending = next();
    }
    records.push({ name, hash: hashLine, counters, icallSites, layout });
  }
  return records;
}

/** A placeholder that only names a call target (toProftext). */
export function isTargetOnly(r: ProftextRecord): boolean {
  return r.hash === '0' && r.counters.every((c) => c === 0) && r.icallSites.length === 0;
}

/** The record's counts given its layout, or why they cannot be decoded. */
export function decodeRecord(r: ProftextRecord, layout: CountsLayout, window = { ms: 0, ops: 0 }): FunctionCounts | string {
  if (funcHash(layout.ir_hash) !== r.hash) return `its hash ${r.hash} is not that of IR ${layout.ir_hash}`;
  const want = 1 + layout.branches.reduce((s, b) => s + b, 0) + layout.icalls;
  if (r.counters.length !== want) return `it has ${r.counters.length} counters, its layout ${want}`;
  if (r.icallSites.length !== 0 && r.icallSites.length !== layout.icalls) return `it has ${r.icallSites.length} indirect-call sites, its layout ${layout.icalls}`;
  let at = 1;
  const branches = layout.branches.map((n) => {
    const row = r.counters.slice(at, at + n);
    at += n;
    return row;
  });
  const icalls = Array.from({ length: layout.icalls }, (_, k) => ({
    total: r.counters[at + k]!,
    targets: [...(r.icallSites[k] ?? [])].sort((a, b) => b.count - a.count || (a.function < b.function ? -1 : 1)),
  }));
  return { function: r.name, ir_hash: layout.ir_hash, shape: layout.shape, entry: r.counters[0]!, branches, icalls, window };
}
