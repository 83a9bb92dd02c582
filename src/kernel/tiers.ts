/**
 * @fileoverview Policy of a tiered boot (issue 10): which functions boot
 * compiles optimized, which with the fast tier, and which it leaves to be
 * compiled on first call.  Pure: the mechanism is in compile.ts (the tiers),
 * ir/runtime/lazy.c and src/rejit/lazy.ts (first calls).
 *
 *   hot   functions the stored profile says take most of the time (the
 *         smallest set, hottest first, covering `hotShare` of its samples):
 *         optimized at boot, so the first operations already run fast code;
 *   fast  everything else that must or will probably run: little IR
 *         optimization, fast instruction selection (the code the sampler and
 *         the re-JIT engine then improve where it turns out to be hot);
 *   lazy  functions no stored profile saw run (with `lazy: 'profile'`, only
 *         when there is a profile to say so), or every function but the
 *         pinned ones (`lazy: 'all'`): compiled with the fast tier on first
 *         call.  Only the fast tier is lazy: a first call waits for one
 *         unit's fast compile, never an optimizing one.
 *
 * Pinned functions are never lazy: the kjit runtime (it runs in signal
 * handlers and is the thing that waits), the image's entry points and
 * whatever its assembly names.
 */
export type LazyPolicy = 'off' | 'profile' | 'all';

export const LAZY_POLICIES: readonly LazyPolicy[] = ['off', 'profile', 'all'];

export interface TierCandidate {
  name: string;
  /** Must have code at boot (see the file comment). */
  pinned: boolean;
  /** Basic blocks: what optimizing it costs, roughly. */
  blocks: number;
}

export interface StoredUse {
  /** Weighted samples with the function on the stack. */
  samples: number;
  /** Exact entries counted in an instrumentation window (0: none counted). */
  entries: number;
}

export interface TierParams {
  lazy: LazyPolicy;
  /** Share of the stored profile's samples the hot set covers. */
  hotShare: number;
  /** At most this many functions are optimized at boot (the rest wait for the re-JIT engine). */
  hotMax: number;
  /** ... and at most this many basic blocks of them, hottest first (a function that does not fit is
   * skipped: optimizing a 2,000-block lexer at boot would cost the first operation a second). */
  hotBlocks: number;
  /** At most this many functions can be lazy (KJIT_LAZY_MAX in ir/runtime/kjit_cb.h). */
  lazyMax: number;
}

export const DEFAULT_TIER_PARAMS: TierParams = { lazy: 'profile', hotShare: 0.95, hotMax: 400, hotBlocks: 1500, lazyMax: 4096 };

export interface TierPlan {
  /** Compiled optimized at boot, hottest first. */
  hot: string[];
  /** Compiled with the fast tier at boot. */
  fast: string[];
  /** Compiled with the fast tier on first call; index i is the function's lazy slot. */
  lazy: string[];
  /** Why the plan is what it is, for the boot report. */
  why: string;
}

/** Functions (by self-or-total samples) that cover `share` of the profile's samples, hottest first. */
export function hottest(profile: ReadonlyMap<string, StoredUse>, share: number, max: number): string[] {
  const ranked = [...profile].filter(([, u]) => u.samples > 0).sort((a, b) => b[1].samples - a[1].samples || (a[0] < b[0] ? -1 : 1));
  const total = ranked.reduce((s, [, u]) => s + u.samples, 0);
  const out: string[] = [];
  let covered = 0;
  for (const [name, u] of ranked) {
    if (out.length >= max || (total > 0 && covered >= share * total)) break;
    out.push(name);
    covered += u.samples;
  }
  return out;
}

/**
 * The plan for `functions` (the image's defined functions after boot's
 * specialization, in module order) given the stored profile (null: none).
 */
export function planTiers(functions: readonly TierCandidate[], profile: ReadonlyMap<string, StoredUse> | null, params: TierParams = DEFAULT_TIER_PARAMS): TierPlan {
  const blocks = new Map(functions.map((f) => [f.name, f.blocks]));
  const hot: string[] = [];
  const tooLarge: string[] = [];
  let spent = 0;
  for (const name of profile ? hottest(profile, params.hotShare, params.hotMax) : []) {
    const b = blocks.get(name);
    if (b === undefined) continue;
    if (spent + b > params.hotBlocks) {
      tooLarge.push(name);
      continue;
    }
    hot.push(name);
    spent += b;
  }
  const isHot = new Set(hot);
  const fast: string[] = [];
  const lazy: string[] = [];
  const ran = (name: string) => {
    const u = profile?.get(name);
    return u !== undefined && (u.samples > 0 || u.entries > 0);
  };
  for (const f of functions) {
    if (isHot.has(f.name)) continue;
    const leave = !f.pinned && lazy.length < params.lazyMax && (params.lazy === 'all' || (params.lazy === 'profile' && profile !== null && !ran(f.name)));
    (leave ? lazy : fast).push(f.name);
  }
  const why = !profile
    ? params.lazy === 'all'
      ? 'no stored profile; every function but the pinned ones is compiled on first call (--lazy all)'
      : `no stored profile: every function compiled with the fast tier at boot${params.lazy === 'profile' ? ' (laziness needs a profile that says what runs)' : ''}`
    : `stored profile: ${hot.length} hottest functions optimized at boot (of those covering ${Math.round(params.hotShare * 100)}% of its samples${
        tooLarge.length ? `; ${tooLarge.length} over the boot's ${params.hotBlocks}-block budget left to the re-JIT engine: ${tooLarge.slice(0, 3).join(', ')}${tooLarge.length > 3 ? ' ...' : ''}` : ''
      }), ` +
      (params.lazy === 'off' ? 'the rest with the fast tier' : `${lazy.length} it never saw run compiled on first call, the rest with the fast tier`);
  return { hot, fast, lazy, why };
}

/** What a cached tiered boot was planned with (kept in its cache entry). */
export interface CachedPlan {
  candidates: TierCandidate[];
  hot: string[];
  lazy: string[];
}

/**
 * Whether a cached tiered boot still serves the stored profile as it is
 * now (so a warm boot links it instead of compiling), or why not.  The
 * plan the profile asks for now is made from the same candidates:
 *   - a function that now ran must not be left lazy in the cached boot
 *     (it would wait for its first call every boot);
 *   - the hot sets may differ at the margin (functions near the cut-off
 *     trade places from boot to boot), not more: at least `minOverlap` of
 *     the union in common.
 * Without a profile now, any cached plan is valid code.
 */
export function planFits(cached: CachedPlan, profile: ReadonlyMap<string, StoredUse> | null, params: TierParams = DEFAULT_TIER_PARAMS, minOverlap = 0.75): { fits: boolean; why: string } {
  if (!profile) return { fits: true, why: 'no stored profile now: the cached plan is valid code' };
  const now = planTiers(cached.candidates, profile, params);
  const stillLazy = new Set(now.lazy);
  const ranButLazy = cached.lazy.filter((n) => !stillLazy.has(n));
  if (ranButLazy.length) return { fits: false, why: `${ranButLazy.length} functions it leaves for their first call have run since (${ranButLazy.slice(0, 3).join(', ')})` };
  const a = new Set(cached.hot);
  const union = new Set([...cached.hot, ...now.hot]);
  const common = now.hot.filter((n) => a.has(n)).length;
  const overlap = union.size ? common / union.size : 1;
  if (overlap < minOverlap) return { fits: false, why: `the hot set has changed: ${common} of ${union.size} functions in common` };
  return { fits: true, why: `the stored profile still fits it (hot sets ${common} of ${union.size} in common)` };
}
