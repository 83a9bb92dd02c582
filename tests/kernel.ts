// Shared by the test files that drive a kernel directly: one kernel of a
// prepared image with an installer, disposed after the body; a whole-image
// instrumented tier live from the first operation to the last.
import { expect } from 'vitest';

import { KernelInstance } from '../dist/src/kernel/instance.js';
import { type ExecuteRequest, instanceOptions, type PreparedBoot } from '../dist/src/kernel/run.js';
import { readWords } from '../dist/src/native/libc.js';
import { Installer } from '../dist/src/rejit/installer.js';
import type { FunctionCounts } from '../dist/src/sampler/counts.js';
import { decodeCounts, functionAt } from '../dist/src/sampler/instrument.js';
import { functionIrHashes } from '../dist/src/store/ir-hash.js';

export type Kernel = { instance: KernelInstance; installer: Installer };

export async function withKernel<T>(p: PreparedBoot, opts: ExecuteRequest, body: (k: Kernel) => Promise<T>): Promise<T> {
  const instance = KernelInstance.load(p.compiled.objects, instanceOptions(p, opts).opts);
  const installer = new Installer(instance, p);
  try {
    return await body({ instance, installer });
  } finally {
    await instance.dispose();
  }
}

/** Functions a whole-image tier of `p` can replace: boot code of their own, not the runtime's, not varargs. */
export function tierFunctions(p: PreparedBoot): string[] {
  const removed = new Set(p.compiled.report.removed.map((r) => r.name));
  const out: string[] = [];
  for (const f of p.image.pristine.functions()) {
    if (!f.isDeclaration() && !removed.has(f.name) && !f.name.startsWith('kjit_') && !f.isVarArg()) out.push(f.name);
  }
  return out;
}

/**
 * Run `opts` (a fixed operation count) with an instrumented tier of
 * `functions` live from the first operation to the last; the checksum must
 * be `reference`.  Returns the tier's size and the counts of every function
 * that ran.
 */
export async function instrumentedTierCounts(p: PreparedBoot, opts: ExecuteRequest & { ops: bigint }, functions: string[], reference: string): Promise<{ versions: number; counts: FunctionCounts[] }> {
  const hashes = functionIrHashes(p.image.pristine);
  return withKernel(p, opts, async ({ instance, installer }) => {
    const { versions } = await installer.compileTier({ functions, instrument: true, pipeline: 'default<O1>' });
    await installer.commit(versions);
    instance.start();
    await instance.join();
    instance.checkHealthy('instrumented tier');
    expect(`0x${instance.cb.get('checksum').toString(16).padStart(16, '0')}`).toBe(reference);
    const counts: FunctionCounts[] = [];
    for (const v of versions) {
      const c = decodeCounts(readWords(v.data!.address, v.data!.words), v.data!.counts!, (a) => functionAt(instance, a), {
        function: v.fn,
        ir_hash: hashes.get(v.fn)!,
        window: { ms: 0, ops: Number(opts.ops) },
      });
      if (c.entry > 0) counts.push(c);
    }
    return { versions: versions.length, counts };
  });
}
