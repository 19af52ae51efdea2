// A chat completion as Anthropic's Message, and what the streamed events share with it: the
// stop reason, the usage, tool_use blocks, and errors in Anthropic's shape.

import type { FabricError } from '../../core/errors.ts';
import type { JsonObject } from '../../engines/types.ts';
import type { MessagesEcho } from './request.ts';

/** The Message's id, from the gateway's request id (which logs key on), as Responses' resp_ ids are. */
export function messageId(requestId: string): string {
  return `msg_${requestId.startsWith('req_') ? requestId.slice(4) : requestId}`;
}

export type StopReason = 'end_turn' | 'max_tokens' | 'stop_sequence' | 'tool_use' | 'refusal';

/**
 * Why the answer ended, from the chat finish reason. A stop sequence is named only when the
 * engine says which one it stopped on (vLLM's `stop_reason`); others end such an answer as
 * `end_turn`. Calls the model made are `tool_use` whatever finish reason came with them (a
 * server that says `stop` beside them), unless the token limit cut them.
 */
export function stopReason(finish: unknown, engineStop: unknown, calls: boolean, echo: MessagesEcho): { reason: StopReason; sequence: string | null } {
  if (finish === 'length') return { reason: 'max_tokens', sequence: null };
  if (calls || finish === 'tool_calls' || finish === 'function_call') return { reason: 'tool_use', sequence: null };
  if (finish === 'content_filter') return { reason: 'refusal', sequence: null };
  if (typeof engineStop === 'string' && echo.stopSequences.includes(engineStop)) return { reason: 'stop_sequence', sequence: engineStop };
  return { reason: 'end_turn', sequence: null };
}

/**
 * Chat usage as Anthropic's: prompt tokens an engine read from its prefix cache are
 * cache_read_input_tokens, the rest input_tokens (Anthropic's input_tokens leaves cache reads
 * out); the gateway writes no cache a client pays for, so cache_creation_input_tokens is 0.
 */
export function messageUsage(u: unknown): JsonObject {
  const usage = (typeof u === 'object' && u !== null ? u : {}) as JsonObject;
  const prompt = typeof usage.prompt_tokens === 'number' ? usage.prompt_tokens : 0;
  const details = usage.prompt_tokens_details as JsonObject | null | undefined;
  const cached = typeof details?.cached_tokens === 'number' ? Math.min(details.cached_tokens, prompt) : 0;
  return {
    input_tokens: prompt - cached,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: cached,
    output_tokens: typeof usage.completion_tokens === 'number' ? usage.completion_tokens : 0,
  };
}

/**
 * A tool call's arguments as a tool_use block's input: the JSON object they hold ({} for none).
 * Arguments that are not JSON (a model's slip) are given as the text they are rather than
 * dropped, so that the client's validation tells the model what it sent.
 */
export function toolInput(args: unknown): unknown {
  if (typeof args !== 'string' || args.trim() === '') return {};
  try {
    return JSON.parse(args) as unknown;
  } catch {
    return args;
  }
}

/** The reasoning text of a chat message or delta, under either name engines give it. */
export function reasoningOf(m: JsonObject): string {
  const r = m.reasoning_content ?? m.reasoning;
  return typeof r === 'string' ? r : '';
}

/** A whole chat completion (its first choice: the Messages API has no `n`) as a Message. */
export function toMessage(chat: JsonObject, echo: MessagesEcho, id: string): JsonObject {
  const choice = (Array.isArray(chat.choices) ? chat.choices[0] : undefined) as JsonObject | undefined;
  const message = (choice?.message ?? {}) as JsonObject;
  const content: JsonObject[] = [];
  const reasoning = reasoningOf(message);
  // A signature is Anthropic's proof of its own reasoning: there is none to give, and a client sends the block back only to have it left out.
  if (echo.thinking && reasoning !== '') content.push({ type: 'thinking', thinking: reasoning, signature: '' });
  if (typeof message.content === 'string' && message.content !== '') content.push({ type: 'text', text: message.content });
  const refusal = typeof message.refusal === 'string' && message.refusal !== '' ? message.refusal : undefined;
  if (refusal !== undefined) content.push({ type: 'text', text: refusal });
  const calls = Array.isArray(message.tool_calls) ? (message.tool_calls as JsonObject[]) : [];
  calls.forEach((c, i) => {
    const fn = (c.function ?? {}) as JsonObject;
    content.push({ type: 'tool_use', id: typeof c.id === 'string' && c.id !== '' ? c.id : `toolu_${id.slice(4)}_${i}`, name: String(fn.name ?? ''), input: toolInput(fn.arguments) });
  });
  const stop = refusal !== undefined ? { reason: 'refusal' as const, sequence: null } : stopReason(choice?.finish_reason, choice?.stop_reason, calls.length > 0, echo);
  return {
    id, type: 'message', role: 'assistant', model: typeof chat.model === 'string' ? chat.model : '', content,
    stop_reason: stop.reason, stop_sequence: stop.sequence, usage: messageUsage(chat.usage),
  };
}

/** Anthropic's error types by the gateway's statuses (its own list: other 4xx are invalid_request_error). */
export function errorType(status: number): string {
  switch (status) {
    case 401: return 'authentication_error';
    case 403: return 'permission_error';
    case 404: return 'not_found_error';
    case 413: return 'request_too_large';
    case 429: return 'rate_limit_error';
    case 503: return 'overloaded_error';
    case 504: return 'timeout_error';
    default: return status >= 500 ? 'api_error' : 'invalid_request_error';
  }
}

/** A failure as Anthropic's error body, its message the gateway's own. */
export function errorBody(e: FabricError, requestId: string): string {
  return JSON.stringify({ type: 'error', error: { type: errorType(e.status), message: e.message }, request_id: requestId });
}

/** A stream's error event (after its 200: the status is gone, the type says what kind of failure). */
export function errorEvent(type: string, message: string): string {
  return `event: error\ndata: ${JSON.stringify({ type: 'error', error: { type, message } })}\n\n`;
}
