/**
 * @fileoverview A temporary version: installed for a bounded time, then
 * replaced by the version that ran before it, and its data read once no
 * kernel task can still write it.  Instrumentation windows and live probes
 * are temporary versions.
 *
 *   1. compile and link the version (its data is zeroed in its object);
 *   2. pin the live version it replaces (if any), so the grace-period
 *      freeing does not take it while it is out of use;
 *   3. make the version live (one transition); `whileLive` runs;
 *   4. make the previous version live again (or the boot code), unpin it;
 *   5. copy the data out: from then on no call enters the version, so the
 *      data holds exactly what the calls made while it was live (a task
 *      still inside it, suspended, may add to it later: not counted).
 * The version is freed later, after its grace period, by whoever frees
 * retired versions (Installer.freeRetired): a task may stay suspended in
 * it for long (a blocked system call), and nothing here waits for that.
 * Whatever fails, step 4 runs once the version went live.
 */
import type { KernelInstance } from '../kernel/instance.js';
import { readWords } from '../native/libc.js';
import type { Installer } from './installer.js';
import type { CodeVersion, VersionKind } from './versions.js';

export interface TemporaryResult<T> {
  version: CodeVersion;
  /** The version's data (UnitData), as it was when it stopped being live. */
  words: BigUint64Array;
  live: T;
  compile_ms: number;
  install_ms: number;
  remove_ms: number;
}

export async function withTemporaryVersion<T>(
  instance: KernelInstance,
  installer: Installer,
  fn: string,
  kind: VersionKind,
  instrument: 'counts' | 'probe',
  whileLive: (v: CodeVersion) => Promise<T>,
): Promise<TemporaryResult<T>> {
  const t0 = performance.now();
  const previous = installer.liveVersion(fn);
  const v = await installer.compile(fn, kind, { instrument });
  const compileMs = performance.now() - t0;
  const data = v.data;
  if (!data) {
    installer.discard(v);
    throw new Error(`the ${kind} version of ${fn} carries no data`);
  }
  if (previous) previous.pinned = true;
  let installMs = 0;
  let removeMs = 0;
  let live: T;
  try {
    installMs = await installer.activate(v);
    live = await whileLive(v);
  } finally {
    const r0 = performance.now();
    try {
      if (v.state === 'live') {
        if (previous) await installer.commit([previous]);
        else await installer.revert(fn);
      } else if (v.state === 'compiled') {
        installer.discard(v);
      }
    } finally {
      if (previous) previous.pinned = false;
    }
    removeMs = performance.now() - r0;
  }
  if (instance.isDisposed || v.state === 'freed') throw new Error(`the data of ${fn}'s ${kind} version could not be read (the kernel went away)`);
  const words = readWords(data.address, data.words);
  return { version: v, words, live, compile_ms: compileMs, install_ms: installMs, remove_ms: removeMs };
}
