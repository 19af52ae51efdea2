// Reranking end to end: a rerank role on a simulated vLLM reranker, a fallback role on a
// simulated llama.cpp server (which answers without documents, and reads top_n 0 as none), over
// loopback on every path clients use, with keys, limits, prices, the cache and failures.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startFabric, post, eventually, waitForLog, type Fabric } from './helpers.ts';

const MASTER = 'fabric-master-key-for-rerank-tests';
const FAST = { ttftMs: 2, tokensPerSecond: 5000, maxConcurrency: 8, maxQueue: 16 };
const VLLM_MODEL = 'BAAI/bge-reranker-v2-m3';
const LLAMA_MODEL = 'bge-reranker-v2-m3-Q8_0';
const auth = { authorization: `Bearer ${MASTER}` };

let f: Fabric;
const sent = (engine: string): number => f.fleet.get(engine).stats().requests;
const lastBody = (engine: string): any => f.fleet.get(engine).requests().at(-1)!.body;
const admin = (path: string, body?: unknown, method = 'POST') => body === undefined
  ? fetch(f.url + path, { headers: auth }).then(async (r) => ({ status: r.status, json: await r.json() as any }))
  : fetch(f.url + path, { method, headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(body) }).then(async (r) => ({ status: r.status, json: await r.json() as any }));

const DOCS = ['The sky is blue today.', 'Giant pandas eat bamboo in the mountains.', 'Pandas sleep a lot.', 'Stock markets fell.'];
const ask = (extra: Record<string, unknown> = {}) => ({ model: 'rerank-general', query: 'what do giant pandas eat', documents: DOCS, ...extra });

before(async () => {
  f = await startFabric({
    env: { FABRIC_MASTER_KEY: MASTER },
    apiKey: MASTER,
    engines: [
      { name: 'motoko', protocol: 'vllm', model: VLLM_MODEL, kind: 'rerank', timing: FAST },
      { name: 'spare', protocol: 'llamacpp', model: LLAMA_MODEL, kind: 'rerank', timing: FAST },
      // A llama-server with a physical batch (--ubatch-size) of 12 tokens: a longer pair is its 500.
      { name: 'small', protocol: 'llamacpp', model: LLAMA_MODEL, kind: 'rerank', timing: FAST, physicalBatch: 12 },
      { name: 'armitage', protocol: 'vllm', model: 'Qwen/Qwen2.5-7B-Instruct-AWQ', kind: 'chat', timing: FAST },
    ],
    yaml: (url) => `
gateway:
  master_key: env:FABRIC_MASTER_KEY
  accounting: { flush_interval: 20ms }
  limits: { max_documents: 5 }
  cache: { ttl: 1h }
backends:
  motoko-rerank: { engine: vllm, url: ${url('motoko')}/v1, model: ${VLLM_MODEL}, max_retries: 0 }
  spare-rerank: { engine: llamacpp, url: ${url('spare')}/v1, model: ${LLAMA_MODEL}, max_retries: 0 }
  armitage-qwen: { engine: vllm, url: ${url('armitage')}/v1, model: Qwen/Qwen2.5-7B-Instruct-AWQ }
  small-batch-rerank: { engine: llamacpp, url: ${url('small')}/v1, model: ${LLAMA_MODEL}, max_retries: 0 }
  metered-rerank: { engine: llamacpp, url: ${url('spare')}/v1, model: ${LLAMA_MODEL}, max_retries: 0 }
prices:
  motoko-rerank: { input: 1000 }
  metered-rerank: { input: 1000 }
budgets:
  # Spent before the first request; its fallback is a chat role, for the chat backends it may cover.
  tiny: { amount: 0.000001, period: month, backends: [metered-rerank], fallback: chat-fast }
roles:
  rerank-general: { kind: rerank, backends: [motoko-rerank], aliases: [local/rerank], fallbacks: [rerank-spare] }
  rerank-spare: { kind: rerank, backends: [spare-rerank] }
  # A document too long for the first reranker's window goes to the spare (with the query: over 60 tokens).
  rerank-ruled: { kind: rerank, backends: [motoko-rerank], rules: [{ if_input_tokens_over: 60, route_to: rerank-spare }] }
  chat-fast: { kind: chat, backends: [armitage-qwen] }
  rerank-small-batch: { kind: rerank, backends: [small-batch-rerank], context_window_fallback: rerank-spare }
  rerank-metered: { kind: rerank, backends: [metered-rerank] }
`,
  });
});

after(async () => {
  await f.close();
});

/** No cache: each of these must reach a backend. */
const FRESH = { ...auth, 'cache-control': 'no-cache, no-store' };

test('a rerank through the role and its alias: the documents by relevance, with their text; the backend gets its own model', async () => {
  const before = sent('motoko');
  const r = await post(f.url, '/v1/rerank', ask({ model: 'local/rerank' }), FRESH);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual([r.headers.get('x-fabric-role'), r.headers.get('x-fabric-backend')], ['rerank-general', 'motoko-rerank']);
  assert.equal(sent('motoko') - before, 1);
  const up = lastBody('motoko');
  assert.equal(up.model, VLLM_MODEL, 'the physical model, never the role name');
  assert.deepEqual(up.documents, DOCS);
  assert.equal(up.top_n, undefined, 'no top_n asked: none sent');
  assert.deepEqual(Object.keys(r.json).sort(), ['id', 'model', 'results', 'usage']);
  const results = r.json.results as { index: number; relevance_score: number; document: { text: string } }[];
  assert.equal(results.length, DOCS.length);
  assert.equal(results[0]!.index, 1, 'the document about what pandas eat comes first');
  for (let i = 1; i < results.length; i++) assert.ok(results[i - 1]!.relevance_score >= results[i]!.relevance_score, 'highest first');
  for (const x of results) assert.deepEqual(x.document, { text: DOCS[x.index] });
  assert.equal(typeof r.json.usage.prompt_tokens, 'number');
  assert.ok(r.json.usage.prompt_tokens > 0);
});

test('/rerank and /v2/rerank answer the same ranking; top_n cuts it, return_documents: false leaves the texts out, Cohere\'s {text} documents are sent as strings', async () => {
  const v1 = await post(f.url, '/v1/rerank', ask(), FRESH);
  for (const path of ['/rerank', '/v2/rerank']) {
    const r = await post(f.url, path, ask(), FRESH);
    assert.equal(r.status, 200, `${path}: ${r.text}`);
    assert.deepEqual(r.json.results, v1.json.results, path);
  }
  const top = await post(f.url, '/v1/rerank', ask({ top_n: 2, return_documents: false, documents: DOCS.map((text) => ({ text })) }), FRESH);
  assert.equal(top.status, 200, top.text);
  assert.deepEqual(top.json.results, v1.json.results.slice(0, 2).map((x: any) => ({ index: x.index, relevance_score: x.relevance_score })));
  assert.deepEqual(lastBody('motoko').documents, DOCS);
  assert.equal(lastBody('motoko').top_n, 2);
});

test('llama.cpp as the fallback: its answer (no documents, no id) is made the same shape; top_n 0 is every document there too', async () => {
  const direct = await post(f.url, '/v1/rerank', ask({ top_n: 0 }), FRESH);
  await f.fleet.get('motoko').setFault({ kind: 'down' });
  try {
    const r = await post(f.url, '/v1/rerank', ask({ top_n: 0 }), { ...FRESH, 'x-request-id': 'client-id-1' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual([r.headers.get('x-fabric-role'), r.headers.get('x-fabric-backend'), r.headers.get('x-fabric-rerouted')], ['rerank-spare', 'spare-rerank', 'true']);
    assert.equal(lastBody('spare').model, LLAMA_MODEL);
    assert.equal(lastBody('spare').top_n, undefined, 'llama.cpp would read 0 as none: not sent');
    assert.equal(r.json.results.length, DOCS.length);
    assert.deepEqual(r.json.results.map((x: any) => x.index), direct.json.results.map((x: any) => x.index), 'the same simulated relevance, the same order');
    for (const x of r.json.results) assert.deepEqual(x.document, { text: DOCS[x.index] });
    assert.equal(r.json.id, `rerank-${r.headers.get('x-request-id')}`);
  } finally {
    await f.fleet.get('motoko').setFault(null);
  }
});

test('bad requests: a 400 naming the field before anything is sent; the wrong kind of model names the endpoint to use', async () => {
  const before = sent('motoko') + sent('spare');
  for (const [body, param] of [
    [ask({ query: '' }), 'query'], [ask({ documents: [] }), 'documents'], [ask({ documents: ['a', 2] }), 'documents[1]'],
    [ask({ documents: ['a', 'b', 'c', 'd', 'e', 'f'] }), 'documents'], [ask({ top_n: -2 }), 'top_n'], [ask({ api_base: 'http://evil' }), 'api_base'],
  ] as const) {
    const r = await post(f.url, '/v1/rerank', body, FRESH);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.equal(r.json.error.param, param, r.text);
  }
  const chatModel = await post(f.url, '/v1/rerank', ask({ model: 'chat-fast' }), FRESH);
  assert.equal(chatModel.status, 400);
  assert.equal(chatModel.json.error.code, 'wrong_model_kind');
  assert.match(chatModel.json.error.message, /`chat-fast` is a chat model; use \/v1\/chat\/completions/);
  const asEmbeddings = await post(f.url, '/v1/embeddings', { model: 'rerank-general', input: 'x' }, FRESH);
  assert.match(asEmbeddings.json.error.message, /`rerank-general` is a reranking model; use \/v1\/rerank/);
  assert.equal(sent('motoko') + sent('spare'), before, 'nothing reached a backend');
});

test('an answer that is not JSON is the backend\'s failure: the fallback serves; with none left, a 502 (JSON that is no ranking: src/engines/rerank.test.ts)', async () => {
  await f.fleet.get('motoko').setFault({ kind: 'garbage' });
  try {
    const r = await post(f.url, '/v1/rerank', ask(), FRESH);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('x-fabric-backend'), 'spare-rerank');
  } finally {
    await f.fleet.get('motoko').setFault(null);
  }
  await f.fleet.get('spare').setFault({ kind: 'garbage' });
  try {
    const r = await post(f.url, '/v1/rerank', ask({ model: 'rerank-spare' }), FRESH);
    assert.equal(r.status, 502, r.text);
    assert.equal(r.json.error.code, 'bad_upstream_response');
    assert.match(r.json.error.message, /spare-rerank/);
  } finally {
    await f.fleet.get('spare').setFault(null);
  }
});

test('the cache: the same question is answered again without the backend (the ranking is deterministic); another top_n is another entry', async () => {
  const first = await post(f.url, '/v1/rerank', ask({ query: 'bamboo forests' }), auth);
  assert.equal(first.headers.get('x-fabric-cache'), 'miss');
  const before = sent('motoko');
  const second = await post(f.url, '/v1/rerank', ask({ query: 'bamboo forests' }), auth);
  assert.equal(second.headers.get('x-fabric-cache'), 'hit');
  assert.deepEqual(second.json.results, first.json.results);
  assert.equal(sent('motoko'), before);
  const other = await post(f.url, '/v1/rerank', ask({ query: 'bamboo forests', top_n: 1 }), auth);
  assert.equal(other.headers.get('x-fabric-cache'), 'miss');
  assert.equal(other.json.results.length, 1);
});

test('keys, usage and cost: a key held to the rerank role; its tokens are the engine\'s count, priced per input token, and kept under op rerank', async () => {
  const k = await admin('/admin/keys', { name: 'rag-app', roles: ['rerank-general'] });
  assert.equal(k.status, 201, JSON.stringify(k.json));
  const key = { authorization: `Bearer ${k.json.key}`, 'cache-control': 'no-cache, no-store' };
  const from = f.logs.length;
  const r = await post(f.url, '/v1/rerank', ask(), key);
  assert.equal(r.status, 200, r.text);
  const line = await waitForLog(f, from, (l) => l.msg === 'request' && l.id === r.headers.get('x-request-id'));
  assert.deepEqual([line.op, line.key, line.prompt_tokens, line.completion_tokens], ['rerank', 'rag-app', r.json.usage.prompt_tokens, 0]);
  assert.ok(Math.abs(line.cost - r.json.usage.prompt_tokens * 1000 / 1e6) < 1e-9, `cost ${line.cost}`);
  const chat = await post(f.url, '/v1/chat/completions', { model: 'chat-fast', messages: [{ role: 'user', content: 'hi' }] }, key);
  assert.equal(chat.status, 403, 'the key may rerank only');
  const usage = await eventually(() => admin(`/admin/usage?by=role&key=${k.json.id}`), (u) => (u.json.data ?? []).some((x: any) => x.role === 'rerank-general'));
  const row = usage.json.data.find((x: any) => x.role === 'rerank-general');
  assert.equal(row.requests, 1);
  assert.equal(row.prompt_tokens, r.json.usage.prompt_tokens);
  // Metrics, as the README says: the request under op rerank, its role and backend.
  const metrics = await (await fetch(`${f.url}/metrics`, { headers: auth })).text();
  assert.match(metrics, /^fabric_requests_total\{op="rerank",role="rerank-general",backend="motoko-rerank",status="200"\} [1-9]/m);
});

test('tokens per minute: a rerank reserves the query once beside each document, so a request that fits only if the query were counted once is held back', async () => {
  const k = await admin('/admin/keys', { name: 'rag-tpm', tpm: 200 });
  const key = { authorization: `Bearer ${k.json.key}`, 'cache-control': 'no-cache, no-store' };
  const small = await post(f.url, '/v1/rerank', ask({ query: 'pandas', documents: ['pandas eat bamboo', 'sky'] }), key);
  assert.equal(small.status, 200, small.text);
  // 162 bytes of query beside 5 one-letter documents: some 224 tokens reserved (the query counted
  // once would be some 62, which would fit what the small request left).
  const r = await post(f.url, '/v1/rerank', ask({ query: 'pandas and bamboo '.repeat(9), documents: ['a', 'b', 'c', 'd', 'e'] }), key);
  assert.equal(r.status, 429, r.text);
  assert.match(r.json.error.message, /tokens per minute \(TPM\): limit 200/);
});

test('a token rule on a rerank role reads the query beside each document: many short documents stay, one long document goes', async () => {
  const words = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `w${(i + from) % 97}`).join(' ');
  const many = await post(f.url, '/v1/rerank', { model: 'rerank-ruled', query: 'pandas', documents: Array.from({ length: 5 }, (_, i) => words(12, i)) }, FRESH);
  assert.equal(many.status, 200, many.text);
  assert.deepEqual([many.headers.get('x-fabric-role'), many.headers.get('x-fabric-rerouted')], ['rerank-ruled', null], '60 words in all (over 60 tokens), none over 60 tokens beside the query');
  const one = await post(f.url, '/v1/rerank', { model: 'rerank-ruled', query: 'pandas', documents: ['short', words(80)] }, FRESH);
  assert.equal(one.status, 200, one.text);
  assert.deepEqual([one.headers.get('x-fabric-role'), one.headers.get('x-fabric-rerouted')], ['rerank-spare', 'true']);
});

test('a pair past llama-server\'s physical batch (its 500) is too long for it, not a failure of it: the role\'s context_window_fallback serves', async () => {
  const before = sent('small');
  const r = await post(f.url, '/v1/rerank', ask({ model: 'rerank-small-batch' }), FRESH);
  assert.equal(r.status, 200, r.text);
  assert.equal(sent('small') - before, 1, 'it was asked, and refused');
  // A short pair it takes.
  const short = await post(f.url, '/v1/rerank', { model: 'rerank-small-batch', query: 'pandas', documents: ['bamboo', 'sky'] }, FRESH);
  assert.equal(short.headers.get('x-fabric-backend'), 'small-batch-rerank');
  assert.deepEqual([r.headers.get('x-fabric-backend'), r.headers.get('x-fabric-rerouted')], ['spare-rerank', 'true']);
  assert.equal(f.gw.app.gateway.backends.get('small-batch-rerank')!.consecutiveFailures, 0, 'not blamed');
});

test('a spent budget whose fallback is a chat role does not send a rerank there: the quota error, nothing sent', async () => {
  const before = sent('armitage') + sent('spare');
  const r = await post(f.url, '/v1/rerank', ask({ model: 'rerank-metered' }), FRESH);
  assert.equal(r.json?.error?.code, 'insufficient_quota', r.text);
  assert.equal(sent('armitage') + sent('spare'), before);
});

test('the gateway\'s root lists /v1/rerank among its endpoints', async () => {
  const root = await fetch(f.url + '/').then((r) => r.json()) as { endpoints: string[] };
  assert.ok(root.endpoints.includes('/v1/rerank'), JSON.stringify(root.endpoints));
});

test('stream: true on a rerank is answered whole, and logged as not streamed', async () => {
  const from = f.logs.length;
  const r = await post(f.url, '/v1/rerank', ask({ stream: true }), FRESH);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.results.length, DOCS.length);
  assert.equal(lastBody('motoko').stream, undefined, 'not sent on');
  const line = await waitForLog(f, from, (l) => l.msg === 'request' && l.id === r.headers.get('x-request-id'));
  assert.equal(line.stream, undefined);
});
