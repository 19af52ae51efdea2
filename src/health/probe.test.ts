// Probes with each engine's own signal, against the simulator over loopback.

import { test, before, after } from 'node:test';
import { createServer } from 'node:http';
import assert from 'node:assert/strict';
import { HealthMonitor, probeBackend } from './probe.ts';
import { createLogger, silentLogger } from '../core/log.ts';
import { startFleet, type SimFleet } from '../sim/fleet.ts';
import { BackendRuntime } from '../core/backend.ts';
import { Secrets } from '../config/env-file.ts';
import { DEFAULT_TIMEOUTS, type EngineKind } from '../config/types.ts';

let fleet: SimFleet;
const made: BackendRuntime[] = [];

before(async () => {
  fleet = await startFleet([
    { name: 'vllm', protocol: 'vllm', model: 'Qwen/Qwen2.5-7B-Instruct-AWQ', kind: 'chat' },
    { name: 'ollama', protocol: 'ollama', model: 'qwen2.5:7b', kind: 'chat', extraModels: ['nomic-embed-text'] },
    { name: 'llamacpp', protocol: 'llamacpp', model: 'local-gguf', kind: 'chat' },
    { name: 'openai', protocol: 'openai', model: 'gpt-4.1-mini', kind: 'chat' },
  ]);
});

after(async () => {
  await Promise.all(made.map((b) => b.close()));
  await fleet.close();
});

function backend(engine: EngineKind, sim: string, model: string, path = '/v1', origin = fleet.get(sim).url): BackendRuntime {
  const b = new BackendRuntime({
    name: `${sim}-${model}`, engine, node: undefined, url: origin + path, model, apiKey: undefined, contextWindow: undefined,
    weight: 1, maxRetries: 0, maxConnections: 4, timeouts: DEFAULT_TIMEOUTS, aliases: [], simulated: true,
  }, undefined, new Secrets({}));
  made.push(b);
  return b;
}

test('vLLM: /health and the served model in /v1/models', async () => {
  const ok = await probeBackend(backend('vllm', 'vllm', 'Qwen/Qwen2.5-7B-Instruct-AWQ'), 1_000);
  assert.equal(ok.ok, true, ok.detail);
  assert.equal(ok.servedModel, 'Qwen/Qwen2.5-7B-Instruct-AWQ');
  const wrong = await probeBackend(backend('vllm', 'vllm', 'meta-llama/Llama-3.1-8B-Instruct'), 1_000);
  assert.deepEqual([wrong.ok, wrong.detail], [false, 'serves Qwen/Qwen2.5-7B-Instruct-AWQ, not meta-llama/Llama-3.1-8B-Instruct']);
});

test('vLLM faults: unhealthy, killed, hung', async () => {
  const b = backend('vllm', 'vllm', 'Qwen/Qwen2.5-7B-Instruct-AWQ');
  const e = fleet.get('vllm');
  try {
    await e.setFault({ kind: 'error', status: 503 });
    assert.deepEqual(await probeBackend(b, 1_000).then((r) => [r.ok, r.detail]), [false, '/health answered HTTP 503']);
    await e.setFault({ kind: 'down' });
    assert.deepEqual(await probeBackend(b, 1_000).then((r) => [r.ok, r.detail]), [false, 'connection refused']);
    await e.setFault({ kind: 'hang' });
    const started = Date.now();
    const hung = await probeBackend(b, 200);
    assert.deepEqual([hung.ok, hung.detail], [false, 'health check timed out after 200 ms']);
    assert.ok(Date.now() - started < 1_000, 'bounded by the probe timeout');
  } finally {
    await e.setFault(null);
  }
  assert.equal((await probeBackend(b, 1_000)).ok, true, 'answers again once the fault is cleared');
});

test('Ollama: the model must be pulled; /api/ps says whether it is loaded', async () => {
  const ok = await probeBackend(backend('ollama', 'ollama', 'qwen2.5:7b', ''), 1_000);
  assert.equal(ok.ok, true, ok.detail);
  assert.equal(ok.loaded, true);
  const pulledNotLoaded = await probeBackend(backend('ollama', 'ollama', 'nomic-embed-text', ''), 1_000);
  assert.deepEqual([pulledNotLoaded.ok, pulledNotLoaded.loaded], [true, false]);
  const missing = await probeBackend(backend('ollama', 'ollama', 'llama3.1:70b', ''), 1_000);
  assert.deepEqual([missing.ok, missing.detail], [false, 'model llama3.1:70b is not pulled on this Ollama (ollama pull llama3.1:70b)']);
});

test('llama.cpp: /health, and 503 while it loads its model', async () => {
  const b = backend('llamacpp', 'llamacpp', 'whatever');
  const ok = await probeBackend(b, 1_000);
  assert.equal(ok.ok, true, ok.detail);
  assert.equal(ok.servedModel, 'local-gguf', 'the name it reports, for the table');
  await fleet.get('llamacpp').setFault({ kind: 'error', status: 503 });
  try {
    assert.equal((await probeBackend(b, 1_000)).detail, 'loading its model (/health answered 503)');
  } finally {
    await fleet.get('llamacpp').setFault(null);
  }
});

test('llama.cpp and Ollama: a model list that is not JSON only leaves the model unknown; the backend is up', async () => {
  const server = createServer((req, res) => {
    if (req.url === '/api/tags') return res.end(JSON.stringify({ models: [{ name: 'qwen2.5:7b' }] }));
    res.end(req.url === '/health' ? '{"status":"ok"}' : '<html>not a model list</html>');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const llama = await probeBackend(backend('llamacpp', 'odd-llama', 'x', '/v1', origin), 1_000);
    assert.equal(llama.ok, true, llama.detail);
    assert.equal(llama.servedModel, undefined);
    const ollama = await probeBackend(backend('ollama', 'odd-ollama', 'qwen2.5:7b', '', origin), 1_000);
    assert.equal(ollama.ok, true, ollama.detail);
  } finally {
    server.close();
  }
});

test('OpenAI-compatible and OpenAI: GET /models, which never bills; the model must be listed', async () => {
  assert.equal((await probeBackend(backend('openai-compatible', 'openai', 'gpt-4.1-mini'), 1_000)).ok, true);
  const missing = await probeBackend(backend('openai', 'openai', 'gpt-5-ultra'), 1_000);
  assert.deepEqual([missing.ok, missing.detail], [false, 'does not list gpt-5-ultra among its 1 models']);
  const before = fleet.get('openai').stats().requests;
  await probeBackend(backend('openai', 'openai', 'gpt-4.1-mini'), 1_000);
  assert.equal(fleet.get('openai').stats().requests, before, 'no inference request was made');
});

test('HealthMonitor: a failing backend is re-probed within the interval, so a dead one trips long before three intervals pass', async () => {
  const b = backend('vllm', 'vllm', 'Qwen/Qwen2.5-7B-Instruct-AWQ');
  const monitor = new HealthMonitor([b], { intervalMs: 2_000, probeTimeoutMs: 500, loadIntervalMs: 0 }, silentLogger);
  await fleet.get('vllm').setFault({ kind: 'down' });
  try {
    const started = Date.now();
    await monitor.probeAll();
    assert.equal(b.state, 'failing');
    while ((b.state as string) !== 'down' && Date.now() - started < 2_000) await new Promise((r) => setTimeout(r, 10));
    assert.equal(b.state, 'down', 'three failed probes inside one 2 s interval');
    assert.equal(b.consecutiveFailures, b.policy.failureThreshold);
  } finally {
    monitor.stop();
    await fleet.get('vllm').setFault(null);
  }
});

test('a probe the gateway\'s own machine fails (out of file descriptors) says nothing of the backend: its state stays as it was, and it is warned of once a minute', async () => {
  const b = backend('vllm', 'vllm', 'Qwen/Qwen2.5-7B-Instruct-AWQ');
  const lines: string[] = [];
  const log = createLogger({ write: (s) => lines.push(s) });
  const warnings = (): Array<{ level: string; msg: string; backend?: string }> => {
    log.flush();
    return lines.join('').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { level: string; msg: string }).filter((l) => l.level === 'warn');
  };
  const monitor = new HealthMonitor([b], { intervalMs: 2_000, probeTimeoutMs: 500, loadIntervalMs: 0 }, log);
  try {
    await monitor.probeAll();
    assert.equal(b.state, 'up');
    const real = b.pool;
    (b as { pool: unknown }).pool = {
      dispatch(_o: unknown, h: { onRequestStart?: (c: unknown, x: unknown) => void; onResponseError?: (c: unknown, e: Error) => void }) {
        const c = { abort() {}, pause() {}, resume() {}, aborted: false, paused: false, reason: null };
        setImmediate(() => { h.onRequestStart?.(c, {}); h.onResponseError?.(c, Object.assign(new Error('connect EMFILE'), { code: 'EMFILE' })); });
        return true;
      },
      close: real.close.bind(real), destroy: real.destroy.bind(real),
    };
    try {
      const r = await monitor.probe(b);
      assert.deepEqual([r.ok, r.local, r.detail], [false, true, 'the gateway could not probe it: EMFILE']);
      assert.equal(b.state, 'up');
      assert.equal(b.consecutiveFailures, 0);
      // The operator is told what to raise, once: every probe of every backend may hit it.
      await monitor.probe(b);
      await monitor.probe(b);
      const said = warnings();
      assert.equal(said.length, 1, JSON.stringify(said));
      assert.match(said[0]!.msg, /out of file descriptors or memory probing its backends: raise LimitNOFILE/);
      assert.equal(said[0]!.backend, b.name);
      assert.equal(b.consecutiveFailures, 0);
    } finally {
      (b as { pool: unknown }).pool = real;
    }
    // Nothing was learnt: it is probed again soon (a tenth of the interval), not at the next one.
    const checked = b.lastCheckedAt;
    const t = Date.now();
    while (b.lastCheckedAt === checked && Date.now() - t < 1_500) await new Promise((r) => setTimeout(r, 20));
    assert.notEqual(b.lastCheckedAt, checked, 'probed again within a second');
  } finally {
    monitor.stop();
  }
});
