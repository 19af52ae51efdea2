// A request that does not arrive in time, on either lane, with the server's timeouts shortened:
// the client's 408 carries the request's own id, and the request has one log line that says 408
// (node:http had answered 408 while the request was logged as a client gone, 499).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rawRequest, startFabric, type Fabric } from './helpers.ts';

let f: Fabric;

before(async () => {
  f = await startFabric({
    engines: [{ name: 'vllm', protocol: 'vllm', model: 'm', kind: 'chat', timing: { ttftMs: 1, tokensPerSecond: 5000 } }],
    yaml: (url) => `
backends:
  b: { engine: vllm, url: ${url('vllm')}/v1, model: m }
roles:
  chat-fast: { kind: chat, backends: [b] }
`,
    requestTimeouts: { headersMs: 300, requestMs: 600 },
  });
});

after(() => f.close());

/** Sends bytes, then nothing more; resolves with all the gateway sent before it closed. */
const stalled = (bytes: string): Promise<string> => rawRequest(f.url, bytes).answer;

test('a body that does not come in time: 408 with the request\'s own id, and one line for it, a 408 (fast lane and node:http)', async () => {
  const head = 'POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n';
  for (const [lane, bytes] of [['fast', `${head}Content-Length: 80\r\n\r\n{"mod`], ['node', `${head}Transfer-Encoding: chunked\r\n\r\n5\r\n{"mod\r\n`]] as const) {
    const from = f.logs.length;
    const answer = await stalled(bytes);
    assert.match(answer, /^HTTP\/1\.1 408 /, `${lane}: ${answer.slice(0, 200)}`);
    assert.match(answer, /"code":"request_timeout"/);
    const id = /x-request-id: (req_\w+)/i.exec(answer)?.[1];
    assert.ok(id !== undefined, `${lane}: the answer has a request id`);
    await new Promise((r) => setTimeout(r, 200));
    f.gw.app.log.flush();
    const lines = f.logs.slice(from).map((l) => JSON.parse(l)).filter((r) => r.msg === 'request' || r.msg === 'request refused');
    assert.deepEqual(lines.map((r) => [r.msg, r.id, r.status, r.code]), [['request', id, 408, 'request_timeout']], `${lane}: ${JSON.stringify(lines)}`);
  }
});

test('a head that does not come in time: 408 and its one line, with the id the client got', async () => {
  const from = f.logs.length;
  const answer = await stalled('POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\n');
  assert.match(answer, /^HTTP\/1\.1 408 /);
  const id = /x-request-id: (req_\w+)/i.exec(answer)?.[1];
  await new Promise((r) => setTimeout(r, 100));
  f.gw.app.log.flush();
  const lines = f.logs.slice(from).map((l) => JSON.parse(l)).filter((r) => r.msg === 'request' || r.msg === 'request refused');
  assert.deepEqual(lines.map((r) => [r.id, r.status]), [[id, 408]]);
});
