/**
 * @fileoverview The training run of `offline-pgo` (src/kernel/offline-pgo.ts),
 * run as a process of its own: `node offline-pgo-train.js REQUEST_JSON`.
 *
 * It loads the instrumented stage (a shared object with clang's profile
 * runtime) into the process for good, boots it through the usual
 * KernelInstance (no objects to link: the LLJIT's process-symbol generator
 * finds the kernel and runtime in the object), runs the workload for the
 * exact operation count with the run's boot configuration, joins the kernel
 * thread and writes the profile through the stage's hook.  A process of its
 * own because the object's state (the kernel's globals, the counters, its
 * signal handlers) can never be unloaded or reset.  Prints a TrainResult as
 * JSON; on failure a one-line reason on stderr and exit code 1.
 */
import { fileURLToPath } from 'node:url';

import { KjitError } from '../errors.js';
import { CodeRegion } from '../native/codemem.js';
import { callNative, dlopenGlobal } from '../native/libc.js';
import { Context } from '../native/llvm.js';
import { parseBootParameters, resolveBootConfig } from './bootconfig.js';
import { loadImage, REFERENCE } from './image.js';
import { KernelInstance } from './instance.js';
import { cpuFeatureBits, hostMachine, type NicModel } from './machine.js';

export interface TrainRequest {
  /** The instrumented stage (shared object) and the IR it was built from (its tables). */
  library: string;
  image: string;
  /** Where the .profraw goes. */
  profile: string;
  workload: string;
  workloadArg: bigint;
  ops: bigint;
  seed: bigint;
  concurrency: number;
  nic: NicModel;
  sysctls: string[];
}

export interface TrainResult {
  ops: number;
  seconds: number;
  checksum: string;
}

const ARENA_BYTES = 256 << 20;

export async function trainOnce(req: TrainRequest): Promise<TrainResult> {
  await CodeRegion.getAsync();
  dlopenGlobal(req.library);
  const ctx = Context.create();
  const image = loadImage(ctx, { ...REFERENCE, path: req.image });
  try {
    const workload = image.tables.workloads.indexOf(req.workload);
    if (workload < 0) throw new KjitError(`unknown workload '${req.workload}'`, `use one of: ${image.tables.workloads.join(', ')}`);
    const machine = hostMachine(req.nic);
    const facts = { cpuFeatureBits: cpuFeatureBits(machine, image.tables.cpuFeatureFlags), deviceIds: machine.devices.map((d) => d.id) };
    const config = resolveBootConfig(image.tables, facts, parseBootParameters(req.sysctls));
    const instance = KernelInstance.load([], {
      workload,
      seed: req.seed,
      opsLimit: req.ops,
      rate: 0,
      concurrency: req.concurrency,
      workloadArg: req.workloadArg,
      arenaBytes: ARENA_BYTES,
      sampleHz: 0,
      sampleRingSlots: 0,
      cpuFeatureBits: facts.cpuFeatureBits,
      deviceIds: facts.deviceIds,
      config,
    });
    try {
      instance.start();
      await instance.join();
      instance.checkHealthy('in the offline-pgo training run');
      const cb = instance.cb;
      const ops = cb.getNumber('ops_done');
      if (BigInt(ops) !== req.ops) throw new KjitError(`the training run did ${ops} of ${req.ops} operations`, 'run with KJIT_LOG=1 to see the kernel log', 1);
      const first = cb.get('t_first_op_ns');
      const end = cb.get('t_end_ns');
      const rc = callNative(instance.jit.lookup('kjit_pgo_write_profile'), 'int (const char *)', req.profile) as number;
      if (rc !== 0) throw new KjitError(`the profile runtime could not write ${req.profile} (${rc})`, 'check that its directory is writable', 1);
      return {
        ops,
        seconds: end > first ? Number(end - first) / 1e9 : 0,
        checksum: `0x${cb.get('checksum').toString(16).padStart(16, '0')}`,
      };
    } finally {
      await instance.dispose();
    }
  } finally {
    image.dispose();
    ctx.dispose();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const raw = JSON.parse(process.argv[2] ?? '{}') as Record<string, unknown>;
  const req = {
    ...raw,
    workloadArg: BigInt(raw.workloadArg as string),
    ops: BigInt(raw.ops as string),
    seed: BigInt(raw.seed as string),
  } as TrainRequest;
  trainOnce(req).then(
    (r) => process.stdout.write(JSON.stringify(r)),
    (e: unknown) => {
      process.stderr.write(e instanceof KjitError ? `${e.problem}\n` : `${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
