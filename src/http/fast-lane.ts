// The fast lane: a strict HTTP/1.1 server in front of node:http, for the requests that make up
// nearly all of a gateway's traffic (a JSON body with Content-Length on a keep-alive
// connection). node:http costs about 70 µs of CPU per request on this project's benchmark VM,
// more than half of a bare proxy's whole cost; this lane costs about a third of that, because it
// builds no streams, no IncomingMessage and no ServerResponse.
//
// It is not a second HTTP implementation to trust with the hard cases. It takes a request only
// when every byte of its head matches a narrow grammar (request line, token names, printable
// values, single Content-Length, Host, no Transfer-Encoding, Expect, Upgrade or repeated
// header). Anything else — chunked bodies, 100-continue, HTTP/1.0, obs-fold, bare LF, odd
// bytes, an oversized head — is handed, with every byte still unread by a handler, to
// node:http's own connection handling, which then owns the connection. So each byte stream is
// parsed by exactly one parser, and where this lane is unsure, node decides.

import { STATUS_CODES, type IncomingHttpHeaders, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { FabricError } from '../core/errors.ts';
import type { Abortable, Exchange } from './exchange.ts';

export interface FastLaneOptions {
  /** A head longer than this goes to node:http, which answers 431. */
  maxHeaderBytes: number;
  /** From the first byte of a request to the end of its head. */
  headersTimeoutMs: number;
  /** From the first byte of a request to the end of its body. */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this long. */
  keepAliveTimeoutMs: number;
  /** Bodies up to this size are read before the handler runs; a larger declared size is refused (the handler answers 413 and the connection closes). */
  maxBodyBytes: () => number;
}

type Handler = (x: Exchange) => void;

const IDLE = 0;    // between requests, nothing buffered
const HEAD = 1;    // part of a head received
const BODY = 2;    // head parsed, body arriving
const BUSY = 3;    // the handler has the request
const GONE = 4;    // closed, or handed to node:http

const CRLFCRLF = Buffer.from('\r\n\r\n');
const EMPTY = Buffer.alloc(0);
const REQUEST_LINE = /^(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS) (\/[\x21-\x7e]*) HTTP\/1\.1$/;
/** Every header line: a token, a colon, printable ASCII or tab, CRLF. Linear: the value class excludes CR. */
const FIELDS = /^(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e]*\r\n)+$/;
const DIGITS = /^\d{1,15}$/;
/** What node:http refuses in a header value (ERR_INVALID_CHAR); 0x80-0xff pass and are written as latin1. */
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const NON_ASCII = /[\x80-\xff]/;
/** Pipelined bytes held while a request is handled; past this the socket stops reading. */
const HOLD_MAX = 256 * 1024;

const statusLines: string[] = [];
function statusLine(status: number): string {
  return statusLines[status] ??= `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;
}

function timeoutAnswer(what: string): string {
  const body = JSON.stringify({ error: { message: what, type: 'invalid_request_error', param: null, code: 'request_timeout' } });
  return `HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`;
}

export class FastLane {
  readonly #server: Server;
  readonly #handler: Handler;
  readonly #toNode: (socket: Socket) => void;
  readonly opts: FastLaneOptions;
  readonly conns = new Set<Conn>();
  /** Date.now(), refreshed by the sweep: the lane's coarse clock for timeouts. */
  clock = Date.now();
  readonly keepAlive: string;
  #date = '';
  #dateUntil = 0;
  readonly #sweep: NodeJS.Timeout;

  /** Takes the server's incoming connections; node:http's own handling gets those the lane hands over. */
  constructor(server: Server, handler: Handler, opts: FastLaneOptions) {
    this.#server = server;
    this.#handler = handler;
    this.opts = opts;
    this.keepAlive = `connection: keep-alive\r\nkeep-alive: timeout=${Math.floor(opts.keepAliveTimeoutMs / 1000)}\r\n`;
    const node = server.listeners('connection') as ((s: Socket) => void)[];
    server.removeAllListeners('connection');
    this.#toNode = (s) => { for (const l of node) l.call(server, s); };
    server.on('connection', (s: Socket) => this.conns.add(new Conn(this, s)));
    this.#sweep = setInterval(() => this.#expire(), Math.min(1_000, opts.headersTimeoutMs, opts.keepAliveTimeoutMs)).unref();
    server.once('close', () => clearInterval(this.#sweep));
  }

  /** The server is closing: answers say connection: close, and connections end after them. */
  get closing(): boolean {
    return !this.#server.listening;
  }

  handle(x: FastExchange): void {
    this.#handler(x);
  }

  toNode(socket: Socket): void {
    this.#toNode(socket);
  }

  date(): string {
    const now = Date.now();
    if (now >= this.#dateUntil) {
      this.#date = new Date(now).toUTCString();
      this.#dateUntil = now - (now % 1000) + 1000;
    }
    return this.#date;
  }

  /** Connections between requests are closed (node:http's closeIdleConnections, for this lane's). */
  closeIdle(): void {
    for (const c of this.conns) if (c.state === IDLE) c.socket.destroy();
  }

  closeAll(): void {
    for (const c of this.conns) c.socket.destroy();
  }

  #expire(): void {
    const now = this.clock = Date.now();
    const o = this.opts;
    for (const c of this.conns) {
      const waited = now - c.since;
      if (c.state === IDLE) {
        if (waited >= (c.served === 0 ? o.headersTimeoutMs : o.keepAliveTimeoutMs)) c.socket.destroy();
      } else if (c.state === HEAD) {
        if (waited >= o.headersTimeoutMs) c.refuse(timeoutAnswer(`the request head did not arrive within ${o.headersTimeoutMs / 1000} s`));
      } else if (c.state === BODY) {
        if (waited >= o.requestTimeoutMs) c.refuse(timeoutAnswer(`the request body did not arrive within ${o.requestTimeoutMs / 1000} s`));
      } else if (c.state === GONE) {
        // Ended by us (connection: close, a timeout) but never closed by the client.
        if (waited >= o.headersTimeoutMs) c.socket.destroy();
      }
    }
  }
}

class Conn {
  readonly lane: FastLane;
  readonly socket: Socket;
  state = IDLE;
  /** lane.clock when the current request (or the idle wait) began. */
  since: number;
  served = 0;
  /** Received bytes not yet parsed. */
  buf: Buffer | undefined = undefined;
  /** The request whose body is arriving, or which the handler has. */
  x: FastExchange | undefined = undefined;
  parts: Buffer[] = [];
  got = 0;
  /** Close once the current answer is written (the client asked, or the body was refused). */
  closeAfter = false;

  constructor(lane: FastLane, socket: Socket) {
    this.lane = lane;
    this.socket = socket;
    this.since = lane.clock;
    socket.setNoDelay(true);
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
  }

  onData = (d: Buffer): void => {
    if (this.state === BODY) return this.takeBody(d);
    if (this.state === GONE) return;
    this.buf = this.buf === undefined ? d : Buffer.concat([this.buf, d]);
    if (this.state === BUSY) {
      if (this.buf.length > HOLD_MAX) this.socket.pause();
      return;
    }
    this.parse();
  };

  onEnd = (): void => {
    // The client half-closed. As node:http does (httpAllowHalfOpen off), an answer still being
    // made is abandoned; otherwise the connection simply ends.
    if (this.state === BUSY || this.state === BODY) this.socket.destroy();
    else this.socket.end();
  };

  onError = (): void => {
    // 'close' follows.
  };

  onClose = (): void => {
    this.lane.conns.delete(this);
    const x = this.x;
    this.state = GONE;
    this.x = undefined;
    if (x !== undefined && !x.ended) x.aborted();
  };

  parse(): void {
    const o = this.lane.opts;
    while (this.buf !== undefined && (this.state === IDLE || this.state === HEAD)) {
      const buf = this.buf;
      const e = buf.indexOf(CRLFCRLF);
      if (e === -1 || e + 4 > o.maxHeaderBytes) {
        if (buf.length > o.maxHeaderBytes) return this.handOff();
        if (e === -1) {
          // A bare LF or CR may end this head for node:http (or make it refuse it): its call.
          if (oddLineEnd(buf)) return this.handOff();
          if (this.state === IDLE) {
            this.state = HEAD;
            this.since = this.lane.clock;
          }
          return;
        }
        return this.handOff();
      }
      const x = parseHead(buf.toString('latin1', 0, e + 2), this);
      if (x === undefined) return this.handOff();
      if (this.state === IDLE) this.since = this.lane.clock;
      const start = e + 4;
      const n = x.declared;
      if (n > o.maxBodyBytes()) {
        // Not read: the handler refuses it (413), and the connection closes after that answer.
        this.closeAfter = true;
        this.buf = undefined;
        this.socket.pause();
        return this.dispatch(x);
      }
      if (buf.length - start >= n) {
        x.raw = n === 0 ? EMPTY : buf.subarray(start, start + n);
        this.buf = buf.length === start + n ? undefined : buf.subarray(start + n);
        return this.dispatch(x);
      }
      this.state = BODY;
      this.x = x;
      this.parts = [buf.subarray(start)];
      this.got = buf.length - start;
      this.buf = undefined;
    }
  }

  takeBody(d: Buffer): void {
    const x = this.x!;
    const need = x.declared - this.got;
    if (d.length < need) {
      this.parts.push(d);
      this.got += d.length;
      return;
    }
    this.parts.push(d.length === need ? d : d.subarray(0, need));
    if (d.length > need) this.buf = d.subarray(need);
    x.raw = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, x.declared);
    this.parts = [];
    this.got = 0;
    this.dispatch(x);
  }

  dispatch(x: FastExchange): void {
    this.state = BUSY;
    this.x = x;
    try {
      this.lane.handle(x);
    } catch {
      this.socket.destroy();
    }
  }

  /** x's answer is written: the next request, or the end of the connection. */
  done(x: FastExchange): void {
    if (this.x !== x || this.state !== BUSY) return;
    this.x = undefined;
    this.served++;
    if (this.closeAfter || x.closes) {
      // Ended on our side; the sweep destroys it if the client never closes its side.
      this.state = GONE;
      this.since = this.lane.clock;
      this.socket.end();
      return;
    }
    this.state = IDLE;
    this.since = this.lane.clock;
    if (this.socket.isPaused()) this.socket.resume();
    if (this.buf !== undefined) this.parse();
  }

  /** Answer with a fixed response and close (timeouts). */
  refuse(answer: string): void {
    this.state = GONE;
    this.since = this.lane.clock;
    this.buf = undefined;
    this.socket.end(answer);
  }

  /**
   * Gives the connection, and every byte not yet parsed, to node:http. Only at a request
   * boundary: nothing of the request in buf has been acted on.
   */
  handOff(): void {
    const s = this.socket;
    s.pause();
    s.removeListener('data', this.onData);
    s.removeListener('end', this.onEnd);
    s.removeListener('error', this.onError);
    s.removeListener('close', this.onClose);
    this.lane.conns.delete(this);
    this.state = GONE;
    if (this.buf !== undefined) s.unshift(this.buf);
    this.buf = undefined;
    this.lane.toNode(s);
    s.resume();
  }
}

/** A LF not after a CR, or a CR not before a LF (a CR at the very end may still get its LF). */
function oddLineEnd(buf: Buffer): boolean {
  for (let i = buf.indexOf(10); i !== -1; i = buf.indexOf(10, i + 1)) if (i === 0 || buf[i - 1] !== 13) return true;
  for (let i = buf.indexOf(13); i !== -1; i = buf.indexOf(13, i + 1)) if (i + 1 < buf.length && buf[i + 1] !== 10) return true;
  return false;
}

/** The request the head describes, or undefined when anything in it is outside the lane's grammar. */
function parseHead(text: string, conn: Conn): FastExchange | undefined {
  const le = text.indexOf('\r\n');
  const m = REQUEST_LINE.exec(text.slice(0, le));
  if (m === null) return undefined;
  if (!FIELDS.test(text.slice(le + 2))) return undefined;
  const headers: Record<string, string> = {};
  let i = le + 2;
  const end = text.length;
  while (i < end) {
    const j = text.indexOf('\r\n', i);
    const c = text.indexOf(':', i);
    const name = text.slice(i, c).toLowerCase();
    // A repeat (or a name an Object already has, such as constructor) goes to node:http,
    // which knows each header's rule for repeats.
    if (headers[name] !== undefined || name === '__proto__') return undefined;
    let a = c + 1;
    let b = j;
    while (a < b && (text.charCodeAt(a) === 32 || text.charCodeAt(a) === 9)) a++;
    while (b > a && (text.charCodeAt(b - 1) === 32 || text.charCodeAt(b - 1) === 9)) b--;
    headers[name] = text.slice(a, b);
    i = j + 2;
  }
  if (headers.host === undefined || headers['transfer-encoding'] !== undefined || headers.expect !== undefined || headers.upgrade !== undefined) return undefined;
  let declared = 0;
  const cl = headers['content-length'];
  if (cl !== undefined) {
    if (!DIGITS.test(cl)) return undefined;
    declared = Number(cl);
  }
  const connection = headers.connection;
  if (connection !== undefined) {
    const v = connection.toLowerCase();
    if (v === 'close') conn.closeAfter = true;
    else if (v !== 'keep-alive') return undefined;
  }
  return new FastExchange(conn, m[1]!, m[2]!, headers, declared);
}

export class FastExchange implements Exchange {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly declared: number;
  /** The body, once all of it has arrived; undefined when it was too large to read. */
  raw: Buffer | undefined = undefined;
  preset: string[] | undefined = undefined;
  headersSent = false;
  ended = false;
  /** This answer ends the connection. */
  closes = false;
  readonly #conn: Conn;
  /** The header block, written with the first bytes of the body. */
  #head: string | undefined = undefined;
  #headLatin1 = false;
  #chunked = false;
  #noBody: boolean;
  #onAbort: Abortable | undefined = undefined;

  constructor(conn: Conn, method: string, url: string, headers: IncomingHttpHeaders, declared: number) {
    this.#conn = conn;
    this.method = method;
    this.url = url;
    this.headers = headers;
    this.declared = declared;
    this.#noBody = method === 'HEAD';
  }

  body(limit: number): Promise<Buffer> {
    if (this.declared > limit || this.raw === undefined) {
      return Promise.reject(new FabricError('body_too_large', `request body is ${this.declared} bytes; the limit is ${limit}`));
    }
    return Promise.resolve(this.raw);
  }

  head(status: number, headers: string[]): void {
    if (this.headersSent) throw new Error('the answer has already begun');
    let s = statusLine(status);
    let length = false;
    let connection = false;
    const lists = this.preset === undefined ? [headers] : [headers, this.preset];
    for (const list of lists) {
      for (let i = 0; i < list.length; i += 2) {
        const k = list[i]!;
        const v = list[i + 1]!;
        if (BAD_VALUE.test(v)) throw Object.assign(new TypeError(`invalid character in header "${k}"`), { code: 'ERR_INVALID_CHAR' });
        if (NON_ASCII.test(v)) this.#headLatin1 = true;
        s += k + ': ' + v + '\r\n';
        if (k === 'content-length') length = true;
        else if (k === 'connection') {
          connection = true;
          if (v.toLowerCase() === 'close') this.closes = true;
        }
      }
    }
    if (status === 204 || status === 304) this.#noBody = true;
    else if (!length && !this.#noBody) {
      s += 'transfer-encoding: chunked\r\n';
      this.#chunked = true;
    }
    const conn = this.#conn;
    if (conn.closeAfter || this.#conn.lane.closing) {
      this.closes = true;
      if (!connection) s += 'connection: close\r\n';
    } else if (!connection) s += conn.lane.keepAlive;
    this.#head = s + 'date: ' + conn.lane.date() + '\r\n\r\n';
    this.headersSent = true;
  }

  write(data: Buffer | string): boolean {
    if (!this.headersSent) throw new Error('write() before head()');
    if (this.ended) return false;
    if (this.#noBody || data.length === 0) return this.#flushHead();
    return this.#send(data, false);
  }

  onDrain(cb: () => void): void {
    this.#conn.socket.once('drain', cb);
  }

  end(data?: Buffer | string): void {
    if (this.ended) return;
    if (!this.headersSent) this.head(200, ['content-length', String(data === undefined ? 0 : Buffer.byteLength(data))]);
    this.ended = true;
    if (this.#noBody || data === undefined || data.length === 0) {
      if (this.#chunked && !this.#noBody) this.#raw('0\r\n\r\n');
      else this.#flushHead();
    } else this.#send(data, true);
    this.#conn.done(this);
  }

  destroy(): void {
    this.ended = true;
    this.#conn.socket.destroy();
  }

  onAbort(target: Abortable): void {
    this.#onAbort = target;
  }

  /** The connection closed before the answer ended. */
  aborted(): void {
    this.#onAbort?.abort();
  }

  #flushHead(): boolean {
    const h = this.#head;
    if (h === undefined) return true;
    this.#head = undefined;
    return this.#conn.socket.write(h, this.#headLatin1 ? 'latin1' : 'utf8');
  }

  /** Writes text (the head, if still pending, and a string body or chunk) in one call. */
  #raw(text: string): boolean {
    const h = this.#head;
    if (h !== undefined && this.#headLatin1) {
      this.#flushHead();
      return this.#conn.socket.write(text);
    }
    this.#head = undefined;
    return this.#conn.socket.write(h === undefined ? text : h + text);
  }

  #send(data: Buffer | string, last: boolean): boolean {
    const chunked = this.#chunked;
    if (typeof data === 'string') {
      if (!chunked) return this.#raw(data);
      return this.#raw(Buffer.byteLength(data).toString(16) + '\r\n' + data + (last ? '\r\n0\r\n\r\n' : '\r\n'));
    }
    const s = this.#conn.socket;
    s.cork();
    this.#flushHead();
    if (chunked) s.write(data.length.toString(16) + '\r\n');
    let ok = s.write(data);
    if (chunked) ok = s.write(last ? '\r\n0\r\n\r\n' : '\r\n');
    s.uncork();
    return ok;
  }
}
