/**
 * @fileoverview Where running instances are found: one Unix socket per
 * instance, `<pid>.sock` in kjit's runtime directory ($XDG_RUNTIME_DIR/kjit,
 * or /run/kjit as root), a directory only its owner may enter (0700).
 *
 * A socket is stale when its process is gone (it crashed, or was killed
 * before it could remove the socket) or when nothing accepts connections on
 * it (its pid now belongs to another process).  Stale sockets are removed
 * whenever the directory is listed: by `kjit ps`, by a client looking for
 * an instance, and by an instance starting up.
 */
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';

import { ExitCode, KjitError } from '../errors.js';
import { processAlive } from '../scheduler/proc.js';

/** How long a socket may take to accept a probe connection before it is taken as live (a busy instance). */
const PROBE_TIMEOUT_MS = 1000;

/** The runtime directory for this user, or null if there is none (pure). */
export function runtimeDirFor(env: Readonly<Record<string, string | undefined>>, euid: number): string | null {
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'kjit');
  return euid === 0 ? '/run/kjit' : null;
}

export function runtimeDir(): string {
  const dir = runtimeDirFor(process.env, process.geteuid!());
  if (dir === null) {
    throw new KjitError('there is no runtime directory: XDG_RUNTIME_DIR is not set and kjit does not run as root', 'export XDG_RUNTIME_DIR=/run/user/$(id -u)');
  }
  return dir;
}

/** Create the runtime directory (0700) or check the existing one: ours, a real directory, 0700. */
export function ensureRuntimeDir(): string {
  const dir = runtimeDir();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  if (!st.isDirectory()) throw new KjitError(`the runtime directory ${dir} is not a directory`, 'remove it; kjit creates the directory itself');
  if (st.uid !== process.geteuid!()) {
    throw new KjitError(`the runtime directory ${dir} belongs to uid ${st.uid}, not to this user`, 'remove it, or point XDG_RUNTIME_DIR at a directory of your own', ExitCode.FAILURE);
  }
  if ((st.mode & 0o777) !== 0o700) chmodSync(dir, 0o700);
  return dir;
}

export function socketPath(dir: string, pid: number): string {
  return join(dir, `${pid}.sock`);
}

/** The pid a socket file is named for, or null if the name is not `<pid>.sock` (pure). */
export function pidOfSocket(name: string): number | null {
  const m = /^([1-9]\d{0,9})\.sock$/.exec(name);
  return m ? Number(m[1]) : null;
}

/** Does something accept connections at `path`?  A timeout counts as yes: never remove a socket that might be live. */
function accepts(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    const done = (live: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve(live);
    };
    const timer = setTimeout(() => done(true), PROBE_TIMEOUT_MS);
    s.once('connect', () => done(true));
    s.once('error', (e: NodeJS.ErrnoException) => done(e.code !== 'ECONNREFUSED' && e.code !== 'ENOENT'));
  });
}

export interface Swept {
  live: { pid: number; socket: string }[];
  removed: number[];
}

/** The instances whose sockets are live, after removing the stale ones. */
export async function sweep(dir: string): Promise<Swept> {
  const out: Swept = { live: [], removed: [] };
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir).sort()) {
    const pid = pidOfSocket(name);
    if (pid === null || pid === process.pid) continue; /* our own: the server replaces it */
    const socket = join(dir, name);
    if (processAlive(pid) && (await accepts(socket))) {
      out.live.push({ pid, socket });
    } else {
      rmSync(socket, { force: true });
      out.removed.push(pid);
    }
  }
  return out;
}
