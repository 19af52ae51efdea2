// One server, several backends: an engine lists and answers every model its backends name,
// each with its own kind and window, and accepts each of their keys.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startFleet } from './fleet.ts';
import type { SimFleet } from './fleet.ts';
import { FAST, at, post } from './test-helpers.ts';

describe('engines serving several models', () => {
  let fleet: SimFleet;
  const url = (name: string): string => fleet.get(name).url;

  before(async () => {
    fleet = await startFleet([
      {
        name: 'openai', protocol: 'openai', model: 'gpt-4.1-mini', kind: 'chat', contextWindow: 1000, apiKey: ['sk-a', 'sk-b'], timing: FAST,
        extraModels: [{ model: 'gpt-4o-mini', kind: 'chat', contextWindow: 20 }, { model: 'text-embedding-3-small', kind: 'embeddings', dimensions: 8 }],
      },
      { name: 'vllm', protocol: 'vllm', model: 'qwen', kind: 'chat', timing: FAST, extraModels: ['qwen-alias'] },
      { name: 'named', protocol: 'vllm', model: 'qwen', kind: 'chat', timing: FAST, extraModels: ['BAAI/bge-reranker-v2-m3', 'nomic-embed-text', 'Qwen3-Reranker-Embed'] },
      { name: 'ollama', protocol: 'ollama', model: 'qwen2.5:7b', kind: 'chat', timing: FAST, extraModels: [{ model: 'bge-m3', kind: 'embeddings', dimensions: 6 }] },
    ]);
  });
  after(() => fleet.close());

  test('the engine says which models it serves', () => {
    assert.deepEqual(fleet.get('openai').models, ['gpt-4.1-mini', 'gpt-4o-mini', 'text-embedding-3-small']);
    assert.equal(fleet.get('openai').model, 'gpt-4.1-mini');
  });

  test('OpenAI lists, retrieves and answers each model, with its own window and kind', async () => {
    const auth = { authorization: 'Bearer sk-a' };
    const list: unknown = await (await fetch(`${url('openai')}/v1/models`, { headers: auth })).json();
    assert.deepEqual((at(list, 'data') as { id: string }[]).map((m) => m.id), ['gpt-4.1-mini', 'gpt-4o-mini', 'text-embedding-3-small']);
    assert.equal((await fetch(`${url('openai')}/v1/models/gpt-4o-mini`, { headers: auth })).status, 200);

    const cheap = await post(`${url('openai')}/v1/chat/completions`, { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }, auth);
    assert.equal(cheap.status, 200);
    assert.equal(at(await cheap.json(), 'model'), 'gpt-4o-mini');
    // gpt-4o-mini's window here is 20 tokens, gpt-4.1-mini's 1000.
    const long = { messages: [{ role: 'user', content: 'word '.repeat(30) }] };
    const over = await post(`${url('openai')}/v1/chat/completions`, { model: 'gpt-4o-mini', ...long }, auth);
    assert.equal(over.status, 400);
    assert.match(String(at(await over.json(), 'error', 'message')), /maximum context length is 20 tokens/);
    assert.equal((await post(`${url('openai')}/v1/chat/completions`, { model: 'gpt-4.1-mini', ...long }, auth)).status, 200);

    const emb = await post(`${url('openai')}/v1/embeddings`, { model: 'text-embedding-3-small', input: 'x' }, auth);
    assert.equal(emb.status, 200);
    assert.equal((at(await emb.json(), 'data', 0, 'embedding') as number[]).length, 8);
    assert.equal((await post(`${url('openai')}/v1/embeddings`, { model: 'gpt-4o-mini', input: 'x' }, auth)).status, 400);
    assert.equal((await post(`${url('openai')}/v1/chat/completions`, { model: 'gpt-5', messages: [] }, auth)).status, 404);
  });

  test('any of the backends\' keys passes; others get the engine\'s 401', async () => {
    const body = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] };
    assert.equal((await post(`${url('openai')}/v1/chat/completions`, body, { authorization: 'Bearer sk-b' })).status, 200);
    const wrong = await post(`${url('openai')}/v1/chat/completions`, body, { authorization: 'Bearer sk-c' });
    assert.equal(wrong.status, 401);
    assert.equal(at(await wrong.json(), 'error', 'code'), 'invalid_api_key');
  });

  test('vLLM lists every served name and answers each', async () => {
    const list: unknown = await (await fetch(`${url('vllm')}/v1/models`)).json();
    assert.deepEqual((at(list, 'data') as { id: string }[]).map((m) => m.id), ['qwen', 'qwen-alias']);
    const r = await post(`${url('vllm')}/v1/chat/completions`, { model: 'qwen-alias', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(r.status, 200);
    assert.equal(at(await r.json(), 'model'), 'qwen-alias');
    assert.equal((await post(`${url('vllm')}/v1/chat/completions`, { model: 'other', messages: [] })).status, 404);
  });

  test('an extra model named for nothing else is a reranker when its name says "rerank", an embedding model when it says "embed"', async () => {
    const rerank = (model: string): Promise<Response> => post(`${url('named')}/rerank`, { model, query: 'q', documents: ['q'] });
    assert.equal((await rerank('BAAI/bge-reranker-v2-m3')).status, 200);
    assert.equal((await rerank('Qwen3-Reranker-Embed')).status, 200, '"rerank" wins');
    const chat = await post(`${url('named')}/v1/chat/completions`, { model: 'Qwen3-Reranker-Embed', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(at(await chat.json(), 'error', 'message'), 'The model does not support Chat Completions API');
    const embed = await post(`${url('named')}/v1/embeddings`, { model: 'nomic-embed-text', input: 'x' });
    assert.equal(embed.status, 200);
    const onChat = await rerank('qwen');
    assert.deepEqual([onChat.status, at(await onChat.json(), 'error', 'message')], [400, 'The model does not support Rerank (Score) API']);
  });

  test('Ollama takes an extra model\'s kind and dimensions from its spec', async () => {
    const r = await post(`${url('ollama')}/api/embed`, { model: 'bge-m3', input: 'x' });
    assert.equal(r.status, 200);
    assert.equal((at(await r.json(), 'embeddings', 0) as number[]).length, 6);
    assert.equal((await post(`${url('ollama')}/api/chat`, { model: 'bge-m3', messages: [{ role: 'user', content: 'x' }], stream: false })).status, 400);
  });
});
