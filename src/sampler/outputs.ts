/**
 * @fileoverview The sampled chains in formats other tools read:
 *   - collapsed stacks (`FILE.folded`): one line per distinct chain,
 *     `root;caller;leaf COUNT`, as flamegraph.pl and speedscope read them;
 *   - pprof (`FILE.pb.gz`): a gzipped profile.proto (the `pprof-format`
 *     package encodes it) with two sample types, samples/count and
 *     cpu/nanoseconds (count x the sampling period), one location per
 *     function.
 */
import { gunzipSync, gzipSync } from 'node:zlib';

import { Function as PprofFunction, Line, Location, Profile, Sample, StringTable, ValueType } from 'pprof-format';

export interface Stack {
  /** Root first. */
  chain: readonly string[];
  samples: number;
}

export const PROFILE_EXTENSIONS = ['.folded', '.pb.gz'] as const;

/** The output format a file name asks for, or null. */
export function profileFormatOf(file: string): 'folded' | 'pprof' | null {
  if (file.endsWith('.folded')) return 'folded';
  if (file.endsWith('.pb.gz')) return 'pprof';
  return null;
}

/** Frame names cannot hold the separators of the collapsed format. */
const foldedName = (name: string) => name.replace(/[;\s]/g, '_');

export function toFolded(stacks: readonly Stack[]): string {
  const lines = stacks.filter((s) => s.samples > 0).map((s) => `${s.chain.map(foldedName).join(';')} ${s.samples}`);
  lines.sort();
  return lines.length ? `${lines.join('\n')}\n` : '';
}

/** Parse collapsed stacks (for tests and tools): the inverse of toFolded. */
export function fromFolded(text: string): Stack[] {
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => {
      const at = l.lastIndexOf(' ');
      return { chain: l.slice(0, at).split(';'), samples: Number(l.slice(at + 1)) };
    });
}

export interface PprofOptions {
  /** Sampling period in ns (1e9 / Hz). */
  periodNs: number;
  /** Profile start (ns since the epoch) and duration. */
  timeNanos?: number;
  durationNanos?: number;
}

export function toPprof(stacks: readonly Stack[], o: PprofOptions): Uint8Array {
  const strings = new StringTable();
  const functionIds = new Map<string, number>();
  const functions: PprofFunction[] = [];
  const locations: Location[] = [];
  const idOf = (name: string): number => {
    let id = functionIds.get(name);
    if (id === undefined) {
      id = functions.length + 1;
      functionIds.set(name, id);
      const s = strings.dedup(name);
      functions.push(new PprofFunction({ id, name: s, systemName: s }));
      locations.push(new Location({ id, line: [new Line({ functionId: id })] }));
    }
    return id;
  };
  const period = Math.max(1, Math.round(o.periodNs));
  const samples = stacks
    .filter((s) => s.samples > 0)
    .map((s) => new Sample({ locationId: [...s.chain].reverse().map(idOf), value: [s.samples, s.samples * period] }));
  const profile = new Profile({
    sampleType: [new ValueType({ type: strings.dedup('samples'), unit: strings.dedup('count') }), new ValueType({ type: strings.dedup('cpu'), unit: strings.dedup('nanoseconds') })],
    periodType: new ValueType({ type: strings.dedup('cpu'), unit: strings.dedup('nanoseconds') }),
    period,
    sample: samples,
    location: locations,
    function: functions,
    stringTable: strings,
    ...(o.timeNanos !== undefined ? { timeNanos: o.timeNanos } : {}),
    ...(o.durationNanos !== undefined ? { durationNanos: o.durationNanos } : {}),
  });
  return gzipSync(profile.encode());
}

/** Decode a gzipped pprof profile into chains (root first) with their sample counts. */
export function fromPprof(gz: Uint8Array): { stacks: Stack[]; periodNs: number } {
  const p = Profile.decode(gunzipSync(gz));
  const str = (i: number | bigint) => p.stringTable.strings[Number(i)]!;
  const fnName = new Map(p.function.map((f) => [Number(f.id), str(f.name)]));
  const locName = new Map(p.location.map((l) => [Number(l.id), fnName.get(Number(l.line[0]!.functionId))!]));
  return {
    stacks: p.sample.map((s) => ({ chain: s.locationId.map((id) => locName.get(Number(id))!).reverse(), samples: Number(s.value[0]) })),
    periodNs: Number(p.period),
  };
}
