/**
 * @fileoverview Live patches: replacing functions of a running kernel with
 * user-supplied IR (.ll, .bc, or C compiled with clang-19).  A patch is
 * checked first (it parses, verifies, defines the function with the same
 * type, redefines nothing else of the image).  Every version a patch needs
 * is built from the pristine IR with the bodies of all live patches swapped
 * in: the function itself, and every function whose live code contains its
 * old body because boot inlined it there (found from the call graph of the
 * pristine IR and the calls left in the boot code, transitively).  All
 * versions are compiled before any goes live, then go live as one
 * transition (src/rejit/installer.ts): the kernel thread rewrites every
 * entry at one quiescent point, so a patch, or a set of patches, applies
 * whole or not at all.  Mutable globals a patch brings (new state kept
 * beside live structures, as Linux livepatch's shadow variables) go in a
 * state unit of their own that lives exactly as long as the patch; per-
 * object shadow variables are in the runtime (ir/runtime/kjit_shadow.h). */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { ExitCode, firstLine, KjitError } from '../errors.js';
import { IR_SRC } from '../paths.js';
import type { PreparedBoot } from '../kernel/run.js';
import { Context, Linkage, LLVMError, Module, objectSymbols, type ResourceTracker, type Value } from '../native/llvm.js';
import type { Installer } from './installer.js';
import { buildStateUnit } from './unit.js';
import type { CodeVersion } from './versions.js';

export interface PatchSpec {
  fn: string;
  file: string;
  /** Seconds into the run (kjit run --patch); 0 = before the first operation. */
  atSeconds: number;
}

/** `NAME=FILE[@SECONDS]` */
export function parsePatchSpec(text: string): PatchSpec {
  const m = /^([A-Za-z_.$][\w.$]*)=([^@]+)(?:@(\d+(?:\.\d+)?))?$/.exec(text);
  if (!m) throw new KjitError(`malformed --patch '${text}'`, 'write it as FUNCTION=FILE.ll[@SECONDS], e.g. --patch tcp_v4_rcv=fix.ll@2');
  return { fn: m[1]!, file: m[2]!, atSeconds: m[3] ? Number(m[3]) : 0 };
}

/**
 * A patch written in C, compiled the way the image's own sources are (IR
 * before optimization: boot's pipeline optimizes it with the rest), with the
 * runtime's headers on the include path (kjit_shadow.h).
 */
export function compileCPatch(file: string): Uint8Array {
  const args = ['-O2', '-Xclang', '-disable-llvm-passes', '-emit-llvm', '-c', '-o', '-', '-I', join(IR_SRC, 'runtime'), file];
  const r = spawnSync('clang-19', args, { maxBuffer: 64 << 20 });
  if (r.error) throw new KjitError(`cannot run clang-19 to compile patch ${file}: ${r.error.message}`, 'install LLVM 19 with `npm run setup`', ExitCode.FAILURE);
  if (r.status !== 0) {
    const why = r.stderr.toString('utf8').split('\n').find((l) => /error/.test(l)) ?? r.stderr.toString('utf8');
    throw new KjitError(`patch ${file} does not compile: ${why.trim()}`, 'fix the C source (clang-19 -c shows every error)');
  }
  return new Uint8Array(r.stdout);
}

function loadPatchModule(ctx: Context, spec: PatchSpec): Module {
  if (!existsSync(spec.file)) throw new KjitError(`patch ${spec.file} does not exist`, 'pass the path of a .ll, .bc or .c file');
  try {
    if (spec.file.endsWith('.c')) return Module.parseBitcode(ctx, compileCPatch(spec.file), spec.file);
    return Module.parseIR(ctx, readFileSync(spec.file), spec.file);
  } catch (e) {
    if (!(e instanceof LLVMError)) throw e;
    throw new KjitError(`patch ${spec.file} is not valid LLVM IR: ${firstLine(e.llvmMessage)}`, 'fix the patch (clang-19 -emit-llvm -S makes valid IR)');
  }
}

/** A checked patch: its IR as bitcode, its mutable globals renamed to stable names. */
export interface CheckedPatch {
  spec: PatchSpec;
  bitcode: Uint8Array;
  /** The patch's own mutable globals: its state unit defines them. */
  state: string[];
}

/**
 * Check a patch against the image.  The patch is read into a context of its
 * own (the image's context would keep every type and constant a patch
 * brings for as long as the image lives: ~275 KB per patch cycle).
 */
export function checkPatch(p: PreparedBoot, spec: PatchSpec): CheckedPatch {
  const ctx = Context.create();
  let patch: Module | null = null;
  try {
    patch = loadPatchModule(ctx, spec);
    const problem = patch.verify();
    if (problem) throw new KjitError(`patch ${spec.file} fails LLVM verification: ${firstLine(problem)}`, 'fix the patch');
    const original = p.image.pristine.getFunction(spec.fn);
    if (!original || original.isDeclaration()) {
      throw new KjitError(`the image has no function '${spec.fn}' to patch`, 'name a function the kernel defines');
    }
    const replacement = patch.getFunction(spec.fn);
    if (!replacement || replacement.isDeclaration()) {
      throw new KjitError(`patch ${spec.file} does not define '${spec.fn}'`, `define ${spec.fn} with the type ${original.functionTypeString()}`);
    }
    if (replacement.functionTypeString() !== original.functionTypeString()) {
      throw new KjitError(
        `patch ${spec.file} defines ${spec.fn} as ${replacement.functionTypeString()}, the image as ${original.functionTypeString()}`,
        'keep the function type: a patch may not change a signature',
      );
    }
    for (const f of patch.functions()) {
      if (f.isDeclaration() || f.name === spec.fn) continue;
      const clash = p.image.pristine.getFunction(f.name);
      if (clash && !clash.isDeclaration()) {
        throw new KjitError(`patch ${spec.file} also defines ${f.name}, which the image has`, 'a patch replaces one function; declare the others');
      }
    }
    const state: string[] = [];
    for (const g of patch.globals()) {
      if (g.isDeclaration()) continue;
      const clash = p.image.pristine.getGlobal(g.name);
      if (clash && !clash.isDeclaration()) {
        throw new KjitError(`patch ${spec.file} defines ${g.name}, a global the image has`, 'declare it (extern) to use the live one, or give new state a new name');
      }
      if (g.isConstantGlobal || g.name.startsWith('llvm.')) continue;
      /* a file-local variable gets a name no other patch or rebuild can take */
      if (g.linkage === Linkage.Internal || g.linkage === Linkage.Private) {
        g.name = `${spec.fn}.kjit.state.${g.name}`;
        g.linkage = Linkage.External;
      }
      state.push(g.name);
    }
    return { spec, bitcode: patch.toBitcode(), state };
  } finally {
    patch?.dispose();
    ctx.dispose();
  }
}

/** The pristine IR with each patched function's body replaced by its patch's. */
function patchedSource(p: PreparedBoot, patches: readonly CheckedPatch[]): Uint8Array {
  const ctx = Context.create(); /* not the image's: see checkPatch */
  const m = Module.parseBitcode(ctx, p.pristineBitcode(), 'patched');
  try {
    for (const c of patches) m.getFunction(c.spec.fn)!.linkage = Linkage.AvailableExternally;
    m.runPasses('elim-avail-extern', null); /* each becomes a declaration; nothing else is available_externally */
    for (const c of patches) m.link(Module.parseBitcode(ctx, c.bitcode, c.spec.file));
    return m.toBitcode();
  } finally {
    m.dispose();
    ctx.dispose();
  }
}

function calls(fn: Value, callee: string): boolean {
  for (const i of fn.instructions()) if (i.isCall() && i.calledFunction()?.name === callee) return true;
  return false;
}

/**
 * Functions whose live (boot) code may contain `fn`'s body: callers in the
 * pristine IR whose boot code no longer calls it (inlined), transitively.
 */
export function inlinersOf(p: PreparedBoot, fn: string): string[] {
  const pristine = p.image.pristine;
  const live = p.compiled.optimized;
  const callers = new Map<string, string[]>();
  for (const f of pristine.functions()) {
    if (f.isDeclaration()) continue;
    for (const i of f.instructions()) {
      const callee = i.isCall() ? i.calledFunction()?.name : undefined;
      if (!callee || callee === f.name) continue;
      const list = callers.get(callee);
      if (list) list.push(f.name);
      else callers.set(callee, [f.name]);
    }
  }
  const found = new Set<string>();
  const work = [fn];
  while (work.length) {
    const g = work.pop()!;
    for (const caller of new Set(callers.get(g) ?? [])) {
      if (found.has(caller) || caller === fn) continue;
      const code = live.getFunction(caller);
      if (!code || code.isDeclaration()) continue; /* removed at boot: nothing to patch */
      if (calls(code, g)) continue; /* still a call: the entry redirect covers it */
      found.add(caller);
      work.push(caller);
    }
  }
  return [...found];
}

export interface AppliedPatch {
  spec: PatchSpec;
  /** The versions its transition made live (the function and every function it was inlined into). */
  versions: CodeVersion[];
  inliners: string[];
  /** Names of the state it brought (defined in its state unit). */
  state: string[];
  ms: { compile: number; apply: number };
}

interface LivePatch {
  applied: AppliedPatch;
  checked: CheckedPatch;
  stateTracker: ResourceTracker | null;
  /** Addresses of its state: shadow variables with ids in here go with it. */
  stateRange: { lo: bigint; hi: bigint } | null;
  /** Every version whose code contains this patch's (its own and rebuilds for other patches). */
  users: Set<CodeVersion>;
  reverted: boolean;
}

/**
 * The live patches of one kernel instance.  Versions are always built from
 * the pristine IR with the bodies of *every* live patch in it, so a function
 * two patches were inlined into carries both; applying or reverting rebuilds
 * exactly the functions the change touches, and goes live as one transition.
 * A patch's state unit is freed once it is reverted and every version that
 * used it has been freed after its grace period.
 */
export class PatchSet {
  private readonly live: LivePatch[] = [];
  private readonly retiring: LivePatch[] = [];

  constructor(
    private readonly p: PreparedBoot,
    private readonly installer: Installer,
  ) {
    installer.onFreed(() => void this.releaseState());
  }

  patches(): AppliedPatch[] {
    return this.live.map((l) => l.applied);
  }

  /** Functions whose code contains the patch of `fn`. */
  private static touches(l: LivePatch, fn: string): boolean {
    return l.checked.spec.fn === fn || l.applied.inliners.includes(fn);
  }

  private async compileFrom(patches: readonly LivePatch[], fns: readonly string[]): Promise<CodeVersion[]> {
    const source = patchedSource(this.p, patches.map((l) => l.checked));
    /* all requests at once: the compile server works through them while this thread waits */
    const results = await Promise.allSettled(fns.map((fn) => this.installer.compile(fn, 'patched', { source })));
    const versions = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      for (const v of versions) this.installer.discard(v);
      throw failed.reason;
    }
    for (const v of versions) for (const l of patches) if (PatchSet.touches(l, v.fn)) l.users.add(v);
    return versions;
  }

  /** Check, compile and apply patches as one transition: all go live together, or none. */
  async apply(specs: readonly PatchSpec[]): Promise<AppliedPatch[]> {
    const t0 = performance.now();
    const fresh: LivePatch[] = specs.map((spec) => {
      const checked = checkPatch(this.p, spec);
      const applied: AppliedPatch = { spec, versions: [], inliners: inlinersOf(this.p, spec.fn), state: checked.state, ms: { compile: 0, apply: 0 } };
      return { applied, checked, stateTracker: null, stateRange: null, users: new Set(), reverted: false };
    });
    const patched = new Map(this.live.map((l) => [l.checked.spec.fn, l.checked.spec.file]));
    const state = new Set(this.live.flatMap((l) => l.checked.state));
    for (const f of fresh) {
      const fn = f.checked.spec.fn;
      if (patched.has(fn)) throw new KjitError(`${fn} is already patched (by ${patched.get(fn)})`, `revert that patch first, or put both changes in one patch`);
      patched.set(fn, f.checked.spec.file);
      const clash = f.checked.state.find((n) => state.has(n));
      if (clash) throw new KjitError(`patch ${f.checked.spec.file} defines ${clash}, which another live patch defines`, 'give new state a new name');
      for (const n of f.checked.state) state.add(n);
    }
    await this.releasing; /* state units being freed are gone before their names are reused */
    const stale = new Set(this.retiring.flatMap((l) => l.checked.state));
    if (fresh.some((f) => f.checked.state.some((n) => stale.has(n)))) {
      /* the same patch again, while the state of its reverted self waits for its grace period */
      await this.installer.freeRetired();
      await this.releaseState();
      const waiting = this.retiring.flatMap((l) => l.checked.state).find((n) => fresh.some((f) => f.checked.state.includes(n)));
      if (waiting) throw new KjitError(`the state ${waiting} of a reverted patch is still in use by a kernel task`, 'try again in a moment');
    }
    const all = [...this.live, ...fresh];
    const touched = [...new Set(fresh.flatMap((f) => [f.checked.spec.fn, ...f.applied.inliners]))];
    let versions: CodeVersion[] = [];
    try {
      for (const f of fresh) if (f.checked.state.length) this.linkState(f);
      versions = await this.compileFrom(all, touched);
      const t1 = performance.now();
      await this.installer.commit(versions);
      for (const f of fresh) {
        f.applied.versions = versions.filter((v) => PatchSet.touches(f, v.fn));
        f.applied.ms = { compile: t1 - t0, apply: performance.now() - t1 };
      }
    } catch (e) {
      for (const v of versions) if (v.state === 'compiled') this.installer.discard(v);
      for (const f of fresh) freeTracker(f.stateTracker);
      for (const l of this.live) for (const v of versions) l.users.delete(v);
      throw e;
    }
    this.live.push(...fresh);
    return fresh.map((f) => f.applied);
  }

  /**
   * Undo patches as one transition: each function they touched runs its
   * own code again, or a rebuild carrying the patches that stay.
   */
  async revert(applied: readonly AppliedPatch[]): Promise<void> {
    const gone = this.live.filter((l) => applied.includes(l.applied));
    if (gone.length === 0) return;
    const remaining = this.live.filter((l) => !gone.includes(l));
    const touched = [...new Set(gone.flatMap((l) => [l.checked.spec.fn, ...l.applied.inliners]))];
    const rebuild = touched.filter((fn) => remaining.some((l) => PatchSet.touches(l, fn)));
    const restore = touched.filter((fn) => !rebuild.includes(fn));
    const versions = rebuild.length ? await this.compileFrom(remaining, rebuild) : [];
    try {
      await this.installer.commit(versions, restore);
    } catch (e) {
      for (const v of versions) this.installer.discard(v);
      throw e;
    }
    for (const l of gone) {
      l.reverted = true;
      this.live.splice(this.live.indexOf(l), 1);
      this.retiring.push(l);
    }
    await this.releaseState();
  }

  private linkState(l: LivePatch): void {
    const object = buildStateUnit(this.p.compiled.target, l.checked.bitcode, l.checked.state);
    l.stateTracker = this.installer.linkData(object, l.checked.state);
    const sizes = new Map(objectSymbols(object).map((s) => [s.name, BigInt(s.size)]));
    for (const name of l.checked.state) {
      const lo = this.installer.addressOf(name);
      const hi = lo + (sizes.get(name) || 1n);
      l.stateRange = l.stateRange ? { lo: lo < l.stateRange.lo ? lo : l.stateRange.lo, hi: hi > l.stateRange.hi ? hi : l.stateRange.hi } : { lo, hi };
    }
  }

  private releasing: Promise<void> = Promise.resolve();

  /**
   * Reverted patches whose every user version is freed: their shadow
   * variables are freed, then their state unit.  Resolves when done.
   */
  releaseState(): Promise<void> {
    const ready = this.retiring.filter((l) => [...l.users].every((v) => v.state === 'freed'));
    for (const l of ready) this.retiring.splice(this.retiring.indexOf(l), 1);
    for (const l of ready) {
      this.releasing = this.releasing.then(async () => {
        /* a disposed instance's JIT has freed it all already */
        if (l.stateRange && this.installer.alive) await this.installer.freeShadow(l.stateRange.lo, l.stateRange.hi);
        if (this.installer.alive) freeTracker(l.stateTracker);
        l.stateTracker = null;
      });
    }
    return this.releasing;
  }
}

function freeTracker(t: ResourceTracker | null): void {
  if (!t) return;
  t.remove();
  t.dispose();
}

const sets = new WeakMap<Installer, PatchSet>();

/** The patch set of an installer's kernel instance. */
export function patchSet(p: PreparedBoot, installer: Installer): PatchSet {
  let set = sets.get(installer);
  if (!set) sets.set(installer, (set = new PatchSet(p, installer)));
  return set;
}

/** Check, compile and apply a patch as one transition. */
export async function applyPatch(p: PreparedBoot, installer: Installer, spec: PatchSpec): Promise<AppliedPatch> {
  return (await patchSet(p, installer).apply([spec]))[0]!;
}

/** Undo a patch: every function it redirected runs its previous code again. */
export async function revertPatch(installer: Installer, applied: AppliedPatch): Promise<void> {
  await sets.get(installer)?.revert([applied]);
}
