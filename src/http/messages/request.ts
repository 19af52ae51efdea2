// Anthropic's Messages API (POST /v1/messages) served over chat completions: a request becomes
// the chat request every engine takes, so Claude Code and tools built on Anthropic's SDKs reach
// the fabric's models through the same routing, keys, limits and accounting as any chat request.
// What only Anthropic's side can do (server tools, MCP servers, files) is refused naming the
// field; what has no meaning for a chat model (cache_control, thinking signatures, service
// tiers…) is left out. Errors name the Messages field: those checked again on the chat request
// keep their names there (max_tokens, temperature, tool_choice…).

import type { Limits } from '../../config/types.ts';
import { FabricError } from '../../core/errors.ts';
import { CONTINUE_FINAL_TURN, type JsonObject } from '../../engines/types.ts';
import { bad, isObj } from '../validate.ts';

/** What the answer needs of its request. */
export interface MessagesEcho {
  /** The stop sequences asked for: an engine that names the one it stopped on (vLLM's `stop_reason`) is believed only for these. */
  stopSequences: readonly string[];
  /** Whether the client asked for thinking: only then does a model's reasoning come back, as thinking blocks. */
  thinking: boolean;
}

export interface TranslatedMessages {
  chat: JsonObject;
  echo: MessagesEcho;
}

/** Fields that need what only Anthropic's side has, and what to do instead. */
const REFUSED: Record<string, string> = {
  mcp_servers: 'the gateway calls no MCP servers: connect them to the client (Claude Code does)',
};

/** Chat completions fields, and the Messages field to use instead: sent on, they would override the translation. */
const CHAT_ONLY: Record<string, string> = {
  stop: 'use `stop_sequences`',
  max_completion_tokens: 'use `max_tokens`',
  n: 'a message has one answer; send several requests for several',
  best_of: 'a message has one answer',
  response_format: 'use `output_config.format`',
  functions: 'use `tools`',
  function_call: 'use `tool_choice`',
  parallel_tool_calls: 'use `tool_choice.disable_parallel_tool_use`',
  stream_options: 'a stream\'s usage comes in its message_delta event, always',
  user: 'use `metadata.user_id`',
};

/**
 * Anthropic's fields that mean nothing to a chat model: accepted and not sent on. Prompt caching
 * markers (the engines cache prefixes by themselves), containers, context management, service
 * tiers, the body fields of Bedrock's and Vertex's flavours of the API.
 */
const IGNORED = new Set([
  'cache_control', 'container', 'context_management', 'diagnostics', 'inference_geo', 'service_tier', 'speed',
  'anthropic_version', 'anthropic_beta', 'betas', 'user_profile_id', 'workspace_id',
]);

const MAPPED = new Set([
  'model', 'messages', 'system', 'max_tokens', 'stop_sequences', 'temperature', 'top_p', 'top_k', 'stream', 'tools', 'tool_choice', 'metadata',
  'thinking', 'output_config',
]);

/** A table's own entry (a request's `toString` or `__proto__` is no key of it). */
function own(table: Record<string, string>, k: string): string | undefined {
  return Object.hasOwn(table, k) ? table[k] : undefined;
}

/** A field the client set (null is as good as leaving it out). */
const given = (v: unknown): boolean => v !== undefined && v !== null;

/**
 * Text blocks in a row become one string, as every engine takes a message's text: joined by a
 * line break, as vLLM joins the text parts of one message.
 */
const JOIN = '\n';

/** An image block's source as a chat image part: base64 data as a data: URL, a URL as it is. */
function image(b: JsonObject, at: string): JsonObject {
  const s = b.source;
  if (!isObj(s)) throw bad(`${at}.source`, `\`${at}.source\` must be an object (type base64 or url)`);
  if (s.type === 'base64') {
    if (typeof s.media_type !== 'string' || typeof s.data !== 'string') throw bad(`${at}.source`, `\`${at}.source\` of type base64 needs \`media_type\` and \`data\` (strings)`);
    return { type: 'image_url', image_url: { url: `data:${s.media_type};base64,${s.data}` } };
  }
  if (s.type === 'url') {
    if (typeof s.url !== 'string') throw bad(`${at}.source.url`, `\`${at}.source.url\` must be a string`);
    return { type: 'image_url', image_url: { url: s.url } };
  }
  throw bad(`${at}.source.type`, s.type === 'file'
    ? `\`${at}.source\`: file ids need Anthropic's Files API; send the image as base64 or a URL`
    : `\`${at}.source.type\` must be base64 or url`);
}

/** A document block, as the text it holds: plain-text sources only (a PDF needs a model that reads PDFs). */
function document(b: JsonObject, at: string): string {
  const s = b.source;
  if (isObj(s) && s.type === 'text' && typeof s.data === 'string') return s.data;
  if (isObj(s) && s.type === 'content' && typeof s.content === 'string') return s.content;
  throw bad(`${at}.source`, `\`${at}\`: only plain-text documents are served (source type text); send a PDF's text as a text block`);
}

/** What a user turn (or a tool result) may hold: text and image blocks, as chat parts. */
function userPart(b: unknown, at: string): JsonObject {
  if (!isObj(b)) throw bad(at, `\`${at}\` must be a content block object`);
  switch (b.type) {
    case 'text':
      if (typeof b.text !== 'string') throw bad(`${at}.text`, `\`${at}.text\` must be a string`);
      return { type: 'text', text: b.text };
    case 'image':
      return image(b, at);
    case 'document':
      return { type: 'text', text: document(b, at) };
    default:
      throw bad(`${at}.type`, `\`${at}.type\` ${JSON.stringify(b.type)} is not served here; text, image, document (plain text), tool_use and tool_result are`);
  }
}

/** Chat content from parts: all text joined into one string, else the parts. */
function fromParts(parts: JsonObject[]): string | JsonObject[] {
  return parts.every((p) => p.type === 'text') ? parts.map((p) => p.text as string).join(JOIN) : parts;
}

/** A tool result's content: its text (a string, or text blocks joined), and its images (which a chat tool message cannot carry). */
function toolResult(b: JsonObject, at: string): { text: string; images: JsonObject[] } {
  const c = b.content;
  let text = '';
  const images: JsonObject[] = [];
  if (typeof c === 'string') text = c;
  else if (Array.isArray(c)) {
    const texts: string[] = [];
    c.forEach((p, i) => {
      const part = userPart(p, `${at}.content[${i}]`);
      if (part.type === 'text') texts.push(part.text as string);
      else images.push(part);
    });
    text = texts.join(JOIN);
  } else if (given(c)) throw bad(`${at}.content`, `\`${at}.content\` must be a string or an array of content blocks`);
  // A chat tool message has no error flag: the model is told in words.
  if (b.is_error === true) text = text === '' ? 'Error' : `Error: ${text}`;
  return { text, images };
}

/**
 * A user turn: its tool results first, as tool messages (a chat tool message must follow the
 * assistant turn that called it, and Anthropic puts tool results first in the turn), then its
 * text and images as one user message, with the images the tools returned before them.
 */
function userTurn(content: unknown, at: string, out: JsonObject[]): void {
  if (typeof content === 'string') {
    out.push({ role: 'user', content });
    return;
  }
  if (!Array.isArray(content)) throw bad(at, `\`${at}\` must be a string or an array of content blocks`);
  const parts: JsonObject[] = [];
  const images: JsonObject[] = [];
  for (let j = 0; j < content.length; j++) {
    const b = content[j] as unknown;
    const bat = `${at}[${j}]`;
    if (isObj(b) && b.type === 'tool_result') {
      if (typeof b.tool_use_id !== 'string') throw bad(`${bat}.tool_use_id`, `\`${bat}.tool_use_id\` must be a string`);
      const r = toolResult(b, bat);
      out.push({ role: 'tool', tool_call_id: b.tool_use_id, content: r.text });
      images.push(...r.images);
    } else parts.push(userPart(b, bat));
  }
  if (images.length > 0 || parts.length > 0) out.push({ role: 'user', content: fromParts(images.concat(parts)) });
}

/**
 * An assistant turn: its text, and its tool_use blocks as tool calls. Thinking blocks are left
 * out: a chat model takes no earlier reasoning back, and their signatures are Anthropic's.
 */
function assistantTurn(content: unknown, at: string, out: JsonObject[]): void {
  if (typeof content === 'string') {
    out.push({ role: 'assistant', content });
    return;
  }
  if (!Array.isArray(content)) throw bad(at, `\`${at}\` must be a string or an array of content blocks`);
  const texts: string[] = [];
  const calls: JsonObject[] = [];
  for (let j = 0; j < content.length; j++) {
    const b = content[j] as unknown;
    const bat = `${at}[${j}]`;
    if (!isObj(b)) throw bad(bat, `\`${bat}\` must be a content block object`);
    if (b.type === 'text') {
      if (typeof b.text !== 'string') throw bad(`${bat}.text`, `\`${bat}.text\` must be a string`);
      texts.push(b.text);
    } else if (b.type === 'tool_use') {
      if (typeof b.id !== 'string' || typeof b.name !== 'string') throw bad(bat, `\`${bat}\`: a tool_use block needs \`id\` and \`name\` (strings)`);
      calls.push({ id: b.id, type: 'function', function: { name: b.name, arguments: JSON.stringify(b.input ?? {}) } });
    } else if (b.type !== 'thinking' && b.type !== 'redacted_thinking') {
      throw bad(`${bat}.type`, `\`${bat}.type\` ${JSON.stringify(b.type)} is not served in an assistant turn; text, tool_use and thinking (left out) are`);
    }
  }
  // A turn of thinking alone: nothing a chat model takes back.
  if (texts.length === 0 && calls.length === 0) return;
  const m: JsonObject = { role: 'assistant', content: texts.length === 0 ? null : texts.join(JOIN) };
  if (calls.length > 0) m.tool_calls = calls;
  out.push(m);
}

/**
 * Claude Code's attribution line, which it puts first in the system prompt: billing metadata for
 * Anthropic, with a hash that changes on every request. Sent on, it would sit at the head of
 * every prompt and defeat the engines' prefix caches (vLLM, llama.cpp and Ollama leave it out of
 * their own Anthropic endpoints for that reason); no model needs it.
 */
const BILLING = 'x-anthropic-billing-header:';

/** A system text without Claude Code's attribution line. */
function withoutBilling(text: string): string {
  if (!text.startsWith(BILLING)) return text;
  const nl = text.indexOf('\n');
  return nl === -1 ? '' : text.slice(nl + 1);
}

/** The system prompt: a string, or text blocks. */
function systemText(v: unknown, at: string): string {
  if (typeof v === 'string') return withoutBilling(v);
  if (!Array.isArray(v)) throw bad(at, `\`${at}\` must be a string or an array of text blocks`);
  const texts: string[] = [];
  v.forEach((b, i) => {
    if (!isObj(b) || b.type !== 'text' || typeof b.text !== 'string') throw bad(`${at}[${i}]`, `\`${at}[${i}]\` must be a text block ({"type": "text", "text": …})`);
    const t = withoutBilling(b.text);
    if (t !== '') texts.push(t);
  });
  return texts.join(JOIN);
}

function messages(v: unknown, system: unknown): JsonObject[] {
  if (!Array.isArray(v) || v.length === 0) throw bad('messages', '`messages` must be a non-empty array');
  const out: JsonObject[] = [];
  if (given(system)) {
    const s = systemText(system, 'system');
    if (s !== '') out.push({ role: 'system', content: s });
  }
  for (let i = 0; i < v.length; i++) {
    const m = v[i] as unknown;
    const at = `messages[${i}]`;
    if (!isObj(m)) throw bad(at, `\`${at}\` must be an object`);
    if (m.role === 'user') userTurn(m.content, `${at}.content`, out);
    else if (m.role === 'assistant') assistantTurn(m.content, `${at}.content`, out);
    else if (m.role === 'system') out.push({ role: 'system', content: systemText(m.content, `${at}.content`) });
    else throw bad(`${at}.role`, `\`${at}.role\` must be user or assistant (or system)`);
  }
  return out;
}

/** Custom tools as chat function tools; Anthropic's own tools (web search, code execution, bash…) run on its side. */
function tools(v: unknown): JsonObject[] {
  if (!given(v)) return [];
  if (!Array.isArray(v)) throw bad('tools', '`tools` must be an array');
  return v.map((t, i) => {
    const at = `tools[${i}]`;
    if (!isObj(t)) throw bad(at, `\`${at}\` must be an object`);
    if (given(t.type) && t.type !== 'custom') {
      throw bad(`${at}.type`, `\`${at}.type\` ${JSON.stringify(t.type)} is one of Anthropic's own tools, which run on its side; only custom tools ({name, description, input_schema}) are served`);
    }
    if (typeof t.name !== 'string' || t.name === '') throw bad(`${at}.name`, `\`${at}.name\` must be a non-empty string`);
    if (given(t.description) && typeof t.description !== 'string') throw bad(`${at}.description`, `\`${at}.description\` must be a string`);
    if (!isObj(t.input_schema)) throw bad(`${at}.input_schema`, `\`${at}.input_schema\` must be a JSON schema object`);
    if (given(t.strict) && typeof t.strict !== 'boolean') throw bad(`${at}.strict`, `\`${at}.strict\` must be a boolean`);
    const fn: JsonObject = { name: t.name };
    if (typeof t.description === 'string') fn.description = t.description;
    fn.parameters = t.input_schema;
    if (typeof t.strict === 'boolean') fn.strict = t.strict;
    return { type: 'function', function: fn };
  });
}

const CHOICE_SHAPES = '`tool_choice` must be {"type": "auto"}, {"type": "any"}, {"type": "tool", "name": …} or {"type": "none"}';

/** tool_choice as chat's, with disable_parallel_tool_use as parallel_tool_calls: false. */
function toolChoice(v: unknown, chat: JsonObject, hasTools: boolean): void {
  if (!given(v)) return;
  if (!isObj(v)) throw bad('tool_choice', CHOICE_SHAPES);
  const dp = v.disable_parallel_tool_use;
  if (given(dp) && typeof dp !== 'boolean') throw bad('tool_choice.disable_parallel_tool_use', '`tool_choice.disable_parallel_tool_use` must be a boolean');
  switch (v.type) {
    case 'auto':
      chat.tool_choice = 'auto';
      break;
    case 'none':
      chat.tool_choice = 'none';
      break;
    case 'any':
      if (!hasTools) throw bad('tool_choice', '`tool_choice` {"type": "any"} needs `tools` to call');
      chat.tool_choice = 'required';
      break;
    case 'tool':
      if (typeof v.name !== 'string') throw bad('tool_choice.name', '`tool_choice.name` must be a string');
      chat.tool_choice = { type: 'function', function: { name: v.name } };
      break;
    default:
      throw bad('tool_choice.type', CHOICE_SHAPES);
  }
  if (dp === true && v.type !== 'none') chat.parallel_tool_calls = false;
}

function num(body: JsonObject, key: string): number | undefined {
  const v = body[key];
  if (!given(v)) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(key, `\`${key}\` must be a number`);
  return v;
}

/**
 * A Messages request as a chat request. `counting`: a count_tokens request, which has no
 * max_tokens and is never streamed.
 */
export function fromMessagesRequest(body: unknown, limits: Limits, counting = false): TranslatedMessages {
  if (!isObj(body)) throw new FabricError('invalid_request', 'the request body must be a JSON object');
  for (const k of Object.keys(body)) {
    if (!given(body[k]) || body[k] === false) continue;
    const refused = own(REFUSED, k);
    if (refused !== undefined) throw bad(k, `\`${k}\` is not accepted: ${refused}`);
    const chatOnly = own(CHAT_ONLY, k);
    if (chatOnly !== undefined) throw bad(k, `\`${k}\` is a chat completions field, not one of the Messages API: ${chatOnly}`);
  }
  const chat: JsonObject = { model: body.model, messages: messages(body.messages, body.system) };
  const turns = chat.messages as { role?: unknown }[];
  if (turns.length === 0) throw bad('messages', '`messages` has nothing for a model to answer: its turns are empty or hold only thinking');
  // A last assistant turn is a prefill: the answer continues it (Anthropic's meaning).
  if (turns[turns.length - 1]!.role === 'assistant') (chat as { [CONTINUE_FINAL_TURN]?: true })[CONTINUE_FINAL_TURN] = true;
  if (!counting) {
    const max = body.max_tokens;
    if (!given(max)) throw bad('max_tokens', '`max_tokens` is required: the most tokens the answer may have');
    // Its bounds are chat's, checked under the same name (validate.ts): at most gateway.limits.max_tokens.
    if (typeof max !== 'number' || !Number.isInteger(max) || max < 1) throw bad('max_tokens', '`max_tokens` must be a positive integer');
    if (max > limits.maxTokens) throw bad('max_tokens', `\`max_tokens\` is ${max}; this gateway allows at most ${limits.maxTokens}`, 'parameter_out_of_range');
    chat.max_tokens = max;
    if (body.stream === true) {
      chat.stream = true;
      // The usage goes into message_delta, whether the client asked or not.
      chat.stream_options = { include_usage: true };
    } else if (given(body.stream) && body.stream !== false) throw bad('stream', '`stream` must be a boolean');
  }
  const stop = body.stop_sequences;
  let stopSequences: string[] = [];
  if (given(stop)) {
    if (!Array.isArray(stop) || !stop.every((s) => typeof s === 'string')) throw bad('stop_sequences', '`stop_sequences` must be an array of strings');
    stopSequences = stop.filter((s) => s !== '');
    if (stopSequences.length > 0) chat.stop = stopSequences;
  }
  const temperature = num(body, 'temperature');
  if (temperature !== undefined) chat.temperature = temperature;
  const topP = num(body, 'top_p');
  if (topP !== undefined) chat.top_p = topP;
  const topK = body.top_k;
  // Not in OpenAI's API: vLLM, llama.cpp and Ollama (options.top_k) take it; OpenAI would refuse it.
  if (given(topK)) {
    if (typeof topK !== 'number' || !Number.isInteger(topK) || topK < 0) throw bad('top_k', '`top_k` must be a non-negative integer');
    chat.top_k = topK;
  }
  const t = tools(body.tools);
  if (t.length > 0) chat.tools = t;
  toolChoice(body.tool_choice, chat, t.length > 0);
  const md = body.metadata;
  if (given(md)) {
    if (!isObj(md)) throw bad('metadata', '`metadata` must be an object');
    if (given(md.user_id) && typeof md.user_id !== 'string') throw bad('metadata.user_id', '`metadata.user_id` must be a string');
    if (typeof md.user_id === 'string' && md.user_id !== '') chat.user = md.user_id;
  }
  const th = body.thinking;
  if (given(th) && !isObj(th)) throw bad('thinking', '`thinking` must be an object');
  const oc = body.output_config;
  if (given(oc)) {
    if (!isObj(oc)) throw bad('output_config', '`output_config` must be an object');
    const f = oc.format;
    if (given(f)) {
      if (!isObj(f) || f.type !== 'json_schema' || !isObj(f.schema)) throw bad('output_config.format', '`output_config.format` must be {"type": "json_schema", "schema": {…}}');
      chat.response_format = { type: 'json_schema', json_schema: { name: 'output', schema: f.schema, strict: true } };
    }
  }
  for (const k of Object.keys(body)) {
    // Unknown fields go on as they are, as chat requests' do (engines' own extensions: min_p,
    // repetition_penalty…), never over what the translation set.
    if (!MAPPED.has(k) && !IGNORED.has(k) && own(REFUSED, k) === undefined && own(CHAT_ONLY, k) === undefined && !(k in chat)) chat[k] = body[k];
  }
  return { chat, echo: { stopSequences, thinking: isObj(th) && (th.type === 'enabled' || th.type === 'adaptive') } };
}
