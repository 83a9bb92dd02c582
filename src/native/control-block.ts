/**
 * @fileoverview Typed, zero-copy views of a running kernel's control block
 * (ir/runtime/kjit_cb.h).  The layout is never restated here: it is read from
 * the table `kjit_cb_layout` that the runtime exports, generated from the same
 * X-macro as the C struct.  TypeScript only names the fields it uses and
 * fails loudly if the image does not have them.
 */
import koffi from 'koffi';

import { ExitCode, KjitError } from '../errors.js';

/** Fields kjit reads or writes; the image must export every one. */
export const CB_FIELDS = [
  'magic', 'version', 'size', 'state', 'stop', 'doorbell', 'ops_limit', 'rate_milli', 'seed',
  'workload', 'workload_arg', 'concurrency', 't_thread_ns', 't_first_op_ns', 't_end_ns',
  't_origin_ns', 'cpu_first_op_ns', 'cpu_end_ns', 'ops_issued', 'ops_done', 'checksum', 'idle_ns', 'idle_waits', 'lat_count',
  'lat_sum_ns', 'lat_max_ns', 'lat_hist', 'count_indirect_calls', 'count_sysctl_loads',
  'grace_request', 'grace_done', 'grace_checks', 'grace_busy', 'grace_n', 'grace_lo', 'grace_hi', 'patch_traps',
  'poke_request', 'poke_done', 'poke_result', 'poke_n', 'poke_site', 'poke_alias', 'poke_old', 'poke_new',
  'shadow_live', 'shadow_full', 'shadow_free_request', 'shadow_free_done', 'shadow_free_lo', 'shadow_free_hi',
  'grant_request', 'grant_ask', 'grant_done', 'grant_bytes', 'grant_seq', 'grant_revocations', 'grant_revoked_ns', 'grant_free_bytes', 'grant_checks',
  'fault_count', 'fault_signo', 'fault_code', 'fault_addr', 'fault_pc', 'msg', 'ntasks', 'qs',
  'hw_cpu_features', 'hw_ndevices', 'hw_devices', 'arena_bytes', 'log_head', 'log',
  'sample_hz', 'sample_cap', 'sample_clock', 'sample_armed_hz', 'sample_armed_ns', 'sample_disarmed_ns', 'sample_error', 'sample_cost_ns',
  'sample_ticks', 'sample_overruns', 'sample_idle', 'sample_dropped', 'sample_head', 'sample_tail', 'sample_ring',
  'lazy_fd', 'lazy_pending', 'lazy_seq', 'lazy_requests', 'lazy_wait_ns', 'lazy_wait_max_ns', 'lazy_addr',
] as const;
export type CbField = (typeof CB_FIELDS)[number];

/** Mirrors enum kjit_state. */
export const KernelState = {
  NEW: 0,
  BOOTING: 1,
  RUNNING: 2,
  STOPPED: 3,
  FAULTED: 4,
  PANICKED: 5,
} as const;

export const CB_MAGIC = 0x3142434a494a4bn;

export class ControlBlockLayoutError extends KjitError {
  constructor(problem: string) {
    super(problem, 'rebuild the IR with `npm run setup`', ExitCode.FAILURE);
  }
}

interface FieldLayout {
  offset: number;
  words: number;
}

const FIELD_ROW_BYTES = 24; /* struct kjit_cb_field: name, offset, words */

/**
 * A view of one control block.  Holds no native resource: the memory belongs
 * to the kernel image and must outlive this object (KernelInstance ensures
 * it does by dropping the view before releasing the JIT).
 */
export class ControlBlock {
  readonly address: bigint;
  readonly size: number;
  private words: BigUint64Array;
  private closed = false;
  private readonly layout: ReadonlyMap<string, FieldLayout>;

  private constructor(address: bigint, size: number, layout: Map<string, FieldLayout>) {
    this.address = address;
    this.size = size;
    this.layout = layout;
    this.words = new BigUint64Array(koffi.view(address, size));
  }

  /** Build the view from the addresses of `kjit_cb`, `kjit_cb_layout` and `kjit_cb_nfields`. */
  static open(cbAddress: bigint, layoutAddress: bigint, nfieldsAddress: bigint): ControlBlock {
    const nfields = Number(new BigUint64Array(koffi.view(nfieldsAddress, 8))[0]);
    if (!(nfields > 0 && nfields < 1024)) {
      throw new ControlBlockLayoutError(`control block layout table has ${nfields} rows: the image's runtime is damaged`);
    }
    const rows = new BigUint64Array(koffi.view(layoutAddress, nfields * FIELD_ROW_BYTES));
    const layout = new Map<string, FieldLayout>();
    let size = 0;
    for (let i = 0; i < nfields; i++) {
      const name = koffi.decode.string(rows[i * 3]!) as string;
      const offset = Number(rows[i * 3 + 1]);
      const words = Number(rows[i * 3 + 2]);
      if (offset % 8 !== 0) throw new ControlBlockLayoutError(`control block field ${name} is not 8-byte aligned`);
      layout.set(name, { offset, words });
      size = Math.max(size, offset + words * 8);
    }
    for (const f of CB_FIELDS) {
      if (!layout.has(f)) {
        throw new ControlBlockLayoutError(
          `the image's control block has no field '${f}': its runtime is older than this kjit`,
        );
      }
    }
    return new ControlBlock(cbAddress, size, layout);
  }

  private at(field: CbField): FieldLayout {
    if (this.closed) throw new Error(`control block field '${field}' read after its kernel instance was disposed (its memory is gone)`);
    return this.layout.get(field)!;
  }

  /** The memory is about to be released: any later access throws instead of touching it. */
  close(): void {
    this.closed = true;
    this.words = new BigUint64Array(0);
  }

  /** First word of a field. */
  get(field: CbField): bigint {
    return this.words[this.at(field).offset / 8]!;
  }

  getNumber(field: CbField): number {
    return Number(this.get(field));
  }

  set(field: CbField, value: bigint | number): void {
    this.words[this.at(field).offset / 8] = BigInt(value);
  }

  /** All words of an array field (a live view, not a copy). */
  array(field: CbField): BigUint64Array {
    const { offset, words } = this.at(field);
    return this.words.subarray(offset / 8, offset / 8 + words);
  }

  /**
   * The words of an array field as 32-bit halves (low half first), a live
   * view: code addresses read as two halves make exact JavaScript numbers
   * without a BigInt per word (the sampler reads thousands a second).
   */
  halves(field: CbField): Uint32Array {
    const { offset, words } = this.at(field);
    return new Uint32Array(this.words.buffer, this.words.byteOffset + offset, words * 2);
  }

  /** Address of a field's first word (for futex wake-ups). */
  addressOf(field: CbField): bigint {
    return this.address + BigInt(this.at(field).offset);
  }

  /** A NUL-terminated text field. */
  text(field: CbField): string {
    const { offset, words } = this.at(field);
    const bytes = new Uint8Array(this.words.buffer, this.words.byteOffset + offset, words * 8);
    const end = bytes.indexOf(0);
    return Buffer.from(bytes.subarray(0, end < 0 ? bytes.length : end)).toString('utf8');
  }

  /** The kernel log ring, oldest line first. */
  logText(): string {
    const { offset, words } = this.at('log');
    const cap = words * 8;
    const head = Number(this.get('log_head'));
    const ring = Buffer.from(new Uint8Array(this.words.buffer, this.words.byteOffset + offset, cap));
    if (head <= cap) return ring.subarray(0, head).toString('utf8');
    const start = head % cap;
    const text = Buffer.concat([ring.subarray(start), ring.subarray(0, start)]).toString('utf8');
    return text.slice(text.indexOf('\n') + 1); /* drop the partial oldest line */
  }
}
