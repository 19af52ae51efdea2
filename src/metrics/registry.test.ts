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
