/**
 * @fileoverview Where kjit's files are: the repository root (the nearest
 * directory above this module with kjit's package.json, so the command works
 * from any directory and from dist/ or src/ alike) and the build outputs.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'kjit') return dir;
    if (dirname(dir) === dir) throw new Error(`kjit's package.json not found above ${from}`);
  }
}

export const ROOT = findRoot(dirname(fileURLToPath(import.meta.url)));
export const IR_SRC = join(ROOT, 'ir');
export const ASM_SRC = join(ROOT, 'asm');
export const BUILD_IR = join(ROOT, 'build', 'ir');
export const REFERENCE_IMAGE = join(BUILD_IR, 'kernel.bc');
export const RUNTIME_IR = join(BUILD_IR, 'runtime.bc');
export const CODEMEM_IR = join(BUILD_IR, 'codemem.bc');
