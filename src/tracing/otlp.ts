// gateway.tracing: the requests' spans, batched and posted to an OpenTelemetry collector over
// OTLP/HTTP with JSON encoding (https://opentelemetry.io/docs/specs/otlp/#otlphttp), off the
// request path. Bounded: at most MAX_PENDING spans wait; past that, and when the collector
// fails, spans are dropped and counted (fabric_trace_spans_dropped_total), never retried
// into memory that grows. The settings are read at each use, so a reload applies.

import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { hostname } from 'node:os';
import type { TracingConfig } from '../config/types.ts';
import type { Logger } from '../core/log.ts';
import type { IncomingTrace, TraceContext } from '../core/trace-context.ts';
import { packageVersion } from '../core/version.ts';
import { RequestTrace, type Attributes } from './request-trace.ts';
import { exportPrefix, SpanWriter } from './span-json.ts';

const MAX_PENDING = 4096;
const BATCH = 512;
const FLUSH_MS = 1000;
const POST_TIMEOUT_MS = 10_000;
const WARN_EVERY_MS = 60_000;

export interface TracingOptions {
  /** The running config's tracing section; undefined: off. */
  config: () => TracingConfig | undefined;
  /** A header's secret value, by its variable's name. */
  secret: (name: string) => string | undefined;
  log: Logger;
  post?: (url: string, body: Buffer, headers: Record<string, string>, signal: AbortSignal) => Promise<number>;
}

export interface TracingStats {
  exported: number;
  dropped: number;
}

/**
 * POSTs the body as it is (node:http writes the buffer; fetch would copy it first), on the
 * default keep-alive agent; a redirect is not followed (it would carry the collector's headers
 * elsewhere); an answer's status, or an error with its code.
 */
const postJson = (url: string, body: Buffer, headers: Record<string, string>, signal: AbortSignal): Promise<number> => new Promise((resolve, reject) => {
  const u = new URL(url);
  const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(u, { method: 'POST', headers: { ...headers, 'content-length': String(body.length) }, timeout: POST_TIMEOUT_MS, signal }, (res) => {
    res.resume();
    res.on('end', () => resolve(res.statusCode ?? 0));
    res.on('error', reject);
  });
  req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
  req.on('error', reject);
  req.end(body);
});

export class Tracing {
  readonly stats: TracingStats = { exported: 0, dropped: 0 };
  readonly #opts: TracingOptions;
  readonly #post: NonNullable<TracingOptions['post']>;
  /** The spans waiting, already as the OTLP/JSON export request (src/tracing/span-json.ts). */
  readonly #pending: SpanWriter;
  #timer: NodeJS.Timeout | undefined;
  #sending: Promise<void> | undefined;
  #warnedAt = 0;
  /** Aborts the export request under way: close() past its deadline. */
  readonly #abort = new AbortController();

  constructor(opts: TracingOptions) {
    this.#opts = opts;
    this.#post = opts.post ?? postJson;
    this.#pending = new SpanWriter(() => exportPrefix(
      { 'service.name': opts.config()?.serviceName ?? 'ai-fabric', 'service.version': packageVersion(), 'host.name': hostname(), 'process.pid': process.pid },
      packageVersion() ?? '',
    ));
  }

  /**
   * A request's trace: recorded (a RequestTrace) when tracing is on and the client's trace is
   * sampled, or it sent none and falls in the sample; else the client's own, passed on as it came.
   * `started`: performance.now() when the request was received.
   */
  begin(incoming: IncomingTrace | undefined, started: number): TraceContext | undefined {
    const c = this.#opts.config();
    if (c === undefined) return incoming;
    if (incoming !== undefined) return incoming.sampled ? new RequestTrace(incoming, started) : incoming;
    return c.sample >= 1 || (c.sample > 0 && Math.random() < c.sample) ? new RequestTrace(undefined, started) : undefined;
  }

  /** The request has ended: its spans are queued for the collector (a trace not recorded here: nothing). */
  end(trace: TraceContext | undefined, name: string, attributes: Attributes, error: string | undefined): void {
    if (!(trace instanceof RequestTrace)) return;
    const server = trace.server(name, attributes, error);
    const n = 1 + trace.attempts.length;
    if (this.#pending.count + n > MAX_PENDING) {
      this.stats.dropped += n;
      this.#warn(`${n} spans dropped: ${MAX_PENDING} already wait for the collector`);
      return;
    }
    this.#pending.span(trace.traceId, trace.tracestate, server);
    for (const a of trace.attempts) this.#pending.span(trace.traceId, undefined, a);
    // A send under way goes on with the next full batch itself.
    if (this.#pending.count >= BATCH) { if (this.#sending === undefined) void this.#send(false); }
    else this.#arm();
  }

  /** Sends everything that waits. */
  flush(): Promise<void> {
    return this.#send(true);
  }

  /** What is left waits for a full batch or the timer: a collector that answers fast is not sent a request per handful of spans. */
  #arm(): void {
    if (this.#timer !== undefined || this.#pending.count === 0) return;
    this.#timer = setTimeout(() => { this.#timer = undefined; void this.#send(true); }, FLUSH_MS);
    this.#timer.unref();
  }

  /** One request to the collector at a time: a full batch, or with `all` whatever waits (after a send under way). */
  async #send(all: boolean): Promise<void> {
    while (this.#sending !== undefined) await this.#sending;
    if (this.#pending.count === 0 || (!all && this.#pending.count < BATCH)) return this.#arm();
    this.#sending = this.#drain(all).finally(() => { this.#sending = undefined; this.#arm(); });
    return this.#sending;
  }

  /** At shutdown: what waits is sent, for at most `ms`. */
  async close(ms = 2000): Promise<void> {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#pending.count === 0 && this.#sending === undefined) return;
    let t: NodeJS.Timeout | undefined;
    const done = this.flush();
    await Promise.race([done, new Promise<void>((r) => { t = setTimeout(r, ms); })]);
    clearTimeout(t);
    // Past the deadline: the request under way is given up (its spans and the rest counted as
    // dropped), so a collector that never answers does not hold the exit for its timeout.
    this.#abort.abort();
    await done;
  }

  /** Sends what waits, all of it in one request (at most MAX_PENDING spans), until less than a batch is left, or nothing with `all`. */
  async #drain(all: boolean): Promise<void> {
    while (this.#pending.count >= (all ? 1 : BATCH)) {
      const { body, count } = this.#pending.take();
      const c = this.#opts.config();
      if (c === undefined || this.#abort.signal.aborted) {
        // Turned off by a reload, or the gateway has stopped: what waited is not sent.
        this.stats.dropped += count;
        continue;
      }
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      for (const [name, v] of c.headers) {
        const value = typeof v === 'string' ? v : this.#opts.secret(v.env);
        if (value !== undefined) headers[name] = value;
      }
      try {
        const status = await this.#post(c.endpoint, body, headers, this.#abort.signal);
        if (status >= 200 && status < 300) this.stats.exported += count;
        else {
          this.stats.dropped += count;
          this.#warn(`the collector at ${where(c.endpoint)} answered HTTP ${status}; ${count} spans dropped`);
        }
      } catch (e) {
        this.stats.dropped += count;
        const err = e as NodeJS.ErrnoException;
        this.#warn(`spans could not be sent to the collector at ${where(c.endpoint)} (${err.code ?? err.message}); ${count} dropped`);
      }
    }
  }

  /** At most one warning a minute: a collector that is down does not fill the log. */
  #warn(message: string): void {
    const now = Date.now();
    if (now - this.#warnedAt < WARN_EVERY_MS) return;
    this.#warnedAt = now;
    this.#opts.log.warn(`tracing: ${message} (${this.stats.dropped} dropped since start; fabric_trace_spans_dropped_total counts them)`);
  }
}

/** A collector's URL as messages name it: its host, never a path or query that may hold a token. */
function where(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return 'its URL';
  }
}
