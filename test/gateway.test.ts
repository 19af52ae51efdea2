// The gateway end to end: the official openai SDK and raw HTTP against a gateway on a real
// loopback port, in front of simulated vLLM, Ollama, llama.cpp and OpenAI engines.
// Requests arrive on the fast lane (src/http/fast-lane.ts); gateway-node-lane.test.ts runs this
// same file with the lane off, so node:http carries every request.

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request as rawRequest } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { startFabric, openaiSchemaValidator, post, chat, waitForLog, lastBody as lastEngineBody, type Fabric } from './helpers.ts';

const MASTER = 'fabric-master-key-for-tests';
const BACKEND_KEY = 'backend-key-armitage';

/** gateway.fast_lane for this run (gateway-node-lane.test.ts sets it off). */
const FAST_LANE = process.env.FABRIC_TEST_FAST_LANE !== '0';

const FAST = { ttftMs: 5, tokensPerSecond: 2000, maxConcurrency: 16, maxQueue: 64 };

let f: Fabric;
const validate = openaiSchemaValidator();

// A backend that answers every request with a redirect to a server that would answer: the
// gateway must not follow it.
let redirectHits = 0;
let redirectTargetHits = 0;
const redirectTarget = createServer((_req, res) => { redirectTargetHits++; res.end('{}'); });
const redirectServer = createServer((_req, res) => {
  redirectHits++;
  res.writeHead(307, { location: `http://127.0.0.1:${(redirectTarget.address() as AddressInfo).port}/v1/chat/completions` });
  res.end();
});
let redirectPort = 0;

before(async () => {
  await new Promise<void>((r) => redirectTarget.listen(0, '127.0.0.1', r));
  await new Promise<void>((r) => redirectServer.listen(0, '127.0.0.1', r));
  redirectPort = (redirectServer.address() as AddressInfo).port;
  f = await startFabric({
    env: { FABRIC_MASTER_KEY: MASTER, ARMITAGE_KEY: BACKEND_KEY },
    apiKey: MASTER,
    engines: [
      { name: 'armitage', protocol: 'vllm', model: 'Qwen/Qwen2.5-7B-Instruct-AWQ', kind: 'chat', contextWindow: 8192, timing: FAST, apiKey: BACKEND_KEY, autoToolChoice: true },
      { name: 'wintermute', protocol: 'vllm', model: 'casperhansen/llama-3-8b-instruct-awq', kind: 'chat', contextWindow: 8192, timing: FAST, autoToolChoice: true },
      { name: 'motoko', protocol: 'vllm', model: 'BAAI/bge-base-en-v1.5', kind: 'embeddings', dimensions: 768, contextWindow: 512, timing: FAST },
      { name: 'cloud', protocol: 'openai', model: 'gpt-4.1-mini', kind: 'chat', contextWindow: 1000000, timing: FAST },
      { name: 'ollama', protocol: 'ollama', model: 'qwen2.5:7b', kind: 'chat', timing: FAST, extraModels: ['nomic-embed-text'] },
      { name: 'ollama-embed', protocol: 'ollama', model: 'nomic-embed-text', kind: 'embeddings', dimensions: 768, timing: FAST },
      { name: 'ollama-wide', protocol: 'ollama', model: 'qwen2.5:7b', kind: 'chat', timing: FAST },
      { name: 'llamacpp', protocol: 'llamacpp', model: 'llama-cpp-native', kind: 'chat', contextWindow: 4096, timing: FAST },
      { name: 'meta', protocol: 'vllm', model: 'meta-llama/Llama-3.1-8B-Instruct', kind: 'chat', timing: FAST },
      { name: 'small', protocol: 'vllm', model: 'small-ctx', kind: 'chat', contextWindow: 64, timing: FAST },
    ],
    yaml: (url) => `
gateway:
  master_key: env:FABRIC_MASTER_KEY
  fast_lane: ${FAST_LANE}
  limits: { max_body: 64KiB, max_header: 8KiB, max_tokens: 4096, max_n: 2 }
  retry: { base: 5ms, max: 50ms }
nodes:
  armitage: { power: workstation }
backends:
  armitage-qwen: { engine: vllm, node: armitage, url: ${url('armitage')}/v1, model: Qwen/Qwen2.5-7B-Instruct-AWQ, api_key: env:ARMITAGE_KEY, aliases: [qwen2.5-7b-armitage], max_retries: 1,
    timeouts: { first_byte: 1200ms, idle: 1s, total: 8s } }
  wintermute-llama: { engine: vllm, url: ${url('wintermute')}/v1, model: casperhansen/llama-3-8b-instruct-awq, timeouts: { first_byte: 1200ms, idle: 1s } }
  motoko-bge: { engine: vllm, url: ${url('motoko')}/v1, model: BAAI/bge-base-en-v1.5 }
  motoko-patient: { engine: vllm, url: ${url('motoko')}/v1, model: BAAI/bge-base-en-v1.5, max_retries: 0, timeouts: { first_byte: 300ms, total: 5s } }
  cloud-strong: { engine: openai-compatible, url: ${url('cloud')}/v1, model: gpt-4.1-mini }
  ollama-qwen: { engine: ollama, url: ${url('ollama')}, model: "qwen2.5:7b", timeouts: { first_byte: 1200ms } }
  ollama-nomic: { engine: ollama, url: ${url('ollama-embed')}, model: nomic-embed-text }
  ollama-wide: { engine: ollama, url: ${url('ollama-wide')}, model: "qwen2.5:7b", context_window: 6000, keep_alive: 30m }
  llamacpp: { engine: llamacpp, url: ${url('llamacpp')}/v1, model: llama-cpp-native }
  meta-vllm: { engine: vllm, url: ${url('meta')}/v1, model: meta-llama/Meta-Llama-3-8B }
  small: { engine: vllm, url: ${url('small')}/v1, model: small-ctx, max_retries: 0 }
  armitage-total: { engine: vllm, url: ${url('armitage')}/v1, model: Qwen/Qwen2.5-7B-Instruct-AWQ, api_key: env:ARMITAGE_KEY, max_retries: 0,
    timeouts: { first_byte: 5s, idle: 5s, total: 400ms } }
  armitage-patient: { engine: vllm, url: ${url('armitage')}/v1, model: Qwen/Qwen2.5-7B-Instruct-AWQ, api_key: env:ARMITAGE_KEY, max_retries: 0,
    timeouts: { first_byte: 300ms, idle: 1s, total: 5s } }
  armitage-limited: { engine: vllm, url: ${url('armitage')}/v1, model: Qwen/Qwen2.5-7B-Instruct-AWQ, api_key: env:ARMITAGE_KEY, max_retries: 2,
    health: { failure_threshold: 3, cooldown: 1s, max_cooldown: 2m } }
  redirector: { engine: vllm, url: http://127.0.0.1:${redirectPort}/v1, model: anything, max_retries: 0 }
  small-sized: { engine: vllm, url: ${url('small')}/v1, model: small-ctx, context_window: 64, max_retries: 0 }
  small-sized-2: { engine: vllm, url: ${url('small')}/v1, model: small-ctx, context_window: 64, max_retries: 0 }
  small-unsized-2: { engine: vllm, url: ${url('small')}/v1, model: small-ctx, max_retries: 0 }
  cloud-nokey: { engine: openai-compatible, url: ${url('cloud')}/v1, model: gpt-4.1-mini, api_key: env:FABRIC_TEST_KEY_NEVER_SET }
roles:
  chat-fast:
    kind: chat
    backends: [armitage-qwen]
    aliases: [local/chat]
    fallbacks: [chat-deep, openai/strong]
    context_window_fallback: openai/strong
    rules: [{ if_input_tokens_over: 12000, route_to: openai/strong }]
  chat-deep: { kind: chat, backends: [wintermute-llama], aliases: [local/reasoner], fallbacks: [openai/strong] }
  embeddings-general: { kind: embeddings, backends: [motoko-bge], aliases: [local/embed], dimensions: 768 }
  openai/strong: { kind: chat, backends: [cloud-strong] }
  ollama-chat: { kind: chat, backends: [ollama-qwen] }
  ollama-embed: { kind: embeddings, backends: [ollama-nomic] }
  native: { kind: chat, backends: [llamacpp] }
  tiny: { kind: chat, backends: [small] }
  tiny-with-fallback: { kind: chat, backends: [small], context_window_fallback: openai/strong }
  broken-then-tiny: { kind: chat, backends: [redirector], fallbacks: [tiny], context_window_fallback: openai/strong }
  tiny-then-cloud: { kind: chat, backends: [small], fallbacks: [openai/strong] }
  ollama-then-vllm: { kind: chat, backends: [ollama-qwen], fallbacks: [chat-deep] }
  ollama-wide: { kind: chat, backends: [ollama-wide] }
  ollama-long: { kind: chat, backends: [ollama-qwen], context_window_fallback: ollama-wide }
  nokey: { kind: chat, backends: [cloud-nokey] }
  tiny-pair: { kind: chat, backends: [small, small-sized] }
  sized-then-sized: { kind: chat, backends: [small-sized], fallbacks: [sized-2] }
  sized-2: { kind: chat, backends: [small-sized-2] }
  sized-then-unsized: { kind: chat, backends: [small-sized], fallbacks: [unsized-2] }
  sized-long: { kind: chat, backends: [small-sized], context_window_fallback: openai/strong }
  unsized-2: { kind: chat, backends: [small-unsized-2] }
  tiny-nokey-fallback: { kind: chat, backends: [small], context_window_fallback: nokey }
  only-armitage: { kind: chat, backends: [armitage-qwen] }
  total-test: { kind: chat, backends: [armitage-total] }
  patient: { kind: chat, backends: [armitage-patient], fallbacks: [chat-deep] }
  patient-embed: { kind: embeddings, backends: [motoko-patient] }
  limited: { kind: chat, backends: [armitage-limited], fallbacks: [chat-deep] }
  limited-alone: { kind: chat, backends: [armitage-limited] }
  redirected: { kind: chat, backends: [redirector] }
patterns:
  - { match: "meta-llama/*", backends: [meta-vllm] }
`,
  });
});

after(async () => {
  await f.close();
  redirectServer.close();
  redirectTarget.close();
});

afterEach(async () => {
  for (const e of f.fleet.engines.values()) await e.setFault(null);
  // Passive health state must not leak from one test into the next.
  for (const b of f.gw.app.gateway.backends.values()) { b.consecutiveFailures = 0; b.coolUntil = 0; b.rateLimitedUntil = 0; b.state = 'unknown'; }
});

const auth = { authorization: `Bearer ${MASTER}` };
const lastBody = (engine: string): Record<string, unknown> => lastEngineBody(f, engine) as Record<string, unknown>;

test('chat completion through the SDK: schema-valid, role rewritten to the physical model, routing headers set', async () => {
  const { data, response } = await f.client.chat.completions.create({ model: 'chat-fast', messages: [{ role: 'user', content: 'hi' }], max_tokens: 8 }).withResponse();
  assert.equal(data.object, 'chat.completion');
  assert.ok(data.choices[0]!.message.content!.length > 0);
  assert.deepEqual(validate('CreateChatCompletionResponse', data), []);
  assert.equal(data.choices[0]!.message.refusal, null, 'vLLM omits refusal; the gateway fills it');
  assert.equal(lastBody('armitage').model, 'Qwen/Qwen2.5-7B-Instruct-AWQ');
  assert.equal(response.headers.get('x-fabric-role'), 'chat-fast');
  assert.equal(response.headers.get('x-fabric-backend'), 'armitage-qwen');
  assert.equal(response.headers.get('x-fabric-attempts'), '1');
  assert.match(response.headers.get('x-request-id')!, /^req_[0-9a-f]{12}/);
});

test('logprobs through an Ollama backend: asked natively, answered in OpenAI\'s shapes, streamed and not, chat and completions', async () => {
  const messages = [{ role: 'user' as const, content: 'rate this' }];
  const data = await f.client.chat.completions.create({ model: 'ollama-chat', messages, logprobs: true, top_logprobs: 2 });
  assert.deepEqual(validate('CreateChatCompletionResponse', data), []);
  const content = data.choices[0]!.logprobs!.content!;
  assert.equal(content.map((c) => c.token).join(''), data.choices[0]!.message.content, 'one entry per token of the answer');
  assert.equal(content.length, data.usage!.completion_tokens);
  assert.equal(content[0]!.top_logprobs.length, 2);
  assert.deepEqual(content[0]!.bytes, [...Buffer.from(content[0]!.token, 'utf8')]);
  const sent = lastBody('ollama');
  assert.deepEqual([sent.logprobs, sent.top_logprobs], [true, 2]);

  const stream = await f.client.chat.completions.create({ model: 'ollama-chat', messages, logprobs: true, stream: true });
  const streamed: string[] = [];
  for await (const chunk of stream) for (const c of chunk.choices[0]?.logprobs?.content ?? []) streamed.push(c.token);
  assert.deepEqual(streamed, content.map((c) => c.token));

  const legacy = await f.client.completions.create({ model: 'ollama-chat', prompt: 'rate this', logprobs: 1, max_tokens: 5 });
  assert.deepEqual(validate('CreateCompletionResponse', legacy), []);
  const lp = legacy.choices[0]!.logprobs!;
  assert.equal(lp.tokens!.join(''), legacy.choices[0]!.text);
  assert.equal(lp.text_offset![1], lp.tokens![0]!.length);
  assert.equal(Object.keys(lp.top_logprobs![0]!).length, 1);

  const none = await f.client.chat.completions.create({ model: 'ollama-chat', messages });
  assert.equal(none.choices[0]!.logprobs, null);
});

test('Ollama backends: the context_window is asked for (num_ctx), and a prompt past the context is refused and falls back, never cut in silence', async () => {
  // 5,000 words: past Ollama's default context (4,096), inside ollama-wide's 6,000.
  const long = [{ role: 'user' as const, content: 'w '.repeat(5_000) }];
  const wide = await f.client.chat.completions.create({ model: 'ollama-wide', messages: long, max_tokens: 4 });
  assert.ok(wide.usage!.prompt_tokens > 5_000, `every token read: ${wide.usage!.prompt_tokens}`);
  const sent = lastBody('ollama-wide');
  assert.deepEqual([(sent.options as Record<string, unknown>).num_ctx, sent.keep_alive, sent.truncate, sent.shift], [6000, 1800, false, false]);

  // No context_window: Ollama's default context holds; the prompt is refused rather than cut.
  const refused = await post(f.url, '/v1/chat/completions', { model: 'ollama-chat', messages: long }, auth);
  assert.equal(refused.status, 400);
  assert.equal(refused.json.error.code, 'context_length_exceeded');
  assert.match(refused.json.error.message, /ollama-qwen.*context length \(ollama-qwen sets no context_window, so Ollama ran qwen2\.5:7b at its server's default context; set one/);
  assert.equal((lastBody('ollama').options as Record<string, unknown> | undefined)?.num_ctx, undefined, 'no window configured: none asked for');
  const streamed = await post(f.url, '/v1/chat/completions', { model: 'ollama-chat', messages: long, stream: true }, auth);
  assert.equal(streamed.status, 400, 'streamed: refused before the stream starts');
  assert.equal(streamed.json.error.code, 'context_length_exceeded');

  // A reply that fills the context stops there (shift: false), as on OpenAI: finish_reason length.
  const full = await f.client.chat.completions.create({ model: 'ollama-wide', messages: [{ role: 'user', content: 'w '.repeat(5_990) }] });
  assert.equal(full.choices[0]!.finish_reason, 'length');
  assert.ok(full.usage!.prompt_tokens + full.usage!.completion_tokens <= 6000, JSON.stringify(full.usage));

  // With a context-window fallback, Ollama's refusal sends the request on.
  const { data, response } = await f.client.chat.completions.create({ model: 'ollama-long', messages: long, max_tokens: 4 }).withResponse();
  assert.equal(response.headers.get('x-fabric-backend'), 'ollama-wide');
  assert.ok(data.usage!.prompt_tokens > 5_000);

  // Embeddings too: an input past the context is refused, not embedded by its first part alone.
  const embed = await post(f.url, '/v1/embeddings', { model: 'ollama-embed', input: 'w '.repeat(5_000) }, auth);
  assert.equal(embed.status, 400);
  assert.equal(embed.json.error.code, 'context_length_exceeded');
  assert.equal(lastBody('ollama-embed').truncate, false);
});

test('tool calls and structured outputs from vLLM, Ollama and llama.cpp backends, streamed and not, in OpenAI\'s shapes', async () => {
  const tools = [{ type: 'function' as const, function: { name: 'get_weather', description: 'Weather by city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }];
  const messages = [{ role: 'user' as const, content: 'What is the weather in Paris?' }];
  for (const model of ['chat-fast', 'ollama-chat', 'native']) {
    // The simulated vLLM and llama.cpp call a tool when tool_choice asks; Ollama takes no
    // tool_choice, and its simulator calls the tool the user names in words.
    const ask = model === 'ollama-chat' ? {} : { tool_choice: 'required' as const };
    const words = model === 'ollama-chat' ? [{ role: 'user' as const, content: 'call get_weather for Paris' }] : messages;
    const r = await f.client.chat.completions.create({ model, messages: words, tools, ...ask });
    assert.deepEqual(validate('CreateChatCompletionResponse', r), [], model);
    const c = r.choices[0]!;
    assert.equal(c.finish_reason, 'tool_calls', model);
    const call = c.message.tool_calls![0]! as { id: string; function: { name: string; arguments: string } };
    assert.equal(call.function.name, 'get_weather');
    assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris' });
    assert.ok(call.id.length > 0);
    // Streamed: the SDK assembles the same call from the deltas.
    const final = await f.client.chat.completions.stream({ model, messages: words, tools, ...ask }).finalChatCompletion();
    assert.equal(final.choices[0]!.finish_reason, 'tool_calls', model);
    assert.deepEqual(JSON.parse((final.choices[0]!.message.tool_calls![0]! as { function: { arguments: string } }).function.arguments), { city: 'Paris' }, model);
  }
  const schema = { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' } }, required: ['name', 'age'] };
  for (const model of ['chat-fast', 'ollama-chat', 'native']) {
    const r = await f.client.chat.completions.create({ model, messages, response_format: { type: 'json_schema', json_schema: { name: 'person', schema } } });
    assert.deepEqual(JSON.parse(r.choices[0]!.message.content!), { name: 'Alice', age: 30 }, model);
  }
});

test('a Responses stream on a pass-through pattern names the model asked for from its first event, as the engine answers', async () => {
  const events: any[] = [];
  for await (const e of await f.client.responses.create({ model: 'meta-llama/Llama-3.1-8B-Instruct', input: 'hi', stream: true })) events.push(e);
  assert.equal(events[0].type, 'response.created');
  assert.equal(events[0].response.model, 'meta-llama/Llama-3.1-8B-Instruct');
  assert.equal(events.at(-1).response.model, 'meta-llama/Llama-3.1-8B-Instruct');
});

test('logprobs through a vLLM backend: schema-valid, streamed or not (the gateway adds the refusal vLLM leaves out)', async () => {
  const data = await f.client.chat.completions.create({ model: 'chat-fast', messages: [{ role: 'user', content: 'rate this' }], logprobs: true, top_logprobs: 1 });
  assert.deepEqual(validate('CreateChatCompletionResponse', data), []);
  assert.equal(data.choices[0]!.logprobs!.refusal, null);
  // vLLM gives the EOS token an entry of its own (passed on as it comes).
  const tokens = data.choices[0]!.logprobs!.content!.map((c) => c.token);
  assert.equal(tokens.at(-1), '<|im_end|>');
  assert.equal(tokens.slice(0, -1).join(''), data.choices[0]!.message.content);
  const stream = await f.client.chat.completions.create({ model: 'chat-fast', messages: [{ role: 'user', content: 'rate this' }], logprobs: true, stream: true });
  let chunks = 0;
  for await (const chunk of stream) {
    if (chunk.choices[0]?.logprobs == null) continue;
    chunks++;
    // What the chunk schema asks of logprobs (it does not compile whole under Ajv: "nullable" without "type").
    const lp = chunk.choices[0].logprobs as unknown as Record<string, unknown>;
    assert.deepEqual(Object.keys(lp).sort(), ['content', 'refusal'], 'streamed chunks carry the refusal too');
    assert.equal(lp.refusal, null);
    for (const t of lp.content as unknown[]) assert.deepEqual(validate('ChatCompletionTokenLogprob', t), []);
  }
  assert.ok(chunks > 0);
  const text = await f.client.completions.create({ model: 'chat-fast', prompt: 'rate this', logprobs: 1, max_tokens: 4 });
  assert.deepEqual(validate('CreateCompletionResponse', text), []);
  assert.equal(text.choices[0]!.logprobs!.tokens!.join(''), text.choices[0]!.text, 'cut at max_tokens: no EOS entry');
});

test('W3C trace context: a client\'s traceparent and tracestate reach every backend attempt as they came (vLLM, Ollama, streamed, fallbacks), its trace id is in the log line; an invalid one goes nowhere', async () => {
  const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  const trace = { headers: { traceparent: tp, tracestate: 'vendor=abc,other=1' } };
  const last = (engine: string): Record<string, unknown> => { const r = f.fleet.get(engine).requests(); return r[r.length - 1]!.headers; };
  const from = f.logs.length;
  await f.client.chat.completions.create({ model: 'chat-fast', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 }, trace);
  assert.equal(last('armitage').traceparent, tp);
  assert.equal(last('armitage').tracestate, 'vendor=abc,other=1');
  const line = await waitForLog(f, from, (r) => r.msg === 'request' && r.trace_id !== undefined);
  assert.equal(line.trace_id, '4bf92f3577b34da6a3ce929d0e0e4736');
  const s = await f.client.chat.completions.create({ model: 'ollama-chat', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, stream: true }, trace);
  for await (const _ of s) { /* to the end */ }
  assert.equal(last('ollama').traceparent, tp, 'Ollama\'s native API gets it too');
  // A fallback is the same request: its attempts share the client's parent (the gateway records no span of its own).
  const r = await post(f.url, '/v1/chat/completions', chat('chat-fast'), { ...auth, 'x-fabric-drill': 'fail-primary', traceparent: tp });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('x-fabric-backend'), 'wintermute-llama');
  assert.equal(last('wintermute').traceparent, tp);
  assert.equal(last('wintermute').tracestate, undefined, 'no tracestate was sent');
  await f.client.chat.completions.create({ model: 'chat-fast', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 });
  assert.equal(last('armitage').traceparent, undefined, 'none was sent: none is made up');
  await f.client.chat.completions.create({ model: 'chat-fast', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 }, { headers: { traceparent: tp.replace(/^00/, 'ff'), tracestate: 'vendor=abc' } });
  assert.equal(last('armitage').traceparent, undefined, 'an invalid traceparent is dropped');
  assert.equal(last('armitage').tracestate, undefined, 'and its tracestate with it');
});

test('the client key never reaches a backend; each backend gets its own', async () => {
  await f.client.chat.completions.create({ model: 'chat-fast', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 });
  const reqs = f.fleet.get('armitage').requests();
  const h = reqs[reqs.length - 1]!.headers;
  assert.equal(h.authorization, `Bearer ${BACKEND_KEY}`);
  await f.client.chat.completions.create({ model: 'chat-deep', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 });
  const w = f.fleet.get('wintermute').requests();
  assert.equal(w[w.length - 1]!.headers.authorization, undefined);
  f.gw.app.log.flush();
  assert.ok(f.logs.some((l) => l.includes('"msg":"request"')), 'the request lines are written');
  assert.ok(!f.logs.join('\n').includes(MASTER) && !f.logs.join('\n').includes(BACKEND_KEY), 'no secret in logs');
});

test('stream_options on an unstreamed request: a non-empty one is refused before any backend; an empty one is not sent on', async () => {
  const refused = await post(f.url, '/v1/chat/completions', { ...chat('chat-fast'), stream_options: { include_usage: true } }, auth);
  assert.equal(refused.status, 400);
  assert.equal(refused.json.error.param, 'stream_options');
  const before = f.fleet.get('armitage').requests().length;
  const empty = await post(f.url, '/v1/chat/completions', { ...chat('chat-fast'), stream_options: {} }, auth);
  assert.equal(empty.status, 200);
  assert.equal(f.fleet.get('armitage').requests().length, before + 1, 'the refused one never reached the backend');
  assert.equal('stream_options' in lastBody('armitage'), false);
});

test('the endpoints also answer without the /v1 prefix', async () => {
  const r = await post(f.url, '/chat/completions', chat('chat-fast'), auth);
  assert.equal(r.status, 200);
  assert.equal(r.json.object, 'chat.completion');
  const e = await post(f.url, '/embeddings', { model: 'embeddings-general', input: 'x' }, auth);
  assert.equal(e.json.data[0].embedding.length, 768);
});

test('an incoming x-request-id is kept alongside the gateway id', async () => {
  const r = await post(f.url, '/v1/chat/completions', chat('chat-fast'), { ...auth, 'x-request-id': 'client-abc-123' });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('x-client-request-id'), 'client-abc-123');
  assert.notEqual(r.headers.get('x-request-id'), 'client-abc-123');
  const sent = f.fleet.get('armitage').requests().at(-1)!.headers['x-request-id'];
  assert.equal(sent, r.headers.get('x-request-id'));
});

test('streamed chat: chunks arrive, usage is captured without the client seeing the injected usage chunk', async () => {
  const from = f.logs.length;
  const stream = await f.client.chat.completions.create({ model: 'local/chat', messages: [{ role: 'user', content: 'tell me something' }], max_tokens: 10, stream: true });
  let text = '';
  let usageChunks = 0;
  for await (const c of stream) {
    if (c.usage) usageChunks++;
    text += c.choices[0]?.delta?.content ?? '';
  }
  assert.ok(text.length > 0);
  assert.equal(usageChunks, 0, 'client did not ask for usage');
  const sent = lastBody('armitage');
  assert.deepEqual(sent.stream_options, { include_usage: true }, 'gateway asked the backend for usage');
  const line = await waitForLog(f, from, (l) => l.msg === 'request' && l.stream && l.model === 'local/chat');
  assert.equal(line.completion_tokens, 10);
  assert.ok(line.prompt_tokens > 0);
});

test('streamed chat with include_usage: the client gets the usage chunk', async () => {
  const stream = await f.client.chat.completions.create({ model: 'chat-fast', messages: [{ role: 'user', content: 'x' }], max_tokens: 5, stream: true, stream_options: { include_usage: true } });
  let usage;
  for await (const c of stream) if (c.usage) usage = c.usage;
  assert.equal(usage?.completion_tokens, 5);
});

test('legacy completions, streamed and not', async () => {
  const c = await f.client.completions.create({ model: 'chat-fast', prompt: 'Once upon a time', max_tokens: 6 });
  assert.deepEqual(validate('CreateCompletionResponse', c), []);
  assert.equal(lastBody('armitage').model, 'Qwen/Qwen2.5-7B-Instruct-AWQ');
  const s = await f.client.completions.create({ model: 'chat-fast', prompt: 'Once upon a time', max_tokens: 6, stream: true });
  let text = '';
  for await (const part of s) text += part.choices[0]?.text ?? '';
  assert.ok(text.length > 0);
});

test('an engine\'s refusal of one field names it: dimensions a model cannot give is a 400 with param dimensions', async () => {
  const r = await post(f.url, '/v1/embeddings', { model: 'BAAI/bge-base-en-v1.5', input: 'x', dimensions: 256 }, auth);
  assert.equal(r.status, 400);
  assert.equal(r.json.error.code, 'upstream_rejected');
  assert.equal(r.json.error.param, 'dimensions');
});

test('embeddings in float and base64 give the same 768-dim vectors', async () => {
  const fl = await f.client.embeddings.create({ model: 'embeddings-general', input: ['alpha', 'beta'], encoding_format: 'float' });
  assert.deepEqual(validate('CreateEmbeddingResponse', fl), []);
  assert.equal(fl.data.length, 2);
  assert.equal(fl.data[0]!.embedding.length, 768);
  // The SDK asks for base64 by default and decodes it.
  const b = await f.client.embeddings.create({ model: 'local/embed', input: ['alpha', 'beta'] });
  assert.equal(lastBody('motoko').encoding_format, 'base64');
  for (let i = 0; i < 768; i++) assert.ok(Math.abs(b.data[0]!.embedding[i]! - fl.data[0]!.embedding[i]!) < 1e-6);
});

test('models list: roles, aliases, backend aliases and physical ids; single model lookup with slashes', async () => {
  const list = await f.client.models.list();
  const ids = list.data.map((m) => m.id);
  for (const id of ['chat-fast', 'chat-deep', 'embeddings-general', 'local/chat', 'local/reasoner', 'local/embed', 'qwen2.5-7b-armitage', 'Qwen/Qwen2.5-7B-Instruct-AWQ', 'openai/strong']) {
    assert.ok(ids.includes(id), `${id} listed`);
  }
  for (const m of list.data) assert.deepEqual(validate('Model', m), []);
  const one = await f.client.models.retrieve('local/chat');
  assert.equal(one.id, 'local/chat');
  assert.equal((one as unknown as { fabric: { target: string } }).fabric.target, 'chat-fast');
  await assert.rejects(f.client.models.retrieve('nope'), (e: { status: number }) => e.status === 404);
});

test('master key: required on /v1, wrong key is 401 in OpenAI shape', async () => {
  const none = await post(f.url, '/v1/chat/completions', chat('chat-fast'));
  assert.equal(none.status, 401);
  assert.equal(none.json.error.type, 'authentication_error');
  const wrong = await post(f.url, '/v1/chat/completions', chat('chat-fast'), { authorization: 'Bearer nope' });
  assert.equal(wrong.status, 401);
  assert.ok(!wrong.text.includes(MASTER));
  const models = await fetch(`${f.url}/v1/models`);
  assert.equal(models.status, 401);
  const live = await fetch(`${f.url}/health/live`);
  assert.equal(live.status, 200, 'liveness needs no key');
  // This suite's key is 27 characters: the gateway said, at start, that it is too short.
  const warned = f.logs.map((l) => JSON.parse(l)).find((r) => r.level === 'warn' && /master key/.test(r.msg));
  assert.ok(warned !== undefined && /27 characters long/.test(warned.msg) && !warned.msg.includes(MASTER), JSON.stringify(warned));
});

test('bad requests: 400 naming the field, invalid JSON, unknown model 404 naming it', async () => {
  const badJson = await post(f.url, '/v1/chat/completions', '{"model":', auth);
  assert.equal(badJson.status, 400);
  assert.equal(badJson.json.error.code, 'invalid_json');
  const noMsgs = await post(f.url, '/v1/chat/completions', { model: 'chat-fast' }, auth);
  assert.equal(noMsgs.status, 400);
  assert.equal(noMsgs.json.error.param, 'messages');
  const badRole = await post(f.url, '/v1/chat/completions', { model: 'chat-fast', messages: [{ role: 'wizard', content: 'x' }] }, auth);
  assert.equal(badRole.json.error.param, 'messages[0].role');
  const unknown = await post(f.url, '/v1/chat/completions', chat('chat-fsat'), auth);
  assert.equal(unknown.status, 404);
  assert.match(unknown.json.error.message, /`chat-fsat` does not exist.*did you mean `chat-fast`/);
  assert.deepEqual(Object.keys(unknown.json.error).sort(), ['code', 'message', 'param', 'type']);
  const kind = await post(f.url, '/v1/embeddings', { model: 'chat-fast', input: 'x' }, auth);
  assert.equal(kind.status, 400);
  assert.match(kind.json.error.message, /chat model; use \/v1\/chat\/completions/);
  const route = await fetch(`${f.url}/v1/nothing`, { headers: auth });
  assert.equal(route.status, 404);
  assert.equal(((await route.json()) as any).error.type, 'invalid_request_error');
  // An unknown path is a 404 whatever the method; a known one with the wrong method a 405 saying what it takes.
  assert.equal((await post(f.url, '/v1/audio/speech', chat('chat-fast'), auth)).status, 404);
  const wrongGet = await fetch(`${f.url}/v1/models`, { method: 'POST', headers: auth });
  assert.equal(wrongGet.status, 405);
  assert.equal(wrongGet.headers.get('allow'), 'GET, HEAD');
  const wrongPost = await fetch(`${f.url}/v1/chat/completions`, { headers: auth });
  assert.equal(wrongPost.status, 405);
  assert.equal(wrongPost.headers.get('allow'), 'POST');
  // Model lookups: a typo gets a hint, an empty id a 404 saying so, and the path works without /v1 too.
  const typo = (await (await fetch(`${f.url}/v1/models/chat-fsat`, { headers: auth })).json()) as any;
  assert.match(typo.error.message, /did you mean `chat-fast`/);
  const empty = await fetch(`${f.url}/v1/models/`, { headers: auth });
  assert.equal(empty.status, 404);
  assert.match(((await empty.json()) as any).error.message, /no model id/);
  const bare = await fetch(`${f.url}/models/local%2Fchat`, { headers: auth });
  assert.equal(bare.status, 200);
  assert.equal(((await bare.json()) as any).id, 'local/chat');
  // Sampling parameters and message content are checked as OpenAI checks them.
  const hot = await post(f.url, '/v1/chat/completions', { ...chat('chat-fast'), temperature: 'hot' }, auth);
  assert.equal(hot.status, 400);
  assert.equal(hot.json.error.param, 'temperature');
  const empty2 = await post(f.url, '/v1/chat/completions', { model: 'chat-fast', messages: [{ role: 'user' }] }, auth);
  assert.equal(empty2.json.error.param, 'messages[0].content');
});

test('a body nested thousands deep is a 400 and counts against no backend', async () => {
  const deep = `{"model":"chat-fast","messages":[{"role":"user","content":"hi"}],"x":${'['.repeat(5000)}${']'.repeat(5000)}}`;
  for (let i = 0; i < 4; i++) {
    const r = await post(f.url, '/v1/chat/completions', deep, auth);
    assert.equal(r.status, 400);
    assert.match(r.json.error.message, /levels deep/);
  }
  const withName = await post(f.url, '/v1/chat/completions', deep.replace('"x":', '"api_base":1,"x":'), auth);
  assert.equal(withName.status, 400, 'the forbidden-name walk does not overflow either');
  for (const b of f.gw.app.gateway.backends.values()) assert.equal(b.consecutiveFailures, 0, b.name);
  assert.equal((await post(f.url, '/v1/chat/completions', chat('chat-fast'), auth)).status, 200);
});

test('a 401 names its scheme and is logged; an Ollama backend refuses n > 1 rather than answer one choice', async () => {
  const none = await post(f.url, '/v1/chat/completions', chat('chat-fast'));
  assert.equal(none.status, 401);
  assert.equal(none.headers.get('www-authenticate'), 'Bearer');
  f.gw.app.log.flush();
  const line = f.logs.map((l) => JSON.parse(l)).findLast((r) => r.msg === 'request' && r.status === 401);
  assert.ok(line !== undefined && line.code === 'invalid_api_key', 'the refused request has its log line');
  const n = await post(f.url, '/v1/chat/completions', { ...chat('ollama-chat'), n: 2 }, auth);
  assert.equal(n.status, 400);
  assert.equal(n.json.error.param, 'n');
  assert.match(n.json.error.message, /Ollama/);
  // Not the Ollama backend's failure: the next backend that can take n serves it.
  const fb = await post(f.url, '/v1/chat/completions', { ...chat('ollama-then-vllm'), n: 2 }, auth);
  assert.equal(fb.status, 200, JSON.stringify(fb.json));
  assert.equal(fb.headers.get('x-fabric-backend'), 'wintermute-llama');
  assert.equal(fb.headers.get('x-fabric-attempts'), '1', 'nothing was sent to Ollama');
  // The backend that could take it only cooling down: a 503 to retry, not a 400.
  const deep = f.gw.app.gateway.backends.get('wintermute-llama')!;
  deep.coolUntil = Date.now() + 60_000;
  deep.state = 'down';
  const later = await post(f.url, '/v1/chat/completions', { ...chat('ollama-then-vllm'), n: 2 }, auth);
  assert.equal(later.status, 503, JSON.stringify(later.json));
  deep.coolUntil = 0;
  deep.state = 'unknown';
  // A half-open Ollama backend passed over for n > 1 keeps its trial for the next request.
  const ol = f.gw.app.gateway.backends.get('ollama-qwen')!;
  ol.coolUntil = Date.now() - 1;
  ol.state = 'down';
  assert.equal((await post(f.url, '/v1/chat/completions', { ...chat('ollama-then-vllm'), n: 2 }, auth)).status, 200);
  const trial = await post(f.url, '/v1/chat/completions', chat('ollama-chat'), auth);
  assert.equal(trial.status, 200, JSON.stringify(trial.json));
  assert.equal(trial.headers.get('x-fabric-backend'), 'ollama-qwen');
  assert.equal(fb.json.choices.length, 2);
  assert.equal(f.gw.app.gateway.backends.get('ollama-qwen')!.consecutiveFailures, 0);
  // The only backend cooling down, but one that could never take n > 1: still the request's to change.
  ol.coolUntil = Date.now() + 60_000;
  const never = await post(f.url, '/v1/chat/completions', { ...chat('ollama-chat'), n: 2 }, auth);
  assert.equal(never.status, 400, JSON.stringify(never.json));
  assert.equal(never.json.error.param, 'n');
});

test('a half-open trial is not held by a request that stopped at its attempt limit before sending it', async () => {
  const limits = f.gw.app.gateway.config.gateway.limits;
  const saved = limits.maxAttempts;
  await f.fleet.get('armitage').setFault({ kind: 'error', status: 500 });
  const deep = f.gw.app.gateway.backends.get('wintermute-llama')!;
  deep.coolUntil = Date.now() - 1; // cooled, now half-open: one trial may go
  deep.state = 'down';
  limits.maxAttempts = 1;
  try {
    const r = await post(f.url, '/v1/chat/completions', chat('chat-fast'), auth);
    assert.notEqual(r.status, 200, 'one attempt, and it failed');
  } finally {
    limits.maxAttempts = saved;
  }
  const trial = await post(f.url, '/v1/chat/completions', chat('chat-deep'), auth);
  assert.equal(trial.status, 200, JSON.stringify(trial.json));
  assert.equal(trial.headers.get('x-fabric-backend'), 'wintermute-llama', 'the trial was free for this request');
  assert.equal(deep.coolUntil, 0, 'the trial closed the circuit');
});

test('nothing in a request chooses where it goes; costly parameters are bounded', async () => {
  const deep = await post(f.url, '/v1/chat/completions', { ...chat('chat-fast'), metadata: { nested: [{ api_base: 'http://evil' }] } }, auth);
  assert.equal(deep.status, 400);
  assert.equal(deep.json.error.param, 'metadata.nested[0].api_base');
  const top = await post(f.url, '/v1/chat/completions', { ...chat('chat-fast'), base_url: 'http://evil' }, auth);
  assert.equal(top.status, 400);
  // The same name spelled with a JSON escape is the same key once parsed.
  const escaped = await fetch(`${f.url}/v1/chat/completions`, {
    method: 'POST', headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify(chat('chat-fast')).replace(/}$/, ',"api\\u005fbase":"http://evil"}'),
  });
  assert.equal(escaped.status, 400);
  assert.equal(((await escaped.json()) as any).error.param, 'api_base');
  const toolParam = await post(f.url, '/v1/chat/completions', {
    ...chat('chat-fast'),
    tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { base_url: { type: 'string' } } } } }],
  }, auth);
  assert.equal(toolParam.status, 200, 'a tool may have a base_url parameter');
  const n = await post(f.url, '/v1/chat/completions', { ...chat('chat-fast'), n: 3 }, auth);
  assert.equal(n.status, 400);
  assert.equal(n.json.error.param, 'n');
  const mt = await post(f.url, '/v1/chat/completions', { ...chat('chat-fast'), max_tokens: 100000 }, auth);
  assert.equal(mt.status, 400);
  assert.equal(mt.json.error.param, 'max_tokens');
});

test('body over the limit is 413; headers over the limit are 431, both OpenAI-shaped', async () => {
  const big = await post(f.url, '/v1/chat/completions', chat('chat-fast', 'x'.repeat(70 * 1024)), auth);
  assert.equal(big.status, 413);
  assert.equal(big.json.error.code, 'body_too_large');
  assert.match(big.json.error.message, /^request body is 70\.\d KiB; the limit is 64 KiB \(gateway\.limits\.max_body\)$/);
  // Its unread rest must not be taken for a next request on the connection.
  assert.equal(big.headers.get('connection'), 'close');
  assert.ok(big.headers.get('x-request-id')?.startsWith('req_'));
  const hdr = await new Promise<{ status: number; body: string; id: unknown }>((resolve, reject) => {
    const req = rawRequest(`${f.url}/v1/models`, { headers: { ...auth, 'x-big': 'y'.repeat(10 * 1024) } }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode!, body, id: res.headers['x-request-id'] }));
    });
    req.on('error', reject);
    req.end();
  });
  assert.equal(hdr.status, 431);
  assert.equal(JSON.parse(hdr.body).error.code, 'headers_too_large');
  assert.match(String(hdr.id), /^req_/, 'answered before any handler, and still with a request id');
  f.gw.app.log.flush();
  assert.ok(f.logs.some((l) => l.includes(`"id":"${String(hdr.id)}"`) && l.includes('headers_too_large')), 'and its log line carries that id');
});

/** Sends raw bytes (the second part once the first bytes of the answer have come), and reads everything until the gateway closes the connection. */
async function rawExchange(first: string, then?: string): Promise<string> {
  const url = new URL(f.url);
  const sock = connect(Number(url.port), url.hostname);
  sock.on('error', () => {});
  let text = '';
  sock.on('data', (d: Buffer) => {
    if (text === '' && then !== undefined) sock.write(then);
    text += d.toString('utf8');
  });
  const closed = new Promise((r) => sock.once('close', r));
  sock.write(first);
  await closed;
  return text;
}

test('a malformed request pipelined behind a stream waits for it: the stream ends whole, then the 400', async () => {
  // The bad request goes as soon as the stream's first bytes arrive: it lands mid-stream.
  const body = JSON.stringify({ model: 'chat-fast', stream: true, messages: [{ role: 'user', content: 'a story' }], max_tokens: 60 });
  // Chunked, so that the fast lane hands the connection to node:http as well.
  const head = `POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer ${MASTER}\r\nContent-Type: application/json\r\n`;
  for (const framing of ['content-length', 'chunked']) {
    const req = framing === 'chunked'
      ? `${head}Transfer-Encoding: chunked\r\n\r\n${Buffer.byteLength(body).toString(16)}\r\n${body}\r\n0\r\n\r\n`
      : `${head}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    const text = await rawExchange(req, 'BOGUS\r\n\r\n');
    const done = text.indexOf('data: [DONE]');
    const refused = text.indexOf('HTTP/1.1 400');
    assert.ok(done > 0, `${framing}: the stream ended with [DONE]: ${JSON.stringify(text.slice(-300))}`);
    assert.ok(refused > done, `${framing}: the 400 comes after the stream`);
    assert.ok(text.slice(done, refused).includes('\r\n0\r\n\r\n'), `${framing}: the chunked stream is closed before the 400`);
  }
  // Bytes after a request that closes its connection are nothing to answer.
  const closing = await rawExchange('GET /health/live HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /health/live HTTP/1.1\r\nHost: a\r\n\r\n');
  assert.deepEqual([...closing.matchAll(/^HTTP\/1\.1 (\d+)/gm)].map((m) => Number(m[1])), [200]);
});

test('a client that leaves while its body arrives is a 499 in the log and metrics, never a 500, and one line only', async () => {
  const from = f.logs.length;
  /** Requests counted with this status, over every series. */
  const counted = async (status: number): Promise<number> => {
    const text = await (await fetch(`${f.url}/metrics`, { headers: auth })).text();
    return [...text.matchAll(new RegExp(`^fabric_requests_total\\{[^}]*status="${status}"[^}]*\\} (\\d+)`, 'gm'))].reduce((n, m) => n + Number(m[1]), 0);
  };
  const [before499, before500] = [await counted(499), await counted(500)];
  for (const framing of ['Content-Length: 80\r\n', 'Transfer-Encoding: chunked\r\n']) {
    const url = new URL(f.url);
    const sock = connect(Number(url.port), url.hostname);
    sock.on('error', () => {});
    await new Promise((r) => sock.once('connect', r));
    sock.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer ${MASTER}\r\n${framing}\r\n${framing.startsWith('Transfer') ? '5\r\n{"mod' : '{"mod'}`);
    await new Promise((r) => setTimeout(r, 50));
    sock.destroy();
  }
  const lines = async (): Promise<any[]> => {
    f.gw.app.log.flush();
    // The two requests that never had a model, and any second line for their connections (the
    // earlier tests' lines may still be arriving: one refuses a BOGUS request).
    return f.logs.slice(from).map((l) => JSON.parse(l)).filter((r) => (r.msg === 'request' && r.model === undefined) || r.msg === 'internal error' || (r.msg === 'request refused' && r.error === 'HPE_INVALID_EOF_STATE'));
  };
  const t = Date.now();
  while ((await lines()).length < 2 && Date.now() - t < 3000) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 100));
  const got = await lines();
  assert.deepEqual(got.map((r) => [r.msg, r.status, r.code]), [['request', 499, 'client_closed_request'], ['request', 499, 'client_closed_request']], JSON.stringify(got));
  assert.equal(await counted(499) - before499, 2);
  assert.equal(await counted(500) - before500, 0);
});

test('a head of more than 1,000 header fields is a 431 on either lane (within the size limit)', async () => {
  const head = `GET /v1/models HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer ${MASTER}\r\nConnection: close\r\n${Array.from({ length: 1000 }, (_, i) => `x${i.toString(36)}:v\r\n`).join('')}\r\n`;
  assert.match(await rawExchange(head), /^HTTP\/1\.1 431 /);
  // 1,000 in all is still taken.
  const fewer = `GET /v1/models HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer ${MASTER}\r\nConnection: close\r\n${Array.from({ length: 997 }, (_, i) => `x${i.toString(36)}:v\r\n`).join('')}\r\n`;
  assert.match(await rawExchange(fewer), /^HTTP\/1\.1 200 /);
});

test('fallback chain: chat-fast down → chat-deep serves, headers tell', async () => {
  await f.fleet.get('armitage').setFault({ kind: 'down' });
  const r = await post(f.url, '/v1/chat/completions', chat('chat-fast'), auth);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('x-fabric-role'), 'chat-deep');
  assert.equal(r.headers.get('x-fabric-backend'), 'wintermute-llama');
  assert.equal(r.headers.get('x-fabric-attempts'), '3', 'armitage tried twice (connect failure is retried once), then wintermute');
  assert.equal(r.headers.get('x-fabric-rerouted'), 'true');
  assert.equal(lastBody('wintermute').model, 'casperhansen/llama-3-8b-instruct-awq');
});

test('fallback goes all the way to the cloud when both workstations are off', async () => {
  await f.fleet.get('armitage').setFault({ kind: 'down' });
  await f.fleet.get('wintermute').setFault({ kind: 'error', status: 500 });
  const r = await post(f.url, '/v1/chat/completions', chat('chat-fast'), auth);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('x-fabric-role'), 'openai/strong');
});

test('503 when no backend can serve, listing each attempt and why', async () => {
  await f.fleet.get('armitage').setFault({ kind: 'down' });
  await f.fleet.get('wintermute').setFault({ kind: 'down' });
  await f.fleet.get('cloud').setFault({ kind: 'error', status: 500 });
  const r = await post(f.url, '/v1/chat/completions', chat('chat-fast'), auth);
  assert.equal(r.status, 503);
  assert.equal(r.json.error.code, 'no_backend_available');
  assert.match(r.json.error.message, /armitage-qwen \(chat-fast\): connection refused/);
  assert.match(r.json.error.message, /cloud-strong \(openai\/strong\): HTTP 500/);
  assert.deepEqual(r.json.error.attempts.map((a: { backend: string }) => a.backend), ['armitage-qwen', 'armitage-qwen', 'wintermute-llama', 'wintermute-llama', 'cloud-strong']);
  assert.equal(r.headers.get('retry-after'), '1', 'none is cooling down: worth trying again at once');
  // Named as the client named it (an alias), not by the physical model an attempt was sent.
  const alias = await post(f.url, '/v1/chat/completions', chat('local/chat'), auth);
  assert.equal(alias.status, 503);
  assert.match(alias.json.error.message, /^no backend could serve `local\/chat`/);
});

test('429 from the only backend is passed through with Retry-After', async () => {
  await f.fleet.get('armitage').setFault({ kind: 'rate-limit', retryAfterS: 7 });
  const r = await post(f.url, '/v1/chat/completions', chat('only-armitage'), auth);
  assert.equal(r.status, 429);
  assert.equal(r.json.error.type, 'rate_limit_error');
  assert.equal(r.headers.get('retry-after'), '7');
});

test('a retry on 503 succeeds on the same backend', async () => {
  await f.fleet.get('armitage').setFault({ kind: 'error', status: 503 }, 1);
  const r = await post(f.url, '/v1/chat/completions', chat('only-armitage'), auth);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('x-fabric-attempts'), '2');
  assert.equal(r.headers.get('x-fabric-backend'), 'armitage-qwen');
});

test('garbage from the only backend is a 502', async () => {
  await f.fleet.get('armitage').setFault({ kind: 'garbage' });
  const r = await post(f.url, '/v1/chat/completions', chat('only-armitage'), auth);
  assert.equal(r.status, 502);
  assert.equal(r.json.error.code, 'bad_upstream_response');
});

test('a hung backend times out: 504 when nothing else can serve (a stream at the first-byte timeout, a non-streamed request at the total)', async () => {
  await f.fleet.get('armitage').setFault({ kind: 'hang' });
  const t0 = Date.now();
  const s = await post(f.url, '/v1/chat/completions', { ...chat('only-armitage'), stream: true }, auth);
  assert.equal(s.status, 504);
  assert.match(s.json.error.message, /first-byte timeout \(1\.2s\)/);
  assert.ok(Date.now() - t0 < 4000);
  const r = await post(f.url, '/v1/chat/completions', chat('total-test'), auth);
  assert.equal(r.status, 504);
  assert.match(r.json.error.message, /total timeout \(400ms\)/);
});

test('a non-streamed generation longer than first_byte is waited for up to total (engines send its head only at the end); a stream\'s first token still has first_byte', async () => {
  const armitage = f.fleet.get('armitage');
  // About 1.1 s to the whole answer, head included: past first_byte (300ms), within total (5s).
  await armitage.setFault({ kind: 'slow', factor: 100 });
  const before = armitage.stats().requests;
  const r = await post(f.url, '/v1/chat/completions', chat('patient'), auth);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get('x-fabric-backend'), 'armitage-patient', 'served by the slow backend, not its fallback');
  assert.equal(r.headers.get('x-fabric-attempts'), '1');
  assert.equal(armitage.stats().requests - before, 1, 'the generation ran once');
  const b = f.gw.app.gateway.backends.get('armitage-patient')!;
  assert.equal(b.consecutiveFailures, 0, `counted against the backend: ${b.lastError}`);
  // A stream's first token (500 ms away now) is bounded by first_byte: it falls back.
  const s = await post(f.url, '/v1/chat/completions', { ...chat('patient'), stream: true }, auth);
  assert.equal(s.status, 200, s.text);
  assert.equal(s.headers.get('x-fabric-backend'), 'wintermute-llama');
  assert.match(b.lastError ?? '', /first-byte timeout \(300ms\)/);
  // Embeddings generate nothing: a wedged engine is still found out at first_byte, not total.
  const motoko = f.fleet.get('motoko');
  await motoko.setFault({ kind: 'hang' });
  try {
    const e = await post(f.url, '/v1/embeddings', { model: 'patient-embed', input: 'hi' }, auth);
    assert.equal(e.status, 504, e.text);
    assert.match(e.json.error.message, /first-byte timeout \(300ms\)/);
  } finally {
    await motoko.setFault(null);
  }
});

test('a 429 with a Retry-After past retry.max: not retried there, the request moves on, and later requests skip the backend until then (capped at max_cooldown)', async () => {
  const armitage = f.fleet.get('armitage');
  await armitage.setFault({ kind: 'rate-limit', retryAfterS: 3600 });
  const before = armitage.stats().requests;
  const r = await post(f.url, '/v1/chat/completions', chat('limited'), auth);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get('x-fabric-backend'), 'wintermute-llama');
  assert.equal(armitage.stats().requests - before, 1, 'not retried on the backend that asked for an hour, though max_retries is 2');
  const b = f.gw.app.gateway.backends.get('armitage-limited')!;
  assert.equal(b.consecutiveFailures, 0, 'a rate limit is not a failure');
  const next = await post(f.url, '/v1/chat/completions', chat('limited'), auth);
  assert.equal(next.headers.get('x-fabric-backend'), 'wintermute-llama');
  assert.equal(next.headers.get('x-fabric-attempts'), '1');
  assert.equal(armitage.stats().requests - before, 1, 'the next request went straight to the fallback');
  const h = await (await fetch(`${f.url}/health`, { headers: auth })).json() as { backends: { name: string; rate_limited_remaining_s: number | null; status: string }[] };
  const hb = h.backends.find((x) => x.name === 'armitage-limited')!;
  assert.ok(hb.rate_limited_remaining_s !== null && hb.rate_limited_remaining_s > 110 && hb.rate_limited_remaining_s <= 120, `capped at max_cooldown (2m): ${hb.rate_limited_remaining_s}`);
  // The only backend of a route, so skipped: an immediate 503 saying when to come back.
  const alone = await post(f.url, '/v1/chat/completions', chat('limited-alone'), auth);
  assert.equal(alone.status, 503, alone.text);
  assert.match(alone.json.error.message, /rate limited by the backend for 1[12]\ds more/);
  const ra = Number(alone.headers.get('retry-after'));
  assert.ok(ra > 110 && ra <= 120, `retry-after ${ra}`);
  assert.equal(armitage.stats().requests - before, 1);
});

test('a 429 with a short Retry-After is still retried on the same backend after that wait', async () => {
  const armitage = f.fleet.get('armitage');
  await armitage.setFault({ kind: 'rate-limit', retryAfterS: 0.02 }, 1);
  const before = armitage.stats().requests;
  const r = await post(f.url, '/v1/chat/completions', chat('limited'), auth);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get('x-fabric-backend'), 'armitage-limited');
  assert.equal(r.headers.get('x-fabric-attempts'), '2');
  assert.equal(armitage.stats().requests - before, 2);
  assert.equal(f.gw.app.gateway.backends.get('armitage-limited')!.rateLimitedUntil, 0);
});

test('a stream falls back before its first byte', async () => {
  await f.fleet.get('armitage').setFault({ kind: 'hang' });
  const stream = await f.client.chat.completions.create({ model: 'chat-fast', messages: [{ role: 'user', content: 'x' }], max_tokens: 5, stream: true }).withResponse();
  assert.equal(stream.response.headers.get('x-fabric-role'), 'chat-deep');
  let text = '';
  for await (const c of stream.data) text += c.choices[0]?.delta?.content ?? '';
  assert.ok(text.length > 0);
});

test('a backend dying mid-stream ends the client stream with an error event, never silently', async () => {
  await f.fleet.get('armitage').setFault({ kind: 'drop', afterChunks: 2 });
  const stream = await f.client.chat.completions.create({ model: 'chat-fast', messages: [{ role: 'user', content: 'x' }], max_tokens: 20, stream: true });
  let chunks = 0;
  await assert.rejects(async () => {
    for await (const _ of stream) chunks++;
  }, /interrupted/);
  assert.ok(chunks >= 1, 'the client got the first chunks before the error');
  const b = f.gw.app.gateway.backends.get('armitage-qwen')!;
  assert.equal(b.consecutiveFailures, 1, 'the broken stream counts against the backend, not for it');
  assert.match(b.lastError ?? '', /connection|closed|interrupted|terminated|socket/i);
});

test('a stream whose first token never comes within the first-byte timeout is a 504', async () => {
  await f.fleet.get('armitage').setFault({ kind: 'slow', factor: 1000 });
  const r = await post(f.url, '/v1/chat/completions', { ...chat('only-armitage'), stream: true }, auth);
  // slow: the first token takes 5s × … → first-byte timeout before anything was sent → 504
  assert.equal(r.status, 504);
});

test('a stream that stalls after its first tokens is ended with an error event at the idle timeout', async () => {
  await f.fleet.get('armitage').setFault({ kind: 'stall', afterChunks: 2 });
  const t0 = Date.now();
  const r = await post(f.url, '/v1/chat/completions', { ...chat('only-armitage'), max_tokens: 20, stream: true }, auth);
  assert.equal(r.status, 200, 'the stream had begun');
  const events = r.text.split('\n\n').filter((e) => e.startsWith('data: '));
  assert.ok(events.length >= 2);
  const last = JSON.parse(events.at(-1)!.slice(6));
  assert.equal(last.error.code, 'stream_interrupted');
  assert.match(last.error.message, /idle timeout \(1s\)/);
  assert.ok(!r.text.includes('[DONE]'), 'never a clean end for a broken stream');
  assert.ok(Date.now() - t0 < 6000);
});

test('the total timeout bounds a non-streamed request that keeps the backend busy', async () => {
  await f.fleet.get('armitage').setFault({ kind: 'slow', factor: 200 });
  const r = await post(f.url, '/v1/chat/completions', chat('total-test'), auth);
  assert.equal(r.status, 504);
  assert.match(r.json.error.message, /total timeout \(400ms\)/);
});

test('a backend redirect is not followed', async () => {
  const before = redirectTargetHits;
  const r = await post(f.url, '/v1/chat/completions', chat('redirected'), auth);
  assert.equal(r.status, 502);
  assert.match(r.json.error.message, /redirect \(307\)/);
  assert.ok(redirectHits > 0);
  assert.equal(redirectTargetHits, before, 'the redirect target was never called');
});

test('a streamed fallback still hides the usage chunk the client did not ask for', async () => {
  await f.fleet.get('armitage').setFault({ kind: 'error', status: 500 });
  const r = await post(f.url, '/v1/chat/completions', { ...chat('chat-fast'), max_tokens: 5, stream: true }, auth);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('x-fabric-role'), 'chat-deep');
  assert.deepEqual(lastBody('wintermute').stream_options, { include_usage: true }, 'the fallback was asked for usage too');
  assert.ok(!r.text.includes('"usage":{'), 'no usage object reached the client');
  assert.ok(r.text.trimEnd().endsWith('data: [DONE]'));
});

test('failure drill: x-fabric-drill fails the primary for that request only', async () => {
  const armitage = f.fleet.get('armitage');
  const before = armitage.requests().length;
  const r = await post(f.url, '/v1/chat/completions', chat('chat-fast'), { ...auth, 'x-fabric-drill': 'fail-primary' });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('x-fabric-role'), 'chat-deep');
  assert.equal(r.headers.get('x-fabric-rerouted'), 'true');
  assert.equal(armitage.requests().length, before, 'the primary was not called');
  const live = await post(f.url, '/v1/chat/completions', chat('chat-fast'), auth);
  assert.equal(live.headers.get('x-fabric-role'), 'chat-fast', 'live traffic is unaffected');
  const backend = f.gw.app.gateway.backends.get('armitage-qwen')!;
  assert.equal(backend.consecutiveFailures, 0, 'a drill does not count against the backend');
  const bad = await post(f.url, '/v1/chat/completions', chat('chat-fast'), { ...auth, 'x-fabric-drill': 'everything' });
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.param, 'x-fabric-drill');
});

test('client disconnect aborts the backend request', async () => {
  const engine = f.fleet.get('wintermute');
  await engine.setFault({ kind: 'slow', factor: 50 });
  const ac = new AbortController();
  const p = fetch(`${f.url}/v1/chat/completions`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ ...chat('chat-deep'), max_tokens: 100, stream: true }), signal: ac.signal });
  const res = await p;
  const reader = res.body!.getReader();
  await reader.read();
  assert.equal(engine.stats().active, 1);
  ac.abort();
  for (let i = 0; i < 50 && engine.stats().active > 0; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(engine.stats().active, 0, 'the backend request was cancelled');
});

test('context-length error: translated 400 without a fallback, context-window fallback with one', async () => {
  const long = 'word '.repeat(200);
  const r = await post(f.url, '/v1/chat/completions', chat('tiny', long), auth);
  assert.equal(r.status, 400);
  assert.equal(r.json.error.code, 'context_length_exceeded');
  assert.match(r.json.error.message, /maximum context length/);
  const r2 = await post(f.url, '/v1/chat/completions', chat('tiny-with-fallback', long), auth);
  assert.equal(r2.status, 200);
  assert.equal(r2.headers.get('x-fabric-role'), 'openai/strong');
});

test('context length on a fallback role: the requested role\'s context-window fallback serves; without one the chain goes on', async () => {
  const long = 'word '.repeat(200);
  // redirector fails (a redirect is unusable), tiny's window is too small, the route asked for has a longer one.
  const r = await post(f.url, '/v1/chat/completions', chat('broken-then-tiny', long), auth);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.equal(r.headers.get('x-fabric-role'), 'openai/strong');
  assert.equal(r.headers.get('x-fabric-attempts'), '3');
  // No context-window fallback: the next role in the chain may have a longer window.
  const r2 = await post(f.url, '/v1/chat/completions', chat('tiny-then-cloud', long), auth);
  assert.equal(r2.status, 200, JSON.stringify(r2.json));
  assert.equal(r2.headers.get('x-fabric-role'), 'openai/strong');
  // The longer window cooling down: a 503 to retry, not a 400 telling the client to cut its prompt.
  const cloud = f.gw.app.gateway.backends.get('cloud-strong')!;
  cloud.coolUntil = Date.now() + 60_000;
  cloud.state = 'down';
  const r3 = await post(f.url, '/v1/chat/completions', chat('tiny-then-cloud', long), auth);
  assert.equal(r3.status, 503, JSON.stringify(r3.json));
  assert.equal(r3.json.error.code, 'no_backend_available');
  // A longer window that can never be used (its key is not set) is no reason to retry: a 400.
  const r4 = await post(f.url, '/v1/chat/completions', chat('tiny-nokey-fallback', long), auth);
  assert.equal(r4.status, 400, JSON.stringify(r4.json));
  assert.equal(r4.json.error.code, 'context_length_exceeded');
  // Skipped for now, but no longer: beside a backend of the same role that answered "too long",
  // or with a configured window no longer than the one that was too short. Still a 400.
  const sized = f.gw.app.gateway.backends.get('small-sized')!;
  sized.coolUntil = Date.now() + 60_000;
  for (let i = 0; i < 2; i++) { // round robin: the cooling one comes first in one of two
    const r5 = await post(f.url, '/v1/chat/completions', chat('tiny-pair', long), auth);
    assert.equal(r5.status, 400, JSON.stringify(r5.json));
    assert.equal(r5.json.error.code, 'context_length_exceeded');
  }
  sized.coolUntil = 0;
  f.gw.app.gateway.backends.get('small-sized-2')!.coolUntil = Date.now() + 60_000;
  const r6 = await post(f.url, '/v1/chat/completions', chat('sized-then-sized', long), auth);
  assert.equal(r6.status, 400, JSON.stringify(r6.json));
  assert.equal(r6.json.error.code, 'context_length_exceeded');
  // No window configured, none known: it may be longer (503). The engine said (a probe read
  // vLLM's max_model_len) it is no longer: a 400.
  const unsized = f.gw.app.gateway.backends.get('small-unsized-2')!;
  unsized.coolUntil = Date.now() + 60_000;
  const r7 = await post(f.url, '/v1/chat/completions', chat('sized-then-unsized', long), auth);
  assert.equal(r7.status, 503, JSON.stringify(r7.json));
  unsized.servedContext = 64;
  try {
    const r8 = await post(f.url, '/v1/chat/completions', chat('sized-then-unsized', long), auth);
    assert.equal(r8.status, 400, JSON.stringify(r8.json));
    assert.equal(r8.json.error.code, 'context_length_exceeded');
  } finally {
    unsized.servedContext = undefined;
  }
});

test('a prompt far past a backend\'s known window is not sent to it: straight to the context-window fallback; one near the window is tried', async () => {
  const small = f.fleet.get('small');
  const before = small.requests().length;
  const r = await post(f.url, '/v1/chat/completions', chat('sized-long', 'word '.repeat(200)), auth);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.equal(r.headers.get('x-fabric-backend'), 'cloud-strong');
  assert.equal(r.headers.get('x-fabric-attempts'), '1', 'one request sent: the cloud one');
  assert.equal(small.requests().length, before, 'nothing sent to the 64-token backend');
  // Within the margin (the engine's tokenizer may count fewer): sent, refused, then the fallback.
  const near = await post(f.url, '/v1/chat/completions', chat('sized-long', 'word '.repeat(70)), auth);
  assert.equal(near.status, 200, JSON.stringify(near.json));
  assert.equal(near.headers.get('x-fabric-backend'), 'cloud-strong');
  assert.equal(small.requests().length, before + 1, 'tried: 70 words is not surely past 64 tokens');
  // Nowhere to go: the 400 says why, with the count.
  const alone = await post(f.url, '/v1/chat/completions', chat('sized-2', 'word '.repeat(200)), auth);
  assert.equal(alone.status, 400, JSON.stringify(alone.json));
  assert.equal(alone.json.error.code, 'context_length_exceeded');
  assert.match(alone.json.error.message, /small-sized-2 \(sized-2\): not sent: the prompt is over 80 tokens \(counted with o200k\), well past its context window of 64/);
  // Nothing was sent: the log line counts no attempt.
  const line = await waitForLog(f, 0, (l) => l.msg === 'request' && l.model === 'sized-2' && l.status === 400);
  assert.equal(line.attempts, 0);
  // A batch of legacy prompts: each has the window to itself, so none is judged by their sum.
  const batch = await post(f.url, '/v1/completions', { model: 'sized-long', prompt: ['word '.repeat(30), 'word '.repeat(30), 'word '.repeat(30)], max_tokens: 2 }, auth);
  assert.equal(batch.status, 200, JSON.stringify(batch.json));
  assert.equal(batch.headers.get('x-fabric-backend'), 'small-sized');
  assert.doesNotMatch(alone.text, /judged/);
  // Not an attempt: not counted as one, nor against the backend.
  const metrics = await (await fetch(`${f.url}/metrics`, { headers: auth })).text();
  assert.doesNotMatch(metrics, /fabric_attempt_failures_total\{backend="small-sized-2",class="context_length"\} [1-9]/);
  assert.equal(f.gw.app.gateway.backends.get('small-sized-2')!.consecutiveFailures, 0);
});

test('a prompt with special-token text is counted as text: the rules do not fail on "<|endoftext|>"', async () => {
  const r = await post(f.url, '/v1/chat/completions', chat('chat-fast', `${'word '.repeat(3000)} <|endoftext|> <|im_start|>`), auth);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.equal(r.headers.get('x-fabric-role'), 'chat-fast');
});

test('the long-prompt rule sends over-12k-token input to openai/strong, counted by a tokenizer', async () => {
  // 13,000 distinct-ish words: well over 12k tokens.
  const long = Array.from({ length: 13000 }, (_, i) => `w${i % 97}`).join(' ');
  const r = await post(f.url, '/v1/chat/completions', chat('chat-fast', long), auth);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('x-fabric-role'), 'openai/strong');
  // 40,000 characters but few tokens: "a" repeated collapses into few BPE tokens? No — use a short prompt with many chars per token.
  const manyChars = 'abcdefghij'.repeat(2000); // 20,000 chars, far fewer than 12k tokens
  const r2 = await post(f.url, '/v1/chat/completions', chat('chat-fast', manyChars), { ...auth });
  assert.equal(r2.headers.get('x-fabric-role'), 'chat-fast', 'characters are not tokens');
});

test('glob patterns pass the model name through; physical ids and backend aliases route to their machine', async () => {
  const p = await post(f.url, '/v1/chat/completions', chat('meta-llama/Llama-3.1-8B-Instruct'), auth);
  assert.equal(p.status, 200);
  assert.equal(p.headers.get('x-fabric-backend'), 'meta-vllm');
  assert.equal(lastBody('meta').model, 'meta-llama/Llama-3.1-8B-Instruct', 'the name passes through, not the backend\'s configured model');
  // A name the pattern matches but no backend serves: the client's 404, and no backend's failure
  // (three of them once took meta-vllm out for everyone).
  for (let i = 0; i < 4; i++) {
    const nope = await post(f.url, '/v1/chat/completions', chat('meta-llama/Nope-1B'), auth);
    assert.equal(nope.status, 404, JSON.stringify(nope.json));
    assert.equal(nope.json.error.code, 'model_not_found');
    assert.equal(nope.json.error.param, 'model');
    assert.match(nope.json.error.message, /meta-llama\/Nope-1B/);
  }
  const meta = f.gw.app.gateway.backends.get('meta-vllm')!;
  assert.equal(meta.consecutiveFailures, 0);
  // A half-open backend that answers such a 404 answered: its circuit closes.
  meta.coolUntil = Date.now() - 1;
  meta.state = 'down';
  assert.equal((await post(f.url, '/v1/chat/completions', chat('meta-llama/Nope-1B'), auth)).status, 404);
  assert.equal(meta.coolUntil, 0);
  assert.equal((await post(f.url, '/v1/chat/completions', chat('meta-llama/Llama-3.1-8B-Instruct'), auth)).status, 200);
  const phys = await post(f.url, '/v1/chat/completions', chat('casperhansen/llama-3-8b-instruct-awq'), auth);
  assert.equal(phys.status, 200);
  assert.equal(phys.headers.get('x-fabric-backend'), 'wintermute-llama');
  await f.fleet.get('armitage').setFault({ kind: 'down' });
  const alias = await post(f.url, '/v1/chat/completions', chat('qwen2.5-7b-armitage'), auth);
  assert.equal(alias.status, 503, 'a physical alias means that machine: no fallback');
});

test('Ollama through its native API: chat, stream and embeddings translated both ways', async () => {
  const c = await f.client.chat.completions.create({ model: 'ollama-chat', messages: [{ role: 'user', content: 'hi' }], max_tokens: 6 });
  assert.deepEqual(validate('CreateChatCompletionResponse', c), []);
  const req = f.fleet.get('ollama').requests().at(-1)!;
  assert.equal(req.path, '/api/chat');
  assert.deepEqual((req.body as { options: unknown }).options, { num_predict: 6 });
  assert.equal(c.usage?.completion_tokens, 6);
  const s = await f.client.chat.completions.create({ model: 'ollama-chat', messages: [{ role: 'user', content: 'hi' }], max_tokens: 6, stream: true, stream_options: { include_usage: true } });
  let text = '';
  let usage;
  let finish;
  for await (const ch of s) {
    text += ch.choices[0]?.delta?.content ?? '';
    finish ??= ch.choices[0]?.finish_reason ?? undefined;
    if (ch.usage) usage = ch.usage;
  }
  assert.ok(text.length > 0);
  assert.equal(finish, 'length');
  assert.equal(usage?.completion_tokens, 6);
  const e = await f.client.embeddings.create({ model: 'ollama-embed', input: 'hello' });
  assert.equal(e.data[0]!.embedding.length, 768);
  assert.equal(f.fleet.get('ollama-embed').requests().at(-1)!.path, '/api/embed');
});

test('llama.cpp server as an OpenAI-compatible engine', async () => {
  const c = await f.client.chat.completions.create({ model: 'native', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 });
  assert.deepEqual(validate('CreateChatCompletionResponse', c), []);
  // What llama-server answers with a 500 (n > 1): a 400 naming the field, sent nowhere, and
  // no failure of the backend's (a few of them once took it out for everyone).
  const before = f.fleet.get('llamacpp').requests().length;
  for (let i = 0; i < 4; i++) {
    const n = await post(f.url, '/v1/chat/completions', { ...chat('native'), n: 2 }, auth);
    assert.equal(n.status, 400, JSON.stringify(n.json));
    assert.equal(n.json.error.param, 'n');
  }
  assert.equal(f.fleet.get('llamacpp').requests().length, before, 'nothing was sent');
  assert.equal(f.gw.app.gateway.backends.get('llamacpp')!.consecutiveFailures, 0);
  assert.equal((await post(f.url, '/v1/chat/completions', chat('native'), auth)).status, 200);
});

test('health endpoints: liveness, readiness and per-backend status; URLs and error texts only with the master key', async () => {
  const h = await (await fetch(`${f.url}/health`)).json() as any;
  assert.ok(Array.isArray(h.backends));
  const open = h.backends.find((b: { name: string }) => b.name === 'armitage-qwen');
  assert.ok(open !== undefined && typeof open.status === 'string');
  assert.equal(open.url, null, 'no URL for an anonymous caller when a master key is set');
  assert.equal(open.last_error, null);
  assert.equal(h.details, 'hidden', 'and says so: a null last_error is then no answer, not no error');
  const full = await (await fetch(`${f.url}/health`, { headers: auth })).json() as any;
  assert.equal(full.details, 'full');
  assert.match(full.backends.find((b: { name: string }) => b.name === 'armitage-qwen').url, /^http:\/\/127\.0\.0\.1:\d+\/v1$/);
  assert.equal((await fetch(`${f.url}/health/ready`)).status, 200);
});

/** One sample's value from a Prometheus text page, 0 when the series is absent. */
function sample(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

test('GET /metrics: requests, tokens, fallbacks, errors by class, retries and backend state, behind the master key', async () => {
  const scrape = async (): Promise<string> => {
    const r = await fetch(`${f.url}/metrics`, { headers: auth });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type')!, /^text\/plain; version=0\.0\.4/);
    return r.text();
  };
  assert.equal((await fetch(`${f.url}/metrics`)).status, 401, 'metrics need the key when one is set');
  const before = await scrape();
  const ok = await post(f.url, '/v1/chat/completions', chat('chat-fast'), auth);
  assert.equal(ok.status, 200);
  const s = await post(f.url, '/v1/chat/completions', { ...chat('chat-fast'), max_tokens: 7, stream: true }, auth);
  assert.equal(s.status, 200);
  await f.fleet.get('armitage').setFault({ kind: 'error', status: 500 });
  const fb = await post(f.url, '/v1/chat/completions', chat('chat-fast'), auth);
  assert.equal(fb.headers.get('x-fabric-role'), 'chat-deep');
  await f.fleet.get('armitage').setFault(null);
  await f.fleet.get('armitage').setFault({ kind: 'error', status: 503 }, 1);
  const retried = await post(f.url, '/v1/chat/completions', chat('only-armitage'), auth);
  assert.equal(retried.headers.get('x-fabric-attempts'), '2');
  // Retried, then fallen back from: the retry is armitage-qwen's, not the backend that answered.
  await f.fleet.get('armitage').setFault({ kind: 'error', status: 503 });
  const retriedThenFb = await post(f.url, '/v1/chat/completions', chat('chat-fast'), auth);
  await f.fleet.get('armitage').setFault(null);
  assert.equal(retriedThenFb.headers.get('x-fabric-backend'), 'wintermute-llama');
  assert.equal(retriedThenFb.headers.get('x-fabric-attempts'), '3');
  const nf = await post(f.url, '/v1/chat/completions', chat('no-such-model'), auth);
  assert.equal(nf.status, 404);
  const after = await scrape();
  const d = (series: string): number => sample(after, series) - sample(before, series);

  assert.equal(d('fabric_requests_total{op="chat",role="chat-fast",backend="armitage-qwen",status="200"}'), 2);
  assert.equal(d('fabric_requests_total{op="chat",role="chat-deep",backend="wintermute-llama",status="200"}'), 2);
  assert.equal(d('fabric_requests_total{op="chat",role="(none)",backend="",status="404"}'), 1);
  assert.equal(d('fabric_errors_total{op="chat",code="model_not_found"}'), 1);
  assert.equal(d('fabric_fallbacks_total{role="chat-fast",served_role="chat-deep"}'), 2);
  assert.equal(d('fabric_attempt_failures_total{backend="armitage-qwen",class="upstream_5xx"}'), 4, 'the fallback\'s 500, the retried 503, and two 503s before a fallback');
  assert.equal(d('fabric_retries_total{backend="armitage-qwen"}'), 2);
  assert.equal(d('fabric_retries_total{backend="wintermute-llama"}'), 0);
  assert.ok(d('fabric_tokens_total{role="chat-fast",backend="armitage-qwen",direction="out"}') >= 7 + 1, 'stream usage is counted');
  assert.equal(d('fabric_time_to_first_token_seconds_count{role="chat-fast",backend="armitage-qwen"}'), 1);
  assert.equal(d('fabric_request_duration_seconds_count{op="chat",role="chat-fast"}'), 2, 'by the role that served');
  assert.equal(sample(after, 'fabric_requests_in_flight'), 0);
  assert.equal(sample(after, 'fabric_backend_outstanding_requests{backend="armitage-qwen"}'), 0);
  assert.match(after, /^fabric_backend_up\{backend="motoko-bge",node=""\} [01]$/m);
  assert.ok(sample(after, 'process_resident_memory_bytes') > 10e6);
  // Label values come from the config, never from request content.
  assert.ok(!after.includes('no-such-model'));
});

test('a huge model name is refused at once: no did-you-mean over megabytes, no echo of it', async () => {
  const huge = 'x'.repeat(60_000); // under this gateway's 64 KiB body limit
  const t0 = performance.now();
  const r = await post(f.url, '/v1/chat/completions', chat(huge), auth);
  assert.equal(r.status, 400);
  assert.equal(r.json.error.param, 'model');
  assert.ok(r.text.length < 1000, 'the name is not echoed back');
  const near = await post(f.url, '/v1/chat/completions', chat('chat-fats'), auth);
  assert.equal(near.status, 404);
  assert.match(near.json.error.message, /did you mean `chat-fast`/);
  const long = await post(f.url, '/v1/chat/completions', chat('y'.repeat(500)), auth);
  assert.equal(long.status, 404);
  assert.ok(performance.now() - t0 < 5000);
});

test('gateway.fast_lane chooses what carries requests: the fast lane, or node:http for every one', async () => {
  const { port } = new URL(f.url);
  const head = await new Promise<string>((resolve, reject) => {
    const sock = connect(Number(port), '127.0.0.1');
    let got = '';
    sock.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (got.includes('\r\n\r\n')) {
        sock.destroy();
        resolve(got.slice(0, got.indexOf('\r\n\r\n')));
      }
    });
    sock.on('error', reject);
    sock.write('GET /health/live HTTP/1.1\r\nhost: x\r\n\r\n');
  });
  // node:http writes the Date header it adds as "Date"; the fast lane writes every name in lower case.
  assert.equal(/\r\ndate: /.test(head), FAST_LANE, head);
  assert.equal(/\r\nDate: /.test(head), !FAST_LANE, head);
});

test('the openai SDK\'s requests (chat, stream, embeddings, models) all take the lane this run asked for (fabric_http_requests_total)', async () => {
  const lanes = async (): Promise<{ fast: number; node: number }> => {
    const text = await (await fetch(`${f.url}/metrics`, { headers: { authorization: `Bearer ${MASTER}` } })).text();
    const n = (p: string): number => Number(new RegExp(`^fabric_http_requests_total\\{parser="${p}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
    return { fast: n('fast'), node: n('node') };
  };
  const before = await lanes();
  await f.client.chat.completions.create({ model: 'chat-fast', messages: [{ role: 'user', content: 'lane' }], max_tokens: 4 });
  for await (const _ of await f.client.chat.completions.create({ model: 'chat-fast', messages: [{ role: 'user', content: 'lane' }], max_tokens: 4, stream: true })) { /* drain */ }
  await f.client.embeddings.create({ model: 'embeddings-general', input: 'lane' });
  await f.client.models.list();
  const after = await lanes();
  // Four SDK requests and the second /metrics read.
  const [took, other] = FAST_LANE ? ['fast', 'node'] as const : ['node', 'fast'] as const;
  assert.equal(after[took] - before[took], 5, JSON.stringify({ before, after }));
  assert.equal(after[other] - before[other], 0, JSON.stringify({ before, after }));
});

test('bodies the gateway cannot read as sent: compressed (415 naming the encoding), invalid UTF-8 (400, never decoded to U+FFFD and sent on); an Expect it cannot meet and CONNECT get OpenAI-shaped refusals', async () => {
  const { gzipSync } = await import('node:zlib');
  const json = JSON.stringify(chat('chat-fast'));
  const sent = f.fleet.get('armitage').requests().length;
  const gz = await fetch(`${f.url}/v1/chat/completions`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json', 'content-encoding': 'gzip' }, body: gzipSync(json) });
  assert.equal(gz.status, 415);
  const gzBody = await gz.json() as any;
  assert.equal(gzBody.error.code, 'unsupported_media_type');
  assert.match(gzBody.error.message, /"gzip"-encoded: send it uncompressed/);
  const bad = Buffer.concat([Buffer.from(json.slice(0, -3)), Buffer.from([0xc3, 0x28]), Buffer.from(json.slice(-3))]);
  const u = await fetch(`${f.url}/v1/chat/completions`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: bad });
  assert.equal(u.status, 400);
  assert.match(((await u.json()) as any).error.message, /not valid UTF-8/);
  assert.equal(f.fleet.get('armitage').requests().length, sent, 'nothing reached the backend');

  const expect = await rawExchange('GET /health/live HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n');
  assert.match(expect, /^HTTP\/1\.1 417 /);
  assert.match(expect, /"code":"expectation_failed"/);
  assert.match(expect, /x-request-id: req_/i);
  const tunnel = await rawExchange('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n');
  assert.match(tunnel, /^HTTP\/1\.1 405 /);
  assert.match(tunnel, /not a forward proxy/);
});

test('the gateway out of file descriptors while calling a backend: a 503 of its own (Retry-After 1), no backend blamed, no fallback tried', async () => {
  const backend = f.gw.app.gateway.backends.get('armitage-qwen')!;
  const real = backend.pool;
  const exhausted = {
    dispatch(_opts: unknown, handler: { onRequestStart?: (c: unknown, x: unknown) => void; onResponseError?: (c: unknown, e: Error) => void }) {
      const controller = { abort() {}, pause() {}, resume() {}, aborted: false, paused: false, reason: null };
      setImmediate(() => { handler.onRequestStart?.(controller, {}); handler.onResponseError?.(controller, Object.assign(new Error('connect EMFILE 127.0.0.1'), { code: 'EMFILE' })); });
      return true;
    },
    close: real.close.bind(real), destroy: real.destroy.bind(real),
  };
  (backend as { pool: unknown }).pool = exhausted;
  const fallbackBefore = f.fleet.get('wintermute').requests().length;
  const stateBefore = backend.state;
  const failuresCounted = async (): Promise<string> => ((await (await fetch(`${f.url}/metrics`, { headers: auth })).text()).match(/^fabric_attempt_failures_total\{[^}]*backend="armitage-qwen"[^}]*class="connect"[^}]*\} \d+/m) ?? [''])[0];
  const countedBefore = await failuresCounted();
  try {
    for (const stream of [false, true]) {
      const r = await post(f.url, '/v1/chat/completions', { ...chat('chat-fast'), stream }, auth);
      assert.equal(r.status, 503, r.text);
      assert.equal(r.json.error.code, 'gateway_overloaded');
      assert.match(r.json.error.message, /EMFILE \(out of file descriptors: raise LimitNOFILE/);
      assert.equal(r.headers.get('retry-after'), '1');
      assert.ok(!(r.json.error.attempts ?? []).some((a: any) => a.backend === 'armitage-qwen'), 'not an attempt of the backend\'s: nothing reached it');
    }
  } finally {
    (backend as { pool: unknown }).pool = real;
  }
  assert.equal(backend.consecutiveFailures, 0, 'the backend is not blamed');
  assert.equal(backend.state, stateBefore);
  assert.equal(await failuresCounted(), countedBefore, 'no attempt failure counted against it');
  assert.equal(f.fleet.get('wintermute').requests().length, fallbackBefore, 'a fallback would fail the same way');
});
