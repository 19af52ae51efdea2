// Optional request/response logging for debugging (gateway.request_log; off by default).
// Bodies are cut to max_body and redacted before they leave the request: API keys, bearer
// tokens, and JSON fields named like secrets, plus the operator's own patterns. Streams are
// captured as the SSE text the client received, up to the same cap. Entries are written with
// the usage batches and pruned by age (retention) and total size (max_size).

import type { RequestLogConfig } from '../config/types.ts';
import type { HoldingSink, Served } from '../core/gateway.ts';
import { KEY_PATTERNS, redact } from '../core/redact.ts';

export class Redactor {
  readonly #patterns: RegExp[];
  readonly #max: number;

  constructor(cfg: RequestLogConfig) {
    this.#patterns = [...KEY_PATTERNS, ...cfg.redact.map((p) => new RegExp(p, 'g'))];
    this.#max = cfg.maxBodyBytes;
  }

  apply(text: string): string {
    const s = text.length > this.#max ? `${text.slice(0, this.#max)}…[${text.length - this.#max} more characters cut]` : text;
    return redact(s, [], this.#patterns);
  }
}

/** A sink that passes everything through and keeps the first `max` characters written. */
export class CapturingSink implements HoldingSink {
  readonly #inner: HoldingSink;
  readonly #max: number;
  text = '';

  constructor(inner: HoldingSink, max: number) {
    this.#inner = inner;
    this.#max = max;
  }

  begin(served: Served): void {
    this.#inner.begin(served);
  }

  write(data: Buffer | string): boolean {
    if (this.text.length <= this.#max) this.text += typeof data === 'string' ? data : data.toString('utf8');
    return this.#inner.write(data);
  }

  onDrain(cb: () => void): void {
    this.#inner.onDrain(cb);
  }

  end(): void {
    this.#inner.end();
  }

  /** A Responses stream's closing events (held by the inner sink until the usage record is spooled), captured too. */
  writeLast(data: string): void {
    if (this.text.length <= this.#max) this.text += data;
    this.#inner.writeLast(data);
  }
}
