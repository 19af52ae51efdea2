import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalizeRerank, rerankUpstreamBody } from './rerank.ts';
import { engineFor } from './index.ts';

const ctx = { requestId: 'req1', model: 'rerank-general', created: 1 };
const docs = ['pandas eat bamboo', 'the sky is blue', 'giant pandas live in China'];

test("vLLM's answer: sorted by score, cut to top_n, documents from the request, usage as given", () => {
  const vllm = {
    id: 'rerank-abc', model: 'BAAI/bge-reranker-base', usage: { prompt_tokens: 30, total_tokens: 30 },
    results: [
      { index: 0, document: { text: docs[0] }, relevance_score: 0.7 },
      { index: 1, document: { text: docs[1] }, relevance_score: 0.01 },
      { index: 2, document: { text: docs[2] }, relevance_score: 0.9 },
    ],
  };
  const out = normalizeRerank(structuredClone(vllm), { query: 'pandas', documents: docs, top_n: 2 }, ctx)!;
  assert.deepEqual(out, {
    id: 'rerank-abc', model: 'BAAI/bge-reranker-base', usage: { prompt_tokens: 30, total_tokens: 30 },
    results: [{ index: 2, relevance_score: 0.9, document: { text: docs[2] } }, { index: 0, relevance_score: 0.7, document: { text: docs[0] } }],
  });
});

test("llama.cpp's answer (no id, no documents) gets an id from the request and the documents; return_documents: false leaves them out", () => {
  const llama = { model: 'bge', object: 'list', usage: { prompt_tokens: 12, total_tokens: 12 }, results: [{ index: 1, relevance_score: -3 }, { index: 0, relevance_score: 4 }, { index: 2, relevance_score: 4 }] };
  const withDocs = normalizeRerank(structuredClone(llama), { query: 'q', documents: docs }, ctx)!;
  assert.equal(withDocs.id, 'rerank-req1');
  // Ties keep the documents' order.
  assert.deepEqual((withDocs.results as { index: number }[]).map((r) => r.index), [0, 2, 1]);
  assert.deepEqual((withDocs.results as { document?: unknown }[])[0]!.document, { text: docs[0] });
  const bare = normalizeRerank(structuredClone(llama), { query: 'q', documents: docs, return_documents: false }, ctx)!;
  assert.deepEqual(bare.results, [{ index: 0, relevance_score: 4 }, { index: 2, relevance_score: 4 }, { index: 1, relevance_score: -3 }]);
  assert.equal(bare.object, undefined);
});

test("SGLang's answer, a bare array of {index, score, document, meta_info}: a ranking, its tokens the pairs' sum", () => {
  const sglang = [
    { score: 0.9, document: docs[2], index: 2, meta_info: { id: 'a', prompt_tokens: 7 } },
    { score: 0.7, document: docs[0], index: 0, meta_info: { id: 'b', prompt_tokens: 6 } },
    { score: 0.01, document: docs[1], index: 1, meta_info: { id: 'c', prompt_tokens: 8 } },
  ];
  const adapter = engineFor({ engine: 'sglang', contextWindow: undefined, keepAliveSeconds: undefined, serve: undefined });
  const out = adapter.normalize('rerank', structuredClone(sglang), { query: 'pandas', documents: docs, top_n: 2 }, ctx)!;
  assert.deepEqual(out, {
    id: 'rerank-req1', model: 'rerank-general', usage: { prompt_tokens: 21, total_tokens: 21 },
    results: [{ index: 2, relevance_score: 0.9, document: { text: docs[2] } }, { index: 0, relevance_score: 0.7, document: { text: docs[0] } }],
  });
  // A pair without its count: none for the request (the gateway estimates it).
  const partial = structuredClone(sglang) as { meta_info?: unknown }[];
  delete partial[1]!.meta_info;
  assert.equal(adapter.normalize('rerank', partial, { query: 'pandas', documents: docs }, ctx)!.usage, undefined);
  // Still refused when short or not a ranking.
  assert.equal(adapter.normalize('rerank', sglang.slice(0, 2), { query: 'pandas', documents: docs }, ctx), undefined);
  assert.equal(adapter.normalize('rerank', [1, 2, 3], { query: 'pandas', documents: docs }, ctx), undefined);
});

test('usage: total_tokens alone (older vLLM) is the prompt; none at all is left for the gateway to estimate', () => {
  const results = [{ index: 0, relevance_score: 1 }];
  assert.deepEqual(normalizeRerank({ results, usage: { total_tokens: 9 } }, { query: 'q', documents: ['a'] }, ctx)!.usage, { prompt_tokens: 9, total_tokens: 9 });
  assert.equal(normalizeRerank({ results }, { query: 'q', documents: ['a'] }, ctx)!.usage, undefined);
});

test('not a ranking: malformed results, an index out of range or given twice, a score not finite, too few results', () => {
  const body = { query: 'q', documents: docs };
  const three = (r: unknown): unknown => ({ results: [r, { index: 1, relevance_score: 0 }, { index: 2, relevance_score: 0 }] });
  for (const bad of [
    {}, { results: 'x' }, { data: [] },
    three({ index: 3, relevance_score: 1 }), three({ index: -1, relevance_score: 1 }), three({ index: 0.5, relevance_score: 1 }),
    three({ index: 1, relevance_score: 1 }), three({ index: 0, relevance_score: '0.5' }), three({ index: 0 }), three(null),
    { results: [{ index: 0, relevance_score: 1 }, { index: 1, relevance_score: 1 }] },
  ]) {
    assert.equal(normalizeRerank(bad as Record<string, unknown>, body, ctx), undefined, JSON.stringify(bad));
  }
  // Two results are all top_n 2 asks for.
  assert.notEqual(normalizeRerank({ results: [{ index: 0, relevance_score: 1 }, { index: 1, relevance_score: 1 }] }, { ...body, top_n: 2 }, ctx), undefined);
});

test('the upstream body: the physical model, top_n only when it cuts, no stream fields nor return_documents; the client body untouched', () => {
  const body = { model: 'rerank-general', query: 'q', documents: ['a', 'b'], top_n: 0, stream: false, return_documents: true, truncate_prompt_tokens: 100 };
  assert.deepEqual(rerankUpstreamBody(body, 'BAAI/bge-reranker-base'), { model: 'BAAI/bge-reranker-base', query: 'q', documents: ['a', 'b'], truncate_prompt_tokens: 100 });
  assert.equal(body.model, 'rerank-general');
  assert.equal(body.return_documents, true);
  assert.equal(rerankUpstreamBody({ ...body, top_n: 1 }, 'm').top_n, 1);
  // As many as the documents or more cuts nothing: not sent (llama.cpp reads it as a C int, 2^32 + 1 as 1).
  for (const n of [2, 3, 2 ** 32 + 1, 1e20]) assert.equal('top_n' in rerankUpstreamBody({ ...body, top_n: n }, 'm'), false, String(n));
  // Nor a null return_documents, which Infinity refuses (422).
  assert.equal('return_documents' in rerankUpstreamBody({ ...body, return_documents: null }, 'm'), false);
  const prepared = engineFor({ engine: 'llamacpp', contextWindow: undefined, keepAliveSeconds: undefined, serve: undefined }).prepare('rerank', body, { model: 'bge', wantStreamUsage: false, clientWantsUsage: false });
  assert.equal(prepared.path, '/rerank');
  assert.equal(JSON.parse(prepared.body).model, 'bge');
  assert.throws(() => engineFor({ engine: 'ollama', contextWindow: undefined, keepAliveSeconds: undefined, serve: undefined }).prepare('rerank', body, { model: 'x', wantStreamUsage: false, clientWantsUsage: false }), /no reranking/);
});
