/**
 * @fileoverview The boot configuration: the value of every sysctl when the
 * kernel starts, and which implementation each selector picks on this
 * machine.  Pure: it reads the image's tables, the machine description and
 * the user's boot parameters, and decides; boot specialization then folds
 * the boot-fixed values into the code.
 *
 * Selector choice follows exactly the rule of the runtime's
 * kjit_select_alternatives(): the first alternative, in table order, whose
 * requirement the machine meets.  Both read the same table.
 */
import { KjitError } from '../errors.js';
import { AltKind, type AlternativeInfo, type ImageTables, type SysctlInfo, SysctlFlag } from './tables.js';

export type ValueSource = 'default' | 'boot parameter' | 'probed';

export interface SysctlValue {
  sysctl: SysctlInfo;
  value: bigint;
  source: ValueSource;
  /** Fixed for the life of the boot (foldable). */
  bootFixed: boolean;
  selector: boolean;
}

export interface MachineFacts {
  cpuFeatureBits: bigint;
  deviceIds: readonly number[];
}

export interface BootConfig {
  values: SysctlValue[];
  /** The alternative each selector uses. */
  chosen: AlternativeInfo[];
  /** Device implementations for devices this machine does not have. */
  absentDevices: AlternativeInfo[];
}

export function matches(alt: AlternativeInfo, machine: MachineFacts): boolean {
  if (alt.kind === AltKind.CPU) return (machine.cpuFeatureBits & alt.match) === alt.match;
  if (alt.kind === AltKind.DEVICE) return machine.deviceIds.includes(Number(alt.match));
  return false;
}

/** Parse `name=value` boot parameters (repeatable `--sysctl`). */
export function parseBootParameters(specs: readonly string[]): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const spec of specs) {
    const m = /^([a-z0-9_.]+)=(-?\d+)$/.exec(spec.trim());
    if (!m) {
      throw new KjitError(`malformed --sysctl '${spec}'`, 'write it as name=integer, e.g. --sysctl kernel.audit=1');
    }
    out.set(m[1]!, BigInt(m[2]!));
  }
  return out;
}

export function resolveBootConfig(
  tables: ImageTables,
  machine: MachineFacts,
  params: ReadonlyMap<string, bigint> = new Map(),
): BootConfig {
  const byName = new Map(tables.sysctls.map((s) => [s.name, s]));
  for (const [name, value] of params) {
    const s = byName.get(name);
    if (!s) {
      const known = tables.sysctls.map((x) => x.name).join(', ') || 'none';
      throw new KjitError(`unknown sysctl '${name}'`, `use one the image defines: ${known}`);
    }
    if (value < s.min || value > s.max) {
      throw new KjitError(`sysctl ${name}=${value} is out of range`, `use a value from ${s.min} to ${s.max}`);
    }
  }

  const chosen: AlternativeInfo[] = [];
  const absentDevices: AlternativeInfo[] = [];
  const values = tables.sysctls.map((s): SysctlValue => {
    const selector = (s.flags & SysctlFlag.SELECTOR) !== 0n;
    const bootFixed = (s.flags & SysctlFlag.BOOT) !== 0n;
    let value = params.get(s.name) ?? s.defaultValue;
    let source: ValueSource = params.has(s.name) ? 'boot parameter' : 'default';
    if (selector) {
      const alts = tables.alternatives.filter((a) => a.selector === s.variable);
      let pick: AlternativeInfo | undefined;
      if (value === -1n) {
        pick = alts.find((a) => matches(a, machine));
        if (!pick) {
          throw new KjitError(
            `no implementation of ${s.name} matches this machine (${alts.map((a) => a.name).join(', ') || 'none listed'})`,
            `set it explicitly with --sysctl ${s.name}=VALUE or describe a machine that has one of them`,
          );
        }
        value = pick.value;
        source = 'probed';
      } else {
        pick = alts.find((a) => a.value === value);
        if (pick && pick.kind === AltKind.DEVICE && !matches(pick, machine)) {
          throw new KjitError(
            `${s.name}=${value} selects ${pick.name}, a device this machine does not have`,
            'choose the machine\'s NIC with --nic, or drop the boot parameter',
          );
        }
      }
      if (pick) chosen.push(pick);
      for (const a of alts) {
        if (a.kind === AltKind.DEVICE && a.value !== value) absentDevices.push(a);
      }
    }
    return { sysctl: s, value, source, bootFixed, selector };
  });
  return { values, chosen, absentDevices };
}
