/**
 * @fileoverview The client side of the control channel: find the instance
 * to talk to (rundir.ts), then exchange request and reply lines with it
 * (protocol.ts) over one connection.  Every failure is a KjitError: the
 * instance's own refusals keep their problem and fix.
 */
import { existsSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';

import { ExitCode, KjitError } from '../errors.js';
import { LineFramer, PROTOCOL_VERSION, type Reply, type RequestBody, requestLine } from './protocol.js';
import { runtimeDir, socketPath, sweep } from './rundir.js';

/** How long a reply to `body` may take: a patch waits for its compile, a probe for its duration too. */
function replyTimeoutMs(body: RequestBody): number {
  if (body.cmd === 'probe') return (body.seconds ?? PROBE_DEFAULT_SECONDS) * 1000 + CLIENT_PARAMS.patchReplyTimeoutMs;
  return body.cmd === 'patch' ? CLIENT_PARAMS.patchReplyTimeoutMs : CLIENT_PARAMS.replyTimeoutMs;
}

export const PROBE_DEFAULT_SECONDS = 5;

export const CLIENT_PARAMS = {
  connectTimeoutMs: 2000,
  /** Most replies take microseconds; one behind a patch waits for its compile. */
  replyTimeoutMs: 10_000,
  patchReplyTimeoutMs: 300_000,
  /** Longest reply line accepted (a status lists every version). */
  maxReplyBytes: 64 << 20,
};

export interface Target {
  pid: number;
  socket: string;
}

/** The instance `pid`, or the only one running. */
export async function findInstance(pid?: number): Promise<Target> {
  const dir = runtimeDir();
  if (pid !== undefined) {
    const socket = socketPath(dir, pid);
    if (!existsSync(socket)) throw new KjitError(`no kjit instance with pid ${pid} (no ${socket})`, 'kjit ps lists the running instances');
    return { pid, socket };
  }
  const { live } = await sweep(dir);
  if (live.length === 1) return live[0]!;
  if (live.length === 0) throw new KjitError('no kjit instance is running', 'start one with kjit serve');
  throw new KjitError(`${live.length} kjit instances are running (pids ${live.map((t) => t.pid).join(', ')})`, 'name one: kjit status PID');
}

/** Every live instance, stale sockets removed on the way. */
export async function listInstances(): Promise<Target[]> {
  return (await sweep(runtimeDir())).live;
}

type Waiter = { resolve: (r: Reply) => void; reject: (e: Error) => void; timer: NodeJS.Timeout };

export class ControlConnection {
  private readonly framer = new LineFramer(CLIENT_PARAMS.maxReplyBytes);
  private readonly waiting: Waiter[] = [];
  private nextId = 1;
  private ended: Error | null = null;

  private constructor(
    private readonly socket: Socket,
    private readonly target: Target,
  ) {
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('close', () => this.fail(new KjitError(`kjit instance ${target.pid} closed the connection`, 'kjit status shows whether it still runs', ExitCode.FAILURE)));
    socket.on('error', () => {}); /* 'close' follows and reports it */
  }

  static open(target: Target): Promise<ControlConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect(target.socket);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new KjitError(`kjit instance ${target.pid} does not accept connections`, 'it may be stuck; kill it if it stays so', ExitCode.FAILURE));
      }, CLIENT_PARAMS.connectTimeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new ControlConnection(socket, target));
      });
      socket.once('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(connectError(target, e));
      });
    });
  }

  /** Send one request; resolves with its reply (a refusal included). */
  request(body: RequestBody, timeoutMs = replyTimeoutMs(body)): Promise<Reply> {
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(new KjitError(`kjit instance ${this.target.pid} did not answer within ${timeoutMs / 1000} s`, 'kjit status shows whether it still runs', ExitCode.FAILURE));
        this.socket.destroy();
      }, timeoutMs);
      this.waiting.push({ resolve, reject, timer });
      this.socket.write(requestLine(this.nextId++, body));
    });
  }

  close(): void {
    this.socket.end();
  }

  private receive(chunk: Buffer): void {
    for (const frame of this.framer.push(chunk)) {
      const w = this.waiting.shift();
      if (!w) continue; /* a refusal sent before any request (peer-refused, busy): 'close' reports the end */
      clearTimeout(w.timer);
      let reply: Reply | null = null;
      try {
        if (frame.kind === 'line') reply = JSON.parse(frame.text) as Reply;
      } catch {
        /* below */
      }
      if (!reply || reply.v !== PROTOCOL_VERSION) {
        w.reject(new KjitError(`kjit instance ${this.target.pid} sent a reply this client cannot read`, `use the kjit that started it (protocol ${PROTOCOL_VERSION} here)`, ExitCode.FAILURE));
      } else {
        w.resolve(reply);
      }
    }
  }

  private fail(e: Error): void {
    this.ended ??= e;
    for (const w of this.waiting.splice(0)) {
      clearTimeout(w.timer);
      w.reject(e);
    }
  }
}

function connectError(target: Target, e: NodeJS.ErrnoException): KjitError {
  if (e.code === 'ECONNREFUSED' || e.code === 'ENOENT') {
    rmSync(target.socket, { force: true }); /* stale: its process is gone */
    return new KjitError(`kjit instance ${target.pid} is not running (its stale socket was removed)`, 'kjit ps lists the running instances');
  }
  if (e.code === 'EACCES') return new KjitError(`no permission to reach ${target.socket}`, 'run the command as the user who started the instance');
  return new KjitError(`cannot reach kjit instance ${target.pid}: ${e.message}`, 'kjit ps lists the running instances', ExitCode.FAILURE);
}

/** One request to the instance; its result, or its refusal as a KjitError. */
export async function ask(target: Target, body: RequestBody): Promise<unknown> {
  const conn = await ControlConnection.open(target);
  try {
    const reply = await conn.request(body);
    if (reply.ok) return reply.result;
    throw new KjitError(reply.error.problem, reply.error.fix, reply.error.code === 'internal' ? ExitCode.FAILURE : ExitCode.BAD_INPUT);
  } finally {
    conn.close();
  }
}
