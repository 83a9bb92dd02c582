// The kjit command with foreign images and bad input: each bad input gives
// one line naming the problem and the fix, a non-zero exit, and no native
// crash or JavaScript stack trace.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

const KJIT = join(import.meta.dirname, '..', 'bin', 'kjit.js');
let dir = '';

function kjit(...args: string[]) {
  const r = spawnSync(process.execPath, [KJIT, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

function compileC(name: string, source: string): string {
  const c = join(dir, `${name}.c`);
  const bc = join(dir, `${name}.bc`);
  writeFileSync(c, source);
  const r = spawnSync('clang-19', ['-O2', '-Xclang', '-disable-llvm-passes', '-emit-llvm', '-c', c, '-o', bc], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return bc;
}

function file(name: string, content: string | Buffer): string {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
}

/** A one-line kjit error: exit code, the problem, a fix, nothing else. */
function expectCleanError(r: ReturnType<typeof kjit>, code: number, problem: RegExp): void {
  expect(r.signal).toBeNull();
  expect(r.status).toBe(code);
  const lines = r.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^kjit: .* — fix: .+/);
  expect(lines[0]).toMatch(problem);
  expect(r.stderr).not.toMatch(/\n\s+at |Segmentation|Aborted|core dumped/);
}

let counter = '';

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'kjit-cli-'));
  counter = compileC(
    'counter',
    `#include <stdint.h>
static uint64_t state;
void init(void) { state = 12345; }
uint64_t step(uint64_t i) { state = state * 6364136223846793005ull + i; return state >> 17; }
uint32_t narrow(uint32_t i) { return i * 3u; }
`,
  );
});

describe('foreign images', () => {
  it('runs an image that follows the contract, with the same checksum in stock and boot', () => {
    const sums = ['stock', 'boot'].map((mode) => {
      const r = kjit('run', '--image', counter, '--init', 'init', '--entry', 'step', '--ops', '50000', '--mode', mode, '--json');
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      const j = JSON.parse(r.stdout);
      expect(j.ops).toBe(50000);
      expect(j.mode).toBe(mode);
      expect(j.ops_per_sec).toBeGreaterThan(0);
      for (const k of ['seconds', 'cpu_ns_per_op', 'idle_fraction', 'indirect_calls_per_op', 'sysctl_loads_per_op']) {
        expect(typeof j[k]).toBe('number');
      }
      expect(Object.keys(j.latency_us)).toEqual(expect.arrayContaining(['p50', 'p99', 'p999']));
      expect(Object.keys(j.boot)).toEqual(expect.arrayContaining(['ms', 'functions_before', 'functions_after', 'code_bytes']));
      return j.checksum as string;
    });
    expect(sums[0]).toMatch(/^0x[0-9a-f]{16}$/);
    expect(sums[1]).toBe(sums[0]);
    /* a different operation count gives a different checksum */
    const other = JSON.parse(kjit('run', '--image', counter, '--init', 'init', '--entry', 'step', '--ops', '50001', '--json', '--no-count').stdout);
    expect(other.checksum).not.toBe(sums[0]);
  });

  it('accepts narrower integer entry signatures', () => {
    const r = kjit('run', '--image', counter, '--init', 'init', '--entry', 'narrow', '--ops', '1000', '--json', '--no-count');
    expect(r.status).toBe(0);
  });

  it('reads text IR images', () => {
    const ll = file('text.ll', 'define void @init() {\n  ret void\n}\ndefine i64 @entry(i64 %i) {\n  %r = mul i64 %i, 7\n  ret i64 %r\n}\n');
    const r = kjit('run', '--image', ll, '--init', 'init', '--entry', 'entry', '--ops', '1000', '--json', '--no-count');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout).ops).toBe(1000);
  });
});

describe('bad input', () => {
  it('a missing image', () => {
    expectCleanError(kjit('run', '--image', join(dir, 'nope.bc'), '--entry', 'step'), 2, /does not exist/);
  });

  it('a corrupt bitcode image', () => {
    const bad = file('corrupt.bc', Buffer.concat([Buffer.from([0x42, 0x43, 0xc0, 0xde]), Buffer.alloc(64, 0x5a)]));
    expectCleanError(kjit('run', '--image', bad, '--entry', 'step'), 2, /corrupt LLVM bitcode/);
  });

  it('a truncated bitcode image', () => {
    const full = readFileSync(counter);
    const cut = file('truncated.bc', full.subarray(0, Math.floor(full.length / 2)));
    expectCleanError(kjit('run', '--image', cut, '--entry', 'step'), 2, /corrupt LLVM bitcode/);
  });

  it('text IR that does not parse', () => {
    const bad = file('bad.ll', 'define i64 @entry(i64 %i) {\n  %r = frobnicate i64 %i\n  ret i64 %r\n}\n');
    expectCleanError(kjit('run', '--image', bad, '--entry', 'entry'), 2, /not valid LLVM IR.*frobnicate|not valid LLVM IR/);
  });

  it('IR that fails verification', () => {
    const bad = file('unverified.ll', 'define void @init() {\n  %x = add i32 %y, 1\n  %y = add i32 %x, 1\n  ret void\n}\ndefine i64 @entry(i64 %i) {\n  ret i64 %i\n}\n');
    expectCleanError(kjit('run', '--image', bad, '--init', 'init', '--entry', 'entry'), 2, /fails LLVM verification: .*dominate/);
  });

  it('a missing init symbol', () => {
    expectCleanError(kjit('run', '--image', counter, '--init', 'setup', '--entry', 'step'), 2, /no function 'setup' \(--init\)/);
  });

  it('a missing entry symbol', () => {
    expectCleanError(kjit('run', '--image', counter, '--init', 'init', '--entry', 'go'), 2, /no function 'go' \(--entry\)/);
  });

  it('an entry with the wrong signature', () => {
    const bad = compileC('sig', 'void init(void) {}\nvoid entry(double x) {}\n');
    expectCleanError(kjit('run', '--image', bad, '--init', 'init', '--entry', 'entry'), 2, /entry function 'entry' has type/);
  });

  it('an unknown workload', () => {
    expectCleanError(kjit('run', '--image', counter, '--init', 'init', '--entry', 'step', '--workload', 'mail', '--ops', '10'), 2, /unknown workload 'mail'/);
  });

  it('an unknown mode', () => {
    expectCleanError(kjit('run', '--image', counter, '--init', 'init', '--entry', 'step', '--mode', 'turbo', '--ops', '10'), 2, /unknown mode 'turbo'/);
  });

  it('a sampling rate out of range, a profile file of unknown kind', () => {
    const run = ['run', '--image', counter, '--init', 'init', '--entry', 'step', '--ops', '10'];
    expectCleanError(kjit(...run, '--sample-hz', '-5'), 2, /--sample-hz -5 is out of range/);
    expectCleanError(kjit(...run, '--sample-hz', '1000000'), 2, /--sample-hz 1000000 is out of range/);
    expectCleanError(kjit(...run, '--sample-hz', '99.5'), 2, /--sample-hz 99.5 is out of range/);
    expectCleanError(kjit(...run, '--sample-hz', 'fast'), 2, /--sample-hz 'fast' is not a number/);
    expectCleanError(kjit(...run, '--profile-out', join(dir, 'x.txt')), 2, /--profile-out .*x\.txt has an unknown extension — fix: name the file FILE\.folded .* or FILE\.pb\.gz/);
    expectCleanError(kjit(...run, '--profile-out', join(dir, 'no', 'such', 'x.folded')), 2, /directory of --profile-out .* does not exist/);
    expectCleanError(kjit(...run, '--sample-hz', '0', '--profile-out', join(dir, 'x.folded')), 2, /--profile-out needs sampling/);
    expectCleanError(kjit('bench', 'sampler', '--runs', '0'), 2, /--runs 0 is not a run count/);
  });

  it('an unknown command and an unknown flag', () => {
    expectCleanError(kjit('fly'), 2, /unknown command 'fly'/);
    expectCleanError(kjit('run', '--speed', '3'), 2, /--speed/);
  });

  it('a kernel that faults during boot', () => {
    const bad = compileC('fault', '#include <stdint.h>\nvoid init(void) { *(volatile int *)8 = 1; }\nuint64_t entry(uint64_t i) { return i; }\n');
    const r = kjit('run', '--image', bad, '--init', 'init', '--entry', 'entry', '--ops', '10');
    expectCleanError(r, 3, /faulted during boot: SIGSEGV at address 0x8/);
  });

  it('a kernel that faults while running', () => {
    const bad = compileC(
      'fault2',
      '#include <stdint.h>\nvoid init(void) {}\nuint64_t entry(uint64_t i) { if (i == 500) return *(volatile uint64_t *)16; return i; }\n',
    );
    /* stock: compiled per file, so entry is not inlined into the runtime's loop and the fault is named after it */
    const r = kjit('run', '--image', bad, '--init', 'init', '--entry', 'entry', '--ops', '1000', '--mode', 'stock');
    expectCleanError(r, 3, /faulted while running the workload: SIGSEGV at address 0x10, pc 0x[0-9a-f]+ \(entry\+0x[0-9a-f]+\)/);
  });
});

describe('help', () => {
  it('kjit COMMAND --help lists every option the command parses, with its default', () => {
    /* In one process: every parseArgs call is recorded (node:util patched before the CLI loads), each command is
     * run with an unknown flag (so it stops in its parser), and its help is printed. The commands, bench suites and
     * profile subcommands come from the CLI's own answers to an unknown name. */
    const probe = `
      import util from 'node:util';
      import { syncBuiltinESMExports } from 'node:module';
      const parseArgs = util.parseArgs;
      let seen = null;
      util.parseArgs = (config) => { seen = Object.keys(config.options ?? {}); return parseArgs(config); };
      syncBuiltinESMExports();
      const { main } = await import(${JSON.stringify(new URL('../dist/src/cli/main.js', import.meta.url).href)});
      const write = { out: process.stdout.write, err: process.stderr.write };
      async function call(args) {
        let out = '';
        let err = '';
        seen = null;
        process.stdout.write = (s) => ((out += s), true);
        process.stderr.write = (s) => ((err += s), true);
        try {
          await main(args);
        } finally {
          process.stdout.write = write.out;
          process.stderr.write = write.err;
        }
        return { out, err, options: seen };
      }
      const names = (text, re) => re.exec(text)[1].split(/, | or /).map((s) => s.trim()).filter(Boolean);
      const commands = names((await call(['no-such-command'])).err, /fix: use (.*)$/m).filter((c) => c !== 'help' && c !== 'demo');
      const cases = [];
      for (const c of commands) {
        const subs = c === 'bench' ? names((await call(['bench', 'no-such-suite'])).err, /use one of: ([^(]*)/)
          : c === 'profile' ? names((await call(['profile', 'no-such-command'])).err, /use kjit profile (.*)$/m) : [null];
        for (const sub of subs) {
          const args = sub === null ? [c] : [c, sub];
          const { options } = await call([...args, '--no-such-flag-for-the-help-test']);
          cases.push({ args, options, help: (await call([...args, '--help'])).out });
        }
      }
      process.stdout.write(JSON.stringify(cases));
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', probe], { encoding: 'utf8', timeout: 120_000 });
    expect(r.stderr).toBe('');
    const cases = JSON.parse(r.stdout) as { args: string[]; options: string[] | null; help: string }[];
    /* flags a parser knows but the command refuses or ignores, and flags parsed by hand */
    const notListed: Record<string, string[]> = { serve: ['patch', 'no-count'] };
    const byHand: Record<string, string[]> = { 'bench pgo': ['image', 'init', 'entry'] };
    expect(cases.map((c) => c.args.join(' '))).toEqual(expect.arrayContaining(['run', 'serve', 'top', 'bench boot', 'bench store', 'bench coop', 'profile merge', 'report']));
    for (const c of cases) {
      const name = c.args.join(' ');
      const rows = c.help.split('\n').filter((l) => /^ {2}--[a-z]/.test(l));
      const listed = rows.map((l) => /^ {2}--([a-z0-9-]+)/.exec(l)![1]);
      const parsed = [...(c.options ?? []), ...(byHand[name] ?? [])].filter((o) => !(notListed[name] ?? []).includes(o));
      expect(c.options, `${name}: reached no parser`).not.toBeNull();
      expect(listed, `kjit ${name} --help`).toEqual(expect.arrayContaining(parsed));
      for (const row of rows) expect(row, `kjit ${name} --help: a flag without its default`).toContain('[default: ');
    }
  });
});
