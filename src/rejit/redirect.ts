/**
 * @fileoverview Redirecting a running kernel's function to another version
 * of it: the host side of ir/runtime/patch.c, which writes the function's
 * 5-byte patchable entry (a NOP, or `jmp rel32` to the version) with the
 * int3 protocol through the code region's writable alias.  Mechanism only:
 * what to redirect, and when, is decided elsewhere.
 */
import type { CodeRegion } from '../native/codemem.js';
import type { LLJIT } from '../native/llvm.js';

const ERRNO: Record<number, string> = {
  8: 'the site is not a patchable function entry (compile the image with patchable entries)',
  22: 'the site is not 16-byte aligned',
  34: 'the target is out of rel32 range',
  116: 'the entry does not point where the caller expected (another install raced this one)',
};

export class RedirectError extends Error {
  readonly errno: number;
  constructor(what: string, errno: number) {
    super(`${what}: ${ERRNO[errno] ?? `errno ${errno}`}`);
    this.name = 'RedirectError';
    this.errno = errno;
  }
}

export type EntryState = { kind: 'nop' } | { kind: 'jmp'; target: bigint } | { kind: 'other' };

export class Redirector {
  constructor(
    private readonly jit: LLJIT,
    private readonly region: CodeRegion,
  ) {}

  private alias(site: bigint): bigint {
    if (!this.region.contains(site)) throw new RedirectError(`0x${site.toString(16)}`, 8);
    return this.region.alias + (site - this.region.base);
  }

  /** What the entry at `site` holds now. */
  read(site: bigint): EntryState {
    const out = new BigUint64Array(1);
    const kind = this.jit.call('kjit_patch_read', 'int (uint64_t, _Out_ uint64_t *)', site, out) as number;
    if (kind === 0) return { kind: 'nop' };
    if (kind === 1) return { kind: 'jmp', target: out[0]! };
    return { kind: 'other' };
  }

  /** Make calls to the function at `site` run `target` instead; `expect` is its current target (null: none). */
  redirect(site: bigint, target: bigint, expect: bigint | null): void {
    const rc = this.jit.call(
      'kjit_patch_redirect',
      'int (uint64_t, uint64_t, uint64_t, uint64_t)',
      site,
      this.alias(site),
      target,
      expect ?? 0n,
    ) as number;
    if (rc !== 0) throw new RedirectError(`redirecting 0x${site.toString(16)}`, -rc);
  }

  /** Let calls run the function's own code at `site` again. */
  restore(site: bigint, expect: bigint): void {
    const rc = this.jit.call('kjit_patch_restore', 'int (uint64_t, uint64_t, uint64_t)', site, this.alias(site), expect) as number;
    if (rc !== 0) throw new RedirectError(`restoring 0x${site.toString(16)}`, -rc);
  }
}
