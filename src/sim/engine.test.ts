// The engine core: concurrency limit and FIFO queue, client disconnects freeing slots,
// timing, request records, and close() never hanging.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startFleet } from './fleet.ts';
import type { SimEngineSpec } from './fleet.ts';
import { replyTokens } from './generate.ts';
import { at, post, waitFor, withFleet } from './test-helpers.ts';

const MODEL = 'm';
const body = (content = 'hi', extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  model: MODEL, messages: [{ role: 'user', content }], ...extra,
});
const spec = (timing: SimEngineSpec['timing'], extra: Partial<SimEngineSpec> = {}): SimEngineSpec => ({
  name: 'e', protocol: 'vllm', model: MODEL, kind: 'chat', timing, ...extra,
});

test('at most maxConcurrency generate at once; the rest queue, without limit on vLLM (as its waiting queue has none)', async () => {
  await withFleet([spec({ ttftMs: 150, tokensPerSecond: 1e6, maxConcurrency: 2, maxQueue: 2 })], async (fleet) => {
    const e = fleet.get('e');
    const url = `${e.url}/v1/chat/completions`;
    const pending = Array.from({ length: 6 }, () => post(url, body()));
    await waitFor(() => e.stats().active === 2 && e.stats().queued === 4, 1000, 'two running, four queued');
    const metrics = await (await fetch(`${e.url}/metrics`)).text();
    assert.match(metrics, /^vllm:num_requests_running\{engine="0",model_name="m"\} 2\.0$/m);
    assert.match(metrics, /^vllm:num_requests_waiting\{engine="0",model_name="m"\} 4\.0$/m);
    const results = await Promise.all(pending);
    assert.deepEqual(results.map((r) => r.status), [200, 200, 200, 200, 200, 200]);
    await Promise.all(results.map((r) => r.text()));
    assert.deepEqual({ ...e.stats(), promptTokens: 0, completionTokens: 0 }, {
      requests: 6, active: 0, queued: 0, completed: 6, promptTokens: 0, completionTokens: 0,
    });
  });
});

test('Ollama refuses past its queue (OLLAMA_MAX_QUEUE) with 503; the requests it took all finish', async () => {
  await withFleet([spec({ ttftMs: 150, tokensPerSecond: 1e6, maxConcurrency: 2, maxQueue: 2 }, { protocol: 'ollama' })], async (fleet) => {
    const e = fleet.get('e');
    const url = `${e.url}/api/chat`;
    const pending = Array.from({ length: 4 }, () => post(url, { ...body(), stream: false }));
    await waitFor(() => e.stats().active === 2 && e.stats().queued === 2, 1000, 'two running, two queued');
    const rejected = await post(url, { ...body(), stream: false });
    assert.equal(rejected.status, 503);
    assert.deepEqual(await rejected.json(), { error: 'server busy, please try again.  maximum pending requests exceeded' });
    const results = await Promise.all(pending);
    assert.deepEqual(results.map((r) => r.status), [200, 200, 200, 200]);
    await Promise.all(results.map((r) => r.text()));
    assert.equal(e.stats().completed, 4);
  });
});

test('queued requests start in arrival order', async () => {
  await withFleet([spec({ ttftMs: 30, tokensPerSecond: 1e6, maxConcurrency: 1 })], async (fleet) => {
    const url = `${fleet.get('e').url}/v1/chat/completions`;
    const order: number[] = [];
    const all: Promise<void>[] = [];
    for (let i = 0; i < 4; i++) {
      all.push(post(url, body(`q${i}`)).then(async (r) => {
        await r.text();
        order.push(i);
      }));
      await new Promise((r) => setTimeout(r, 5));
    }
    await Promise.all(all);
    assert.deepEqual(order, [0, 1, 2, 3]);
  });
});

test('a client that disconnects mid-stream frees its slot', async () => {
  await withFleet([spec({ ttftMs: 5, tokensPerSecond: 20, maxConcurrency: 1 })], async (fleet) => {
    const e = fleet.get('e');
    const ac = new AbortController();
    const res = await post(`${e.url}/v1/chat/completions`, body('hi', { stream: true }), {}, ac.signal);
    const reader = res.body!.getReader();
    await reader.read();
    assert.equal(e.stats().active, 1);
    ac.abort();
    await waitFor(() => e.stats().active === 0, 1000, 'the slot to be freed');
    assert.equal(e.stats().completed, 0);
    // The freed slot serves the next request at once.
    const next = await post(`${e.url}/v1/chat/completions`, body('x', { max_tokens: 1 }));
    assert.equal(next.status, 200);
  });
});

test('a client that disconnects while queued leaves the queue', async () => {
  await withFleet([spec({ ttftMs: 300, tokensPerSecond: 1e6, maxConcurrency: 1 })], async (fleet) => {
    const e = fleet.get('e');
    const url = `${e.url}/v1/chat/completions`;
    const first = post(url, body());
    await waitFor(() => e.stats().active === 1, 1000, 'first to run');
    const ac = new AbortController();
    const second = post(url, body(), {}, ac.signal);
    await waitFor(() => e.stats().queued === 1, 1000, 'second to queue');
    ac.abort();
    await assert.rejects(second);
    await waitFor(() => e.stats().queued === 0, 1000, 'the queue to empty');
    assert.equal((await first).status, 200);
    await waitFor(() => e.stats().active === 0, 1000, 'idle');
    assert.equal(e.stats().completed, 1);
  });
});

test('time to first token, then one token per 1000/tokensPerSecond ms', async () => {
  await withFleet([spec({ ttftMs: 60, tokensPerSecond: 100 })], async (fleet) => {
    const url = `${fleet.get('e').url}/v1/chat/completions`;
    const n = replyTokens('hi').length;
    let t0 = performance.now();
    await (await post(url, body())).text();
    assert.ok(performance.now() - t0 >= 60 + 10 * n - 5, 'non-streamed waits for the whole generation');

    t0 = performance.now();
    const res = await post(url, body('hi', { stream: true }));
    const reader = res.body!.getReader();
    await reader.read();
    const first = performance.now() - t0;
    assert.ok(first >= 55 && first < 60 + 10 * n, `first chunk at ttft, got ${first.toFixed(1)}ms`);
    while (!(await reader.read()).done);
    assert.ok(performance.now() - t0 >= 60 + 10 * (n - 1) - 5);
  });
});

test('instant timing answers without timers, streamed or not', async () => {
  await withFleet([spec({ ttftMs: 0, tokensPerSecond: 1e6 })], async (fleet) => {
    const e = fleet.get('e');
    const url = `${e.url}/v1/chat/completions`;
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => post(url, body(`m${i}`, { stream: i % 2 === 0 })).then((r) => r.text())));
    assert.equal(results.length, 50);
    assert.equal(e.stats().completed, 50);
    assert.equal(e.stats().active, 0);
  });
});

test('requests() records what was sent, newest last, at most 100', async () => {
  await withFleet([spec({ ttftMs: 0, tokensPerSecond: 1e6 })], async (fleet) => {
    const e = fleet.get('e');
    await (await post(`${e.url}/v1/chat/completions`, body('first'), { 'x-test': 'yes' })).text();
    await (await fetch(`${e.url}/health`)).text();
    const [rec] = e.requests();
    assert.equal(rec?.method, 'POST');
    assert.equal(rec?.path, '/v1/chat/completions');
    assert.equal(rec?.headers['x-test'], 'yes');
    assert.equal(at(rec?.body, 'messages', 0, 'content'), 'first');
    assert.equal(e.requests().length, 1, 'health probes are not inference requests');
    for (let i = 0; i < 120; i++) await (await post(`${e.url}/v1/chat/completions`, body(`n${i}`))).text();
    const recs = e.requests();
    assert.equal(recs.length, 100);
    assert.equal(at(recs[99]?.body, 'messages', 0, 'content'), 'n119');
    assert.equal(at(recs[0]?.body, 'messages', 0, 'content'), 'n20');
  });
});

test('the error fault also fails the health route, as vLLM\'s fails (503 for a 5xx, 200 else); listing routes keep working', async () => {
  await withFleet([spec({ ttftMs: 0, tokensPerSecond: 1e6 })], async (fleet) => {
    const e = fleet.get('e');
    assert.equal((await fetch(`${e.url}/health`)).status, 200);
    await e.setFault({ kind: 'error', status: 500 });
    const dead = await fetch(`${e.url}/health`);
    assert.deepEqual([dead.status, await dead.text()], [503, '']);
    await e.setFault({ kind: 'error', status: 429 });
    assert.equal((await fetch(`${e.url}/health`)).status, 200, 'a 4xx fault leaves the engine alive');
    await e.setFault({ kind: 'error', status: 503 }, 1);
    assert.equal((await fetch(`${e.url}/health`)).status, 503);
    assert.equal((await fetch(`${e.url}/v1/models`)).status, 200);
    // health probes do not use up a "next N requests" fault
    assert.equal((await post(`${e.url}/v1/chat/completions`, body())).status, 503);
    assert.equal((await fetch(`${e.url}/health`)).status, 200);
  });
});

test('close() does not hang on hung, streaming or queued requests, and frees everything', async () => {
  const fleet = await startFleet([spec({ ttftMs: 5, tokensPerSecond: 5, maxConcurrency: 1 })]);
  const e = fleet.get('e');
  const url = `${e.url}/v1/chat/completions`;
  // Settled up front: they reject while close() runs, before anything awaits them.
  const outcome = (p: Promise<unknown>): Promise<string> => p.then(() => 'answered', () => 'failed');
  const streaming = outcome(post(url, body('a', { stream: true })).then((r) => r.text()));
  await waitFor(() => e.stats().active === 1, 1000, 'a running stream');
  const queued = outcome(post(url, body('b')));
  await waitFor(() => e.stats().queued === 1, 1000, 'a queued request');
  await e.setFault({ kind: 'hang' });
  const hung = outcome(post(url, body('c')));
  await new Promise((r) => setTimeout(r, 20));
  const t0 = performance.now();
  await fleet.close();
  assert.ok(performance.now() - t0 < 500);
  assert.deepEqual(await Promise.all([streaming, queued, hung]), ['failed', 'failed', 'failed']);
  assert.equal(e.stats().active, 0);
  assert.equal(e.stats().queued, 0);
  await assert.rejects(fetch(`${e.url}/health`), TypeError);
});
