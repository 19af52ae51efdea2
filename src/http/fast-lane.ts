// The fast lane: a strict HTTP/1.1 server in front of node:http, for the requests that make up
// nearly all of a gateway's traffic (a JSON body with Content-Length on a keep-alive
// connection). It builds no streams, no IncomingMessage and no ServerResponse: the gateway
// spends about a quarter less CPU per request with it than on node:http alone (README,
// Performance, measured with bench:ab and gateway.fast_lane: false).
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
import { TOKEN, toLower } from '../core/http-syntax.ts';
import { bodyTooLarge, closingErrorAnswer, type Abortable, type Exchange } from './exchange.ts';
import type { BodyBudget } from './body-budget.ts';

export interface FastLaneOptions {
  /** A head longer than this goes to node:http, which answers 431. */
  maxHeaderBytes: number;
  /** From the first byte of a request to the end of its head. */
  headersTimeoutMs: number;
  /** From the first byte of a request to the end of its body. */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this long. */
  keepAliveTimeoutMs: number;
  /** Bodies up to this size (for the request's URL) are read before the handler runs; a larger declared size is refused (the handler answers 413 and the connection closes). */
  maxBodyBytes: (url: string) => number;
  /** A request id for the answers the lane writes itself (a 408 before any handler ran). */
  requestId?: () => string;
  /** Told of each answer the lane writes itself (a 408), to log it under its id. */
  refused?: (id: string | undefined, status: number, message: string) => void;
  /** Bytes of bodies still arriving, shared with node:http's reads: a body past it is not read (the handler answers 503). */
  bodies?: BodyBudget;
}

type Handler = (x: Exchange) => void;

/** node:http refuses a head of more than 1,000 header fields (431): past that, the lane lets it. */
const MAX_HEADER_FIELDS = 1000;
const IDLE = 0;    // between requests, nothing buffered
const HEAD = 1;    // part of a head received
const BODY = 2;    // the handler has the request; its body is still arriving
const BUSY = 3;    // the handler has the request and all of its body
const DRAIN = 4;   // answered, but the client has not read it yet: no more requests are read
const GONE = 5;    // closed or closing, or handed to node:http

const CRLFCRLF = Buffer.from('\r\n\r\n');
const EMPTY = Buffer.alloc(0);
const REQUEST_LINE = /^(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS) (\/[\x21-\x7e]*) HTTP\/1\.1$/;
/** Every header line: a token, a colon, printable ASCII or tab, CRLF. Linear: the value class excludes CR. */
const FIELDS = /^(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e]*\r\n)+$/;
const DIGITS = /^\d{1,15}$/;
/** What node:http refuses in a header value (ERR_INVALID_CHAR); 0x80-0xff pass and are written as latin1. */
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
/** Anything but tab and printable ASCII: then BAD_VALUE decides, and the rest is latin1. */
const NOT_PRINTABLE = /[^\t\x20-\x7e]/;
/** Pipelined bytes held while a request is handled; past this the socket stops reading. */
const HOLD_MAX = 256 * 1024;
/** Requests answered in one go from one connection's pipeline before other connections get a turn. */
const PIPELINE_BURST = 32;
/** An idle connection is kept this much past the keep-alive time it announces (as node:http does), so a client never reuses one the server is closing. */
const KEEP_ALIVE_GRACE_MS = 1_000;

const statusLines: string[] = [];
function statusLine(status: number): string {
  return statusLines[status] ??= `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;
}

function timeoutAnswer(what: string, requestId: string | undefined): string {
  return closingErrorAnswer(408, what, 'request_timeout', requestId);
}

export class FastLane {
  readonly #server: Server;
  /** The gateway's handler, for the requests the lane takes. */
  readonly handle: Handler;
  /** node:http's own connection handling, for the connections the lane hands over. */
  readonly toNode: (socket: Socket) => void;
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
    this.handle = handler;
    this.opts = opts;
    this.keepAlive = `connection: keep-alive\r\nkeep-alive: timeout=${Math.floor(opts.keepAliveTimeoutMs / 1000)}\r\n`;
    const node = server.listeners('connection') as ((s: Socket) => void)[];
    server.removeAllListeners('connection');
    this.toNode = (s) => { for (const l of node) l.call(server, s); };
    server.on('connection', (s: Socket) => this.conns.add(new Conn(this, s)));
    // server.close() closes idle connections through this method, and embedders call both:
    // they must reach the lane's connections too, not only node:http's.
    const closeIdle = server.closeIdleConnections.bind(server);
    const closeAll = server.closeAllConnections.bind(server);
    server.closeIdleConnections = () => { closeIdle(); this.closeIdle(); };
    server.closeAllConnections = () => { closeAll(); this.closeAll(); };
    this.#sweep = setInterval(() => this.#expire(), Math.min(1_000, opts.headersTimeoutMs, opts.keepAliveTimeoutMs)).unref();
    server.once('close', () => clearInterval(this.#sweep));
  }

  /** The server is closing: answers say connection: close, and connections end after them. */
  get closing(): boolean {
    return !this.#server.listening;
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
    for (const c of this.conns) if (c.idle()) c.socket.destroy();
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
        if (waited >= (c.served === 0 ? o.headersTimeoutMs : o.keepAliveTimeoutMs + KEEP_ALIVE_GRACE_MS) && c.idle()) c.socket.destroy();
        // A client that stopped reading its answers holds them unsent: as in DRAIN, it has the
        // request timeout to take them, then the connection goes.
        else if (waited >= o.requestTimeoutMs && c.socket.writableLength > 0) c.socket.destroy();
      } else if (c.state === HEAD) {
        if (waited >= o.headersTimeoutMs) {
          const id = o.requestId?.();
          const what = `the request head did not arrive within ${o.headersTimeoutMs / 1000} s`;
          c.refuse(timeoutAnswer(what, id));
          o.refused?.(id, 408, what);
        }
      } else if (c.state === BODY) {
        if (waited >= o.requestTimeoutMs) {
          const what = `the request body did not arrive within ${o.requestTimeoutMs / 1000} s`;
          const x = c.x;
          // The id the handler already gave this request (its exchange's preset starts with it).
          c.refuse(timeoutAnswer(what, x?.preset?.[1] ?? o.requestId?.()));
          x?.bodyFailed(new FabricError('request_timeout', what));
          x?.aborted();
        }
      } else if (c.state === DRAIN) {
        // An answer the client has not read for as long as a whole request may take.
        if (waited >= o.requestTimeoutMs) c.socket.destroy();
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
  /** When the current request (or the idle wait) began; the sweep measures timeouts from it. */
  since: number;
  served = 0;
  /** Received bytes not yet parsed (a request head, or pipelined requests). */
  buf: Buffer | undefined = undefined;
  /** Spare room buf grows into while a head arrives in pieces, so each piece is copied once. */
  room: Buffer | undefined = undefined;
  /** buf before this offset holds no head end (nor odd line end): each piece is scanned once. */
  scanned = 0;
  /** The request the handler has. */
  x: FastExchange | undefined = undefined;
  parts: Buffer[] = [];
  got = 0;
  /** What the body being read holds of the lane's body budget (its declared length). */
  heldBody = 0;
  /** Close once the current answer is written (the client asked, or the body was refused or cut short). */
  closeAfter = false;
  parsing = false;

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
    const st = this.state;
    if (st === BODY) return this.takeBody(d);
    if (st === GONE) return;
    this.append(d);
    if (st === BUSY || st === DRAIN) {
      if (this.buf!.length > HOLD_MAX) this.socket.pause();
      return;
    }
    this.parse();
  };

  /** Between requests with nothing unsent and nothing unparsed: closing it loses nothing. */
  idle(): boolean {
    return this.state === IDLE && this.buf === undefined && this.socket.writableLength === 0;
  }

  append(d: Buffer): void {
    const b = this.buf;
    if (b === undefined) {
      this.buf = d;
      return;
    }
    const len = b.length + d.length;
    const room = this.room;
    if (room !== undefined && b.buffer === room.buffer && b.byteOffset === room.byteOffset && len <= room.length) {
      d.copy(room, b.length);
      this.buf = room.subarray(0, len);
      return;
    }
    const grown = Buffer.allocUnsafeSlow(Math.max(len * 2, 4096));
    b.copy(grown, 0);
    d.copy(grown, b.length);
    this.room = grown;
    this.buf = grown.subarray(0, len);
  }

  onEnd = (): void => {
    // The client half-closed. As node:http does (httpAllowHalfOpen off), an answer still being
    // made is abandoned; otherwise the connection simply ends.
    if (this.state === BUSY || this.state === BODY) this.socket.destroy();
    else this.socket.end();
  };

  onError = (): void => {
    // 'close' follows.
  };

  /** The body being read has all come, or never will: its share of the budget goes back. */
  releaseBody(): void {
    if (this.heldBody === 0) return;
    this.lane.opts.bodies?.give(this.heldBody);
    this.heldBody = 0;
  }

  onClose = (): void => {
    this.releaseBody();
    this.parts = [];
    this.lane.conns.delete(this);
    const x = this.x;
    this.state = GONE;
    this.x = undefined;
    if (x !== undefined && !x.ended) {
      x.bodyFailed(new FabricError('client_closed_request', 'client closed the request'));
      x.aborted();
    }
  };

  parse(): void {
    // An answer ended synchronously inside the loop lands here through done(): the loop goes on.
    if (this.parsing) return;
    this.parsing = true;
    try {
      this.parseLoop();
    } finally {
      this.parsing = false;
    }
  }

  parseLoop(): void {
    const o = this.lane.opts;
    let answered = 0;
    while (this.buf !== undefined && (this.state === IDLE || this.state === HEAD)) {
      if (++answered > PIPELINE_BURST) {
        setImmediate(() => this.parse());
        return;
      }
      const buf = this.buf;
      const e = buf.indexOf(CRLFCRLF, this.scanned);
      if (e === -1) {
        // A bare LF or CR may end this head for node:http (or make it refuse it), and bytes
        // that cannot begin a request line it refuses at once: its call, not a 30 s wait here.
        if (buf.length > o.maxHeaderBytes || oddLineEnd(buf, this.scanned) || !requestLineSoFar(buf)) return this.handOff();
        this.scanned = Math.max(0, buf.length - 3);
        if (this.state === IDLE) {
          this.state = HEAD;
          this.since = this.lane.clock;
        }
        return;
      }
      if (e + 4 > o.maxHeaderBytes) return this.handOff();
      const x = parseHead(buf.toString('latin1', 0, e + 2), this);
      if (x === undefined) return this.handOff();
      if (this.state === IDLE) this.since = this.lane.clock;
      this.scanned = 0;
      const start = e + 4;
      const n = x.declared;
      if (n > o.maxBodyBytes(x.url)) {
        // Not read: the handler refuses it (413), and the connection closes after that answer.
        x.tooLarge = true;
        this.closeAfter = true;
        this.buf = undefined;
        this.socket.pause();
        this.dispatch(x, BUSY);
        return;
      }
      if (buf.length - start >= n) {
        x.raw = n === 0 ? EMPTY : buf.subarray(start, start + n);
        this.buf = buf.length === start + n ? undefined : buf.subarray(start + n);
        this.dispatch(x, BUSY);
        continue;
      }
      // Past the budget of bodies still arriving: not read, as one too large (the handler
      // answers 503 and the connection closes).
      if (o.bodies !== undefined && !o.bodies.take(n)) {
        x.overloaded = o.bodies.refusal();
        this.closeAfter = true;
        this.buf = undefined;
        this.socket.pause();
        this.dispatch(x, BUSY);
        return;
      }
      this.heldBody = o.bodies === undefined ? 0 : n;
      // The handler starts now, as on node:http: it can refuse (401, 404…) without waiting for
      // the body, which is then never held (the answer closes the connection).
      this.parts = [buf.subarray(start)];
      this.got = buf.length - start;
      this.buf = undefined;
      this.dispatch(x, BODY);
      return;
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
    x.raw = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, x.declared);
    this.parts = [];
    this.got = 0;
    this.releaseBody();
    this.state = BUSY;
    if (d.length > need) this.onData(d.subarray(need));
    x.bodyArrived();
  }

  dispatch(x: FastExchange, state: number): void {
    this.state = state;
    this.x = x;
    try {
      this.lane.handle(x);
    } catch {
      this.socket.destroy();
    }
  }

  /** x's answer is written: the next request, or the end of the connection. */
  done(x: FastExchange): void {
    if (this.x !== x) return;
    this.x = undefined;
    this.served++;
    this.since = Date.now();
    if (this.closeAfter || x.closes || this.state === BODY) {
      // Ended on our side; the sweep destroys it if the client never closes its side. A body
      // still arriving (a request refused before it was read) never will be: its share of the
      // body budget goes back now, not when the client leaves.
      this.releaseBody();
      this.parts = [];
      this.state = GONE;
      this.socket.end();
      return;
    }
    if (this.socket.writableNeedDrain) {
      // Like node:http, read no further request until the client has taken this answer:
      // a client that pipelines without reading must not fill the gateway's memory.
      this.state = DRAIN;
      this.socket.pause();
      this.socket.once('drain', this.onDrained);
      return;
    }
    this.state = IDLE;
    this.next();
  }

  onDrained = (): void => {
    if (this.state !== DRAIN) return;
    this.state = IDLE;
    this.since = Date.now();
    this.next();
  };

  next(): void {
    if (this.socket.isPaused()) this.socket.resume();
    if (this.buf !== undefined) this.parse();
  }

  /** Answer with a fixed response and close (timeouts). */
  refuse(answer: string): void {
    this.state = GONE;
    this.since = this.lane.clock;
    this.buf = undefined;
    this.x = undefined;
    this.socket.end(answer);
  }

  /**
   * Gives the connection, and every byte not yet parsed, to node:http. Only at a request
   * boundary: nothing of the request in buf has been acted on. node:http's own timeouts start
   * afresh, so a head that trickled in here for a while gets its full time there too.
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
    this.room = undefined;
    this.lane.toNode(s);
    s.resume();
  }
}

/** The bytes so far can still be the start of a request line the lane takes. */
function requestLineSoFar(buf: Buffer): boolean {
  const le = buf.indexOf(13);
  if (le !== -1) return REQUEST_LINE.test(buf.toString('latin1', 0, le));
  let i = 0;
  while (i < buf.length && i < 8 && buf[i]! >= 0x41 && buf[i]! <= 0x5a) i++;
  return i === buf.length || (buf[i] === 0x20 && i >= 3);
}

/** A LF not after a CR, or a CR not before a LF (a CR at the very end may still get its LF). */
function oddLineEnd(buf: Buffer, from: number): boolean {
  const start = Math.max(0, from - 1);
  for (let i = buf.indexOf(10, start); i !== -1; i = buf.indexOf(10, i + 1)) if (i === 0 || buf[i - 1] !== 13) return true;
  for (let i = buf.indexOf(13, start); i !== -1; i = buf.indexOf(13, i + 1)) if (i + 1 < buf.length && buf[i + 1] !== 10) return true;
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
  let fields = 0;
  while (i < end) {
    // Past node:http's count of header fields, node decides (a 431), as it does past the size.
    if (++fields > MAX_HEADER_FIELDS) return undefined;
    const j = text.indexOf('\r\n', i);
    const c = text.indexOf(':', i);
    const name = toLower(text.slice(i, c));
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
    const v = toLower(connection);
    if (v === 'close') conn.closeAfter = true;
    else if (v !== 'keep-alive') return undefined;
  }
  return new FastExchange(conn, m[1]!, m[2]!, headers, declared);
}

export class FastExchange implements Exchange {
  readonly lane = 'fast';
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly declared: number;
  /** The body, once all of it has arrived. */
  raw: Buffer | undefined = undefined;
  /** Declared larger than the lane reads: never read. */
  tooLarge = false;
  /** Not read: the bodies still arriving hold the budget (the refusal to answer with). */
  overloaded: FabricError | undefined = undefined;
  #bodyError: Error | undefined = undefined;
  #waiting: { resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined = undefined;
  #pending: Promise<Buffer> | undefined = undefined;
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

  body(limit: number, setting?: string): Buffer | Promise<Buffer> {
    if (this.declared > limit || this.tooLarge) {
      return Promise.reject(bodyTooLarge(this.declared, limit, setting));
    }
    if (this.overloaded !== undefined) return Promise.reject(this.overloaded);
    if (this.raw !== undefined) return this.raw;
    if (this.#bodyError !== undefined) return Promise.reject(this.#bodyError);
    return this.#pending ??= new Promise((resolve, reject) => { this.#waiting = { resolve, reject }; });
  }

  /** The rest of the body has arrived (raw is set). */
  bodyArrived(): void {
    const w = this.#waiting;
    this.#waiting = undefined;
    w?.resolve(this.raw!);
  }

  /** The body will never arrive (the client left, or a timeout). */
  bodyFailed(e: Error): void {
    if (this.raw !== undefined) return;
    this.#bodyError = e;
    const w = this.#waiting;
    this.#waiting = undefined;
    w?.reject(e);
  }

  head(status: number, headers: string[]): void {
    if (this.headersSent) throw new Error('the answer has already begun');
    const f = { length: false, connection: false };
    let s = this.#fields(statusLine(status), headers, f);
    if (this.preset !== undefined) s = this.#fields(s, this.preset, f);
    const { length, connection } = f;
    if (status === 204 || status === 304) this.#noBody = true;
    else if (!length && !this.#noBody) {
      s += 'transfer-encoding: chunked\r\n';
      this.#chunked = true;
    }
    const conn = this.#conn;
    // An answer made before the whole body arrived closes the connection: the rest is not read.
    if (conn.closeAfter || conn.state === BODY || conn.lane.closing) {
      this.closes = true;
      if (!connection) s += 'connection: close\r\n';
    } else if (!connection) s += conn.lane.keepAlive;
    this.#head = s + 'date: ' + conn.lane.date() + '\r\n\r\n';
    this.headersSent = true;
  }

  /** Appends a flat [name, value, …] list to the header block s; notes content-length and connection in f. */
  #fields(s: string, list: string[], f: { length: boolean; connection: boolean }): string {
    for (let i = 0; i < list.length; i += 2) {
      const k = list[i]!;
      const v = list[i + 1]!;
      if (!TOKEN.test(k)) throw Object.assign(new TypeError(`invalid header name ${JSON.stringify(k)}`), { code: 'ERR_INVALID_HTTP_TOKEN' });
      if (NOT_PRINTABLE.test(v)) {
        if (BAD_VALUE.test(v)) throw Object.assign(new TypeError(`invalid character in header "${k}"`), { code: 'ERR_INVALID_CHAR' });
        this.#headLatin1 = true;
      }
      s += k + ': ' + v + '\r\n';
      const lk = k.length === 14 || k.length === 10 || k.length === 17 ? toLower(k) : '';
      if (lk === 'content-length') f.length = true;
      else if (lk === 'transfer-encoding') throw new TypeError('transfer-encoding is the lane\'s to set');
      else if (lk === 'connection') {
        f.connection = true;
        if (toLower(v) === 'close') this.closes = true;
      }
    }
    return s;
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
    // After its answer ended, the connection belongs to the next request: leave it.
    if (this.#conn.x === this) this.#conn.socket.destroy();
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
    if (h === undefined || this.#conn.state === GONE) return true;
    this.#head = undefined;
    return this.#conn.socket.write(h, this.#headLatin1 ? 'latin1' : 'utf8');
  }

  /** Writes text (the head, if still pending, and a string body or chunk) in one call. */
  #raw(text: string): boolean {
    // Closed, or answered already by the lane itself (a timeout): nothing more is written.
    if (this.#conn.state === GONE) return false;
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
    if (this.#conn.state === GONE) return false;
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
