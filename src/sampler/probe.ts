/**
 * @fileoverview Live probes (`kjit probe FUNCTION`): a version of the
 * function that counts its calls and times each one (from its entry to each
 * of its returns, on CLOCK_MONOTONIC: time spent blocked inside it counts)
 * is installed for a while, then removed (src/rejit/temporary.ts), and its
 * histogram reported.  Like a kprobe plus kretprobe, or a bpftrace
 * one-liner; the kernel computes the same results with or without it.
 */
import { bucketBounds, latencyFromHistogram } from '../kernel/run.js';
import type { KernelInstance } from '../kernel/instance.js';
import { KernelState } from '../native/control-block.js';
import type { Installer } from '../rejit/installer.js';
import { withTemporaryVersion } from '../rejit/temporary.js';
import { PROBE_LAYOUT } from '../rejit/unit.js';

export interface ProbeResult {
  function: string;
  seconds: number;
  calls: number;
  calls_per_sec: number;
  /** Microseconds. */
  latency_us: { mean: number; p50: number; p90: number; p99: number; max: number };
  /** Non-empty histogram buckets: [lo_ns, hi_ns) and calls. */
  histogram: { lo_ns: number; hi_ns: number; count: number }[];
  compile_ms: number;
  install_ms: number;
  remove_ms: number;
  /** Functions boot inlined this one into: their calls do not pass through its entry and are not counted. */
  inlined_into?: string[];
}

/** The probe's data (calls, sum, max, histogram) as a ProbeResult (pure). */
export function decodeProbe(words: BigUint64Array, fn: string, seconds: number): Omit<ProbeResult, 'compile_ms' | 'install_ms' | 'remove_ms'> {
  const head = PROBE_LAYOUT.probeHeadWords;
  const calls = Number(words[0]);
  const hist = words.subarray(head, head + PROBE_LAYOUT.latBuckets);
  const summary = latencyFromHistogram(hist, words[1]!, words[2]!);
  /* p90 is not in the run's summary: the same interpolation at 0.9 */
  const p90 = percentile(hist, 0.9, Number(words[2]));
  const histogram: ProbeResult['histogram'] = [];
  hist.forEach((c, b) => {
    if (c === 0n) return;
    const [lo, hi] = bucketBounds(b);
    histogram.push({ lo_ns: lo, hi_ns: hi, count: Number(c) });
  });
  return {
    function: fn,
    seconds,
    calls,
    calls_per_sec: seconds > 0 ? calls / seconds : 0,
    latency_us: { mean: summary.mean, p50: summary.p50, p90: Math.round(p90) / 1000, p99: summary.p99, max: summary.max },
    histogram,
  };
}

function percentile(hist: BigUint64Array, p: number, maxNs: number): number {
  const total = hist.reduce((s, c) => s + Number(c), 0);
  if (total === 0) return 0;
  const target = p * total;
  let seen = 0;
  for (let b = 0; b < hist.length; b++) {
    const c = Number(hist[b]);
    if (c === 0) continue;
    if (seen + c >= target) {
      const [lo, hi] = bucketBounds(b);
      return Math.min(lo + ((target - seen) / c) * (hi - lo), maxNs);
    }
    seen += c;
  }
  return maxNs;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Probe `fn` of a running kernel for `seconds` (stopping early if `signal` aborts or the kernel stops). */
export async function probeFunction(instance: KernelInstance, installer: Installer, fn: string, seconds: number, signal?: AbortSignal): Promise<ProbeResult> {
  const r = await withTemporaryVersion(instance, installer, fn, 'instrumented', 'probe', async () => {
    const t0 = performance.now();
    const until = t0 + seconds * 1000;
    const running = () => !instance.isDisposed && instance.cb.getNumber('state') <= KernelState.RUNNING;
    while (performance.now() < until && !signal?.aborted && running()) await sleep(Math.min(20, until - performance.now()));
    return (performance.now() - t0) / 1000;
  });
  return { ...decodeProbe(r.words, fn, r.live), compile_ms: r.compile_ms, install_ms: r.install_ms, remove_ms: r.remove_ms };
}

/** The histogram as text lines (bpftrace's hist() style). */
export function formatProbe(r: ProbeResult): string {
  const lines = [
    `${r.function}: ${r.calls} calls in ${r.seconds.toFixed(1)} s (${Math.round(r.calls_per_sec)}/s); latency mean ${r.latency_us.mean} us, p50 ${r.latency_us.p50}, p90 ${r.latency_us.p90}, p99 ${r.latency_us.p99}, max ${r.latency_us.max}`,
  ];
  /* powers of two, as bpftrace's hist() prints them */
  const rows = new Map<number, number>();
  for (const h of r.histogram) {
    const lo = h.lo_ns < 1 ? 0 : 2 ** Math.floor(Math.log2(h.lo_ns));
    rows.set(lo, (rows.get(lo) ?? 0) + h.count);
  }
  const max = Math.max(1, ...rows.values());
  const ns = (x: number) => (x >= 1e6 ? `${(x / 1e6).toFixed(1)}ms` : x >= 1e3 ? `${(x / 1e3).toFixed(1)}us` : `${x}ns`);
  for (const [lo, count] of [...rows].sort((a, b) => a[0] - b[0])) {
    const bar = '@'.repeat(Math.max(1, Math.round((count / max) * 40)));
    lines.push(`  [${ns(lo).padStart(7)}, ${ns(lo === 0 ? 32 : lo * 2).padStart(7)}) ${String(count).padStart(9)} |${bar}`);
  }
  const inl = r.inlined_into ?? [];
  if (inl.length) {
    const names = inl.slice(0, 5).join(', ') + (inl.length > 5 ? `, … (${inl.length})` : '');
    lines.push(`note: boot inlined ${r.function} into ${names}; calls from their code do not pass through its entry and are not counted (probe them instead)`);
  }
  lines.push(`probe installed in ${r.install_ms.toFixed(2)} ms, removed in ${r.remove_ms.toFixed(2)} ms (compiled in ${r.compile_ms.toFixed(0)} ms)`);
  return lines.join('\n');
}
