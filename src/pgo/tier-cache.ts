/**
 * @fileoverview The last tier kept, kept on disk for warm starts.  A tier
 * that passed the regression check is stored under a key of everything its
 * code depends on except the profile: the image and runtime IR, the mode,
 * the target, the boot configuration, the functions it covers, the sysctls
 * it folded, the workload, and kjit's compiler (cacheKey).  A warm run (one
 * whose profile store has counts for this image) links the stored tier
 * instead of compiling one, and checks it like any other: it is kept only
 * if faster.  Cold runs never read it.  Entries are written atomically; a
 * damaged one is ignored.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { cacheDir, cacheEnabled, cacheKey } from '../kernel/cache.js';
import type { PreparedBoot } from '../kernel/run.js';
import type { ImageUnitVersion } from '../rejit/image-unit.js';

export const TIER_CACHE_ENTRIES = 8;

export interface TierEntry {
  id: number;
  object: Uint8Array;
  versions: ImageUnitVersion[];
  profile: { applied: number; stale: number; missing: number };
  ms: number;
}

function root(): string {
  return join(dirname(cacheDir()), 'tiers');
}

let builderHash: string | null = null;

/** The code that builds tiers (cacheKey covers boot's compiler, not this). */
function builder(): string {
  if (builderHash) return builderHash;
  const h = createHash('sha256');
  const here = dirname(fileURLToPath(import.meta.url));
  for (const f of ['../rejit/image-unit.js', '../rejit/unit.js', 'guard.js', 'metadata.js', 'sites.js']) h.update(readFileSync(join(here, f)));
  builderHash = h.digest('hex');
  return builderHash;
}

export function tierKey(p: PreparedBoot, parts: { functions: readonly string[]; fold: Record<string, string>; workload: string }): string {
  return cacheKey({
    kind: 'pgo-tier',
    builder: builder(),
    image: p.image.hash,
    runtime: p.image.runtimeHash,
    mode: p.mode.name,
    target: p.compiled.target,
    config: p.config.values.map((v) => [v.sysctl.name, v.value.toString()]),
    functions: createHash('sha256').update(parts.functions.join('\n')).digest('hex'),
    fold: Object.entries(parts.fold).sort(),
    workload: parts.workload,
  });
}

/** A version id for a tier stored under `key`: far above the ids an installer hands out, so its symbols never collide. */
export function tierId(key: string): number {
  return 1_000_000_000 + (parseInt(key.slice(0, 7), 16) % 1_000_000_000);
}

export function readTier(key: string): TierEntry | null {
  if (!cacheEnabled()) return null;
  const dir = join(root(), key);
  try {
    const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as Omit<TierEntry, 'object'>;
    const object = new Uint8Array(readFileSync(join(dir, 'tier.o')));
    const now = new Date();
    utimesSync(dir, now, now);
    return { ...meta, object };
  } catch {
    return null;
  }
}

export function writeTier(key: string, e: TierEntry): void {
  if (!cacheEnabled()) return;
  const dir = join(root(), key);
  const tmp = `${dir}.tmp-${process.pid}`;
  try {
    mkdirSync(tmp, { recursive: true });
    writeFileSync(join(tmp, 'tier.o'), e.object);
    const { object: _, ...meta } = e;
    writeFileSync(join(tmp, 'meta.json'), JSON.stringify(meta));
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
    const entries = readdirSync(root())
      .filter((n) => /^[0-9a-f]{40}$/.test(n))
      .map((n) => ({ n, t: statSync(join(root(), n)).mtimeMs }))
      .sort((a, b) => b.t - a.t);
    for (const x of entries.slice(TIER_CACHE_ENTRIES)) rmSync(join(root(), x.n), { recursive: true, force: true });
  } catch {
    rmSync(tmp, { recursive: true, force: true }); /* only costs the next warm run a compile */
  }
}
