// Background health probes with each engine's own signal: vLLM, llama.cpp and SGLang
// /health; Ollama /api/tags; LM Studio, generic OpenAI-compatible servers and OpenAI
// GET /models (which never bills). A probe result feeds the same state live traffic does.

import { request } from 'undici';
import type { BackendRuntime } from '../core/backend.ts';
import type { Logger } from '../core/log.ts';

export interface ProbeResult {
  ok: boolean;
  latencyMs: number;
  detail: string;
}

const PROBE_TIMEOUT_MS = 5_000;

function probeUrl(b: BackendRuntime): string {
  switch (b.config.engine) {
    case 'vllm':
    case 'llamacpp':
    case 'sglang':
      return `${b.origin}/health`;
    case 'ollama':
      return `${b.origin}/api/tags`;
    default:
      return `${b.origin}${b.basePath}/models`;
  }
}

export async function probeBackend(b: BackendRuntime): Promise<ProbeResult> {
  const started = performance.now();
  if (b.unusable !== undefined) return { ok: false, latencyMs: 0, detail: b.unusable };
  try {
    const headers: Record<string, string> = {};
    if (b.authorization !== undefined) headers.authorization = b.authorization;
    const res = await request(probeUrl(b), {
      method: 'GET', headers, dispatcher: b.pool, signal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
      headersTimeout: PROBE_TIMEOUT_MS, bodyTimeout: PROBE_TIMEOUT_MS,
    });
    const text = await res.body.text();
    const latencyMs = performance.now() - started;
    if (res.statusCode !== 200) return { ok: false, latencyMs, detail: `health check answered HTTP ${res.statusCode}` };
    if (b.config.engine === 'ollama') {
      // The model must be pulled, not just the server up.
      const names = ((JSON.parse(text) as { models?: { name?: string; model?: string }[] }).models ?? []).flatMap((m) => [m.name, m.model]);
      const want = b.config.model;
      const has = names.some((n) => n === want || n === `${want}:latest`);
      if (!has) return { ok: false, latencyMs, detail: `model ${want} is not pulled on this Ollama` };
    }
    return { ok: true, latencyMs, detail: 'ok' };
  } catch (e) {
    const err = e as { code?: string; cause?: { code?: string }; name?: string };
    const code = err.code ?? err.cause?.code ?? err.name ?? 'error';
    return { ok: false, latencyMs: performance.now() - started, detail: code === 'ECONNREFUSED' ? 'connection refused' : code === 'TimeoutError' ? 'health check timed out' : code };
  }
}

export class HealthMonitor {
  readonly #backends: BackendRuntime[];
  readonly #intervalMs: number;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | undefined;

  constructor(backends: Iterable<BackendRuntime>, intervalMs: number, log: Logger) {
    this.#backends = [...backends];
    this.#intervalMs = intervalMs;
    this.#log = log;
  }

  async probeAll(): Promise<void> {
    await Promise.all(this.#backends.map(async (b) => {
      const r = await probeBackend(b);
      const before = b.state;
      b.lastCheckedAt = Date.now();
      if (r.ok) {
        b.recordSuccess(r.latencyMs);
      } else {
        b.state = 'down';
        b.lastError = r.detail;
        b.lastErrorAt = Date.now();
      }
      if (before !== b.state) {
        const expected = !r.ok && b.node?.power === 'workstation';
        this.#log.log(r.ok ? 'info' : expected ? 'info' : 'warn', `backend ${b.name} is ${b.state}${expected ? ' (workstation off: expected)' : ''}`, {
          backend: b.name, node: b.node?.name, detail: r.detail,
        });
      }
    }));
  }

  start(): void {
    if (this.#intervalMs <= 0) return;
    this.#timer = setInterval(() => { void this.probeAll(); }, this.#intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
  }
}
