/**
 * @fileoverview The regression check: is a set of new versions faster than
 * the code they would replace?  Not one noisy reading: the old and the new
 * code take turns in short intervals of the same running kernel (one
 * transition each, ABBA order so drift hits both alike), each interval
 * measured as the kernel thread's CPU nanoseconds per operation (time the
 * VM or other processes took the CPU away is not in it), and the two sets
 * of intervals compared with a one-sided permutation test
 * (simple-statistics).  The new code is kept only if it is faster: its
 * median cost is lower and the test rejects "not faster" at `alpha`.
 * judge() is pure; interleave() is the mechanism.
 */
import { median, permutationTest } from 'simple-statistics';

import type { KernelInstance } from '../kernel/instance.js';
import { seededRandom } from '../random.js';
import type { Installer } from '../rejit/installer.js';
import type { CodeVersion } from '../rejit/versions.js';

export interface AbParams {
  /** Old/new interval pairs. */
  pairs: number;
  intervalMs: number;
  /** Significance level of the one-sided test. */
  alpha: number;
  /** Permutations of the test. */
  permutations: number;
}

export const DEFAULT_AB: AbParams = { pairs: 10, intervalMs: 40, alpha: 0.1, permutations: 4000 };

export interface Verdict {
  keep: boolean;
  /** median new cost / median old cost (below 1: faster). */
  ratio: number;
  p: number;
  old_ns_per_op: number;
  new_ns_per_op: number;
  intervals: number;
  reason: string;
}

/** The verdict on per-interval costs (ns per operation) of the old and the new code. */
export function judge(oldNs: readonly number[], newNs: readonly number[], p: AbParams = DEFAULT_AB): Verdict {
  const o = oldNs.filter(Number.isFinite);
  const n = newNs.filter(Number.isFinite);
  if (o.length < 3 || n.length < 3) {
    return { keep: false, ratio: NaN, p: 1, old_ns_per_op: NaN, new_ns_per_op: NaN, intervals: o.length + n.length, reason: 'too few intervals with operations' };
  }
  const mo = median([...o]);
  const mn = median([...n]);
  const ratio = mn / mo;
  /* H1: the old code's cost is greater than the new code's */
  const pValue = permutationTest([...o], [...n], 'greater', p.permutations, seededRandom(0x6b6a6974) /* reproducible from its numbers */);
  const keep = ratio < 1 && pValue < p.alpha;
  const reason = keep
    ? `faster: ${((1 - ratio) * 100).toFixed(1)}% fewer ns/op (p=${pValue.toFixed(3)})`
    : ratio >= 1
      ? `not faster: ${((ratio - 1) * 100).toFixed(1)}% more ns/op (p=${pValue.toFixed(3)})`
      : `not shown faster: ${((1 - ratio) * 100).toFixed(1)}% fewer ns/op but p=${pValue.toFixed(3)} >= ${p.alpha}`;
  return { keep, ratio, p: pValue, old_ns_per_op: mo, new_ns_per_op: mn, intervals: o.length + n.length, reason };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Take turns between the live code of the functions of `fresh` and `fresh`
 * (compiled versions), judge, and leave the winner live: the new versions
 * if kept, else the old code (the new versions retired, freed after a grace
 * period by the caller's freeRetired).
 */
export async function interleave(instance: KernelInstance, installer: Installer, fresh: readonly CodeVersion[], p: AbParams = DEFAULT_AB): Promise<Verdict> {
  const previous = fresh.map((v) => installer.liveVersion(v.fn));
  for (const v of previous) if (v) v.pinned = true;
  const oldSet = () => {
    const activate = previous.filter((v): v is CodeVersion => v !== null);
    const revert = fresh.filter((_, i) => previous[i] === null).map((v) => v.fn);
    return installer.commit(activate, revert);
  };
  const measure = async () => {
    const c0 = instance.threadCpuNs();
    const o0 = instance.cb.getNumber('ops_done');
    await sleep(p.intervalMs);
    const ops = instance.cb.getNumber('ops_done') - o0;
    return ops > 0 ? Number(instance.threadCpuNs() - c0) / ops : NaN;
  };
  const oldNs: number[] = [];
  const newNs: number[] = [];
  let newLive = false;
  try {
    for (let i = 0; i < p.pairs; i++) {
      /* ABBA: old, new, new, old, old, new ... */
      const order = i % 2 === 0 ? [false, true] : [true, false];
      for (const wantNew of order) {
        if (wantNew !== newLive) {
          if (wantNew) await installer.commit(fresh);
          else await oldSet();
          newLive = wantNew;
          await sleep(2); /* the transition's own cost stays out of the interval */
        }
        (wantNew ? newNs : oldNs).push(await measure());
      }
    }
    const verdict = judge(oldNs, newNs, p);
    if (verdict.keep && !newLive) await installer.commit(fresh);
    if (!verdict.keep && newLive) await oldSet();
    return verdict;
  } catch (e) {
    if (newLive) await oldSet().catch(() => {});
    throw e;
  } finally {
    for (const v of previous) if (v) v.pinned = false;
  }
}
