/**
 * @fileoverview The control endpoint of one running instance: a Unix socket
 * (rundir.ts) that speaks protocol.ts.  Mechanism only: what a request does
 * is the handler's business (service.ts).
 *
 * Who may talk to it, two walls:
 *   1. the file system: the runtime directory is 0700 and the socket 0600;
 *   2. the kernel's record of the peer (SO_PEERCRED: the credentials of the
 *      process that called connect()): a peer whose uid is not this
 *      process's effective uid gets one `peer-refused` reply and is
 *      disconnected; what it sent is discarded unread.  This holds even for
 *      a peer that may bypass file permissions (CAP_DAC_OVERRIDE).
 * Then, per connection, requests are answered in order, one reply line
 * each.  A malformed request gets a refusal and the connection stays open;
 * an oversized one gets a refusal and the connection is closed (the next
 * request cannot be found).  SERVER_PARAMS bounds what a client can hold.
 */
import { chmodSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';

import { peerCredentials } from '../native/libc.js';
import { LineFramer, MAX_REQUEST_BYTES, type Outcome, parseRequest, refusal, type Refusal, replyLine, type Request, type RequestId } from './protocol.js';

export const SERVER_PARAMS = {
  /** Connections served at once; one more gets a `busy` refusal. */
  maxConnections: 16,
  /** Reply bytes a client may leave unread before it is disconnected. */
  maxUnreadReplyBytes: 1 << 20,
  /** A connection with no request for this long is closed. */
  idleMs: 60_000,
  /** A refused connection is kept this long at most, for the peer to read its refusal. */
  refusedLingerMs: 2000,
};

export interface RequestHandler {
  /** Carry out one valid request (a failure is a refusal; a throw is reported as an internal error). */
  handle(request: Request): Promise<Outcome>;
}

export interface ServerCounters {
  connections: number;
  /** Requests answered, by command ('invalid' for those refused before parsing completed). */
  requests: Record<string, { n: number; ms: number }>;
  refused: number;
  peersRefused: number;
}

export class ControlServer {
  readonly counters: ServerCounters = { connections: 0, requests: {}, refused: 0, peersRefused: 0 };
  /** Every accepted connection not closed yet, refused ones included. */
  private readonly open = new Set<Socket>();
  /** Of those, the ones being served. */
  private served = 0;

  private constructor(
    readonly path: string,
    private readonly server: Server,
    private readonly handler: RequestHandler,
    private readonly log: (line: string) => void,
  ) {}

  /** Listen at `path` (replacing a leftover file of that name), socket mode 0600. */
  static async listen(path: string, handler: RequestHandler, log: (line: string) => void): Promise<ControlServer> {
    rmSync(path, { force: true }); /* a stale socket of an earlier process with our pid */
    const server = createServer({ allowHalfOpen: false, pauseOnConnect: true });
    const cs = new ControlServer(path, server, handler, log);
    server.on('connection', (s) => cs.accept(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    /* in the instant before this, only the owner could reach it: the directory is 0700 */
    chmodSync(path, 0o600);
    return cs;
  }

  /** Stop listening (libuv removes the socket file) and drop every connection. */
  async close(): Promise<void> {
    for (const s of this.open) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private count(cmd: string, ms: number): void {
    const c = (this.counters.requests[cmd] ??= { n: 0, ms: 0 });
    c.n++;
    c.ms += ms;
  }

  /**
   * A last reply, then the connection ends.  What the peer still sends is
   * discarded unread (closing at once would make the peer's next write fail
   * and its socket drop the reply unread).
   */
  private closeWith(socket: Socket, line: string): void {
    if (!socket.writable) return;
    socket.removeAllListeners('data');
    socket.end(line);
    socket.setTimeout(SERVER_PARAMS.refusedLingerMs, () => socket.destroy());
    socket.resume();
  }

  private accept(socket: Socket): void {
    this.open.add(socket);
    socket.on('close', () => this.open.delete(socket));
    socket.on('error', () => socket.destroy()); /* a peer that vanished: nothing to tell it */
    const refuseAndClose = (r: Refusal) => {
      this.counters.refused++;
      this.closeWith(socket, replyLine(null, { ok: false, refusal: r }));
    };
    const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1;
    let uid: number;
    try {
      ({ uid } = peerCredentials(fd));
    } catch (e) {
      this.counters.peersRefused++;
      return refuseAndClose(refusal('peer-refused', `the peer's credentials cannot be read: ${(e as Error).message}`, 'connect over the instance\'s Unix socket'));
    }
    const owner = process.geteuid!();
    if (uid !== owner) {
      this.counters.peersRefused++;
      this.log(`refused a connection from uid ${uid}: this instance is open to its owner (uid ${owner}) only`);
      return refuseAndClose(refusal('peer-refused', `uid ${uid} may not control this kjit instance: it is open to its owner (uid ${owner}) only`, `run the command as uid ${owner}`));
    }
    if (this.served >= SERVER_PARAMS.maxConnections) {
      return refuseAndClose(refusal('busy', `this instance already serves ${this.served} connections`, 'close some clients and retry'));
    }
    this.served++;
    this.counters.connections++;
    socket.on('close', () => this.served--);
    socket.setTimeout(SERVER_PARAMS.idleMs, () => socket.destroy());

    const framer = new LineFramer(MAX_REQUEST_BYTES);
    let queue = Promise.resolve();
    const send = (id: RequestId, outcome: Outcome) => {
      if (!outcome.ok) this.counters.refused++;
      if (!socket.writable) return;
      socket.write(replyLine(id, outcome));
      if (socket.writableLength > SERVER_PARAMS.maxUnreadReplyBytes) socket.destroy();
    };
    socket.on('data', (chunk: Buffer) => {
      for (const frame of framer.push(chunk)) {
        if (frame.kind === 'oversized') {
          this.count('invalid', 0);
          /* after the replies already queued */
          queue = queue.then(() => {
            const r = refusal('oversized', `a request is longer than ${MAX_REQUEST_BYTES} bytes`, 'send one JSON object per line, each shorter than that');
            this.counters.refused++;
            this.closeWith(socket, replyLine(null, { ok: false, refusal: r }));
          });
          return;
        }
        if (frame.kind === 'invalid-utf8') {
          this.count('invalid', 0);
          queue = queue.then(() => send(null, { ok: false, refusal: refusal('malformed', 'the request is not UTF-8 text', 'send JSON text') }));
          continue;
        }
        if (frame.text.trim() === '') continue;
        const parsed = parseRequest(frame.text);
        if (!parsed.ok) {
          this.count('invalid', 0);
          queue = queue.then(() => send(parsed.id, { ok: false, refusal: parsed.refusal }));
          continue;
        }
        const request = parsed.request;
        queue = queue.then(async () => {
          const t0 = performance.now();
          let outcome: Outcome;
          try {
            outcome = await this.handler.handle(request);
          } catch (e) {
            /* a handler bug: the client hears of it, and this connection keeps its order */
            outcome = { ok: false, refusal: refusal('internal', (e as Error).message ?? String(e), 'report this as a kjit bug') };
          }
          this.count(request.cmd, performance.now() - t0);
          send(request.id, outcome);
        });
      }
    });
    socket.resume();
  }
}
