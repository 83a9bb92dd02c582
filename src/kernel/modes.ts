/**
 * @fileoverview The ways kjit can compile one image (DESIGN.md section 8).
 * Every mode starts from the same IR and is loaded through the same ORC
 * path; they differ only in what the compiler is allowed to know.
 */
import { KjitError } from '../errors.js';

export interface ModeSpec {
  name: string;
  summary: string;
  /** One module for the whole image (cross-file inlining, as LTO gives) vs one per source file. */
  wholeImage: boolean;
  /** Compile for this CPU (model and features) vs generic x86-64. */
  hostCpu: boolean;
  /** Fold boot-fixed option sysctls (audit, slab debugging, checksum verification ...). */
  foldOptions: boolean;
  /** Fold selector sysctls and remove unused device drivers: indirect calls through the
   * chosen driver's operations table and the asm-variant dispatch become direct calls. */
  devirtualize: boolean;
  /** Promote internal symbols so later re-JIT units can link to this copy's state. */
  promote: boolean;
  /** Rebuilt from source with boot-fixed values as -D constants (a custom-built kernel). */
  tailored: boolean;
  pipeline: string;
}

const base = { pipeline: 'default<O2>', tailored: false } as const;

export const MODES: Record<string, ModeSpec> = {
  stock: {
    ...base,
    name: 'stock',
    summary: 'what a distribution ships: per source file, generic x86-64, every option checked at run time',
    wholeImage: false,
    hostCpu: false,
    foldOptions: false,
    devirtualize: false,
    promote: false,
  },
  boot: {
    ...base,
    name: 'boot',
    summary: 'JIT-compiled at boot: whole image, this CPU, boot-fixed sysctls folded, unused drivers removed',
    wholeImage: true,
    hostCpu: true,
    foldOptions: true,
    devirtualize: true,
    promote: true,
  },
  /* Ablations: stock plus exactly one of boot's ingredients. */
  'whole-image': {
    ...base,
    name: 'whole-image',
    summary: 'stock compiled as one module (cross-file inlining, as LTO gives)',
    wholeImage: true,
    hostCpu: false,
    foldOptions: false,
    devirtualize: false,
    promote: false,
  },
  'cpu-target': {
    ...base,
    name: 'cpu-target',
    summary: 'stock compiled for this CPU',
    wholeImage: false,
    hostCpu: true,
    foldOptions: false,
    devirtualize: false,
    promote: false,
  },
  'sysctl-fold': {
    ...base,
    name: 'sysctl-fold',
    summary: 'stock with boot-fixed option sysctls folded',
    wholeImage: false,
    hostCpu: false,
    foldOptions: true,
    devirtualize: false,
    promote: false,
  },
  devirt: {
    ...base,
    name: 'devirt',
    summary: 'stock with selectors folded and unused drivers removed (direct driver and asm-variant calls)',
    wholeImage: false,
    hostCpu: false,
    foldOptions: false,
    devirtualize: true,
    promote: false,
  },
  tailored: {
    ...base,
    name: 'tailored',
    summary: 'stock built from source with the boot-fixed sysctls as -D constants',
    wholeImage: false,
    hostCpu: false,
    foldOptions: false,
    devirtualize: false,
    promote: false,
    tailored: true,
  },
};

export const RUN_MODES = ['stock', 'boot'] as const;
export const ABLATIONS = ['whole-image', 'cpu-target', 'sysctl-fold', 'devirt', 'tailored'] as const;

export function modeByName(name: string): ModeSpec {
  const m = MODES[name];
  if (!m) {
    throw new KjitError(`unknown mode '${name}'`, `use one of: ${Object.keys(MODES).join(', ')}`);
  }
  return m;
}
