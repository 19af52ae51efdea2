// Bodies still arriving are bounded all together (gateway.limits.max_body_in_flight): clients
// that send most of a body and stall hold at most that much memory; a body past it is refused
// with a 503 and Retry-After, on the fast lane and on node:http (chunked), and the budget comes
// back as soon as a stalled body's connection closes.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rawRequest, startFabric, chat, post, type Fabric } from './helpers.ts';

let f: Fabric;
const MIB = 1024 * 1024;

before(async () => {
  f = await startFabric({
    engines: [{ name: 'vllm', protocol: 'vllm', model: 'm', kind: 'chat', timing: { ttftMs: 1, tokensPerSecond: 5000 } }],
    yaml: (url) => `
gateway:
  limits: { max_body: 1MiB, max_body_in_flight: 2MiB }
backends:
  b: { engine: vllm, url: ${url('vllm')}/v1, model: m }
roles:
  chat-fast: { kind: chat, backends: [b] }
`,
  });
});

after(() => f.close());

const HEAD = 'POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n';

/** Sends `bytes` and keeps the connection open; `answer` is what came back by the time it closed. */
const open = (bytes: string): ReturnType<typeof rawRequest> => rawRequest(f.url, bytes);

/** A 1 MiB body declared, 100 KiB of it sent. */
const stalledFast = (): ReturnType<typeof open> => open(`${HEAD}Content-Length: ${MIB}\r\n\r\n{"model":"chat-fast","messages":[{"role":"user","content":"${'a'.repeat(100 * 1024)}`);

test('two stalled 1 MiB bodies fill a 2 MiB budget: the next body is a 503 with Retry-After (fast lane and node:http); closing one gives its share back', { timeout: 20_000 }, async () => {
  const a = stalledFast();
  const b = stalledFast();
  await new Promise((r) => setTimeout(r, 200));
  // Whole with its head: no share taken, served.
  assert.equal((await post(f.url, '/v1/chat/completions', chat('chat-fast'))).status, 200);
  for (const [lane, bytes] of [['fast', `${HEAD}Content-Length: 5000\r\n\r\n{"mo`], ['node (chunked)', `${HEAD}Transfer-Encoding: chunked\r\n\r\n4\r\n{"mo\r\n`]] as const) {
    const c = open(bytes);
    const answer = await c.answer;
    assert.match(answer, /^HTTP\/1\.1 503 /, `${lane}: ${answer.slice(0, 300)}`);
    assert.match(answer, /retry-after: 1/i);
    assert.match(answer, /"code":"gateway_overloaded"/);
    assert.match(answer, /max_body_in_flight/);
  }
  a.sock.destroy();
  await a.answer;
  // The share is back: a whole 1 MiB body, sent in pieces, is read and served.
  const content = 'b'.repeat(MIB - 200);
  const big = await post(f.url, '/v1/chat/completions', chat('chat-fast', content));
  assert.equal(big.status, 200, big.text.slice(0, 300));
  b.sock.destroy();
  await b.answer;
});

test('a body refused before it was read (a 404 before its bytes came) gives its share back at once, though its client keeps the connection open', { timeout: 20_000 }, async () => {
  // Without a key or a route, nobody may hold the budget: two 1 MiB heads to no route, kept open.
  const held = [rawRequest(f.url, `POST /nope HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: ${MIB}\r\n\r\n`), rawRequest(f.url, `POST /nope HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: ${MIB}\r\n\r\n`)];
  for (const h of held) h.sock.allowHalfOpen = true;
  await new Promise((r) => setTimeout(r, 300));
  // A body that comes after its head still has room.
  const c = rawRequest(f.url, `${HEAD}Connection: close\r\nContent-Length: 2000\r\n\r\n{"mo`);
  await new Promise((r) => setTimeout(r, 100));
  const rest = JSON.stringify(chat('chat-fast')).slice(4);
  c.sock.write(rest + ' '.repeat(2000 - 4 - rest.length));
  assert.match(await c.answer, /^HTTP\/1\.1 200 /);
  for (const h of held) h.sock.destroy();
});
