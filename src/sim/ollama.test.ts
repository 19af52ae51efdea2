// Ollama's native API and its OpenAI-compatible layer.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startFleet } from './fleet.ts';
import type { SimFleet } from './fleet.ts';
import { replyTokens } from './generate.ts';
import { FAST, at, decodeBase64Floats, parseNdjson, parseSse, post, waitFor, withFleet } from './test-helpers.ts';

const CHAT = 'qwen2.5:7b';
const EMBED = 'nomic-embed-text';
const STATS = ['total_duration', 'load_duration', 'prompt_eval_count', 'prompt_eval_duration', 'eval_count', 'eval_duration'];

describe('ollama', () => {
  let fleet: SimFleet;
  let url: string;

  before(async () => {
    fleet = await startFleet([
      { name: 'o', protocol: 'ollama', model: CHAT, kind: 'chat', contextWindow: 50, dimensions: 8, timing: FAST, extraModels: [EMBED, 'llama3.2'] },
    ]);
    url = fleet.get('o').url;
  });
  after(() => fleet.close());

  test('banner, version, tags, ps and show', async () => {
    const root = await fetch(`${url}/`);
    assert.equal(await root.text(), 'Ollama is running');
    assert.match(root.headers.get('content-type') ?? '', /^text\/plain/);
    assert.match(String(at(await (await fetch(`${url}/api/version`)).json(), 'version')), /^\d+\.\d+\.\d+$/);
    const tags: unknown = await (await fetch(`${url}/api/tags`)).json();
    const models = at(tags, 'models') as Record<string, unknown>[];
    // Listed with their tags, `latest` too, as ListHandler names them.
    assert.deepEqual(models.map((m) => m.name), [CHAT, `${EMBED}:latest`, 'llama3.2:latest']);
    const first = models[0]!;
    assert.equal(first.model, CHAT);
    assert.match(String(first.digest), /^[0-9a-f]{64}$/);
    assert.equal(typeof first.size, 'number');
    assert.ok(!Number.isNaN(Date.parse(String(first.modified_at))));
    assert.equal(at(first, 'details', 'format'), 'gguf');
    assert.equal(at(first, 'details', 'parameter_size'), '7B');
    assert.equal(at(first, 'details', 'quantization_level'), 'Q4_K_M');
    const ps: unknown = await (await fetch(`${url}/api/ps`)).json();
    assert.equal(at(ps, 'models', 0, 'name'), CHAT);
    assert.equal(typeof at(ps, 'models', 0, 'expires_at'), 'string');
    const show: unknown = await (await post(`${url}/api/show`, { model: EMBED })).json();
    assert.deepEqual(at(show, 'capabilities'), ['embedding']);
    assert.deepEqual(at(await (await post(`${url}/api/show`, { model: CHAT })).json(), 'capabilities'), ['completion', 'tools'], 'its chat models answer tool calls');
  });

  test('/api/chat streams NDJSON by default, ending with done and the durations', async () => {
    const res = await post(`${url}/api/chat`, { model: CHAT, messages: [{ role: 'user', content: 'hey' }] });
    assert.equal(res.headers.get('content-type'), 'application/x-ndjson');
    const lines = parseNdjson(await res.text());
    const tokens = replyTokens('hey');
    assert.equal(lines.length, tokens.length + 1);
    assert.deepEqual(at(lines[0], 'message'), { role: 'assistant', content: tokens[0] });
    assert.equal(at(lines[0], 'done'), false);
    const last = lines.at(-1)!;
    assert.equal(last.done, true);
    assert.equal(last.done_reason, 'stop');
    assert.equal(at(last, 'message', 'content'), '');
    for (const k of STATS) assert.equal(typeof last[k], 'number', k);
    assert.equal(last.eval_count, tokens.length);
    assert.equal(last.prompt_eval_count, 8);
  });

  test('/api/chat with stream:false and options.num_predict', async () => {
    const res = await post(`${url}/api/chat`, { model: CHAT, messages: [{ role: 'user', content: 'hey' }], stream: false, options: { num_predict: 2 } });
    assert.equal(res.headers.get('content-type'), 'application/json; charset=utf-8');
    const json = (await res.json()) as Record<string, unknown>;
    assert.equal(at(json, 'message', 'content'), replyTokens('hey').slice(0, 2).join(''));
    assert.equal(json.done_reason, 'length');
    assert.equal(json.eval_count, 2);
    for (const k of STATS) assert.equal(typeof json[k], 'number', k);
  });

  test('/api/chat with options.stop: the reply ends before the first stop string, done_reason stop', async () => {
    const whole = replyTokens('hey').join('');
    const stop = whole.split(' ')[3]!;
    const json = (await (await post(`${url}/api/chat`, { model: CHAT, messages: [{ role: 'user', content: 'hey' }], stream: false, options: { stop: [stop] } })).json()) as Record<string, unknown>;
    assert.equal(at(json, 'message', 'content'), whole.slice(0, whole.indexOf(stop)));
    assert.equal(json.done_reason, 'stop');
  });

  test('/api/generate, streamed and not, with context ids', async () => {
    const lines = parseNdjson(await (await post(`${url}/api/generate`, { model: CHAT, prompt: 'why is the sky blue' })).text());
    assert.equal(lines.slice(0, -1).map((l) => l.response).join(''), replyTokens('why is the sky blue').join(''));
    const json = (await (await post(`${url}/api/generate`, { model: CHAT, prompt: 'why is the sky blue', stream: false })).json()) as Record<string, unknown>;
    assert.equal(json.response, replyTokens('why is the sky blue').join(''));
    assert.ok(Array.isArray(json.context));
    assert.equal(json.done, true);
  });

  test('logprobs (0.12.11+): a top-level list per line, each token with its bytes and, when asked, top_logprobs; 21 is refused', async () => {
    const ask = { model: CHAT, messages: [{ role: 'user', content: 'hey' }], logprobs: true, top_logprobs: 2 };
    const json = (await (await post(`${url}/api/chat`, { ...ask, stream: false })).json()) as Record<string, any>;
    const tokens = replyTokens('hey');
    assert.deepEqual(json.logprobs.map((e: any) => e.token), tokens);
    const e0 = json.logprobs[0];
    assert.deepEqual(e0.bytes, [...Buffer.from(tokens[0]!, 'utf8')]);
    assert.ok(e0.logprob <= 0);
    assert.equal(e0.top_logprobs.length, 2);
    assert.deepEqual(e0.top_logprobs[0], { token: e0.token, logprob: e0.logprob, bytes: e0.bytes }, 'the generated token ranks first');
    assert.ok(e0.top_logprobs[1].logprob < e0.logprob);
    const lines = parseNdjson(await (await post(`${url}/api/chat`, ask)).text());
    assert.deepEqual(lines.slice(0, -1).map((l: any) => l.logprobs), json.logprobs.map((e: any) => [e]), 'streamed: each line its own token\'s');
    assert.equal('logprobs' in lines.at(-1)!, false);
    const plain = (await (await post(`${url}/api/generate`, { model: CHAT, prompt: 'hey', stream: false })).json()) as Record<string, unknown>;
    assert.equal('logprobs' in plain, false, 'none unless asked');
    const gen = (await (await post(`${url}/api/generate`, { model: CHAT, prompt: 'hey', stream: false, logprobs: true })).json()) as Record<string, any>;
    assert.equal(gen.logprobs.length, replyTokens('hey').length);
    assert.equal('top_logprobs' in gen.logprobs[0], false, 'top_logprobs 0: the token alone');
    const bad = await post(`${url}/api/chat`, { ...ask, top_logprobs: 21 });
    assert.equal(bad.status, 400);
    assert.deepEqual(await bad.json(), { error: 'top_logprobs must be between 0 and 20' });
  });

  test('/api/embed and the legacy /api/embeddings', async () => {
    const one: unknown = await (await post(`${url}/api/embed`, { model: EMBED, input: 'sky' })).json();
    assert.equal((at(one, 'embeddings') as number[][]).length, 1);
    assert.equal((at(one, 'embeddings', 0) as number[]).length, 8);
    assert.equal(at(one, 'model'), EMBED);
    assert.equal(at(one, 'prompt_eval_count'), 1);
    const two: unknown = await (await post(`${url}/api/embed`, { model: EMBED, input: ['sky', 'sea'] })).json();
    assert.deepEqual(at(two, 'embeddings', 0), at(one, 'embeddings', 0));
    const legacy: unknown = await (await post(`${url}/api/embeddings`, { model: EMBED, prompt: 'sky' })).json();
    assert.deepEqual(at(legacy, 'embedding'), at(one, 'embeddings', 0));
    const long = await post(`${url}/api/embed`, { model: EMBED, input: 'w '.repeat(100), truncate: false });
    assert.equal(long.status, 400);
    assert.deepEqual(await long.json(), { error: 'input exceeds maximum context length' });
    // truncate defaults to true: the input is cut to the context.
    const cut: unknown = await (await post(`${url}/api/embed`, { model: EMBED, input: 'w '.repeat(100) })).json();
    assert.equal(at(cut, 'prompt_eval_count'), 50);
  });

  test('native errors: {"error": "…"} with Ollama statuses', async () => {
    const missing = await post(`${url}/api/chat`, { model: 'mistral', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(missing.status, 404);
    assert.deepEqual(await missing.json(), { error: 'model "mistral" not found, try pulling it first' });
    // no tag means :latest, which is not what was pulled
    assert.equal((await post(`${url}/api/chat`, { model: 'qwen2.5', messages: [], stream: false })).status, 404);
    const latest = await post(`${url}/api/chat`, { model: 'llama3.2:latest', messages: [{ role: 'user', content: 'x' }], stream: false });
    assert.equal(latest.status, 200);
    await latest.text();
    const chatOnEmbed = await post(`${url}/api/chat`, { model: EMBED, messages: [{ role: 'user', content: 'x' }] });
    assert.equal(chatOnEmbed.status, 400);
    assert.deepEqual(await chatOnEmbed.json(), { error: `"${EMBED}" does not support chat` });
    const noModel = await post(`${url}/api/chat`, { messages: [] });
    assert.deepEqual(await noModel.json(), { error: 'model is required' });
    const long = await post(`${url}/api/chat`, { model: CHAT, messages: [{ role: 'user', content: 'w '.repeat(100) }], truncate: false });
    assert.equal(long.status, 400);
    assert.deepEqual(await long.json(), { error: 'the input length exceeds the context length' });
    const load: unknown = await (await post(`${url}/api/chat`, { model: CHAT, messages: [] })).json();
    assert.equal(at(load, 'done_reason'), 'load');
    const route = await fetch(`${url}/api/nope`);
    assert.equal(route.status, 404);
    assert.equal(await route.text(), '404 page not found');
  });

  test('the context: num_ctx (up to the trained window), truncate (the oldest messages go, system stays), shift; keep_alive in /api/ps', async () => {
    const words = (n: number): string => 'w '.repeat(n);
    const chat = async (extra: Record<string, unknown>, messages: unknown[]): Promise<unknown> => {
      const res = await post(`${url}/api/chat`, { model: CHAT, stream: false, messages, ...extra });
      assert.equal(res.status, 200);
      return res.json();
    };
    // Under the trained window (50) every token is read: the words and the template's own.
    const overhead = (at(await chat({}, [{ role: 'user', content: words(1) }]), 'prompt_eval_count') as number) - 1;
    assert.equal(at(await chat({}, [{ role: 'user', content: words(30) }]), 'prompt_eval_count'), 30 + overhead);
    // Each message costs its words and a template share, the whole a share of its own.
    const perMessage = (at(await chat({}, [{ role: 'user', content: 'w' }, { role: 'user', content: 'w' }]), 'prompt_eval_count') as number) - overhead - 2;
    const base = overhead - perMessage;
    // A context just over the system message and the last one: the oldest messages go, the system one stays.
    const kept = base + (4 + perMessage) + (5 + perMessage);
    const system = { role: 'system', content: words(4) };
    const fitted = await chat({ options: { num_ctx: kept + 2 } }, [system, { role: 'user', content: words(10) }, { role: 'assistant', content: 'ok' }, { role: 'user', content: words(5) }]);
    assert.equal(at(fitted, 'prompt_eval_count'), kept);
    assert.equal(await (await fetch(`${url}/api/ps`)).json().then((j) => at(j, 'models', 0, 'context_length')), kept + 2);
    // Past the trained window num_ctx is the window.
    assert.equal(at(await chat({ options: { num_ctx: 1_000 } }, [{ role: 'user', content: words(100) }]), 'prompt_eval_count'), 50);
    // shift: false stops the reply where the context is full.
    const full = await chat({ options: { num_ctx: 40 }, shift: false }, [{ role: 'user', content: words(40 - overhead - 1) }]);
    assert.equal(at(full, 'done_reason'), 'length');
    assert.equal(at(full, 'eval_count'), 1);
    // keep_alive: -1 keeps it loaded for good (Go's far future), 0 unloads it, garbage is a 400.
    await chat({ keep_alive: -1 }, [{ role: 'user', content: 'x' }]);
    assert.ok(Date.parse(String(at(await (await fetch(`${url}/api/ps`)).json(), 'models', 0, 'expires_at'))) > Date.UTC(2300, 0));
    await chat({ keep_alive: '90s' }, [{ role: 'user', content: 'x' }]);
    const in90 = Date.parse(String(at(await (await fetch(`${url}/api/ps`)).json(), 'models', 0, 'expires_at'))) - Date.now();
    assert.ok(in90 > 80_000 && in90 <= 90_000, String(in90));
    // Each model its own: an embedding model unloaded does not unload the chat one.
    assert.equal((await post(`${url}/api/embed`, { model: EMBED, input: 'x', keep_alive: '1h30m' })).status, 200);
    const ps = async (): Promise<string[]> => (at(await (await fetch(`${url}/api/ps`)).json(), 'models') as { name: string }[]).map((m) => m.name);
    const EMBED_TAGGED = `${EMBED}:latest`;
    assert.deepEqual((await ps()).filter((n) => n === CHAT || n === EMBED_TAGGED), [CHAT, EMBED_TAGGED]);
    await post(`${url}/api/embed`, { model: EMBED, input: 'x', keep_alive: '-0s' });
    assert.deepEqual((await ps()).filter((n) => n === CHAT || n === EMBED_TAGGED), [CHAT], '-0s is zero: unloaded');
    await chat({ keep_alive: '0' }, [{ role: 'user', content: 'x' }]);
    assert.ok(!(await ps()).includes(CHAT));
    // Past Go's longest duration: held for good, and /api/ps still answers.
    await chat({ keep_alive: '9999999999h' }, [{ role: 'user', content: 'x' }]);
    assert.equal((await fetch(`${url}/api/ps`)).status, 200);
    const bad = await post(`${url}/api/chat`, { model: CHAT, stream: false, messages: [{ role: 'user', content: 'x' }], keep_alive: 'soon' });
    assert.equal(bad.status, 400);
    await chat({}, [{ role: 'user', content: 'x' }]);
  });

  test('/v1/chat/completions as Ollama implements it', async () => {
    const json: unknown = await (await post(`${url}/v1/chat/completions`, { model: CHAT, messages: [{ role: 'user', content: 'hey' }] })).json();
    assert.match(String(at(json, 'id')), /^chatcmpl-\d{1,3}$/);
    assert.equal(at(json, 'system_fingerprint'), 'fp_ollama');
    assert.deepEqual(at(json, 'choices', 0, 'message'), { role: 'assistant', content: replyTokens('hey').join('') });
    assert.deepEqual(Object.keys(at(json, 'usage') as object), ['prompt_tokens', 'completion_tokens', 'total_tokens']);
    const s = parseSse(await (await post(`${url}/v1/chat/completions`, {
      model: CHAT, messages: [{ role: 'user', content: 'hey' }], stream: true, stream_options: { include_usage: true },
    })).text());
    assert.equal(s.done, true);
    assert.deepEqual(at(s.events[0], 'choices', 0, 'delta'), { role: 'assistant', content: replyTokens('hey')[0] });
    assert.equal(at(s.events.at(-2), 'choices', 0, 'finish_reason'), 'stop');
    assert.deepEqual(at(s.events.at(-1), 'choices'), []);
    assert.equal(at(s.events.at(-1), 'usage', 'completion_tokens'), replyTokens('hey').length);
  });

  test('/v1 tools: the call /api/chat sends whole, as {id, index, type, function} with call_ ids and Go-marshalled arguments; content ""; finish_reason tool_calls', async () => {
    // Declared unit first: the arguments come back as a Go map marshals them, keys sorted; <, > and & escaped.
    const tool = {
      type: 'function',
      function: { name: 'get_weather', parameters: { type: 'object', properties: { unit: { type: 'string', default: '<c>&' }, city: { type: 'string' } }, required: ['unit', 'city'] } },
    };
    const ask = (extra: Record<string, unknown>, content = 'call get_weather for Lisbon'): Promise<Response> => post(`${url}/v1/chat/completions`, {
      model: CHAT, messages: [{ role: 'user', content }], tools: [tool], ...extra,
    });
    const json: unknown = await (await ask({})).json();
    assert.equal(at(json, 'choices', 0, 'finish_reason'), 'tool_calls');
    const message = at(json, 'choices', 0, 'message') as Record<string, unknown>;
    assert.deepEqual(Object.keys(message), ['role', 'content', 'tool_calls']);
    assert.equal(message.content, '');
    const call = at(message, 'tool_calls', 0) as Record<string, unknown>;
    assert.deepEqual(Object.keys(call), ['id', 'index', 'type', 'function']);
    assert.match(String(call.id), /^call_[a-z0-9]{8}$/);
    assert.deepEqual([call.index, call.type, call.function], [0, 'function', { name: 'get_weather', arguments: '{"city":"Lisbon","unit":"\\u003cc\\u003e\\u0026"}' }]);

    // Streamed: nothing while the model writes the call, then the whole call in one chunk, then the finish.
    const s = parseSse(await (await ask({ stream: true, stream_options: { include_usage: true } })).text());
    assert.equal(s.done, true);
    assert.equal(s.events.length, 3);
    const delta = at(s.events[0], 'choices', 0, 'delta') as Record<string, unknown>;
    assert.deepEqual(Object.keys(delta), ['role', 'content', 'tool_calls']);
    assert.equal(delta.content, '');
    assert.equal(at(delta, 'tool_calls', 0, 'function', 'arguments'), '{"city":"Lisbon","unit":"\\u003cc\\u003e\\u0026"}');
    assert.equal(at(s.events[0], 'choices', 0, 'finish_reason'), null);
    assert.deepEqual(at(s.events[1], 'choices', 0), { index: 0, delta: { role: 'assistant', content: '' }, finish_reason: 'tool_calls' });
    assert.equal(at(s.events[2], 'usage', 'completion_tokens'), 9);

    // Ollama has no tool_choice: the model calls what the user asks for, whatever it says.
    assert.equal(at(await (await ask({ tool_choice: 'none' })).json(), 'choices', 0, 'finish_reason'), 'tool_calls');
    const required: unknown = await (await ask({ tool_choice: 'required' }, 'hey')).json();
    assert.deepEqual(at(required, 'choices', 0, 'message'), { role: 'assistant', content: replyTokens('hey').join('') });
    // Cut short while writing the call: its text, as content, and finish_reason length.
    const cut: unknown = await (await ask({ max_tokens: 3 })).json();
    assert.deepEqual([at(cut, 'choices', 0, 'message'), at(cut, 'choices', 0, 'finish_reason')], [{ role: 'assistant', content: '{"unit":' }, 'length']);
  });

  test('/api/chat tool calls carry server/routes.go\'s call_ ids', async () => {
    const json: unknown = await (await post(`${url}/api/chat`, {
      model: CHAT, stream: false, messages: [{ role: 'user', content: 'call get_time' }], tools: [{ type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: {} } } }],
    })).json();
    assert.match(String(at(json, 'message', 'tool_calls', 0, 'id')), /^call_[a-z0-9]{8}$/);
  });

  test('/v1 response_format becomes /api/chat\'s format: json_object "json", json_schema its schema; other types none', async () => {
    const schema = { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' } }, required: ['name', 'age'] };
    const reply = async (rf: unknown, stream = false): Promise<string> => {
      const r = await post(`${url}/v1/chat/completions`, { model: CHAT, messages: [{ role: 'user', content: 'who?' }], response_format: rf, stream });
      if (!stream) return String(at(await r.json(), 'choices', 0, 'message', 'content'));
      return parseSse(await r.text()).events.map((e) => at(e, 'choices', 0, 'delta', 'content') ?? '').join('');
    };
    assert.deepEqual(JSON.parse(await reply({ type: 'json_schema', json_schema: { name: 'p', schema } })), { name: 'Alice', age: 30 });
    assert.equal(await reply({ type: ' JSON_SCHEMA ', json_schema: { name: 'p', schema } }, true), '{"name":"Alice","age":30}', 'the type is trimmed and lowercased');
    assert.equal(await reply({ type: 'json_object' }), '{}');
    assert.equal(await reply({ type: 'text' }), replyTokens('who?').join(''));
    assert.equal(await reply({ type: 'xml' }), replyTokens('who?').join(''), 'no error: an unknown type is no format');
  });

  test('/v1 errors are OpenAI-shaped with type from the status and null code', async () => {
    const missing = await post(`${url}/v1/chat/completions`, { model: 'mistral', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(missing.status, 404);
    assert.deepEqual(await missing.json(), {
      error: { message: 'model "mistral" not found, try pulling it first', type: 'not_found_error', param: null, code: null },
    });
    const empty = await post(`${url}/v1/chat/completions`, { model: CHAT, messages: [] });
    assert.equal(empty.status, 400);
    assert.equal(at(await empty.json(), 'error', 'type'), 'invalid_request_error');
    const arrayPrompt = await post(`${url}/v1/completions`, { model: CHAT, prompt: ['a', 'b'] });
    assert.equal(arrayPrompt.status, 400);
    await arrayPrompt.text();
  });

  test('/v1/completions, /v1/embeddings and /v1/models', async () => {
    const c: unknown = await (await post(`${url}/v1/completions`, { model: CHAT, prompt: 'sky', max_tokens: 3 })).json();
    assert.match(String(at(c, 'id')), /^cmpl-\d{1,3}$/);
    assert.equal(at(c, 'choices', 0, 'finish_reason'), 'length');
    const f: unknown = await (await post(`${url}/v1/embeddings`, { model: EMBED, input: ['a', 'b'] })).json();
    const b: unknown = await (await post(`${url}/v1/embeddings`, { model: EMBED, input: ['a', 'b'], encoding_format: 'base64' })).json();
    assert.deepEqual(decodeBase64Floats(String(at(b, 'data', 1, 'embedding'))), at(f, 'data', 1, 'embedding'));
    assert.deepEqual(at(f, 'usage'), { prompt_tokens: 2, total_tokens: 2 });
    const models: unknown = await (await fetch(`${url}/v1/models`)).json();
    assert.deepEqual((at(models, 'data') as { id: string }[]).map((m) => m.id), [CHAT, `${EMBED}:latest`, 'llama3.2:latest']);
    assert.equal(at(models, 'data', 0, 'owned_by'), 'library');
    assert.equal(at(await (await fetch(`${url}/v1/models/${EMBED}`)).json(), 'id'), EMBED);
  });
});

test('ollama past its queue answers 503 "server busy"', async () => {
  await withFleet([{ name: 'o', protocol: 'ollama', model: CHAT, kind: 'chat', timing: { ttftMs: 100, maxConcurrency: 1, maxQueue: 0 } }], async (fleet) => {
    const o = fleet.get('o');
    const first = post(`${o.url}/api/chat`, { model: CHAT, messages: [{ role: 'user', content: 'x' }], options: { num_predict: 1 } });
    await waitFor(() => o.stats().active === 1);
    const busy = await post(`${o.url}/api/chat`, { model: CHAT, messages: [{ role: 'user', content: 'x' }] });
    assert.equal(busy.status, 503);
    assert.deepEqual(await busy.json(), { error: 'server busy, please try again.  maximum pending requests exceeded' });
    await (await first).text();
  });
});
