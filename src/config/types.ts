// The fabric configuration after validation: the single source of config types.

export const ENGINE_KINDS = ['vllm', 'ollama', 'llamacpp', 'openai-compatible', 'lmstudio', 'sglang', 'openai'] as const;
export type EngineKind = (typeof ENGINE_KINDS)[number];

export const NODE_POWER = ['always-on', 'workstation'] as const;
export type NodePower = (typeof NODE_POWER)[number];

export const ROLE_KINDS = ['chat', 'embeddings'] as const;
export type RoleKind = (typeof ROLE_KINDS)[number];

export const STRATEGIES = ['round-robin', 'weighted', 'least-outstanding'] as const;
export type Strategy = (typeof STRATEGIES)[number];

/** A secret is never a value in the config model, only where to find it. */
export interface SecretRef { env: string }

export interface GpuSpec { model: string; memoryBytes: number }

export interface NodeConfig {
  name: string;
  power: NodePower;
  address: string | undefined;
  gpus: GpuSpec[];
}

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
  weight: number;
  maxRetries: number;
  maxConnections: number;
  timeouts: Timeouts;
  /** Names that route to this backend alone, with no fallback (the seeds' "physical aliases"). */
  aliases: string[];
  simulated: boolean;
}

export interface RoleRule { inputTokensOver: number; routeTo: string }

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
}

export interface PatternRoute {
  match: string;
  kind: RoleKind;
  backends: string[];
  strategy: Strategy;
}

export interface Limits {
  maxBodyBytes: number;
  maxHeaderBytes: number;
  maxTokens: number;
  maxN: number;
  maxBestOf: number;
  maxAttempts: number;
}

export interface GatewayConfig {
  host: string;
  port: number;
  masterKey: SecretRef | undefined;
  envFile: string | undefined;
  limits: Limits;
  retryBaseMs: number;
  retryMaxMs: number;
  healthIntervalMs: number;
  workers: number;
}

export interface FabricConfig {
  /** Where it came from, for messages; undefined for a discovered or built-in fabric. */
  file: string | undefined;
  gateway: GatewayConfig;
  nodes: Map<string, NodeConfig>;
  backends: Map<string, BackendConfig>;
  roles: Map<string, RoleConfig>;
  patterns: PatternRoute[];
  /** True when every backend is the built-in simulator: shown in logs, /health and /v1/models. */
  simulated: boolean;
}

export const DEFAULT_TIMEOUTS: Timeouts = { connectMs: 3_000, firstByteMs: 60_000, idleMs: 30_000, totalMs: 600_000 };

export const DEFAULT_LIMITS: Limits = {
  maxBodyBytes: 8 * 1024 * 1024,
  maxHeaderBytes: 16 * 1024,
  maxTokens: 32_768,
  maxN: 8,
  maxBestOf: 8,
  maxAttempts: 6,
};

export function defaultGateway(): GatewayConfig {
  return {
    host: '127.0.0.1',
    port: 4000,
    masterKey: undefined,
    envFile: undefined,
    limits: { ...DEFAULT_LIMITS },
    retryBaseMs: 50,
    retryMaxMs: 2_000,
    healthIntervalMs: 60_000,
    workers: 1,
  };
}
