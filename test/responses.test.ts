// The Responses API (POST /v1/responses) end to end: the official openai SDK's responses
// client against the gateway, in front of simulated vLLM and Ollama engines. Answers are checked
// against the official schema, and what the engines received against the chat request the
// Responses request stands for.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startFabric, openaiSchemaValidator, post, waitForLog, lastBody, type Fabric } from './helpers.ts';

const MASTER = 'fabric-master-key-for-responses';
const FAST = { ttftMs: 5, tokensPerSecond: 2000, maxConcurrency: 16, maxQueue: 64 };

let f: Fabric;
const validate = openaiSchemaValidator();
const auth = { authorization: `Bearer ${MASTER}` };

before(async () => {
  f = await startFabric({
    env: { FABRIC_MASTER_KEY: MASTER },
    apiKey: MASTER,
    engines: [
      { name: 'armitage', protocol: 'vllm', model: 'Qwen/Qwen2.5-7B-Instruct-AWQ', kind: 'chat', contextWindow: 8192, timing: FAST, autoToolChoice: true },
      { name: 'ollama', protocol: 'ollama', model: 'qwen2.5:7b', kind: 'chat', contextWindow: 8192, timing: FAST },
      { name: 'flaky', protocol: 'vllm', model: 'flaky-model', kind: 'chat', timing: FAST },
    ],
    yaml: (url) => `
gateway:
  master_key: env:FABRIC_MASTER_KEY
  limits: { max_tokens: 4096 }
backends:
  armitage-qwen: { engine: vllm, url: ${url('armitage')}/v1, model: Qwen/Qwen2.5-7B-Instruct-AWQ }
  ollama-qwen: { engine: ollama, url: ${url('ollama')}, model: "qwen2.5:7b", context_window: 8192 }
  flaky: { engine: vllm, url: ${url('flaky')}/v1, model: flaky-model, max_retries: 0 }
roles:
  chat-fast: { kind: chat, backends: [armitage-qwen], aliases: [local/chat] }
  chat-ollama: { kind: chat, backends: [ollama-qwen] }
  chat-flaky: { kind: chat, backends: [flaky] }
`,
  });
});

after(() => f.close());

const lastSent = (engine: string): any => lastBody(f, engine);

test('a Response for a string input with instructions: schema-valid, the text the chat answer has, usage, and the served-by headers', async () => {
  const r = await f.client.responses.create({ model: 'chat-fast', input: 'tell me about engines', instructions: 'Be brief.' });
  assert.deepEqual(validate('Response', r), []);
  assert.equal(r.object, 'response');
  assert.equal(r.status, 'completed');
  assert.match(r.id, /^resp_/);
  assert.equal(r.instructions, 'Be brief.');
  const sent = lastSent('armitage');
  assert.deepEqual(sent.messages, [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'tell me about engines' }]);
  assert.equal(sent.model, 'Qwen/Qwen2.5-7B-Instruct-AWQ', 'the role name never reaches the backend');
  // The same conversation as a chat request gets the same words (the simulator answers by prompt).
  const c = await f.client.chat.completions.create({ model: 'chat-fast', messages: sent.messages });
  assert.equal(r.output_text, c.choices[0]!.message.content);
  assert.equal(r.output.length, 1);
  assert.equal(r.output[0]!.type, 'message');
  assert.equal(r.usage!.input_tokens, c.usage!.prompt_tokens);
  assert.equal(r.usage!.output_tokens, c.usage!.completion_tokens);
  assert.equal(r.usage!.total_tokens, r.usage!.input_tokens + r.usage!.output_tokens);

  const raw = await post(f.url, '/v1/responses', { model: 'local/chat', input: 'hi' }, auth);
  assert.equal(raw.status, 200);
  assert.equal(raw.headers.get('x-fabric-role'), 'chat-fast');
  assert.equal(raw.headers.get('x-fabric-backend'), 'armitage-qwen');
  assert.equal(raw.json.id, `resp_${raw.headers.get('x-request-id')!.slice(4)}`, 'the response id is the gateway request id');
});

test('streamed: response.created first, sequence numbers in order, deltas that add up to the completed Response with its usage', async () => {
  const stream = await f.client.responses.create({ model: 'chat-fast', input: 'stream a story', stream: true });
  const events: any[] = [];
  for await (const e of stream) events.push(e);
  assert.equal(events[0].type, 'response.created');
  assert.equal(events[1].type, 'response.in_progress');
  assert.deepEqual(events.map((e) => e.sequence_number), events.map((_, i) => i));
  const last = events.at(-1);
  assert.equal(last.type, 'response.completed');
  assert.deepEqual(validate('Response', last.response), []);
  const deltas = events.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta).join('');
  assert.ok(deltas.length > 0);
  assert.equal(last.response.output[0].content[0].text, deltas);
  assert.equal(events.find((e) => e.type === 'response.output_text.done').text, deltas);
  assert.ok(last.response.usage.output_tokens > 0, 'usage, though the client asked for none: the gateway asks the backend');
  for (const e of events) {
    const schema = {
      'response.created': 'ResponseCreatedEvent', 'response.in_progress': 'ResponseInProgressEvent', 'response.output_item.added': 'ResponseOutputItemAddedEvent',
      'response.content_part.added': 'ResponseContentPartAddedEvent', 'response.output_text.delta': 'ResponseTextDeltaEvent', 'response.output_text.done': 'ResponseTextDoneEvent',
      'response.content_part.done': 'ResponseContentPartDoneEvent', 'response.output_item.done': 'ResponseOutputItemDoneEvent', 'response.completed': 'ResponseCompletedEvent',
    }[e.type as string];
    assert.ok(schema !== undefined, `unexpected event ${e.type}`);
    assert.deepEqual(validate(schema, e), [], e.type);
  }
  // The SDK's own stream helper assembles the same.
  const final = await f.client.responses.stream({ model: 'chat-fast', input: 'stream a story' }).finalResponse();
  assert.equal(final.output_text, deltas);
});

test('token logprobs, asked for with include (and top_logprobs): on the output text, on each delta, and on the done events, from vLLM and Ollama', async () => {
  for (const model of ['chat-fast', 'chat-ollama']) {
    const engine = model === 'chat-fast' ? 'armitage' : 'ollama';
    const r = await f.client.responses.create({ model, input: 'tell me about engines', include: ['message.output_text.logprobs'], top_logprobs: 2 });
    assert.deepEqual(validate('Response', r), [], model);
    assert.equal(lastSent(engine).logprobs ?? lastSent(engine).top_logprobs !== undefined, true, `${model}: logprobs asked of the engine`);
    const part = (r.output[0] as any).content[0];
    assert.ok(part.logprobs.length > 0, model);
    assert.ok(part.logprobs.map((l: any) => l.token).join('').startsWith(part.text), `${model}: one entry per token of the text (vLLM adds its stop token's)`);
    for (const l of part.logprobs) {
      assert.equal(l.top_logprobs.length, 2, model);
      assert.deepEqual(l.bytes, [...Buffer.from(l.token)], model);
    }

    const events: any[] = [];
    for await (const e of await f.client.responses.create({ model, input: 'tell me about engines', include: ['message.output_text.logprobs'], top_logprobs: 2, stream: true })) events.push(e);
    const deltas = events.filter((e) => e.type === 'response.output_text.delta');
    for (const d of deltas) assert.deepEqual(validate('ResponseTextDeltaEvent', d), [], model);
    assert.deepEqual(deltas.flatMap((d) => d.logprobs), part.logprobs, `${model}: the deltas' logprobs add up to the whole answer's`);
    assert.deepEqual(events.find((e) => e.type === 'response.output_text.done').logprobs, part.logprobs);
    assert.deepEqual(events.at(-1).response.output[0].content[0].logprobs, part.logprobs);
  }
  // Not asked for: none asked of the engine, none given.
  const plain = await f.client.responses.create({ model: 'chat-fast', input: 'tell me about engines' });
  assert.equal(lastSent('armitage').logprobs, undefined);
  assert.deepEqual((plain.output[0] as any).content[0].logprobs, []);
  const bad = await post(f.url, '/v1/responses', { model: 'chat-fast', input: 'x', top_logprobs: 21 }, auth);
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.param, 'top_logprobs');
});

test('optional fields the Response echoes are checked, not echoed wrong: tools, text.format, reasoning, metadata, parallel_tool_calls, user; a field named like an Object method is no refused field', async () => {
  const fn = { type: 'function', name: 'f', parameters: { type: 'object', properties: {} } };
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ tools: [{ ...fn, parameters: 'x' }] }, 'tools[0].parameters'],
    [{ tools: [{ ...fn, parameters: [] }] }, 'tools[0].parameters'],
    [{ tools: [{ ...fn, strict: 'yes' }] }, 'tools[0].strict'],
    [{ tools: [{ ...fn, description: 5 }] }, 'tools[0].description'],
    [{ text: { format: { type: 'json_schema', name: 'a', schema: {}, strict: 'yes' } } }, 'text.format.strict'],
    [{ text: { format: { type: 'json_schema', name: 'a', schema: {}, description: 5 } } }, 'text.format.description'],
    [{ text: { verbosity: 7 } }, 'text.verbosity'],
    [{ reasoning: 'high' }, 'reasoning'],
    [{ reasoning: { effort: 'ultra' } }, 'reasoning.effort'],
    [{ metadata: { a: { b: 1 } } }, 'metadata.a'],
    [{ metadata: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v'])) }, 'metadata'],
    [{ parallel_tool_calls: 'no' }, 'parallel_tool_calls'],
    [{ user: 5 }, 'user'],
    [{ include: [1] }, 'include'],
    [{ reasoning_effort: 'low' }, 'reasoning_effort'],
  ];
  for (const [extra, param] of cases) {
    const r = await post(f.url, '/v1/responses', { model: 'chat-fast', input: 'hi', ...extra }, auth);
    assert.equal(r.status, 400, `${JSON.stringify(extra).slice(0, 80)}: ${r.text}`);
    assert.equal(r.json.error.param, param);
  }
  // Errors name the Responses fields, not those of the chat request the input became.
  const reasoningOnly = await post(f.url, '/v1/responses', { model: 'chat-fast', input: [{ type: 'reasoning', id: 'rs_1', summary: [] }] }, auth);
  assert.equal(reasoningOnly.status, 400);
  assert.equal(reasoningOnly.json.error.param, 'input');
  const tooLong = await post(f.url, '/v1/responses', { model: 'chat-fast', input: 'word '.repeat(9000) }, auth);
  assert.equal(tooLong.status, 400, tooLong.text);
  assert.equal(tooLong.json.error.code, 'context_length_exceeded');
  assert.equal(tooLong.json.error.param, 'input');
  for (const k of ['toString', 'constructor', 'hasOwnProperty']) {
    const r = await post(f.url, '/v1/responses', { model: 'chat-fast', input: 'hi', [k]: 1 }, auth);
    assert.doesNotMatch(r.text, /native code|\[object Object\]/, k);
  }
  const ok = await f.client.responses.create({ model: 'chat-fast', input: 'hi', metadata: { app: 'notes' }, reasoning: { effort: 'low' }, text: { verbosity: 'low' }, parallel_tool_calls: false, user: 'u1' });
  assert.deepEqual(validate('Response', ok), []);
  assert.deepEqual(ok.metadata, { app: 'notes' });
});

test('max_output_tokens cuts the answer: status incomplete with max_output_tokens as the reason, streamed or not', async () => {
  const r = await f.client.responses.create({ model: 'chat-fast', input: 'a long story', max_output_tokens: 3 });
  assert.equal(r.status, 'incomplete');
  assert.deepEqual(r.incomplete_details, { reason: 'max_output_tokens' });
  assert.equal(r.max_output_tokens, 3);
  assert.equal(lastSent('armitage').max_completion_tokens, 3);
  assert.deepEqual(validate('Response', r), []);
  const events: any[] = [];
  for await (const e of await f.client.responses.create({ model: 'chat-fast', input: 'a long story', max_output_tokens: 3, stream: true })) events.push(e);
  assert.equal(events.at(-1).type, 'response.incomplete');
  assert.equal(events.at(-1).response.status, 'incomplete');
  assert.equal(events.find((e) => e.type === 'response.output_item.done').item.status, 'incomplete');
  const over = await post(f.url, '/v1/responses', { model: 'chat-fast', input: 'x', max_output_tokens: 5000 }, auth);
  assert.equal(over.status, 400);
  assert.equal(over.json.error.param, 'max_output_tokens', 'bounded like max_tokens, named as the client named it');
});

test('input items: messages with parts, function calls and their outputs become the chat conversation; function tools and tool_choice are translated', async () => {
  await f.client.responses.create({
    model: 'chat-fast',
    input: [
      { role: 'developer', content: 'You answer about weather.' },
      { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Weather in ' }, { type: 'input_text', text: 'Paris?' }] },
      { type: 'function_call', call_id: 'call_1', name: 'get_weather', arguments: '{"city":"Paris"}' },
      { type: 'function_call', call_id: 'call_2', name: 'get_time', arguments: '{}' },
      { type: 'function_call_output', call_id: 'call_1', output: '18°C' },
      { type: 'function_call_output', call_id: 'call_2', output: [{ type: 'input_text', text: '10:00' }] },
      { type: 'reasoning', id: 'rs_1', summary: [] },
    ],
    tools: [{ type: 'function', name: 'get_weather', description: 'Weather by city', parameters: { type: 'object', properties: { city: { type: 'string' } } }, strict: true }],
    tool_choice: { type: 'function', name: 'get_weather' },
    parallel_tool_calls: false,
    text: { format: { type: 'json_schema', name: 'answer', schema: { type: 'object', properties: { t: { type: 'string' } } }, strict: true } },
    temperature: 0.2,
  });
  const sent = lastSent('armitage');
  assert.deepEqual(sent.messages, [
    { role: 'developer', content: 'You answer about weather.' },
    { role: 'user', content: 'Weather in Paris?' },
    { role: 'assistant', content: null, tool_calls: [
      { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
      { id: 'call_2', type: 'function', function: { name: 'get_time', arguments: '{}' } },
    ] },
    { role: 'tool', tool_call_id: 'call_1', content: '18°C' },
    { role: 'tool', tool_call_id: 'call_2', content: '10:00' },
  ]);
  assert.deepEqual(sent.tools, [{ type: 'function', function: { name: 'get_weather', description: 'Weather by city', parameters: { type: 'object', properties: { city: { type: 'string' } } }, strict: true } }]);
  assert.deepEqual(sent.tool_choice, { type: 'function', function: { name: 'get_weather' } });
  assert.equal(sent.parallel_tool_calls, false);
  assert.deepEqual(sent.response_format, { type: 'json_schema', json_schema: { name: 'answer', schema: { type: 'object', properties: { t: { type: 'string' } } }, strict: true } });
  assert.equal(sent.temperature, 0.2);
  assert.equal(sent.input, undefined);
  assert.equal(sent.text, undefined);
});

test('a tool round trip: the call comes back as a function_call item (streamed and not), its output goes back in input, and the answer is text', async () => {
  const tools = [{ type: 'function' as const, name: 'get_weather', description: 'Weather by city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] }, strict: false }];
  const r = await f.client.responses.create({ model: 'chat-fast', input: 'Weather in Paris?', tools, tool_choice: 'required' });
  assert.deepEqual(validate('Response', r), []);
  const call = r.output.find((o) => o.type === 'function_call') as { call_id: string; name: string; arguments: string } | undefined;
  assert.ok(call !== undefined);
  assert.equal(call.name, 'get_weather');
  assert.deepEqual(JSON.parse(call.arguments), { city: 'Paris' });
  assert.equal(r.output.some((o) => o.type === 'message'), false, 'no empty message beside the call');

  const events: any[] = [];
  for await (const e of await f.client.responses.create({ model: 'chat-fast', input: 'Weather in Paris?', tools, tool_choice: 'required', stream: true })) events.push(e);
  const args = events.filter((e) => e.type === 'response.function_call_arguments.delta').map((e) => e.delta).join('');
  assert.deepEqual(JSON.parse(args), { city: 'Paris' });
  const done = events.find((e) => e.type === 'response.function_call_arguments.done');
  assert.deepEqual(validate('ResponseFunctionCallArgumentsDoneEvent', done), []);
  assert.equal(done.arguments, args);
  const item = events.at(-1).response.output[0];
  assert.equal(item.type, 'function_call');
  assert.equal(item.status, 'completed');

  const answer = await f.client.responses.create({
    model: 'chat-fast', tools,
    input: [{ role: 'user', content: 'Weather in Paris?' }, { type: 'function_call', call_id: call.call_id, name: call.name, arguments: call.arguments }, { type: 'function_call_output', call_id: call.call_id, output: '18°C' }],
  });
  assert.equal(answer.output[0]!.type, 'message');
  assert.ok(answer.output_text.length > 0);
  assert.deepEqual(lastSent('armitage').messages.at(-1), { role: 'tool', tool_call_id: call.call_id, content: '18°C' });

  // Asked for in words (tool_choice auto): called once, and once its result is back, an answer, as an agent loop needs to end.
  const words = 'please call get_weather for Paris';
  const asked = await f.client.responses.create({ model: 'chat-fast', input: words, tools });
  const c2 = asked.output.find((o) => o.type === 'function_call') as { call_id: string; name: string; arguments: string };
  assert.equal(c2.name, 'get_weather');
  const done2 = await f.client.responses.create({ model: 'chat-fast', tools, input: [{ role: 'user', content: words }, ...asked.output as never[], { type: 'function_call_output', call_id: c2.call_id, output: '18°C' }] });
  assert.deepEqual(done2.output.map((o) => o.type), ['message']);
});

test('an earlier reply named by item_reference (the Vercel AI SDK\'s default) is sent as the assistant turn it was', async () => {
  const first = await f.client.responses.create({ model: 'chat-fast', input: 'hello' });
  const streamed = await f.client.responses.stream({ model: 'chat-fast', input: 'hello again' }).finalResponse();
  const r = await post(f.url, '/v1/responses', {
    model: 'chat-fast',
    input: [
      { role: 'user', content: 'hello' }, { type: 'item_reference', id: first.output[0]!.id },
      { role: 'user', content: 'hello again' }, { type: 'item_reference', id: streamed.output[0]!.id },
      { role: 'user', content: 'and more?' },
    ],
  }, auth);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(lastSent('armitage').messages.map((m: any) => [m.role, m.content]), [
    ['user', 'hello'], ['assistant', first.output_text], ['user', 'hello again'], ['assistant', streamed.output_text], ['user', 'and more?'],
  ]);
});

test('item_reference finds only the items given to the same key: a later key under the same name does not share them', async () => {
  const key = async (): Promise<{ id: string; auth: Record<string, string> }> => {
    const r = await post(f.url, '/admin/keys', { name: 'same-name' }, auth);
    assert.equal(r.status, 201, r.text);
    return { id: r.json.id as string, auth: { authorization: `Bearer ${r.json.key as string}` } };
  };
  const a = await key();
  const first = await post(f.url, '/v1/responses', { model: 'chat-fast', input: 'a secret of key A' }, a.auth);
  assert.equal(first.status, 200, first.text);
  const ref = { model: 'chat-fast', input: [{ type: 'item_reference', id: first.json.output[0].id }, { role: 'user', content: 'repeat it' }] };
  assert.equal((await post(f.url, '/v1/responses', ref, a.auth)).status, 200, 'its own key may name it');
  // The name passes to a new key once the first has another.
  const renamed = await fetch(`${f.url}/admin/keys/${a.id}`, { method: 'PATCH', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'same-name-old' }) });
  assert.equal(renamed.status, 200, await renamed.text());
  const b = await key();
  const other = await post(f.url, '/v1/responses', ref, b.auth);
  assert.equal(other.status, 400);
  assert.equal(other.json.error.param, 'input[0].id');
});

test('what needs OpenAI\'s stored state or built-in tools is refused with a 400 naming the field and what to send instead', async () => {
  const cases: [Record<string, unknown>, string, RegExp][] = [
    [{ previous_response_id: 'resp_1' }, 'previous_response_id', /whole conversation in `input`/],
    [{ tools: [{ type: 'web_search' }] }, 'tools[0].type', /only function tools/],
    [{ input: [{ type: 'item_reference', id: 'msg_1' }] }, 'input[0].id', /not one this gateway returned to this key in the last hour; send the item itself \(the Vercel AI SDK does with providerOptions: \{ openai: \{ store: false \} \}\)/],
    [{ messages: [{ role: 'user', content: 'x' }] }, 'messages', /chat completions field.*`input`/],
    [{ n: 3 }, 'n', /one answer/],
    [{ max_tokens: 5 }, 'max_tokens', /max_output_tokens/],
    [{ input: [{ role: 'user', content: [{ type: 'input_image', file_id: 'file_1' }] }] }, 'input[0].content[0].image_url', /image_url/],
    [{ input: [{ role: 'user', content: 'x', api_base: 'http://evil' }] }, 'input[0].api_base', /not accepted/],
    [{ input: [] }, 'input', /non-empty/],
    [{ text: { format: { type: 'xml' } } }, 'text.format.type', /json_schema/],
  ];
  for (const [extra, param, message] of cases) {
    const r = await post(f.url, '/v1/responses', { model: 'chat-fast', input: 'x', ...extra }, auth);
    assert.equal(r.status, 400, JSON.stringify(extra));
    assert.equal(r.json.error.param, param, JSON.stringify(extra));
    assert.match(r.json.error.message, message);
    assert.equal(r.json.error.type, 'invalid_request_error');
  }
  // A tool's parameters may well describe a base_url: that is data, not a request to the gateway.
  const ok = await post(f.url, '/v1/responses', {
    model: 'chat-fast', input: 'x', tools: [{ type: 'function', name: 'fetch', parameters: { type: 'object', properties: { base_url: { type: 'string' } } } }],
  }, auth);
  assert.equal(ok.status, 200);
  const from = f.logs.length;
  const unknown = await post(f.url, '/v1/responses', { model: 'no-such-role', input: 'x' }, auth);
  assert.equal(unknown.status, 404);
  const failed = await waitForLog(f, from, (r) => r.msg === 'request' && r.status === 404);
  assert.equal(failed.api, 'responses', 'a failed one is logged as a Responses request too');
  assert.equal(unknown.json.error.code, 'model_not_found');
  assert.equal((await post(f.url, '/v1/responses', { model: 'chat-fast', input: 'x' })).status, 401, 'the master key guards it as every /v1 route');
});

test('through an Ollama backend too (its NDJSON translated to chat chunks, then to Response events)', async () => {
  const r = await f.client.responses.create({ model: 'chat-ollama', input: 'hello ollama' });
  assert.equal(r.status, 'completed');
  assert.ok(r.output_text.length > 0);
  assert.equal(lastSent('ollama').options.num_ctx, 8192);
  const final = await f.client.responses.stream({ model: 'chat-ollama', input: 'hello ollama' }).finalResponse();
  assert.equal(final.output_text, r.output_text);
  assert.ok(final.usage!.output_tokens > 0);
});

test('a backend dying mid-stream ends the events with error and response.failed, never a silent cut', async () => {
  await f.fleet.get('flaky').setFault({ kind: 'drop', afterChunks: 3 });
  try {
    const res = await fetch(`${f.url}/v1/responses`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'chat-flaky', input: 'x', stream: true }) });
    assert.equal(res.status, 200);
    const types = [...(await res.text()).matchAll(/^event: (.+)$/gm)].map((m) => m[1]);
    assert.equal(types[0], 'response.created');
    assert.deepEqual(types.slice(-2), ['error', 'response.failed']);
    assert.ok(!types.includes('response.completed'));
  } finally {
    await f.fleet.get('flaky').setFault(null);
  }
  const from = f.logs.length;
  await f.client.responses.create({ model: 'chat-fast', input: 'logged' });
  const line = await waitForLog(f, from, (r) => r.msg === 'request' && r.model === 'chat-fast');
  assert.equal(line.api, 'responses');
  assert.equal(line.role, 'chat-fast');
  assert.ok(line.prompt_tokens > 0);
});
