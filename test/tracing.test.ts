// gateway.tracing: the gateway's own spans, posted over OTLP/HTTP (JSON) to a collector — here a
// loopback HTTP server that keeps what it is sent. A SERVER span per request and a CLIENT span
// per attempt, the attempt's span the parent each backend is told of; a client's sampled trace
// is continued, an unsampled one passed on untouched; a collector that fails costs dropped
// spans, counted, and never a request.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startFabric, waitForLog, eventually } from './helpers.ts';
import { parseFabricText } from '../src/config/load.ts';
import { Secrets } from '../src/config/env-file.ts';

interface Received { headers: IncomingMessage['headers']; body: any }
const received: Received[] = [];
let collectorStatus = 200;
const collector = createServer((req, res) => {
  let text = '';
  req.setEncoding('utf8');
  req.on('data', (d) => { text += d; });
  req.on('end', () => {
    if (req.url === '/v1/traces' && req.method === 'POST') received.push({ headers: req.headers, body: JSON.parse(text) });
    res.writeHead(collectorStatus, { 'content-type': 'application/json' }).end('{}');
  });
});
await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r));
const collectorPort = (collector.address() as AddressInfo).port;

// A backend that quotes the key it was sent in its error: the gateway must not export it.
const ECHO_KEY = 'echo-backend-key-9d41c07e';
const echo = createServer((req, res) => {
  req.resume();
  req.on('end', () => res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: `upstream refused ${req.headers.authorization}`, type: 'server_error' } })));
});
await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
const echoPort = (echo.address() as AddressInfo).port;

const MASTER = 'tracing-test-master-key-0123456789abcdef';
const TOKEN = 'collector-token-s3cr3t-value';
const FAST = { ttftMs: 2, tokensPerSecond: 5000, maxConcurrency: 16, maxQueue: 64 };
const f = await startFabric({
  engines: [
    { name: 'fast', protocol: 'vllm', model: 'm-fast', kind: 'chat', timing: FAST },
    { name: 'deep', protocol: 'ollama', model: 'm-deep', kind: 'chat', timing: FAST },
  ],
  env: { FABRIC_MASTER_KEY: MASTER, COLLECTOR_TOKEN: TOKEN, ECHO_KEY },
  apiKey: MASTER,
  yaml: (url) => fabricYaml(url),
});
function fabricYaml(url: (n: string) => string): string {
  return `
gateway:
  master_key: env:FABRIC_MASTER_KEY
  tracing:
    endpoint: http://127.0.0.1:${collectorPort}
    headers: { authorization: env:COLLECTOR_TOKEN, x-scope-orgid: lab }
    service_name: fabric-test
backends:
  fast: { engine: vllm, url: ${url('fast')}/v1, model: m-fast, max_retries: 0 }
  deep: { engine: ollama, url: ${url('deep')}, model: m-deep }
  echo: { engine: openai-compatible, url: http://127.0.0.1:${echoPort}/v1, model: m-echo, api_key: env:ECHO_KEY, max_retries: 0 }
roles:
  chat-echo: { kind: chat, backends: [echo] }
  chat-fast: { kind: chat, backends: [fast], fallbacks: [chat-deep] }
  chat-deep: { kind: chat, backends: [deep] }
`;
}
after(async () => {
  await f.close();
  await new Promise((r) => collector.close(r));
  await new Promise((r) => echo.close(r));
});

const HEX = (n: number) => new RegExp(`^[0-9a-f]{${n}}$`);
type Span = { traceId: string; spanId: string; parentSpanId?: string; traceState?: string; name: string; kind: number; startTimeUnixNano: string; endTimeUnixNano: string; attributes: Array<{ key: string; value: Record<string, unknown> }>; status: { code?: number; message?: string } };

/** Every span received so far, checked against OTLP/JSON's shape on the way. */
function spans(): Span[] {
  const out: Span[] = [];
  for (const r of received) {
    for (const rs of r.body.resourceSpans) {
      for (const ss of rs.scopeSpans) {
        assert.equal(ss.scope.name, 'ai-fabric');
        for (const s of ss.spans as Span[]) {
          assert.match(s.traceId, HEX(32));
          assert.match(s.spanId, HEX(16));
          if (s.parentSpanId !== undefined) assert.match(s.parentSpanId, HEX(16));
          assert.match(s.startTimeUnixNano, /^\d{19}$/);
          assert.ok(BigInt(s.endTimeUnixNano) >= BigInt(s.startTimeUnixNano), s.name);
          assert.ok([2, 3].includes(s.kind));
          for (const a of s.attributes) assert.equal(Object.keys(a.value).length, 1, JSON.stringify(a));
          out.push(s);
        }
      }
    }
  }
  return out;
}
const attr = (s: Span, key: string): unknown => {
  const v = s.attributes.find((a) => a.key === key)?.value;
  return v === undefined ? undefined : Object.values(v)[0];
};
const lastHeaders = (engine: string): Record<string, unknown> => { const r = f.fleet.get(engine).requests(); return r[r.length - 1]!.headers; };
const inTrace = async (traceId: string, n: number): Promise<Span[]> => eventually(() => spans().filter((s) => s.traceId === traceId), (l) => l.length >= n, 5000);

test('a request without a trace starts one: a SERVER span, a CLIENT span for its attempt, and the backend is told the attempt\'s span as its parent', async () => {
  const from = f.logs.length;
  const r = await f.client.chat.completions.create({ model: 'chat-fast', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 });
  const tp = String(lastHeaders('fast').traceparent);
  const [, traceId, parent, flags] = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(01)$/.exec(tp)!;
  const line = await waitForLog(f, from, (l) => l.msg === 'request');
  assert.equal(line.trace_id, traceId);
  const got = await inTrace(traceId!, 2);
  const server = got.find((s) => s.kind === 2)!;
  const client = got.find((s) => s.kind === 3)!;
  assert.equal(flags, '01');
  assert.equal(client.spanId, parent, 'the backend\'s parent is the attempt span');
  assert.equal(client.parentSpanId, server.spanId);
  assert.equal(server.parentSpanId, undefined, 'a root span');
  assert.equal(server.name, 'chat chat-fast');
  assert.equal(client.name, 'chat m-fast');
  assert.equal(attr(server, 'gen_ai.operation.name'), 'chat');
  assert.equal(attr(server, 'gen_ai.request.model'), 'chat-fast');
  assert.equal(attr(server, 'gen_ai.response.model'), 'm-fast');
  assert.equal(attr(server, 'gen_ai.usage.input_tokens'), String(r.usage!.prompt_tokens), 'an int64 is a decimal string in OTLP/JSON');
  assert.equal(attr(server, 'gen_ai.usage.output_tokens'), String(r.usage!.completion_tokens));
  assert.equal(attr(server, 'http.response.status_code'), '200');
  assert.equal(attr(server, 'fabric.request_id'), line.id);
  assert.equal(attr(server, 'fabric.backend'), 'fast');
  assert.equal(attr(client, 'server.address'), '127.0.0.1');
  assert.equal(attr(client, 'fabric.engine'), 'vllm');
  assert.deepEqual(server.status, {});
  assert.ok(BigInt(client.startTimeUnixNano) >= BigInt(server.startTimeUnixNano) && BigInt(client.endTimeUnixNano) <= BigInt(server.endTimeUnixNano), 'the attempt lies within the request');
  // The resource, and the collector's headers: the secret from the environment, the plain one as written.
  const batch = received.find((x) => JSON.stringify(x.body).includes(traceId!))!;
  const resource = Object.fromEntries(batch.body.resourceSpans[0].resource.attributes.map((a: any) => [a.key, Object.values(a.value)[0]]));
  assert.equal(resource['service.name'], 'fabric-test');
  assert.equal(batch.headers.authorization, TOKEN);
  assert.equal(batch.headers['x-scope-orgid'], 'lab');
  assert.equal(batch.headers['content-type'], 'application/json');
});

test('a client\'s sampled trace is continued (its span the parent, its tracestate kept); an unsampled one is passed on untouched and not recorded', async () => {
  const client = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
  const s = await f.client.chat.completions.create({ model: 'chat-fast', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5, stream: true }, { headers: { traceparent: client, tracestate: 'congo=t61rcWkgMzE' } });
  for await (const _ of s) { /* to the end */ }
  const tp = String(lastHeaders('fast').traceparent);
  assert.match(tp, /^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/);
  assert.notEqual(tp, client, 'the gateway\'s attempt span is the backend\'s parent');
  assert.equal(lastHeaders('fast').tracestate, 'congo=t61rcWkgMzE');
  const got = await inTrace('0af7651916cd43dd8448eb211c80319c', 2);
  const server = got.find((x) => x.kind === 2)!;
  assert.equal(server.parentSpanId, 'b7ad6b7169203331');
  assert.equal(server.traceState, 'congo=t61rcWkgMzE');
  assert.equal(attr(server, 'fabric.stream'), true);
  assert.ok(Number(attr(server, 'gen_ai.usage.output_tokens')) > 0, 'a stream\'s usage is on its span');

  const unsampled = '00-1af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00';
  await f.client.chat.completions.create({ model: 'chat-fast', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 }, { headers: { traceparent: unsampled } });
  assert.equal(lastHeaders('fast').traceparent, unsampled, 'passed on as it came');
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(spans().filter((x) => x.traceId === '1af7651916cd43dd8448eb211c80319c').length, 0, 'nothing recorded');
});

test('a fallback: the failed attempt\'s span says why (error status, error.type), the next attempt\'s span is a sibling, and each backend had its own parent', async () => {
  await f.fleet.get('fast').setFault({ kind: 'error', status: 500 });
  try {
    const r = await f.client.chat.completions.create({ model: 'chat-fast', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 });
    assert.ok(r.choices[0]!.message.content);
  } finally {
    await f.fleet.get('fast').setFault(null);
  }
  const tpFast = String(lastHeaders('fast').traceparent);
  const tpDeep = String(lastHeaders('deep').traceparent);
  const traceId = tpDeep.split('-')[1]!;
  assert.equal(tpFast.split('-')[1], traceId, 'one trace');
  const got = await inTrace(traceId, 3);
  const server = got.find((x) => x.kind === 2)!;
  const [failed, served] = got.filter((x) => x.kind === 3).sort((a, b) => Number(BigInt(a.startTimeUnixNano) - BigInt(b.startTimeUnixNano)));
  assert.equal(failed!.spanId, tpFast.split('-')[2]);
  assert.equal(served!.spanId, tpDeep.split('-')[2]);
  assert.equal(failed!.status.code, 2);
  assert.equal(attr(failed!, 'error.type'), 'upstream_5xx');
  assert.equal(attr(failed!, 'fabric.backend'), 'fast');
  assert.deepEqual(served!.status, {});
  assert.equal(attr(served!, 'fabric.engine'), 'ollama');
  assert.equal(served!.parentSpanId, server.spanId);
  assert.equal(attr(server, 'fabric.attempts'), '2');
  assert.equal(attr(server, 'fabric.rerouted'), true);
  assert.deepEqual(server.status, {}, 'the request was served');
});

test('a failed request: its SERVER span is an error with the code; a 4xx is not an error of the server\'s', async () => {
  await f.fleet.get('fast').setFault({ kind: 'error', status: 500 });
  await f.fleet.get('deep').setFault({ kind: 'error', status: 500 });
  const from = f.logs.length;
  try {
    await assert.rejects(f.client.chat.completions.create({ model: 'chat-fast', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 }), { status: 503 });
  } finally {
    await f.fleet.get('fast').setFault(null);
    await f.fleet.get('deep').setFault(null);
  }
  const line = await waitForLog(f, from, (l) => l.msg === 'request' && l.status === 503);
  const server = (await inTrace(line.trace_id, 3)).find((x) => x.kind === 2)!;
  assert.equal(server.status.code, 2);
  assert.match(server.status.message!, /fast|deep/);
  assert.equal(attr(server, 'error.type'), line.code);
  assert.equal(attr(server, 'http.response.status_code'), '503');

  const from2 = f.logs.length;
  await assert.rejects(f.client.chat.completions.create({ model: 'chat-fast', messages: [{ role: 'user', content: 'hi' }], max_tokens: -1 }), { status: 400 });
  const bad = await waitForLog(f, from2, (l) => l.msg === 'request' && l.status === 400);
  const s400 = (await inTrace(bad.trace_id, 1)).find((x) => x.kind === 2)!;
  assert.deepEqual(s400.status, {});
  assert.equal(attr(s400, 'error.type'), undefined, 'a 4xx is no error of the server\'s');
  assert.equal(attr(s400, 'fabric.error_code'), 'invalid_request');
});

test('a collector that fails costs dropped spans, counted and warned of once, never a request; the token is never logged', async () => {
  collectorStatus = 503;
  try {
    const before = received.length;
    for (let i = 0; i < 3; i++) await f.client.chat.completions.create({ model: 'chat-fast', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 });
    await f.gw.app.tracing!.flush();
    await eventually(() => received.length, (n) => n > before, 5000);
    const metrics = await (await fetch(`${f.url}/metrics`, { headers: { authorization: `Bearer ${MASTER}` } })).text();
    const dropped = Number(/^fabric_trace_spans_dropped_total (\d+)/m.exec(metrics)?.[1]);
    assert.ok(dropped >= 6, `dropped ${dropped}`);
    assert.match(metrics, /^fabric_trace_spans_exported_total [1-9]\d*/m);
  } finally {
    collectorStatus = 200;
  }
  f.gw.app.log.flush();
  const warnings = f.logs.filter((l) => l.includes('tracing:'));
  assert.equal(warnings.length, 1, warnings.join('\n'));
  assert.match(warnings[0]!, new RegExp(`the collector at 127\\.0\\.0\\.1:${collectorPort} answered HTTP 503`));
  assert.ok(!f.logs.join('\n').includes(TOKEN), 'the collector\'s token is never logged');
});

test('a backend\'s words that quote its key are exported without it', async () => {
  const from = f.logs.length;
  await assert.rejects(f.client.chat.completions.create({ model: 'chat-echo', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 }));
  const line = await waitForLog(f, from, (l) => l.msg === 'request' && l.model === 'chat-echo');
  const got = await inTrace(line.trace_id, 2);
  const attempt = got.find((x) => x.kind === 3)!;
  assert.equal(attempt.status.code, 2);
  assert.match(attempt.status.message!, /upstream refused/, 'what the backend said is kept');
  assert.ok(!JSON.stringify(received.map((r) => r.body)).includes(ECHO_KEY), 'its key is not');
});

test('the settings take effect on reload: tracing turned off records and invents nothing, turned on again it records', async () => {
  const url = (n: string): string => f.fleet.get(n).url;
  const env = { FABRIC_MASTER_KEY: MASTER, COLLECTOR_TOKEN: TOKEN, ECHO_KEY };
  const off = fabricYaml(url).replace(/  tracing:\n(    .*\n)+/, '');
  assert.doesNotMatch(off, /tracing/);
  f.gw.reload(parseFabricText(off, 'test.yaml').config, new Secrets(env));
  const before = spans().length;
  await f.client.chat.completions.create({ model: 'chat-fast', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 });
  assert.equal(lastHeaders('fast').traceparent, undefined, 'no trace made up without tracing');
  await f.gw.app.tracing!.flush();
  await new Promise((r) => setTimeout(r, 1200));
  assert.equal(spans().length, before, 'nothing recorded');
  f.gw.reload(parseFabricText(fabricYaml(url), 'test.yaml').config, new Secrets(env));
  await f.client.chat.completions.create({ model: 'chat-fast', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 });
  const traceId = String(lastHeaders('fast').traceparent).split('-')[1]!;
  assert.match(traceId, HEX(32));
  assert.equal((await inTrace(traceId, 2)).length, 2);
});
