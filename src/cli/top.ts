/**
 * @fileoverview `kjit top [PID]`: a live view of a serving kernel through
 * its control channel (`status` every --interval seconds): throughput with
 * a sparkline of the last minute, idle share, hot functions, installs and
 * versions, the pgo engine's work, memory.  On a terminal it redraws in
 * place (the alternate screen, restored on exit) and quits on q or Ctrl-C;
 * otherwise it prints one plain block per refresh (--count N blocks, or
 * until the instance stops).
 */
import { parseArgs } from 'node:util';

import { ExitCode, KjitError } from '../errors.js';
import { ask, findInstance } from '../control/client.js';
import type { StatusReport } from '../control/service.js';
import { si } from './format.js';

export const TOP_USAGE = 'kjit top [PID] [--interval S] [--count N]';

const SPARK = '▁▂▃▄▅▆▇█';

export function sparkline(values: readonly number[], width: number): string {
  const v = values.slice(-width);
  if (!v.length) return '';
  const max = Math.max(...v);
  const min = Math.min(...v);
  return v.map((x) => SPARK[max > min ? Math.round(((x - min) / (max - min)) * (SPARK.length - 1)) : SPARK.length - 1]).join('');
}

const mib = (b: number | null | undefined) => (b === null || b === undefined ? '-' : `${(b / 1048576).toFixed(2)} MiB`);
const pct = (x: number | null | undefined) => (x === null || x === undefined ? '-' : `${(x * 100).toFixed(1)}%`);

function uptime(s: number): string {
  if (s < 120) return `${s.toFixed(0)} s`;
  if (s < 7200) return `${(s / 60).toFixed(0)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

/** The screen for one status report (and the throughput seen so far). */
export function topScreen(s: StatusReport, history: readonly number[], o: { width: number; tty: boolean }): string[] {
  const t = s.throughput;
  const m = s.memory;
  const barWidth = Math.max(10, Math.min(30, o.width - 50));
  const lines = [
    `kjit top · pid ${s.pid} · ${s.mode} · ${s.workload ?? '-'} · ${s.state} · up ${uptime(s.uptime_s)}${s.restarts ? ` · ${s.restarts} restart(s)` : ''}${o.tty ? '   (q quits)' : ''}`,
    `throughput  ${t.ops_per_sec === null ? '-' : `${si(t.ops_per_sec)}ops/s`}  ${sparkline(history, Math.max(10, o.width - 45))}  since start ${t.ops_per_sec_since_start === null ? '-' : `${si(t.ops_per_sec_since_start)}ops/s`}`,
    `idle        ${pct(s.idle_share.last_interval)} (last interval), ${pct(s.idle_share.since_start)} since start; ${s.ops} ops`,
    `re-JIT      ${s.rejit_mode}${s.patchable ? '' : ' (no patchable entries)'}: ${s.versions.installs} installs, ${s.versions.reverts} reverts, ${s.versions.live} versions live, ${s.versions.waiting_grace} waiting for a grace period`,
  ];
  const g = s.pgo;
  if (g) {
    lines.push(
      `pgo         ${g.policy} policy: ${g.compiles} compiles (${g.versions_kept} kept, ${g.versions_rolled_back} rolled back), ${g.windows} counting windows, ${(g.compile_ms_total / 1000).toFixed(1)} s compiling`,
      `optimized   ${g.optimized.length ? g.optimized.join(', ') : '-'}`,
    );
  }
  for (const p of s.patches) lines.push(`patch       ${p.fn} from ${p.file} (${p.functions.length} function(s))`);
  lines.push(
    `memory      code ${m.code_region ? `${mib(m.code_region.bytes_in_use)} in use (peak ${mib(m.code_region.peak_bytes)})` : '-'}, arena ${mib(m.arena_bytes)}, RSS ${mib(m.rss_bytes)}; budget: - (${m.grant_note})`,
    '',
    s.hot_functions.available ? `hot functions (${s.hot_functions.reason})` : `hot functions: - (${s.hot_functions.reason})`,
  );
  const top = s.hot_functions.functions;
  const maxShare = Math.max(0.0001, ...top.map((f) => f.share));
  for (const f of top) {
    const bar = o.tty ? '█'.repeat(Math.max(1, Math.round((f.share / maxShare) * barWidth))) : '';
    lines.push(`  ${f.fn.padEnd(28)} ${pct(f.share).padStart(6)}  ${bar}`);
  }
  if (g?.recent_events.length) {
    lines.push('', 'recent re-JIT events');
    for (const e of g.recent_events) lines.push(`  ${e.t_s.toFixed(1).padStart(7)} s  ${e.event}`);
  }
  return lines.map((l) => (l.length > o.width ? `${l.slice(0, o.width - 1)}…` : l));
}

export async function cmdTop(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { interval: { type: 'string' }, count: { type: 'string' } }, allowPositionals: true, strict: true });
  } catch (e) {
    throw new KjitError((e as Error).message.replace(/\. To specify.*$/s, ''), `write ${TOP_USAGE}`, ExitCode.BAD_INPUT);
  }
  const { values, positionals } = parsed;
  if (positionals.length > 1 || (positionals[0] !== undefined && !/^\d+$/.test(positionals[0]))) {
    throw new KjitError(`unexpected argument '${positionals.at(-1)}'`, `write ${TOP_USAGE}`, ExitCode.BAD_INPUT);
  }
  const intervalS = values.interval === undefined ? 1 : Number(values.interval);
  if (!(intervalS >= 0.1 && intervalS <= 3600)) throw new KjitError(`--interval ${values.interval} is out of range`, 'pass seconds from 0.1 to 3600 (default 1)', ExitCode.BAD_INPUT);
  const count = values.count === undefined ? 0 : Number(values.count);
  if (!(Number.isInteger(count) && count >= 0)) throw new KjitError(`--count ${values.count} is not a count`, 'pass an integer >= 1 (default 0: until q, Ctrl-C or the instance stops)', ExitCode.BAD_INPUT);
  const target = await findInstance(positionals[0] === undefined ? undefined : Number(positionals[0]));
  const tty = process.stdout.isTTY === true && process.stdin.isTTY === true;
  const history: number[] = [];
  let stop = false;
  let wake: (() => void) | null = null;
  const quit = () => {
    stop = true;
    wake?.();
  };
  const onKey = (b: Buffer) => {
    const k = b.toString();
    if (k === 'q' || k === 'Q' || k === '\u0003' || k === '\u001b') quit();
  };
  process.once('SIGINT', quit);
  process.once('SIGTERM', quit);
  if (tty) {
    process.stdout.write('\x1b[?1049h\x1b[?25l\x1b[2J');
    process.stdin.setRawMode(true);
    process.stdin.on('data', onKey);
    process.stdin.resume();
  }
  let shown = 0;
  let ended: string | null = null;
  try {
    while (!stop) {
      let s: StatusReport;
      try {
        s = (await ask(target, { cmd: 'status' })) as StatusReport;
      } catch (e) {
        if (e instanceof KjitError && shown > 0) {
          ended = `kjit top: instance ${target.pid} is gone (${e.problem})`;
          break;
        }
        throw e;
      }
      if (s.throughput.ops_per_sec !== null) history.push(s.throughput.ops_per_sec);
      if (history.length > 600) history.shift();
      const width = tty ? process.stdout.columns || 100 : 120;
      const lines = topScreen(s, history, { width, tty });
      if (tty) process.stdout.write(`\x1b[H${lines.map((l) => `${l}\x1b[K`).join('\n')}\n\x1b[J`);
      else process.stdout.write(`${shown ? '\n' : ''}${lines.join('\n')}\n`);
      shown++;
      if ((count && shown >= count) || s.state === 'stopped' || s.state === 'stopping') break;
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, intervalS * 1000);
      });
      wake = null;
    }
  } finally {
    process.off('SIGINT', quit);
    process.off('SIGTERM', quit);
    if (tty) {
      process.stdin.off('data', onKey);
      process.stdin.setRawMode(false);
      process.stdin.pause();
      process.stdout.write('\x1b[?25h\x1b[?1049l');
    }
  }
  if (ended) process.stderr.write(`${ended}\n`);
  return ExitCode.OK;
}
