/**
 * @fileoverview The profile store: what kjit learns about an image while it
 * runs, kept across boots in one SQLite database (better-sqlite3, WAL).
 *
 * Verbs: open (and migrate), recordBoot / endBoot, flushProfile (a boot's
 * sampled aggregates so far: they replace the boot's previous flush),
 * flushCounts (exact counts of instrumentation windows: added to the
 * boot's), logCompile, logDecision, saveTimeline, saveSummary, saveBench; loadMerged (the profile for
 * an image, machine class and workload, recent boots weighing more, stale
 * functions left out); staleness and listings for `kjit profile`.
 *
 * Every write is one transaction: a process killed at any moment leaves
 * every earlier flush whole and the one under way absent (open.ts and
 * STORE_PARAMS.synchronous say why).
 */
import { KjitError } from '../errors.js';
import type { FunctionCounts } from '../sampler/counts.js';
import type { Edge } from '../sampler/profile.js';
import { type BootAggregates, type Match, matchFunctions, type MatchStats, mergeBoots, mergeCounts, type MergedProfile, type StoredFunction } from './merge.js';
import { type DB, openDatabase, type OpenOptions } from './open.js';
import { STORE_PARAMS } from './params.js';
import { type CountsLayout, decodeRecord, funcHash, isTargetOnly, layoutOf, parseProftext, toProftext } from './proftext.js';

export interface ImageInfo {
  /** sha256 of the image file (Image.hash). */
  hash: string;
  runtimeHash: string;
  /** The image family: the file's name. */
  name: string;
  path: string;
  init: string;
  entry?: string | undefined;
  run?: string | undefined;
  /** name -> IR hash of every defined function; called only the first time the store sees this image. */
  functions: () => ReadonlyMap<string, string>;
}

export interface MachineInfo {
  cpuModel: string;
  /** LLVM's name for the host CPU: the machine class. */
  llvmCpu: string;
  features: string;
}

export interface BootInfo {
  image: ImageInfo;
  machine: MachineInfo;
  workload: string;
  mode: string;
  sysctls: Readonly<Record<string, string>>;
  /** 'run' (default) or 'import: FILE'. */
  source?: string;
}

/** A boot's sampled aggregates so far. */
export interface ProfileAggregates {
  samples: number;
  functions: readonly { function: string; self: number; total: number }[];
  edges: readonly Edge[];
  /** Whole chains, root first; the hottest STORE_PARAMS.hotPathsPerBoot are kept. */
  hotPaths: readonly { chain: readonly string[]; samples: number }[];
}

export type CompileOutcome = 'installed' | 'rolled-back' | 'evicted' | 'failed';

export interface CompileEntry {
  function: string;
  /** The installer's version id (one code_versions row per boot and version). */
  version?: number;
  tier: string;
  reason: string;
  compile_ms?: number;
  code_bytes?: number;
  outcome: CompileOutcome;
  /** Why that outcome (a rollback's fault, an eviction's pressure). */
  why?: string;
  /** Seconds into the run. */
  at_s?: number;
}

export interface DecisionEntry {
  kind: string;
  function?: string | null;
  reason: string;
  numbers: Readonly<Record<string, number | string | boolean | null>>;
  at_s?: number;
}

/** Which boots a merge reads: the target's key, unless given. */
export interface MergeTarget {
  family: string;
  machineClass: string;
  workload: string;
  /** The image's functions (name -> IR hash): stale functions are left out; absent, nothing is matched. */
  functions?: ReadonlyMap<string, string>;
}

export interface MergeOptions {
  /** Weight of a boot per newer boot (STORE_PARAMS.decayPerBoot). */
  decay?: number;
  /** Merge boots of another image family or machine class too. */
  force?: boolean;
  /** These boots (newest first by id) instead of the target's; each must be of its family and class unless forced. */
  boots?: readonly number[];
  /** Read the boots of another family, machine class or workload: refused for another family or class unless forced. */
  from?: { family?: string; machineClass?: string; workload?: string };
  /** At most this many boots (default STORE_PARAMS.keepBoots). */
  maxBoots?: number;
}

export interface BootRow {
  id: number;
  image: string;
  image_hash: string;
  machine_class: string;
  cpu_model: string;
  workload: string;
  mode: string;
  source: string;
  started_at: string;
  ended_at: string | null;
  status: string;
  samples: number;
  seconds: number | null;
  ops: number | null;
  flushes: number;
  functions: number;
  counted_functions: number;
}

export interface StaleReport {
  functions_total: number;
  functions_matched: number;
  functions_matched_by_shape: number;
  samples_matched_pct: number;
}

const now = () => new Date().toISOString();

export class ProfileStore {
  readonly db: DB;
  readonly path: string;
  /** The file at `path` was corrupt or foreign: where it went and why. */
  readonly recovered: { problem: string; movedTo: string } | null;
  readonly migrated: number[];
  /** Per image of a boot this process wrote: its IR hashes, and function ids by name; and each boot's image. */
  private readonly imageCache = new Map<number, { hashes: ReadonlyMap<string, string>; ids: Map<string, number> }>();
  private readonly bootImage = new Map<number, number>();
  /** Per boot: what the last flush wrote (a flush writes only what changed). */
  private readonly flushed = new Map<number, { samples: Map<number, string>; edges: string; paths: string }>();
  private readonly stmt: ReturnType<ProfileStore['prepare']>;

  private constructor(path: string, opts: OpenOptions) {
    const o = openDatabase(path, opts);
    this.db = o.db;
    this.path = path;
    this.recovered = o.recovered;
    this.migrated = o.migrated;
    this.stmt = this.prepare();
  }

  /** Opens (creating and migrating it if need be) the store at `path`. */
  static open(path: string, opts: OpenOptions = {}): ProfileStore {
    return new ProfileStore(path, opts);
  }

  private prepare() {
    const p = <R = unknown>(sql: string) => this.db.prepare<unknown[], R>(sql);
    if (this.db.readonly) return null;
    return {
      functionId: p<{ id: number }>('SELECT id FROM functions WHERE name = ? AND ir_hash = ?'),
      addFunction: p('INSERT INTO functions (name, ir_hash) VALUES (?, ?) ON CONFLICT DO NOTHING'),
      /* rows go in as one JSON array per statement: SQLite unpacks it (json_each) far faster than a statement per row */
      samples: p(
        `INSERT INTO samples (boot_id, function_id, self, total) SELECT ?, value ->> 0, value ->> 1, value ->> 2 FROM json_each(?) WHERE true
         ON CONFLICT DO UPDATE SET self = excluded.self, total = excluded.total`,
      ),
      edges: p('INSERT INTO edges (boot_id, edges) VALUES (?, ?) ON CONFLICT DO UPDATE SET edges = excluded.edges'),
      paths: p('INSERT INTO hot_paths (boot_id, paths) VALUES (?, ?) ON CONFLICT DO UPDATE SET paths = excluded.paths'),
      flushed: p('UPDATE boots SET samples = ?, flushes = flushes + 1 WHERE id = ?'),
      getCounts: p<{ shape: string; entry: number; branches: string; icalls: string; window_ms: number; window_ops: number; windows: number }>(
        'SELECT shape, entry, branches, icalls, window_ms, window_ops, windows FROM counts WHERE boot_id = ? AND function_id = ?',
      ),
      putCounts: p(
        `INSERT INTO counts (boot_id, function_id, shape, entry, branches, icalls, window_ms, window_ops, windows) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT DO UPDATE SET shape = excluded.shape, entry = excluded.entry, branches = excluded.branches, icalls = excluded.icalls,
           window_ms = excluded.window_ms, window_ops = excluded.window_ops, windows = excluded.windows`,
      ),
    };
  }

  private writable() {
    if (!this.stmt) throw new Error('the profile store was opened read-only');
    return this.stmt;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /* ---- images, machines, functions ---------------------------------------------- */

  private imageId(image: ImageInfo): number {
    const find = () =>
      this.db.prepare<unknown[], { id: number; functions_hashed: number }>('SELECT id, functions_hashed FROM images WHERE hash = ? AND runtime_hash = ?').get(image.hash, image.runtimeHash);
    let row = find();
    if (row?.functions_hashed) return row.id;
    /* hashing an image's functions takes a while (about 0.1 s for the reference kernel): once per image, outside the transaction */
    const hashes = image.functions();
    this.db.transaction(() => {
      this.db
        .prepare('INSERT INTO images (hash, runtime_hash, name, path, init, entry, run, first_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING')
        .run(image.hash, image.runtimeHash, image.name, image.path, image.init, image.entry ?? null, image.run ?? null, now());
      row = find()!;
      if (row.functions_hashed) return;
      const s = this.writable();
      const link = this.db.prepare('INSERT INTO image_functions (image_id, function_id) VALUES (?, ?) ON CONFLICT DO NOTHING');
      for (const [name, hash] of hashes) {
        s.addFunction.run(name, hash);
        link.run(row.id, s.functionId.get(name, hash)!.id);
      }
      this.db.prepare('UPDATE images SET functions_hashed = 1 WHERE id = ?').run(row.id);
    }).immediate();
    return row!.id;
  }

  /** name -> IR hash of the image's functions (hashed and stored the first time the store sees it). */
  imageFunctionsOf(image: ImageInfo): Map<string, string> {
    return this.imageFunctions(this.imageId(image));
  }

  /** name -> IR hash of a stored image's functions. */
  imageFunctions(imageId: number): Map<string, string> {
    const rows = this.db
      .prepare<unknown[], { name: string; ir_hash: string }>('SELECT f.name, f.ir_hash FROM image_functions i JOIN functions f ON f.id = i.function_id WHERE i.image_id = ?')
      .all(imageId);
    return new Map(rows.map((r) => [r.name, r.ir_hash]));
  }

  private machineId(m: MachineInfo): number {
    this.db.prepare('INSERT INTO machines (cpu_model, llvm_cpu, features) VALUES (?, ?, ?) ON CONFLICT DO NOTHING').run(m.cpuModel, m.llvmCpu, m.features);
    return this.db.prepare<unknown[], { id: number }>('SELECT id FROM machines WHERE cpu_model = ? AND llvm_cpu = ? AND features = ?').get(m.cpuModel, m.llvmCpu, m.features)!.id;
  }

  /** The function row a boot's sample of `name` belongs to: (name, its IR hash in the boot's image, or ''). */
  private functionId(bootId: number, name: string, irHash?: string): number {
    let imageId = this.bootImage.get(bootId);
    if (imageId === undefined) {
      imageId = this.db.prepare<unknown[], { image_id: number }>('SELECT image_id FROM boots WHERE id = ?').get(bootId)?.image_id;
      if (imageId === undefined) throw new Error(`no boot ${bootId} in the profile store`);
      this.bootImage.set(bootId, imageId);
    }
    let b = this.imageCache.get(imageId);
    if (!b) {
      b = { hashes: this.imageFunctions(imageId), ids: new Map() };
      this.imageCache.set(imageId, b);
    }
    const hash = irHash ?? b.hashes.get(name) ?? '';
    const key = irHash === undefined ? name : `${name}\u0000${hash}`;
    let id = b.ids.get(key);
    if (id === undefined) {
      const s = this.writable();
      id = s.functionId.get(name, hash)?.id;
      if (id === undefined) {
        s.addFunction.run(name, hash);
        id = s.functionId.get(name, hash)!.id;
      }
      b.ids.set(key, id);
    }
    return id;
  }

  /* ---- boots -------------------------------------------------------------------- */

  /** A boot starts: its image (hashing its functions the first time), machine and configuration. */
  recordBoot(b: BootInfo): number {
    const imageId = this.imageId(b.image);
    return this.db.transaction(() => {
      const machineId = this.machineId(b.machine);
      const r = this.db
        .prepare("INSERT INTO boots (image_id, machine_id, workload, mode, sysctls, started_at, status, source) VALUES (?, ?, ?, ?, ?, ?, 'running', ?)")
        .run(imageId, machineId, b.workload, b.mode, JSON.stringify(b.sysctls), now(), b.source ?? 'run');
      return Number(r.lastInsertRowid);
    }).immediate();
  }

  /** A boot ended (or failed): its totals; then retention drops the oldest boots of its key beyond STORE_PARAMS.keepBoots. */
  endBoot(bootId: number, end: { status: 'ended' | 'failed'; seconds?: number; ops?: number }, keepBoots = STORE_PARAMS.keepBoots): void {
    this.db.transaction(() => {
      this.db.prepare('UPDATE boots SET ended_at = ?, status = ?, seconds = ?, ops = ? WHERE id = ?').run(now(), end.status, end.seconds ?? null, end.ops ?? null, bootId);
      this.applyRetention(bootId, keepBoots);
    }).immediate();
    this.bootImage.delete(bootId);
    this.flushed.delete(bootId);
    this.db.pragma('incremental_vacuum');
  }

  /** Deletes the boots of `bootId`'s key (image family, machine class, workload) beyond the newest `keep`. */
  private applyRetention(bootId: number, keep: number): number {
    if (!Number.isFinite(keep)) return 0;
    const old = this.db
      .prepare<unknown[], { id: number }>(
        `SELECT b.id FROM boots b JOIN images i ON i.id = b.image_id JOIN machines m ON m.id = b.machine_id,
           (SELECT i2.name AS family, m2.llvm_cpu AS class, b2.workload AS workload FROM boots b2 JOIN images i2 ON i2.id = b2.image_id JOIN machines m2 ON m2.id = b2.machine_id WHERE b2.id = ?) k
         WHERE i.name = k.family AND m.llvm_cpu = k.class AND b.workload = k.workload
         ORDER BY b.id DESC LIMIT -1 OFFSET ?`,
      )
      .all(bootId, Math.max(0, Math.floor(keep)))
      .map((r) => r.id);
    for (const id of old) this.deleteBoot(id);
    return old.length;
  }

  deleteBoot(id: number): void {
    for (const table of ['samples', 'edges', 'hot_paths', 'counts', 'compile_log', 'code_versions', 'decisions', 'boot_timelines', 'boot_summaries']) {
      this.db.prepare(`DELETE FROM ${table} WHERE boot_id = ?`).run(id);
    }
    this.db.prepare('DELETE FROM boots WHERE id = ?').run(id);
  }

  /* ---- what a boot learns --------------------------------------------------------- */

  /**
   * The boot's sampled aggregates so far, replacing its previous flush (one
   * transaction; only rows that changed since this store's last flush of it
   * are written).
   */
  flushProfile(bootId: number, p: ProfileAggregates): void {
    const s = this.writable();
    const last = this.flushed.get(bootId) ?? { samples: new Map<number, string>(), edges: '', paths: '' };
    const paths = [...p.hotPaths].sort((a, b) => b.samples - a.samples).slice(0, STORE_PARAMS.hotPathsPerBoot);
    this.db.transaction(() => {
      const samples: [number, number, number][] = [];
      for (const f of p.functions) {
        const id = this.functionId(bootId, f.function);
        const v = `${f.self},${f.total}`;
        if (last.samples.get(id) === v) continue;
        samples.push([id, f.self, f.total]);
        last.samples.set(id, v);
      }
      if (samples.length) s.samples.run(bootId, JSON.stringify(samples));
      const edges = JSON.stringify(p.edges.map((e) => [this.functionId(bootId, e.caller), this.functionId(bootId, e.callee), e.samples]));
      if (edges !== last.edges) {
        s.edges.run(bootId, edges);
        last.edges = edges;
      }
      const hot = JSON.stringify(paths.map((h) => [h.chain.map((n) => this.functionId(bootId, n)), h.samples]));
      if (hot !== last.paths) {
        s.paths.run(bootId, hot);
        last.paths = hot;
      }
      s.flushed.run(p.samples, bootId);
    }).immediate();
    this.flushed.set(bootId, last);
  }

  /** Exact counts of instrumentation windows: each is added to the boot's counts of that function (same IR). */
  flushCounts(bootId: number, counts: readonly FunctionCounts[]): void {
    const s = this.writable();
    this.db.transaction(() => {
      for (const c of counts) {
        const id = this.functionId(bootId, c.function, c.ir_hash);
        const row = s.getCounts.get(bootId, id);
        let merged = c;
        let windows = 1;
        if (row && row.shape === c.shape) {
          merged = mergeCounts([
            { c, w: 1 },
            { c: rowCounts(c.function, c.ir_hash, row), w: 1 },
          ])!;
          windows = row.windows + 1;
        }
        s.putCounts.run(bootId, id, merged.shape, merged.entry, JSON.stringify(merged.branches), JSON.stringify(merged.icalls), merged.window.ms, merged.window.ops, windows);
      }
    }).immediate();
  }

  /** A compile (and what became of its version): one log row, and the version's current state. */
  logCompile(bootId: number, e: CompileEntry): void {
    this.db.transaction(() => {
      const fid = this.functionId(bootId, e.function);
      let versionId: number | null = null;
      if (e.version !== undefined) {
        this.db
          .prepare(
            `INSERT INTO code_versions (boot_id, function_id, version, tier, code_bytes, state) VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT DO UPDATE SET state = excluded.state, code_bytes = coalesce(excluded.code_bytes, code_bytes)`,
          )
          .run(bootId, fid, e.version, e.tier, e.code_bytes ?? null, e.outcome);
        versionId = this.db.prepare<unknown[], { id: number }>('SELECT id FROM code_versions WHERE boot_id = ? AND version = ?').get(bootId, e.version)!.id;
      }
      this.db
        .prepare('INSERT INTO compile_log (boot_id, version_id, function_id, tier, reason, compile_ms, code_bytes, outcome, why, at_s, logged_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
        .run(bootId, versionId, fid, e.tier, e.reason, e.compile_ms ?? null, e.code_bytes ?? null, e.outcome, e.why ?? null, e.at_s ?? null, now());
    }).immediate();
  }

  logDecision(bootId: number, d: DecisionEntry): void {
    this.db.transaction(() => {
      const fid = d.function ? this.functionId(bootId, d.function) : null;
      this.db
        .prepare('INSERT INTO decisions (boot_id, kind, function_id, reason, numbers, at_s, logged_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
        .run(bootId, d.kind, fid, d.reason, JSON.stringify(d.numbers), d.at_s ?? null, now());
    }).immediate();
  }

  /** A boot's timeline so far (src/store/timeline.ts), replacing the previous one: one row, rewritten by each flush. */
  saveTimeline(bootId: number, points: readonly object[], events: readonly object[]): void {
    this.db
      .prepare('INSERT INTO boot_timelines (boot_id, points, events) VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET points = excluded.points, events = excluded.events')
      .run(bootId, JSON.stringify(points), JSON.stringify(events));
  }

  /** What a run reported when it ended (timeline.ts runSummary). */
  saveSummary(bootId: number, summary: object): void {
    this.db.prepare('INSERT INTO boot_summaries (boot_id, summary) VALUES (?, ?) ON CONFLICT DO UPDATE SET summary = excluded.summary').run(bootId, JSON.stringify(summary));
  }

  /** A benchmark report (as emitReport writes it); the oldest beyond STORE_PARAMS.keepBenchResults of its suite go. */
  saveBench(report: { suite: string; format?: string; env?: { date?: string; commit?: string } }, machine?: MachineInfo): number {
    return this.db.transaction(() => {
      const machineId = machine ? this.machineId(machine) : null;
      const r = this.db
        .prepare('INSERT INTO bench_results (suite, format, date, commit_id, machine_id, report) VALUES (?, ?, ?, ?, ?, ?)')
        .run(report.suite, report.format ?? null, report.env?.date ?? now(), report.env?.commit ?? null, machineId, JSON.stringify(report));
      this.db
        .prepare('DELETE FROM bench_results WHERE suite = ? AND id NOT IN (SELECT id FROM bench_results WHERE suite = ? ORDER BY id DESC LIMIT ?)')
        .run(report.suite, report.suite, STORE_PARAMS.keepBenchResults);
      return Number(r.lastInsertRowid);
    }).immediate();
  }

  benchResults(suite?: string): { id: number; suite: string; date: string; report: unknown }[] {
    const rows = this.db
      .prepare<unknown[], { id: number; suite: string; date: string; report: string }>(
        `SELECT id, suite, date, report FROM bench_results ${suite ? 'WHERE suite = ?' : ''} ORDER BY id DESC`,
      )
      .all(...(suite ? [suite] : []));
    return rows.map((r) => ({ ...r, report: JSON.parse(r.report) as unknown }));
  }

  /* ---- reading -------------------------------------------------------------------- */

  listBoots(filter: { family?: string; machineClass?: string; workload?: string } = {}): BootRow[] {
    const where: string[] = [];
    const args: string[] = [];
    if (filter.family !== undefined) (where.push('i.name = ?'), args.push(filter.family));
    if (filter.machineClass !== undefined) (where.push('m.llvm_cpu = ?'), args.push(filter.machineClass));
    if (filter.workload !== undefined) (where.push('b.workload = ?'), args.push(filter.workload));
    return this.db
      .prepare<unknown[], BootRow>(
        `SELECT b.id, i.name AS image, i.hash AS image_hash, m.llvm_cpu AS machine_class, m.cpu_model, b.workload, b.mode, b.source,
                b.started_at, b.ended_at, b.status, b.samples, b.seconds, b.ops, b.flushes,
                (SELECT count(*) FROM samples s WHERE s.boot_id = b.id) AS functions,
                (SELECT count(*) FROM counts c WHERE c.boot_id = b.id) AS counted_functions
         FROM boots b JOIN images i ON i.id = b.image_id JOIN machines m ON m.id = b.machine_id
         ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY b.id DESC`,
      )
      .all(...args);
  }

  boot(id: number): BootRow | null {
    return this.listBoots().find((b) => b.id === id) ?? null;
  }

  /** One boot's aggregates, functions by stored id. */
  private aggregates(id: number, samples: number): BootAggregates {
    const q = <R>(sql: string) => this.db.prepare<unknown[], R>(sql).all(id);
    return {
      id,
      samples,
      functions: q<{ fid: number; self: number; total: number }>('SELECT function_id AS fid, self, total FROM samples WHERE boot_id = ?'),
      edges: q<{ edges: string }>('SELECT edges FROM edges WHERE boot_id = ?').flatMap((r) =>
        (JSON.parse(r.edges) as [number, number, number][]).map(([caller, callee, samples]) => ({ caller, callee, samples })),
      ),
      hotPaths: q<{ paths: string }>('SELECT paths FROM hot_paths WHERE boot_id = ?').flatMap((r) =>
        (JSON.parse(r.paths) as [number[], number][]).map(([chain, samples]) => ({ chain, samples })),
      ),
      counts: q<{ fid: number; name: string; ir_hash: string; shape: string; entry: number; branches: string; icalls: string; window_ms: number; window_ops: number; windows: number }>(
        'SELECT c.function_id AS fid, f.name, f.ir_hash, c.shape, c.entry, c.branches, c.icalls, c.window_ms, c.window_ops, c.windows FROM counts c JOIN functions f ON f.id = c.function_id WHERE c.boot_id = ?',
      ).map((r) => ({ fid: r.fid, counts: rowCounts(r.name, r.ir_hash, r) })),
    };
  }

  /** The stored functions the aggregates name. */
  private storedFunctions(boots: readonly BootAggregates[]): Map<number, StoredFunction> {
    const ids = new Set<number>();
    for (const b of boots) {
      for (const f of b.functions) ids.add(f.fid);
      for (const e of b.edges) (ids.add(e.caller), ids.add(e.callee));
      for (const p of b.hotPaths) for (const fid of p.chain) ids.add(fid);
      for (const c of b.counts) ids.add(c.fid);
    }
    const rows = this.db
      .prepare<unknown[], StoredFunction>('SELECT id, name, ir_hash FROM functions WHERE id IN (SELECT value FROM json_each(?))')
      .all(JSON.stringify([...ids]));
    return new Map(rows.map((f) => [f.id, f]));
  }

  /** The boots a merge reads, newest first (refusing incompatible ones unless forced). */
  selectBoots(target: MergeTarget, opts: MergeOptions = {}): BootRow[] {
    const max = opts.maxBoots ?? STORE_PARAMS.keepBoots;
    const incompatible = (b: { image: string; machine_class: string }) =>
      b.image !== target.family ? `image family '${b.image}'` : b.machine_class !== target.machineClass ? `machine class '${b.machine_class}'` : null;
    const refuse = (what: string) =>
      new KjitError(
        `refusing to merge a profile of ${what} into one for image family '${target.family}' on machine class '${target.machineClass}'`,
        'merge profiles of this image and machine class, or pass --force to merge them anyway',
      );
    if (opts.boots) {
      const rows = opts.boots.map((id) => {
        const b = this.boot(id);
        if (!b) throw new KjitError(`the profile store has no boot ${id}`, 'list its boots with `kjit profile ls`');
        return b;
      });
      for (const b of rows) {
        const why = incompatible(b);
        if (why && !opts.force) throw refuse(`boot ${b.id} (${why})`);
      }
      return rows.sort((a, b) => b.id - a.id).slice(0, max);
    }
    const key = { family: opts.from?.family ?? target.family, machineClass: opts.from?.machineClass ?? target.machineClass, workload: opts.from?.workload ?? target.workload };
    const why = incompatible({ image: key.family, machine_class: key.machineClass });
    if (why && !opts.force) throw refuse(why);
    /* a boot that flushed nothing (killed early) carries nothing: it takes no weight */
    return this.listBoots(key)
      .filter((b) => b.samples > 0 || b.counted_functions > 0)
      .slice(0, max);
  }

  /**
   * The merged profile for an image, machine class and workload: its most
   * recent boots, weighted by decay per newer boot, with stale functions left
   * out (merge.ts).
   */
  loadMerged(target: MergeTarget, opts: MergeOptions = {}): MergedProfile {
    const decay = opts.decay ?? STORE_PARAMS.decayPerBoot;
    if (!(decay > 0 && decay <= 1)) throw new KjitError(`decay ${decay} is out of range`, 'pass a factor in (0, 1]: 1 weighs every boot alike');
    return this.db.transaction(() => {
      const boots = this.selectBoots(target, opts).map((b) => this.aggregates(b.id, b.samples));
      const functions = this.storedFunctions(boots);
      const matches = target.functions ? matchFunctions([...functions.values()], target.functions) : null;
      return mergeBoots(boots, functions, matches, decay);
    })();
  }

  /** Functions compiled on first call (compile log tier 'lazy') in any of `bootIds`: they ran, whether or not a sample saw them. */
  lazilyCompiled(bootIds: readonly number[]): Set<string> {
    const out = new Set<string>();
    const q = this.db.prepare<unknown[], { name: string }>("SELECT DISTINCT f.name FROM compile_log c JOIN functions f ON f.id = c.function_id WHERE c.boot_id = ? AND c.tier = 'lazy'");
    for (const id of bootIds) for (const r of q.all(id)) out.add(r.name);
    return out;
  }

  /** How stored functions of an image family (optionally one workload) match an image's functions. */
  stale(family: string, current: ReadonlyMap<string, string>, workload?: string): StaleReport & { stats: MatchStats; matches: Map<number, Match>; functions: Map<number, StoredFunction> } {
    return this.db.transaction(() => {
      const boots = this.listBoots({ family, ...(workload !== undefined ? { workload } : {}) }).map((b) => this.aggregates(b.id, b.samples));
      const functions = this.storedFunctions(boots);
      const matches = matchFunctions([...functions.values()], current);
      const stats = mergeBoots(boots, functions, matches, 1).matching;
      return {
        functions_total: stats.functions_total,
        functions_matched: stats.functions_matched,
        functions_matched_by_shape: stats.functions_matched_by_shape,
        samples_matched_pct: stats.samples_total ? Math.round((stats.samples_matched / stats.samples_total) * 1e4) / 100 : 0,
        stats,
        matches,
        functions,
      };
    })();
  }

  /** One boot's details, for `kjit profile show`. */
  showBoot(id: number, top = 20) {
    const boot = this.boot(id);
    if (!boot) throw new KjitError(`the profile store has no boot ${id}`, 'list its boots with `kjit profile ls`');
    const merged = this.loadMerged({ family: boot.image, machineClass: boot.machine_class, workload: boot.workload }, { boots: [id], force: true });
    const log = this.db
      .prepare<unknown[], Record<string, unknown>>(
        'SELECT f.name AS function, c.tier, c.reason, c.compile_ms, c.code_bytes, c.outcome, c.why, c.at_s FROM compile_log c JOIN functions f ON f.id = c.function_id WHERE c.boot_id = ? ORDER BY c.id',
      )
      .all(id);
    const decisions = this.db
      .prepare<unknown[], { kind: string; function: string | null; reason: string; numbers: string; at_s: number | null }>(
        'SELECT d.kind, f.name AS function, d.reason, d.numbers, d.at_s FROM decisions d LEFT JOIN functions f ON f.id = d.function_id WHERE d.boot_id = ? ORDER BY d.id',
      )
      .all(id)
      .map((d) => ({ ...d, numbers: JSON.parse(d.numbers) as unknown }));
    return {
      boot,
      top: merged.functions.slice(0, top),
      edges: merged.edges.slice(0, top),
      hot_paths: merged.hotPaths.slice(0, Math.min(top, 10)),
      counts: merged.counts.map((c) => ({ function: c.function, ir_hash: c.ir_hash, shape: c.shape, entry: c.entry, branch_sites: c.branches.length, icall_sites: c.icalls.length })),
      compile_log: log,
      decisions,
    };
  }

  /* ---- LLVM text profiles ------------------------------------------------------------ */

  /** Exact counts as LLVM text (proftext.ts): one boot's, or the merge's. */
  exportProftext(counts: readonly FunctionCounts[]): string {
    return toProftext(counts);
  }

  /** The layout the store knows for a function's counts, by name and the Func Hash of its IR. */
  knownLayout(name: string, hash: string): CountsLayout | null {
    const rows = this.db
      .prepare<unknown[], { ir_hash: string; shape: string; branches: string; icalls: string }>(
        'SELECT f.ir_hash, c.shape, c.branches, c.icalls FROM functions f JOIN counts c ON c.function_id = f.id WHERE f.name = ? ORDER BY c.boot_id DESC',
      )
      .all(name);
    for (const r of rows) {
      const c = rowCounts(name, r.ir_hash, { ...r, entry: 0, window_ms: 0, window_ops: 0 });
      const layout = layoutOf(c);
      if (funcHash(r.ir_hash) === hash) return layout;
    }
    return null;
  }

  /**
   * Reads an LLVM text profile's counts: kjit's own layout comments when it
   * has them, else the layout the store knows for each function's IR.
   */
  decodeProftext(text: string): { counts: FunctionCounts[]; skipped: { function: string; why: string }[] } {
    const counts: FunctionCounts[] = [];
    const skipped: { function: string; why: string }[] = [];
    for (const r of parseProftext(text)) {
      if (isTargetOnly(r)) continue;
      const layout = r.layout ?? this.knownLayout(r.name, r.hash);
      if (!layout) {
        skipped.push({ function: r.name, why: 'no kjit layout in the file, and the store has no counts of that IR' });
        continue;
      }
      const c = decodeRecord(r, layout, r.layout?.window ?? { ms: 0, ops: 0 });
      if (typeof c === 'string') skipped.push({ function: r.name, why: c });
      else counts.push(c);
    }
    return { counts, skipped };
  }

  /**
   * Imports counts as a boot of their own (source 'import: FILE') of the
   * stored image that has most of their IR, on `machine`, for `workload`.
   */
  importCounts(counts: readonly FunctionCounts[], o: { machine: MachineInfo; workload: string; source: string; family?: string }): { bootId: number; image: string } {
    const hashes = [...new Set(counts.map((c) => c.ir_hash))];
    const best = this.db
      .prepare<unknown[], { id: number; name: string; hits: number }>(
        `SELECT i.id, i.name, count(*) AS hits FROM images i JOIN image_functions x ON x.image_id = i.id JOIN functions f ON f.id = x.function_id
         WHERE f.ir_hash IN (SELECT value FROM json_each(?)) ${o.family ? 'AND i.name = ?' : ''} GROUP BY i.id ORDER BY hits DESC, i.id DESC LIMIT 1`,
      )
      .get(JSON.stringify(hashes), ...(o.family ? [o.family] : []));
    if (!best) {
      throw new KjitError('no image in the profile store has the IR of these counts', 'import into the store of a kjit that ran this image (or run it once with --profile-db)');
    }
    const bootId = this.db.transaction(() => {
      const machineId = this.machineId(o.machine);
      const r = this.db
        .prepare("INSERT INTO boots (image_id, machine_id, workload, mode, sysctls, started_at, ended_at, status, source) VALUES (?, ?, ?, 'import', '{}', ?, ?, 'ended', ?)")
        .run(best.id, machineId, o.workload, now(), now(), o.source);
      return Number(r.lastInsertRowid);
    }).immediate();
    this.flushCounts(bootId, counts);
    return { bootId, image: best.name };
  }

  /** Database size in bytes (pages in use, and the file with free pages). */
  size(): { bytes: number; free_bytes: number } {
    const page = this.db.pragma('page_size', { simple: true }) as number;
    const pages = this.db.pragma('page_count', { simple: true }) as number;
    const free = this.db.pragma('freelist_count', { simple: true }) as number;
    return { bytes: page * pages, free_bytes: page * free };
  }
}

function rowCounts(
  name: string,
  irHash: string,
  row: { shape: string; entry: number; branches: string; icalls: string; window_ms: number; window_ops: number },
): FunctionCounts {
  return {
    function: name,
    ir_hash: irHash,
    shape: row.shape,
    entry: row.entry,
    branches: JSON.parse(row.branches) as number[][],
    icalls: JSON.parse(row.icalls) as FunctionCounts['icalls'],
    window: { ms: row.window_ms, ops: row.window_ops },
  };
}
