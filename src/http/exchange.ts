// One request and its answer, as the route handlers see them, whichever HTTP server carried
// them: the fast lane (fast-lane.ts) for the common, strictly-formed request, node:http for
// everything else. The handlers write each answer as one header block and a body, or a
// header block and a stream of writes, which both servers can do without per-header work.

import { STATUS_CODES, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { BodyBudget } from './body-budget.ts';
import { FabricError } from '../core/errors.ts';
import { formatSize } from '../config/units.ts';

export interface Abortable {
  abort(): void;
}

export interface Exchange {
  /** Which server parsed the request: the fast lane, or node:http. */
  readonly lane: 'fast' | 'node';
  readonly method: string;
  /** The request target as sent (origin form: path and query). */
  readonly url: string;
  /** Lower-case names; on the fast lane every name occurs once. */
  readonly headers: IncomingHttpHeaders;
  /**
   * The whole body; body_too_large when the declared or received size passes limit, which
   * `setting` sets (named in the refusal). The body itself when all of it is already in.
   */
  body(limit: number, setting?: string): Buffer | Promise<Buffer>;
  /** Headers added to every header block this exchange writes (the request ids). */
  preset: string[] | undefined;
  /** A header block has been written (or queued with the first write). */
  readonly headersSent: boolean;
  /** end() has been called. */
  readonly ended: boolean;
  /** Status and headers as a flat [name, value, …] list. Without content-length the body is streamed (chunked). */
  head(status: number, headers: string[]): void;
  write(data: Buffer | string): boolean;
  onDrain(cb: () => void): void;
  end(data?: Buffer | string): void;
  /** Drop the connection at once (the client gets no answer). */
  destroy(): void;
  /** target.abort() runs if the client goes away before the answer was ended. */
  onAbort(target: Abortable): void;
}

/** A whole answer with a text body. After a header block (a stream begun), only the end. */
export function sendText(x: Exchange, status: number, body: string, type: string, headers?: Record<string, string>): void {
  if (x.headersSent) {
    x.end();
    return;
  }
  const h = ['content-type', type, 'content-length', String(Buffer.byteLength(body))];
  if (headers !== undefined) for (const k in headers) h.push(k, headers[k]!);
  x.head(status, h);
  x.end(body);
}

export function sendJson(x: Exchange, status: number, body: string, headers?: Record<string, string>): void {
  sendText(x, status, body, 'application/json', headers);
}

/**
 * A whole answer, an OpenAI-shaped error that closes the connection, for the servers' own
 * refusals written straight to the socket (a malformed or oversized head, a request too slow).
 */
export function closingErrorAnswer(status: number, message: string, code: string, requestId: string | undefined): string {
  const body = JSON.stringify({ error: { message, type: 'invalid_request_error', param: null, code } });
  const id = requestId === undefined ? '' : `x-request-id: ${requestId}\r\n`;
  return `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${id}connection: close\r\n\r\n${body}`;
}

/**
 * A refused body: its size (when declared) and the limit in units people read, and what sets the
 * limit. The answer closes the connection: the body's unread rest would otherwise be taken for
 * the next request.
 */
export function bodyTooLarge(size: number | undefined, limit: number, setting: string | undefined): FabricError {
  let is = size === undefined ? '' : formatSize(size);
  let max = formatSize(limit);
  // Just over the limit, the two round alike: the bytes then say which is the larger.
  if (is === max) { is = `${size} bytes`; max = `${limit} bytes`; }
  const by = setting === undefined ? '' : ` (${setting})`;
  const message = size === undefined ? `request body exceeds the limit of ${max}${by}` : `request body is ${is}; the limit is ${max}${by}`;
  return new FabricError('body_too_large', message, { headers: { connection: 'close' } });
}

/** Connections whose request body is being read, with that request's id (node:http's request timeout then ends a request a handler has). */
const readingBody = new WeakMap<object, string>();
/** Connections node:http timed out while their body was read: that request is a 408, not a client gone. */
const timedOut = new WeakSet<object>();

/**
 * node:http's request timeout fired on this connection (clientError ERR_HTTP_REQUEST_TIMEOUT):
 * the id of the request whose body was being read, which the read then fails as a 408; undefined
 * when no handler was reading one (a head that never came whole).
 */
export function bodyTimedOut(socket: object): string | undefined {
  const id = readingBody.get(socket);
  if (id !== undefined) timedOut.add(socket);
  return id;
}

/** Reads a node:http request body up to limit bytes; `id` is the request's, for an answer the server writes for it. */
function readNodeBody(req: IncomingMessage, limit: number, bodies: BodyBudget | undefined, id = '', setting?: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > limit) {
      reject(bodyTooLarge(Number(declared), limit, setting));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    /** What this body holds of the budget: its declared length up front, else each chunk as it comes. */
    let held = 0;
    const upFront = declared === undefined ? 0 : Number(declared);
    if (bodies !== undefined && !req.complete && upFront > 0) {
      if (!bodies.take(upFront)) {
        reject(bodies.refusal());
        return;
      }
      held = upFront;
    }
    const socket = req.socket;
    readingBody.set(socket, id);
    const done = (): void => {
      readingBody.delete(socket);
      bodies?.give(held);
      held = 0;
    };
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.pause();
        done();
        reject(bodyTooLarge(undefined, limit, setting));
        return;
      }
      if (bodies !== undefined && size > held) {
        if (!bodies.take(size - held)) {
          req.removeAllListeners('data');
          req.pause();
          done();
          reject(bodies.refusal());
          return;
        }
        held = size;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      done();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    });
    // The client went away while its body was arriving ('aborted', ECONNRESET), or before it was
    // read at all (then no event comes): a 499 as on the fast lane, never a 500 nor a wait for ever.
    const gone = (): void => {
      done();
      reject(timedOut.has(socket)
        ? new FabricError('request_timeout', 'the request body did not arrive in time')
        : new FabricError('client_closed_request', 'client closed the request'));
    };
    req.on('error', gone);
    // Not `complete`: a body that had wholly arrived when its client left was never read to its end.
    req.on('close', () => { if (!req.readableEnded) gone(); });
    if (req.destroyed && !req.readableEnded) gone();
  });
}

/** An exchange carried by node:http. */
export class NodeExchange implements Exchange {
  readonly lane = 'node';
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  preset: string[] | undefined = undefined;
  readonly #bodies: BodyBudget | undefined;
  constructor(req: IncomingMessage, res: ServerResponse, bodies?: BodyBudget) {
    this.req = req;
    this.res = res;
    this.#bodies = bodies;
  }
  get method(): string {
    return this.req.method ?? 'GET';
  }
  get url(): string {
    return this.req.url ?? '/';
  }
  get headers(): IncomingHttpHeaders {
    return this.req.headers;
  }
  body(limit: number, setting?: string): Promise<Buffer> {
    return readNodeBody(this.req, limit, this.#bodies, this.preset?.[1], setting);
  }
  get headersSent(): boolean {
    return this.res.headersSent;
  }
  get ended(): boolean {
    return this.res.writableEnded;
  }
  head(status: number, headers: string[]): void {
    this.res.writeHead(status, this.preset === undefined ? headers : headers.concat(this.preset));
  }
  write(data: Buffer | string): boolean {
    return this.res.write(data);
  }
  onDrain(cb: () => void): void {
    this.res.once('drain', cb);
  }
  end(data?: Buffer | string): void {
    if (data === undefined) this.res.end();
    else this.res.end(data);
  }
  destroy(): void {
    this.res.destroy();
  }
  onAbort(target: Abortable): void {
    const res = this.res;
    res.on('close', () => {
      if (!res.writableFinished) target.abort();
    });
  }
}
