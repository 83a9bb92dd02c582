/**
 * @fileoverview The JIT's memory budget, negotiated with the kernel
 * (DESIGN.md section 7).  The JIT asks the kernel for memory; the kernel's
 * allocator grants it from its free pages by its own policy and takes it
 * back under pressure (the reference kernel: ir/kernel/mm/grant.c; the
 * protocol: ir/runtime/grant.c).  The grant is split (splitGrant, policy)
 * into a code share, enforced by the code region's allocator (an object
 * that needs more fails to link, cleanly: ir/runtime/codemem.c), and the
 * compiler's share, the compile server's memory limit (RLIMIT_AS on top of
 * the server as it is when ready; compile-server.ts).  So the limits are
 * enforced, not counted.
 *
 * What counts against the grant ("used"): the code region's bytes linked
 * since the budget started (versions, tiers, patches' state) plus the
 * compile server's resident memory above what it had when ready.  The
 * server's own baseline (Node, its LLVM and the image's IR: ~117 MB
 * measured) is a fixed cost like kjit's own code, reported but not granted:
 * it does not depend on what the JIT compiles.
 *
 * On a revocation (the kernel lowered the grant at a quiescent point and
 * bumped grant_seq; this side reads it every pollMs) it, in order:
 *   1. lowers the code region's limit (nothing new links beyond the share);
 *   2. cancels the compiles not answered yet (CompileServer.cancel: the
 *      server is killed if it had any, its memory back at once);
 *   3. lowers the server's limit (killed if it maps more), and stops an idle
 *      server whose resident memory is above the new share;
 *   4. evicts the coldest code (least sampled per byte) back to boot code
 *      (Installer.evict: revert, then free after a grace period) until the
 *      code in use fits its share;
 * and measures the time from the kernel's revocation (grant_revoked_ns) to
 * being back under the grant.  Later it asks again, backing off.
 *
 * The engine asks canSpend(bytes) before it builds a tier or a version and
 * skips the job ('over-budget') if not; a compile that fails because of the
 * budget (refused link, cancelled, the server dead of its limit) is not the
 * job's fault: overBudget(e) says so, and the job is tried again later.
 */
import type { KernelInstance } from '../kernel/instance.js';
import { CodeRegion } from '../native/codemem.js';
import { KernelState } from '../native/control-block.js';
import { InstallError, type Installer } from '../rejit/installer.js';
import type { CodeVersion } from '../rejit/versions.js';
import { type CompileServer, CompileServerError } from './compile-server.js';
import { processMemory } from './proc.js';
import type { BudgetFigures } from './stats.js';

export const BUDGET_PARAMS = {
  /**
   * What the JIT asks the kernel for (bytes): its code plus what its
   * compiles add to the compile server.  The reference kernel grants at
   * most half of what it could give: 112 MiB of its default 256 MiB arena.
   */
  askBytes: 112 << 20,
  /** The code share of a grant: this part of it ... */
  codeShare: 0.125,
  /** ... and at most this many bytes; the rest is the compiler's. */
  codeMaxBytes: 32 << 20,
  /**
   * Resident memory the compile server can add inside address space it
   * already has (V8's reserved heap, malloc arenas), which RLIMIT_AS cannot
   * see: its limit is the compiler's share less this.  Measured: a tier
   * window's compile added 51 MB of address space and 76 MB of RSS.
   */
  rssSlackBytes: 24 << 20,
  /** A compile is expected to need this much of the server's limit (bytes; measured: a whole-image O3 tier of web added 53.5 MiB of address space). */
  compileBytes: 64 << 20,
  /** How often the grant is read (ms): a revocation is seen within this. */
  pollMs: 20,
  /** After a revocation (or a grant below the ask), ask again this long later, doubling up to reaskMaxMs. */
  reaskMs: 1000,
  reaskMaxMs: 16_000,
  /** How long the kernel may take to answer a request (ms). */
  answerMs: 1000,
  /** Stop trying to get back under after this long (ms): the next poll tries again. */
  enforceMaxMs: 2000,
};

export type BudgetParams = typeof BUDGET_PARAMS;

/** A grant split into its shares (splitGrant). */
export interface GrantSplit {
  grantBytes: number;
  /** What linked code may hold (the code region's limit above its baseline). */
  codeBytes: number;
  /** The compile server's share: its resident memory above its ready baseline. */
  compilerBytes: number;
  /** The server's RLIMIT_AS on top of its ready address space (the share less the RSS slack). */
  serverLimitBytes: number;
}

/** Split a grant between code and the compiler (policy, pure). */
export function splitGrant(grantBytes: number, p: BudgetParams = BUDGET_PARAMS): GrantSplit {
  const g = Math.max(0, Math.floor(grantBytes));
  const codeBytes = Math.min(Math.floor(g * p.codeShare), p.codeMaxBytes);
  const compilerBytes = g - codeBytes;
  return { grantBytes: g, codeBytes, compilerBytes, serverLimitBytes: Math.max(0, compilerBytes - p.rssSlackBytes) };
}

/** A code object the budget may evict: its bytes, how hot it is, whether it can go now. */
export interface Resident {
  id: number;
  bytes: number;
  /** Samples in its functions (higher: hotter). */
  heat: number;
}

/**
 * Which objects to evict to free `overBytes` (policy, pure): coldest per
 * byte first (a big cold tier before a small hot version), until enough.
 */
export function chooseEvictions(objects: readonly Resident[], overBytes: number): number[] {
  if (!(overBytes > 0)) return [];
  const order = [...objects].sort((a, b) => a.heat / Math.max(1, a.bytes) - b.heat / Math.max(1, b.bytes) || b.bytes - a.bytes || a.id - b.id);
  const out: number[] = [];
  let freed = 0;
  for (const o of order) {
    if (freed >= overBytes) break;
    out.push(o.id);
    freed += o.bytes;
  }
  return out;
}

/** What the engine asks before it builds (src/pgo/engine.ts). */
export interface SpendGate {
  /** May the JIT link `codeBytes` more, and run a compile needing `compileBytes` (default: the expected) now? */
  canSpend(codeBytes: number, compileBytes?: number): boolean;
  /** Did `e` (a failed build or link) fail because of the budget (then it is tried again later, nobody's fault)? */
  overBudget(e: unknown): boolean;
}

/** One revocation, as the run reports it. */
export interface RevocationRecord {
  /** Grant before and after (bytes). */
  from_bytes: number;
  to_bytes: number;
  /** From the kernel's revocation to back under the grant (ms); null: not yet (gave up for now). */
  back_under_ms: number | null;
  /** From the revocation until the host saw it (ms): the poll's share of back_under_ms. */
  seen_ms: number;
  cancelled_jobs: number;
  evicted_versions: number;
  /** What happened to the compile server: its limit applied, killed to apply it, stopped, or nothing running. */
  server: 'applied' | 'restarted' | 'next-start' | 'stopped';
  /** Code and server bytes in use when back under (or when it gave up). */
  code_bytes: number;
  server_bytes: number;
}

export interface BudgetReport extends BudgetFigures {
  ask_bytes: number;
  grant_bytes: number;
  /** The most used above the grant outside a revocation's enforcement (bytes; 0: never above). */
  over_grant_bytes_max: number;
  /** The compile server's fixed baseline (resident when ready), not granted. */
  server_baseline_bytes: number;
  revocation_log: RevocationRecord[];
  /** The kernel's free memory when it last decided (bytes; null: its policy does not say). */
  kernel_free_bytes: number | null;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Walk an error and its causes. */
function* causes(e: unknown): Generator<unknown> {
  for (let x = e, n = 0; x && n < 8; x = (x as { cause?: unknown }).cause, n++) yield x;
}

export class MemoryBudget implements SpendGate {
  readonly params: BudgetParams;
  private readonly region = CodeRegion.get();
  /** The code region's bytes in use when the budget started (boot code): not the JIT's. */
  private baseBytes = 0;
  private split: GrantSplit;
  private seq = 0n;
  private revocations = 0;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private asking: Promise<void> | null = null;
  private nextAskAt = 0;
  private reaskMs: number;
  private enforcing: Promise<void> | null = null;
  private readonly log: RevocationRecord[] = [];
  private readonly figuresNow = { bytesMax: 0, usedBytesMax: 0, evictionMsMax: null as number | null, overGrantMax: 0 };
  private server0 = { pid: 0, rss: 0 };
  private kernelFree = 0;
  private expectedCompileBytes: number;

  constructor(
    private readonly instance: KernelInstance,
    private readonly installer: Installer,
    private readonly server: CompileServer,
    private readonly o: {
      params?: Partial<BudgetParams>;
      /** How hot a function is (samples); evictions go coldest first. */
      heat?: (fn: string) => number;
      /** Revocations and evictions, for the run's log. */
      log?: (line: string) => void;
    } = {},
  ) {
    this.params = { ...BUDGET_PARAMS, ...o.params };
    this.split = splitGrant(0, this.params);
    this.reaskMs = this.params.reaskMs;
    this.expectedCompileBytes = this.params.compileBytes;
  }

  /** Start: nothing links beyond the (empty) grant, ask the kernel, read the grant every pollMs. */
  start(): void {
    this.baseBytes = this.region.stats().bytesInUse;
    this.region.setLimit(this.baseBytes);
    this.server.setMemoryLimit(0);
    this.timer = setInterval(() => this.poll(), this.params.pollMs);
    this.timer.unref();
    void this.ask(this.params.askBytes);
  }

  /**
   * Link boot code compiled late (src/rejit/lazy.ts: a function's first
   * call) outside the grant: the kernel needs it to go on, whatever the JIT
   * holds, and its bytes count as boot code from then on, not the JIT's.
   */
  bootCode<T>(link: () => T): T {
    const before = this.region.stats().bytesInUse;
    this.region.setLimit(this.region.stats().regionBytes);
    try {
      return link();
    } finally {
      this.baseBytes += Math.max(0, this.region.stats().bytesInUse - before);
      this.region.setLimit(this.stopped ? this.region.stats().regionBytes : this.baseBytes + this.split.codeBytes);
    }
  }

  /** Stop reading the grant; the code region and the compile server are unlimited again (the run is over). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.asking;
    await this.enforcing;
    this.region.setLimit(this.region.stats().regionBytes);
    this.server.setMemoryLimit(null);
  }

  /** Change the parameters (the shares, the ask) while it runs: the grant held is split again at once, and a new ask is sent. */
  configure(params: Partial<BudgetParams>): Promise<void> {
    const ask = params.askBytes !== undefined && params.askBytes !== this.params.askBytes;
    Object.assign(this.params, params);
    if (!this.stopped) this.onGrant(this.split.grantBytes);
    return ask ? this.ask(this.params.askBytes) : Promise.resolve();
  }

  /** The grant now and its shares. */
  get shares(): Readonly<GrantSplit> {
    return this.split;
  }

  /** Ask the kernel for `bytes` (less than the grant gives the rest back). Resolves once it answered (or did not in answerMs). */
  ask(bytes: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.params.askBytes = bytes;
    const run = async () => {
      await this.asking;
      /* the kernel answers once its thread runs */
      while (!this.stopped && !this.instance.isDisposed && this.instance.state === KernelState.NEW) await sleep(2);
      if (this.stopped || this.instance.isDisposed) return;
      this.instance.cb.set('grant_ask', BigInt(Math.max(0, Math.floor(bytes))));
      await this.instance.request('grant', this.params.answerMs);
      this.poll();
    };
    const p = run().finally(() => {
      if (this.asking === p) this.asking = null;
    });
    this.asking = p;
    return p;
  }

  /* ---- what is used ---------------------------------------------------------------- */

  /** Code linked since the budget started (bytes). */
  codeBytes(): number {
    return Math.max(0, this.region.stats().bytesInUse - this.baseBytes);
  }

  /** The compile server's resident memory above its ready baseline (bytes; 0: none running). */
  serverBytes(): number {
    const pid = this.server.pid;
    if (!pid) return 0;
    if (pid !== this.server0.pid) {
      const ready = this.server.stats().ready;
      if (!ready) return 0; /* starting: its baseline is not known yet (it is reading the image) */
      this.server0 = { pid, rss: ready.baselineRssBytes };
    }
    const m = processMemory(pid);
    return m ? Math.max(0, m.rssBytes - this.server0.rss) : 0;
  }

  /** Code plus the server's share in use (bytes). */
  used(): number {
    return this.codeBytes() + this.serverBytes();
  }

  /* ---- the gate ------------------------------------------------------------------ */

  canSpend(codeBytes: number, compileBytes = this.expectedCompileBytes): boolean {
    if (this.stopped) return true;
    if (this.enforcing) return false;
    const s = this.split;
    return this.codeBytes() + codeBytes <= s.codeBytes && compileBytes <= s.serverLimitBytes;
  }

  overBudget(e: unknown): boolean {
    for (const x of causes(e)) {
      if (x instanceof CompileServerError && (x.cancelled || x.death === 'memory')) return true;
      if (x instanceof Error && /an allocation was refused|the memory budget was revoked/.test(x.message)) return true;
      /* a link that failed because the code region refused an allocation (LLVM's error names only the symbols it could not materialize) */
      if (x instanceof InstallError && x.phase === 'link') {
        const refused = this.region.stats().objectsRefused;
        if (refused > this.refusedSeen) {
          this.refusedSeen = refused;
          return true;
        }
      }
    }
    return false;
  }

  private refusedSeen = CodeRegion.get().stats().objectsRefused;

  /* ---- the mechanism --------------------------------------------------------------- */

  /** Read the grant; carry out a change; sample what is used; ask again when due. */
  poll(): void {
    if (this.stopped || this.instance.isDisposed) return;
    const cb = this.instance.cb;
    const seq = cb.get('grant_seq');
    if (seq !== this.seq) {
      this.seq = seq;
      this.onGrant(Number(cb.get('grant_bytes')));
    }
    this.kernelFree = cb.getNumber('grant_free_bytes');
    const used = this.used();
    this.figuresNow.usedBytesMax = Math.max(this.figuresNow.usedBytesMax, used);
    /* above the grant outside a revocation: the RSS slack was too small for a compile (recorded, not enforced: cancelling it would only start it again) */
    if (!this.enforcing) this.figuresNow.overGrantMax = Math.max(this.figuresNow.overGrantMax, used - this.split.grantBytes);
    const now = performance.now();
    if (!this.asking && this.split.grantBytes < this.params.askBytes && now >= this.nextAskAt) {
      const before = this.split.grantBytes;
      this.nextAskAt = Infinity;
      void this.ask(this.params.askBytes).then(() => {
        /* no better answer: back off */
        this.reaskMs = this.split.grantBytes > before ? this.params.reaskMs : Math.min(this.reaskMs * 2, this.params.reaskMaxMs);
        this.nextAskAt = performance.now() + this.reaskMs;
      });
    }
  }

  private onGrant(bytes: number): void {
    const before = this.split.grantBytes;
    this.split = splitGrant(bytes, this.params);
    this.figuresNow.bytesMax = Math.max(this.figuresNow.bytesMax, bytes);
    /* 1. nothing new links beyond the code share */
    this.region.setLimit(this.baseBytes + this.split.codeBytes);
    const revocations = this.instance.cb.getNumber('grant_revocations');
    if (revocations > this.revocations) {
      this.revocations = revocations;
      this.nextAskAt = performance.now() + this.reaskMs;
      this.o.log?.(`budget: the kernel revoked memory: grant ${mib(before)} -> ${mib(bytes)}`);
      void this.enforce(this.instance.cb.get('grant_revoked_ns'), before);
    } else if (bytes < before) {
      void this.enforce(null, before);
    } else {
      this.server.setMemoryLimit(this.split.serverLimitBytes);
      if (bytes > before) this.o.log?.(`budget: granted ${mib(bytes)} (code ${mib(this.split.codeBytes)}, compiler ${mib(this.split.compilerBytes)})`);
    }
  }

  /** Steps 2-4 of the file comment, one at a time (a revocation during another is carried out after it); records each revocation. */
  private enforce(revokedNs: bigint | null, fromBytes: number): Promise<void> {
    if (this.enforcing) {
      this.pending = { revokedNs: this.pending?.revokedNs ?? revokedNs, fromBytes: this.pending?.fromBytes ?? fromBytes };
      return this.enforcing;
    }
    const p = (async () => {
      for (let next: typeof this.pending = { revokedNs, fromBytes }; next; next = this.pending) {
        this.pending = null;
        await this.enforceNow(next.revokedNs, next.fromBytes);
      }
    })().finally(() => {
      this.enforcing = null;
    });
    this.enforcing = p;
    return p;
  }

  private pending: { revokedNs: bigint | null; fromBytes: number } | null = null;

  private async enforceNow(revokedNs: bigint | null, fromBytes: number): Promise<void> {
    const t0 = revokedNs ?? process.hrtime.bigint();
    const sinceMs = () => Number(process.hrtime.bigint() - t0) / 1e6;
    const s = this.split;
    const rec: RevocationRecord = {
      from_bytes: fromBytes,
      to_bytes: s.grantBytes,
      back_under_ms: null,
      seen_ms: sinceMs(),
      cancelled_jobs: 0,
      evicted_versions: 0,
      server: 'next-start',
      code_bytes: 0,
      server_bytes: 0,
    };
    /* 2. compiles queued for memory the JIT no longer has */
    rec.cancelled_jobs = this.server.cancel(`the kernel took memory back (grant ${mib(fromBytes)} -> ${mib(s.grantBytes)})`);
    /* 3. the compiler's share */
    rec.server = this.server.setMemoryLimit(s.serverLimitBytes);
    if (this.serverBytes() > s.compilerBytes && this.server.release()) rec.server = 'stopped';
    /* 4. the coldest code, until the code in use fits its share */
    while (!this.stopped && !this.instance.isDisposed && this.codeBytes() > s.codeBytes && sinceMs() < this.params.enforceMaxMs) {
      const n = await this.evict(this.codeBytes() - s.codeBytes);
      rec.evicted_versions += n;
      if (n === 0) await sleep(5); /* pinned by a window or a check under way, or a grace period not over: soon */
    }
    rec.code_bytes = this.codeBytes();
    rec.server_bytes = this.serverBytes();
    if (rec.code_bytes + rec.server_bytes <= this.split.grantBytes) {
      rec.back_under_ms = sinceMs();
      this.figuresNow.evictionMsMax = Math.max(this.figuresNow.evictionMsMax ?? 0, rec.back_under_ms);
    }
    /* a revocation, or a give-back of the JIT's own: only the kernel's count as revocations */
    if (revokedNs !== null) this.log.push(rec);
    if (rec.evicted_versions || rec.cancelled_jobs || revokedNs !== null) {
      this.o.log?.(
        `budget: back under ${mib(s.grantBytes)} ${rec.back_under_ms === null ? 'NOT yet' : `in ${rec.back_under_ms.toFixed(1)} ms`}: ` +
          `${rec.evicted_versions} version(s) evicted, ${rec.cancelled_jobs} compile(s) cancelled, compile server ${rec.server}`,
      );
    }
  }

  /** Evict the coldest objects for `overBytes`; resolves with the versions freed. */
  private async evict(overBytes: number): Promise<number> {
    const heat = this.o.heat ?? (() => 0);
    const objects = this.installer.resident().filter((r) => r.versions.length > 0);
    const ids = chooseEvictions(
      objects.map((r, id) => ({ id, bytes: r.bytes, heat: r.versions.reduce((sum, v) => sum + heat(v.fn), 0) })),
      overBytes,
    );
    const versions: CodeVersion[] = ids.flatMap((id) => objects[id]!.versions);
    if (!versions.length) return 0;
    return this.installer.evict(versions, this.params.answerMs);
  }

  /** For `kjit run --json`'s scheduler object. */
  figures(): BudgetFigures {
    return { bytesMax: this.figuresNow.bytesMax, usedBytesMax: this.figuresNow.usedBytesMax, revocations: this.revocations, evictionMsMax: this.figuresNow.evictionMsMax };
  }

  report(): BudgetReport {
    const free = this.instance.isDisposed ? this.kernelFree : this.instance.cb.getNumber('grant_free_bytes');
    return {
      ...this.figures(),
      ask_bytes: this.params.askBytes,
      grant_bytes: this.split.grantBytes,
      over_grant_bytes_max: Math.max(0, this.figuresNow.overGrantMax),
      server_baseline_bytes: this.server0.rss,
      revocation_log: [...this.log],
      kernel_free_bytes: free || null,
    };
  }
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(bytes % 2 ** 20 ? 1 : 0)} MiB`;
}
