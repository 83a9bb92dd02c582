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
  /** Rebuilt from source by a two-stage clang PGO build trained on the run's workload (src/kernel/offline-pgo.ts). */
  offlinePgo: boolean;
  pipeline: string;
  /** Sampling, instrumentation windows, the policy and profile-guided re-JIT while the kernel runs (src/pgo). */
  online?: boolean;
  /** Boot in tiers (src/kernel/tiers.ts): hot functions of the stored profile with `pipeline`, the rest with
   * the fast tier or on first call; the re-JIT engine then optimizes what turns out hot. */
  bootTiers?: boolean;
}

const base = { pipeline: 'default<O2>', tailored: false, offlinePgo: false } as const;

/* boot, then better while it runs: the code boot compiled (with patchable
 * entries), sampled all the time; hot functions counted exactly in
 * instrumentation windows and re-JITed with their profile and the
 * run-time sysctls that stay unchanged folded behind a guard, each set of
 * versions kept only if an interleaved check finds it faster. */
const PGO: ModeSpec = {
  ...base,
  name: 'pgo',
  summary: 'boot plus sampling, exact counts and profile-guided re-JIT (with run-time specialization) while it runs',
  wholeImage: true,
  hostCpu: true,
  foldOptions: true,
  devirtualize: true,
  promote: true,
  online: true,
};

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
  pgo: PGO,

  /* pgo, booted fast (issue 10): what a large image needs.  Boot compiles the
   * stored profile's hot functions optimized, the rest with a fast tier (or
   * on first call), and starts the kernel; the pgo engine's tier then
   * replaces the fast code with optimized, profile-guided code. */
  tiered: {
    ...PGO,
    name: 'tiered',
    summary: 'pgo with a fast boot: hot functions optimized, the rest fast-compiled or compiled on first call, then re-JITed',
    bootTiers: true,
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
  /* The baseline online PGO is judged against: the best a user gets without
   * kjit.  A two-stage clang build (-fprofile-instr-generate, a training run
   * of the same workload, llvm-profdata-19 merge, -fprofile-instr-use) of
   * the same sources, compiled in the JIT modes' scope (the whole image as
   * one module, as LTO would) for this CPU (-march=native) at O3, with the
   * same retpolines, loaded by the same ORC path.  No boot specialization:
   * nothing is folded or removed, asm variants are chosen at run time. */
  'offline-pgo': {
    ...base,
    name: 'offline-pgo',
    summary: 'two-stage clang PGO build trained on the workload: whole image, this CPU, O3, every option checked at run time',
    wholeImage: true,
    hostCpu: true,
    foldOptions: false,
    devirtualize: false,
    promote: false,
    pipeline: 'default<O3>',
    offlinePgo: true,
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
