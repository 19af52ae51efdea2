// api.openai.com's shapes, and the official `openai` SDK as a client of every protocol's
// OpenAI-compatible surface (it asks for base64 embeddings by default, and parses errors).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { startFleet } from './fleet.ts';
import type { SimFleet } from './fleet.ts';
import { embedding, replyTokens } from './generate.ts';
import { EOS_TOKENS, FAST, at, parseSse, post } from './test-helpers.ts';

const KEY = 'sk-proj-abcdefghijklmnopqrstuvwxyz';

describe('openai', () => {
  let fleet: SimFleet;
  let url: string;
  const auth = { authorization: `Bearer ${KEY}` };

  before(async () => {
    fleet = await startFleet([
      { name: 'chat', protocol: 'openai', model: 'gpt-4o-mini', kind: 'chat', apiKey: KEY, contextWindow: 30, timing: FAST },
      { name: 'emb', protocol: 'openai', model: 'text-embedding-3-small', kind: 'embeddings', dimensions: 32, apiKey: KEY, timing: FAST },
    ]);
    url = fleet.get('chat').url;
  });
  after(() => fleet.close());

  test('chat: refusal null, annotations, full usage details, service_tier and fingerprint', async () => {
    const res = await post(`${url}/v1/chat/completions`, { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }, auth);
    assert.match(res.headers.get('x-request-id') ?? '', /^req_/);
    const json: unknown = await res.json();
    assert.deepEqual(at(json, 'choices', 0, 'message'), { role: 'assistant', content: replyTokens('hi').join(''), refusal: null, annotations: [] });
    assert.equal(at(json, 'choices', 0, 'logprobs'), null);
    assert.deepEqual(at(json, 'usage', 'prompt_tokens_details'), { cached_tokens: 0, audio_tokens: 0 });
    assert.equal(at(json, 'usage', 'completion_tokens_details', 'reasoning_tokens'), 0);
    assert.equal(at(json, 'service_tier'), 'default');
    assert.match(String(at(json, 'system_fingerprint')), /^fp_/);
  });

  test('chat stream: usage null on every chunk, then an empty-choices usage chunk', async () => {
    const { events, done } = parseSse(await (await post(`${url}/v1/chat/completions`, {
      model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], stream: true, stream_options: { include_usage: true },
    }, auth)).text());
    assert.equal(done, true);
    for (const e of events.slice(0, -1)) assert.equal(e.usage, null);
    assert.deepEqual(at(events[0], 'choices', 0, 'delta'), { role: 'assistant', content: '', refusal: null });
    assert.deepEqual(at(events.at(-2), 'choices', 0, 'delta'), {});
    assert.equal(at(events.at(-2), 'choices', 0, 'finish_reason'), 'stop');
    assert.deepEqual(at(events.at(-1), 'choices'), []);
    assert.equal(at(events.at(-1), 'usage', 'total_tokens'), 8 + replyTokens('hi').length);
  });

  test('errors: {"error":{message,type,param,code}}', async () => {
    const none = await post(`${url}/v1/chat/completions`, { model: 'gpt-4o-mini', messages: [] });
    assert.equal(none.status, 401);
    assert.equal(at(await none.json(), 'error', 'code'), null);
    const wrong = await post(`${url}/v1/chat/completions`, { model: 'gpt-4o-mini', messages: [] }, { authorization: 'Bearer sk-wrong-key-123456' });
    const wrongJson: unknown = await wrong.json();
    assert.equal(at(wrongJson, 'error', 'code'), 'invalid_api_key');
    assert.doesNotMatch(String(at(wrongJson, 'error', 'message')), /sk-wrong-key-123456/);
    const unknown = await post(`${url}/v1/chat/completions`, { model: 'gpt-5', messages: [{ role: 'user', content: 'x' }] }, auth);
    assert.equal(unknown.status, 404);
    assert.deepEqual(at(await unknown.json(), 'error'), {
      message: 'The model `gpt-5` does not exist or you do not have access to it.', type: 'invalid_request_error', param: null, code: 'model_not_found',
    });
    const long = await post(`${url}/v1/chat/completions`, { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'w '.repeat(40) }] }, auth);
    assert.equal(long.status, 400);
    assert.deepEqual(at(await long.json(), 'error'), {
      message: "This model's maximum context length is 30 tokens. However, your messages resulted in 47 tokens. Please reduce the length of the messages.",
      type: 'invalid_request_error', param: 'messages', code: 'context_length_exceeded',
    });
    const noModel = await post(`${url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'x' }] }, auth);
    assert.equal(noModel.status, 400);
    await noModel.text();
  });

  test('embeddings honour dimensions with a normalised shorter vector', async () => {
    const e = fleet.get('emb').url;
    const json: unknown = await (await post(`${e}/v1/embeddings`, { model: 'text-embedding-3-small', input: 'x', dimensions: 4 }, auth)).json();
    assert.deepEqual(at(json, 'data', 0, 'embedding'), Array.from(embedding('x', 4)));
    assert.deepEqual(at(json, 'usage'), { prompt_tokens: 1, total_tokens: 1 });
  });

  test('models list and retrieve', async () => {
    const list: unknown = await (await fetch(`${url}/v1/models`, { headers: auth })).json();
    assert.equal(at(list, 'data', 0, 'owned_by'), 'system');
    assert.equal((await fetch(`${url}/v1/models/gpt-4o-mini`, { headers: auth })).status, 200);
    assert.equal((await fetch(`${url}/v1/models/nope`, { headers: auth })).status, 404);
  });
});

describe('the official openai SDK against every protocol', () => {
  let fleet: SimFleet;
  const protocols = ['vllm', 'ollama', 'llamacpp', 'openai'] as const;
  const chatModel = (p: string): string => (p === 'ollama' ? 'llama3.1:8b' : 'chat-model');

  before(async () => {
    fleet = await startFleet(protocols.flatMap((p) => [
      { name: `${p}-chat`, protocol: p, model: chatModel(p), kind: 'chat' as const, timing: FAST, apiKey: 'k' },
      { name: `${p}-emb`, protocol: p, model: 'embed-model', kind: 'embeddings' as const, dimensions: 24, timing: FAST, apiKey: 'k' },
    ]));
  });
  after(() => fleet.close());

  for (const p of protocols) {
    test(`${p}: chat, stream and base64 embeddings through the SDK`, async () => {
      const client = new OpenAI({ apiKey: 'k', baseURL: `${fleet.get(`${p}-chat`).url}/v1`, maxRetries: 0 });
      const model = chatModel(p);
      const done = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'sdk' }] });
      assert.equal(done.choices[0]?.message.content, replyTokens('sdk').join(''));
      let text = '';
      let usage = 0;
      const stream = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'sdk' }], stream: true, stream_options: { include_usage: true } });
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta.content ?? '';
        usage = chunk.usage?.completion_tokens ?? usage;
      }
      assert.equal(text, replyTokens('sdk').join(''));
      assert.equal(usage, replyTokens('sdk').length + EOS_TOKENS[p]);

      const emb = new OpenAI({ apiKey: 'k', baseURL: `${fleet.get(`${p}-emb`).url}/v1`, maxRetries: 0 });
      const vectors = await emb.embeddings.create({ model: 'embed-model', input: ['one', 'two'] });
      assert.deepEqual(vectors.data[1]?.embedding, Array.from(embedding('two', 24)));

      await fleet.get(`${p}-chat`).setFault({ kind: 'rate-limit', retryAfterS: 3 }, 1);
      await assert.rejects(client.chat.completions.create({ model, messages: [{ role: 'user', content: 'x' }] }), (err: unknown) => {
        assert.ok(err instanceof OpenAI.RateLimitError);
        return true;
      });
    });
  }
});
