// "An answer a client has received is never unrecorded": the moment a client holds a whole
// answer — a unary body, an error, or a stream's closing `data: [DONE]` — its usage record is
// already in the spool file, even when the backend keeps its connection open after [DONE]; and
// the answer was sent by the writer's release after that write, not beside it.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { startFabric, type Fabric } from './helpers.ts';
import { tempDir } from './support/temp-dir.ts';

const dir = tempDir('fabric-order-');
let f: Fabric;
let backend: Server;
/**
 * Answers the writer has released after their spool write. The test holds each release 100 ms,
 * so an answer sent without waiting for it would reach the client before the count moves.
 */
let released = 0;

/** What the spool holds now (every segment). */
function spooled(): string {
  const spool = join(dir, 'spool');
  return readdirSync(spool).filter((n) => n.endsWith('.jsonl')).map((n) => readFileSync(join(spool, n), 'utf8')).join('');
}

before(async () => {
  // An OpenAI-style backend that sends [DONE] and then holds the stream open for 300 ms.
  backend = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => { body += c.toString(); });
    req.on('end', () => {
      const stream = (JSON.parse(body) as { stream?: boolean }).stream === true;
      const base = { id: 'chatcmpl-1', created: 1, model: 'held-model' };
      if (!stream) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ ...base, object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } }));
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: 'hi' }, finish_reason: null }] })}\n\n`);
      res.write(`data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', choices: [], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } })}\n\ndata: [DONE]\n\n`);
      setTimeout(() => res.end(), 300);
    });
  });
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  const port = (backend.address() as AddressInfo).port;
  f = await startFabric({
    engines: [],
    dataDir: dir,
    yaml: () => `
gateway:
  accounting: { flush_interval: 1h }
backends:
  held: { engine: openai-compatible, url: http://127.0.0.1:${port}/v1, model: held-model }
roles:
  chat: { kind: chat, backends: [held] }
`,
  });
  const writer = f.gw.app.accounting!.writer;
  const whenSpooled = writer.whenSpooled.bind(writer);
  writer.whenSpooled = (fn) => whenSpooled(() => setTimeout(() => { released++; fn(); }, 100));
});

after(async () => {
  await f.close();
  backend.close();
  rmSync(dir, { recursive: true, force: true });
});

test('a unary answer: sent only once the writer released it, with its record in the spool', async () => {
  const before = released;
  const r = await fetch(`${f.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'chat', messages: [{ role: 'user', content: 'x' }] }) });
  assert.equal(released, before + 1, 'the answer came before its spool write was done');
  await r.text();
  const id = r.headers.get('x-request-id')!;
  assert.ok(spooled().includes(`"id":"${id}"`), `${id} not spooled`);
});

test('an error answer to an inference request (its usage record too) waits for the spool write', async () => {
  const before = released;
  const r = await fetch(`${f.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }) });
  assert.equal(r.status, 404);
  assert.equal(released, before + 1);
  await r.text();
  assert.ok(spooled().includes(`"id":"${r.headers.get('x-request-id')}"`));
});

test('a stream: [DONE] reaches the client only once its record is in the spool, though the backend holds on after [DONE]', async () => {
  const before = released;
  const r = await fetch(`${f.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'chat', stream: true, messages: [{ role: 'user', content: 'x' }] }) });
  const id = r.headers.get('x-request-id')!;
  const reader = r.body!.getReader();
  let text = '';
  let atDone: string | undefined;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += Buffer.from(value).toString('utf8');
    if (atDone === undefined && text.includes('data: [DONE]')) {
      atDone = spooled();
      assert.equal(released, before + 1, '[DONE] came before the writer released the stream');
    }
  }
  assert.ok(atDone !== undefined, text);
  assert.ok(atDone.includes(`"id":"${id}"`), `[DONE] arrived before ${id} was spooled`);
  assert.ok(text.endsWith('data: [DONE]\n\n'), JSON.stringify(text.slice(-40)));
  assert.equal(text.split('data: [DONE]').length, 2, 'exactly one [DONE]');
});
