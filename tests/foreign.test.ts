// A real foreign image: the tree-sitter runtime and the C grammar's generated
// parser (C sources of the tree-sitter and tree-sitter-c npm packages) with
// ir/foreign/tree-sitter/driver.c, booted through the foreign-image contract.
// stock (per source file) and boot (whole image) compute the same checksum,
// and so do the instrumented and the profile-guided tiers the pgo mode
// installs into the running image.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { buildForeign, TREE_SITTER_SPEC } from '../dist/src/kernel/build-foreign.js';
import { execute, prepareBoot, type PreparedBoot } from '../dist/src/kernel/run.js';
import { summarize } from '../dist/src/pgo/metadata.js';
import { instrumentedTierCounts, tierFunctions, withKernel } from './kernel.js';

/* about a second of parsing per run on this machine: every text several times, edits included */
const OPS = 800n;
const run = { workload: 'entry', rate: 0, concurrency: 1, seed: 1n, counting: false, ops: OPS };

let boot: PreparedBoot;
let reference = '';

beforeAll(async () => {
  await buildForeign(); /* no-op when setup built it */
  boot = await prepareBoot({ image: TREE_SITTER_SPEC, mode: 'boot', nic: 'virtq', sysctls: [], patchable: true });
  reference = (await execute(boot, run)).checksum;
});
afterAll(() => boot?.dispose());

describe('the tree-sitter foreign image', () => {
  it('links: the runtime, the grammar and the driver, one unit per source file', () => {
    const units = new Set<string>();
    for (const f of boot.image.pristine.functions()) {
      if (!f.isDeclaration()) units.add(f.getStringAttribute('kjit-unit') ?? '');
    }
    expect(units).toContain('tree-sitter/lib/src/parser.c');
    expect(units).toContain('tree-sitter/lib/src/query.c');
    expect(units).toContain('tree-sitter-c/src/parser.c');
    expect(units).toContain('foreign/tree-sitter/driver.c');
    expect(boot.image.kind).toBe('entry');
  });

  it('gives the same checksum in stock and boot, and another for another operation count', async () => {
    const stock = await prepareBoot({ image: TREE_SITTER_SPEC, mode: 'stock', nic: 'virtq', sysctls: [] });
    try {
      const r = await execute(stock, run);
      expect(r.ops).toBe(Number(OPS));
      expect(r.checksum).toBe(reference);
    } finally {
      stock.dispose();
    }
    expect((await execute(boot, { ...run, ops: OPS + 1n })).checksum).not.toBe(reference);
  });

  it('gives the same checksum with an instrumented, then a profile-guided tier of the whole image live', async () => {
    const functions = tierFunctions(boot);
    const { counts } = await instrumentedTierCounts(boot, run, functions, reference);
    /* the parser, the lexer, the query engine and the driver all ran */
    for (const fn of ['ts_parser_parse', 'ts_lex', 'ts_query_cursor_next_capture', 'ts_entry']) {
      expect(counts.find((c) => c.function === fn)?.entry, fn).toBeGreaterThan(0);
    }
    expect(counts.find((c) => c.function === 'ts_entry')!.entry).toBe(Number(OPS));
    await withKernel(boot, run, async ({ instance, installer }) => {
      const { versions, unit } = await installer.compileTier({ functions, profile: { counts, summary: summarize(counts) }, pipeline: 'default<O3>' });
      expect(unit.profile.applied).toBe(counts.length);
      await installer.commit(versions);
      instance.start();
      await instance.join();
      instance.checkHealthy('profile-guided tier');
      expect(`0x${instance.cb.get('checksum').toString(16).padStart(16, '0')}`).toBe(reference);
    });
  });
});
