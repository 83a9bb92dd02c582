/**
 * @fileoverview What a serving instance flushes (`kjit serve --flush-to`):
 * JSON lines, appended; periodic snapshots of its status, a final one when
 * it stops, and the events of its control channel (patches, dry-run
 * decisions, sysctl writes, mode changes).  The kernel learns nothing else
 * yet: profiles join these lines when the sampler and the profile store
 * issues land.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export const JOURNAL_FORMAT = 'kjit-serve-journal/1';

export type JournalRecord =
  | { kind: 'snapshot'; final: boolean; status: unknown }
  | { kind: 'event'; event: string; detail: Record<string, unknown> };

export class Journal {
  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
  }

  /** One line, written through (a crash loses nothing already appended). */
  append(record: JournalRecord): void {
    appendFileSync(this.path, `${JSON.stringify({ format: JOURNAL_FORMAT, pid: process.pid, time: new Date().toISOString(), ...record })}\n`);
  }
}
