// The engines' own view of their load: vLLM's and SGLang's Prometheus /metrics, llama.cpp's
// /metrics (or /slots when metrics are off), Ollama's /api/ps. Parsers are pure so each is
// tested against a captured exposition; readLoad does the I/O.

import { simpleRequest } from '../core/http-client.ts';
import type { BackendRuntime } from '../core/backend.ts';
import type { EngineKind } from '../config/types.ts';

export interface LoadSample {
  /** Date.now() when read. */
  at: number;
  /** Requests being generated now. */
  running: number | undefined;
  /** Requests queued behind them. */
  waiting: number | undefined;
  /** KV-cache usage, 0..1. */
  kvCacheUsage: number | undefined;
  /** Generation slots (llama.cpp). */
  slots: number | undefined;
  /** Ollama: the model is in memory. */
  loaded: boolean | undefined;
  /** Where the numbers came from, e.g. "vllm /metrics". */
  source: string;
}

type Numbers = Omit<LoadSample, 'at' | 'source'>;

const EMPTY: Numbers = { running: undefined, waiting: undefined, kvCacheUsage: undefined, slots: undefined, loaded: undefined };

/**
 * Samples of a Prometheus text exposition by metric name: one value per label set. Comments,
 * HELP/TYPE lines and timestamps are skipped; label values may hold spaces and escaped quotes.
 */
export function parsePrometheus(text: string): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    let i = 0;
    while (i < line.length && line[i] !== '{' && line[i] !== ' ' && line[i] !== '\t') i++;
    const name = line.slice(0, i);
    if (line[i] === '{') {
      let inQuote = false;
      for (i++; i < line.length; i++) {
        const c = line[i];
        if (inQuote && c === '\\') i++;
        else if (c === '"') inQuote = !inQuote;
        else if (c === '}' && !inQuote) { i++; break; }
      }
    }
    const value = line.slice(i).trim().split(/\s+/)[0];
    if (name === '' || value === undefined) continue;
    const v = value === '+Inf' ? Infinity : value === '-Inf' ? -Infinity : Number(value);
    if (Number.isNaN(v)) continue;
    const list = out.get(name);
    if (list === undefined) out.set(name, [v]);
    else list.push(v);
  }
  return out;
}

const sum = (vs: number[] | undefined): number | undefined => (vs === undefined ? undefined : vs.reduce((a, b) => a + b, 0));
const max = (vs: number[] | undefined): number | undefined => (vs === undefined ? undefined : Math.max(...vs));

/** A parser of an engine's Prometheus exposition: requests running and waiting summed over label sets, the fullest KV cache. */
function metricsLoad(running: string, waiting: string, ...kvCache: string[]): (text: string) => Numbers {
  return (text) => {
    const m = parsePrometheus(text);
    let kv: number[] | undefined;
    for (const name of kvCache) if ((kv ??= m.get(name)) !== undefined) break;
    return { ...EMPTY, running: sum(m.get(running)), waiting: sum(m.get(waiting)), kvCacheUsage: max(kv) };
  };
}

/**
 * vLLM: summed over engines (data parallel ranks each report); KV cache from
 * vllm:kv_cache_usage_perc (V1) or vllm:gpu_cache_usage_perc (V0, removed in newer releases).
 */
export const vllmLoad = metricsLoad('vllm:num_requests_running', 'vllm:num_requests_waiting', 'vllm:kv_cache_usage_perc', 'vllm:gpu_cache_usage_perc');

/** SGLang: sglang:token_usage is its KV pool use. */
export const sglangLoad = metricsLoad('sglang:num_running_reqs', 'sglang:num_queue_reqs', 'sglang:token_usage');

/** llama.cpp with --metrics (kv_cache_usage_ratio only on builds that have it). */
export const llamacppMetricsLoad = metricsLoad('llamacpp:requests_processing', 'llamacpp:requests_deferred', 'llamacpp:kv_cache_usage_ratio');

/** llama.cpp /slots: busy slots are the requests running; it has no queue length. */
export function llamacppSlotsLoad(json: unknown): Numbers | undefined {
  if (!Array.isArray(json)) return undefined;
  const busy = json.filter((s) => typeof s === 'object' && s !== null && ((s as { is_processing?: unknown }).is_processing === true || (s as { state?: unknown }).state === 1)).length;
  return { ...EMPTY, running: busy, slots: json.length };
}

/** Ollama names default their tag to :latest. */
function ollamaName(name: string): string {
  const slash = name.lastIndexOf('/');
  return name.indexOf(':', slash + 1) < 0 ? `${name}:latest` : name;
}

/** Whether an Ollama model list ({models: [{name, model}]}, as /api/tags and /api/ps answer) holds `model`; undefined if the body is not one. */
export function ollamaLists(json: unknown, model: string): boolean | undefined {
  const models = (json as { models?: unknown } | null)?.models;
  if (!Array.isArray(models)) return undefined;
  return ollamaEntry(models, model) !== undefined;
}

/** The entry of an Ollama model list (/api/tags, /api/ps) that names `model`. */
export function ollamaEntry(models: unknown[], model: string): Record<string, unknown> | undefined {
  const want = ollamaName(model);
  return models.find((m): m is Record<string, unknown> => {
    const o = m as { name?: unknown; model?: unknown } | null;
    return (typeof o?.name === 'string' && ollamaName(o.name) === want) || (typeof o?.model === 'string' && ollamaName(o.model) === want);
  });
}

/** Ollama /api/ps: whether `model` is loaded. Ollama reports no queue; the gateway's own count stands in. */
export function ollamaPsLoad(json: unknown, model: string): Numbers | undefined {
  const loaded = ollamaLists(json, model);
  return loaded === undefined ? undefined : { ...EMPTY, loaded };
}

/** A GET on the backend's own pool, with its credential: for probes and load reads. */
export async function backendGet(b: BackendRuntime, path: string, timeoutMs: number): Promise<{ status: number; text: string }> {
  const headers: Record<string, string> = {};
  if (b.authorization !== undefined) headers.authorization = b.authorization;
  const res = await simpleRequest(b.pool, path, { headers, timeoutMs });
  return { status: res.status, text: res.text };
}

/** Where readLoad asks each engine that exposes Prometheus metrics (llama.cpp, which may not, has /slots besides). */
const METRICS: Partial<Record<EngineKind, { parse: (text: string) => Numbers; source: string }>> = {
  vllm: { parse: vllmLoad, source: 'vllm /metrics' },
  sglang: { parse: sglangLoad, source: 'sglang /metrics' },
  llamacpp: { parse: llamacppMetricsLoad, source: 'llama.cpp /metrics' },
};

/** Engines the gateway can read load from. */
export function readsLoad(b: BackendRuntime): boolean {
  return METRICS[b.config.engine] !== undefined || b.config.engine === 'ollama';
}

/** The engine's load now, or undefined when it does not say (or could not be asked). */
export async function readLoad(b: BackendRuntime, timeoutMs: number, now: () => number = Date.now): Promise<LoadSample | undefined> {
  const stamp = (n: Numbers | undefined, source: string): LoadSample | undefined => (n === undefined ? undefined : { ...n, at: now(), source });
  try {
    const engine = b.config.engine;
    if (engine === 'ollama') {
      const r = await backendGet(b, '/api/ps', timeoutMs);
      return r.status === 200 ? stamp(ollamaPsLoad(JSON.parse(r.text), b.config.model), 'ollama /api/ps') : undefined;
    }
    const metrics = METRICS[engine];
    if (metrics === undefined) return undefined;
    const m = await backendGet(b, '/metrics', timeoutMs);
    const n = m.status === 200 ? metrics.parse(m.text) : undefined;
    if (engine !== 'llamacpp') return n === undefined ? undefined : stamp(n, metrics.source);
    // llama.cpp: /metrics needs --metrics; /slots is on by default but has no queue length.
    if (n?.running !== undefined) return stamp(n, metrics.source);
    const s = await backendGet(b, '/slots', timeoutMs);
    return s.status === 200 ? stamp(llamacppSlotsLoad(JSON.parse(s.text)), 'llama.cpp /slots') : undefined;
  } catch {
    // Load is advisory: an engine that does not answer here is the probe's business.
    return undefined;
  }
}
