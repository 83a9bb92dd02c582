/**
 * @fileoverview The control channel's wire format (`kjit serve`): one JSON
 * object per line in each direction, every one carrying the protocol
 * version.  Pure: framing, request validation, reply construction; the
 * sockets are in server.ts and client.ts, the kernel in service.ts.
 *
 *   request  {"v":1,"id":7,"cmd":"sysctl","name":"net.rx_budget","value":"32"}
 *   reply    {"v":1,"id":7,"ok":true,"result":{...}}
 *            {"v":1,"id":7,"ok":false,"error":{"code":"out-of-range","problem":"...","fix":"..."}}
 *
 * Commands (`cmd`) and their fields; any other field is refused:
 *   status                      the instance's state (service.ts, StatusReport)
 *   sysctl  [name] [value]      read one (name), list all (neither), write (both)
 *   patch   function, ir        apply a live patch; `ir` is an absolute path the server reads
 *   revert  [function]          undo the live patch of `function` (default: the latest)
 *   mode    [set]               read, or set, the re-JIT mode: normal | safe | dry-run
 *   probe   function, [seconds] count and time the function's calls for a while (default 5 s, at most 600)
 * `id` (optional: an integer, or a string of at most 64 characters) is echoed.
 * Sysctl values are int64: they travel as decimal strings (a JSON integer
 * is accepted in requests).
 */
import { join } from 'node:path';

import { ROOT } from '../paths.js';

export const PROTOCOL_VERSION = 1;

/** Longest request line, newline excluded: a longer one is refused and its connection closed. */
export const MAX_REQUEST_BYTES = 64 * 1024;

export type RejitMode = 'normal' | 'safe' | 'dry-run';
export const REJIT_MODES: readonly RejitMode[] = ['normal', 'safe', 'dry-run'];

export type RequestId = number | string | null;

export type Request =
  | { id: RequestId; cmd: 'status' }
  | { id: RequestId; cmd: 'sysctl'; name?: string; value?: string }
  | { id: RequestId; cmd: 'patch'; function: string; ir: string }
  | { id: RequestId; cmd: 'revert'; function?: string }
  | { id: RequestId; cmd: 'mode'; set?: RejitMode }
  | { id: RequestId; cmd: 'probe'; function: string; seconds?: number };

export type Command = Request['cmd'];

/** A request as a client writes it (the connection numbers it). */
export type RequestBody = WithoutId<Request>;
type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

export type ErrorCode =
  | 'malformed'
  | 'oversized'
  | 'version'
  | 'unknown-command'
  | 'peer-refused'
  | 'busy'
  | 'not-ready'
  | 'no-such-sysctl'
  | 'read-only'
  | 'boot-fixed'
  | 'out-of-range'
  | 'safe-mode'
  | 'not-patchable'
  | 'no-patch'
  | 'patch-refused'
  | 'no-such-function'
  | 'probe-refused'
  | 'internal';

/** Why a request was not carried out: sent to the client as is; nothing changed. */
export interface Refusal {
  code: ErrorCode;
  problem: string;
  fix: string;
}

export function refusal(code: ErrorCode, problem: string, fix: string): Refusal {
  return { code, problem, fix };
}

export type Reply =
  | { v: number; id: RequestId; ok: true; result: unknown }
  | { v: number; id: RequestId; ok: false; error: Refusal };

export type Outcome = { ok: true; result: unknown } | { ok: false; refusal: Refusal };

/** One reply line (newline included). */
export function replyLine(id: RequestId, outcome: Outcome): string {
  const reply: Reply = outcome.ok
    ? { v: PROTOCOL_VERSION, id, ok: true, result: outcome.result }
    : { v: PROTOCOL_VERSION, id, ok: false, error: outcome.refusal };
  return `${JSON.stringify(reply)}\n`;
}

/** One request line (newline included). */
export function requestLine(id: RequestId, body: RequestBody): string {
  return `${JSON.stringify({ v: PROTOCOL_VERSION, id, ...body })}\n`;
}

/* ---- framing -------------------------------------------------------------------- */

export type Frame = { kind: 'line'; text: string } | { kind: 'invalid-utf8' } | { kind: 'oversized' };

/**
 * Splits a byte stream into request lines.  Holds at most MAX_REQUEST_BYTES
 * of an unfinished line: past that it reports `oversized` once and the
 * caller closes the connection (there is no way to find the next request).
 */
export class LineFramer {
  private parts: Buffer[] = [];
  private held = 0;
  private overflowed = false;
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });

  constructor(private readonly maxBytes = MAX_REQUEST_BYTES) {}

  push(chunk: Buffer): Frame[] {
    if (this.overflowed) return [];
    const frames: Frame[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(10); nl >= 0; nl = chunk.indexOf(10, start)) {
      this.parts.push(chunk.subarray(start, nl));
      this.held += nl - start;
      start = nl + 1;
      if (this.held > this.maxBytes) return this.overflow(frames);
      frames.push(this.decode(Buffer.concat(this.parts)));
      this.parts = [];
      this.held = 0;
    }
    if (start < chunk.length) {
      this.parts.push(chunk.subarray(start));
      this.held += chunk.length - start;
      if (this.held > this.maxBytes) return this.overflow(frames);
    }
    return frames;
  }

  private overflow(frames: Frame[]): Frame[] {
    this.overflowed = true;
    this.parts = [];
    return [...frames, { kind: 'oversized' }];
  }

  private decode(bytes: Buffer): Frame {
    try {
      return { kind: 'line', text: this.decoder.decode(bytes).replace(/\r$/, '') };
    } catch {
      return { kind: 'invalid-utf8' };
    }
  }
}

/* ---- requests ------------------------------------------------------------------- */

export type Parsed = { ok: true; request: Request } | { ok: false; id: RequestId; refusal: Refusal };

const FIELDS: Record<Command, { required: readonly string[]; optional: readonly string[] }> = {
  status: { required: [], optional: [] },
  sysctl: { required: [], optional: ['name', 'value'] },
  patch: { required: ['function', 'ir'], optional: [] },
  revert: { required: [], optional: ['function'] },
  mode: { required: [], optional: ['set'] },
  probe: { required: ['function'], optional: ['seconds'] },
};

/** Longest probe a request may ask for. */
export const MAX_PROBE_SECONDS = 600;

const SYSCTL_NAME = /^[a-z0-9_.]{1,64}$/;
const FUNCTION_NAME = /^[A-Za-z_.$][\w.$]{0,255}$/;
const INTEGER_TEXT = /^-?\d{1,20}$/;
const MAX_PATH = 4096;

function malformed(problem: string, fix = 'send one JSON object per line, as `kjit help` describes'): Refusal {
  return refusal('malformed', problem, fix);
}

function idOf(o: Record<string, unknown>): RequestId | Refusal {
  const id = o.id;
  if (id === undefined || id === null) return null;
  if (typeof id === 'number' && Number.isSafeInteger(id)) return id;
  if (typeof id === 'string' && id.length <= 64) return id;
  return malformed('`id` must be an integer or a string of at most 64 characters');
}

/* the values checked never have a `problem` field of their own */
const isRefusal = (x: unknown): x is Refusal => typeof x === 'object' && x !== null && 'problem' in x;

/** Validate one request line. */
export function parseRequest(text: string): Parsed {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch {
    return { ok: false, id: null, refusal: malformed('the request is not JSON') };
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) {
    return { ok: false, id: null, refusal: malformed('the request is not a JSON object') };
  }
  const obj = o as Record<string, unknown>;
  const id = idOf(obj);
  if (isRefusal(id)) return { ok: false, id: null, refusal: id };
  const fail = (r: Refusal): Parsed => ({ ok: false, id, refusal: r });
  if (obj.v !== PROTOCOL_VERSION) {
    return fail(
      refusal(
        'version',
        obj.v === undefined ? 'the request has no protocol version `v`' : `protocol version ${JSON.stringify(obj.v)} is not spoken here`,
        `send "v":${PROTOCOL_VERSION} (use a kjit client of this version)`,
      ),
    );
  }
  const cmd = obj.cmd;
  if (typeof cmd !== 'string' || !Object.hasOwn(FIELDS, cmd)) {
    return fail(
      refusal('unknown-command', `unknown command ${JSON.stringify(cmd ?? null)?.slice(0, 80)}`, `use one of: ${Object.keys(FIELDS).join(', ')}`),
    );
  }
  const spec = FIELDS[cmd as Command];
  for (const key of Object.keys(obj)) {
    if (key !== 'v' && key !== 'id' && key !== 'cmd' && !spec.required.includes(key) && !spec.optional.includes(key)) {
      return fail(malformed(`unknown field '${key.slice(0, 64)}' for ${cmd}`, `${cmd} takes ${[...spec.required, ...spec.optional].join(', ') || 'no fields'}`));
    }
  }
  for (const key of spec.required) {
    if (obj[key] === undefined) return fail(malformed(`${cmd} needs the field '${key}'`));
  }
  const checked = checkFields(cmd as Command, obj);
  if (isRefusal(checked)) return fail(checked);
  return { ok: true, request: { id, ...checked } as Request };
}

/** The command's own fields, type-checked. */
function checkFields(cmd: Command, o: Record<string, unknown>): Record<string, unknown> | Refusal {
  switch (cmd) {
    case 'status':
      return { cmd };
    case 'sysctl': {
      if (o.name !== undefined && (typeof o.name !== 'string' || !SYSCTL_NAME.test(o.name))) {
        return malformed('`name` must be a sysctl name such as net.rx_budget', 'kjit sysctl lists them');
      }
      let value: string | undefined;
      if (typeof o.value === 'number' && Number.isSafeInteger(o.value)) value = String(o.value);
      else if (typeof o.value === 'string' && INTEGER_TEXT.test(o.value)) value = o.value;
      else if (o.value !== undefined) return malformed('`value` must be an integer (a decimal string or a JSON integer)');
      if (value !== undefined && o.name === undefined) return malformed('a sysctl write needs `name`');
      return { cmd, ...(o.name !== undefined ? { name: o.name } : {}), ...(value !== undefined ? { value } : {}) };
    }
    case 'patch': {
      if (typeof o.function !== 'string' || !FUNCTION_NAME.test(o.function)) return malformed('`function` must be a function name');
      if (typeof o.ir !== 'string' || !o.ir.startsWith('/') || o.ir.length > MAX_PATH || o.ir.includes('\0')) {
        return malformed('`ir` must be the absolute path of a .ll or .bc file', 'kjit patch resolves FILE for you');
      }
      return { cmd, function: o.function, ir: o.ir };
    }
    case 'revert':
      if (o.function !== undefined && (typeof o.function !== 'string' || !FUNCTION_NAME.test(o.function))) {
        return malformed('`function` must be a function name');
      }
      return { cmd, ...(o.function !== undefined ? { function: o.function } : {}) };
    case 'mode':
      if (o.set !== undefined && !REJIT_MODES.includes(o.set as RejitMode)) {
        return malformed(`\`set\` must be one of ${REJIT_MODES.join(', ')}`);
      }
      return { cmd, ...(o.set !== undefined ? { set: o.set } : {}) };
    case 'probe':
      if (typeof o.function !== 'string' || !FUNCTION_NAME.test(o.function)) return malformed('`function` must be a function name');
      if (o.seconds !== undefined && !(typeof o.seconds === 'number' && o.seconds > 0 && o.seconds <= MAX_PROBE_SECONDS)) {
        return malformed(`\`seconds\` must be a number of seconds above 0 and at most ${MAX_PROBE_SECONDS}`);
      }
      return { cmd, function: o.function, ...(o.seconds !== undefined ? { seconds: o.seconds } : {}) };
  }
}

/** kjit serve's defaults (here, not in serve.ts, so the CLI can read them without loading the server). */
export const SERVE_DEFAULTS = {
  /** Where snapshots and events are appended unless --flush-to says otherwise. */
  journal: join(ROOT, 'build', 'state', 'serve.jsonl'),
  /** Seconds between snapshots. */
  flushEveryS: 10,
};

