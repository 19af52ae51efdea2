import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tracing } from './otlp.ts';
import { traceContext } from '../core/trace-context.ts';
import type { TracingConfig } from '../config/types.ts';

const quiet = { warn() {}, info() {}, error() {}, debug() {}, log() {}, flush() {} } as never;

function tracing(config: TracingConfig | undefined, posts: Array<{ url: string; body: any; headers: Record<string, string> }>, status = 200): Tracing {
  return new Tracing({ config: () => config, secret: (n) => (n === 'TOKEN' ? 'tok' : undefined), log: quiet, post: async (url, body, headers) => { posts.push({ url, body: JSON.parse(body.toString('utf8')), headers }); return status; } });
}
const CFG: TracingConfig = { endpoint: 'http://c/v1/traces', headers: [['authorization', { env: 'TOKEN' }], ['x-tenant', 'lab'], ['x-missing', { env: 'NOPE' }]], sample: 1, serviceName: 'svc' };

test('spans are written as OTLP/JSON: typed attributes, text escaped, times in nanoseconds, ids and trace state', async () => {
  const posts: any[] = [];
  const t = tracing(CFG, posts);
  const incoming = traceContext('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', 'a="x",b=2')!;
  const before = Date.now();
  const tr = t.begin(incoming, performance.now() - 5)!;
  tr.attempt!({ op: 'completions', backend: 'b', role: 'r', engine: 'vllm', url: 'https://h.example:8443/v1', model: 'm "q"', retry: true });
  tr.attemptEnd!('upstream_5xx', 'HTTP 500: "bad"\nline');
  t.end(tr, 'text_completion r\u00e9le', { s: 'é "x"', i: 42, d: 0.25, b: false, nan: Number.NaN, gone: undefined }, undefined);
  await t.flush();
  assert.equal(posts.length, 1);
  assert.equal(posts[0].url, 'http://c/v1/traces');
  assert.deepEqual(posts[0].headers, { 'content-type': 'application/json', authorization: 'tok', 'x-tenant': 'lab' }, 'a header whose secret is not set is left out');
  const rs = posts[0].body.resourceSpans[0];
  const res = Object.fromEntries(rs.resource.attributes.map((a: any) => [a.key, a.value]));
  assert.deepEqual(res['service.name'], { stringValue: 'svc' });
  assert.deepEqual(res['process.pid'], { intValue: String(process.pid) });
  const [server, client] = rs.scopeSpans[0].spans;
  assert.equal(server.traceId, '0af7651916cd43dd8448eb211c80319c');
  assert.equal(server.parentSpanId, 'b7ad6b7169203331');
  assert.equal(server.traceState, 'a="x",b=2');
  assert.equal(server.name, 'text_completion r\u00e9le');
  assert.equal(server.kind, 2);
  // The wall clock at the start, less the 5 ms the request had run: microseconds, as nanoseconds.
  const start = Number(BigInt(server.startTimeUnixNano) / 1000n) / 1000;
  assert.ok(start >= before - 6 && start <= Date.now() - 4, `${start} against ${before}`);
  assert.match(server.startTimeUnixNano, /^\d{13}\d{3}000$/);
  assert.deepEqual(server.status, {});
  assert.deepEqual(server.attributes, [
    { key: 's', value: { stringValue: 'é "x"' } }, { key: 'i', value: { intValue: '42' } }, { key: 'd', value: { doubleValue: 0.25 } },
    { key: 'b', value: { boolValue: false } }, { key: 'nan', value: { doubleValue: 0 } },
  ]);
  assert.equal(client.parentSpanId, server.spanId);
  assert.equal(client.kind, 3);
  assert.equal(client.name, 'text_completion m "q"');
  assert.deepEqual(client.status, { code: 2, message: 'HTTP 500: "bad"\nline' });
  const ca = Object.fromEntries(client.attributes.map((a: any) => [a.key, Object.values(a.value)[0]]));
  assert.deepEqual([ca['server.address'], ca['server.port'], ca['fabric.retry'], ca['error.type']], ['h.example', '8443', true, 'upstream_5xx']);
  assert.equal(client.traceState, undefined, 'the trace state is the server span\'s');
});

test('batches: full ones go at once, the rest within the flush interval; an unsampled or untraced request costs nothing; off means the client\'s context passes as it came', async () => {
  const posts: any[] = [];
  const t = tracing({ ...CFG, headers: [] }, posts);
  const unsampled = traceContext('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00', undefined)!;
  assert.equal(t.begin(unsampled, 0), unsampled, 'passed on, not recorded');
  for (let i = 0; i < 300; i++) {
    const tr = t.begin(undefined, Date.now())!;
    tr.attempt!({ op: 'chat', backend: 'b', role: 'r', engine: 'vllm', url: 'http://h/v1', model: 'm', retry: false });
    tr.attemptEnd!(undefined);
    t.end(tr, 'chat r', {}, undefined);
  }
  await new Promise((r) => setImmediate(r));
  assert.equal(posts.length, 1, '512 spans make a batch, sent at once');
  assert.equal(posts[0].body.resourceSpans[0].scopeSpans[0].spans.length, 512);
  await t.close();
  assert.equal(posts.length, 2, 'the rest at close');
  assert.equal(t.stats.exported, 600);
  assert.equal(tracing({ ...CFG, sample: 0 }, []).begin(undefined, 0), undefined, 'sample 0: no trace is started');
  assert.equal(tracing(undefined, []).begin(unsampled, 0), unsampled);
});

test('a collector that refuses: the batch is dropped and counted, nothing retried into memory', async () => {
  const posts: any[] = [];
  const t = tracing(CFG, posts, 503);
  const tr = t.begin(undefined, Date.now())!;
  t.end(tr, 'chat r', {}, undefined);
  await t.flush();
  assert.deepEqual(t.stats, { exported: 0, dropped: 1 });
  await t.flush();
  assert.equal(posts.length, 1, 'not sent again');
});

test('close: a collector that never answers does not hold the exit past the deadline; what was under way is dropped and counted', async () => {
  let aborted = false;
  const t = new Tracing({
    config: () => CFG, secret: () => undefined, log: quiet,
    post: (_u, _b, _h, signal) => new Promise((_resolve, reject) => signal.addEventListener('abort', () => { aborted = true; reject(Object.assign(new Error('aborted'), { code: 'ABORT_ERR' })); })),
  });
  t.end(t.begin(undefined, performance.now()), 'chat r', {}, undefined);
  const started = performance.now();
  await t.close(100);
  assert.ok(performance.now() - started < 1000, 'closed at its deadline');
  assert.ok(aborted);
  assert.deepEqual(t.stats, { exported: 0, dropped: 1 });
});

test('at most 4,096 spans wait for a collector that does not answer; past that, each request\'s spans are dropped and counted', async () => {
  const t = new Tracing({
    config: () => CFG, secret: () => undefined, log: quiet,
    post: (_u, _b, _h, signal) => new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(new Error('aborted')))),
  });
  for (let i = 0; i < 2500; i++) {
    const tr = t.begin(undefined, performance.now())!;
    tr.attempt!({ op: 'chat', backend: 'b', role: 'r', engine: 'vllm', url: 'http://h/v1', model: 'm', retry: false });
    tr.attemptEnd!(undefined);
    t.end(tr, 'chat r', {}, undefined);
  }
  // 512 went out (and hang), 4,096 wait, the last 196 requests' 392 spans were dropped.
  assert.deepEqual(t.stats, { exported: 0, dropped: 392 });
  await t.close(50);
  assert.deepEqual(t.stats, { exported: 0, dropped: 5000 });
});
