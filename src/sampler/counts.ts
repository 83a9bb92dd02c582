/**
 * @fileoverview Exact counts of one function, read from an instrumentation
 * window (instrument.ts): what the profile store keeps and the PGO issue
 * attaches as `!prof` metadata.  Sites are numbered in the order they appear
 * in the function's IR as boot specialized it, before any optimization; the
 * same IR (same `ir_hash`) always numbers them the same way, and `shape`
 * guards against applying counts to different code.
 */

export interface IndirectCallSite {
  /** Calls through this site during the window. */
  total: number;
  /** Most frequent targets first; what the site's table could not hold is in total only. */
  targets: { function: string; count: number }[];
}

export interface FunctionCounts {
  function: string;
  /** Content hash of the function's pristine IR (src/store/ir-hash.ts). */
  ir_hash: string;
  /** Site counts, checked before counts are applied: `${branches}b${switches}s${icalls}i` style. */
  shape: string;
  /** Calls into the function during the window. */
  entry: number;
  /**
   * Per conditional branch or switch, in IR order: executions per successor
   * (br: [true, false]; switch: [default, case 1, case 2, ...]).
   */
  branches: number[][];
  /** Per indirect call, in IR order. */
  icalls: IndirectCallSite[];
  /** How long the window was live. */
  window: { ms: number; ops: number };
}
