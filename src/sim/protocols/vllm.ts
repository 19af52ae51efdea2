// vLLM's OpenAI-compatible server as of the 0.11 line: `{"error":{message,type,param,code}}`
// errors (0.10.1+; 0.8/0.9 sent them flat with `"object":"error"`), the 0.10+ context-length
// wording, non-streamed bodies serialised in full (`model_dump`), `stop_reason` beside
// `finish_reason`, `stream_options` with continuous usage, and the `vllm:` Prometheus metrics.

import { Histogram } from '../../metrics/registry.ts';
import { countWords, simLogprobs, tokenIds } from '../generate.ts';
import type { SimForm } from '../engine.ts';
import { replyShape } from '../structured.ts';
import { choiceText, hexId, infoRoute, isRecord, isSimError, jsonReply, nowSeconds, servedModel, stopStrings, textReply } from '../protocol.ts';
import type { EngineView, InferenceRoute, Plan, PlannedChoice, ProtocolImpl, Reply, Route, ServedModel, SimError } from '../protocol.ts';
import {
  byRelevance, chatItems, embeddingPlan, encodeVector, largestInput, largestPair, largestPrompt, messageFields, parseChatRequest,
  parseCompletionRequest, parseEmbeddingsRequest, promptTextItems, rankPlan, sseStream, textPlan, tokenDelta, wantsStream, audioPlan, audioSegments,
} from './oai.ts';
import { SSE_DONE, sseEvent } from '../sse.ts';

export const VLLM_VERSION = '0.11.0';

/**
 * A generation that fails mid-stream: the stream generators catch the exception and send
 * create_streaming_error_response(str(e)) (its defaults: BadRequestError, 400), then [DONE].
 */
const STREAM_FAILURE = sseEvent({
  error: { message: 'EngineCore encountered an issue. See stack trace (above) for the root cause.', type: 'BadRequestError', param: null, code: 400 },
}) + SSE_DONE;

type Endpoint = 'chat' | 'completions' | 'embeddings' | 'transcriptions' | 'translations' | 'rerank' | 'score';

const STATUS_TYPES: Record<number, string> = {
  400: 'BadRequestError',
  404: 'NotFoundError',
  429: 'RateLimitError',
  500: 'InternalServerError',
  501: 'NotImplementedError',
  503: 'ServiceUnavailableError',
};

/** protocol.py ErrorResponse(error=ErrorInfo(message, type, param, code)), since 0.10.1. */
function vllmError(status: number, message: string, type = STATUS_TYPES[status] ?? 'InternalServerError', param: string | null = null): Reply {
  return jsonReply(status, { error: { message, type, param, code: status } });
}

/**
 * serving_engine.py `_validate_input` (0.10+). The chat route reports preprocessing errors as
 * f"{e} {e.__cause__}" (serving_chat.py), hence the trailing " None"; completions pass str(e).
 */
function contextMessage(endpoint: Endpoint, ctx: number, prompt: number, max: number | undefined): string {
  // Pooling requests name their operation: a ScoreRequest "score", a RerankRequest falls to the default.
  if (endpoint === 'embeddings' || endpoint === 'rerank' || endpoint === 'score') {
    const operation = endpoint === 'score' ? 'score' : 'embedding generation';
    return `This model's maximum context length is ${ctx} tokens. However, you requested ${prompt} tokens in the input for ${operation}. Please reduce the length of the input.`;
  }
  const message = max !== undefined && prompt < ctx
    ? `'max_tokens' or 'max_completion_tokens' is too large: ${max}. This model's maximum context length is ${ctx} tokens and your request has ${prompt} input tokens (${max} > ${ctx} - ${prompt}).`
    : `This model's maximum context length is ${ctx} tokens. However, your request has ${prompt} input tokens. Please reduce the length of the input messages.`;
  return endpoint === 'chat' ? `${message} None` : message;
}

function renderError(view: EngineView, endpoint: Endpoint, e: SimError): Reply {
  switch (e.kind) {
    case 'bad-request':
      return vllmError(400, e.message ?? 'Bad Request', e.type, e.param ?? null);
    case 'unsupported':
      return vllmError(400, e.message ?? 'Unsupported request');
    case 'model-not-found':
      return vllmError(404, `The model \`${e.model ?? ''}\` does not exist.`);
    case 'context-length': {
      const ctx = e.contextWindow ?? view.contextWindow;
      return vllmError(400, contextMessage(endpoint, ctx, e.promptTokens ?? ctx + 1, e.maxTokens));
    }
    case 'overloaded':
      // vllm queues without limit: the engine never asks (engine.ts resolveTiming).
      throw new Error('vllm has no queue limit to refuse past');
    case 'rate-limit':
      return vllmError(429, 'Too Many Requests');
    case 'server-error': {
      const status = e.status ?? 500;
      return vllmError(status, status === 500 ? 'EngineCore encountered an issue. See stack trace (above) for the root cause.' : `HTTP ${status}`);
    }
  }
}

function usage(p: Plan, details: boolean): Record<string, unknown> {
  const u: Record<string, unknown> = {
    prompt_tokens: p.promptTokens,
    total_tokens: p.promptTokens + p.completionTokens,
    completion_tokens: p.completionTokens,
  };
  // Non-streamed responses serialise every field; streamed ones use exclude_unset.
  if (details) u.prompt_tokens_details = null;
  return u;
}

/**
 * protocol.py StreamOptions: include_usage defaults to true once stream_options is given;
 * utils.py should_include_usage: continuous usage only alongside it.
 */
function streamUsage(body: unknown): { include: boolean; continuous: boolean } {
  const so = isRecord(body) ? body.stream_options : undefined;
  if (!isRecord(so)) return { include: false, continuous: false };
  const include = so.include_usage === undefined || so.include_usage === true;
  return { include, continuous: include && so.continuous_usage_stats === true };
}

/** The usage a chunk carries under continuous_usage_stats: the choice's tokens so far. */
function runningUsage(p: Plan, completion: number): Record<string, number> {
  return { prompt_tokens: p.promptTokens, total_tokens: p.promptTokens + completion, completion_tokens: completion };
}

function withRunningUsage(p: Plan, chunk: Record<string, unknown>, completion: number): Record<string, unknown> {
  return p.extra.continuousUsage === true ? { ...chunk, usage: runningUsage(p, completion) } : chunk;
}

function checkContext(m: ServedModel, prompt: number, max: number | undefined): SimError | null {
  const ctx = m.contextWindow;
  if (prompt >= ctx || (max !== undefined && prompt + max > ctx)) return { kind: 'context-length', promptTokens: prompt, maxTokens: max, contextWindow: ctx };
  return null;
}

function checkMax(max: number | undefined): SimError | null {
  return max === 0 ? { kind: 'bad-request', message: 'max_tokens must be at least 1, got 0.' } : null;
}

/**
 * protocol.py validate_stream_options, on chat and completion requests: a stream_options that
 * Python finds true (a non-empty object) needs stream: true. It is a pydantic before-validator,
 * so it fails while the request is parsed, before the model is looked up, and FastAPI's
 * RequestValidationError handler answers it: type "Bad Request", pydantic's wording.
 */
/** A pydantic model validator's ValueError, as FastAPI's RequestValidationError handler answers it (trimmed: no input echo). */
function validationError(msg: string): SimError {
  return { kind: 'bad-request', type: 'Bad Request', message: `1 validation error:\n  {'type': 'value_error', 'loc': ('body',), 'msg': 'Value error, ${msg}'}` };
}

function checkStreamOptions(body: unknown): SimError | null {
  if (!isRecord(body)) return null;
  const so = body.stream_options;
  const given = so !== undefined && so !== null && !(isRecord(so) && Object.keys(so).length === 0);
  return given && body.stream !== true ? validationError('Stream options can only be defined when `stream=True`.') : null;
}

/**
 * protocol.py check_logprobs: the top_logprobs asked for (0 when only logprobs), undefined when
 * none, or the request validation error (answered as stream_options' is).
 */
function chatLogprobsAsked(body: unknown): number | SimError | undefined {
  if (!isRecord(body)) return undefined;
  const top = body.top_logprobs;
  if (typeof top === 'number' && top > 0 && body.logprobs !== true) return validationError('when using `top_logprobs`, `logprobs` must be set to true.');
  return body.logprobs === true ? (typeof top === 'number' && top > 0 ? top : 0) : undefined;
}

/**
 * The EOS token that ends a choice is generated too: vLLM counts it in completion_tokens
 * (len(output.token_ids); vllm-project/vllm#28185), though it adds no text.
 */
function withEos(p: Plan): Plan {
  for (const c of p.choices) if (endsOnEos(c)) p.completionTokens++;
  return p;
}

/** A choice that stopped by itself (not on a stop string, which ends it without an EOS token). */
function endsOnEos(c: PlannedChoice): boolean {
  return c.finish === 'stop' && c.stopSequence === undefined;
}

/** A legacy completion's `logprobs: N` (N ≥ 0), or undefined. */
function completionLogprobsAsked(body: unknown): number | undefined {
  return isRecord(body) && typeof body.logprobs === 'number' && body.logprobs >= 0 ? body.logprobs : undefined;
}

/** The EOS token as the model's tokenizer names it (Llama 3's, Qwen's, else SentencePiece's). */
function eosToken(model: string): string {
  return /llama-?3/i.test(model) ? '<|eot_id|>' : /qwen/i.test(model) ? '<|im_end|>' : '</s>';
}

/**
 * A choice's sampled tokens [from, to): its text's, then the EOS token when it ended on one. Logprobs are
 * per sampled token (serving_chat.py's _create_chat_logprobs walks output.token_ids), so the
 * EOS token has an entry though it adds no text.
 */
function sampled(p: Plan, c: PlannedChoice, from: number, to: number): string[] {
  const out = c.tokens.slice(from, Math.min(to, c.tokens.length));
  if (endsOnEos(c) && from <= c.tokens.length && to > c.tokens.length) out.push(eosToken(p.model));
  return out;
}

/** The engine's own limit (--max-logprobs, 20 by default), checked after the request's fields. */
const MAX_LOGPROBS = 20;
function checkMaxLogprobs(n: number | undefined): SimError | null {
  return n !== undefined && n > MAX_LOGPROBS
    ? { kind: 'bad-request', message: `Requested sample logprobs of ${n}, which is greater than max allowed: ${MAX_LOGPROBS}` }
    : null;
}

/**
 * protocol.py ChatCompletionLogProbs for a choice's sampled tokens [from, to): {content:
 * [{token, logprob, bytes, top_logprobs}]}, no refusal; null when the request asked for none.
 */
function chatLogprobs(p: Plan, c: PlannedChoice, from: number, to: number): Record<string, unknown> | null {
  const top = p.extra.topLogprobs;
  if (typeof top !== 'number') return null;
  return { content: simLogprobs(sampled(p, c, from, to), from, top).map((e) => ({ token: e.token, logprob: e.logprob, bytes: e.bytes, top_logprobs: e.top })) };
}

/**
 * protocol.py CompletionLogProbs for `logprobs: N`, for a choice's sampled tokens [from, to):
 * each place's top_logprobs holds the sampled token and the N most likely (so one entry when N
 * is 0); text_offset counts code points from the start of the choice's text (the EOS token's
 * is where the text ends).
 */
function completionLogprobs(p: Plan, c: PlannedChoice, from: number, to: number): Record<string, unknown> | null {
  const n = p.extra.logprobs;
  if (typeof n !== 'number') return null;
  const tokens = sampled(p, c, from, to);
  const end = from + tokens.length;
  const entries = simLogprobs(tokens, from, Math.max(1, n));
  const textOffset: number[] = [];
  let at = [...c.tokens.slice(0, from).join('')].length;
  for (let k = from; k < end; k++) {
    textOffset.push(at);
    if (k < c.tokens.length) at += [...c.tokens[k]!].length;
  }
  return {
    text_offset: textOffset,
    token_logprobs: entries.map((e) => e.logprob),
    tokens: entries.map((e) => e.token),
    top_logprobs: entries.map((e) => Object.fromEntries(e.top.map((t) => [t.token, t.logprob]))),
  };
}

/**
 * serving_chat.py: tool_choice "auto" (what protocol.py sets when a request sends tools and no
 * tool_choice) needs the server started with --enable-auto-tool-choice and a tool parser.
 * "required" and a named function are served either way (guided decoding).
 */
function checkAutoTools(view: EngineView, body: Record<string, unknown>): SimError | null {
  if (view.autoToolChoice || !Array.isArray(body.tools) || body.tools.length === 0) return null;
  // Defaulted only when absent: an explicit null is no tool choice.
  const choice = 'tool_choice' in body ? body.tool_choice : 'auto';
  return choice === 'auto' ? { kind: 'bad-request', message: '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set' } : null;
}

/** SamplingParams' own check; any n from 1 up is served. */
function checkN(n: number | undefined): SimError | null {
  return n !== undefined && n < 1 ? { kind: 'bad-request', message: `n must be at least 1, got ${n}.` } : null;
}

function chatRoute(view: EngineView): InferenceRoute {
  const chunk = (p: Plan, choices: unknown[]): Record<string, unknown> => ({
    id: p.id, object: 'chat.completion.chunk', created: p.created, model: p.model, choices,
  });
  const stream = sseStream({
    failure: () => STREAM_FAILURE,
    open: (p, c) => withRunningUsage(p, chunk(p, [{ index: c.index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]), 0),
    // A choice cut at max_tokens gets its finish reason on the chunk of its last token. One that
    // ends on EOS gets it on a chunk of its own, one step later: the EOS token detokenizes to
    // nothing, so serving_chat.py sends delta {"content": ""} with finish_reason "stop".
    token: (p, c, i) => {
      const last = i === c.tokens.length - 1 && c.finish !== 'stop';
      return withRunningUsage(p, chunk(p, [{
        index: c.index, delta: tokenDelta(c, i), logprobs: chatLogprobs(p, c, i, i + 1),
        finish_reason: last ? c.finish : null, ...(last ? { stop_reason: null } : {}),
      }]), i + 1);
    },
    finish: (p, c) => (c.finish === 'stop'
      ? withRunningUsage(p, chunk(p, [{
        index: c.index, delta: { content: '' }, logprobs: chatLogprobs(p, c, c.tokens.length, c.tokens.length + 1), finish_reason: 'stop', stop_reason: c.stopSequence ?? null,
      }]), c.tokens.length + 1)
      : undefined),
    usage: (p) => ({ ...chunk(p, []), usage: usage(p, false) }),
  });
  return {
    kind: 'inference',
    wantsStream,
    plan(body) {
      const invalid = checkStreamOptions(body);
      if (invalid) return invalid;
      const top = chatLogprobsAsked(body);
      if (typeof top === 'object') return top;
      const r = parseChatRequest(body);
      if (isSimError(r)) return r;
      const m = servedModel(view, r.model);
      if (m === undefined) return { kind: 'model-not-found', model: r.model };
      const bad = checkMax(r.maxTokens) ?? checkN(r.n) ?? checkMaxLogprobs(top) ?? checkAutoTools(view, body as Record<string, unknown>);
      if (bad) return bad;
      if (m.kind !== 'chat') return { kind: 'unsupported', message: 'The model does not support Chat Completions API' };
      const items = chatItems(r.text);
      const ctxErr = checkContext(m, largestPrompt(items), r.maxTokens);
      if (ctxErr) return ctxErr;
      const su = streamUsage(body);
      return withEos(textPlan({
        model: m.name, stream: r.stream, includeUsage: su.include, items, maxTokens: r.maxTokens, n: r.n, idPrefix: 'chatcmpl-',
        extra: { continuousUsage: su.continuous, topLogprobs: top }, shape: replyShape(body as Record<string, unknown>, r.text.seed, 'openai'),
        stop: stopStrings((body as Record<string, unknown>).stop),
      }));
    },
    error: (e) => renderError(view, 'chat', e),
    reply(p) {
      // JSONResponse(content=response.model_dump()): every field, null or not, in declaration order.
      return jsonReply(200, {
        id: p.id, object: 'chat.completion', created: p.created, model: p.model,
        choices: p.choices.map((c) => {
          const m = messageFields(c);
          return {
            index: c.index,
            message: {
              role: 'assistant', content: m.content, refusal: null, annotations: null, audio: null, function_call: null,
              tool_calls: m.tool_calls ?? [], reasoning_content: null,
            },
            // The stop string that ended the reply, as vLLM names it (null when it ended on EOS or its limit).
            logprobs: chatLogprobs(p, c, 0, Infinity), finish_reason: c.finish, stop_reason: c.stopSequence ?? null, token_ids: null,
          };
        }),
        service_tier: null,
        system_fingerprint: null,
        usage: usage(p, true),
        prompt_logprobs: null,
        prompt_token_ids: null,
        kv_transfer_params: null,
      });
    },
    stream,
  };
}

function completionsRoute(view: EngineView): InferenceRoute {
  const chunk = (p: Plan, choices: unknown[]): Record<string, unknown> => ({
    id: p.id, object: 'text_completion', created: p.created, model: p.model, choices,
  });
  const stream = sseStream({
    failure: () => STREAM_FAILURE,
    // As in chat: EOS closes the choice in a chunk of its own with empty text (serving_completion.py).
    token: (p, c, i) => withRunningUsage(p, chunk(p, [{
      index: c.index, text: c.tokens[i], logprobs: completionLogprobs(p, c, i, i + 1),
      finish_reason: i === c.tokens.length - 1 && c.finish !== 'stop' ? c.finish : null, stop_reason: null,
    }]), i + 1),
    finish: (p, c) => (c.finish === 'stop'
      ? withRunningUsage(p, chunk(p, [{
        index: c.index, text: '', logprobs: completionLogprobs(p, c, c.tokens.length, c.tokens.length + 1), finish_reason: 'stop', stop_reason: null,
      }]), c.tokens.length + 1)
      : undefined),
    usage: (p) => ({ ...chunk(p, []), usage: usage(p, false) }),
  });
  return {
    kind: 'inference',
    wantsStream,
    plan(body) {
      const invalid = checkStreamOptions(body);
      if (invalid) return invalid;
      const r = parseCompletionRequest(body);
      if (isSimError(r)) return r;
      const m = servedModel(view, r.model);
      if (m === undefined) return { kind: 'model-not-found', model: r.model };
      const logprobs = completionLogprobsAsked(body);
      const bad = checkMax(r.maxTokens) ?? checkN(r.n) ?? checkMaxLogprobs(logprobs);
      if (bad) return bad;
      if (m.kind !== 'chat') return { kind: 'unsupported', message: 'The model does not support Completions API' };
      // The OpenAI completions API defaults max_tokens to 16, and vLLM follows it.
      const max = r.maxTokens ?? 16;
      const items = promptTextItems(r.prompts);
      const ctxErr = checkContext(m, largestPrompt(items), max);
      if (ctxErr) return ctxErr;
      const su = streamUsage(body);
      return withEos(textPlan({
        model: m.name, stream: r.stream, includeUsage: su.include, items, maxTokens: max, n: r.n, idPrefix: 'cmpl-',
        extra: { continuousUsage: su.continuous, logprobs },
      }));
    },
    error: (e) => renderError(view, 'completions', e),
    reply(p) {
      return jsonReply(200, {
        id: p.id, object: 'text_completion', created: p.created, model: p.model,
        choices: p.choices.map((c) => ({
          index: c.index, text: choiceText(c), logprobs: completionLogprobs(p, c, 0, Infinity), finish_reason: c.finish, stop_reason: null, prompt_logprobs: null,
        })),
        service_tier: null,
        system_fingerprint: null,
        usage: usage(p, true),
        kv_transfer_params: null,
      });
    },
    stream,
  };
}

function embeddingsRoute(view: EngineView): InferenceRoute {
  return {
    kind: 'inference',
    wantsStream: () => false,
    plan(body) {
      const r = parseEmbeddingsRequest(body);
      if (isSimError(r)) return r;
      const m = servedModel(view, r.model);
      if (m === undefined) return { kind: 'model-not-found', model: r.model };
      if (m.kind !== 'embeddings') return { kind: 'unsupported', message: 'The model does not support Embeddings API' };
      if (r.dimensions !== undefined && r.dimensions !== m.dimensions) {
        return { kind: 'bad-request', message: `Model "${m.name}" does not support matryoshka representation, changing output dimensions will lead to poor results.` };
      }
      const longest = largestInput(r.inputs);
      if (longest > m.contextWindow) return { kind: 'context-length', promptTokens: longest, contextWindow: m.contextWindow };
      return embeddingPlan({ model: m.name, inputs: r.inputs, dimensions: m.dimensions, base64: r.base64, idPrefix: 'embd-' });
    },
    error: (e) => renderError(view, 'embeddings', e),
    reply(p) {
      const vectors = p.vectors ?? [];
      return jsonReply(200, {
        id: p.id, object: 'list', created: p.created, model: p.model,
        data: vectors.map((v, index) => ({ index, object: 'embedding', embedding: encodeVector(p, v) })),
        usage: { prompt_tokens: p.promptTokens, total_tokens: p.promptTokens, completion_tokens: 0, prompt_tokens_details: null },
      });
    },
    stream: null,
  };
}

/**
 * Served by ServingScores, which vLLM starts when the model's tasks include "score" (a
 * cross-encoder: the rerank kind) or "embed" (an embedding model, scored by the cosine of the
 * two embeddings; the simulator scores both by relevance()).
 */
const canScore = (m: ServedModel): boolean => m.kind === 'rerank' || m.kind === 'embeddings';

/**
 * What a scored pair adds to its two texts: XLM-RoBERTa's cross-encoder pair is
 * <s> query </s></s> document </s>; score_utils.py _cosine_similarity joins an embedding
 * model's two inputs with a pad token.
 */
const pairOverhead = (m: ServedModel): number => (m.kind === 'rerank' ? 4 : 1);

/** The architecture a --task score model reports, for the multimodal refusal. */
const architecture = (m: ServedModel): string => (m.kind === 'rerank' ? 'XLMRobertaForSequenceClassification' : 'BertModel');

/** A pydantic field error as FastAPI's RequestValidationError handler answers it (trimmed: the first error, no input echo). */
function fieldError(field: string, type: string, msg: string, within = ''): SimError {
  return {
    kind: 'bad-request', type: 'Bad Request', param: `body.${field}`,
    message: `1 validation error:\n  {'type': '${type}', 'loc': ('body', '${field}'${within}), 'msg': '${msg}'}`,
  };
}

/** A ScoreMultiModalParam, {"content": [parts]}: valid to pydantic, refused later by a text-only model. */
const MULTIMODAL = Symbol('multimodal');
type ScoreInput = string[] | typeof MULTIMODAL;

/**
 * A query (protocol.py `str | ScoreMultiModalParam`), rerank documents (`list[str] | …`) or a
 * score text (`list[str] | str | …`), as a list; Jina's {"text": …} documents do not validate.
 */
function scoreInput(body: Record<string, unknown>, field: string, accepts: 'string' | 'list' | 'either'): ScoreInput | SimError {
  const v = body[field];
  if (v === undefined) return fieldError(field, 'missing', 'Field required');
  if (isRecord(v) && Array.isArray(v.content)) return MULTIMODAL;
  if (typeof v === 'string' && accepts !== 'list') return [v];
  if (accepts === 'string') return fieldError(field, 'string_type', 'Input should be a valid string', ", 'str'");
  if (!Array.isArray(v)) return fieldError(field, 'list_type', 'Input should be a valid list', ", 'list[str]'");
  const wrong = v.findIndex((d) => typeof d !== 'string');
  return wrong < 0 ? v as string[] : fieldError(field, 'string_type', 'Input should be a valid string', `, 'list[str]', ${wrong}`);
}

/** An int field (pydantic), undefined when absent or null and allowed to be. */
function intInput(body: Record<string, unknown>, field: string, nullable: boolean, min?: number): number | undefined | SimError {
  const v = body[field];
  if (v === undefined || (v === null && nullable)) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v)) return fieldError(field, 'int_type', 'Input should be a valid integer');
  if (min !== undefined && v < min) return fieldError(field, 'greater_than_equal', `Input should be greater than or equal to ${min}`);
  return v;
}

/**
 * /rerank, /v1/rerank and /v2/rerank (Jina's and Cohere's rerank API, one handler), and /score,
 * /v1/score (sentence-transformers' cross-encoder API): serving_score.py of the 0.11 line. Rerank
 * answers sorted by score and cut to top_n (0, the default, or less: all), each document echoed;
 * its usage is {"total_tokens"} only (prompt_tokens came in a later release).
 */
function scoreRoute(view: EngineView, op: 'rerank' | 'score'): InferenceRoute {
  const refusal = `The model does not support ${op === 'rerank' ? 'Rerank (Score)' : 'Score'} API`;
  return {
    kind: 'inference',
    wantsStream: () => false,
    plan(body) {
      if (!isRecord(body)) {
        return { kind: 'bad-request', type: 'Bad Request', param: 'body', message: "1 validation error:\n  {'type': 'model_attributes_type', 'loc': ('body',), 'msg': 'Input should be a valid dictionary or object to extract fields from'}" };
      }
      const first = op === 'rerank' ? scoreInput(body, 'query', 'string') : scoreInput(body, 'text_1', 'either');
      if (!Array.isArray(first) && first !== MULTIMODAL) return first;
      const second = op === 'rerank' ? scoreInput(body, 'documents', 'list') : scoreInput(body, 'text_2', 'either');
      if (!Array.isArray(second) && second !== MULTIMODAL) return second;
      const topN = op === 'rerank' ? intInput(body, 'top_n', false) : undefined;
      if (typeof topN === 'object') return topN;
      const truncate = intInput(body, 'truncate_prompt_tokens', true, -1);
      if (typeof truncate === 'object') return truncate;
      if (body.model !== undefined && body.model !== null && typeof body.model !== 'string') return fieldError('model', 'string_type', 'Input should be a valid string');
      // api_server.py: no ServingScores, no route handler; checked before the model's name.
      if (!view.models.some(canScore)) return { kind: 'unsupported', message: refusal };
      const name = typeof body.model === 'string' && body.model !== '' ? body.model : undefined;
      const m = servedModel(view, name);
      if (m === undefined) return { kind: 'model-not-found', model: name };
      if (!canScore(m)) return { kind: 'unsupported', message: refusal };
      // utils.py _validate_truncation_size: -1 or less means the model's length.
      const cut = truncate === undefined ? undefined : truncate <= -1 ? m.contextWindow : truncate;
      if (cut !== undefined && cut > m.contextWindow) {
        return { kind: 'bad-request', message: `truncate_prompt_tokens value (${cut}) is greater than max_model_len (${m.contextWindow}). Please, select a smaller truncation size.` };
      }
      if (first === MULTIMODAL || second === MULTIMODAL) return { kind: 'bad-request', message: `MultiModalParam is not supported for ${architecture(m)}` };
      // score_utils.py _validate_score_input_lens.
      if (first.length > 1 && first.length !== second.length) return { kind: 'bad-request', message: 'Input lengths must be either 1:1, 1:N or N:N' };
      if (first.length === 0) return { kind: 'bad-request', message: 'At least one text element must be given' };
      if (second.length === 0) return { kind: 'bad-request', message: 'At least one text_pair element must be given' };
      const plan = rankPlan({
        id: `${op}-${hexId()}`, model: m.name, queries: first, documents: second, pairOverhead: pairOverhead(m), truncateAt: cut,
      });
      // _validate_input, per prompt: a cross-encoder's pair, an embedding model's each text.
      if (cut === undefined) {
        let longest = largestPair(plan);
        if (m.kind === 'embeddings') {
          longest = 0;
          for (const t of [...first, ...second]) longest = Math.max(longest, countWords(t));
        }
        if (longest > m.contextWindow) return { kind: 'context-length', promptTokens: longest, contextWindow: m.contextWindow };
      }
      if (op === 'rerank') {
        const ranks = byRelevance(plan.ranks!);
        const n = topN !== undefined && topN > 0 ? topN : ranks.length;
        if (n < ranks.length) ranks.length = n;
      }
      return plan;
    },
    error: (e) => renderError(view, op, e),
    reply(p) {
      const ranks = p.ranks ?? [];
      if (op === 'score') {
        return jsonReply(200, {
          id: p.id, object: 'list', created: p.created, model: p.model,
          data: ranks.map((r) => ({ index: r.index, object: 'score', score: r.score })),
          usage: { prompt_tokens: p.promptTokens, total_tokens: p.promptTokens, completion_tokens: 0, prompt_tokens_details: null },
        });
      }
      return jsonReply(200, {
        id: p.id, model: p.model, usage: { total_tokens: p.promptTokens },
        results: ranks.map((r) => ({ index: r.index, document: { text: r.text, multi_modal: null }, relevance_score: r.score })),
      });
    },
    stream: null,
  };
}

/** vLLM's VLLM_MAX_AUDIO_CLIP_FILESIZE_MB default. */
const MAX_AUDIO_MB = 25;
const AUDIO_FORMATS = new Set(['json', 'text', 'srt', 'verbose_json', 'vtt']);

/**
 * /v1/audio/transcriptions and /v1/audio/translations (vllm/entrypoints/openai/speech_to_text:
 * a multipart form read by FastAPI, served by models whose supported tasks include
 * transcription, Whisper's). Quirks kept: `text` is answered with the JSON body, `srt` and
 * `vtt` are refused, a translation's JSON carries no usage, verbose JSON's duration is a string
 * and its segments' no_speech_prob null; a stream is `transcription.chunk` objects.
 */
function audioRoute(view: EngineView, op: 'transcriptions' | 'translations'): InferenceRoute {
  const object = op === 'transcriptions' ? 'transcription.chunk' : 'translation.chunk';
  return {
    kind: 'inference',
    wantsStream: (body) => isForm(body) && body.fields.stream === 'true',
    plan(body) {
      if (!isForm(body)) return { kind: 'bad-request', message: typeof body === 'string' ? body : 'Expected a multipart/form-data body', type: 'Bad Request' };
      const f = body.fields;
      const file = body.files.file;
      if (file === undefined) {
        return { kind: 'bad-request', message: typeof f.file === 'string' ? "Expected 'file' to be a file-like object, not 'str'." : "[{'type': 'missing', 'loc': ('body', 'file'), 'msg': 'Field required', 'input': None}]", type: 'Bad Request', param: 'body.file' };
      }
      const name = typeof f.model === 'string' ? f.model : undefined;
      const m = servedModel(view, name);
      if (m === undefined) return { kind: 'model-not-found', model: name };
      if (m.kind !== 'transcription') return { kind: 'unsupported', message: `The model does not support ${op === 'transcriptions' ? 'Transcriptions' : 'Translations'} API` };
      const format = typeof f.response_format === 'string' ? f.response_format : 'json';
      if (!AUDIO_FORMATS.has(format)) return { kind: 'bad-request', message: `Input should be 'json', 'text', 'srt', 'verbose_json' or 'vtt'`, type: 'Bad Request', param: 'body.response_format' };
      if (format === 'srt' || format === 'vtt') return { kind: 'bad-request', message: 'Currently only support response_format: `text`, `json` or `verbose_json`' };
      const stream = f.stream === 'true';
      if (stream && format === 'verbose_json') return { kind: 'bad-request', message: "verbose_json format doesn't support streaming case" };
      const mb = file.size / 2 ** 20;
      if (mb > MAX_AUDIO_MB) return { kind: 'bad-request', message: `Maximum file size exceeded (parameter=audio_filesize_mb, value=${mb})`, param: 'audio_filesize_mb' };
      return audioPlan(`${op === 'transcriptions' ? 'transcribe' : 'translate'}-${hexId()}`, m.name, file, stream, f.stream_include_usage === 'true',
        { format, language: typeof f.language === 'string' ? f.language : 'en' });
    },
    error: (e) => renderError(view, op, e),
    reply(p) {
      const text = p.choices[0]!.tokens.join('');
      const seconds = p.extra.seconds as number;
      if (p.extra.format === 'verbose_json') {
        const segments = audioSegments(p).map((g, id) => ({
          id, avg_logprob: -0.25, compression_ratio: 1.2, end: g.end, no_speech_prob: null, seek: 0, start: g.start, temperature: 0, text: g.text, tokens: tokenIds(g.text, g.tokens.length),
        }));
        return jsonReply(200, { duration: seconds.toFixed(2), language: p.extra.language, text, segments, words: null });
      }
      // json and text alike (vLLM answers text with the JSON body); a translation reports no usage.
      return jsonReply(200, op === 'transcriptions' ? { text, usage: { type: 'duration', seconds: Math.ceil(seconds) } } : { text });
    },
    stream: {
      contentType: 'text/event-stream; charset=utf-8',
      begin: () => '',
      step(p, i) {
        const last = i === p.steps - 1;
        return sseEvent({ id: p.id, object, created: p.created, model: p.model, choices: [{ delta: { content: p.choices[0]!.tokens[i] }, ...(last ? { finish_reason: 'stop', stop_reason: null } : {}) }] });
      },
      end(p) {
        const usage = { prompt_tokens: p.promptTokens, total_tokens: p.promptTokens + p.completionTokens, completion_tokens: p.completionTokens };
        return (p.includeUsage ? sseEvent({ id: p.id, object, created: p.created, model: p.model, choices: [], usage }) : '') + SSE_DONE;
      },
      garbage: 'data: {"id": transcribe\n\n',
      failure: () => STREAM_FAILURE,
    },
  };
}

const isForm = (b: unknown): b is SimForm => isRecord(b) && isRecord(b.fields) && isRecord(b.files);

// vllm/v1/metrics/loggers.py's buckets.
const TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560];
const REQUEST_LATENCY_BUCKETS = [0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680];

interface Latency { ttft: Histogram; e2e: Histogram; labels: string[] }

function latencyHistograms(view: EngineView): Latency {
  const names = ['engine', 'model_name'];
  const l: Latency = {
    ttft: new Histogram('vllm:time_to_first_token_seconds', 'Histogram of time to first token in seconds.', names, TTFT_BUCKETS),
    e2e: new Histogram('vllm:e2e_request_latency_seconds', 'Histogram of e2e request latency in seconds.', names, REQUEST_LATENCY_BUCKETS),
    labels: ['0', view.model],
  };
  // vLLM makes each engine's series at start (make_per_engine), so they show before any request.
  l.ttft.handle(l.labels);
  l.e2e.handle(l.labels);
  return l;
}

function metrics(view: EngineView, latency: Latency): string {
  const l = view.load;
  const labels = `engine="0",model_name="${view.model}"`;
  const kvCapacity = view.contextWindow * view.timing.maxConcurrency;
  const kv = kvCapacity > 0 ? Math.min(1, l.activeTokens / kvCapacity) : 0;
  const lines: string[] = [];
  const metric = (name: string, type: string, help: string, value: number, extra = ''): void => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name}{${labels}${extra}} ${value.toFixed(1)}`);
  };
  metric('vllm:num_requests_running', 'gauge', 'Number of requests in model execution batches.', l.active);
  metric('vllm:num_requests_waiting', 'gauge', 'Number of requests waiting to be processed.', l.queued);
  metric('vllm:gpu_cache_usage_perc', 'gauge', 'GPU KV-cache usage. 1 means 100 percent usage.', kv);
  metric('vllm:kv_cache_usage_perc', 'gauge', 'KV-cache usage. 1 means 100 percent usage.', kv);
  metric('vllm:prompt_tokens_total', 'counter', 'Number of prefill tokens processed.', l.promptTokens);
  metric('vllm:generation_tokens_total', 'counter', 'Number of generation tokens processed.', l.completionTokens);
  lines.push(
    '# HELP vllm:request_success_total Count of successfully processed requests.',
    '# TYPE vllm:request_success_total counter',
    `vllm:request_success_total{${labels},finished_reason="stop"} ${l.finishedStop.toFixed(1)}`,
    `vllm:request_success_total{${labels},finished_reason="length"} ${l.finishedLength.toFixed(1)}`,
  );
  latency.ttft.render(lines);
  latency.e2e.render(lines);
  return `${lines.join('\n')}\n`;
}

export function createVllm(view: EngineView): ProtocolImpl {
  const created = nowSeconds();
  const permissionId = `modelperm-${hexId()}`;
  const latency = latencyHistograms(view);
  // One card per served name, as vLLM lists each --served-model-name.
  const models = infoRoute(() => jsonReply(200, {
    object: 'list',
    data: view.models.map((m) => ({
      id: m.name, object: 'model', created, owned_by: 'vllm', root: m.name, parent: null, max_model_len: m.contextWindow,
      permission: [{
        id: permissionId, object: 'model_permission', created, allow_create_engine: false, allow_sampling: true, allow_logprobs: true,
        allow_search_indices: false, allow_view: true, allow_fine_tuning: false, organization: '*', group: null, is_blocking: false,
      }],
    })),
  }));
  const health = infoRoute(() => ({ status: 200, headers: {}, body: '' }), true);
  const routes = new Map<string, Route>([
    ['GET /health', health],
    ['GET /ping', health],
    ['POST /ping', health],
    ['GET /version', infoRoute(() => jsonReply(200, { version: VLLM_VERSION }))],
    ['GET /v1/models', models],
    ['GET /metrics', infoRoute(() => textReply(200, metrics(view, latency), 'text/plain; version=0.0.4; charset=utf-8'))],
    ['POST /v1/chat/completions', chatRoute(view)],
    ['POST /v1/completions', completionsRoute(view)],
    ['POST /v1/embeddings', embeddingsRoute(view)],
    ['POST /v1/audio/transcriptions', audioRoute(view, 'transcriptions')],
    ['POST /v1/audio/translations', audioRoute(view, 'translations')],
  ]);
  // One handler for each API whatever the path (the /v1 ones are deprecated aliases, /v2/rerank Cohere's).
  const rerank = scoreRoute(view, 'rerank');
  const score = scoreRoute(view, 'score');
  for (const path of ['/rerank', '/v1/rerank', '/v2/rerank']) routes.set(`POST ${path}`, rerank);
  for (const path of ['/score', '/v1/score']) routes.set(`POST ${path}`, score);
  const paths = new Set([...routes.keys()].map((k) => k.slice(k.indexOf(' ') + 1)));
  return {
    resolve: (method, path) => routes.get(`${method} ${path}`),
    notFound: (_method, path) => (paths.has(path)
      ? jsonReply(405, { detail: 'Method Not Allowed' })
      : jsonReply(404, { detail: 'Not Found' })),
    // vLLM's --api-key middleware guards only the /v1 routes.
    needsKey: (path) => path.startsWith('/v1'),
    unauthorized: () => jsonReply(401, { error: 'Unauthorized' }),
    badJson: () => vllmError(400, 'JSON decode error: Expecting value: line 1 column 1 (char 0)'),
    // /health is 200, or 503 once the engine is dead (EngineDeadError): never another status.
    healthError: (status) => ({ status: status >= 500 ? 503 : 200, headers: {}, body: '' }),
    finished(ttft, e2e) {
      latency.ttft.observe(latency.labels, ttft);
      latency.e2e.observe(latency.labels, e2e);
    },
  };
}
