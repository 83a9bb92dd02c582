/**
 * @fileoverview Opening the profile store's database file safely.
 *
 * In order:
 *   1. a missing or empty file is a new store;
 *   2. the first 100 bytes are read without SQLite: not SQLite's header, or
 *      another application's id, is a foreign file; a schema version newer
 *      than this kjit's is refused before SQLite touches anything;
 *   3. SQLite opens it (recovering a -wal a killed writer left: only
 *      committed transactions are in it) and checks it: the application id,
 *      the version (again: the -wal may hold a newer one) and
 *      `PRAGMA quick_check`; a file SQLite calls corrupt or not a database
 *      is corrupt;
 *   4. a corrupt or foreign file is closed and moved aside with its -wal
 *      and -shm (renamed PATH.corrupt-TIMESTAMP), the reason is reported,
 *      and a new store starts at PATH; opened for reading only, it is
 *      refused instead and left where it is;
 *   5. WAL, synchronous (STORE_PARAMS.synchronous), a busy timeout, then the
 *      missing migration steps, each in a transaction with its version.
 */
import { closeSync, existsSync, mkdirSync, openSync, readSync, renameSync, statSync } from 'node:fs';
import { dirname } from 'node:path';

import Database from 'better-sqlite3';

import { ExitCode, KjitError } from '../errors.js';
import { STORE_PARAMS } from './params.js';
import { APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION } from './schema.js';

export type DB = Database.Database;

export interface OpenOptions {
  /** Read only: nothing is created, migrated or moved; a bad file is refused. */
  readonly?: boolean;
  /** Build the schema only up to this version (tests of migrations). */
  version?: number;
}

export interface Opened {
  db: DB;
  /** Set when the file at the path was corrupt or foreign and was moved aside. */
  recovered: { problem: string; movedTo: string } | null;
  /** Migration steps applied now. */
  migrated: number[];
}

const SQLITE_MAGIC = 'SQLite format 3\u0000';

type Verdict = { ok: true } | { ok: false; problem: string };

/** What the header says, without SQLite: it must not touch a file it is going to refuse. */
function checkHeader(path: string): Verdict & { version?: number } {
  const head = Buffer.alloc(100);
  const fd = openSync(path, 'r');
  let n = 0;
  try {
    n = readSync(fd, head, 0, 100, 0);
  } finally {
    closeSync(fd);
  }
  if (n < 100 || head.toString('latin1', 0, 16) !== SQLITE_MAGIC) return { ok: false, problem: 'is not an SQLite database' };
  const version = head.readUInt32BE(60);
  const app = head.readUInt32BE(68);
  if (app !== 0 && app !== APPLICATION_ID) return { ok: false, problem: `is another application's SQLite database (application id 0x${app.toString(16)})` };
  return { ok: true, version };
}

function newerError(path: string, version: number): KjitError {
  return new KjitError(
    `profile store ${path} has schema version ${version}, newer than this kjit's ${SCHEMA_VERSION}: it was not opened, and is unchanged`,
    'use the newer kjit that wrote it, or pass --profile-db ANOTHER_PATH (or --no-profile-db)',
  );
}

function badFileError(path: string, problem: string): KjitError {
  return new KjitError(`profile store ${path} ${problem}`, 'pass a kjit profile database, or let `kjit run --profile-db PATH` move it aside and start a new one');
}

/** Checks an open database; null when it is a kjit store this kjit can use. */
function checkOpen(db: DB, path: string): Verdict {
  let app: number;
  let version: number;
  try {
    app = db.pragma('application_id', { simple: true }) as number;
    version = db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) throw newerError(path, version);
    if (app === 0) {
      const tables = db.prepare("SELECT count(*) FROM sqlite_schema WHERE type = 'table'").pluck().get() as number;
      if (tables > 0 || version > 0) return { ok: false, problem: 'is an SQLite database of another application (no kjit application id)' };
    } else if (app !== APPLICATION_ID) {
      return { ok: false, problem: `is another application's SQLite database (application id 0x${app.toString(16)})` };
    }
    const check = db.prepare('PRAGMA quick_check(1)').pluck().get() as string;
    if (check !== 'ok') return { ok: false, problem: `is corrupt (quick_check: ${check})` };
    return { ok: true };
  } catch (e) {
    if (e instanceof KjitError) throw e;
    if (isCorruption(e)) return { ok: false, problem: `is corrupt (${(e as Error).message})` };
    throw e;
  }
}

/** SQLite's verdicts that a file is damaged or not a database. */
export function isCorruption(e: unknown): boolean {
  const code = (e as { code?: unknown }).code;
  return typeof code === 'string' && /^SQLITE_(CORRUPT|NOTADB)/.test(code);
}

function stamp(d = new Date()): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

/** Renames the file and its -wal and -shm to PATH.corrupt-TIMESTAMP[-wal|-shm]; returns the new path. */
function moveAside(path: string): string {
  let to = `${path}.corrupt-${stamp()}`;
  for (let i = 1; existsSync(to); i++) to = `${path}.corrupt-${stamp()}-${i}`;
  for (const suffix of ['-wal', '-shm']) if (existsSync(path + suffix)) renameSync(path + suffix, to + suffix);
  renameSync(path, to);
  return to;
}

function configure(db: DB): void {
  /* a new file: pages freed by retention go back to the OS (incremental_vacuum after deletes) */
  if ((db.pragma('page_count', { simple: true }) as number) === 0) db.pragma('auto_vacuum = INCREMENTAL');
  const mode = db.pragma('journal_mode = WAL', { simple: true }) as string;
  if (mode !== 'wal') throw new KjitError(`profile store ${db.name} cannot use write-ahead logging (journal mode ${mode})`, 'put it on a local file system', ExitCode.FAILURE);
  db.pragma(`synchronous = ${STORE_PARAMS.synchronous}`);
}

/** Applies the steps after the database's version, up to `target`. */
export function migrate(db: DB, target = SCHEMA_VERSION): number[] {
  const applied: number[] = [];
  const from = db.pragma('user_version', { simple: true }) as number;
  for (const step of MIGRATIONS) {
    if (step.version <= from || step.version > target) continue;
    db.transaction(() => {
      if (step.version === 1) db.pragma(`application_id = ${APPLICATION_ID}`);
      db.exec(step.sql);
      db.pragma(`user_version = ${step.version}`);
    }).immediate();
    applied.push(step.version);
  }
  return applied;
}

export function openDatabase(path: string, opts: OpenOptions = {}): Opened {
  const target = opts.version ?? SCHEMA_VERSION;
  let recovered: Opened['recovered'] = null;
  const exists = existsSync(path);
  if (exists && !statSync(path).isFile()) throw new KjitError(`profile store ${path} is not a file`, 'pass the path of a database file');
  if (!exists) {
    if (opts.readonly) throw new KjitError(`profile store ${path} does not exist`, 'pass the database `kjit run --profile-db PATH` wrote');
    mkdirSync(dirname(path), { recursive: true });
  } else if (statSync(path).size > 0) {
    const head = checkHeader(path);
    if (head.ok && head.version !== undefined && head.version > SCHEMA_VERSION) throw newerError(path, head.version);
    if (!head.ok) {
      if (opts.readonly) throw badFileError(path, head.problem);
      recovered = { problem: head.problem, movedTo: moveAside(path) };
    }
  }
  let db = new Database(path, { readonly: opts.readonly === true, fileMustExist: opts.readonly === true, timeout: STORE_PARAMS.busyTimeoutMs });
  if (!recovered) {
    let verdict: Verdict;
    try {
      verdict = checkOpen(db, path);
    } catch (e) {
      db.close();
      throw e;
    }
    if (!verdict.ok) {
      db.close();
      if (opts.readonly) throw badFileError(path, verdict.problem);
      recovered = { problem: verdict.problem, movedTo: moveAside(path) };
      db = new Database(path, { timeout: STORE_PARAMS.busyTimeoutMs });
    }
  }
  if (opts.readonly) {
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version < SCHEMA_VERSION) {
      db.close();
      throw new KjitError(`profile store ${path} has schema version ${version}, older than this kjit's ${SCHEMA_VERSION}`, 'run `kjit run --profile-db PATH` once to migrate it');
    }
    return { db, recovered: null, migrated: [] };
  }
  try {
    configure(db);
    const migrated = migrate(db, target);
    return { db, recovered, migrated };
  } catch (e) {
    db.close();
    throw e;
  }
}
