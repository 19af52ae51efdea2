// A lean HTTP/1.1 client for plain-HTTP backends (the engines on the fleet's own machines),
// speaking undici's dispatch-handler protocol so the gateway's handlers (upstream.ts,
// stream-attempt.ts) run on it unchanged. Why not undici itself: per request it spends about
// 40 µs more CPU than this (bench/README.md: a bare proxy on each, 0.66×), which on the
// gateway's path is a fifth of its whole cost. It does only what the gateway asks of a client:
//   - keep-alive connections, at most `connections` per backend, requests queued beyond that;
//   - one request per connection at a time (no pipelining); the request head and body go out
//     in one write;
//   - responses framed by Content-Length, chunked transfer coding, or the connection's end;
//     1xx interim responses skipped; bounded head size;
//   - timeouts: connect, first byte (response head), idle (between body bytes), all as
//     undici's error codes, which attempt-error.ts reads;
//   - pause/resume (the client's backpressure on a stream) and abort;
//   - a connection the backend closed while idle is never used; a request that finds its reused
//     connection closed before any byte of an answer is sent once more on a new one (the
//     backend closed it without reading the request: its keep-alive timeout raced ours).
// HTTPS backends (the cloud) stay on undici, where a few microseconds are nothing.

import { connect, type Socket } from 'node:net';
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import { BAD_RESPONSE, errorCode } from './attempt-error.ts';
import { TOKEN, toLower } from './http-syntax.ts';

export interface H1PoolOptions {
  connections: number;
  /** How long an idle connection is kept; the backend's own Keep-Alive hint, less a second, when shorter. */
  keepAliveTimeout: number;
  connectTimeout: number;
  /** Defaults for requests that give none: first byte of the response head, and idle time within the body; 0 = none. */
  headersTimeout: number;
  bodyTimeout: number;
}

export interface DispatchOptions {
  method: Dispatcher.HttpMethod;
  path: string;
  headers?: Record<string, string> | null;
  /** Pieces are written in turn, never joined (an audio upload's parts, a view of the client's body among them). */
  body?: string | Buffer | readonly Buffer[] | null;
  headersTimeout?: number | null;
  bodyTimeout?: number | null;
}

/** What the gateway asks of a connection pool: this one, or https-pool.ts's (undici) for HTTPS. */
export interface UpstreamPool {
  dispatch(opts: DispatchOptions, handler: Handler): boolean;
  close(): Promise<void>;
  destroy(): Promise<void>;
}

/** The part of undici's DispatchHandler the gateway's handlers implement. */
export interface Handler {
  onRequestStart?(controller: Dispatcher.DispatchController, context: unknown): void;
  onResponseStart?(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders, statusMessage?: string): void;
  onResponseData?(controller: Dispatcher.DispatchController, chunk: Buffer): void;
  onResponseEnd?(controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void;
  onResponseError?(controller: Dispatcher.DispatchController, error: Error): void;
}

/**
 * A request whose reused connection closed this soon after it was written, before any byte of
 * an answer, met the keep-alive race (the backend closed the idle connection as the request
 * went out) and is sent once more. Later than this, the backend may have been working on it:
 * the failure is reported, and the gateway's own retry policy decides.
 */
export const RACE_WINDOW_MS = 50;
/** Characters that would break out of a request line or header. */
const UNSAFE = /[\r\n\0]/;
const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: (.*))?$/;
const DIGITS = /^\d+$/;
const CHUNKED = /(?:^|,)[ \t]*chunked[ \t]*(?:,|$)/i;
const KEEP_ALIVE_TIMEOUT = /timeout=(\d+)/i;

/** Largest response head (status line and headers) accepted. */
const MAX_HEAD = 64 * 1024;
const CRLF2 = Buffer.from('\r\n\r\n');

function fail(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

const NO_TRAILERS: IncomingHttpHeaders = Object.freeze({});
const NO_CONTEXT = Object.freeze({});
const badChunk = (): Error => fail(BAD_RESPONSE, 'malformed chunked encoding');

/** One request, from dispatch to its end; also its own dispatch controller. */
class Request implements Dispatcher.DispatchController {
  readonly opts: DispatchOptions;
  readonly handler: Handler;
  readonly headersTimeout: number;
  readonly bodyTimeout: number;
  aborted = false;
  paused = false;
  reason: Error | null = null;
  conn: Conn | undefined;
  /** The pool whose queue holds it, while it waits for a connection. */
  waitingIn: H1Pool | undefined;
  /** Sent once more already (see the file's head). */
  retried = false;
  done = false;

  constructor(opts: DispatchOptions, handler: Handler, defaults: H1PoolOptions) {
    this.opts = opts;
    this.handler = handler;
    this.headersTimeout = opts.headersTimeout ?? defaults.headersTimeout;
    this.bodyTimeout = opts.bodyTimeout ?? defaults.bodyTimeout;
  }

  abort(reason: Error): void {
    if (this.aborted || this.done) return;
    this.aborted = true;
    this.reason = reason;
    const c = this.conn;
    if (c !== undefined) c.destroy(reason);
    else {
      // Out of the queue at once: left there, it would hold its body and its client's
      // exchange until a connection freed up (up to the total timeout of those holding them).
      this.waitingIn?.unqueue(this);
      this.error(reason);
    }
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.conn?.resumeReading();
  }

  error(err: Error): void {
    if (this.done) return;
    this.done = true;
    this.conn = undefined;
    try {
      this.handler.onResponseError?.(this, err);
    } catch {
      // the request has ended either way; a throwing handler must not take the process down
    }
  }
}

type Phase = 'idle' | 'head' | 'fixed' | 'chunk-size' | 'chunk-data' | 'chunk-crlf' | 'trailers' | 'until-close';

/** One keep-alive connection to the backend. */
class Conn {
  readonly pool: H1Pool;
  readonly socket: Socket;
  connected = false;
  /** Has carried a request before (a closed-before-answer failure on it may be retried). */
  reused = false;
  req: Request | undefined;
  phase: Phase = 'idle';
  /** Bytes read and not yet parsed (the head, a chunk-size line, or data held while paused). */
  buf: Buffer | undefined;
  remaining = 0;
  keepAlive = true;
  /** Some byte of the current answer arrived. */
  answered = false;
  keepAliveHint = 0;
  closed = false;
  /** performance.now() when the current request was written. */
  writtenAt = 0;
  /** The backend ended the connection while the handler was paused with bytes held: handled on resume. */
  endedWhilePaused = false;
  heldTimer: NodeJS.Timeout | undefined;

  constructor(pool: H1Pool) {
    this.pool = pool;
    const s = connect({ host: pool.host, port: pool.port });
    this.socket = s;
    s.setNoDelay(true);
    s.setTimeout(pool.opts.connectTimeout);
    s.on('connect', () => this.onConnect());
    s.on('data', (chunk: Buffer) => this.onData(chunk));
    s.on('timeout', () => this.onTimeout());
    s.on('end', () => this.onEnd());
    s.on('error', (e: Error) => this.destroy(e));
    s.on('close', () => this.onClose());
  }

  onConnect(): void {
    this.connected = true;
    const r = this.req;
    if (r !== undefined) this.write(r);
  }

  start(r: Request): void {
    this.req = r;
    r.conn = this;
    this.answered = false;
    this.phase = 'head';
    this.buf = undefined;
    this.keepAlive = true;
    if (this.connected) this.write(r);
  }

  write(r: Request): void {
    const o = r.opts;
    const body = o.body ?? '';
    if (UNSAFE.test(o.path)) return this.refuse(r, 'the request path holds CR, LF or NUL');
    let head = `${o.method} ${o.path} HTTP/1.1\r\nhost: ${this.pool.hostHeader}\r\nconnection: keep-alive\r\n`;
    const h = o.headers;
    if (h != null) {
      for (const k in h) {
        const v = h[k]!;
        const lk = toLower(k);
        if (lk === 'host' || lk === 'content-length' || lk === 'connection' || lk === 'transfer-encoding') continue;
        if (!TOKEN.test(k) || UNSAFE.test(v)) return this.refuse(r, `header ${JSON.stringify(k)} is not a valid name, or its value holds CR, LF or NUL`);
        head += `${k}: ${v}\r\n`;
      }
    }
    const length = typeof body === 'string' ? Buffer.byteLength(body) : Array.isArray(body) ? body.reduce((n: number, b: Buffer) => n + b.length, 0) : (body as Buffer).length;
    if (body !== '' || o.method === 'POST' || o.method === 'PUT' || o.method === 'PATCH') head += `content-length: ${length}\r\n`;
    head += '\r\n';
    this.socket.setTimeout(r.headersTimeout);
    this.writtenAt = performance.now();
    // One system call for head and body together.
    if (typeof body === 'string') this.socket.write(head + body);
    else {
      this.socket.cork();
      this.socket.write(head);
      if (Array.isArray(body)) for (const b of body) this.socket.write(b);
      else this.socket.write(body as Buffer);
      this.socket.uncork();
    }
  }

  /** A request that cannot be written safely fails alone; the connection is left as it was. */
  refuse(r: Request, message: string): void {
    this.req = undefined;
    this.phase = 'idle';
    r.conn = undefined;
    r.error(fail('UND_ERR_INVALID_ARG', message));
    this.pool.release(this);
  }

  onTimeout(): void {
    if (!this.connected) return this.destroy(fail('UND_ERR_CONNECT_TIMEOUT', `connect timeout (${this.pool.opts.connectTimeout} ms)`));
    const r = this.req;
    if (r === undefined) return this.destroy(); // idle past the keep-alive timeout
    if (this.phase === 'head') this.destroy(fail('UND_ERR_HEADERS_TIMEOUT', 'headers timeout'));
    else this.destroy(fail('UND_ERR_BODY_TIMEOUT', 'body timeout'));
  }

  onData(chunk: Buffer): void {
    const r = this.req;
    if (r === undefined) {
      // Bytes nobody asked for: the connection cannot be trusted with the next request.
      this.destroy();
      return;
    }
    this.answered = true;
    if (this.buf !== undefined) {
      chunk = Buffer.concat([this.buf, chunk]);
      this.buf = undefined;
    }
    this.safeParse(chunk);
  }

  /** A handler that throws fails its own request, never the process. */
  safeParse(data: Buffer): void {
    try {
      this.parse(data);
    } catch (e) {
      this.destroy(e instanceof Error ? e : new Error(String(e)));
    }
  }

  resumeReading(): void {
    const held = this.buf;
    if (held !== undefined) {
      this.buf = undefined;
      this.safeParse(held);
    }
    const r = this.req;
    // (A request that ended while its held bytes were parsed has resumed its socket in finish().)
    if (r === undefined || r.paused) return;
    if (this.endedWhilePaused) {
      // Everything the backend sent before closing has been handed over now.
      this.endedWhilePaused = false;
      clearTimeout(this.heldTimer);
      this.onEnd();
      return;
    }
    if (!this.closed) this.socket.resume();
  }

  /** Feeds bytes through the response state machine. */
  parse(data: Buffer): void {
    let off = 0;
    while (off < data.length) {
      const r = this.req;
      if (r === undefined) {
        this.destroy();
        return;
      }
      switch (this.phase) {
        case 'head': {
          const end = data.indexOf(CRLF2, off);
          if (end === -1) {
            if (data.length - off > MAX_HEAD) return this.destroy(fail(BAD_RESPONSE, `response head over ${MAX_HEAD} bytes`));
            this.buf = data.subarray(off);
            return;
          }
          if (end - off > MAX_HEAD) return this.destroy(fail(BAD_RESPONSE, `response head over ${MAX_HEAD} bytes`));
          const next = this.head(data.toString('latin1', off, end), r);
          off = end + 4;
          if (next === 'stop') return;
          if (next === 'ended') return this.finish(r, data.length - off);
          break;
        }
        case 'fixed': {
          const piece = this.take(data, off);
          off += piece.length;
          const more = this.deliver(r, piece, data, off);
          if (r.done || this.req !== r) return;
          // The last byte is in: the answer ends even if the handler paused reading.
          if (this.remaining === 0) return this.finish(r, data.length - off);
          if (!more) return;
          break;
        }
        case 'until-close':
          this.deliver(r, off === 0 ? data : data.subarray(off), data, data.length);
          return;
        case 'chunk-size': {
          const eol = data.indexOf(10, off); // \n
          if (eol === -1) {
            if (data.length - off > 1024) return this.destroy(badChunk());
            this.buf = data.subarray(off);
            return;
          }
          // Hex digits, then optionally ";extensions" (ignored), then CRLF (a bare LF is tolerated).
          let size = 0;
          let i = off;
          for (; i < eol; i++) {
            const c = data[i]!;
            const d = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
            if (d === -1) break;
            size = size * 16 + d;
          }
          const rest = i < eol ? data[i] : 10;
          if (i === off || size > Number.MAX_SAFE_INTEGER || !(rest === 10 || (rest === 13 && i === eol - 1) || rest === 59 /* ; */ || rest === 32 || rest === 9)) {
            return this.destroy(badChunk());
          }
          off = eol + 1;
          if (size === 0) this.phase = 'trailers';
          else {
            this.remaining = size;
            this.phase = 'chunk-data';
          }
          break;
        }
        case 'chunk-data': {
          const piece = this.take(data, off);
          off += piece.length;
          if (this.remaining === 0) {
            this.phase = 'chunk-crlf';
            this.remaining = 2;
          }
          if (!this.deliver(r, piece, data, off)) return;
          break;
        }
        case 'chunk-crlf': {
          // The CRLF after a chunk's data (a bare LF is tolerated).
          const c = data[off]!;
          if (c === 13 && this.remaining === 2) {
            this.remaining = 1;
            off++;
          } else if (c === 10) {
            off++;
            this.phase = 'chunk-size';
          } else return this.destroy(badChunk());
          break;
        }
        case 'trailers': {
          // Trailer fields (ignored) up to an empty line.
          const eol = data.indexOf(10, off);
          if (eol === -1) {
            if (data.length - off > MAX_HEAD) return this.destroy(badChunk());
            this.buf = data.subarray(off);
            return;
          }
          const empty = eol === off || (eol === off + 1 && data[off] === 13);
          off = eol + 1;
          if (empty) return this.finish(r, data.length - off);
          break;
        }
        case 'idle':
          return this.destroy();
      }
    }
  }

  /** Up to `remaining` body bytes from data at off, counted off `remaining`. */
  take(data: Buffer, off: number): Buffer {
    const n = Math.min(this.remaining, data.length - off);
    this.remaining -= n;
    return data.subarray(off, off + n);
  }

  /** Hands body bytes to the handler; false when reading must stop here (paused, aborted or ended). */
  deliver(r: Request, piece: Buffer, data: Buffer, next: number): boolean {
    // (The body timeout, set with the head, restarts by itself on every read.)
    if (piece.length > 0) r.handler.onResponseData?.(r, piece);
    if (r.done || this.req !== r) return false;
    if (r.paused) {
      // Hold what is left of this read; no more is read until resume().
      this.socket.pause();
      if (next < data.length) this.buf = data.subarray(next);
      return false;
    }
    return true;
  }

  /** The response head: go on with the body, the answer ended with its head, or stop (failed or abandoned). */
  head(text: string, r: Request): 'body' | 'ended' | 'stop' {
    const lines = text.split('\r\n');
    const m = STATUS_LINE.exec(lines[0]!);
    if (m === null) {
      this.destroy(fail(BAD_RESPONSE, `malformed response status line: ${JSON.stringify(lines[0]!.slice(0, 80))}`));
      return 'stop';
    }
    const status = Number(m[2]);
    // No prototype: a header named __proto__ is just a header.
    const headers: IncomingHttpHeaders = Object.create(null) as IncomingHttpHeaders;
    let length = -1;
    let chunked = false;
    let keepAlive = m[1] === '1';
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      const colon = line.indexOf(':');
      if (colon <= 0) {
        this.destroy(fail(BAD_RESPONSE, 'malformed response header'));
        return 'stop';
      }
      const name = toLower(line.slice(0, colon).trim());
      const value = line.slice(colon + 1).trim();
      const prev = headers[name];
      if (prev === undefined) headers[name] = value;
      else if (Array.isArray(prev)) prev.push(value);
      else headers[name] = [prev, value];
      if (name === 'content-length') {
        const n = Number(value);
        if (!DIGITS.test(value) || (length !== -1 && length !== n)) {
          this.destroy(fail(BAD_RESPONSE, 'invalid content-length in the response'));
          return 'stop';
        }
        length = n;
      } else if (name === 'transfer-encoding') chunked = CHUNKED.test(value);
      else if (name === 'connection') {
        const v = toLower(value);
        if (v.includes('close')) keepAlive = false;
        else if (v.includes('keep-alive')) keepAlive = true;
      } else if (name === 'keep-alive') {
        const t = KEEP_ALIVE_TIMEOUT.exec(value);
        if (t !== null) this.keepAliveHint = Number(t[1]) * 1000;
      }
    }
    // Interim answers (100 Continue, 103 Early Hints) are skipped; the real one follows.
    if (status >= 100 && status < 200 && status !== 101) return 'body';
    this.keepAlive = keepAlive;
    r.handler.onResponseStart?.(r, status, headers, m[3] ?? '');
    if (r.done || this.req !== r) return 'stop';
    // The socket's timeout restarts on every read: the head's, when the same, serves the body too.
    if (r.bodyTimeout !== r.headersTimeout) this.socket.setTimeout(r.bodyTimeout);
    if (status === 204 || status === 304 || r.opts.method === 'HEAD') return 'ended';
    if (chunked) this.phase = 'chunk-size';
    else if (length === 0) return 'ended';
    else if (length > 0) {
      this.phase = 'fixed';
      this.remaining = length;
    } else {
      this.phase = 'until-close';
      this.keepAlive = false;
    }
    return 'body';
  }

  /** The answer is complete; `extra` bytes after it mean the connection is not to be reused. */
  finish(r: Request, extra: number): void {
    this.req = undefined;
    this.phase = 'idle';
    this.buf = undefined;
    r.done = true;
    r.conn = undefined;
    const reusable = this.keepAlive && extra === 0 && !this.closed && !this.endedWhilePaused;
    this.reused = true;
    // (The body timeout is left as it is: nothing below waits, and release() sets the idle
    // timeout, or start() the next request's, before the event loop turns.)
    // The handler may have paused reading on the last bytes.
    if (reusable) this.socket.resume();
    r.handler.onResponseEnd?.(r, NO_TRAILERS);
    if (reusable) this.pool.release(this);
    else this.destroy();
  }

  onEnd(): void {
    const r = this.req;
    if (r !== undefined && r.paused && this.phase !== 'head') {
      this.endedWhilePaused = true;
      return;
    }
    if (r !== undefined && this.phase === 'until-close') {
      this.req = undefined;
      r.done = true;
      r.conn = undefined;
      try {
        r.handler.onResponseEnd?.(r, NO_TRAILERS);
      } catch {
        // ended either way
      }
    }
    this.destroy();
  }

  destroy(err?: Error): void {
    clearTimeout(this.heldTimer);
    if (!this.closed) {
      this.closed = true;
      this.socket.destroy();
      this.pool.forget(this);
    }
    const r = this.req;
    if (r === undefined) return;
    this.req = undefined;
    r.conn = undefined;
    if (r.done) return;
    // Closed under a request on a reused connection before any byte of an answer: the backend
    // closed it as idle and never read the request. Sent once more, on a new connection.
    // (Measured when the close is handled: an event loop stalled past the window reports the
    // failure instead of retrying, which errs on the safe side.)
    if (!this.answered && this.reused && !r.retried && !r.aborted && (err === undefined || isReset(err)) && performance.now() - this.writtenAt < RACE_WINDOW_MS) {
      r.retried = true;
      this.pool.enqueue(r, true);
      return;
    }
    r.error(r.aborted && r.reason !== null ? r.reason : err ?? fail('UND_ERR_SOCKET', 'other side closed'));
  }

  onClose(): void {
    // Bytes held for a paused handler are still to be handed over: resumeReading() ends it.
    if (this.endedWhilePaused) {
      // The socket is gone: free its place in the pool; a handler that never resumes gets the body timeout.
      if (!this.closed) {
        this.closed = true;
        this.pool.forget(this);
        const r = this.req;
        if (r !== undefined && r.bodyTimeout > 0) this.heldTimer = setTimeout(() => this.destroy(fail('UND_ERR_BODY_TIMEOUT', 'body timeout')), r.bodyTimeout);
      }
      return;
    }
    if (!this.closed) this.destroy(this.req === undefined ? undefined : fail('UND_ERR_SOCKET', 'other side closed'));
  }
}

/** The connection was reset or closed under a request (the keep-alive race's errors). */
export function isReset(e: Error): boolean {
  const code = errorCode(e);
  return code === 'ECONNRESET' || code === 'EPIPE' || code === 'UND_ERR_SOCKET';
}

export class H1Pool implements UpstreamPool {
  readonly host: string;
  readonly port: number;
  readonly hostHeader: string;
  readonly opts: H1PoolOptions;
  readonly #all = new Set<Conn>();
  readonly #idle: Conn[] = [];
  readonly #queue: Request[] = [];
  #closed = false;

  constructor(origin: string, opts: H1PoolOptions) {
    const u = new URL(origin);
    if (u.protocol !== 'http:') throw new Error(`H1Pool speaks plain HTTP only, not ${u.protocol}`);
    this.host = u.hostname.replace(/^\[|\]$/g, '');
    this.port = u.port === '' ? 80 : Number(u.port);
    this.hostHeader = u.host;
    this.opts = opts;
  }

  dispatch(opts: DispatchOptions, handler: Handler): boolean {
    if (this.#closed) throw fail('UND_ERR_CLOSED', 'the pool is closed');
    const r = new Request(opts, handler, this.opts);
    handler.onRequestStart?.(r, NO_CONTEXT);
    if (r.aborted) {
      r.error(r.reason!);
      return true;
    }
    this.enqueue(r, false);
    return true;
  }

  enqueue(r: Request, first: boolean): void {
    if (r.aborted || r.done) return;
    // A retried request must not meet another half-closed idle connection.
    let c = first ? undefined : this.#takeIdle();
    if (c === undefined && this.#all.size < this.opts.connections) {
      c = new Conn(this);
      this.#all.add(c);
    }
    if (c === undefined) {
      if (first) this.#queue.unshift(r);
      else this.#queue.push(r);
      r.waitingIn = this;
      return;
    }
    c.start(r);
  }

  #takeIdle(): Conn | undefined {
    for (;;) {
      const c = this.#idle.pop();
      if (c === undefined) return undefined;
      const s = c.socket;
      if (!c.closed && !s.destroyed && !s.readableEnded && s.writable) return c;
      c.destroy();
    }
  }

  /** The next queued request still waiting (any that ended meanwhile are dropped on the way). */
  #nextQueued(): Request | undefined {
    let next = this.#queue.shift();
    while (next !== undefined && (next.aborted || next.done)) next = this.#queue.shift();
    if (next !== undefined) next.waitingIn = undefined;
    return next;
  }

  /** An aborted request leaves the queue (a linear search: aborts are rare next to dispatches). */
  unqueue(r: Request): void {
    r.waitingIn = undefined;
    const i = this.#queue.lastIndexOf(r);
    if (i >= 0) this.#queue.splice(i, 1);
  }

  /** Requests waiting for a connection. */
  get queued(): number {
    return this.#queue.length;
  }

  /** A connection finished its request: the next queued one, or idle with the keep-alive timeout. */
  release(c: Conn): void {
    const next = this.#nextQueued();
    if (next !== undefined) {
      c.start(next);
      return;
    }
    if (this.#closed) {
      c.destroy();
      return;
    }
    const hint = c.keepAliveHint > 0 ? c.keepAliveHint - 1000 : Infinity;
    const ttl = Math.min(this.opts.keepAliveTimeout, hint);
    if (ttl <= 0) {
      c.destroy();
      return;
    }
    c.socket.setTimeout(ttl);
    this.#idle.push(c);
  }

  /** A connection is gone: out of the idle list; a queued request gets a new one. */
  forget(c: Conn): void {
    this.#all.delete(c);
    const i = this.#idle.indexOf(c);
    if (i !== -1) this.#idle.splice(i, 1);
    if (this.#closed) return;
    const next = this.#nextQueued();
    if (next !== undefined) this.enqueue(next, true);
  }

  /** No new requests; idle connections close now, busy ones after their answer. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const c of [...this.#idle]) c.destroy();
    const waiting = [...this.#all].filter((c) => c.req !== undefined);
    await Promise.all(waiting.map((c) => new Promise<void>((resolve) => c.socket.once('close', () => resolve()))));
    for (const r of this.#queue.splice(0)) r.error(fail('UND_ERR_CLOSED', 'the pool is closed'));
  }

  async destroy(): Promise<void> {
    this.#closed = true;
    for (const r of this.#queue.splice(0)) r.error(fail('UND_ERR_DESTROYED', 'the pool was destroyed'));
    for (const c of [...this.#all]) c.destroy(fail('UND_ERR_DESTROYED', 'the pool was destroyed'));
  }
}
