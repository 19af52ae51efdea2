// Anthropic's Messages API (POST /v1/messages) end to end: the official @anthropic-ai/sdk client
// against the gateway, in front of simulated vLLM and Ollama engines. What the engines received
// is checked against the chat request the Messages request stands for, and what came back
// against the chat answer it was made from.

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import { startFabric, post, waitForLog, lastBody, type Fabric } from './helpers.ts';

const MASTER = 'fabric-master-key-for-messages';
const FAST = { ttftMs: 5, tokensPerSecond: 2000, maxConcurrency: 16, maxQueue: 64 };

let f: Fabric;
/** Anthropic's client as Claude Code sets it up: its base URL the gateway's (no /v1), the key as x-api-key. */
let client: Anthropic;
const auth = { 'x-api-key': MASTER, 'anthropic-version': '2023-06-01' };
const anthropic = (apiKey: string): Anthropic => new Anthropic({ baseURL: f.url, apiKey, maxRetries: 0, timeout: 10_000 });

before(async () => {
  f = await startFabric({
    env: { FABRIC_MASTER_KEY: MASTER },
    apiKey: MASTER,
    engines: [
      { name: 'armitage', protocol: 'vllm', model: 'Qwen/Qwen2.5-7B-Instruct-AWQ', kind: 'chat', contextWindow: 8192, timing: FAST, autoToolChoice: true },
      { name: 'vision', protocol: 'vllm', model: 'Qwen/Qwen2.5-VL-7B-Instruct', kind: 'chat', contextWindow: 8192, timing: FAST },
      { name: 'ollama', protocol: 'ollama', model: 'qwen2.5:7b', kind: 'chat', contextWindow: 8192, timing: FAST },
      { name: 'flaky', protocol: 'vllm', model: 'flaky-model', kind: 'chat', timing: FAST },
    ],
    yaml: (url) => `
gateway:
  master_key: env:FABRIC_MASTER_KEY
  limits: { max_tokens: 4096 }
  cache: { ttl: 1h }
backends:
  armitage-qwen: { engine: vllm, url: ${url('armitage')}/v1, model: Qwen/Qwen2.5-7B-Instruct-AWQ }
  vision-qwen: { engine: vllm, url: ${url('vision')}/v1, model: Qwen/Qwen2.5-VL-7B-Instruct }
  ollama-qwen: { engine: ollama, url: ${url('ollama')}, model: "qwen2.5:7b", context_window: 8192 }
  flaky: { engine: vllm, url: ${url('flaky')}/v1, model: flaky-model, max_retries: 0 }
roles:
  chat-fast:
    kind: chat
    backends: [armitage-qwen]
    aliases: [local/chat, claude-sonnet-4-5]
    rules: [{ if_input_has: image, route_to: vision-general }]
  vision-general: { kind: chat, backends: [vision-qwen] }
  chat-ollama: { kind: chat, backends: [ollama-qwen] }
  chat-flaky: { kind: chat, backends: [flaky] }
  chat-falls-back: { kind: chat, backends: [flaky], fallbacks: [chat-fast] }
`,
  });
  client = anthropic(MASTER);
});

after(() => f.close());

afterEach(async () => {
  for (const e of f.fleet.engines.values()) await e.setFault(null);
});

const lastSent = (engine: string): any => lastBody(f, engine);
const text = (m: Anthropic.Message): string => m.content.filter((b) => b.type === 'text').map((b) => (b as Anthropic.TextBlock).text).join('');

test('a text answer: a Message with the chat answer\'s words, end_turn, the usage the engine counted, the request id, and the served-by headers', async () => {
  const { data: m, response, request_id } = await client.messages.create({ model: 'chat-fast', max_tokens: 200, messages: [{ role: 'user', content: 'tell me about engines' }] }).withResponse();
  assert.equal(m.type, 'message');
  assert.equal(m.role, 'assistant');
  assert.equal(m.stop_reason, 'end_turn');
  assert.equal(m.stop_sequence, null);
  assert.equal(m.id, `msg_${response.headers.get('x-request-id')!.slice(4)}`, 'the message id is the gateway request id');
  assert.equal(request_id, response.headers.get('x-request-id'), 'request-id, which the SDK reports');
  assert.equal(response.headers.get('x-fabric-role'), 'chat-fast');
  assert.equal(m.model, 'Qwen/Qwen2.5-7B-Instruct-AWQ', 'the model that answered, as the Responses dialect names it');
  const sent = lastSent('armitage');
  assert.deepEqual(sent.messages, [{ role: 'user', content: 'tell me about engines' }]);
  assert.equal(sent.max_tokens, 200);
  assert.equal(sent.model, 'Qwen/Qwen2.5-7B-Instruct-AWQ', 'the role name never reaches the backend');
  // The same conversation as a chat request gets the same words and counts (the simulator answers by prompt).
  const c = await f.client.chat.completions.create({ model: 'chat-fast', messages: sent.messages, max_tokens: 200 });
  assert.deepEqual(m.content, [{ type: 'text', text: c.choices[0]!.message.content }]);
  assert.equal(m.usage.input_tokens + (m.usage.cache_read_input_tokens ?? 0), c.usage!.prompt_tokens);
  assert.equal(m.usage.output_tokens, c.usage!.completion_tokens);
});

test('system prompts (a string, or text blocks), multi-turn conversations and sampling fields become the chat request; an alias routes like the role', async () => {
  const m = await client.messages.create({
    model: 'claude-sonnet-4-5', max_tokens: 64,
    system: [{ type: 'text', text: 'You are terse.', cache_control: { type: 'ephemeral' } }, { type: 'text', text: 'Answer in English.' }],
    messages: [
      { role: 'user', content: 'hello' },
      { role: 'assistant', content: [{ type: 'thinking', thinking: 'they greet me', signature: 'sig' }, { type: 'text', text: 'Hi.' }] },
      { role: 'user', content: [{ type: 'text', text: 'What is' }, { type: 'text', text: 'a gateway?' }] },
    ],
    metadata: { user_id: 'user-42' },
    top_k: 40,
    temperature: 0.3,
    top_p: 0.9,
  } as Anthropic.MessageCreateParamsNonStreaming);
  assert.ok(text(m).length > 0);
  const sent = lastSent('armitage');
  assert.deepEqual(sent.messages, [
    { role: 'system', content: 'You are terse.\nAnswer in English.' },
    { role: 'user', content: 'hello' },
    { role: 'assistant', content: 'Hi.' },
    { role: 'user', content: 'What is\na gateway?' },
  ], 'thinking blocks are left out; text blocks are joined');
  assert.equal(sent.user, 'user-42');
  assert.equal(sent.top_k, 40, 'top_k goes on as vLLM\'s extension');
  assert.equal(sent.temperature, 0.3);
  assert.equal(sent.top_p, 0.9);
  for (const k of ['system', 'metadata', 'cache_control', 'thinking']) assert.equal(sent[k], undefined, k);

  const plain = await client.messages.create({ model: 'local/chat', max_tokens: 64, system: 'Be brief.', messages: [{ role: 'user', content: 'hi' }] });
  assert.ok(text(plain).length > 0);
  assert.deepEqual(lastSent('armitage').messages[0], { role: 'system', content: 'Be brief.' });
});

test('a tool round trip: the call comes back as a tool_use block with its input parsed and stop_reason tool_use; its tool_result goes back as a tool message; the answer is text', async () => {
  const tools: Anthropic.Tool[] = [{ name: 'get_weather', description: 'Weather by city', input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } }];
  const m = await client.messages.create({ model: 'chat-fast', max_tokens: 200, tools, tool_choice: { type: 'any' }, messages: [{ role: 'user', content: 'Weather in Paris?' }] });
  assert.equal(m.stop_reason, 'tool_use');
  const use = m.content.find((b) => b.type === 'tool_use') as Anthropic.ToolUseBlock;
  assert.equal(use.name, 'get_weather');
  assert.deepEqual(use.input, { city: 'Paris' });
  assert.equal(m.content.some((b) => b.type === 'text'), false, 'no empty text block beside the call');
  let sent = lastSent('armitage');
  assert.deepEqual(sent.tools, [{ type: 'function', function: { name: 'get_weather', description: 'Weather by city', parameters: tools[0]!.input_schema } }]);
  assert.equal(sent.tool_choice, 'required');

  const answer = await client.messages.create({
    model: 'chat-fast', max_tokens: 200, tools,
    messages: [
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: m.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: [{ type: 'text', text: '18°C' }] }, { type: 'text', text: 'And tomorrow?' }] },
    ],
  });
  assert.equal(answer.stop_reason, 'end_turn');
  assert.ok(text(answer).length > 0);
  sent = lastSent('armitage');
  assert.deepEqual(sent.messages.slice(1), [
    { role: 'assistant', content: null, tool_calls: [{ id: use.id, type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
    { role: 'tool', tool_call_id: use.id, content: '18°C' },
    { role: 'user', content: 'And tomorrow?' },
  ]);

  // A named tool, one call at a time, and a failed tool's result.
  await client.messages.create({
    model: 'chat-fast', max_tokens: 200, tools, tool_choice: { type: 'tool', name: 'get_weather', disable_parallel_tool_use: true },
    messages: [
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'service down', is_error: true }] },
    ],
  });
  sent = lastSent('armitage');
  assert.deepEqual(sent.tool_choice, { type: 'function', function: { name: 'get_weather' } });
  assert.equal(sent.parallel_tool_calls, false);
  assert.deepEqual(sent.messages.at(-1), { role: 'tool', tool_call_id: 'toolu_1', content: 'Error: service down' });

  // Through Ollama (its NDJSON answer translated to chat's, then to a Message).
  const o = await client.messages.create({ model: 'chat-ollama', max_tokens: 200, tools, messages: [{ role: 'user', content: 'please call get_weather for Paris' }] });
  assert.equal(o.stop_reason, 'tool_use');
  assert.deepEqual((o.content.find((b) => b.type === 'tool_use') as Anthropic.ToolUseBlock).input, { city: 'Paris' });
});

test('an image (base64, and by URL) reaches the vision role as an image part; the rule on images routes it', async () => {
  const png = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';
  const { data: m, response } = await client.messages.create({
    model: 'chat-fast', max_tokens: 64,
    messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'base64', media_type: 'image/png', data: png } }, { type: 'text', text: 'What is in it?' }] }],
  }).withResponse();
  assert.ok(text(m).length > 0);
  assert.equal(response.headers.get('x-fabric-role'), 'vision-general');
  assert.deepEqual(lastSent('vision').messages, [{ role: 'user', content: [{ type: 'image_url', image_url: { url: `data:image/png;base64,${png}` } }, { type: 'text', text: 'What is in it?' }] }]);
  await client.messages.create({
    model: 'vision-general', max_tokens: 64,
    messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'url', url: 'https://example.com/cat.png' } }, { type: 'text', text: 'And this?' }] }],
  });
  assert.deepEqual(lastSent('vision').messages[0].content[0], { type: 'image_url', image_url: { url: 'https://example.com/cat.png' } });
});

test('streamed text with the SDK\'s stream helper: message_start, ping, one text block\'s deltas, message_delta with the usage, message_stop; the final message matches the whole one', async () => {
  const events: Anthropic.MessageStreamEvent[] = [];
  const deltas: string[] = [];
  const stream = client.messages.stream({ model: 'chat-fast', max_tokens: 200, messages: [{ role: 'user', content: 'stream a story' }] });
  stream.on('streamEvent', (e) => events.push(e));
  stream.on('text', (d) => deltas.push(d));
  const final = await stream.finalMessage();
  assert.equal(lastSent('armitage').stream_options.include_usage, true, 'usage asked of the engine, though the client did not');
  assert.deepEqual(events.map((e) => e.type).filter((t, i, a) => t !== 'content_block_delta' || a[i - 1] !== 'content_block_delta'), [
    'message_start', 'content_block_start', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop',
  ]);
  assert.ok(deltas.length > 1, 'the text came in pieces');
  const whole = await client.messages.create({ model: 'chat-fast', max_tokens: 200, messages: [{ role: 'user', content: 'stream a story' }] });
  assert.equal(text(final), deltas.join(''));
  assert.equal(text(final), text(whole));
  assert.equal(final.stop_reason, 'end_turn');
  assert.deepEqual(final.usage, whole.usage, 'message_delta carries the engine\'s counts');
  assert.match(final.id, /^msg_/);

  // The raw events, as Claude Code reads them: ping after message_start; every event named as its type.
  const res = await fetch(`${f.url}/v1/messages?beta=true`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'chat-fast', max_tokens: 50, stream: true, messages: [{ role: 'user', content: 'x' }] }) });
  assert.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8');
  const raw = [...(await res.text()).matchAll(/^event: (.+)\ndata: (.+)$/gm)].map((e) => [e[1], JSON.parse(e[2]!)]);
  for (const [name, data] of raw) assert.equal(data.type, name);
  assert.deepEqual(raw.slice(0, 2).map((e) => e[0]), ['message_start', 'ping']);
  assert.ok(raw[0]![1].message.usage.input_tokens > 0, 'message_start carries the prompt\'s estimate');
});

test('streamed tool input: a tool_use block whose input_json_delta pieces add up to the arguments; stop_reason tool_use', async () => {
  const tools: Anthropic.Tool[] = [{ name: 'get_weather', input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } }];
  const pieces: string[] = [];
  const stream = client.messages.stream({ model: 'chat-fast', max_tokens: 200, tools, tool_choice: { type: 'tool', name: 'get_weather' }, messages: [{ role: 'user', content: 'Weather in Paris?' }] });
  stream.on('inputJson', (d) => pieces.push(d));
  const final = await stream.finalMessage();
  assert.ok(pieces.length > 1, 'the arguments came in pieces');
  assert.deepEqual(JSON.parse(pieces.join('')), { city: 'Paris' });
  assert.equal(final.stop_reason, 'tool_use');
  const use = final.content.find((b) => b.type === 'tool_use') as Anthropic.ToolUseBlock;
  assert.deepEqual(use.input, { city: 'Paris' });
  assert.equal(use.name, 'get_weather');
  // Through Ollama's NDJSON too.
  const o = await client.messages.stream({ model: 'chat-ollama', max_tokens: 200, tools, messages: [{ role: 'user', content: 'please call get_weather for Paris' }] }).finalMessage();
  assert.equal(o.stop_reason, 'tool_use');
  assert.deepEqual((o.content.find((b) => b.type === 'tool_use') as Anthropic.ToolUseBlock).input, { city: 'Paris' });
});

test('stop_sequences: the engine stops before one and names it: stop_reason stop_sequence with the sequence, streamed and not; max_tokens cuts: stop_reason max_tokens', async () => {
  const whole = text(await client.messages.create({ model: 'chat-fast', max_tokens: 200, messages: [{ role: 'user', content: 'why' }] }));
  const seq = whole.split(' ').slice(2, 4).join(' ');
  const m = await client.messages.create({ model: 'chat-fast', max_tokens: 200, stop_sequences: ['never said', seq], messages: [{ role: 'user', content: 'why' }] });
  assert.equal(lastSent('armitage').stop.join('|'), `never said|${seq}`);
  assert.equal(m.stop_reason, 'stop_sequence');
  assert.equal(m.stop_sequence, seq);
  assert.equal(text(m), whole.slice(0, whole.indexOf(seq)));
  const s = await client.messages.stream({ model: 'chat-fast', max_tokens: 200, stop_sequences: [seq], messages: [{ role: 'user', content: 'why' }] }).finalMessage();
  assert.equal(s.stop_reason, 'stop_sequence');
  assert.equal(s.stop_sequence, seq);
  // A sequence never reached ends the turn as usual.
  assert.equal((await client.messages.create({ model: 'chat-fast', max_tokens: 200, stop_sequences: ['never said'], messages: [{ role: 'user', content: 'why' }] })).stop_reason, 'end_turn');

  const cut = await client.messages.create({ model: 'chat-fast', max_tokens: 3, messages: [{ role: 'user', content: 'a long story' }] });
  assert.equal(cut.stop_reason, 'max_tokens');
  assert.equal(cut.usage.output_tokens, 3);
  const cutStream = await client.messages.stream({ model: 'chat-ollama', max_tokens: 3, messages: [{ role: 'user', content: 'a long story' }] }).finalMessage();
  assert.equal(cutStream.stop_reason, 'max_tokens');
  assert.equal(cutStream.usage.output_tokens, 3);
});

test('errors in Anthropic\'s shape with the gateway\'s statuses and messages: unknown model 404, a bad body 400 naming the field, a bad key 401', async () => {
  await assert.rejects(client.messages.create({ model: 'no-such-role', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] }), (e: unknown) => {
    assert.ok(e instanceof Anthropic.NotFoundError);
    assert.equal(e.type, 'not_found_error');
    assert.match(e.apiMessage ?? '', /The model `no-such-role` does not exist on this gateway/);
    return true;
  });
  await assert.rejects(anthropic('sk-wrong').messages.create({ model: 'chat-fast', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] }), (e: unknown) => {
    assert.ok(e instanceof Anthropic.AuthenticationError);
    assert.equal(e.type, 'authentication_error');
    return true;
  });
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ max_tokens: undefined }, /`max_tokens` is required/],
    [{ max_tokens: 5000 }, /`max_tokens` is 5000; this gateway allows at most 4096/],
    [{ messages: [] }, /`messages` must be a non-empty array/],
    [{ messages: [{ role: 'tool', content: 'x' }] }, /`messages\[0\]\.role` must be user or assistant/],
    [{ messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'file', file_id: 'file_1' } }] }] }, /`messages\[0\]\.content\[0\]\.source`: file ids need Anthropic's Files API/],
    [{ tools: [{ type: 'web_search_20250305', name: 'web_search' }] }, /`tools\[0\]\.type` "web_search_20250305" is one of Anthropic's own tools/],
    [{ tools: [{ name: 'f' }] }, /`tools\[0\]\.input_schema` must be a JSON schema object/],
    [{ tool_choice: { type: 'tool', name: 'nope' }, tools: [{ name: 'f', input_schema: { type: 'object' } }] }, /`tool_choice` names the function "nope", which is not among `tools`/],
    [{ stop: ['x'] }, /`stop` is a chat completions field, not one of the Messages API: use `stop_sequences`/],
    [{ temperature: 'hot' }, /`temperature` must be a number/],
    [{ mcp_servers: [{ type: 'url', url: 'https://mcp.example.com' }] }, /`mcp_servers` is not accepted/],
    [{ messages: [{ role: 'user', content: 'x', api_base: 'http://evil' }] }, /`messages\[0\]\.api_base` is not accepted/],
  ];
  for (const [extra, message] of cases) {
    const r = await post(f.url, '/v1/messages', { model: 'chat-fast', max_tokens: 10, messages: [{ role: 'user', content: 'x' }], ...extra }, auth);
    assert.equal(r.status, 400, `${JSON.stringify(extra)}: ${r.text}`);
    assert.equal(r.json.type, 'error');
    assert.equal(r.json.error.type, 'invalid_request_error');
    assert.match(r.json.error.message, message);
    assert.equal(r.json.request_id, r.headers.get('x-request-id'));
    assert.equal(r.json.error.code, undefined, 'Anthropic\'s shape, not OpenAI\'s');
  }
  // Nested past the limit, deep enough to overflow the translation's walk: the client's 400, not a 500.
  const deep = `{"model":"chat-fast","max_tokens":10,"messages":[{"role":"user","content":"x"},{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":{"a":${'['.repeat(200_000)}${']'.repeat(200_000)}}}]}]}`;
  for (const path of ['/v1/messages', '/v1/messages/count_tokens']) {
    const r = await fetch(`${f.url}${path}`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: deep });
    const j = (await r.json()) as any;
    assert.equal(r.status, 400, `${path}: ${JSON.stringify(j)}`);
    assert.equal(j.error.type, 'invalid_request_error');
    assert.match(j.error.message, /more than 128 levels deep/);
  }
  // A tool's schema may well describe a base_url, and a call's input carry one: data, not a request to the gateway.
  const ok = await post(f.url, '/v1/messages', {
    model: 'chat-fast', max_tokens: 10, tools: [{ name: 'fetch', input_schema: { type: 'object', properties: { base_url: { type: 'string' } } } }],
    messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: [{ type: 'tool_use', id: 't1', name: 'fetch', input: { base_url: 'http://a' } }] }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't1', content: 'ok' }] }],
  }, auth);
  assert.equal(ok.status, 200, ok.text);
  // Too long for the model: the gateway's context-length error, named as the client's field.
  const long = await post(f.url, '/v1/messages', { model: 'chat-fast', max_tokens: 10, messages: [{ role: 'user', content: 'word '.repeat(9000) }] }, auth);
  assert.equal(long.status, 400, long.text);
  assert.match(long.json.error.message, /context/);
  const noKey = await post(f.url, '/v1/messages', { model: 'chat-fast', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] });
  assert.equal(noKey.status, 401);
  assert.equal(noKey.json.error.type, 'authentication_error');
  assert.match(noKey.json.error.message, /x-api-key/);
  const wrongMethod = await fetch(`${f.url}/v1/messages`, { headers: auth });
  assert.equal(wrongMethod.status, 405);
  assert.equal(((await wrongMethod.json()) as any).error.type, 'invalid_request_error');
  // Other routes keep OpenAI's shape.
  const chatErr = await post(f.url, '/v1/chat/completions', { model: 'no-such-role', messages: [{ role: 'user', content: 'x' }] }, { authorization: `Bearer ${MASTER}` });
  assert.equal(chatErr.json.error.code, 'model_not_found');
});

test('a virtual key by x-api-key (and as a bearer token): its roles hold, its rate limit answers rate_limit_error, and its usage is recorded as the Message reports it', async () => {
  const made = await post(f.url, '/admin/keys', { name: 'claude-code', roles: ['chat-fast'], rpm: 2 }, { authorization: `Bearer ${MASTER}` });
  assert.equal(made.status, 201, made.text);
  const key = made.json.key as string;
  const viaHeader = anthropic(key);
  const { data: m, response } = await viaHeader.messages.create({ model: 'chat-fast', max_tokens: 50, messages: [{ role: 'user', content: 'count me' }] }).withResponse();
  const viaBearer = new Anthropic({ baseURL: f.url, authToken: key, apiKey: null, maxRetries: 0 });
  const streaming = viaBearer.messages.stream({ model: 'chat-fast', max_tokens: 50, messages: [{ role: 'user', content: 'count me too' }] });
  const s = await streaming.finalMessage();
  await assert.rejects(viaHeader.messages.create({ model: 'chat-ollama', max_tokens: 50, messages: [{ role: 'user', content: 'x' }] }), (e: unknown) => {
    assert.ok(e instanceof Anthropic.PermissionDeniedError);
    assert.equal(e.type, 'permission_error');
    assert.match(e.apiMessage ?? '', /does not have access to model `chat-ollama`/);
    return true;
  });
  await assert.rejects(viaHeader.messages.create({ model: 'chat-fast', max_tokens: 50, messages: [{ role: 'user', content: 'x' }] }), (e: unknown) => {
    assert.ok(e instanceof Anthropic.RateLimitError);
    assert.equal(e.type, 'rate_limit_error');
    return true;
  });

  await f.gw.app.accounting!.writer.flush();
  const rec = await f.gw.app.accounting!.store.usageById(response.headers.get('x-request-id')!);
  assert.equal(rec?.status, 200);
  assert.equal(rec?.role, 'chat-fast');
  assert.equal(rec?.promptTokens, m.usage.input_tokens + (m.usage.cache_read_input_tokens ?? 0));
  assert.equal(rec?.completionTokens, m.usage.output_tokens);
  assert.equal(rec?.estimated, false);
  const streamed = await f.gw.app.accounting!.store.usageById(streaming.request_id!);
  assert.equal(streamed?.completionTokens, s.usage.output_tokens, 'a stream\'s usage captured as the chat path captures it');
  assert.equal(streamed?.promptTokens, s.usage.input_tokens + (s.usage.cache_read_input_tokens ?? 0));
  const usage: any = await (await fetch(`${f.url}/admin/usage?by=key&key=${made.json.id}`, { headers: { authorization: `Bearer ${MASTER}` } })).json();
  assert.equal(usage.data[0].requests, 4, 'the refused ones too: the wrong role and the rate limit');
});

test('GET /v1/models through Anthropic\'s SDK (its models.list, by x-api-key): the roles, by their ids', async () => {
  const ids: string[] = [];
  for await (const m of client.models.list()) ids.push(m.id);
  for (const role of ['chat-fast', 'vision-general', 'chat-ollama']) assert.ok(ids.includes(role), `${role} in ${ids.join(', ')}`);
});

test('the log line and the trace say api "messages", failed requests\' too; metrics count them as chat', async () => {
  const from = f.logs.length;
  await client.messages.create({ model: 'chat-fast', max_tokens: 20, messages: [{ role: 'user', content: 'logged' }] });
  const line = await waitForLog(f, from, (r) => r.msg === 'request' && r.model === 'chat-fast' && r.status === 200);
  assert.equal(line.api, 'messages');
  assert.equal(line.op, 'chat');
  assert.ok(line.prompt_tokens > 0);
  await post(f.url, '/v1/messages', { model: 'no-such-role', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }, auth);
  const failed = await waitForLog(f, from, (r) => r.msg === 'request' && r.status === 404);
  assert.equal(failed.api, 'messages');
  const metrics = await (await fetch(`${f.url}/metrics`, { headers: { authorization: `Bearer ${MASTER}` } })).text();
  assert.match(metrics, /^fabric_requests_total\{op="chat",role="chat-fast",backend="armitage-qwen",status="200"\} \d+$/m);
});

test('the response cache serves a repeated deterministic request (temperature 0) as a Message again, with its own id; streamed too', async () => {
  const body = { model: 'chat-fast', max_tokens: 40, temperature: 0, messages: [{ role: 'user' as const, content: `cache me ${Date.now()}` }] };
  const first = await client.messages.create(body).withResponse();
  const again = await client.messages.create(body).withResponse();
  assert.equal(first.response.headers.get('x-fabric-cache'), 'miss');
  assert.equal(again.response.headers.get('x-fabric-cache'), 'hit');
  assert.notEqual(again.data.id, first.data.id);
  assert.deepEqual(again.data.content, first.data.content);
  const s = await client.messages.stream(body).withResponse();
  assert.equal(s.response.headers.get('x-fabric-cache'), 'miss', 'a stream is kept apart from the whole answer');
  await s.data.finalMessage();
  const s2 = client.messages.stream(body);
  const hit = await s2.withResponse();
  assert.equal(hit.response.headers.get('x-fabric-cache'), 'hit');
  assert.equal(text(await s2.finalMessage()), text(first.data));
});

test('a stream falls back until its first byte; a backend dying after it ends the stream with Anthropic\'s error event, which the SDK raises', async () => {
  await f.fleet.get('flaky').setFault({ kind: 'error', status: 500 });
  const { data: s, response } = await client.messages.stream({ model: 'chat-falls-back', max_tokens: 50, messages: [{ role: 'user', content: 'x' }] }).withResponse();
  assert.equal(response.headers.get('x-fabric-role'), 'chat-fast');
  assert.equal(response.headers.get('x-fabric-rerouted'), 'true');
  const fallen = await s.finalMessage();
  assert.equal(fallen.stop_reason, 'end_turn');
  assert.ok(text(fallen).length > 0);

  await f.fleet.get('flaky').setFault({ kind: 'drop', afterChunks: 3 });
  const res = await fetch(`${f.url}/v1/messages`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'chat-flaky', max_tokens: 50, stream: true, messages: [{ role: 'user', content: 'x' }] }) });
  assert.equal(res.status, 200);
  const body = await res.text();
  const names = [...body.matchAll(/^event: (.+)$/gm)].map((m) => m[1]);
  assert.equal(names[0], 'message_start');
  assert.equal(names.at(-1), 'error');
  assert.ok(!names.includes('message_stop'));
  const err = JSON.parse(/^event: error\ndata: (.+)$/m.exec(body)![1]!);
  assert.equal(err.type, 'error');
  assert.equal(err.error.type, 'api_error');
  assert.match(err.error.message, /interrupted/);
  await assert.rejects(client.messages.stream({ model: 'chat-flaky', max_tokens: 50, messages: [{ role: 'user', content: 'x' }] }).finalMessage(), (e: unknown) => {
    assert.ok(e instanceof Anthropic.APIError);
    assert.equal(e.type, 'api_error');
    return true;
  });
});

test('a client that leaves a stream aborts the backend request', async () => {
  const engine = f.fleet.get('armitage');
  await engine.setFault({ kind: 'slow', factor: 50 });
  const ac = new AbortController();
  const stream = client.messages.stream({ model: 'chat-fast', max_tokens: 500, messages: [{ role: 'user', content: 'a slow story' }] }, { signal: ac.signal });
  await new Promise<void>((resolve) => stream.once('text', () => resolve()));
  assert.equal(engine.stats().active, 1);
  ac.abort();
  await stream.done().catch(() => {});
  for (let i = 0; i < 50 && engine.stats().active > 0; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(engine.stats().active, 0, 'the backend request was cancelled');
});

test('count_tokens: the gateway\'s estimate of the prompt, for a model the key may use; errors in Anthropic\'s shape', async () => {
  const params = {
    model: 'chat-fast', system: 'You are terse.',
    messages: [{ role: 'user' as const, content: 'How many tokens is this sentence, more or less?' }],
    tools: [{ name: 'get_weather', input_schema: { type: 'object' as const, properties: { city: { type: 'string' } } } }],
  };
  const { data: n, response } = await client.messages.countTokens(params).withResponse();
  assert.ok(n.input_tokens > 20 && n.input_tokens < 200, String(n.input_tokens));
  assert.equal(response.headers.get('request-id'), response.headers.get('x-request-id'), 'request-id, which the SDK reports');
  const more = await client.messages.countTokens({ ...params, messages: [...params.messages, { role: 'assistant', content: 'About ten.' }, { role: 'user', content: 'And this one, which is somewhat longer than the first?' }] });
  assert.ok(more.input_tokens > n.input_tokens + 10);
  await assert.rejects(client.messages.countTokens({ ...params, model: 'no-such-role' }), (e: unknown) => e instanceof Anthropic.NotFoundError && e.type === 'not_found_error');
  const bad = await post(f.url, '/v1/messages/count_tokens', { model: 'chat-fast', messages: 'x' }, auth);
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.type, 'invalid_request_error');
  assert.match(bad.json.error.message, /`messages` must be a non-empty array/);
  assert.equal(bad.headers.get('request-id'), bad.json.request_id);
  // A long prompt is counted up to COUNT_EXACT tokens, the rest by its bytes: what a count costs is bounded.
  const long = 'word '.repeat(1_000_000);
  const counted = await client.messages.countTokens({ model: 'chat-fast', messages: [{ role: 'user', content: long }] });
  assert.equal(counted.input_tokens, Math.ceil(long.length / 4) + 4);
  assert.equal((await post(f.url, '/v1/messages/count_tokens', params)).status, 401);
  // A key counts for the models it may use, and only those.
  const limited = await post(f.url, '/admin/keys', { name: 'counter', roles: ['chat-fast'] }, { authorization: `Bearer ${MASTER}` });
  assert.equal((await anthropic(limited.json.key).messages.countTokens(params)).input_tokens, n.input_tokens);
  await assert.rejects(anthropic(limited.json.key).messages.countTokens({ ...params, model: 'chat-ollama' }), (e: unknown) => e instanceof Anthropic.PermissionDeniedError && e.type === 'permission_error');
});

test('a prefill (a last assistant turn) is continued: vLLM is asked to (continue_final_message, no generation prompt); a chat request ending so is not, nor an Ollama backend', async () => {
  const m = await client.messages.create({ model: 'chat-fast', max_tokens: 50, messages: [{ role: 'user', content: 'give me JSON' }, { role: 'assistant', content: '{"answer":' }] });
  assert.equal(m.type, 'message');
  const sent = lastSent('armitage');
  assert.deepEqual([sent.continue_final_message, sent.add_generation_prompt], [true, false]);
  assert.deepEqual(sent.messages.at(-1), { role: 'assistant', content: '{"answer":' });
  const plain = await post(f.url, '/v1/messages', { model: 'chat-fast', max_tokens: 50, messages: [{ role: 'user', content: 'hi' }] }, { 'x-api-key': MASTER });
  assert.equal(plain.status, 200, plain.text);
  assert.equal(lastSent('armitage').continue_final_message, undefined, 'only a prefill is continued');
  const chat = await post(f.url, '/v1/chat/completions', { model: 'chat-fast', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'Hello' }] }, { authorization: `Bearer ${MASTER}` });
  assert.equal(chat.status, 200, chat.text);
  assert.equal(lastSent('armitage').continue_final_message, undefined, 'OpenAI\'s API gives a last assistant turn no such meaning');
  await client.messages.create({ model: 'chat-ollama', max_tokens: 50, messages: [{ role: 'user', content: 'give me JSON' }, { role: 'assistant', content: '{"answer":' }] });
  assert.equal(lastSent('ollama').continue_final_message, undefined, 'Ollama continues a last assistant turn as it is');
});
