// api.openai.com's shapes: `refusal: null` and `annotations` on messages, full usage
// details, `service_tier` and `system_fingerprint`, `usage: null` on every chunk when
// usage was asked for, and `{"error":{message,type,param,code}}` errors with string codes.

import { embedding } from '../generate.ts';
import { choiceText, hexId, infoRoute, isSimError, jsonReply, servedModel } from '../protocol.ts';
import type {
  EngineView, FinishReason, InferenceRoute, Plan, PlannedChoice, ProtocolImpl, Reply, Route, ServedModel, SimError,
} from '../protocol.ts';
import {
  chatItems, embeddingPlan, encodeVector, largestInput, largestPrompt, messageFields, parseChatRequest, parseCompletionRequest,
  parseEmbeddingsRequest, promptTextItems, resolveWithRetrieve, sseStream, textPlan, tokenDelta, tokenUsage, wantsStream, audioPlan, audioSegments,
} from './oai.ts';
import { replyShape } from '../structured.ts';
import { subtitles } from '../../engines/audio.ts';
import { sseEvent } from '../sse.ts';

/** A generation that fails mid-stream: OpenAI's error event, and the stream ends without [DONE]. */
const STREAM_FAILURE = sseEvent({
  error: { message: 'The server had an error while processing your request. Sorry about that!', type: 'server_error', param: null, code: null },
});

type Endpoint = 'chat' | 'completions' | 'embeddings';

const FINGERPRINT = 'fp_sim0f1e2d3c';
/** The API's bounds on `n`. */
const MAX_N = 128;

function oaiError(status: number, message: string, type: string, code: string | null = null, param: string | null = null): Reply {
  const r = jsonReply(status, { error: { message, type, param, code } });
  r.headers['x-request-id'] = `req_${hexId()}`;
  return r;
}

function contextError(endpoint: Endpoint, ctx: number, prompt: number, max: number | undefined): Reply {
  if (endpoint === 'chat') {
    const message = max !== undefined && max > 0
      ? `This model's maximum context length is ${ctx} tokens. However, you requested ${prompt + max} tokens (${prompt} in the messages, ${max} in the completion). Please reduce the length of the messages or completion.`
      : `This model's maximum context length is ${ctx} tokens. However, your messages resulted in ${prompt} tokens. Please reduce the length of the messages.`;
    return oaiError(400, message, 'invalid_request_error', 'context_length_exceeded', 'messages');
  }
  const completion = max ?? 0;
  return oaiError(
    400,
    `This model's maximum context length is ${ctx} tokens, however you requested ${prompt + completion} tokens (${prompt} in your prompt; ${completion} for the completion). Please reduce your prompt; or completion length.`,
    'invalid_request_error',
    'context_length_exceeded',
    endpoint === 'embeddings' ? 'input' : 'prompt',
  );
}

function renderError(view: EngineView, endpoint: Endpoint, e: SimError): Reply {
  switch (e.kind) {
    case 'bad-request':
      return oaiError(e.status ?? 400, e.message ?? 'Bad request', 'invalid_request_error', e.code ?? null, e.param ?? null);
    case 'unsupported':
      return oaiError(e.status ?? 400, e.message ?? 'Unsupported request', 'invalid_request_error');
    case 'model-not-found':
      return oaiError(404, `The model \`${e.model ?? ''}\` does not exist or you do not have access to it.`, 'invalid_request_error', 'model_not_found');
    case 'context-length': {
      const ctx = e.contextWindow ?? view.contextWindow;
      return contextError(endpoint, ctx, e.promptTokens ?? ctx + 1, e.maxTokens);
    }
    case 'overloaded':
      return oaiError(503, 'The engine is currently overloaded, please try again later', 'server_error');
    case 'rate-limit': {
      const wait = e.retryAfterS ?? 1;
      return oaiError(
        429,
        `Rate limit reached for ${view.model} in organization org-sim on requests per min (RPM): Limit 500, Used 500, Requested 1. Please try again in ${wait}s. Visit https://platform.openai.com/account/rate-limits to learn more.`,
        'requests',
        'rate_limit_exceeded',
      );
    }
    case 'server-error': {
      const status = e.status ?? 500;
      const message = status === 500
        ? 'The server had an error while processing your request. Sorry about that!'
        : status === 503 ? 'The engine is currently overloaded, please try again later' : `HTTP ${status}`;
      return oaiError(status, message, 'server_error');
    }
  }
}

function fullUsage(p: Plan): Record<string, unknown> {
  return {
    ...tokenUsage(p),
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
  };
}

function withRequestId(r: Reply): Reply {
  r.headers['x-request-id'] = `req_${hexId()}`;
  r.headers['openai-processing-ms'] = '1';
  return r;
}

/** The model a request names, which it must: OpenAI has no default model. */
function findModel(view: EngineView, requested: string | undefined): ServedModel | SimError {
  if (requested === undefined) return { kind: 'bad-request', message: 'you must provide a model parameter', param: 'model' };
  return servedModel(view, requested) ?? { kind: 'model-not-found', model: requested };
}

function isServed(m: ServedModel | SimError): m is ServedModel {
  return 'name' in m;
}

function checkContext(m: ServedModel, prompt: number, max: number | undefined): SimError | null {
  const ctx = m.contextWindow;
  return prompt + (max ?? 0) > ctx ? { kind: 'context-length', promptTokens: prompt, maxTokens: max, contextWindow: ctx } : null;
}

function checkN(n: number | undefined): SimError | null {
  if (n === undefined || (n >= 1 && n <= MAX_N)) return null;
  return n < 1
    ? { kind: 'bad-request', param: 'n', code: 'integer_below_min_value', message: `Invalid 'n': integer below minimum value. Expected a value >= 1, but got ${n} instead.` }
    : { kind: 'bad-request', param: 'n', code: 'integer_above_max_value', message: `Invalid 'n': integer above maximum value. Expected a value <= ${MAX_N}, but got ${n} instead.` };
}

function chatRoute(view: EngineView): InferenceRoute {
  const chunk = (p: Plan, choices: unknown[]): Record<string, unknown> => {
    const c: Record<string, unknown> = {
      id: p.id, object: 'chat.completion.chunk', created: p.created, model: p.model,
      service_tier: 'default', system_fingerprint: FINGERPRINT, choices,
    };
    if (p.includeUsage) c.usage = null;
    return c;
  };
  const stream = sseStream({
    failure: () => STREAM_FAILURE,
    open: (p, c) => chunk(p, [{ index: c.index, delta: { role: 'assistant', content: '', refusal: null }, logprobs: null, finish_reason: null }]),
    token: (p, c, i) => chunk(p, [{ index: c.index, delta: tokenDelta(c, i), logprobs: null, finish_reason: null }]),
    finish: (p, c) => chunk(p, [{ index: c.index, delta: {}, logprobs: null, finish_reason: c.finish }]),
    usage: (p) => ({ ...chunk(p, []), usage: fullUsage(p) }),
  });
  return {
    kind: 'inference',
    wantsStream,
    plan(body) {
      const r = parseChatRequest(body);
      if (isSimError(r)) return r;
      const m = findModel(view, r.model);
      if (!isServed(m)) return m;
      const bad = checkN(r.n);
      if (bad) return bad;
      if (m.kind !== 'chat') {
        return {
          kind: 'unsupported', status: 404,
          message: 'This is not a chat model and thus not supported in the v1/chat/completions endpoint. Did you mean to use v1/completions?',
        };
      }
      const items = chatItems(r.text);
      const ctxErr = checkContext(m, largestPrompt(items), r.maxTokens);
      if (ctxErr) return ctxErr;
      return textPlan({
        model: m.name, stream: r.stream, includeUsage: r.includeUsage, items, maxTokens: r.maxTokens, n: r.n, idPrefix: 'chatcmpl-',
        shape: replyShape(body as Record<string, unknown>, r.text.seed, 'openai'),
      });
    },
    error: (e) => renderError(view, 'chat', e),
    reply(p) {
      return withRequestId(jsonReply(200, {
        id: p.id, object: 'chat.completion', created: p.created, model: p.model,
        choices: p.choices.map((c) => ({
          index: c.index,
          message: { role: 'assistant', ...messageFields(c), refusal: null, annotations: [] },
          logprobs: null, finish_reason: c.finish,
        })),
        usage: fullUsage(p),
        service_tier: 'default',
        system_fingerprint: FINGERPRINT,
      }));
    },
    stream,
  };
}

function completionsRoute(view: EngineView): InferenceRoute {
  const chunk = (p: Plan, text: string, c: PlannedChoice, finish: FinishReason | null): Record<string, unknown> => ({
    id: p.id, object: 'text_completion', created: p.created, choices: [{ text, index: c.index, logprobs: null, finish_reason: finish }], model: p.model,
  });
  const stream = sseStream({
    failure: () => STREAM_FAILURE,
    token: (p, c, i) => chunk(p, c.tokens[i]!, c, null),
    finish: (p, c) => chunk(p, '', c, c.finish),
    usage: (p) => ({ id: p.id, object: 'text_completion', created: p.created, model: p.model, choices: [], usage: tokenUsage(p) }),
  });
  return {
    kind: 'inference',
    wantsStream,
    plan(body) {
      const r = parseCompletionRequest(body);
      if (isSimError(r)) return r;
      const m = findModel(view, r.model);
      if (!isServed(m)) return m;
      const bad = checkN(r.n);
      if (bad) return bad;
      if (m.kind !== 'chat') return { kind: 'unsupported', status: 404, message: 'This model does not support the v1/completions endpoint.' };
      const max = r.maxTokens ?? 16;
      const items = promptTextItems(r.prompts);
      const ctxErr = checkContext(m, largestPrompt(items), max);
      if (ctxErr) return ctxErr;
      return textPlan({ model: m.name, stream: r.stream, includeUsage: r.includeUsage, items, maxTokens: max, n: r.n, idPrefix: 'cmpl-' });
    },
    error: (e) => renderError(view, 'completions', e),
    reply(p) {
      return withRequestId(jsonReply(200, {
        id: p.id, object: 'text_completion', created: p.created, model: p.model,
        choices: p.choices.map((c) => ({ text: choiceText(c), index: c.index, logprobs: null, finish_reason: c.finish })),
        usage: tokenUsage(p),
      }));
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
      const m = findModel(view, r.model);
      if (!isServed(m)) return m;
      if (m.kind !== 'embeddings') return { kind: 'unsupported', message: `The model \`${m.name}\` does not support embeddings.` };
      const dims = r.dimensions ?? m.dimensions;
      if (dims < 1 || dims > m.dimensions) {
        return { kind: 'bad-request', message: `This model does not support ${dims} dimensions; use between 1 and ${m.dimensions}.`, param: 'dimensions' };
      }
      const longest = largestInput(r.inputs);
      if (longest > m.contextWindow) return { kind: 'context-length', promptTokens: longest, contextWindow: m.contextWindow };
      const plan = embeddingPlan({ model: m.name, inputs: r.inputs, dimensions: m.dimensions, base64: r.base64, idPrefix: '' });
      // text-embedding-3 models shorten natively: a shorter vector is its own normalised embedding.
      if (dims !== m.dimensions) plan.vectors = r.inputs.map((i) => embedding(i.text, dims));
      return plan;
    },
    error: (e) => renderError(view, 'embeddings', e),
    reply(p) {
      return withRequestId(jsonReply(200, {
        object: 'list',
        data: (p.vectors ?? []).map((v, index) => ({ object: 'embedding', index, embedding: encodeVector(p, v) })),
        model: p.model,
        usage: { prompt_tokens: p.promptTokens, total_tokens: p.promptTokens },
      }));
    },
    stream: null,
  };
}

function maskKey(k: string): string {
  return k.length <= 8 ? '*'.repeat(k.length) : `${k.slice(0, 3)}${'*'.repeat(Math.min(20, k.length - 7))}${k.slice(-4)}`;
}

const AUDIO_FORMATS = new Set(['json', 'text', 'srt', 'verbose_json', 'vtt']);
const LANGUAGES: Record<string, string> = { en: 'english', de: 'german', fr: 'french' };

/**
 * OpenAI's /v1/audio/transcriptions and translations as whisper-1 answers them: every format
 * (text, srt and vtt as text), verbose JSON with a numeric duration and the language's name, a
 * duration usage on transcriptions, and `stream` ignored: the answer comes whole.
 */
function audioRoute(view: EngineView, op: 'transcriptions' | 'translations'): InferenceRoute {
  return {
    kind: 'inference',
    wantsStream: () => false,
    plan(body) {
      const form = body as { fields?: Record<string, unknown>; files?: Record<string, { size: number; digest: string }> } | string | undefined;
      if (typeof form !== 'object' || form.fields === undefined || form.files === undefined) return { kind: 'bad-request', message: 'Could not parse multipart form' };
      const f = form.fields;
      const file = form.files.file;
      if (file === undefined) return { kind: 'bad-request', message: "1 validation error for Request\nbody -> file\n  field required (type=value_error.missing)", param: 'file' };
      const m = findModel(view, typeof f.model === 'string' ? f.model : undefined);
      if (!isServed(m)) return m;
      if (m.kind !== 'transcription') return { kind: 'bad-request', message: `Invalid model ${m.name}. The model argument should be left blank.`, param: 'model' };
      const format = typeof f.response_format === 'string' ? f.response_format : 'json';
      if (!AUDIO_FORMATS.has(format)) return { kind: 'bad-request', message: `Invalid value: '${format}'. Supported values are: 'json', 'text', 'srt', 'verbose_json', and 'vtt'.`, param: 'response_format', code: 'invalid_value' };
      return audioPlan(`req_${hexId()}`, m.name, file, false, false, { format, language: LANGUAGES[typeof f.language === 'string' ? f.language : 'en'] ?? 'english' });
    },
    error: (e) => renderError(view, 'chat', e),
    reply(p) {
      const text = p.choices[0]!.tokens.join('').trim();
      const seconds = p.extra.seconds as number;
      const usage = op === 'transcriptions' ? { usage: { type: 'duration', seconds: Math.ceil(seconds) } } : {};
      const cues = audioSegments(p);
      switch (p.extra.format) {
        case 'text': return withRequestId({ status: 200, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: `${text}\n` });
        case 'srt': case 'vtt': return withRequestId({ status: 200, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: subtitles(p.extra.format, cues.map((c) => ({ ...c, text: c.text.trim() }))) });
        case 'verbose_json': return withRequestId(jsonReply(200, {
          task: op === 'transcriptions' ? 'transcribe' : 'translate', language: p.extra.language, duration: Math.round(seconds * 100) / 100, text,
          segments: cues.map((c, id) => ({ id, seek: 0, start: c.start, end: c.end, text: c.text, tokens: [50364, 400], temperature: 0, avg_logprob: -0.3, compression_ratio: 1.1, no_speech_prob: 0.01 })),
          ...usage,
        }));
        default: return withRequestId(jsonReply(200, { text, ...usage }));
      }
    },
    stream: null,
  };
}

export function createOpenai(view: EngineView): ProtocolImpl {
  const created = Math.floor(view.startedAt / 1000) - 86_400;
  const card = (id: string): Record<string, unknown> => ({ id, object: 'model', created, owned_by: 'system' });
  const cards = view.models.map((m) => card(m.name));
  const routes = new Map<string, Route>([
    ['GET /v1/models', infoRoute(() => withRequestId(jsonReply(200, { object: 'list', data: cards })))],
    ['POST /v1/chat/completions', chatRoute(view)],
    ['POST /v1/completions', completionsRoute(view)],
    ['POST /v1/embeddings', embeddingsRoute(view)],
    ['POST /v1/audio/transcriptions', audioRoute(view, 'transcriptions')],
    ['POST /v1/audio/translations', audioRoute(view, 'translations')],
  ]);
  const retrieve = (id: string): Reply => (servedModel(view, id) !== undefined
    ? withRequestId(jsonReply(200, card(id)))
    : oaiError(404, `The model '${id}' does not exist`, 'invalid_request_error', 'model_not_found', 'model'));
  return {
    resolve: resolveWithRetrieve(routes, retrieve),
    notFound: (method, path) => oaiError(404, `Invalid URL (${method} ${path})`, 'invalid_request_error'),
    needsKey: () => true,
    unauthorized: (presented) => {
      const key = presented?.startsWith('Bearer ') ? presented.slice(7) : undefined;
      return key === undefined || key === ''
        ? oaiError(401, "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/api-keys.", 'invalid_request_error')
        : oaiError(401, `Incorrect API key provided: ${maskKey(key)}. You can find your API key at https://platform.openai.com/account/api-keys.`, 'invalid_request_error', 'invalid_api_key');
    },
    badJson: () => oaiError(400, "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)", 'invalid_request_error'),
    healthError: (status) => oaiError(status, 'The server had an error while processing your request. Sorry about that!', 'server_error'),
  };
}
