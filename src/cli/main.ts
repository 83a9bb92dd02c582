/**
 * @fileoverview The `kjit` command.  Parses arguments, runs one command, and
 * turns every failure into one line on stderr and an exit code: a KjitError
 * prints its problem and fix; anything else is reported as an internal error
 * (the stack only with KJIT_DEBUG=1).
 */
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { ExitCode, KjitError } from '../errors.js';
import { ROOT } from '../paths.js';
import { type ImageSpec, REFERENCE } from '../kernel/image.js';
import type { NicModel } from '../kernel/machine.js';
import { MODES } from '../kernel/modes.js';
import { LAZY_POLICIES, type LazyPolicy } from '../kernel/tiers.js';
import { type BootRequest, type ExecuteRequest, processStartNs, runKernel, type RunResult, validateSampling } from '../kernel/run.js';
import { SAMPLER_PARAMS } from '../sampler/sampler.js';
import { defaultProfileDb } from '../store/params.js';
import { parsePatchSpec } from '../rejit/patch.js';
import { LLVMError } from '../native/llvm.js';
import { ask, findInstance, listInstances, PROBE_DEFAULT_SECONDS } from '../control/client.js';
import { MAX_PROBE_SECONDS, REJIT_MODES, type RejitMode, type RequestBody, SERVE_DEFAULTS } from '../control/protocol.js';
import { formatProbe, type ProbeResult } from '../sampler/probe.js';
import { loadPolicy, readTrace, replay } from '../pgo/policies.js';
import type { StatusReport } from '../control/service.js';
import { formatMode, formatPatch, formatPs, formatRun, formatStatus, formatSysctl, progressLine, type PsRow } from './format.js';

const HELP = `kjit: a kernel shipped as LLVM IR, JIT-compiled at boot for this machine

usage:
  kjit run   [--image FILE --init SYM --entry SYM] [--workload NAME] [--mode MODE]
             [--seconds S | --ops N] [--rate OPS_PER_S] [--concurrency N] [--seed N]
             [--nic virtq|ring] [--sysctl NAME=VALUE]... [--patch F=FILE[@S]]... [--no-count] [--no-cache] [--report] [--log] [--json]
             [--sample-hz H] [--sample-clock thread|timer] [--profile-out FILE.folded|FILE.pb.gz] [--perf-map] [--jitdump]
             [--profile-db PATH | --no-profile-db] [--lazy off|profile|all (--mode tiered)]
  kjit serve [run flags without --patch] [--safe | --dry-run] [--flush-to FILE] [--flush-every S]
  kjit ps     [--json]
  kjit status [PID] [--json]
  kjit sysctl [PID] [NAME[=VALUE]] [--json]
  kjit patch  [PID] --function NAME --ir FILE.ll|.bc [--json]
  kjit patch  [PID] --revert [NAME] [--json]
  kjit mode   [PID] [normal|safe|dry-run] [--json]
  kjit replay FILE [--policy NAME|PATH.js] [--json]   a policy's decisions on a recorded trace (--record-trace)
  kjit probe  [PID] FUNCTION [--seconds S] [--json]   count and time FUNCTION's calls (default 5 s), print the histogram
  kjit bench boot [--json] [--runs N] [--seconds S] [--workloads a,b] [--modes a,b] [--out FILE]
  kjit bench stress [--json] [--ops N] [--installs N] [--functions a,b] [--out FILE]
  kjit bench install [--json] [--runs N] [--seconds S] [--workload W] [--function F] [--install-gap-ms MS] [--out FILE]
  kjit bench control [--json] [--runs N] [--seconds S] [--workload W] [--out FILE]
  kjit bench pgo [--json] [--runs N] [--seconds S] [--workloads a,b] [--modes stock,boot,pgo-cold,pgo-warm,offline-pgo,...] [--out FILE]
                 [--image FILE --init SYM --entry SYM]   a foreign image instead of the reference kernel
  kjit bench bootscale [--json] [--runs N] [--seconds S] [--images kernel,tree-sitter] [--out FILE]
  kjit bench coop [--json] [--runs N] [--seconds S] [--workload W] [--cpu C] [--revocations N] [--out FILE]
  kjit bench policies [--json] [--runs N] [--seconds S] [--workloads a,b] [--policies a,b] [--out FILE]
  kjit bench instrument [--json] [--runs N] [--window-ms MS] [--workload W] [--functions a,b] [--out FILE]
  kjit bench sampler [--json] [--runs N] [--seconds S] [--workload W] [--clock thread|timer] [--out FILE]
  kjit bench store [--json] [--runs N] [--out FILE]
  kjit profile ls|show|merge|stale|export|import [--db PATH] ...   the profile store (see below)
  kjit report [--db PATH] [--boot ID]... [--out FILE.html] [--bench FILE.json]... [--save-bench]   one HTML file:
             timeline with events, flame graphs, compile log, why per function, benchmarks (works offline)
  kjit explain FUNCTION [--db PATH] [--boot ID] [--json]   why FUNCTION was or was not optimized
  kjit top   [PID] [--interval S] [--count N]   live view of a running instance (q quits)
  kjit demo  boot the reference kernel in stock and boot modes and compare them
  kjit help [COMMAND], kjit COMMAND --help   every option of COMMAND with its default

run:
  --image FILE      LLVM IR (.bc or .ll) to boot instead of the reference kernel;
                    --init SYM runs once, --entry SYM (uint64 -> uint64) runs per operation
  --workload NAME   web, kv, fs, firewall, phases (reference kernel; default web)
  --mode MODE       ${Object.keys(MODES).join(', ')} (default boot)
  --seconds S       run for S seconds (default 5) ... or
  --ops N           exactly N operations (same N => same checksum in every mode)
  --rate R          open loop at R operations/s (latency from scheduled arrival); default closed loop
  --concurrency N   closed loop: operations in flight (default 4)
  --sysctl N=V      boot parameter (repeatable), e.g. --sysctl kernel.audit=1
  --patch F=FILE[@S] replace function F with FILE (.ll, .bc or .c), S seconds into the run (repeatable;
                    patches due at the same S go live as one transition); every caller boot
                    inlined F into gets a patched version too
  --nic MODEL       the machine's NIC: virtq (virtio-net, default) or ring (e1000)
  --policy P        pgo mode: the re-JIT policy: default (benefit over compile cost), threshold (counter
                    thresholds, like ORC's re-optimization or HotSpot's tiers), conservative (latency-
                    sensitive servers), or PATH.js (an ES module exporting (input, params) => decisions;
                    examples/policies/); one that throws or answers nonsense is reported, the default takes over
  --record-trace F  pgo mode: write what the policy saw and decided each round (JSON lines) for kjit replay
  --safe, --dry-run pgo mode (and serve): re-JIT off / decide and log without installing anything
  --cpus LIST       the CPUs the compile server may run on (e.g. 1 or 0,2-3; default any)
  --batch           the compile server at normal priority, and the pgo engine waits for it to drain
                    before each regression check, so no compile overlaps a measured interval
  --no-count        skip the counting build (indirect calls and sysctl loads per operation)
  --no-cache        compile even if the compiled-object cache has this boot (KJIT_CACHE=0 too)
  --report          print the boot report (what specialization changed and removed)
  --log             print the kernel log
  --json            one JSON object on stdout
  --sample-hz H     sample the kernel H times a second (default ${SAMPLER_PARAMS.defaultHz}; 0 = off): flat profile,
                    hot paths and the achieved rate in the summary and in the JSON's \`profile\`
  --sample-clock C  what makes the ticks: thread (default: a clock thread signals the kernel thread)
                    or timer (timer_create on the kernel thread: costlier here, see the README)
  --profile-out F   write the sampled stacks: F.folded (collapsed, for flamegraph.pl/speedscope) or F.pb.gz (pprof)
  --perf-map        write /tmp/perf-PID.map (code addresses -> names) for perf and similar tools
  --jitdump         write jit-PID.dump (perf's jitdump: every function of the boot code and of each version,
                    with its code, as it is linked) under $JITDUMPDIR/.debug/jit/ ($HOME without JITDUMPDIR);
                    record with perf record -k mono, then perf inject --jit names the kernel's code
  --profile-db PATH the profile store (SQLite): at boot, load the merged profile of earlier boots of this
                    image family, machine class (LLVM's CPU name) and workload; flush what the run samples
                    every 10 s and at its end. Default: $KJIT_PROFILE_DB ('off' turns it off), else
                    $XDG_DATA_HOME/kjit/profiles.db, else ~/.local/share/kjit/profiles.db (kjit run and serve only;
                    tests and benchmarks never use it). The JSON gets profile_store: { path, reused_boots,
                    functions_matched, functions_stale, samples_loaded }
  --no-profile-db   no profile store

profile store (--db PATH: default as for --profile-db; all but import only read it, also while kernels write):
  kjit profile ls     [--image NAME] [--workload W] [--json]     boots stored: image, machine class, samples, counts
  kjit profile show   BOOT [--top N] [--json]                    a boot: top functions, edges, hot paths, counts, compile log
  kjit profile merge  [--image PATH --init SYM --entry SYM] [--workload W] [--machine-class C] [--boots 3,4] [--boot ID]
                      [--decay D] [--top N] [--force] [--json]
                      the merged profile: the newest boot weighs 1, each older one D times the next (default 0.75);
                      boots of another image family or machine class are refused unless --force
  kjit profile stale  --image PATH [--init SYM --entry SYM] [--workload W] [--json]
                      which stored functions match the image's IR: { functions_total, functions_matched,
                      functions_matched_by_shape, samples_matched_pct } (by shape: same IR under another name)
  kjit profile export --format proftext [--boot ID | merge flags] [--out FILE]
                      exact counts as an LLVM text profile (llvm-profdata-19 merge reads it; kjit's per-site
                      counters, not clang's: see the README)
  kjit profile import FILE [--image PATH] [--workload W] [--machine-class C] [--json]   a text profile back, as a boot of its own

serve (also kjit run --seconds 0): the kernel runs until SIGINT/SIGTERM (or --ops N / --seconds S),
  with a control socket for its owner: $XDG_RUNTIME_DIR/kjit/PID.sock, or /run/kjit/PID.sock as root
  --safe            re-JIT off: boot code only (no patchable entries); patch requests are refused
  --dry-run         patch requests are checked and logged, nothing is installed
  --flush-to FILE   journal of status snapshots and channel events (default build/state/serve.jsonl)
  --flush-every S   seconds between snapshots (default 10); a final one when it stops
  no counting build, no --patch (patch it through the channel)

control commands (PID may be omitted when one instance runs):
  ps                the running instances: pid, image, workload, uptime, throughput
  status            throughput, idle share, installed versions, live patches, re-JIT mode, memory
  sysctl            list the sysctls, read NAME, or write NAME=VALUE (run-time sysctls only:
                    boot-fixed ones are folded into the code or fixed at boot; reboot with --sysctl)
  patch             replace a function with IR (checked first; every function boot inlined it into
                    is re-JITted too); --revert undoes the latest live patch, or NAME's
  mode              show or set re-JIT: normal, safe (reverts every live patch), dry-run

exit codes: 0 ok, 1 failure, 2 bad input, 3 the kernel faulted or panicked`;

function bad(problem: string, fix: string): KjitError {
  return new KjitError(problem, fix, ExitCode.BAD_INPUT);
}

type Options = NonNullable<NonNullable<Parameters<typeof parseArgs>[0]>['options']>;

function parse(argv: string[], options: Options) {
  /* `--flag -5`: a negative number is the flag's value (parseArgs would take it for a flag); it is checked like any other value */
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = argv[i + 1];
    if (a.startsWith('--') && options[a.slice(2)]?.type === 'string' && next !== undefined && /^-\d/.test(next)) {
      args.push(`${a}=${next}`);
      i++;
    } else args.push(a);
  }
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw bad((e as Error).message.replace(/\. To specify.*$/s, ''), 'see `kjit help`');
  }
}

function num(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n)) throw bad(`${flag} '${value}' is not a number`, `pass a number, e.g. ${flag} 5`);
  return n;
}

function positive(value: string | undefined, flag: string, fallback: number): number {
  const n = num(value, flag, fallback);
  if (!(n > 0)) throw bad(`${flag} must be positive (got ${value})`, `pass a number of seconds, e.g. ${flag} 10`);
  return n;
}

function bigint(value: string | undefined, flag: string): bigint | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw bad(`${flag} '${value}' is not a non-negative integer`, `pass an integer, e.g. ${flag} 100000`);
  return BigInt(value);
}

/** Flags of a kernel that serves (kjit serve, kjit run --seconds 0). */
const SERVE_FLAGS: Options = {
  safe: { type: 'boolean', default: false },
  'dry-run': { type: 'boolean', default: false },
  'flush-to': { type: 'string' },
  'flush-every': { type: 'string' },
};

async function cmdRun(argv: string[], clockStartNs: bigint, command: 'run' | 'serve'): Promise<number> {
  const { values, positionals } = parse(argv, {
    ...SERVE_FLAGS,
    image: { type: 'string' },
    init: { type: 'string' },
    entry: { type: 'string' },
    workload: { type: 'string' },
    mode: { type: 'string', default: 'boot' },
    seconds: { type: 'string' },
    ops: { type: 'string' },
    rate: { type: 'string' },
    concurrency: { type: 'string' },
    seed: { type: 'string' },
    nic: { type: 'string', default: 'virtq' },
    sysctl: { type: 'string', multiple: true },
    patch: { type: 'string', multiple: true },
    'no-count': { type: 'boolean', default: false },
    'no-cache': { type: 'boolean', default: false },
    report: { type: 'boolean', default: false },
    log: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    'sample-hz': { type: 'string' },
    'sample-clock': { type: 'string', default: 'thread' },
    'profile-out': { type: 'string' },
    'perf-map': { type: 'boolean', default: false },
    'profile-db': { type: 'string' },
    'no-profile-db': { type: 'boolean', default: false },
    jitdump: { type: 'boolean', default: false },
    policy: { type: 'string' },
    'record-trace': { type: 'string' },
    cpus: { type: 'string' },
    batch: { type: 'boolean', default: false },
    lazy: { type: 'string' },
  });
  if (positionals.length) throw bad(`unexpected argument '${positionals[0]}'`, 'see `kjit help`');
  const v = values as Record<string, string | boolean | string[] | undefined>;
  const cpus = v.cpus === undefined ? null : parseCpus(v.cpus as string);
  const sampleHz = num(v['sample-hz'] as string | undefined, '--sample-hz', SAMPLER_PARAMS.defaultHz);
  const profileOut = v['profile-out'] as string | undefined;
  if (v['profile-db'] !== undefined && v['no-profile-db'] === true) throw bad('--profile-db and --no-profile-db both given', 'pass one of them');
  const profileDb = v['no-profile-db'] === true ? null : ((v['profile-db'] as string | undefined) ?? defaultProfileDb());
  validateSampling({ sampleHz, ...(profileOut !== undefined ? { profileOut } : {}) }); /* before anything boots */
  const sampleClock = v['sample-clock'] as string;
  if (sampleClock !== 'thread' && sampleClock !== 'timer') {
    throw bad(`unknown --sample-clock '${sampleClock}'`, 'use thread (a clock thread signals the kernel thread: cheaper) or timer (timer_create on the kernel thread)');
  }
  let image: ImageSpec = REFERENCE;
  if (v.image !== undefined) {
    if (!v.entry) throw bad('--image needs --entry SYMBOL', 'name the function the runtime calls per operation');
    image = { path: v.image as string, init: (v.init as string | undefined) ?? 'init', entry: v.entry as string };
  } else if (v.init !== undefined || v.entry !== undefined) {
    throw bad('--init and --entry apply only to --image', 'pass --image FILE too, or drop them');
  }
  if (v.seconds !== undefined && v.ops !== undefined) throw bad('--seconds and --ops both given', 'pass one of them');
  const ops = bigint(v.ops as string | undefined, '--ops');
  const seconds = ops === undefined ? num(v.seconds as string | undefined, '--seconds', command === 'serve' ? 0 : 5) : undefined;
  const serving = command === 'serve' || seconds === 0;
  const patches = ((v.patch as string[] | undefined) ?? []).map(parsePatchSpec);
  const flushEveryS = positive(v['flush-every'] as string | undefined, '--flush-every', SERVE_DEFAULTS.flushEveryS);
  const online = MODES[v.mode as string]?.online === true;
  if (serving) {
    if (patches.length) throw bad('--patch applies to timed runs', 'patch a serving kernel with kjit patch --function F --ir FILE');
    if (v.safe && v['dry-run']) throw bad('--safe and --dry-run both given', 'pass one: --safe installs nothing, --dry-run checks and logs');
  } else {
    /* the pgo mode re-JITs by itself: --safe and --dry-run apply to it in timed runs too */
    const flag = Object.keys(SERVE_FLAGS).find((f) => v[f] !== undefined && v[f] !== false && !(online && (f === 'safe' || f === 'dry-run')));
    if (flag) throw bad(`--${flag} applies to a kernel that serves`, online ? 'use kjit serve (or kjit run --seconds 0)' : 'use kjit serve (or kjit run --seconds 0), or --mode pgo');
    if (v.safe && v['dry-run']) throw bad('--safe and --dry-run both given', 'pass one: --safe installs nothing, --dry-run checks and logs');
  }
  const json = v.json === true;
  const tty = process.stderr.isTTY && !json;
  /* SIGINT/SIGTERM: stop the kernel, join it, and report what ran */
  const interrupt = new AbortController();
  const onSignal = () => interrupt.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const workload = (v.workload as string | undefined) ?? (image === REFERENCE ? 'web' : undefined);
  /* re-JIT units link to promoted symbols: only modes that promote can be patched */
  const patchable = patches.length > 0 || (serving && v.safe !== true && MODES[v.mode as string]?.promote === true);
  if (!online && (v.policy !== undefined || v['record-trace'] !== undefined)) {
    throw bad(`--${v.policy !== undefined ? 'policy' : 'record-trace'} applies to the pgo mode`, 'add --mode pgo');
  }
  const policy = v.policy !== undefined ? await loadPolicy(v.policy as string) : undefined;
  const lazy = v.lazy as string | undefined;
  if (lazy !== undefined) {
    if (!MODES[v.mode as string]?.bootTiers) throw bad('--lazy applies to a tiered boot', 'add --mode tiered');
    if (!(LAZY_POLICIES as readonly string[]).includes(lazy)) throw bad(`unknown --lazy '${lazy}'`, `use one of: ${LAZY_POLICIES.join(', ')}`);
  }
  const request: BootRequest & ExecuteRequest = {
    ...(lazy !== undefined ? { lazy: lazy as LazyPolicy } : {}),
    signal: interrupt.signal,
    ...(patches.length ? { patches } : {}),
    ...(patchable ? { patchable } : {}),
    image,
    mode: v.mode as string,
    nic: v.nic as NicModel,
    sysctls: (v.sysctl as string[] | undefined) ?? [],
    ...(workload !== undefined ? { workload } : {}),
    ...(seconds !== undefined ? { seconds } : {}),
    ...(ops !== undefined ? { ops } : {}),
    rate: num(v.rate as string | undefined, '--rate', 0),
    concurrency: num(v.concurrency as string | undefined, '--concurrency', 4),
    seed: bigint(v.seed as string | undefined, '--seed') ?? 1n,
    /* a serving kernel runs no counting build: it would delay the stop */
    counting: !serving && v['no-count'] !== true,
    ...(v['no-cache'] === true ? { cache: false } : {}),
    clockStartNs,
    sampleHz,
    sampleClock,
    ...(profileOut !== undefined ? { profileOut } : {}),
    ...(v['perf-map'] === true ? { perfMap: true } : {}),
    ...(profileDb ? { profileDb } : {}),
    ...(v.jitdump === true ? { jitdump: true } : {}),
    ...(policy ? { policy } : {}),
    ...(v['record-trace'] !== undefined ? { recordTrace: resolve(v['record-trace'] as string) } : {}),
    ...(cpus !== null || v.batch === true ? { compileServer: { ...(cpus !== null ? { cpus } : {}), batch: v.batch === true } } : {}),
    ...(tty && !serving ? { onProgress: (p) => process.stderr.write(`\r${progressLine(p, seconds)}`) } : {}),
    ...(!serving ? { rejitMode: () => (v.safe ? 'safe' : v['dry-run'] ? 'dry-run' : 'normal') } : {}),
    ...(!serving && !json ? { pgoLog: (line: string) => process.stderr.write(`${tty ? '\r\x1b[K' : ''}${line}\n`) } : {}),
  };
  const result: RunResult = serving
    ? await (await import('../control/serve.js')).serve({
        run: request,
        rejitMode: v.safe ? 'safe' : v['dry-run'] ? 'dry-run' : 'normal',
        safe: v.safe === true,
        journal: (v['flush-to'] as string | undefined) ?? SERVE_DEFAULTS.journal,
        flushEveryS,
      })
    : await runKernel(request);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  if (tty && !serving) process.stderr.write('\r\x1b[K');
  if (interrupt.signal.aborted && !serving) process.stderr.write('kjit: interrupted: the kernel was stopped early; results cover the operations it completed\n');
  if (json) {
    const { log, report, ...rest } = result;
    const out = v.report ? { ...rest, report } : rest;
    process.stdout.write(`${JSON.stringify(v.log ? { ...out, log } : out, null, 2)}\n`);
  } else {
    process.stdout.write(formatRun(result, { report: v.report === true }));
    if (v.log) process.stdout.write(`\nkernel log:\n${result.log}`);
  }
  return ExitCode.OK;
}

/* ---- commands to a serving instance (src/control) ------------------------------ */

/** --cpus 0,2-3: the CPUs the compile server may run on. */
export function parseCpus(text: string): number[] {
  const out = new Set<number>();
  for (const part of text.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    const lo = m ? Number(m[1]) : NaN;
    const hi = m?.[2] !== undefined ? Number(m[2]) : lo;
    if (!m || hi < lo || hi > 1023) throw bad(`--cpus '${text}' is not a list of CPUs`, 'write CPU numbers and ranges, e.g. --cpus 1 or --cpus 0,2-3');
    for (let c = lo; c <= hi; c++) out.add(c);
  }
  return [...out].sort((a, b) => a - b);
}

/** A leading all-digits positional is the instance's pid; the rest are the command's own. */
function splitPid(positionals: string[]): { pid?: number; rest: string[] } {
  const [first, ...rest] = positionals;
  return first !== undefined && /^\d+$/.test(first) ? { pid: Number(first), rest } : { rest: positionals };
}

function print(result: unknown, json: boolean, human: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(result, null, 2)}\n` : human());
}

async function cmdPs(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { json: { type: 'boolean', default: false } });
  if (positionals.length) throw bad(`unexpected argument '${positionals[0]}'`, 'kjit ps takes no arguments');
  const rows: PsRow[] = [];
  for (const t of await listInstances()) {
    try {
      const s = (await ask(t, { cmd: 'status' })) as StatusReport;
      const ops = s.throughput.ops_per_sec ?? s.throughput.ops_per_sec_since_start;
      rows.push({ pid: t.pid, image: s.image, workload: s.workload, mode: s.mode, state: s.state, uptime_s: s.uptime_s, ops_per_sec: ops, socket: t.socket });
    } catch (e) {
      if (!(e instanceof KjitError)) throw e;
      rows.push({ pid: t.pid, image: null, workload: null, mode: null, state: `unreachable: ${e.problem}`, uptime_s: null, ops_per_sec: null, socket: t.socket });
    }
  }
  print({ instances: rows }, values.json === true, () => formatPs(rows));
  return ExitCode.OK;
}

async function cmdStatus(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { json: { type: 'boolean', default: false } });
  const { pid, rest } = splitPid(positionals);
  if (rest.length) throw bad(`unexpected argument '${rest[0]}'`, 'write kjit status [PID] [--json]');
  const s = (await ask(await findInstance(pid), { cmd: 'status' })) as StatusReport;
  print(s, values.json === true, () => formatStatus(s));
  return ExitCode.OK;
}

async function cmdSysctl(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { json: { type: 'boolean', default: false } });
  const { pid, rest } = splitPid(positionals);
  if (rest.length > 1) throw bad(`unexpected argument '${rest[1]}'`, 'write kjit sysctl [PID] [NAME[=VALUE]]');
  let body: RequestBody = { cmd: 'sysctl' };
  if (rest[0] !== undefined) {
    const m = /^([a-z0-9_.]+)(?:=(-?\d+))?$/.exec(rest[0]);
    if (!m) throw bad(`malformed sysctl '${rest[0]}'`, 'write NAME or NAME=INTEGER, e.g. kjit sysctl net.rx_budget=32');
    body = { cmd: 'sysctl', name: m[1]!, ...(m[2] !== undefined ? { value: m[2] } : {}) };
  }
  const r = await ask(await findInstance(pid), body);
  print(r, values.json === true, () => formatSysctl(r));
  return ExitCode.OK;
}

async function cmdPatch(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    function: { type: 'string' },
    ir: { type: 'string' },
    revert: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  });
  const { pid, rest } = splitPid(positionals);
  let body: RequestBody;
  if (values.revert) {
    if (values.ir !== undefined) throw bad('--revert and --ir both given', 'kjit patch --revert [NAME] undoes a patch; --ir applies one');
    if (rest.length > 1 || (rest.length && values.function !== undefined)) throw bad('--revert takes one function name', 'write kjit patch [PID] --revert [NAME]');
    const fn = rest[0] ?? (values.function as string | undefined);
    body = { cmd: 'revert', ...(fn !== undefined ? { function: fn } : {}) };
  } else {
    if (values.function === undefined || values.ir === undefined) {
      throw bad('kjit patch needs --function NAME and --ir FILE (or --revert)', 'e.g. kjit patch --function csum_fold --ir fix.ll');
    }
    if (rest.length) throw bad(`unexpected argument '${rest[0]}'`, 'write kjit patch [PID] --function NAME --ir FILE');
    /* the instance reads the file: it needs the path from where this command runs */
    body = { cmd: 'patch', function: values.function as string, ir: resolve(values.ir as string) };
  }
  const r = await ask(await findInstance(pid), body);
  print(r, values.json === true, () => formatPatch(r));
  return ExitCode.OK;
}

async function cmdMode(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { json: { type: 'boolean', default: false } });
  const { pid, rest } = splitPid(positionals);
  if (rest.length > 1 || (rest[0] !== undefined && !REJIT_MODES.includes(rest[0] as RejitMode))) {
    throw bad(`unexpected argument '${rest.at(-1)}'`, `write kjit mode [PID] [${REJIT_MODES.join('|')}]`);
  }
  const r = await ask(await findInstance(pid), { cmd: 'mode', ...(rest[0] !== undefined ? { set: rest[0] as RejitMode } : {}) });
  print(r, values.json === true, () => formatMode(r));
  return ExitCode.OK;
}

async function cmdReplay(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { policy: { type: 'string' }, json: { type: 'boolean', default: false } });
  if (positionals.length !== 1) throw bad('kjit replay needs one trace file', 'write kjit replay FILE [--policy NAME|PATH.js]');
  const trace = readTrace(resolve(positionals[0]!));
  const p = await loadPolicy((values.policy as string | undefined) ?? trace[0]?.policy);
  const r = replay(trace, p);
  print(r, values.json === true, () => {
    const lines = [`replayed ${r.rounds} rounds with policy ${r.policy}: ${Object.entries(r.counts).map(([k, n]) => `${n} ${k}`).join(', ') || 'no changes'}`];
    for (const d of r.decisions.filter((x) => x.decisions.length).slice(0, 40)) {
      lines.push(`  ${d.now_s.toFixed(2).padStart(7)} s  ${d.decisions.map((x) => `${x.kind} ${x.function} (${x.reason})`).join(', ')}`);
    }
    lines.push(r.differing ? `${r.differing} of ${r.rounds} rounds differ from the recorded decisions (recorded with ${trace[0]?.policy})` : 'every round matches the recorded decisions');
    return `${lines.join('\n')}\n`;
  });
  return ExitCode.OK;
}

async function cmdProbe(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { seconds: { type: 'string' }, json: { type: 'boolean', default: false } });
  const { pid, rest } = splitPid(positionals);
  if (rest.length !== 1) throw bad(rest.length ? `unexpected argument '${rest[1]}'` : 'kjit probe needs a function name', 'write kjit probe [PID] FUNCTION [--seconds S]');
  const seconds = values.seconds === undefined ? PROBE_DEFAULT_SECONDS : Number(values.seconds);
  if (!(seconds > 0 && seconds <= MAX_PROBE_SECONDS)) throw bad(`--seconds ${values.seconds} is out of range`, `pass a duration above 0 and at most ${MAX_PROBE_SECONDS}`);
  const r = await ask(await findInstance(pid), { cmd: 'probe', function: rest[0]!, seconds });
  print(r, values.json === true, () => `${formatProbe(r as ProbeResult)}\n`);
  return ExitCode.OK;
}

async function cmdBench(argv: string[]): Promise<number> {
  const [suite, ...rest] = argv;
  if (suite === 'install') return cmdBenchInstall(rest);
  if (suite === 'stress') return cmdBenchStress(rest);
  if (suite === 'control') return cmdBenchControl(rest);
  if (suite === 'sampler') return cmdBenchSampler(rest);
  if (suite === 'store') return cmdBenchStore(rest);
  if (suite === 'instrument') return cmdBenchInstrument(rest);
  if (suite === 'pgo') return cmdBenchPgo(rest);
  if (suite === 'coop') return cmdBenchCoop(rest);
  if (suite === 'policies') return cmdBenchPolicies(rest);
  if (suite === 'bootscale') return cmdBenchBootscale(rest);
  if (suite !== 'boot') {
    throw bad(`unknown benchmark suite '${suite ?? ''}'`, 'use one of: boot, pgo, bootscale, coop, policies, install, stress, control, sampler, instrument, store (kjit help lists their flags)');
  }
  const { benchBoot } = await import('../../bench/boot.js'); /* loaded only for benchmarks */
  return benchBoot(modesBenchArgs(rest, { runs: 5, seconds: 1 }));
}

/** The flags of the benchmarks that compare modes side by side (boot, pgo). */
function modesBenchArgs(argv: string[], defaults: { runs: number; seconds: number }) {
  const { values, positionals } = parse(argv, {
    json: { type: 'boolean', default: false },
    runs: { type: 'string' },
    seconds: { type: 'string' },
    workloads: { type: 'string' },
    modes: { type: 'string' },
    out: { type: 'string' },
  });
  if (positionals.length) throw bad(`unexpected argument '${positionals[0]}'`, 'see `kjit help`');
  const v = values as Record<string, string | boolean | undefined>;
  return {
    json: v.json === true,
    runs: num(v.runs as string | undefined, '--runs', defaults.runs),
    seconds: num(v.seconds as string | undefined, '--seconds', defaults.seconds),
    ...(v.workloads ? { workloads: (v.workloads as string).split(',') } : {}),
    ...(v.modes ? { modes: (v.modes as string).split(',') } : {}),
    ...(v.out ? { out: v.out as string } : {}),
  };
}

async function cmdBenchInstall(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    json: { type: 'boolean', default: false },
    runs: { type: 'string' },
    seconds: { type: 'string' },
    workload: { type: 'string', default: 'web' },
    function: { type: 'string', default: 'kmem_cache_alloc' },
    'install-gap-ms': { type: 'string' },
    out: { type: 'string' },
  });
  if (positionals.length) throw bad(`unexpected argument '${positionals[0]}'`, 'see `kjit help`');
  const v = values as Record<string, string | boolean | undefined>;
  const { benchInstall } = await import('../../bench/install.js');
  return benchInstall({
    json: v.json === true,
    runs: num(v.runs as string | undefined, '--runs', 5),
    seconds: num(v.seconds as string | undefined, '--seconds', 2),
    workload: v.workload as string,
    fn: v.function as string,
    installGapMs: num(v['install-gap-ms'] as string | undefined, '--install-gap-ms', 0),
    ...(v.out ? { out: v.out as string } : {}),
  });
}

async function cmdBenchStress(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    json: { type: 'boolean', default: false },
    ops: { type: 'string' },
    installs: { type: 'string' },
    functions: { type: 'string', default: 'kmem_cache_alloc,kmem_cache_free,sys_poll' },
    out: { type: 'string' },
  });
  if (positionals.length) throw bad(`unexpected argument '${positionals[0]}'`, 'see `kjit help`');
  const v = values as Record<string, string | boolean | undefined>;
  const { benchStress } = await import('../../bench/stress.js');
  return benchStress({
    json: v.json === true,
    ops: bigint(v.ops as string | undefined, '--ops') ?? 6_000_000n,
    installs: num(v.installs as string | undefined, '--installs', 10_000),
    functions: (v.functions as string).split(','),
    ...(v.out ? { out: v.out as string } : {}),
  });
}

async function cmdBenchControl(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    json: { type: 'boolean', default: false },
    runs: { type: 'string' },
    seconds: { type: 'string' },
    workload: { type: 'string', default: 'web' },
    out: { type: 'string' },
  });
  if (positionals.length) throw bad(`unexpected argument '${positionals[0]}'`, 'see `kjit help`');
  const v = values as Record<string, string | boolean | undefined>;
  const { benchControl } = await import('../../bench/control.js');
  return benchControl({
    json: v.json === true,
    runs: num(v.runs as string | undefined, '--runs', 5),
    seconds: positive(v.seconds as string | undefined, '--seconds', 2),
    workload: v.workload as string,
    ...(v.out ? { out: v.out as string } : {}),
  });
}

async function cmdBenchPgo(argv: string[]): Promise<number> {
  const { benchPgo } = await import('../../bench/pgo.js');
  /* --image FILE --init SYM --entry SYM: a foreign image instead of the reference kernel */
  const rest: string[] = [];
  const img: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const m = /^--(image|init|entry)(?:=(.*))?$/.exec(argv[i]!);
    if (!m) rest.push(argv[i]!);
    else if (m[2] !== undefined) img[m[1]!] = m[2];
    else if (argv[i + 1] !== undefined) img[m[1]!] = argv[++i]!;
    else throw bad(`--${m[1]} needs a value`, 'see `kjit help bench`');
  }
  let image: ImageSpec | undefined;
  if (img.image !== undefined) {
    if (!img.entry) throw bad('--image needs --entry SYMBOL', 'name the function the runtime calls per operation');
    image = { path: img.image, init: img.init ?? 'init', entry: img.entry };
  } else if (img.init !== undefined || img.entry !== undefined) {
    throw bad('--init and --entry apply only to --image', 'pass --image FILE too, or drop them');
  }
  return benchPgo({ ...modesBenchArgs(rest, { runs: 5, seconds: 60 }), ...(image ? { image } : {}) });
}

async function cmdBenchBootscale(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    json: { type: 'boolean', default: false },
    runs: { type: 'string' },
    seconds: { type: 'string' },
    images: { type: 'string' },
    out: { type: 'string' },
  });
  if (positionals.length) throw bad(`unexpected argument '${positionals[0]}'`, 'see `kjit bench bootscale --help`');
  const { benchBootscale, BOOTSCALE_IMAGES } = await import('../../bench/bootscale.js');
  const v = values as Record<string, string | boolean | undefined>;
  return benchBootscale({
    runs: num(v.runs as string | undefined, '--runs', 5),
    seconds: num(v.seconds as string | undefined, '--seconds', 20),
    images: v.images ? (v.images as string).split(',') : [...BOOTSCALE_IMAGES],
    json: v.json === true,
    out: v.out as string | undefined,
  });
}

async function cmdBenchCoop(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    json: { type: 'boolean', default: false },
    runs: { type: 'string' },
    seconds: { type: 'string' },
    workload: { type: 'string', default: 'web' },
    cpu: { type: 'string' },
    revocations: { type: 'string' },
    out: { type: 'string' },
  });
  if (positionals.length) throw bad(`unexpected argument '${positionals[0]}'`, 'see `kjit help bench coop`');
  const v = values as Record<string, string | boolean | undefined>;
  const runs = num(v.runs as string | undefined, '--runs', 3);
  if (!(Number.isInteger(runs) && runs >= 1)) throw bad(`--runs ${runs} is not a run count`, 'pass an integer >= 1');
  const revocations = num(v.revocations as string | undefined, '--revocations', 4);
  if (!(Number.isInteger(revocations) && revocations >= 1)) throw bad(`--revocations ${revocations} is not a count`, 'pass an integer >= 1');
  const { benchCoop } = await import('../../bench/coop.js');
  return benchCoop({
    json: v.json === true,
    runs,
    seconds: positive(v.seconds as string | undefined, '--seconds', 15),
    workload: v.workload as string,
    cpu: v.cpu === undefined ? 0 : parseCpus(v.cpu as string)[0]!,
    revocations,
    ...(v.out ? { out: v.out as string } : {}),
  });
}

async function cmdBenchPolicies(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    json: { type: 'boolean', default: false },
    runs: { type: 'string' },
    seconds: { type: 'string' },
    workloads: { type: 'string' },
    policies: { type: 'string' },
    out: { type: 'string' },
  });
  if (positionals.length) throw bad(`unexpected argument '${positionals[0]}'`, 'see `kjit help bench policies`');
  const v = values as Record<string, string | boolean | undefined>;
  const runs = num(v.runs as string | undefined, '--runs', 1);
  if (!(Number.isInteger(runs) && runs >= 1)) throw bad(`--runs ${runs} is not a run count`, 'pass an integer >= 1');
  const seconds = num(v.seconds as string | undefined, '--seconds', 20);
  if (!(seconds >= 3)) throw bad(`--seconds ${seconds} is too short for a peak`, 'pass at least 3 (60 for time to peak)');
  const { benchPolicies } = await import('../../bench/policies.js');
  return benchPolicies({
    json: v.json === true,
    runs,
    seconds,
    workloads: ((v.workloads as string | undefined) ?? 'web,kv').split(','),
    policies: ((v.policies as string | undefined) ?? 'default,threshold,conservative').split(','),
    ...(v.out ? { out: v.out as string } : {}),
  });
}

async function cmdBenchInstrument(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    json: { type: 'boolean', default: false },
    runs: { type: 'string' },
    'window-ms': { type: 'string' },
    workload: { type: 'string', default: 'web' },
    functions: { type: 'string' },
    out: { type: 'string' },
  });
  if (positionals.length) throw bad(`unexpected argument '${positionals[0]}'`, 'see `kjit help`');
  const v = values as Record<string, string | boolean | undefined>;
  const { benchInstrument, INSTRUMENT_BENCH_FUNCTIONS } = await import('../../bench/instrument.js');
  return benchInstrument({
    json: v.json === true,
    runs: num(v.runs as string | undefined, '--runs', 8),
    windowMs: num(v['window-ms'] as string | undefined, '--window-ms', 200),
    workload: v.workload as string,
    functions: v.functions ? (v.functions as string).split(',') : INSTRUMENT_BENCH_FUNCTIONS,
    ...(v.out ? { out: v.out as string } : {}),
  });
}

async function cmdBenchSampler(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    json: { type: 'boolean', default: false },
    runs: { type: 'string' },
    seconds: { type: 'string' },
    workload: { type: 'string', default: 'web' },
    clock: { type: 'string', default: 'thread' },
    out: { type: 'string' },
  });
  if (positionals.length) throw bad(`unexpected argument '${positionals[0]}'`, 'see `kjit help`');
  const v = values as Record<string, string | boolean | undefined>;
  if (v.clock !== 'thread' && v.clock !== 'timer') throw bad(`unknown --clock '${v.clock}'`, 'use thread (a clock thread signals the kernel) or timer (timer_create on the kernel thread)');
  const runs = num(v.runs as string | undefined, '--runs', 5);
  if (!(Number.isInteger(runs) && runs >= 1)) throw bad(`--runs ${runs} is not a run count`, 'pass an integer >= 1 (5 or more for a report)');
  const { benchSampler } = await import('../../bench/sampler.js');
  return benchSampler({
    json: v.json === true,
    runs,
    seconds: positive(v.seconds as string | undefined, '--seconds', 2),
    workload: v.workload as string,
    clock: v.clock as 'thread' | 'timer',
    ...(v.out ? { out: v.out as string } : {}),
  });
}

async function cmdBenchStore(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { json: { type: 'boolean', default: false }, runs: { type: 'string' }, out: { type: 'string' } });
  if (positionals.length) throw bad(`unexpected argument '${positionals[0]}'`, 'see `kjit help`');
  const runs = num(values.runs as string | undefined, '--runs', 7);
  if (!(Number.isInteger(runs) && runs >= 1)) throw bad(`--runs ${runs} is not a run count`, 'pass an integer >= 1 (5 or more for a report)');
  const { benchStore } = await import('../../bench/store.js');
  return benchStore({ json: values.json === true, runs, ...(values.out ? { out: values.out as string } : {}) });
}

async function cmdDemo(clockStartNs: bigint): Promise<number> {
  process.stdout.write('kjit demo: the reference kernel, web workload: stock and boot 3 s each, boot with a live patch, then 20 s of the pgo mode\n\n');
  const base = { image: REFERENCE, nic: 'virtq' as const, sysctls: [], workload: 'web', rate: 0, concurrency: 4, seed: 1n };
  const results: RunResult[] = [];
  for (const mode of ['stock', 'boot']) {
    const r = await runKernel({
      ...base,
      mode,
      seconds: 3,
      counting: true,
      /* the first run's clock starts with the process, the next one's now */
      clockStartNs: mode === 'stock' ? clockStartNs : process.hrtime.bigint(),
    });
    results.push(r);
    process.stdout.write(formatRun(r, { report: mode === 'boot' }));
    process.stdout.write('\n');
  }
  const [stock, boot] = results as [RunResult, RunResult];
  const ratio = boot.ops_per_sec / stock.ops_per_sec;
  process.stdout.write(
    `boot / stock throughput: ${ratio.toFixed(3)}x (${stock.ops_per_sec.toFixed(0)} -> ${boot.ops_per_sec.toFixed(0)} ops/s, one 3 s run each; ` +
      '`kjit bench boot` measures it properly)\n\n',
  );
  /* re-JIT while it runs: a live patch of csum_fold (same results), which
   * boot inlined into many callers: every one of them is re-JITted too */
  const patched = await runKernel({
    ...base,
    mode: 'boot',
    seconds: 4,
    counting: false,
    patchable: true,
    patches: [{ fn: 'csum_fold', file: join(ROOT, 'examples', 'patches', 'csum_fold_counted.c'), atSeconds: 0.5 }],
    clockStartNs: process.hrtime.bigint(),
  });
  process.stdout.write('boot, re-JITted live:\n');
  process.stdout.write(formatRun(patched, { report: false }));
  /* and the pgo mode: counted, recompiled with its profile, checked, kept if faster */
  const pgo = await runKernel({ ...base, mode: 'pgo', seconds: 20, counting: false, clockStartNs: process.hrtime.bigint() });
  process.stdout.write('\npgo (profile-guided re-JIT while it runs):\n');
  process.stdout.write(formatRun(pgo, { report: false }));
  process.stdout.write(
    `pgo peak / boot: ${((pgo.rejit.peak_ops_per_sec ?? pgo.ops_per_sec) / boot.ops_per_sec).toFixed(3)}x (single runs on a shared machine; \`kjit bench pgo\` measures it properly)\n`,
  );
  return ExitCode.OK;
}

export async function main(argv: string[]): Promise<number> {
  const clockStartNs = processStartNs();
  const [command, ...rest] = argv;
  try {
    /* kjit COMMAND --help, kjit help COMMAND: every option of COMMAND with its default (help.ts) */
    const helpOf = command === 'help' || command === '--help' ? rest[0] : rest.includes('--help') || rest.includes('-h') ? command : undefined;
    if (helpOf !== undefined) {
      const { commandHelp } = await import('./help.js');
      const text = commandHelp(helpOf, rest.find((a) => !a.startsWith('-') && a !== helpOf));
      if (!text) throw bad(`unknown command '${helpOf}'`, 'kjit help lists the commands');
      process.stdout.write(`${text}\n`);
      return ExitCode.OK;
    }
    switch (command) {
      case 'run':
      case 'serve':
        return await cmdRun(rest, clockStartNs, command);
      case 'ps':
        return await cmdPs(rest);
      case 'status':
        return await cmdStatus(rest);
      case 'sysctl':
        return await cmdSysctl(rest);
      case 'patch':
        return await cmdPatch(rest);
      case 'mode':
        return await cmdMode(rest);
      case 'probe':
        return await cmdProbe(rest);
      case 'replay':
        return await cmdReplay(rest);
      case 'bench':
        return await cmdBench(rest);
      case 'profile':
        return (await import('./profile.js')).cmdProfile(rest);
      case 'report':
        return (await import('./report.js')).cmdReport(rest);
      case 'explain':
        return (await import('./report.js')).cmdExplain(rest);
      case 'top':
        return await (await import('./top.js')).cmdTop(rest);
      case 'demo':
        return await cmdDemo(clockStartNs);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(`${HELP}\n`);
        return command === undefined ? ExitCode.BAD_INPUT : ExitCode.OK;
      default:
        throw bad(`unknown command '${command}'`, 'use run, serve, ps, status, top, sysctl, patch, mode, probe, replay, profile, report, explain, bench, demo or help');
    }
  } catch (e) {
    if (e instanceof KjitError) {
      process.stderr.write(`${e.line()}\n`);
      return e.exitCode;
    }
    if (process.env.KJIT_DEBUG) process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
    if (e instanceof LLVMError) {
      process.stderr.write(`kjit: LLVM failed: ${e.message.split('\n')[0]} — fix: report this with the command line (KJIT_DEBUG=1 shows more)\n`);
      return ExitCode.FAILURE;
    }
    process.stderr.write(`kjit: internal error: ${(e as Error).message?.split('\n')[0] ?? String(e)} — fix: report this (KJIT_DEBUG=1 shows the stack)\n`);
    return ExitCode.FAILURE;
  }
}
