/**
 * @fileoverview What `kjit report` and `kjit explain` read from the profile
 * store, for one boot or a comparison of boots: the boot's timeline and
 * events, its run summary, its sampled hot paths as a flame-graph tree (and
 * a differential tree between two boots), the compile log, code versions,
 * the policy's decisions, exact counts, and per function why it was or was
 * not optimized (why.ts).  Read-only queries: a report can be made while
 * kernels write to the store.
 */
import { KjitError } from '../errors.js';
import { MODES } from '../kernel/modes.js';
import type { IndirectCallSite } from '../sampler/counts.js';
import { OTHER_CHAINS } from '../sampler/profile.js';
import type { BootRow, ProfileStore } from '../store/store.js';
import type { RunEvent, TimelinePointRecord } from '../store/timeline.js';
import { type CompileRow, type DecisionRow, type Why, whyOf } from './why.js';

export const REPORT_PARAMS = {
  /** Functions given a per-function entry: every one with decisions, compiles or counts, plus the hottest by self samples. */
  hottestFunctions: 30,
  /** Branch sites and indirect-call targets shown per function. */
  branchSites: 5,
  icallTargets: 4,
};

/** A flame-graph node (d3-flame-graph's format): value is inclusive samples; delta (differential) in samples of the newer boot. */
export interface FlameNode {
  name: string;
  value: number;
  delta?: number;
  /** Differential: the older boot's share (%) of this frame, for the hover text. */
  before_pct?: number;
  children: FlameNode[];
}

export interface FunctionReport {
  name: string;
  self_pct: number;
  total_pct: number;
  why: Why;
  decisions: DecisionRow[];
  compiles: CompileRow[];
  versions: { version: number; tier: string; code_bytes: number | null; state: string }[];
  /** Measured by the interleaved check of each set of versions it was in: speedup = 1/ratio - 1. */
  speedups: { at_s: number; speedup: number; keep: boolean; reason: string; with: number }[];
  profile: {
    entry: number;
    window_ms: number;
    windows: number;
    hot_branches: { site: number; executions: number; successors_pct: number[] }[];
    icalls: { site: number; total: number; targets: { function: string; pct: number }[] }[];
  } | null;
}

export interface BootReport {
  boot: BootRow;
  online: boolean;
  summary: Record<string, unknown> | null;
  timeline: { points: TimelinePointRecord[]; events: RunEvent[] } | null;
  flame: FlameNode;
  /** Samples the stored hot paths cover, of all the boot's samples. */
  flame_covered: number;
  top: { function: string; self: number; total: number }[];
  compile_log: CompileRow[];
  functions: FunctionReport[];
}

export interface BenchEntry {
  source: string;
  suite: string;
  date: string;
  report: Record<string, unknown>;
}

export interface ReportData {
  generated_at: string;
  db: string;
  boots: BootReport[];
  diff: { base: number; current: number; tree: FlameNode; self_changes: { function: string; before_pct: number; after_pct: number }[] } | null;
  bench: BenchEntry[];
}

type Q = ProfileStore['db'];

function rows<R>(db: Q, sql: string, ...args: unknown[]): R[] {
  return db.prepare<unknown[], R>(sql).all(...args);
}

function hasTable(db: Q, name: string): boolean {
  return rows(db, "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?", name).length > 0;
}

export function decisionsOf(db: Q, bootId: number, fn?: string): DecisionRow[] {
  return rows<{ kind: string; function: string | null; reason: string; numbers: string; at_s: number | null }>(
    db,
    `SELECT d.kind, f.name AS function, d.reason, d.numbers, d.at_s FROM decisions d LEFT JOIN functions f ON f.id = d.function_id
     WHERE d.boot_id = ? ${fn !== undefined ? 'AND f.name = ?' : ''} ORDER BY d.id`,
    bootId,
    ...(fn !== undefined ? [fn] : []),
  ).map((d) => ({ ...d, numbers: JSON.parse(d.numbers) as Record<string, unknown> }));
}

export function compileLogOf(db: Q, bootId: number, fn?: string): CompileRow[] {
  return rows<CompileRow>(
    db,
    `SELECT f.name AS function, v.version, c.tier, c.reason, c.compile_ms, c.code_bytes, c.outcome, c.why, c.at_s
     FROM compile_log c JOIN functions f ON f.id = c.function_id LEFT JOIN code_versions v ON v.id = c.version_id
     WHERE c.boot_id = ? ${fn !== undefined ? 'AND f.name = ?' : ''} ORDER BY c.id`,
    bootId,
    ...(fn !== undefined ? [fn] : []),
  );
}

export function versionsOf(db: Q, bootId: number, fn: string): FunctionReport['versions'] {
  return rows(
    db,
    'SELECT v.version, v.tier, v.code_bytes, v.state FROM code_versions v JOIN functions f ON f.id = v.function_id WHERE v.boot_id = ? AND f.name = ? ORDER BY v.version',
    bootId,
    fn,
  );
}

export function summaryOf(db: Q, bootId: number): Record<string, unknown> | null {
  if (!hasTable(db, 'boot_summaries')) return null;
  const r = rows<{ summary: string }>(db, 'SELECT summary FROM boot_summaries WHERE boot_id = ?', bootId)[0];
  return r ? (JSON.parse(r.summary) as Record<string, unknown>) : null;
}

function timelineOf(db: Q, bootId: number): BootReport['timeline'] {
  if (!hasTable(db, 'boot_timelines')) return null;
  const r = rows<{ points: string; events: string }>(db, 'SELECT points, events FROM boot_timelines WHERE boot_id = ?', bootId)[0];
  return r ? { points: JSON.parse(r.points) as TimelinePointRecord[], events: JSON.parse(r.events) as RunEvent[] } : null;
}

function samplesOf(db: Q, bootId: number): { function: string; self: number; total: number }[] {
  return rows(db, 'SELECT f.name AS function, s.self, s.total FROM samples s JOIN functions f ON f.id = s.function_id WHERE s.boot_id = ? ORDER BY s.self DESC, s.total DESC', bootId);
}

/** The boot's stored hot paths (whole chains, root first) by name. */
function hotPathsOf(db: Q, bootId: number): { chain: string[]; samples: number }[] {
  const r = rows<{ paths: string }>(db, 'SELECT paths FROM hot_paths WHERE boot_id = ?', bootId)[0];
  if (!r) return [];
  const paths = JSON.parse(r.paths) as [number[], number][];
  const ids = [...new Set(paths.flatMap(([c]) => c))];
  const names = new Map(rows<{ id: number; name: string }>(db, 'SELECT id, name FROM functions WHERE id IN (SELECT value FROM json_each(?))', JSON.stringify(ids)).map((x) => [x.id, x.name]));
  return paths.map(([chain, samples]) => ({ chain: chain.map((id) => names.get(id) ?? `#${id}`), samples }));
}

/** A flame-graph tree from whole chains; samples the chains do not cover hang under the root as [other chains]. */
export function flameTree(paths: readonly { chain: readonly string[]; samples: number }[], totalSamples: number): { tree: FlameNode; covered: number } {
  const root: FlameNode = { name: 'all', value: 0, children: [] };
  let covered = 0;
  for (const p of paths) {
    covered += p.samples;
    root.value += p.samples;
    let node = root;
    for (const name of p.chain) {
      let child = node.children.find((c) => c.name === name);
      if (!child) {
        child = { name, value: 0, children: [] };
        node.children.push(child);
      }
      child.value += p.samples;
      node = child;
    }
  }
  const rest = totalSamples - covered;
  if (rest > 0) {
    root.children.push({ name: OTHER_CHAINS, value: rest, children: [] });
    root.value += rest;
  }
  const sort = (x: FlameNode) => {
    x.children.sort((a, b) => b.value - a.value);
    x.children.forEach(sort);
  };
  sort(root);
  return { tree: root, covered };
}

/**
 * A differential tree: the current boot's frames, each with the change of
 * its inclusive samples against the base boot's (scaled to the current
 * boot's sample count): delta > 0 grew (red), < 0 shrank (blue).
 */
export function diffTree(base: FlameNode, current: FlameNode): FlameNode {
  const scale = base.value > 0 ? current.value / base.value : 0;
  const walk = (c: FlameNode, b: FlameNode | undefined): FlameNode => {
    const before = b ? b.value * scale : 0;
    return {
      name: c.name,
      value: c.value,
      delta: Math.round(c.value - before),
      before_pct: base.value > 0 ? ((b?.value ?? 0) / base.value) * 100 : 0,
      children: c.children.map((x) => walk(x, b?.children.find((y) => y.name === x.name))),
    };
  };
  return walk(current, base);
}

function speedupsOf(summary: Record<string, unknown> | null, fn: string): FunctionReport['speedups'] {
  const verdicts = ((summary?.rejit as { verdicts?: { at_s: number; functions: string[]; keep: boolean; ratio: number; reason: string }[] } | undefined)?.verdicts ?? []).filter((v) =>
    v.functions.includes(fn),
  );
  return verdicts.map((v) => ({ at_s: v.at_s, speedup: Number.isFinite(v.ratio) && v.ratio > 0 ? 1 / v.ratio - 1 : 0, keep: v.keep, reason: v.reason, with: v.functions.length }));
}

function profileOf(db: Q, bootId: number, fn: string): FunctionReport['profile'] {
  const r = rows<{ entry: number; branches: string; icalls: string; window_ms: number; windows: number }>(
    db,
    'SELECT c.entry, c.branches, c.icalls, c.window_ms, c.windows FROM counts c JOIN functions f ON f.id = c.function_id WHERE c.boot_id = ? AND f.name = ?',
    bootId,
    fn,
  )[0];
  if (!r) return null;
  const branches = JSON.parse(r.branches) as number[][];
  const icalls = JSON.parse(r.icalls) as IndirectCallSite[];
  const sum = (xs: readonly number[]) => xs.reduce((s, x) => s + x, 0);
  return {
    entry: r.entry,
    window_ms: r.window_ms,
    windows: r.windows,
    hot_branches: branches
      .map((succ, site) => ({ site, executions: sum(succ), successors_pct: succ.map((x) => (sum(succ) ? Math.round((x / sum(succ)) * 1000) / 10 : 0)) }))
      .filter((b) => b.executions > 0)
      .sort((a, b) => b.executions - a.executions)
      .slice(0, REPORT_PARAMS.branchSites),
    icalls: icalls
      .map((s, site) => ({
        site,
        total: s.total,
        targets: s.targets.slice(0, REPORT_PARAMS.icallTargets).map((t) => ({ function: t.function, pct: s.total ? Math.round((t.count / s.total) * 1000) / 10 : 0 })),
      }))
      .filter((s) => s.total > 0),
  };
}

/** One function of one boot: its explanation and everything stored about it. */
export function functionReport(db: Q, boot: BootRow, fn: string, summary: Record<string, unknown> | null, samples?: Map<string, { self: number; total: number }>): FunctionReport {
  const decisions = decisionsOf(db, boot.id, fn);
  const compiles = compileLogOf(db, boot.id, fn);
  const s = samples?.get(fn) ?? rows<{ self: number; total: number }>(db, 'SELECT s.self, s.total FROM samples s JOIN functions f ON f.id = s.function_id WHERE s.boot_id = ? AND f.name = ?', boot.id, fn)[0];
  const share = (x: number | undefined) => (boot.samples && x ? Math.round((x / boot.samples) * 1e4) / 100 : 0);
  return {
    name: fn,
    self_pct: share(s?.self),
    total_pct: share(s?.total),
    why: whyOf(fn, { mode: boot.mode, online: MODES[boot.mode]?.online === true, decisions, compiles }),
    decisions,
    compiles,
    versions: versionsOf(db, boot.id, fn),
    speedups: speedupsOf(summary, fn),
    profile: profileOf(db, boot.id, fn),
  };
}

export function bootReport(store: ProfileStore, id: number): BootReport {
  const boot = store.boot(id);
  if (!boot) throw new KjitError(`the profile store has no boot ${id}`, 'list its boots with `kjit profile ls`');
  const db = store.db;
  const summary = summaryOf(db, id);
  const top = samplesOf(db, id);
  const { tree, covered } = flameTree(hotPathsOf(db, id), boot.samples);
  const log = compileLogOf(db, id);
  const decided = rows<{ name: string }>(db, 'SELECT DISTINCT f.name FROM decisions d JOIN functions f ON f.id = d.function_id WHERE d.boot_id = ?', id).map((r) => r.name);
  const counted = rows<{ name: string }>(db, 'SELECT f.name FROM counts c JOIN functions f ON f.id = c.function_id WHERE c.boot_id = ?', id).map((r) => r.name);
  const names = new Set([...top.slice(0, REPORT_PARAMS.hottestFunctions).map((t) => t.function), ...decided, ...log.map((c) => c.function), ...counted]);
  names.delete(OTHER_CHAINS);
  const bySamples = new Map(top.map((t) => [t.function, t]));
  const functions = [...names]
    .map((fn) => functionReport(db, boot, fn, summary, bySamples))
    .sort((a, b) => b.self_pct - a.self_pct || b.total_pct - a.total_pct || (a.name < b.name ? -1 : 1));
  return { boot, online: MODES[boot.mode]?.online === true, summary, timeline: timelineOf(db, id), flame: tree, flame_covered: covered, top, compile_log: log, functions };
}

/**
 * The boots a report covers: those asked for (oldest first), else the
 * latest boot and, when there is one, the boot of the same image family
 * and workload before it (the comparison).
 */
export function chooseBoots(store: ProfileStore, ids: readonly number[]): number[] {
  if (ids.length) {
    for (const id of ids) if (!store.boot(id)) throw new KjitError(`the profile store has no boot ${id}`, 'list its boots with `kjit profile ls`');
    return [...ids];
  }
  const all = store.listBoots();
  const latest = all[0];
  if (!latest) throw new KjitError(`the profile store ${store.path} has no boot`, 'run a kernel with --profile-db PATH first (kjit run --mode pgo --profile-db PATH)');
  const before = all.find((b) => b.id < latest.id && b.image === latest.image && b.workload === latest.workload && b.samples > 0);
  return before ? [before.id, latest.id] : [latest.id];
}

export function reportData(store: ProfileStore, ids: readonly number[], bench: BenchEntry[]): ReportData {
  const boots = chooseBoots(store, ids).map((id) => bootReport(store, id));
  let diff: ReportData['diff'] = null;
  if (boots.length >= 2) {
    const [base, current] = [boots.at(-2)!, boots.at(-1)!];
    const pctOf = (b: BootReport) => new Map(b.top.map((t) => [t.function, b.boot.samples ? (t.self / b.boot.samples) * 100 : 0]));
    const before = pctOf(base);
    const after = pctOf(current);
    const self_changes = [...new Set([...before.keys(), ...after.keys()])]
      .map((f) => ({ function: f, before_pct: Math.round((before.get(f) ?? 0) * 100) / 100, after_pct: Math.round((after.get(f) ?? 0) * 100) / 100 }))
      .sort((a, b) => Math.abs(b.after_pct - b.before_pct) - Math.abs(a.after_pct - a.before_pct))
      .slice(0, 15);
    diff = { base: base.boot.id, current: current.boot.id, tree: diffTree(base.flame, current.flame), self_changes };
  }
  const stored = hasTable(store.db, 'bench_results') ? store.benchResults().map((b) => ({ source: `store #${b.id}`, suite: b.suite, date: b.date, report: b.report as Record<string, unknown> })) : [];
  return { generated_at: new Date().toISOString(), db: store.path, boots, diff, bench: [...bench, ...stored] };
}
