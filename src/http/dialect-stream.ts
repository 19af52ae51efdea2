// A streamed chat completion as another API's events (a dialect: OpenAI's Responses API,
// Anthropic's Messages API). The gateway streams chat chunks (SSE, as the engine or its
// translator sent them) into the sink; this base reads them as events, split at blank lines
// across writes and UTF-8 boundaries, and sends what one write made downstream in one write.
// Each dialect says what an event becomes.

import { StringDecoder } from 'node:string_decoder';
import type { HoldingSink, Served, StreamSink } from '../core/gateway.ts';
import type { JsonObject } from '../engines/types.ts';

export abstract class DialectStream implements StreamSink {
  protected readonly inner: HoldingSink;
  readonly #decoder = new StringDecoder('utf8');
  #pending = '';
  #out = '';

  constructor(inner: HoldingSink) {
    this.inner = inner;
  }

  abstract begin(served: Served): void;

  /** Whether the dialect's stream has ended (its last events written): later chat events are ignored. */
  abstract get finished(): boolean;

  /** A chat chunk (its first choice is the dialect's). */
  protected abstract chunk(chunk: JsonObject): void;

  /** The chat stream's [DONE]: the dialect's closing events. */
  protected abstract complete(): void;

  /** An error chunk (the engine's, or the gateway's when a backend dies mid-stream): the dialect's error events. */
  protected abstract fail(error: unknown): void;

  /** One chat SSE event (its lines, without the blank line that ended it): [DONE], an error, or a chunk. */
  #event(raw: string): void {
    if (this.finished) return;
    let data = '';
    for (const line of raw.split(/\r?\n/)) {
      if (line.startsWith('data:')) data += (data === '' ? '' : '\n') + line.slice(line[5] === ' ' ? 6 : 5);
    }
    if (data === '') return;
    if (data === '[DONE]') {
      this.complete();
      return;
    }
    let chunk: JsonObject;
    try {
      chunk = JSON.parse(data) as JsonObject;
    } catch {
      return;
    }
    if (typeof chunk !== 'object' || chunk === null) return;
    if (chunk.error !== undefined) this.fail(chunk.error);
    else this.chunk(chunk);
  }

  write(data: Buffer | string): boolean {
    let text = this.#pending + (typeof data === 'string' ? data : this.#decoder.write(data));
    // Events end at a blank line (LF or CRLF framing).
    for (;;) {
      const m = /\r?\n\r?\n/.exec(text);
      if (m === null) break;
      this.#event(text.slice(0, m.index));
      text = text.slice(m.index + m[0].length);
    }
    this.#pending = text;
    return this.flush();
  }

  onDrain(cb: () => void): void {
    this.inner.onDrain(cb);
  }

  end(): void {
    this.inner.end();
  }

  /** Queues a dialect event's text for the next flush. */
  protected out(text: string): void {
    this.#out += text;
  }

  /** The closing events go out as the stream's last bytes (held until its usage record is spooled). */
  protected last(): void {
    const out = this.#out;
    this.#out = '';
    this.inner.writeLast(out);
  }

  /** Sends what is queued, in one write; whether the client takes more now. */
  protected flush(): boolean {
    if (this.#out === '') return true;
    const out = this.#out;
    this.#out = '';
    return this.inner.write(out);
  }
}
