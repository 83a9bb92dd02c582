/**
 * @fileoverview Redirecting a running kernel's function to another version
 * of it: the host side of ir/runtime/patch.c, which rewrites the function's
 * 5-byte patchable entry (a NOP, or `jmp rel32` to the version).
 *
 * While the kernel thread runs, the poke is posted in the control block and
 * the kernel thread writes it itself at its next quiescent point (no
 * cross-modifying code, no IPIs); if it does not get there within
 * `kernelWaitMs`, or the kernel is not running, the host writes the entry
 * with the int3 protocol.  Mechanism only: what to redirect, and when, is
 * decided elsewhere.
 */
import type { KernelInstance } from '../kernel/instance.js';
import type { CodeRegion } from '../native/codemem.js';
import { KernelState } from '../native/control-block.js';
import { readU64 } from '../native/libc.js';

const ERRNO: Record<number, string> = {
  8: 'the site is not a patchable function entry (compile the image with patchable entries)',
  22: 'the site is not 16-byte aligned',
  34: 'the target is out of rel32 range',
  7: 'more entries than one poke request carries (KJIT_POKE_BATCH)',
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

/** One entry of a transition: from one target to another (null: the function's own code). */
export interface EntryChange {
  site: bigint;
  to: bigint | null;
  from: bigint | null;
}

export type EntryState = { kind: 'nop' } | { kind: 'jmp'; target: bigint } | { kind: 'other' };

const NOP = 0x0800441f0fn; /* 0f 1f 44 00 08, little-endian */

function jmpBytes(site: bigint, target: bigint): bigint {
  const rel = target - (site + 5n);
  if (rel < -(1n << 31n) || rel >= 1n << 31n) throw new RedirectError(`0x${site.toString(16)}`, 34);
  return 0xe9n | (BigInt.asUintN(32, rel) << 8n);
}

export class Redirector {
  /** How long to wait for the kernel thread's quiescent point before poking from the host. */
  kernelWaitMs = 50;
  /** The same for a set of entries: the host writes them one by one, so waiting longer keeps the set one transition. */
  kernelWaitSetMs = 1000;
  /** Pokes done by the kernel thread / by the host with the int3 protocol. */
  readonly counts = { kernel: 0, host: 0 };

  constructor(
    private readonly instance: KernelInstance,
    private readonly region: CodeRegion,
  ) {}

  private get jit() {
    return this.instance.jit;
  }

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
  redirect(site: bigint, target: bigint, expect: bigint | null): Promise<void> {
    return this.apply([{ site, to: target, from: expect }]);
  }

  /** Let calls run the function's own code at `site` again. */
  restore(site: bigint, expect: bigint): Promise<void> {
    return this.apply([{ site, to: null, from: expect }]);
  }

  /**
   * Rewrite a set of entries as one transition.  A running kernel's thread
   * writes them all at one quiescent point (ir/runtime/patch.c); otherwise
   * the host writes them one by one with the int3 protocol, and puts back
   * the ones it wrote if a later one fails (unless `hostFallback` is false:
   * then it fails with EAGAIN and nothing changes).
   */
  async apply(changes: readonly EntryChange[], opts: { hostFallback?: boolean } = {}): Promise<void> {
    if (changes.length === 0) return;
    if (changes.length > this.instance.cb.array('poke_site').length) {
      throw new RedirectError(`a transition of ${changes.length} entries`, 7 /* E2BIG */);
    }
    const bytes = changes.map((c) => ({
      site: c.site,
      old: c.from === null ? NOP : jmpBytes(c.site, c.from),
      next: c.to === null ? NOP : jmpBytes(c.site, c.to),
    }));
    if (await this.byKernel(bytes, bytes.length > 1 ? this.kernelWaitSetMs : this.kernelWaitMs)) return;
    if (opts.hostFallback === false) throw new RedirectError(`${changes.length} entries (the kernel thread did not reach a quiescent point in time)`, 11 /* EAGAIN */);
    const done: EntryChange[] = [];
    try {
      for (const c of changes) {
        this.byHost(c);
        done.push(c);
      }
    } catch (e) {
      for (const c of done.reverse()) this.byHost({ site: c.site, to: c.from, from: c.to });
      throw e;
    }
  }

  /**
   * Post the pokes for the kernel thread; true once they were carried out,
   * false if the kernel is not running or did not reach a quiescent point in
   * time (then the request is withdrawn: a stale one is refused by its old
   * bytes).
   */
  private async byKernel(pokes: readonly { site: bigint; old: bigint; next: bigint }[], waitMs: number): Promise<boolean> {
    const cb = this.instance.cb;
    if (cb.getNumber('state') !== KernelState.RUNNING) return false;
    const [site, alias, old, next] = [cb.array('poke_site'), cb.array('poke_alias'), cb.array('poke_old'), cb.array('poke_new')];
    pokes.forEach((p, i) => {
      site[i] = p.site;
      alias[i] = this.alias(p.site);
      old[i] = p.old;
      next[i] = p.next;
    });
    cb.set('poke_n', pokes.length);
    /* a running kernel answers within microseconds (tens when it has to wake
     * from idle): ~200 polls back to back, then polls that leave the CPU to it */
    const { id, answered } = await this.instance.request('poke', waitMs, 200);
    if (!answered) {
      /* withdraw: make the request's old bytes impossible to match */
      old[0] = 0xffffffffffn;
      if (cb.get('poke_done') < id) return false; /* it never got there */
    }
    const rc = Number(BigInt.asIntN(64, cb.get('poke_result')));
    /* Refused: because of our withdrawal (the host takes over), or because the
     * bytes are already the new ones (a request seen twice): judge by the bytes. */
    if (rc !== 0 && !pokes.every((p) => (readU64(p.site) & 0xffffffffffn) === p.next)) {
      if (!answered && rc === -116 /* ESTALE */) return false;
      throw new RedirectError(`rewriting ${pokes.map((p) => `0x${p.site.toString(16)}`).join(', ')}`, -rc);
    }
    this.counts.kernel += pokes.length;
    return true;
  }

  private byHost(c: EntryChange): void {
    if (c.to === null) this.restoreByHost(c.site, c.from!);
    else this.redirectByHost(c.site, c.to, c.from);
  }

  private redirectByHost(site: bigint, target: bigint, expect: bigint | null): void {
    this.counts.host++;
    /* a withdrawn kernel poke may have landed after all */
    const now = this.read(site);
    if (now.kind === 'jmp' && now.target === target) return;
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

  private restoreByHost(site: bigint, expect: bigint): void {
    this.counts.host++;
    if (this.read(site).kind === 'nop') return;
    const rc = this.jit.call('kjit_patch_restore', 'int (uint64_t, uint64_t, uint64_t)', site, this.alias(site), expect) as number;
    if (rc !== 0) throw new RedirectError(`restoring 0x${site.toString(16)}`, -rc);
  }
}
