/**
 * @fileoverview The configuration tables an image exports (ir/runtime/kjit_rt.h),
 * read from its IR before anything is compiled: the sysctls (with their
 * defaults and which are fixed at boot), the alternatives behind each
 * selector, the workload names and the CPU feature names.  Tables are
 * constant, statically initialised globals; kjit reads their initializers.
 */
import { KjitError } from '../errors.js';
import type { Module, Value } from '../native/llvm.js';

export const SysctlFlag = { BOOT: 1n, SELECTOR: 2n, RO: 4n } as const;
export const AltKind = { DEVICE: 1n, CPU: 2n } as const;

export interface SysctlInfo {
  name: string;
  /** IR name of the variable the kernel reads. */
  variable: string;
  defaultValue: bigint;
  min: bigint;
  max: bigint;
  flags: bigint;
  description: string;
}

export interface AlternativeInfo {
  /** IR name of the selector variable. */
  selector: string;
  value: bigint;
  kind: bigint;
  match: bigint;
  /** IR name of the implementation's operations table, if any. */
  impl: string | null;
  name: string;
}

export interface ImageTables {
  sysctls: SysctlInfo[];
  alternatives: AlternativeInfo[];
  workloads: string[];
  cpuFeatureFlags: string[];
}

function broken(table: string, why: string): KjitError {
  return new KjitError(
    `the image's ${table} table is malformed (${why})`,
    'export it as a constant, statically initialised array as ir/runtime/kjit_rt.h describes',
  );
}

/** Number in `count` (a constant i64 global), or 0 if the image has none. */
function countOf(m: Module, name: string): number {
  const g = m.getGlobal(name);
  const init = g?.initializer;
  if (!init) return 0;
  const n = init.constIntValue();
  if (n === null) throw broken(name, 'not a constant integer');
  return Number(n);
}

function stringOf(ptr: Value | null, table: string): string {
  if (!ptr || ptr.isNull()) return '';
  const init = ptr.isGlobalVariable() ? ptr.initializer : null;
  const s = init?.constString();
  if (s === null || s === undefined) throw broken(table, 'a name is not a constant string');
  return s.replace(/\0+$/, '');
}

function globalNameOf(ptr: Value | null): string | null {
  if (!ptr || ptr.isNull()) return null;
  if (!ptr.isGlobalVariable() && !ptr.isFunction()) return null;
  return ptr.name;
}

function intOf(v: Value | null, table: string): bigint {
  const n = v?.constIntValue();
  if (n === null || n === undefined) throw broken(table, 'a field is not a constant integer');
  return n;
}

function rows(m: Module, name: string, count: number): Value[] {
  if (count === 0) return [];
  const init = m.getGlobal(name)?.initializer;
  if (!init) throw broken(name, 'declared but not defined');
  const out: Value[] = [];
  for (let i = 0; i < count; i++) {
    const row = init.aggregateElement(i);
    if (!row) throw broken(name, `row ${i} missing`);
    out.push(row);
  }
  return out;
}

export function readTables(m: Module): ImageTables {
  const sysctls = rows(m, 'kjit_sysctls', countOf(m, 'kjit_nsysctls')).map((row): SysctlInfo => {
    const variable = globalNameOf(row.aggregateElement(1));
    if (!variable) throw broken('kjit_sysctls', 'a row has no variable');
    const def = m.getGlobal(variable)?.initializer?.constIntValue();
    return {
      name: stringOf(row.aggregateElement(0), 'kjit_sysctls'),
      variable,
      defaultValue: def ?? 0n,
      min: intOf(row.aggregateElement(2), 'kjit_sysctls'),
      max: intOf(row.aggregateElement(3), 'kjit_sysctls'),
      flags: intOf(row.aggregateElement(4), 'kjit_sysctls'),
      description: stringOf(row.aggregateElement(5), 'kjit_sysctls'),
    };
  });
  const alternatives = rows(m, 'kjit_alternatives', countOf(m, 'kjit_nalternatives')).map((row): AlternativeInfo => {
    const selector = globalNameOf(row.aggregateElement(0));
    if (!selector) throw broken('kjit_alternatives', 'a row has no selector variable');
    return {
      selector,
      value: intOf(row.aggregateElement(1), 'kjit_alternatives'),
      kind: intOf(row.aggregateElement(2), 'kjit_alternatives'),
      match: intOf(row.aggregateElement(3), 'kjit_alternatives'),
      impl: globalNameOf(row.aggregateElement(4)),
      name: stringOf(row.aggregateElement(5), 'kjit_alternatives'),
    };
  });
  const workloads = rows(m, 'kjit_workloads', countOf(m, 'kjit_nworkloads')).map((v) => stringOf(v, 'kjit_workloads'));
  const cpuFeatureFlags = rows(m, 'kjit_cpu_feature_flags', countOf(m, 'kjit_cpu_nfeatures')).map((v) =>
    stringOf(v, 'kjit_cpu_feature_flags'),
  );
  return { sysctls, alternatives, workloads, cpuFeatureFlags };
}
