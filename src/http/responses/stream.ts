// A streamed chat completion as the Responses API's events. The gateway streams chat chunks
// (SSE, as the engine or its translator sent them) into this sink, which answers the client
// with response.created, the output items' added / delta / done events, and response.completed
// (or .incomplete) carrying the whole Response with its usage. An error event (an engine's, or
// the gateway's when a backend dies mid-stream) becomes `error` and response.failed: never a
// silent truncation. Only the first choice is followed: the Responses API has no `n`.

import type { HoldingSink, Served } from '../../core/gateway.ts';
import { DialectStream } from '../dialect-stream.ts';
import type { JsonObject } from '../../engines/types.ts';
import type { ResponsesEcho } from './request.ts';
import {
  functionCallItem, incompleteDetails, logprobsOf, messageItem, outputText, reasoningItem, reasoningOf, refusalPart, responseObject, responseUsage,
  type ItemStatus, type ResponseIds, type ResponseStatus,
} from './response.ts';

/** No logprobs (not asked for, or none on this chunk): one shared empty list. */
const NONE: JsonObject[] = [];

interface OpenCall { id: string; callId: string; name: string; args: string; outputIndex: number }
interface OpenText { id: string; text: string; outputIndex: number; refusal: boolean; logprobs: JsonObject[] }

export class ResponsesStream extends DialectStream {
  readonly #echo: ResponsesEcho;
  readonly #ids: ResponseIds;
  readonly #createdAt: number;
  #seq = 0;
  #model: unknown = '';
  readonly #output: JsonObject[] = [];
  #msg: OpenText | undefined;
  #reasoning: { id: string; text: string; outputIndex: number } | undefined;
  /** Tool calls by their chat index; those still open (deltas may interleave between them). */
  readonly #calls = new Map<number, OpenCall>();
  readonly #openCalls: OpenCall[] = [];
  #finish: unknown;
  #usage: JsonObject | null = null;
  #finished = false;

  readonly #modelFor: (served: Served) => string;

  /** modelFor: the model id the serving backend answers with, for the events before its first chunk. */
  constructor(inner: HoldingSink, echo: ResponsesEcho, ids: ResponseIds, createdAt: number, modelFor: (served: Served) => string) {
    super(inner);
    this.#echo = echo;
    this.#ids = ids;
    this.#createdAt = createdAt;
    this.#modelFor = modelFor;
  }

  /** The output items, once the response is complete. */
  get output(): readonly JsonObject[] {
    return this.#output;
  }

  /** Whether the response ended (completed, incomplete or failed), rather than its client leaving first. */
  get finished(): boolean {
    return this.#finished;
  }

  begin(served: Served): void {
    this.#model = this.#modelFor(served);
    this.inner.begin(served);
    const response = this.#response('in_progress', null);
    this.#emit('response.created', { response });
    this.#emit('response.in_progress', { response });
    this.flush();
  }

  #emit(type: string, payload: JsonObject): void {
    this.out(`event: ${type}\ndata: ${JSON.stringify({ type, ...payload, sequence_number: this.#seq++ })}\n\n`);
  }

  #response(status: ResponseStatus, error: JsonObject | null): JsonObject {
    return responseObject({
      ids: this.#ids, createdAt: this.#createdAt, model: this.#model, status, output: this.#output,
      usage: status === 'in_progress' ? null : this.#usage, incomplete: status === 'incomplete' ? incompleteDetails(this.#finish) : null, error,
    }, this.#echo);
  }

  protected chunk(chunk: JsonObject): void {
    if (typeof chunk.model === 'string') this.#model = chunk.model;
    if (chunk.usage !== undefined && chunk.usage !== null) this.#usage = responseUsage(chunk.usage);
    const choice = Array.isArray(chunk.choices) ? (chunk.choices as JsonObject[]).find((c) => (c.index ?? 0) === 0) : undefined;
    if (choice === undefined) return;
    const delta = choice.delta as JsonObject | undefined;
    if (delta !== undefined && delta !== null) {
      const reasoning = reasoningOf(delta);
      if (reasoning !== '') this.#reason(reasoning);
      // Token logprobs (asked for with include: message.output_text.logprobs) ride on their text's delta.
      const logprobs = choice.logprobs === undefined || choice.logprobs === null ? NONE : logprobsOf(choice.logprobs, this.#echo.topLogprobs);
      if (typeof delta.content === 'string' && delta.content !== '') this.#text(delta.content, false, logprobs);
      else if (logprobs.length > 0 && this.#msg !== undefined && !this.#msg.refusal) this.#text('', false, logprobs);
      if (typeof delta.refusal === 'string' && delta.refusal !== '') this.#text(delta.refusal, true);
      if (Array.isArray(delta.tool_calls)) for (const tc of delta.tool_calls as JsonObject[]) this.#toolCall(tc);
    }
    if (choice.finish_reason !== undefined && choice.finish_reason !== null) this.#finish = choice.finish_reason;
  }

  #reason(delta: string): void {
    if (this.#reasoning === undefined) {
      this.#closeMessage();
      const id = this.#ids.item('rs');
      this.#reasoning = { id, text: '', outputIndex: this.#output.length };
      const item = reasoningItem(id, '', 'in_progress');
      this.#output.push(item);
      this.#emit('response.output_item.added', { output_index: this.#reasoning.outputIndex, item });
    }
    this.#reasoning.text += delta;
    this.#emit('response.reasoning_text.delta', { item_id: this.#reasoning.id, output_index: this.#reasoning.outputIndex, content_index: 0, delta });
  }

  #closeReasoning(status: ItemStatus = 'completed'): void {
    const r = this.#reasoning;
    if (r === undefined) return;
    this.#reasoning = undefined;
    this.#emit('response.reasoning_text.done', { item_id: r.id, output_index: r.outputIndex, content_index: 0, text: r.text });
    const item = reasoningItem(r.id, r.text, status);
    this.#output[r.outputIndex] = item;
    this.#emit('response.output_item.done', { output_index: r.outputIndex, item });
  }

  /** Text, or a refusal: each in a message item of its own kind. */
  #text(delta: string, refusal: boolean, logprobs: JsonObject[] = NONE): void {
    if (this.#msg !== undefined && this.#msg.refusal !== refusal) this.#closeMessage();
    if (this.#msg === undefined) {
      // Open calls stay open: a call's arguments may go on after text, as parallel calls' interleave.
      this.#closeReasoning();
      const id = this.#ids.item('msg');
      this.#msg = { id, text: '', outputIndex: this.#output.length, refusal, logprobs: [] };
      const item = messageItem(id, '', 'in_progress');
      this.#output.push(item);
      this.#emit('response.output_item.added', { output_index: this.#msg.outputIndex, item });
      this.#emit('response.content_part.added', { item_id: id, output_index: this.#msg.outputIndex, content_index: 0, part: refusal ? refusalPart('') : outputText('') });
    }
    this.#msg.text += delta;
    if (logprobs.length > 0) this.#msg.logprobs.push(...logprobs);
    const where = { item_id: this.#msg.id, output_index: this.#msg.outputIndex, content_index: 0 };
    if (refusal) this.#emit('response.refusal.delta', { ...where, delta });
    else this.#emit('response.output_text.delta', { ...where, delta, logprobs });
  }

  #toolCall(tc: JsonObject): void {
    const index = typeof tc.index === 'number' ? tc.index : 0;
    const fn = (tc.function ?? {}) as JsonObject;
    let call = this.#calls.get(index);
    if (call === undefined) {
      this.#closeReasoning();
      this.#closeMessage();
      const id = this.#ids.item('fc');
      call = { id, callId: typeof tc.id === 'string' ? tc.id : `call_${id}`, name: typeof fn.name === 'string' ? fn.name : '', args: '', outputIndex: this.#output.length };
      this.#calls.set(index, call);
      this.#openCalls.push(call);
      const item = functionCallItem(id, call.callId, call.name, '', 'in_progress');
      this.#output.push(item);
      this.#emit('response.output_item.added', { output_index: call.outputIndex, item });
    } else if (call.name === '' && typeof fn.name === 'string') call.name = fn.name;
    if (typeof fn.arguments === 'string' && fn.arguments !== '') {
      call.args += fn.arguments;
      this.#emit('response.function_call_arguments.delta', { item_id: call.id, output_index: call.outputIndex, delta: fn.arguments });
    }
  }

  #closeMessage(status: ItemStatus = this.#finish === 'length' || this.#finish === 'content_filter' ? 'incomplete' : 'completed'): void {
    const m = this.#msg;
    if (m === undefined) return;
    this.#msg = undefined;
    const where = { item_id: m.id, output_index: m.outputIndex, content_index: 0 };
    if (m.refusal) this.#emit('response.refusal.done', { ...where, refusal: m.text });
    else this.#emit('response.output_text.done', { ...where, text: m.text, logprobs: m.logprobs });
    this.#emit('response.content_part.done', { ...where, part: m.refusal ? refusalPart(m.text) : outputText(m.text, m.logprobs) });
    const item = messageItem(m.id, m.text, status, m.refusal, m.logprobs);
    this.#output[m.outputIndex] = item;
    this.#emit('response.output_item.done', { output_index: m.outputIndex, item });
  }

  /** Every open call, in the order they began. */
  #closeCalls(status: ItemStatus = 'completed'): void {
    for (const c of this.#openCalls) {
      this.#emit('response.function_call_arguments.done', { item_id: c.id, output_index: c.outputIndex, name: c.name, arguments: c.args });
      const item = functionCallItem(c.id, c.callId, c.name, c.args, status);
      this.#output[c.outputIndex] = item;
      this.#emit('response.output_item.done', { output_index: c.outputIndex, item });
    }
    this.#openCalls.length = 0;
  }

  protected complete(): void {
    this.#finished = true;
    // What came before the end goes out now; only the closing events wait for the usage record.
    this.flush();
    const incomplete = incompleteDetails(this.#finish) !== null;
    // Cut off by the token limit: what was open may not be whole (a call's arguments among it).
    const status: ItemStatus = incomplete ? 'incomplete' : 'completed';
    this.#closeReasoning(status);
    this.#closeMessage(status);
    this.#closeCalls(status);
    this.#emit(incomplete ? 'response.incomplete' : 'response.completed', { response: this.#response(incomplete ? 'incomplete' : 'completed', null) });
    this.last();
  }

  protected fail(error: unknown): void {
    this.#finished = true;
    this.flush();
    // What was sent stays in the failed Response, its items marked incomplete.
    this.#closeReasoning('incomplete');
    this.#closeMessage('incomplete');
    this.#closeCalls('incomplete');
    const e = (typeof error === 'object' && error !== null ? error : { message: String(error) }) as JsonObject;
    const message = typeof e.message === 'string' ? e.message : 'the stream failed';
    this.#emit('error', { code: typeof e.code === 'string' ? e.code : 'server_error', message, param: null });
    this.#emit('response.failed', { response: this.#response('failed', { code: 'server_error', message }) });
    this.last();
  }
}
