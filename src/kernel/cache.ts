/**
 * @fileoverview The compiled-object cache.  A boot compiles the image for
 * one machine and configuration; the next boot with the same inputs links
 * the objects it produced instead of compiling again (as an AOT cache or a
 * kernel's prebuilt image would).  The key is a hash of everything the
 * result depends on: the image and runtime IR, the mode, the target CPU and
 * features, every boot-fixed value and absent device, LLVM's version and
 * the code of kjit's compiler itself, so a stale entry can never be used.
 * Entries are written atomically (a temporary directory renamed into place)
 * and a damaged entry is ignored and rebuilt.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { ROOT } from '../paths.js';
import type { ImageTables } from './tables.js';

export const CACHE_FORMAT = 2;
/** Entries kept; the least recently used go first. */
export const CACHE_ENTRIES = 24;

export function cacheDir(): string {
  return process.env.KJIT_CACHE_DIR ?? join(ROOT, 'build', 'cache', 'objects');
}

/** Whether boots may use the cache (KJIT_CACHE=0 turns it off). */
export function cacheEnabled(): boolean {
  return process.env.KJIT_CACHE !== '0';
}

let compilerHash: string | null = null;

/** The modules whose code decides what the compiled objects contain. */
const COMPILER_MODULES = ['bootconfig.js', 'cache.js', 'compile.js', 'image.js', 'modes.js', 'specialize.js', 'tables.js', 'units.js', '../native/llvm.js'];

/** Hash of the compiled JavaScript of kjit's compiler. */
function compilerVersion(): string {
  if (compilerHash) return compilerHash;
  const h = createHash('sha256');
  const here = dirname(fileURLToPath(import.meta.url));
  for (const f of COMPILER_MODULES) {
    h.update(f);
    h.update(readFileSync(join(here, f)));
  }
  compilerHash = h.digest('hex');
  return compilerHash;
}

export function cacheKey(parts: Record<string, unknown>): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({ format: CACHE_FORMAT, compiler: compilerVersion(), ...parts }));
  return h.digest('hex').slice(0, 40);
}

export interface CacheEntry {
  objects: Uint8Array[];
  meta: unknown;
  /** Path of the optimized module's bitcode. */
  bitcodePath: string;
  /** A tiered boot's lazy source (compile.ts), checked like the objects; null if it had none. */
  lazySource(): Uint8Array | null;
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/**
 * The entry under `key`, or null if there is none or it is damaged: every
 * object's sha256 is checked against the one recorded when it was written,
 * so a truncated or altered object is compiled again, never executed.
 */
export function readEntry(key: string): CacheEntry | null {
  const dir = join(cacheDir(), key);
  try {
    const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as { objects: number; sha256?: string[]; meta: unknown };
    if (!Array.isArray(meta.sha256) || meta.sha256.length !== meta.objects) return null;
    const objects: Uint8Array[] = [];
    for (let i = 0; i < meta.objects; i++) {
      const o = new Uint8Array(readFileSync(join(dir, `${i}.o`)));
      if (sha256(o) !== meta.sha256[i]) return null;
      objects.push(o);
    }
    const bitcodePath = join(dir, 'optimized.bc');
    if (!existsSync(bitcodePath)) return null;
    const now = new Date();
    utimesSync(dir, now, now); /* recently used */
    const lazySum = (meta as { lazy?: string }).lazy;
    const lazy = lazySum ? new Uint8Array(readFileSync(join(dir, 'lazy.bc'))) : null;
    if (lazy && sha256(lazy) !== lazySum) return null;
    return { objects, meta: meta.meta, bitcodePath, lazySource: () => lazy };
  } catch {
    return null; /* missing or damaged: compile again */
  }
}

export function writeEntry(key: string, objects: readonly Uint8Array[], meta: unknown, bitcode: Uint8Array, lazySource: Uint8Array | null = null): void {
  const dir = join(cacheDir(), key);
  const tmp = `${dir}.tmp-${process.pid}`;
  try {
    mkdirSync(tmp, { recursive: true });
    objects.forEach((o, i) => writeFileSync(join(tmp, `${i}.o`), o));
    writeFileSync(join(tmp, 'optimized.bc'), bitcode);
    if (lazySource) writeFileSync(join(tmp, 'lazy.bc'), lazySource);
    writeFileSync(join(tmp, 'meta.json'), JSON.stringify({ objects: objects.length, sha256: objects.map(sha256), ...(lazySource ? { lazy: sha256(lazySource) } : {}), meta }));
    /* an entry already there was unreadable (we compiled): replace it */
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
    prune();
  } catch {
    /* a cache that cannot be written only costs the next boot a compile */
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Keep the CACHE_ENTRIES most recently used entries. */
function prune(): void {
  const root = cacheDir();
  const entries = readdirSync(root)
    .filter((n) => /^[0-9a-f]{40}$/.test(n))
    .map((n) => ({ n, t: statSync(join(root, n)).mtimeMs }))
    .sort((a, b) => b.t - a.t);
  for (const e of entries.slice(CACHE_ENTRIES)) rmSync(join(root, e.n), { recursive: true, force: true });
}

/** What loading an image found out (src/kernel/image.ts), kept so a later boot of the same image need not parse it first. */
export interface ImageFacts {
  tables: ImageTables;
  kind: 'run' | 'entry';
}

function factsPath(key: string): string {
  return join(cacheDir(), 'images', `${key}.json`);
}

/* tables hold bigints: written as {"$big": "123"} */
const toJson = (_k: string, v: unknown) => (typeof v === 'bigint' ? { $big: v.toString() } : v);
const fromJson = (_k: string, v: unknown) =>
  v && typeof v === 'object' && typeof (v as { $big?: unknown }).$big === 'string' ? BigInt((v as { $big: string }).$big) : v;

export function readFacts(key: string): ImageFacts | null {
  try {
    const f = JSON.parse(readFileSync(factsPath(key), 'utf8'), fromJson) as ImageFacts & { key?: string };
    if (f.key !== key || !f.tables || !Array.isArray(f.tables.sysctls) || (f.kind !== 'run' && f.kind !== 'entry')) return null;
    return { tables: f.tables, kind: f.kind };
  } catch {
    return null; /* missing or damaged: the image is parsed and checked as on a first boot */
  }
}

export function writeFacts(key: string, facts: ImageFacts): void {
  const path = factsPath(key);
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(tmp, JSON.stringify({ key, ...facts }, toJson));
    renameSync(tmp, path);
  } catch {
    rmSync(tmp, { force: true });
  }
}
