// One suite, run against both engines that rerank (vLLM, llama-server): every rerank path,
// the order and scores, top_n, usage counted per pair, and the engine's behaviour around it
// (faults, the concurrency limit, its accounting). Each engine's exact shapes and errors are
// in its own test file.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startFleet } from './fleet.ts';
import type { SimFleet } from './fleet.ts';
import { relevance } from './generate.ts';
import { FAST, at, post, waitFor } from './test-helpers.ts';

const QUERY = 'capital of France';
const DOCS = ['Paris is the capital of France', 'Berlin is a city', 'The capital is big', 'France has wine'];
/** Pairs of 3 + 6, 3 + 4, 3 + 4 and 3 + 3 words, each with the cross-encoder's 4 special tokens. */
const PAIR_TOKENS = 13 + 11 + 11 + 10;

const ENGINES = {
  vllm: { model: 'BAAI/bge-reranker-v2-m3', paths: ['/rerank', '/v1/rerank', '/v2/rerank'] },
  llamacpp: { model: 'bge-reranker-v2-m3-q8_0', paths: ['/rerank', '/reranking', '/v1/rerank', '/v1/reranking'] },
} as const;

test('relevance: the share of the query\'s words in the document, lower-cased, in (0, 1)', () => {
  assert.equal(relevance('Capital of FRANCE', 'paris is the capital of france.'), relevance('x', 'x'));
  assert.ok(relevance('a b c', 'a b c') > relevance('a b c', 'a b') && relevance('a b c', 'a b') > relevance('a b c', 'a'));
  assert.ok(relevance('a b c', 'a') > relevance('a b c', 'z'));
  for (const s of [relevance('a', 'a'), relevance('a', 'b'), relevance('', 'a')]) assert.ok(s > 0 && s < 1, String(s));
  assert.equal(relevance('a b', 'a'), 0.5);
  assert.equal(relevance('a a a b', 'b'), 0.5, 'distinct words: a repeated word counts once');
});

for (const protocol of ['vllm', 'llamacpp'] as const) {
  describe(`${protocol} rerank contract`, () => {
    const { model, paths } = ENGINES[protocol];
    let fleet: SimFleet;
    let url: string;

    before(async () => {
      fleet = await startFleet([{ name: 'r', protocol, model, kind: 'rerank', contextWindow: 64, timing: FAST }]);
      url = fleet.get('r').url;
    });
    after(() => fleet.close());

    test('every rerank path: best first, equal scores in the request\'s order, relevance() as the score', async () => {
      for (const path of paths) {
        const res = await post(`${url}${path}`, { model, query: QUERY, documents: DOCS });
        assert.equal(res.status, 200, path);
        const json: unknown = await res.json();
        const results = at(json, 'results') as { index: number; relevance_score: number }[];
        assert.deepEqual(results.map((r) => r.index), [0, 2, 3, 1], path);
        assert.deepEqual(results.map((r) => r.relevance_score), [0, 2, 3, 1].map((i) => relevance(QUERY, DOCS[i]!)), path);
        assert.equal(at(json, 'model'), model);
        assert.equal(at(json, 'usage', 'total_tokens'), PAIR_TOKENS, 'the query counts once per document');
      }
    });

    test('top_n cuts the sorted answer; the usage is every pair\'s still', async () => {
      const json: unknown = await (await post(`${url}/rerank`, { query: QUERY, documents: DOCS, top_n: 2 })).json();
      assert.deepEqual((at(json, 'results') as { index: number }[]).map((r) => r.index), [0, 2]);
      assert.equal(at(json, 'usage', 'total_tokens'), PAIR_TOKENS);
      const more: unknown = await (await post(`${url}/rerank`, { query: QUERY, documents: DOCS, top_n: 10 })).json();
      assert.equal((at(more, 'results') as unknown[]).length, 4);
    });

    test('the engine counts the pairs\' tokens and the request', async () => {
      const before = fleet.get('r').stats();
      await (await post(`${url}/rerank`, { query: QUERY, documents: DOCS })).json();
      const now = fleet.get('r').stats();
      assert.equal(now.promptTokens - before.promptTokens, PAIR_TOKENS);
      assert.equal(now.completionTokens, before.completionTokens);
      assert.equal(now.completed - before.completed, 1);
      assert.equal(fleet.get('r').requests().at(-1)?.path, '/rerank');
    });

    test('faults apply to a rerank as to any inference request: 5xx, 429, garbage, drop, hang', async () => {
      const e = fleet.get('r');
      const ask = (): Promise<Response> => post(`${url}/rerank`, { query: QUERY, documents: DOCS });
      await e.setFault({ kind: 'error', status: 503 }, 1);
      const failed = await ask();
      assert.equal(failed.status, 503);
      assert.equal(at(await failed.json(), 'error', 'code'), 503);
      await e.setFault({ kind: 'rate-limit', retryAfterS: 3 }, 1);
      const limited = await ask();
      assert.equal(limited.status, 429);
      assert.equal(limited.headers.get('retry-after'), '3');
      await limited.body?.cancel();
      await e.setFault({ kind: 'garbage' }, 1);
      const garbage = await ask();
      assert.equal(garbage.status, 200);
      await assert.rejects(garbage.json() as Promise<unknown>, SyntaxError);
      await e.setFault({ kind: 'drop' }, 1);
      await assert.rejects(ask(), 'a plain request is answered by closing the connection');
      await e.setFault({ kind: 'hang' }, 1);
      await assert.rejects(post(`${url}/rerank`, { query: QUERY, documents: DOCS }, {}, AbortSignal.timeout(100)), { name: 'TimeoutError' });
      await e.setFault(null);
      assert.equal((await ask()).status, 200, 'each fault was for one request only');
    });
  });
}

describe('a rerank takes its time and its slot', () => {
  let fleet: SimFleet;
  before(async () => {
    fleet = await startFleet([
      { name: 'v', protocol: 'vllm', model: ENGINES.vllm.model, kind: 'rerank', timing: { ttftMs: 60, tokensPerSecond: 1e6, maxConcurrency: 1 } },
      { name: 'l', protocol: 'llamacpp', model: ENGINES.llamacpp.model, kind: 'rerank', timing: { ttftMs: 20, tokensPerSecond: 1e6 } },
    ]);
  });
  after(() => fleet.close());

  test('past the concurrency limit a rerank waits in the queue', async () => {
    const e = fleet.get('v');
    const t0 = performance.now();
    const first = post(`${e.url}/rerank`, { query: QUERY, documents: DOCS });
    const second = post(`${e.url}/rerank`, { query: QUERY, documents: DOCS });
    await waitFor(() => e.stats().queued === 1, 1000, 'the second rerank to queue');
    assert.equal(e.stats().active, 1);
    assert.deepEqual([(await first).status, (await second).status], [200, 200]);
    assert.ok(performance.now() - t0 >= 2 * 60 - 4, 'one after the other');
  });

  test('a slow fault stretches it', async () => {
    const e = fleet.get('l');
    await e.setFault({ kind: 'slow', factor: 5 }, 1);
    const t0 = performance.now();
    assert.equal((await post(`${e.url}/rerank`, { query: QUERY, documents: DOCS })).status, 200);
    assert.ok(performance.now() - t0 >= 5 * 20 - 4, 'five times the 20 ms it takes');
  });
});

test('llama-server\'s physical batch (--ubatch-size): a rerank pair or an embeddings input past it is a 500 naming both sizes, though the context holds it', async () => {
  const fleet = await startFleet([
    { name: 'r', protocol: 'llamacpp', model: ENGINES.llamacpp.model, kind: 'rerank', physicalBatch: 12, timing: FAST },
    { name: 'e', protocol: 'llamacpp', model: 'bge-m3-q8_0', kind: 'embeddings', physicalBatch: 5, timing: FAST },
  ]);
  const ask = async (engine: string, path: string, body: unknown) => {
    const res = await post(fleet.get(engine).url + path, body);
    return { status: res.status, json: await res.json() as any };
  };
  try {
    // 3 + 6 + 4 = 13 tokens for the first pair: one past the batch.
    const r = await ask('r', '/v1/rerank', { query: QUERY, documents: DOCS });
    assert.equal(r.status, 500);
    assert.deepEqual(r.json, { error: { code: 500, message: 'input (13 tokens) is too large to process. increase the physical batch size (current batch size: 12)', type: 'server_error' } });
    assert.equal((await ask('r', '/v1/rerank', { query: QUERY, documents: DOCS.slice(1) })).status, 200, '11 tokens at most');
    const e = await ask('e', '/v1/embeddings', { input: ['short', 'one two three four five six'] });
    assert.equal(e.status, 500);
    assert.match(e.json.error.message, /^input \(\d+ tokens\) is too large to process\. increase the physical batch size \(current batch size: 5\)$/);
    assert.equal((await ask('e', '/v1/embeddings', { input: ['short', 'one two'] })).status, 200);
  } finally {
    await fleet.close();
  }
});
