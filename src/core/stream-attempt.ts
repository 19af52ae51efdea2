// One streamed attempt against one backend, as an undici dispatch handler: upstream chunks
// go to the client's sink as they arrive, with backpressure through the dispatch controller.
// The stream is committed to the client only by its first usable event (a chunk, or [DONE]):
// until then a failure — no event within the first-byte timeout, garbage, the engine's error
// event, an early end — rejects, so the attempt loop may fall back. After it, the client's
// stream ends either at [DONE] (at once, even if the backend holds its connection open) or
// with an error event, never cut silently.

import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import type { StreamTranslator, Usage } from '../engines/types.ts';
import { AttemptError, MAX_ERROR_BODY, secs, transportError, upstreamError, withoutKeys } from './attempt-error.ts';
import type { BackendRuntime } from './backend.ts';
import { FabricError } from './errors.ts';
import { LineSplitter, SseRelay, UnusableStart } from './sse-relay.ts';
import { UpstreamCall, type Cancel, type Deadline, type Deadlines } from './upstream.ts';
import type { Served, StreamSink } from './gateway.ts';

export interface StreamOutcome {
  usage: Usage | undefined;
  /**
   * Set when the stream carried no usage (it broke, or the engine reports none): the chunks
   * relayed, each about one token, as an estimate of the completion tokens.
   */
  completionEstimate: number | undefined;
  /** Set when the stream broke after its first byte and was ended with an error event. */
  streamError: string | undefined;
  /**
   * The total timeout ended the stream after the gateway had held the backend back for the
   * client (it was not reading): the client's doing, not counted against the backend.
   */
  clientHeldBack: boolean;
}

const ABORTED = 'client closed the request';
/**
 * After [DONE] the upstream's own end (the last chunk of its framing) nearly always follows in
 * the same read; a backend that still holds its connection this long after is cut off, so it
 * keeps no pool connection and cannot turn a finished answer into a late failure.
 */
const LINGER_MS = 200;

type Phase = 'head' | 'error' | 'wrong-type' | 'body';

/** The failure an engine's error event before the first chunk stands for (vLLM's `code` is an HTTP status). */
function errorEventFailure(backend: BackendRuntime, e: UnusableStart): AttemptError {
  const ev = e.errorEvent!;
  const inner = ev.error;
  const code = typeof inner === 'object' && inner !== null ? (inner as Record<string, unknown>).code : ev.code;
  const status = typeof code === 'number' && code >= 400 && code <= 599 ? code : 500;
  const info = backend.engine.parseError(status, e.data);
  const message = `sent an error event instead of its first chunk: ${info.message}`;
  if (info.contextLength) return new AttemptError('context_length', info.message, status);
  if (status === 429) return new AttemptError('rate_limited', message, status);
  if (status >= 500) return new AttemptError('upstream_5xx', message, status);
  // vLLM labels any exception inside its stream generator 400 (BadRequestError): the request
  // was accepted with a 200, so this is the engine failing, and another backend may serve it.
  return new AttemptError('malformed', message, status);
}

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
  /** NDJSON lines translated: the estimate of completion tokens when no usage comes. */
  #lineCount = 0;
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
  #linger: NodeJS.Timeout | undefined;
  /** Set while the upstream is paused for the client's backpressure: the stall is the gateway's own. */
  #pausedOn: Dispatcher.DispatchController | undefined;
  /** performance.now() when the current pause began; the pauses before it, summed (ms). */
  #pausedAt = 0;
  #heldMs = 0;
  #clientHeldBack = false;
  #total: Deadline;
  /** performance.now() when the call began, and how far the total deadline has been pushed back for the client (ms). */
  readonly #began = performance.now();
  #extendedMs = 0;
  readonly #deadlines: Deadlines;
  readonly #idleMs: number;
  #streamError: string | undefined;

  constructor(deadlines: Deadlines, backend: BackendRuntime, sink: StreamSink, served: Served, cancel: Cancel, clientWantsUsage: boolean, request: StreamRequest, translator: StreamTranslator | undefined, firstByteMs: number) {
    super();
    this.#backend = backend;
    this.#sink = sink;
    this.#served = served;
    this.#cancel = cancel;
    if (translator === undefined) {
      this.#relay = new SseRelay(!clientWantsUsage, request.logprobsRefusal === true, backend.secret);
    } else {
      this.#lines = new LineSplitter();
      this.#translator = translator;
    }
    this.promise = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    const t = backend.config.timeouts;
    this.#idleMs = t.idleMs;
    this.#deadlines = deadlines;
    this.#total = deadlines.add(t.totalMs, this.#onTotal);
    // The first-byte deadline runs until the stream's first usable event (vLLM sends headers
    // at once and the first token later; keep-alive comments are not a token); from then on
    // the idle deadline, re-armed per chunk.
    if (firstByteMs > 0) this.#firstByte = setTimeout(() => this.#deadline(`no first token within the first-byte timeout (${secs(firstByteMs)})`), firstByteMs);
    cancel.onAbort(() => this.abort(new Error(ABORTED)));
  }

  protected settled(): boolean {
    return this.#settled;
  }

  #deadline(message: string): void {
    this.#timedOut = message;
    this.abort(new Error(message));
  }

  /**
   * The total timeout bounds the backend's own time: what the gateway held the backend back for
   * a client that was not reading is given back (the deadline moves on by it), up to the total
   * again in wall-clock time, which bounds what one request holds, a client that never reads
   * included. Past that bound, the timeout is the client's, not counted against the backend;
   * a backend that used its whole total itself is blamed as before.
   */
  readonly #onTotal = (): void => {
    const now = performance.now();
    const totalMs = this.#backend.config.timeouts.totalMs;
    const held = this.#heldMs + (this.#pausedOn === undefined ? 0 : now - this.#pausedAt);
    const room = totalMs - (now - this.#began - held);
    const total = secs(totalMs);
    if (held <= 0 || room <= 0) return this.#deadline(`stream exceeded the total timeout (${total})`);
    const more = Math.min(room, totalMs - this.#extendedMs);
    if (more > 0) {
      this.#extendedMs += more;
      this.#total = this.#deadlines.add(more, this.#onTotal);
      return;
    }
    this.#clientHeldBack = true;
    this.#deadline(`stream exceeded twice the total timeout (${total}), ${secs(Math.round(held))} of it held back because the client was not reading`);
  };

  readonly #onIdle = (): void => {
    // A stall the gateway imposed (paused for a slow client) is not the backend's; resume re-arms.
    if (this.#pausedOn === undefined) this.#deadline(`stream stalled past the idle timeout (${secs(this.#idleMs)})`);
  };

  readonly #onDrain = (): void => {
    const c = this.#pausedOn;
    this.#pausedOn = undefined;
    if (c === undefined || this.#settled) return;
    this.#heldMs += performance.now() - this.#pausedAt;
    this.#idle?.refresh();
    c.resume();
  };

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
    const usage = this.#relay !== undefined ? this.#relay.usage : this.#translator!.usage();
    const completionEstimate = usage !== undefined ? undefined : this.#relay !== undefined ? this.#relay.dataEvents : this.#lineCount;
    // An error event the engine sent mid-stream (relayed to the client as it came) fails the stream, [DONE] or not.
    this.#resolve({ usage, completionEstimate, streamError: this.#streamError ?? this.#relay?.engineError, clientHeldBack: this.#clientHeldBack });
  }

  #fail(e: unknown): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#cleanup();
    this.#reject(e);
  }

  /** Before the first byte: the attempt fails (and the upstream request is dropped). */
  #failEarly(e: AttemptError): void {
    this.#fail(e);
    this.controller?.abort(new Error(e.message));
  }

  /** After the first byte: end the client's stream with an error event, never silently. */
  #break(raw: string): void {
    // What the backend said (Ollama's error line, say) may quote its own key.
    const message = withoutKeys(this.#backend, raw);
    this.#streamError = message;
    this.#sink.write(`data: ${JSON.stringify({ error: { message: `stream from ${this.#backend.name} interrupted: ${message}`, type: 'server_error', param: null, code: 'stream_interrupted' } })}\n\n`);
    this.#sink.end();
    this.#ok();
    this.controller?.abort(new Error(message));
  }

  /** The stream is complete ([DONE], or Ollama's done): the client's ends now, whatever the upstream does. */
  #complete(c: Dispatcher.DispatchController, upstreamEnded: boolean): void {
    this.#sink.end();
    this.#ok();
    if (upstreamEnded) return;
    // Nothing more is relayed: let the upstream run to its end, or cut it off shortly.
    if (this.#pausedOn !== undefined) {
      this.#pausedOn = undefined;
      c.resume();
    }
    this.#linger = setTimeout(() => this.controller?.abort(new Error('the backend held the stream open after [DONE]')), LINGER_MS);
    this.#linger.unref();
  }

  #finished(): boolean {
    return this.#relay !== undefined ? this.#relay.done : this.#translator!.done();
  }

  #forward(out: Buffer | string, c: Dispatcher.DispatchController): void {
    if (!this.#begun) {
      this.#begun = true;
      clearTimeout(this.#firstByte);
      this.#firstByte = undefined;
      this.#idle = setTimeout(this.#onIdle, this.#idleMs);
      this.#served.firstTokenMs = performance.now() - this.#began;
      this.#sink.begin(this.#served);
    }
    if (!this.#sink.write(out) && this.#pausedOn === undefined) {
      this.#pausedOn = c;
      this.#pausedAt = performance.now();
      c.pause();
      this.#sink.onDrain(this.#onDrain);
    }
  }

  /** NDJSON lines in, SSE out (undefined when there is nothing to send yet). */
  #translate(lines: string[]): string | undefined {
    let out = '';
    for (const line of lines) {
      const s = this.#translator!.line(line);
      if (s !== '') {
        out += s;
        this.#lineCount++;
      }
    }
    return out === '' ? undefined : out;
  }

  /** The engine's output cannot be used: before the first byte an attempt failure, after it a broken stream. */
  #unusable(e: unknown): void {
    if (e instanceof UnusableStart) {
      return this.#failEarly(e.errorEvent !== undefined ? errorEventFailure(this.#backend, e) : new AttemptError('malformed', e.message, this.#status));
    }
    const message = e instanceof FabricError || e instanceof Error ? e.message : String(e);
    if (this.#begun) this.#break(message);
    else this.#failEarly(new AttemptError('malformed', message, this.#status));
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
    // Undefined until the stream is committed: before that the first-byte deadline runs on.
    if (this.#idle !== undefined) this.#idle.refresh();
    let out: Buffer | string | undefined;
    try {
      out = this.#relay !== undefined ? this.#relay.push(chunk) : this.#translate(this.#lines!.push(chunk));
    } catch (e) {
      return this.#unusable(e);
    }
    if (out !== undefined) this.#forward(out, c);
    if (this.#finished()) this.#complete(c, false);
  }

  onResponseEnd(c: Dispatcher.DispatchController): void {
    clearTimeout(this.#linger);
    if (this.#settled) return;
    if (this.#phase === 'error' || this.#phase === 'wrong-type') {
      const text = Buffer.concat(this.#errorChunks).toString('utf8');
      if (this.#phase === 'error') this.#fail(upstreamError(this.#backend, this.#status, this.#headers, text));
      else this.#fail(new AttemptError('malformed', `answered a stream request with ${this.#contentType || 'no content type'} instead of text/event-stream (${text.slice(0, 200)})`, this.#status));
      return;
    }
    let rest: Buffer | string | undefined;
    try {
      rest = this.#relay !== undefined ? this.#relay.flush() : this.#translate([this.#lines!.flush()]);
      const tail = this.#translator?.end?.();
      if (tail !== undefined && tail !== '') rest = (rest ?? '') + tail;
    } catch (e) {
      return this.#unusable(e);
    }
    if (rest !== undefined) this.#forward(rest, c);
    if (this.#finished()) return this.#complete(c, true);
    if (this.#begun) this.#break(this.#relay !== undefined ? 'the backend ended the stream without [DONE]' : 'the backend ended the stream before it was done');
    else this.#failEarly(new AttemptError('malformed', 'the backend ended the stream before its first event', this.#status));
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    clearTimeout(this.#linger);
    if (this.#settled) return;
    if (this.#cancel.aborted) {
      // Gone after tokens reached it: the stream ends here, and what was relayed is billed
      // (the gateway answers nobody, but records the usage and its cost).
      if (this.#begun) {
        this.#streamError = ABORTED;
        return this.#ok();
      }
      return this.#fail(new AttemptError('aborted', ABORTED));
    }
    const ae = transportError(this.#backend, err, this.#timedOut);
    if (this.#begun) this.#break(ae.message);
    else this.#fail(ae);
  }
}

/** What a streamed attempt sends: an engine's prepared JSON request, or an audio upload's bytes. */
export interface StreamRequest {
  path: string;
  body: string | Buffer | readonly Buffer[];
  logprobsRefusal?: boolean;
}

/**
 * Streams one attempt into the sink: relayed as SSE, or through `translator` line by line (an
 * NDJSON engine's, or an audio stream's). `firstByteMs` 0: no first-byte limit (an audio
 * stream, which a server may answer whole once the audio is decoded), the total bounds it. Resolves when the client's stream has ended (cleanly, or
 * with an error event after its first byte); rejects with an AttemptError before that.
 */
export function streamAttempt(
  deadlines: Deadlines, backend: BackendRuntime, request: StreamRequest, headers: Record<string, string>,
  translator: StreamTranslator | undefined, clientWantsUsage: boolean, sink: StreamSink, served: Served, cancel: Cancel,
  firstByteMs = backend.config.timeouts.firstByteMs,
): Promise<StreamOutcome> {
  // The client sees usage only if it asked (prepared.injectedUsage says whether the gateway
  // asked the engine; engines such as llama.cpp also send usage nobody asked for).
  const call = new StreamCall(deadlines, backend, sink, served, cancel, clientWantsUsage, request, translator, firstByteMs);
  backend.outstanding++;
  call.send(backend.pool, {
    method: 'POST',
    path: backend.basePath + request.path,
    headers,
    body: request.body,
    headersTimeout: firstByteMs,
    bodyTimeout: 0,
  });
  return call.promise.finally(() => { backend.outstanding--; });
}
