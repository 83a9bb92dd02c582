/**
 * @fileoverview Exact counts to LLVM profile metadata, on a re-JIT unit
 * before it is optimized (DESIGN.md section 6), so LLVM's own PGO-aware
 * passes act on them: `!prof branch_weights` on every counted branch and
 * switch, `!prof VP` (value profile) on every indirect call with recorded
 * targets (pgo-icall-prom turns the hot target into a guarded direct call
 * that can be inlined), `!prof function_entry_count` on the function, and a
 * module ProfileSummary so the inliner and the block placement know what is
 * hot.  The arithmetic (summary, weights, GUIDs) is pure and tested.
 */
import { createHash } from 'node:crypto';

import type { MetadataItem, Module, Value } from '../native/llvm.js';
import type { FunctionCounts } from '../sampler/counts.js';
import { profileSites, siteShape } from './sites.js';

/**
 * The GUID LLVM gives a function of external linkage in value profiles:
 * the low 64 bits, little-endian, of the MD5 of its name (LLVM-KOFFI.md).
 */
export function guidOf(name: string): bigint {
  return createHash('md5').update(name).digest().readBigUInt64LE(0);
}

/** Branch weights are i32: scale a row down (keeping ratios and zeros) when a count does not fit. */
export function scaleWeights(row: readonly number[]): number[] {
  const max = Math.max(0, ...row);
  const limit = 0xffff_ffff;
  if (max <= limit) return row.map((c) => Math.round(c));
  const f = limit / max;
  return row.map((c) => (c === 0 ? 0 : Math.max(1, Math.round(c * f))));
}

/** What a ProfileSummary holds (ProfileSummary.h), computed like LLVM's builder from every count known. */
export interface SummaryNumbers {
  totalCount: bigint;
  maxCount: bigint;
  maxInternalCount: bigint;
  maxFunctionCount: bigint;
  numCounts: number;
  numFunctions: number;
  /** [cutoff (per million), minimum count, number of counts] */
  detailed: [number, bigint, number][];
}

export const SUMMARY_CUTOFFS = [10000, 100000, 200000, 300000, 400000, 500000, 600000, 700000, 800000, 900000, 950000, 990000, 999000, 999900, 999990, 999999];

/**
 * The summary of a profile made of `profiles`: block counts are the entry
 * counts and every branch successor's count (what instrumentation measured),
 * the detailed summary the smallest count needed to cover each cutoff of the
 * total (LLVM's ProfileSummaryBuilder does the same on its counters).
 */
export function summarize(profiles: readonly FunctionCounts[]): SummaryNumbers {
  const counts: number[] = [];
  let maxFunctionCount = 0;
  let maxInternal = 0;
  for (const p of profiles) {
    counts.push(p.entry);
    maxFunctionCount = Math.max(maxFunctionCount, p.entry);
    for (const row of p.branches) {
      for (const c of row) {
        counts.push(c);
        maxInternal = Math.max(maxInternal, c);
      }
    }
  }
  counts.sort((a, b) => b - a);
  const total = counts.reduce((s, c) => s + c, 0);
  const detailed: [number, bigint, number][] = [];
  let i = 0;
  let covered = 0;
  for (const cutoff of SUMMARY_CUTOFFS) {
    const need = (total * cutoff) / 1e6;
    while (i < counts.length && covered < need) covered += counts[i++]!;
    if (total === 0) break;
    detailed.push([cutoff, BigInt(counts[Math.max(0, i - 1)] ?? 0), i]);
  }
  return {
    totalCount: BigInt(total),
    maxCount: BigInt(counts[0] ?? 0),
    maxInternalCount: BigInt(maxInternal),
    maxFunctionCount: BigInt(maxFunctionCount),
    numCounts: counts.length,
    numFunctions: profiles.length,
    detailed,
  };
}

/** The ProfileSummary module flag's value. */
export function summaryMetadata(s: SummaryNumbers): MetadataItem[] {
  return [
    ['ProfileFormat', 'InstrProf'],
    ['TotalCount', s.totalCount],
    ['MaxCount', s.maxCount],
    ['MaxInternalCount', s.maxInternalCount],
    ['MaxFunctionCount', s.maxFunctionCount],
    ['NumCounts', BigInt(s.numCounts)],
    ['NumFunctions', BigInt(s.numFunctions)],
    ['DetailedSummary', s.detailed.map(([cutoff, min, n]) => [cutoff, min, n])],
  ];
}

export interface AppliedProfile {
  applied: boolean;
  /** Why not, when not applied. */
  reason: string;
  branches: number;
  icalls: number;
  /** Indirect calls that got value-profile metadata (targets pgo-icall-prom may promote). */
  valueProfiled: number;
}

/**
 * Attach `counts` to `fn` (the function as the unit has it, after boot's
 * specialization, before optimization).  Refused, leaving the function
 * untouched, when its sites do not have the counted shape.
 */
export function attachCounts(m: Module, fn: Value, counts: FunctionCounts): AppliedProfile {
  const sites = profileSites(fn);
  const shape = siteShape(sites);
  const none = (reason: string): AppliedProfile => ({ applied: false, reason, branches: 0, icalls: 0, valueProfiled: 0 });
  if (shape !== counts.shape) return none(`the function's sites (${shape}) are not the counted ones (${counts.shape})`);
  const ctx = m.context;
  fn.setMetadataNode('prof', ['function_entry_count', BigInt(counts.entry)], ctx);
  sites.branches.forEach((site, k) => {
    const row = counts.branches[k]!;
    /* all zero: the window never reached it; leave LLVM's static estimate */
    if (row.every((c) => c === 0)) return;
    site.inst.setMetadataNode('prof', ['branch_weights', ...scaleWeights(row)], ctx);
  });
  let valueProfiled = 0;
  sites.icalls.forEach((call, k) => {
    const site = counts.icalls[k]!;
    const known = site.targets.filter((t) => t.count > 0 && !t.function.startsWith('['));
    if (site.total === 0 || known.length === 0) return;
    const items: MetadataItem[] = ['VP', 0 /* IPVK_IndirectCallTarget */, BigInt(site.total)];
    for (const t of known) items.push(guidOf(t.function), BigInt(t.count));
    call.setMetadataNode('prof', items, ctx);
    valueProfiled++;
  });
  return { applied: true, reason: '', branches: sites.branches.length, icalls: sites.icalls.length, valueProfiled };
}
