// The lean path to a backend: undici's dispatch() with small handlers instead of
// request()'s promise-and-Readable machinery, a one-slot cancel instead of an AbortController
// per request, and one shared sweep for total-time deadlines instead of a timer per request.

import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import type { DispatchOptions, UpstreamPool } from './h1-pool.ts';
import { errorCode, TRUNCATED } from './attempt-error.ts';

/**
 * The client's side of a request going away. Attempts run one at a time, so one hook slot is
 * enough: whichever attempt (or backoff sleep) is current registers itself and clears on exit.
 */
export class Cancel {
  aborted = false;
  #hook: (() => void) | undefined;

  onAbort(hook: () => void): void {
    this.#hook = hook;
  }

  clear(): void {
    this.#hook = undefined;
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    const h = this.#hook;
    this.#hook = undefined;
    if (h !== undefined) h();
  }
}

/** Waits ms, or less if the request is cancelled. */
export function cancellableSleep(ms: number, cancel: Cancel): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(() => { cancel.clear(); resolve(); }, ms);
    cancel.onAbort(() => { clearTimeout(t); resolve(); });
  });
}

export interface Deadline {
  at: number;
  fire: () => void;
}

/**
 * Total-time deadlines for every request in flight, checked by one timer. Totals are
 * seconds to minutes, so firing within SWEEP_MS of the deadline is precise enough, and the
 * request path pays a Set insert and delete instead of arming and clearing a timer.
 */
export class Deadlines {
  static readonly SWEEP_MS = 100;
  readonly #set = new Set<Deadline>();
  #timer: NodeJS.Timeout | undefined;

  add(inMs: number, fire: () => void): Deadline {
    const d: Deadline = { at: performance.now() + inMs, fire };
    this.#set.add(d);
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#sweep(), Deadlines.SWEEP_MS);
      this.#timer.unref();
    }
    return d;
  }

  delete(d: Deadline): void {
    this.#set.delete(d);
  }

  #sweep(): void {
    if (this.#set.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
      return;
    }
    const now = performance.now();
    for (const d of this.#set) {
      if (d.at <= now) {
        this.#set.delete(d);
        d.fire();
      }
    }
  }
}

/**
 * What every upstream call shares: sending itself through a dispatcher, and an abort that
 * works before the request has started (it is applied when the dispatcher starts it).
 */
export abstract class UpstreamCall implements Dispatcher.DispatchHandler {
  protected controller: Dispatcher.DispatchController | undefined;
  #pendingAbort: Error | undefined;

  /** Dispatches this call; a dispatcher that throws (closed) fails it like a transport error. */
  send(dispatcher: UpstreamPool, opts: DispatchOptions): void {
    try {
      dispatcher.dispatch(opts, this);
    } catch (e) {
      this.onResponseError(undefined as never, e as Error);
    }
  }

  /** Aborts the request; once settled, aborting does nothing. */
  abort(err: Error): void {
    if (this.settled()) return;
    if (this.controller !== undefined) this.controller.abort(err);
    else this.#pendingAbort = err;
  }

  protected abstract settled(): boolean;

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.#pendingAbort !== undefined) controller.abort(this.#pendingAbort);
  }

  abstract onResponseError(c: Dispatcher.DispatchController, err: Error): void;
}

export interface BufferedResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/**
 * A whole upstream response, buffered. Bodies of error answers are kept up to errorLimit
 * bytes (enough to read the engine's message); successful ones up to okLimit, past which the
 * request is aborted as unusable.
 */
export class BufferedCall extends UpstreamCall {
  readonly promise: Promise<BufferedResponse>;
  #resolve!: (r: BufferedResponse) => void;
  #reject!: (e: Error) => void;
  #status = 0;
  #headers: IncomingHttpHeaders = {};
  /** The body's pieces: a list begun with the first (most answers come in one), not grown from an empty one. */
  #chunks: Buffer[] | undefined = undefined;
  #size = 0;
  #limit = 0;
  #truncated = false;
  #done = false;
  readonly #okLimit: number;
  readonly #errorLimit: number;

  constructor(okLimit: number, errorLimit: number) {
    super();
    this.#okLimit = okLimit;
    this.#errorLimit = errorLimit;
    this.promise = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }

  protected settled(): boolean {
    return this.#done;
  }

  onResponseStart(_c: Dispatcher.DispatchController, status: number, headers: IncomingHttpHeaders): void {
    this.#status = status;
    this.#headers = headers;
    this.#limit = status >= 200 && status < 300 ? this.#okLimit : this.#errorLimit;
  }

  onResponseData(c: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#truncated) return;
    if (this.#size + chunk.length > this.#limit) {
      this.#truncated = true;
      this.#keep(chunk.subarray(0, this.#limit - this.#size));
      this.#size = this.#limit;
      if (this.#status >= 200 && this.#status < 300) {
        c.abort(Object.assign(new Error(`response body exceeds ${this.#okLimit} bytes`), { code: 'FABRIC_RESPONSE_TOO_LARGE' }));
      }
      return;
    }
    this.#keep(chunk);
    this.#size += chunk.length;
  }

  #keep(chunk: Buffer): void {
    if (this.#chunks === undefined) this.#chunks = [chunk];
    else this.#chunks.push(chunk);
  }

  onResponseEnd(): void {
    if (this.#done) return;
    this.#done = true;
    const chunks = this.#chunks;
    const body = chunks?.length === 1 ? chunks[0]! : Buffer.concat(chunks ?? [], this.#size);
    this.#resolve({ status: this.#status, headers: this.#headers, body });
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    if (this.#done) return;
    this.#done = true;
    // An error body cut at its limit is still an answer worth reading.
    if (this.#truncated && !(this.#status >= 200 && this.#status < 300)) {
      this.#resolve({ status: this.#status, headers: this.#headers, body: Buffer.concat(this.#chunks ?? [], this.#size) });
      return;
    }
    // The connection lost after the head: the backend did the work and broke off its answer.
    // Sending it again would run (and, in the cloud, bill) the whole generation twice.
    const code = errorCode(err);
    if (this.#status !== 0 && (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET' || code === 'EPIPE')) {
      err = Object.assign(new Error(`the answer was cut off after ${this.#size} bytes of its body (${err.message})`), { code: TRUNCATED });
    }
    this.#reject(err);
  }
}
