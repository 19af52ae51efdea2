// A chat completion as a Response object (the Responses API), and the parts the streamed
// events share with it: output items, usage, the object around them.

import { randomBytes } from 'node:crypto';
import type { JsonObject } from '../../engines/types.ts';
import type { ResponsesEcho } from './request.ts';

export type ResponseStatus = 'in_progress' | 'completed' | 'incomplete' | 'failed';

/**
 * Ids of one response (from the gateway's request id, which logs key on) and of its output items
 * (random: a later request may name an item, and must have been given its id to know it).
 */
export class ResponseIds {
  readonly response: string;
  readonly #salt: string;
  #n = 0;
  constructor(requestId: string) {
    this.response = `resp_${requestId.startsWith('req_') ? requestId.slice(4) : requestId}`;
    this.#salt = randomBytes(12).toString('hex');
  }
  item(prefix: 'msg' | 'fc' | 'rs'): string {
    return `${prefix}_${this.#salt}${this.#n++}`;
  }
}

/** Chat usage as Responses usage: input and output tokens, with their details always present. */
export function responseUsage(u: unknown): JsonObject | null {
  if (typeof u !== 'object' || u === null) return null;
  const usage = u as JsonObject;
  const input = typeof usage.prompt_tokens === 'number' ? usage.prompt_tokens : 0;
  const output = typeof usage.completion_tokens === 'number' ? usage.completion_tokens : 0;
  const pd = usage.prompt_tokens_details as JsonObject | null | undefined;
  const cd = usage.completion_tokens_details as JsonObject | null | undefined;
  return {
    input_tokens: input,
    input_tokens_details: { cached_tokens: typeof pd?.cached_tokens === 'number' ? pd.cached_tokens : 0, cache_write_tokens: 0 },
    output_tokens: output,
    output_tokens_details: { reasoning_tokens: typeof cd?.reasoning_tokens === 'number' ? cd.reasoning_tokens : 0 },
    total_tokens: typeof usage.total_tokens === 'number' ? usage.total_tokens : input + output,
  };
}

export type ItemStatus = 'in_progress' | 'completed' | 'incomplete';

/** An assistant message: its text (with its tokens' logprobs, when asked for), or the refusal a model gave instead (OpenAI's structured outputs). */
export function messageItem(id: string, text: string, status: ItemStatus, refusal = false, logprobs: JsonObject[] = []): JsonObject {
  return { id, type: 'message', status, role: 'assistant', content: status === 'in_progress' && text === '' ? [] : [refusal ? refusalPart(text) : outputText(text, logprobs)] };
}

export function refusalPart(refusal: string): JsonObject {
  return { type: 'refusal', refusal };
}

/** A model's reasoning (vLLM's reasoning_content, Ollama's thinking) as a reasoning item with its text. */
export function reasoningItem(id: string, text: string, status: ItemStatus): JsonObject {
  return { id, type: 'reasoning', status, summary: [], content: text === '' ? [] : [{ type: 'reasoning_text', text }] };
}

/** The reasoning text of a chat message or delta, under either name engines give it. */
export function reasoningOf(m: JsonObject): string {
  const r = m.reasoning_content ?? m.reasoning;
  return typeof r === 'string' ? r : '';
}

export function outputText(text: string, logprobs: JsonObject[] = []): JsonObject {
  return { type: 'output_text', text, annotations: [], logprobs };
}

const utf8 = (token: string): number[] => [...Buffer.from(token, 'utf8')];

/**
 * A chat choice's (or chunk's) token logprobs as the Responses API gives them: the same entries,
 * with the bytes an engine left out (null) filled from the token, and no more alternatives than
 * were asked for (`top`: llama-server gives 20 when asked for none).
 */
export function logprobsOf(logprobs: unknown, top: number): JsonObject[] {
  const content = typeof logprobs === 'object' && logprobs !== null ? (logprobs as JsonObject).content : undefined;
  if (!Array.isArray(content)) return [];
  return content.map((c: JsonObject) => {
    const token = String(c.token ?? '');
    const alternatives = Array.isArray(c.top_logprobs) ? (c.top_logprobs as JsonObject[]).slice(0, top) : [];
    return {
      token, logprob: c.logprob, bytes: Array.isArray(c.bytes) ? c.bytes : utf8(token),
      top_logprobs: alternatives.map((t) => ({ token: String(t.token ?? ''), logprob: t.logprob, bytes: Array.isArray(t.bytes) ? t.bytes : utf8(String(t.token ?? '')) })),
    };
  });
}

export function functionCallItem(id: string, callId: string, name: string, args: string, status: ItemStatus): JsonObject {
  return { id, type: 'function_call', status, call_id: callId, name, arguments: args };
}

/** Why a response stopped short: the chat finish reason, as Responses' incomplete_details. */
export function incompleteDetails(finish: unknown): JsonObject | null {
  if (finish === 'length') return { reason: 'max_output_tokens' };
  if (finish === 'content_filter') return { reason: 'content_filter' };
  return null;
}

export interface ResponseParts {
  ids: ResponseIds;
  createdAt: number;
  model: unknown;
  status: ResponseStatus;
  output: JsonObject[];
  usage: JsonObject | null;
  incomplete: JsonObject | null;
  error: JsonObject | null;
}

/** The Response object: what was made, and what the request asked (echoed, as OpenAI's is). */
export function responseObject(p: ResponseParts, echo: ResponsesEcho): JsonObject {
  return {
    id: p.ids.response,
    object: 'response',
    created_at: p.createdAt,
    status: p.status,
    ...(p.status === 'completed' ? { completed_at: Math.floor(Date.now() / 1000) } : {}),
    error: p.error,
    incomplete_details: p.incomplete,
    instructions: echo.instructions,
    max_output_tokens: echo.maxOutputTokens,
    model: typeof p.model === 'string' ? p.model : '',
    output: p.output,
    parallel_tool_calls: echo.parallelToolCalls,
    previous_response_id: null,
    reasoning: { effort: echo.reasoningEffort, summary: null },
    store: false,
    temperature: echo.temperature,
    text: echo.text,
    tool_choice: echo.toolChoice,
    tools: echo.tools,
    top_p: echo.topP,
    truncation: 'disabled',
    ...(p.usage === null ? {} : { usage: p.usage }),
    ...(echo.user === null ? {} : { user: echo.user }),
    metadata: echo.metadata,
  };
}

/** A whole chat completion (its first choice: the Responses API has no `n`) as a Response. */
export function toResponse(chat: JsonObject, echo: ResponsesEcho, ids: ResponseIds, createdAt: number): JsonObject {
  const choice = (Array.isArray(chat.choices) ? chat.choices[0] : undefined) as JsonObject | undefined;
  const message = (choice?.message ?? {}) as JsonObject;
  const incomplete = incompleteDetails(choice?.finish_reason);
  const output: JsonObject[] = [];
  const status = incomplete === null ? 'completed' : 'incomplete';
  const reasoning = reasoningOf(message);
  const text = typeof message.content === 'string' ? message.content : '';
  const refusal = typeof message.refusal === 'string' ? message.refusal : '';
  const calls = Array.isArray(message.tool_calls) ? (message.tool_calls as JsonObject[]) : [];
  // Reasoning that something followed was whole; only the last item can have been cut off.
  if (reasoning !== '') output.push(reasoningItem(ids.item('rs'), reasoning, text === '' && refusal === '' && calls.length === 0 ? status : 'completed'));
  if (text !== '') output.push(messageItem(ids.item('msg'), text, status, false, logprobsOf(choice?.logprobs, echo.topLogprobs)));
  if (refusal !== '') output.push(messageItem(ids.item('msg'), refusal, status, true));
  for (const c of calls) {
    const fn = (c.function ?? {}) as JsonObject;
    // A call cut off by the token limit is incomplete: its arguments may not be whole.
    output.push(functionCallItem(ids.item('fc'), typeof c.id === 'string' ? c.id : ids.item('fc'), String(fn.name ?? ''), typeof fn.arguments === 'string' ? fn.arguments : '', status));
  }
  return responseObject({
    ids, createdAt, model: chat.model, status: incomplete === null ? 'completed' : 'incomplete', output, usage: responseUsage(chat.usage), incomplete, error: null,
  }, echo);
}
