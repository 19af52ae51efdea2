// The response cache (gateway.cache) end to end: the official openai SDK and raw HTTP against a
// gateway on loopback, in front of simulated engines whose request counters say whether an
// answer came from a backend or from the cache. Then the same cache in a real Redis, shared by
// two gateways.

import { test, before, after, afterEach, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createClient } from 'redis';
import { parseFabricText } from '../src/config/load.ts';
import { Secrets } from '../src/config/env-file.ts';
import { startFabric, post, chat, waitForLog, eventually, lastBody, openaiSchemaValidator, seedEngine, type Fabric } from './helpers.ts';
import { startRedis, type RedisServer } from './support/servers.ts';

const MASTER = 'fabric-master-key-for-cache-tests';
const FAST = { ttftMs: 5, tokensPerSecond: 2000, maxConcurrency: 16, maxQueue: 64 };
const auth = { authorization: `Bearer ${MASTER}` };

const yaml = (url: (n: string) => string, chatModel = 'Qwen/Qwen2.5-7B-Instruct-AWQ'): string => `
gateway:
  master_key: env:FABRIC_MASTER_KEY
  cache: { ttl: 1h, max_entry: 8KiB }
  accounting: { flush_interval: 20ms }
backends:
  armitage-qwen: { engine: vllm, url: ${url('armitage')}/v1, model: ${chatModel}, max_retries: 0 }
  wintermute-llama: { engine: vllm, url: ${url('wintermute')}/v1, model: casperhansen/llama-3-8b-instruct-awq, max_retries: 0 }
  motoko-bge: { engine: vllm, url: ${url('motoko')}/v1, model: BAAI/bge-base-en-v1.5 }
  ollama-qwen: { engine: ollama, url: ${url('ollama')}, model: "qwen2.5:7b", max_retries: 0 }
  spare-vllm: { engine: vllm, url: ${url('spare')}/v1, model: spare-model, max_retries: 0 }
roles:
  chat-tiered: { kind: chat, backends: [spare-vllm], fallbacks: [chat-fast] }
  chat-ruled: { kind: chat, backends: [spare-vllm], rules: [{ if_input_tokens_over: 6, route_to: chat-fast }] }
  chat-fast: { kind: chat, backends: [armitage-qwen], aliases: [local/chat] }
  chat-deep: { kind: chat, backends: [wintermute-llama], cache: false }
  chat-notes: { kind: chat, backends: [ollama-qwen], cache: { when: always, ttl: 1s } }
  embeddings-general: { kind: embeddings, backends: [motoko-bge], aliases: [local/embed] }
prices:
  armitage-qwen: { input: 100, output: 200 }
`;

let f: Fabric;
const sent = (engine: string): number => f.fleet.get(engine).stats().requests;

before(async () => {
  f = await startFabric({
    env: { FABRIC_MASTER_KEY: MASTER },
    apiKey: MASTER,
    engines: [
      seedEngine('armitage', FAST),
      seedEngine('wintermute', FAST),
      seedEngine('motoko', FAST),
      { name: 'ollama', protocol: 'ollama', model: 'qwen2.5:7b', kind: 'chat', timing: FAST },
      { name: 'spare', protocol: 'vllm', model: 'spare-model', kind: 'chat', timing: FAST },
    ],
    yaml,
  });
});

after(async () => {
  await f.close();
});

afterEach(async () => {
  for (const e of f.fleet.engines.values()) await e.setFault(null);
});

/** An answer with its own id and time left out: what a hit shares with the answer it repeats. */
const sameAnswer = (text: string): string => text.replace(/"id":"(chatcmpl|cmpl|embd)-[^"]*"/g, '"id":"…"').replace(/"created":\d+/g, '"created":0');

/** A prompt no other test asks, so each test starts with nothing cached. */
let n = 0;
const fresh = (what: string): string => `${what} #${++n} ${Date.now()}`;

test('a deterministic chat answer is given again from the cache: same body, no backend, headers that say so', async () => {
  const body = chat('chat-fast', fresh('capital of France?'), { temperature: 0 });
  const before = sent('armitage');
  const first = await post(f.url, '/v1/chat/completions', body, auth);
  assert.equal(first.status, 200);
  assert.equal(first.headers.get('x-fabric-cache'), 'miss');
  assert.equal(first.headers.get('x-fabric-backend'), 'armitage-qwen');
  assert.equal(sent('armitage'), before + 1);

  // The same request with its fields in another order, another `user`, and through the role's alias.
  const reordered = { temperature: 0, max_tokens: body.max_tokens, messages: body.messages, user: 'someone-else', model: 'local/chat' };
  const second = await post(f.url, '/v1/chat/completions', reordered, auth);
  assert.equal(second.status, 200);
  assert.equal(second.headers.get('x-fabric-cache'), 'hit');
  assert.equal(second.headers.get('x-fabric-backend'), '(cache)');
  assert.equal(second.headers.get('x-fabric-role'), 'chat-fast');
  assert.equal(second.headers.get('x-fabric-attempts'), '0');
  assert.match(second.headers.get('age') ?? '', /^\d+$/);
  assert.notEqual(second.headers.get('x-request-id'), first.headers.get('x-request-id'), 'a hit is a request of its own');
  assert.equal(sameAnswer(second.text), sameAnswer(first.text), 'the answer as it was first sent');
  // With an id of its own, from the gateway's request id: a client filing answers by id sees two.
  assert.equal(second.json.id, `chatcmpl-${second.headers.get('x-request-id')}`);
  assert.notEqual(second.json.id, first.json.id);
  assert.ok(second.json.created >= first.json.created);
  assert.deepEqual(openaiSchemaValidator()('CreateChatCompletionResponse', second.json), [], 'a hit is an OpenAI answer too');
  assert.equal(sent('armitage'), before + 1, 'the backend was not asked again');

  // Anything that changes the answer is another entry.
  const other = await post(f.url, '/v1/chat/completions', { ...body, max_tokens: 5 }, auth);
  assert.equal(other.headers.get('x-fabric-cache'), 'miss');
  assert.equal(sent('armitage'), before + 2);
});

test('a hit is logged, counted and recorded as the cache\'s, with no tokens and no cost', async () => {
  const body = chat('chat-fast', fresh('log me'), { temperature: 0 });
  await post(f.url, '/v1/chat/completions', body, auth);
  const from = f.logs.length;
  const hit = await post(f.url, '/v1/chat/completions', body, auth);
  const id = hit.headers.get('x-request-id');
  const line = await waitForLog(f, from, (r) => r.msg === 'request' && r.id === id);
  assert.equal(line.cache, 'hit');
  assert.equal(line.backend, '(cache)');
  assert.equal(line.role, 'chat-fast');
  assert.equal(line.attempts, 0);
  assert.equal(line.prompt_tokens, 0);

  // Its usage record: the cache's, no tokens, no cost (the records are written every 20 ms).
  const row = await eventually(async () => ((await (await fetch(`${f.url}/admin/usage?by=backend`, { headers: auth })).json()) as any).data.find((r: any) => r.backend === '(cache)'), (r) => r !== undefined);
  assert.ok(row !== undefined, 'a usage row for the cache');
  assert.ok(row.requests >= 1);
  assert.equal(row.prompt_tokens + row.completion_tokens, 0);
  assert.equal(row.cost_usd, 0);
  const metrics = await (await fetch(`${f.url}/metrics`, { headers: auth })).text();
  assert.match(metrics, /fabric_cache_requests_total\{role="chat-fast",result="hit"\} [1-9]/);
  assert.match(metrics, /fabric_cache_requests_total\{role="chat-fast",result="miss"\} [1-9]/);
  assert.match(metrics, /fabric_cache_stored_total\{role="chat-fast"\} [1-9]/);
  assert.match(metrics, /fabric_requests_total\{op="chat",role="chat-fast",backend="\(cache\)",status="200"\} [1-9]/);
  assert.match(metrics, /fabric_cache_entries [1-9]/);
  // What the hits spared the backend, and would have cost at its prices.
  assert.match(metrics, /fabric_cache_saved_tokens_total\{role="chat-fast",direction="in"\} [1-9]/);
  assert.match(metrics, /fabric_cache_saved_tokens_total\{role="chat-fast",direction="out"\} [1-9]/);
  assert.match(metrics, /fabric_cache_saved_usd_total\{role="chat-fast"\} 0\.00[0-9]*[1-9]/);
});

test('a sampled request is neither looked up nor kept (when: deterministic); a seed makes it deterministic', async () => {
  const body = chat('chat-fast', fresh('tell me a story'));
  const before = sent('armitage');
  const a = await post(f.url, '/v1/chat/completions', body, auth);
  const b = await post(f.url, '/v1/chat/completions', body, auth);
  assert.equal(a.headers.get('x-fabric-cache'), 'bypass');
  assert.equal(b.headers.get('x-fabric-cache'), 'bypass');
  assert.equal(sent('armitage'), before + 2, 'a "regenerate" gets a new answer');

  const seeded = { ...body, seed: 7 };
  assert.equal((await post(f.url, '/v1/chat/completions', seeded, auth)).headers.get('x-fabric-cache'), 'miss');
  assert.equal((await post(f.url, '/v1/chat/completions', seeded, auth)).headers.get('x-fabric-cache'), 'hit');
});

test('a role with cache: false is not cached; one with when: always keeps sampled answers, for its own ttl', async () => {
  const deep = chat('chat-deep', fresh('deep'), { temperature: 0 });
  const before = sent('wintermute');
  const r1 = await post(f.url, '/v1/chat/completions', deep, auth);
  await post(f.url, '/v1/chat/completions', deep, auth);
  assert.equal(r1.headers.get('x-fabric-cache'), null, 'no cache header on a route the cache does not cover');
  assert.equal(sent('wintermute'), before + 2);

  // Ollama's native API underneath: the answer kept is the translated one the client got.
  const notes = chat('chat-notes', fresh('notes'));
  const o = sent('ollama');
  const m = await post(f.url, '/v1/chat/completions', notes, auth);
  const h = await post(f.url, '/v1/chat/completions', notes, auth);
  assert.equal(m.headers.get('x-fabric-cache'), 'miss');
  assert.equal(h.headers.get('x-fabric-cache'), 'hit');
  assert.equal(h.json.choices[0].message.content, m.json.choices[0].message.content);
  assert.equal(sent('ollama'), o + 1);
  // ttl: 1s.
  await new Promise((r) => setTimeout(r, 1_100));
  assert.equal((await post(f.url, '/v1/chat/completions', notes, auth)).headers.get('x-fabric-cache'), 'miss', 'expired');
  assert.equal(sent('ollama'), o + 2);
});

test('streams: a kept stream is replayed to the SDK whole, [DONE] included; a stream and a whole answer are different entries', async () => {
  const content = fresh('stream this');
  const params = { model: 'chat-fast', messages: [{ role: 'user' as const, content }], max_tokens: 12, temperature: 0, stream: true as const };
  const before = sent('armitage');
  const read = async (): Promise<{ text: string; chunks: number; headers: Headers }> => {
    const { data, response } = await f.client.chat.completions.create(params).withResponse();
    let text = '';
    let chunks = 0;
    for await (const c of data) {
      chunks++;
      text += c.choices[0]?.delta?.content ?? '';
    }
    return { text, chunks, headers: response.headers };
  };
  const first = await read();
  const second = await read();
  assert.equal(first.headers.get('x-fabric-cache'), 'miss');
  assert.equal(second.headers.get('x-fabric-cache'), 'hit');
  assert.equal(second.headers.get('content-type'), 'text/event-stream; charset=utf-8');
  assert.ok(first.text.length > 0);
  assert.equal(second.text, first.text);
  assert.equal(second.chunks, first.chunks, 'chunk by chunk');
  assert.equal(sent('armitage'), before + 1);

  // Raw: the replay ends with [DONE] and the connection's answer ends.
  const raw = await post(f.url, '/v1/chat/completions', params, auth);
  assert.match(raw.text, /data: \[DONE\]\n\n$/);
  // The whole answer to the same prompt is not the stream's.
  const whole = await post(f.url, '/v1/chat/completions', { ...params, stream: false }, auth);
  assert.equal(whole.headers.get('x-fabric-cache'), 'miss');
  assert.equal(whole.json.object, 'chat.completion');
  // A client that asked for usage gets its usage chunk, kept with the stream.
  const withUsage = { ...params, stream_options: { include_usage: true } };
  const u1 = await post(f.url, '/v1/chat/completions', withUsage, auth);
  const u2 = await post(f.url, '/v1/chat/completions', withUsage, auth);
  assert.equal(u2.headers.get('x-fabric-cache'), 'hit');
  assert.match(u2.text, /"usage":\{"prompt_tokens":\d+/);
  assert.equal(sameAnswer(u2.text), sameAnswer(u1.text));
  // Every chunk of the replay carries the hit's own id.
  const ids = new Set([...u2.text.matchAll(/"id":"([^"]+)"/g)].map((m) => m[1]));
  assert.deepEqual([...ids], [`chatcmpl-${u2.headers.get('x-request-id')}`]);
});

test('answers that did not end well are never kept: an error, a stream cut short, an engine\'s error event', async () => {
  const e = f.fleet.get('armitage');
  const body = chat('chat-fast', fresh('fails first'), { temperature: 0 });
  await e.setFault({ kind: 'error', status: 500 }, 1);
  assert.equal((await post(f.url, '/v1/chat/completions', body, auth)).status, 503);
  const after = await post(f.url, '/v1/chat/completions', body, auth);
  assert.equal(after.status, 200);
  assert.equal(after.headers.get('x-fabric-cache'), 'miss');

  for (const fault of [{ kind: 'drop', afterChunks: 2 }, { kind: 'stream-error', afterChunks: 2 }] as const) {
    const s = { ...chat('chat-fast', fresh(fault.kind), { temperature: 0 }), stream: true };
    await e.setFault(fault, 1);
    const cut = await post(f.url, '/v1/chat/completions', s, auth);
    assert.equal(cut.status, 200);
    assert.match(cut.text, /error/, `${fault.kind}: the client was told`);
    const before = sent('armitage');
    const again = await post(f.url, '/v1/chat/completions', s, auth);
    assert.equal(again.headers.get('x-fabric-cache'), 'miss', `${fault.kind}: not kept`);
    assert.equal(sent('armitage'), before + 1);
    assert.doesNotMatch(again.text, /"error"/);
  }
});

test('the same request arriving while its answer is being made waits for it, rather than making it twice; if that one fails, it makes its own', async () => {
  const e = f.fleet.get('armitage');
  await e.setFault({ kind: 'slow', factor: 40 });
  const body = chat('chat-fast', fresh('twice at once'), { temperature: 0 });
  const before = sent('armitage');
  const [a, b] = await Promise.all([post(f.url, '/v1/chat/completions', body, auth), post(f.url, '/v1/chat/completions', body, auth)]);
  assert.equal(a.status, 200);
  assert.equal(b.status, 200);
  assert.deepEqual([a.headers.get('x-fabric-cache'), b.headers.get('x-fabric-cache')].sort(), ['hit', 'miss']);
  assert.equal(a.json.choices[0].message.content, b.json.choices[0].message.content);
  assert.equal(sent('armitage'), before + 1, 'generated once');

  // The first fails (the engine's 500, no fallback): the one waiting makes its own and is served.
  await e.setFault(null);
  await e.setFault({ kind: 'error', status: 500 }, 1);
  const other = chat('chat-fast', fresh('first fails'), { temperature: 0 });
  const slowFirst = post(f.url, '/v1/chat/completions', other, auth);
  const second = post(f.url, '/v1/chat/completions', other, auth);
  const statuses = (await Promise.all([slowFirst, second])).map((r) => r.status).sort();
  assert.deepEqual(statuses, [200, 503]);
  // Streams are not joined: each is made (and the last kept).
  await e.setFault({ kind: 'slow', factor: 40 });
  const s = { ...chat('chat-fast', fresh('streams at once'), { temperature: 0 }), stream: true };
  const n0 = sent('armitage');
  await Promise.all([post(f.url, '/v1/chat/completions', s, auth), post(f.url, '/v1/chat/completions', s, auth)]);
  assert.equal(sent('armitage'), n0 + 2);
});

test('a fallback\'s answer is served and not kept (the route\'s own is given once it is back); a rule\'s target is kept', async () => {
  const spare = f.fleet.get('spare');
  await spare.setFault({ kind: 'down' });
  const body = chat('chat-tiered', fresh('fallback'), { temperature: 0 });
  const fb = await post(f.url, '/v1/chat/completions', body, auth);
  assert.equal(fb.status, 200);
  assert.equal(fb.headers.get('x-fabric-role'), 'chat-fast');
  assert.equal(fb.headers.get('x-fabric-rerouted'), 'true');
  await spare.setFault(null);
  const back = await post(f.url, '/v1/chat/completions', body, auth);
  assert.equal(back.headers.get('x-fabric-cache'), 'miss', 'the fallback\'s answer was not kept');
  assert.equal(back.headers.get('x-fabric-backend'), 'spare-vllm');
  assert.equal((await post(f.url, '/v1/chat/completions', body, auth)).headers.get('x-fabric-cache'), 'hit', 'the route\'s own is');

  // Over 6 tokens: the rule sends it to chat-fast, as it would every time: kept.
  const long = chat('chat-ruled', fresh('a prompt long enough to pass the rule of six tokens'), { temperature: 0 });
  const ruled = await post(f.url, '/v1/chat/completions', long, auth);
  assert.equal(ruled.headers.get('x-fabric-role'), 'chat-fast');
  const again = await post(f.url, '/v1/chat/completions', long, auth);
  assert.equal(again.headers.get('x-fabric-cache'), 'hit');
  assert.equal(again.headers.get('x-fabric-role'), 'chat-fast');
});

test('a role with cache: false is not reached around by naming its backend', async () => {
  const body = chat('casperhansen/llama-3-8b-instruct-awq', fresh('by model id'), { temperature: 0 });
  const before = sent('wintermute');
  const a = await post(f.url, '/v1/chat/completions', body, auth);
  await post(f.url, '/v1/chat/completions', body, auth);
  assert.equal(a.status, 200);
  assert.equal(a.headers.get('x-fabric-cache'), null);
  assert.equal(sent('wintermute'), before + 2);
});

test('LiteLLM\'s per-request controls in the body are honoured and not sent on', async () => {
  const body = chat('chat-fast', fresh('litellm body'), { temperature: 0 });
  await post(f.url, '/v1/chat/completions', body, auth);
  const noCache = await post(f.url, '/v1/chat/completions', { ...body, cache: { 'no-cache': true } }, auth);
  assert.equal(noCache.headers.get('x-fabric-cache'), 'bypass');
  assert.equal(lastBody(f, 'armitage').cache, undefined, 'the field is the gateway\'s, not the engine\'s');
  const hit = await post(f.url, '/v1/chat/completions', { ...body, cache: { 's-maxage': 3600 } }, auth);
  assert.equal(hit.headers.get('x-fabric-cache'), 'hit', 'the cache field is not part of the key');
  // ttl: this answer is kept 1 s.
  const short = chat('chat-fast', fresh('litellm ttl'), { temperature: 0, cache: { ttl: 1 } });
  await post(f.url, '/v1/chat/completions', short, auth);
  assert.equal((await post(f.url, '/v1/chat/completions', short, auth)).headers.get('x-fabric-cache'), 'hit');
  await new Promise((r) => setTimeout(r, 1_100));
  assert.equal((await post(f.url, '/v1/chat/completions', short, auth)).headers.get('x-fabric-cache'), 'miss');
});

test('a hit is not a request time of the role (a slow backend is not hidden by hits)', async () => {
  const body = chat('chat-fast', fresh('duration'), { temperature: 0 });
  await post(f.url, '/v1/chat/completions', body, auth);
  const count = async (): Promise<number> => Number(/fabric_request_duration_seconds_count\{op="chat",role="chat-fast"\} (\d+)/.exec(await (await fetch(`${f.url}/metrics`, { headers: auth })).text())?.[1]);
  const n = await count();
  assert.equal((await post(f.url, '/v1/chat/completions', body, auth)).headers.get('x-fabric-cache'), 'hit');
  assert.equal(await count(), n);
});

test('a waiting request whose client leaves is a 499 and sends nothing', async () => {
  const e = f.fleet.get('armitage');
  await e.setFault({ kind: 'slow', factor: 60 });
  const body = chat('chat-fast', fresh('leaves while waiting'), { temperature: 0 });
  const before = sent('armitage');
  const from = f.logs.length;
  const first = post(f.url, '/v1/chat/completions', body, auth);
  await new Promise((r) => setTimeout(r, 30));
  const gone = new AbortController();
  const second = fetch(`${f.url}/v1/chat/completions`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(body), signal: gone.signal }).catch(() => undefined);
  await new Promise((r) => setTimeout(r, 30));
  gone.abort();
  await second;
  const line = await waitForLog(f, from, (r) => r.msg === 'request' && r.status === 499);
  assert.equal(line.code, 'client_closed_request');
  assert.equal((await first).status, 200);
  assert.equal(sent('armitage'), before + 1, 'only the first was generated');
});

test('a kept answer is given while the role\'s engine is down', async () => {
  const body = chat('chat-fast', fresh('while down'), { temperature: 0 });
  assert.equal((await post(f.url, '/v1/chat/completions', body, auth)).status, 200);
  await f.fleet.get('armitage').setFault({ kind: 'down' });
  const hit = await post(f.url, '/v1/chat/completions', body, auth);
  assert.equal(hit.status, 200);
  assert.equal(hit.headers.get('x-fabric-cache'), 'hit');
  assert.equal((await post(f.url, '/v1/chat/completions', { ...body, max_tokens: 3 }, auth)).status, 503, 'anything not kept needs the engine');
});

test('the client\'s Cache-Control: no-cache refreshes the entry, no-store keeps nothing, max-age bounds its age', async () => {
  const body = chat('chat-fast', fresh('control'), { temperature: 0, max_tokens: 4 });
  const before = sent('armitage');
  await post(f.url, '/v1/chat/completions', body, auth);
  const noCache = await post(f.url, '/v1/chat/completions', body, { ...auth, 'cache-control': 'no-cache' });
  assert.equal(noCache.headers.get('x-fabric-cache'), 'bypass');
  // no-store keeps nothing of its own, and may be answered from what is kept (RFC 9111 §5.2.1.5).
  const noStore = await post(f.url, '/v1/chat/completions', body, { ...auth, 'cache-control': 'no-store' });
  assert.equal(noStore.headers.get('x-fabric-cache'), 'hit');
  assert.equal(sent('armitage'), before + 2);
  const both = await post(f.url, '/v1/chat/completions', body, { ...auth, 'cache-control': 'no-cache, no-store' });
  assert.equal(both.headers.get('x-fabric-cache'), 'bypass');
  assert.equal(sent('armitage'), before + 3);
  // no-cache kept its fresh answer (and no-store none): a hit follows.
  const hit = await post(f.url, '/v1/chat/completions', body, auth);
  assert.equal(hit.headers.get('x-fabric-cache'), 'hit');
  const fresh2 = chat('chat-fast', fresh('never kept'), { temperature: 0 });
  await post(f.url, '/v1/chat/completions', fresh2, { ...auth, 'cache-control': 'no-store' });
  assert.equal((await post(f.url, '/v1/chat/completions', fresh2, auth)).headers.get('x-fabric-cache'), 'miss', 'no-store kept nothing');
  assert.equal((await post(f.url, '/v1/chat/completions', body, { ...auth, 'cache-control': 'max-age=3600' })).headers.get('x-fabric-cache'), 'hit');
  await new Promise((r) => setTimeout(r, 1_100));
  assert.equal((await post(f.url, '/v1/chat/completions', body, { ...auth, 'cache-control': 'max-age=1' })).headers.get('x-fabric-cache'), 'miss', 'older than the client takes');
  assert.equal(sent('armitage'), before + 6);
});

test('embeddings are always deterministic: kept per input and encoding, through the alias', async () => {
  const input = fresh('embed me');
  const before = sent('motoko');
  const a = await f.client.embeddings.create({ model: 'embeddings-general', input });
  const { data: b, response } = await f.client.embeddings.create({ model: 'local/embed', input }).withResponse();
  assert.equal(response.headers.get('x-fabric-cache'), 'hit');
  assert.deepEqual(b.data[0]!.embedding, a.data[0]!.embedding);
  assert.equal(b.data[0]!.embedding.length, 768);
  assert.equal(sent('motoko'), before + 1);
  // The SDK asks for base64 by default; float is another answer.
  const float = await post(f.url, '/v1/embeddings', { model: 'embeddings-general', input, encoding_format: 'float' }, auth);
  assert.equal(float.headers.get('x-fabric-cache'), 'miss');
  assert.equal(sent('motoko'), before + 2);
});

test('the Responses API: a kept chat answer is made into a Responses answer again, with ids of its own', async () => {
  const body = { model: 'chat-fast', input: fresh('responses'), temperature: 0, max_output_tokens: 8 };
  const a = await post(f.url, '/v1/responses', body, auth);
  const b = await post(f.url, '/v1/responses', body, auth);
  assert.equal(a.status, 200);
  assert.equal(b.headers.get('x-fabric-cache'), 'hit');
  assert.equal(b.json.object, 'response');
  assert.notEqual(b.json.id, a.json.id, 'each answer its own response id');
  assert.equal(b.json.output_text ?? b.json.output[0].content[0].text, a.json.output_text ?? a.json.output[0].content[0].text);
});

test('a failure drill is never answered from the cache (it must reach the fallback)', async () => {
  const body = chat('chat-fast', fresh('drill'), { temperature: 0 });
  await post(f.url, '/v1/chat/completions', body, auth);
  const drill = await post(f.url, '/v1/chat/completions', body, { ...auth, 'x-fabric-drill': 'fail-primary' });
  assert.equal(drill.headers.get('x-fabric-cache'), null);
});

test('virtual keys get their own entries (scope: key)', async () => {
  const mint = async (alias: string): Promise<string> => (await post(f.url, '/key/generate', { key_alias: alias }, auth)).json.key;
  const k1 = await mint(fresh('k1'));
  const k2 = await mint(fresh('k2'));
  const body = chat('chat-fast', fresh('per key'), { temperature: 0 });
  const as = (k: string) => ({ authorization: `Bearer ${k}` });
  assert.equal((await post(f.url, '/v1/chat/completions', body, as(k1))).headers.get('x-fabric-cache'), 'miss');
  assert.equal((await post(f.url, '/v1/chat/completions', body, as(k2))).headers.get('x-fabric-cache'), 'miss', 'another key: not its answer');
  assert.equal((await post(f.url, '/v1/chat/completions', body, as(k1))).headers.get('x-fabric-cache'), 'hit');
});

test('a reload that gives a role another model starts its entries afresh; gateway.cache removed turns the cache off', async () => {
  const body = chat('chat-fast', fresh('reload'), { temperature: 0 });
  await post(f.url, '/v1/chat/completions', body, auth);
  assert.equal((await post(f.url, '/v1/chat/completions', body, auth)).headers.get('x-fabric-cache'), 'hit');
  const url = (n: string): string => f.fleet.get(n).url;
  const reload = (text: string): void => f.gw.reload(parseFabricText(text, 'test.yaml').config, new Secrets({ FABRIC_MASTER_KEY: MASTER }));
  try {
    reload(yaml(url, 'Qwen/Qwen2.5-7B-Instruct'));
    assert.equal((await post(f.url, '/v1/chat/completions', body, auth)).headers.get('x-fabric-cache'), 'miss', 'another model: not its answer');
    reload(yaml(url).replace('  cache: { ttl: 1h, max_entry: 8KiB }\n', '').replace(/, cache: \{[^}]*\}|, cache: false/g, ''));
    const off = await post(f.url, '/v1/chat/completions', body, auth);
    assert.equal(off.status, 200);
    assert.equal(off.headers.get('x-fabric-cache'), null);
  } finally {
    reload(yaml(url));
  }
  assert.equal((await post(f.url, '/v1/chat/completions', body, auth)).headers.get('x-fabric-cache'), 'hit', 'back on: the entry was kept');
});

test('reloads: a changed rule starts its route afresh; scope: shared lets keys share; gateway.redis added keeps answers in memory until a restart', async () => {
  const url = (n: string): string => f.fleet.get(n).url;
  const reload = (text: string, env: Record<string, string> = {}): void => f.gw.reload(parseFabricText(text, 'test.yaml').config, new Secrets({ FABRIC_MASTER_KEY: MASTER, ...env }));
  const long = chat('chat-ruled', fresh('a prompt long enough to pass the rule of six tokens'), { temperature: 0 });
  await post(f.url, '/v1/chat/completions', long, auth);
  assert.equal((await post(f.url, '/v1/chat/completions', long, auth)).headers.get('x-fabric-cache'), 'hit');
  const mint = async (): Promise<string> => (await post(f.url, '/key/generate', { key_alias: fresh('scope') }, auth)).json.key;
  const [k1, k2] = [await mint(), await mint()];
  try {
    reload(yaml(url).replace('if_input_tokens_over: 6', 'if_input_tokens_over: 7'));
    assert.equal((await post(f.url, '/v1/chat/completions', long, auth)).headers.get('x-fabric-cache'), 'miss', 'another rule: not its answer');

    reload(yaml(url).replace('cache: { ttl: 1h, max_entry: 8KiB }', 'cache: { ttl: 1h, max_entry: 8KiB, scope: shared }'));
    const shared = chat('chat-fast', fresh('shared scope'), { temperature: 0 });
    assert.equal((await post(f.url, '/v1/chat/completions', shared, { authorization: `Bearer ${k1}` })).headers.get('x-fabric-cache'), 'miss');
    assert.equal((await post(f.url, '/v1/chat/completions', shared, { authorization: `Bearer ${k2}` })).headers.get('x-fabric-cache'), 'hit', 'shared: another key\'s answer');
    assert.equal((await post(f.url, '/v1/chat/completions', shared, auth)).headers.get('x-fabric-cache'), 'hit');

    const from = f.logs.length;
    reload(yaml(url).replace('  cache: {', '  redis: { url: env:REDIS_URL }\n  cache: {'), { REDIS_URL: 'redis://127.0.0.1:1' });
    const mem = chat('chat-fast', fresh('redis later'), { temperature: 0 });
    await post(f.url, '/v1/chat/completions', mem, auth);
    assert.equal((await post(f.url, '/v1/chat/completions', mem, auth)).headers.get('x-fabric-cache'), 'hit', 'kept in memory until Redis is connected');
    await waitForLog(f, from, (r) => typeof r.msg === 'string' && r.msg.startsWith('cache: store is redis, but this process has no Redis connection'));
  } finally {
    reload(yaml(url));
  }
});

test('an answer larger than max_entry is served and not kept', async () => {
  // 768 floats as JSON text: some 15 KiB, past the 8 KiB max_entry.
  const body = { model: 'embeddings-general', input: fresh('large'), encoding_format: 'float' };
  const before = sent('motoko');
  const a = await post(f.url, '/v1/embeddings', body, auth);
  assert.equal(a.status, 200);
  assert.ok(a.text.length > 8 * 1024, `an answer past max_entry (${a.text.length} bytes)`);
  const b = await post(f.url, '/v1/embeddings', body, auth);
  assert.equal(b.status, 200);
  assert.equal(b.headers.get('x-fabric-cache'), 'miss');
  assert.equal(sent('motoko'), before + 2);
});

const MAIN = new URL('../src/cli/main.ts', import.meta.url).pathname;
const fabric = async (args: string[], key?: string): Promise<{ code: number; out: string; err: string }> => {
  const env = { ...process.env, FABRIC_URL: f.url, FABRIC_API_KEY: key ?? '' };
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [MAIN, ...args], { env, timeout: 20_000 });
    return { code: 0, out: stdout, err: stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, out: x.stdout, err: x.stderr };
  }
};

test('the admin API and fabric cache: what the cache holds, and clearing it; only with the master key', async () => {
  const body = chat('chat-fast', fresh('to be cleared'), { temperature: 0 });
  await post(f.url, '/v1/chat/completions', body, auth);
  const stats = await (await fetch(`${f.url}/admin/cache`, { headers: auth })).json() as any;
  assert.equal(stats.enabled, true);
  assert.equal(stats.store, 'memory');
  assert.ok(stats.entries >= 1 && stats.bytes > 0, JSON.stringify(stats));
  const shown = await fabric(['cache'], MASTER);
  assert.equal(shown.code, 0, shown.err);
  assert.match(shown.out, /store memory, ttl 3600 s, when deterministic, scope key/);
  assert.match(shown.out, new RegExp(`${stats.entries} answers, `));

  // A virtual key is not the operator.
  const k = (await post(f.url, '/key/generate', { key_alias: fresh('nosy') }, auth)).json.key;
  assert.equal((await fetch(`${f.url}/admin/cache`, { method: 'DELETE', headers: { authorization: `Bearer ${k}` } })).status, 403);
  const refused = await fabric(['cache', 'clear']);
  assert.equal(refused.code, 2);
  assert.match(refused.err, /needs the master key/);
  assert.equal((await post(f.url, '/v1/chat/completions', body, auth)).headers.get('x-fabric-cache'), 'hit', 'nothing cleared by a refusal');

  const cleared = await fabric(['cache', 'clear'], MASTER);
  assert.equal(cleared.code, 0, cleared.err);
  assert.match(cleared.out, new RegExp(`cache cleared: ${stats.entries} answers from memory`));
  assert.equal((await (await fetch(`${f.url}/admin/cache`, { headers: auth })).json() as any).entries, 0);
  assert.equal((await post(f.url, '/v1/chat/completions', body, auth)).headers.get('x-fabric-cache'), 'miss', 'forgotten');
  assert.equal((await fabric(['cache', 'flush'], MASTER)).code, 2);
});

const redis = await startRedis();
// Stopped by its suite, and here at the end too: a name pattern that skips the suite skips its hooks.
const stopRedis = (): Promise<void> | undefined => (typeof redis === 'string' ? undefined : redis.close());
after(stopRedis);

describe('the cache in Redis, shared by two gateways', { skip: typeof redis === 'string' ? redis : false }, () => {
  const server = redis as RedisServer;
  const redisYaml = (url: (n: string) => string): string => `
gateway:
  master_key: env:FABRIC_MASTER_KEY
  redis: { url: env:REDIS_URL, prefix: fabric-cache-test }
  cache: { ttl: 10m, max_size: 16KiB, max_entry: 4KiB }
backends:
  armitage-qwen: { engine: vllm, url: ${url('armitage')}/v1, model: Qwen/Qwen2.5-7B-Instruct-AWQ }
roles:
  chat-fast: { kind: chat, backends: [armitage-qwen] }
`;
  const engines = [{ name: 'armitage', protocol: 'vllm' as const, model: 'Qwen/Qwen2.5-7B-Instruct-AWQ', kind: 'chat' as const, timing: FAST }];
  let a: Fabric;
  let b: Fabric;
  before(async () => {
    const env = { FABRIC_MASTER_KEY: MASTER, REDIS_URL: server.url };
    a = await startFabric({ env, apiKey: MASTER, engines, yaml: redisYaml });
    // Both in front of the same engines (a's fleet), as two instances of one fabric are.
    b = await startFabric({ env, apiKey: MASTER, engines, yaml: () => redisYaml((n) => a.fleet.get(n).url) });
  });
  after(async () => {
    await a?.close();
    await b?.close();
    await stopRedis();
  });

  test('max_size bounds what the two gateways keep in Redis, together: the oldest answers go', async () => {
    const raw = createClient({ url: server.url });
    await raw.connect();
    try {
      const bodies = Array.from({ length: 30 }, (_, i) => chat('chat-fast', fresh(`bounded ${i}`), { temperature: 0 }));
      for (const [i, body] of bodies.entries()) {
        assert.equal((await post(i % 2 === 0 ? a.url : b.url, '/v1/chat/completions', body, auth)).headers.get('x-fabric-cache'), 'miss');
      }
      // The SETs are sent as the answers go: once each gateway's last one is found by the other, all its SETs have run (one connection each, in order).
      const found = (url: string, body: (typeof bodies)[number]) => eventually(async () => (await post(url, '/v1/chat/completions', body, auth)).headers.get('x-fabric-cache'), (c) => c === 'hit');
      assert.equal(await found(a.url, bodies[29]!), 'hit', 'b\'s last answer kept');
      assert.equal(await found(b.url, bodies[28]!), 'hit', 'a\'s last answer kept');
      const total = Number(await raw.hGet('fabric-cache-test:cache-sizes', 'bytes'));
      const kept = (await raw.keys('fabric-cache-test:cache:*')).length;
      assert.ok(total > 0 && total <= 16 * 1024, `${total} bytes counted, of 16 KiB`);
      assert.ok(kept >= 2 && kept < 30, `${kept} answers kept`);
      assert.equal(await raw.zCard('fabric-cache-test:cache-index'), kept);
      assert.equal((await post(b.url, '/v1/chat/completions', bodies[0]!, auth)).headers.get('x-fabric-cache'), 'miss', 'the first answer went');
    } finally {
      await raw.close();
    }
  });

  test('an answer one gateway kept is a hit on the other, which never asks its backend; Redis gone is a miss, not an error', async () => {
    const body = chat('chat-fast', fresh('shared'), { temperature: 0 });
    const first = await post(a.url, '/v1/chat/completions', body, auth);
    assert.equal(first.headers.get('x-fabric-cache'), 'miss');
    const hit = await (async () => {
      // The SET is sent as the answer goes: give it a moment to land.
      for (let i = 0; i < 50; i++) {
        const r = await post(b.url, '/v1/chat/completions', body, auth);
        if (r.headers.get('x-fabric-cache') === 'hit') return r;
        await new Promise((res) => setTimeout(res, 20));
      }
      return undefined;
    })();
    assert.ok(hit !== undefined, 'b found a\'s answer');
    assert.equal(sameAnswer(hit.text), sameAnswer(first.text));
    // (b may have asked the engine itself while a's SET was landing, as many times as it looked.)
    const engine = a.fleet.get('armitage');
    const n = engine.stats().requests;
    assert.equal((await post(b.url, '/v1/chat/completions', body, auth)).headers.get('x-fabric-cache'), 'hit');
    assert.equal(engine.stats().requests, n, 'a hit on b: the engine was not asked');

    // DELETE /admin/cache clears Redis for every gateway: a's next lookup misses too.
    const cleared = await (await fetch(`${b.url}/admin/cache`, { method: 'DELETE', headers: auth })).json() as any;
    assert.ok(cleared.redis_entries >= 1, JSON.stringify(cleared));
    assert.equal((await post(a.url, '/v1/chat/completions', body, auth)).headers.get('x-fabric-cache'), 'miss');

    // A Redis that hangs (frozen): the lookup is given up at its deadline, a miss, warned of; not a hung request.
    // (a's answer above was kept again: b would hit it if Redis answered.)
    const from = b.logs.length;
    server.pause();
    try {
      const hung = await post(b.url, '/v1/chat/completions', body, auth);
      assert.equal(hung.status, 200);
      assert.equal(hung.headers.get('x-fabric-cache'), 'miss');
      await waitForLog(b, from, (r) => r.msg === 'cache: redis failed; requests are sent to backends (misses) until it answers again' && /no answer within 250 ms/.test(r.error));
    } finally {
      server.resume();
    }

    /** What b counts as kept (fabric_cache_stored_total). */
    const stored = async (): Promise<number> => Number(/fabric_cache_stored_total\{role="chat-fast"\} (\d+)/.exec(await (await fetch(`${b.url}/metrics`, { headers: auth })).text())?.[1] ?? 0);
    /** The count once no SET is under way (the frozen Redis's queued SET lands after its resume). */
    const settled = async (): Promise<number> => {
      for (let n = await stored(); ;) {
        await new Promise((r) => setTimeout(r, 100));
        const again = await stored();
        if (again === n) return n;
        n = again;
      }
    };
    const keptBefore = await settled();
    const kept = await post(b.url, '/v1/chat/completions', chat('chat-fast', fresh('kept by b'), { temperature: 0 }), auth);
    assert.equal(kept.headers.get('x-fabric-cache'), 'miss');
    assert.equal(await settled(), keptBefore + 1, 'counted once Redis kept it');
    await stopRedis();
    const down = await post(b.url, '/v1/chat/completions', body, auth);
    assert.equal(down.status, 200);
    assert.equal(down.headers.get('x-fabric-cache'), 'miss');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(await stored(), keptBefore + 1, 'an answer Redis did not keep is not counted as kept');
  });
});
