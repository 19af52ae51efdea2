// The spans the gateway records for one request (gateway.tracing): a SERVER span from the
// request received to its last byte sent, and a CLIENT span per attempt sent to a backend, each
// attempt's span the parent the backend is told of (its traceparent). Names and attributes follow
// OpenTelemetry's GenAI and HTTP semantic conventions; the gateway's own are under fabric.*.

import { randomFillSync } from 'node:crypto';
import type { AttemptStart, IncomingTrace, TraceContext } from '../core/trace-context.ts';

export type Attributes = Record<string, string | number | boolean | undefined>;

const SPAN_KIND = { server: 2, client: 3 } as const;

export interface SpanData {
  spanId: string;
  parentSpanId: string | undefined;
  name: string;
  kind: number;
  /** Unix epoch, in milliseconds with fractions. */
  startMs: number;
  endMs: number;
  attributes: Attributes;
  /** Set when the span failed: its status message. */
  error: string | undefined;
}

/** Ids from a pool of random bytes: one system call per 4 KiB, not one per id. */
const pool = Buffer.alloc(4096);
let used = pool.length;
function randomHex(bytes: number): string {
  if (used + bytes > pool.length) {
    randomFillSync(pool);
    used = 0;
  }
  const s = pool.toString('hex', used, used + bytes);
  used += bytes;
  // An all-zero id is invalid; 2^-64 odds, but cheap to rule out.
  return /^0+$/.test(s) ? randomHex(bytes) : s;
}

const newTraceId = (): string => randomHex(16);
const newSpanId = (): string => randomHex(8);

/** OpenTelemetry's gen_ai.operation.name for each of the gateway's operations. */
export function operationName(op: string): string {
  return op === 'completions' ? 'text_completion' : op;
}

/** A backend URL's host and port, parsed once per URL (the config's URLs: a bounded set). */
const servers = new Map<string, { address: string; port: number } | undefined>();
function serverOf(url: string): { address: string; port: number } | undefined {
  let s = servers.get(url);
  if (s === undefined && !servers.has(url)) {
    try {
      const u = new URL(url);
      s = { address: u.hostname, port: u.port === '' ? (u.protocol === 'https:' ? 443 : 80) : Number(u.port) };
    } catch {
      s = undefined;
    }
    if (servers.size > 1000) servers.clear();
    servers.set(url, s);
  }
  return s;
}

export class RequestTrace implements TraceContext {
  readonly traceId: string;
  /** The gateway's SERVER span. */
  readonly spanId: string;
  /** The client's span, when it sent a trace. */
  readonly parentSpanId: string | undefined;
  readonly tracestate: string | undefined;
  readonly startMs: number;
  readonly attempts: SpanData[] = [];
  #attempt: SpanData | undefined;
  /** The wall clock read once, at the request's start; the monotonic clock for everything after. */
  readonly #wall: number;
  readonly #mono: number;

  /**
   * `started`: performance.now() when the request was received. Times are the wall clock now
   * (Date.now(), as NTP has it) and monotonic durations from there: a clock stepped since the
   * process began (NTP correcting a board without a clock, a host waking from sleep) does not
   * shift the spans, as performance.timeOrigin would.
   */
  constructor(incoming: IncomingTrace | undefined, started: number) {
    this.traceId = incoming?.traceId ?? newTraceId();
    this.parentSpanId = incoming?.parentId;
    this.tracestate = incoming?.tracestate;
    this.spanId = newSpanId();
    this.#mono = performance.now();
    this.#wall = Date.now();
    this.startMs = this.#wall - (this.#mono - started);
  }

  #now(): number {
    return this.#wall + (performance.now() - this.#mono);
  }

  /** The backend's parent: the attempt under way (sampled: this trace is recorded). */
  get traceparent(): string {
    return `00-${this.traceId}-${this.#attempt?.spanId ?? this.spanId}-01`;
  }

  attempt(a: AttemptStart): void {
    const server = serverOf(a.url);
    const op = operationName(a.op);
    this.#attempt = {
      spanId: newSpanId(), parentSpanId: this.spanId, name: `${op} ${a.model}`, kind: SPAN_KIND.client, startMs: this.#now(), endMs: 0, error: undefined,
      attributes: {
        'gen_ai.operation.name': op, 'gen_ai.request.model': a.model, 'server.address': server?.address, 'server.port': server?.port,
        'fabric.backend': a.backend, 'fabric.role': a.role, 'fabric.engine': a.engine, 'fabric.retry': a.retry || undefined,
      },
    };
  }

  /** `sent` false: nothing reached the backend (the engine cannot take the request as asked): no span. */
  attemptEnd(failure: string | undefined, message?: string, sent = true): void {
    const s = this.#attempt;
    this.#attempt = undefined;
    if (s === undefined || !sent) return;
    s.endMs = this.#now();
    if (failure !== undefined) {
      s.attributes['error.type'] = failure;
      s.error = message ?? failure;
    }
    this.attempts.push(s);
  }

  /** The SERVER span, once the request has ended. */
  server(name: string, attributes: Attributes, error: string | undefined): SpanData {
    // An attempt the request's end overtook (a client gone mid-stream) ends with it.
    if (this.#attempt !== undefined) this.attemptEnd('aborted', 'the request ended before this attempt did');
    return { spanId: this.spanId, parentSpanId: this.parentSpanId, name, kind: SPAN_KIND.server, startMs: this.startMs, endMs: this.#now(), attributes, error };
  }
}
