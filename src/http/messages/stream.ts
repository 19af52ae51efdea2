// A streamed chat completion as Anthropic's Messages events. The gateway streams chat chunks
// (SSE, as the engine or its translator sent them) into this sink, which answers the client with
// message_start and a ping, each content block's start / deltas / stop (text_delta,
// input_json_delta for a tool call's arguments, thinking_delta when thinking was asked for), then
// message_delta with the stop reason and the usage, and message_stop. An error chunk (an
// engine's, or the gateway's when a backend dies mid-stream) becomes Anthropic's `error` event:
// never a silent truncation. Only the first choice is followed: the Messages API has no `n`.

import type { HoldingSink, Served } from '../../core/gateway.ts';
import { DialectStream } from '../dialect-stream.ts';
import type { JsonObject } from '../../engines/types.ts';
import type { MessagesEcho } from './request.ts';
import { errorEvent, messageUsage, reasoningOf, stopReason } from './response.ts';

/** A text or thinking block: one at a time, closed when anything else begins. */
interface OpenBlock { kind: 'text' | 'thinking'; index: number }
/** A tool call's block, by its chat index. */
interface Call { index: number }

const ZERO_USAGE = { input_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 0 };

export class MessagesStream extends DialectStream {
  readonly #echo: MessagesEcho;
  readonly #id: string;
  readonly #modelFor: (served: Served) => string;
  readonly #inputEstimate: () => number;
  /** The next content block's index. */
  #blocks = 0;
  #open: OpenBlock | undefined;
  /**
   * Tool calls by their chat index, and the block still open: one at a time, as Anthropic sends
   * them (its SDKs take a content_block_stop for the last block begun). Engines send a call's
   * arguments whole before the next call's; arguments that come for a call already closed still
   * go to its block (the SDKs add deltas to the block their index names).
   */
  readonly #calls = new Map<number, Call>();
  readonly #openCalls: number[] = [];
  #finish: unknown;
  #engineStop: unknown;
  #usage: unknown;
  /** Deltas relayed: about one token each, the output's estimate when the engine reports no usage. */
  #deltas = 0;
  #finished = false;

  /**
   * modelFor: the model id the serving backend answers with, for message_start; inputEstimate: the
   * prompt's tokens as the gateway estimates them, for message_start's usage (the engine's count
   * comes at the end, in message_delta, which the SDKs take over it).
   */
  constructor(inner: HoldingSink, echo: MessagesEcho, id: string, modelFor: (served: Served) => string, inputEstimate: () => number) {
    super(inner);
    this.#echo = echo;
    this.#id = id;
    this.#modelFor = modelFor;
    this.#inputEstimate = inputEstimate;
  }

  /** Whether the message ended (message_stop, or an error event), rather than its client leaving first. */
  get finished(): boolean {
    return this.#finished;
  }

  begin(served: Served): void {
    this.inner.begin(served);
    this.#emit('message_start', {
      message: {
        id: this.#id, type: 'message', role: 'assistant', model: this.#modelFor(served), content: [], stop_reason: null, stop_sequence: null,
        usage: { ...ZERO_USAGE, input_tokens: this.#inputEstimate() },
      },
    });
    this.#emit('ping', {});
    this.flush();
  }

  #emit(type: string, payload: JsonObject): void {
    this.out(`event: ${type}\ndata: ${JSON.stringify({ type, ...payload })}\n\n`);
  }

  protected chunk(chunk: JsonObject): void {
    if (chunk.usage !== undefined && chunk.usage !== null) this.#usage = chunk.usage;
    const choice = Array.isArray(chunk.choices) ? (chunk.choices as JsonObject[]).find((c) => (c.index ?? 0) === 0) : undefined;
    if (choice === undefined) return;
    const delta = choice.delta as JsonObject | undefined;
    if (delta !== undefined && delta !== null) {
      const reasoning = reasoningOf(delta);
      if (reasoning !== '' && this.#echo.thinking) this.#delta('thinking', reasoning);
      if (typeof delta.content === 'string' && delta.content !== '') this.#delta('text', delta.content);
      if (typeof delta.refusal === 'string' && delta.refusal !== '') {
        this.#delta('text', delta.refusal);
        this.#finish = 'content_filter';
      }
      if (Array.isArray(delta.tool_calls)) for (const tc of delta.tool_calls as JsonObject[]) this.#toolCall(tc);
    }
    if (choice.finish_reason !== undefined && choice.finish_reason !== null && this.#finish !== 'content_filter') this.#finish = choice.finish_reason;
    // vLLM names the stop string a reply ended on.
    if (choice.stop_reason !== undefined && choice.stop_reason !== null) this.#engineStop = choice.stop_reason;
  }

  /** Text or thinking: into the open block of its kind, else a new one (closing what was open). */
  #delta(kind: OpenBlock['kind'], text: string): void {
    this.#deltas++;
    if (this.#open?.kind !== kind) {
      this.#closeOpen();
      this.#closeCalls();
      this.#open = { kind, index: this.#blocks++ };
      this.#emit('content_block_start', { index: this.#open.index, content_block: kind === 'text' ? { type: 'text', text: '' } : { type: 'thinking', thinking: '', signature: '' } });
    }
    this.#emit('content_block_delta', { index: this.#open.index, delta: kind === 'text' ? { type: 'text_delta', text } : { type: 'thinking_delta', thinking: text } });
  }

  #toolCall(tc: JsonObject): void {
    this.#deltas++;
    const chatIndex = typeof tc.index === 'number' ? tc.index : 0;
    const fn = (tc.function ?? {}) as JsonObject;
    let call = this.#calls.get(chatIndex);
    if (call === undefined) {
      this.#closeOpen();
      this.#closeCalls();
      call = { index: this.#blocks++ };
      this.#calls.set(chatIndex, call);
      this.#openCalls.push(call.index);
      const id = typeof tc.id === 'string' && tc.id !== '' ? tc.id : `toolu_${this.#id.slice(4)}_${call.index}`;
      this.#emit('content_block_start', { index: call.index, content_block: { type: 'tool_use', id, name: typeof fn.name === 'string' ? fn.name : '', input: {} } });
    }
    if (typeof fn.arguments === 'string' && fn.arguments !== '') this.#emit('content_block_delta', { index: call.index, delta: { type: 'input_json_delta', partial_json: fn.arguments } });
  }

  #closeOpen(): void {
    if (this.#open === undefined) return;
    this.#emit('content_block_stop', { index: this.#open.index });
    this.#open = undefined;
  }

  /** The open call's block. */
  #closeCalls(): void {
    for (const index of this.#openCalls) this.#emit('content_block_stop', { index });
    this.#openCalls.length = 0;
  }

  protected complete(): void {
    this.#finished = true;
    // What came before the end goes out now; only the closing events wait for the usage record.
    this.flush();
    this.#closeOpen();
    this.#closeCalls();
    const stop = stopReason(this.#finish, this.#engineStop, this.#calls.size > 0, this.#echo);
    const usage = this.#usage === undefined ? { ...ZERO_USAGE, input_tokens: this.#inputEstimate(), output_tokens: this.#deltas } : messageUsage(this.#usage);
    this.#emit('message_delta', { delta: { stop_reason: stop.reason, stop_sequence: stop.sequence }, usage });
    this.#emit('message_stop', {});
    this.last();
  }

  protected fail(error: unknown): void {
    this.#finished = true;
    this.flush();
    const e = (typeof error === 'object' && error !== null ? error : { message: String(error) }) as JsonObject;
    const message = typeof e.message === 'string' ? e.message : 'the stream failed';
    this.out(errorEvent(e.code === 'shutting_down' ? 'overloaded_error' : 'api_error', message));
    this.last();
  }
}
