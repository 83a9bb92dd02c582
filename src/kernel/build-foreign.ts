/**
 * @fileoverview Builds the foreign images kjit measures on: real C code bases
 * kjit did not write, shipped in npm packages, with a small driver of ours
 * that follows the foreign-image contract (README "Foreign images").
 *
 * `build/ir/tree-sitter.bc`: the tree-sitter runtime (the C sources the
 * `tree-sitter` package vendors, one unit per source file as its own build
 * compiles them), the C grammar's generated parser (`tree-sitter-c`'s
 * src/parser.c), the driver `ir/foreign/tree-sitter/driver.c`, and a
 * generated inputs file: the tree-sitter runtime's own C sources split into
 * chunks at top-level definitions (the texts the driver parses) and the
 * grammar's highlights query.  Every file is compiled as the reference
 * kernel's are ("unoptimized but optimizable": `clang-19 -O2 -Xclang
 * -disable-llvm-passes -emit-llvm`, frame pointers kept) and tagged with its
 * unit, so `stock` compiles it one source file at a time.
 *
 * Only the packages' sources are read: their native addons are never built
 * (package.json `allowScripts` denies their install scripts).
 *
 * Run as a script it rebuilds what is stale (a stamp of the inputs' content).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

import { KjitError } from '../errors.js';
import { BUILD_IR, IR_SRC, ROOT } from '../paths.js';
import { linkImage, pool, runToStdout } from './build-ir.js';

export const TREE_SITTER_IMAGE = join(BUILD_IR, 'tree-sitter.bc');
/** The contract's entry points of the tree-sitter image. */
export const TREE_SITTER_SPEC = { path: TREE_SITTER_IMAGE, init: 'ts_init', entry: 'ts_entry' } as const;

const TS_PKG = join(ROOT, 'node_modules', 'tree-sitter');
const TS_LIB = join(TS_PKG, 'vendor', 'tree-sitter', 'lib');
const GRAMMAR_PKG = join(ROOT, 'node_modules', 'tree-sitter-c');
const DRIVER_DIR = join(IR_SRC, 'foreign', 'tree-sitter');
const GEN_DIR = join(BUILD_IR, 'foreign');

const BASE_FLAGS = [
  '-O2', '-Xclang', '-disable-llvm-passes', '-emit-llvm', '-c',
  '-fno-omit-frame-pointer', '-mno-omit-leaf-frame-pointer', '-fno-stack-protector', '-fPIE',
];
/* tree-sitter's own build: -std=c11 with the POSIX feature macros (its Makefile); not our code: no warnings */
const TS_FLAGS = [
  ...BASE_FLAGS, '-std=c11', '-D_POSIX_C_SOURCE=200112L', '-D_DEFAULT_SOURCE', '-w',
  '-I', join(TS_LIB, 'include'), '-I', join(TS_LIB, 'src'),
];
const GRAMMAR_FLAGS = [...BASE_FLAGS, '-std=c11', '-w', '-I', join(GRAMMAR_PKG, 'src')];
const DRIVER_FLAGS = [
  ...BASE_FLAGS, '-std=gnu11', '-Wall', '-Wextra', '-Wno-unused-parameter', '-Werror',
  '-I', join(TS_LIB, 'include'), '-I', join(IR_SRC, 'runtime'),
];

/** The driver parses TEXT_COUNT texts of at least TEXT_BYTES bytes (selectTexts). */
const TEXT_BYTES = 2000;
const TEXT_COUNT = 16;

interface Source {
  file: string;
  unit: string;
  flags: readonly string[];
}

function requirePackages(): void {
  for (const [pkg, probe] of [
    ['tree-sitter', join(TS_LIB, 'src', 'parser.c')],
    ['tree-sitter-c', join(GRAMMAR_PKG, 'src', 'parser.c')],
  ] as const) {
    if (!existsSync(probe)) {
      throw new KjitError(`the ${pkg} package's C sources are missing (${relative(ROOT, probe)})`, 'run `npm ci` (or `npm run setup`)', 1);
    }
  }
}

/** The tree-sitter runtime's C files, one unit each (lib.c only includes them all). */
function runtimeSources(): string[] {
  const dir = join(TS_LIB, 'src');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.c') && f !== 'lib.c')
    .sort()
    .map((f) => join(dir, f));
}

function sources(inputs: string): Source[] {
  return [
    ...runtimeSources().map((file) => ({ file, unit: `tree-sitter/lib/src/${relative(join(TS_LIB, 'src'), file)}`, flags: TS_FLAGS })),
    { file: join(GRAMMAR_PKG, 'src', 'parser.c'), unit: 'tree-sitter-c/src/parser.c', flags: GRAMMAR_FLAGS },
    { file: join(DRIVER_DIR, 'driver.c'), unit: 'foreign/tree-sitter/driver.c', flags: DRIVER_FLAGS },
    { file: inputs, unit: 'foreign/tree-sitter/inputs.c', flags: DRIVER_FLAGS },
  ];
}

/** Split a C file after each top-level closing brace (a line that starts with "}"): its definitions, each with what precedes it. */
export function topLevelPieces(text: string): string[] {
  const out: string[] = [];
  let start = 0;
  for (const m of text.matchAll(/\n\}[^\n]*\n/g)) {
    const end = m.index + m[0].length;
    out.push(text.slice(start, end));
    start = end;
  }
  if (start < text.length) out.push(text.slice(start));
  return out;
}

/**
 * The texts the driver parses, one per operation, in turn: consecutive
 * top-level pieces of each file joined until a text has `target` bytes,
 * then `count` of those (at most twice `target` long) taken evenly across
 * the files.  Few, similar texts on purpose: the regression check compares
 * the cost per operation of 40-ms intervals, which must cover whole turns of
 * the cycle for an interval's cost not to depend on which texts it parsed.
 */
export function selectTexts(files: readonly string[], target = TEXT_BYTES, count = TEXT_COUNT): string[] {
  const chunks: string[] = [];
  for (const text of files) {
    let cur = '';
    for (const piece of topLevelPieces(text)) {
      cur += piece;
      if (cur.length >= target) {
        chunks.push(cur);
        cur = '';
      }
    }
    if (cur) chunks.push(cur);
  }
  const fit = chunks.filter((c) => c.length >= target && c.length <= 2 * target);
  if (fit.length < count) return fit;
  return Array.from({ length: count }, (_, k) => fit[Math.floor((k * fit.length) / count)]!);
}

/** A C string literal of `bytes`, one source line per input line. */
function cString(bytes: Buffer): string {
  let s = '"';
  for (const b of bytes) {
    if (b === 0x0a) s += '\\n"\n"';
    else if (b === 0x09) s += '\\t';
    else if (b === 0x22 || b === 0x5c || b === 0x3f) s += `\\${String.fromCharCode(b)}`;
    else if (b >= 0x20 && b < 0x7f) s += String.fromCharCode(b);
    else s += `\\${b.toString(8).padStart(3, '0')}`;
  }
  return `${s}"`;
}

/** What the driver parses: the tree-sitter runtime's own C sources and headers (lib/src, not lib.c). */
function corpusFiles(): string[] {
  const dir = join(TS_LIB, 'src');
  return readdirSync(dir)
    .filter((f) => (f.endsWith('.c') || f.endsWith('.h')) && f !== 'lib.c')
    .sort()
    .map((f) => join(dir, f));
}

interface Inputs {
  text: string;
  texts: number;
  bytes: number;
}

/** The generated inputs file: texts to parse and the highlights query. */
function inputsC(): Inputs {
  const texts = selectTexts(corpusFiles().map((f) => readFileSync(f, 'latin1')));
  const lines = ['/* Generated by src/kernel/build-foreign.ts: do not edit. */', '#include <stdint.h>', ''];
  let max = 0;
  let bytes = 0;
  texts.forEach((c, i) => {
    const b = Buffer.from(c, 'latin1');
    max = Math.max(max, b.length);
    bytes += b.length;
    lines.push(`static const char t${i}[] =\n${cString(b)};`);
  });
  lines.push(`const char *const tsd_texts[] = { ${texts.map((_, i) => `t${i}`).join(', ')} };`);
  lines.push(`const uint32_t tsd_lengths[] = { ${texts.map((_, i) => `sizeof t${i} - 1`).join(', ')} };`);
  lines.push(`const uint32_t tsd_ntexts = ${texts.length};`);
  lines.push(`const uint32_t tsd_max_length = ${max};`);
  const query = readFileSync(join(GRAMMAR_PKG, 'queries', 'highlights.scm'));
  lines.push(`const char tsd_query_source[] =\n${cString(query)};`);
  lines.push('const uint32_t tsd_query_length = sizeof tsd_query_source - 1;', '');
  return { text: lines.join('\n'), texts: texts.length, bytes };
}

async function compile(src: Source): Promise<Buffer> {
  return (await runToStdout([...src.flags, '-o', '-', src.file])).stdout;
}

/** Compile and link the tree-sitter image. */
export async function buildTreeSitterImage(out = TREE_SITTER_IMAGE): Promise<Omit<Inputs, 'text'>> {
  requirePackages();
  mkdirSync(GEN_DIR, { recursive: true });
  const inputs = inputsC();
  const inputsFile = join(GEN_DIR, 'tree-sitter-inputs.c');
  writeFileSync(inputsFile, inputs.text);
  const srcs = sources(inputsFile);
  const bitcode = await pool(srcs, 2, compile);
  linkImage(srcs.map((s, i) => ({ unit: s.unit, bitcode: bitcode[i]! })), out, '', 'kjit-foreign-tree-sitter');
  return { texts: inputs.texts, bytes: inputs.bytes };
}

/** Content hash of everything the build reads. */
function inputStamp(): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({ TS_FLAGS, GRAMMAR_FLAGS, DRIVER_FLAGS, TEXT_BYTES, TEXT_COUNT }));
  const files = [
    ...runtimeSources(),
    ...readdirSync(join(TS_LIB, 'src'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.h')).sort().map((f) => join(TS_LIB, 'src', f)),
    join(TS_LIB, 'include', 'tree_sitter', 'api.h'),
    join(GRAMMAR_PKG, 'src', 'parser.c'),
    join(GRAMMAR_PKG, 'queries', 'highlights.scm'),
    ...readdirSync(join(GRAMMAR_PKG, 'src', 'tree_sitter')).sort().map((f) => join(GRAMMAR_PKG, 'src', 'tree_sitter', f)),
    ...readdirSync(DRIVER_DIR).sort().map((f) => join(DRIVER_DIR, f)),
    join(IR_SRC, 'runtime', 'kjit_rt.h'),
    join(IR_SRC, 'runtime', 'kjit_cb.h'),
    fileURLToPath(import.meta.url),
  ];
  for (const file of files) {
    h.update(relative(ROOT, file));
    h.update(readFileSync(file));
  }
  return h.digest('hex');
}

/** Rebuild the foreign images if any input changed; returns whether it did. */
export async function buildForeign(force = false): Promise<boolean> {
  requirePackages();
  const stampFile = join(BUILD_IR, 'tree-sitter.stamp');
  const stamp = inputStamp();
  if (!force && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp && existsSync(TREE_SITTER_IMAGE)) return false;
  const t0 = performance.now();
  const { texts, bytes } = await buildTreeSitterImage();
  writeFileSync(stampFile, stamp);
  const size = statSync(TREE_SITTER_IMAGE).size;
  process.stderr.write(
    `build: tree-sitter image rebuilt in ${((performance.now() - t0) / 1000).toFixed(1)} s ` +
      `(${(size / 1024).toFixed(0)} KiB; ${texts} texts to parse, ${(bytes / 1024).toFixed(0)} KiB of C)\n`,
  );
  return true;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  buildForeign(process.argv.includes('--force')).catch((e: unknown) => {
    process.stderr.write(e instanceof KjitError ? `${e.line()}\n` : `build failed: ${String(e)}\n`);
    process.exit(1);
  });
}
