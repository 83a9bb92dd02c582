/**
 * @fileoverview `kjit report` (one self-contained HTML file for a run or a
 * comparison of runs, from the profile store) and `kjit explain FUNCTION`
 * (the same "why" in the terminal).  Both only read the store, also while
 * kernels write to it; `kjit report --save-bench` writes the benchmark
 * reports it is given into it.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

import { ExitCode } from '../errors.js';
import { type BenchEntry, functionReport, reportData, summaryOf } from '../report/data.js';
import { renderReport } from '../report/html.js';
import { ProfileStore } from '../store/store.js';
import { bad, dbPath, parse } from './profile.js';

/** --db (or the default store), which must exist: a report never creates one. */
function existingDb(v: Record<string, unknown>): string {
  const path = dbPath(v);
  if (!existsSync(path)) throw bad(`no profile store at ${path}`, 'pass --db PATH of a store kjit run --profile-db wrote');
  return path;
}

function bootIds(v: Record<string, unknown>): number[] {
  const ids = ((v.boot as string[] | undefined) ?? []).flatMap((x) => x.split(','));
  for (const id of ids) if (!/^\d+$/.test(id)) throw bad(`--boot ${id} is not a boot id`, 'pass ids that kjit profile ls lists, e.g. --boot 3 --boot 4');
  return ids.map(Number);
}

/** A `kjit bench ... --out FILE` report. */
function readBench(file: string): BenchEntry & { raw: { suite: string; format?: string; env?: { date?: string; commit?: string } } } {
  let report: unknown;
  try {
    report = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw bad(`cannot read the benchmark report ${file}: ${(e as Error).message.split('\n')[0]}`, 'pass a file that kjit bench ... --out FILE wrote');
  }
  const r = report as { suite?: unknown; env?: { date?: string } };
  if (typeof r !== 'object' || r === null || typeof r.suite !== 'string') throw bad(`${file} is not a kjit benchmark report (no "suite")`, 'pass a file that kjit bench ... --out FILE wrote');
  return { source: file, suite: r.suite, date: r.env?.date ?? '', report: report as Record<string, unknown>, raw: report as { suite: string } };
}

export const REPORT_USAGE = 'kjit report [--db PATH] [--boot ID]... [--out FILE.html] [--bench FILE.json]... [--save-bench] [--json]';

export function cmdReport(argv: string[]): number {
  const { values: v, positionals } = parse(
    argv,
    { boot: { type: 'string', multiple: true }, out: { type: 'string' }, bench: { type: 'string', multiple: true }, 'save-bench': { type: 'boolean', default: false } },
    REPORT_USAGE,
  );
  if (positionals.length) throw bad(`unexpected argument '${positionals[0]}'`, `write ${REPORT_USAGE}`);
  const out = resolve((v.out as string | undefined) ?? 'kjit-report.html');
  if (!existsSync(dirname(out))) throw bad(`the directory of --out ${out} does not exist`, `create ${dirname(out)} first, or write the report elsewhere`);
  const bench = ((v.bench as string[] | undefined) ?? []).map(readBench);
  const save = v['save-bench'] === true;
  if (save && !bench.length) throw bad('--save-bench without --bench', 'pass the reports to keep: --bench FILE.json --save-bench');
  using store = ProfileStore.open(existingDb(v), save ? {} : { readonly: true });
  if (save) for (const b of bench) store.saveBench(b.raw);
  /* saved ones come back from the store: list the files only when they were not saved */
  const data = reportData(store, bootIds(v), save ? [] : bench.map(({ raw: _raw, ...b }) => b));
  const html = renderReport(data);
  writeFileSync(out, html);
  const result = { out, bytes: Buffer.byteLength(html), boots: data.boots.map((b) => b.boot.id), events: data.boots.map((b) => b.timeline?.events.length ?? 0), bench: data.bench.length };
  process.stdout.write(
    v.json === true
      ? `${JSON.stringify(result, null, 2)}\n`
      : `wrote ${out} (${(result.bytes / 1024).toFixed(0)} KiB; boot${result.boots.length === 1 ? '' : 's'} ${result.boots.join(', ')}; ${result.bench} benchmark report(s)): open it in a browser, it needs no network\n`,
  );
  return ExitCode.OK;
}

export const EXPLAIN_USAGE = 'kjit explain FUNCTION [--db PATH] [--boot ID] [--json]';

export function cmdExplain(argv: string[]): number {
  const { values: v, positionals } = parse(argv, { boot: { type: 'string', multiple: true } }, EXPLAIN_USAGE);
  if (positionals.length !== 1) throw bad(positionals.length ? `unexpected argument '${positionals[1]}'` : 'kjit explain needs a function name', `write ${EXPLAIN_USAGE}`);
  const fn = positionals[0]!;
  const ids = bootIds(v);
  if (ids.length > 1) throw bad('kjit explain takes one --boot', `write ${EXPLAIN_USAGE}`);
  using store = ProfileStore.open(existingDb(v), { readonly: true });
  const db = store.db;
  /* the boot: the one asked for, else the latest that decided on or compiled it, else the latest */
  const latestWith = db
    .prepare<unknown[], { id: number | null }>(
      `SELECT max(boot_id) AS id FROM (SELECT d.boot_id FROM decisions d JOIN functions f ON f.id = d.function_id WHERE f.name = ?
       UNION ALL SELECT c.boot_id FROM compile_log c JOIN functions f ON f.id = c.function_id WHERE f.name = ?)`,
    )
    .get(fn, fn)?.id ?? undefined; /* max() of nothing is NULL */
  const bootId = ids[0] ?? latestWith ?? store.listBoots()[0]?.id;
  if (bootId === undefined) throw bad(`the profile store ${store.path} has no boot`, 'run a kernel with --profile-db PATH first');
  const boot = store.boot(bootId);
  if (!boot) throw bad(`the profile store has no boot ${bootId}`, 'list its boots with `kjit profile ls`');
  const known = db
    .prepare<unknown[], { n: number }>('SELECT count(*) AS n FROM image_functions i JOIN functions f ON f.id = i.function_id JOIN boots b ON b.image_id = i.image_id WHERE b.id = ? AND f.name = ?')
    .get(bootId, fn)!.n;
  const seen = db.prepare<unknown[], { n: number }>('SELECT count(*) AS n FROM samples s JOIN functions f ON f.id = s.function_id WHERE s.boot_id = ? AND f.name = ?').get(bootId, fn)!.n;
  if (!known && !seen && latestWith === undefined) {
    throw bad(`boot ${bootId}'s image has no function '${fn}', and nothing was recorded about it`, `names are the C names; kjit profile show ${bootId} lists the hot ones`);
  }
  const f = functionReport(db, boot, fn, summaryOf(db, bootId));
  const result = {
    function: fn,
    boot: { id: boot.id, mode: boot.mode, workload: boot.workload, image: boot.image, seconds: boot.seconds },
    state: f.why.state,
    reason: f.why.reason,
    why: f.why.why,
    numbers: f.why.numbers,
    at_s: f.why.at_s,
    self_pct: f.self_pct,
    total_pct: f.total_pct,
    versions: f.versions,
    speedups: f.speedups,
    profile: f.profile,
    decisions: f.decisions,
    compile_log: f.compiles,
  };
  if (v.json === true) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return ExitCode.OK;
  }
  const num = (x: unknown) => (typeof x === 'number' ? Number(x.toFixed(3)).toString() : String(x));
  const at = (s: number | null) => (s === null ? '      -' : `${s.toFixed(2).padStart(7)} s`);
  const lines = [
    `${fn} · boot ${boot.id} (${boot.mode}, ${boot.workload}${boot.seconds !== null ? `, ${boot.seconds.toFixed(1)} s` : ''})`,
    `  state     ${f.why.state} (${f.why.reason})${f.why.at_s !== null ? ` at ${f.why.at_s.toFixed(2)} s` : ''}`,
    `  why       ${f.why.why}`,
  ];
  if (Object.keys(f.why.numbers).length) lines.push(`  numbers   ${Object.entries(f.why.numbers).map(([k, x]) => `${k}=${num(x)}`).join(' ')}`);
  lines.push(`  samples   ${f.self_pct.toFixed(2)}% self, ${f.total_pct.toFixed(2)}% total (of ${boot.samples} samples)`);
  if (f.versions.length) lines.push(`  versions  ${f.versions.map((x) => `v${x.version} ${x.tier}${x.code_bytes !== null ? ` ${x.code_bytes} B` : ''} ${x.state}`).join('; ')}`);
  if (f.speedups.length) lines.push(`  speedup   ${f.speedups.map((s) => `${s.speedup >= 0 ? '+' : ''}${(s.speedup * 100).toFixed(2)}% at ${s.at_s.toFixed(2)} s (${s.keep ? 'kept' : 'rolled back'})`).join(', ')}`);
  const p = f.profile;
  if (p) {
    lines.push(`  profile   ${p.entry} calls counted in ${p.windows} window(s) of ${p.window_ms.toFixed(0)} ms`);
    for (const b of p.hot_branches) lines.push(`            branch #${b.site}: ${b.executions} executions, successors ${b.successors_pct.map((x) => `${x}%`).join(' / ')}`);
    for (const s of p.icalls) lines.push(`            indirect call #${s.site}: ${s.total} calls -> ${s.targets.map((t) => `${t.function} ${t.pct}%`).join(', ') || 'no target recorded'}`);
  }
  if (f.decisions.length) {
    lines.push('  decisions');
    for (const d of f.decisions) lines.push(`    ${at(d.at_s)}  ${d.kind.padEnd(10)} ${d.reason.padEnd(13)} ${Object.entries(d.numbers).map(([k, x]) => `${k}=${num(x)}`).join(' ')}`);
  }
  if (f.compiles.length) {
    lines.push('  compile log');
    for (const c of f.compiles) {
      lines.push(
        `    ${at(c.at_s)}  ${c.version !== null ? `v${c.version}`.padEnd(5) : '-    '} ${c.tier.padEnd(9)} ${c.outcome.padEnd(11)} ${c.compile_ms !== null ? `${c.compile_ms.toFixed(0)} ms ` : ''}${c.code_bytes !== null ? `${c.code_bytes} B ` : ''}${c.reason}${c.why ? ` (${c.why})` : ''}`,
      );
    }
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  return ExitCode.OK;
}
