/**
 * @fileoverview The consumer side of the sample ring (protocol in
 * ir/runtime/sampler.c, steps 5 to 7): reads the samples the kernel
 * thread's signal handler published since the last drain, then gives their
 * slots back.  Mechanism only: it turns slots into RawSamples and knows
 * nothing of symbols or profiles.
 */
import type { ControlBlock } from '../native/control-block.js';

/** One sample as the handler recorded it; addresses as exact numbers (< 2^53). */
export interface RawSample {
  /** Index of the sample since the kernel started (its slot's seq). */
  seq: number;
  /** The interrupted program counter. */
  pc: number;
  /** The word at the stack pointer (a frameless leaf's return address), or null if unread. */
  sp0: number | null;
  /** Return addresses of the frame-pointer chain, innermost first. */
  frames: number[];
  /** The chain went on beyond what a slot holds. */
  truncated: boolean;
}

/** The slot format, as the runtime exports it (kjit_sample_format). */
export interface SampleFormat {
  slotWords: number;
  headWords: number;
  truncatedFlag: number;
  sp0Flag: number;
}

export interface DrainCounts {
  /** Samples read. */
  read: number;
  /** Slots that broke the protocol (a seq that is not its index): never expected. */
  corrupt: number;
}

const TWO32 = 2 ** 32;

export class SampleRing {
  private readonly halves: Uint32Array;
  private readonly capacity: number;

  constructor(
    private readonly cb: ControlBlock,
    private readonly format: SampleFormat,
  ) {
    this.halves = cb.halves('sample_ring');
    const slots = this.halves.length / 2 / format.slotWords;
    const cap = cb.getNumber('sample_cap');
    /* the producer's capacity: sample_cap as written before the kernel started */
    this.capacity = cap > 0 && cap <= slots ? cap : slots;
  }

  /** Read every published sample (oldest first), hand each to `onSample`, free their slots. */
  drain(onSample: (s: RawSample) => void): DrainCounts {
    const cb = this.cb;
    const headWord = cb.get('sample_head'); /* 5 */
    const tail = Number(cb.get('sample_tail'));
    const head = Number(headWord);
    if (head === tail) return { read: 0, corrupt: 0 };
    const { slotWords, headWords, truncatedFlag, sp0Flag } = this.format;
    const h = this.halves;
    const word = (i: number) => h[2 * i]! + h[2 * i + 1]! * TWO32;
    let corrupt = 0;
    let read = 0;
    let first = tail;
    if (head - tail > this.capacity) {
      /* more than the ring holds: the producer broke step 2; keep the newest */
      corrupt += head - tail - this.capacity;
      first = head - this.capacity;
    }
    for (let i = first; i < head; i++) {
      const base = (i % this.capacity) * slotWords; /* 6 */
      const seq = word(base);
      if (seq !== i) {
        corrupt++;
        continue;
      }
      const meta = word(base + 1);
      const depth = Math.min(meta & 0xff, slotWords - headWords);
      const frames = new Array<number>(depth);
      for (let d = 0; d < depth; d++) frames[d] = word(base + headWords + d);
      onSample({
        seq,
        pc: word(base + 2),
        sp0: meta & sp0Flag ? word(base + 3) : null,
        frames,
        truncated: (meta & truncatedFlag) !== 0,
      });
      read++;
    }
    cb.set('sample_tail', headWord); /* 7 */
    return { read, corrupt };
  }
}
