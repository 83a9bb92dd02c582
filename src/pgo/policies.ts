/**
 * @fileoverview Choosing a policy (`--policy NAME|PATH.js`), guarding the
 * engine against a broken one, and the observed-state trace researchers
 * replay offline (`--record-trace FILE`, `kjit replay FILE --policy ...`).
 *
 * A policy module is an ES module whose default export (or export named
 * `policy`) is a function (input: PolicyInput, params: PolicyParams) =>
 * Decision[] (src/pgo/policy.ts): pure, no I/O.  A policy that throws or
 * returns something that is not a list of decisions is reported once and
 * the default policy takes over for the rest of the run.
 */
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

import { KjitError } from '../errors.js';
import { checkDecisions, DEFAULT_POLICY, type Decision, defaultPolicy, type Policy, POLICIES, type PolicyInput, type PolicyParams } from './policy.js';

export interface NamedPolicy {
  name: string;
  policy: Policy;
}

export async function loadPolicy(spec: string | undefined): Promise<NamedPolicy> {
  if (spec === undefined) return { name: 'default', policy: defaultPolicy };
  const builtIn = POLICIES[spec];
  if (builtIn) return { name: spec, policy: builtIn };
  if (!/\.(m?js)$/.test(spec)) {
    throw new KjitError(`unknown policy '${spec}'`, `use one of ${Object.keys(POLICIES).join(', ')}, or a path to a .js module`);
  }
  const path = resolve(spec);
  if (!existsSync(path)) throw new KjitError(`policy module ${path} does not exist`, 'pass the path of an ES module exporting the policy function');
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  } catch (e) {
    throw new KjitError(`policy module ${path} does not load: ${(e as Error).message.split('\n')[0]}`, 'fix the module (node --check shows syntax errors)');
  }
  const fn = mod.default ?? mod.policy;
  if (typeof fn !== 'function') throw new KjitError(`policy module ${path} exports no function`, 'export default function (input, params) { return [...decisions] }');
  return { name: path, policy: fn as Policy };
}

/**
 * `policy`, guarded: a throw or a malformed answer is reported through
 * `report` (once) and answered, then and from then on, by the default.
 */
export function guarded(p: NamedPolicy, report: (problem: string) => void): Policy {
  let failed = false;
  return (input: PolicyInput, params: PolicyParams = DEFAULT_POLICY): Decision[] => {
    if (failed) return defaultPolicy(input, params);
    let out: unknown;
    try {
      out = p.policy(input, params);
    } catch (e) {
      failed = true;
      report(`policy ${p.name} threw: ${(e as Error)?.message ?? String(e)}; the default policy takes over`);
      return defaultPolicy(input, params);
    }
    const problem = checkDecisions(input, out);
    if (problem) {
      failed = true;
      report(`policy ${p.name} ${problem}; the default policy takes over`);
      return defaultPolicy(input, params);
    }
    return out as Decision[];
  };
}

/** One line of a trace: what the policy saw and what it decided. */
export interface TraceLine {
  v: 1;
  policy: string;
  input: PolicyInput;
  decisions: Decision[];
}

export class TraceWriter {
  constructor(
    private readonly path: string,
    private readonly policy: string,
  ) {
    writeFileSync(path, '');
  }

  write(input: PolicyInput, decisions: Decision[]): void {
    const line: TraceLine = { v: 1, policy: this.policy, input, decisions };
    appendFileSync(this.path, `${JSON.stringify(line)}\n`);
  }
}

export function readTrace(path: string): TraceLine[] {
  if (!existsSync(path)) throw new KjitError(`trace ${path} does not exist`, 'record one with kjit run --mode pgo --record-trace FILE');
  const lines = readFileSync(path, 'utf8').split('\n').filter((l) => l.trim());
  return lines.map((l, i) => {
    let x: TraceLine;
    try {
      x = JSON.parse(l) as TraceLine;
    } catch {
      throw new KjitError(`line ${i + 1} of trace ${path} is not JSON`, 'record the trace again');
    }
    if (x.v !== 1 || !x.input || !Array.isArray(x.decisions)) throw new KjitError(`line ${i + 1} of trace ${path} is not a kjit trace line`, 'record the trace again');
    return x;
  });
}

export interface ReplayResult {
  policy: string;
  rounds: number;
  /** Decisions other than 'leave', per kind. */
  counts: Record<string, number>;
  /** Rounds whose decisions differ from the recorded ones. */
  differing: number;
  /** The first few differences. */
  differences: { round: number; recorded: Decision[]; replayed: Decision[] }[];
  decisions: { round: number; now_s: number; decisions: Decision[] }[];
}

/** Run `p` over a recorded trace: its decisions, and where they differ from the recorded ones. */
export function replay(trace: readonly TraceLine[], p: NamedPolicy): ReplayResult {
  const policy = guarded(p, (problem) => {
    throw new KjitError(problem.replace(/; the default policy takes over$/, ''), 'fix the policy; replay does not fall back');
  });
  const counts: Record<string, number> = {};
  const differences: ReplayResult['differences'] = [];
  const decisions: ReplayResult['decisions'] = [];
  let differing = 0;
  trace.forEach((line, round) => {
    const out = policy(line.input, DEFAULT_POLICY);
    for (const d of out) if (d.kind !== 'leave') counts[d.kind] = (counts[d.kind] ?? 0) + 1;
    decisions.push({ round, now_s: line.input.nowS, decisions: out.filter((d) => d.kind !== 'leave') });
    if (JSON.stringify(out) !== JSON.stringify(line.decisions)) {
      differing++;
      if (differences.length < 5) differences.push({ round, recorded: line.decisions.filter((d) => d.kind !== 'leave'), replayed: out.filter((d) => d.kind !== 'leave') });
    }
  });
  return { policy: p.name, rounds: trace.length, counts, differing, differences, decisions };
}
