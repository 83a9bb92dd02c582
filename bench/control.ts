/**
 * @fileoverview `kjit bench control`: what a client polling `status` ten
 * times a second costs a serving kernel.  Every run is a fresh `kjit serve
 * --seconds S` process (the real instance: boot mode, patchable entries, its
 * control socket); in half of the runs this process polls that instance's
 * status at POLL_HZ over one connection, from the moment the socket exists
 * until the instance exits.  Runs alternate (the polled one first in odd
 * rounds) so drift in the machine's speed hits both alike.  The cost is one
 * minus the ratio of median throughputs, with a bootstrap 95% interval; the
 * instance's own count of the time it spent answering status requests
 * bounds it from the other side.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { ControlConnection } from '../src/control/client.js';
import type { StatusReport } from '../src/control/service.js';
import { ExitCode, KjitError } from '../src/errors.js';
import type { RunResult } from '../src/kernel/run.js';
import { ROOT } from '../src/paths.js';
import { ProgressLine } from '../src/cli/progress.js';
import { emitReport, machineEnv } from './env.js';
import { ratioOfMedians, spread } from './stats.js';

export interface BenchControlOptions {
  json: boolean;
  runs: number;
  seconds: number;
  workload: string;
  out?: string;
}

const POLL_HZ = 10;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface RunOutcome {
  result: RunResult;
  /** Status replies received, and the instance's time answering them (last reply's own count). */
  polls: number;
  pollSeconds: number;
  serverStatusMs: number;
  serverStatusN: number;
}

/** One `kjit serve --seconds S` instance, polled or not. */
async function serveOnce(o: BenchControlOptions, runtime: string, polled: boolean): Promise<RunOutcome> {
  const child = spawn(
    process.execPath,
    [join(ROOT, 'bin', 'kjit.js'), 'serve', '--seconds', String(o.seconds), '--workload', o.workload, '--json', '--no-profile-db', '--flush-to', join(runtime, 'journal.jsonl')],
    { env: { ...process.env, XDG_RUNTIME_DIR: runtime }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let running = true;
  void exited.then(() => (running = false));

  let polls = 0;
  let first = 0;
  let last: StatusReport | null = null;
  if (polled) {
    const socket = join(runtime, 'kjit', `${child.pid}.sock`);
    while (running && !existsSync(socket)) await sleep(5);
    const conn = running ? await ControlConnection.open({ pid: child.pid!, socket }) : null;
    first = performance.now();
    /* on a fixed schedule: a slow reply does not shift the ones after it */
    for (let k = 1; conn && running; k++) {
      try {
        const reply = await conn.request({ cmd: 'status' });
        if (reply.ok) last = reply.result as StatusReport;
        polls++;
      } catch {
        break; /* the instance stopped meanwhile */
      }
      await sleep(Math.max(0, first + (k * 1000) / POLL_HZ - performance.now()));
    }
    conn?.close();
  }
  const code = await exited;
  if (code !== 0) throw new KjitError(`kjit serve exited with ${code}: ${stderr.trim().split('\n').at(-1) ?? ''}`, 'fix the serve run first', ExitCode.FAILURE);
  const status = last?.control.requests.status;
  return {
    result: JSON.parse(stdout) as RunResult,
    polls,
    pollSeconds: polled ? (performance.now() - first) / 1000 : 0,
    serverStatusMs: status?.ms ?? 0,
    serverStatusN: status?.n ?? 0,
  };
}

export async function benchControl(o: BenchControlOptions): Promise<number> {
  if (!(o.runs >= 1 && Number.isInteger(o.runs))) throw new KjitError(`--runs ${o.runs} is not a run count`, 'pass an integer >= 1 (5 or more for a report)');
  /* on a terminal: what runs now, how far along, the time left (in seconds of serve runs, two a round) */
  const progress = new ProgressLine('bench control', o.runs * 2 * o.seconds, process.stderr.isTTY === true && !o.json);
  const log = (s: string) => progress.log(s);
  const runtime = mkdtempSync(join(tmpdir(), 'kjit-bench-control-'));
  try {
    const quiet: RunOutcome[] = [];
    const polled: RunOutcome[] = [];
    for (let r = 0; r < o.runs; r++) {
      for (const p of r % 2 ? [true, false] : [false, true]) {
        progress.start(`round ${r + 1}/${o.runs}: kjit serve ${p ? `polled at ${POLL_HZ} Hz` : 'without a client'}`);
        (p ? polled : quiet).push(await serveOnce(o, runtime, p));
        progress.step(o.seconds);
      }
      log(`bench control: round ${r + 1}/${o.runs}`);
    }
    const tput = (xs: RunOutcome[]) => xs.map((x) => x.result.ops_per_sec);
    const cpu = (xs: RunOutcome[]) => xs.map((x) => x.result.cpu_ns_per_op);
    const ratio = ratioOfMedians(tput(polled), tput(quiet));
    const cpuRatio = ratioOfMedians(cpu(polled), cpu(quiet));
    const statusN = polled.reduce((s, x) => s + x.serverStatusN, 0);
    const statusMs = polled.reduce((s, x) => s + x.serverStatusMs, 0);
    const achievedHz = polled.reduce((s, x) => s + x.polls, 0) / polled.reduce((s, x) => s + x.pollSeconds, 0);
    const report = {
      format: 'kjit-bench-control/1',
      env: { ...machineEnv(), runs: o.runs, seconds_per_run: o.seconds, workload: o.workload, concurrency: 4, seed: '1', poll_hz: POLL_HZ },
      suite: 'control',
      throughput: {
        ops_per_sec_quiet: spread(tput(quiet)),
        ops_per_sec_polled: spread(tput(polled)),
        runs: { quiet: tput(quiet), polled: tput(polled) },
        ratio: ratio.ratio,
        ratio_ci95: ratio.ci95,
        cost_percent: (1 - ratio.ratio) * 100,
        cost_ci95_percent: [(1 - ratio.ci95[1]) * 100, (1 - ratio.ci95[0]) * 100],
      },
      cpu_ns_per_op: { quiet: spread(cpu(quiet)), polled: spread(cpu(polled)), ratio: cpuRatio.ratio, ratio_ci95: cpuRatio.ci95 },
      status_requests: {
        achieved_hz: achievedHz,
        answered: statusN,
        /* time the instance's main thread spent per status request, and as a share of one core at POLL_HZ */
        server_ms_mean: statusN ? statusMs / statusN : null,
        server_core_share_percent: statusN ? (statusMs / statusN) * POLL_HZ / 10 : null,
      },
    };
    progress.finish();
    emitReport(report, o, () => {
      const t = report.throughput;
      const s = report.status_requests;
      return [
        `throughput (${o.workload}): ${t.ops_per_sec_quiet.median.toFixed(0)} ops/s without a client, ${t.ops_per_sec_polled.median.toFixed(0)} ops/s polled at ${s.achieved_hz.toFixed(1)} Hz`,
        `cost of polling status: ${t.cost_percent.toFixed(2)}% [${t.cost_ci95_percent[0].toFixed(2)}%, ${t.cost_ci95_percent[1].toFixed(2)}%] (ratio ${t.ratio.toFixed(4)}, 95% CI)`,
        `the instance spent ${s.server_ms_mean === null ? '-' : (s.server_ms_mean * 1000).toFixed(0)} us per status request (${s.server_core_share_percent === null ? '-' : s.server_core_share_percent.toFixed(3)}% of a core)`,
        '',
      ].join('\n');
    });
    return ExitCode.OK;
  } finally {
    progress.finish();
    rmSync(runtime, { recursive: true, force: true });
  }
}
