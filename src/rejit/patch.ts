/**
 * @fileoverview Live patches: replacing one function of a running kernel
 * with user-supplied IR.  The patch is checked first (it parses, verifies,
 * defines the function with the same type, redefines nothing else of the
 * image), then the pristine IR with the function's body swapped for the
 * patch's is the source of every version the patch needs: the function
 * itself, and every function whose live code contains its old body because
 * boot inlined it there (found from the call graph of the pristine IR and
 * the calls left in the boot code, transitively).  All versions are compiled
 * before any goes live; then they are redirected one after another, and if
 * one fails the ones already live are reverted: the patch applies as a
 * whole or not at all.  New globals a patch defines (shadow state, as Linux
 * livepatch's shadow variables) are added with it and live as long as it.
 */
import { existsSync, readFileSync } from 'node:fs';

import { firstLine, KjitError } from '../errors.js';
import type { PreparedBoot } from '../kernel/run.js';
import { Linkage, LLVMError, Module, type Value } from '../native/llvm.js';
import type { Installer } from './installer.js';
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

function loadPatchModule(p: PreparedBoot, spec: PatchSpec): Module {
  if (!existsSync(spec.file)) throw new KjitError(`patch ${spec.file} does not exist`, 'pass the path of a .ll or .bc file');
  const ctx = p.image.pristine.context;
  let m: Module;
  try {
    m = Module.parseIR(ctx, readFileSync(spec.file), spec.file);
  } catch (e) {
    if (!(e instanceof LLVMError)) throw e;
    throw new KjitError(`patch ${spec.file} is not valid LLVM IR: ${firstLine(e.llvmMessage)}`, 'fix the patch (clang-19 -emit-llvm -S makes valid IR)');
  }
  return m;
}

/** Check a patch against the image; the caller owns the returned module. */
export function checkPatch(p: PreparedBoot, spec: PatchSpec): Module {
  const patch = loadPatchModule(p, spec);
  try {
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
    for (const g of patch.globals()) {
      if (g.isDeclaration()) continue;
      const clash = p.image.pristine.getGlobal(g.name);
      if (clash && !clash.isDeclaration()) {
        throw new KjitError(`patch ${spec.file} defines ${g.name}, a global the image has`, 'declare it (extern) to use the live one, or give new state a new name');
      }
    }
    return patch;
  } catch (e) {
    patch.dispose();
    throw e;
  }
}

/** The pristine IR with `fn`'s body replaced by the patch's (consumes `patch`). */
function patchedSource(p: PreparedBoot, fn: string, patch: Module): Module {
  const m = p.image.pristine.clone();
  const target = m.getFunction(fn)!;
  target.linkage = Linkage.AvailableExternally;
  m.runPasses('elim-avail-extern', null); /* fn becomes a declaration; nothing else is available_externally */
  m.link(patch);
  return m;
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
  versions: CodeVersion[];
  inliners: string[];
  ms: { compile: number; apply: number };
}

/** Check, compile and apply a patch as one transition. */
export async function applyPatch(p: PreparedBoot, installer: Installer, spec: PatchSpec): Promise<AppliedPatch> {
  const t0 = performance.now();
  const patch = checkPatch(p, spec);
  /* the patch's own new state is defined once, in the version of the function itself */
  const state = new Set([...patch.globals()].filter((g) => !g.isDeclaration()).map((g) => g.name));
  const patched = patchedSource(p, spec.fn, patch);
  const versions: CodeVersion[] = [];
  let inliners: string[];
  try {
    const source = patched.toBitcode();
    inliners = inlinersOf(p, spec.fn);
    versions.push(installer.compile(spec.fn, 'patched', { source, defineGlobals: state }));
    for (const fn of inliners) versions.push(installer.compile(fn, 'patched', { source }));
  } finally {
    patched.dispose();
  }
  const t1 = performance.now();
  const done: CodeVersion[] = [];
  try {
    for (const v of versions) {
      await installer.activate(v);
      done.push(v);
    }
  } catch (e) {
    for (const v of done.reverse()) await installer.revert(v.fn);
    throw e;
  }
  return { spec, versions, inliners, ms: { compile: t1 - t0, apply: performance.now() - t1 } };
}

/** Undo a patch: every function it redirected runs its previous code again. */
export async function revertPatch(installer: Installer, applied: AppliedPatch): Promise<void> {
  for (const v of [...applied.versions].reverse()) {
    if (installer.liveVersion(v.fn) === v) await installer.revert(v.fn);
  }
}
