import { test } from 'node:test';
import assert from 'node:assert/strict';
import { render, type HealthSnapshot } from './health.ts';
import { evaluate } from '../health/alerts.ts';
import type { BackendReport, BackendStatus } from '../health/report.ts';

const plain = (t: string): string => t;

function backend(name: string, status: BackendStatus, lastError: string | null = null): BackendReport {
  return {
    name, engine: 'vllm', model: 'm', url: 'http://127.0.0.1:1/v1', node: null, power: null, node_state: null, status,
    circuit: 'closed', cooling_down: false, cooldown_remaining_s: null, rate_limited_remaining_s: null, consecutive_failures: status === 'failing' ? 1 : 0,
    kinds: ['embeddings'], aliases: [], cloud: false, served_model: null, model_loaded: null, engine_version: null, served_context: null, latency_ms: 3, last_latency_ms: null,
    last_checked_at: null, last_error: lastError, last_error_at: null, outstanding: 0, slow: null,
    recent: { window_s: 300, requests: 0, errors: 0, latency_p50_ms: null, latency_p95_ms: null, latency_samples: 0, ttft_p50_ms: null, ttft_p95_ms: null, ttft_samples: 0 },
    load: { running: null, waiting: null, kv_cache_usage: null, slots: null, score: 0, overloaded: false, source: null, age_s: null },
    simulated: false,
  };
}

function snap(backends: BackendReport[], details: HealthSnapshot['details'] = 'full'): HealthSnapshot {
  const alert = evaluate({ backends });
  return { url: 'http://127.0.0.1:4000', gateway: { status: 'up', latency_ms: 1, uptime_s: 5, simulated: false, error: null }, backends, nodes: [], roles: [], details, alert, exit_code: 0 };
}

test('fabric health names failing backends in its summary: not down yet, so the level stays, but not "nothing that needs attention"', () => {
  const failing = render(snap([backend('motoko-bge', 'failing', 'connection refused'), backend('armitage-qwen', 'up')]), plain);
  assert.match(failing, /level: OK — failing, not down yet: motoko-bge \(recent requests failed; the next one it answers clears it\)\n$/);
  assert.doesNotMatch(failing, /nothing that needs attention/);
  assert.match(render(snap([backend('a', 'up')]), plain), /level: OK — all backends up\n$/);
});

test('fabric health shows each engine and its version, and the context it serves beside its model, when it says', () => {
  const served = { ...backend('armitage-qwen', 'up'), served_model: 'Qwen/Qwen2.5-7B-Instruct-AWQ', served_context: 8192, engine_version: '0.11.0' };
  const out = render(snap([served, backend('cloud', 'up')]), plain);
  assert.match(out, /armitage-qwen +up +3 ms +- +vllm 0\.11\.0 +Qwen\/Qwen2\.5-7B-Instruct-AWQ \(8192 ctx\)/);
  assert.match(out, /cloud +up +3 ms +- +vllm +m +-/);
});

test('LAST ERROR: "(hidden)" for a backend not up when the gateway hides details, "-" when it has none to show (or, an older gateway, does not say)', () => {
  const fleet = [backend('motoko-bge', 'down'), backend('armitage-qwen', 'up')];
  const lastError = (out: string, name: string): string => new RegExp(`^${name} .* (\\S+)$`, 'm').exec(out)![1]!;
  const hidden = render(snap(fleet, 'hidden'), plain);
  assert.equal(lastError(hidden, 'motoko-bge'), '(hidden)');
  assert.equal(lastError(hidden, 'armitage-qwen'), '-', 'a backend that is up has no error to hide');
  assert.equal(lastError(render(snap(fleet, 'full'), plain), 'motoko-bge'), '-');
  assert.equal(lastError(render(snap(fleet, null), plain), 'motoko-bge'), '-');
  assert.equal(lastError(render(snap([backend('motoko-bge', 'down', 'connection refused')], 'full'), plain), 'motoko-bge'), 'refused');
});
