// Spans as OTLP/JSON (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding), written
// into a buffer outside V8's heap as each request ends. Spans wait up to a second for their
// batch: kept as objects (or strings) they would outlive a young-generation collection or two,
// and what does is copied and promoted, the collector's costliest work. Here each span's text is
// built (short-lived garbage, which costs little) and written at once; nothing of it is kept.

import type { Attributes, SpanData } from './request-trace.ts';

/** Strings that are their own JSON text between quotes: printable ASCII without `"` or `\`. Most are (names, ids, models). */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** Epoch milliseconds as OTLP's fixed64 nanoseconds, a decimal string (microsecond precision; exact below 2^53 µs, the year 2255). */
export const nanos = (ms: number): string => `${Math.round(ms * 1000)}000`;

/** A JSON string: most (names, ids, models) need no escaping and are not run through JSON.stringify. */
const str = (s: string): string => (PLAIN.test(s) ? `"${s}"` : JSON.stringify(s));

/** An attribute list; int64 as a decimal string, as the protobuf JSON mapping writes it. */
function attributesText(a: Attributes): string {
  let out = '[';
  for (const k in a) {
    const v = a[k];
    if (v === undefined) continue;
    out += (out.length > 1 ? ',{"key":' : '{"key":') + str(k) + (
      typeof v === 'string' ? ',"value":{"stringValue":' + str(v) + '}}'
        : typeof v === 'boolean' ? (v ? ',"value":{"boolValue":true}}' : ',"value":{"boolValue":false}}')
        : Number.isInteger(v) ? ',"value":{"intValue":"' + v + '"}}'
        : ',"value":{"doubleValue":' + (Number.isFinite(v) ? v : 0) + '}}');
  }
  return out + ']';
}

function spanText(sep: string, traceId: string, tracestate: string | undefined, s: SpanData): string {
  return sep + '{"traceId":"' + traceId + '","spanId":"' + s.spanId + (s.parentSpanId === undefined ? '"' : '","parentSpanId":"' + s.parentSpanId + '"')
    + (tracestate === undefined ? '' : ',"traceState":' + str(tracestate))
    + ',"name":' + str(s.name) + ',"kind":' + s.kind
    + ',"startTimeUnixNano":"' + nanos(s.startMs) + '","endTimeUnixNano":"' + nanos(s.endMs) + '","attributes":' + attributesText(s.attributes)
    // STATUS_CODE_ERROR; an unset status (0) is left empty.
    + (s.error === undefined ? ',"status":{}}' : ',"status":{"code":2,"message":' + str(s.error) + '}}');
}

const INITIAL = 64 * 1024;
const SUFFIX = ']}]}]}';

/**
 * Spans written as one export request's text, in one of two buffers that take turns: one fills
 * while the other is being sent, and neither is given back (they only grow), so a batch costs
 * no allocation and no page fault. `prefix` is the request's head up to its spans (resource,
 * scope), asked for as each batch begins.
 */
export class SpanWriter {
  readonly #prefix: () => string;
  readonly #bufs: [Buffer, Buffer] = [Buffer.allocUnsafe(INITIAL), Buffer.allocUnsafe(INITIAL)];
  #cur = 0;
  #buf: Buffer;
  #len = 0;
  /** Spans written since the last take(). */
  count = 0;

  constructor(prefix: () => string) {
    this.#prefix = prefix;
    this.#buf = this.#bufs[0];
  }

  #room(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.#buf.length * 2, this.#len + n));
    this.#buf.copy(next, 0, 0, this.#len);
    this.#buf = next;
    this.#bufs[this.#cur] = next;
  }

  /** Text in UTF-8: a span's whole text at once (one write per span; its parts are concatenated in JS, which costs less than a write each). */
  #write(s: string): void {
    this.#room(s.length * 3);
    this.#len += this.#buf.write(s, this.#len, 'utf8');
  }

  span(traceId: string, tracestate: string | undefined, s: SpanData): void {
    if (this.count === 0) this.#write(this.#prefix());
    this.#write(spanText(this.count === 0 ? '' : ',', traceId, tracestate, s));
    this.count++;
  }

  /**
   * The export request written so far and its span count; the other buffer takes the next spans.
   * The bytes stay valid until the take() after next: send them before taking again.
   */
  take(): { body: Buffer; count: number } {
    this.#write(SUFFIX);
    const out = { body: this.#buf.subarray(0, this.#len), count: this.count };
    this.#cur ^= 1;
    this.#buf = this.#bufs[this.#cur];
    this.#len = 0;
    this.count = 0;
    return out;
  }
}

/** An export request's head, up to its spans: the resource's attributes and the scope. */
export function exportPrefix(resource: Attributes, scopeVersion: string): string {
  return `{"resourceSpans":[{"resource":{"attributes":${attributesText(resource)}},"scopeSpans":[{"scope":{"name":"ai-fabric","version":${str(scopeVersion)}},"spans":[`;
}
