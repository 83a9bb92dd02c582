/**
 * @fileoverview The compile server's process (src/scheduler/compile-server.ts
 * starts it): builds re-JIT units with an LLVM of its own, so the optimizer's
 * allocations, and the heap fragmentation they leave, never touch the
 * process the kernel runs in.  It receives the image as boot saw it once,
 * then unit requests, and answers each with the object code or the error;
 * it exits when its parent goes away.
 *
 * On init it first puts every thread it has at SCHED_IDLE (threads started
 * later inherit it) and on the CPUs asked, then reads the image, and only
 * then limits its address space: the limit is what its compiles may add to
 * the server as it is when ready (Node, LLVM and the image's IR), so a
 * memory limit smaller than a compile kills the server during that compile,
 * never before it can take one.
 */
import { readdirSync } from 'node:fs';

import { KjitError } from '../errors.js';
import type { BootConfig } from '../kernel/bootconfig.js';
import { modeByName } from '../kernel/modes.js';
import type { TargetSpec } from '../kernel/specialize.js';
import {
  affinityOf,
  niceOf,
  processLimit,
  RLIM_INFINITY,
  RLIMIT_AS,
  SCHED_IDLE,
  SCHED_OTHER,
  schedulerPolicy,
  setAffinity,
  setNice,
  setSchedulerPolicy,
} from '../native/libc.js';
import { Context, Module } from '../native/llvm.js';
import { buildImageUnit } from '../rejit/image-unit.js';
import { buildUnit, type UnitBase, type UnitRequest } from '../rejit/unit.js';
import { processMemory } from './proc.js';

export interface ServerSettings {
  /** SCHED_IDLE (true) or SCHED_OTHER at `nice` (false: --batch, where the caller waits for the compiles). */
  idle: boolean;
  /** Nice value (also kept under SCHED_IDLE, where it does not count). */
  nice: number;
  /** CPUs the server may run on; null: any. */
  cpus: number[] | null;
  /** Address space its compiles may add beyond the ready server (bytes); null: no limit. */
  memoryLimitBytes: number | null;
}

/** Fault injection, for the tests of crash handling only: how the server should die building the job. */
export type ServerFault = 'abort' | 'exhaust-memory';

export type ServerRequest =
  | { type: 'init'; pristine: Uint8Array; mode: string; config: BootConfig; target: TargetSpec; removed?: string[]; settings?: ServerSettings }
  | { type: 'unit'; job: number; req: UnitRequest; fault?: ServerFault };

/** What the server reports once it has read the image, before its first job. */
export interface ServerReady {
  policy: number;
  nice: number;
  cpus: number[];
  /** Its address space when ready: the memory limit is on top of it. */
  baselineVmBytes: number;
  baselineRssBytes: number;
  /** RLIMIT_AS set (bytes), or null. */
  addressSpaceLimit: number | null;
  /** Why a setting could not be applied (the server runs anyway). */
  problems: string[];
}

/** Its own CPU ms and peak RSS so far, with every answer. */
export interface ServerUsage {
  cpuMs: number;
  peakRssBytes: number;
}

export type ServerReply =
  | { ready: ServerReady }
  | ({ job: number; ok: true; unit: ReturnType<typeof buildUnit> } & ServerUsage)
  | ({ job: number; ok: false; error: { message: string; problem?: string; fix?: string; exitCode?: number } } & ServerUsage);

let base: UnitBase | null = null;

function reply(r: ServerReply): void {
  process.send!(r);
}

function usage(): ServerUsage {
  const cpu = process.cpuUsage();
  return { cpuMs: (cpu.user + cpu.system) / 1000, peakRssBytes: processMemory('self')?.peakRssBytes ?? 0 };
}

/* A policy or nice value belongs to one thread: set it on each. */
function eachThread(what: string, problems: string[], apply: (tid: number) => void): void {
  for (const tid of readdirSync('/proc/self/task').map(Number)) {
    try {
      apply(tid);
    } catch (e) {
      problems.push(`${what} (thread ${tid}): ${(e as Error).message}`);
      return;
    }
  }
}

function applySettings(s: ServerSettings, problems: string[]): void {
  eachThread(`nice ${s.nice}`, problems, (tid) => setNice(tid, s.nice));
  eachThread(s.idle ? 'SCHED_IDLE' : 'SCHED_OTHER', problems, (tid) => setSchedulerPolicy(tid, s.idle ? SCHED_IDLE : SCHED_OTHER));
  const cpus = s.cpus;
  if (cpus) eachThread(`CPUs ${cpus.join(',')}`, problems, (tid) => setAffinity(tid, cpus));
}

function limitAddressSpace(s: ServerSettings | undefined, baselineVm: number, problems: string[]): number | null {
  if (!s || s.memoryLimitBytes === null) return null;
  const limit = baselineVm + s.memoryLimitBytes;
  try {
    processLimit(0, RLIMIT_AS, BigInt(limit));
    return limit;
  } catch (e) {
    problems.push(`RLIMIT_AS ${limit}: ${(e as Error).message}`);
    return null;
  }
}

/* Fault injection (tests): die the way an LLVM fatal error or an allocation beyond the limit does. */
function inject(fault: ServerFault): void {
  if (fault === 'abort') {
    process.stderr.write('LLVM ERROR: injected fatal error (test)\n');
    process.abort();
  }
  const keep: Module[] = [];
  for (;;) keep.push(Module.parseBitcode(Context.create(), base!.pristineBitcode, 'ballast'));
}

process.on('message', (msg: ServerRequest) => {
  if (msg.type === 'init') {
    const problems: string[] = [];
    if (msg.settings) applySettings(msg.settings, problems);
    const ctx = Context.create();
    base = {
      pristineBitcode: msg.pristine,
      pristine: Module.parseBitcode(ctx, msg.pristine, 'pristine'),
      mode: modeByName(msg.mode),
      config: msg.config,
      target: msg.target,
      removed: new Set(msg.removed ?? []),
    };
    const mem = processMemory('self');
    const baselineVmBytes = mem?.vmBytes ?? 0;
    const addressSpaceLimit = limitAddressSpace(msg.settings, baselineVmBytes, problems);
    const as = processLimit(0, RLIMIT_AS).soft;
    reply({
      ready: {
        policy: schedulerPolicy(0),
        nice: niceOf(0),
        cpus: affinityOf(0),
        baselineVmBytes,
        baselineRssBytes: mem?.rssBytes ?? 0,
        addressSpaceLimit: addressSpaceLimit ?? (as === RLIM_INFINITY ? null : Number(as)),
        problems,
      },
    });
    return;
  }
  try {
    if (!base) throw new Error('the compile server got a unit before the image');
    if (msg.fault) inject(msg.fault);
    const unit = msg.req.image ? (buildImageUnit(base, msg.req.image) as unknown as ReturnType<typeof buildUnit>) : buildUnit(base, msg.req);
    reply({ job: msg.job, ok: true, unit, ...usage() });
  } catch (e) {
    const err = e as Error;
    reply({
      job: msg.job,
      ok: false,
      error: e instanceof KjitError ? { message: err.message, problem: e.problem, fix: e.fix, exitCode: e.exitCode } : { message: err.message ?? String(e) },
      ...usage(),
    });
  }
});
process.on('disconnect', () => process.exit(0));
