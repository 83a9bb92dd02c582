/**
 * @fileoverview Loading an image: read its IR (bitcode or text), check it,
 * link the kjit runtime into it, generate the glue the runtime calls
 * (kjit_image_init / kjit_image_run / kjit_image_entry), and keep the result
 * as the pristine IR every mode and every later re-JIT unit is built from.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename } from 'node:path';

import { firstLine, KjitError } from '../errors.js';
import { type Context, LLVMError, Module, type Value } from '../native/llvm.js';
import { REFERENCE_IMAGE, RUNTIME_IR } from '../paths.js';
import { cacheEnabled, cacheKey, readFacts, writeFacts } from './cache.js';
import { keepFramePointers } from './specialize.js';
import { type ImageTables, readTables } from './tables.js';
import { tagUnit } from './units.js';

export interface ImageSpec {
  path: string;
  /** Function called once on the kernel thread before any operation. */
  init: string;
  /** Function the runtime calls once per operation (foreign images). */
  entry?: string;
  /** Function that drives the image itself (the reference kernel). */
  run?: string;
}

export const REFERENCE: ImageSpec = { path: REFERENCE_IMAGE, init: 'kernel_init', run: 'kernel_run' };

export interface Image {
  spec: ImageSpec;
  name: string;
  /** sha256 of the image file: profiles and caches key on it. */
  hash: string;
  /** sha256 of the kjit runtime IR linked into it. */
  runtimeHash: string;
  /** Image + runtime + glue, unspecialized.  Owned by the Image; parsed on
   * first use when the image was validated before (see `loadImage`). */
  readonly pristine: Module;
  /** The context `pristine` lives (or will live) in. */
  context: Context;
  /** Whether `pristine` has been parsed yet. */
  readonly parsed: boolean;
  tables: ImageTables;
  kind: 'run' | 'entry';
  dispose(): void;
}

const BITCODE_MAGIC = Buffer.from([0x42, 0x43, 0xc0, 0xde]);
const BITCODE_WRAPPER_MAGIC = Buffer.from([0xde, 0xc0, 0x17, 0x0b]);

function readImageFile(path: string): Buffer {
  if (!existsSync(path)) {
    const fix = path === REFERENCE_IMAGE ? 'run `npm run setup` to build the reference kernel' : 'pass the path of an existing .bc or .ll file';
    throw new KjitError(`image ${path} does not exist`, fix);
  }
  if (!statSync(path).isFile()) throw new KjitError(`image ${path} is not a file`, 'pass an LLVM IR file (.bc or .ll)');
  const bytes = readFileSync(path);
  if (bytes.length === 0) throw new KjitError(`image ${path} is empty`, 'regenerate it with clang-19 -emit-llvm');
  return bytes;
}

function parseImage(ctx: Context, path: string, bytes: Buffer): Module {
  const isBitcode = bytes.subarray(0, 4).equals(BITCODE_MAGIC) || bytes.subarray(0, 4).equals(BITCODE_WRAPPER_MAGIC);
  try {
    return isBitcode ? Module.parseBitcode(ctx, bytes, path) : Module.parseIR(ctx, bytes, path);
  } catch (e) {
    if (!(e instanceof LLVMError)) throw e;
    const what = isBitcode ? 'corrupt LLVM bitcode' : 'not valid LLVM IR (text)';
    throw new KjitError(
      `image ${path} is ${what}: ${firstLine(e.llvmMessage)}`,
      'regenerate it with `clang-19 -O2 -Xclang -disable-llvm-passes -emit-llvm -c`',
      2,
      { cause: e },
    );
  }
}

function describeSignature(fn: Value): string {
  return fn.functionTypeString();
}

function requireFunction(m: Module, path: string, name: string, flag: string): Value {
  const fn = m.getFunction(name);
  if (!fn || fn.isDeclaration()) {
    const defined = [...m.functions()].filter((f) => !f.isDeclaration()).map((f) => f.name);
    const hint = defined.length ? `functions it defines include: ${defined.slice(0, 8).join(', ')}` : 'it defines no functions';
    throw new KjitError(`image ${path} defines no function '${name}' (${flag})`, `pass the name of a defined function; ${hint}`);
  }
  return fn;
}

/** Textual IR for the glue between the runtime and the image's entry points. */
function glueIR(spec: ImageSpec, init: Value, entry: Value | null, run: Value | null, triple: string, layout: string): string {
  const q = (s: string) => `@"${s.replace(/"/g, '\\22')}"`;
  const lines = [`target datalayout = "${layout}"`, `target triple = "${triple}"`];
  lines.push(`@kjit_image_kind = constant i64 ${run ? 1 : 2}`);
  lines.push(`declare ${init.returnTypeString()} ${q(spec.init)}()`);
  lines.push(`define void @kjit_image_init() {\n  call ${init.returnTypeString()} ${q(spec.init)}()\n  ret void\n}`);
  if (run) {
    lines.push(`declare ${run.returnTypeString()} ${q(spec.run!)}()`);
    lines.push(`define void @kjit_image_run() {\n  call ${run.returnTypeString()} ${q(spec.run!)}()\n  ret void\n}`);
  } else {
    lines.push(`define void @kjit_image_run() {\n  unreachable\n}`);
  }
  if (entry) {
    const ret = entry.returnTypeString();
    const param = entry.paramTypeStrings()[0]!;
    const arg = param === 'i64' ? '%i' : '%a';
    const conv = param === 'i64' ? '' : `  %a = trunc i64 %i to ${param}\n`;
    const widen = ret === 'i64' ? '' : `  %w = zext ${ret} %r to i64\n`;
    lines.push(`declare ${ret} ${q(spec.entry!)}(${param})`);
    lines.push(
      `define i64 @kjit_image_entry(i64 %i) {\n${conv}  %r = call ${ret} ${q(spec.entry!)}(${param} ${arg})\n${widen}  ret i64 ${ret === 'i64' ? '%r' : '%w'}\n}`,
    );
  } else {
    lines.push(`define i64 @kjit_image_entry(i64 %i) {\n  unreachable\n}`);
  }
  return lines.join('\n') + '\n';
}

/** kjit_ functions an image may define: hooks the runtime declares weak for it to replace (ir/runtime/kjit_rt.h). */
const IMAGE_HOOKS = new Set(['kjit_mm_grant']);

/**
 * Load an image: read and check it, link the kjit runtime and glue in, read
 * its tables.  An image already loaded once on this machine (same bytes,
 * same runtime, same entry points, same kjit) was checked then: its tables
 * come from the facts cache (src/kernel/cache.ts) and its IR is parsed only
 * when something first needs it, after the kernel is running if the
 * compiled objects are cached too (a warm boot).
 */
export function loadImage(ctx: Context, spec: ImageSpec): Image {
  if (!spec.entry && !spec.run) {
    throw new KjitError('a foreign image needs an entry function', 'pass --entry SYMBOL (a function uint64 -> uint64)');
  }
  const bytes = readImageFile(spec.path);
  const hash = createHash('sha256').update(bytes).digest('hex');
  const runtimeBytes = readRuntime();
  const runtimeHash = createHash('sha256').update(runtimeBytes).digest('hex');
  const key = cacheKey({ facts: 1, hash, runtimeHash, init: spec.init, entry: spec.entry ?? null, run: spec.run ?? null });
  const known = cacheEnabled() ? readFacts(key) : null;
  if (known) {
    let m: Module | null = null;
    return {
      spec,
      name: basename(spec.path),
      hash,
      runtimeHash,
      get pristine(): Module {
        m ??= linkImage(ctx, spec, bytes, runtimeBytes).m;
        return m;
      },
      get parsed() {
        return m !== null;
      },
      context: ctx,
      tables: known.tables,
      kind: known.kind,
      dispose: () => m?.dispose(),
    };
  }
  const { m, tables, kind } = linkImage(ctx, spec, bytes, runtimeBytes);
  writeFacts(key, { tables, kind });
  return { spec, name: basename(spec.path), hash, runtimeHash, pristine: m, parsed: true, context: ctx, tables, kind, dispose: () => m.dispose() };
}

/** Parse, check and link an image (the caller owns the module). */
function linkImage(ctx: Context, spec: ImageSpec, bytes: Buffer, runtimeBytes: Buffer): { m: Module; tables: ImageTables; kind: 'run' | 'entry' } {
  const m = parseImage(ctx, spec.path, bytes);
  let ok = false;
  try {
    const problem = m.verify();
    if (problem) {
      throw new KjitError(`image ${spec.path} fails LLVM verification: ${firstLine(problem)}`, 'fix the code that produced this IR');
    }
    for (const fn of m.functions()) {
      if (!fn.isDeclaration() && fn.name.startsWith('kjit_') && !IMAGE_HOOKS.has(fn.name)) {
        throw new KjitError(`image ${spec.path} defines ${fn.name}, a name reserved for the kjit runtime`, 'rename it');
      }
    }
    const init = requireFunction(m, spec.path, spec.init, '--init');
    if (init.paramTypeStrings().length !== 0) {
      throw new KjitError(`init function '${spec.init}' takes parameters (${describeSignature(init)})`, 'give the image an init that takes none');
    }
    const run = spec.run ? requireFunction(m, spec.path, spec.run, '--run') : null;
    const entry = spec.entry ? requireFunction(m, spec.path, spec.entry, '--entry') : null;
    if (entry) {
      const params = entry.paramTypeStrings();
      const ret = entry.returnTypeString();
      if (params.length !== 1 || !/^i(8|16|32|64)$/.test(params[0]!) || !/^i(8|16|32|64)$/.test(ret)) {
        throw new KjitError(
          `entry function '${spec.entry}' has type ${describeSignature(entry)}`,
          'the contract is uint64_t entry(uint64_t i): one integer parameter, an integer result',
        );
      }
    }
    /* Functions of an untagged (foreign) image form one unit. */
    const isTagged = [...m.functions()].some((f) => !f.isDeclaration() && f.getStringAttribute('kjit-unit'));
    if (!isTagged) tagUnit(m, basename(spec.path));

    const glue = Module.parseIR(
      ctx,
      Buffer.from(glueIR(spec, init, entry, run, m.triple || 'x86_64-pc-linux-gnu', m.dataLayout)),
      'kjit-glue',
    );
    tagUnit(glue, 'kjit/glue');
    m.link(glue);
    const runtime = Module.parseBitcode(ctx, runtimeBytes, 'kjit-runtime');
    m.link(runtime);
    keepFramePointers(m); /* the sampler walks frame pointers: foreign code too */
    const linked = m.verify();
    if (linked) throw new KjitError(`linking the kjit runtime into ${spec.path} failed: ${firstLine(linked)}`, 'rebuild the IR with `npm run setup`', 1);
    const tables = readTables(m);
    ok = true;
    return { m, tables, kind: run ? 'run' : 'entry' };
  } finally {
    if (!ok) m.dispose();
  }
}

function readRuntime(): Buffer {
  if (!existsSync(RUNTIME_IR)) {
    throw new KjitError(`the kjit runtime IR (${RUNTIME_IR}) is missing`, 'run `npm run setup`', 1);
  }
  return readFileSync(RUNTIME_IR);
}
