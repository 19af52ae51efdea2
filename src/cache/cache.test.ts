import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cacheable, cacheControl, cacheKey, type KeyParts } from './key.ts';
import { MemoryStore } from './memory-store.ts';
import { KeepingSink, heldBytes } from './response-cache.ts';
import type { Served, StreamSink } from '../core/gateway.ts';
import { answerIds, decodeEntry, encodeEntry, ownAnswer, type CacheEntry } from './entry.ts';

const parts: KeyParts = { scope: '', op: 'chat', route: 'chat-fast', salt: 's1', passthrough: undefined };
const body = { model: 'chat-fast', messages: [{ role: 'user', content: 'hi' }], temperature: 0, max_tokens: 8 };

test('the key: the same for the same request however written; another for anything that changes the answer', () => {
  const k = cacheKey(parts, body);
  assert.match(k, /^[0-9a-f]{64}$/);
  assert.equal(cacheKey(parts, { max_tokens: 8, temperature: 0, messages: [{ content: 'hi', role: 'user' }], model: 'local/chat' }), k, 'field order and the model name (the route) do not count');
  assert.equal(cacheKey(parts, { ...body, user: 'alice' }), k, 'user changes no answer');
  assert.equal(cacheKey(parts, { ...body, stream: false }), k, 'stream: false is no stream');
  const others = [
    cacheKey(parts, { ...body, stream: true }),
    cacheKey(parts, { ...body, max_tokens: 9 }),
    cacheKey(parts, { ...body, messages: [{ role: 'user', content: 'hi!' }] }),
    cacheKey({ ...parts, scope: 'key-1' }, body),
    cacheKey({ ...parts, route: 'chat-deep' }, body),
    cacheKey({ ...parts, salt: 's2' }, body),
    cacheKey({ ...parts, op: 'completions' }, body),
    cacheKey({ ...parts, passthrough: 'meta-llama/x' }, body),
  ];
  assert.equal(new Set([k, ...others]).size, others.length + 1);
  // Fields are not run together: {"a":"b,c"} is not {"a":"b","c":…}.
  assert.notEqual(cacheKey(parts, { model: 'm', a: 'x","b":"y' }), cacheKey(parts, { model: 'm', a: 'x', b: 'y' }));
});

test('what is cacheable: embeddings always; chat at temperature 0 or with a seed; anything under when: always', () => {
  assert.equal(cacheable('embeddings', { input: 'x' }, 'deterministic'), true);
  assert.equal(cacheable('chat', { temperature: 0 }, 'deterministic'), true);
  assert.equal(cacheable('chat', { seed: 3, temperature: 0.9 }, 'deterministic'), true);
  assert.equal(cacheable('chat', {}, 'deterministic'), false, 'the default temperature samples');
  assert.equal(cacheable('completions', { temperature: 0.2 }, 'deterministic'), false);
  assert.equal(cacheable('chat', { seed: 'x' }, 'deterministic'), false);
  assert.equal(cacheable('chat', {}, 'always'), true);
});

test('Cache-Control: no-cache skips the lookup, no-store the keeping, max-age bounds an entry\'s age (0: no lookup)', () => {
  assert.deepEqual(cacheControl(undefined), { lookup: true, store: true, maxAgeMs: undefined });
  assert.deepEqual(cacheControl('no-cache'), { lookup: false, store: true, maxAgeMs: undefined });
  assert.deepEqual(cacheControl('No-Store'), { lookup: true, store: false, maxAgeMs: undefined }, 'may be answered from what is kept');
  assert.deepEqual(cacheControl('no-cache, no-store'), { lookup: false, store: false, maxAgeMs: undefined });
  assert.deepEqual(cacheControl('max-age=60, must-revalidate'), { lookup: true, store: true, maxAgeMs: 60_000 });
  assert.deepEqual(cacheControl('max-age="5"'), { lookup: true, store: true, maxAgeMs: 5_000 });
  assert.deepEqual(cacheControl('max-age=0'), { lookup: false, store: true, maxAgeMs: 0 });
  assert.deepEqual(cacheControl('max-age=-1'), { lookup: true, store: true, maxAgeMs: undefined }, 'an invalid max-age is ignored');
});

const entry = (body: string): CacheEntry => ({ body, role: 'r', backend: 'b', model: 'm', usage: undefined, storedAt: 0 });

test('the memory store: bounded in bytes, least recently used out first, entries gone at their ttl', () => {
  let now = 1_000;
  const s = new MemoryStore(3 * (100 + 1 + 256), () => now);
  s.set('a', entry('A'), 100, 10_000);
  s.set('b', entry('B'), 100, 10_000);
  s.set('c', entry('C'), 100, 10_000);
  assert.equal(s.size, 3);
  assert.equal(s.get('a')?.body, 'A', 'a is now the most recent');
  s.set('d', entry('D'), 100, 10_000);
  assert.equal(s.get('b'), undefined, 'b, the coldest, made room');
  assert.deepEqual(['a', 'c', 'd'].map((k) => s.get(k)?.body), ['A', 'C', 'D']);
  assert.equal(s.evictions, 1);
  assert.equal(s.bytes, 3 * 357);
  // Replacing an entry does not count it twice.
  s.set('d', entry('D2'), 100, 10_000);
  assert.equal(s.bytes, 3 * 357);
  assert.equal(s.get('d')?.body, 'D2');
  now += 10_000;
  assert.equal(s.get('a'), undefined, 'expired');
  assert.equal(s.bytes, 2 * 357);
  // Too large for the whole store: not kept, nothing evicted for it.
  s.set('huge', entry('H'), 10_000, 10_000);
  assert.equal(s.get('huge'), undefined);
  assert.equal(s.size, 2);
  // A smaller max_size (a reload) lets the coldest go until the rest fit.
  s.resize(400);
  assert.equal(s.size, 1);
  assert.ok(s.bytes <= 400);
});

test('an entry round-trips through its Redis form; anything else read back is a miss', () => {
  const e: CacheEntry = { body: 'data: {"x":"é"}\n\ndata: [DONE]\n\n', role: 'chat-fast', backend: 'armitage-qwen', model: 'Qwen', usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 }, storedAt: 123 };
  assert.deepEqual(decodeEntry(encodeEntry(e)), e);
  assert.deepEqual(decodeEntry(encodeEntry({ ...e, id: 'chatcmpl-1', created: 5 })), { ...e, id: 'chatcmpl-1', created: 5 });
  assert.deepEqual(decodeEntry(encodeEntry({ ...e, usage: undefined })), { ...e, usage: undefined });
  for (const bad of [null, 42, 'not json', '{"body":1}', JSON.stringify({ ...e, storedAt: 'x' })]) assert.equal(decodeEntry(bad), undefined);
});

test('a hit\'s own answer: every "id" of the kept answer (a stream\'s every chunk) and its "created" replaced, nothing else', () => {
  const chunk = (content: string): string => `data: {"id":"chatcmpl-abc123","object":"chat.completion.chunk","created":1700000000,"model":"m","choices":[{"index":0,"delta":{"content":${JSON.stringify(content)}}}]}\n\n`;
  const body = chunk('the "id":"chatcmpl-abc123" quoted') + chunk(' more') + 'data: [DONE]\n\n';
  const ids = answerIds(body);
  assert.deepEqual(ids, { id: 'chatcmpl-abc123', created: 1700000000 });
  const own = ownAnswer({ ...entry(body), ...ids }, 'req_42', 1800000000);
  assert.equal((own.match(/"id":"chatcmpl-req_42"/g) ?? []).length, 2);
  assert.equal((own.match(/"created":1800000000/g) ?? []).length, 2);
  assert.match(own, /the \\"id\\":\\"chatcmpl-abc123\\" quoted/, 'text in the answer that looks like its id is the answer\'s, untouched');
  assert.ok(own.endsWith('data: [DONE]\n\n'));
  // Without an id (OpenAI's embeddings): as kept.
  assert.equal(ownAnswer(entry('{"object":"list","data":[]}'), 'req_1', 1), '{"object":"list","data":[]}');
  assert.deepEqual(answerIds('{"object":"list","data":[]}'), {});
});

test('an answer\'s size as kept: its UTF-8 bytes, or two bytes a character once anything is past ASCII (as V8 holds it)', () => {
  const ascii = 'plain text';
  assert.equal(heldBytes(ascii, Buffer.byteLength(ascii)), 10);
  const accented = 'café au lait'; // 12 characters, 13 UTF-8 bytes, held two bytes each
  assert.equal(heldBytes(accented, Buffer.byteLength(accented)), 24);
  const cjk = '東京'; // 2 characters, 6 UTF-8 bytes
  assert.equal(heldBytes(cjk, Buffer.byteLength(cjk)), 6);
});

test('streams being kept share one bound: past it, a stream keeps nothing and lets go of what it held; the client gets every byte either way', () => {
  const got: string[] = [];
  const inner: StreamSink = { begin() {}, write: (d) => { got.push(String(d)); return true; }, onDrain() {}, end() {} };
  const budget = { held: 0, max: 10 };
  const a = new KeepingSink(inner, 100, budget);
  const b = new KeepingSink(inner, 100, budget);
  a.begin({} as Served);
  a.write('123456');
  assert.equal(budget.held, 6);
  b.write(Buffer.from('12345'));
  assert.equal(b.kept(), undefined, 'over the shared bound: b keeps nothing');
  assert.equal(budget.held, 6);
  assert.deepEqual(a.kept(), { text: '123456', bytes: 6 });
  assert.equal(budget.held, 0, 'a\'s bytes let go once taken');
  const c = new KeepingSink(inner, 4, budget);
  c.write('12345');
  assert.equal(c.kept(), undefined, 'past its own max_entry');
  c.dispose();
  assert.equal(budget.held, 0);
  assert.deepEqual(got, ['123456', '12345', '12345']);
});
