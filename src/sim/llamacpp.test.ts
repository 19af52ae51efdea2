// llama.cpp's llama-server shapes, native endpoints and errors.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startFleet } from './fleet.ts';
import type { SimFleet } from './fleet.ts';
import { relevance, replyTokens } from './generate.ts';
import { FAST, at, decodeBase64Floats, parseSse, post, withFleet } from './test-helpers.ts';

const MODEL = 'qwen2.5-7b-instruct-q4_k_m';
const RERANKER = 'bge-reranker-v2-m3-q8_0';
const WEATHER = {
  type: 'function',
  function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } }, required: ['city', 'unit'] } },
};
const TIME = { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: {} } } };
const TIMING_KEYS = ['cache_n', 'prompt_n', 'prompt_ms', 'prompt_per_token_ms', 'prompt_per_second', 'predicted_n', 'predicted_ms', 'predicted_per_token_ms', 'predicted_per_second'];

describe('llamacpp', () => {
  let fleet: SimFleet;
  let url: string;
  let embedUrl: string;
  let rerankUrl: string;
  const auth = { authorization: 'Bearer secret' };

  before(async () => {
    fleet = await startFleet([
      { name: 'l', protocol: 'llamacpp', model: MODEL, kind: 'chat', contextWindow: 40, apiKey: 'secret', timing: { ...FAST, maxConcurrency: 3 } },
      { name: 'emb', protocol: 'llamacpp', model: 'bge-m3', kind: 'embeddings', dimensions: 12, timing: FAST },
      { name: 'rr', protocol: 'llamacpp', model: RERANKER, kind: 'rerank', dimensions: 4, contextWindow: 30, apiKey: 'secret', timing: FAST },
    ]);
    url = fleet.get('l').url;
    embedUrl = fleet.get('emb').url;
    rerankUrl = fleet.get('rr').url;
  });
  after(() => fleet.close());

  test('health is public and reports loading as 503 unavailable_error', async () => {
    assert.deepEqual(await (await fetch(`${url}/health`)).json(), { status: 'ok' });
    await fleet.get('l').setFault({ kind: 'error', status: 503 });
    const loading = await fetch(`${url}/health`);
    assert.equal(loading.status, 503);
    assert.deepEqual(await loading.json(), { error: { code: 503, message: 'Loading model', type: 'unavailable_error' } });
    await fleet.get('l').setFault(null);
  });

  test('models, props, slots and metrics', async () => {
    const models: unknown = await (await fetch(`${url}/v1/models`)).json();
    assert.equal(at(models, 'data', 0, 'id'), MODEL);
    assert.equal(at(models, 'data', 0, 'owned_by'), 'llamacpp');
    assert.equal(at(models, 'data', 0, 'meta', 'n_ctx_train'), 40);
    assert.equal(at(models, 'models', 0, 'name'), MODEL);
    const props: unknown = await (await fetch(`${url}/props`, { headers: auth })).json();
    assert.equal(at(props, 'total_slots'), 3);
    assert.equal(at(props, 'default_generation_settings', 'n_ctx'), 40);
    const slots = (await (await fetch(`${url}/slots`, { headers: auth })).json()) as unknown[];
    assert.equal(slots.length, 3);
    assert.equal(at(slots[0], 'is_processing'), false);
    const metrics = await (await fetch(`${url}/metrics`, { headers: auth })).text();
    for (const m of ['llamacpp:requests_processing', 'llamacpp:requests_deferred', 'llamacpp:prompt_tokens_total', 'llamacpp:tokens_predicted_total']) {
      assert.match(metrics, new RegExp(`^${m} \\d`, 'm'));
    }
  });

  test('the key guards everything but the public endpoints', async () => {
    const res = await fetch(`${url}/slots`);
    assert.equal(res.status, 401);
    assert.deepEqual(await res.json(), { error: { code: 401, message: 'Invalid API Key', type: 'authentication_error' } });
  });

  test('chat: any model name is served and echoed, with timings', async () => {
    const json: unknown = await (await post(`${url}/v1/chat/completions`, { model: 'gpt-3.5-turbo', messages: [{ role: 'user', content: 'hey' }] }, auth)).json();
    assert.equal(at(json, 'model'), 'gpt-3.5-turbo');
    assert.equal(at(json, 'object'), 'chat.completion');
    assert.deepEqual(at(json, 'choices', 0, 'message'), { role: 'assistant', content: replyTokens('hey').join('') });
    assert.deepEqual(Object.keys(at(json, 'timings') as object), TIMING_KEYS);
    assert.deepEqual(Object.keys(json as object), ['choices', 'created', 'model', 'system_fingerprint', 'object', 'usage', 'id', 'timings']);
  });

  test('chat stream: role chunk, empty delta with finish_reason, timings at the end', async () => {
    const { events, done } = parseSse(await (await post(`${url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'hey' }], stream: true }, auth)).text());
    assert.equal(done, true);
    assert.deepEqual(at(events[0], 'choices', 0, 'delta'), { role: 'assistant', content: null });
    const last = events.at(-1);
    assert.deepEqual(at(last, 'choices', 0, 'delta'), {});
    assert.equal(at(last, 'choices', 0, 'finish_reason'), 'stop');
    assert.equal(typeof at(last, 'timings', 'predicted_n'), 'number');
  });

  test('logprobs: n_probs from top_logprobs (20 when not given), each token {id, token, bytes, logprob, top_logprobs} whole and on its stream chunk; top_logprobs alone is refused', async () => {
    const ask = (extra: Record<string, unknown>) => post(`${url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'hey' }], max_tokens: 4, ...extra }, auth);
    const whole: any = await (await ask({ logprobs: true, top_logprobs: 2 })).json();
    const content = whole.choices[0].logprobs.content;
    assert.equal(content.map((e: any) => e.token).join(''), whole.choices[0].message.content);
    assert.deepEqual(Object.keys(content[0]), ['id', 'token', 'bytes', 'logprob', 'top_logprobs']);
    assert.equal(typeof content[0].id, 'number');
    assert.deepEqual(content[0].top_logprobs.map((t: any) => Object.keys(t)), [['id', 'token', 'bytes', 'logprob'], ['id', 'token', 'bytes', 'logprob']]);
    const dflt: any = await (await ask({ logprobs: true })).json();
    assert.equal(dflt.choices[0].logprobs.content[0].top_logprobs.length, 20);
    const plain: any = await (await ask({})).json();
    assert.equal('logprobs' in plain.choices[0], false);

    const { events } = parseSse(await (await ask({ logprobs: true, top_logprobs: 2, stream: true })).text());
    const streamed = events.flatMap((e: any) => e.choices?.[0]?.logprobs?.content ?? []);
    assert.deepEqual(streamed, content, 'each token\'s entry on its own chunk');

    const refused = await ask({ top_logprobs: 2 });
    assert.equal(refused.status, 400);
    assert.match(JSON.stringify(await refused.json()), /top_logprobs requires logprobs to be set to true/);
  });

  test('context overflow: exceed_context_size_error with n_prompt_tokens and n_ctx', async () => {
    const res = await post(`${url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'w '.repeat(50) }] }, auth);
    assert.equal(res.status, 400);
    assert.deepEqual(await res.json(), {
      error: {
        code: 400,
        message: 'request (57 tokens) exceeds the available context size (40 tokens), try increasing it',
        type: 'exceed_context_size_error',
        n_prompt_tokens: 57,
        n_ctx: 40,
      },
    });
  });

  test('generation stops when the context is full', async () => {
    const json: unknown = await (await post(`${url}/v1/completions`, { prompt: 'w '.repeat(38) }, auth)).json();
    assert.equal(at(json, 'usage', 'completion_tokens'), 2);
    assert.equal(at(json, 'choices', 0, 'finish_reason'), 'length');
  });

  test('native /completion: content, stop flags, no [DONE]', async () => {
    const json: unknown = await (await post(`${url}/completion`, { prompt: 'tell me', n_predict: 3 }, auth)).json();
    assert.equal(at(json, 'content'), replyTokens('tell me').slice(0, 3).join(''));
    assert.equal(at(json, 'stop'), true);
    assert.equal(at(json, 'stop_type'), 'limit');
    assert.equal(at(json, 'tokens_predicted'), 3);
    assert.equal(at(json, 'tokens_evaluated'), 2);
    const { events, done } = parseSse(await (await post(`${url}/completion`, { prompt: 'tell me', stream: true }, auth)).text());
    assert.equal(done, false);
    assert.equal(events.slice(0, -1).map((e) => e.content).join(''), replyTokens('tell me').join(''));
    assert.equal(events.at(-2)?.stop, false);
    assert.equal(events.at(-1)?.stop, true);
    assert.equal(events.at(-1)?.stop_type, 'eos');
  });

  test('embeddings: only on an embedding server; base64 matches floats', async () => {
    const onChat = await post(`${url}/v1/embeddings`, { input: 'x' }, auth);
    assert.equal(onChat.status, 501);
    assert.equal(at(await onChat.json(), 'error', 'type'), 'not_supported_error');
    const chatOnEmbed = await post(`${embedUrl}/v1/chat/completions`, { messages: [{ role: 'user', content: 'x' }] });
    assert.equal(chatOnEmbed.status, 501);
    assert.match(String(at(await chatOnEmbed.json(), 'error', 'message')), /does not support completions/);
    const f: unknown = await (await post(`${embedUrl}/v1/embeddings`, { input: ['a b', 'c'] })).json();
    const b: unknown = await (await post(`${embedUrl}/v1/embeddings`, { input: ['a b', 'c'], encoding_format: 'base64' })).json();
    assert.equal((at(f, 'data', 0, 'embedding') as number[]).length, 12);
    assert.deepEqual(decodeBase64Floats(String(at(b, 'data', 0, 'embedding'))), at(f, 'data', 0, 'embedding'));
    assert.deepEqual(at(f, 'usage'), { prompt_tokens: 3, total_tokens: 3 });
    const native: unknown = await (await post(`${embedUrl}/embedding`, { content: 'a b' })).json();
    assert.deepEqual(at(native, 0, 'embedding', 0), at(f, 'data', 0, 'embedding'));
  });

  test('rerank: Jina\'s shape in the server\'s key order, no id and no document; the model as asked, else its own', async () => {
    const docs = ['a city', 'the capital city'];
    assert.equal((await post(`${rerankUrl}/v1/rerank`, { query: 'capital city', documents: docs })).status, 401, 'not a public endpoint');
    const res = await post(`${rerankUrl}/v1/rerank`, { query: 'capital city', documents: docs }, auth);
    assert.equal(res.headers.get('content-type'), 'application/json; charset=utf-8');
    const json: unknown = await res.json();
    // server-common.cpp format_response_rerank, Jina's format.
    assert.deepEqual(json, {
      model: RERANKER,
      object: 'list',
      usage: { prompt_tokens: (2 + 2 + 4) + (2 + 3 + 4), total_tokens: 17 },
      results: [{ index: 1, relevance_score: relevance('capital city', docs[1]!) }, { index: 0, relevance_score: relevance('capital city', docs[0]!) }],
    });
    assert.deepEqual(Object.keys(json as object), ['model', 'object', 'usage', 'results']);
    assert.deepEqual(Object.keys(at(json, 'results', 0) as object), ['index', 'relevance_score']);
    const named: unknown = await (await post(`${rerankUrl}/rerank`, { model: 'rerank-english-v3.0', query: 'q', documents: ['q'] }, auth)).json();
    assert.equal(at(named, 'model'), 'rerank-english-v3.0', 'any name is served and echoed');
  });

  test('rerank: top_n as json_value reads it: a number (a float cut, a bool as 0 or 1), else every document; 0 answers none, less throws', async () => {
    const indexes = async (top_n: unknown): Promise<number[]> => {
      const j: unknown = await (await post(`${rerankUrl}/rerank`, { query: 'b', documents: ['a', 'b', 'c'], top_n }, auth)).json();
      return (at(j, 'results') as { index: number }[]).map((r) => r.index);
    };
    assert.deepEqual(await indexes(2), [1, 0]);
    assert.deepEqual(await indexes(1.9), [1]);
    assert.deepEqual(await indexes(true), [1]);
    assert.deepEqual(await indexes(0), []);
    assert.deepEqual(await indexes('2'), [1, 0, 2], 'a string is the wrong type: the default, all of them');
    assert.deepEqual(await indexes(null), [1, 0, 2]);
    const negative = await post(`${rerankUrl}/rerank`, { query: 'b', documents: ['a', 'b'], top_n: -1 }, auth);
    assert.equal(negative.status, 500, 'elements.resize(-1): the vector throws, ex_wrapper answers 500');
    assert.deepEqual(await negative.json(), { error: { code: 500, message: 'vector::_M_default_append', type: 'server_error' } });
  });

  test('rerank: TEI\'s format when the body has texts: a bare array of {index, score}, each text with return_text', async () => {
    const tei: unknown = await (await post(`${rerankUrl}/reranking`, { query: 'b', texts: ['a', 'b'] }, auth)).json();
    assert.deepEqual(tei, [{ index: 1, score: relevance('b', 'b') }, { index: 0, score: relevance('b', 'a') }]);
    const withText: unknown = await (await post(`${rerankUrl}/reranking`, { query: 'b', texts: ['a', 'b'], return_text: true, top_n: 1 }, auth)).json();
    assert.deepEqual(withText, [{ index: 1, score: relevance('b', 'b'), text: 'b' }]);
    const jina: unknown = await (await post(`${rerankUrl}/reranking`, { query: 'b', documents: ['a', 'b'], return_text: true }, auth)).json();
    assert.deepEqual(at(jina, 'results', 0), { index: 1, relevance_score: relevance('b', 'b') }, 'return_text is TEI\'s only');
  });

  test('rerank errors: a server not started with --reranking, the query, the documents, the context', async () => {
    const ask = async (body: unknown, base = rerankUrl): Promise<[number, unknown]> => {
      const r = await post(`${base}/v1/rerank`, body, auth);
      return [r.status, await r.json()];
    };
    const invalid = (message: string): unknown => ({ error: { code: 400, message, type: 'invalid_request_error' } });
    for (const base of [url, embedUrl]) {
      assert.deepEqual(await ask({ query: 'q', documents: ['a'] }, base), [501, { error: { code: 501, message: 'This server does not support reranking. Start it with `--reranking`', type: 'not_supported_error' } }]);
    }
    assert.deepEqual(await ask({ documents: ['a'] }), [400, invalid('"query" must be provided')]);
    assert.deepEqual(await ask({ query: 5, documents: ['a'] }), [400, invalid('"query" must be a string')]);
    assert.deepEqual(await ask({ query: 'q' }), [400, invalid('"documents" must be a non-empty string array')]);
    assert.deepEqual(await ask({ query: 'q', documents: [] }), [400, invalid('"documents" must be a non-empty string array')]);
    assert.deepEqual(await ask({ query: 'q', documents: [{ text: 'a' }] }), [400, invalid('"documents" must be a non-empty string array')], 'Jina\'s {text} objects are not strings');
    // format_prompt_rerank: 3 + 40 words and 4 special tokens, over the 30-token context.
    assert.deepEqual(await ask({ query: 'one two three', documents: ['a', 'w '.repeat(40)] }), [400, {
      error: { code: 400, message: 'request (47 tokens) exceeds the available context size (30 tokens), try increasing it', type: 'exceed_context_size_error', n_prompt_tokens: 47, n_ctx: 30 },
    }]);
  });

  test('a reranking server is an embedding one: completions refused, embeddings a 200 of nulls (its pooled output is a score)', async () => {
    const chat = await post(`${rerankUrl}/v1/chat/completions`, { messages: [{ role: 'user', content: 'x' }] }, auth);
    assert.equal(chat.status, 501);
    assert.equal(at(await chat.json(), 'error', 'message'), 'This server does not support completions. Start it without `--embeddings`');
    const embed = await post(`${rerankUrl}/v1/embeddings`, { input: 'x' }, auth);
    assert.equal(embed.status, 200);
    assert.deepEqual(at(await embed.json(), 'data', 0, 'embedding'), [null, null, null, null]);
    const base64 = await post(`${rerankUrl}/v1/embeddings`, { input: 'x', encoding_format: 'base64' }, auth);
    assert.equal(base64.status, 500);
    assert.equal(at(await base64.json(), 'error', 'message'), '[json.exception.type_error.302] type must be number, but is null');
    const native = await post(`${rerankUrl}/embedding`, { content: 'x', encoding_format: 'base64' }, auth);
    assert.deepEqual([native.status, await native.json()], [200, [{ index: 0, embedding: [[null, null, null, null]] }]], 'the native answer encodes nothing');
  });

  test('tools: a call is {type, function, id} with a 32-character id and null content, finish_reason tool_calls; tool_choice required, or auto and the tool named', async () => {
    const ask = async (extra: Record<string, unknown>, content = 'What is the weather in Oslo?'): Promise<unknown> => (await post(`${url}/v1/chat/completions`, {
      messages: [{ role: 'user', content }], tools: [WEATHER, TIME], ...extra,
    }, auth)).json();
    const json = await ask({ tool_choice: 'required' });
    assert.equal(at(json, 'choices', 0, 'finish_reason'), 'tool_calls');
    const message = at(json, 'choices', 0, 'message') as Record<string, unknown>;
    assert.deepEqual(Object.keys(message), ['role', 'content', 'tool_calls']);
    assert.equal(message.content, null);
    const call = at(message, 'tool_calls', 0) as Record<string, unknown>;
    assert.deepEqual(Object.keys(call), ['type', 'function', 'id']);
    assert.match(String(call.id), /^[0-9A-Za-z]{32}$/, 'gen_tool_call_id: no call_ prefix');
    assert.deepEqual(call.function, { name: 'get_weather', arguments: '{"city":"Oslo","unit":"celsius"}' });
    assert.equal(at(json, 'usage', 'completion_tokens'), 9);
    // "auto" (the default) calls the tool the user names; a named function reads as auto (tool_choice is read as a string).
    assert.equal(at(await ask({}, 'call get_time please'), 'choices', 0, 'message', 'tool_calls', 0, 'function', 'name'), 'get_time');
    const named = await ask({ tool_choice: { type: 'function', function: { name: 'get_time' } } }, 'hello there');
    assert.deepEqual(at(named, 'choices', 0, 'message'), { role: 'assistant', content: replyTokens('hello there').join('') });
    assert.equal(at(await ask({ tool_choice: 'none' }, 'call get_time'), 'choices', 0, 'finish_reason'), 'stop');
    // Its result came back: an answer, not the same call again.
    const after = (await post(`${url}/v1/chat/completions`, {
      messages: [{ role: 'user', content: 'call get_time' }, { role: 'assistant', content: null, tool_calls: [{ id: 'a', type: 'function', function: { name: 'get_time', arguments: '{}' } }] }, { role: 'tool', tool_call_id: 'a', content: '10:00' }],
      tools: [TIME],
    }, auth));
    assert.equal(at(await after.json(), 'choices', 0, 'finish_reason'), 'stop');
  });

  test('tools streamed: the first diff names the call (index, id, type, name), later ones add to its arguments; the last chunk says tool_calls', async () => {
    const body = { messages: [{ role: 'user', content: 'Weather in Oslo?' }], tools: [WEATHER], tool_choice: 'required', stream: true };
    const { events, done } = parseSse(await (await post(`${url}/v1/chat/completions`, body, auth)).text());
    assert.equal(done, true);
    assert.deepEqual(at(events[0], 'choices', 0, 'delta'), { role: 'assistant', content: null });
    const deltas = events.slice(1, -1).map((e) => at(e, 'choices', 0, 'delta', 'tool_calls', 0) as Record<string, unknown>);
    assert.ok(deltas.length > 2);
    assert.deepEqual(Object.keys(deltas[0]!), ['index', 'id', 'type', 'function']);
    assert.match(String(deltas[0]!.id), /^[0-9A-Za-z]{32}$/);
    assert.deepEqual(at(deltas[0], 'function', 'name'), 'get_weather');
    for (const d of deltas.slice(1)) assert.deepEqual(Object.keys(d), ['index', 'function']);
    assert.equal(deltas.map((d) => at(d, 'function', 'arguments')).join(''), '{"city":"Oslo","unit":"celsius"}');
    assert.deepEqual(at(events.at(-1), 'choices', 0), { finish_reason: 'tool_calls', index: 0, delta: {} });
  });

  test('response_format: json_schema, json_object (with a schema of its own or none) and the top-level json_schema give JSON content; other types are refused', async () => {
    const schema = { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' } }, required: ['name', 'age'] };
    const content = async (extra: Record<string, unknown>): Promise<unknown> => JSON.parse(String(at(await (await post(`${url}/v1/chat/completions`, {
      messages: [{ role: 'user', content: 'who?' }], ...extra,
    }, auth)).json(), 'choices', 0, 'message', 'content')));
    assert.deepEqual(await content({ response_format: { type: 'json_schema', json_schema: { name: 'p', schema } } }), { name: 'Alice', age: 30 });
    assert.deepEqual(await content({ response_format: { type: 'json_object', schema } }), { name: 'Alice', age: 30 });
    assert.deepEqual(await content({ response_format: { type: 'json_object' } }), {});
    assert.deepEqual(await content({ json_schema: schema }), { name: 'Alice', age: 30 });
    const { events } = parseSse(await (await post(`${url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'who?' }], json_schema: schema, stream: true }, auth)).text());
    assert.equal(events.slice(1, -1).map((e) => at(e, 'choices', 0, 'delta', 'content')).join(''), '{"name":"Alice","age":30}');
    const bad = await post(`${url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'x' }], response_format: { type: 'xml' } }, auth);
    assert.equal(bad.status, 400);
    assert.deepEqual(await bad.json(), { error: { code: 400, message: 'response_format type must be one of "text" or "json_object", but got: xml', type: 'invalid_request_error' } });
  });

  test('tool and grammar refusals: an unknown tool_choice and a grammar beside tools are 400s, json_schema beside a grammar a 500', async () => {
    const refusal = async (extra: Record<string, unknown>): Promise<[number, unknown]> => {
      const r = await post(`${url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'x' }], tools: [TIME], ...extra }, auth);
      return [r.status, at(await r.json(), 'error', 'message')];
    };
    assert.deepEqual(await refusal({ tool_choice: 'any' }), [400, 'Invalid tool_choice: any']);
    assert.deepEqual(await refusal({ grammar: 'root ::= "x"' }), [400, 'Cannot use custom grammar constraints with tools.']);
    assert.deepEqual(await refusal({ stream: true, logprobs: true }), [400, 'logprobs is not supported with tools + stream']);
    assert.deepEqual(await refusal({ tools: undefined, json_schema: {}, grammar: 'root ::= "x"' }), [500, 'Cannot use both json_schema and grammar']);
  });

  test('unknown routes: File Not Found', async () => {
    const res = await fetch(`${url}/nope`, { headers: auth });
    assert.equal(res.status, 404);
    assert.deepEqual(await res.json(), { error: { code: 404, message: 'File Not Found', type: 'not_found_error' } });
  });
});

test('llama-server started with --no-jinja refuses tools and tool_choice with the 500 its parser throws; response_format still works', async () => {
  await withFleet([{ name: 'nj', protocol: 'llamacpp', model: MODEL, kind: 'chat', timing: FAST, jinja: false }], async (fleet) => {
    const url = `${fleet.get('nj').url}/v1/chat/completions`;
    const tools = await post(url, { messages: [{ role: 'user', content: 'call get_time' }], tools: [TIME] });
    assert.equal(tools.status, 500);
    assert.deepEqual(await tools.json(), { error: { code: 500, message: 'tools param requires --jinja flag', type: 'server_error' } });
    const streamed = await post(url, { messages: [{ role: 'user', content: 'call get_time' }], tools: [TIME], stream: true });
    assert.equal(streamed.status, 500, 'refused before any stream starts');
    assert.match(streamed.headers.get('content-type') ?? '', /^application\/json/);
    const choice = await post(url, { messages: [{ role: 'user', content: 'x' }], tool_choice: 'none' });
    assert.equal(choice.status, 500);
    assert.equal(at(await choice.json(), 'error', 'message'), 'tool_choice param requires --jinja flag');
    assert.equal((await post(url, { messages: [{ role: 'user', content: 'x' }], tools: [], tool_choice: 'auto' })).status, 200, 'no tools and the default choice pass');
    const json = await post(url, { messages: [{ role: 'user', content: 'x' }], response_format: { type: 'json_object' } });
    assert.equal(at(await json.json(), 'choices', 0, 'message', 'content'), '{}');
  });
});
