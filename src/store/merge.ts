/**
 * @fileoverview Merging stored boots into one profile, and deciding which
 * stored functions still describe an image's code (pure: no database).
 *
 * Staleness (DESIGN.md section 6: profiles are keyed by IR content hash):
 *   - same: the image has a function of the same name with the same IR hash;
 *   - shape: the name is gone or its IR changed, but the stored IR hash is
 *     that of exactly one other function of the image (after preferring one
 *     whose name differs only by LLVM's `.N` suffix), and no other stored
 *     function claims it: a renamed or moved function;
 *   - stale: anything else; its profile is never applied.
 * Code that is not IR of the image (`[native]`, `[jit]`: IR hash '') is
 * kept by name and counted neither way.
 *
 * Weights: boots newest first, boot k (0 = newest) weighs decay^k; merged
 * numbers are weighted sums.  Exact counts are summed the same way, then
 * rounded (branch weights are integers).
 */
import type { FunctionCounts, IndirectCallSite } from '../sampler/counts.js';

export interface StoredFunction {
  id: number;
  name: string;
  /** '' for code that is not IR of an image. */
  ir_hash: string;
}

export type Match =
  | { kind: 'same'; name: string }
  | { kind: 'shape'; name: string }
  | { kind: 'stale' }
  | { kind: 'unhashed'; name: string };

/** `list_del.239` -> `list_del`: LLVM's suffix for a local name that clashed at link time. */
export function baseName(name: string): string {
  return name.replace(/\.\d+$/, '');
}

/** How each stored function maps onto the image whose functions are `current` (name -> IR hash). */
export function matchFunctions(stored: readonly StoredFunction[], current: ReadonlyMap<string, string>): Map<number, Match> {
  const out = new Map<number, Match>();
  const namesByHash = new Map<string, string[]>();
  for (const [name, hash] of current) {
    const names = namesByHash.get(hash);
    if (names) names.push(name);
    else namesByHash.set(hash, [name]);
  }
  const claimed = new Set<string>();
  const rest: StoredFunction[] = [];
  for (const f of stored) {
    if (f.ir_hash === '') out.set(f.id, { kind: 'unhashed', name: f.name });
    else if (current.get(f.name) === f.ir_hash) {
      out.set(f.id, { kind: 'same', name: f.name });
      claimed.add(f.name);
    } else rest.push(f);
  }
  const tentative = new Map<number, string>();
  const claims = new Map<string, number>();
  for (const f of rest) {
    let candidates = (namesByHash.get(f.ir_hash) ?? []).filter((n) => !claimed.has(n));
    if (candidates.length > 1) candidates = candidates.filter((n) => baseName(n) === baseName(f.name));
    if (candidates.length !== 1) continue;
    tentative.set(f.id, candidates[0]!);
    claims.set(candidates[0]!, (claims.get(candidates[0]!) ?? 0) + 1);
  }
  for (const f of rest) {
    const to = tentative.get(f.id);
    out.set(f.id, to !== undefined && claims.get(to) === 1 ? { kind: 'shape', name: to } : { kind: 'stale' });
  }
  return out;
}

/** One boot's aggregates as read from the store, functions by stored id. */
export interface BootAggregates {
  id: number;
  samples: number;
  functions: { fid: number; self: number; total: number }[];
  edges: { caller: number; callee: number; samples: number }[];
  hotPaths: { chain: number[]; samples: number }[];
  counts: { fid: number; counts: FunctionCounts }[];
}

export interface MatchStats {
  /** Stored functions with IR (profiled in the boots merged). */
  functions_total: number;
  /** Applied: same name and IR, or by shape. */
  functions_matched: number;
  /** Of those, matched under another name (renamed or moved). */
  functions_matched_by_shape: number;
  functions_stale: number;
  /** Self samples of stored functions with IR, and of those matched (unweighted). */
  samples_total: number;
  samples_matched: number;
}

export interface MergedProfile {
  /** The boots merged, newest first, with their weights. */
  boots: { id: number; weight: number }[];
  /** Weighted samples of those boots. */
  samples: number;
  /** Weighted self and total samples, by the image's names. */
  functions: { function: string; self: number; total: number }[];
  edges: { caller: string; callee: string; samples: number }[];
  hotPaths: { chain: string[]; samples: number }[];
  /** Weighted, rounded exact counts, by the image's names (only matched functions). */
  counts: FunctionCounts[];
  matching: MatchStats;
}

export function emptyStats(): MatchStats {
  return { functions_total: 0, functions_matched: 0, functions_matched_by_shape: 0, functions_stale: 0, samples_total: 0, samples_matched: 0 };
}

/**
 * Merge `boots` (newest first) with weights decay^k.  `resolve` names a
 * stored function in the target (null: stale, never applied); without a
 * target image every function keeps its stored name.
 */
export function mergeBoots(
  boots: readonly BootAggregates[],
  functions: ReadonlyMap<number, StoredFunction>,
  matches: ReadonlyMap<number, Match> | null,
  decay: number,
): MergedProfile {
  const nameOf = (fid: number): string | null => {
    const f = functions.get(fid);
    if (!f) return null;
    if (!matches) return f.name;
    const m = matches.get(fid);
    return !m || m.kind === 'stale' ? null : m.name;
  };
  const weights = boots.map((b, k) => ({ id: b.id, weight: decay ** k }));
  const self = new Map<string, { self: number; total: number }>();
  const edges = new Map<string, { caller: string; callee: string; samples: number }>();
  const paths = new Map<string, { chain: string[]; samples: number }>();
  const counts = new Map<string, { c: FunctionCounts; w: number }[]>();
  const stats = emptyStats();
  const seen = new Set<number>();
  let samples = 0;
  boots.forEach((b, k) => {
    const w = weights[k]!.weight;
    samples += w * b.samples;
    for (const f of b.functions) {
      const stored = functions.get(f.fid);
      if (matches && stored && stored.ir_hash !== '') {
        const m = matches.get(f.fid);
        const applied = m !== undefined && m.kind !== 'stale';
        stats.samples_total += f.self;
        if (applied) stats.samples_matched += f.self;
        if (!seen.has(f.fid)) {
          seen.add(f.fid);
          stats.functions_total++;
          if (applied) stats.functions_matched++;
          else stats.functions_stale++;
          if (m?.kind === 'shape') stats.functions_matched_by_shape++;
        }
      }
      const name = nameOf(f.fid);
      if (name === null) continue;
      const acc = self.get(name) ?? { self: 0, total: 0 };
      acc.self += w * f.self;
      acc.total += w * f.total;
      self.set(name, acc);
    }
    for (const e of b.edges) {
      const caller = nameOf(e.caller);
      const callee = nameOf(e.callee);
      if (caller === null || callee === null) continue;
      const key = `${caller}\u0000${callee}`;
      const acc = edges.get(key) ?? { caller, callee, samples: 0 };
      acc.samples += w * e.samples;
      edges.set(key, acc);
    }
    for (const p of b.hotPaths) {
      const chain = p.chain.map(nameOf);
      if (chain.some((n) => n === null)) continue; /* a path through stale code is not this code's path */
      const key = chain.join('\u0000');
      const acc = paths.get(key) ?? { chain: chain as string[], samples: 0 };
      acc.samples += w * p.samples;
      paths.set(key, acc);
    }
    for (const c of b.counts) {
      const name = nameOf(c.fid);
      if (name === null) continue;
      counts.set(name, [...(counts.get(name) ?? []), { c: { ...c.counts, function: name }, w }]);
      if (matches && !seen.has(c.fid)) {
        /* counted, never sampled: still a function of the profile */
        seen.add(c.fid);
        stats.functions_total++;
        stats.functions_matched++;
        if (matches.get(c.fid)?.kind === 'shape') stats.functions_matched_by_shape++;
      }
    }
    if (matches) {
      for (const c of b.counts) {
        if (nameOf(c.fid) !== null || seen.has(c.fid)) continue;
        seen.add(c.fid);
        stats.functions_total++;
        stats.functions_stale++;
      }
    }
  });
  return {
    boots: weights,
    samples,
    functions: [...self].map(([name, v]) => ({ function: name, ...v })).sort((a, b) => b.self - a.self || b.total - a.total || (a.function < b.function ? -1 : 1)),
    edges: [...edges.values()].sort((a, b) => b.samples - a.samples),
    hotPaths: [...paths.values()].sort((a, b) => b.samples - a.samples),
    counts: [...counts.values()].map((list) => mergeCounts(list)).filter((c): c is FunctionCounts => c !== null),
    matching: stats,
  };
}

/**
 * Weighted sum of one function's counts (newest first).  Counts of another
 * shape than the newest's describe other sites and are left out.
 */
export function mergeCounts(list: readonly { c: FunctionCounts; w: number }[]): FunctionCounts | null {
  const newest = list[0];
  if (!newest) return null;
  const same = list.filter((x) => x.c.shape === newest.c.shape && x.c.branches.length === newest.c.branches.length && x.c.icalls.length === newest.c.icalls.length);
  const r = (x: number) => Math.round(x);
  const branches = newest.c.branches.map((succ, i) => succ.map((_, j) => r(same.reduce((s, x) => s + x.w * (x.c.branches[i]?.[j] ?? 0), 0))));
  const icalls: IndirectCallSite[] = newest.c.icalls.map((_, i) => {
    const targets = new Map<string, number>();
    let total = 0;
    for (const x of same) {
      const site = x.c.icalls[i]!;
      total += x.w * site.total;
      for (const t of site.targets) targets.set(t.function, (targets.get(t.function) ?? 0) + x.w * t.count);
    }
    return {
      total: r(total),
      targets: [...targets].map(([fn, count]) => ({ function: fn, count: r(count) })).sort((a, b) => b.count - a.count || (a.function < b.function ? -1 : 1)),
    };
  });
  return {
    function: newest.c.function,
    ir_hash: newest.c.ir_hash,
    shape: newest.c.shape,
    entry: r(same.reduce((s, x) => s + x.w * x.c.entry, 0)),
    branches,
    icalls,
    window: { ms: same.reduce((s, x) => s + x.c.window.ms, 0), ops: same.reduce((s, x) => s + x.c.window.ops, 0) },
  };
}

/** Two windows of one function in one boot (same IR): their counts added. */
export function addCounts(a: FunctionCounts, b: FunctionCounts): FunctionCounts {
  return mergeCounts([
    { c: b, w: 1 },
    { c: a, w: 1 },
  ])!;
}
