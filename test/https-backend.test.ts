// HTTPS backends (the cloud; https-pool.ts on undici) held to what plain-HTTP ones are: a client
// that leaves frees its request wherever it is (waiting for a connection, waiting for the
// backend's head, mid-stream), timeouts run while a request waits for a connection, and
// redirects and keys are handled as on HTTP. The backend is a node:https server with a
// certificate this process trusts; a simulated vLLM is the fallback.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import { request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { startFabric, chat, post, eventually, type Fabric } from './helpers.ts';
import { trustedCert } from './support/tls-cert.ts';
import { waitFor, FAST } from '../src/sim/test-helpers.ts';
import type { HttpsPool } from '../src/core/https-pool.ts';

type Mode = (req: IncomingMessage, res: ServerResponse) => void;

/** The HTTPS backend: `mode` answers each inference request; what it saw is counted. */
const be = {
  mode: ((_req, res) => answer(res)) as Mode,
  received: 0,
  /** Requests whose connection closed before their answer was complete: aborted by the gateway. */
  cut: 0,
  auth: [] as (string | undefined)[],
  held: [] as ServerResponse[],
  open: new Set<Socket>(),
  /** The last request's body and content type. */
  body: Buffer.alloc(0),
  type: undefined as string | undefined,
};
let server: Server;
let f: Fabric;

const hold: Mode = (_req, res) => { be.held.push(res); };
const COMPLETION = JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion', created: 1, model: 'gpt-4o-mini', choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } });
function answer(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(COMPLETION) });
  res.end(COMPLETION);
}
const chunk = (content: string): string => `data: ${JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o-mini', choices: [{ index: 0, delta: { content }, finish_reason: null }] })}\n\n`;

before(async () => {
  const { cert, key } = trustedCert();
  server = createServer({ cert, key }, (req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      be.body = Buffer.concat(parts);
      be.type = req.headers['content-type'];
      be.received++;
      be.auth.push(req.headers.authorization);
      res.on('close', () => { if (!res.writableFinished) be.cut++; });
      be.mode(req, res);
    });
  });
  server.on('secureConnection', (s: Socket) => { be.open.add(s); s.on('close', () => be.open.delete(s)); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `https://127.0.0.1:${(server.address() as { port: number }).port}/v1`;
  f = await startFabric({
    engines: [{ name: 'spare', protocol: 'vllm', model: 'Qwen/Qwen2.5-7B-Instruct-AWQ', kind: 'chat', timing: FAST }],
    env: { CLOUD_KEY: 'sk-backend-own-key-0123456789' },
    yaml: (u) => `
backends:
  cloud: { engine: openai, url: ${url}, model: gpt-4o-mini, api_key: env:CLOUD_KEY, max_connections: 1, max_retries: 0,
           timeouts: { connect: 2s, first_byte: 500ms, idle: 2s, total: 6s }, health: { failure_threshold: 100 } }
  spare-qwen: { engine: vllm, url: ${u('spare')}/v1, model: Qwen/Qwen2.5-7B-Instruct-AWQ }
  cloud-whisper: { engine: openai, url: ${url}, model: whisper-1, api_key: env:CLOUD_KEY, max_retries: 0 }
roles:
  audio: { kind: transcription, backends: [cloud-whisper] }
  cloud-chat: { kind: chat, backends: [cloud], fallbacks: [local] }
  local: { kind: chat, backends: [spare-qwen] }
`,
  });
});

after(async () => {
  for (const s of be.open) s.destroy();
  await f.close();
  await new Promise((r) => server.close(r));
});

/** An inference request on a connection of its own, which the test may destroy (the client leaving). */
function send(body: unknown): { req: ReturnType<typeof request>; status: Promise<number> } {
  const text = JSON.stringify(body);
  const req = request(`${f.url}/v1/chat/completions`, { method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) } });
  req.on('error', () => {});
  const status = new Promise<number>((resolve) => {
    req.on('response', (res) => { res.resume(); res.on('end', () => resolve(res.statusCode!)); res.on('error', () => resolve(-1)); });
    req.on('close', () => resolve(-1));
  });
  req.end(text);
  return { req, status };
}

async function metrics(): Promise<{ inFlight: number; outstanding: number }> {
  const text = await (await fetch(`${f.url}/metrics`)).text();
  const sample = (series: string): number => Number(text.split('\n').find((l) => l.startsWith(series + ' '))?.slice(series.length + 1));
  return { inFlight: sample('fabric_requests_in_flight'), outstanding: sample('fabric_backend_outstanding_requests{backend="cloud"}') };
}

const pool = (): HttpsPool => f.gw.app.gateway.backends.get('cloud')!.pool as HttpsPool;

/** Answers every held request, so the next test starts with the connection free. */
async function releaseHeld(): Promise<void> {
  for (const res of be.held.splice(0)) if (!res.destroyed) answer(res);
  await eventually(metrics, (m) => m.inFlight === 0 && m.outstanding === 0);
}

test('clients that leave while their requests wait for a connection to an HTTPS backend free them at once: in-flight counts drop, the queue empties, the backend never sees them', async () => {
  be.mode = hold;
  const blocker = send(chat('cloud-chat', 'takes the one connection'));
  await waitFor(() => be.received === 1, 3000, 'the blocker at the backend');
  const received = be.received;
  const big = 'x'.repeat(200 * 1024);
  const left = Array.from({ length: 20 }, () => send(chat('cloud-chat', big)));
  assert.deepEqual(await eventually(metrics, (m) => m.inFlight === 21), { inFlight: 21, outstanding: 21 });
  for (const r of left) r.req.destroy();
  // Before, each stayed queued in undici's Pool with its 200 KB body until the connection freed
  // up (500 of them held 297 MiB of heap), and counted in flight all that time.
  assert.deepEqual(await eventually(metrics, (m) => m.inFlight === 1, 2000), { inFlight: 1, outstanding: 1 }, 'only the blocker is still in flight');
  assert.equal(pool().queued, 0, 'the abandoned requests left the queue with their bodies');
  be.mode = (_req, res) => answer(res);
  await releaseHeld();
  assert.equal(await blocker.status, 200);
  assert.equal((await post(f.url, '/v1/chat/completions', chat('cloud-chat'))).status, 200);
  assert.equal(be.received, received + 1, 'none of the abandoned requests reached the backend');
});

test('the first-byte timeout runs while a stream waits for a connection to an HTTPS backend: it falls back in time', async () => {
  be.mode = hold;
  const blocker = send(chat('cloud-chat', 'takes the one connection'));
  await waitFor(() => be.received >= 1 && be.held.length === 1, 3000, 'the blocker at the backend');
  const received = be.received;
  const t = performance.now();
  const s = await post(f.url, '/v1/chat/completions', { ...chat('cloud-chat'), stream: true });
  const ms = performance.now() - t;
  assert.equal(s.status, 200);
  assert.equal(s.headers.get('x-fabric-backend'), 'spare-qwen');
  assert.match(s.text, /data: \[DONE\]/);
  // first_byte is 500 ms; before, it waited for the connection (the blocker's whole 6 s total).
  assert.ok(ms < 3000, `fell back after ${Math.round(ms)} ms`);
  be.mode = (_req, res) => answer(res);
  await releaseHeld();
  assert.equal(await blocker.status, 200);
  assert.equal(be.received, received, 'the stream that timed out in the queue never reached the backend');
});

test('a client that leaves while an HTTPS backend has not answered its head, or mid-stream, aborts the backend request; everything is released', async () => {
  be.mode = hold;
  const cut = be.cut;
  const waiting = send(chat('cloud-chat'));
  await waitFor(() => be.held.length === 1, 3000, 'the request at the backend');
  waiting.req.destroy();
  await waitFor(() => be.cut === cut + 1, 3000, 'the backend request aborted');
  assert.deepEqual(await eventually(metrics, (m) => m.inFlight === 0), { inFlight: 0, outstanding: 0 });
  be.held.length = 0;
  be.mode = (_req, res) => {
    be.held.push(res);
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(chunk('hello'));
  };
  const streaming = send({ ...chat('cloud-chat'), stream: true });
  await waitFor(() => be.held.length === 1, 3000, 'the stream begun');
  await new Promise((r) => setTimeout(r, 50));
  streaming.req.destroy();
  await waitFor(() => be.cut === cut + 2, 3000, 'the backend stream aborted');
  assert.deepEqual(await eventually(metrics, (m) => m.inFlight === 0), { inFlight: 0, outstanding: 0 });
  be.held.length = 0;
  be.mode = (_req, res) => answer(res);
  assert.equal((await post(f.url, '/v1/chat/completions', chat('cloud-chat'))).status, 200, 'the one connection slot is free again');
});

test('an HTTPS backend that closes kept-alive connections as requests go out (the keep-alive race) fails none of them: each is sent again on a new connection, at once, and not counted against it', async () => {
  // Each connection carries one request; the next one on it finds it closing, unanswered.
  const served = new WeakSet<Socket>();
  be.mode = (req, res) => {
    if (served.has(req.socket)) req.socket.destroy();
    else {
      served.add(req.socket);
      answer(res);
    }
  };
  const cloud = f.gw.app.gateway.backends.get('cloud')!;
  const lastErrorAt = cloud.lastErrorAt;
  for (let i = 0; i < 10; i++) {
    const r = await post(f.url, '/v1/chat/completions', chat('cloud-chat'));
    assert.equal(r.headers.get('x-fabric-backend'), 'cloud', `request ${i}: ${r.text.slice(0, 200)}`);
    assert.equal(r.headers.get('x-fabric-attempts'), '1');
  }
  assert.equal(cloud.consecutiveFailures, 0);
  assert.equal(cloud.lastErrorAt, lastErrorAt, 'no failure recorded');
  be.mode = (_req, res) => answer(res);
});

test('an HTTPS backend: its redirects are not followed, it gets its own key and never the client\'s, at most max_connections connections, kept alive', async () => {
  be.auth.length = 0;
  const received = be.received;
  for (const status of [301, 302, 307, 308]) {
    be.mode = (_req, res) => { res.writeHead(status, { location: `${f.url}/v1/chat/completions` }); res.end(); };
    for (const stream of [false, true]) {
      const r = await post(f.url, '/v1/chat/completions', { ...chat('cloud-chat'), stream }, { authorization: 'Bearer the-client-own-key' });
      assert.equal(r.headers.get('x-fabric-backend'), 'spare-qwen', `${status}: fell back`);
    }
  }
  assert.equal(be.received, received + 8, 'each redirect answered once, never followed');
  be.mode = (_req, res) => setTimeout(() => answer(res), 20);
  const connections = new Set<Socket>();
  server.on('secureConnection', (s: Socket) => connections.add(s));
  const all = await Promise.all(Array.from({ length: 6 }, () => post(f.url, '/v1/chat/completions', chat('cloud-chat'), { authorization: 'Bearer the-client-own-key' })));
  assert.deepEqual(all.map((r) => r.headers.get('x-fabric-backend')), Array(6).fill('cloud'));
  assert.ok(connections.size <= 1, `max_connections 1: ${connections.size} new connections`);
  assert.deepEqual([...new Set(be.auth)], ['Bearer sk-backend-own-key-0123456789']);
});

test('an audio upload to an HTTPS backend arrives whole: the same file bytes, the backend\'s model, under the client\'s boundary', async () => {
  be.mode = (_req, res) => {
    const text = JSON.stringify({ text: 'heard over TLS', usage: { type: 'duration', seconds: 2 } });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
  const audio = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 31) % 256));
  const form = new FormData();
  form.set('model', 'audio');
  form.set('file', new Blob([audio], { type: 'audio/wav' }), 'tls.wav');
  const r = await fetch(`${f.url}/v1/audio/transcriptions`, { method: 'POST', body: form });
  assert.equal(r.status, 200, await r.clone().text());
  assert.deepEqual(await r.json(), { text: 'heard over TLS', usage: { type: 'duration', seconds: 2 } });
  const got = await new Response(be.body, { headers: { 'content-type': be.type! } }).formData();
  assert.equal(got.get('model'), 'whisper-1');
  assert.ok(Buffer.from(await (got.get('file') as File).arrayBuffer()).equals(audio));
  assert.equal(be.auth.at(-1), 'Bearer sk-backend-own-key-0123456789');
  be.mode = (_req, res) => answer(res);
});
