// llama.cpp's llama-server: one model whatever `model` says, `{"error":{code,message,type}}`
// errors (context overflow as `exceed_context_size_error` with n_prompt_tokens and n_ctx),
// `timings` on final objects, the native /completion endpoint, /props, /slots and the
// `llamacpp:` metrics. Keys are emitted in the server's insertion order. Tool calls and
// response_format as tools/server/server-common.cpp (oaicompat_chat_params_parse) reads them
// and common/chat.cpp writes them back, streamed as message diffs.

import { embeddingFloats, simLogprobs, tokenIds } from '../generate.ts';
import {
  GARBAGE_SSE, choiceText, infoRoute, intField, isRecord, isSimError, jsonReply, randomId, textReply,
} from '../protocol.ts';
import type {
  EngineView, InferenceRoute, Plan, PlannedChoice, ProtocolImpl, Reply, Route, SimError, StreamShape,
} from '../protocol.ts';
import { SSE_CONTENT_TYPE, sseEvent } from '../sse.ts';
import { shapeFor } from '../structured.ts';
import type { ReplyShape, ShapeRequest } from '../structured.ts';
import {
  byRelevance, chatItems, embeddingPlan, encodeVector, largestInput, largestPair, largestPrompt, parseChatRequest, parseCompletionRequest,
  parseEmbeddingsRequest, promptTextItems, rankPlan, sseStream, textPlan, wantsStream,
} from './oai.ts';
import type { TextItem } from './oai.ts';

// A build from after Jinja chat templates became llama-server's default (ggml-org/llama.cpp#17524, late
// November 2025), whose tool calling the simulator follows.
const BUILD_INFO = 'b7149-134e6940c';
const JSON_UTF8 = 'application/json; charset=utf-8';
const PUBLIC_PATHS = new Set(['/', '/health', '/v1/health', '/models', '/v1/models', '/api/tags']);

const ERROR_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  500: 'server_error',
  501: 'not_supported_error',
  503: 'unavailable_error',
};

function llamaError(status: number, message: string, type = ERROR_TYPES[status] ?? 'server_error', extra?: Record<string, number>): Reply {
  return jsonReply(status, { error: { code: status, message, type, ...extra } }, JSON_UTF8);
}

/**
 * A generation that fails mid-stream: the handler sends the task's error as one event,
 * {"error": format_error_response(…)}, and ends the stream without [DONE].
 */
const STREAM_FAILURE = sseEvent({ error: { code: 500, message: 'Internal Server Error', type: 'server_error' } });

function renderError(view: EngineView, e: SimError): Reply {
  switch (e.kind) {
    case 'bad-request':
      return llamaError(e.status ?? 400, e.message ?? 'Invalid request');
    case 'unsupported':
      return llamaError(501, e.message ?? 'Not supported');
    case 'model-not-found':
      return llamaError(404, `model '${e.model ?? ''}' not found`);
    case 'context-length': {
      const n = e.promptTokens ?? view.contextWindow + 1;
      return llamaError(
        400,
        `request (${n} tokens) exceeds the available context size (${view.contextWindow} tokens), try increasing it`,
        'exceed_context_size_error',
        { n_prompt_tokens: n, n_ctx: view.contextWindow },
      );
    }
    case 'overloaded':
      // llama-server queues without limit: the engine never asks (engine.ts resolveTiming).
      throw new Error('llama-server has no queue limit to refuse past');
    case 'rate-limit':
      return llamaError(429, 'Too Many Requests', 'rate_limit_error');
    case 'server-error': {
      const status = e.status ?? 500;
      // A llama-server answers 503 only while it loads its model.
      if (status === 503) return llamaError(503, 'Loading model');
      return llamaError(status, status === 500 ? 'Internal Server Error' : `HTTP ${status}`);
    }
  }
}

function timings(view: EngineView, prompt: number, predicted: number): Record<string, number> {
  const promptMs = Math.max(0.001, view.timing.ttftMs);
  const perToken = 1000 / view.timing.tokensPerSecond;
  const predictedMs = predicted * perToken;
  return {
    cache_n: 0,
    prompt_n: prompt,
    prompt_ms: promptMs,
    prompt_per_token_ms: prompt > 0 ? promptMs / prompt : 0,
    prompt_per_second: prompt > 0 ? (prompt * 1000) / promptMs : 0,
    predicted_n: predicted,
    predicted_ms: predictedMs,
    predicted_per_token_ms: perToken,
    predicted_per_second: view.timing.tokensPerSecond,
  };
}

function usage(p: Plan): Record<string, number> {
  return { completion_tokens: p.completionTokens, prompt_tokens: p.promptTokens, total_tokens: p.promptTokens + p.completionTokens };
}

/**
 * llama.cpp checks no model name and rejects only prompts that fill the whole context;
 * generation itself stops when the context is full.
 */
function planText(
  view: EngineView, items: TextItem[], requested: string | undefined, max: number | undefined, stream: boolean, includeUsage: boolean, shape?: ReplyShape, nProbs?: number,
): Plan | SimError {
  const prompt = largestPrompt(items);
  if (prompt >= view.contextWindow) return { kind: 'context-length', promptTokens: prompt };
  const room = view.contextWindow - prompt;
  return textPlan({
    model: requested ?? view.model, stream, includeUsage, items,
    maxTokens: max === undefined ? room : Math.min(max, room), idPrefix: 'chatcmpl-', shape, toolCallId, extra: { nProbs },
  });
}

const ALNUM = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** server-common.cpp gen_tool_call_id: random_string(), 32 letters and digits with no prefix. */
function toolCallId(): string {
  return randomId(ALNUM, 32);
}

/** What a std::runtime_error thrown while parsing becomes: ex_wrapper's 500 server_error. */
function thrown(message: string): SimError {
  return { kind: 'bad-request', status: 500, message };
}

/**
 * An embeddings input or a rerank pair is evaluated whole, in one physical batch
 * (server-context.cpp, a task that cannot be split): past --ubatch-size, a 500, though it fits
 * the context.
 */
function pastPhysicalBatch(view: EngineView, tokens: number): SimError | undefined {
  return tokens > view.physicalBatch ? thrown(`input (${tokens} tokens) is too large to process. increase the physical batch size (current batch size: ${view.physicalBatch})`) : undefined;
}

/**
 * server-common.cpp oaicompat_chat_params_parse, on tools and output formats: the request in the
 * simulator's terms, or what it throws (std::invalid_argument a 400, anything else a 500).
 * tool_choice is read as a string defaulting to "auto", so a named function (an object) is auto;
 * response_format json_object takes an optional `schema` of its own, and a top-level
 * `json_schema` (llama.cpp's own field) applies when response_format sets none.
 */
function readStructured(view: EngineView, body: Record<string, unknown>): ShapeRequest | SimError {
  const hasTools = Array.isArray(body.tools) && body.tools.length > 0;
  const choice = typeof body.tool_choice === 'string' ? body.tool_choice : 'auto';
  // Without Jinja templates there is no tool-call format to render or parse.
  if (!view.jinja) {
    if (hasTools) return thrown('tools param requires --jinja flag');
    if (choice !== 'auto') return thrown('tool_choice param requires --jinja flag');
  }
  const given = (v: unknown): boolean => v !== undefined && v !== null;
  let schema: unknown = given(body.json_schema) ? body.json_schema : undefined;
  if (schema !== undefined && typeof body.grammar === 'string' && body.grammar !== '') return thrown('Cannot use both json_schema and grammar');
  if ('response_format' in body) {
    const rf = isRecord(body.response_format) ? body.response_format : {};
    const type = typeof rf.type === 'string' ? rf.type : '';
    if (type === 'json_object') schema = given(rf.schema) ? rf.schema : {};
    else if (type === 'json_schema') schema = isRecord(rf.json_schema) && given(rf.json_schema.schema) ? rf.json_schema.schema : {};
    else if (type !== '' && type !== 'text') return { kind: 'bad-request', message: `response_format type must be one of "text" or "json_object", but got: ${type}` };
  }
  // common/chat.cpp common_chat_tool_choice_parse_oaicompat.
  if (choice !== 'auto' && choice !== 'none' && choice !== 'required') return { kind: 'bad-request', message: `Invalid tool_choice: ${choice}` };
  if (hasTools && choice !== 'none' && 'grammar' in body) return { kind: 'bad-request', message: 'Cannot use custom grammar constraints with tools.' };
  if (hasTools && body.stream === true && body.logprobs === true) return { kind: 'bad-request', message: 'logprobs is not supported with tools + stream' };
  if (body.logprobs !== true && given(body.top_logprobs)) return { kind: 'bad-request', message: 'top_logprobs requires logprobs to be set to true' };
  return { tools: body.tools, toolChoice: choice, messages: body.messages, schema };
}

/**
 * common/chat.cpp common_chat_msg_diff_to_json_oaicompat: a tool call's first diff names it
 * (index, id, type, function {name, the arguments parsed so far}); later ones carry only what the
 * arguments grew by.
 */
function chatDelta(c: PlannedChoice, i: number): Record<string, unknown> {
  const call = c.toolCall;
  if (call === undefined) return { content: c.tokens[i] };
  return {
    tool_calls: [i === 0
      ? { index: 0, id: call.id, type: 'function', function: { name: call.name, arguments: c.tokens[0] } }
      : { index: 0, function: { arguments: c.tokens[i] } }],
  };
}

/**
 * server-common.cpp: `logprobs: true` asks for n_probs = top_logprobs (20 when not given), and
 * completion_token_output::probs_to_json gives each sampled token of [from, to) as {id, token,
 * bytes, logprob, top_logprobs: [{id, token, bytes, logprob}]}; null (left out) when not asked.
 */
function chatLogprobs(p: Plan, c: PlannedChoice, from: number, to: number): Record<string, unknown> | undefined {
  const n = p.extra.nProbs;
  if (typeof n !== 'number') return undefined;
  const tokens = c.tokens.slice(from, to);
  const id = (token: string): number => tokenIds(token, 1)[0]!;
  return {
    content: simLogprobs(tokens, from, n).map((e) => ({
      id: id(e.token), token: e.token, bytes: e.bytes, logprob: e.logprob,
      top_logprobs: e.top.map((t) => ({ id: id(t.token), token: t.token, bytes: t.bytes, logprob: t.logprob })),
    })),
  };
}

/** common_chat_msg::to_json_oaicompat: no text beside a tool call is null; each call {type, function, id}. */
function chatMessage(c: PlannedChoice): Record<string, unknown> {
  const content = choiceText(c);
  const call = c.toolCall;
  if (call === undefined) return { role: 'assistant', content: content === '' ? null : content };
  return { role: 'assistant', content: null, tool_calls: [{ type: 'function', function: { name: call.name, arguments: content }, id: call.id }] };
}

/** Started with --embeddings, or --reranking (which sets it too). */
const pooling = (view: EngineView): boolean => view.kind === 'embeddings' || view.kind === 'rerank';

function notForEmbeddings(view: EngineView): SimError | null {
  return pooling(view)
    ? { kind: 'unsupported', message: 'This server does not support completions. Start it without `--embeddings`' }
    : null;
}

/**
 * llama-server generates one choice per request: its OpenAI-style routes throw on any other
 * `n` while parsing the parameters, and the exception becomes a 500.
 */
function oneChoiceOnly(n: number | undefined): SimError | null {
  return n === undefined || n === 1 ? null : { kind: 'bad-request', status: 500, message: 'Only one completion choice is allowed' };
}

function chatRoute(view: EngineView): InferenceRoute {
  const chunk = (p: Plan, choices: unknown[]): Record<string, unknown> => ({
    choices, created: p.created, id: p.id, model: p.model, system_fingerprint: BUILD_INFO, object: 'chat.completion.chunk',
  });
  // A chat has one choice. Its timings ride on the usage event when there is one, else on the finish.
  const stream = sseStream({
    failure: () => STREAM_FAILURE,
    open: (p) => chunk(p, [{ finish_reason: null, index: 0, delta: { role: 'assistant', content: null } }]),
    token(p, c, i) {
      const logprobs = chatLogprobs(p, c, i, i + 1);
      return chunk(p, [{ finish_reason: null, index: 0, delta: chatDelta(c, i), ...(logprobs === undefined ? {} : { logprobs }) }]);
    },
    finish(p, c) {
      const last = chunk(p, [{ finish_reason: c.finish, index: 0, delta: {} }]);
      return p.includeUsage ? last : { ...last, timings: timings(view, p.promptTokens, p.completionTokens) };
    },
    usage: (p) => ({ ...chunk(p, []), usage: usage(p), timings: timings(view, p.promptTokens, p.completionTokens) }),
  });
  return {
    kind: 'inference',
    wantsStream,
    plan(body) {
      const structured = isRecord(body) ? readStructured(view, body) : undefined;
      if (structured !== undefined && isSimError(structured)) return structured;
      const r = parseChatRequest(body);
      if (isSimError(r)) return r;
      const shape = structured === undefined ? undefined : shapeFor(structured, r.text.seed);
      const nProbs = isRecord(body) && body.logprobs === true ? (typeof body.top_logprobs === 'number' ? body.top_logprobs : 20) : undefined;
      return notForEmbeddings(view) ?? oneChoiceOnly(r.n) ?? planText(view, chatItems(r.text), r.model, r.maxTokens, r.stream, r.includeUsage, shape, nProbs);
    },
    error: (e) => renderError(view, e),
    reply(p) {
      const c = p.choices[0]!;
      return jsonReply(200, {
        choices: [{ finish_reason: c.finish, index: 0, message: chatMessage(c), ...(p.extra.nProbs === undefined ? {} : { logprobs: chatLogprobs(p, c, 0, c.tokens.length) }) }],
        created: p.created, model: p.model, system_fingerprint: BUILD_INFO, object: 'chat.completion',
        usage: usage(p), id: p.id, timings: timings(view, p.promptTokens, p.completionTokens),
      }, JSON_UTF8);
    },
    stream,
  };
}

function completionsRoute(view: EngineView): InferenceRoute {
  const chunk = (p: Plan, choices: unknown[]): Record<string, unknown> => ({
    choices, created: p.created, model: p.model, system_fingerprint: BUILD_INFO, object: 'text_completion', id: p.id,
  });
  // Every finish event carries usage and timings, asked for or not; there is no usage event.
  const stream = sseStream({
    failure: () => STREAM_FAILURE,
    token: (p, c, i) => chunk(p, [{ text: c.tokens[i], index: c.index, logprobs: null, finish_reason: null }]),
    finish: (p, c) => ({
      ...chunk(p, [{ text: '', index: c.index, logprobs: null, finish_reason: c.finish }]),
      usage: usage(p), timings: timings(view, c.promptTokens, c.tokens.length),
    }),
  });
  return {
    kind: 'inference',
    wantsStream,
    plan(body) {
      const r = parseCompletionRequest(body);
      if (isSimError(r)) return r;
      return notForEmbeddings(view) ?? oneChoiceOnly(r.n) ?? planText(view, promptTextItems(r.prompts), r.model, r.maxTokens, r.stream, r.includeUsage);
    },
    error: (e) => renderError(view, e),
    reply(p) {
      return jsonReply(200, {
        choices: p.choices.map((c) => ({ text: choiceText(c), index: c.index, logprobs: null, finish_reason: c.finish })),
        created: p.created, model: p.model, system_fingerprint: BUILD_INFO, object: 'text_completion',
        usage: usage(p), id: p.id, timings: timings(view, p.promptTokens, p.completionTokens),
      }, JSON_UTF8);
    },
    stream,
  };
}

/** llama.cpp's own /completion: `content` instead of choices, stop flags, no [DONE]. */
function nativeCompletionRoute(view: EngineView): InferenceRoute {
  const final = (p: Plan, c: PlannedChoice, content: string): Record<string, unknown> => ({
    index: c.index,
    content,
    tokens: [],
    id_slot: 0,
    stop: true,
    model: p.model,
    tokens_predicted: c.tokens.length,
    tokens_evaluated: c.promptTokens,
    generation_settings: { n_predict: p.extra.nPredict ?? -1, temperature: 0.8, top_k: 40, top_p: 0.95, min_p: 0.05, stream: p.stream, n_ctx: view.contextWindow },
    prompt: c.promptText,
    has_new_line: false,
    truncated: false,
    stop_type: c.finish === 'stop' ? 'eos' : 'limit',
    stopping_word: '',
    tokens_cached: c.promptTokens + c.tokens.length,
    timings: timings(view, c.promptTokens, c.tokens.length),
  });
  const stream: StreamShape = {
    contentType: SSE_CONTENT_TYPE,
    begin: () => '',
    step(p, i) {
      let out = '';
      for (const c of p.choices) {
        if (i >= c.tokens.length) continue;
        out += sseEvent({
          index: c.index, content: c.tokens[i], tokens: tokenIds(c.tokens[i]!, 1), stop: false, id_slot: -1,
          tokens_predicted: i + 1, tokens_evaluated: c.promptTokens,
        });
      }
      return out;
    },
    end(p) {
      let out = '';
      for (const c of p.choices) out += sseEvent(final(p, c, ''));
      return out;
    },
    garbage: GARBAGE_SSE,
    failure: () => STREAM_FAILURE,
  };
  return {
    kind: 'inference',
    wantsStream,
    plan(body) {
      if (!isRecord(body)) return { kind: 'bad-request', message: 'request body must be a JSON object' };
      const r = parseCompletionRequest(body);
      if (isSimError(r)) return r;
      const unsupported = notForEmbeddings(view);
      if (unsupported) return unsupported;
      const nPredict = typeof body.n_predict === 'number' ? body.n_predict : undefined;
      const max = nPredict !== undefined && nPredict >= 0 ? nPredict : intField(body.max_tokens);
      const plan = planText(view, promptTextItems(r.prompts), r.model, max, r.stream, false);
      if (!isSimError(plan)) plan.extra.nPredict = nPredict ?? -1;
      return plan;
    },
    error: (e) => renderError(view, e),
    reply(p) {
      const results = p.choices.map((c) => final(p, c, choiceText(c)));
      return jsonReply(200, results.length === 1 ? results[0] : results, JSON_UTF8);
    },
    stream,
  };
}

function embeddingsRoute(view: EngineView, native: boolean): InferenceRoute {
  return {
    kind: 'inference',
    wantsStream: () => false,
    plan(body) {
      const input = isRecord(body) && body.input === undefined && body.content !== undefined ? { ...body, input: body.content } : body;
      const r = parseEmbeddingsRequest(input);
      if (isSimError(r)) return r;
      if (!pooling(view)) {
        return { kind: 'unsupported', message: 'This server does not support embeddings. Start it with `--embeddings`' };
      }
      const longest = largestInput(r.inputs);
      if (longest > view.contextWindow) return { kind: 'context-length', promptTokens: longest };
      const batch = pastPhysicalBatch(view, longest);
      if (batch !== undefined) return batch;
      // A reranker's pooled output is its score, not a vector: the n_embd floats send_embedding
      // reads past it normalise to NaN, which the JSON writer prints as null (seen on a reranking
      // llama-server: a 200 of nulls). OpenAI's base64 cannot carry them: reading null as a float throws.
      if (view.kind === 'rerank' && r.base64 && !native) return thrown('[json.exception.type_error.302] type must be number, but is null');
      const plan = embeddingPlan({ model: view.model, inputs: r.inputs, dimensions: view.dimensions, base64: r.base64, idPrefix: '' });
      plan.model = r.model ?? view.model;
      return plan;
    },
    error: (e) => renderError(view, e),
    reply(p) {
      const vectors = p.vectors ?? [];
      const nulls = (v: Float32Array): null[] | undefined => (view.kind === 'rerank' ? new Array<null>(v.length).fill(null) : undefined);
      if (native) return jsonReply(200, vectors.map((v, index) => ({ index, embedding: [nulls(v) ?? embeddingFloats(v)] })), JSON_UTF8);
      return jsonReply(200, {
        model: p.model,
        object: 'list',
        usage: { prompt_tokens: p.promptTokens, total_tokens: p.promptTokens },
        data: vectors.map((v, index) => ({ embedding: nulls(v) ?? encodeVector(p, v), index, object: 'embedding' })),
      }, JSON_UTF8);
    },
    stream: null,
  };
}

/**
 * format_prompt_rerank without a rerank template in the GGUF: BOS query EOS SEP document EOS,
 * as an XLM-RoBERTa reranker's vocabulary adds them.
 */
const RERANK_PAIR_SPECIAL_TOKENS = 4;

/** nlohmann's get<std::vector<std::string>>: an array of strings, else what json_value falls back to. */
function stringArray(v: unknown): string[] | undefined {
  return Array.isArray(v) && v.every((d) => typeof d === 'string') ? v as string[] : undefined;
}

/**
 * /rerank, /reranking, /v1/rerank and /v1/reranking (one handler, post_rerank): Jina's format
 * ({model, object, usage, results: [{index, relevance_score}]}, no document text), or TEI's when
 * the body has `texts` (a bare array of {index, score}, with each text when return_text).
 * Sorted by score and cut to top_n (json_value: a non-number is the default, every document;
 * 0 answers none). Only a server started with --reranking serves it; the check comes before
 * the body is read.
 */
function rerankRoute(view: EngineView): InferenceRoute {
  return {
    kind: 'inference',
    wantsStream: () => false,
    plan(body) {
      if (view.kind !== 'rerank') return { kind: 'unsupported', message: 'This server does not support reranking. Start it with `--reranking`' };
      const b = isRecord(body) ? body : {};
      if (!('query' in b)) return { kind: 'bad-request', message: '"query" must be provided' };
      if (typeof b.query !== 'string') return { kind: 'bad-request', message: '"query" must be a string' };
      const tei = 'texts' in b;
      // json_value(body, "documents", json_value(body, "texts", [])): a wrong type falls back.
      const documents = stringArray(b.documents) ?? stringArray(b.texts) ?? [];
      if (documents.length === 0) return { kind: 'bad-request', message: '"documents" must be a non-empty string array' };
      // nlohmann reads a float or a bool as an int too.
      const topN = typeof b.top_n === 'number' ? Math.trunc(b.top_n) : typeof b.top_n === 'boolean' ? Number(b.top_n) : documents.length;
      const plan = rankPlan({
        id: '', model: typeof b.model === 'string' ? b.model : view.model, queries: [b.query], documents, pairOverhead: RERANK_PAIR_SPECIAL_TOKENS,
      });
      const longest = largestPair(plan);
      if (longest > view.contextWindow) return { kind: 'context-length', promptTokens: longest };
      const batch = pastPhysicalBatch(view, longest);
      if (batch !== undefined) return batch;
      // elements.resize(std::min(top_n, n)): a negative size is a huge one, and the vector throws.
      if (topN < 0) return thrown('vector::_M_default_append');
      const ranks = byRelevance(plan.ranks!);
      if (topN < ranks.length) ranks.length = topN;
      plan.extra.tei = tei;
      plan.extra.returnText = tei && b.return_text === true;
      return plan;
    },
    error: (e) => renderError(view, e),
    reply(p) {
      const ranks = p.ranks ?? [];
      if (p.extra.tei === true) {
        const withText = p.extra.returnText === true;
        return jsonReply(200, ranks.map((r) => (withText ? { index: r.index, score: r.score, text: r.text } : { index: r.index, score: r.score })), JSON_UTF8);
      }
      return jsonReply(200, {
        model: p.model,
        object: 'list',
        usage: { prompt_tokens: p.promptTokens, total_tokens: p.promptTokens },
        results: ranks.map((r) => ({ index: r.index, relevance_score: r.score })),
      }, JSON_UTF8);
    },
    stream: null,
  };
}

function slot(view: EngineView, id: number, busy: boolean): Record<string, unknown> {
  return {
    id,
    id_task: busy ? id : -1,
    n_ctx: view.contextWindow,
    speculative: false,
    is_processing: busy,
    params: { n_predict: -1, seed: 4294967295, temperature: 0.8, top_k: 40, top_p: 0.95, min_p: 0.05, max_tokens: -1, stream: true },
    next_token: { has_next_token: busy, has_new_line: false, n_remain: -1, n_decoded: 0 },
  };
}

function metrics(view: EngineView): string {
  const l = view.load;
  const seconds = (tokens: number, perSecond: number): number => (perSecond > 0 ? tokens / perSecond : 0);
  const rows: [string, string, string, number][] = [
    ['prompt_tokens_total', 'counter', 'Number of prompt tokens processed.', l.promptTokens],
    ['prompt_seconds_total', 'counter', 'Prompt process time', (l.completed * view.timing.ttftMs) / 1000],
    ['tokens_predicted_total', 'counter', 'Number of generation tokens processed.', l.completionTokens],
    ['tokens_predicted_seconds_total', 'counter', 'Predict process time', seconds(l.completionTokens, view.timing.tokensPerSecond)],
    ['n_decode_total', 'counter', 'Total number of llama_decode() calls', l.completionTokens],
    ['n_busy_slots_per_decode', 'counter', 'Average number of busy slots per llama_decode() call', l.active],
    ['prompt_tokens_seconds', 'gauge', 'Average prompt throughput in tokens/s.', view.timing.ttftMs > 0 ? 1000 / view.timing.ttftMs : 0],
    ['predicted_tokens_seconds', 'gauge', 'Average generation throughput in tokens/s.', view.timing.tokensPerSecond],
    ['requests_processing', 'gauge', 'Number of requests processing.', l.active],
    ['requests_deferred', 'gauge', 'Number of requests deferred.', l.queued],
  ];
  let out = '';
  for (const [name, type, help, value] of rows) {
    out += `# HELP llamacpp:${name} ${help}\n# TYPE llamacpp:${name} ${type}\nllamacpp:${name} ${value}\n`;
  }
  return out;
}

export function createLlamacpp(view: EngineView): ProtocolImpl {
  const created = Math.floor(view.startedAt / 1000);
  const models = infoRoute(() => jsonReply(200, {
    models: [{
      name: view.model, model: view.model, modified_at: '', size: '', digest: '', type: 'model', description: '', tags: [''],
      capabilities: [view.kind === 'chat' ? 'completion' : 'embedding'], parameters: '',
      details: { parent_model: '', format: 'gguf', family: '', families: [''], parameter_size: '', quantization_level: '' },
    }],
    object: 'list',
    data: [{
      id: view.model, object: 'model', created, owned_by: 'llamacpp',
      meta: { vocab_type: 2, n_vocab: 151936, n_ctx_train: view.contextWindow, n_embd: view.dimensions, n_params: 7_615_616_512, size: 4_683_073_536 },
    }],
  }, JSON_UTF8));
  const health = infoRoute(() => jsonReply(200, { status: 'ok' }, JSON_UTF8), true);
  const chat = chatRoute(view);
  const completions = completionsRoute(view);
  const native = nativeCompletionRoute(view);
  const embeddings = embeddingsRoute(view, false);
  const routes = new Map<string, Route>([
    ['GET /health', health],
    ['GET /v1/health', health],
    ['GET /models', models],
    ['GET /v1/models', models],
    ['GET /props', infoRoute(() => jsonReply(200, {
      default_generation_settings: { ...slot(view, 0, false), prompt: '' },
      total_slots: view.timing.maxConcurrency,
      model_path: `/models/${view.model}.gguf`,
      chat_template: "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}",
      chat_template_caps: {},
      modalities: { vision: false, audio: false },
      build_info: BUILD_INFO,
      is_sleeping: false,
    }, JSON_UTF8))],
    ['GET /slots', infoRoute((_body, query) => {
      const busy = view.load.active;
      if (/(^|&)fail_on_no_slot=(1|true)(&|$)/.test(query) && busy >= view.timing.maxConcurrency) {
        return llamaError(503, 'no slot available');
      }
      const slots: Record<string, unknown>[] = [];
      for (let i = 0; i < view.timing.maxConcurrency; i++) slots.push(slot(view, i, i < busy));
      return jsonReply(200, slots, JSON_UTF8);
    })],
    ['GET /metrics', infoRoute(() => (view.metrics
      ? textReply(200, metrics(view), 'text/plain; version=0.0.4')
      : llamaError(501, 'This server does not support metrics endpoint. Start it with `--metrics`', 'not_supported_error')))],
    ['POST /v1/chat/completions', chat],
    ['POST /chat/completions', chat],
    ['POST /v1/completions', completions],
    ['POST /completions', native],
    ['POST /completion', native],
    ['POST /v1/embeddings', embeddings],
    ['POST /embedding', embeddingsRoute(view, true)],
  ]);
  const rerank = rerankRoute(view);
  for (const path of ['/rerank', '/reranking', '/v1/rerank', '/v1/reranking']) routes.set(`POST ${path}`, rerank);
  return {
    resolve: (method, path) => routes.get(`${method} ${path}`),
    notFound: () => llamaError(404, 'File Not Found'),
    needsKey: (path) => !PUBLIC_PATHS.has(path),
    unauthorized: () => llamaError(401, 'Invalid API Key'),
    // nlohmann's parse error escapes as a generic exception: a 500, not a 400.
    badJson: () => llamaError(500, '[json.exception.parse_error.101] parse error at line 1, column 1: syntax error while parsing value - invalid literal'),
    // /health is {"status":"ok"}, or 503 "Loading model" while it cannot serve: never another status.
    healthError: (status) => (status >= 500 ? llamaError(503, 'Loading model') : jsonReply(200, { status: 'ok' }, JSON_UTF8)),
  };
}
