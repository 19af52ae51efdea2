// What Ollama's two API surfaces share: the library of pulled models, the error texts and
// statuses, option handling, and the nanosecond durations it reports.

import { createHash } from 'node:crypto';
import { chatText, promptItems, simLogprobs } from '../generate.ts';
import type { ChatText, PromptItem } from '../generate.ts';
import { GO_MAX_DURATION_MS, parseGoDuration } from '../../config/units.ts';
import { intField, isRecord, jsonReply, nowSeconds, randomId } from '../protocol.ts';
import type { EngineView, Plan, Reply, ServedModel, SimError } from '../protocol.ts';
import type { SimModelKind } from '../types.ts';
import { embeddingPlan } from './oai.ts';

/** The first with logprobs (0.12.11); truncate and shift came before. */
export const OLLAMA_VERSION = '0.12.11';
/** The context a model is loaded with when no request sets num_ctx: Ollama's default on GPUs under 24 GiB. */
export const DEFAULT_NUM_CTX = 4096;
export const JSON_UTF8 = 'application/json; charset=utf-8';
export const FINGERPRINT = 'fp_ollama';
const MAX_QUEUE_MESSAGE = 'server busy, please try again.  maximum pending requests exceeded';
const CONTEXT_MESSAGE = 'the input length exceeds the context length';

export interface OllamaModel {
  name: string;
  kind: SimModelKind;
  dimensions: number;
  digest: string;
  size: number;
  modifiedAt: string;
  details: Record<string, unknown>;
  family: string;
  /** The context it was trained for: num_ctx past it is this. */
  trained: number;
}

/** Ollama names default their tag to `latest`. */
function normalise(name: string): string {
  const slash = name.lastIndexOf('/');
  return name.indexOf(':', slash + 1) < 0 ? `${name}:latest` : name;
}

function describe(served: ServedModel, startedAt: number): OllamaModel {
  const { name, kind } = served;
  const digest = createHash('sha256').update(name).digest('hex');
  const base = (name.split(':')[0] ?? name).split('/').pop() ?? name;
  const family = kind === 'embeddings' ? 'bert' : base.replace(/[\d.]+$/, '') || base;
  const tag = /(\d+(?:\.\d+)?)b\b/i.exec(name);
  const parameterSize = tag ? `${tag[1]}B` : kind === 'embeddings' ? '137M' : '8.0B';
  return {
    name,
    kind,
    dimensions: served.dimensions,
    digest,
    size: 1_000_000_000 + (parseInt(digest.slice(0, 8), 16) % 6_000_000_000),
    modifiedAt: new Date(startedAt - 3 * 86_400_000).toISOString(),
    family,
    trained: served.contextWindow,
    details: {
      parent_model: '',
      format: 'gguf',
      family,
      families: [family],
      parameter_size: parameterSize,
      quantization_level: kind === 'embeddings' ? 'F16' : 'Q4_K_M',
    },
  };
}

export class Library {
  readonly models: OllamaModel[];
  readonly #byName = new Map<string, OllamaModel>();
  /** Models in memory: their context, and until when (undefined: the preloaded main model, always 5 minutes on). */
  readonly #loaded = new Map<OllamaModel, { ctx: number; until: number | undefined }>();

  constructor(view: EngineView) {
    this.models = view.models.map((m) => describe(m, view.startedAt));
    for (const m of this.models) this.#byName.set(normalise(m.name), m);
    // A fleet starts warm: the main model is in memory at the default context.
    this.#loaded.set(this.models[0]!, { ctx: contextWindow(this.models[0]!, {}), until: undefined });
  }

  find(name: string): OllamaModel | undefined {
    return this.#byName.get(normalise(name));
  }

  /**
   * A request loads `m` with context `ctx` and keeps it `keepAlive` (api.Duration: a number of
   * seconds or a Go duration string, negative for good; default 5 minutes). An unreadable
   * keep_alive is the 400 Ollama's JSON decoding gives.
   */
  hold(m: OllamaModel, ctx: number, keepAlive: unknown): SimError | undefined {
    const ms = keepAliveMs(keepAlive);
    if (ms === null) return { kind: 'bad-request', message: `time: invalid duration ${JSON.stringify(String(keepAlive))}` };
    // Go's time.Now().Add(math.MaxInt64) for good: some 292 years on, which `ollama ps` shows as Forever.
    if (ms === 0) this.#loaded.delete(m);
    else this.#loaded.set(m, { ctx, until: Date.now() + (ms < 0 ? GO_MAX_DURATION_MS : Math.min(ms, GO_MAX_DURATION_MS)) });
    return undefined;
  }

  /** What /api/ps lists: the models still loaded, with their context and expiry. */
  loaded(now: number): { model: OllamaModel; ctx: number; expiresAt: number }[] {
    const out: { model: OllamaModel; ctx: number; expiresAt: number }[] = [];
    for (const [model, l] of this.#loaded) {
      if (l.until !== undefined && l.until <= now) continue;
      out.push({ model, ctx: l.ctx, expiresAt: l.until ?? now + 5 * 60_000 });
    }
    return out;
  }
}

/** api.Duration's UnmarshalJSON, in ms: -1 for good, null when unreadable. */
function keepAliveMs(v: unknown): number | null {
  if (v === undefined || v === null) return 5 * 60_000;
  if (typeof v === 'number') return v < 0 ? -1 : v * 1000;
  if (typeof v !== 'string') return null;
  const ms = parseGoDuration(v);
  if (ms === undefined) return null;
  return ms < 0 ? -1 : ms;
}

// ---- errors ----------------------------------------------------------------------------

function failure(e: SimError): { status: number; message: string } {
  switch (e.kind) {
    case 'bad-request':
    case 'unsupported':
      return { status: e.status ?? 400, message: e.message ?? 'invalid request' };
    case 'model-not-found':
      return { status: 404, message: `model "${e.model ?? ''}" not found, try pulling it first` };
    case 'context-length':
      return { status: 400, message: e.message ?? CONTEXT_MESSAGE };
    case 'overloaded':
      return { status: 503, message: MAX_QUEUE_MESSAGE };
    case 'rate-limit':
      return { status: 429, message: 'too many requests, please retry later' };
    case 'server-error': {
      const status = e.status ?? 500;
      return { status, message: status === 500 ? 'llama runner process has terminated: exit status 2' : `unexpected server status ${status}` };
    }
  }
}

export function nativeError(e: SimError): Reply {
  const f = failure(e);
  return jsonReply(f.status, { error: f.message }, JSON_UTF8);
}

/** Ollama's openai.NewError: the type is derived from the status alone, code is always null. */
export function compatError(e: SimError): Reply {
  const f = failure(e);
  const type = f.status === 400 ? 'invalid_request_error' : f.status === 404 ? 'not_found_error' : 'api_error';
  return jsonReply(f.status, { error: { message: f.message, type, param: null, code: null } });
}

// ---- shared request checks -------------------------------------------------------------

function isModel(x: OllamaModel | SimError): x is OllamaModel {
  return 'digest' in x;
}

function requireModel(lib: Library, name: unknown): OllamaModel | SimError {
  if (typeof name !== 'string' || name === '') return { kind: 'bad-request', message: 'model is required' };
  return lib.find(name) ?? { kind: 'model-not-found', model: name };
}

/** The named model, which must exist and generate text: the check before a chat or generate. */
export function requireChatModel(lib: Library, name: unknown, verb: 'chat' | 'generate'): SimError | null {
  const m = requireModel(lib, name);
  if (!isModel(m)) return m;
  return m.kind === 'chat' ? null : { kind: 'unsupported', message: `"${String(name)}" does not support ${verb}` };
}

export function options(body: Record<string, unknown>): Record<string, unknown> {
  return isRecord(body.options) ? body.options : {};
}

/** num_predict: negative means unlimited, as in Ollama. */
export function numPredict(o: Record<string, unknown>): number | undefined {
  const n = o.num_predict;
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 ? n : undefined;
}

/**
 * The context the model runs with: the request's num_ctx, else the server's default, never more
 * than the model was trained for (the engine's window; Ollama logs "requested context size too
 * large for model" and uses that).
 */
export function contextWindow(m: OllamaModel, o: Record<string, unknown>): number {
  const asked = intField(o.num_ctx);
  return Math.min(asked !== undefined && asked > 0 ? asked : DEFAULT_NUM_CTX, m.trained);
}

/**
 * server/prompt.go's chatPrompt when truncating (the default): the oldest messages go until the
 * prompt fits, system messages stay, the last message always stays; the runner then cuts what
 * still does not fit. The answer reads as if the model had seen everything.
 */
export function fitChat(messages: unknown[], ctx: number): ChatText {
  for (let i = 1; i < messages.length; i++) {
    const kept = [...messages.slice(0, i).filter((m) => isRecord(m) && m.role === 'system'), ...messages.slice(i)];
    const t = chatText(kept)!;
    if (t.promptTokens <= ctx || i === messages.length - 1) return { ...t, promptTokens: Math.min(t.promptTokens, ctx) };
  }
  const all = chatText(messages)!;
  return { ...all, promptTokens: ctx };
}

export function generationLimit(max: number | undefined, ctx: number, prompt: number): number {
  const room = Math.max(0, ctx - prompt);
  return max === undefined ? room : Math.min(max, room);
}

/** Nanosecond durations consistent with the engine's configured speed. */
export function durations(view: EngineView, p: Plan): Record<string, number> {
  const load = 1_250_000;
  const promptEval = Math.round(view.timing.ttftMs * 1e6);
  const evalNs = Math.round((p.completionTokens * 1e9) / view.timing.tokensPerSecond);
  return {
    total_duration: load + promptEval + evalNs + 250_000,
    load_duration: load,
    prompt_eval_count: p.promptTokens,
    prompt_eval_duration: promptEval,
    eval_count: p.completionTokens,
    eval_duration: evalNs,
  };
}

export function isoNow(): string {
  return new Date().toISOString();
}

export function loadPlan(model: string): Plan {
  return {
    id: '', created: nowSeconds(), model, stream: false, includeUsage: false, promptTokens: 0, completionTokens: 0,
    choices: [], steps: 0, vectors: null, ranks: null, base64: false, extra: { load: true },
  };
}

export function nativeStream(body: unknown): boolean {
  return !isRecord(body) || body.stream !== false;
}

/** Ollama embeds strings only; token-id inputs are rejected. */
function stringInputs(input: unknown): PromptItem[] | undefined {
  if (input === '' || (Array.isArray(input) && input.length === 0)) return [];
  if (typeof input === 'string') return promptItems(input, false);
  if (Array.isArray(input) && input.every((x) => typeof x === 'string')) return promptItems(input);
  return undefined;
}

export function planEmbeddings(
  view: EngineView, lib: Library, body: unknown, inputKey: 'input' | 'prompt', base64: boolean,
): Plan | SimError {
  if (!isRecord(body)) return { kind: 'bad-request', message: 'invalid request body' };
  const m = requireModel(lib, body.model);
  if (!isModel(m)) return m;
  const inputs = stringInputs(body[inputKey]);
  if (inputs === undefined) return { kind: 'bad-request', message: 'invalid input type' };
  const ctx = contextWindow(m, options(body));
  // Ollama cuts over-long inputs to the window unless told not to.
  if (body.truncate === false && inputs.some((i) => i.tokens > ctx)) return { kind: 'context-length', message: 'input exceeds maximum context length' };
  const held = lib.hold(m, ctx, body.keep_alive);
  if (held !== undefined) return held;
  const requested = intField(body.dimensions);
  const dims = requested !== undefined && requested > 0 && requested < m.dimensions ? requested : m.dimensions;
  return embeddingPlan({ model: body.model as string, inputs, dimensions: dims, base64, idPrefix: '', truncateAt: ctx });
}

// Listings name a model with its tag, `latest` included (ListHandler's DisplayShortest: "tag
// should never be masked"), whatever name it was pulled or asked by.
export function tagEntry(m: OllamaModel): Record<string, unknown> {
  const name = normalise(m.name);
  return { name, model: name, modified_at: m.modifiedAt, size: m.size, digest: m.digest, details: m.details };
}

/** A model as /v1/models lists it (its tagged name), or as /v1/models/{id} names it (the id asked for). */
export function v1Model(m: OllamaModel, id = normalise(m.name)): Record<string, unknown> {
  return { id, object: 'model', created: Math.floor(Date.parse(m.modifiedAt) / 1000), owned_by: 'library' };
}

/** Ollama 0.12.11+: the top_logprobs a request asked for (0..20), or its 400; undefined when logprobs are not asked. */
export function logprobsAsked(body: Record<string, unknown>): number | SimError | undefined {
  const top = typeof body.top_logprobs === 'number' ? body.top_logprobs : 0;
  // server/routes.go checks the range whether or not logprobs is set.
  if (top < 0 || top > 20) return { kind: 'bad-request', message: 'top_logprobs must be between 0 and 20' };
  return body.logprobs === true ? top : undefined;
}

/**
 * api/types.go Logprob for each token: {token, logprob, bytes, top_logprobs}, the last only
 * when some were asked for (omitempty).
 */
export function tokenLogprobs(tokens: readonly string[], from: number, top: number): Record<string, unknown>[] {
  return simLogprobs(tokens, from, top).map((e) => ({ token: e.token, logprob: e.logprob, bytes: e.bytes, ...(top > 0 ? { top_logprobs: e.top } : {}) }));
}

/** server/routes.go toolCallId: "call_" and 8 lowercase letters and digits, given to each call the model makes. */
export function toolCallId(): string {
  return `call_${randomId('abcdefghijklmnopqrstuvwxyz0123456789', 8)}`;
}

/**
 * Go's json.Marshal of decoded JSON: a map's keys sorted (0.12's tool call arguments are a
 * map[string]any, whatever order the model wrote them in), and <, >, &, U+2028 and U+2029 escaped.
 */
export function goJson(v: unknown): string {
  const sorted = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map(sorted);
    if (!isRecord(x)) return x;
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(x).sort()) out[k] = sorted(x[k]);
    return out;
  };
  return JSON.stringify(sorted(v)).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
