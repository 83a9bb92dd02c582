/**
 * @fileoverview The profile store's tunables, in one table, and where the
 * database lives by default.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';

export const STORE_PARAMS = {
  /**
   * Boots kept per (image family, machine class, workload); older ones are
   * deleted with everything recorded about them when a boot ends.  About
   * 0.1 MB a boot of 60 s (bench/store.ts): 20 keep a key under 3 MB.
   */
  keepBoots: 20,
  /** Benchmark reports kept per suite. */
  keepBenchResults: 200,
  /** Weight of a boot = decayPerBoot ^ (boots newer than it): the newest counts 1, the one before 0.75, ... */
  decayPerBoot: 0.75,
  /** Whole chains stored per boot (the hottest; a run keeps up to 100,000 in memory). */
  hotPathsPerBoot: 1000,
  /** A running kernel's aggregates are written this often (and when it stops). */
  flushEveryMs: 10_000,
  /**
   * Another kjit writing the same database holds its lock for a flush
   * (milliseconds); wait this long for it before failing.
   */
  busyTimeoutMs: 5_000,
  /**
   * PRAGMA synchronous.  In WAL mode a commit is appended to the -wal file
   * before COMMIT returns, so a process killed at any point (kill -9) loses
   * nothing committed whatever this says; FULL also fsyncs the WAL at every
   * commit, so a committed flush survives an OS crash or power loss too.
   * It costs about 0.3 ms a commit here, and a run commits once every
   * flushEveryMs: cheap enough to have.  (NORMAL would be as consistent,
   * fsyncing only at checkpoints, and could lose the last flushes on power
   * loss, never the database.)
   */
  synchronous: 'FULL' as 'FULL' | 'NORMAL',
};

/**
 * The database `kjit run` uses unless told otherwise: $KJIT_PROFILE_DB
 * ('off' or '0': none), else $XDG_DATA_HOME/kjit/profiles.db, else
 * ~/.local/share/kjit/profiles.db.  Tests and benchmarks never use it: only
 * the command line asks for it.
 */
export function defaultProfileDb(env: NodeJS.ProcessEnv = process.env): string | null {
  const fromEnv = env.KJIT_PROFILE_DB;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv === 'off' || fromEnv === '0' ? null : fromEnv;
  const data = env.XDG_DATA_HOME && env.XDG_DATA_HOME.startsWith('/') ? env.XDG_DATA_HOME : join(env.HOME || homedir(), '.local', 'share');
  return join(data, 'kjit', 'profiles.db');
}
