/**
 * @fileoverview `kjit serve` (and `kjit run --seconds 0`): one kernel that
 * runs until it is stopped, with a control endpoint for its owner.
 *
 * In order:
 *   1. the runtime directory (0700) is made or checked, stale sockets are
 *      removed, the instance's socket listens (0600): `kjit ps` sees it
 *      while it boots;
 *   2. the kernel boots (patchable entries unless --safe) and runs; the
 *      service is attached to it (and to the kernel a fault in patched code
 *      restarts); the journal gets a snapshot every --flush-every seconds;
 *   3. SIGINT/SIGTERM (or the --ops/--seconds asked for) stops it: a change
 *      under way completes, the kernel thread is joined, its code freed;
 *      then the final snapshot is flushed and the socket closed (and removed).
 */

import { type BootRequest, type ExecuteRequest, runKernel, type RunResult } from '../kernel/run.js';
import { Journal } from './journal.js';
import type { RejitMode } from './protocol.js';
import { ensureRuntimeDir, socketPath, sweep } from './rundir.js';
import { ControlServer } from './server.js';
import { ControlService } from './service.js';

export { SERVE_DEFAULTS } from './protocol.js';

export interface ServeRequest {
  run: BootRequest & ExecuteRequest;
  rejitMode: RejitMode;
  /** Booted with --safe. */
  safe: boolean;
  journal: string;
  flushEveryS: number;
}

const log = (line: string) => process.stderr.write(`kjit serve: ${line}\n`);

export async function serve(req: ServeRequest): Promise<RunResult> {
  const dir = ensureRuntimeDir();
  const { removed } = await sweep(dir);
  if (removed.length) log(`removed stale sockets of pids ${removed.join(', ')}`);
  const journal = new Journal(req.journal);
  const service = new ControlService({
    image: req.run.image.path,
    workload: req.run.workload ?? null,
    mode: req.run.mode,
    rejitMode: req.rejitMode,
    patchable: req.run.patchable === true,
    safeAtStart: req.safe,
    journal,
    flushEveryS: req.flushEveryS,
    log,
  });
  const server = await ControlServer.listen(socketPath(dir, process.pid), service, log);
  service.server = server;
  log(`pid ${process.pid}, control socket ${server.path}, re-JIT ${req.rejitMode}; stop with Ctrl-C or kill -TERM ${process.pid}`);
  try {
    return await runKernel({ ...req.run, attach: service.attach, rejitMode: () => service.mode, pgoLog: log });
  } finally {
    service.stop();
    await server.close();
    log(`stopped; final snapshot in ${journal.path}`);
  }
}
