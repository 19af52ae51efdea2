// llama.cpp's llama-server shapes, native endpoints and errors.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startFleet } from './fleet.ts';
import type { SimFleet } from './fleet.ts';
import { replyTokens } from './generate.ts';
import { FAST, at, decodeBase64Floats, parseSse, post } from './test-helpers.ts';

const MODEL = 'qwen2.5-7b-instruct-q4_k_m';
const TIMING_KEYS = ['cache_n', 'prompt_n', 'prompt_ms', 'prompt_per_token_ms', 'prompt_per_second', 'predicted_n', 'predicted_ms', 'predicted_per_token_ms', 'predicted_per_second'];

describe('llamacpp', () => {
  let fleet: SimFleet;
  let url: string;
  let embedUrl: string;
  const auth = { authorization: 'Bearer secret' };

  before(async () => {
    fleet = await startFleet([
      { name: 'l', protocol: 'llamacpp', model: MODEL, kind: 'chat', contextWindow: 40, apiKey: 'secret', timing: { ...FAST, maxConcurrency: 3 } },
      { name: 'emb', protocol: 'llamacpp', model: 'bge-m3', kind: 'embeddings', dimensions: 12, timing: FAST },
    ]);
    url = fleet.get('l').url;
    embedUrl = fleet.get('emb').url;
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

  test('unknown routes: File Not Found', async () => {
    const res = await fetch(`${url}/nope`, { headers: auth });
    assert.equal(res.status, 404);
    assert.deepEqual(await res.json(), { error: { code: 404, message: 'File Not Found', type: 'not_found_error' } });
  });
});
