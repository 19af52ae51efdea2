// The fabric configuration after validation: the single source of config types.

export const ENGINE_KINDS = ['vllm', 'ollama', 'llamacpp', 'openai-compatible', 'lmstudio', 'sglang', 'openai'] as const;
export type EngineKind = (typeof ENGINE_KINDS)[number];

export const NODE_POWER = ['always-on', 'workstation'] as const;
export type NodePower = (typeof NODE_POWER)[number];

export const ROLE_KINDS = ['chat', 'embeddings', 'transcription', 'rerank'] as const;
export type RoleKind = (typeof ROLE_KINDS)[number];
/** A kind as a sentence names it ("`x` is an embeddings model"), and the endpoint that serves it. */
export const KIND_NAMES: Readonly<Record<RoleKind, string>> = { chat: 'a chat', embeddings: 'an embeddings', transcription: 'a transcription', rerank: 'a reranking' };
export const KIND_ENDPOINTS: Readonly<Record<RoleKind, string>> = {
  chat: '/v1/chat/completions', embeddings: '/v1/embeddings', transcription: '/v1/audio/transcriptions', rerank: '/v1/rerank',
};

export const STRATEGIES = ['round-robin', 'weighted', 'least-outstanding', 'least-loaded'] as const;
export type Strategy = (typeof STRATEGIES)[number];

/** A secret is never a value in the config model, only where to find it. */
export interface SecretRef { env: string }

export interface GpuSpec {
  model: string;
  memoryBytes: number;
  /** Memory other processes hold on this GPU (a desktop, a display server); the planner keeps it free. */
  reservedBytes?: number;
}

/** Where a Wake-on-LAN magic packet for a node goes: its MAC, sent to a broadcast address and UDP port. */
export interface WolTarget { mac: string; broadcast: string; port: number }

export interface NodeConfig {
  name: string;
  power: NodePower;
  address: string | undefined;
  gpus: GpuSpec[];
  wol?: WolTarget;
  /** How engines on this node are deployed (fabric render); absent means docker on linux. */
  runtime?: ContainerRuntime;
  os?: NodeOs;
}

/** When passive and probed health takes a backend out of rotation, and for how long. */
export interface HealthPolicy {
  /** Consecutive failures (traffic or probes) that cool a backend down. */
  failureThreshold: number;
  /** The first cooldown; each further trip doubles it, up to maxCooldownMs. */
  cooldownMs: number;
  maxCooldownMs: number;
  /** A backend whose p95 latency (or streams' time to first token) passes this over the last minutes is slow: a warning. Off when undefined. */
  slowMs?: number;
}

/** A role by its name or one of its aliases. */
export function roleByName(roles: ReadonlyMap<string, RoleConfig>, name: string): RoleConfig | undefined {
  const direct = roles.get(name);
  if (direct !== undefined) return direct;
  for (const r of roles.values()) if (r.aliases.includes(name)) return r;
  return undefined;
}

export const DEFAULT_HEALTH_POLICY: Readonly<HealthPolicy> = Object.freeze({ failureThreshold: 3, cooldownMs: 30_000, maxCooldownMs: 300_000 });

export interface Timeouts {
  connectMs: number;
  firstByteMs: number;
  idleMs: number;
  totalMs: number;
}

export interface BackendConfig {
  name: string;
  engine: EngineKind;
  node: string | undefined;
  /** Base URL including the API prefix for OpenAI-style engines (…/v1); the server root for Ollama. */
  url: string;
  model: string;
  apiKey: SecretRef | undefined;
  contextWindow: number | undefined;
  /** Ollama only: how long the model stays loaded after a request, in seconds; -1 for good. Undefined: Ollama's own (5 minutes). */
  keepAliveSeconds?: number;
  weight: number;
  maxRetries: number;
  maxConnections: number;
  timeouts: Timeouts;
  /** Names that route to this backend alone, with no fallback (the seeds' "physical aliases"). */
  aliases: string[];
  /**
   * Names this backend had before a rename: usage recorded under them still counts in the
   * budgets that count this backend (budget spend is summed by backend name).
   */
  formerly?: string[];
  simulated: boolean;
  /** Resolved from the backend's health block over gateway.health; absent means the defaults. */
  health?: HealthPolicy;
  /** A paid cloud API: probes and smoke checks never bill it unless asked. Default: engine openai or a public host. */
  cloud?: boolean;
  /** How fabric plan sizes and fabric render launches this backend's engine; absent: not deployed by the fabric. */
  serve?: ServeConfig;
}

const LOOPBACK_HOSTS: ReadonlySet<string> = new Set(['localhost', '[::1]', '::1']);

/** Whether a host name (a URL's hostname, or a listen address) is this machine's loopback. */
export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_HOSTS.has(host) || host.startsWith('127.');
}

/**
 * The context an Ollama backend's model is loaded with: the gateway sends it as num_ctx on every
 * request, and fabric plan and render size the engine by it. Its context_window (the window
 * the gateway routes by), else its serve.max_model_len; undefined: the server's default.
 */
export function ollamaNumCtx(b: Pick<BackendConfig, 'contextWindow' | 'serve'>): number | undefined {
  return b.contextWindow ?? b.serve?.maxModelLen;
}

/**
 * Sends a role's request elsewhere when every condition it sets holds (at least one is set);
 * a role's rules are tried in the order written, and the first that applies wins.
 */
export interface RoleRule {
  /** The input, counted with a tokenizer, is longer than this. */
  inputTokensOver?: number;
  /** The request's virtual key is one of these (by name). */
  keys?: string[];
  /** The request's virtual key's metadata has each of these entries: one of the values listed, compared as text. */
  keyMetadata?: Record<string, string[]>;
  /** The request carries each of these: an image or audio content part, tools to call. */
  inputHas?: InputFeature[];
  routeTo: string;
}

export const INPUT_FEATURES = ['image', 'audio', 'tools'] as const;
export type InputFeature = typeof INPUT_FEATURES[number];

export interface RoleConfig {
  name: string;
  kind: RoleKind;
  backends: string[];
  aliases: string[];
  fallbacks: string[];
  contextWindowFallback: string | undefined;
  strategy: Strategy;
  rules: RoleRule[];
  dimensions: number | undefined;
  description: string | undefined;
  /** Keep a conversation on the backend that served it while healthy and not overloaded (prefix-cache hits). */
  affinity?: boolean;
  /** The response cache for this role: off (false), or its own ttl / when over gateway.cache's; undefined: gateway.cache's. */
  cache?: false | Partial<CachePolicy>;
}

export interface PatternRoute {
  match: string;
  kind: RoleKind;
  backends: string[];
  strategy: Strategy;
}

export interface Limits {
  maxBodyBytes: number;
  /** An audio upload's body (/v1/audio/transcriptions and translations): OpenAI's own limit is 25 MB. */
  maxAudioBytes: number;
  /** Bytes of request bodies still arriving, all connections together (src/http/body-budget.ts). */
  maxBodyInFlightBytes: number;
  maxHeaderBytes: number;
  maxTokens: number;
  maxN: number;
  maxBestOf: number;
  /** Prompts in one legacy completions request (a batch: each is generated n times). */
  maxPrompts: number;
  /** Documents in one rerank request (each is scored against the query: a pass of the model each). */
  maxDocuments: number;
  maxAttempts: number;
}

export interface GatewayHealth extends HealthPolicy {
  probeTimeoutMs: number;
  /** How often engines' load (/metrics, /api/ps, /slots) is read; 0 turns load polling off. */
  loadIntervalMs: number;
}

export interface WakeConfig {
  /** Send magic packets on demand when a request needs a sleeping node. */
  enabled: boolean;
  /** At most one packet per node in this window. */
  minIntervalMs: number;
  /** How long a node counts as "waking" after a packet, probed often, before it is "off" again. */
  bootTimeoutMs: number;
}

export const ALERT_FORMATS = ['slack', 'json'] as const;
export type AlertFormat = (typeof ALERT_FORMATS)[number];
export const ALERT_LEVELS = ['info', 'warning', 'critical'] as const;
export type NotifyLevel = (typeof ALERT_LEVELS)[number];

export interface AlertsConfig {
  /** The webhook URL, or where to find it (a Slack webhook URL is itself a secret). */
  webhook: SecretRef | { url: string };
  format: AlertFormat;
  intervalMs: number;
  /** Quiet period between two notifications; changes inside it are coalesced into one. */
  minIntervalMs: number;
  /** Only changes to or from this level or worse are sent. */
  notify: NotifyLevel;
}

/** Spans of the gateway's own, exported over OTLP/HTTP (src/tracing). */
export interface TracingConfig {
  /** Where spans are posted: an OTLP/HTTP traces URL (…/v1/traces). */
  endpoint: string;
  /** Request headers for the collector (a tenant, a token): secret references or plain values. */
  headers: Array<[string, SecretRef | string]>;
  /** The share of requests that arrive without a trace that start one (0–1); a client's sampled trace is always followed. */
  sample: number;
  /** The resource's service.name. */
  serviceName: string;
}

/** Which answers the response cache keeps: only those that do not vary (embeddings, temperature 0, a seed), or every one. */
export const CACHE_WHEN = ['deterministic', 'always'] as const;
export type CacheWhen = (typeof CACHE_WHEN)[number];
/** Whose answers a request may be given: its own key's, or any caller's. */
export const CACHE_SCOPES = ['key', 'shared'] as const;
export type CacheScope = (typeof CACHE_SCOPES)[number];
export const CACHE_STORES = ['memory', 'redis'] as const;
export type CacheStoreKind = (typeof CACHE_STORES)[number];

/** The backend usage records and metrics name for an answer the response cache gave (no backend may be named so). */
export const CACHE_BACKEND = '(cache)';

/** What a route's answers are kept under (gateway.cache, a role's cache). */
export interface CachePolicy {
  ttlMs: number;
  when: CacheWhen;
}

/** The response cache (src/cache): on for every route when set, unless a role turns it off. */
export interface CacheConfig extends CachePolicy {
  scope: CacheScope;
  /** Where entries live: this process's memory, or gateway.redis (shared by every instance). */
  store: CacheStoreKind;
  /** What the store holds at most, all together (in Redis, every instance's entries); past it entries are evicted. */
  maxSizeBytes: number;
  /** An answer larger than this is not kept. */
  maxEntryBytes: number;
}

// ── State: keys, limits, budgets, usage (src/store, src/keys, src/limits, src/accounting) ──

export const BUDGET_PERIODS = ['day', 'week', 'month', 'total'] as const;
export type BudgetPeriod = (typeof BUDGET_PERIODS)[number];

/** SQLite (a file; relative paths are in the data directory) or PostgreSQL (a URL, which is a secret). */
export type StoreConfig = { kind: 'sqlite'; path: string } | { kind: 'postgres'; url: SecretRef };

export interface RedisConfig {
  url: SecretRef;
  /** Prefix of every key the gateway writes, so several fabrics can share one Redis. */
  prefix: string;
}

export const STORE_DOWN_POLICIES = ['serve', 'refuse'] as const;
export type StoreDownPolicy = (typeof STORE_DOWN_POLICIES)[number];

export interface AccountingConfig {
  /** Record every request (usage, cost); keys and budgets need the store either way. */
  enabled: boolean;
  batchSize: number;
  flushIntervalMs: number;
  /** How often settled spend and keys are re-read from the store (other instances' changes). */
  syncIntervalMs: number;
  /** serve: answer and write the records when the store is back; refuse: 503 while it is down. */
  onStoreDown: StoreDownPolicy;
  /** Records held in memory while the store is down; past it they wait in the spool file only. */
  maxBuffer: number;
  /** How long per-request records are kept before they are folded into daily totals; undefined: for good. */
  retentionMs: number | undefined;
}

export interface RequestLogConfig {
  enabled: boolean;
  /** Each of request and response is cut to this many bytes. */
  maxBodyBytes: number;
  retentionMs: number;
  /** The log's total size; the oldest entries go first. */
  maxSizeBytes: number;
  /** Regular expressions whose matches are replaced by [redacted], on top of the built-in ones. */
  redact: string[];
}

/** USD per million tokens; or, for a local backend, per hour of its GPU. */
export interface PriceConfig {
  input: number;
  output: number;
  gpuHour: number | undefined;
  /** USD per minute of audio transcribed or translated (whisper-1's pricing). */
  audioMinute: number | undefined;
}

export interface BudgetConfig {
  name: string;
  /** USD per period. */
  amount: number;
  period: BudgetPeriod;
  /** The backends whose spend counts, resolved from backends, roles and engines. */
  backends: string[];
  /** When it is spent: the role its requests go to instead (besides the roles' own fallbacks). */
  fallback: string | undefined;
}

/** HTTPS on the gateway's port (src/config/tls.ts): PEM files, as written (relative ones are beside the config). */
export interface TlsConfig {
  cert: string;
  key: string;
}

export interface GatewayConfig {
  host: string;
  port: number;
  /** undefined: plain HTTP. */
  tls: TlsConfig | undefined;
  masterKey: SecretRef | undefined;
  envFile: string | undefined;
  limits: Limits;
  retryBaseMs: number;
  retryMaxMs: number;
  healthIntervalMs: number;
  workers: number;
  /** The strict HTTP/1.1 fast lane in front of node:http (src/http/fast-lane.ts); false: node:http takes every request. */
  fastLane: boolean;
  /** The event-loop thread at SCHED_FIFO 1, above the process's own helper threads (src/core/scheduling.ts). */
  realtime: boolean;
  /** Browser origins allowed to call the gateway (CORS; src/http/cors.ts): '*' for any; undefined: no CORS headers. */
  corsOrigins: ReadonlySet<string> | '*' | undefined;
  health: GatewayHealth;
  wake: WakeConfig;
  alerts: AlertsConfig | undefined;
  tracing: TracingConfig | undefined;
  cache: CacheConfig | undefined;
  /** Where the SQLite store and the usage spool live; relative to the config file. Default: data/ beside it. */
  dataDir: string | undefined;
  store: StoreConfig;
  redis: RedisConfig | undefined;
  accounting: AccountingConfig;
  requestLog: RequestLogConfig;
}

export interface FabricConfig {
  /** Where it came from, for messages; undefined for a discovered or built-in fabric. */
  file: string | undefined;
  gateway: GatewayConfig;
  nodes: Map<string, NodeConfig>;
  backends: Map<string, BackendConfig>;
  roles: Map<string, RoleConfig>;
  patterns: PatternRoute[];
  /** Prices by backend name or model id; absent: built-in cloud prices, local backends free. */
  prices: Map<string, PriceConfig>;
  budgets: BudgetConfig[];
  /** True when every backend is the built-in simulator: shown in logs, /health and /v1/models. */
  simulated: boolean;
}

export const DEFAULT_TIMEOUTS: Timeouts = { connectMs: 3_000, firstByteMs: 60_000, idleMs: 30_000, totalMs: 600_000 };

export const DEFAULT_LIMITS: Limits = {
  maxBodyBytes: 8 * 1024 * 1024,
  maxAudioBytes: 25 * 1024 * 1024,
  maxBodyInFlightBytes: 128 * 1024 * 1024,
  maxHeaderBytes: 16 * 1024,
  maxTokens: 32_768,
  maxN: 8,
  maxBestOf: 8,
  maxPrompts: 32,
  // Cohere's and Voyage's own limit.
  maxDocuments: 1000,
  maxAttempts: 6,
};

export function defaultGateway(): GatewayConfig {
  return {
    host: '127.0.0.1',
    port: 4000,
    tls: undefined,
    masterKey: undefined,
    envFile: undefined,
    limits: { ...DEFAULT_LIMITS },
    retryBaseMs: 50,
    retryMaxMs: 2_000,
    healthIntervalMs: 60_000,
    workers: 1,
    fastLane: true,
    realtime: false,
    corsOrigins: undefined,
    health: { ...DEFAULT_HEALTH_POLICY, probeTimeoutMs: 5_000, loadIntervalMs: 5_000 },
    wake: { enabled: false, minIntervalMs: 300_000, bootTimeoutMs: 180_000 },
    alerts: undefined,
    tracing: undefined,
    cache: undefined,
    dataDir: undefined,
    store: { kind: 'sqlite', path: 'fabric.db' },
    redis: undefined,
    accounting: { enabled: true, batchSize: 500, flushIntervalMs: 1_000, syncIntervalMs: 2_000, onStoreDown: 'serve', maxBuffer: 100_000, retentionMs: 90 * 86_400_000 },
    requestLog: { enabled: false, maxBodyBytes: 16 * 1024, retentionMs: 7 * 86_400_000, maxSizeBytes: 256 * 1024 * 1024, redact: [] },
  };
}

// ── Deploying engines: fabric plan and fabric render read these; the gateway ignores them. ──

export const CONTAINER_RUNTIMES = ['docker', 'podman'] as const;
export type ContainerRuntime = (typeof CONTAINER_RUNTIMES)[number];

export const NODE_OS = ['linux', 'windows'] as const;
export type NodeOs = (typeof NODE_OS)[number];

/** Engines fabric can size and launch. */
export const SERVED_ENGINES = ['vllm', 'ollama', 'llamacpp'] as const;
export type ServedEngine = (typeof SERVED_ENGINES)[number];

/** Weight formats: vLLM's --quantization methods, and GGUF types for Ollama and llama.cpp. */
export const VLLM_QUANTIZATIONS = ['none', 'awq', 'awq_marlin', 'gptq', 'gptq_marlin', 'fp8', 'int8', 'bitsandbytes'] as const;
export const GGUF_QUANTIZATIONS = ['f16', 'q8_0', 'q6_k', 'q5_k_m', 'q5_0', 'q4_k_m', 'q4_k_s', 'q4_0', 'q3_k_m', 'q2_k'] as const;
export type Quantization = (typeof VLLM_QUANTIZATIONS)[number] | (typeof GGUF_QUANTIZATIONS)[number];

export const DTYPES = ['auto', 'float16', 'bfloat16', 'float32'] as const;
export type Dtype = (typeof DTYPES)[number];

export const VLLM_KV_CACHE_DTYPES = ['auto', 'fp8', 'fp8_e4m3', 'fp8_e5m2'] as const;
export const GGUF_KV_CACHE_DTYPES = ['f16', 'q8_0', 'q4_0'] as const;
export type KvCacheDtype = (typeof VLLM_KV_CACHE_DTYPES)[number] | (typeof GGUF_KV_CACHE_DTYPES)[number];

/** A backend's `serve:` block: the engine's serving parameters, the one place they are written. */
export interface ServeConfig {
  engine: ServedEngine;
  /** What the engine loads: a Hugging Face id or path (vLLM), an Ollama tag, a GGUF file (llama.cpp). Default: the backend's model. */
  model: string;
  /** Undefined: read from the model name (…-AWQ, …:q8_0), else unquantized. */
  quantization: Quantization | undefined;
  dtype: Dtype;
  kvCacheDtype: KvCacheDtype | undefined;
  /** Undefined: the model's own maximum (vLLM), 4096 (Ollama, llama.cpp). */
  maxModelLen: number | undefined;
  /** vLLM only; undefined means vLLM's default, 0.9. */
  gpuMemoryUtilization: number | undefined;
  /** Taken from the backend URL; a different serve.port is an error. */
  port: number;
  host: string;
  /** GPU indices on the node; more than one means tensor parallelism. */
  gpus: number[];
  maxNumSeqs: number | undefined;
  maxNumBatchedTokens: number | undefined;
  enforceEager: boolean;
  /** vLLM: --enable-auto-tool-choice --tool-call-parser NAME (tool_choice "auto", vLLM's default when tools are sent, needs them). */
  toolParser: string | undefined;
  /** vLLM: --reasoning-parser NAME (the model's reasoning as reasoning_content). */
  reasoningParser: string | undefined;
  image: string | undefined;
  extraArgs: string[];
  /** Plain values, or references to secrets (never their values). */
  env: Map<string, string | SecretRef>;
  hfToken: SecretRef | undefined;
  /** A Hugging Face config.json (or its folder) for a model the built-in catalogue lacks; relative to the config file. */
  hfConfig: string | undefined;
  /** Host folder for downloaded models, mounted into the container. */
  modelsDir: string | undefined;
}
