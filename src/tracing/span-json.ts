// Spans as OTLP/JSON (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding), written
// straight into one buffer outside V8's heap as each request ends. Spans wait up to a second for
// their batch: as objects (or strings built by concatenation) they would outlive a young-generation
// collection or two, and what does is copied and promoted, the collector's costliest work; as
// bytes here they cost the request a few dozen short writes and no garbage to speak of.

import type { Attributes, SpanData } from './request-trace.ts';

/** Strings that are their own JSON text between quotes: printable ASCII without `"` or `\`. Most are (names, ids, models). */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** Epoch milliseconds as OTLP's fixed64 nanoseconds, a decimal string (microsecond precision; exact below 2^53 µs, the year 2255). */
export const nanos = (ms: number): string => `${Math.round(ms * 1000)}000`;

const INITIAL = 64 * 1024;

export class SpanWriter {
  #buf = Buffer.allocUnsafe(INITIAL);
  #len = 0;
  /** Spans written since the last take(). */
  count = 0;

  #room(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.#buf.length * 2, this.#len + n));
    this.#buf.copy(next, 0, 0, this.#len);
    this.#buf = next;
  }

  /** Text known to be ASCII (constants, hex ids, numbers, plain strings). */
  #ascii(s: string): void {
    this.#room(s.length);
    this.#len += this.#buf.write(s, this.#len, 'latin1');
  }

  /** A JSON string. */
  #string(s: string): void {
    if (PLAIN.test(s)) {
      this.#room(s.length + 2);
      this.#buf[this.#len++] = 0x22;
      this.#len += this.#buf.write(s, this.#len, 'latin1');
      this.#buf[this.#len++] = 0x22;
      return;
    }
    const t = JSON.stringify(s);
    this.#room(Buffer.byteLength(t));
    this.#len += this.#buf.write(t, this.#len, 'utf8');
  }

  /** An attribute list; int64 as a decimal string, as the protobuf JSON mapping writes it. */
  attributes(a: Attributes): void {
    this.#ascii('[');
    let first = true;
    for (const k in a) {
      const v = a[k];
      if (v === undefined) continue;
      this.#ascii(first ? '{"key":' : ',{"key":');
      first = false;
      this.#string(k);
      if (typeof v === 'string') {
        this.#ascii(',"value":{"stringValue":');
        this.#string(v);
        this.#ascii('}}');
      } else if (typeof v === 'boolean') this.#ascii(v ? ',"value":{"boolValue":true}}' : ',"value":{"boolValue":false}}');
      else if (Number.isInteger(v)) {
        this.#ascii(',"value":{"intValue":"');
        this.#ascii(String(v));
        this.#ascii('"}}');
      } else {
        this.#ascii(',"value":{"doubleValue":');
        this.#ascii(Number.isFinite(v) ? String(v) : '0');
        this.#ascii('}}');
      }
    }
    this.#ascii(']');
  }

  span(traceId: string, tracestate: string | undefined, s: SpanData): void {
    this.#ascii(this.count === 0 ? '{"traceId":"' : ',{"traceId":"');
    this.#ascii(traceId);
    this.#ascii('","spanId":"');
    this.#ascii(s.spanId);
    if (s.parentSpanId !== undefined) {
      this.#ascii('","parentSpanId":"');
      this.#ascii(s.parentSpanId);
    }
    this.#ascii('"');
    if (tracestate !== undefined) {
      this.#ascii(',"traceState":');
      this.#string(tracestate);
    }
    this.#ascii(',"name":');
    this.#string(s.name);
    this.#ascii(',"kind":');
    this.#ascii(String(s.kind));
    this.#ascii(',"startTimeUnixNano":"');
    this.#ascii(nanos(s.startMs));
    this.#ascii('","endTimeUnixNano":"');
    this.#ascii(nanos(s.endMs));
    this.#ascii('","attributes":');
    this.attributes(s.attributes);
    // STATUS_CODE_ERROR; an unset status (0) is left empty.
    if (s.error === undefined) this.#ascii(',"status":{}}');
    else {
      this.#ascii(',"status":{"code":2,"message":');
      this.#string(s.error);
      this.#ascii('}}');
    }
    this.count++;
  }

  /** What was written, and a fresh start (the buffer shrinks back if a backlog grew it). */
  take(): { bytes: Buffer; count: number } {
    const out = { bytes: Buffer.from(this.#buf.subarray(0, this.#len)), count: this.count };
    this.#len = 0;
    this.count = 0;
    if (this.#buf.length > 4 * INITIAL) this.#buf = Buffer.allocUnsafe(INITIAL);
    return out;
  }
}

/** A whole export request: the resource and scope around spans a SpanWriter wrote. */
export function exportBody(resource: Attributes, scopeVersion: string, spans: Buffer): Buffer {
  const head = new SpanWriter();
  head.attributes(resource);
  const attrs = head.take().bytes;
  return Buffer.concat([
    Buffer.from('{"resourceSpans":[{"resource":{"attributes":'), attrs,
    Buffer.from(`},"scopeSpans":[{"scope":{"name":"ai-fabric","version":${JSON.stringify(scopeVersion)}},"spans":[`), spans,
    Buffer.from(']}]}]}'),
  ]);
}
