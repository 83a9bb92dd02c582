/**
 * @fileoverview Builds the IR kjit boots: the kjit runtime (linked into
 * every image), the code-memory manager (compiled into kjit's loader JIT),
 * and the reference kernel image.
 *
 * Every C file is compiled "unoptimized but optimizable"
 * (`clang-19 -O2 -Xclang -disable-llvm-passes -emit-llvm`, frame pointers
 * kept): all modes start from the same IR.  Each function is tagged with the
 * source file it came from (`"kjit-unit"` attribute) and each global with
 * `!kjit.unit` metadata, so `stock` can compile the image per source file as
 * a distribution build would.  The assembly routines are stored in the image
 * as module-level asm: the image is one self-contained IR file.
 *
 * Run as a script it rebuilds what is stale (a stamp of the inputs' content).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

import { KjitError } from '../errors.js';
import { Context, Module } from '../native/llvm.js';
import { ASM_SRC, BUILD_IR, CODEMEM_IR, IR_SRC, REFERENCE_IMAGE, ROOT, RUNTIME_IR } from '../paths.js';
import { tagUnit } from './units.js';

const CLANG = 'clang-19';

const COMMON_FLAGS = [
  '-std=gnu11', '-O2', '-Xclang', '-disable-llvm-passes', '-emit-llvm', '-c',
  '-fno-omit-frame-pointer', '-mno-omit-leaf-frame-pointer', '-fno-stack-protector', '-fPIE',
  '-Wall', '-Wextra', '-Wno-unused-parameter', '-Werror',
  '-I', join(IR_SRC, 'runtime'),
];
const KERNEL_FLAGS = [...COMMON_FLAGS, '-ffreestanding', '-I', join(IR_SRC, 'kernel', 'include')];
const RUNTIME_FLAGS = [...COMMON_FLAGS, '-D_GNU_SOURCE'];

function listFiles(dir: string, suffix: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listFiles(p, suffix));
    else if (entry.name.endsWith(suffix)) out.push(p);
  }
  return out.sort();
}

function run(cmd: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (e) =>
      reject(new KjitError(`cannot run ${cmd}: ${e.message}`, 'install LLVM 19 with `npm run setup`', 1, { cause: e })),
    );
    child.on('close', (code) => {
      if (code === 0) resolve({ stdout, stderr });
      else reject(new KjitError(`${cmd} ${args.at(-1)} failed:\n${stderr.trim()}`, 'fix the compile error above', 1));
    });
  });
}

/** Run async jobs at most `width` at a time (the machine has two cores). */
export async function pool<T, R>(items: readonly T[], width: number, job: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await job(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
  return results;
}

export interface CompiledFile {
  unit: string; /* path relative to ir/ (or asm/...), e.g. "kernel/net/tcp.c" */
  bitcode: Buffer;
}

async function compileC(file: string, flags: readonly string[], defines: readonly string[]): Promise<CompiledFile> {
  const { stdout } = await runToStdout([...flags, ...defines.map((d) => `-D${d}`), '-o', '-', file]);
  return { unit: relative(IR_SRC, file), bitcode: stdout };
}

export function runToStdout(args: string[]): Promise<{ stdout: Buffer }> {
  return new Promise((resolve, reject) => {
    const child = spawn(CLANG, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => chunks.push(d));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (e) =>
      reject(new KjitError(`cannot run ${CLANG}: ${e.message}`, 'install LLVM 19 with `npm run setup`', 1, { cause: e })),
    );
    child.on('close', (code) => {
      if (code === 0) resolve({ stdout: Buffer.concat(chunks) });
      else reject(new KjitError(`${CLANG} failed on ${args.at(-1)}:\n${stderr.trim()}`, 'fix the compile error above', 1));
    });
  });
}

/** Preprocessed text of every asm/*.S file, concatenated, each under a header comment. */
async function assemblyText(): Promise<string> {
  const parts: string[] = [];
  for (const file of listFiles(ASM_SRC, '.S')) {
    const { stdout } = await run(CLANG, ['-E', '-P', '-x', 'assembler-with-cpp', file]);
    parts.push(`# ---- ${relative(ROOT, file)}\n${stdout}`);
  }
  return parts.join('\n');
}

/** Link per-file bitcode into one tagged module and write it. */
export function linkImage(files: readonly CompiledFile[], out: string, asm: string, name: string): void {
  const ctx = Context.create();
  try {
    let image: Module | undefined;
    for (const f of files) {
      const m = Module.parseBitcode(ctx, f.bitcode, f.unit);
      tagUnit(m, f.unit);
      if (!image) {
        image = m;
        image.name = name;
        image.sourceFileName = name;
      } else {
        image.link(m); /* consumes m */
      }
    }
    if (!image) throw new Error(`no input files for ${out}`);
    if (asm) image.inlineAsm = asm;
    const problem = image.verify();
    if (problem) throw new KjitError(`the built image ${name} fails verification: ${problem}`, 'fix the sources', 1);
    mkdirSync(dirname(out), { recursive: true });
    image.writeBitcode(out);
    image.dispose();
  } finally {
    ctx.dispose();
  }
}

export interface KernelBuildOptions {
  /** Extra -D definitions (the `tailored` build passes boot-fixed sysctl values). */
  defines?: readonly string[];
  /** Extra clang flags after the image build's own (`offline-pgo` passes -fprofile-instr-generate/-use). */
  flags?: readonly string[];
  out?: string;
}

/** Compile and link the reference kernel image. */
export async function buildKernelImage(options: KernelBuildOptions = {}): Promise<string> {
  const out = options.out ?? REFERENCE_IMAGE;
  const sources = listFiles(join(IR_SRC, 'kernel'), '.c');
  const flags = [...KERNEL_FLAGS, ...(options.flags ?? [])];
  const files = await pool(sources, 2, (f) => compileC(f, flags, options.defines ?? []));
  linkImage(files, out, await assemblyText(), 'kjit-reference-kernel');
  return out;
}

export async function buildRuntime(): Promise<void> {
  /* everything in ir/runtime but the code-memory manager, which runs in the loader JIT */
  const sources = listFiles(join(IR_SRC, 'runtime'), '.c').filter((f) => !f.endsWith('codemem.c'));
  const runtime = await pool(sources, 2, (f) => compileC(f, RUNTIME_FLAGS, []));
  linkImage(runtime, RUNTIME_IR, '', 'kjit-runtime');
  const codemem = await compileC(join(IR_SRC, 'runtime', 'codemem.c'), RUNTIME_FLAGS, []);
  mkdirSync(BUILD_IR, { recursive: true });
  writeFileSync(CODEMEM_IR, codemem.bitcode);
}

/** Content hash of everything the build reads. */
function inputStamp(): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({ KERNEL_FLAGS, RUNTIME_FLAGS }));
  for (const dir of [IR_SRC, ASM_SRC]) {
    for (const file of [...listFiles(dir, '.c'), ...listFiles(dir, '.h'), ...listFiles(dir, '.S')]) {
      h.update(relative(ROOT, file));
      h.update(readFileSync(file));
    }
  }
  h.update(readFileSync(fileURLToPath(import.meta.url)));
  return h.digest('hex');
}

/** Rebuild the IR if any input changed; returns whether it did. */
export async function buildAll(force = false): Promise<boolean> {
  const stampFile = join(BUILD_IR, 'stamp');
  const stamp = inputStamp();
  const outputs = [REFERENCE_IMAGE, RUNTIME_IR, CODEMEM_IR];
  if (!force && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp && outputs.every((o) => existsSync(o))) {
    return false;
  }
  const t0 = performance.now();
  await buildRuntime();
  await buildKernelImage();
  writeFileSync(stampFile, stamp);
  const size = statSync(REFERENCE_IMAGE).size;
  process.stderr.write(`build: IR rebuilt in ${((performance.now() - t0) / 1000).toFixed(1)} s (kernel image ${(size / 1024).toFixed(0)} KiB)\n`);
  return true;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  buildAll(process.argv.includes('--force')).catch((e: unknown) => {
    process.stderr.write(e instanceof KjitError ? `${e.line()}\n` : `build failed: ${String(e)}\n`);
    process.exit(1);
  });
}
