// One model_list entry (a LiteLLM "deployment") → one fabric backend, with what the mapping
// needed to decide. Grouping deployments into roles happens in translate.ts.

import type { KeyPath } from '../issues.ts';
import { DEFAULT_TIMEOUTS, type RoleKind } from '../types.ts';
import { parseGoDuration } from '../units.ts';
import { describe, duration, envName, isObj, nonNegInt, positive, readNumber, seconds, slug, type NativeBackend, type NativeTimeouts, type Translation } from './context.ts';
import { matchProvider } from './providers.ts';
import { envRef, isPlaceholder, secretRef } from './secrets.ts';
import { DROP_PARAMS, GENERIC } from './sections.ts';

type Field = keyof NativeBackend;

export interface Deployment {
  index: number;
  group: string;
  kind: RoleKind;
  wildcard: boolean;
  backend: NativeBackend;
  /** The LiteLLM key each native backend field came from. */
  origins: Map<Field, KeyPath>;
  /** Comments for the imported file, by backend field ('' for the backend itself). */
  notes: Map<Field | '', string[]>;
  id: string | undefined;
  /** litellm_params.order: lower is tried first; Infinity when not set. */
  order: number;
  weight: number | undefined;
  rpm: number | undefined;
  tpm: number | undefined;
  maxInputTokens: number | undefined;
  dimensions: number | undefined;
  /** The model after its provider prefix, for wildcard checks. */
  providerModel: string;
  /** LiteLLM's name for the provider (openai, hosted_vllm, ollama_chat, …): what provider_budget_config keys name. */
  provider: string;
  /** input_cost_per_token / output_cost_per_token, as USD per 1M tokens. */
  price: DeploymentPrice | undefined;
}

export interface DeploymentPrice {
  input: number;
  output: number;
  /** A transcription deployment's input_cost_per_second, as USD per minute of audio. */
  audioMinute?: number;
  /** The LiteLLM key the price came from (the first one given). */
  path: KeyPath;
  note: string;
}

/** Router-wide values a deployment falls back on when its own litellm_params say nothing. */
export interface DeploymentDefaults {
  retries: { value: number; path: KeyPath | undefined };
  timeout: { s: number; path: KeyPath } | undefined;
  streamTimeout: { s: number; path: KeyPath } | undefined;
  maxConnections: { n: number; path: KeyPath } | undefined;
}

const ENTRY_KEYS = ['model_name', 'litellm_params', 'model_info', 'rpm', 'tpm'];

/** litellm_params keys this translation reads. */
const HANDLED_PARAMS = new Set([
  'model', 'api_base', 'api_key', 'custom_llm_provider', 'timeout', 'stream_timeout', 'max_retries', 'rpm', 'tpm', 'weight', 'order',
  'max_parallel_requests',
]);
/** Read for Ollama deployments only (ollamaParams). */
const OLLAMA_PARAMS = new Set(['num_ctx', 'keep_alive']);

const COST_KEYS = /cost_per|_cost$/;
/** The two cost keys that have a native equivalent: prices.<backend> {input, output}. */
const PRICE_KEYS = ['input_cost_per_token', 'output_cost_per_token'] as const;
/** LiteLLM prices Whisper by the second of audio (whisper-1: 0.0001): prices.<backend>.audio_minute. */
const AUDIO_PRICE_KEY = 'input_cost_per_second';
const OTHER_COST = 'not supported: prices are per token in and out (input_cost_per_token, output_cost_per_token) or per GPU hour (prices.<backend>.gpu_hour); ignored';

/** litellm_params LiteLLM uses as defaults merged into each request. */
const REQUEST_DEFAULTS = new Set(['temperature', 'max_tokens', 'max_completion_tokens', 'top_p', 'stop', 'seed', 'presence_penalty', 'frequency_penalty', 'response_format', 'n']);

const PARAM_MESSAGES: Record<string, string> = {
  drop_params: DROP_PARAMS,
  extra_headers: 'not supported yet: no extra headers are sent to the backend',
  headers: 'not supported yet: no extra headers are sent to the backend',
  organization: 'not supported yet: no OpenAI-Organization header is sent',
  api_version: 'not supported: only Azure uses it, and Azure is not supported yet',
  tags: 'not translated: tag-based routing (a request\'s or key\'s tags picking deployments) is not available; the deployment serves every request of its model_name. To route by caller, put the tagged deployments in a role of their own and send keys to it with a rule (rules: [{ if_key_metadata: { tier: free }, route_to: ROLE }])',
  mock_response: 'not supported: requests go to the backend',
};

/** model_info keys that only describe the model: nothing to route on. */
const DESCRIPTIVE_INFO = /^(max_output_tokens|base_model|description|litellm_provider|supports_.*|supported_openai_params|output_vector_size|db_model|team_id|access_groups|updated_at|updated_by|created_at|created_by)$/;

const EMBEDDING_NAME = /embed|(^|\/)bge-|(^|\/)e5-|(^|\/)gte-|minilm|mxbai|text-embedding/i;
/** Speech-to-text models, by name (LiteLLM routes whisper-1 to /audio/transcriptions by it too). */
const WHISPER_NAME = /whisper|transcribe/i;
/** Rerankers, by name (bge-reranker-v2-m3, mxbai-rerank-base-v1, jina-reranker-v2): before EMBEDDING_NAME, which bge- matches too. */
const RERANK_NAME = /rerank/i;

export function readDeployment(t: Translation, raw: unknown, index: number, d: DeploymentDefaults): Deployment | undefined {
  const p: KeyPath = ['model_list', index];
  if (!isObj(raw)) {
    t.r.error(p, `must be a mapping with model_name and litellm_params, got ${describe(raw)}`);
    return undefined;
  }
  for (const k of Object.keys(raw)) {
    if (!ENTRY_KEYS.includes(k)) t.r.warn([...p, k], 'not a model_list key LiteLLM reads; ignored', true);
  }
  const group = raw.model_name;
  if (typeof group !== 'string' || group.trim() === '') {
    t.r.error([...p, 'model_name'], `is required: the name clients ask for, got ${describe(group)}`);
    return undefined;
  }
  const lpPath: KeyPath = [...p, 'litellm_params'];
  const lp = raw.litellm_params;
  if (!isObj(lp) || typeof lp.model !== 'string' || lp.model.trim() === '') {
    t.r.error(isObj(lp) ? [...lpPath, 'model'] : lpPath, 'is required: litellm_params.model names the provider and model, e.g. hosted_vllm/Qwen/Qwen2.5-7B-Instruct');
    return undefined;
  }
  const mi = isObj(raw.model_info) ? raw.model_info : {};
  if (raw.model_info !== undefined && raw.model_info !== null && !isObj(raw.model_info)) t.r.warn([...p, 'model_info'], `must be a mapping, got ${describe(raw.model_info)}; ignored`);
  const origins = new Map<Field, KeyPath>();
  const notes = new Map<Field | '', string[]>();
  const note = (f: Field | '', s: string): void => { notes.set(f, [...(notes.get(f) ?? []), s]); };
  const modelPath: KeyPath = [...lpPath, 'model'];

  const apiBase = readApiBase(t, [...lpPath, 'api_base'], lp.api_base);
  if (apiBase === null) return undefined;
  const custom = typeof lp.custom_llm_provider === 'string' ? lp.custom_llm_provider : undefined;
  const provider = matchProvider(lp.model, custom, apiBase !== undefined);
  if (!provider.ok) {
    t.r.warn(modelPath, `${provider.message}; this deployment is left out`);
    return undefined;
  }
  const kind = readKind(t, [...p, 'model_info', 'mode'], mi.mode, provider.model);
  if (kind === undefined) return undefined;
  if (kind.guessed && kind.kind === 'embeddings') note('', 'no model_info.mode: embeddings, guessed from the model name (set mode: embedding to be sure)');
  if (kind.guessed && kind.kind === 'rerank') note('', 'no model_info.mode: a reranker, guessed from the model name (set mode: rerank to be sure)');

  let url = apiBase?.url;
  if (url === undefined && provider.provider === 'hosted_vllm') {
    const fromEnv = t.env('HOSTED_VLLM_API_BASE');
    if (fromEnv !== undefined) {
      url = fromEnv;
      note('url', 'from HOSTED_VLLM_API_BASE, as LiteLLM reads it');
    }
  }
  url ??= provider.spec.defaultBase;
  if (url === undefined) {
    t.r.warn([...lpPath, 'api_base'], `is required for ${provider.provider}/ (the server's URL, with /v1); this deployment is left out`);
    return undefined;
  }
  const official = /^https:\/\/api\.openai\.com(\/v1)?\/?$/.test(url);
  const engine = provider.spec.engine === 'openai' && !official ? 'openai-compatible' : provider.spec.engine;
  const backend: NativeBackend = { engine, model: provider.model };
  if (engine !== 'openai') backend.url = url;
  origins.set('engine', modelPath);
  origins.set('model', modelPath);
  origins.set('url', apiBase !== undefined ? [...lpPath, 'api_base'] : modelPath);
  if (apiBase?.env !== undefined) note('url', `api_base was os.environ/${apiBase.env}, read when imported`);
  if (provider.note !== undefined) note('engine', provider.note);
  if (engine === 'openai-compatible' && provider.provider === 'openai') note('engine', 'openai/ with an api_base: an OpenAI-compatible server');
  const basePath = pathOf(url);
  if ((engine === 'vllm' || engine === 'openai-compatible' || engine === 'lmstudio') && basePath !== undefined && !/\/v\d+\/?$/.test(basePath)) {
    t.r.warn([...lpPath, 'api_base'], `has no /v1: requests go to ${url.replace(/\/+$/, '')}/chat/completions, where OpenAI-compatible servers usually answer 404 (they serve under /v1)`);
  }

  const id = typeof mi.id === 'string' && mi.id.trim() !== '' ? mi.id : undefined;
  const placeholder = isPlaceholder(lp.api_key);
  const apiKey = placeholder ? undefined : secretRef(t, [...lpPath, 'api_key'], lp.api_key, envName(slug(id ?? group), 'API_KEY'));
  if (placeholder) {
    note('api_key', `api_key "${lp.api_key}" is a placeholder, not a key: none is sent`);
  } else if (apiKey !== undefined) {
    backend.api_key = apiKey;
    origins.set('api_key', [...lpPath, 'api_key']);
  } else if (lp.api_key === undefined && engine === 'openai' && provider.spec.defaultKeyEnv !== undefined) {
    backend.api_key = `env:${provider.spec.defaultKeyEnv}`;
    origins.set('api_key', modelPath);
    note('api_key', `no api_key: ${provider.spec.defaultKeyEnv}, as LiteLLM reads it`);
  } else if (lp.api_key === undefined && provider.provider === 'openai') {
    note('api_key', 'no api_key: LiteLLM would send OPENAI_API_KEY to this server; the gateway sends your OpenAI key only to OpenAI');
  }

  const ctx = readContext(t, p, mi);
  if (ctx !== undefined) {
    backend.context_window = ctx.tokens;
    origins.set('context_window', ctx.path);
  }
  if (engine === 'ollama') ollamaParams(t, lpPath, lp, backend, origins, note);

  const maxRetries = nonNegInt(t, [...lpPath, 'max_retries'], lp.max_retries);
  const retries = maxRetries ?? d.retries.value;
  backend.max_retries = Math.min(retries, 10);
  if (retries > 10) t.r.warn(maxRetries !== undefined ? [...lpPath, 'max_retries'] : d.retries.path ?? lpPath, `${retries} retries: the gateway retries a backend at most 10 times`);
  if (maxRetries !== undefined) origins.set('max_retries', [...lpPath, 'max_retries']);
  else if (d.retries.path !== undefined) origins.set('max_retries', d.retries.path);
  note('max_retries', maxRetries !== undefined ? 'litellm_params.max_retries'
    : d.retries.path === undefined ? 'num_retries not set: LiteLLM retries twice by default'
      : `num_retries: ${d.retries.value}`);

  const mpr = positive(t, [...lpPath, 'max_parallel_requests'], lp.max_parallel_requests);
  if (mpr !== undefined) {
    backend.max_connections = Math.max(1, Math.round(mpr));
    origins.set('max_connections', [...lpPath, 'max_parallel_requests']);
    note('max_connections', 'max_parallel_requests: requests beyond it wait for a connection');
  } else if (d.maxConnections !== undefined) {
    backend.max_connections = d.maxConnections.n;
    origins.set('max_connections', d.maxConnections.path);
  }

  const tm = timeouts(t, lpPath, lp, d);
  if (tm !== undefined) {
    backend.timeouts = tm.timeouts;
    origins.set('timeouts', tm.path);
    for (const n of tm.notes) note('timeouts', n);
  }

  const rpm = positive(t, [...lpPath, 'rpm'], lp.rpm ?? raw.rpm);
  const tpm = positive(t, [...lpPath, 'tpm'], lp.tpm ?? raw.tpm);
  for (const [k, v] of [['rpm', rpm], ['tpm', tpm]] as const) {
    if (v !== undefined) {
      t.r.warn(lp[k] !== undefined ? [...lpPath, k] : [...p, k],
        `not enforced yet: the gateway rate-limits keys (fabric keys create --${k}, per role with --role-limit), not backends; ${k} only weighs load balancing when no weight is set`);
    }
  }
  const weight = positive(t, [...lpPath, 'weight'], lp.weight);
  const order = positive(t, [...lpPath, 'order'], lp.order);

  for (const [k, v] of Object.entries(lp)) {
    if (HANDLED_PARAMS.has(k) || v === undefined || (engine === 'ollama' && OLLAMA_PARAMS.has(k))) continue;
    const kp = [...lpPath, k];
    if ((PRICE_KEYS as readonly string[]).includes(k) || (k === AUDIO_PRICE_KEY && kind.kind === 'transcription')) continue;
    if (COST_KEYS.test(k)) t.r.warn(kp, OTHER_COST, true);
    else if (REQUEST_DEFAULTS.has(k)) t.r.warn(kp, 'not supported yet: request defaults are not applied; the client\'s own parameters are sent', true);
    else t.r.warn(kp, PARAM_MESSAGES[k] ?? GENERIC, true);
  }
  for (const k of Object.keys(mi)) {
    if (['id', 'mode', 'max_tokens', 'max_input_tokens', ...PRICE_KEYS].includes(k) || (k === AUDIO_PRICE_KEY && kind.kind === 'transcription') || DESCRIPTIVE_INFO.test(k)) continue;
    const kp = [...p, 'model_info', k];
    t.r.warn(kp, COST_KEYS.test(k) ? OTHER_COST : GENERIC, true);
  }
  const price = readPrice(t, p, lp, mi, kind.kind === 'transcription');

  const dims = mi.output_vector_size;
  return {
    index, group, kind: kind.kind, wildcard: group.includes('*'), backend, origins, notes, id,
    order: order ?? Infinity, weight, rpm, tpm, maxInputTokens: ctx?.tokens,
    dimensions: typeof dims === 'number' && Number.isInteger(dims) && dims > 0 ? dims : undefined,
    providerModel: provider.model, provider: provider.provider, price,
  };
}

/** A cost per token as LiteLLM takes it: a number of US dollars (or its text). */
function costPerToken(t: Translation, path: KeyPath, v: unknown): number | undefined {
  return readNumber(t, path, v, (n) => Number.isFinite(n) && n >= 0, 'a cost in US dollars per token (e.g. 0.0000004)', 'ignore');
}

/** A number as people write it: 0.0000004, not 4e-7. */
function plain(n: number): string {
  return new Intl.NumberFormat('en-US', { useGrouping: false, maximumSignificantDigits: 15 }).format(n);
}

/** USD per token × 1,000,000, without the float noise of the product (0.0000004 × 1e6 = 0.39999999999999997). */
function perMillion(usdPerToken: number): number {
  return Number((usdPerToken * 1e6).toPrecision(12));
}

/**
 * input_cost_per_token / output_cost_per_token, in litellm_params (LiteLLM's custom pricing,
 * applied per call) or model_info: prices.<backend> {input, output} in USD per 1M tokens.
 * litellm_params wins when both say something; a side not given costs nothing.
 */
function readPrice(t: Translation, p: KeyPath, lp: Record<string, unknown>, mi: Record<string, unknown>, audio: boolean): DeploymentPrice | undefined {
  const got: Partial<Record<(typeof PRICE_KEYS)[number], { v: number; path: KeyPath }>> = {};
  for (const k of PRICE_KEYS) {
    const lpPath: KeyPath = [...p, 'litellm_params', k];
    const miPath: KeyPath = [...p, 'model_info', k];
    const fromParams = costPerToken(t, lpPath, lp[k]);
    const fromInfo = costPerToken(t, miPath, mi[k]);
    if (fromParams !== undefined && fromInfo !== undefined && fromParams !== fromInfo) {
      t.r.warn(miPath, `ignored: litellm_params.${k} (${plain(fromParams)}) is set too and is the price LiteLLM charges`, true);
    }
    if (fromParams !== undefined) got[k] = { v: fromParams, path: lpPath };
    else if (fromInfo !== undefined) got[k] = { v: fromInfo, path: miPath };
  }
  const i = got.input_cost_per_token;
  const o = got.output_cost_per_token;
  if (audio) {
    const where: KeyPath = lp[AUDIO_PRICE_KEY] !== undefined ? [...p, 'litellm_params', AUDIO_PRICE_KEY] : [...p, 'model_info', AUDIO_PRICE_KEY];
    const perSecond = readNumber(t, where, lp[AUDIO_PRICE_KEY] ?? mi[AUDIO_PRICE_KEY], (n) => Number.isFinite(n) && n >= 0, 'a cost in US dollars per second of audio (e.g. 0.0001)', 'ignore');
    if (perSecond !== undefined) {
      const perMinute = Number((perSecond * 60).toPrecision(12));
      return {
        input: perMillion(i?.v ?? 0), output: perMillion(o?.v ?? 0), audioMinute: perMinute, path: where,
        note: `USD per minute of audio: ${where.slice(2).join('.')} ${plain(perSecond)} → ${perMinute} (LiteLLM's USD per second × 60)`,
      };
    }
  }
  if (i === undefined && o === undefined) return undefined;
  const part = (name: string, x: { v: number; path: KeyPath } | undefined): string =>
    x === undefined ? `${name} not set: 0` : `${x.path.slice(2).join('.')} ${plain(x.v)} → ${perMillion(x.v)}`;
  return {
    input: perMillion(i?.v ?? 0),
    output: perMillion(o?.v ?? 0),
    path: (i ?? o)!.path,
    note: `USD per 1M tokens: ${part('input_cost_per_token', i)}; ${part('output_cost_per_token', o)} (LiteLLM's USD per token × 1,000,000)`,
  };
}

function pathOf(url: string): string | undefined {
  try {
    return new URL(url).pathname;
  } catch {
    return undefined; // the fabric schema reports the bad URL
  }
}

/** api_base as written or read from os.environ/NAME; null when it names an unset variable. */
function readApiBase(t: Translation, path: KeyPath, v: unknown): { url: string; env: string | undefined } | undefined | null {
  if (v === undefined || v === null || v === '') return undefined;
  const name = envRef(v);
  if (name !== undefined) {
    const value = t.env(name);
    if (value === undefined || value === '') {
      t.r.error(path, `os.environ/${name} is not set: the deployment has no URL`);
      return null;
    }
    return { url: value, env: name };
  }
  if (typeof v !== 'string') {
    t.r.error(path, `must be a URL, got ${describe(v)}`);
    return null;
  }
  return { url: v, env: undefined };
}

function readKind(t: Translation, path: KeyPath, mode: unknown, model: string): { kind: RoleKind; guessed: boolean } | undefined {
  if (mode === undefined || mode === null) {
    return { kind: RERANK_NAME.test(model) ? 'rerank' : EMBEDDING_NAME.test(model) ? 'embeddings' : WHISPER_NAME.test(model) ? 'transcription' : 'chat', guessed: true };
  }
  if (mode === 'chat' || mode === 'completion') return { kind: 'chat', guessed: false };
  if (mode === 'embedding') return { kind: 'embeddings', guessed: false };
  if (mode === 'audio_transcription') return { kind: 'transcription', guessed: false };
  if (mode === 'rerank') return { kind: 'rerank', guessed: false };
  t.r.warn(path, `mode ${describe(mode)} is not supported yet (chat, completion, embedding, audio_transcription and rerank are); this deployment is left out`);
  return undefined;
}

/**
 * What LiteLLM passes to Ollama as it is: num_ctx (the context the model is loaded with, which
 * the gateway sends from context_window) and keep_alive (seconds when a number, as Ollama reads it).
 */
function ollamaParams(t: Translation, lpPath: KeyPath, lp: Record<string, unknown>, backend: NativeBackend, origins: Map<Field, KeyPath>, note: (f: Field | '', s: string) => void): void {
  const numCtx = lp.num_ctx;
  if (numCtx !== undefined && numCtx !== null) {
    if (typeof numCtx === 'number' && Number.isInteger(numCtx) && numCtx > 0) {
      if (backend.context_window !== undefined && backend.context_window !== numCtx) note('context_window', `num_ctx ${numCtx}, the context Ollama loads the model with, over model_info's ${backend.context_window}`);
      backend.context_window = numCtx;
      origins.set('context_window', [...lpPath, 'num_ctx']);
    } else {
      t.r.warn([...lpPath, 'num_ctx'], `must be a whole number of tokens, got ${describe(numCtx)}; ignored`);
    }
  }
  const ka = lp.keep_alive;
  if (ka === undefined || ka === null) return;
  const value = typeof ka === 'number' && Number.isFinite(ka) ? (ka < 0 ? 'forever' : ka === 0 ? 0 : `${ka}s`)
    : typeof ka === 'string' && (ka.trim() === '0' || ka.trim() === '-1' || parseGoDuration(ka.trim()) !== undefined) ? ka.trim() : undefined;
  if (value === undefined) {
    t.r.warn([...lpPath, 'keep_alive'], `must be a number of seconds or a duration such as 10m, got ${describe(ka)}; ignored`);
    return;
  }
  backend.keep_alive = value === '-1' ? 'forever' : value;
  origins.set('keep_alive', [...lpPath, 'keep_alive']);
}

function readContext(t: Translation, p: KeyPath, mi: Record<string, unknown>): { tokens: number; path: KeyPath } | undefined {
  for (const k of ['max_input_tokens', 'max_tokens'] as const) {
    const v = mi[k];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
      t.r.warn([...p, 'model_info', k], `must be a whole number of tokens, got ${describe(v)}; ignored`);
      continue;
    }
    return { tokens: v, path: [...p, 'model_info', k] };
  }
  return undefined;
}

/**
 * LiteLLM's timeout is an httpx timeout: it bounds the connect and every read, so it is the
 * wait for a response to begin — for a unary request the whole answer, sent at the end — and
 * first_byte takes it; stream_timeout replaces it on a stream's reads, and idle takes it, or
 * else timeout. (LiteLLM waits stream_timeout for a stream's first chunk too; first_byte keeps
 * timeout, so that fabric render writes both back as they were.) A non-streamed answer's wait
 * is the total timeout's (vLLM and Ollama send it only once the whole generation is done);
 * total also bounds a whole stream, which LiteLLM does not, so timeout sets it only when
 * longer than the default.
 */
function timeouts(t: Translation, lpPath: KeyPath, lp: Record<string, unknown>, d: DeploymentDefaults): { timeouts: NativeTimeouts; path: KeyPath; notes: string[] } | undefined {
  const own = seconds(t, [...lpPath, 'timeout'], lp.timeout);
  const ownStream = seconds(t, [...lpPath, 'stream_timeout'], lp.stream_timeout);
  const T = own !== undefined ? { s: own, path: [...lpPath, 'timeout'] } : d.timeout;
  const S = ownStream !== undefined ? { s: ownStream, path: [...lpPath, 'stream_timeout'] } : d.streamTimeout;
  if (T === undefined && S === undefined) return undefined;
  const out: NativeTimeouts = {};
  const notes: string[] = [];
  const ms = (s: number): number => Math.round(s * 1000);
  out.first_byte = duration(ms((T ?? S)!.s));
  out.idle = duration(ms((S ?? T)!.s));
  if (T !== undefined) {
    if (ms(T.s) < DEFAULT_TIMEOUTS.connectMs) out.connect = duration(ms(T.s));
    const total = Math.max(ms(T.s), DEFAULT_TIMEOUTS.totalMs);
    if (total > DEFAULT_TIMEOUTS.totalMs) out.total = duration(total);
    const bounds = [...(out.connect === undefined ? [] : ['connecting (connect)']), S === undefined ? 'a stream\'s first token (first_byte) and each chunk after it (idle)' : 'a stream\'s first token (first_byte; LiteLLM waits stream_timeout for it)'];
    notes.push(`timeout ${T.s}s: ${bounds.join(', ')}; a non-streamed answer may take up to the total timeout (${duration(total)}), since vLLM and Ollama send it only once the whole generation is done`);
  }
  if (S !== undefined) notes.push(`stream_timeout ${S.s}s: ${T === undefined ? 'a stream\'s first token (first_byte) and ' : ''}each chunk after it (idle)`);
  return { timeouts: out, path: (T ?? S)!.path, notes };
}
