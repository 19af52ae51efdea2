// Routing rules end to end: the seeds' "user-tier routing" (free → Ollama, premium → vLLM) and
// their vision-general role written as rules on a role, with virtual keys made through the
// admin API and requests from the official openai SDK and raw HTTP against simulated vLLM,
// Ollama and an OpenAI-compatible cloud. The engines' own request counters say where each
// request went.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startFabric, post, chat, eventually, seedEngine, type Fabric } from './helpers.ts';

const MASTER = 'fabric-master-key-for-key-rule-tests';
const FAST = { ttftMs: 2, tokensPerSecond: 5000, maxConcurrency: 32, maxQueue: 64 };

let f: Fabric;
const sent = (engine: string): number => f.fleet.get(engine).stats().requests;
const keys: Record<string, { id: string; key: string }> = {};

const admin = async (path: string, body?: unknown, method = body === undefined ? 'GET' : 'POST') => {
  const r = await fetch(f.url + path, { method, headers: { authorization: `Bearer ${MASTER}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: r.status, json: await r.json() as any };
};
/** One request with `key`: where it went (role, backend, engine counters before and after). */
const ask = async (key: string, model: string, content = 'hello there', extra: Record<string, unknown> = {}) => {
  const r = await post(f.url, '/v1/chat/completions', chat(model, content, extra), { authorization: `Bearer ${key}` });
  assert.equal(r.status, 200, r.text);
  return { role: r.headers.get('x-fabric-role'), backend: r.headers.get('x-fabric-backend'), rerouted: r.headers.get('x-fabric-rerouted') === 'true', cache: r.headers.get('x-fabric-cache'), json: r.json };
};
// Long enough for each token threshold below (about 200 tokens), and far under any window.
const LONG = Array.from({ length: 200 }, (_, i) => `w${i % 53}`).join(' ');

before(async () => {
  f = await startFabric({
    env: { FABRIC_MASTER_KEY: MASTER },
    apiKey: MASTER,
    engines: [
      seedEngine('wintermute', FAST),
      { name: 'ollama', protocol: 'ollama', model: 'qwen2.5:7b', kind: 'chat', timing: FAST },
      { name: 'cloud', protocol: 'openai', model: 'gpt-4.1', kind: 'chat', timing: FAST },
      { name: 'vision', protocol: 'vllm', model: 'Qwen/Qwen2.5-VL-7B-Instruct-AWQ', kind: 'chat', timing: FAST },
      seedEngine('motoko', FAST),
      { name: 'nomic', protocol: 'vllm', model: 'nomic-ai/nomic-embed-text-v1.5', kind: 'embeddings', dimensions: 768, timing: FAST },
    ],
    yaml: (url) => `
gateway:
  master_key: env:FABRIC_MASTER_KEY
  cache: { ttl: 1h, scope: shared }
  accounting: { flush_interval: 20ms, sync_interval: 100ms }
backends:
  wintermute-llama: { engine: vllm, url: ${url('wintermute')}/v1, model: casperhansen/llama-3-8b-instruct-awq, max_retries: 0 }
  ollama-qwen: { engine: ollama, url: ${url('ollama')}, model: "qwen2.5:7b", max_retries: 0 }
  cloud-strong: { engine: openai-compatible, url: ${url('cloud')}/v1, model: gpt-4.1, cloud: true, max_retries: 0 }
  vision-qwen: { engine: vllm, url: ${url('vision')}/v1, model: Qwen/Qwen2.5-VL-7B-Instruct-AWQ, max_retries: 0 }
  motoko-bge: { engine: vllm, url: ${url('motoko')}/v1, model: BAAI/bge-base-en-v1.5, max_retries: 0 }
  nomic-embed: { engine: vllm, url: ${url('nomic')}/v1, model: nomic-ai/nomic-embed-text-v1.5, max_retries: 0 }
  small-window: { engine: vllm, url: ${url('vision')}/v1, model: Qwen/Qwen2.5-VL-7B-Instruct-AWQ, max_retries: 0, context_window: 64 }
roles:
  chat:
    kind: chat
    backends: [wintermute-llama]
    aliases: [local/chat]
    rules:
      - { if_input_has: image, route_to: vision-general }
      - { if_key_metadata: { tier: [free, trial] }, route_to: chat-free }
      - { if_key: [bulk-bot], if_input_tokens_over: 40, route_to: chat-free }
      - { if_input_tokens_over: 150, route_to: openai/strong }
      - { if_input_has: tools, route_to: openai/strong }
  chat-free: { kind: chat, backends: [ollama-qwen] }
  vision-general: { kind: chat, backends: [vision-qwen] }
  chat-windowed:
    kind: chat
    backends: [wintermute-llama]
    context_window_fallback: openai/strong
    rules: [{ if_key_metadata: { tier: free }, route_to: chat-small-window }]
  chat-small-window: { kind: chat, backends: [small-window] }
  openai/strong: { kind: chat, backends: [cloud-strong] }
  # BGE reads 512 tokens at most: a longer input goes to the long-context embedder.
  embeddings-general: { kind: embeddings, backends: [motoko-bge], rules: [{ if_input_tokens_over: 100, route_to: embeddings-long }] }
  embeddings-long: { kind: embeddings, backends: [nomic-embed] }
`,
  });
  for (const [name, body] of Object.entries({
    'free-app': { metadata: { tier: 'free' }, roles: ['chat'] },
    'trial-app': { metadata: { tier: 'trial', owner: 'mdt' } },
    'premium-app': { metadata: { tier: 'premium' } },
    'bulk-bot': { metadata: { tier: 'premium' } },
  })) {
    const r = await admin('/admin/keys', { name, ...body });
    assert.equal(r.status, 201, JSON.stringify(r.json));
    keys[name] = { id: r.json.id, key: r.json.key };
  }
});

after(async () => {
  await f.close();
});

test('a free-tier key is served by the role its rule names, also through an alias and the openai SDK; premium keys and the master key stay', async () => {
  const before = { ollama: sent('ollama'), wintermute: sent('wintermute') };
  const free = await ask(keys['free-app']!.key, 'chat');
  assert.deepEqual([free.role, free.backend, free.rerouted], ['chat-free', 'ollama-qwen', true]);
  assert.equal(free.json.model, 'qwen2.5:7b');
  const trial = await ask(keys['trial-app']!.key, 'local/chat');
  assert.deepEqual([trial.role, trial.rerouted], ['chat-free', true], 'any of the values listed; the alias resolves to the role first');
  const premium = await ask(keys['premium-app']!.key, 'chat');
  assert.deepEqual([premium.role, premium.backend, premium.rerouted], ['chat', 'wintermute-llama', false]);
  const master = await ask(MASTER, 'chat');
  assert.deepEqual([master.role, master.rerouted], ['chat', false], 'the master key has no key metadata');
  assert.deepEqual({ ollama: sent('ollama') - before.ollama, wintermute: sent('wintermute') - before.wintermute }, { ollama: 2, wintermute: 2 });
  // The official SDK, streamed: the same rule.
  const sdk = new OpenAI({ baseURL: `${f.url}/v1`, apiKey: keys['free-app']!.key, maxRetries: 0 });
  const { data: stream, response } = await sdk.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5, stream: true }).withResponse();
  let text = '';
  for await (const c of stream) text += c.choices[0]?.delta.content ?? '';
  assert.ok(text.length > 0);
  assert.equal(response.headers.get('x-fabric-role'), 'chat-free');
  assert.equal(sent('ollama') - before.ollama, 3);
});

test('a key limited to some roles is still served by a rule\'s target it does not list; it may not ask for that target itself', async () => {
  const key = keys['free-app']!.key;
  assert.equal((await ask(key, 'chat')).role, 'chat-free');
  const direct = await post(f.url, '/v1/chat/completions', chat('chat-free'), { authorization: `Bearer ${key}` });
  assert.equal(direct.status, 403, direct.text);
});

test('rules are tried in the order written: a free key\'s long prompt stays on the free role; a premium key\'s goes to the cloud', async () => {
  assert.equal((await ask(keys['free-app']!.key, 'chat', LONG)).role, 'chat-free');
  const before = sent('cloud');
  assert.equal((await ask(keys['premium-app']!.key, 'chat', LONG)).role, 'openai/strong');
  assert.equal(sent('cloud') - before, 1);
  assert.equal((await ask(MASTER, 'chat', LONG)).role, 'openai/strong', 'the size rule is for everyone');
});

test('a rule joining a key and a size takes only that key\'s long prompts', async () => {
  const mid = LONG.split(' ').slice(0, 60).join(' '); // over 40 tokens, under 150
  const bot = keys['bulk-bot']!.key;
  assert.equal((await ask(bot, 'chat', 'short one')).role, 'chat');
  assert.equal((await ask(bot, 'chat', mid)).role, 'chat-free');
  assert.equal((await ask(keys['premium-app']!.key, 'chat', mid)).role, 'chat', 'another key with the same prompt');
});

test('a key whose metadata changes is routed by its new tier at once', async () => {
  const k = await admin('/admin/keys', { name: 'upgrading', metadata: { tier: 'free' } });
  assert.equal(k.status, 201);
  assert.equal((await ask(k.json.key, 'chat')).role, 'chat-free');
  const patched = await admin(`/admin/keys/${k.json.id}`, { metadata: { tier: 'premium' } }, 'PATCH');
  assert.equal(patched.status, 200, JSON.stringify(patched.json));
  assert.equal((await ask(k.json.key, 'chat')).role, 'chat');
});

test('with a shared cache, one tier never gets an answer made on the other\'s route; each gets its own back', async () => {
  const body = ['the same question for everyone', { temperature: 0 }] as const;
  const free1 = await ask(keys['free-app']!.key, 'chat', ...body);
  assert.deepEqual([free1.cache, free1.role], ['miss', 'chat-free']);
  const premium1 = await ask(keys['premium-app']!.key, 'chat', ...body);
  assert.deepEqual([premium1.cache, premium1.role], ['miss', 'chat'], 'the free answer is not the premium key\'s');
  const trial = await ask(keys['trial-app']!.key, 'chat', ...body);
  assert.equal(trial.cache, 'hit', 'the same tier\'s route: shared as scope: shared says');
  assert.equal(trial.json.model, 'qwen2.5:7b');
  assert.equal(trial.json.choices[0].message.content, free1.json.choices[0].message.content);
  const premium2 = await ask(keys['premium-app']!.key, 'chat', ...body);
  assert.equal(premium2.cache, 'hit');
  assert.equal(premium2.json.model, 'casperhansen/llama-3-8b-instruct-awq');
});

test('a rule\'s reroute is counted in metrics and kept in the usage records under the role that served', async () => {
  const metrics = await (await fetch(`${f.url}/metrics`, { headers: { authorization: `Bearer ${MASTER}` } })).text();
  const m = /^fabric_fallbacks_total\{role="chat",served_role="chat-free"[^}]*\} (\d+)/m.exec(metrics);
  assert.ok(m !== null && Number(m[1]) >= 3, metrics.split('\n').filter((l) => l.startsWith('fabric_fallbacks_total')).join('\n'));
  const usage = await eventually(() => admin(`/admin/usage?by=role&key=${keys['free-app']!.id}`), (u) => (u.json.data ?? []).some((r: any) => r.role === 'chat-free' && r.requests >= 3));
  assert.equal(usage.status, 200);
  assert.deepEqual(usage.json.data.map((r: any) => r.role), ['chat-free'], JSON.stringify(usage.json));
});

const IMAGE = 'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';

test('a request with an image goes to the vision role, whoever asks, also through the Responses API; the same text alone stays', async () => {
  const before = sent('vision');
  const parts = [{ type: 'text', text: 'what is in this picture?' }, { type: 'image_url', image_url: { url: IMAGE } }];
  for (const key of [MASTER, keys['free-app']!.key, keys['premium-app']!.key]) {
    const r = await post(f.url, '/v1/chat/completions', { model: 'chat', messages: [{ role: 'user', content: parts }], max_tokens: 5 }, { authorization: `Bearer ${key}` });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual([r.headers.get('x-fabric-role'), r.headers.get('x-fabric-rerouted')], ['vision-general', 'true']);
  }
  assert.equal(sent('vision') - before, 3);
  const sdk = new OpenAI({ baseURL: `${f.url}/v1`, apiKey: keys['premium-app']!.key, maxRetries: 0 });
  const { response } = await sdk.responses.create({ model: 'chat', max_output_tokens: 16, input: [{ role: 'user', content: [{ type: 'input_text', text: 'describe' }, { type: 'input_image', image_url: IMAGE, detail: 'auto' }] }] }).withResponse();
  assert.equal(response.headers.get('x-fabric-role'), 'vision-general');
  assert.equal(sent('vision') - before, 4);
  const text = await ask(keys['premium-app']!.key, 'chat', 'what is in this picture?');
  assert.equal(text.role, 'chat');
  assert.equal(sent('vision') - before, 4);
});

test('a request with tools goes where its rule says, after the rules before it: a free key\'s stays on the free role', async () => {
  const tools = [{ type: 'function', function: { name: 'lookup', description: 'look a word up', parameters: { type: 'object', properties: { q: { type: 'string' } } } } }];
  assert.equal((await ask(keys['premium-app']!.key, 'chat', 'look up gateway', { tools })).role, 'openai/strong');
  assert.equal((await ask(keys['free-app']!.key, 'chat', 'look up gateway', { tools })).role, 'chat-free');
  assert.equal((await ask(keys['premium-app']!.key, 'chat', 'look up gateway', { tools: [] })).role, 'chat', 'an empty list is no tools');
});

test('a prompt too long for a rule\'s target is not sent to the asked role\'s context-window fallback: that is another tier\'s', async () => {
  const k = await admin('/admin/keys', { name: 'free-any-role', metadata: { tier: 'free' } });
  const cloud = sent('cloud');
  const free = await post(f.url, '/v1/chat/completions', chat('chat-windowed', LONG), { authorization: `Bearer ${k.json.key}` });
  assert.equal(free.status, 400, free.text);
  assert.equal(free.json.error.code, 'context_length_exceeded');
  assert.equal(sent('cloud'), cloud, 'the cloud fallback of chat-windowed is not the free tier\'s');
  const premium = await ask(keys['premium-app']!.key, 'chat-windowed', LONG);
  assert.equal(premium.role, 'chat-windowed');
});

test('a tier holds when its keys are limited to their roles: a free key cannot name the premium backend\'s model instead', async () => {
  const r = await post(f.url, '/v1/chat/completions', chat('casperhansen/llama-3-8b-instruct-awq'), { authorization: `Bearer ${keys['free-app']!.key}` });
  assert.equal(r.status, 403, r.text);
  // A key with no roles list may: rules apply to the role they are on.
  const open = await post(f.url, '/v1/chat/completions', chat('casperhansen/llama-3-8b-instruct-awq'), { authorization: `Bearer ${keys['trial-app']!.key}` });
  assert.equal(open.status, 200, open.text);
  assert.equal(open.headers.get('x-fabric-backend'), 'wintermute-llama');
});

test('a token rule on an embeddings role reads each input on its own: a batch of short inputs stays, one long input sends the batch to the long-context embedder', async () => {
  const batch = await post(f.url, '/v1/embeddings', { model: 'embeddings-general', input: Array.from({ length: 20 }, (_, i) => `note ${i} about pandas`) }, { authorization: `Bearer ${MASTER}` });
  assert.equal(batch.status, 200, batch.text);
  assert.deepEqual([batch.headers.get('x-fabric-role'), batch.headers.get('x-fabric-backend')], ['embeddings-general', 'motoko-bge'], 'some 100 tokens in all, none near 100 alone');
  const long = await post(f.url, '/v1/embeddings', { model: 'embeddings-general', input: ['short note', LONG] }, { authorization: `Bearer ${MASTER}` });
  assert.equal(long.status, 200, long.text);
  assert.deepEqual([long.headers.get('x-fabric-role'), long.headers.get('x-fabric-rerouted')], ['embeddings-long', 'true']);
  const ids = await post(f.url, '/v1/embeddings', { model: 'embeddings-general', input: Array.from({ length: 150 }, (_, i) => i + 1) }, { authorization: `Bearer ${MASTER}` });
  assert.equal(ids.headers.get('x-fabric-role'), 'embeddings-long', 'a token-id list counts its length');
});
