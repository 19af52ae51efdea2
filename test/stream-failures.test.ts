// Streams that go wrong in the ways real engines and real clients make them go wrong, over
// real loopback HTTP: a raw-TCP mock backend that sends exact bytes (garbage, error events,
// keep-alive pings, [DONE] then silence, a cut mid-event), a slow-reading raw client, and the
// official openai SDK. Each test checks the bytes or events the client receives and what the
// gateway concluded about the backend's health. FABRIC_TEST_FAST_LANE=0 runs it on node:http.

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import OpenAI from 'openai';
import { startFabric, chat, waitForLog, type Fabric } from './helpers.ts';
import { streamAttempt } from '../src/core/stream-attempt.ts';
import { Cancel, Deadlines } from '../src/core/upstream.ts';
import type { Served, StreamSink } from '../src/core/gateway.ts';

// ---- exact bytes ----

const CHUNKED = 'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n';
/** No length, no chunking: the body ends when the connection does. */
const UNTIL_CLOSE = 'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n';
const NDJSON_CHUNKED = 'HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\n\r\n';
const frame = (s: string): string => `${Buffer.byteLength(s).toString(16)}\r\n${s}\r\n`;
const LAST_FRAME = '0\r\n\r\n';
const DONE = 'data: [DONE]\n\n';
const ev = (o: unknown): string => `data: ${JSON.stringify(o)}\n\n`;
const base = { id: 'chatcmpl-mock', object: 'chat.completion.chunk', created: 1, model: 'mock' };
const delta = (content: string): string => ev({ ...base, choices: [{ index: 0, delta: { content }, finish_reason: null }] });
const finish = ev({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] });
const usageOnly = ev({ ...base, choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } });
const vllmError = (message: string, code: number, type = 'BadRequestError'): string =>
  ev({ error: { object: 'error', message, type, param: null, code } });

// ---- the mock backend: the first path segment picks the scenario ----

interface Req { path: string; body: Record<string, unknown>; conn: number; head: string }
type Scenario = (s: Socket, req: Req) => void;

/** What the mock saw: every request (with its connection number) and when connections closed. */
const seen: { scenario: string; conn: number }[] = [];
const closedAt = new Map<number, number>();

const scenarios: Record<string, Scenario> = {
  good(s, req) {
    const so = req.body.stream_options as { include_usage?: boolean } | undefined;
    s.write(CHUNKED + frame(delta('Hello')) + frame(delta(' world')) + frame(finish));
    if (so?.include_usage === true) s.write(frame(usageOnly));
    s.write(frame(DONE));
    // The framing's end a moment after [DONE], as uvicorn writes it: the connection is reused.
    setTimeout(() => { if (!s.destroyed) s.write(LAST_FRAME); }, 20);
  },
  bulk(s) {
    let out = CHUNKED;
    for (let i = 0; i < BULK_EVENTS; i++) out += frame(delta(BULK_TEXT));
    s.write(out + frame(finish) + frame(DONE) + LAST_FRAME);
  },
  // The reviewer's bytes: a first event cut short, then text that is no event stream at all.
  // Large chunks for as long as the gateway reads them (the backend's own backpressure respected).
  flood(s) {
    s.write(CHUNKED);
    const burst = frame(delta('y'.repeat(16_000))).repeat(16);
    const pump = (): void => {
      while (!s.destroyed && s.write(burst)) { /* until the socket's buffer is full */ }
      if (!s.destroyed) s.once('drain', pump);
    };
    pump();
  },
  garbage(s) {
    s.write(CHUNKED + frame('data: {"id":"chatcmpl-mock","choices":[{"delta":{"content":"Hel\n\nthis is not an event stream\n\n') + LAST_FRAME);
  },
  // vLLM: an exception inside its stream generator becomes an error event (labelled 400), then [DONE].
  'error-event'(s) {
    s.write(CHUNKED + frame(vllmError('CUDA error: an illegal memory access was encountered', 400)) + frame(DONE) + LAST_FRAME);
  },
  'object-error'(s) {
    s.write(CHUNKED + frame(ev({ object: 'error', message: 'engine is dead', type: 'InternalServerError', param: null, code: 500 })) + frame(DONE) + LAST_FRAME);
  },
  'context-event'(s) {
    s.write(CHUNKED + frame(vllmError("This model's maximum context length is 4096 tokens. However, you requested 5000 tokens (4990 in the messages, 10 in the completion). Please reduce the length of the messages or completion.", 400)) + frame(DONE) + LAST_FRAME);
  },
  // Keep-alive comments and nothing else.
  pings(s) {
    s.write(CHUNKED + frame(': ping\n\n'));
    const t = setInterval(() => { if (!s.destroyed) s.write(frame(': ping\n\n')); }, 100);
    const stop = setTimeout(() => s.destroy(), 3000);
    s.on('close', () => { clearInterval(t); clearTimeout(stop); });
  },
  'pings-then-chunk'(s) {
    s.write(CHUNKED + frame(': ping\n\n'));
    setTimeout(() => { if (!s.destroyed) s.write(frame(': ping\n\n')); }, 100);
    setTimeout(() => { if (!s.destroyed) s.write(frame(delta('Hello')) + frame(': ping\n\n') + frame(finish) + frame(DONE) + LAST_FRAME); }, 200);
  },
  // A complete answer, then the connection held open (no end of framing) for 3 s.
  held(s) {
    s.write(CHUNKED + frame(delta('Hello')) + frame(finish) + frame(DONE));
    setTimeout(() => { if (!s.destroyed) s.end(LAST_FRAME); }, 3000);
  },
  // The backend ends in the middle of an event.
  cut(s) {
    s.end(UNTIL_CLOSE + delta('Hello') + 'data: {"id":"chatcmpl-mock","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":" wor');
  },
  // Tokens whose text is "[DONE]", and no real [DONE].
  'done-token'(s) {
    s.end(UNTIL_CLOSE + delta('[DONE]') + delta('data: [DONE]') + delta(' more'));
  },
  'done-token-ok'(s) {
    s.end(UNTIL_CLOSE + delta('[DONE]') + delta('data: [DONE]') + finish + DONE);
  },
  // vLLM when generation fails mid-stream: its error event, then [DONE].
  'mid-error'(s) {
    s.write(CHUNKED + frame(delta('Hel')));
    setTimeout(() => { if (!s.destroyed) s.write(frame(vllmError('EngineCore encountered an issue', 500, 'InternalServerError')) + frame(DONE) + LAST_FRAME); }, 10);
  },
  // A proxy that echoes the key it was sent in its 401 (as LiteLLM-style servers do).
  'echo-key'(s, req) {
    const auth = /\r\nauthorization: *([^\r]*)/i.exec(req.head)?.[1] ?? '';
    const body = JSON.stringify({ error: { message: `Invalid API key provided: ${auth}; raw: ${auth.slice(7)}`, type: 'invalid_request_error', code: 'invalid_api_key' } });
    s.write(`HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  },
  // The same, as the first event of a 200 stream.
  'echo-key-event'(s, req) {
    const auth = /\r\nauthorization: *([^\r]*)/i.exec(req.head)?.[1] ?? '';
    s.write(CHUNKED + frame(ev({ error: { message: `Invalid API key provided: ${auth.slice(7)}`, type: 'invalid_request_error', code: 401 } })) + frame(DONE) + LAST_FRAME);
  },
  // The same, after the stream has begun (its first chunk gone to the client), in the same write.
  'echo-key-midstream'(s, req) {
    const auth = /\r\nauthorization: *([^\r]*)/i.exec(req.head)?.[1] ?? '';
    s.write(CHUNKED + frame(delta('Hel')));
    setTimeout(() => { if (!s.destroyed) s.write(frame(delta('lo') + ev({ error: { message: `upstream said: key ${auth.slice(7)} is over its limit`, type: 'server_error', code: 500 } })) + frame(DONE) + LAST_FRAME); }, 10);
  },
  // OpenAI when the account's credit is spent: a 429 that no wait will cure.
  quota(s) {
    const body = JSON.stringify({ error: { message: 'You exceeded your current quota, please check your plan and billing details.', type: 'insufficient_quota', param: null, code: 'insufficient_quota' } });
    s.write(`HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  },
  // A rate limit that passes: a 429 worth retrying later.
  busy(s) {
    const body = JSON.stringify({ error: { message: 'Rate limit reached for requests', type: 'requests', param: null, code: 'rate_limit_exceeded' } });
    s.write(`HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: 0\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  },
  // A whole answer without `usage`, as some OpenAI-compatible servers send it.
  'no-usage'(s, req) {
    const answer = req.path.endsWith('/chat/completions')
      ? { id: 'chatcmpl-mock', object: 'chat.completion', created: 1, model: 'mock', choices: [{ index: 0, message: { role: 'assistant', content: NO_USAGE_CHAT }, finish_reason: 'stop' }] }
      : { id: 'cmpl-mock', object: 'text_completion', created: 1, model: 'mock', choices: [{ index: 0, text: NO_USAGE_TEXT, logprobs: null, finish_reason: 'stop' }] };
    const body = JSON.stringify(answer);
    s.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  },
  // A chunk every 20 ms for two seconds (a client leaves in the middle).
  // Megabytes at once (enough to fill a client's socket that is not read), then a slow drip for ever.
  'burst-drip'(s) {
    s.write(CHUNKED + frame(delta('z'.repeat(16_000))).repeat(256));
    const t = setInterval(() => { if (!s.destroyed) s.write(frame(delta('.'))); }, 50);
    s.on('close', () => clearInterval(t));
  },
  drip(s) {
    s.write(CHUNKED);
    let i = 0;
    const t = setInterval(() => {
      if (s.destroyed || i++ > 100) return clearInterval(t);
      s.write(frame(delta(`t${i} `)));
    }, 20);
    s.on('close', () => clearInterval(t));
  },
  // Six content chunks, then the connection drops.
  six(s) {
    s.write(CHUNKED + ['a', 'b', 'c', 'd', 'e', 'f'].map((c) => frame(delta(c))).join(''));
    setTimeout(() => s.destroy(), 20);
  },
  // llama.cpp's /v1/completions stream: usage and timings on the last chunk, asked for or not.
  llamacpp(s, req) {
    const chatOp = req.path.endsWith('/chat/completions');
    const piece = (text: string, fin: string | null, extra: Record<string, unknown> = {}): string => ev(chatOp
      ? { ...base, choices: [{ index: 0, delta: fin === null ? { content: text } : {}, finish_reason: fin }], ...extra }
      : { id: 'cmpl-mock', object: 'text_completion', created: 1, model: 'mock', choices: [{ index: 0, text, logprobs: null, finish_reason: fin }], ...extra });
    s.write(CHUNKED + frame(piece('Once', null)) + frame(piece(' upon', null))
      + frame(piece('', 'stop', { usage: { completion_tokens: 2, prompt_tokens: 4, total_tokens: 6 }, timings: { predicted_n: 2 } }))
      + frame(DONE) + LAST_FRAME);
  },
  // Ollama: done:true, then the connection held open.
  'ollama-held'(s) {
    const line = (o: unknown): string => `${JSON.stringify(o)}\n`;
    s.write(NDJSON_CHUNKED + frame(line({ model: 'mock', created_at: '2024-01-01T00:00:00Z', message: { role: 'assistant', content: 'Hi' }, done: false }))
      + frame(line({ model: 'mock', created_at: '2024-01-01T00:00:00Z', message: { role: 'assistant', content: '' }, done: true, done_reason: 'stop', prompt_eval_count: 3, eval_count: 1 })));
    setTimeout(() => { if (!s.destroyed) s.end(LAST_FRAME); }, 3000);
  },
  // Ollama with tools: each call in its own line (the second without an id, as older versions send), then done.
  'ollama-tools'(s) {
    const line = (o: Record<string, unknown>): string => `${JSON.stringify({ model: 'mock', created_at: '2024-01-01T00:00:00Z', done: false, ...o })}\n`;
    const call = (tc: Record<string, unknown>): string => line({ message: { role: 'assistant', content: '', tool_calls: [tc] } });
    s.write(NDJSON_CHUNKED + frame(call({ id: 'call_ab12cd34', function: { index: 0, name: 'get_weather', arguments: { city: 'Paris' } } }))
      + frame(call({ function: { index: 1, name: 'get_time', arguments: { tz: 'CET' } } }))
      + frame(line({ message: { role: 'assistant', content: '' }, done: true, done_reason: 'stop', prompt_eval_count: 9, eval_count: 12 })) + LAST_FRAME);
  },
  // Ollama: a failure after the first tokens is one more NDJSON line under the 200 (docs/api/errors.mdx).
  'ollama-mid-error'(s) {
    const line = (c: string): string => `${JSON.stringify({ model: 'mock', created_at: '2024-01-01T00:00:00Z', message: { role: 'assistant', content: c }, done: false })}\n`;
    s.write(NDJSON_CHUNKED + frame(line('Hel')) + frame('{"error":"an error was encountered while running the model"}\n') + LAST_FRAME);
  },
  // Ollama asked to think (reasoning_effort) with a model that cannot (server/routes.go).
  'ollama-nothink'(s, req) {
    const body = JSON.stringify({ error: `"mock" does not support thinking` });
    const status = req.body.think === undefined ? 'HTTP/1.1 500 Internal Server Error' : 'HTTP/1.1 400 Bad Request';
    s.write(`${status}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  },
  'ollama-six'(s) {
    const line = (c: string): string => `${JSON.stringify({ model: 'mock', created_at: '2024-01-01T00:00:00Z', message: { role: 'assistant', content: c }, done: false })}\n`;
    s.write(NDJSON_CHUNKED + ['a', 'b', 'c', 'd', 'e', 'f'].map((c) => frame(line(c))).join(''));
    setTimeout(() => s.destroy(), 20);
  },
};

/** 40 UTF-8 bytes (an em dash is three): ten tokens at four bytes a token. */
const NO_USAGE_CHAT = 'The answer is forty-two — as ever. Yes';
/** 16 bytes: four tokens. */
const NO_USAGE_TEXT = 'Once upon a time';

const BULK_EVENTS = 8000;
const BULK_TEXT = 'x'.repeat(1000);

/** Reads requests off one connection (keep-alive: one after another) and hands each to its scenario. */
function serve(s: Socket, conn: number): void {
  let buf = Buffer.alloc(0);
  s.on('close', () => closedAt.set(conn, Date.now()));
  s.on('error', () => {});
  s.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      const head = buf.subarray(0, end).toString('latin1');
      const len = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      if (buf.length < end + 4 + len) return;
      const body = JSON.parse(buf.subarray(end + 4, end + 4 + len).toString('utf8') || '{}') as Record<string, unknown>;
      buf = buf.subarray(end + 4 + len);
      const path = head.slice(head.indexOf(' ') + 1, head.indexOf(' HTTP/'));
      const name = path.split('/')[1]!;
      seen.push({ scenario: name, conn });
      scenarios[name]!(s, { path, body, conn, head });
    }
  });
}

const ECHO_KEY = 'echo-backend-key-5f2c9a71e0';
let mock: Server;
let f: Fabric;

before(async () => {
  let conns = 0;
  mock = createServer((s) => serve(s, ++conns));
  await new Promise<void>((r) => mock.listen(0, '127.0.0.1', r));
  const port = (mock.address() as AddressInfo).port;
  const u = (name: string, v1 = true): string => `http://127.0.0.1:${port}/${name}${v1 ? '/v1' : ''}`;
  const vllm = (name: string, timeouts = ''): string => `  ${name}: { engine: vllm, url: ${u(name)}, model: mock, max_retries: 0${timeouts === '' ? '' : `, timeouts: { ${timeouts} }`} }`;
  f = await startFabric({
    env: { ECHO_BACKEND_KEY: ECHO_KEY },
    engines: [],
    yaml: () => `
gateway:
  fast_lane: ${process.env.FABRIC_TEST_FAST_LANE !== '0'}
  retry: { base: 5ms, max: 20ms }
backends:
${vllm('good')}
${vllm('bulk', 'idle: 300ms')}
  flood: { engine: vllm, url: ${u('flood')}, model: mock, max_retries: 0, timeouts: { idle: 300ms, total: 1s } }
  drip-total: { engine: vllm, url: ${u('drip')}, model: mock, max_retries: 0, timeouts: { total: 500ms } }
  burst-drip: { engine: vllm, url: ${u('burst-drip')}, model: mock, max_retries: 0, timeouts: { total: 1s } }
${vllm('garbage')}
${vllm('error-event')}
${vllm('object-error')}
${vllm('context-event')}
${vllm('pings', 'first_byte: 400ms')}
${vllm('pings-then-chunk', 'first_byte: 1s')}
${vllm('held', 'idle: 300ms')}
${vllm('cut')}
${vllm('done-token')}
${vllm('done-token-ok')}
${vllm('six')}
${vllm('mid-error')}
${vllm('drip')}
  quota: { engine: openai-compatible, url: ${u('quota')}, model: mock, max_retries: 2 }
  busy: { engine: openai-compatible, url: ${u('busy')}, model: mock, max_retries: 0 }
  no-usage: { engine: openai-compatible, url: ${u('no-usage')}, model: mock, max_retries: 0 }
  echo-key: { engine: openai-compatible, url: ${u('echo-key')}, model: mock, api_key: env:ECHO_BACKEND_KEY, max_retries: 0 }
  echo-key-event: { engine: openai-compatible, url: ${u('echo-key-event')}, model: mock, api_key: env:ECHO_BACKEND_KEY, max_retries: 0 }
  echo-key-midstream: { engine: openai-compatible, url: ${u('echo-key-midstream')}, model: mock, api_key: env:ECHO_BACKEND_KEY, max_retries: 0 }
  llamacpp: { engine: llamacpp, url: ${u('llamacpp')}, model: mock, max_retries: 0 }
  ollama-held: { engine: ollama, url: ${u('ollama-held', false)}, model: mock, max_retries: 0, timeouts: { idle: 300ms } }
  ollama-six: { engine: ollama, url: ${u('ollama-six', false)}, model: mock, max_retries: 0 }
  ollama-tools: { engine: ollama, url: ${u('ollama-tools', false)}, model: mock, max_retries: 0 }
  ollama-mid-error: { engine: ollama, url: ${u('ollama-mid-error', false)}, model: mock, max_retries: 0 }
  ollama-nothink: { engine: ollama, url: ${u('ollama-nothink', false)}, model: mock, max_retries: 0 }
roles:
  r-good: { kind: chat, backends: [good] }
  r-bulk: { kind: chat, backends: [bulk] }
  r-flood: { kind: chat, backends: [flood] }
  r-drip-total: { kind: chat, backends: [drip-total] }
  r-burst-drip: { kind: chat, backends: [burst-drip] }
  r-garbage: { kind: chat, backends: [garbage], fallbacks: [r-good] }
  r-garbage-alone: { kind: chat, backends: [garbage] }
  r-error-event: { kind: chat, backends: [error-event], fallbacks: [r-good] }
  r-object-error: { kind: chat, backends: [object-error], fallbacks: [r-good] }
  r-context-event: { kind: chat, backends: [context-event], fallbacks: [r-good] }
  r-context-alone: { kind: chat, backends: [context-event] }
  r-pings: { kind: chat, backends: [pings], fallbacks: [r-good] }
  r-pings-then-chunk: { kind: chat, backends: [pings-then-chunk], fallbacks: [r-good] }
  r-held: { kind: chat, backends: [held] }
  r-cut: { kind: chat, backends: [cut] }
  r-done-token: { kind: chat, backends: [done-token] }
  r-done-token-ok: { kind: chat, backends: [done-token-ok] }
  r-llamacpp: { kind: chat, backends: [llamacpp] }
  r-ollama-held: { kind: chat, backends: [ollama-held] }
  r-six: { kind: chat, backends: [six] }
  r-mid-error: { kind: chat, backends: [mid-error] }
  r-drip: { kind: chat, backends: [drip] }
  r-quota: { kind: chat, backends: [quota], fallbacks: [r-good] }
  r-quota-alone: { kind: chat, backends: [quota] }
  r-quota-busy: { kind: chat, backends: [quota], fallbacks: [r-busy] }
  r-busy: { kind: chat, backends: [busy] }
  r-no-usage: { kind: chat, backends: [no-usage] }
  r-echo-key: { kind: chat, backends: [echo-key] }
  r-echo-key-event: { kind: chat, backends: [echo-key-event] }
  r-echo-key-midstream: { kind: chat, backends: [echo-key-midstream] }
  r-ollama-six: { kind: chat, backends: [ollama-six] }
  r-ollama-tools: { kind: chat, backends: [ollama-tools] }
  r-ollama-mid-error: { kind: chat, backends: [ollama-mid-error] }
  r-nothink: { kind: chat, backends: [ollama-nothink], fallbacks: [r-good] }
  r-nothink-alone: { kind: chat, backends: [ollama-nothink] }
`,
  });
});

after(async () => {
  await f.close();
  mock.close();
});

afterEach(() => {
  for (const b of f.gw.app.gateway.backends.values()) { b.consecutiveFailures = 0; b.coolUntil = 0; b.state = 'unknown'; b.lastError = undefined; }
});

const backend = (name: string) => f.gw.app.gateway.backends.get(name)!;

/** POSTs JSON to the gateway; a stream that never ends fails the test instead of hanging it. */
async function post(url: string, path: string, body: unknown): Promise<{ status: number; headers: Headers; json: any; text: string }> {
  const res = await fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  let json: unknown;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, headers: res.headers, json, text };
}

/** The events of an SSE body, each as its data text (comments and blank lines aside). */
function dataEvents(text: string): string[] {
  return text.split('\n\n').filter((e) => e !== '').map((e) => {
    assert.ok(e.startsWith('data: '), `not a data event: ${JSON.stringify(e)}`);
    return e.slice(6);
  });
}

/** Decodes a chunked HTTP/1.1 body. */
function dechunk(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  let off = 0;
  for (;;) {
    const eol = body.indexOf('\r\n', off);
    const size = parseInt(body.toString('latin1', off, eol), 16);
    if (size === 0) return Buffer.concat(parts);
    parts.push(body.subarray(eol + 2, eol + 2 + size));
    off = eol + 2 + size + 2;
  }
}

/** A raw client that sends a streamed request and reads nothing for holdMs, then everything. */
function slowClient(model: string, holdMs: number): Promise<{ head: string; body: string }> {
  const { hostname, port } = new URL(f.url);
  const payload = JSON.stringify({ ...chat(model), stream: true });
  return new Promise((resolve, reject) => {
    const s = connect(Number(port), hostname);
    s.pause();
    s.on('error', reject);
    s.write(`POST /v1/chat/completions HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(payload)}\r\nconnection: close\r\n\r\n${payload}`);
    const chunks: Buffer[] = [];
    setTimeout(() => {
      s.on('data', (d: Buffer) => chunks.push(d));
      s.on('end', () => {
        const all = Buffer.concat(chunks);
        const end = all.indexOf('\r\n\r\n');
        const head = all.subarray(0, end).toString('latin1');
        const raw = all.subarray(end + 4);
        resolve({ head, body: (/transfer-encoding: chunked/i.test(head) ? dechunk(raw) : raw).toString('utf8') });
      });
      s.resume();
    }, holdMs);
  });
}

test('a slow-reading client: the upstream is paused without the idle timeout firing, and the backend stays healthy', async () => {
  // The client reads nothing for four idle timeouts while megabytes wait upstream.
  const { head, body } = await slowClient('r-bulk', 1200);
  assert.match(head, /^HTTP\/1\.1 200/);
  const events = dataEvents(body);
  assert.equal(events.at(-1), '[DONE]');
  assert.ok(!body.includes('stream_interrupted'), body.slice(-300));
  const content = events.slice(0, -1).map((e) => (JSON.parse(e) as { choices: { delta: { content?: string } }[] }).choices[0]!.delta.content ?? '').join('');
  assert.equal(content.length, BULK_EVENTS * BULK_TEXT.length, 'every chunk arrived');
  const b = backend('bulk');
  assert.equal(b.consecutiveFailures, 0, `recorded as failed: ${b.lastError}`);
  assert.equal(b.state, 'up');
  const h = await (await fetch(`${f.url}/health`)).json() as { backends: { name: string; consecutive_failures: number; status: string }[] };
  const hb = h.backends.find((x) => x.name === 'bulk')!;
  assert.deepEqual([hb.status, hb.consecutive_failures], ['up', 0]);
});

test('a slow-reading client that runs a stream past its total timeout: the stream ends with an error event, and it is the client\'s, not the backend\'s', async () => {
  // Three clients read nothing for three times the total (1s) while the backend has ever more
  // to send: the time held back is given back to the backend up to the total again, then the
  // stream ends; as many failures would cool the backend down for everyone, were they counted against it.
  const all = await Promise.all([0, 1, 2].map(() => slowClient('r-flood', 3000)));
  for (const { head, body } of all) {
    assert.match(head, /^HTTP\/1\.1 200/);
    const last = JSON.parse(dataEvents(body).at(-1)!) as { error: { code: string; message: string } };
    assert.equal(last.error.code, 'stream_interrupted', 'ended with an error event, never silently');
    assert.match(last.error.message, /twice the total timeout \(1s\), .* held back because the client was not reading/);
    assert.ok(!body.includes('[DONE]'));
  }
  const b = backend('flood');
  assert.equal(b.consecutiveFailures, 0, `recorded as failed: ${b.lastError}`);
  assert.equal(b.circuit(Date.now()), 'closed');
  assert.notEqual(b.state, 'failing');
  // A backend that runs out the total with a client reading all along is still blamed.
  const r = await post(f.url, '/v1/chat/completions', { ...chat('r-drip-total'), stream: true });
  assert.equal(r.status, 200);
  const last = JSON.parse(dataEvents(r.text).at(-1)!) as { error: { code: string; message: string } };
  assert.equal(last.error.code, 'stream_interrupted');
  assert.match(last.error.message, /total timeout \(500ms\)$/);
  assert.equal(backend('drip-total').consecutiveFailures, 1);
  // A client that held the stream back briefly (400 ms of a 1 s total) gives that time back to a
  // backend that then drips for ever: it runs out its own total, and is blamed.
  const { body } = await slowClient('r-burst-drip', 400);
  const end = JSON.parse(dataEvents(body).at(-1)!) as { error: { code: string; message: string } };
  assert.equal(end.error.code, 'stream_interrupted');
  assert.match(end.error.message, /stream exceeded the total timeout \(1s\)$/);
  assert.equal(backend('burst-drip').consecutiveFailures, 1, 'a brief pause does not excuse the backend');
});

test('garbage in place of the first event is an attempt failure: the stream falls back, the SDK sees only the fallback', async () => {
  const { data, response } = await f.client.chat.completions.create({ model: 'r-garbage', messages: [{ role: 'user', content: 'x' }], stream: true }).withResponse();
  assert.equal(response.headers.get('x-fabric-backend'), 'good');
  let text = '';
  for await (const c of data) text += c.choices[0]?.delta?.content ?? '';
  assert.equal(text, 'Hello world');
  assert.equal(backend('garbage').consecutiveFailures, 1);
  assert.match(backend('garbage').lastError ?? '', /not JSON/);
});

test('garbage with nothing to fall back to is a 502 naming the unusable answer', async () => {
  const r = await post(f.url, '/v1/chat/completions', { ...chat('r-garbage-alone'), stream: true });
  assert.equal(r.status, 502);
  assert.equal(r.json.error.code, 'bad_upstream_response');
  assert.match(r.json.error.message, /garbage.*first event that is not JSON/);
});

test('an engine error event in place of the first chunk (vLLM {"error":{…}}, or {"object":"error"}) falls back', async () => {
  for (const name of ['error-event', 'object-error']) {
    const { data, response } = await f.client.chat.completions.create({ model: `r-${name}`, messages: [{ role: 'user', content: 'x' }], stream: true }).withResponse();
    assert.equal(response.headers.get('x-fabric-backend'), 'good', name);
    let text = '';
    for await (const c of data) text += c.choices[0]?.delta?.content ?? '';
    assert.equal(text, 'Hello world');
    assert.equal(backend(name).consecutiveFailures, 1, name);
    assert.match(backend(name).lastError ?? '', /error event/);
  }
  assert.match(backend('error-event').lastError!, /illegal memory access/);
});

test('a context-length error event is the prompt\'s, not the backend\'s: it moves on to a longer window, or is a 400', async () => {
  const moved = await post(f.url, '/v1/chat/completions', { ...chat('r-context-event'), stream: true });
  assert.equal(moved.status, 200);
  assert.equal(moved.headers.get('x-fabric-backend'), 'good');
  const r = await post(f.url, '/v1/chat/completions', { ...chat('r-context-alone'), stream: true });
  assert.equal(r.status, 400);
  assert.equal(r.json.error.code, 'context_length_exceeded');
  assert.match(r.json.error.message, /maximum context length/);
  assert.deepEqual([backend('context-event').consecutiveFailures, backend('context-event').state], [0, 'up']);
});

test('keep-alive pings are not a first token: they neither commit the stream nor hold off the first-byte timeout', async () => {
  const t0 = Date.now();
  const r = await post(f.url, '/v1/chat/completions', { ...chat('r-pings'), stream: true });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('x-fabric-backend'), 'good');
  assert.ok(Date.now() - t0 < 1500, `the first-byte timeout (400ms) fired late: ${Date.now() - t0}ms`);
  assert.ok(!r.text.includes(': ping'), 'no ping of the failed attempt reached the client');
  assert.deepEqual(dataEvents(r.text).at(-1), '[DONE]');
  assert.equal(backend('pings').consecutiveFailures, 1);
  assert.match(backend('pings').lastError ?? '', /first-byte timeout \(400ms\)/);
});

test('pings before the first chunk are dropped; the stream is committed by the chunk and later pings pass', async () => {
  const r = await post(f.url, '/v1/chat/completions', { ...chat('r-pings-then-chunk'), stream: true });
  assert.equal(r.headers.get('x-fabric-backend'), 'pings-then-chunk');
  assert.equal(r.text, delta('Hello') + ': ping\n\n' + finish + DONE);
  assert.equal(backend('pings-then-chunk').state, 'up');
});

test('[DONE] ends the stream at once though the backend holds its connection open; a success, and the connection is closed', async () => {
  const t0 = Date.now();
  const r = await post(f.url, '/v1/chat/completions', { ...chat('r-held'), stream: true });
  const ms = Date.now() - t0;
  assert.equal(r.text, delta('Hello') + finish + DONE, 'exactly the answer: no error event after [DONE]');
  assert.ok(ms < 1000, `the client waited ${ms}ms for the backend`);
  const b = backend('held');
  assert.deepEqual([b.consecutiveFailures, b.state], [0, 'up'], b.lastError);
  const conn = seen.findLast((x) => x.scenario === 'held')!.conn;
  for (let i = 0; i < 50 && !closedAt.has(conn); i++) await new Promise((res) => setTimeout(res, 20));
  assert.ok(closedAt.has(conn) && closedAt.get(conn)! - t0 < 1500, 'the held upstream connection was let go');
});

test('Ollama\'s done:true ends the stream at once too', async () => {
  const t0 = Date.now();
  const r = await post(f.url, '/v1/chat/completions', { ...chat('r-ollama-held'), stream: true });
  assert.ok(Date.now() - t0 < 1000, `the client waited ${Date.now() - t0}ms`);
  const events = dataEvents(r.text);
  assert.equal(events.at(-1), '[DONE]');
  assert.ok(!r.text.includes('stream_interrupted'));
  assert.equal(backend('ollama-held').consecutiveFailures, 0);
});

test('a normal stream leaves its upstream connection open for the next request', async () => {
  const before = seen.length;
  for (let i = 0; i < 2; i++) {
    const r = await post(f.url, '/v1/chat/completions', { ...chat('r-good'), stream: true });
    assert.equal(r.text, delta('Hello') + delta(' world') + finish + DONE);
    await new Promise((res) => setTimeout(res, 50));
  }
  const [a, b] = seen.slice(before);
  assert.equal(a!.conn, b!.conn, 'the second stream reused the first one\'s connection');
});

test('a backend that ends mid-event: the half event is dropped and the error arrives as its own event', async () => {
  const r = await post(f.url, '/v1/chat/completions', { ...chat('r-cut'), stream: true });
  const events = dataEvents(r.text);
  assert.equal(events.length, 2, r.text);
  assert.equal(`data: ${events[0]}\n\n`, delta('Hello'));
  const err = JSON.parse(events[1]!) as { error: { code: string; message: string } };
  assert.equal(err.error.code, 'stream_interrupted');
  assert.match(err.error.message, /without \[DONE\]/);
  assert.equal(backend('cut').consecutiveFailures, 1);
  // The SDK reports it as the gateway's error, not a SyntaxError.
  const stream = await f.client.chat.completions.create({ model: 'r-cut', messages: [{ role: 'user', content: 'x' }], stream: true });
  await assert.rejects(async () => { for await (const _ of stream) { /* read */ } }, (e: Error) => e.constructor.name !== 'SyntaxError' && /interrupted/.test(e.message));
});

test('a token whose text is [DONE] is not the end: a stream without the real [DONE] is interrupted, not silently truncated', async () => {
  const r = await post(f.url, '/v1/chat/completions', { ...chat('r-done-token'), stream: true });
  const events = dataEvents(r.text);
  assert.equal(events.length, 4, r.text);
  assert.equal(JSON.parse(events[3]!).error.code, 'stream_interrupted');
  assert.equal(backend('done-token').consecutiveFailures, 1);
  const ok = await post(f.url, '/v1/chat/completions', { ...chat('r-done-token-ok'), stream: true });
  assert.equal(ok.text, delta('[DONE]') + delta('data: [DONE]') + finish + DONE);
  assert.equal(backend('done-token-ok').state, 'up');
});

test('usage on llama.cpp\'s last chunk reaches only a client that asked for it; the gateway records it either way', async () => {
  for (const path of ['/v1/completions', '/v1/chat/completions']) {
    const from = f.logs.length;
    const body = path === '/v1/completions' ? { model: 'r-llamacpp', prompt: 'x', max_tokens: 5, stream: true } : { ...chat('r-llamacpp'), stream: true };
    const r = await post(f.url, path, body);
    assert.equal(r.status, 200);
    assert.ok(!r.text.includes('usage'), r.text);
    const events = dataEvents(r.text);
    assert.equal(events.length, 4);
    const last = JSON.parse(events[2]!) as { choices: { finish_reason: string }[]; timings?: unknown };
    assert.equal(last.choices[0]!.finish_reason, 'stop', 'the last chunk itself is kept');
    assert.ok(last.timings !== undefined, 'only the usage key is removed');
    const rec = await waitForLog(f, from, (l) => l.msg === 'request' && l.op === (path === '/v1/completions' ? 'completions' : 'chat') && l.model === 'r-llamacpp');
    assert.deepEqual([rec.prompt_tokens, rec.completion_tokens], [4, 2]);
  }
  const asked = await post(f.url, '/v1/completions', { model: 'r-llamacpp', prompt: 'x', max_tokens: 5, stream: true, stream_options: { include_usage: true } });
  assert.match(asked.text, /"usage":\{"completion_tokens":2,"prompt_tokens":4,"total_tokens":6\}/);
});

/** A sink that keeps what the client would receive. */
function memorySink(): StreamSink & { text: string; ended: boolean } {
  return {
    text: '', ended: false,
    begin() {},
    write(d) { this.text += d.toString(); return true; },
    onDrain() {},
    end() { this.ended = true; },
  };
}

test('a stream dropped after six chunks without usage reports an estimate of six completion tokens', async () => {
  for (const name of ['six', 'ollama-six']) {
    const b = backend(name);
    const prepared = b.engine.prepare('chat', { model: 'mock', messages: [{ role: 'user', content: 'x' }], stream: true }, { model: 'mock', wantStreamUsage: true, clientWantsUsage: false });
    // (Asserted, not annotated: Served may gain fields this call does not need.)
    const served = { requested: 'mock', route: 'r', role: 'r', backend: name, model: 'mock', attempts: 1, rerouted: false, usage: undefined, streamError: undefined, clientHeldBack: false, firstTokenMs: undefined, failures: [], retries: 0 } as Served;
    const sink = memorySink();
    const deadlines = new Deadlines();
    const translator = b.engine.streamFormat === 'sse' ? undefined : b.engine.streamTranslator!('chat', { requestId: 't', model: 'mock', created: 1 }, false, prepared);
    const outcome = await streamAttempt(deadlines, b, prepared, { 'content-type': 'application/json' }, translator, false, sink, served, new Cancel());
    assert.ok(outcome.streamError !== undefined, name);
    assert.equal(outcome.usage, undefined);
    assert.equal(outcome.completionEstimate, 6, name);
    assert.ok(sink.ended && sink.text.includes('stream_interrupted'));
  }
  // Through the gateway: the usage record and the log line carry the estimate, marked as one.
  for (const role of ['r-six', 'r-ollama-six']) {
    const from = f.logs.length;
    const r = await post(f.url, '/v1/chat/completions', { ...chat(role), stream: true });
    assert.match(r.text, /stream_interrupted/);
    const line = await waitForLog(f, from, (l) => l.msg === 'request' && l.model === role);
    assert.equal(line.completion_tokens, 6, role);
    await f.gw.app.accounting!.writer.flush();
    const rec = await f.gw.app.accounting!.store.usageById(line.id);
    assert.equal(rec?.completionTokens, 6, role);
    assert.equal(rec?.estimated, true);
    assert.equal(rec?.code, 'stream_interrupted', 'a 200 that ended with an error event says so');
  }
});

test('an engine error event mid-stream reaches the client as sent, and the stream counts as failed though [DONE] follows', async () => {
  const from = f.logs.length;
  const r = await post(f.url, '/v1/chat/completions', { ...chat('r-mid-error'), stream: true });
  assert.equal(r.status, 200);
  assert.equal(r.text, delta('Hel') + vllmError('EngineCore encountered an issue', 500, 'InternalServerError') + DONE);
  const line = await waitForLog(f, from, (l) => l.msg === 'request' && l.model === 'r-mid-error');
  assert.match(String(line.stream_error), /EngineCore encountered an issue/);
  assert.equal(backend('mid-error').consecutiveFailures, 1);
});

test('Ollama\'s tool calls, streamed one per line, reach the client as two calls with their own index and id', async () => {
  const r = await post(f.url, '/v1/chat/completions', { ...chat('r-ollama-tools'), stream: true });
  assert.equal(r.status, 200);
  const events = dataEvents(r.text);
  assert.equal(events.at(-1), '[DONE]');
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
  const calls = chunks.flatMap((c) => c.choices[0]?.delta?.tool_calls ?? []);
  assert.deepEqual(calls.map((c: any) => [c.index, c.function.name, c.function.arguments]), [
    [0, 'get_weather', '{"city":"Paris"}'], [1, 'get_time', '{"tz":"CET"}'],
  ]);
  assert.equal(calls[0].id, 'call_ab12cd34');
  assert.notEqual(calls[1].id, calls[0].id);
  assert.equal(chunks.findLast((c) => c.choices[0]?.finish_reason)?.choices[0].finish_reason, 'tool_calls');
});

test('an error line in the middle of an Ollama stream ends the client\'s stream with an error event and counts against the backend', async () => {
  const from = f.logs.length;
  const r = await post(f.url, '/v1/chat/completions', { ...chat('r-ollama-mid-error'), stream: true });
  assert.equal(r.status, 200);
  const events = dataEvents(r.text);
  assert.equal(JSON.parse(events[0]!).choices[0].delta.content, 'Hel');
  const err = JSON.parse(events.at(-1)!);
  assert.equal(err.error.code, 'stream_interrupted');
  assert.match(err.error.message, /an error was encountered while running the model/);
  const line = await waitForLog(f, from, (l) => l.msg === 'request' && l.model === 'r-ollama-mid-error');
  assert.match(String(line.stream_error), /an error was encountered while running the model/);
  assert.equal(backend('ollama-mid-error').consecutiveFailures, 1);
});

test('a client that leaves a stream after its first tokens: the tokens it got are recorded (estimated), and the backend is not blamed', async () => {
  const from = f.logs.length;
  const ac = new AbortController();
  const res = await fetch(`${f.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...chat('r-drip'), stream: true }), signal: ac.signal });
  const reader = res.body!.getReader();
  let got = '';
  while ((got.match(/"content"/g) ?? []).length < 5) got += Buffer.from((await reader.read()).value!).toString();
  ac.abort();
  const line = await waitForLog(f, from, (l) => l.msg === 'request' && l.model === 'r-drip');
  assert.equal(line.status, 499);
  assert.equal(line.backend, 'drip', 'the log line names the backend that served it');
  assert.ok(line.completion_tokens >= 5 && line.estimated === true, JSON.stringify(line));
  await f.gw.app.accounting!.writer.flush();
  const rec = await f.gw.app.accounting!.store.usageById(line.id);
  assert.equal(rec?.status, 499);
  assert.equal(rec?.backend, 'drip');
  assert.ok((rec?.completionTokens ?? 0) >= 5, `completion tokens recorded: ${rec?.completionTokens}`);
  assert.equal(rec?.estimated, true);
  assert.equal(backend('drip').consecutiveFailures, 0);
  const metrics = await (await fetch(`${f.url}/metrics`)).text();
  assert.match(metrics, /^fabric_requests_total\{op="chat",role="r-drip",backend="drip",status="499"\} 1$/m);
});

test('a 429 for a spent quota (OpenAI insufficient_quota) is not retried, counts against the backend, and falls back; alone, it is the 429', async () => {
  const before = seen.filter((x) => x.scenario === 'quota').length;
  const r = await post(f.url, '/v1/chat/completions', { ...chat('r-quota'), stream: true });
  assert.equal(r.status, 200, r.text);
  assert.match(r.text, /Hello/);
  assert.equal(r.headers.get('x-fabric-backend'), 'good');
  assert.equal(seen.filter((x) => x.scenario === 'quota').length - before, 1, 'one attempt, though max_retries is 2');
  assert.equal(backend('quota').consecutiveFailures, 1, 'counted: enough of them cool the backend down');
  const alone = await post(f.url, '/v1/chat/completions', chat('r-quota-alone'));
  assert.equal(alone.status, 429);
  // OpenAI's own shape for it, naming the backend whose account is spent, and no retry wanted.
  assert.equal(alone.json.error.type, 'insufficient_quota');
  assert.equal(alone.json.error.code, 'insufficient_quota');
  assert.match(alone.json.error.message, /no quota left on the provider account behind quota \(insufficient_quota\)/);
  assert.equal(alone.json.error.attempts[0].failure, 'quota_exceeded');
  assert.equal(alone.headers.get('x-should-retry'), 'false');
  assert.equal(alone.headers.get('retry-after'), null);
  assert.equal(seen.filter((x) => x.scenario === 'quota').length - before, 2);
});

test('the official SDK does not retry a spent quota (x-should-retry: false); a rate limit that passes stays a 429 it may retry', async () => {
  const before = seen.filter((x) => x.scenario === 'quota').length;
  const sdk = new OpenAI({ baseURL: `${f.url}/v1`, apiKey: 'unused', maxRetries: 2, timeout: 5000 });
  const err = await sdk.chat.completions.create({ model: 'r-quota-alone', messages: [{ role: 'user', content: 'hi' }] }).then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof OpenAI.RateLimitError, String(err));
  assert.equal(err.code, 'insufficient_quota');
  assert.equal(err.type, 'insufficient_quota');
  assert.equal(seen.filter((x) => x.scenario === 'quota').length - before, 1, 'one request: the SDK did not send it again');
  // One spent account and one busy one: waiting may help, so a plain 429, with no word against retrying.
  const mixed = await post(f.url, '/v1/chat/completions', chat('r-quota-busy'));
  assert.equal(mixed.status, 429, mixed.text);
  assert.equal(mixed.json.error.code, 'rate_limit_exceeded');
  assert.deepEqual(mixed.json.error.attempts.map((a: any) => a.failure), ['quota_exceeded', 'rate_limited']);
  assert.equal(mixed.headers.get('retry-after'), '0');
  assert.equal(mixed.headers.get('x-should-retry'), null);
});

test('a backend cooled down by spent-quota answers: a request it alone could serve is still told the account is spent, not to come back when the cooldown ends', async () => {
  const b = backend('quota');
  for (let i = 0; i < 5 && b.skipReason(Date.now()) === undefined; i++) {
    b.releaseTrial();
    await post(f.url, '/v1/chat/completions', chat('r-quota-alone'));
  }
  assert.ok(b.coolUntil > Date.now(), 'cooling down after its failures');
  const before = seen.filter((x) => x.scenario === 'quota').length;
  const r = await post(f.url, '/v1/chat/completions', chat('r-quota-alone'));
  assert.equal(r.status, 429, r.text);
  assert.equal(r.json.error.code, 'insufficient_quota');
  assert.equal(r.json.error.attempts[0].failure, 'unavailable', 'passed over, not sent');
  assert.equal(r.headers.get('x-should-retry'), 'false');
  assert.equal(seen.filter((x) => x.scenario === 'quota').length, before);
});

test('a stream that broke after its first byte counts as an error in usage reports, keeps its 200 and its tokens, and logs a warning', async () => {
  const store = f.gw.app.accounting!.store;
  const row = async (): Promise<{ requests: number; errors: number; completionTokens: number }> => {
    await f.gw.app.accounting!.writer.flush();
    return (await store.usageSummary({ by: 'status' })).find((r) => r.group === '200') ?? { requests: 0, errors: 0, completionTokens: 0 };
  };
  const was = await row();
  const from = f.logs.length;
  const r = await post(f.url, '/v1/chat/completions', { ...chat('r-six'), stream: true });
  assert.equal(r.status, 200);
  assert.match(r.text, /stream_interrupted/);
  const line = await waitForLog(f, from, (l) => l.msg === 'request' && l.model === 'r-six');
  assert.equal(line.level, 'warn');
  assert.equal(line.status, 200);
  assert.equal(line.code, 'stream_interrupted');
  const now = await row();
  assert.deepEqual([now.requests - was.requests, now.errors - was.errors, now.completionTokens - was.completionTokens], [1, 1, 6],
    'one more 200, counted as an error, its six tokens billed');
  const rec = await store.usageById(line.id);
  assert.deepEqual([rec?.status, rec?.code], [200, 'stream_interrupted']);
  // A whole stream: an info line, no code, no error.
  const ok = await post(f.url, '/v1/chat/completions', { ...chat('r-good'), stream: true });
  assert.equal(ok.status, 200);
  const good = await waitForLog(f, from, (l) => l.msg === 'request' && l.model === 'r-good');
  assert.equal(good.level, 'info');
  assert.equal(good.code, undefined);
  const after = await row();
  assert.deepEqual([after.requests - now.requests, after.errors - now.errors], [1, 0]);
});

test('a whole answer without usage is recorded with its completion estimated from its text (four bytes a token) and its prompt from the request', async () => {
  const store = f.gw.app.accounting!.store;
  for (const [path, body, prompt, completion] of [
    ['/v1/chat/completions', chat('r-no-usage'), 7, 10], // "hello there": 11 bytes → 3, and 4 for its one message
    ['/v1/completions', { model: 'r-no-usage', prompt: 'Tell me a story', max_tokens: 8 }, 4, 4],
  ] as const) {
    const from = f.logs.length;
    const r = await post(f.url, path, body);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.usage, undefined, 'the answer as the backend gave it');
    const line = await waitForLog(f, from, (l) => l.msg === 'request' && l.model === 'r-no-usage');
    assert.deepEqual([line.prompt_tokens, line.completion_tokens, line.estimated], [prompt, completion, true], path);
    await f.gw.app.accounting!.writer.flush();
    const rec = await store.usageById(line.id);
    assert.deepEqual([rec?.promptTokens, rec?.completionTokens, rec?.estimated], [prompt, completion, true], path);
  }
});

test('a backend that echoes its key in an error: the key reaches neither the client, nor /health, nor the log', async () => {
  const from = f.logs.length;
  const r = await post(f.url, '/v1/chat/completions', chat('r-echo-key'));
  assert.equal(r.status, 503, r.text);
  assert.equal(r.headers.get('x-should-retry'), null, 'a 503 with Retry-After is worth retrying');
  assert.match(r.text, /Invalid API key provided: Bearer \[redacted\]; raw: \[redacted\]/);
  assert.ok(!r.text.includes(ECHO_KEY), r.text);
  const health = await (await fetch(`${f.url}/health`)).text();
  assert.match(health, /echo-key/);
  assert.ok(!health.includes(ECHO_KEY));
  await waitForLog(f, from, (l) => l.msg === 'request' && l.model === 'r-echo-key');
  // Quoted in the first event of a stream instead of an error body: the same.
  const s = await post(f.url, '/v1/chat/completions', { ...chat('r-echo-key-event'), stream: true });
  assert.equal(s.status, 502, s.text);
  assert.match(s.text, /Invalid API key provided: \[redacted\]/);
  assert.ok(!s.text.includes(ECHO_KEY), s.text);
  await waitForLog(f, from, (l) => l.msg === 'request' && l.model === 'r-echo-key-event');
  // Quoted in an error event after the stream began, beside a chunk: relayed, the key taken out.
  const m = await post(f.url, '/v1/chat/completions', { ...chat('r-echo-key-midstream'), stream: true });
  assert.equal(m.status, 200);
  assert.match(m.text, /"content":"lo"/);
  assert.match(m.text, /upstream said: key \[redacted\] is over its limit/);
  assert.ok(!m.text.includes(ECHO_KEY), m.text);
  await waitForLog(f, from, (l) => l.msg !== undefined && l.model === 'r-echo-key-midstream');
  assert.ok(!(await (await fetch(`${f.url}/health`)).text()).includes(ECHO_KEY));
  assert.ok(!f.logs.slice(from).join('\n').includes(ECHO_KEY));
});

test('an Ollama model that cannot think, asked to (reasoning_effort): passed over for the next backend, not blamed; alone, a 400 naming the field', async () => {
  const r = await post(f.url, '/v1/chat/completions', { ...chat('r-nothink'), reasoning_effort: 'low', stream: true });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get('x-fabric-backend'), 'good');
  const alone = await post(f.url, '/v1/chat/completions', { ...chat('r-nothink-alone'), reasoning_effort: 'low' });
  assert.equal(alone.status, 400, alone.text);
  assert.equal(alone.json.error.param, 'reasoning_effort');
  assert.match(alone.json.error.message, /does not support thinking/);
  assert.equal(backend('ollama-nothink').consecutiveFailures, 0);
});
