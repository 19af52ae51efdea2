// Ollama: the native API (/api/chat and /api/generate streaming NDJSON by default, durations
// in nanoseconds, `{"error":"…"}` errors), the listing endpoints, and the /v1 layer from
// ollama-compat.ts.

import { chatText, embeddingFloats, promptItems, tokenIds } from '../generate.ts';
import { GARBAGE_NDJSON, choiceText, infoRoute, isRecord, jsonReply, stopStrings, textReply } from '../protocol.ts';
import type { EngineView, InferenceRoute, InfoRoute, Plan, PlannedChoice, ProtocolImpl, Reply, Route, StreamShape } from '../protocol.ts';
import { replyShape } from '../structured.ts';
import { NDJSON_CONTENT_TYPE, ndjsonLine } from '../sse.ts';
import { chatItems, resolveWithRetrieve, textPlan } from './oai.ts';
import { v1Chat, v1Completions, v1Embeddings } from './ollama-compat.ts';
import {
  JSON_UTF8, Library, OLLAMA_VERSION, compatError, contextWindow, durations, generationLimit, isoNow,
  fitChat, loadPlan, logprobsAsked, nativeError, nativeStream, numPredict, options, planEmbeddings, requireChatModel, tagEntry, tokenLogprobs, toolCallId, v1Model,
} from './ollama-shared.ts';

/** The top-level `logprobs` of a line carrying the reply's tokens [from, to), when the request asked for them. */
function logprobsField(p: Plan, from: number, to: number): Record<string, unknown> {
  const top = p.extra.topLogprobs;
  return typeof top === 'number' ? { logprobs: tokenLogprobs(p.choices[0]!.tokens.slice(from, to), from, top) } : {};
}

// ---- native API ------------------------------------------------------------------------

/**
 * A completed tool call as Ollama sends it: arguments as an object, on a message with no text
 * (Ollama parses the model's call out of its output and sends it whole once it is complete).
 */
function ollamaToolCalls(c: PlannedChoice): Record<string, unknown>[] | undefined {
  if (c.toolCall === undefined || c.finish !== 'tool_calls') return undefined;
  return [{ id: c.toolCall.id, function: { index: 0, name: c.toolCall.name, arguments: JSON.parse(choiceText(c)) as unknown } }];
}

/** A generation that fails mid-stream: the handler writes the error as one more line (the status is already 200). */
const STREAM_FAILURE = ndjsonLine({ error: 'an error was encountered while running the model: unexpected EOF' });

/** Ollama reports a reply that ended in a tool call as stopped. */
function doneReason(c: PlannedChoice): string {
  return c.finish === 'tool_calls' ? 'stop' : c.finish;
}

function apiChat(view: EngineView, lib: Library): InferenceRoute {
  const stream: StreamShape = {
    contentType: NDJSON_CONTENT_TYPE,
    begin: () => '',
    step: (p, i) => {
      const c = p.choices[0]!;
      const calls = ollamaToolCalls(c);
      if (calls !== undefined) {
        return i === c.tokens.length - 1 ? ndjsonLine({ model: p.model, created_at: isoNow(), message: { role: 'assistant', content: '', tool_calls: calls }, done: false }) : '';
      }
      return ndjsonLine({
        model: p.model, created_at: isoNow(), message: { role: 'assistant', content: c.tokens[i] }, done: false,
        ...logprobsField(p, i, i + 1),
      });
    },
    end: (p) => ndjsonLine({
      model: p.model, created_at: isoNow(), message: { role: 'assistant', content: '' },
      done_reason: doneReason(p.choices[0]!), done: true, ...durations(view, p),
    }),
    garbage: GARBAGE_NDJSON,
    failure: () => STREAM_FAILURE,
  };
  return {
    kind: 'inference',
    wantsStream: nativeStream,
    plan(body) {
      if (!isRecord(body)) return { kind: 'bad-request', message: 'invalid request body' };
      const bad = requireChatModel(lib, body.model, 'chat');
      if (bad) return bad;
      const name = body.model as string;
      const m = lib.find(name)!;
      if (body.messages === undefined || body.messages === null || (Array.isArray(body.messages) && body.messages.length === 0)) return loadPlan(name);
      const top = logprobsAsked(body);
      if (typeof top === 'object') return top;
      const whole = chatText(body.messages);
      if (whole === undefined) return { kind: 'bad-request', message: 'invalid message format' };
      const o = options(body);
      const ctx = contextWindow(m, o);
      if (whole.promptTokens > ctx && body.truncate === false) return { kind: 'context-length', promptTokens: whole.promptTokens };
      const held = lib.hold(m, ctx, body.keep_alive);
      if (held !== undefined) return held;
      const text = whole.promptTokens > ctx ? fitChat(body.messages as unknown[], ctx) : whole;
      return textPlan({
        model: name, stream: nativeStream(body), includeUsage: false, items: chatItems(text),
        maxTokens: generationLimit(numPredict(o), body.shift === false ? ctx : Infinity, text.promptTokens), idPrefix: '', id: '', extra: { topLogprobs: top },
        shape: replyShape(body, whole.seed, 'ollama'), toolCallId, stop: stopStrings(o.stop),
      });
    },
    error: nativeError,
    reply(p) {
      if (p.extra.load === true) {
        return jsonReply(200, { model: p.model, created_at: isoNow(), message: { role: 'assistant', content: '' }, done_reason: 'load', done: true }, JSON_UTF8);
      }
      const c = p.choices[0]!;
      const calls = ollamaToolCalls(c);
      return jsonReply(200, {
        model: p.model, created_at: isoNow(),
        message: calls === undefined ? { role: 'assistant', content: choiceText(c) } : { role: 'assistant', content: '', tool_calls: calls },
        done_reason: doneReason(c), done: true, ...durations(view, p), ...(calls === undefined ? logprobsField(p, 0, c.tokens.length) : {}),
      }, JSON_UTF8);
    },
    stream,
  };
}

function apiGenerate(view: EngineView, lib: Library): InferenceRoute {
  const context = (p: Plan): number[] => tokenIds(p.choices[0]!.promptText, p.promptTokens + p.completionTokens);
  const stream: StreamShape = {
    contentType: NDJSON_CONTENT_TYPE,
    begin: () => '',
    step: (p, i) => ndjsonLine({
      model: p.model, created_at: isoNow(), response: p.choices[0]!.tokens[i], done: false, ...logprobsField(p, i, i + 1),
    }),
    end: (p) => ndjsonLine({
      model: p.model, created_at: isoNow(), response: '', done: true, done_reason: p.choices[0]!.finish,
      context: context(p), ...durations(view, p),
    }),
    garbage: GARBAGE_NDJSON,
    failure: () => STREAM_FAILURE,
  };
  return {
    kind: 'inference',
    wantsStream: nativeStream,
    plan(body) {
      if (!isRecord(body)) return { kind: 'bad-request', message: 'invalid request body' };
      const bad = requireChatModel(lib, body.model, 'generate');
      if (bad) return bad;
      const name = body.model as string;
      const m = lib.find(name)!;
      const top = logprobsAsked(body);
      if (typeof top === 'object') return top;
      const prompt = typeof body.prompt === 'string' ? body.prompt : '';
      if (prompt === '') return loadPlan(name);
      const system = typeof body.system === 'string' ? body.system : '';
      const items = promptItems(system === '' ? prompt : `${system}\n${prompt}`, false) ?? [];
      const promptTokens = items[0]?.tokens ?? 0;
      const o = options(body);
      const ctx = contextWindow(m, o);
      if (promptTokens > ctx && body.truncate === false) return { kind: 'context-length', promptTokens };
      const held = lib.hold(m, ctx, body.keep_alive);
      if (held !== undefined) return held;
      // The runner keeps what fits (num_keep tokens from the start, the rest from the end).
      const read = Math.min(promptTokens, ctx);
      return textPlan({
        model: name, stream: nativeStream(body), includeUsage: false,
        items: [{ seed: prompt, promptTokens: read, promptText: prompt }],
        maxTokens: generationLimit(numPredict(o), body.shift === false ? ctx : Infinity, read), idPrefix: '', id: '', extra: { topLogprobs: top },
      });
    },
    error: nativeError,
    reply(p) {
      if (p.extra.load === true) {
        return jsonReply(200, { model: p.model, created_at: isoNow(), response: '', done: true, done_reason: 'load' }, JSON_UTF8);
      }
      const c = p.choices[0]!;
      return jsonReply(200, {
        model: p.model, created_at: isoNow(), response: choiceText(c), done: true, done_reason: c.finish,
        context: context(p), ...durations(view, p), ...logprobsField(p, 0, c.tokens.length),
      }, JSON_UTF8);
    },
    stream,
  };
}

function apiEmbed(view: EngineView, lib: Library): InferenceRoute {
  return {
    kind: 'inference',
    wantsStream: () => false,
    plan: (body) => planEmbeddings(view, lib, body, 'input', false),
    error: nativeError,
    reply(p) {
      const d = durations(view, p);
      return jsonReply(200, {
        model: p.model,
        embeddings: (p.vectors ?? []).map(embeddingFloats),
        total_duration: d.total_duration,
        load_duration: d.load_duration,
        prompt_eval_count: p.promptTokens,
      }, JSON_UTF8);
    },
    stream: null,
  };
}

function apiEmbeddingsLegacy(view: EngineView, lib: Library): InferenceRoute {
  return {
    kind: 'inference',
    wantsStream: () => false,
    plan: (body) => planEmbeddings(view, lib, body, 'prompt', false),
    error: nativeError,
    reply: (p) => jsonReply(200, { embedding: p.vectors?.[0] === undefined ? [] : embeddingFloats(p.vectors[0]) }, JSON_UTF8),
    stream: null,
  };
}

// ---- listing endpoints -----------------------------------------------------------------

function show(view: EngineView, lib: Library): InfoRoute {
  return {
    kind: 'info',
    handle(body) {
      const name = isRecord(body) ? (typeof body.model === 'string' ? body.model : body.name) : undefined;
      if (typeof name !== 'string' || name === '') return jsonReply(400, { error: 'model is required' }, JSON_UTF8);
      const m = lib.find(name);
      if (m === undefined) return jsonReply(404, { error: `model '${name}' not found` }, JSON_UTF8);
      return jsonReply(200, {
        license: '',
        modelfile: `# Modelfile generated by "ollama show"\nFROM ${m.name}\n`,
        parameters: 'stop                           "<|im_end|>"',
        template: '{{ .Prompt }}',
        details: m.details,
        model_info: {
          'general.architecture': m.family,
          [`${m.family}.context_length`]: m.trained,
          [`${m.family}.embedding_length`]: m.dimensions,
        },
        capabilities: m.kind === 'chat' ? ['completion', 'tools'] : ['embedding'],
        modified_at: m.modifiedAt,
      }, JSON_UTF8);
    },
  };
}

export function createOllama(view: EngineView): ProtocolImpl {
  const lib = new Library(view);
  const root = infoRoute(() => textReply(200, 'Ollama is running'));
  const v1List = infoRoute(() => jsonReply(200, { object: 'list', data: lib.models.map((m) => v1Model(m)) }));
  const routes = new Map<string, Route>([
    ['GET /', root],
    ['HEAD /', root],
    ['GET /api/version', infoRoute(() => jsonReply(200, { version: OLLAMA_VERSION }, JSON_UTF8))],
    ['GET /api/tags', infoRoute(() => jsonReply(200, { models: lib.models.map(tagEntry) }, JSON_UTF8))],
    ['GET /api/ps', infoRoute(() => {
      const now = Date.now();
      return jsonReply(200, {
        models: lib.loaded(now).map((l) => ({
          ...tagEntry(l.model), expires_at: new Date(l.expiresAt).toISOString(), size_vram: l.model.size, context_length: l.ctx,
        })),
      }, JSON_UTF8);
    })],
    ['POST /api/show', show(view, lib)],
    ['POST /api/chat', apiChat(view, lib)],
    ['POST /api/generate', apiGenerate(view, lib)],
    ['POST /api/embed', apiEmbed(view, lib)],
    ['POST /api/embeddings', apiEmbeddingsLegacy(view, lib)],
    ['GET /v1/models', v1List],
    ['POST /v1/chat/completions', v1Chat(view, lib)],
    ['POST /v1/completions', v1Completions(view, lib)],
    ['POST /v1/embeddings', v1Embeddings(view, lib)],
  ]);
  const retrieve = (id: string): Reply => {
    const m = lib.find(id);
    return m === undefined ? compatError({ kind: 'model-not-found', model: id }) : jsonReply(200, v1Model(m, id));
  };
  return {
    resolve: resolveWithRetrieve(routes, retrieve),
    // gin's default: plain text, and 404 even for a known path with the wrong method.
    notFound: () => textReply(404, '404 page not found'),
    // Ollama has no keys of its own; a key means a proxy in front, which guards every path but the banner.
    needsKey: (path) => path !== '/',
    unauthorized: () => jsonReply(401, { error: 'unauthorized' }, JSON_UTF8),
    badJson: (path) => (path.startsWith('/v1/')
      ? compatError({ kind: 'bad-request', message: 'invalid character looking for beginning of value' })
      : nativeError({ kind: 'bad-request', message: 'invalid character looking for beginning of value' })),
    healthError: (status) => nativeError({ kind: 'server-error', status }),
  };
}
