// Validates the deploy side of the config: a backend's `serve:` block (what fabric plan sizes
// and fabric render launches) and a node's runtime and os. Kept apart from schema.ts because
// the gateway never reads any of it; the same Reporter gives the same file:line:col errors.

import { suggest, type KeyPath } from './issues.ts';
import {
  bool, describe, int, isObj, list, mapping, oneOf, secret, str, strList, type Reporter,
} from './schema.ts';
import {
  CONTAINER_RUNTIMES, isLoopbackHost, DTYPES, GGUF_KV_CACHE_DTYPES, GGUF_QUANTIZATIONS, NODE_OS, SERVED_ENGINES, VLLM_KV_CACHE_DTYPES, VLLM_QUANTIZATIONS,
  type ContainerRuntime, type EngineKind, type KvCacheDtype, type NodeConfig, type NodeOs, type Quantization, type SecretRef,
  type ServeConfig, type ServedEngine,
} from './types.ts';


/** The tool-call parsers vLLM 0.11 registers (vllm/entrypoints/openai/tool_parsers), for a did-you-mean. */
const VLLM_TOOL_PARSERS: ReadonlySet<string> = new Set([
  'deepseek_v3', 'deepseek_v31', 'glm45', 'granite', 'granite-20b-fc', 'hermes', 'hunyuan_a13b', 'internlm', 'jamba', 'kimi_k2',
  'llama3_json', 'llama4_json', 'llama4_pythonic', 'longcat', 'minimax', 'mistral', 'openai', 'phi4_mini_json', 'pythonic',
  'qwen3_coder', 'qwen3_xml', 'seed_oss', 'step3', 'xlam',
]);
/** The reasoning parsers vLLM 0.11 registers (vllm/reasoning). */
const VLLM_REASONING_PARSERS: ReadonlySet<string> = new Set([
  'deepseek_r1', 'deepseek_v3', 'ernie45', 'glm45', 'gpt_oss', 'granite', 'hunyuan_a13b', 'mistral', 'qwen3', 'seed_oss', 'step3',
]);
export const SERVE_KEYS = [
  'model', 'quantization', 'dtype', 'kv_cache_dtype', 'max_model_len', 'gpu_memory_utilization', 'port', 'host', 'gpu',
  'max_num_seqs', 'max_num_batched_tokens', 'enforce_eager', 'tool_parser', 'reasoning_parser', 'image', 'extra_args', 'env', 'hf_token', 'hf_config', 'models_dir',
] as const;

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SECRET_FORM = /^(env:|\$\{|os\.environ\/)/;
const SECRET_NAME = /(TOKEN|KEY|SECRET|PASSWORD|PASSWD)/i;

/**
 * Values that read as a known kind of secret. serve.extra_args and serve.env values are written
 * as they are into compose.yaml, the launch scripts and gateway/fabric.yaml, so one pasted there
 * would leak. Narrow on purpose: model ids, paths, hex revisions and settings must pass. After a
 * known prefix the rest must read as random (a model slug such as sk-llama-3-8b does not); with
 * no prefix, only 32 or more letters and digits in one run, with upper case, lower case and a
 * digit (hex digests and UUIDs have no upper case, model ids have separators).
 */
const SECRET_PREFIXES: readonly { what: string; re: RegExp }[] = [
  { what: 'an API key (sk-…)', re: /(?<![A-Za-z0-9])sk-([A-Za-z0-9_-]{20,})/ },
  { what: 'a Hugging Face token (hf_…)', re: /(?<![A-Za-z0-9])hf_([A-Za-z0-9]{30,})/ },
  { what: 'a GitHub token', re: /(?<![A-Za-z0-9])(?:gh[pousr]_|github_pat_)([A-Za-z0-9_]{30,})/ },
  { what: 'a Slack token (xox…-)', re: /(?<![A-Za-z0-9])xox[abposr]-([A-Za-z0-9-]{20,})/ },
];
const AWS_KEY_ID = /(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])/;
const LONG_RUN = /[A-Za-z0-9]{32,}/g;

/** Both letter cases, or 20 or more letters and digits in one run with both. */
function random(body: string): boolean {
  if (/[a-z]/.test(body) && /[A-Z]/.test(body)) return true;
  return (body.match(/[A-Za-z0-9]{20,}/g) ?? []).some((run) => /[A-Za-z]/.test(run) && /[0-9]/.test(run));
}

/** What kind of secret `v` holds, when it reads as one. */
export function secretShape(v: string): string | undefined {
  for (const { what, re } of SECRET_PREFIXES) {
    const m = re.exec(v);
    if (m !== null && random(m[1]!)) return what;
  }
  if (AWS_KEY_ID.test(v)) return 'an AWS access key id (AKIA…)';
  if ((v.match(LONG_RUN) ?? []).some((run) => /[a-z]/.test(run) && /[A-Z]/.test(run) && /[0-9]/.test(run))) return 'a long random token';
  return undefined;
}

/** Flags whose value is a secret: --api-key, --hf-token (llama.cpp's -hft), --token, --password… (not --api-key-file, a path). */
const SECRET_FLAG = /^(?:-hft|--?(?:[a-z0-9]+-)*(?:api-key|token|secret|password|passwd))$/i;
const WRITTEN_INTO = 'fabric render would write it into compose.yaml, the launch scripts and gateway/fabric.yaml';

function secretFlagAdvice(flag: string): string {
  if (/api-key$/i.test(flag)) return 'set the backend\'s api_key: env:NAME instead (the gateway sends it; fabric render gives it to vLLM and llama.cpp engines as VLLM_API_KEY or LLAMA_API_KEY, by reference)';
  if (/^(?:-hft|--hf-token)$/i.test(flag)) return 'write serve.hf_token: env:HF_TOKEN instead';
  return 'give it to the engine through serve.env as NAME: env:NAME instead, if it reads it from its environment';
}

/** extra_args must not carry a secret: the value of a secret flag, or one that reads as a secret. */
function checkArgSecrets(r: Reporter, path: KeyPath, raw: unknown): void {
  const items = Array.isArray(raw) ? raw : typeof raw === 'string' ? [raw] : [];
  const at = (i: number): KeyPath => (Array.isArray(raw) ? [...path, i] : path);
  let flag: string | undefined;
  items.forEach((item, i) => {
    if (typeof item !== 'string') return;
    const eq = item.indexOf('=');
    if (item.startsWith('-')) {
      const name = eq === -1 ? item : item.slice(0, eq);
      flag = SECRET_FLAG.test(name) ? name : undefined;
      if (flag !== undefined && eq !== -1) {
        r.error(at(i), `holds the value of ${flag}, a secret: ${WRITTEN_INTO}; ${secretFlagAdvice(flag)}`);
        return;
      }
    } else if (flag !== undefined) {
      r.error(at(i), `is the value of ${flag}, a secret: ${WRITTEN_INTO}; ${secretFlagAdvice(flag)}`);
      return;
    }
    const shape = secretShape(item);
    if (shape !== undefined) {
      r.error(at(i), `looks like ${shape}, a secret: ${WRITTEN_INTO}; reference it instead (serve.env NAME: env:NAME, serve.hf_token, or the backend's api_key)`);
    }
  });
}

const DEFAULT_PORT: Record<string, number> = { 'http:': 80, 'https:': 443 };

function urlPort(u: string): number | undefined {
  try {
    const parsed = new URL(u);
    return parsed.port === '' ? DEFAULT_PORT[parsed.protocol] : Number(parsed.port);
  } catch {
    return undefined;
  }
}

function loopbackUrl(u: string): boolean {
  try {
    return isLoopbackHost(new URL(u).hostname);
  } catch {
    return false;
  }
}

function gpuIndices(r: Reporter, path: KeyPath, v: unknown, node: NodeConfig | undefined): number[] {
  if (v === undefined || v === null) return [0];
  const raw = typeof v === 'number' ? [v] : list(r, path, v);
  const out: number[] = [];
  raw.forEach((g, i) => {
    const p = typeof v === 'number' ? path : [...path, i];
    const idx = int(r, p, g, -1, 0, 63);
    if (idx < 0) return;
    if (out.includes(idx)) r.error(p, `GPU ${idx} is listed twice`);
    else out.push(idx);
  });
  if (node !== undefined && node.gpus.length > 0) {
    for (const idx of out) {
      if (idx >= node.gpus.length) r.error(path, `node ${node.name} has ${node.gpus.length} GPU${node.gpus.length === 1 ? '' : 's'} (index 0${node.gpus.length > 1 ? `–${node.gpus.length - 1}` : ''}), not GPU ${idx}`);
    }
  }
  return out.length === 0 ? [0] : out;
}

function envMap(r: Reporter, path: KeyPath, v: unknown): Map<string, string | SecretRef> {
  const out = new Map<string, string | SecretRef>();
  if (v === undefined || v === null) return out;
  if (!isObj(v)) {
    r.error(path, `must be a mapping of NAME: value, got ${describe(v)}`);
    return out;
  }
  for (const [name, value] of Object.entries(v)) {
    const p = [...path, name];
    if (!ENV_NAME.test(name)) {
      r.error(p, 'must be an environment variable name (letters, digits, underscore)', true);
      continue;
    }
    if (typeof value === 'string' && SECRET_FORM.test(value.trim())) {
      const ref = secret(r, p, value);
      if (ref !== undefined) out.set(name, ref);
      continue;
    }
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
      r.error(p, `must be a string, number or true/false, got ${describe(value)}`);
      continue;
    }
    if (SECRET_NAME.test(name)) {
      r.error(p, 'looks like a secret: write env:NAME and keep the value in the environment or the .env file');
      continue;
    }
    const shape = typeof value === 'string' ? secretShape(value) : undefined;
    if (shape !== undefined) {
      r.error(p, `looks like ${shape}, a secret: write env:NAME and keep the value in the environment or the .env file (${WRITTEN_INTO} otherwise)`);
      continue;
    }
    out.set(name, String(value));
  }
  return out;
}

const QUANTS_BY_ENGINE: Record<ServedEngine, readonly string[]> = {
  vllm: VLLM_QUANTIZATIONS,
  ollama: GGUF_QUANTIZATIONS,
  llamacpp: GGUF_QUANTIZATIONS,
};

const KV_DTYPES_BY_ENGINE: Record<ServedEngine, readonly string[]> = {
  vllm: VLLM_KV_CACHE_DTYPES,
  ollama: GGUF_KV_CACHE_DTYPES,
  llamacpp: GGUF_KV_CACHE_DTYPES,
};

export interface ServeContext {
  /** Undefined when the backend's engine is missing or invalid: that is reported already. */
  engine: EngineKind | undefined;
  node: NodeConfig | undefined;
  nodeName: string | undefined;
  url: string;
  model: string;
}

/** A backend's serve block, or undefined when it has none (or is too broken to use). */
export function serveBlock(r: Reporter, path: KeyPath, v: unknown, ctx: ServeContext): ServeConfig | undefined {
  if (v === undefined || v === null) return undefined;
  const m = mapping(r, path, v, SERVE_KEYS);
  if (m === undefined) return undefined;
  // What a serve block may hold depends on the engine; without a valid one, nothing more can be said.
  if (ctx.engine === undefined) return undefined;
  if (!(SERVED_ENGINES as readonly string[]).includes(ctx.engine)) {
    r.error(path, `fabric can launch engines ${SERVED_ENGINES.join(', ')}, not ${ctx.engine}; remove serve: or change the engine`, true);
    return undefined;
  }
  const engine = ctx.engine as ServedEngine;
  if (ctx.nodeName === undefined) r.error(path, 'needs the backend\'s node: the machine whose GPU runs it', true);
  else if (ctx.node !== undefined && ctx.node.gpus.length === 0) r.error(path, `node ${ctx.node.name} lists no gpus: add gpus: [{ model, memory }] to it`, true);

  const quantization = m.quantization === undefined || m.quantization === null ? undefined
    : oneOf(r, [...path, 'quantization'], typeof m.quantization === 'string' ? m.quantization.toLowerCase() : m.quantization, QUANTS_BY_ENGINE[engine], QUANTS_BY_ENGINE[engine][0]!) as Quantization;
  const kvCacheDtype = m.kv_cache_dtype === undefined || m.kv_cache_dtype === null ? undefined
    : oneOf(r, [...path, 'kv_cache_dtype'], m.kv_cache_dtype, KV_DTYPES_BY_ENGINE[engine], KV_DTYPES_BY_ENGINE[engine][0]!) as KvCacheDtype;

  /** vLLM's parsers: of the model's tool calls (needed for tool_choice "auto", which vLLM assumes when a request sends tools), and of its reasoning. */
  const parser = (key: 'tool_parser' | 'reasoning_parser'): string | undefined => {
    const v = str(r, [...path, key], m[key]);
    if (v === undefined) return undefined;
    if (engine !== 'vllm') {
      r.error([...path, key], `is vLLM's; ${engine === 'ollama' ? 'Ollama parses each model\'s tool calls and thinking itself' : 'llama-server parses tool calls with --jinja (its default in recent builds)'}`, true);
      return undefined;
    }
    if (!/^[A-Za-z0-9_.-]+$/.test(v)) r.error([...path, key], `must be a parser's name, as vLLM lists them (e.g. ${key === 'tool_parser' ? 'hermes, llama3_json, mistral' : 'deepseek_r1, qwen3'}), got ${JSON.stringify(v)}`);
    else {
      const known = key === 'tool_parser' ? VLLM_TOOL_PARSERS : VLLM_REASONING_PARSERS;
      if (!known.has(v)) {
        // A warning: newer images and plugins (--tool-parser-plugin) bring names of their own.
        const hint = suggest(v, known);
        r.warn([...path, key], `${JSON.stringify(v)} is not a ${key === 'tool_parser' ? 'tool' : 'reasoning'} parser vLLM 0.11 ships${hint === undefined ? '' : ` (did you mean ${hint}?)`}; vLLM refuses to start with an unknown one`);
      }
    }
    return v;
  };

  let util: number | undefined;
  if (m.gpu_memory_utilization !== undefined && m.gpu_memory_utilization !== null) {
    const u = m.gpu_memory_utilization;
    if (engine !== 'vllm') r.error([...path, 'gpu_memory_utilization'], `is vLLM's; ${engine} takes the memory its model and context need`, true);
    else if (typeof u !== 'number' || !(u > 0 && u <= 1)) r.error([...path, 'gpu_memory_utilization'], `must be a fraction above 0 and at most 1 (e.g. 0.45), got ${describe(u)}`);
    else util = u;
  }

  const fromUrl = urlPort(ctx.url);
  let port = fromUrl ?? 0;
  if (m.port !== undefined && m.port !== null) {
    const p = int(r, [...path, 'port'], m.port, port, 1, 65535);
    if (fromUrl !== undefined && p !== fromUrl) {
      r.error([...path, 'port'], `is ${p} but the gateway reaches this backend at port ${fromUrl} (url); leave port out or make them agree`);
    }
    port = p;
  }

  const maxLen = m.max_model_len === undefined || m.max_model_len === null ? undefined : int(r, [...path, 'max_model_len'], m.max_model_len, 0, 16, 10_000_000);
  const optPositive = (key: 'max_num_seqs' | 'max_num_batched_tokens'): number | undefined =>
    m[key] === undefined || m[key] === null ? undefined : int(r, [...path, key], m[key], 0, 1, 10_000_000);

  const model = str(r, [...path, 'model'], m.model) ?? ctx.model;
  if (engine === 'llamacpp' && !/\.gguf$/i.test(model)) {
    r.error([...path, 'model'], m.model === undefined ? 'is required for llama.cpp: the GGUF file to load (e.g. /models/llama-3.1-8b-instruct-Q4_K_M.gguf)' : 'must be a .gguf file for llama.cpp', m.model === undefined);
  }

  const extraArgs = strList(r, [...path, 'extra_args'], m.extra_args);
  checkArgSecrets(r, [...path, 'extra_args'], m.extra_args);
  const toolParser = parser('tool_parser');
  const flag = (name: string): boolean => extraArgs.some((a) => a === name || a.startsWith(`${name}=`));
  if (toolParser !== undefined && (flag('--tool-call-parser') || flag('--enable-auto-tool-choice'))) {
    r.warn([...path, 'extra_args'], 'sets the tool parser that tool_parser renders too: the flags would be given twice; keep one');
  }
  const reasoningParser = parser('reasoning_parser');
  if (reasoningParser !== undefined && flag('--reasoning-parser')) {
    r.warn([...path, 'extra_args'], 'sets the reasoning parser that reasoning_parser renders too: the flag would be given twice; keep one');
  }
  return {
    engine,
    model,
    quantization,
    dtype: oneOf(r, [...path, 'dtype'], m.dtype, DTYPES, 'auto'),
    kvCacheDtype,
    maxModelLen: maxLen === 0 ? undefined : maxLen,
    gpuMemoryUtilization: util,
    port,
    // Reached on loopback: listen there only, unless told otherwise.
    host: str(r, [...path, 'host'], m.host) ?? (loopbackUrl(ctx.url) ? '127.0.0.1' : '0.0.0.0'),
    gpus: gpuIndices(r, [...path, 'gpu'], m.gpu, ctx.node),
    maxNumSeqs: optPositive('max_num_seqs'),
    maxNumBatchedTokens: optPositive('max_num_batched_tokens'),
    enforceEager: bool(r, [...path, 'enforce_eager'], m.enforce_eager, false),
    toolParser,
    reasoningParser,
    image: str(r, [...path, 'image'], m.image),
    extraArgs,
    env: envMap(r, [...path, 'env'], m.env),
    hfToken: secret(r, [...path, 'hf_token'], m.hf_token),
    hfConfig: str(r, [...path, 'hf_config'], m.hf_config),
    modelsDir: str(r, [...path, 'models_dir'], m.models_dir),
  };
}

export const NODE_DEPLOY_KEYS = ['runtime', 'os'] as const;

/** A node's runtime and os, when given. */
export function nodeDeploy(r: Reporter, path: KeyPath, n: Record<string, unknown>): { runtime?: ContainerRuntime; os?: NodeOs } {
  const out: { runtime?: ContainerRuntime; os?: NodeOs } = {};
  if (n.runtime !== undefined && n.runtime !== null) out.runtime = oneOf(r, [...path, 'runtime'], n.runtime, CONTAINER_RUNTIMES, 'docker');
  if (n.os !== undefined && n.os !== null) out.os = oneOf(r, [...path, 'os'], n.os, NODE_OS, 'linux');
  return out;
}

/** Two served engines on one node cannot listen on one port. */
export function checkServePorts(r: Reporter, backends: Iterable<{ name: string; node: string | undefined; serve?: ServeConfig }>): void {
  const seen = new Map<string, string>();
  for (const b of backends) {
    if (b.serve === undefined || b.node === undefined) continue;
    // Ollama serves many models from one server: backends sharing its port share the server.
    const key = `${b.node}:${b.serve.port}`;
    const prev = seen.get(key);
    if (prev === undefined) {
      seen.set(key, `${b.name}\u0000${b.serve.engine}`);
      continue;
    }
    const [prevName, prevEngine] = prev.split('\u0000') as [string, string];
    if (prevEngine === 'ollama' && b.serve.engine === 'ollama') continue;
    r.error(['backends', b.name, 'serve'], `port ${b.serve.port} on node ${b.node} is already served by backend ${prevName}; one engine per port`, true);
  }
}
