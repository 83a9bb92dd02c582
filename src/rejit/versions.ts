/**
 * @fileoverview Code versions and the code map.  Every piece of code kjit
 * installs for a function is a CodeVersion with a kind and a life cycle; the
 * CodeMap remembers the address range of every version ever installed (also
 * after it was freed), so a sample or a fault at an address can always be
 * attributed to the version that was there.
 */
import type { ResourceTracker } from '../native/llvm.js';
import type { FoldedSysctl } from '../pgo/guard.js';
import type { AppliedProfile } from '../pgo/metadata.js';
import type { UnitData } from './unit.js';

export type VersionKind = 'baseline' | 'instrumented' | 'optimized' | 'specialized' | 'patched';

/**
 * compiled: linked, not reachable yet; live: the function's entry jumps to it
 * (or, for a baseline, nothing redirects it away); retired: no longer
 * reachable for new calls, waiting for a grace period; freed: its code is
 * gone; failed: never went live.
 */
export type VersionState = 'compiled' | 'live' | 'retired' | 'freed' | 'failed';

export interface CodeVersion {
  id: number;
  fn: string;
  kind: VersionKind;
  /** Symbol of this version's code (the baseline: the function itself). */
  symbol: string;
  address: bigint;
  size: number;
  /** Functions whose bodies this version may contain (inlined into it). */
  inlines: readonly string[];
  state: VersionState;
  reason: string;
  tracker: ResourceTracker | null;
  times: { compiledMs: number; liveMs?: number; retiredMs?: number; freedMs?: number };
  /** An instrumented or probing version's data (src/rejit/unit.ts UnitData), at `address`. */
  data?: UnitData & { address: bigint };
  /** How it was built: IR size, and what became of its profile and specialization. */
  build?: { irInstructions: number; profile?: AppliedProfile; specialized?: FoldedSysctl[] };
  /** The tier (Installer.compileTier) whose object holds its code: freed with the whole tier (tracker null). */
  tier?: number;
  /** A retired version kept (not freed) because it will be made live again (an instrumentation window's previous version). */
  pinned?: boolean;
  /** Called once, just before the version's code and data are freed (after its grace period): read its data here. */
  beforeFree?: (v: CodeVersion) => void;
}

export interface CodeRange {
  lo: bigint;
  hi: bigint;
  version: CodeVersion;
}

/** Address ranges of every version, sorted; never forgets a range. */
export class CodeMap {
  private ranges: CodeRange[] = [];

  add(version: CodeVersion): void {
    const r = { lo: version.address, hi: version.address + BigInt(Math.max(1, version.size)), version };
    const i = this.ranges.findIndex((x) => x.lo > r.lo);
    if (i < 0) this.ranges.push(r);
    else this.ranges.splice(i, 0, r);
  }

  /** The version whose code covers `address`, the most recent first (a freed range may be reused). */
  find(address: bigint): CodeVersion | null {
    let best: CodeVersion | null = null;
    for (const r of this.ranges) {
      if (r.lo > address) break;
      if (address < r.hi && (!best || r.version.id > best.id)) best = r.version;
    }
    return best;
  }

  get size(): number {
    return this.ranges.length;
  }

  /** Every range, by address (read-only: for listings such as the perf map). */
  list(): readonly CodeRange[] {
    return this.ranges;
  }
}
