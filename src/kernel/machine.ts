/**
 * @fileoverview The machine kjit boots a kernel on: the host CPU as LLVM and
 * /proc/cpuinfo describe it, and the devices present.  The devices are part
 * of the emulated machine (the kernel's NIC models live in the image); the
 * user chooses which NIC the machine has, as a VM's configuration would.
 */
import { readFileSync } from 'node:fs';

/** NIC models the emulated machine can carry, by PCI-style id. */
export const NIC_DEVICES = {
  virtq: { name: 'virtio-net', id: 0x1af41000 },
  ring: { name: 'e1000', id: 0x8086100e },
} as const;
export type NicModel = keyof typeof NIC_DEVICES;

export interface Device {
  name: string;
  /** vendor << 16 | device */
  id: number;
}

export interface Machine {
  /** CPU model name from /proc/cpuinfo. */
  cpuModel: string;
  /** Flags from /proc/cpuinfo (the kernel's cpuid view). */
  cpuFlags: ReadonlySet<string>;
  devices: readonly Device[];
}

export function readCpuInfo(text = readFileSync('/proc/cpuinfo', 'utf8')): { model: string; flags: Set<string> } {
  const model = /^model name\s*:\s*(.+)$/m.exec(text)?.[1]?.trim() ?? 'unknown';
  const flags = new Set((/^flags\s*:\s*(.+)$/m.exec(text)?.[1] ?? '').trim().split(/\s+/));
  return { model, flags };
}

export function hostMachine(nic: NicModel = 'virtq'): Machine {
  const { model, flags } = readCpuInfo();
  return { cpuModel: model, cpuFlags: flags, devices: [NIC_DEVICES[nic]] };
}

/**
 * The KJIT_CPU_* bit mask of a machine, given the image's table of flag
 * names (bit i = name i; see kjit_cpu_feature_flags in the runtime).
 */
export function cpuFeatureBits(machine: Machine, flagNames: readonly string[]): bigint {
  let bits = 0n;
  flagNames.forEach((name, i) => {
    if (machine.cpuFlags.has(name)) bits |= 1n << BigInt(i);
  });
  return bits;
}
