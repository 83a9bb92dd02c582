// Issue 6, the profile store: profiles and compile history in SQLite, reused
// across boots, safe against crashes and stale code.  Migrations from every
// earlier schema version; merging with decay; refusal of profiles of another
// image family or machine class; staleness (one function's IR changed: its
// profile is not applied, the others' are, a renamed one is matched by
// shape); a writer killed with SIGKILL 60 times; corrupt, foreign and newer
// files; readers while a process writes; exact counts through
// llvm-profdata-19 and back; `kjit run --profile-db` and `kjit profile`.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import { KjitError } from '../dist/src/errors.js';
import { loadImage } from '../dist/src/kernel/image.js';
import type { PreparedBoot } from '../dist/src/kernel/run.js';
import { Context } from '../dist/src/native/llvm.js';
import type { FunctionCounts } from '../dist/src/sampler/counts.js';
import { ProfileBuilder } from '../dist/src/sampler/profile.js';
import { functionIrHash, functionIrHashes } from '../dist/src/store/ir-hash.js';
import { baseName, matchFunctions } from '../dist/src/store/merge.js';
import { openDatabase } from '../dist/src/store/open.js';
import { defaultProfileDb } from '../dist/src/store/params.js';
import { funcHash, parseProftext, toProftext } from '../dist/src/store/proftext.js';
import { APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION } from '../dist/src/store/schema.js';
import { StoreSession } from '../dist/src/store/session.js';
import { type BootInfo, type ProfileAggregates, ProfileStore } from '../dist/src/store/store.js';

const ROOT = join(import.meta.dirname, '..');
const KJIT = join(ROOT, 'bin', 'kjit.js');
let dir = '';
let n = 0;
const fresh = (name = 'p') => join(dir, `${name}-${++n}.db`);

function kjit(...args: string[]) {
  const r = spawnSync(process.execPath, [KJIT, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function expectCleanError(r: ReturnType<typeof kjit>, problem: RegExp): void {
  expect(r.status).toBe(2);
  const lines = r.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^kjit: .* — fix: .+/);
  expect(lines[0]).toMatch(problem);
}

function cc(name: string, source: string): string {
  const c = join(dir, `${name}.c`);
  writeFileSync(c, source);
  const bc = join(dir, `${name}.bc`);
  const r = spawnSync('clang-19', ['-O2', '-Xclang', '-disable-llvm-passes', '-emit-llvm', '-c', c, '-o', bc], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return bc;
}

const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

/* ---- synthetic boots ------------------------------------------------------------ */

const FNS = ['f_a', 'f_b', 'f_c', 'f_d'];
const hashOf = (name: string) => createHash('sha256').update(`ir of ${name}`).digest('hex').slice(0, 32);

function boot(o: { family?: string; cls?: string; workload?: string; functions?: Map<string, string>; imageHash?: string; entry?: string } = {}): BootInfo {
  const functions = o.functions ?? new Map(FNS.map((f) => [f, hashOf(f)]));
  return {
    image: {
      hash: o.imageHash ?? `img-${o.family ?? 'kernel.bc'}`,
      runtimeHash: 'rt',
      name: o.family ?? 'kernel.bc',
      path: `/images/${o.family ?? 'kernel.bc'}`,
      ...(o.entry ? { init: 'init', entry: o.entry } : { init: 'kernel_init', run: 'kernel_run' }),
      functions: () => functions,
    },
    machine: { cpuModel: 'Test CPU', llvmCpu: o.cls ?? 'testcpu', features: '+sse4.2' },
    workload: o.workload ?? 'web',
    mode: 'boot',
    sysctls: {},
  };
}

function profile(selfs: Record<string, number>): ProfileAggregates {
  const names = Object.keys(selfs);
  return {
    samples: names.reduce((s, f) => s + selfs[f]!, 0),
    functions: names.map((f) => ({ function: f, self: selfs[f]!, total: selfs[f]! * 2 })),
    edges: names.slice(1).map((f, i) => ({ caller: names[i]!, callee: f, samples: selfs[f]! })),
    hotPaths: [{ chain: names, samples: selfs[names.at(-1)!]! }],
  };
}

function counts(fn: string, scale: number, hash = hashOf(fn)): FunctionCounts {
  return {
    function: fn,
    ir_hash: hash,
    shape: 'b2.3|i1',
    entry: 100 * scale,
    branches: [
      [60 * scale, 40 * scale],
      [1 * scale, 2 * scale, 3 * scale],
    ],
    icalls: [{ total: 90 * scale, targets: [{ function: 'f_d', count: 60 * scale }, { function: 'handler_x', count: 25 * scale }] }],
    window: { ms: 200, ops: 1000 },
  };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'kjit-store-'));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/* ---- schema --------------------------------------------------------------------- */

describe('schema and migrations', () => {
  const schemaOf = (path: string) => {
    const o = openDatabase(path, { readonly: true });
    try {
      return o.db.prepare("SELECT type, name, sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY name").all();
    } finally {
      o.db.close();
    }
  };

  it('creates the whole schema in a new file: WAL, kjit application id, latest version', () => {
    const path = fresh();
    using store = ProfileStore.open(path);
    expect(store.migrated).toEqual(MIGRATIONS.map((m) => m.version));
    expect(store.db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    expect(store.db.pragma('application_id', { simple: true })).toBe(APPLICATION_ID);
    expect(store.db.pragma('journal_mode', { simple: true })).toBe('wal');
    for (const table of ['images', 'machines', 'boots', 'functions', 'samples', 'edges', 'hot_paths', 'counts', 'code_versions', 'compile_log', 'decisions', 'bench_results']) {
      expect(store.db.prepare("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?").pluck().get(table)).toBe(1);
    }
  });

  it('numbers its steps 1, 2, ... with no gap', () => {
    expect(MIGRATIONS.map((m) => m.version)).toEqual(MIGRATIONS.map((_, i) => i + 1));
  });

  for (const from of MIGRATIONS.slice(0, -1).map((m) => m.version)) {
    it(`migrates a version ${from} database to version ${SCHEMA_VERSION}, keeping its boots and profiles`, () => {
      const path = fresh(`v${from}`);
      const old = openDatabase(path, { version: from });
      expect(old.db.pragma('user_version', { simple: true })).toBe(from);
      /* data as a kjit of that version wrote it (only the columns it had) */
      old.db.exec(`
        INSERT INTO images (id, hash, runtime_hash, name, path, init, run, functions_hashed, first_seen) VALUES (1, 'h', 'r', 'kernel.bc', '/k', 'kernel_init', 'kernel_run', 1, '2026-01-01');
        INSERT INTO machines (id, cpu_model, llvm_cpu, features) VALUES (1, 'Test CPU', 'testcpu', '');
        INSERT INTO boots (id, image_id, machine_id, workload, mode, sysctls, started_at, ended_at, status, samples) VALUES (1, 1, 1, 'web', 'boot', '{}', '2026-01-01', '2026-01-01', 'ended', 30);
        INSERT INTO functions (id, name, ir_hash) VALUES (1, 'f_a', '${hashOf('f_a')}'), (2, 'f_b', '${hashOf('f_b')}');
        INSERT INTO image_functions VALUES (1, 1), (1, 2);
        INSERT INTO samples VALUES (1, 1, 20, 30), (1, 2, 10, 10);
        INSERT INTO edges VALUES (1, '[[1, 2, 10]]');
        INSERT INTO hot_paths VALUES (1, '[[[1, 2], 10]]');
      `);
      old.db.close();
      using store = ProfileStore.open(path);
      expect(store.migrated).toEqual(MIGRATIONS.filter((m) => m.version > from).map((m) => m.version));
      const m = store.loadMerged({ family: 'kernel.bc', machineClass: 'testcpu', workload: 'web', functions: new Map(FNS.map((f) => [f, hashOf(f)])) });
      expect(m.boots).toEqual([{ id: 1, weight: 1 }]);
      expect(m.functions).toEqual([
        { function: 'f_a', self: 20, total: 30 },
        { function: 'f_b', self: 10, total: 10 },
      ]);
      expect(m.edges).toEqual([{ caller: 'f_a', callee: 'f_b', samples: 10 }]);
      expect(store.listBoots()[0]).toMatchObject({ id: 1, source: 'run', flushes: 0 });
      store.close();
      const latest = fresh('latest');
      ProfileStore.open(latest).close();
      expect(schemaOf(path)).toEqual(schemaOf(latest));
    });
  }

  it('runs each step in a transaction with its version: a failing step leaves the previous version', () => {
    const path = fresh();
    const o = openDatabase(path, { version: 1 });
    o.db.exec('CREATE TABLE counts (x)'); /* step 2 will fail on it */
    o.db.close();
    expect(() => ProfileStore.open(path)).toThrow(/counts already exists/);
    const again = openDatabase(path, { version: 1 });
    expect(again.db.pragma('user_version', { simple: true })).toBe(1);
    again.db.close();
  });
});

/* ---- merging ---------------------------------------------------------------------- */

describe('merging boots', () => {
  it('weighs the newest boot 1 and each older one decay times the next, for samples, edges, paths and counts', () => {
    using store = ProfileStore.open(fresh());
    const ids: number[] = [];
    for (const [k, self] of [100, 200, 400].entries()) {
      const id = store.recordBoot(boot());
      store.flushProfile(id, profile({ f_a: self, f_b: self / 2 }));
      store.flushCounts(id, [counts('f_a', k + 1)]);
      store.endBoot(id, { status: 'ended', seconds: 1, ops: 10 });
      ids.push(id);
    }
    /* another workload's boot is not merged */
    const other = store.recordBoot(boot({ workload: 'kv' }));
    store.flushProfile(other, profile({ f_a: 1e6 }));
    const m = store.loadMerged({ family: 'kernel.bc', machineClass: 'testcpu', workload: 'web' }, { decay: 0.5 });
    expect(m.boots).toEqual([
      { id: ids[2], weight: 1 },
      { id: ids[1], weight: 0.5 },
      { id: ids[0], weight: 0.25 },
    ]);
    expect(m.functions[0]).toEqual({ function: 'f_a', self: 400 + 100 + 25, total: 2 * (400 + 100 + 25) });
    expect(m.edges).toEqual([{ caller: 'f_a', callee: 'f_b', samples: 200 + 50 + 12.5 }]);
    expect(m.hotPaths).toEqual([{ chain: ['f_a', 'f_b'], samples: 262.5 }]);
    const c = m.counts.find((x) => x.function === 'f_a')!;
    const w = 3 + 2 * 0.5 + 1 * 0.25; /* scales 3, 2, 1 */
    expect(c.entry).toBe(Math.round(100 * w));
    expect(c.branches).toEqual([
      [Math.round(60 * w), Math.round(40 * w)],
      [Math.round(1 * w), Math.round(2 * w), Math.round(3 * w)],
    ]);
    expect(c.icalls[0]).toEqual({ total: Math.round(90 * w), targets: [{ function: 'f_d', count: Math.round(60 * w) }, { function: 'handler_x', count: Math.round(25 * w) }] });
    /* decay 1: a plain sum; maxBoots: only the newest */
    expect(store.loadMerged({ family: 'kernel.bc', machineClass: 'testcpu', workload: 'web' }, { decay: 1 }).functions[0]!.self).toBe(700);
    expect(store.loadMerged({ family: 'kernel.bc', machineClass: 'testcpu', workload: 'web' }, { maxBoots: 1 }).functions[0]!.self).toBe(400);
  });

  it('adds two instrumentation windows of one function in one boot', () => {
    using store = ProfileStore.open(fresh());
    const id = store.recordBoot(boot());
    store.flushCounts(id, [counts('f_a', 1)]);
    store.flushCounts(id, [counts('f_a', 2)]);
    const c = store.loadMerged({ family: 'kernel.bc', machineClass: 'testcpu', workload: 'web' }).counts[0]!;
    expect(c.entry).toBe(300);
    expect(c.branches[1]).toEqual([3, 6, 9]);
    expect(c.window).toEqual({ ms: 400, ops: 2000 });
  });

  it('refuses boots of another machine class or image family unless forced', () => {
    using store = ProfileStore.open(fresh());
    const mine = store.recordBoot(boot());
    store.flushProfile(mine, profile({ f_a: 10 }));
    const otherCpu = store.recordBoot(boot({ cls: 'othercpu' }));
    store.flushProfile(otherCpu, profile({ f_a: 1000 }));
    const otherImage = store.recordBoot(boot({ family: 'other.bc' }));
    store.flushProfile(otherImage, profile({ f_a: 5000 }));
    const target = { family: 'kernel.bc', machineClass: 'testcpu', workload: 'web' };
    /* the target's own boots: the others are simply not its */
    expect(store.loadMerged(target).functions[0]!.self).toBe(10);
    const refusal = (f: () => unknown, what: RegExp) => {
      let err: unknown;
      try {
        f();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(KjitError);
      expect((err as KjitError).problem).toMatch(what);
      expect((err as KjitError).fix).toMatch(/--force/);
    };
    refusal(() => store.loadMerged(target, { boots: [mine, otherCpu] }), /machine class 'othercpu'/);
    refusal(() => store.loadMerged(target, { boots: [otherImage] }), /image family 'other.bc'/);
    refusal(() => store.loadMerged(target, { from: { machineClass: 'othercpu' } }), /machine class 'othercpu'/);
    expect(store.loadMerged(target, { boots: [mine, otherCpu], force: true, decay: 1 }).functions[0]!.self).toBe(1010);
    expect(store.loadMerged(target, { from: { family: 'other.bc' }, force: true }).functions[0]!.self).toBe(5000);
  });

  it('keeps the newest keepBoots boots of a key when a boot ends, and deletes everything of the others', () => {
    using store = ProfileStore.open(fresh());
    const ids: number[] = [];
    for (let i = 0; i < 4; i++) {
      const id = store.recordBoot(boot());
      store.flushProfile(id, profile({ f_a: i + 1 }));
      store.flushCounts(id, [counts('f_a', 1)]);
      store.logDecision(id, { kind: 'reoptimize', function: 'f_a', reason: 'hot-and-stable', numbers: { self_pct: 12 } });
      store.endBoot(id, { status: 'ended' }, 2);
      ids.push(id);
    }
    expect(store.listBoots().map((b) => b.id)).toEqual([ids[3], ids[2]]);
    for (const table of ['samples', 'edges', 'hot_paths', 'counts', 'decisions']) {
      expect(store.db.prepare(`SELECT count(*) FROM ${table} WHERE boot_id IN (?, ?)`).pluck().get(ids[0], ids[1])).toBe(0);
    }
  });

  it('records compiles and decisions with their reasons, and benchmark reports', () => {
    using store = ProfileStore.open(fresh());
    const id = store.recordBoot(boot());
    store.logCompile(id, { function: 'f_a', version: 3, tier: 'optimized', reason: 'hot and stable', compile_ms: 41, code_bytes: 900, outcome: 'installed', at_s: 12 });
    store.logCompile(id, { function: 'f_a', version: 3, tier: 'optimized', reason: 'hot and stable', outcome: 'rolled-back', why: 'fault at 0x1234' });
    store.logDecision(id, { kind: 'instrument', function: 'f_b', reason: 'hot-and-unprofiled', numbers: { self_pct: 8.5, samples: 300 } });
    const shown = store.showBoot(id);
    expect(shown.compile_log.map((c) => c.outcome)).toEqual(['installed', 'rolled-back']);
    expect(shown.compile_log[1]).toMatchObject({ function: 'f_a', why: 'fault at 0x1234' });
    expect(store.db.prepare('SELECT state, code_bytes FROM code_versions WHERE boot_id = ?').get(id)).toEqual({ state: 'rolled-back', code_bytes: 900 });
    expect(shown.decisions).toEqual([{ kind: 'instrument', function: 'f_b', reason: 'hot-and-unprofiled', numbers: { self_pct: 8.5, samples: 300 }, at_s: null }]);
    store.saveBench({ suite: 'store', format: 'kjit-bench-store/1', env: { date: '2026-11-29', commit: 'abc' } });
    expect(store.benchResults('store')[0]!.report).toMatchObject({ suite: 'store', env: { commit: 'abc' } });
  });
});

/* ---- staleness ------------------------------------------------------------------------ */

describe('staleness', () => {
  it('matches by IR hash, then by shape where unambiguous, and applies nothing stale', () => {
    const stored = [
      { id: 1, name: 'same', ir_hash: 'h1' },
      { id: 2, name: 'old_name', ir_hash: 'h2' } /* renamed */,
      { id: 3, name: 'changed', ir_hash: 'h3' } /* IR changed */,
      { id: 4, name: 'twin', ir_hash: 'h4' } /* two functions have this IR now: ambiguous */,
      { id: 5, name: 'list_del.239', ir_hash: 'h5' } /* moved: the suffix picks the one */,
      { id: 6, name: '[native]', ir_hash: '' },
    ];
    const current = new Map([
      ['same', 'h1'],
      ['new_name', 'h2'],
      ['changed', 'h3x'],
      ['twin_a', 'h4'],
      ['twin_b', 'h4'],
      ['list_del.240', 'h5'],
      ['other.7', 'h5'],
    ]);
    const m = matchFunctions(stored, current);
    expect(m.get(1)).toEqual({ kind: 'same', name: 'same' });
    expect(m.get(2)).toEqual({ kind: 'shape', name: 'new_name' });
    expect(m.get(3)).toEqual({ kind: 'stale' });
    expect(m.get(4)).toEqual({ kind: 'stale' });
    expect(m.get(5)).toEqual({ kind: 'shape', name: 'list_del.240' });
    expect(m.get(6)).toEqual({ kind: 'unhashed', name: '[native]' });
    expect(baseName('kmemcpy.53')).toBe('kmemcpy');
    /* two stored functions claiming one: neither */
    const both = matchFunctions(
      [
        { id: 1, name: 'x', ir_hash: 'h' },
        { id: 2, name: 'y', ir_hash: 'h' },
      ],
      new Map([['z', 'h']]),
    );
    expect([both.get(1), both.get(2)]).toEqual([{ kind: 'stale' }, { kind: 'stale' }]);
  });

  describe('with real images (one function\'s IR changed, one renamed)', () => {
    const SRC = (changed: boolean, renamed: boolean) => `#include <stdint.h>
static uint64_t state;
void init(void) { state = 1; }
__attribute__((noinline)) uint64_t keep(uint64_t x) { return x * 2654435761u + (x >> 7); }
__attribute__((noinline)) uint64_t ${renamed ? 'mixer2' : 'mixer'}(uint64_t x) { for (int i = 0; i < 8; i++) x ^= x << 13, x ^= x >> 7; return x; }
__attribute__((noinline)) uint64_t tweak(uint64_t x) { return x + ${changed ? 3 : 1}; }
uint64_t entry(uint64_t i) { state = keep(state) ^ ${renamed ? 'mixer2' : 'mixer'}(i) ^ tweak(i); return state; }
`;
    let v1 = '';
    let v2 = '';
    let h1 = new Map<string, string>();
    let h2 = new Map<string, string>();

    beforeAll(() => {
      v1 = cc('img_v1', SRC(false, false));
      v2 = cc('img_v2', SRC(true, true));
      /* v2 under the same file name as v1: the same image family */
      const fam = join(dir, 'fam');
      spawnSync('mkdir', ['-p', join(fam, 'a'), join(fam, 'b')]);
      writeFileSync(join(fam, 'a', 'img.bc'), readFileSync(v1));
      writeFileSync(join(fam, 'b', 'img.bc'), readFileSync(v2));
      v1 = join(fam, 'a', 'img.bc');
      v2 = join(fam, 'b', 'img.bc');
      const ctx = Context.create();
      try {
        for (const [path, set] of [
          [v1, (m: Map<string, string>) => (h1 = m)],
          [v2, (m: Map<string, string>) => (h2 = m)],
        ] as const) {
          const image = loadImage(ctx, { path, init: 'init', entry: 'entry' });
          set(functionIrHashes(image.pristine));
          /* the fast path (one print of the module) gives what hashing each function does */
          for (const f of image.pristine.functions()) if (!f.isDeclaration()) expect(functionIrHash(f)).toBe(h1.size && path === v1 ? h1.get(f.name) : h2.get(f.name));
          image.dispose();
        }
      } finally {
        ctx.dispose();
      }
    });

    it('hashes a function by its code, not its name: renamed, the same hash; changed, another', () => {
      expect(h2.get('mixer2')).toBe(h1.get('mixer'));
      expect(h2.get('keep')).toBe(h1.get('keep'));
      expect(h2.get('tweak')).not.toBe(h1.get('tweak'));
    });

    it('applies the profile of unchanged and renamed functions, never the changed one\'s, and `kjit profile stale` says so', () => {
      const path = fresh();
      {
        using store = ProfileStore.open(path);
        const id = store.recordBoot(boot({ family: 'img.bc', imageHash: 'v1', functions: h1, entry: 'entry' }));
        store.flushProfile(id, {
          samples: 100,
          functions: [
            { function: 'entry', self: 0, total: 100 },
            { function: 'keep', self: 50, total: 60 },
            { function: 'mixer', self: 30, total: 30 },
            { function: 'tweak', self: 20, total: 20 },
          ],
          edges: [
            { caller: 'entry', callee: 'keep', samples: 10 },
            { caller: 'entry', callee: 'tweak', samples: 20 },
          ],
          hotPaths: [
            { chain: ['entry', 'keep'], samples: 10 },
            { chain: ['entry', 'tweak'], samples: 20 },
          ],
        });
        store.flushCounts(id, [
          { ...counts('tweak', 1, h1.get('tweak')!), shape: 'b|i0', branches: [], icalls: [] },
          { ...counts('mixer', 1, h1.get('mixer')!), shape: 'b2|i0', branches: [[7, 1]], icalls: [] },
        ]);
        store.endBoot(id, { status: 'ended' });
        const m = store.loadMerged({ family: 'img.bc', machineClass: 'testcpu', workload: 'web', functions: h2 });
        /* entry calls the renamed function: its own IR changed too, so it is stale, and so is every edge and path through it */
        expect(h2.get('entry')).not.toBe(h1.get('entry'));
        expect(m.functions.map((f) => f.function).sort()).toEqual(['keep', 'mixer2']);
        expect(m.counts.map((c) => c.function)).toEqual(['mixer2']);
        expect(m.edges).toEqual([]);
        expect(m.hotPaths).toEqual([]);
        expect(m.matching).toMatchObject({ functions_total: 4, functions_matched: 2, functions_matched_by_shape: 1, functions_stale: 2, samples_total: 100, samples_matched: 80 });
      }
      const r = kjit('profile', 'stale', '--db', path, '--image', v2, '--init', 'init', '--entry', 'entry', '--json');
      expect(r.stderr).toBe('');
      expect(JSON.parse(r.stdout)).toEqual({ functions_total: 4, functions_matched: 2, functions_matched_by_shape: 1, samples_matched_pct: 80 });
      /* against the image it was recorded from, everything matches (the store knows its init and entry) */
      expect(JSON.parse(kjit('profile', 'stale', '--db', path, '--image', v1, '--json').stdout)).toEqual({
        functions_total: 4,
        functions_matched: 4,
        functions_matched_by_shape: 0,
        samples_matched_pct: 100,
      });
    });
  });
});

/* ---- bad files ----------------------------------------------------------------------- */

describe('corrupt, foreign and newer files', () => {
  const movedAside = (path: string) => readdirSync(dir).filter((f) => f.startsWith(`${path.split('/').at(-1)}.corrupt-`));

  it('moves a file that is not a database aside, says why, and starts a new store', () => {
    const path = fresh();
    writeFileSync(path, 'this is not a database at all '.repeat(100));
    using store = ProfileStore.open(path);
    expect(store.recovered?.problem).toMatch(/is not an SQLite database/);
    expect(existsSync(store.recovered!.movedTo)).toBe(true);
    expect(readFileSync(store.recovered!.movedTo, 'utf8')).toMatch(/^this is not a database/);
    expect(store.db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    store.recordBoot(boot());
  });

  it('moves a store with damaged pages aside', () => {
    const path = fresh();
    {
      using store = ProfileStore.open(path);
      for (let i = 0; i < 20; i++) {
        const id = store.recordBoot(boot());
        store.flushProfile(id, profile(Object.fromEntries(Array.from({ length: 300 }, (_, k) => [`fn_${k}`, k + i]))));
      }
      store.db.pragma('wal_checkpoint(TRUNCATE)');
    }
    const bytes = readFileSync(path);
    expect(bytes.length).toBeGreaterThan(16 * 4096);
    bytes.fill(0xa5, 4 * 4096, 12 * 4096); /* pages 5 to 12: b-tree pages of the tables */
    writeFileSync(path, bytes);
    using store = ProfileStore.open(path);
    expect(store.recovered?.problem).toMatch(/corrupt/);
    expect(movedAside(path)).toHaveLength(1);
    expect(store.listBoots()).toEqual([]);
  });

  it('moves another application\'s SQLite database aside', () => {
    const path = fresh();
    const db = new Database(path);
    db.exec("CREATE TABLE notes (text TEXT); INSERT INTO notes VALUES ('mine')");
    db.close();
    using store = ProfileStore.open(path);
    expect(store.recovered?.problem).toMatch(/another application/);
  });

  it('refuses a bad file when only reading, and leaves it where it is', () => {
    const path = fresh();
    writeFileSync(path, 'garbage'.repeat(50));
    expect(() => ProfileStore.open(path, { readonly: true })).toThrow(KjitError);
    expect(readFileSync(path, 'utf8')).toMatch(/^garbage/);
    expectCleanError(kjit('profile', 'ls', '--db', path), /is not an SQLite database/);
    expect(movedAside(path)).toHaveLength(0);
  });

  it('refuses a database of a newer kjit and does not change a byte of it', () => {
    const path = fresh();
    {
      using store = ProfileStore.open(path);
      store.recordBoot(boot());
      store.db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
      store.db.pragma('wal_checkpoint(TRUNCATE)');
    }
    const before = sha(path);
    let err: unknown;
    try {
      ProfileStore.open(path);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KjitError);
    expect((err as KjitError).problem).toMatch(new RegExp(`schema version ${SCHEMA_VERSION + 1}, newer than this kjit's ${SCHEMA_VERSION}`));
    expect(sha(path)).toBe(before);
    expect(movedAside(path)).toHaveLength(0);
    expectCleanError(kjit('profile', 'ls', '--db', path), /newer than this kjit/);
    expect(sha(path)).toBe(before);
  });
});

/* ---- crash safety -------------------------------------------------------------------------- */

/** A writer that records boots forever: four flushes each (every row a function of the boot's id and the flush), then ends them. */
const WRITER = `
import { ProfileStore } from ${JSON.stringify(join(ROOT, 'dist', 'src', 'store', 'store.js'))};
const [path, tag] = process.argv.slice(2);
const F = 1200, E = 3000;
const names = Array.from({ length: F }, (_, i) => 'fn_' + i);
const store = ProfileStore.open(path);
const info = { image: { hash: 'h', runtimeHash: 'r', name: 'kernel.bc', path: '/k', init: 'kernel_init', run: 'kernel_run',
  functions: () => new Map(names.map((n, i) => [n, String(i).padStart(32, '0')])) },
  machine: { cpuModel: 'Test CPU', llvmCpu: 'testcpu', features: '' }, workload: 'web', mode: 'boot', sysctls: {} };
const agg = (id, k) => ({ samples: id * 10 + k,
  functions: names.map((f, i) => ({ function: f, self: id + k * (i + 1), total: 2 * (id + k * (i + 1)) })),
  edges: Array.from({ length: E }, (_, i) => ({ caller: names[i % F], callee: names[(i * 7 + 1 + Math.floor(i / F)) % F], samples: id + k * i })),
  hotPaths: Array.from({ length: 50 }, (_, i) => ({ chain: [names[i], names[i + 1], names[i + 2]], samples: id + k + i })) });
process.stdout.write('ready\\n');
for (;;) {
  const id = store.recordBoot(info);
  for (let k = 1; k <= 4; k++) { store.flushProfile(id, agg(id, k)); process.stdout.write('flushed ' + id + ' ' + k + '\\n'); }
  store.endBoot(id, { status: 'ended', seconds: id, ops: k0(id) }, Infinity);
  process.stdout.write('committed ' + id + '\\n');
}
function k0(id) { return id * 3; }
`;

/** Which flush (0: none) a boot's stored rows are, checking that every row is of that one flush. */
function flushOf(store: ProfileStore, id: number): number {
  const rows = store.db.prepare('SELECT f.name, s.self, s.total FROM samples s JOIN functions f ON f.id = s.function_id WHERE s.boot_id = ?').all(id) as { name: string; self: number; total: number }[];
  if (rows.length === 0) {
    expect(store.db.prepare('SELECT count(*) FROM edges WHERE boot_id = ?').pluck().get(id)).toBe(0);
    return 0;
  }
  expect(rows).toHaveLength(1200);
  const k = rows.find((r) => r.name === 'fn_0')!.self - id;
  const badRows = rows.filter((r) => r.self !== id + k * (Number(r.name.slice(3)) + 1) || r.total !== 2 * r.self);
  expect(badRows).toEqual([]);
  const edges = JSON.parse(store.db.prepare('SELECT edges FROM edges WHERE boot_id = ?').pluck().get(id) as string) as number[][];
  expect(edges).toHaveLength(3000);
  expect(edges.filter((e, i) => e[2] !== id + k * i)).toEqual([]);
  expect(store.db.prepare('SELECT samples FROM boots WHERE id = ?').pluck().get(id)).toBe(id * 10 + k);
  return k;
}

describe('crash safety', () => {
  it('loses nothing committed and always opens, with the writer killed (SIGKILL) 60 times while it writes', async () => {
    const path = fresh('crash');
    const script = join(dir, 'writer.mjs');
    writeFileSync(script, WRITER);
    let seed = 0x5eed;
    const random = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    const committed = new Set<number>();
    let kills = 0;
    let inFlight = 0;
    for (let round = 0; round < 60; round++) {
      const child = spawn(process.execPath, [script, path, String(round)], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d));
      child.stderr.on('data', (d: Buffer) => (err += d));
      await vi.waitFor(() => expect(out).toContain('ready\n'), { timeout: 20_000, interval: 5 });
      await new Promise((r) => setTimeout(r, 5 + random() * 120));
      const exited = new Promise<NodeJS.Signals | null>((r) => child.on('exit', (_code, signal) => r(signal)));
      child.kill('SIGKILL');
      expect(await exited).toBe('SIGKILL');
      expect(err).toBe('');
      kills++;
      const lines = out.trim().split('\n');
      const mine = lines.filter((l) => l.startsWith('committed ')).map((l) => Number(l.split(' ')[1]));
      const flushed = lines.filter((l) => l.startsWith('flushed ')).map((l) => l.split(' ').map(Number) as [number, number, number]);
      using store = ProfileStore.open(path); /* a kjit run after the crash */
      expect(store.recovered).toBeNull();
      expect(store.db.prepare('PRAGMA quick_check').pluck().get()).toBe('ok');
      for (const id of mine) {
        committed.add(id);
        expect(flushOf(store, id)).toBe(4);
        expect(store.db.prepare('SELECT status, seconds, ops FROM boots WHERE id = ?').get(id)).toEqual({ status: 'ended', seconds: id, ops: id * 3 });
      }
      /* the boot it was writing: its last flush printed, or the one after (committed, not yet printed) */
      const last = flushed.at(-1);
      if (last && !mine.includes(last[1])) {
        const k = flushOf(store, last[1]);
        expect([last[2], last[2] + 1]).toContain(k);
        if (k > 0) inFlight++;
      }
    }
    expect(kills).toBe(60);
    /* every boot ever committed is still whole */
    using store = ProfileStore.open(path);
    for (const id of committed) expect(flushOf(store, id)).toBe(4);
    expect(committed.size).toBeGreaterThan(5);
    expect(inFlight).toBeGreaterThan(5); /* kills did land in the middle of boots (about 40 of 60 on a quiet machine) */
  }, 120_000);

  it('lets readers read while another process writes', async () => {
    const path = fresh('readers');
    const script = join(dir, 'writer.mjs');
    writeFileSync(script, WRITER);
    const child = spawn(process.execPath, [script, path, 'r'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    try {
      await vi.waitFor(() => expect(out).toMatch(/committed/), { timeout: 20_000, interval: 5 });
      using reader = ProfileStore.open(path, { readonly: true });
      const seen: number[] = [];
      const t0 = performance.now();
      while (performance.now() - t0 < 800) {
        const boots = reader.listBoots();
        seen.push(boots.length);
        const m = reader.loadMerged({ family: 'kernel.bc', machineClass: 'testcpu', workload: 'web' }, { maxBoots: 2 });
        expect(m.boots.length).toBeGreaterThan(0);
        await new Promise((r) => setTimeout(r, 10));
      }
      expect(seen.at(-1)!).toBeGreaterThan(seen[0]!);
      const r = kjit('profile', 'ls', '--db', path, '--json');
      expect(r.status).toBe(0);
      expect(JSON.parse(r.stdout).boots.length).toBeGreaterThan(0);
    } finally {
      child.kill('SIGKILL');
    }
  }, 60_000);
});

/* ---- LLVM text profiles --------------------------------------------------------------------- */

describe('exact counts as an LLVM text profile', () => {
  const original: FunctionCounts[] = [
    { function: 'f_a', ir_hash: hashOf('f_a'), shape: 'b2.3|i1', entry: 150, branches: [[100, 50], [1, 2, 3]], icalls: [{ total: 90, targets: [{ function: 'f_d', count: 60 }, { function: 'handler_x', count: 25 }] }], window: { ms: 200, ops: 5000 } },
    { function: 'f_b', ir_hash: hashOf('f_b'), shape: 'b2|i0', entry: 7, branches: [[7, 0]], icalls: [], window: { ms: 200, ops: 5000 } },
    { function: 'f_d', ir_hash: hashOf('f_d'), shape: 'b|i2', entry: 60, branches: [], icalls: [{ total: 0, targets: [] }, { total: 3, targets: [{ function: '[unknown]', count: 3 }] }], window: { ms: 100, ops: 10 } },
  ];
  const noWindow = (cs: readonly FunctionCounts[]) => [...cs].map(({ window: _w, ...c }) => c).sort((a, b) => (a.function < b.function ? -1 : 1));

  it('writes the text format with kjit\'s layout and reads it back', () => {
    const text = toProftext(original);
    expect(text).toMatch(/^# kjit exact counts.*\n:ir\n:entry_first\n/);
    const records = parseProftext(text);
    expect(records.find((r) => r.name === 'f_a')).toMatchObject({ hash: funcHash(hashOf('f_a')), counters: [150, 100, 50, 1, 2, 3, 90] });
    /* targets that are no record of their own get one (hash 0), so that .profdata names them */
    expect(records.filter((r) => r.hash === '0').map((r) => r.name).sort()).toEqual(['[unknown]', 'handler_x']);
  });

  it('round-trips export -> llvm-profdata-19 merge -> merge --text -> import with the same counts', () => {
    const path = fresh();
    let bootId = 0;
    {
      using store = ProfileStore.open(path);
      bootId = store.recordBoot(boot());
      store.flushCounts(bootId, original);
      store.endBoot(bootId, { status: 'ended' });
    }
    const exported = join(dir, 'kjit.proftext');
    const e = kjit('profile', 'export', '--db', path, '--format', 'proftext', '--boot', String(bootId), '--out', exported);
    expect(e.status, e.stderr).toBe(0);
    const indexed = join(dir, 'kjit.profdata');
    const merge = spawnSync('llvm-profdata-19', ['merge', exported, '-o', indexed], { encoding: 'utf8' });
    expect(merge.status, merge.stderr).toBe(0);
    const show = spawnSync('llvm-profdata-19', ['show', '--all-functions', '--counts', '--ic-targets', indexed], { encoding: 'utf8' });
    expect(show.status).toBe(0);
    expect(show.stdout).toMatch(/f_a:[\s\S]*Block counts: \[150, 100, 50, 1, 2, 3, 90\][\s\S]*handler_x/);
    const back = join(dir, 'back.proftext');
    expect(spawnSync('llvm-profdata-19', ['merge', '--text', indexed, '-o', back]).status).toBe(0);
    expect(readFileSync(back, 'utf8')).not.toMatch(/# kjit \{/); /* llvm-profdata dropped kjit's comments: the store supplies the layout */
    const imported = kjit('profile', 'import', '--db', path, back, '--workload', 'web', '--json');
    expect(imported.status, imported.stderr).toBe(0);
    const result = JSON.parse(imported.stdout);
    expect(result).toMatchObject({ image: 'kernel.bc', functions: 3, skipped: [] });
    using store = ProfileStore.open(path, { readonly: true });
    const m = store.loadMerged({ family: 'kernel.bc', machineClass: 'testcpu', workload: 'web' }, { boots: [result.boot], force: true });
    expect(noWindow(m.counts)).toEqual(noWindow(original));
    /* straight from kjit's own file, the window comes back too */
    expect(store.decodeProftext(readFileSync(exported, 'utf8')).counts.sort((a, b) => (a.function < b.function ? -1 : 1))).toEqual(original);
  });

  it('skips, and says why, counts whose layout it cannot know', () => {
    using store = ProfileStore.open(fresh());
    const stranger = toProftext([{ ...original[1]!, function: 'nobody', ir_hash: hashOf('nobody') }]).replace(/# kjit \{.*\n/g, '');
    const r = store.decodeProftext(stranger);
    expect(r.counts).toEqual([]);
    expect(r.skipped).toEqual([{ function: 'nobody', why: expect.stringMatching(/no kjit layout/) }]);
  });
});

/* ---- the run's session, and the command line ---------------------------------------------------- */

describe('a run\'s session', () => {
  it('loads the merged profile at boot, flushes every 10 s while the kernel runs, and ends the boot', () => {
    vi.useFakeTimers();
    try {
      const path = fresh();
      {
        using store = ProfileStore.open(path);
        const id = store.recordBoot({ ...boot({ imageHash: 'session', cls: 'will-be-replaced' }) });
        store.endBoot(id, { status: 'ended' });
      }
      const prepared = {
        image: { hash: 'session', runtimeHash: 'rt', name: 'kernel.bc', spec: { path: '/images/kernel.bc', init: 'kernel_init', run: 'kernel_run' }, pristine: null },
        mode: { name: 'boot' },
        config: { values: [] },
      } as unknown as PreparedBoot;
      const first = StoreSession.open(path, prepared, 'web', () => {});
      const builder = new ProfileBuilder();
      first.track(() => builder);
      for (let i = 0; i < 50; i++) builder.add(['f_b', 'f_a']);
      vi.advanceTimersByTime(10_000);
      {
        using reader = ProfileStore.open(path, { readonly: true });
        expect(reader.boot(first.bootId)).toMatchObject({ status: 'running', samples: 50, flushes: 1 });
      }
      first.addCounts([counts('f_a', 1)]);
      for (let i = 0; i < 50; i++) builder.add(['f_a']);
      expect(first.end('ended')).toEqual({ path, reused_boots: 0, functions_matched: 0, functions_stale: 0, samples_loaded: 0 });
      const second = StoreSession.open(path, prepared, 'web', () => {});
      expect(second.summary()).toEqual({ path, reused_boots: 1, functions_matched: 2, functions_stale: 0, samples_loaded: 100 });
      expect(second.loaded.counts.map((c) => c.function)).toEqual(['f_a']);
      second.end('failed');
      using reader = ProfileStore.open(path, { readonly: true });
      expect(reader.boot(first.bootId)).toMatchObject({ status: 'ended', samples: 100, flushes: 2, counted_functions: 1 });
      expect(reader.boot(second.bootId)).toMatchObject({ status: 'failed' });
    } finally {
      vi.useRealTimers();
    }
  });

  it('keeps the hottest whole chains of a run (what a flush stores of up to 100,000)', () => {
    const b = new ProfileBuilder();
    for (let i = 0; i < 500; i++) for (let k = 0; k <= i % 13; k++) b.add([`leaf${i}`, 'mid', 'root']);
    const want = b
      .stacks()
      .sort((x, y) => y.samples - x.samples)
      .slice(0, 40)
      .map((s) => s.samples);
    const got = b.hottestStacks(40);
    expect(got.map((s) => s.samples)).toEqual(want);
    expect(got[0]!.chain.slice(0, 2)).toEqual(['root', 'mid']);
    expect(Number(got[0]!.chain[2]!.slice(4)) % 13).toBe(12);
    expect(b.hottestStacks(10_000)).toHaveLength(500);
  });

  it('defaults to the data directory, and is off with KJIT_PROFILE_DB=off', () => {
    expect(defaultProfileDb({ HOME: '/home/u' })).toBe('/home/u/.local/share/kjit/profiles.db');
    expect(defaultProfileDb({ HOME: '/home/u', XDG_DATA_HOME: '/data' })).toBe('/data/kjit/profiles.db');
    expect(defaultProfileDb({ KJIT_PROFILE_DB: '/x.db' })).toBe('/x.db');
    expect(defaultProfileDb({ KJIT_PROFILE_DB: 'off', HOME: '/home/u' })).toBeNull();
    /* vitest.config.ts: no test's kjit run writes to the user's data directory */
    expect(defaultProfileDb()).toBeNull();
  });
});

describe('kjit run --profile-db and kjit profile', () => {
  let image = '';
  beforeAll(() => {
    image = cc(
      'runner',
      `#include <stdint.h>
static uint64_t s;
void init(void) { s = 7; }
__attribute__((noinline)) uint64_t spin(uint64_t n) { uint64_t x = n; for (uint64_t k = 0; k < n; k++) { x = x * 6364136223846793005ull + k; __asm__ volatile("" : "+r"(x)); } return x; }
uint64_t entry(uint64_t i) { s ^= spin(20000 + (i & 7)); return s; }
`,
    );
  });

  it('reuses what earlier runs learned, reports it in the JSON, and moves a corrupt store aside', () => {
    const path = fresh('run');
    writeFileSync(path, 'not a database, definitely not '.repeat(20));
    const run = () => kjit('run', '--image', image, '--init', 'init', '--entry', 'entry', '--seconds', '1', '--no-count', '--json', '--profile-db', path);
    const a = run();
    expect(a.status, a.stderr).toBe(0);
    expect(a.stderr).toMatch(new RegExp(`^kjit: profile store ${path} is not an SQLite database — fix: moved aside to ${path}\\.corrupt-\\S+; a new store was started\\n$`));
    expect(JSON.parse(a.stdout).profile_store).toEqual({ path, reused_boots: 0, functions_matched: 0, functions_stale: 0, samples_loaded: 0 });
    const b = run();
    expect(b.status, b.stderr).toBe(0);
    expect(b.stderr).toBe('');
    const ps = JSON.parse(b.stdout).profile_store;
    const first = JSON.parse(a.stdout).profile;
    expect(ps, `${JSON.stringify(ps)} after a first run with ${JSON.stringify(first?.samples)} samples`).toMatchObject({ path, reused_boots: 1, functions_stale: 0 });
    expect(ps.functions_matched).toBeGreaterThan(0);
    expect(ps.samples_loaded).toBeGreaterThan(0);
    const ls = JSON.parse(kjit('profile', 'ls', '--db', path, '--json').stdout);
    expect(ls.boots).toHaveLength(2);
    expect(ls.boots[0]).toMatchObject({ image: 'runner.bc', workload: 'entry', status: 'ended' });
    const show = JSON.parse(kjit('profile', 'show', '--db', path, String(ls.boots[0].id), '--json').stdout);
    expect(show.top[0].function).toBe('spin');
    const merged = JSON.parse(kjit('profile', 'merge', '--db', path, '--image', image, '--json').stdout);
    expect(merged.boots).toHaveLength(2);
    expect(merged.functions[0].function).toBe('spin');
    expect(merged.matching.functions_stale).toBe(0);
    /* off */
    const off = kjit('run', '--image', image, '--init', 'init', '--entry', 'entry', '--ops', '10', '--no-count', '--json', '--no-profile-db');
    expect(JSON.parse(off.stdout).profile_store).toBeUndefined();
  });

  it('gives one line for bad input', () => {
    const path = fresh();
    expectCleanError(kjit('run', '--profile-db', path, '--no-profile-db', '--ops', '1'), /--profile-db and --no-profile-db both given/);
    expectCleanError(kjit('profile', 'frobnicate'), /unknown profile command 'frobnicate'/);
    expectCleanError(kjit('profile', 'ls', '--db', join(dir, 'missing.db')), /does not exist/);
    {
      using store = ProfileStore.open(path);
    }
    expectCleanError(kjit('profile', 'stale', '--db', path), /needs --image/);
    expectCleanError(kjit('profile', 'export', '--db', path, '--format', 'gcov'), /unknown --format 'gcov'/);
    expectCleanError(kjit('profile', 'show', '--db', path, '99'), /no boot 99/);
    expectCleanError(kjit('profile', 'merge', '--db', path, '--decay', '2'), /--decay 2 is out of range/);
    const junk = join(dir, 'junk.proftext');
    writeFileSync(junk, 'f\n12\nnot-a-number\n');
    expectCleanError(kjit('profile', 'import', '--db', path, junk), /is not an LLVM text profile/);
  });
});
