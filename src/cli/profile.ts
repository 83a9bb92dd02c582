/**
 * @fileoverview `kjit profile ls|show|merge|stale|export|import`: the
 * profile store (src/store) from the command line.  Every subcommand but
 * import opens the database read-only: it can run while kernels write to it.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { ExitCode, KjitError } from '../errors.js';
import { type ImageSpec, loadImage, REFERENCE } from '../kernel/image.js';
import { Context } from '../native/llvm.js';
import { functionIrHashes } from '../store/ir-hash.js';
import type { MergedProfile } from '../store/merge.js';
import { defaultProfileDb, STORE_PARAMS } from '../store/params.js';
import { ProftextError } from '../store/proftext.js';
import { hostMachineInfo } from '../store/session.js';
import { type BootRow, type MergeOptions, ProfileStore } from '../store/store.js';

type Options = NonNullable<NonNullable<Parameters<typeof parseArgs>[0]>['options']>;

export const bad = (problem: string, fix: string) => new KjitError(problem, fix, ExitCode.BAD_INPUT);

/** The store commands' arguments: --db and --json for all, then `options`. */
export function parse(argv: string[], options: Options, usage: string): { values: Record<string, unknown>; positionals: string[] } {
  try {
    const r = parseArgs({ args: argv, options: { db: { type: 'string' }, json: { type: 'boolean', default: false }, ...options }, allowPositionals: true, strict: true });
    return { values: r.values as Record<string, unknown>, positionals: r.positionals };
  } catch (e) {
    throw bad((e as Error).message.replace(/\. To specify.*$/s, ''), `write ${usage}`);
  }
}

/** --db, or the default store (KJIT_PROFILE_DB off: an error). */
export function dbPath(v: Record<string, unknown>): string {
  const path = (v.db as string | undefined) ?? defaultProfileDb();
  if (path === null) throw bad('no profile store: KJIT_PROFILE_DB is off', 'pass --db PATH');
  return path;
}

function print(json: boolean, result: unknown, human: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(result, null, 2)}\n` : human());
}

function noPositionals(positionals: string[], usage: string): void {
  if (positionals.length) throw bad(`unexpected argument '${positionals[0]}'`, `write ${usage}`);
}

/** name -> IR hash of an image's functions; the image's spec comes from flags, the store, or the reference kernel. */
function imageFunctions(store: ProfileStore, path: string, v: Record<string, unknown>): { family: string; functions: Map<string, string> } {
  const family = basename(path);
  let spec: ImageSpec;
  if (resolve(path) === REFERENCE.path) spec = REFERENCE;
  else {
    const known = store.db.prepare<unknown[], { init: string; entry: string | null; run: string | null }>('SELECT init, entry, run FROM images WHERE name = ? ORDER BY id DESC LIMIT 1').get(family);
    const entry = (v.entry as string | undefined) ?? known?.entry ?? undefined;
    const run = known?.run ?? undefined;
    if (!entry && !run) throw bad(`the profile store knows no image named ${family}, so not its entry function`, 'pass --init SYM --entry SYM as for kjit run');
    spec = { path, init: (v.init as string | undefined) ?? known?.init ?? 'init', ...(entry ? { entry } : { run: run! }) };
  }
  const ctx = Context.create();
  try {
    const image = loadImage(ctx, spec);
    try {
      return { family, functions: functionIrHashes(image.pristine) };
    } finally {
      image.dispose();
    }
  } finally {
    ctx.dispose();
  }
}

function bootLine(b: BootRow): string {
  const ended = b.ended_at ? `${b.status}` : b.status === 'running' ? 'running or killed' : b.status;
  const secs = b.seconds !== null ? `${b.seconds.toFixed(1)} s` : '-';
  return `${String(b.id).padStart(5)}  ${b.started_at.replace('T', ' ').slice(0, 19)}  ${b.image.padEnd(14)} ${b.machine_class.padEnd(10)} ${b.workload.padEnd(9)} ${b.mode.padEnd(8)} ${secs.padStart(7)} ${String(b.samples).padStart(8)} ${String(b.functions).padStart(5)} ${String(b.counted_functions).padStart(6)}  ${ended}${b.source !== 'run' ? ` (${b.source})` : ''}`;
}

const BOOT_HEADER = `${'boot'.padStart(5)}  ${'started'.padEnd(19)}  ${'image'.padEnd(14)} ${'class'.padEnd(10)} ${'workload'.padEnd(9)} ${'mode'.padEnd(8)} ${'time'.padStart(7)} ${'samples'.padStart(8)} ${'fns'.padStart(5)} ${'counts'.padStart(6)}  status`;

function cmdLs(argv: string[]): number {
  const usage = 'kjit profile ls [--db PATH] [--image NAME] [--workload W] [--json]';
  const { values: v, positionals } = parse(argv, { image: { type: 'string' }, workload: { type: 'string' } }, usage);
  noPositionals(positionals, usage);
  using store = ProfileStore.open(dbPath(v), { readonly: true });
  const boots = store.listBoots({ ...(v.image ? { family: basename(v.image as string) } : {}), ...(v.workload ? { workload: v.workload as string } : {}) });
  const size = store.size();
  print(v.json === true, { path: store.path, bytes: size.bytes, boots }, () => {
    const lines = [`${store.path}: ${boots.length} boot(s), ${(size.bytes / 1048576).toFixed(2)} MB`, BOOT_HEADER, ...boots.map(bootLine)];
    return `${lines.join('\n')}\n`;
  });
  return ExitCode.OK;
}

function cmdShow(argv: string[]): number {
  const usage = 'kjit profile show [--db PATH] BOOT [--top N] [--json]';
  const { values: v, positionals } = parse(argv, { top: { type: 'string' } }, usage);
  if (positionals.length !== 1 || !/^\d+$/.test(positionals[0]!)) throw bad('kjit profile show needs one boot id', `write ${usage} (ids: kjit profile ls)`);
  using store = ProfileStore.open(dbPath(v), { readonly: true });
  const s = store.showBoot(Number(positionals[0]), Number(v.top ?? 20));
  print(v.json === true, s, () => {
    const total = s.boot.samples || 1;
    const lines = [BOOT_HEADER, bootLine(s.boot), '', 'top functions (self, total samples):'];
    for (const f of s.top) lines.push(`  ${f.function.padEnd(32)} ${((f.self / total) * 100).toFixed(1).padStart(5)}% ${((f.total / total) * 100).toFixed(1).padStart(5)}%`);
    lines.push('edges:');
    for (const e of s.edges) lines.push(`  ${e.caller} -> ${e.callee}  ${e.samples}`);
    lines.push('hot paths:');
    for (const h of s.hot_paths) lines.push(`  ${h.chain.join(' > ')}  ${h.samples}`);
    lines.push(`exact counts: ${s.counts.length} function(s)`);
    for (const c of s.counts) lines.push(`  ${c.function.padEnd(32)} entry ${c.entry}, ${c.branch_sites} branch site(s), ${c.icall_sites} indirect call(s)`);
    if (s.compile_log.length) lines.push(`compile log: ${s.compile_log.length} entr${s.compile_log.length === 1 ? 'y' : 'ies'}`);
    for (const c of s.compile_log) lines.push(`  ${String(c.function)} ${String(c.tier)} ${String(c.outcome)}: ${String(c.reason)}${c.why ? ` (${String(c.why)})` : ''}`);
    if (s.decisions.length) lines.push(`decisions: ${s.decisions.length}`);
    for (const d of s.decisions) lines.push(`  ${d.kind} ${d.function ?? ''}: ${d.reason} ${JSON.stringify(d.numbers)}`);
    return `${lines.join('\n')}\n`;
  });
  return ExitCode.OK;
}

const MERGE_FLAGS: Options = {
  image: { type: 'string' },
  init: { type: 'string' },
  entry: { type: 'string' },
  workload: { type: 'string' },
  'machine-class': { type: 'string' },
  boots: { type: 'string' },
  boot: { type: 'string' },
  decay: { type: 'string' },
  force: { type: 'boolean', default: false },
};

/** The merge flags' selection: target (image family, host machine class, workload) and options. */
function merged(store: ProfileStore, v: Record<string, unknown>): { merged: MergedProfile; family: string; workload: string; machineClass: string } {
  const ids = v.boot !== undefined ? [v.boot as string] : v.boots !== undefined ? (v.boots as string).split(',') : undefined;
  if (ids?.some((x) => !/^\d+$/.test(x))) throw bad(`--boots ${ids.join(',')} is not a list of boot ids`, 'write --boots 3,4,7 (ids: kjit profile ls)');
  /* the target: the image given, else that of the first boot asked for, else of the latest boot; this machine's class, unless boots were asked for */
  const first = ids ? store.boot(Number(ids[0])) : null;
  const latest = first ?? store.listBoots()[0];
  const hostClass = first ? first.machine_class : hostMachineInfo().llvmCpu;
  let family = latest?.image ?? basename(REFERENCE.path);
  let functions: Map<string, string> | undefined;
  if (v.image !== undefined) {
    const path = v.image as string;
    if (existsSync(path)) ({ family, functions } = imageFunctions(store, path, v));
    else family = basename(path);
  }
  const workload = (v.workload as string | undefined) ?? latest?.workload ?? 'web';
  const decay = v.decay !== undefined ? Number(v.decay) : STORE_PARAMS.decayPerBoot;
  if (!(decay > 0 && decay <= 1)) throw bad(`--decay ${String(v.decay)} is out of range`, 'pass a factor in (0, 1]: 1 weighs every boot alike');
  const opts: MergeOptions = {
    decay,
    force: v.force === true,
    ...(ids ? { boots: ids.map(Number) } : {}),
    ...(v['machine-class'] !== undefined ? { from: { machineClass: v['machine-class'] as string } } : {}),
  };
  const m = store.loadMerged({ family, machineClass: hostClass, workload, ...(functions ? { functions } : {}) }, opts);
  return { merged: m, family, workload, machineClass: (v['machine-class'] as string | undefined) ?? hostClass };
}

function cmdMerge(argv: string[]): number {
  const usage = 'kjit profile merge [--db PATH] [--image PATH] [--workload W] [--machine-class C] [--boots 3,4] [--decay D] [--force] [--top N] [--json]';
  const { values: v, positionals } = parse(argv, { ...MERGE_FLAGS, top: { type: 'string' } }, usage);
  noPositionals(positionals, usage);
  using store = ProfileStore.open(dbPath(v), { readonly: true });
  const { merged: m, family, workload, machineClass } = merged(store, v);
  const top = Number(v.top ?? 20);
  const result = {
    image_family: family,
    machine_class: machineClass,
    workload,
    boots: m.boots,
    samples: m.samples,
    matching: m.matching,
    functions: m.functions.slice(0, top),
    edges: m.edges.slice(0, top),
    hot_paths: m.hotPaths.slice(0, Math.min(10, top)),
    counts: m.counts,
  };
  print(v.json === true, result, () => {
    const lines = [
      `${family} on ${machineClass}, ${workload}: ${m.boots.length} boot(s) merged (weights ${m.boots.map((b) => `${b.id}:${b.weight.toFixed(2)}`).join(' ')}), ${m.samples.toFixed(0)} weighted samples`,
    ];
    if (v.image !== undefined) lines.push(`  ${m.matching.functions_matched} of ${m.matching.functions_total} functions match the image (${m.matching.functions_matched_by_shape} by shape), ${m.matching.functions_stale} stale`);
    for (const f of result.functions) lines.push(`  ${f.function.padEnd(32)} self ${f.self.toFixed(1).padStart(10)}  total ${f.total.toFixed(1).padStart(10)}`);
    lines.push(`  exact counts for ${m.counts.length} function(s)`);
    return `${lines.join('\n')}\n`;
  });
  return ExitCode.OK;
}

function cmdStale(argv: string[]): number {
  const usage = 'kjit profile stale [--db PATH] --image PATH [--init SYM --entry SYM] [--workload W] [--json]';
  const { values: v, positionals } = parse(argv, { image: { type: 'string' }, init: { type: 'string' }, entry: { type: 'string' }, workload: { type: 'string' } }, usage);
  noPositionals(positionals, usage);
  if (v.image === undefined) throw bad('kjit profile stale needs --image PATH', `write ${usage}`);
  using store = ProfileStore.open(dbPath(v), { readonly: true });
  const { family, functions } = imageFunctions(store, v.image as string, v);
  const r = store.stale(family, functions, v.workload as string | undefined);
  const report = { functions_total: r.functions_total, functions_matched: r.functions_matched, functions_matched_by_shape: r.functions_matched_by_shape, samples_matched_pct: r.samples_matched_pct };
  print(v.json === true, report, () => {
    const stale = [...r.functions.values()].filter((f) => r.matches.get(f.id)?.kind === 'stale').map((f) => f.name);
    const shaped = [...r.functions.values()].flatMap((f) => {
      const m = r.matches.get(f.id);
      return m?.kind === 'shape' ? [`${f.name} -> ${m.name}`] : [];
    });
    const lines = [
      `${family}: ${r.functions_matched} of ${r.functions_total} profiled functions match ${v.image as string} (${r.functions_matched_by_shape} by shape: renamed or moved); ${r.samples_matched_pct}% of their samples`,
    ];
    if (shaped.length) lines.push(`  matched by shape: ${shaped.join(', ')}`);
    if (stale.length) lines.push(`  stale (IR changed or gone; never applied): ${stale.slice(0, 20).join(', ')}${stale.length > 20 ? `, ... (${stale.length - 20} more)` : ''}`);
    return `${lines.join('\n')}\n`;
  });
  return ExitCode.OK;
}

function cmdExport(argv: string[]): number {
  const usage = 'kjit profile export [--db PATH] --format proftext [--boot ID | --image PATH --workload W ...] [--out FILE]';
  const { values: v, positionals } = parse(argv, { ...MERGE_FLAGS, format: { type: 'string' }, out: { type: 'string' } }, usage);
  noPositionals(positionals, usage);
  if (v.format !== 'proftext') throw bad(`unknown --format '${String(v.format ?? '')}'`, 'pass --format proftext (LLVM text profile: llvm-profdata-19 merge reads it)');
  using store = ProfileStore.open(dbPath(v), { readonly: true });
  const { merged: m } = merged(store, v);
  const text = store.exportProftext(m.counts);
  if (v.out !== undefined) {
    writeFileSync(v.out as string, text);
    process.stderr.write(`kjit: ${m.counts.length} function(s) of exact counts from ${m.boots.length} boot(s) written to ${v.out as string}\n`);
  } else process.stdout.write(text);
  return ExitCode.OK;
}

function cmdImport(argv: string[]): number {
  const usage = 'kjit profile import [--db PATH] FILE [--workload W] [--machine-class C] [--image NAME] [--json]';
  const { values: v, positionals } = parse(argv, { workload: { type: 'string' }, 'machine-class': { type: 'string' }, image: { type: 'string' } }, usage);
  if (positionals.length !== 1) throw bad('kjit profile import needs one file', `write ${usage}`);
  const file = positionals[0]!;
  if (!existsSync(file)) throw bad(`${file} does not exist`, 'pass a text profile (kjit profile export, or llvm-profdata-19 merge --text)');
  using store = ProfileStore.open(dbPath(v));
  let decoded;
  try {
    decoded = store.decodeProftext(readFileSync(file, 'utf8'));
  } catch (e) {
    if (e instanceof ProftextError) throw bad(`${file} is not an LLVM text profile: ${e.message}`, 'pass what kjit profile export or llvm-profdata-19 merge --text wrote');
    throw e;
  }
  if (!decoded.counts.length) {
    const why = decoded.skipped[0] ? ` (${decoded.skipped[0].function}: ${decoded.skipped[0].why})` : '';
    throw bad(`${file} has no counts kjit can read${why}`, 'import a profile kjit exported, into the store it came from');
  }
  const host = hostMachineInfo();
  const machine = v['machine-class'] !== undefined ? { cpuModel: `imported (${v['machine-class'] as string})`, llvmCpu: v['machine-class'] as string, features: '' } : host;
  const latest = store.listBoots()[0];
  const workload = (v.workload as string | undefined) ?? latest?.workload ?? 'web';
  const { bootId, image } = store.importCounts(decoded.counts, { machine, workload, source: `import: ${basename(file)}`, ...(v.image ? { family: basename(v.image as string) } : {}) });
  const result = { boot: bootId, image, machine_class: machine.llvmCpu, workload, functions: decoded.counts.length, skipped: decoded.skipped };
  print(v.json === true, result, () => {
    const lines = [`boot ${bootId}: exact counts of ${decoded.counts.length} function(s) of ${image} (${machine.llvmCpu}, ${workload}) from ${file}`];
    for (const s of decoded.skipped) lines.push(`  skipped ${s.function}: ${s.why}`);
    return `${lines.join('\n')}\n`;
  });
  return ExitCode.OK;
}

export function cmdProfile(argv: string[]): number {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'ls':
      return cmdLs(rest);
    case 'show':
      return cmdShow(rest);
    case 'merge':
      return cmdMerge(rest);
    case 'stale':
      return cmdStale(rest);
    case 'export':
      return cmdExport(rest);
    case 'import':
      return cmdImport(rest);
    default:
      throw bad(`unknown profile command '${sub ?? ''}'`, 'use kjit profile ls, show, merge, stale, export or import');
  }
}
