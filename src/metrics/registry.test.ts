import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from './registry.ts';

test('counters, gauges and histograms render in the Prometheus text format', () => {
  const r = new Registry();
  const c = r.counter('x_total', 'Things.', ['role', 'status']);
  c.inc(['chat-fast', '200']);
  c.inc(['chat-fast', '200'], 2);
  c.inc(['say "hi"\\\n', '500']);
  const h = r.histogram('lat_seconds', 'Latency.', ['role'], [0.1, 1, 0.5]);
  h.observe(['a'], 0.05);
  h.observe(['a'], 0.1);
  h.observe(['a'], 0.7);
  h.observe(['a'], 9);
  const g = r.gauge('up', 'Up.');
  let collected = 0;
  r.onCollect(() => { collected++; g.set([], 1); });
  const text = r.render();
  assert.equal(collected, 1);
  const lines = text.trimEnd().split('\n');
  assert.ok(lines.includes('# TYPE x_total counter'));
  assert.ok(lines.includes('x_total{role="chat-fast",status="200"} 3'));
  assert.ok(lines.includes('x_total{role="say \\"hi\\"\\\\\\n",status="500"} 1'), text);
  // buckets sorted and cumulative; le="0.1" includes the observation equal to it
  assert.ok(lines.includes('lat_seconds_bucket{role="a",le="0.1"} 2'));
  assert.ok(lines.includes('lat_seconds_bucket{role="a",le="0.5"} 2'));
  assert.ok(lines.includes('lat_seconds_bucket{role="a",le="1"} 3'));
  assert.ok(lines.includes('lat_seconds_bucket{role="a",le="+Inf"} 4'));
  assert.ok(lines.includes('lat_seconds_count{role="a"} 4'));
  assert.ok(lines.includes('lat_seconds_sum{role="a"} 9.85'));
  assert.ok(lines.includes('up 1'));
});

test('several workers: every worker\'s series in one scrape, each labelled with its worker; alone, no label', () => {
  /** A worker's registry, as GatewayMetrics builds it. */
  const worker = (requests: number, latencies: number[], inflight: number, only?: string) => {
    const r = new Registry();
    const c = r.counter('req_total', 'Requests.', ['role']);
    c.inc(['chat'], requests);
    if (only !== undefined) c.inc([only]);
    const h = r.histogram('lat_seconds', 'Latency.', [], [0.1, 1]);
    for (const l of latencies) h.observe([], l);
    r.gauge('in_flight', 'In flight.').set([], inflight);
    return r;
  };
  const a = worker(3, [0.05, 2], 1);
  const b = worker(4, [0.5], 2, 'embed');
  // As it crosses processes: JSON.
  const text = a.render('0', [JSON.parse(JSON.stringify(b.snapshot('1')))]);
  const lines = text.trimEnd().split('\n');
  for (const l of [
    'req_total{role="chat",worker="0"} 3', 'req_total{role="chat",worker="1"} 4', 'req_total{role="embed",worker="1"} 1',
    'lat_seconds_bucket{worker="0",le="0.1"} 1', 'lat_seconds_bucket{worker="0",le="+Inf"} 2', 'lat_seconds_sum{worker="0"} 2.05',
    'lat_seconds_bucket{worker="1",le="1"} 1', 'lat_seconds_count{worker="1"} 1',
    'in_flight{worker="0"} 1', 'in_flight{worker="1"} 2',
  ]) assert.ok(lines.includes(l), `${l} in:\n${text}`);
  assert.equal(lines.filter((l) => l === '# TYPE req_total counter').length, 1, 'one family, once');
  assert.equal(a.render(), worker(3, [0.05, 2], 1).render(), 'alone, as before');
  assert.ok(!a.render().includes('worker='));
});
