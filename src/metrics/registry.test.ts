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

test('several workers\' series merge into one exposition: counters and histograms add up, each gauge as it says, series one worker alone has included', () => {
  /** A worker's registry, as GatewayMetrics builds it. */
  const worker = (requests: number, latencies: number[], inflight: number, up: number, failures: number, only?: string) => {
    const r = new Registry();
    const c = r.counter('req_total', 'Requests.', ['role']);
    c.inc(['chat'], requests);
    if (only !== undefined) c.inc([only]);
    const h = r.histogram('lat_seconds', 'Latency.', [], [0.1, 1]);
    for (const l of latencies) h.observe([], l);
    r.gauge('in_flight', 'In flight.', [], 'sum').set([], inflight);
    r.gauge('backend_up', 'Up.', ['backend'], 'min').set(['a'], up);
    r.gauge('failures', 'Consecutive failures.', ['backend']).set(['a'], failures);
    return r;
  };
  const a = worker(3, [0.05, 2], 1, 1, 0);
  const b = worker(4, [0.5], 2, 0, 5, 'embed');
  const text = a.render([b.snapshot(), JSON.parse(JSON.stringify(worker(1, [], 0, 1, 1).snapshot()))]);
  const lines = text.trimEnd().split('\n');
  for (const l of [
    'req_total{role="chat"} 8', 'req_total{role="embed"} 1',
    'lat_seconds_bucket{le="0.1"} 1', 'lat_seconds_bucket{le="1"} 2', 'lat_seconds_bucket{le="+Inf"} 3', 'lat_seconds_sum 2.55', 'lat_seconds_count 3',
    'in_flight 3', 'backend_up{backend="a"} 0', 'failures{backend="a"} 5',
  ]) assert.ok(lines.includes(l), `${l} in:\n${text}`);
  assert.equal(lines.filter((l) => l === '# TYPE req_total counter').length, 1, 'one family, once');
  assert.equal(a.render(), worker(3, [0.05, 2], 1, 1, 0).render(), 'alone, as before');
});
