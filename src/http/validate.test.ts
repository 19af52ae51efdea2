import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkDialectBody, MAX_DEPTH, validateRequest } from './validate.ts';
import { FabricError } from '../core/errors.ts';
import type { Limits } from '../config/types.ts';

const LIMITS = { maxTokens: 32768, maxN: 8, maxBestOf: 8, maxAttempts: 6, maxDocuments: 3 } as unknown as Limits;
const chat = (extra: Record<string, unknown> = {}) => ({ model: 'chat-fast', messages: [{ role: 'user', content: 'hi' }], ...extra });

/** The FabricError validation throws for `body`, sent as the client would (its JSON text). */
function refusal(body: unknown, op: 'chat' | 'completions' | 'embeddings' | 'rerank' = 'chat', raw = JSON.stringify(body)): FabricError {
  try {
    validateRequest(op, body, raw, LIMITS);
  } catch (e) {
    assert.ok(e instanceof FabricError, String(e));
    return e;
  }
  assert.fail(`accepted: ${raw.slice(0, 200)}`);
}

const nested = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth);

test('nesting deeper than MAX_DEPTH is a 400 before anything walks it; brackets inside strings do not count', () => {
  const deep = `{"model":"chat-fast","messages":[{"role":"user","content":"hi"}],"x":${nested(5000)}}`;
  const e = refusal(JSON.parse(deep), 'chat', deep);
  assert.equal(e.status, 400);
  assert.match(e.message, new RegExp(`more than ${MAX_DEPTH} levels`));
  // With a forbidden name in it too (the walk that looks for it must not overflow either).
  const both = deep.replace('"x":', '"api_base":1,"x":');
  assert.match(refusal(JSON.parse(both), 'chat', both).message, /levels deep/);
  // The body itself is level 1: MAX_DEPTH - 1 more levels pass.
  const ok = `{"model":"chat-fast","messages":[{"role":"user","content":"hi"}],"x":${nested(MAX_DEPTH - 1)}}`;
  validateRequest('chat', JSON.parse(ok), ok, LIMITS);
  // Brackets and escaped quotes inside strings are text, not structure.
  const text = JSON.stringify(chat({ messages: [{ role: 'user', content: `say \\"${'['.repeat(1000)}" and {{{` }] }));
  validateRequest('chat', JSON.parse(text), text, LIMITS);
});

test('look-alikes of the forbidden names are refused too: any case, with or without _ or -', () => {
  for (const k of ['apiBase', 'baseURL', 'API_BASE', 'api-base', 'user_config', 'extraHeaders', 'aws_secret_access_key']) {
    const e = refusal(chat({ metadata: { inner: { [k]: 'http://evil.example' } } }));
    assert.equal(e.code, 'forbidden_parameter', k);
    assert.equal(e.param, `metadata.inner.${k}`);
  }
  // A tool's own parameters are data: a `base_url` there is fine.
  validateRequest('chat', chat({ tools: [{ type: 'function', function: { name: 'f', parameters: { properties: { baseUrl: { type: 'string' } } } } }] }),
    JSON.stringify(chat({ tools: [{ type: 'function', function: { name: 'f', parameters: { properties: { baseUrl: { type: 'string' } } } } }] })), LIMITS);
});

test('a message other than an assistant turn needs content', () => {
  const e = refusal(chat({ messages: [{ role: 'user' }] }));
  assert.equal(e.param, 'messages[0].content');
  assert.match(e.message, /required for a user message/);
  validateRequest('chat', chat({ messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: null, tool_calls: [] }] }), '{}', LIMITS);
});

test('sampling parameters must be numbers within OpenAI\'s ranges', () => {
  assert.equal(refusal(chat({ temperature: 'hot' })).param, 'temperature');
  assert.match(refusal(chat({ temperature: 9 })).message, /between 0 and 2/);
  assert.equal(refusal(chat({ top_p: 1.5 })).param, 'top_p');
  assert.equal(refusal(chat({ presence_penalty: -3 })).param, 'presence_penalty');
  validateRequest('chat', chat({ temperature: 0, top_p: 1, frequency_penalty: -2, presence_penalty: null }), '{}', LIMITS);
});

test('a body that is not an object names no parameter (param null)', () => {
  const e = refusal([1, 2]);
  assert.equal(e.param, null);
  assert.equal(e.status, 400);
});

test('vLLM\'s structured-output schemas are data too: a property named base_url there is fine', () => {
  const schema = { type: 'object', properties: { base_url: { type: 'string' }, api_version: { type: 'string' } } };
  for (const extra of [{ guided_json: schema }, { structured_outputs: { json: schema } }]) {
    const body = chat(extra);
    validateRequest('chat', body, JSON.stringify(body), LIMITS);
  }
  // Elsewhere in structured_outputs it is still refused.
  assert.equal(refusal(chat({ structured_outputs: { base_url: 'x' } })).code, 'forbidden_parameter');
});

test('the Messages API\'s data subtrees (a tool\'s input_schema, a call\'s input, output_config\'s schema) are data in a Messages body only: in a chat request they are fields, walked as any', () => {
  const messagesBody = {
    model: 'm', max_tokens: 5, tools: [{ name: 'f', input_schema: { properties: { base_url: { type: 'string' } } } }],
    output_config: { format: { type: 'json_schema', schema: { properties: { api_key: { type: 'string' } } } } },
    messages: [{ role: 'assistant', content: [{ type: 'tool_use', id: 't', name: 'f', input: { base_url: 'http://a' } }] }],
  };
  checkDialectBody(messagesBody, JSON.stringify(messagesBody), true);
  const inChat: [Record<string, unknown>, string][] = [
    [{ tools: [{ type: 'function', function: { name: 'f', parameters: {} }, input_schema: { api_base: 'http://evil' } }] }, 'tools[0].input_schema.api_base'],
    [{ messages: [{ role: 'user', content: [{ type: 'text', text: 'x', input: { api_base: 'http://evil' } }] }] }, 'messages[0].content[0].input.api_base'],
    [{ output_config: { format: { schema: { api_base: 'http://evil' } } } }, 'output_config.format.schema.api_base'],
  ];
  for (const [extra, param] of inChat) {
    const e = refusal(chat(extra));
    assert.equal(e.code, 'forbidden_parameter', param);
    assert.equal(e.param, param);
  }
  // Elsewhere in a Messages body, refused as ever.
  assert.throws(() => checkDialectBody({ ...messagesBody, metadata: { api_base: 'x' } }, '"api_base"', true), (e: unknown) => e instanceof FabricError && e.param === 'metadata.api_base');
});

test('a body in another API\'s dialect: its nesting is refused (400) before any walk of it, a forbidden name\'s or the translation\'s, could overflow the stack', () => {
  for (const raw of [
    `{"model":"m","messages":[{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":{"a":${nested(200_000)}}}]}]}`,
    `{"model":"m","messages":[{"role":"user","content":"\\u0078"}],"x":${nested(200_000)}}`,
  ]) {
    assert.throws(() => checkDialectBody(JSON.parse(raw), raw, true), (e: unknown) => e instanceof FabricError && e.status === 400 && /levels deep/.test(e.message));
  }
});

test('stream_options only with stream: true (as OpenAI and vLLM answer), an empty one passes as vLLM lets it', () => {
  for (const stream of [false, undefined, null]) {
    const e = refusal(chat({ stream, stream_options: { include_usage: true } }));
    assert.equal(e.param, 'stream_options');
    assert.match(e.message, /only allowed when `stream` is true/);
  }
  assert.equal(refusal(chat({ stream: true, stream_options: 'yes' })).param, 'stream_options');
  for (const body of [chat({ stream: true, stream_options: { include_usage: true } }), chat({ stream_options: {} }), chat({ stream_options: null })]) {
    assert.doesNotThrow(() => validateRequest('chat', body, JSON.stringify(body), LIMITS));
  }
});

test('top_logprobs: an integer from 0 to 20, and only with logprobs: true (OpenAI\'s rule, one answer whatever the backend)', () => {
  for (const bad of [21, -1, 1.5, '3']) assert.equal(refusal(chat({ logprobs: true, top_logprobs: bad })).param, 'top_logprobs');
  const alone = refusal(chat({ top_logprobs: 2 }));
  assert.equal(alone.param, 'top_logprobs');
  assert.match(alone.message, /needs `logprobs` set to true/);
  for (const body of [chat({ logprobs: true, top_logprobs: 20 }), chat({ top_logprobs: 0 }), chat({ logprobs: true })]) {
    assert.doesNotThrow(() => validateRequest('chat', body, JSON.stringify(body), LIMITS));
  }
});

test('logprobs: a boolean on chat; on legacy completions an integer from 0 to 20 (what vLLM and Ollama take)', () => {
  for (const bad of [1, 'true', {}]) assert.equal(refusal(chat({ logprobs: bad })).param, 'logprobs');
  const completion = (logprobs: unknown): Record<string, unknown> => ({ model: 'm', prompt: 'x', logprobs });
  for (const bad of [21, -1, 2.5, true, '3']) {
    const e = refusal(completion(bad), 'completions');
    assert.equal(e.param, 'logprobs');
    assert.match(e.message, /integer from 0 to 20/);
  }
  for (const ok of [0, 5, 20, null]) assert.doesNotThrow(() => validateRequest('completions', completion(ok), '{}', LIMITS));
  assert.match(refusal(completion(true), 'completions').message, /`true` is the chat completions form/);
  // false asks for none, as OpenAI's SDKs mean it: not sent on (vLLM would read it as 0).
  assert.equal('logprobs' in validateRequest('completions', completion(false), '{}', LIMITS), false);
});

test('rerank: a query, documents (strings or {text}, made strings), top_n from 0, return_documents a boolean, at most max_documents', () => {
  const rr = (extra: Record<string, unknown>) => ({ model: 'rerank-general', query: 'pandas', documents: ['a', 'b'], ...extra });
  const ok = validateRequest('rerank', rr({ documents: ['a', { text: 'b' }], top_n: 0, return_documents: false }), '{}', LIMITS);
  assert.deepEqual(ok.documents, ['a', 'b']);
  for (const [body, param] of [
    [rr({ query: '' }), 'query'], [rr({ query: ['x'] }), 'query'], [{ model: 'm', documents: ['a'] }, 'query'],
    [rr({ documents: [] }), 'documents'], [rr({ documents: 'a' }), 'documents'], [rr({ documents: ['a', 'b', 'c', 'd'] }), 'documents'],
    [rr({ documents: ['a', { title: 'b' }] }), 'documents[1]'], [rr({ documents: [1] }), 'documents[0]'],
    [rr({ top_n: -1 }), 'top_n'], [rr({ top_n: 1.5 }), 'top_n'], [rr({ top_n: '2' }), 'top_n'],
    [rr({ return_documents: 'yes' }), 'return_documents'],
  ] as const) {
    const e = refusal(body, 'rerank');
    assert.equal(e.status, 400);
    assert.equal(e.param, param, JSON.stringify(body));
  }
  assert.match(refusal(rr({ documents: ['a', 'b', 'c', 'd'] }), 'rerank').message, /4 documents; at most 3 .*max_documents/);
});
