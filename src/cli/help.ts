/**
 * @fileoverview `kjit COMMAND --help` (and `kjit help COMMAND`): every
 * option of a command with its default, from one table per command.
 * `kjit help` alone prints the overview (main.ts HELP).
 */
/** bench/instrument.ts INSTRUMENT_BENCH_FUNCTIONS (not imported: help loads no benchmark code). */
const INSTRUMENT_DEFAULTS = ['tcp_transmit_skb', 'ip_route_input', 'inet_lookup'];

interface Flag {
  flag: string;
  /** The default, as the user would write it ('' when there is nothing to say). */
  def: string;
  what: string;
}

interface CommandHelp {
  usage: string[];
  what: string;
  flags: Flag[];
}

const json: Flag = { flag: '--json', def: 'off', what: 'one JSON object on stdout instead of readable lines' };
const db: Flag = { flag: '--db PATH', def: '$KJIT_PROFILE_DB, else $XDG_DATA_HOME/kjit/profiles.db, else ~/.local/share/kjit/profiles.db', what: 'the profile store to read' };
const pid: Flag = { flag: 'PID', def: 'the only instance running', what: 'the kjit serve instance to talk to (kjit ps lists them)' };
const out: Flag = { flag: '--out FILE', def: 'none', what: 'also write the JSON report to FILE (kjit report --bench FILE shows it)' };

const RUN_FLAGS: Flag[] = [
  { flag: '--image FILE', def: 'the reference kernel (build/ir/kernel.bc)', what: 'LLVM IR (.bc or .ll) to boot' },
  { flag: '--init SYM', def: 'init', what: 'with --image: the function run once at boot' },
  { flag: '--entry SYM', def: 'none (required with --image)', what: 'with --image: the function run per operation (uint64 -> uint64)' },
  { flag: '--workload NAME', def: 'web (a foreign image: none)', what: 'web, kv, fs, firewall or phases (the reference kernel)' },
  { flag: '--mode MODE', def: 'boot', what: 'stock, boot, pgo, tiered, offline-pgo, whole-image, cpu-target, sysctl-fold, devirt, tailored' },
  { flag: '--seconds S', def: '5 (serve: 0 = until SIGINT/SIGTERM)', what: 'run for S seconds from the first operation ...' },
  { flag: '--ops N', def: 'none', what: '... or exactly N operations (same N, same checksum in every mode)' },
  { flag: '--rate R', def: '0 (closed loop)', what: 'open loop at R operations/s; latency from scheduled arrival' },
  { flag: '--concurrency N', def: '4', what: 'operations in flight (closed loop)' },
  { flag: '--seed N', def: '1', what: 'the workload generator\'s seed' },
  { flag: '--nic MODEL', def: 'virtq', what: 'the machine\'s NIC: virtq (virtio-net) or ring (e1000)' },
  { flag: '--sysctl NAME=VALUE', def: 'none (repeatable)', what: 'a boot parameter, e.g. kernel.audit=1' },
  { flag: '--patch F=FILE[@S]', def: 'none (repeatable; run only)', what: 'replace function F with FILE (.ll, .bc, .c) S seconds in (default 0)' },
  { flag: '--policy P', def: 'default', what: 'pgo mode: default, threshold, conservative, or PATH.js' },
  { flag: '--record-trace FILE', def: 'none', what: 'pgo mode: each round\'s state and decisions as JSON lines (kjit replay)' },
  { flag: '--safe', def: 'off', what: 'pgo mode and serve: re-JIT off (serve: no patchable entries)' },
  { flag: '--dry-run', def: 'off', what: 'pgo mode and serve: decide and log, install nothing' },
  { flag: '--cpus LIST', def: 'any', what: 'CPUs the compile server may run on, e.g. 1 or 0,2-3' },
  { flag: '--batch', def: 'off', what: 'compile server at normal priority; the pgo engine drains it before each regression check' },
  { flag: '--lazy P', def: 'profile', what: 'tiered mode: which functions are compiled on first call: off, profile (those the stored profile never saw run), all (all but the runtime and entry points)' },
  { flag: '--no-count', def: 'off (the counting build runs; never in serve)', what: 'skip the build that counts indirect calls and sysctl loads per operation' },
  { flag: '--no-cache', def: 'off (KJIT_CACHE=0 too)', what: 'compile even if the compiled-object cache has this boot' },
  { flag: '--report', def: 'off', what: 'print the boot report (what specialization changed and removed)' },
  { flag: '--log', def: 'off', what: 'print the kernel log' },
  json,
  { flag: '--sample-hz H', def: '997 (0 = off)', what: 'sampling rate, 1 to 20000' },
  { flag: '--sample-clock C', def: 'thread', what: 'thread (a clock thread signals the kernel thread) or timer (timer_create on it)' },
  { flag: '--profile-out FILE', def: 'none', what: 'sampled stacks: FILE.folded (collapsed) or FILE.pb.gz (pprof)' },
  { flag: '--perf-map', def: 'off', what: 'write /tmp/perf-PID.map' },
  { flag: '--jitdump', def: 'off', what: 'write perf\'s jitdump file under $JITDUMPDIR/.debug/jit/' },
  { flag: '--profile-db PATH', def: '$KJIT_PROFILE_DB, else $XDG_DATA_HOME/kjit/profiles.db, else ~/.local/share/kjit/profiles.db', what: 'the profile store: profiles, timeline, compile log, decisions (kjit report)' },
  { flag: '--no-profile-db', def: 'off', what: 'no profile store' },
];

const SERVE_FLAGS: Flag[] = [
  { flag: '--flush-to FILE', def: 'build/state/serve.jsonl', what: 'journal of status snapshots and channel events' },
  { flag: '--flush-every S', def: '10', what: 'seconds between snapshots (and a final one)' },
];

const BENCH: Record<string, Flag[]> = {
  boot: [
    { flag: '--runs N', def: '5', what: 'alternated runs per workload and mode' },
    { flag: '--seconds S', def: '1', what: 'seconds per run' },
    { flag: '--workloads a,b', def: 'all of the image\'s', what: 'workloads' },
    { flag: '--modes a,b', def: 'stock,boot,whole-image,cpu-target,sysctl-fold,devirt,tailored', what: 'modes (stock is always added)' },
  ],
  pgo: [
    { flag: '--runs N', def: '5', what: 'alternated runs per workload and mode' },
    { flag: '--seconds S', def: '60', what: 'seconds per run (at least 3)' },
    { flag: '--workloads a,b', def: 'all of the image\'s', what: 'workloads' },
    { flag: '--modes a,b', def: 'stock,boot,pgo-cold,pgo-warm,offline-pgo and the ablations (foreign image: stock,boot,pgo-cold)', what: 'modes (stock is always added)' },
    { flag: '--image FILE', def: 'the reference kernel', what: 'a foreign image (LLVM IR, .bc or .ll)' },
    { flag: '--init SYM', def: 'init', what: 'with --image: the function run once at boot' },
    { flag: '--entry SYM', def: 'none (required with --image)', what: 'with --image: the function run per operation' },
  ],
  install: [
    { flag: '--runs N', def: '5', what: 'runs per arm' },
    { flag: '--seconds S', def: '2', what: 'seconds per run' },
    { flag: '--workload W', def: 'web', what: 'workload' },
    { flag: '--function F', def: 'kmem_cache_alloc', what: 'the function installed and reverted' },
    { flag: '--install-gap-ms MS', def: '0', what: 'pause between installs' },
  ],
  stress: [
    { flag: '--ops N', def: '6000000', what: 'operations' },
    { flag: '--installs N', def: '10000', what: 'installs and reverts' },
    { flag: '--functions a,b', def: 'kmem_cache_alloc,kmem_cache_free,sys_poll', what: 'functions installed and reverted' },
  ],
  control: [
    { flag: '--runs N', def: '5', what: 'alternated kjit serve runs per arm' },
    { flag: '--seconds S', def: '2', what: 'seconds per run' },
    { flag: '--workload W', def: 'web', what: 'workload' },
  ],
  instrument: [
    { flag: '--runs N', def: '8', what: 'windows per function' },
    { flag: '--window-ms MS', def: '200', what: 'instrumentation window length' },
    { flag: '--workload W', def: 'web', what: 'workload' },
    { flag: '--functions a,b', def: INSTRUMENT_DEFAULTS.join(','), what: 'functions counted' },
  ],
  sampler: [
    { flag: '--runs N', def: '5', what: 'alternated runs per rate' },
    { flag: '--seconds S', def: '2', what: 'seconds per run' },
    { flag: '--workload W', def: 'web', what: 'workload' },
    { flag: '--clock C', def: 'thread', what: 'thread or timer' },
  ],
  store: [{ flag: '--runs N', def: '7', what: 'repetitions of each measurement' }],
  coop: [
    { flag: '--runs N', def: '3', what: 'alternated runs per arm of (a) and (b)' },
    { flag: '--seconds S', def: '15', what: 'seconds per run of (a); (b) runs max(S, 30) s' },
    { flag: '--workload W', def: 'web', what: 'workload' },
    { flag: '--cpu C', def: '0', what: 'the one CPU the kernel thread and the compile server share in (a)' },
    { flag: '--revocations N', def: '4', what: 'budget revocations measured in (c) (a run of 15 + 15 N s)' },
  ],
  bootscale: [
    { flag: '--runs N', def: '5', what: 'alternated runs per image and arm (full -O2, full -O2 warm, tiered cold, tiered warm), fresh processes' },
    { flag: '--seconds S', def: '20', what: 'seconds per run (at least 5)' },
    { flag: '--images a,b', def: 'kernel,tree-sitter', what: 'images: the reference kernel (web) and tree-sitter parsing C' },
  ],
  policies: [
    { flag: '--runs N', def: '1', what: 'runs per policy and workload (and of stock)' },
    { flag: '--seconds S', def: '20', what: 'seconds per run (at least 3; 60 for time to peak)' },
    { flag: '--workloads a,b', def: 'web,kv', what: 'workloads' },
    { flag: '--policies a,b', def: 'default,threshold,conservative', what: 'policies (built-in names or PATH.js)' },
  ],
};

const COMMANDS: Record<string, CommandHelp> = {
  run: {
    usage: ['kjit run [flags]'],
    what: 'boot a kernel, run a workload, print (or --json) what it did (--seconds 0: serve until SIGINT/SIGTERM, as kjit serve)',
    flags: [...RUN_FLAGS, ...SERVE_FLAGS.map((f) => ({ ...f, what: `${f.what}; with --seconds 0 only` }))],
  },
  serve: {
    usage: ['kjit serve [run flags without --patch] [--safe | --dry-run] [--flush-to FILE] [--flush-every S]'],
    what: 'boot a kernel and run it until SIGINT/SIGTERM (or --ops/--seconds), with a control socket (kjit ps, status, top, sysctl, patch, mode, probe)',
    flags: [...RUN_FLAGS.filter((f) => !f.flag.startsWith('--patch') && f.flag !== '--no-count'), ...SERVE_FLAGS],
  },
  ps: { usage: ['kjit ps [--json]'], what: 'the running instances: pid, uptime, throughput, mode, workload, state, image', flags: [json] },
  status: { usage: ['kjit status [PID] [--json]'], what: 'throughput, idle share, versions, patches, re-JIT mode, hot functions, memory', flags: [pid, json] },
  top: {
    usage: ['kjit top [PID] [--interval S] [--count N]'],
    what: 'a live view of a running instance (status every interval), redrawn in place on a terminal; q or Ctrl-C quits; plain blocks when not a terminal',
    flags: [pid, { flag: '--interval S', def: '1', what: 'seconds between refreshes (0.1 to 3600)' }, { flag: '--count N', def: '0 (until q, Ctrl-C or the instance stops)', what: 'refreshes before exiting' }],
  },
  sysctl: { usage: ['kjit sysctl [PID] [NAME[=VALUE]] [--json]'], what: 'list the sysctls, read NAME, or write NAME=VALUE (run-time sysctls only)', flags: [pid, json] },
  patch: {
    usage: ['kjit patch [PID] --function NAME --ir FILE.ll|.bc|.c [--json]', 'kjit patch [PID] --revert [NAME] [--json]'],
    what: 'live-patch a function (and every function boot inlined it into), or undo the latest live patch (or NAME\'s)',
    flags: [pid, { flag: '--function NAME', def: 'required', what: 'the function replaced' }, { flag: '--ir FILE', def: 'required', what: 'its new definition' }, { flag: '--revert [NAME]', def: 'off', what: 'undo a patch instead' }, json],
  },
  mode: { usage: ['kjit mode [PID] [normal|safe|dry-run] [--json]'], what: 'show or set the re-JIT mode (safe reverts every live patch)', flags: [pid, json] },
  probe: { usage: ['kjit probe [PID] FUNCTION [--seconds S] [--json]'], what: 'count and time FUNCTION\'s calls in a running instance', flags: [pid, { flag: '--seconds S', def: '5', what: 'how long the probe stays installed' }, json] },
  replay: { usage: ['kjit replay FILE [--policy NAME|PATH.js] [--json]'], what: 'a policy\'s decisions on a trace recorded with --record-trace', flags: [{ flag: '--policy P', def: 'the policy the trace was recorded with', what: 'default, threshold, conservative or PATH.js' }, json] },
  bench: {
    usage: Object.keys(BENCH).map((s) => `kjit bench ${s} [flags] [--json] [--out FILE]`),
    what: 'benchmarks; on a terminal they show what runs now, how far along and the time left (quiet with --json or when not a terminal)',
    flags: [json, out],
  },
  profile: {
    usage: [
      'kjit profile ls [--image NAME] [--workload W] [--json]',
      'kjit profile show BOOT [--top N] [--json]',
      'kjit profile merge [--image PATH] [--workload W] [--machine-class C] [--boots 3,4 | --boot ID] [--decay D] [--force] [--top N] [--json]',
      'kjit profile stale --image PATH [--init SYM --entry SYM] [--workload W] [--json]',
      'kjit profile export --format proftext [--boot ID | merge flags] [--out FILE]',
      'kjit profile import FILE [--workload W] [--machine-class C] [--image NAME] [--json]',
    ],
    what: 'the profile store from the command line (all but import only read it)',
    flags: [
      db,
      { flag: '--image PATH', def: 'the latest boot\'s image family (import: the image whose IR the counts match best)', what: 'ls, import: the image family (file name); merge, stale, export: the image (stale: required), checked against its IR when the file exists' },
      { flag: '--init SYM', def: 'init, or what the store recorded for the image', what: 'merge, stale, export: with --image of a foreign image, its init function' },
      { flag: '--entry SYM', def: 'what the store recorded for the image', what: 'merge, stale, export: with --image of a foreign image, its entry function' },
      { flag: '--workload W', def: 'the latest boot\'s (else web)', what: 'boots of this workload (import: the workload the counts are filed under)' },
      { flag: '--machine-class C', def: 'this machine\'s (its LLVM CPU name)', what: 'merge, export: boots of this machine class; import: the class the counts are filed under' },
      { flag: '--boots 3,4', def: 'every boot kept for the image family, machine class and workload', what: 'merge, export: these boots only' },
      { flag: '--boot ID', def: 'none', what: 'merge, export: one boot only' },
      { flag: '--top N', def: '20', what: 'show, merge: functions listed' },
      { flag: '--decay D', def: '0.75', what: 'merge, export: weight of a boot per newer boot' },
      { flag: '--force', def: 'off', what: 'merge, export: also boots of another image family or machine class' },
      { flag: '--format F', def: 'none (required)', what: 'export: proftext (an LLVM text profile)' },
      { flag: '--out FILE', def: 'stdout', what: 'export: where the profile goes' },
      json,
    ],
  },
  report: {
    usage: ['kjit report [--db PATH] [--boot ID]... [--out FILE.html] [--bench FILE.json]... [--save-bench] [--json]'],
    what:
      'one self-contained HTML file (no network needed): timeline with events, memory and JIT CPU, flame graph and differential flame graph, compile log, per function why it was or was not optimized, benchmark results',
    flags: [
      db,
      { flag: '--boot ID', def: 'the latest boot and the one before it of the same image and workload', what: 'boots to show (repeatable; the last two are compared)' },
      { flag: '--out FILE', def: 'kjit-report.html', what: 'where the report goes' },
      { flag: '--bench FILE', def: 'none (repeatable)', what: 'a kjit bench ... --out FILE report to show' },
      { flag: '--save-bench', def: 'off', what: 'also keep the --bench reports in the store (later reports show them)' },
      { flag: '--json', def: 'off', what: 'print { out, bytes, boots, events, bench }' },
    ],
  },
  explain: {
    usage: ['kjit explain FUNCTION [--db PATH] [--boot ID] [--json]'],
    what: 'why FUNCTION was or was not optimized: its state, the policy\'s reason and numbers, versions, measured speedups, profile, decisions and compile log',
    flags: [db, { flag: '--boot ID', def: 'the latest boot that decided on or compiled it, else the latest', what: 'the boot' }, json],
  },
  demo: { usage: ['kjit demo'], what: 'boot the reference kernel in stock and boot modes, compare them, then re-JIT it live', flags: [] },
};

function flagLines(flags: readonly Flag[]): string[] {
  const width = Math.max(12, ...flags.map((f) => f.flag.length)) + 2;
  return flags.map((f) => `  ${f.flag.padEnd(width)}${f.what}${f.def ? ` [default: ${f.def}]` : ''}`);
}

/** The help of `command` (for bench, of one suite when `sub` names one), or null if kjit has no such command. */
export function commandHelp(command: string, sub?: string): string | null {
  const c = COMMANDS[command];
  if (!c) return null;
  const lines = ['usage:', ...c.usage.map((u) => `  ${u}`), '', c.what, ''];
  if (command === 'bench') {
    const suites = sub && BENCH[sub] ? [sub] : Object.keys(BENCH);
    for (const s of suites) lines.push(`kjit bench ${s}:`, ...flagLines([...BENCH[s]!, json, out]), '');
  } else if (c.flags.length) lines.push('options:', ...flagLines(c.flags), '');
  return `${lines.join('\n')}`;
}

export const HELP_COMMANDS = Object.keys(COMMANDS);
