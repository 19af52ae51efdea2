// The Responses API (POST /v1/responses) served over chat completions: a request becomes the
// chat request every engine takes, and what the Response object echoes of it is kept. Stateless:
// the gateway stores no responses, so a request must carry its whole conversation in `input`
// (what Codex and the SDKs do with `store: false`); `previous_response_id` and stored items are
// refused, naming what to send instead. Errors name the Responses field, not the chat one.

import type { Limits } from '../../config/types.ts';
import { FabricError } from '../../core/errors.ts';
import type { JsonObject } from '../../engines/types.ts';
import { bad, isObj } from '../validate.ts';

/** What the Response object repeats of its request (OpenAI's Response echoes these). */
export interface ResponsesEcho {
  instructions: string | null;
  tools: JsonObject[];
  toolChoice: unknown;
  parallelToolCalls: boolean;
  temperature: number | null;
  topP: number | null;
  maxOutputTokens: number | null;
  metadata: JsonObject;
  text: JsonObject;
  user: string | null;
  reasoningEffort: string | null;
  /** The alternatives asked for per token (top_logprobs; 0 when only include asked for logprobs). */
  topLogprobs: number;
}

export interface TranslatedRequest {
  chat: JsonObject;
  echo: ResponsesEcho;
  /** The bytes item references brought in beside the body's own. */
  referencedBytes: number;
}

/** Fields that need state or tools the gateway does not have, and what to do instead. */
const REFUSED: Record<string, string> = {
  previous_response_id: 'the gateway stores no responses: send the whole conversation in `input` (and `store: false`)',
  conversation: 'the gateway stores no conversations: send the whole conversation in `input`',
  background: 'background responses are not served: send the request without `background`',
  prompt: 'stored prompt templates are not served: send the instructions and input themselves',
};

/** Chat completions fields, and the Responses field to use instead: sent on, they would override the translation (or, `n`, make answers nobody sees). */
const CHAT_ONLY: Record<string, string> = {
  messages: 'send the conversation as `input` (and the system prompt as `instructions`)',
  n: 'a response has one answer; send several requests for several',
  best_of: 'a response has one answer',
  response_format: 'use `text.format`',
  max_tokens: 'use `max_output_tokens`',
  max_completion_tokens: 'use `max_output_tokens`',
  functions: 'use `tools` (function tools)',
  function_call: 'use `tool_choice`',
  reasoning_effort: 'use `reasoning.effort`',
};

/** Accepted and not sent on as they are: they shape what OpenAI stores or returns beyond the text (include and top_logprobs ask for logprobs, below). */
const IGNORED = new Set([
  'store', 'include', 'truncation', 'service_tier', 'prompt_cache_key', 'prompt_cache_retention', 'safety_identifier', 'stream_options', 'max_tool_calls',
  'top_logprobs', 'context_management', 'prompt_cache_options', 'moderation',
]);

/** A table's own entry (a request's `toString` or `__proto__` is no key of it). */
function own(table: Record<string, string>, k: string): string | undefined {
  return Object.hasOwn(table, k) ? table[k] : undefined;
}

/** The Responses API's reasoning efforts and verbosities (ReasoningEffort, Verbosity in OpenAI's schema). */
const EFFORTS = new Set(['none', 'minimal', 'low', 'medium', 'high', 'xhigh', 'max']);
const VERBOSITIES = new Set(['low', 'medium', 'high']);

/** A field the client set (null is as good as leaving it out). */
const given = (v: unknown): boolean => v !== undefined && v !== null;

/** Optional fields the answer echoes: a wrong type is refused, rather than echoed into a Response that breaks OpenAI's schema. */
function checkTypes(body: JsonObject): void {
  if (given(body.parallel_tool_calls) && typeof body.parallel_tool_calls !== 'boolean') throw bad('parallel_tool_calls', '`parallel_tool_calls` must be a boolean');
  if (given(body.user) && typeof body.user !== 'string') throw bad('user', '`user` must be a string');
  if (given(body.reasoning)) {
    if (!isObj(body.reasoning)) throw bad('reasoning', '`reasoning` must be an object');
    const e = body.reasoning.effort;
    if (given(e) && (typeof e !== 'string' || !EFFORTS.has(e))) throw bad('reasoning.effort', `\`reasoning.effort\` must be one of ${[...EFFORTS].join(', ')}`);
  }
  if (isObj(body.text) && given(body.text.verbosity) && (typeof body.text.verbosity !== 'string' || !VERBOSITIES.has(body.text.verbosity))) {
    throw bad('text.verbosity', '`text.verbosity` must be low, medium or high');
  }
  if (Array.isArray(body.include) && !body.include.every((v) => typeof v === 'string')) throw bad('include', '`include` must be a list of strings');
  const md = body.metadata;
  if (given(md)) {
    if (!isObj(md)) throw bad('metadata', '`metadata` must be an object');
    const keys = Object.keys(md);
    if (keys.length > 16) throw bad('metadata', `\`metadata\` has ${keys.length} keys; at most 16 are allowed`);
    for (const k of keys) {
      if (k.length > 64) throw bad('metadata', '`metadata` keys are at most 64 characters');
      if (typeof md[k] !== 'string' || (md[k] as string).length > 512) throw bad(`metadata.${k.slice(0, 64)}`, '`metadata` values must be strings of at most 512 characters');
    }
  }
}

const MAPPED = new Set(['model', 'input', 'instructions', 'stream', 'max_output_tokens', 'temperature', 'top_p', 'tools', 'tool_choice', 'parallel_tool_calls', 'text', 'reasoning', 'metadata', 'user']);

/** A content part of an input message, as a chat content part. */
function part(p: unknown, at: string): JsonObject {
  if (typeof p === 'string') return { type: 'text', text: p };
  if (!isObj(p)) throw bad(at, `\`${at}\` must be a content part object`);
  switch (p.type) {
    case 'input_text':
    case 'output_text':
    case 'text':
      if (typeof p.text !== 'string') throw bad(`${at}.text`, `\`${at}.text\` must be a string`);
      return { type: 'text', text: p.text };
    case 'input_image': {
      if (typeof p.image_url !== 'string') {
        throw bad(`${at}.image_url`, p.file_id !== undefined
          ? `\`${at}\`: file ids need OpenAI's file store; send the image as \`image_url\` (a URL or a data: URL)`
          : `\`${at}.image_url\` must be a string (a URL or a data: URL)`);
      }
      const image: JsonObject = { url: p.image_url };
      if (typeof p.detail === 'string' && p.detail !== 'auto') image.detail = p.detail;
      return { type: 'image_url', image_url: image };
    }
    case 'refusal':
      return { type: 'text', text: typeof p.refusal === 'string' ? p.refusal : '' };
    default:
      throw bad(`${at}.type`, `\`${at}.type\` ${JSON.stringify(p.type)} is not served here; input_text and input_image are`);
  }
}

/** A message's content: a string stays one; parts become chat parts (all text: joined, as every engine takes it). */
function content(c: unknown, at: string): string | JsonObject[] {
  if (typeof c === 'string') return c;
  if (!Array.isArray(c)) throw bad(at, `\`${at}\` must be a string or an array of content parts`);
  const parts = c.map((p, i) => part(p, `${at}[${i}]`));
  return parts.every((p) => p.type === 'text') ? parts.map((p) => p.text as string).join('') : parts;
}

/** A function call's output: its text (a string, or text parts joined), and its images (which a chat tool message cannot carry). */
function toolOutput(o: unknown, at: string): { text: string; images: JsonObject[] } {
  if (typeof o === 'string') return { text: o, images: [] };
  if (!Array.isArray(o)) throw bad(at, `\`${at}\` must be a string or an array of content parts`);
  let text = '';
  const images: JsonObject[] = [];
  o.forEach((p, i) => {
    const c = part(p, `${at}[${i}]`);
    if (c.type === 'text') text += c.text as string;
    else images.push(c);
  });
  return { text, images };
}

const MESSAGE_ROLES = new Set(['user', 'assistant', 'system', 'developer']);

/** Finds an item the gateway returned earlier by its id (items.ts), for `item_reference`, with its size. */
export type RecallItem = (id: string) => { item: JsonObject; size: number } | undefined;

/**
 * `input` as chat messages: messages, and function calls and their outputs as tool calls and
 * tool messages. Function calls go on the assistant message just before them (its text and its
 * calls are one chat turn), or on one of their own; images a function returned follow the run of
 * tool messages as a user message, since a tool message carries text only.
 */
function messages(input: unknown, instructions: string | null, recall: RecallItem | undefined, maxBytes: number, counted: { bytes: number }): JsonObject[] {
  const out: JsonObject[] = [];
  if (instructions !== null) out.push({ role: 'system', content: instructions });
  if (typeof input === 'string') {
    out.push({ role: 'user', content: input });
    return out;
  }
  if (!Array.isArray(input) || input.length === 0) throw bad('input', '`input` must be a string or a non-empty array of input items');
  /** The assistant message the consecutive function calls go on. */
  let calls: JsonObject[] | undefined;
  let images: JsonObject[] = [];

  const flushImages = (): void => {
    if (images.length === 0) return;
    out.push({ role: 'user', content: images });
    images = [];
  };
  for (let i = 0; i < input.length; i++) {
    let item = input[i] as unknown;
    const at = `input[${i}]`;
    if (!isObj(item)) throw bad(at, `\`${at}\` must be an input item object`);
    if (item.type === 'item_reference') {
      const found = typeof item.id === 'string' ? recall?.(item.id) : undefined;
      if (found === undefined) {
        throw bad(`${at}.id`, `\`${at}\`: item ${JSON.stringify(String(item.id)).slice(0, 80)} is not one this gateway returned to this key in the last hour; send the item itself (the Vercel AI SDK does with providerOptions: { openai: { store: false } })`);
      }
      // A small body must not grow past the body limit through references.
      counted.bytes += found.size;
      if (counted.bytes > maxBytes) throw bad(`${at}.id`, `the body and the items \`input\` refers to come to more than the body limit (${maxBytes} bytes)`);
      item = found.item;
    }
    const it = item as JsonObject;
    const type = it.type ?? 'message';
    // A model's earlier reasoning is not sent back (chat models take none), and does not end a run of calls.
    if (type === 'reasoning') continue;
    if (type !== 'function_call_output') flushImages();
    if (type === 'function_call') {
      if (typeof it.call_id !== 'string' || typeof it.name !== 'string' || typeof it.arguments !== 'string') {
        throw bad(at, `\`${at}\`: a function_call item needs \`call_id\`, \`name\` and \`arguments\` (strings)`);
      }
      const call = { id: it.call_id, type: 'function', function: { name: it.name, arguments: it.arguments } };
      if (calls === undefined) {
        calls = [call];
        const last = out[out.length - 1];
        if (last !== undefined && last.role === 'assistant' && last.tool_calls === undefined) last.tool_calls = calls;
        else out.push({ role: 'assistant', content: null, tool_calls: calls });
      } else calls.push(call);
      continue;
    }
    calls = undefined;
    if (type === 'message') {
      if (typeof it.role !== 'string' || !MESSAGE_ROLES.has(it.role)) throw bad(`${at}.role`, `\`${at}.role\` must be one of user, assistant, system, developer`);
      out.push({ role: it.role, content: content(it.content, `${at}.content`) });
    } else if (type === 'function_call_output') {
      if (typeof it.call_id !== 'string') throw bad(`${at}.call_id`, `\`${at}.call_id\` must be a string`);
      const o = toolOutput(it.output, `${at}.output`);
      out.push({ role: 'tool', tool_call_id: it.call_id, content: o.text });
      images.push(...o.images);
    } else {
      throw bad(`${at}.type`, `\`${at}.type\` ${JSON.stringify(type)} is not served here; message, function_call, function_call_output and item_reference are`);
    }
  }
  flushImages();
  return out;
}

/** Function tools as chat tools; built-in tools (web search, file search…) need OpenAI's own. */
function tools(v: unknown): { chat: JsonObject[]; echo: JsonObject[] } {
  if (v === undefined || v === null) return { chat: [], echo: [] };
  if (!Array.isArray(v)) throw bad('tools', '`tools` must be an array');
  const chat: JsonObject[] = [];
  const echo: JsonObject[] = [];
  for (let i = 0; i < v.length; i++) {
    const t = v[i] as unknown;
    if (!isObj(t)) throw bad(`tools[${i}]`, `\`tools[${i}]\` must be an object`);
    if (t.type !== 'function') throw bad(`tools[${i}].type`, `\`tools[${i}].type\` ${JSON.stringify(t.type)} is not served here: only function tools are (built-in tools run on OpenAI's side)`);
    if (typeof t.name !== 'string' || t.name === '') throw bad(`tools[${i}].name`, `\`tools[${i}].name\` must be a non-empty string`);
    if (given(t.description) && typeof t.description !== 'string') throw bad(`tools[${i}].description`, `\`tools[${i}].description\` must be a string`);
    if (given(t.parameters) && !isObj(t.parameters)) throw bad(`tools[${i}].parameters`, `\`tools[${i}].parameters\` must be a JSON schema object`);
    if (given(t.strict) && typeof t.strict !== 'boolean') throw bad(`tools[${i}].strict`, `\`tools[${i}].strict\` must be a boolean`);
    const fn: JsonObject = { name: t.name };
    if (typeof t.description === 'string') fn.description = t.description;
    if (given(t.parameters)) fn.parameters = t.parameters;
    if (typeof t.strict === 'boolean') fn.strict = t.strict;
    chat.push({ type: 'function', function: fn });
    echo.push({ type: 'function', name: t.name, description: t.description ?? null, parameters: t.parameters ?? null, strict: t.strict ?? null });
  }
  return { chat, echo };
}

function toolChoice(v: unknown): unknown {
  if (v === undefined || v === null) return undefined;
  if (v === 'auto' || v === 'none' || v === 'required') return v;
  if (isObj(v) && v.type === 'function' && typeof v.name === 'string') return { type: 'function', function: { name: v.name } };
  throw bad('tool_choice', '`tool_choice` must be "auto", "none", "required" or {"type": "function", "name": …}');
}

/** text.format as chat's response_format. */
function responseFormat(text: unknown): { chat: JsonObject | undefined; echo: JsonObject } {
  if (text === undefined || text === null) return { chat: undefined, echo: { format: { type: 'text' } } };
  if (!isObj(text)) throw bad('text', '`text` must be an object');
  const f = text.format;
  if (f === undefined || f === null) return { chat: undefined, echo: { format: { type: 'text' } } };
  if (!isObj(f)) throw bad('text.format', '`text.format` must be an object');
  if (f.type === 'text') return { chat: undefined, echo: { format: f } };
  if (f.type === 'json_object') return { chat: { type: 'json_object' }, echo: { format: f } };
  if (f.type === 'json_schema') {
    if (typeof f.name !== 'string' || !isObj(f.schema)) throw bad('text.format', '`text.format` of type json_schema needs `name` (a string) and `schema` (an object)');
    if (given(f.description) && typeof f.description !== 'string') throw bad('text.format.description', '`text.format.description` must be a string');
    if (given(f.strict) && typeof f.strict !== 'boolean') throw bad('text.format.strict', '`text.format.strict` must be a boolean');
    const js: JsonObject = { name: f.name, schema: f.schema };
    if (typeof f.description === 'string') js.description = f.description;
    if (typeof f.strict === 'boolean') js.strict = f.strict;
    return { chat: { type: 'json_schema', json_schema: js }, echo: { format: f } };
  }
  throw bad('text.format.type', '`text.format.type` must be text, json_object or json_schema');
}

function num(body: JsonObject, key: string): number | null {
  const v = body[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(key, `\`${key}\` must be a number`);
  return v;
}

/** Chat request fields, as the Responses fields they were translated from (for an error's `param`). */
const FROM_CHAT: Record<string, string> = {
  reasoning_effort: 'reasoning.effort', response_format: 'text.format', max_completion_tokens: 'max_output_tokens',
};

/** The Responses field behind a chat request's field (`messages[2].content` is somewhere in `input`). */
export function responsesParam(param: string): string {
  if (param === 'messages' || param.startsWith('messages[') || param.startsWith('messages.')) return 'input';
  return own(FROM_CHAT, param) ?? param;
}

/** The ids of the items a Responses request's `input` names by `item_reference` (none when it is not such a request). */
export function referencedIds(body: unknown): string[] {
  const input = isObj(body) ? body.input : undefined;
  if (!Array.isArray(input)) return [];
  const ids: string[] = [];
  for (const it of input) if (isObj(it) && it.type === 'item_reference' && typeof it.id === 'string') ids.push(it.id);
  return ids;
}

/** bodyBytes: the request body's own size, which item references add to (within limits.maxBodyBytes). */
export function fromResponsesRequest(body: unknown, limits: Limits, recall?: RecallItem, bodyBytes = 0): TranslatedRequest {
  if (!isObj(body)) throw new FabricError('invalid_request', 'the request body must be a JSON object');
  for (const k of Object.keys(body)) {
    if (body[k] === undefined || body[k] === null || body[k] === false) continue;
    const refused = own(REFUSED, k);
    if (refused !== undefined) throw bad(k, `\`${k}\` is not accepted: ${refused}`);
    const chatOnly = own(CHAT_ONLY, k);
    if (chatOnly !== undefined) throw bad(k, `\`${k}\` is a chat completions field, not one of the Responses API: ${chatOnly}`);
  }
  if (body.instructions !== undefined && body.instructions !== null && typeof body.instructions !== 'string') throw bad('instructions', '`instructions` must be a string');
  checkTypes(body);
  const instructions = typeof body.instructions === 'string' ? body.instructions : null;
  const counted = { bytes: bodyBytes };
  const chat: JsonObject = { model: body.model, messages: messages(body.input, instructions, recall, limits.maxBodyBytes, counted) };
  // Reasoning items alone, say: nothing for a model to answer.
  if ((chat.messages as unknown[]).length === 0) throw bad('input', '`input` has no message to answer: send text, a message or a function call output');
  if (body.stream === true) {
    chat.stream = true;
    // The usage goes into response.completed, whether the client asked or not.
    chat.stream_options = { include_usage: true };
  } else if (body.stream !== undefined && body.stream !== null && body.stream !== false) throw bad('stream', '`stream` must be a boolean');
  const maxOut = body.max_output_tokens;
  if (maxOut !== undefined && maxOut !== null) {
    if (typeof maxOut !== 'number' || !Number.isInteger(maxOut) || maxOut < 1) throw bad('max_output_tokens', '`max_output_tokens` must be a positive integer');
    if (maxOut > limits.maxTokens) throw bad('max_output_tokens', `\`max_output_tokens\` is ${maxOut}; this gateway allows at most ${limits.maxTokens}`, 'parameter_out_of_range');
    chat.max_completion_tokens = maxOut;
  }
  const temperature = num(body, 'temperature');
  if (temperature !== null) chat.temperature = temperature;
  const topP = num(body, 'top_p');
  if (topP !== null) chat.top_p = topP;
  const t = tools(body.tools);
  if (t.chat.length > 0) chat.tools = t.chat;
  const choice = toolChoice(body.tool_choice);
  if (choice !== undefined) chat.tool_choice = choice;
  if (typeof body.parallel_tool_calls === 'boolean') chat.parallel_tool_calls = body.parallel_tool_calls;
  const rf = responseFormat(body.text);
  if (rf.chat !== undefined) chat.response_format = rf.chat;
  let effort: string | null = null;
  if (isObj(body.reasoning) && typeof body.reasoning.effort === 'string') {
    effort = body.reasoning.effort;
    chat.reasoning_effort = effort;
  }
  // Token logprobs: asked for with include: ["message.output_text.logprobs"], or top_logprobs.
  const top = body.top_logprobs;
  if (top !== undefined && top !== null && (typeof top !== 'number' || !Number.isInteger(top) || top < 0 || top > 20)) throw bad('top_logprobs', '`top_logprobs` must be an integer from 0 to 20');
  if (body.include !== undefined && body.include !== null && !Array.isArray(body.include)) throw bad('include', '`include` must be an array');
  if ((Array.isArray(body.include) && body.include.includes('message.output_text.logprobs')) || (typeof top === 'number' && top > 0)) {
    chat.logprobs = true;
    if (typeof top === 'number' && top > 0) chat.top_logprobs = top;
  }
  if (typeof body.user === 'string') chat.user = body.user;
  for (const k of Object.keys(body)) {
    // Unknown fields go on as they are, as chat requests' do (engines' own extensions), never
    // over what the translation set.
    if (!MAPPED.has(k) && !IGNORED.has(k) && own(REFUSED, k) === undefined && own(CHAT_ONLY, k) === undefined && !(k in chat)) chat[k] = body[k];
  }
  return {
    chat,
    referencedBytes: counted.bytes - bodyBytes,
    echo: {
      instructions, tools: t.echo, toolChoice: body.tool_choice ?? 'auto', parallelToolCalls: body.parallel_tool_calls !== false,
      temperature, topP, maxOutputTokens: typeof maxOut === 'number' ? maxOut : null, metadata: isObj(body.metadata) ? body.metadata : {},
      text: rf.echo, user: typeof body.user === 'string' ? body.user : null, reasoningEffort: effort, topLogprobs: typeof top === 'number' ? top : 0,
    },
  };
}
