/**
 * @fileoverview The image of the `offline-pgo` mode (DESIGN.md section 8):
 * what a user gets today without kjit, a two-stage clang PGO build of the
 * reference kernel.
 *
 *   1. instrumented stage: the kernel's C sources with the image build's
 *      flags plus `-fprofile-instr-generate`, linked with the kjit runtime
 *      and glue as every image is, compiled for this CPU as one module and
 *      linked by clang into a shared object with clang's profile runtime
 *      (libclang-rt-19-dev); its counters are clang's own, inserted before
 *      any optimization, so the stage's optimization level only changes how
 *      fast training runs.  It depends on the sources and the CPU only, so
 *      every workload shares it.
 *   2. training: a child process loads that object, boots it through the
 *      usual KernelInstance (the LLJIT finds its symbols in the process),
 *      runs the workload for a fixed operation count (TRAINING below) with
 *      the run's boot configuration, and writes the .profraw;
 *      `llvm-profdata-19 merge` makes the .profdata.
 *   3. final stage: the sources again with `-fprofile-instr-use=` that
 *      profile: clang attaches branch weights, function entry counts and the
 *      profile summary to the IR.  That IR is the image `offline-pgo` boots;
 *      compile.ts then compiles it like any mode (MODES['offline-pgo']:
 *      whole image, this CPU, default<O3>, retpolines, loaded by ORC).
 *
 * Both stages and the profile are cached under build/cache/offline-pgo/
 * (KJIT_OFFLINE_PGO_DIR moves it), keyed by the content of every source,
 * the reference image and runtime IR, kjit's code that builds and trains
 * (the image build's flags, this file, the trainer), the CPU, the workload
 * and its training parameters, and the boot configuration: changing any of
 * them builds again, nothing else does.  `--no-cache` does not apply here
 * (it is about compiled objects): delete the directory to rebuild.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

import { KjitError } from '../errors.js';
import { Context } from '../native/llvm.js';
import { IR_SRC, REFERENCE_IMAGE, ROOT, RUNTIME_IR } from '../paths.js';
import type { BootConfig } from './bootconfig.js';
import { buildKernelImage } from './build-ir.js';
import { hostTarget, makeTargetMachine, specialize } from './compile.js';
import { loadImage, REFERENCE } from './image.js';
import type { NicModel } from './machine.js';
import type { ModeSpec } from './modes.js';
import type { TrainRequest, TrainResult } from './offline-pgo-train.js';
import { processAlive } from '../scheduler/proc.js';

/** How the profile is made: the same for every workload, so profiles compare. */
export const TRAINING = {
  /** Operations of the training run (closed loop): 1M covers a whole cycle of `phases` at its default phase length. */
  ops: 1_000_000n,
  /** Seed and operations in flight of the training run (kjit run's and kjit bench's defaults). */
  seed: 1n,
  concurrency: 4,
  /** The instrumented stage's pipeline: lowering of clang's counters (clang runs it first too), then O2. */
  stage1Pipeline: 'instrprof,default<O2>',
  /** Entries kept in the cache (stages and profiles); the least recently used go first. */
  cacheEntries: 24,
} as const;

const CLANG = 'clang-19';
const PROFDATA = 'llvm-profdata-19';
const PROFILE_RUNTIME = 'libclang_rt.profile-x86_64.a';
const HOOK_SOURCE = join(IR_SRC, 'pgo', 'profile_hook.c');
const TRAINER = fileURLToPath(new URL('./offline-pgo-train.js', import.meta.url));
const INSTALL_FIX = 'install LLVM 19 and its profile runtime: `npm run setup` (apt-get install clang-19 llvm-19 libclang-rt-19-dev)';

export function offlinePgoDir(): string {
  return process.env.KJIT_OFFLINE_PGO_DIR ?? join(ROOT, 'build', 'cache', 'offline-pgo');
}

export interface OfflinePgoRequest {
  mode: ModeSpec;
  /** The run's boot configuration, and what it was resolved from (the trainer resolves it again). */
  config: BootConfig;
  nic: NicModel;
  sysctls: readonly string[];
  workload: string;
  /** Workload parameter (phases: operations per phase); 0 = the image's default. */
  workloadArg: bigint;
  /** Training operations (default TRAINING.ops; tests train shorter). */
  trainOps?: bigint;
}

/** What `kjit run --json` reports under `offline_pgo`. */
export interface OfflinePgoReport {
  /** 'hit': stages and profile came from the cache; 'miss': built now. */
  cache: 'hit' | 'miss';
  /** The cache entry: stage2.bc (the image booted), train.profraw, train.profdata. */
  dir: string;
  workload: string;
  training: { ops: number; seed: string; concurrency: number; workload_arg: string; seconds: number; checksum: string };
  /** Functions with counters in the profile, and the highest entry count. */
  profile: { functions: number; max_function_count: number };
  /** Where the build's time went (0 on a hit). */
  ms: { stage1: number; train: number; merge: number; stage2: number; total: number };
}

export interface OfflinePgoImage {
  /** The profile-annotated kernel IR (loadImage it like the reference image). */
  path: string;
  report: OfflinePgoReport;
}

/* ---- keys ------------------------------------------------------------------------- */

function listFiles(dir: string, suffixes: readonly string[]): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listFiles(p, suffixes));
    else if (suffixes.some((s) => entry.name.endsWith(s))) out.push(p);
  }
  return out.sort();
}

/** Content hash of every source a stage compiles or includes (C, headers, assembly) under `root`. */
export function sourceStamp(root: string = ROOT): string {
  const h = createHash('sha256');
  for (const dir of [join(root, 'ir'), join(root, 'asm')]) {
    for (const file of listFiles(dir, ['.c', '.h', '.S'])) {
      h.update(relative(root, file));
      h.update('\0');
      h.update(readFileSync(file));
    }
  }
  return h.digest('hex');
}

/** The key of a cache entry.  Not cache.ts's: the stages do not depend on
 * kjit's compiler code (clang does the work that matters; the stage-2 objects
 * are in the compiled-object cache, keyed by it), only on what is below. */
function entryKey(parts: Record<string, unknown>): string {
  return createHash('sha256').update(JSON.stringify({ format: 1, ...parts })).digest('hex').slice(0, 40);
}

function fileHash(path: string): string {
  return existsSync(path) ? createHash('sha256').update(readFileSync(path)).digest('hex') : 'missing';
}

/** kjit's own code that shapes the stages: the image build's flags, this file, the trainer. */
function builderVersion(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  return ['build-ir.js', 'offline-pgo.js', 'offline-pgo-train.js'].map((f) => fileHash(join(here, f))).join(',');
}

/* ---- tools -------------------------------------------------------------------------- */

function needTool(tool: string): void {
  const r = spawnSync(tool, ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new KjitError(`the offline-pgo mode needs ${tool}, which is not installed or does not run`, INSTALL_FIX, 1);
  }
}

/** Fail early, with the fix, if clang-19, llvm-profdata-19 or clang's profile runtime is missing. */
export function checkOfflinePgoTools(): void {
  needTool(CLANG);
  needTool(PROFDATA);
  const r = spawnSync(CLANG, [`-print-file-name=${PROFILE_RUNTIME}`], { encoding: 'utf8' });
  const path = r.stdout?.trim() ?? '';
  if (!path.startsWith('/') || !existsSync(path)) {
    throw new KjitError(`clang's profile runtime (${PROFILE_RUNTIME}) is not installed: the instrumented stage cannot be linked`, INSTALL_FIX, 1);
  }
}

function runTool(cmd: string, args: readonly string[], what: string, fix: string, cwd?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(cwd ? { cwd } : {}) });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    child.on('error', (e) => reject(new KjitError(`cannot run ${cmd} (${what}): ${e.message}`, INSTALL_FIX, 1, { cause: e })));
    child.on('close', (code, signal) => {
      if (code === 0) resolve(stdout);
      else reject(new KjitError(`${what} failed (${cmd} ${signal ? `killed by ${signal}` : `exit ${code}`}):\n${stderr.trim()}`, fix, 1));
    });
  });
}

/* ---- the cache ---------------------------------------------------------------------- */

/**
 * Build an entry in a temporary directory, then rename it into place, so a
 * reader never sees half an entry.  An entry there already is damaged (the
 * caller found files missing) and goes first; one that appears meanwhile was
 * built by a concurrent kjit from the same inputs: it wins and ours goes.
 */
async function buildEntry<T>(dir: string, build: (tmp: string) => Promise<T>): Promise<T> {
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(dir, { recursive: true, force: true });
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  let result: T;
  try {
    result = await build(tmp);
    try {
      renameSync(tmp, dir);
    } catch (e) {
      if (!existsSync(dir)) throw e;
      rmSync(tmp, { recursive: true, force: true });
    }
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  prune();
  return result;
}

function touch(dir: string): void {
  const now = new Date();
  try {
    utimesSync(dir, now, now);
  } catch {
    /* only the pruning order suffers */
  }
}

/** Keep the most recently used entries, and drop what builders that died left behind. */
function prune(): void {
  const root = offlinePgoDir();
  const names = readdirSync(root);
  const entries = names
    .filter((n) => /^(stage1|profile)-[0-9a-f]{40}$/.test(n))
    .map((n) => ({ n, t: statSync(join(root, n)).mtimeMs }))
    .sort((a, b) => b.t - a.t);
  for (const e of entries.slice(TRAINING.cacheEntries)) rmSync(join(root, e.n), { recursive: true, force: true });
  for (const n of names) {
    const pid = /\.tmp-(\d+)$/.exec(n)?.[1];
    if (pid && !processAlive(Number(pid))) rmSync(join(root, n), { recursive: true, force: true });
  }
}

/* ---- stage 1: the instrumented shared object ----------------------------------------- */

/** The instrumented stage for this CPU (cached): a shared object and the IR its tables come from. */
async function instrumentedStage(mode: ModeSpec): Promise<{ library: string; image: string; ms: number }> {
  const target = hostTarget();
  const key = entryKey({
    stage: 'offline-pgo-stage1',
    sources: sourceStamp(),
    runtime: fileHash(RUNTIME_IR),
    builder: builderVersion(),
    mode,
    target,
    pipeline: TRAINING.stage1Pipeline,
  });
  const dir = join(offlinePgoDir(), `stage1-${key}`);
  const library = join(dir, 'stage1.so');
  const image = join(dir, 'stage1.bc');
  if (existsSync(library) && existsSync(image)) {
    touch(dir);
    return { library, image, ms: 0 };
  }
  const t0 = performance.now();
  await buildEntry(dir, async (tmp) => {
    const bc = await buildKernelImage({ flags: ['-fprofile-instr-generate'], out: join(tmp, 'stage1.bc') });
    const ctx = Context.create();
    try {
      const img = loadImage(ctx, { ...REFERENCE, path: bc });
      const m = img.pristine.clone();
      try {
        /* no boot specialization (the config only matters to folding, which this mode does not do) */
        const { asmObject } = specialize(m, mode, { values: [], chosen: [], absentDevices: [] }, target);
        using tm = makeTargetMachine(target);
        m.runPasses(TRAINING.stage1Pipeline, tm);
        writeFileSync(join(tmp, 'code.o'), tm.emitObject(m));
        if (asmObject) writeFileSync(join(tmp, 'asm.o'), asmObject);
      } finally {
        m.dispose();
        img.dispose();
      }
    } finally {
      ctx.dispose();
    }
    const objects = ['code.o', ...(existsSync(join(tmp, 'asm.o')) ? ['asm.o'] : [])];
    const fix = 'check that libclang-rt-19-dev is installed (`npm run setup`); this is a kjit bug if it is';
    await runTool(CLANG, ['-O2', '-fPIC', '-Wall', '-Werror', '-c', '-o', 'hook.o', HOOK_SOURCE], 'compiling the profile hook', fix, tmp);
    /* -fprofile-instr-generate links clang's profile runtime; -Bsymbolic binds the kernel to its own
     * symbols (as the JIT does); -z defs: nothing may be left undefined but libc's */
    await runTool(
      CLANG,
      ['-shared', '-fprofile-instr-generate', '-Wl,-Bsymbolic', '-Wl,-z,defs', '-o', 'stage1.so', ...objects, 'hook.o'],
      'linking the instrumented stage',
      fix,
      tmp,
    );
    for (const o of [...objects, 'hook.o']) rmSync(join(tmp, o));
  });
  return { library, image, ms: performance.now() - t0 };
}

/* ---- stage 2: training, merge, the profile-annotated IR --------------------------------- */

function train(req: TrainRequest): Promise<TrainResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [TRAINER, JSON.stringify(req, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))], {
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd: dirname(req.profile),
      /* the profile runtime opens (and truncates) this file when the object loads */
      env: { ...process.env, LLVM_PROFILE_FILE: req.profile },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    child.on('error', (e) => reject(new KjitError(`cannot start the offline-pgo training run: ${e.message}`, 'rebuild kjit with `npm run build`', 1, { cause: e })));
    child.on('close', (code, signal) => {
      const fix = `check that the workload runs: kjit run --mode stock --workload ${req.workload} --ops ${req.ops}`;
      if (code !== 0) {
        const last = stderr.trim().split('\n').slice(-6).join('\n');
        reject(new KjitError(`the offline-pgo training run (${req.workload}, ${req.ops} ops) failed (${signal ? `killed by ${signal}` : `exit ${code}`}): ${last}`, fix, 1));
        return;
      }
      try {
        resolve(JSON.parse(stdout) as TrainResult);
      } catch {
        reject(new KjitError(`the offline-pgo training run printed no result: ${stdout.slice(0, 200)}`, fix, 1));
      }
    });
  });
}

/** Functions and the highest function count of a merged profile (llvm-profdata show). */
async function profileStats(profdata: string): Promise<OfflinePgoReport['profile']> {
  const out = await runTool(PROFDATA, ['show', profdata], 'reading the merged profile', 'rebuild the profile: delete ' + dirname(profdata));
  const num = (re: RegExp) => Number(re.exec(out)?.[1] ?? 0);
  return { functions: num(/Total functions:\s*(\d+)/), max_function_count: num(/Maximum function count:\s*(\d+)/) };
}

/**
 * The profile-annotated image for one workload and boot configuration:
 * from the cache, or built now (both stages, training, merge).
 */
export async function offlinePgoImage(req: OfflinePgoRequest): Promise<OfflinePgoImage> {
  const t0 = performance.now();
  const ops = req.trainOps ?? TRAINING.ops;
  if (ops <= 0n) throw new KjitError(`the offline-pgo training needs operations (got ${ops})`, 'train with at least one operation');
  const target = hostTarget();
  const key = entryKey({
    stage: 'offline-pgo-profile',
    sources: sourceStamp(),
    reference: fileHash(REFERENCE_IMAGE),
    runtime: fileHash(RUNTIME_IR),
    builder: builderVersion(),
    mode: req.mode,
    target,
    training: { ops: ops.toString(), seed: TRAINING.seed.toString(), concurrency: TRAINING.concurrency, pipeline: TRAINING.stage1Pipeline },
    workload: req.workload,
    workloadArg: req.workloadArg.toString(),
    nic: req.nic,
    sysctls: [...req.sysctls].sort(),
    values: req.config.values.map((v) => [v.sysctl.variable, v.value.toString(), v.bootFixed]),
    chosen: req.config.chosen.map((a) => [a.selector, a.value.toString(), a.impl]),
  });
  const dir = join(offlinePgoDir(), `profile-${key}`);
  const image = join(dir, 'stage2.bc');
  const metaFile = join(dir, 'meta.json');
  if (existsSync(image) && existsSync(metaFile)) {
    try {
      const meta = JSON.parse(readFileSync(metaFile, 'utf8')) as OfflinePgoReport;
      touch(dir);
      return { path: image, report: { ...meta, cache: 'hit', dir, ms: { stage1: 0, train: 0, merge: 0, stage2: 0, total: performance.now() - t0 } } };
    } catch {
      /* damaged: build again */
    }
  }
  checkOfflinePgoTools();
  mkdirSync(offlinePgoDir(), { recursive: true });
  const stage1 = await instrumentedStage(req.mode);
  const report = await buildEntry(dir, async (tmp): Promise<OfflinePgoReport> => {
    const profraw = join(tmp, 'train.profraw');
    const profdata = join(tmp, 'train.profdata');
    const tTrain = performance.now();
    const trained = await train({
      library: stage1.library,
      image: stage1.image,
      profile: profraw,
      workload: req.workload,
      workloadArg: req.workloadArg,
      ops,
      seed: TRAINING.seed,
      concurrency: TRAINING.concurrency,
      nic: req.nic,
      sysctls: [...req.sysctls],
    });
    if (!existsSync(profraw) || statSync(profraw).size === 0) {
      throw new KjitError(`the offline-pgo training run wrote no profile (${profraw})`, 'this is a kjit bug: the profile hook of the instrumented stage did not write', 1);
    }
    const tMerge = performance.now();
    await runTool(PROFDATA, ['merge', '-o', profdata, profraw], 'merging the training profile', 'the .profraw is damaged: delete ' + dir + ' and run again');
    const tStage2 = performance.now();
    await buildKernelImage({ flags: [`-fprofile-instr-use=${profdata}`], out: join(tmp, 'stage2.bc') });
    const tEnd = performance.now();
    const built: OfflinePgoReport = {
      cache: 'miss',
      dir,
      workload: req.workload,
      training: {
        ops: trained.ops,
        seed: TRAINING.seed.toString(),
        concurrency: TRAINING.concurrency,
        workload_arg: req.workloadArg.toString(),
        seconds: trained.seconds,
        checksum: trained.checksum,
      },
      profile: await profileStats(profdata),
      ms: { stage1: stage1.ms, train: tMerge - tTrain, merge: tStage2 - tMerge, stage2: tEnd - tStage2, total: tEnd - t0 },
    };
    writeFileSync(join(tmp, 'meta.json'), JSON.stringify(built, null, 2));
    return built;
  });
  return { path: image, report };
}
