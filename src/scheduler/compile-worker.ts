/**
 * @fileoverview The compile server's process (src/scheduler/compile-server.ts
 * starts it): builds re-JIT units with an LLVM of its own, so the optimizer's
 * allocations, and the heap fragmentation they leave, never touch the
 * process the kernel runs in.  It receives the image as boot saw it once,
 * then unit requests, and answers each with the object code or the error;
 * it exits when its parent goes away.
 */
import { KjitError } from '../errors.js';
import type { BootConfig } from '../kernel/bootconfig.js';
import { modeByName } from '../kernel/modes.js';
import type { TargetSpec } from '../kernel/specialize.js';
import { Context, Module } from '../native/llvm.js';
import { buildUnit, type UnitBase, type UnitRequest } from '../rejit/unit.js';

export type ServerRequest =
  | { type: 'init'; pristine: Uint8Array; mode: string; config: BootConfig; target: TargetSpec }
  | { type: 'unit'; job: number; req: UnitRequest };

export type ServerReply =
  | { job: number; ok: true; unit: ReturnType<typeof buildUnit> }
  | { job: number; ok: false; error: { message: string; problem?: string; fix?: string; exitCode?: number } };

let base: UnitBase | null = null;

function reply(r: ServerReply): void {
  process.send!(r);
}

process.on('message', (msg: ServerRequest) => {
  if (msg.type === 'init') {
    const ctx = Context.create();
    base = {
      pristineBitcode: msg.pristine,
      pristine: Module.parseBitcode(ctx, msg.pristine, 'pristine'),
      mode: modeByName(msg.mode),
      config: msg.config,
      target: msg.target,
    };
    return;
  }
  try {
    if (!base) throw new Error('the compile server got a unit before the image');
    reply({ job: msg.job, ok: true, unit: buildUnit(base, msg.req) });
  } catch (e) {
    const err = e as Error;
    reply({
      job: msg.job,
      ok: false,
      error: e instanceof KjitError ? { message: err.message, problem: e.problem, fix: e.fix, exitCode: e.exitCode } : { message: err.message ?? String(e) },
    });
  }
});
process.on('disconnect', () => process.exit(0));
