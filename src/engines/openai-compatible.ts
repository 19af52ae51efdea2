// The base every OpenAI-compatible server shares (vLLM, llama.cpp server, LM Studio, SGLang,
// OpenAI itself). Responses are completed to the official schema: engines leave out fields
// OpenAI always sends (vLLM before 0.10 omits message.refusal), and send null where the schema
// has no null (vLLM serialises every field: prompt_tokens_details, and since 0.10
// message.annotations, message.function_call, system_fingerprint).

import { parseEngineError } from './errors.ts';
import { Unsupported } from '../core/attempt-error.ts';
import { namedFunction, refuseToolChoiceKinds, toolsNamed } from './tool-choice.ts';
import { normalizeRerank, rerankUpstreamBody } from './rerank.ts';
import type { EngineKind } from '../config/types.ts';
import { CONTINUE_FINAL_TURN, type EngineAdapter, type JsonObject, type NormalizeContext, type Operation, type PrepareOptions, type PreparedRequest, type UpstreamErrorInfo } from './types.ts';

const PATHS: Record<Operation, string> = {
  chat: '/chat/completions',
  completions: '/completions',
  embeddings: '/embeddings',
  // vLLM, llama.cpp, Infinity and SGLang serve it under /v1 too (beside /rerank at the root).
  rerank: '/rerank',
  // Multipart uploads, sent by the gateway itself (src/engines/audio.ts), never prepared as JSON.
  transcriptions: '/audio/transcriptions',
  translations: '/audio/translations',
};

function isObj(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// Fields are dropped by setting them undefined, which JSON.stringify leaves out, rather than by
// `delete`: a delete turns the object into a slow dictionary and doubles the cost of writing the
// response out.
function fixUsage(u: unknown): void {
  if (!isObj(u)) return;
  if (u.prompt_tokens_details === null) u.prompt_tokens_details = undefined;
  if (u.completion_tokens_details === null) u.completion_tokens_details = undefined;
  if (typeof u.total_tokens !== 'number' && typeof u.prompt_tokens === 'number') {
    u.total_tokens = u.prompt_tokens + (typeof u.completion_tokens === 'number' ? u.completion_tokens : 0);
  }
}

const CHAT_FINISH = new Set(['stop', 'length', 'tool_calls', 'content_filter', 'function_call']);
const TEXT_FINISH = new Set(['stop', 'length', 'content_filter']);

function normalizeChat(j: JsonObject, ctx: NormalizeContext): JsonObject | undefined {
  if (!Array.isArray(j.choices)) return undefined;
  for (const c of j.choices) {
    if (!isObj(c) || !isObj(c.message)) return undefined;
    const m = c.message;
    if (m.role === undefined) m.role = 'assistant';
    if (m.content === undefined) m.content = null;
    if (m.refusal === undefined) m.refusal = null;
    if (m.tool_calls === null || (Array.isArray(m.tool_calls) && m.tool_calls.length === 0)) m.tool_calls = undefined;
    if (m.annotations === null) m.annotations = undefined;
    if (m.function_call === null) m.function_call = undefined;
    if (c.logprobs === undefined) c.logprobs = null;
    // vLLM's ChatCompletionLogProbs has content only; OpenAI's schema requires refusal beside it.
    else if (isObj(c.logprobs) && c.logprobs.refusal === undefined) c.logprobs.refusal = null;
    if (typeof c.finish_reason !== 'string' || !CHAT_FINISH.has(c.finish_reason)) {
      c.finish_reason = Array.isArray(m.tool_calls) ? 'tool_calls' : c.finish_reason === 'abort' ? 'length' : 'stop';
    }
    if (typeof c.index !== 'number') c.index = 0;
  }
  fillEnvelope(j, 'chat.completion', 'chatcmpl-', ctx);
  fixUsage(j.usage);
  return j;
}

function normalizeText(j: JsonObject, ctx: NormalizeContext): JsonObject | undefined {
  if (!Array.isArray(j.choices)) return undefined;
  for (const c of j.choices) {
    if (!isObj(c) || typeof c.text !== 'string') return undefined;
    if (c.logprobs === undefined) c.logprobs = null;
    if (typeof c.finish_reason !== 'string' || !TEXT_FINISH.has(c.finish_reason)) c.finish_reason = c.finish_reason === 'length' ? 'length' : 'stop';
    if (typeof c.index !== 'number') c.index = 0;
  }
  fillEnvelope(j, 'text_completion', 'cmpl-', ctx);
  fixUsage(j.usage);
  return j;
}

function normalizeEmbeddings(j: JsonObject, ctx: NormalizeContext): JsonObject | undefined {
  if (!Array.isArray(j.data)) return undefined;
  for (let i = 0; i < j.data.length; i++) {
    const d = j.data[i] as unknown;
    if (!isObj(d) || (!Array.isArray(d.embedding) && typeof d.embedding !== 'string')) return undefined;
    if (d.object === undefined) d.object = 'embedding';
    if (typeof d.index !== 'number') d.index = i;
  }
  j.object = 'list';
  if (typeof j.model !== 'string') j.model = ctx.model;
  if (!isObj(j.usage)) j.usage = { prompt_tokens: 0, total_tokens: 0 };
  else {
    const u = j.usage;
    if (typeof u.prompt_tokens !== 'number') u.prompt_tokens = 0;
    if (typeof u.total_tokens !== 'number') u.total_tokens = u.prompt_tokens;
    u.completion_tokens = undefined;
    if (u.prompt_tokens_details === null) u.prompt_tokens_details = undefined;
  }
  return j;
}

function fillEnvelope(j: JsonObject, object: string, idPrefix: string, ctx: NormalizeContext): void {
  if (typeof j.id !== 'string' || j.id === '') j.id = idPrefix + ctx.requestId;
  j.object = object;
  if (typeof j.created !== 'number') j.created = ctx.created;
  if (typeof j.model !== 'string') j.model = ctx.model;
  if (j.system_fingerprint === null) j.system_fingerprint = undefined;
}

/**
 * What llama-server refuses, with a 500 as if it had failed (utils.hpp
 * oaicompat_chat_params_parse / oaicompat_completion_params_parse: "Only one completion choice
 * is allowed", "Only no echo is supported", "Unsupported param: best_of"): the backend is passed
 * over instead, not blamed, and the request is a 400 naming the field if no backend can take it.
 */
function refuseForLlamaCpp(body: JsonObject): void {
  refuseToolChoiceKinds(body, 'llama.cpp');
  if (body.n !== undefined && body.n !== null && body.n !== 1) {
    throw new Unsupported(`\`n\` is ${JSON.stringify(body.n)}, but llama.cpp backends return one choice per request; send n requests instead`, 'n');
  }
  if (body.echo === true) throw new Unsupported('llama.cpp backends do not echo the prompt', 'echo');
  for (const p of ['best_of', 'suffix'] as const) {
    if (body[p] !== undefined && body[p] !== null) throw new Unsupported(`llama.cpp backends do not take \`${p}\``, p);
  }
}

/**
 * llama-server reads `tool_choice` as a string ("auto", "none", "required"): a named function
 * (an object) fails that read and silently becomes "auto" (server-common.cpp json_value), so
 * the model may answer in prose. The nearest it can force is "required" of that tool alone,
 * which its grammar holds to a call of it. The client's body is left as it was, for a fallback.
 */
function namedChoiceForLlamaCpp(body: JsonObject): JsonObject {
  const name = namedFunction(body.tool_choice);
  const tools = name === undefined ? [] : toolsNamed(body.tools, name);
  return tools.length === 0 ? body : { ...body, tools, tool_choice: 'required' };
}

export class OpenAICompatibleEngine implements EngineAdapter {
  readonly kind: EngineKind;
  readonly streamFormat = 'sse' as const;

  constructor(kind: EngineKind) {
    this.kind = kind;
  }

  prepare(op: Operation, body: JsonObject, opts: PrepareOptions): PreparedRequest {
    if (op === 'rerank') return { path: PATHS.rerank, body: JSON.stringify(rerankUpstreamBody(body, opts.model)), injectedUsage: false };
    if (this.kind === 'llamacpp') refuseForLlamaCpp(body);
    body.model = opts.model;
    const injectedUsage = op !== 'embeddings' && body.stream === true && opts.wantStreamUsage && !opts.clientWantsUsage;
    if (injectedUsage) {
      const so = body.stream_options;
      body.stream_options = isObj(so) ? { ...so, include_usage: true } : { include_usage: true };
    } else if (body.stream !== true && body.stream_options !== undefined) {
      // Only an empty or null one gets here unstreamed (validate.ts refuses the rest); a
      // stricter server than vLLM (OpenAI) would refuse even that, so it goes no further.
      delete body.stream_options;
    }
    let sent = this.kind === 'llamacpp' && op === 'chat' ? namedChoiceForLlamaCpp(body) : body;
    // A prefill (Anthropic's last assistant turn) is continued: vLLM must be told (its chat
    // template would open a new turn), as a field of this request only.
    if (this.kind === 'vllm' && (body as { [CONTINUE_FINAL_TURN]?: true })[CONTINUE_FINAL_TURN] === true) sent = { ...sent, continue_final_message: true, add_generation_prompt: false };
    return { path: PATHS[op], body: JSON.stringify(sent), injectedUsage, logprobsRefusal: op === 'chat' && body.stream === true && body.logprobs === true };
  }

  normalize(op: Operation, json: unknown, body: JsonObject, ctx: NormalizeContext): JsonObject | undefined {
    // SGLang's rerank answer is a bare array.
    if (op === 'rerank') return normalizeRerank(json, body, ctx);
    if (!isObj(json)) return undefined;
    if (op === 'chat') return normalizeChat(json, ctx);
    if (op === 'completions') return normalizeText(json, ctx);
    return normalizeEmbeddings(json, ctx);
  }

  parseError(status: number, text: string): UpstreamErrorInfo {
    return parseEngineError(status, text);
  }
}
