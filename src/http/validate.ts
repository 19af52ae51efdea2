// Request validation: a clear 400 naming the field, before anything is sent upstream.
// Nothing in a request may choose where it goes beyond the model name, and parameters
// that multiply cost (n, best_of, max_tokens) are bounded.

import type { Limits } from '../config/types.ts';
import { FabricError } from '../core/errors.ts';
import type { JsonObject, Operation } from '../engines/types.ts';
import { toolsNamed } from '../engines/tool-choice.ts';
import { promptCount } from '../accounting/account.ts';

/**
 * Keys that would let a client redirect a backend or swap its credentials: LiteLLM honours
 * these per request, and a LiteLLM (or a server like it) may sit behind a backend URL. Compared
 * without case, `_` or `-`, so `apiBase`, `baseURL` and `API-BASE` are refused too.
 */
const FORBIDDEN = [
  'api_base', 'base_url', 'api_url', 'api_key', 'api_version', 'azure_endpoint', 'azure_ad_token', 'custom_llm_provider', 'litellm_params',
  'user_config', 'extra_headers', 'aws_access_key_id', 'aws_secret_access_key', 'aws_session_token', 'aws_region_name', 'vertex_credentials',
  'vertex_project', 'vertex_location',
];
const fold = (k: string): string => k.toLowerCase().replace(/[-_]/g, '');
const FORBIDDEN_SET = new Set(FORBIDDEN.map(fold));
/**
 * Any of them as a quoted name anywhere in the text, in any case and with `_`, `-` or nothing
 * between its words: one regex pass, ten times faster than a substring search per name.
 */
const FORBIDDEN_QUOTED = new RegExp(`"(?:${FORBIDDEN.map((n) => n.split('_').join('[-_]?')).join('|')})"`, 'i');
/**
 * Deepest nesting of objects and arrays accepted. Tool schemas reach a few tens of levels;
 * thousands would overflow the stack of whatever walks the body next (serializing it for the
 * backend among others), which must never be taken for the backend's failure.
 */
export const MAX_DEPTH = 128;
const MAX_MODEL_NAME = 512;
const ROLES = new Set(['system', 'developer', 'user', 'assistant', 'tool', 'function']);

/** Sampling parameters and their ranges in OpenAI's API (a request fails alike here and there). */
const SAMPLING: readonly { key: string; lo: number; hi: number }[] = [
  { key: 'temperature', lo: 0, hi: 2 }, { key: 'top_p', lo: 0, hi: 1 },
  { key: 'presence_penalty', lo: -2, hi: 2 }, { key: 'frequency_penalty', lo: -2, hi: 2 },
];

export function isObj(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Subtrees that describe data rather than configure the request: a tool may well have a `base_url`
 * parameter. `messages`: a body of Anthropic's Messages API, before its translation, whose own
 * such subtrees are data there only (in a chat request they are fields sent on as they are).
 */
function isSchemaSubtree(path: string, messages: boolean): boolean {
  return /^tools\[\d+\]\.(?:function\.)?parameters$/.test(path) || path === 'response_format.json_schema.schema' || /^functions\[\d+\]\.parameters$/.test(path)
    // The Responses API's: function tools' parameters at the tool's top level, text.format's schema.
    || path === 'text.format.schema'
    // vLLM's structured output: a JSON schema, by either of its names.
    || path === 'guided_json' || path === 'structured_outputs.json'
    // Anthropic's Messages API: a tool's input_schema, output_config.format's schema, and the
    // input of a tool call an assistant turn made (the chat request carries it as a JSON string).
    || (messages && (/^tools\[\d+\]\.input_schema$/.test(path) || path === 'output_config.format.schema' || /^messages\[\d+\]\.content\[\d+\]\.input$/.test(path)));
}

/**
 * How deeply the JSON text nests, or MAX_DEPTH + 1 once past it: strings are skipped with
 * indexOf, so a chat body costs its few structural characters.
 */
function depthOf(raw: string): number {
  let depth = 0;
  let max = 0;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 0x22) {
      // To the closing quote: one not preceded by an odd run of backslashes.
      for (;;) {
        i = raw.indexOf('"', i + 1);
        if (i === -1) return max;
        let b = 0;
        while (raw.charCodeAt(i - 1 - b) === 0x5c) b++;
        if ((b & 1) === 0) break;
      }
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > max && (max = depth) > MAX_DEPTH) return max;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return max;
}

function findForbidden(v: unknown, path: string, messages: boolean): string | undefined {
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const f = findForbidden(v[i], `${path}[${i}]`, messages);
      if (f !== undefined) return f;
    }
    return undefined;
  }
  if (!isObj(v) || isSchemaSubtree(path, messages)) return undefined;
  for (const k of Object.keys(v)) {
    const p = path === '' ? k : `${path}.${k}`;
    if (FORBIDDEN_SET.has(fold(k))) return p;
    const f = findForbidden(v[k], p, messages);
    if (f !== undefined) return f;
  }
  return undefined;
}

/** Whether a field name is one that would choose where a request goes or what credentials it uses (any case, `_` or `-`). */
export function isForbiddenName(k: string): boolean {
  return FORBIDDEN_SET.has(fold(k));
}

export function bad(param: string, message: string, code: 'invalid_request' | 'parameter_out_of_range' = 'invalid_request'): FabricError {
  return new FabricError(code, message, { param });
}

function boundedInt(body: JsonObject, key: string, max: number): void {
  const v = body[key];
  if (v === undefined || v === null) return;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw bad(key, `\`${key}\` must be a positive integer`);
  if (v > max) throw bad(key, `\`${key}\` is ${v}; this gateway allows at most ${max}`, 'parameter_out_of_range');
}

/** A field that would choose a backend or its credentials, anywhere in the body: a 400 naming it. `messages`: see isSchemaSubtree. */
export function checkForbidden(body: JsonObject, raw: string, messages = false): void {
  // A cheap scan of the raw text first: the deep walk runs only if a forbidden name appears at all.
  // A name spelled with escapes ("api\u005fbase") only shows after parsing: text with any
  // \u escape gets the walk too.
  if (FORBIDDEN_QUOTED.test(raw) || raw.includes('\\u')) {
    const at = findForbidden(body, '', messages);
    if (at !== undefined) throw new FabricError('forbidden_parameter', `\`${at}\` is not accepted: the gateway chooses backends and credentials, requests choose only the model`, { param: at });
  }
}

/**
 * A tool_choice that forces a call needs the tool it forces: "required" some tools, a named
 * function one of them by that name (OpenAI and vLLM refuse both). Engines that cannot be told
 * would answer in prose, as if the call had been made. "auto" and "none" ask for nothing; other
 * objects (OpenAI's allowed_tools, custom tools) go on, for the backend to take or refuse.
 */
function checkToolChoice(body: JsonObject): void {
  const choice = body.tool_choice;
  if (choice === undefined || choice === null || choice === 'auto' || choice === 'none') return;
  const tools = Array.isArray(body.tools) ? body.tools : [];
  if (choice === 'required') {
    if (tools.length === 0) throw bad('tool_choice', '`tool_choice` "required" needs `tools` to call');
    return;
  }
  const shapes = '`tool_choice` must be "none", "auto", "required", {"type": "function", "function": {"name": …}}, {"type": "allowed_tools", "allowed_tools": {…}} or {"type": "custom", "custom": {"name": …}}';
  if (!isObj(choice)) throw bad('tool_choice', shapes);
  if (choice.type === 'allowed_tools') {
    const a = choice.allowed_tools;
    if (!isObj(a) || (a.mode !== 'auto' && a.mode !== 'required') || !Array.isArray(a.tools)) throw bad('tool_choice', '`tool_choice.allowed_tools` needs `mode` ("auto" or "required") and `tools` (a list)');
    return;
  }
  if (choice.type === 'custom') {
    if (!isObj(choice.custom) || typeof choice.custom.name !== 'string') throw bad('tool_choice', '`tool_choice.custom` needs a `name`');
    return;
  }
  if (choice.type !== 'function' || !isObj(choice.function) || typeof choice.function.name !== 'string') throw bad('tool_choice', shapes);
  const name = choice.function.name;
  if (toolsNamed(tools, name).length === 0) {
    throw bad('tool_choice', `\`tool_choice\` names the function ${JSON.stringify(name).slice(0, 80)}, which is not among \`tools\``);
  }
}

/**
 * A rerank request as Jina's, Cohere's and vLLM's APIs take it: a query and documents (strings, or
 * Cohere's {text} objects, made strings here: llama.cpp takes strings only), top_n (0: all, as
 * vLLM reads it) and return_documents.
 */
function validateRerank(body: JsonObject, limits: Limits): void {
  if (typeof body.query !== 'string' || body.query === '') throw bad('query', '`query` must be a non-empty string');
  const d = body.documents;
  if (!Array.isArray(d) || d.length === 0) throw bad('documents', '`documents` must be a non-empty array of strings');
  if (d.length > limits.maxDocuments) throw bad('documents', `\`documents\` holds ${d.length} documents; at most ${limits.maxDocuments} are accepted in one request (gateway.limits.max_documents)`);
  for (let i = 0; i < d.length; i++) {
    const doc = d[i] as unknown;
    if (typeof doc === 'string') continue;
    if (isObj(doc) && typeof doc.text === 'string') d[i] = doc.text;
    else throw bad(`documents[${i}]`, `\`documents[${i}]\` must be a string or an object with a \`text\` string`);
  }
  const n = body.top_n;
  if (n !== undefined && n !== null && (typeof n !== 'number' || !Number.isInteger(n) || n < 0)) throw bad('top_n', '`top_n` must be a non-negative integer (0 or none: every document)');
  const rd = body.return_documents;
  if (rd !== undefined && rd !== null && typeof rd !== 'boolean') throw bad('return_documents', '`return_documents` must be a boolean');
}

function checkDepth(raw: string): void {
  if (depthOf(raw) > MAX_DEPTH) throw new FabricError('invalid_request', `the request body nests objects and arrays more than ${MAX_DEPTH} levels deep`);
}

/**
 * A body in another API's dialect (Responses, Messages), before it is translated: its nesting,
 * then the fields that would choose a backend, refused in the client's own body. The walks that
 * follow (the forbidden names', the translation's, JSON.stringify's) recurse: a body nested many
 * thousands deep would overflow the stack there, a 500 for what is the client's 400.
 */
export function checkDialectBody(body: unknown, raw: string, messages: boolean): void {
  checkDepth(raw);
  if (isObj(body)) checkForbidden(body, raw, messages);
}

export function validateRequest(op: Operation, body: unknown, raw: string, limits: Limits): JsonObject {
  if (!isObj(body)) throw new FabricError('invalid_request', 'the request body must be a JSON object');
  checkDepth(raw);
  if (typeof body.model !== 'string' || body.model === '') throw bad('model', 'you must provide a model parameter (a non-empty string)');
  if (body.model.length > MAX_MODEL_NAME) throw bad('model', `the model name is ${body.model.length} characters long; at most ${MAX_MODEL_NAME} are accepted`);
  checkForbidden(body, raw);
  if (body.stream !== undefined && body.stream !== null && typeof body.stream !== 'boolean') throw bad('stream', '`stream` must be a boolean');
  if (body.stream_options !== undefined && body.stream_options !== null) {
    if (!isObj(body.stream_options)) throw bad('stream_options', '`stream_options` must be an object');
    // OpenAI and vLLM both refuse it on an unstreamed request (vLLM: a non-empty one); Ollama
    // ignores it. One answer whatever the backend, before any is tried.
    if (body.stream !== true && Object.keys(body.stream_options).length > 0) throw bad('stream_options', '`stream_options` is only allowed when `stream` is true');
  }
  boundedInt(body, 'max_tokens', limits.maxTokens);
  boundedInt(body, 'max_completion_tokens', limits.maxTokens);
  boundedInt(body, 'n', limits.maxN);
  // Indexed, and objects rather than tuples: a for…of and an array destructuring each allocate
  // an iterator on every request where this function is not optimized by TurboFan (bench --alloc).
  for (let i = 0; i < SAMPLING.length; i++) {
    const { key, lo, hi } = SAMPLING[i]!;
    const v = body[key];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(key, `\`${key}\` must be a number`);
    if (v < lo || v > hi) throw bad(key, `\`${key}\` is ${v}; it must be between ${lo} and ${hi}`);
  }
  if (op === 'chat') {
    // OpenAI's rule (vLLM's check_logprobs too; Ollama would ignore top_logprobs alone): one
    // answer whatever the backend.
    if (body.logprobs !== undefined && body.logprobs !== null && typeof body.logprobs !== 'boolean') throw bad('logprobs', '`logprobs` must be a boolean');
    const top = body.top_logprobs;
    if (top !== undefined && top !== null) {
      if (typeof top !== 'number' || !Number.isInteger(top) || top < 0 || top > 20) throw bad('top_logprobs', '`top_logprobs` must be an integer from 0 to 20');
      if (top > 0 && body.logprobs !== true) throw bad('top_logprobs', '`top_logprobs` needs `logprobs` set to true');
    }
    const m = body.messages;
    if (!Array.isArray(m) || m.length === 0) throw bad('messages', '`messages` must be a non-empty array');
    for (let i = 0; i < m.length; i++) {
      const msg = m[i] as unknown;
      if (!isObj(msg)) throw bad(`messages[${i}]`, `\`messages[${i}]\` must be an object`);
      if (typeof msg.role !== 'string' || !ROLES.has(msg.role)) {
        throw bad(`messages[${i}].role`, `\`messages[${i}].role\` must be one of ${[...ROLES].join(', ')}`);
      }
      const c = msg.content;
      if (c !== undefined && c !== null && typeof c !== 'string' && !Array.isArray(c)) {
        throw bad(`messages[${i}].content`, `\`messages[${i}].content\` must be a string or an array of content parts`);
      }
      // Only an assistant turn (tool calls) may come without content, as OpenAI has it.
      if ((c === undefined || c === null) && msg.role !== 'assistant' && msg.role !== 'function') {
        throw bad(`messages[${i}].content`, `\`messages[${i}].content\` is required for a ${msg.role} message`);
      }
    }
    checkToolChoice(body);
  } else if (op === 'completions') {
    const p = body.prompt;
    const ok = typeof p === 'string' || (Array.isArray(p) && p.length > 0);
    if (!ok) throw bad('prompt', '`prompt` must be a string or a non-empty array');
    const prompts = promptCount(p);
    if (prompts > limits.maxPrompts) throw bad('prompt', `\`prompt\` holds ${prompts} prompts; at most ${limits.maxPrompts} are accepted in one request (gateway.limits.max_prompts)`);
    boundedInt(body, 'best_of', limits.maxBestOf);
    // Legacy logprobs: how many alternatives per position. OpenAI takes up to 5 (and refuses
    // more itself); vLLM (max_logprobs) and Ollama (top_logprobs) take up to 20.
    // `false` (the chat form) means none, as left out: dropped, since vLLM would read it as 0,
    // which asks for the sampled token's.
    const lp = body.logprobs;
    if (lp === false) delete body.logprobs;
    else if (lp !== undefined && lp !== null && (typeof lp !== 'number' || !Number.isInteger(lp) || lp < 0 || lp > 20)) {
      throw bad('logprobs', `\`logprobs\` must be an integer from 0 to 20 (the number of most likely tokens to return at each position)${lp === true ? '; `true` is the chat completions form' : ''}`);
    }
  } else if (op === 'rerank') {
    validateRerank(body, limits);
  } else {
    const input = body.input;
    const ok = (typeof input === 'string' && input !== '') || (Array.isArray(input) && input.length > 0);
    if (!ok) throw bad('input', '`input` must be a non-empty string or a non-empty array');
    const ef = body.encoding_format;
    if (ef !== undefined && ef !== 'float' && ef !== 'base64') throw bad('encoding_format', '`encoding_format` must be "float" or "base64"');
    const d = body.dimensions;
    if (d !== undefined && (typeof d !== 'number' || !Number.isInteger(d) || d < 1)) throw bad('dimensions', '`dimensions` must be a positive integer');
  }
  return body;
}
