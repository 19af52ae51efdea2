// Budgets and accounting end to end over the simulator: a provider budget that, once spent,
// sends its roles to local/chat (visibly: headers, logs, metrics); a key budget refused with
// OpenAI's insufficient_quota; 200 concurrent requests racing for one budget; usage totals equal
// to what the simulated engines served, streams included; the request log, redacted and capped.

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { startFabric, chat, post, type Fabric } from './helpers.ts';

const MASTER = 'fabric-master-key-for-budget-tests';
const FAST = { ttftMs: 2, tokensPerSecond: 5000, maxConcurrency: 512, maxQueue: 1024 };
/** $0.001 a token both ways, so a few requests spend a budget. */
const PRICE = 1000;

const engines = [
  { name: 'armitage', protocol: 'vllm' as const, model: 'Qwen/Qwen2.5-7B-Instruct-AWQ', kind: 'chat' as const, timing: FAST },
  { name: 'cloud', protocol: 'openai' as const, model: 'gpt-4.1-mini', kind: 'chat' as const, timing: FAST },
  { name: 'motoko', protocol: 'vllm' as const, model: 'BAAI/bge-base-en-v1.5', kind: 'embeddings' as const, dimensions: 8, timing: FAST },
  { name: 'ollama', protocol: 'ollama' as const, model: 'qwen2.5:7b', kind: 'chat' as const, timing: FAST },
];

function yaml(url: (n: string) => string, budget: number, extra = ''): string {
  return `
gateway:
  master_key: env:FABRIC_MASTER_KEY
  accounting: { flush_interval: 50ms, sync_interval: 100ms }
${extra}
backends:
  armitage-qwen: { engine: vllm, url: ${url('armitage')}/v1, model: Qwen/Qwen2.5-7B-Instruct-AWQ }
  cloud-strong: { engine: openai-compatible, url: ${url('cloud')}/v1, model: gpt-4.1-mini, cloud: true, max_retries: 0 }
  motoko-bge: { engine: vllm, url: ${url('motoko')}/v1, model: BAAI/bge-base-en-v1.5 }
  ollama-qwen: { engine: ollama, url: ${url('ollama')}, model: "qwen2.5:7b" }
roles:
  chat-fast: { kind: chat, backends: [armitage-qwen], aliases: [local/chat] }
  openai/strong: { kind: chat, backends: [cloud-strong] }
  embeddings-general: { kind: embeddings, backends: [motoko-bge], aliases: [local/embed] }
  ollama-chat: { kind: chat, backends: [ollama-qwen] }
prices:
  cloud-strong: { input: ${PRICE}, output: ${PRICE} }
budgets:
  openai:
    amount: ${budget}
    period: month
    backends: [cloud-strong]
    fallback: local/chat
`;
}

const auth = { authorization: `Bearer ${MASTER}` };
const admin = (f: Fabric, path: string, body?: unknown, method = body === undefined ? 'GET' : 'POST') =>
  fetch(f.url + path, { method, headers: { ...auth, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) }).then((r) => r.json() as Promise<any>);

describe('a provider budget', () => {
  let f: Fabric;
  before(async () => { f = await startFabric({ env: { FABRIC_MASTER_KEY: MASTER }, apiKey: MASTER, engines, yaml: (u) => yaml(u, 0.1) }); });
  after(() => f.close());

  test('once spent, its roles fall back to local/chat — in headers, logs and metrics', async () => {
    const served: string[] = [];
    let last: Awaited<ReturnType<typeof post>> | undefined;
    for (let i = 0; i < 6; i++) {
      last = await post(f.url, '/v1/chat/completions', chat('openai/strong'), auth);
      assert.equal(last.status, 200);
      served.push(last.headers.get('x-fabric-backend')!);
    }
    assert.deepEqual(served.slice(0, 3), ['cloud-strong', 'cloud-strong', 'cloud-strong']);
    assert.deepEqual(served.slice(3), ['armitage-qwen', 'armitage-qwen', 'armitage-qwen']);
    assert.equal(last!.headers.get('x-fabric-rerouted'), 'true');
    assert.equal(last!.headers.get('x-fabric-role'), 'chat-fast');
    assert.equal(last!.headers.get('x-fabric-budget-exceeded'), 'openai');
    // Log lines are written in batches: flushed now, they hold every answer above.
    f.gw.app.log.flush();
    const log = f.logs.map((l) => JSON.parse(l)).filter((r) => r.msg === 'request' && r.budget_exceeded !== undefined);
    assert.ok(log.length >= 3 && log[0].budget_exceeded[0] === 'openai', JSON.stringify(log));
    const budgets = await admin(f, '/admin/budgets');
    const b = budgets.data[0];
    assert.equal(b.name, 'openai');
    assert.ok(b.spent > 0.05 && b.spent <= 0.1, `spent ${b.spent}`);
    const m = await (await fetch(`${f.url}/metrics`, { headers: auth })).text();
    assert.match(m, /fabric_budget_fallbacks_total\{budget="openai"\} 3/);
    assert.match(m, /fabric_budget_limit_usd\{budget="openai",period="month"\} 0.1/);
    assert.match(m, /fabric_budget_spent_usd\{budget="openai",period="month"\} 0\.0\d+/);
    assert.match(m, /fabric_budget_exhausted\{budget="openai"\} [01]\n/);
    assert.match(m, /fabric_cost_usd_total\{role="openai\/strong",backend="cloud-strong"\} 0\.0\d+/);
  });

  test('200 concurrent requests never overspend it; those that do not fit go to the fallback', async () => {
    // Its own gateway and a fresh $0.50 budget: the race starts with room for some of the 200.
    const g = await startFabric({ env: { FABRIC_MASTER_KEY: MASTER }, apiKey: MASTER, engines, yaml: (u) => yaml(u, 0.5) });
    try {
      const rs = await Promise.all(Array.from({ length: 200 }, () => post(g.url, '/v1/chat/completions', chat('openai/strong'), auth)));
      assert.ok(rs.every((r) => r.status === 200), 'all served, by the cloud or the fallback');
      const byCloud = rs.filter((r) => r.headers.get('x-fabric-backend') === 'cloud-strong').length;
      assert.ok(byCloud > 0 && byCloud < 200, `${byCloud} of 200 served by the cloud`);
      await g.gw.app.accounting!.writer.flush();
      const rows = await g.gw.app.accounting!.store.usageSummary({ by: 'backend' });
      const cloud = rows.find((r) => r.group === 'cloud-strong')!;
      assert.equal(cloud.requests, byCloud);
      assert.ok(cloud.cost > 0 && cloud.cost <= 0.5 + 1e-9, `spent ${cloud.cost} of 0.50`);
    } finally {
      await g.close();
    }
  });

  test('a spent budget with no fallback: the client gets OpenAI\'s quota error (429 insufficient_quota, x-should-retry: false), not a 503 to retry', async () => {
    const g = await startFabric({ env: { FABRIC_MASTER_KEY: MASTER }, apiKey: MASTER, engines, yaml: (u) => yaml(u, 0.0000001).replace('    fallback: local/chat\n', '') });
    try {
      const r = await post(g.url, '/v1/chat/completions', chat('openai/strong'), auth);
      assert.equal(r.status, 429, r.text);
      assert.equal(r.json.error.code, 'insufficient_quota');
      assert.match(r.json.error.message, /held back by a spent budget \(openai\) until its period resets/);
      assert.equal(r.headers.get('x-should-retry'), 'false');
      assert.equal(r.json.error.attempts[0].budget, 'openai');
      assert.equal(g.fleet.get('cloud').requests().length, 0, 'nothing sent');
    } finally {
      await g.close();
    }
  });

  test('when nothing else can serve, the error names the spent budget among the attempts', async () => {
    await f.fleet.get('armitage').setFault({ kind: 'down' });
    const none = await post(f.url, '/v1/chat/completions', chat('openai/strong'), auth);
    await f.fleet.get('armitage').setFault(null);
    assert.equal(none.status, 503);
    assert.match(none.json.error.message, /cloud-strong \(openai\/strong\): (within \$0\.\d+ of|over) its monthly budget \(\$0\.10\)/);
  });
});

describe('a key budget', () => {
  let f: Fabric;
  before(async () => { f = await startFabric({ env: { FABRIC_MASTER_KEY: MASTER }, apiKey: MASTER, engines, yaml: (u) => yaml(u, 1000) }); });
  after(() => f.close());

  test('a request its budget cannot cover is refused with insufficient_quota; once spent, every request is', async () => {
    const k = await admin(f, '/admin/keys', { name: 'obsidian', budget: { amount: 0.05, period: 'month' } });
    const kauth = { authorization: `Bearer ${k.key}` };
    assert.equal((await post(f.url, '/v1/chat/completions', chat('openai/strong'), kauth)).status, 200);
    const r = await post(f.url, '/v1/chat/completions', chat('openai/strong'), kauth);
    assert.equal(r.status, 429);
    assert.equal(r.json.error.code, 'insufficient_quota');
    assert.equal(r.json.error.type, 'insufficient_quota');
    // The official SDKs retry every 429 unless told not to: a spent budget is not a wait.
    assert.equal(r.headers.get('x-should-retry'), 'false');
    assert.match(r.json.error.message, /key "obsidian" has \$0\.0\d+ left of its monthly budget of \$0\.05.*could cost up to \$0\.0\d+/);
    assert.equal((await post(f.url, '/v1/chat/completions', chat('local/chat'), kauth)).status, 200, 'free local requests still fit');
    await admin(f, `/admin/keys/${k.id}`, { budget: { amount: 0.01, period: 'month' } }, 'PATCH');
    const over = await post(f.url, '/v1/chat/completions', chat('local/chat'), kauth);
    assert.equal(over.status, 429);
    assert.equal(over.headers.get('x-should-retry'), 'false');
    assert.match(over.json.error.message, /key "obsidian" is over its monthly budget: \$0\.0\d+ spent of \$0\.01; it resets at \d{4}-\d\d-01T00:00:00\.000Z/);
    const shown = await admin(f, `/admin/keys/${k.id}`);
    assert.ok(shown.spend.spent > 0.01);
  });

  test('200 concurrent requests: the budget is not overspent (reservations are upper bounds); a request refused only for what others hold is told to retry', async () => {
    const budget = 0.5;
    const k = await admin(f, '/admin/keys', { name: 'racer', budget: { amount: budget, period: 'day' } });
    const kauth = { authorization: `Bearer ${k.key}` };
    const rs = await Promise.all(Array.from({ length: 200 }, (_, i) => post(f.url, '/v1/chat/completions', chat('openai/strong', `race ${i}`), kauth)));
    const ok = rs.filter((r) => r.status === 200).length;
    const spent = rs.filter((r) => r.status === 429 && r.json.error.code === 'insufficient_quota');
    // Refused while the budget was held, not spent: a wait will do (a 429 the SDKs retry).
    const held = rs.filter((r) => r.status === 429 && r.json.error.code === 'rate_limit_exceeded');
    assert.equal(ok + spent.length + held.length, 200, rs.filter((r) => r.status !== 200 && r.status !== 429).map((r) => r.text).join('\n'));
    assert.ok(ok >= 10, `${ok} served`);
    assert.ok(held.length > 0, 'at 200 at once, most are refused while the first ones hold the budget');
    for (const r of held) {
      assert.equal(r.headers.get('retry-after'), '2');
      assert.notEqual(r.headers.get('x-should-retry'), 'false');
      assert.match(r.json.error.message, /key "racer" has \$0\.\d+ of its daily budget of \$0\.50 free: \$0\.\d+ spent and \$0\.\d+ held by requests in flight until they finish/);
    }
    for (const r of spent) assert.equal(r.headers.get('x-should-retry'), 'false');
    await f.gw.app.accounting!.writer.flush();
    const rows = await f.gw.app.accounting!.store.usageSummary({ by: 'key', keyId: k.id });
    assert.equal(rows[0]!.requests, 200);
    assert.ok(rows[0]!.cost <= budget + 1e-9, `spent ${rows[0]!.cost} of ${budget}`);
  });
});

describe('accounting', () => {
  let f: Fabric;
  before(async () => {
    f = await startFabric({
      env: { FABRIC_MASTER_KEY: MASTER }, apiKey: MASTER, engines,
      yaml: (u) => yaml(u, 1000, '  request_log: { max_body: 600, redact: ["project-[a-z]+"] }'),
    });
  });
  after(() => f.close());

  test('usage totals equal what the engines served: unary, streams (with and without include_usage), embeddings, Ollama', async () => {
    const jobs: (() => Promise<unknown>)[] = [];
    for (let i = 0; i < 40; i++) jobs.push(() => post(f.url, '/v1/chat/completions', chat(i % 2 === 0 ? 'local/chat' : 'openai/strong', `count these ${i} words please`), auth));
    for (let i = 0; i < 30; i++) jobs.push(() => post(f.url, '/v1/chat/completions', chat(i % 3 === 0 ? 'ollama-chat' : 'local/chat', `stream ${i}`, { stream: true, ...(i % 2 === 0 ? { stream_options: { include_usage: true } } : {}) }), auth));
    for (let i = 0; i < 20; i++) jobs.push(() => post(f.url, '/v1/embeddings', { model: 'local/embed', input: [`embed ${i}`, 'and this'] }, auth));
    for (let i = 0; i < 10; i++) jobs.push(() => post(f.url, '/v1/chat/completions', chat('ollama-chat', `ollama ${i}`), auth));
    const results = await Promise.all(jobs.map((j) => j())) as { status: number }[];
    assert.ok(results.every((r) => r.status === 200));
    await f.gw.app.accounting!.writer.flush();
    const rows = await f.gw.app.accounting!.store.usageSummary({ by: 'backend' });
    const byName = new Map(rows.map((r) => [r.group, r]));
    for (const [engine, backend] of [['armitage', 'armitage-qwen'], ['cloud', 'cloud-strong'], ['motoko', 'motoko-bge'], ['ollama', 'ollama-qwen']] as const) {
      const s = f.fleet.get(engine).stats();
      const r = byName.get(backend)!;
      assert.equal(r.promptTokens, s.promptTokens, `${backend} prompt tokens`);
      assert.equal(r.completionTokens, s.completionTokens, `${backend} completion tokens`);
      assert.equal(r.requests, s.completed, `${backend} requests`);
    }
    const cost = byName.get('cloud-strong')!.cost;
    const s = f.fleet.get('cloud').stats();
    assert.ok(Math.abs(cost - (s.promptTokens + s.completionTokens) * PRICE / 1e6) < 1e-9, 'cost is tokens × price');
    const streamed = (await f.gw.app.accounting!.store.usageSummary({ by: 'status' }));
    assert.equal(streamed.reduce((n, r) => n + r.requests, 0), 100);
  });

  test('every request is keyed by the gateway request id; refused ones are recorded too', async () => {
    const r = await post(f.url, '/v1/chat/completions', chat('local/chat'), { ...auth, 'x-request-id': 'client-chosen-id' });
    const bad = await post(f.url, '/v1/chat/completions', chat('no-such-model'), auth);
    assert.equal(bad.status, 404);
    await f.gw.app.accounting!.writer.flush();
    const store = f.gw.app.accounting!.store;
    const rec = await store.usageById(r.headers.get('x-request-id')!);
    assert.equal(rec?.status, 200);
    assert.equal(rec?.role, 'chat-fast');
    assert.equal(rec?.backend, 'armitage-qwen');
    assert.equal(rec?.upstreamModel, 'Qwen/Qwen2.5-7B-Instruct-AWQ');
    assert.equal(rec?.attempts, 1);
    assert.ok(rec!.latencyMs > 0);
    const failed = await store.usageById(bad.headers.get('x-request-id')!);
    assert.equal(failed?.status, 404);
    assert.equal(failed?.code, 'model_not_found');
  });

  test('the request log: bodies redacted and capped, streams as sent, read through the admin API', async () => {
    const secretish = 'sk-live-0123456789abcdefghij';
    const r = await post(f.url, '/v1/chat/completions', chat('local/chat', `my key is ${secretish} for project-zeus`), auth);
    const s = await post(f.url, '/v1/chat/completions', chat('local/chat', 'stream me', { stream: true }), auth);
    const long = await post(f.url, '/v1/chat/completions', chat('local/chat', 'x'.repeat(5000)), auth);
    await f.gw.app.accounting!.writer.flush();
    const one = await admin(f, `/admin/requests?id=${r.headers.get('x-request-id')}`);
    assert.equal(one.enabled, true);
    const e = one.data[0];
    assert.ok(!e.request.includes(secretish) && !e.request.includes('project-zeus'), e.request);
    assert.match(e.request, /\[redacted\]/);
    assert.match(e.response, /"object":"chat.completion"/);
    const st = (await admin(f, `/admin/requests?id=${s.headers.get('x-request-id')}`)).data[0];
    assert.match(st.response, /^data: /);
    const big = (await admin(f, `/admin/requests?id=${long.headers.get('x-request-id')}`)).data[0];
    assert.ok(big.request.length < 700, `capped: ${big.request.length}`);
    assert.match(big.request, /more characters cut/);
  });
});
