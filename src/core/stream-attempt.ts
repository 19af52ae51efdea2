// One streamed attempt against one backend, as an undici dispatch handler: upstream chunks
// go to the client's sink as they arrive, with backpressure through the dispatch controller.
// Before the first byte reaches the client a failure rejects (so the attempt loop may fall
// back); after it, the client's stream is ended with an error event, never cut silently.

import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import type { NormalizeContext, Operation, PreparedRequest, StreamTranslator } from '../engines/types.ts';
import { AttemptError, MAX_ERROR_BODY, secs, transportError, upstreamError } from './attempt-error.ts';
import type { BackendRuntime } from './backend.ts';
import { FabricError } from './errors.ts';
import { LineSplitter, SseRelay } from './sse-relay.ts';
import { UpstreamCall, type Cancel, type Deadline, type Deadlines } from './upstream.ts';
import type { Served, StreamSink } from './gateway.ts';

export interface StreamOutcome {
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number } | undefined;
  /** Set when the stream broke after its first byte and was ended with an error event. */
  streamError: string | undefined;
}

const ABORTED = 'client closed the request';

type Phase = 'head' | 'error' | 'wrong-type' | 'body';

class StreamCall extends UpstreamCall {
  readonly promise: Promise<StreamOutcome>;
  #resolve!: (o: StreamOutcome) => void;
  #reject!: (e: unknown) => void;
  readonly #backend: BackendRuntime;
  readonly #sink: StreamSink;
  readonly #served: Served;
  readonly #cancel: Cancel;
  readonly #relay: SseRelay | undefined;
  readonly #lines: LineSplitter | undefined;
  readonly #translator: StreamTranslator | undefined;
  #phase: Phase = 'head';
  #status = 0;
  #headers: IncomingHttpHeaders = {};
  #contentType = '';
  #errorChunks: Buffer[] = [];
  #errorSize = 0;
  #begun = false;
  #settled = false;
  #timedOut: string | undefined;
  #firstByte: NodeJS.Timeout | undefined;
  #idle: NodeJS.Timeout | undefined;
  readonly #total: Deadline;
  readonly #deadlines: Deadlines;
  readonly #idleMs: number;
  #usage: StreamOutcome['usage'];
  #streamError: string | undefined;

  constructor(deadlines: Deadlines, backend: BackendRuntime, sink: StreamSink, served: Served, cancel: Cancel, op: Operation, nctx: NormalizeContext, injectedUsage: boolean, clientWantsUsage: boolean) {
    super();
    this.#backend = backend;
    this.#sink = sink;
    this.#served = served;
    this.#cancel = cancel;
    if (backend.engine.streamFormat === 'sse') {
      this.#relay = new SseRelay(injectedUsage);
    } else {
      this.#lines = new LineSplitter();
      this.#translator = backend.engine.streamTranslator!(op, nctx, clientWantsUsage);
    }
    this.promise = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    const t = backend.config.timeouts;
    this.#idleMs = t.idleMs;
    this.#deadlines = deadlines;
    this.#total = deadlines.add(t.totalMs, () => this.#deadline(`stream exceeded the total timeout (${secs(t.totalMs)})`));
    // The first-byte deadline runs until the backend sends a body byte (vLLM sends headers at
    // once and the first token later); from then on the idle deadline, re-armed per chunk.
    this.#firstByte = setTimeout(() => this.#deadline(`no first token within the first-byte timeout (${secs(t.firstByteMs)})`), t.firstByteMs);
    cancel.onAbort(() => this.abort(new Error(ABORTED)));
  }

  protected settled(): boolean {
    return this.#settled;
  }

  #deadline(message: string): void {
    this.#timedOut = message;
    this.abort(new Error(message));
  }

  #cleanup(): void {
    this.#deadlines.delete(this.#total);
    if (this.#firstByte !== undefined) clearTimeout(this.#firstByte);
    if (this.#idle !== undefined) clearTimeout(this.#idle);
    this.#cancel.clear();
  }

  #ok(): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#cleanup();
    this.#resolve({ usage: this.#usage, streamError: this.#streamError });
  }

  #fail(e: unknown): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#cleanup();
    this.#reject(e);
  }

  /** After the first byte: end the client's stream with an error event, never silently. */
  #break(message: string): void {
    this.#streamError = message;
    this.#sink.write(`data: ${JSON.stringify({ error: { message: `stream from ${this.#backend.name} interrupted: ${message}`, type: 'server_error', param: null, code: 'stream_interrupted' } })}\n\n`);
    this.#sink.end();
    this.#ok();
    this.controller?.abort(new Error(message));
  }

  #forward(out: Buffer | string, c: Dispatcher.DispatchController): void {
    if (!this.#begun) {
      this.#begun = true;
      this.#sink.begin(this.#served);
    }
    if (!this.#sink.write(out)) {
      c.pause();
      this.#sink.onDrain(() => c.resume());
    }
  }

  #malformed(message: string): void {
    if (this.#begun) this.#break(message);
    else {
      this.#fail(new AttemptError('malformed', message, this.#status));
      this.controller?.abort(new Error(message));
    }
  }

  onResponseStart(_c: Dispatcher.DispatchController, status: number, headers: IncomingHttpHeaders): void {
    this.#status = status;
    this.#headers = headers;
    if (status < 200 || status >= 300) {
      this.#phase = 'error';
      return;
    }
    const ct = headers['content-type'];
    this.#contentType = typeof ct === 'string' ? ct : '';
    this.#phase = this.#relay !== undefined && !this.#contentType.includes('text/event-stream') ? 'wrong-type' : 'body';
  }

  onResponseData(c: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#settled) return;
    if (this.#phase !== 'body') {
      if (this.#errorSize < MAX_ERROR_BODY) {
        this.#errorChunks.push(chunk);
        this.#errorSize += chunk.length;
      }
      return;
    }
    if (this.#idle !== undefined) this.#idle.refresh();
    else {
      clearTimeout(this.#firstByte);
      this.#firstByte = undefined;
      this.#idle = setTimeout(() => this.#deadline(`stream stalled past the idle timeout (${secs(this.#idleMs)})`), this.#idleMs);
    }
    try {
      if (this.#relay !== undefined) {
        const out = this.#relay.push(chunk);
        if (out !== undefined) this.#forward(out, c);
      } else {
        let out = '';
        for (const line of this.#lines!.push(chunk)) out += this.#translator!.line(line);
        if (out !== '') this.#forward(out, c);
      }
    } catch (e) {
      this.#malformed(e instanceof FabricError || e instanceof Error ? e.message : String(e));
    }
  }

  onResponseEnd(c: Dispatcher.DispatchController): void {
    if (this.#settled) return;
    if (this.#phase === 'error' || this.#phase === 'wrong-type') {
      const text = Buffer.concat(this.#errorChunks).toString('utf8');
      if (this.#phase === 'error') this.#fail(upstreamError(this.#backend, this.#status, this.#headers, text));
      else this.#fail(new AttemptError('malformed', `answered a stream request with ${this.#contentType || 'no content type'} instead of text/event-stream (${text.slice(0, 200)})`, this.#status));
      return;
    }
    try {
      if (this.#relay !== undefined) {
        const rest = this.#relay.flush();
        if (rest !== undefined) this.#forward(rest, c);
        this.#usage = this.#relay.usage;
        if (!this.#relay.sawDone) {
          return this.#begun ? this.#break('the backend ended the stream without [DONE]') : this.#malformed('the backend ended the stream without sending anything');
        }
      } else {
        const rest = this.#lines!.flush();
        if (rest !== '') {
          const out = this.#translator!.line(rest);
          if (out !== '') this.#forward(out, c);
        }
        this.#usage = this.#translator!.usage();
        if (!this.#translator!.done()) {
          return this.#begun ? this.#break('the backend ended the stream before it was done') : this.#malformed('the backend ended the stream without sending anything');
        }
      }
    } catch (e) {
      return this.#malformed(e instanceof Error ? e.message : String(e));
    }
    this.#sink.end();
    this.#ok();
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    if (this.#settled) return;
    if (this.#cancel.aborted) return this.#fail(new AttemptError('aborted', ABORTED));
    const ae = transportError(this.#backend, err, this.#timedOut);
    if (this.#begun) this.#break(ae.message);
    else this.#fail(ae);
  }
}

/**
 * Streams one attempt into the sink. Resolves when the client's stream has ended (cleanly, or
 * with an error event after its first byte); rejects with an AttemptError before that.
 */
export function streamAttempt(
  deadlines: Deadlines, backend: BackendRuntime, prepared: PreparedRequest, headers: Record<string, string>, op: Operation,
  nctx: NormalizeContext, clientWantsUsage: boolean, sink: StreamSink, served: Served, cancel: Cancel,
): Promise<StreamOutcome> {
  const call = new StreamCall(deadlines, backend, sink, served, cancel, op, nctx, prepared.injectedUsage, clientWantsUsage);
  backend.outstanding++;
  call.send(backend.pool, {
    method: 'POST',
    path: backend.basePath + prepared.path,
    headers,
    body: prepared.body,
    headersTimeout: backend.config.timeouts.firstByteMs,
    bodyTimeout: 0,
  });
  return call.promise.finally(() => { backend.outstanding--; });
}
