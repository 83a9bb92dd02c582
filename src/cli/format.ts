/**
 * @fileoverview Human-readable output of `kjit run` and `kjit demo`.
 */
import type { Progress, RunResult } from '../kernel/run.js';

export function si(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return n.toFixed(0);
}

export function progressLine(p: Progress): string {
  return `  running: ${p.elapsedS.toFixed(1)} s, ${si(p.ops)}ops, ${si(p.opsPerSec)}ops/s`;
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
    `  code        ${b.functions_before} functions -> ${b.functions_after}, ${bytes(b.code_bytes)} of objects`,
    `  throughput  ${si(r.ops_per_sec)}ops/s (${r.ops} ops in ${r.seconds.toFixed(2)} s), ${r.cpu_ns_per_op.toFixed(0)} ns CPU per op, idle ${(r.idle_fraction * 100).toFixed(1)}%`,
    `  latency     p50 ${r.latency_us.p50.toFixed(1)} us, p99 ${r.latency_us.p99.toFixed(1)} us, p99.9 ${r.latency_us.p999.toFixed(1)} us, max ${r.latency_us.max.toFixed(1)} us`,
  ];
  if (r.indirect_calls_per_op !== null && r.sysctl_loads_per_op !== null) {
    lines.push(`  per op      ${r.indirect_calls_per_op.toFixed(2)} indirect calls, ${r.sysctl_loads_per_op.toFixed(2)} sysctl loads (counting build)`);
  }
  lines.push(`  checksum    ${r.checksum}`);
  for (const pt of r.rejit.patches) {
    lines.push(`  patch       ${pt.fn} from ${pt.file} at ${pt.at_s} s: ${pt.functions.length} function(s) re-JITted (${pt.functions.join(', ')}), compiled in ${pt.compile_ms.toFixed(0)} ms, live in ${pt.apply_ms.toFixed(2)} ms`);
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
