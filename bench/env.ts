/**
 * @fileoverview What every benchmark report records about where it ran
 * (DESIGN.md section 8): versions, the machine's CPU as the OS and LLVM name
 * it, the commit, and that the kernel thread is not pinned.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';

import { hostCPUName } from '../src/native/llvm.js';
import { ROOT } from '../src/paths.js';

function gitCommit(): string {
  const r = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : 'unknown';
}

export function machineEnv() {
  return {
    date: new Date().toISOString(),
    commit: gitCommit(),
    kjit: process.env.npm_package_version ?? '0.1.0',
    node: process.version,
    llvm: '19',
    cpu: cpus()[0]?.model ?? 'unknown',
    llvm_cpu: hostCPUName(),
    cores: cpus().length,
    kernel: release(),
    cpu_pinning: 'none (kernel thread scheduled by Linux)',
  };
}

/** A report as every benchmark gives it: JSON to `out` if asked, then JSON or the readable lines on stdout. */
export function emitReport(report: object, o: { json: boolean; out?: string | undefined }, readable: () => string): void {
  const text = `${JSON.stringify(report, null, 2)}\n`;
  if (o.out) writeFileSync(o.out, text);
  process.stdout.write(o.json ? text : readable());
}
