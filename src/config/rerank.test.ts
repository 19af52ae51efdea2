// Rerank roles in the config: served only by engines with a rerank endpoint (on roles and
// patterns alike), no rules on a whole request's length, the document limit read.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFabricText } from './load.ts';
import { formatIssue } from './issues.ts';

const FILE = '/etc/fabric/fabric.yaml';
/** The issues, but for backends left unused (each test uses some of BACKENDS). */
const parse = (text: string) => {
  const r = parseFabricText(text, FILE);
  return { config: r.config, lines: r.issues.map(formatIssue).filter((l) => !l.includes('is not used by any role')) };
};

const BACKENDS = `version: 1
backends:
  v: { engine: vllm, url: http://127.0.0.1:8000/v1, model: BAAI/bge-reranker-v2-m3 }
  l: { engine: llamacpp, url: http://127.0.0.1:8080/v1, model: bge-reranker }
  i: { engine: openai-compatible, url: http://127.0.0.1:7997, model: mixedbread-ai/mxbai-rerank-base-v1 }
  o: { engine: ollama, url: http://127.0.0.1:11434, model: qwen2.5 }
  c: { engine: openai, url: https://api.openai.com/v1, model: gpt-4o-mini, api_key: { env: OPENAI_API_KEY } }
  s: { engine: lmstudio, url: http://127.0.0.1:1234/v1, model: bge-reranker }
`;

test('vllm, llamacpp and openai-compatible backends serve a rerank role; the limit on documents is read', () => {
  const { config, lines } = parse(`${BACKENDS}roles:
  rerank-general: { kind: rerank, backends: [v, l, i], aliases: [local/rerank], fallbacks: [rerank-small] }
  rerank-small: { kind: rerank, backends: [l] }
gateway: { limits: { max_documents: 200 } }
`);
  assert.deepEqual(lines, []);
  assert.equal(config.roles.get('rerank-general')!.kind, 'rerank');
  assert.equal(config.gateway.limits.maxDocuments, 200);
});

test('Ollama, LM Studio and OpenAI have no rerank endpoint: refused with the line, on roles and on patterns', () => {
  const { lines } = parse(`${BACKENDS}roles:
  rerank-general: { kind: rerank, backends: [v, o, c, s] }
patterns:
  - { match: "BAAI/*", kind: rerank, backends: [o] }
`);
  assert.equal(lines.length, 4, lines.join('\n'));
  assert.match(lines[0]!, /fabric\.yaml:10:\d+: error: roles\.rerank-general\.backends\[1\]: o runs on ollama, which does not serve \/v1\/rerank/);
  assert.match(lines[1]!, /roles\.rerank-general\.backends\[2\]: c runs on openai/);
  assert.match(lines[2]!, /roles\.rerank-general\.backends\[3\]: s runs on lmstudio/);
  assert.match(lines[3]!, /patterns\[0\]\.backends\[0\]: o runs on ollama/);
});

test('a rerank role takes a rule on its input\'s tokens but none on what a chat carries; a rerank role falls back only to rerank roles', () => {
  const { lines } = parse(`${BACKENDS}roles:
  chat: { kind: chat, backends: [o] }
  rerank-small: { kind: rerank, backends: [l] }
  rerank-general:
    kind: rerank
    backends: [v]
    fallbacks: [chat]
    rules:
      - { if_input_tokens_over: 4000, route_to: rerank-small }
      - { if_input_has: image, route_to: rerank-small }
`);
  assert.ok(lines.some((l) => /fallbacks\[0\]: "chat" is a chat role but rerank-general is rerank/.test(l)), lines.join('\n'));
  assert.ok(!lines.some((l) => /rules\[0\]/.test(l)), lines.join('\n'));
  assert.ok(lines.some((l) => /rules\[1\]\.if_input_has: only chat requests carry images, audio or tools: this is a reranking role/.test(l)), lines.join('\n'));
});

test('a role without a kind is refused naming every kind, rerank among them', () => {
  const { lines } = parse(`${BACKENDS}roles:\n  r: { backends: [v] }\n`);
  assert.ok(lines.some((l) => /roles\.r\.kind: is required: one of chat, embeddings, transcription, rerank/.test(l)), lines.join('\n'));
});

test('a token rule on an embeddings role is taken as written', () => {
  const { config, lines } = parse(`${BACKENDS}roles:
  emb-small: { kind: embeddings, backends: [v] }
  emb: { kind: embeddings, backends: [i], rules: [{ if_input_tokens_over: 500, route_to: emb-small }] }
`);
  assert.deepEqual(lines, []);
  assert.deepEqual(config.roles.get('emb')!.rules, [{ routeTo: 'emb-small', inputTokensOver: 500 }]);
});
