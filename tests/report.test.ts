// kjit report and kjit explain (issue 9): the report of a real pgo run,
// opened in Debian's chromium through playwright-core (headless, no
// sandbox, no background networking, a fresh profile directory), draws the
// run's timeline with its events marked and its flame graph, zooms on a
// click, and logs no error; kjit explain gives the right reason for a
// function in each state the policy and the compile log can leave it in.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import Database from 'better-sqlite3';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { functionReport } from '../dist/src/report/data.js';
import { ProfileStore } from '../dist/src/store/store.js';

const ROOT = join(import.meta.dirname, '..');
const KJIT = join(ROOT, 'bin', 'kjit.js');
const CHROMIUM = '/usr/bin/chromium';
const RESULTS = join(ROOT, 'test-results');
let dir = '';

function kjit(...args: string[]) {
  const r = spawnSync(process.execPath, [KJIT, ...args], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`kjit ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'kjit-report-'));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('kjit report, in chromium', () => {
  it('draws the timeline with every event marked, the flame graph, and zooms on a click', async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: sh scripts/setup.sh installs Debian's chromium`);
    const db = join(dir, 'runs.db');
    /* two boots of one workload: the report compares them (differential flame graph); the phases
     * workload changes phase (and flips kernel.trace) several times a second: events whatever the policy does */
    kjit('run', '--mode', 'boot', '--workload', 'phases', '--seconds', '2', '--no-count', '--profile-db', db, '--json');
    const run = JSON.parse(kjit('run', '--mode', 'pgo', '--workload', 'phases', '--seconds', '6', '--no-count', '--profile-db', db, '--json')) as {
      profile: { top: { function: string }[] };
    };
    const out = join(dir, 'report.html');
    const made = JSON.parse(kjit('report', '--db', db, '--out', out, '--json')) as { boots: number[]; events: number[] };
    expect(made.boots).toHaveLength(2);

    /* what the store holds, read independently of the report's code */
    const sql = new Database(db, { readonly: true });
    const pgoBoot = made.boots[1]!;
    const events = JSON.parse((sql.prepare('SELECT events FROM boot_timelines WHERE boot_id = ?').get(pgoBoot) as { events: string }).events) as unknown[];
    const paths = JSON.parse((sql.prepare('SELECT paths FROM hot_paths WHERE boot_id = ?').get(pgoBoot) as { paths: string }).paths) as [number[], number][];
    const byRoot = new Map<number, number>();
    for (const [chain, n] of paths) byRoot.set(chain[0]!, (byRoot.get(chain[0]!) ?? 0) + n);
    const widestRootId = [...byRoot].sort((a, b) => b[1] - a[1])[0]![0];
    const widestRoot = (sql.prepare('SELECT name FROM functions WHERE id = ?').get(widestRootId) as { name: string }).name;
    sql.close();
    expect(events.length).toBeGreaterThan(3);
    expect(events.filter((e) => (e as { kind: string }).kind === 'phase').length).toBeGreaterThan(3);

    const profileDir = mkdtempSync(join(dir, 'chromium-'));
    const browser = await chromium.launchPersistentContext(profileDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
      viewport: { width: 1280, height: 900 },
    });
    try {
      const page = await browser.newPage();
      const problems: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') problems.push(m.text());
      });
      page.on('pageerror', (e) => problems.push(e.message));
      page.on('request', (r) => {
        if (!r.url().startsWith('file:')) problems.push(`request to ${r.url()}`);
      });
      await page.goto(`file://${out}`);
      await page.waitForSelector('body[data-ready="true"]', { timeout: 15_000 });

      /* the timeline: the run's points drawn, each event marked once */
      const card = page.locator(`.timeline-card[data-boot="${pgoBoot}"]`);
      await expect.poll(() => card.locator('.throughput-chart canvas').count()).toBeGreaterThan(0);
      expect(await card.locator('.throughput-chart .event-marker').count()).toBe(events.length);
      expect(made.events[1]).toBe(events.length);
      /* the memory budget the kernel granted the pgo run, over time */
      expect(await card.locator('.budget-chart canvas').count()).toBeGreaterThan(0);

      /* the flame graph of the newest boot: its widest frame above the root is the hottest root of the stored chains */
      const frames = page.locator('#flame-graph g.frame');
      expect(await frames.count()).toBeGreaterThan(10);
      const widths = await frames.evaluateAll((gs) => gs.map((g) => ({ name: g.getAttribute('name'), w: Number(g.querySelector('rect')?.getAttribute('width') ?? 0) })));
      const sorted = widths.filter((x) => x.name !== 'all').sort((a, b) => b.w - a.w);
      expect(sorted[0]!.name).toBe(widestRoot);
      const hottest = run.profile.top[0]!.function;
      expect(await page.locator(`#flame-graph g.frame[name="${hottest}"]`).count()).toBeGreaterThan(0);
      /* hover: the frame's share of the samples */
      await page.locator(`#flame-graph g.frame[name="${sorted[1]!.name}"]`).first().hover();
      await expect.poll(() => page.locator('#flame-details').textContent()).toMatch(new RegExp(`^${sorted[1]!.name}: [\\d.]+% of samples`));

      /* a click on a narrower frame zooms: it takes the whole width */
      const all = widths.find((x) => x.name === 'all')!.w;
      const target = page.locator(`#flame-graph g.frame[name="${sorted[1]!.name}"]`).first();
      expect(Number(await target.locator('rect').getAttribute('width'))).toBeLessThan(all * 0.95);
      await target.click();
      await expect.poll(async () => Number(await target.locator('rect').getAttribute('width')), { timeout: 5_000 }).toBeGreaterThan(all * 0.99);

      /* the comparison of the two boots, and the why of the functions */
      expect(await page.locator('#diff-graph g.frame').count()).toBeGreaterThan(10);
      expect(await page.locator('details.fn').count()).toBeGreaterThan(5);

      await page.locator('#flame-reset').click();
      mkdirSync(RESULTS, { recursive: true });
      await page.screenshot({ path: join(RESULTS, 'report.png'), fullPage: true });
      expect(existsSync(join(RESULTS, 'report.png'))).toBe(true);
      expect(problems).toEqual([]);
    } finally {
      await browser.close();
    }
  });
});

describe('kjit explain', () => {
  const fn = (name: string) => new Map([[name, `hash-${name}`]]);
  const image = {
    hash: 'image',
    runtimeHash: 'runtime',
    name: 'fake.bc',
    path: '/fake.bc',
    init: 'init',
    entry: 'entry',
    functions: () =>
      new Map(
        [
          'asm_copy',
          'given_up',
          'waiting',
          'cold',
          'was_folded',
          'uncounted',
          'changed_ir',
          'done',
          'not_worth',
          'busy',
          'regressed',
          'broken',
          'never_seen',
          'late',
        ].flatMap((n) => [...fn(n)]),
      ),
  };
  const machine = { cpuModel: 'test cpu', llvmCpu: 'testcpu', features: '' };
  let db = '';
  let pgo = 0;
  let boot = 0;

  beforeAll(() => {
    db = join(dir, 'explain.db');
    const store = ProfileStore.open(db);
    pgo = store.recordBoot({ image, machine, workload: 'web', mode: 'pgo', sysctls: {} });
    const decide = (f: string, kind: string, reason: string, numbers: Record<string, number> = {}, at = 1) => store.logDecision(pgo, { kind, function: f, reason, numbers: { self_pct: 5, ...numbers }, at_s: at });
    decide('asm_copy', 'leave', 'not-ir');
    decide('given_up', 'leave', 'blacklisted', { failures: 1, regressions: 2 });
    decide('waiting', 'optimize', 'hot', { benefit_s: 2, cost_s: 0.1 }, 1);
    store.logCompile(pgo, { function: 'waiting', version: 7, tier: 'optimized', reason: 'hot', compile_ms: 80, code_bytes: 400, outcome: 'rolled-back', why: 'not faster: 3.0% more ns/op', at_s: 1.5 });
    decide('waiting', 'leave', 'backing-off', { wait_s: 5, since_s: 1 }, 2);
    decide('cold', 'leave', 'not-hot', { self_pct: 0.2, threshold_pct: 1, total_pct: 0.4 });
    decide('was_folded', 'revert', 'sysctl-changed');
    decide('uncounted', 'instrument', 'needs-counts');
    decide('changed_ir', 'instrument', 'counts-stale');
    decide('done', 'optimize', 'hot', { benefit_s: 3, cost_s: 0.1 }, 1);
    store.logCompile(pgo, { function: 'done', version: 9, tier: 'optimized', reason: 'hot', compile_ms: 70, code_bytes: 500, outcome: 'installed', at_s: 1.2 });
    decide('done', 'leave', 'optimized', {}, 2);
    decide('not_worth', 'leave', 'not-worth-it', { benefit_s: 0.01, cost_s: 0.1, speedup: 0.05 });
    decide('busy', 'leave', 'queued', { busy: 12 });
    decide('regressed', 'optimize', 'hot', { benefit_s: 2, cost_s: 0.1 }, 1);
    store.logCompile(pgo, { function: 'regressed', version: 11, tier: 'optimized', reason: 'hot', outcome: 'installed', at_s: 1.1 });
    store.logCompile(pgo, { function: 'regressed', version: 11, tier: 'optimized', reason: 'hot', outcome: 'rolled-back', why: 'not faster: 2.0% more ns/op', at_s: 1.4 });
    decide('broken', 'optimize', 'hot', { benefit_s: 2, cost_s: 0.1 }, 1);
    store.logCompile(pgo, { function: 'broken', tier: 'optimized', reason: 'hot', outcome: 'failed', why: 'LLVM ran out of memory', at_s: 1.3 });
    /* a tiered boot compiled it on first call, and the policy then found it cold */
    store.logCompile(pgo, { function: 'late', tier: 'lazy', reason: 'first call', compile_ms: 64, outcome: 'installed', at_s: 0.7 });
    decide('late', 'leave', 'not-hot', { self_pct: 0.1, threshold_pct: 1, total_pct: 0.1 });
    store.endBoot(pgo, { status: 'ended', seconds: 3, ops: 1000 });
    boot = store.recordBoot({ image, machine, workload: 'web', mode: 'boot', sysctls: {} });
    store.endBoot(boot, { status: 'ended', seconds: 3, ops: 1000 });
    store.close();
  });

  const cases: [string, string, RegExp][] = [
    ['asm_copy', 'not-ir', /no IR/],
    ['given_up', 'blacklisted', /given up: 1 failed .* 2 regression/],
    ['waiting', 'backing-off', /backing off .* waits 5 s.*regression \(not faster: 3\.0% more ns\/op\)/],
    ['cold', 'not-hot', /not hot enough: 0\.2% .*threshold 1%/],
    ['was_folded', 'reverted', /sysctl .* changed/],
    ['uncounted', 'instrumenting', /no exact counts yet/],
    ['changed_ir', 'stale-profile', /stale profile/],
    ['done', 'optimized', /optimized: the version running was built with its current exact counts/],
    ['not_worth', 'not-worth-it', /not worth it: expected saving 0\.01 s .* compile cost 0\.1 s/],
    ['busy', 'queued', /12 other job/],
    ['regressed', 'rolled-back', /rolled back: .*not faster: 2\.0% more ns\/op/],
    ['broken', 'compile-failed', /compile failed: LLVM ran out of memory/],
    ['never_seen', 'not-considered', /never looked at never_seen/],
    ['late', 'not-hot', /not hot enough.*; its code was compiled on first call at 0\.70 s \(fast tier, 64 ms/],
  ];

  it.each(cases)('%s: %s', (name, state, why) => {
    using store = ProfileStore.open(db, { readonly: true });
    const f = functionReport(store.db, store.boot(pgo)!, name, null);
    expect(f.why.state).toBe(state);
    expect(f.why.why).toMatch(why);
  });

  it('says that a boot in another mode re-JITs nothing', () => {
    using store = ProfileStore.open(db, { readonly: true });
    expect(functionReport(store.db, store.boot(boot)!, 'done', null).why).toMatchObject({ state: 'not-re-jitted', reason: 'mode' });
  });

  it('prints the reason, the versions and the compile log, and the same as JSON', () => {
    const json = JSON.parse(kjit('explain', 'waiting', '--db', db, '--json')) as { boot: { id: number }; state: string; reason: string; versions: unknown[]; compile_log: unknown[] };
    expect(json).toMatchObject({ boot: { id: pgo }, state: 'backing-off', reason: 'backing-off' });
    expect(json.versions).toEqual([{ version: 7, tier: 'optimized', code_bytes: 400, state: 'rolled-back' }]);
    const text = kjit('explain', 'waiting', '--db', db);
    expect(text).toMatch(/state +backing-off/);
    expect(text).toMatch(/v7 +optimized +rolled-back .*not faster: 3\.0% more ns\/op/);
  });

  it('refuses a function nothing is known about, in one line with the fix', () => {
    const r = spawnSync(process.execPath, [KJIT, 'explain', 'no_such_function', '--db', db], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toMatch(/^kjit: boot \d+'s image has no function 'no_such_function'.* — fix: /);
  });
});
