/**
 * @fileoverview What the control channel allows, decided from values alone
 * (no kernel, no socket): sysctl writes, and what a patch request does in
 * each re-JIT mode.  service.ts carries the decisions out; a refusal names
 * its reason and the fix, and nothing is changed.
 */
import type { SysctlValue } from '../kernel/bootconfig.js';
import type { ModeSpec } from '../kernel/modes.js';
import { SysctlFlag } from '../kernel/tables.js';
import { type RejitMode, type Refusal, refusal } from './protocol.js';

export function findSysctl(values: readonly SysctlValue[], name: string): SysctlValue | Refusal {
  const v = values.find((x) => x.sysctl.name === name);
  if (v) return v;
  const known = values.map((x) => x.sysctl.name).join(', ') || 'none';
  return refusal('no-such-sysctl', `the kernel has no sysctl '${name}'`, `use one it defines: ${known}`);
}

/** Is the sysctl's boot value compiled into this mode's code? */
export function foldedInto(v: SysctlValue, mode: ModeSpec): boolean {
  return v.bootFixed && (v.selector ? mode.devirtualize : mode.foldOptions);
}

export type SysctlWrite = { ok: true; value: bigint } | { ok: false; refusal: Refusal };

/**
 * May `v` be set to `text` (a decimal integer) while the kernel runs?
 * Read-only: never.  Boot-fixed: not after boot; in modes that folded it,
 * its value is in the code (a write would need de-specialization, which the
 * PGO issue brings); in the others, the kernel's own contract
 * (KJIT_SYSCTL_BOOT) says it may have set itself up by it.
 */
export function decideSysctlWrite(v: SysctlValue, mode: ModeSpec, text: string): SysctlWrite {
  const { name, min, max } = v.sysctl;
  const no = (r: Refusal): SysctlWrite => ({ ok: false, refusal: r });
  if ((v.sysctl.flags & SysctlFlag.RO) !== 0n) {
    return no(refusal('read-only', `sysctl ${name} is read-only at run time`, `reboot with --sysctl ${name}=${text} (kjit serve)`));
  }
  if (v.bootFixed) {
    return no(
      refusal(
        'boot-fixed',
        foldedInto(v, mode)
          ? `sysctl ${name} is folded into the code at boot (mode ${mode.name}); de-specialization arrives with the PGO issue`
          : `sysctl ${name} is fixed once the kernel has booted (it may have set itself up by it)`,
        `reboot with --sysctl ${name}=${text}`,
      ),
    );
  }
  const value = BigInt(text);
  if (value < min || value > max) {
    return no(refusal('out-of-range', `${name}=${text} is out of range`, `use a value from ${min} to ${max}`));
  }
  return { ok: true, value };
}

export type PatchDecision = { kind: 'install' } | { kind: 'check-only' } | { kind: 'refuse'; refusal: Refusal };

/**
 * What a patch request does: installed (normal), checked and logged but
 * not installed (dry-run), or refused (safe; or code without patchable
 * entries, `whyNot` saying why).
 */
export function decidePatch(mode: RejitMode, whyNot: string | null): PatchDecision {
  if (mode === 'safe') {
    return { kind: 'refuse', refusal: refusal('safe-mode', 'safe mode: re-JIT is off', 'switch it off first: kjit mode normal (or dry-run)') };
  }
  if (whyNot !== null) {
    return { kind: 'refuse', refusal: refusal('not-patchable', `this kernel's code has no patchable entries (${whyNot})`, 'restart it with kjit serve in boot mode, without --safe') };
  }
  return mode === 'dry-run' ? { kind: 'check-only' } : { kind: 'install' };
}
