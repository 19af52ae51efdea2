import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RECENT_WINDOW_MS, RecentTraffic, slowReason } from './recent.ts';

test('recent traffic: p50 and p95 of answers and of streams\' first tokens, apart; errors counted; only the window\'s outcomes', () => {
  const r = new RecentTraffic();
  const now = 10_000_000;
  // Outside the window: a very slow answer and failures that no longer count.
  r.succeeded(now - RECENT_WINDOW_MS - 1, 99_999, false);
  r.failed(now - RECENT_WINDOW_MS - 5);
  for (let i = 1; i <= 100; i++) r.succeeded(now - i * 100, i, false);
  for (let i = 1; i <= 20; i++) r.succeeded(now - i * 100, 1000 + i, true);
  r.failed(now - 50);
  r.failed(now - 60);
  const f = r.figures(now);
  assert.deepEqual(
    [f.requests, f.errors, f.latency_samples, f.latency_p50_ms, f.latency_p95_ms, f.ttft_samples, f.ttft_p50_ms, f.ttft_p95_ms, f.window_s],
    [122, 2, 100, 50, 95, 20, 1010, 1019, 300],
  );
  assert.deepEqual(new RecentTraffic().figures(now), {
    window_s: 300, requests: 0, errors: 0, latency_p50_ms: null, latency_p95_ms: null, latency_samples: 0, ttft_p50_ms: null, ttft_p95_ms: null, ttft_samples: 0,
  });
});

test('recent traffic: past the ring\'s size the oldest outcomes go, and the window says how long the ring covers', () => {
  const r = new RecentTraffic();
  const now = 50_000_000;
  for (let i = 0; i < 600; i++) r.succeeded(now - (600 - i) * 100, i < 88 ? 5000 : 10, false);
  const f = r.figures(now);
  assert.equal(f.latency_samples, 512, 'the last 512');
  assert.equal(f.latency_p95_ms, 10, 'the 88 slow ones were the oldest, and are gone');
  assert.equal(f.window_s, 51, 'the 512 outcomes span 51 s');
});

test('recent traffic: a busy spell long past, then a few answers: the figures cover the whole window, not the last seconds', () => {
  const r = new RecentTraffic();
  const now = 90_000_000;
  for (let i = 0; i < 600; i++) r.succeeded(now - 3_600_000 + i, 10, false);
  for (let i = 0; i < 12; i++) r.succeeded(now - 10_000 + i * 800, 20, false);
  const f = r.figures(now);
  assert.deepEqual([f.latency_samples, f.window_s], [12, 300]);
});

test('slow: the p95 of answers or of first tokens above the threshold, with at least 5 samples of that kind; never without a threshold', () => {
  const r = new RecentTraffic();
  const now = 1_000_000;
  for (let i = 0; i < 4; i++) r.succeeded(now, 12_000, false);
  assert.equal(slowReason(r.figures(now), 10_000), null, 'four slow answers are not yet a slow backend');
  r.succeeded(now, 12_500, false);
  assert.equal(slowReason(r.figures(now), 10_000), 'p95 latency 12.5 s over 5 answers in the last 5 min, above its slow threshold (10.0 s)');
  assert.equal(slowReason(r.figures(now), 20_000), null);
  assert.equal(slowReason(r.figures(now), undefined), null);
  for (let i = 0; i < 5; i++) r.succeeded(now, 800, true);
  assert.match(slowReason(r.figures(now), 500)!, /^p95 latency 12\.5 s over 5 answers and p95 time to first token 800 ms over 5 streams in the last 5 min, above its slow threshold \(500 ms\)$/);
});
