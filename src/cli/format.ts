/**
 * @fileoverview Human-readable output of `kjit run`, `kjit demo` and the
 * commands to a serving instance (ps, status, sysctl, patch, mode).
 */
import type { PatchReport, StatusReport, SysctlReport } from '../control/service.js';
import type { Progress, RunResult } from '../kernel/run.js';

export function si(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return n.toFixed(0);
}

/** The run's status line; with the run's length (`totalS`, a timed run), how far along and the time left too. */
export function progressLine(p: Progress, totalS?: number): string {
  const along = totalS ? ` of ${totalS} s (${Math.min(100, (p.elapsedS / totalS) * 100).toFixed(0)}%, about ${Math.max(0, totalS - p.elapsedS).toFixed(0)} s left)` : ' s';
  return `  running: ${p.elapsedS.toFixed(1)}${along}, ${si(p.ops)}ops, ${si(p.opsPerSec)}ops/s`;
}

function bytes(n: number): string {
  return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(2)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
}

export function formatRun(r: RunResult, opts: { report: boolean }): string {
  const b = r.boot;
  const ph = b.phases_ms;
  const lines = [
    `${r.mode} · ${r.workload} · ${r.config.cpu} · ${r.config.nic}`,
    `  boot        ${b.ms.toFixed(0)} ms to first operation, ${b.cache === 'hit' ? 'objects from the cache' : 'compiled now'} (load IR ${ph.load_ir.toFixed(0)}, specialize ${ph.specialize.toFixed(0)}, ` +
      `optimize ${ph.optimize.toFixed(0)}, codegen ${ph.codegen.toFixed(0)}, link ${ph.link.toFixed(0)}, kernel init ${ph.kernel_init.toFixed(1)} ms)`,
    `  code        ${b.functions_before} functions -> ${b.functions_after}, ${bytes(b.code_bytes)} of objects; compiled at boot ${b.functions_eager}, on first call ${b.functions_lazy}, never ${b.functions_never}`,
    `  throughput  ${si(r.ops_per_sec)}ops/s (${r.ops} ops in ${r.seconds.toFixed(2)} s), ${r.cpu_ns_per_op.toFixed(0)} ns CPU per op, idle ${(r.idle_fraction * 100).toFixed(1)}%`,
    `  latency     p50 ${r.latency_us.p50.toFixed(1)} us, p99 ${r.latency_us.p99.toFixed(1)} us, p99.9 ${r.latency_us.p999.toFixed(1)} us, max ${r.latency_us.max.toFixed(1)} us`,
  ];
  if (b.tiers) {
    lines.push(`  tiers       ${b.tiers.hot} optimized, ${b.tiers.fast} fast, ${b.tiers.lazy} left for their first call: ${b.tiers.why}`);
  }
  if (b.lazy && b.lazy.units_built) {
    lines.push(
      `  first calls ${b.lazy.first_calls_waited} waited for ${b.lazy.units_built} source files compiled (kernel thread waited ${b.lazy.wait_ms.toFixed(0)} ms in all, ` +
        `${b.lazy.wait_max_ms.toFixed(0)} ms at most; builds ${b.lazy.build_max_ms.toFixed(0)} ms at most)`,
    );
  }
  if (r.indirect_calls_per_op !== null && r.sysctl_loads_per_op !== null) {
    lines.push(`  per op      ${r.indirect_calls_per_op.toFixed(2)} indirect calls, ${r.sysctl_loads_per_op.toFixed(2)} sysctl loads (counting build)`);
  }
  lines.push(`  checksum    ${r.checksum}`);
  const pr = r.profile;
  if (pr) {
    const throttled = pr.throttled.length ? `, throttled to ${pr.throttled.at(-1)!.to_hz} Hz (cost ${(pr.throttled.at(-1)!.share * 100).toFixed(1)}% of the kernel thread)` : '';
    lines.push(
      `  sampling    ${pr.samples} samples at ${pr.achieved_hz.toFixed(0)} Hz (asked ${pr.requested_hz}), ${pr.idle_skipped} idle ticks skipped, ${pr.dropped} dropped${throttled}; ` +
        `${(pr.cost_share * 100).toFixed(2)}% of the kernel thread's CPU`,
    );
    if (pr.error) lines.push(`  sampling    ${pr.error}`);
    lines.push(`  hot         ${pr.top.slice(0, 6).map((t) => `${t.function} ${t.self_pct.toFixed(1)}%`).join(', ')} (self)`);
    const path = pr.hot_paths[0];
    if (path) lines.push(`  hot path    ${path.chain.join(' > ')} ${path.pct.toFixed(1)}%`);
  }
  if (r.jitdump) {
    const j = r.jitdump;
    lines.push(`  jitdump     ${j.path}: ${j.records} functions named${j.error ? `; stopped: ${j.error}` : ''} (perf record -k mono ..., then perf inject --jit)`);
  }
  const ps = r.profile_store;
  if (ps) {
    lines.push(`  profile db  ${ps.path}: ${ps.reused_boots} earlier boot(s) reused, ${ps.functions_matched} functions matched, ${ps.functions_stale} stale, ${ps.samples_loaded} samples`);
  }
  const rj = r.rejit;
  if (rj.tier) {
    const t = rj.tier;
    const peak = rj.peak_ops_per_sec ? `peak ${Math.round(rj.peak_ops_per_sec)} ops/s` : 'no peak';
    const t95 = rj.time_to_95pct_peak_s === null || rj.time_to_95pct_peak_s === undefined ? 'never steady at 95% of it' : `95% of it from ${rj.time_to_95pct_peak_s.toFixed(1)} s`;
    lines.push(
      `  pgo         ${t.live ? `tier live: ${t.functions} functions, ${Object.keys(t.folded).length} sysctls folded, ${t.speedup !== null ? `${(t.speedup * 100).toFixed(1)}% faster when checked` : ''}` : `no tier${t.failures ? ` (${t.failures} not faster)` : ''}`}; ` +
        `${rj.versions_kept} versions kept, ${rj.versions_rolled_back} rolled back, ${rj.windows} windows, ${Math.round(rj.compile_ms_total ?? 0)} ms compiling; ${peak}, ${t95}`,
    );
    for (const e of (rj.timeline ?? []).filter((x) => x.event)) lines.push(`    ${e.t_s.toFixed(1).padStart(6)} s  ${e.event}`);
  }
  const sc = r.scheduler;
  if (sc && (sc.jit_cpu_ms > 0 || sc.budget_bytes_max !== null)) {
    const mib = (n: number | null) => (n === null ? '-' : `${(n / 2 ** 20).toFixed(1)} MiB`);
    lines.push(
      `  JIT         ${Math.round(sc.jit_cpu_ms)} ms CPU, ${sc.jobs_done} compile jobs (${sc.jobs_dropped} cancelled), ${sc.server_restarts} server restarts` +
        (sc.budget_bytes_max !== null
          ? `; memory granted ${mib(sc.budget_bytes_max)}, at most ${mib(sc.budget_used_bytes_max)} used, ${sc.revocations} revocation(s)${sc.eviction_ms_max !== null ? `, back under in ${sc.eviction_ms_max.toFixed(1)} ms at most` : ''}`
          : ''),
    );
  }
  for (const pt of r.rejit.patches) {
    lines.push(`  patch       ${pt.fn} from ${pt.file} at ${Number(pt.at_s.toFixed(2))} s: ${pt.functions.length} function(s) re-JITted (${pt.functions.join(', ')}), compiled in ${pt.compile_ms.toFixed(0)} ms, live in ${pt.apply_ms.toFixed(2)} ms`);
  }
  if (opts.report) {
    const rep = r.report;
    lines.push('  boot report:');
    lines.push(`    target ${rep.target.cpu}, ${rep.units} compilation unit(s), promoted ${rep.promoted.functions} functions and ${rep.promoted.globals} globals to hidden symbols`);
    for (const f of rep.folded) lines.push(`    folded ${f.name} = ${f.value} (${f.loads} loads)`);
    const byReason = new Map<string, string[]>();
    for (const x of rep.removed) byReason.set(x.reason, [...(byReason.get(x.reason) ?? []), x.name]);
    for (const [reason, names] of byReason) {
      const shown = names.slice(0, 8).join(', ') + (names.length > 8 ? `, ... (${names.length - 8} more)` : '');
      lines.push(`    removed ${names.length}: ${reason}: ${shown}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/* ---- a serving instance (src/control) --------------------------------------------- */

export interface PsRow {
  pid: number;
  image: string | null;
  workload: string | null;
  mode: string | null;
  state: string;
  uptime_s: number | null;
  ops_per_sec: number | null;
  socket: string;
}

function duration(s: number): string {
  if (s < 120) return `${s.toFixed(0)} s`;
  if (s < 7200) return `${(s / 60).toFixed(0)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

const orDash = (x: string | null) => x ?? '-';

export function formatPs(rows: readonly PsRow[]): string {
  if (rows.length === 0) return 'no kjit instance is running\n';
  const lines = [`${'PID'.padStart(8)}  ${'UPTIME'.padStart(7)}  ${'OPS/S'.padStart(9)}  ${'MODE'.padEnd(6)} ${'WORKLOAD'.padEnd(9)} ${'STATE'.padEnd(9)} IMAGE`];
  for (const r of rows) {
    lines.push(
      `${String(r.pid).padStart(8)}  ${(r.uptime_s === null ? '-' : duration(r.uptime_s)).padStart(7)}  ${(r.ops_per_sec === null ? '-' : si(r.ops_per_sec)).padStart(9)}  ` +
        `${orDash(r.mode).padEnd(6)} ${orDash(r.workload).padEnd(9)} ${r.state.padEnd(9)} ${orDash(r.image)}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

const pct = (x: number | null) => (x === null ? '-' : `${(x * 100).toFixed(1)}%`);

export function formatStatus(s: StatusReport): string {
  const t = s.throughput;
  const m = s.memory;
  const lines = [
    `kjit instance ${s.pid} · ${s.mode} · ${s.workload ?? '-'} · ${s.state} · up ${duration(s.uptime_s)}${s.restarts ? ` · ${s.restarts} restart(s)` : ''}`,
    `  throughput  ${t.ops_per_sec === null ? '-' : `${si(t.ops_per_sec)}ops/s over the last ${t.interval_s!.toFixed(1)} s`}, ` +
      `${t.ops_per_sec_since_start === null ? '-' : `${si(t.ops_per_sec_since_start)}ops/s`} since start (${s.ops} ops, checksum ${s.checksum ?? '-'})`,
    `  idle        ${pct(s.idle_share.last_interval)} over the last interval, ${pct(s.idle_share.since_start)} since start`,
    `  re-JIT      ${s.rejit_mode}${s.patchable ? '' : ' (no patchable entries)'}; ${s.versions.installs} installs, ${s.versions.reverts} reverts, ` +
      `${s.versions.live} versions live, ${s.versions.waiting_grace} waiting for a grace period`,
  ];
  for (const p of s.patches) lines.push(`  patch       ${p.fn} from ${p.file} at ${p.at_s.toFixed(1)} s: ${p.functions.length} function(s) (${p.functions.join(', ')})`);
  lines.push(`  hot         ${s.hot_functions.available ? s.hot_functions.functions.map((f) => `${f.fn} ${pct(f.share)}`).join(', ') : `- (${s.hot_functions.reason})`}`);
  lines.push(
    `  memory      arena ${m.arena_bytes === null ? '-' : bytes(m.arena_bytes)}, code ${m.code_region ? `${bytes(m.code_region.bytes_in_use)} in use (peak ${bytes(m.code_region.peak_bytes)})` : '-'}, ` +
      `RSS ${bytes(m.rss_bytes)}; grant: ${m.grant ? m.grant_note : `- (${m.grant_note})`}`,
  );
  return `${lines.join('\n')}\n`;
}

const sysctlLine = (r: SysctlReport) =>
  `${r.name} = ${r.value}  [${r.min}, ${r.max}]${r.read_only ? ' read-only' : r.folded ? ' folded at boot' : r.boot_fixed ? ' fixed at boot' : ''}`;

export function formatSysctl(result: unknown): string {
  const r = result as { sysctls?: SysctlReport[] } & Partial<SysctlReport> & { previous?: string };
  if (r.sysctls) return `${r.sysctls.map((x) => `${sysctlLine(x)}  ${x.description}`).join('\n')}\n`;
  const one = r as SysctlReport & { previous?: string };
  return `${sysctlLine(one)}${one.previous !== undefined ? ` (was ${one.previous})` : ''}\n`;
}

export function formatPatch(result: unknown): string {
  const r = result as { dry_run: boolean; reverted?: PatchReport; functions?: string[]; fn?: string; file?: string } & Partial<PatchReport>;
  if (r.reverted) {
    const p = r.reverted;
    return `${r.dry_run ? 'dry run: would revert' : 'reverted'} the patch of ${p.fn} from ${p.file}: ${p.functions.length} function(s) (${p.functions.join(', ')})\n`;
  }
  const fns = r.functions ?? [];
  if (r.dry_run) return `dry run: a patch of ${r.fn} from ${r.file} would re-JIT ${fns.length} function(s): ${fns.join(', ')}; nothing installed\n`;
  return `patched ${r.fn} from ${r.file}: ${fns.length} function(s) re-JITted (${fns.join(', ')}), compiled in ${r.compile_ms!.toFixed(0)} ms, live in ${r.apply_ms!.toFixed(2)} ms\n`;
}

export function formatMode(result: unknown): string {
  const r = result as { rejit_mode: string; patchable: boolean; previous?: string; reverted?: PatchReport[] };
  const change = r.previous !== undefined ? ` (was ${r.previous})` : '';
  const reverted = r.reverted?.length ? `; reverted the patches of ${r.reverted.map((p) => p.fn).join(', ')}` : '';
  return `re-JIT ${r.rejit_mode}${change}${r.patchable ? '' : '; this kernel has no patchable entries'}${reverted}\n`;
}
