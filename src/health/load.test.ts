// Load from each engine's own exposition: captured text, and the simulator's live endpoints.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePrometheus, vllmLoad, llamacppMetricsLoad, llamacppSlotsLoad, ollamaPsLoad, sglangLoad, readLoad } from './load.ts';
import { startFleet } from '../sim/fleet.ts';
import { BackendRuntime } from '../core/backend.ts';
import { Secrets } from '../config/env-file.ts';
import { DEFAULT_TIMEOUTS, type BackendConfig, type EngineKind } from '../config/types.ts';

test('parsePrometheus: label sets, escaped quotes, timestamps, special values', () => {
  const m = parsePrometheus([
    '# HELP vllm:num_requests_running Number of requests in model execution batches.',
    '# TYPE vllm:num_requests_running gauge',
    'vllm:num_requests_running{engine="0",model_name="a \\"b\\" {c}"} 3.0',
    'vllm:num_requests_running{engine="1",model_name="x"} 2 1700000000000',
    'up 1',
    'weird NaN',
    'inf +Inf',
    '',
  ].join('\n'));
  assert.deepEqual(m.get('vllm:num_requests_running'), [3, 2]);
  assert.deepEqual(m.get('up'), [1]);
  assert.equal(m.get('weird'), undefined);
  assert.deepEqual(m.get('inf'), [Infinity]);
});

test('vLLM: running and waiting summed over engines, KV cache from kv_cache_usage_perc or the older gpu_cache_usage_perc', () => {
  const v1 = vllmLoad('vllm:num_requests_running{engine="0"} 2.0\nvllm:num_requests_running{engine="1"} 1.0\nvllm:num_requests_waiting{engine="0"} 4.0\nvllm:kv_cache_usage_perc{engine="0"} 0.25\nvllm:kv_cache_usage_perc{engine="1"} 0.5\n');
  assert.deepEqual([v1.running, v1.waiting, v1.kvCacheUsage], [3, 4, 0.5]);
  const v0 = vllmLoad('vllm:num_requests_running{model_name="m"} 1.0\nvllm:num_requests_waiting{model_name="m"} 0.0\nvllm:gpu_cache_usage_perc{model_name="m"} 0.9\n');
  assert.deepEqual([v0.running, v0.waiting, v0.kvCacheUsage], [1, 0, 0.9]);
  assert.equal(vllmLoad('').running, undefined);
});

test('llama.cpp /metrics and /slots, SGLang /metrics, Ollama /api/ps', () => {
  const l = llamacppMetricsLoad('# HELP llamacpp:requests_processing x\nllamacpp:requests_processing 2\nllamacpp:requests_deferred 5\n');
  assert.deepEqual([l.running, l.waiting], [2, 5]);
  const s = llamacppSlotsLoad([{ id: 0, is_processing: true }, { id: 1, is_processing: false }, { id: 2, is_processing: true }]);
  assert.deepEqual([s?.running, s?.slots, s?.waiting], [2, 3, undefined]);
  assert.equal(llamacppSlotsLoad({ error: 'no' }), undefined);
  const g = sglangLoad('sglang:num_running_reqs{tp_rank="0"} 7\nsglang:num_queue_reqs{tp_rank="0"} 1\nsglang:token_usage{tp_rank="0"} 0.33\n');
  assert.deepEqual([g.running, g.waiting, g.kvCacheUsage], [7, 1, 0.33]);
  assert.equal(ollamaPsLoad({ models: [{ name: 'qwen2.5:7b', model: 'qwen2.5:7b' }] }, 'qwen2.5:7b')?.loaded, true);
  assert.equal(ollamaPsLoad({ models: [{ name: 'nomic-embed-text:latest' }] }, 'nomic-embed-text')?.loaded, true, ':latest is implied');
  assert.equal(ollamaPsLoad({ models: [] }, 'qwen2.5:7b')?.loaded, false);
});

test('readLoad against the simulator: vLLM /metrics shows a queue, llama.cpp /metrics (or /slots when started without --metrics), Ollama /api/ps', async () => {
  const slow = { ttftMs: 2_000, tokensPerSecond: 50, maxConcurrency: 1, maxQueue: 8 };
  const fleet = await startFleet([
    { name: 'v', protocol: 'vllm', model: 'm-v', kind: 'chat', timing: slow },
    { name: 'l', protocol: 'llamacpp', model: 'm-l', kind: 'chat', timing: slow },
    { name: 'o', protocol: 'ollama', model: 'qwen2.5:7b', kind: 'chat' },
    // llama-server as started without --metrics (its default): /metrics is a 501.
    { name: 'bare', protocol: 'llamacpp', model: 'm-b', kind: 'chat', timing: slow, metrics: false },
  ]);
  const mk = (name: string, engine: EngineKind, url: string, model: string): BackendRuntime => new BackendRuntime({
    name, engine, node: undefined, url, model, apiKey: undefined, contextWindow: undefined, weight: 1, maxRetries: 0, maxConnections: 8,
    timeouts: DEFAULT_TIMEOUTS, aliases: [], simulated: true,
  } satisfies BackendConfig, undefined, new Secrets({}));
  const v = mk('v', 'vllm', `${fleet.get('v').url}/v1`, 'm-v');
  const l = mk('l', 'llamacpp', `${fleet.get('l').url}/v1`, 'm-l');
  const o = mk('o', 'ollama', fleet.get('o').url, 'qwen2.5:7b');
  const bare = mk('bare', 'llamacpp', `${fleet.get('bare').url}/v1`, 'm-b');
  const ac = new AbortController();
  try {
    // Three requests at a one-slot engine: one runs, two wait.
    for (const e of ['v', 'v', 'v', 'l', 'l', 'bare', 'bare']) {
      void fetch(`${fleet.get(e).url}/v1/chat/completions`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, signal: ac.signal,
        body: JSON.stringify({ model: e === 'v' ? 'm-v' : e === 'l' ? 'm-l' : 'm-b', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 }),
      }).catch(() => {});
    }
    await new Promise((r) => setTimeout(r, 150));
    const lv = await readLoad(v, 2_000);
    assert.equal(lv?.source, 'vllm /metrics');
    assert.equal(lv?.running, 1);
    assert.equal(lv?.waiting, 2);
    assert.equal(typeof lv?.kvCacheUsage, 'number', 'the simulator exports vllm:kv_cache_usage_perc');
    const ll = await readLoad(l, 2_000);
    assert.equal(ll?.source, 'llama.cpp /metrics');
    assert.deepEqual([ll?.running, ll?.waiting], [1, 1]);
    const metricsOff = await fetch(`${fleet.get('bare').url}/metrics`);
    assert.equal(metricsOff.status, 501);
    assert.deepEqual(await metricsOff.json(), { error: { code: 501, message: 'This server does not support metrics endpoint. Start it with `--metrics`', type: 'not_supported_error' } });
    const lb = await readLoad(bare, 2_000);
    assert.equal(lb?.source, 'llama.cpp /slots', 'without --metrics, /slots tells the busy slots');
    assert.deepEqual([lb?.running, lb?.slots, lb?.waiting], [1, 1, undefined]);
    const lo = await readLoad(o, 2_000);
    assert.equal(lo?.loaded, true);
    await fleet.get('v').setFault({ kind: 'down' });
    assert.equal(await readLoad(v, 500), undefined, 'an engine that does not answer has no load to report');
  } finally {
    ac.abort();
    await Promise.all([v.close(), l.close(), o.close(), bare.close()]);
    await fleet.close();
  }
});
