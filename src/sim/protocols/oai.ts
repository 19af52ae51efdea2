// What every OpenAI-style endpoint (vLLM, llama.cpp, Ollama's /v1, OpenAI itself) shares:
// reading requests, planning, and the framing of a chunked SSE stream. The payloads stay
// with each engine: their fields, and the order it writes them in, are what tells them apart.

import { chatText, countWords, embedding, embeddingBase64, embeddingFloats, promptItems, relevance, replyTokens } from '../generate.ts';
import type { ChatText, PromptItem } from '../generate.ts';
import { GARBAGE_SSE, choiceText, hexId, infoRoute, intField, isRecord, limitTokens, nowSeconds, stopAt } from '../protocol.ts';
import type { Plan, PlannedChoice, ProtocolImpl, RankedDocument, Reply, Route, SimError, StreamShape } from '../protocol.ts';
import { SSE_CONTENT_TYPE, SSE_DONE, sseEvent } from '../sse.ts';
import type { ReplyShape } from '../structured.ts';

export interface ChatRequest {
  model: string | undefined;
  text: ChatText;
  maxTokens: number | undefined;
  /** choices asked for; undefined when absent. Each engine checks the range its server allows. */
  n: number | undefined;
  stream: boolean;
  includeUsage: boolean;
}

export interface CompletionRequest {
  model: string | undefined;
  prompts: PromptItem[];
  maxTokens: number | undefined;
  /** choices per prompt; undefined when absent */
  n: number | undefined;
  stream: boolean;
  includeUsage: boolean;
}

export interface EmbeddingsRequest {
  model: string | undefined;
  inputs: PromptItem[];
  base64: boolean;
  dimensions: number | undefined;
}

function badRequest(message: string, param?: string): SimError {
  return { kind: 'bad-request', message, param };
}

function modelOf(body: Record<string, unknown>): string | undefined {
  return typeof body.model === 'string' && body.model !== '' ? body.model : undefined;
}

function includeUsage(body: Record<string, unknown>): boolean {
  return isRecord(body.stream_options) && body.stream_options.include_usage === true;
}

/** `n`: undefined when absent or null, null when it is not an integer. */
function choiceCount(v: unknown): number | undefined | null {
  if (v === undefined || v === null) return undefined;
  return typeof v === 'number' && Number.isInteger(v) ? v : null;
}

export function wantsStream(body: unknown): boolean {
  return isRecord(body) && body.stream === true;
}

export function parseChatRequest(body: unknown): ChatRequest | SimError {
  if (!isRecord(body)) return badRequest('request body must be a JSON object');
  const text = chatText(body.messages);
  if (text === undefined) return badRequest("'messages' is a required property and must be an array of message objects", 'messages');
  const n = choiceCount(body.n);
  if (n === null) return badRequest("'n' must be an integer", 'n');
  return {
    model: modelOf(body),
    text,
    maxTokens: intField(body.max_completion_tokens) ?? intField(body.max_tokens),
    n,
    stream: body.stream === true,
    includeUsage: includeUsage(body),
  };
}

export function parseCompletionRequest(body: unknown): CompletionRequest | SimError {
  if (!isRecord(body)) return badRequest('request body must be a JSON object');
  const prompts = promptItems(body.prompt);
  if (prompts === undefined) return badRequest("'prompt' must be a string, an array of strings, or an array of token ids", 'prompt');
  const n = choiceCount(body.n);
  if (n === null) return badRequest("'n' must be an integer", 'n');
  return {
    model: modelOf(body),
    prompts,
    maxTokens: intField(body.max_tokens),
    n,
    stream: body.stream === true,
    includeUsage: includeUsage(body),
  };
}

export function parseEmbeddingsRequest(body: unknown): EmbeddingsRequest | SimError {
  if (!isRecord(body)) return badRequest('request body must be a JSON object');
  const inputs = promptItems(body.input);
  if (inputs === undefined) return badRequest("'input' must be a string, an array of strings, or an array of token ids", 'input');
  const format = body.encoding_format;
  if (format !== undefined && format !== null && format !== 'float' && format !== 'base64') {
    return badRequest(`Invalid value for 'encoding_format' = ${String(format)}. Supported values: ['float', 'base64'].`, 'encoding_format');
  }
  return {
    model: modelOf(body),
    inputs,
    base64: format === 'base64',
    dimensions: intField(body.dimensions),
  };
}

export interface TextItem {
  seed: string;
  promptTokens: number;
  promptText: string;
}

export interface TextPlanArgs {
  model: string;
  stream: boolean;
  includeUsage: boolean;
  items: TextItem[];
  maxTokens: number | undefined;
  /** choices per item (the request's `n`); default 1 */
  n?: number;
  idPrefix: string;
  id?: string;
  extra?: Record<string, unknown>;
  /** a tool call or JSON instead of prose (structured.ts); the same for every choice */
  shape?: ReplyShape;
  /** a tool call's id, as the engine makes them; default OpenAI's call_ and 24 characters */
  toolCallId?: () => string;
  /** stop strings (the request's `stop`): a prose reply ends before the first that appears in it */
  stop?: readonly string[];
}

/**
 * Choice `i * n + j` is prompt i's j-th sample, the order vLLM and OpenAI index them in. A
 * prompt's tokens count once however many samples it has: it is prefilled once.
 */
export function textPlan(a: TextPlanArgs): Plan {
  const n = a.n ?? 1;
  const choices: PlannedChoice[] = [];
  let promptTokens = 0;
  let completionTokens = 0;
  let steps = 0;
  const callId = a.toolCallId ?? ((): string => `call_${hexId().slice(0, 24)}`);
  for (const item of a.items) {
    promptTokens += item.promptTokens;
    for (let j = 0; j < n; j++) {
      let { tokens, finish } = limitTokens(a.shape?.tokens ?? replyTokens(item.seed, j), a.maxTokens);
      const stopped = a.shape === undefined && a.stop !== undefined ? stopAt(tokens, a.stop) : undefined;
      if (stopped !== undefined) {
        tokens = stopped.tokens;
        finish = 'stop';
      }
      const call = a.shape?.toolCall;
      choices.push({
        index: choices.length, tokens, finish: call !== undefined && finish === 'stop' ? 'tool_calls' : finish, promptTokens: item.promptTokens, promptText: item.promptText,
        ...(call === undefined ? {} : { toolCall: { id: callId(), name: call.name } }),
        ...(stopped === undefined ? {} : { stopSequence: stopped.matched }),
      });
      completionTokens += tokens.length;
      if (tokens.length > steps) steps = tokens.length;
    }
  }
  return {
    id: a.id ?? `${a.idPrefix}${hexId()}`,
    created: nowSeconds(),
    model: a.model,
    stream: a.stream,
    includeUsage: a.includeUsage,
    promptTokens,
    completionTokens,
    choices,
    steps,
    vectors: null,
    ranks: null,
    base64: false,
    extra: a.extra ?? {},
  };
}

/** A streamed chat token: text, or a piece of a tool call's arguments (the first piece names the call). */
export function tokenDelta(c: PlannedChoice, i: number): Record<string, unknown> {
  const call = c.toolCall;
  if (call === undefined) return { content: c.tokens[i] };
  return { tool_calls: [i === 0 ? { id: call.id, type: 'function', index: 0, function: { name: call.name, arguments: c.tokens[0] } } : { index: 0, function: { arguments: c.tokens[i] } }] };
}

/** A whole choice's message fields: its text, or no text and its tool call. */
export function messageFields(c: PlannedChoice): { content: string | null; tool_calls?: unknown[] } {
  const call = c.toolCall;
  if (call === undefined) return { content: choiceText(c) };
  return { content: null, tool_calls: [{ id: call.id, type: 'function', function: { name: call.name, arguments: choiceText(c) } }] };
}

export function chatItems(text: ChatText): TextItem[] {
  return [{ seed: text.seed, promptTokens: text.promptTokens, promptText: text.rendered }];
}

export function promptTextItems(prompts: PromptItem[]): TextItem[] {
  return prompts.map((p) => ({ seed: p.text, promptTokens: p.tokens, promptText: p.text }));
}

export interface EmbeddingPlanArgs {
  model: string;
  inputs: PromptItem[];
  dimensions: number;
  base64: boolean;
  idPrefix: string;
  /** input tokens beyond this are cut off, as engines that truncate do */
  truncateAt?: number;
}

export function embeddingPlan(a: EmbeddingPlanArgs): Plan {
  let promptTokens = 0;
  const vectors: Float32Array[] = [];
  for (const input of a.inputs) {
    promptTokens += a.truncateAt === undefined ? input.tokens : Math.min(input.tokens, a.truncateAt);
    vectors.push(embedding(input.text, a.dimensions));
  }
  return {
    id: `${a.idPrefix}${hexId()}`,
    created: nowSeconds(),
    model: a.model,
    stream: false,
    includeUsage: false,
    promptTokens,
    completionTokens: 0,
    choices: [],
    steps: 0,
    vectors,
    ranks: null,
    base64: a.base64,
    extra: {},
  };
}

export interface RankPlanArgs {
  id: string;
  model: string;
  /** one query for every document, or one per document (vLLM's N:N score) */
  queries: readonly string[];
  documents: readonly string[];
  /** what a pair adds to its two texts: the engine's special tokens (a cross-encoder's separators) */
  pairOverhead: number;
  /** each pair is cut to this many tokens, as engines that truncate do */
  truncateAt?: number;
}

/**
 * A rerank or score request: each (query, document) pair scored by relevance(), in the
 * request's order; the engine sorts and cuts them as it answers. Engines count a rerank's
 * tokens per pair, the query once for each document, so the prompt is the sum of the pairs.
 */
export function rankPlan(a: RankPlanArgs): Plan {
  const ranks: RankedDocument[] = [];
  let promptTokens = 0;
  const single = a.queries.length === 1;
  const queryTokens = single ? countWords(a.queries[0]!) : 0;
  for (let index = 0; index < a.documents.length; index++) {
    const query = single ? a.queries[0]! : a.queries[index]!;
    const text = a.documents[index]!;
    const tokens = (single ? queryTokens : countWords(query)) + countWords(text) + a.pairOverhead;
    promptTokens += a.truncateAt === undefined ? tokens : Math.min(tokens, a.truncateAt);
    ranks.push({ index, text, score: relevance(query, text), tokens });
  }
  return {
    id: a.id, created: nowSeconds(), model: a.model, stream: false, includeUsage: false, promptTokens, completionTokens: 0,
    choices: [], steps: 0, vectors: null, ranks, base64: false, extra: {},
  };
}

/** Best first; equal scores keep the request's order (Python's stable sort; llama.cpp's std::sort promises no order for ties). */
export function byRelevance(ranks: RankedDocument[]): RankedDocument[] {
  return ranks.sort((x, y) => y.score - x.score || x.index - y.index);
}

/** The largest pair of a rank plan: what a context check compares. */
export function largestPair(p: Plan): number {
  let m = 0;
  for (const r of p.ranks ?? []) if (r.tokens > m) m = r.tokens;
  return m;
}

/** The largest prompt among the plan's choices: what a context check compares. */
export function largestPrompt(items: readonly { promptTokens: number }[]): number {
  let m = 0;
  for (const i of items) if (i.promptTokens > m) m = i.promptTokens;
  return m;
}

export function largestInput(items: readonly PromptItem[]): number {
  let m = 0;
  for (const i of items) if (i.tokens > m) m = i.tokens;
  return m;
}

/**
 * The events of an OpenAI-style stream that differ between engines, each returning one
 * event's payload. The framing is common: opening events per choice, one event per token
 * of each choice still running, closing events per choice, the usage event when
 * `stream_options.include_usage` asked for it, then `[DONE]`.
 */
export interface SseEvents {
  /** the role delta that opens each choice, for engines that send one */
  open?: (p: Plan, c: PlannedChoice) => unknown;
  /** a token's event (undefined: none for this token, as for the pieces of a tool call sent whole) */
  token: (p: Plan, c: PlannedChoice, i: number) => unknown;
  /** the event that closes each choice with its finish reason, for engines that send one apart (undefined: none for this choice) */
  finish?: (p: Plan, c: PlannedChoice) => unknown;
  /** the choices-less usage event, for engines that send one */
  usage?: (p: Plan) => unknown;
  /** the rest of the stream when generation fails after it began: the engine's error event and terminator, if any */
  failure: (p: Plan) => string;
}

export function sseStream(ev: SseEvents): StreamShape {
  const { open, token, finish, usage, failure } = ev;
  return {
    contentType: SSE_CONTENT_TYPE,
    begin(p) {
      let out = '';
      if (open !== undefined) for (const c of p.choices) out += sseEvent(open(p, c));
      return out;
    },
    step(p, i) {
      let out = '';
      for (const c of p.choices) {
        if (i >= c.tokens.length) continue;
        const e = token(p, c, i);
        if (e !== undefined) out += sseEvent(e);
      }
      return out;
    },
    end(p) {
      let out = '';
      if (finish !== undefined) {
        for (const c of p.choices) {
          const e = finish(p, c);
          if (e !== undefined) out += sseEvent(e);
        }
      }
      if (usage !== undefined && p.includeUsage) out += sseEvent(usage(p));
      return out + SSE_DONE;
    },
    garbage: GARBAGE_SSE,
    failure,
  };
}

/** The plain usage object, in OpenAI's key order. */
export function tokenUsage(p: Plan): { prompt_tokens: number; completion_tokens: number; total_tokens: number } {
  return { prompt_tokens: p.promptTokens, completion_tokens: p.completionTokens, total_tokens: p.promptTokens + p.completionTokens };
}

/** An embedding as `encoding_format` asked for it. */
export function encodeVector(p: Plan, v: Float32Array): number[] | string {
  return p.base64 ? embeddingBase64(v) : embeddingFloats(v);
}

const MODEL_PREFIX = '/v1/models/';

/** Route lookup plus the one parameterised OpenAI path, GET /v1/models/{id}. */
export function resolveWithRetrieve(routes: ReadonlyMap<string, Route>, retrieve: (id: string) => Reply): ProtocolImpl['resolve'] {
  return (method, path) => {
    const r = routes.get(`${method} ${path}`);
    if (r !== undefined || method !== 'GET' || !path.startsWith(MODEL_PREFIX)) return r;
    const id = decodeURIComponent(path.slice(MODEL_PREFIX.length));
    return infoRoute(() => retrieve(id));
  };
}

/** The simulated audio: 16 kHz 16-bit mono PCM, 32,000 bytes a second. */
export const AUDIO_BYTES_PER_SECOND = 32_000;

/**
 * What an uploaded file "says", the same on every engine: words drawn from its bytes' digest,
 * three a second at most 40, and how long it is.
 */
export function audioPlan(id: string, model: string, file: { size: number; digest: string }, stream: boolean, includeUsage: boolean, extra: Record<string, unknown>): Plan {
  const seconds = file.size / AUDIO_BYTES_PER_SECOND;
  const words = replyTokens(file.digest).slice(0, Math.max(1, Math.min(40, Math.round(seconds * 3))));
  const promptTokens = Math.ceil(seconds * 100) + 4;
  return {
    id, created: Math.floor(Date.now() / 1000), model, stream, includeUsage, promptTokens, completionTokens: words.length,
    choices: [{ index: 0, tokens: words, finish: 'stop', promptTokens, promptText: '' }],
    steps: words.length, vectors: null, ranks: null, base64: false, extra: { seconds, ...extra },
  };
}

/** The plan's text in segments (two halves), with their times: what verbose answers and subtitles are made of. */
export function audioSegments(p: Plan): { start: number; end: number; text: string; tokens: readonly string[] }[] {
  const tokens = p.choices[0]!.tokens;
  const seconds = p.extra.seconds as number;
  const half = Math.ceil(tokens.length / 2);
  const parts = [tokens.slice(0, half), tokens.slice(half)].filter((t) => t.length > 0);
  const at = (i: number): number => Math.round((seconds * i) / parts.length * 100) / 100;
  return parts.map((t, i) => ({ start: at(i), end: at(i + 1), text: t.join(''), tokens: t }));
}
