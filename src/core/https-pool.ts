// The client for HTTPS backends (the cloud): undici Clients, one connection and one request at
// a time each, behind a queue of the gateway's own, as H1Pool keeps for plain HTTP. Why not
// undici's Pool: it queues a request it has no connection for with its body and handler, and
// nothing takes it out of that queue before a connection frees up, even once aborted (the
// abort only reaches undici when the request starts). A request whose client left, or whose
// first-byte or total timeout fired, while every connection was busy held its body, its
// client's exchange and its place in the in-flight counts until then, did not fall back, and
// then cost the connection it reached (undici closes the socket of a request aborted as it
// starts): 500 abandoned 200 KB requests held 297 MiB of heap. Here a request aborted while
// queued leaves the queue at once, and one aborted while its connection is being opened ends
// at once for the gateway (undici drops it when the connection is up).
// As in H1Pool, a request whose reused connection was closed under it before any answer, within
// RACE_WINDOW_MS of being written, met the keep-alive race (the backend closed the idle
// connection as the request went out: its FIN was on its way) and is sent once more, on a new
// connection. undici does not retry a POST; the gateway would have counted it a failure.

import { createRequire } from 'node:module';
import type { IncomingHttpHeaders } from 'node:http';
import type { Client as UndiciClient, Dispatcher } from 'undici';
import { isReset, RACE_WINDOW_MS, type DispatchOptions, type Handler, type UpstreamPool } from './h1-pool.ts';

const require = createRequire(import.meta.url);
let Client: typeof UndiciClient | undefined;

export interface HttpsPoolOptions {
  connections: number;
  keepAliveTimeout: number;
  connectTimeout: number;
  headersTimeout: number;
  bodyTimeout: number;
}

function fail(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

const NO_CONTEXT = Object.freeze({});

/** One request: the gateway's handler's dispatch controller, and undici's handler for it. */
class Request implements Dispatcher.DispatchController, Dispatcher.DispatchHandler {
  readonly pool: HttpsPool;
  readonly opts: DispatchOptions;
  readonly handler: Handler;
  /** The connection carrying it, from when it is handed to undici until undici is done with it. */
  conn: UndiciClient | undefined;
  /** undici's controller, once the request is being written. */
  inner: Dispatcher.DispatchController | undefined;
  queued = false;
  aborted = false;
  reason: Error | null = null;
  /** The gateway's handler has been told the end (or the error). */
  done = false;
  /** Written on a connection that had carried a request before, at performance.now() writtenAt. */
  reused = false;
  writtenAt = 0;
  /** The answer's head arrived. */
  answered = false;
  /** Sent once more already (see the file's head). */
  retried = false;

  constructor(pool: HttpsPool, opts: DispatchOptions, handler: Handler) {
    this.pool = pool;
    this.opts = opts;
    this.handler = handler;
  }

  get paused(): boolean {
    return this.inner?.paused ?? false;
  }

  abort(reason: Error): void {
    if (this.aborted || this.done) return;
    this.aborted = true;
    this.reason = reason;
    if (this.inner !== undefined) {
      this.inner.abort(reason);
      return;
    }
    // Out of the queue at once; one handed to undici and waiting for its connection ends
    // for the gateway now, and is aborted by onRequestStart when undici gets to it.
    if (this.queued) this.pool.unqueue(this);
    this.error(reason);
  }

  pause(): void {
    this.inner?.pause();
  }

  resume(): void {
    this.inner?.resume();
  }

  error(err: Error): void {
    if (this.done) return;
    this.done = true;
    try {
      this.handler.onResponseError?.(this, err);
    } catch {
      // the request has ended either way; a throwing handler must not take the process down
    }
  }

  onRequestStart(c: Dispatcher.DispatchController): void {
    this.inner = c;
    if (this.aborted) {
      c.abort(this.reason!);
      return;
    }
    this.reused = this.pool.reused(this.conn!);
    this.writtenAt = performance.now();
  }

  onResponseStart(_c: Dispatcher.DispatchController, status: number, headers: IncomingHttpHeaders, message?: string): void {
    this.answered = true;
    if (!this.done) this.handler.onResponseStart?.(this, status, headers, message);
  }

  onResponseData(_c: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.done) this.handler.onResponseData?.(this, chunk);
  }

  onResponseEnd(_c: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    this.pool.release(this);
    if (this.done) return;
    this.done = true;
    this.handler.onResponseEnd?.(this, trailers);
  }

  onResponseError(_c: Dispatcher.DispatchController | null, err: Error): void {
    // (Measured when the error is handled: an event loop stalled past the window reports the
    // failure instead of retrying, which errs on the safe side.)
    if (!this.answered && this.reused && !this.retried && !this.aborted && !this.done && isReset(err) && performance.now() - this.writtenAt < RACE_WINDOW_MS) {
      this.retried = true;
      this.inner = undefined;
      this.pool.resend(this);
      return;
    }
    this.pool.release(this);
    this.error(err);
  }
}

export class HttpsPool implements UpstreamPool {
  readonly #origin: string;
  readonly #opts: HttpsPoolOptions;
  readonly #all = new Set<UndiciClient>();
  readonly #idle: UndiciClient[] = [];
  readonly #queue: Request[] = [];
  /** Clients whose connection, new since, has carried no request yet. */
  readonly #fresh = new WeakSet<UndiciClient>();
  #closed = false;
  /** close() waiting for the queue to empty. */
  #drained: (() => void) | undefined;

  constructor(origin: string, opts: HttpsPoolOptions) {
    this.#origin = origin;
    this.#opts = opts;
  }

  dispatch(opts: DispatchOptions, handler: Handler): boolean {
    if (this.#closed) throw fail('UND_ERR_CLOSED', 'the pool is closed');
    const r = new Request(this, opts, handler);
    handler.onRequestStart?.(r, NO_CONTEXT);
    if (r.aborted) {
      r.error(r.reason!);
      return true;
    }
    const c = this.#idle.pop() ?? (this.#all.size < this.#opts.connections ? this.#client() : undefined);
    if (c === undefined) {
      r.queued = true;
      this.#queue.push(r);
    } else this.#send(r, c);
    return true;
  }

  #client(): UndiciClient {
    Client ??= require('undici/lib/dispatcher/client.js') as typeof UndiciClient;
    const o = this.#opts;
    const c = new Client(this.#origin, {
      pipelining: 1, keepAliveTimeout: Math.max(o.keepAliveTimeout, 1), keepAliveMaxTimeout: 120_000,
      connect: { timeout: o.connectTimeout }, headersTimeout: o.headersTimeout, bodyTimeout: o.bodyTimeout,
    });
    c.on('connect', () => { this.#fresh.add(c); });
    this.#all.add(c);
    return c;
  }

  /** Whether the request now being written on c goes out on a connection that carried one before. */
  reused(c: UndiciClient): boolean {
    return !this.#fresh.delete(c);
  }

  /** A request that met the keep-alive race, sent again on its client: its connection is gone, so on a new one. */
  resend(r: Request): void {
    const c = r.conn!;
    queueMicrotask(() => {
      if (r.aborted || c.closed || c.destroyed) {
        // (An abort meanwhile has told the gateway already.)
        this.release(r);
        r.error(r.reason ?? fail('UND_ERR_CLOSED', 'the pool is closed'));
      } else this.#send(r, c);
    });
  }

  #send(r: Request, c: UndiciClient): void {
    r.conn = c;
    // A closed client fails it through onResponseError.
    // undici takes one body: pieces are joined here (the plain-HTTP pool writes them in turn).
    const body = r.opts.body;
    c.dispatch((Array.isArray(body) ? { ...r.opts, body: Buffer.concat(body) } : r.opts) as Dispatcher.DispatchOptions, r);
  }

  /** An aborted request leaves the queue (a linear search: aborts are rare next to dispatches). */
  unqueue(r: Request): void {
    r.queued = false;
    const i = this.#queue.lastIndexOf(r);
    if (i >= 0) this.#queue.splice(i, 1);
    if (this.#queue.length === 0) this.#drained?.();
  }

  /** Requests waiting for a connection. */
  get queued(): number {
    return this.#queue.length;
  }

  /**
   * undici is done with a request: its connection takes the next queued one, or goes idle. Not
   * from inside undici's callback: a client failing its requests (a connection that could not
   * be opened) must find its own queue as it left it.
   */
  release(r: Request): void {
    const c = r.conn;
    if (c === undefined) return;
    r.conn = undefined;
    queueMicrotask(() => this.#hand(c));
  }

  #hand(c: UndiciClient): void {
    if (c.closed || c.destroyed) {
      this.#all.delete(c);
      if (this.#queue.length === 0 || this.#all.size >= this.#opts.connections) return;
      c = this.#client();
    }
    const next = this.#queue.shift();
    if (next === undefined) {
      this.#idle.push(c);
      return;
    }
    next.queued = false;
    if (this.#queue.length === 0) this.#drained?.();
    this.#send(next, c);
  }

  /** No new requests; those queued are still sent, and each connection closes after its last answer. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#queue.length > 0) await new Promise<void>((resolve) => { this.#drained = resolve; });
    await Promise.all([...this.#all].map((c) => c.close()));
  }

  async destroy(): Promise<void> {
    this.#closed = true;
    for (const r of this.#queue.splice(0)) {
      r.queued = false;
      r.error(fail('UND_ERR_DESTROYED', 'the pool was destroyed'));
    }
    this.#drained?.();
    await Promise.all([...this.#all].map((c) => c.destroy()));
  }
}
