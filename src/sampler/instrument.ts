/**
 * @fileoverview Idle-time instrumentation windows: exact counts for one hot
 * function.  The function is re-JITed with counters (src/rejit/unit.ts,
 * instrument 'counts'), made live through the install mechanism, left live
 * for a bounded window (milliseconds or operations), then replaced by the
 * version that ran before it (which is kept, pinned, meanwhile).  The
 * counters are read as soon as no call can enter the instrumented version
 * any more (src/rejit/temporary.ts): the counts are exact for the calls
 * made while the window was live.  What the window cost (its install and removal, and how slow
 * the kernel ran meanwhile) is measured by `kjit bench instrument`.
 *
 * Decoding the counters is pure (decodeCounts); the window is mechanism.
 */
import type { KernelInstance } from '../kernel/instance.js';
import { KernelState } from '../native/control-block.js';
import type { Installer } from '../rejit/installer.js';
import { withTemporaryVersion } from '../rejit/temporary.js';
import { type CountsLayout, PROBE_LAYOUT } from '../rejit/unit.js';
import type { FunctionCounts, IndirectCallSite } from './counts.js';

export interface WindowOptions {
  /** Close the window after this many milliseconds (default 200) ... */
  ms?: number;
  /** ... or after this many operations, whichever comes first. */
  ops?: number;
  /** The function's IR hash (src/store/ir-hash.ts), carried into the counts. */
  irHash?: string;
  /** Called once the instrumented version is live (a test starts its kernel here). */
  afterInstall?: () => void;
}

export interface WindowResult {
  counts: FunctionCounts;
  /** Building and linking the instrumented version. */
  compile_ms: number;
  /** Its redirection, and the redirection back. */
  install_ms: number;
  remove_ms: number;
}

/**
 * The counts in `words` (an instrumented version's data) as FunctionCounts.
 * `symbolize` names an indirect-call target's address (null: unknown code,
 * counted as `[unknown]`).
 */
export function decodeCounts(
  words: BigUint64Array,
  layout: CountsLayout,
  symbolize: (address: bigint) => string | null,
  meta: { function: string; ir_hash: string; window: { ms: number; ops: number } },
): FunctionCounts {
  const n = (w: bigint) => Number(w);
  let at = 1;
  const branches = layout.branches.map((succ) => {
    const row = Array.from(words.subarray(at, at + succ), n);
    at += succ;
    return row;
  });
  const icalls: IndirectCallSite[] = [];
  for (let i = 0; i < layout.icalls; i++) {
    const site = words.subarray(at, at + PROBE_LAYOUT.vpWords);
    at += PROBE_LAYOUT.vpWords;
    const byName = new Map<string, number>();
    for (let k = 0; k < PROBE_LAYOUT.vpTargets; k++) {
      const address = site[2 + 2 * k];
      if (address === 0n) break;
      const name = symbolize(address) ?? '[unknown]';
      byName.set(name, (byName.get(name) ?? 0) + n(site[3 + 2 * k]));
    }
    const targets = [...byName].map(([fn, count]) => ({ function: fn, count })).sort((a, b) => b.count - a.count);
    icalls.push({ total: n(site[0]), targets });
  }
  return { function: meta.function, ir_hash: meta.ir_hash, shape: layout.shape, entry: n(words[0]), branches, icalls, window: meta.window };
}

/** The function whose code starts exactly at `address`, if any. */
export function functionAt(instance: KernelInstance, address: bigint): string | null {
  const s = instance.jit.symbolize(address);
  return s && s.endsWith('+0x0') ? s.slice(0, -4) : null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Run one instrumentation window on `fn` of a running kernel and return its
 * exact counts.  Whatever happens, the version that ran before runs again.
 */
export async function instrumentationWindow(
  instance: KernelInstance,
  installer: Installer,
  fn: string,
  opts: WindowOptions = {},
): Promise<WindowResult> {
  const r = await withTemporaryVersion(instance, installer, fn, 'instrumented', 'counts', async () => {
    opts.afterInstall?.();
    const cb = instance.cb;
    const opsAt = cb.getNumber('ops_done');
    const openedAt = performance.now();
    const limitMs = opts.ms ?? 200;
    const limitOps = opts.ops ?? Infinity;
    const running = () => !instance.isDisposed && cb.getNumber('state') <= KernelState.RUNNING;
    while (performance.now() - openedAt < limitMs && cb.getNumber('ops_done') - opsAt < limitOps && running()) {
      await sleep(Math.max(1, Math.min(5, limitMs / 10)));
    }
    return { ms: performance.now() - openedAt, ops: cb.getNumber('ops_done') - opsAt };
  });
  const layout = r.version.data!.counts!;
  const counts = decodeCounts(r.words, layout, (a) => functionAt(instance, a), { function: fn, ir_hash: opts.irHash ?? '', window: r.live });
  return { counts, compile_ms: r.compile_ms, install_ms: r.install_ms, remove_ms: r.remove_ms };
}
