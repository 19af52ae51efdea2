// A forced tool call (tool_choice naming a function, or "required") on engines that cannot be told
// so as OpenAI's API says it, over real loopback HTTP against the simulated fleet. Ollama has no
// tool_choice, so the gateway asks for the call as JSON output held to its schema (`format`) and
// turns the JSON back into the call; llama-server reads a named function as "auto", so it is
// sent "required" of that tool alone. Either way the client gets the call it forced, whether or
// not its words named the tool, streamed or not, as from vLLM.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startFabric, lastBody, openaiSchemaValidator, post, type Fabric } from './helpers.ts';

const FAST = { ttftMs: 2, tokensPerSecond: 5000 };
const validate = openaiSchemaValidator();

let f: Fabric;

before(async () => {
  f = await startFabric({
    engines: [
      { name: 'ollama', protocol: 'ollama', model: 'qwen2.5:7b', kind: 'chat', timing: FAST },
      { name: 'cpp', protocol: 'llamacpp', model: 'qwen2.5-7b', kind: 'chat', timing: FAST },
    ],
    yaml: (url) => `
backends:
  ollama-qwen: { engine: ollama, url: ${url('ollama')}, model: "qwen2.5:7b", max_retries: 0 }
  cpp-qwen: { engine: llamacpp, url: ${url('cpp')}/v1, model: qwen2.5-7b, max_retries: 0 }
roles:
  chat-deep: { kind: chat, backends: [ollama-qwen] }
  chat-cpp: { kind: chat, backends: [cpp-qwen] }
`,
  });
});

after(() => f.close());

const WEATHER = {
  type: 'function',
  function: {
    name: 'get_weather', description: 'The weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } }, required: ['city', 'unit'] },
  },
};
const BOOK = {
  type: 'function',
  function: {
    name: 'book_trip', description: 'Book a trip',
    parameters: { type: 'object', $defs: { place: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } }, properties: { to: { $ref: '#/$defs/place' }, nights: { type: 'integer', minimum: 1 } }, required: ['to', 'nights'] },
  },
};
// Words that name no tool: left to itself, the model would answer in prose.
const ask = (extra: Record<string, unknown>) => ({ model: 'chat-deep', messages: [{ role: 'user', content: 'I am off to Lisbon next week.' }], max_tokens: 60, ...extra });

/** The whole answer of a stream: its text, its calls' names and joined arguments, its finish reason. */
async function streamed(body: Record<string, unknown>): Promise<{ content: string; calls: { id?: string; name?: string; arguments: string }[]; finish: unknown; chunks: any[] }> {
  const r = await fetch(`${f.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...body, stream: true }) });
  assert.equal(r.status, 200);
  const chunks = (await r.text()).split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)));
  let content = '';
  const calls: { id?: string; name?: string; arguments: string }[] = [];
  let finish: unknown;
  for (const c of chunks) {
    const d = c.choices[0]?.delta ?? {};
    content += d.content ?? '';
    for (const t of d.tool_calls ?? []) {
      const at = (calls[t.index] ??= { arguments: '' });
      if (t.id !== undefined) at.id = t.id;
      if (t.function?.name !== undefined) at.name = t.function.name;
      at.arguments += t.function?.arguments ?? '';
    }
    finish = c.choices[0]?.finish_reason ?? finish;
  }
  return { content, calls, finish, chunks };
}

test('a function named in tool_choice: Ollama is held to its parameters (format) and the answer comes back as the call, whole and streamed', async () => {
  const body = ask({ tools: [WEATHER, BOOK], tool_choice: { type: 'function', function: { name: 'get_weather' } } });
  const r = await post(f.url, '/v1/chat/completions', body);
  assert.equal(r.status, 200, r.text);
  const sent = lastBody(f, 'ollama');
  assert.deepEqual(sent.format, WEATHER.function.parameters, 'the call\'s schema, as Ollama\'s format');
  assert.deepEqual(sent.tools.map((t: any) => t.function.name), ['get_weather'], 'the tool itself is sent, so the model reads what it is for');
  assert.deepEqual(validate('CreateChatCompletionResponse', r.json), []);
  const choice = r.json.choices[0];
  assert.equal(choice.finish_reason, 'tool_calls');
  assert.equal(choice.message.content, null);
  assert.equal(choice.message.tool_calls.length, 1);
  const call = choice.message.tool_calls[0];
  assert.equal(call.type, 'function');
  assert.equal(call.function.name, 'get_weather');
  const args = JSON.parse(call.function.arguments);
  assert.equal(args.city, 'Lisbon');
  assert.ok(['celsius', 'fahrenheit'].includes(args.unit));

  const s = await streamed(body);
  assert.equal(s.content, '', 'no prose: the JSON is the call');
  assert.equal(s.calls.length, 1);
  assert.equal(s.calls[0]!.name, 'get_weather');
  assert.match(s.calls[0]!.id ?? '', /^call_/);
  assert.deepEqual(JSON.parse(s.calls[0]!.arguments), args);
  assert.ok(s.chunks.filter((c) => c.choices[0]?.delta?.tool_calls).length > 1, 'the arguments stream in pieces as the engine makes them');
  assert.equal(s.finish, 'tool_calls');
});

test('"required" of several tools: one branch per tool (local $refs re-rooted), the call read whole and sent as one delta', async () => {
  const body = ask({ tools: [BOOK, WEATHER], tool_choice: 'required' });
  const r = await post(f.url, '/v1/chat/completions', body);
  assert.equal(r.status, 200, r.text);
  const format = lastBody(f, 'ollama').format;
  assert.deepEqual(format.anyOf.map((b: any) => b.properties.name.enum), [['book_trip'], ['get_weather']]);
  const ref: string = format.anyOf[0].properties.arguments.properties.to.$ref;
  const target = ref.slice(2).split('/').reduce((o: any, k) => o?.[k], format);
  assert.deepEqual(target, BOOK.function.parameters.$defs.place, `${ref} still points at the definition`);

  const call = r.json.choices[0].message.tool_calls[0];
  assert.equal(r.json.choices[0].finish_reason, 'tool_calls');
  assert.equal(r.json.choices[0].message.content, null);
  assert.ok(['book_trip', 'get_weather'].includes(call.function.name));
  const args = JSON.parse(call.function.arguments);
  assert.equal(typeof args, 'object');
  assert.equal('name' in args, false, 'the arguments, not the {name, arguments} wrapper');
  // The simulated model takes the first branch, and follows its re-rooted $ref as an engine does.
  assert.equal(call.function.name, 'book_trip');
  assert.equal(typeof args.to?.city, 'string', JSON.stringify(args));
  assert.ok(Number.isInteger(args.nights) && args.nights >= 1);

  const s = await streamed(body);
  assert.equal(s.content, '');
  assert.equal(s.calls.length, 1);
  assert.equal(s.calls[0]!.name, call.function.name);
  assert.deepEqual(JSON.parse(s.calls[0]!.arguments), args);
  assert.equal(s.chunks.filter((c) => c.choices[0]?.delta?.tool_calls).length, 1);
  assert.equal(s.finish, 'tool_calls');
});

test('"required" of one tool is that tool; "auto" and no tool_choice leave the model free (no format), and response_format still applies then', async () => {
  const one = await post(f.url, '/v1/chat/completions', ask({ tools: [WEATHER], tool_choice: 'required' }));
  assert.equal(one.json.choices[0].message.tool_calls[0].function.name, 'get_weather');
  assert.deepEqual(lastBody(f, 'ollama').format, WEATHER.function.parameters);

  for (const tool_choice of ['auto', undefined]) {
    const r = await post(f.url, '/v1/chat/completions', ask({ tools: [WEATHER], tool_choice }));
    assert.equal(r.status, 200);
    assert.equal(lastBody(f, 'ollama').format, undefined);
    assert.equal(r.json.choices[0].message.tool_calls, undefined, 'the words name no tool: prose');
    assert.equal(r.json.choices[0].finish_reason, 'stop');
  }
  const schema = { type: 'object', properties: { answer: { type: 'string' } }, required: ['answer'] };
  const json = await post(f.url, '/v1/chat/completions', ask({ tools: [WEATHER], tool_choice: 'auto', response_format: { type: 'json_schema', json_schema: { name: 'a', schema } } }));
  assert.deepEqual(lastBody(f, 'ollama').format, schema);
  assert.deepEqual(Object.keys(JSON.parse(json.json.choices[0].message.content)), ['answer']);
});

test('a forced call the model makes natively (the words name the tool) comes back once, as Ollama gave it', async () => {
  const r = await post(f.url, '/v1/chat/completions', { ...ask({ tools: [WEATHER], tool_choice: { type: 'function', function: { name: 'get_weather' } } }), messages: [{ role: 'user', content: 'Call get_weather for Lisbon.' }] });
  assert.equal(r.status, 200);
  const calls = r.json.choices[0].message.tool_calls;
  assert.equal(calls.length, 1);
  assert.equal(calls[0].function.name, 'get_weather');
  assert.equal(JSON.parse(calls[0].function.arguments).city, 'Lisbon');
});

test('llama.cpp: a function named in tool_choice is sent as "required" of that tool alone (llama-server would read the object as "auto"), streamed and not', async () => {
  const body = { ...ask({ tools: [BOOK, WEATHER], tool_choice: { type: 'function', function: { name: 'get_weather' } } }), model: 'chat-cpp' };
  const r = await post(f.url, '/v1/chat/completions', body);
  assert.equal(r.status, 200, r.text);
  const sent = lastBody(f, 'cpp');
  assert.equal(sent.tool_choice, 'required');
  assert.deepEqual(sent.tools.map((t: any) => t.function.name), ['get_weather']);
  const calls = r.json.choices[0].message.tool_calls;
  assert.deepEqual(calls.map((c: any) => c.function.name), ['get_weather']);
  assert.equal(JSON.parse(calls[0].function.arguments).city, 'Lisbon');
  assert.equal(r.json.choices[0].finish_reason, 'tool_calls');

  const s = await streamed(body);
  assert.deepEqual(s.calls.map((c) => c.name), ['get_weather']);
  assert.deepEqual(JSON.parse(s.calls[0]!.arguments), JSON.parse(calls[0].function.arguments));

  // "required" and "auto" go as they came: llama-server reads them.
  await post(f.url, '/v1/chat/completions', { ...body, tool_choice: 'auto' });
  assert.equal(lastBody(f, 'cpp').tool_choice, 'auto');
  assert.equal(lastBody(f, 'cpp').tools.length, 2);
});

test('a tool_choice that forces a call it cannot make is a 400 naming tool_choice (never prose as if called), on chat and on the Responses API', async () => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ tools: [WEATHER], tool_choice: { type: 'function', function: { name: 'nope' } } }, /names the function "nope", which is not among `tools`/],
    [{ tool_choice: 'required' }, /"required" needs `tools`/],
    [{ tools: [], tool_choice: 'required' }, /"required" needs `tools`/],
    [{ tool_choice: { type: 'function', function: { name: 'get_weather' } } }, /not among `tools`/],
    [{ tools: [WEATHER], tool_choice: 'sometimes' }, /must be "none", "auto", "required"/],
    [{ tools: [WEATHER], tool_choice: { function: { name: 'get_weather' } } }, /must be "none", "auto", "required"/],
    [{ tools: [WEATHER], tool_choice: { type: 'function', name: 'get_weather' } }, /must be "none", "auto", "required"/],
    [{ tools: [WEATHER], tool_choice: { type: 'allowed_tools', allowed_tools: { mode: 'sometimes', tools: [] } } }, /needs `mode`/],
    // Well-formed, but these engines read only a function's name: refused rather than taken as "auto".
    [{ tools: [WEATHER], tool_choice: { type: 'allowed_tools', allowed_tools: { mode: 'required', tools: [{ type: 'function', function: { name: 'get_weather' } }] } } }, /cannot take a `tool_choice` of type allowed_tools/],
    [{ tools: [WEATHER], tool_choice: { type: 'custom', custom: { name: 'grep' } } }, /cannot take a `tool_choice` of type custom/],
  ];
  for (const model of ['chat-deep', 'chat-cpp']) {
    for (const [extra, message] of cases) {
      const r = await post(f.url, '/v1/chat/completions', { ...ask(extra), model });
      assert.equal(r.status, 400, `${model} ${JSON.stringify(extra)}: ${r.text}`);
      assert.equal(r.json.error.param, 'tool_choice');
      assert.match(r.json.error.message, message);
    }
  }
  const responses = await post(f.url, '/v1/responses', { model: 'chat-deep', input: 'hi', tools: [{ type: 'function', name: 'ping', parameters: { type: 'object', properties: {} } }], tool_choice: { type: 'function', name: 'pong' } });
  assert.equal(responses.status, 400);
  assert.equal(responses.json.error.param, 'tool_choice');
  // "auto" and "none" without tools ask for nothing.
  for (const tool_choice of ['auto', 'none']) assert.equal((await post(f.url, '/v1/chat/completions', ask({ tool_choice }))).status, 200);
});
