/**
 * @fileoverview Aggregation of sampled call chains (pure): per function its
 * self samples (it was the leaf) and total samples (it was anywhere in the
 * chain, counted once per sample even when recursive), caller -> callee edge
 * weights (each adjacent pair once per sample), and the chains themselves,
 * from which come the hot paths (the most frequent whole chains) and the
 * collapsed-stack and pprof outputs (outputs.ts).
 *
 * Memory is bounded: at most PROFILE_PARAMS.maxChains distinct chains are
 * kept; a sample whose chain is new beyond that still counts in self, total
 * and edges, and its chain is counted as the one chain [OTHER_CHAINS].
 */

export const PROFILE_PARAMS = {
  /** Distinct chains kept (about 100 bytes each plus the key). */
  maxChains: 100_000,
  /** Functions listed in `top`. */
  topFunctions: 15,
  /** Chains listed in `hot_paths`. */
  hotPaths: 10,
};

export const OTHER_CHAINS = '[other chains]';

export interface TopFunction {
  function: string;
  self_pct: number;
  total_pct: number;
}

export interface HotPath {
  /** Root first. */
  chain: string[];
  pct: number;
}

export interface Edge {
  caller: string;
  callee: string;
  samples: number;
}

export interface ProfileSummary {
  samples: number;
  top: TopFunction[];
  hot_paths: HotPath[];
}

export class ProfileBuilder {
  private readonly names: string[] = [];
  private readonly ids = new Map<string, number>();
  private readonly self: number[] = [];
  private readonly total: number[] = [];
  private readonly edges = new Map<number, number>();
  /** key: function ids root first, joined with ',' */
  private readonly chains = new Map<string, number>();
  private readonly versionSelf = new Map<string, number>();
  private seen = new Uint32Array(64); /* per-sample marks, by function id */
  private stamp = 0;
  samples = 0;

  private id(name: string): number {
    let i = this.ids.get(name);
    if (i === undefined) {
      i = this.names.length;
      this.names.push(name);
      this.ids.set(name, i);
      this.self.push(0);
      this.total.push(0);
      if (i >= this.seen.length) {
        const grown = new Uint32Array(this.seen.length * 2);
        grown.set(this.seen);
        this.seen = grown;
      }
    }
    return i;
  }

  /**
   * Count one sample.  `stack` is leaf first; `version` names the leaf's
   * code version when it is not boot code (per-version self counts).
   */
  add(stack: readonly string[], version: string | null = null): void {
    if (stack.length === 0) return;
    this.samples++;
    const stamp = ++this.stamp;
    const ids = stack.map((n) => this.id(n));
    this.self[ids[0]!]!++;
    for (const i of ids) {
      if (this.seen[i] === stamp) continue;
      this.seen[i] = stamp;
      this.total[i]!++;
    }
    const pairs = new Set<number>();
    for (let k = 1; k < ids.length; k++) pairs.add(ids[k]! * 0x100000 + ids[k - 1]!); /* caller, callee */
    for (const p of pairs) this.edges.set(p, (this.edges.get(p) ?? 0) + 1);
    let key = '';
    for (let k = ids.length - 1; k >= 0; k--) key += k === ids.length - 1 ? `${ids[k]}` : `,${ids[k]}`;
    const n = this.chains.get(key);
    if (n !== undefined) this.chains.set(key, n + 1);
    else if (this.chains.size < PROFILE_PARAMS.maxChains) this.chains.set(key, 1);
    else {
      const other = `${this.id(OTHER_CHAINS)}`;
      this.chains.set(other, (this.chains.get(other) ?? 0) + 1);
    }
    if (version) {
      const k = `${stack[0]}\u0000${version}`;
      this.versionSelf.set(k, (this.versionSelf.get(k) ?? 0) + 1);
    }
  }

  /** Self and total sample counts of a function (0 if never seen). */
  counts(fn: string): { self: number; total: number } {
    const i = this.ids.get(fn);
    return i === undefined ? { self: 0, total: 0 } : { self: this.self[i]!, total: this.total[i]! };
  }

  /** Functions by self samples (ties: by total), as percentages of all samples. */
  top(n = PROFILE_PARAMS.topFunctions): TopFunction[] {
    const pct = (x: number) => (this.samples ? Math.round((x / this.samples) * 1e4) / 100 : 0);
    return this.names
      .map((name, i) => ({ name, self: this.self[i]!, total: this.total[i]! }))
      .filter((f) => f.total > 0 && f.name !== OTHER_CHAINS)
      .sort((a, b) => b.self - a.self || b.total - a.total || (a.name < b.name ? -1 : 1))
      .slice(0, n)
      .map((f) => ({ function: f.name, self_pct: pct(f.self), total_pct: pct(f.total) }));
  }

  /** Chains with their sample counts, root first. */
  stacks(): { chain: string[]; samples: number }[] {
    return [...this.chains].map(([key, samples]) => ({ chain: key.split(',').map((i) => this.names[Number(i)]!), samples }));
  }

  /**
   * The `n` most frequent chains with their counts, root first, most
   * frequent first ([OTHER_CHAINS] left out), naming only those: what the
   * profile store keeps of a run's (up to maxChains) chains.
   */
  hottestStacks(n: number): { chain: string[]; samples: number }[] {
    const other = this.ids.get(OTHER_CHAINS);
    const otherKey = other === undefined ? null : `${other}`;
    /* the floor: the count of the n-th most frequent chain, from a histogram of counts (few distinct values) */
    const histogram = new Map<number, number>();
    for (const c of this.chains.values()) histogram.set(c, (histogram.get(c) ?? 0) + 1);
    let floor = 0;
    let above = 0;
    for (const c of [...histogram.keys()].sort((a, b) => b - a)) {
      above += histogram.get(c)!;
      floor = c;
      if (above >= n) break;
    }
    /* above the floor: all; at it (often most chains have 1 sample): the first seen, up to n */
    const kept: [string, number][] = [];
    const atFloor: [string, number][] = [];
    for (const [key, samples] of this.chains) {
      if (key === otherKey) continue;
      if (samples > floor) kept.push([key, samples]);
      else if (samples === floor && atFloor.length < n) atFloor.push([key, samples]);
    }
    kept.push(...atFloor.slice(0, Math.max(0, n - kept.length)));
    return kept
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .slice(0, n)
      .map(([key, samples]) => ({ chain: key.split(',').map((id) => this.names[Number(id)]!), samples }));
  }

  hotPaths(n = PROFILE_PARAMS.hotPaths): HotPath[] {
    return this.stacks()
      .filter((s) => s.chain[0] !== OTHER_CHAINS)
      .sort((a, b) => b.samples - a.samples || (a.chain.join(';') < b.chain.join(';') ? -1 : 1))
      .slice(0, n)
      .map((s) => ({ chain: s.chain, pct: this.samples ? Math.round((s.samples / this.samples) * 1e4) / 100 : 0 }));
  }

  /** Caller -> callee edges by weight. */
  edgeList(n = Infinity): Edge[] {
    return [...this.edges]
      .map(([k, samples]) => ({ caller: this.names[Math.floor(k / 0x100000)]!, callee: this.names[k % 0x100000]!, samples }))
      .sort((a, b) => b.samples - a.samples)
      .slice(0, n);
  }

  /** Self samples of code that is not boot code, by function and version. */
  versions(): { function: string; version: string; samples: number }[] {
    return [...this.versionSelf].map(([k, samples]) => {
      const [fn, version] = k.split('\u0000') as [string, string];
      return { function: fn, version, samples };
    });
  }

  summary(): ProfileSummary {
    return { samples: this.samples, top: this.top(), hot_paths: this.hotPaths() };
  }
}
