// The backend circuit (src/core/backend.ts): N consecutive failures cool a backend down, a
// further failure extends the cooldown and never shortens it, and after it one trial (a
// request or a probe-back) decides whether it is restored.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BackendRuntime } from '../core/backend.ts';
import { Secrets } from '../config/env-file.ts';
import { DEFAULT_TIMEOUTS, type BackendConfig } from '../config/types.ts';

function backend(over: Partial<BackendConfig> = {}): BackendRuntime {
  const cfg: BackendConfig = {
    name: 'b', engine: 'vllm', node: undefined, url: 'http://127.0.0.1:9/v1', model: 'm', apiKey: undefined, contextWindow: undefined,
    weight: 1, maxRetries: 0, maxConnections: 4, timeouts: { ...DEFAULT_TIMEOUTS, connectMs: 100, firstByteMs: 900 }, aliases: [], simulated: false,
    health: { failureThreshold: 3, cooldownMs: 1_000, maxCooldownMs: 3_000 },
    ...over,
  };
  return new BackendRuntime(cfg, undefined, new Secrets({}));
}

/** A test body run against a fresh backend, whose pool is closed afterwards. */
const withBackend = (fn: (b: BackendRuntime) => void | Promise<void>, over: Partial<BackendConfig> = {}) => async (): Promise<void> => {
  const b = backend(over);
  try {
    await fn(b);
  } finally {
    await b.close();
  }
};

/** Three failed requests at these times: the threshold, so it trips. */
const trip = (b: BackendRuntime, times = [0, 1, 2]): void => { for (const t of times) b.recordFailure('x', t); };

test('the threshold: tried while failing, skipped once it trips, with the seconds left', withBackend((b) => {
  b.recordFailure('boom', 0);
  b.recordFailure('boom', 10);
  assert.equal(b.state, 'failing');
  assert.equal(b.skipReason(20), undefined);
  assert.equal(b.retryAfterSeconds(20), undefined);
  const trips: number[] = [];
  b.onTrip(() => trips.push(b.coolUntil));
  b.recordFailure('boom', 20);
  assert.equal(b.state, 'down');
  assert.equal(b.circuit(21), 'open');
  assert.deepEqual(trips, [1_020]);
  assert.match(b.skipReason(520)!, /cooling down for 1s more after 3 consecutive failures \(boom\)/);
  assert.equal(b.retryAfterSeconds(520), 1);
  assert.equal(b.available(520), false);
}));

test('a further failure extends the cooldown, never shortens it', withBackend((b) => {
  trip(b);
  assert.equal(b.coolUntil, 1_002);
  b.recordFailure('late answer from an in-flight request', 500);
  assert.equal(b.coolUntil, 1_500, 'extended');
  b.recordFailure('x', 100);
  assert.equal(b.coolUntil, 1_500, 'never shortened');
  assert.equal(b.retryAfterSeconds(600), 1);
}));

test('half-open: one trial at a time; success closes, failure cools down for twice as long, up to the maximum', withBackend((b) => {
  trip(b);
  const t1 = 1_100;
  assert.equal(b.circuit(t1), 'half-open');
  assert.equal(b.available(t1), true);
  assert.equal(b.skipReason(t1), undefined, 'the first caller is the trial');
  assert.match(b.skipReason(t1 + 1)!, /half-open/, 'a second caller waits for the trial');
  assert.equal(b.available(t1 + 1), false);
  b.recordFailure('still broken', t1 + 50);
  assert.equal(b.coolUntil, t1 + 50 + 2_000, 'second trip: cooldown doubled');
  assert.equal(b.trips, 2);
  const t2 = b.coolUntil + 1;
  assert.equal(b.skipReason(t2), undefined);
  b.recordFailure('still broken', t2);
  assert.equal(b.coolUntil, t2 + 3_000, 'third trip: capped at max_cooldown');
  // The trial reservation lapses if its caller never reports back.
  const t3 = b.coolUntil + 1;
  assert.equal(b.skipReason(t3), undefined);
  assert.notEqual(b.skipReason(t3 + 10), undefined);
  assert.equal(b.skipReason(t3 + 100 + 900 + 1), undefined, 'after connect + first-byte timeouts another caller may try');
  // A non-streamed generation's trial may take up to the total timeout to answer: its slot is held that long.
  b.recordFailure('still broken', t3 + 2_000);
  const t4 = b.coolUntil + 1;
  assert.equal(b.skipReason(t4, true), undefined);
  assert.match(b.skipReason(t4 + 100 + 900 + 1)!, /half-open/, 'still its trial, past its first byte');
  assert.equal(b.skipReason(t4 + b.config.timeouts.totalMs + 1), undefined, 'until it could have answered in full');
  b.recordSuccess(12);
  assert.equal(b.circuit(t3 + 2_000), 'closed');
  assert.equal(b.state, 'up');
  assert.equal(b.trips, 0, 'a request that succeeds starts the escalation over');
}));

test('probes: a probe-back after the cooldown restores; a probe inside it does not cut it short; a forced one (waking node) does', withBackend((b) => {
  trip(b);
  b.recordProbeSuccess(5, 500);
  assert.equal(b.circuit(500), 'open', 'inside the cooldown');
  assert.equal(b.lastProbeLatencyMs, 5);
  b.recordProbeSuccess(5, 1_100);
  assert.equal(b.circuit(1_100), 'closed');
  assert.equal(b.trips, 1, 'a probe does not prove requests work: the next trip still escalates');
  trip(b, [2_000, 2_001, 2_002]);
  assert.equal(b.coolUntil, 2_002 + 2_000);
  b.recordProbeSuccess(5, 2_100, true);
  assert.equal(b.circuit(2_100), 'closed');
}));

test('an unusable backend (its key unset) is always skipped and never counts as cooling', withBackend((b) => {
  assert.match(b.skipReason(0)!, /NOT_SET_ANYWHERE/);
  assert.equal(b.available(0), false);
  assert.equal(b.retryAfterSeconds(0), undefined);
}, { apiKey: { env: 'NOT_SET_ANYWHERE' } }));

test('load: our requests count live, the engine\'s sample adds what we cannot see; a queue or a full KV cache is overload', withBackend((b) => {
  assert.equal(b.loadScore(0), 0);
  b.outstanding = 2;
  b.setLoad({ at: 1_000, running: 5, waiting: 0, kvCacheUsage: 0.2, slots: undefined, loaded: undefined, source: 'test' });
  assert.equal(b.loadScore(1_000), (2 + 3) / 2, 'three of the five running are other clients\'');
  assert.equal(b.overloaded(1_000), false);
  b.setLoad({ at: 1_000, running: 8, waiting: 4, kvCacheUsage: 0.95, slots: undefined, loaded: undefined, source: 'test' });
  assert.equal(b.loadScore(1_000), (2 + 10 + 4 + 4) / 2);
  assert.equal(b.overloaded(1_000), true);
  assert.equal(b.overloaded(1_000 + 60_000), false, 'a stale sample is ignored');
  assert.equal(b.loadScore(1_000 + 60_000), 1);
}, { weight: 2 }));

test('a good /health between failed requests does not excuse them; it does end a streak of failed probes', withBackend(async (b) => {
  b.recordFailure('timeout', 0);
  b.recordProbeSuccess(3, 1);
  b.recordFailure('timeout', 2);
  b.recordProbeSuccess(3, 3);
  assert.equal(b.consecutiveFailures, 2);
  b.recordFailure('timeout', 4);
  assert.equal(b.state, 'down', 'three failed requests trip it, probes or not');
  const p = backend();
  p.recordFailure('health check: connection refused', 0, true);
  p.recordFailure('health check: connection refused', 1, true);
  p.recordProbeSuccess(3, 2);
  assert.deepEqual([p.consecutiveFailures, p.state], [0, 'up']);
  await p.close();
}));

test('a backend that asks for a long wait (429 Retry-After) is skipped until then, capped at max_cooldown, without counting as a failure', withBackend((b) => {
  b.rateLimit(3_600_000, 0);
  assert.equal(b.rateLimitedUntil, 3_000, 'capped at max_cooldown');
  assert.match(b.skipReason(1_000)!, /rate limited by the backend for 2s more/);
  assert.equal(b.available(1_000), false);
  assert.equal(b.retryAfterSeconds(1_000), 2);
  assert.equal(b.consecutiveFailures, 0);
  assert.equal(b.circuit(1_000), 'closed');
  b.rateLimit(500, 1_000);
  assert.equal(b.rateLimitedUntil, 3_000, 'a later, shorter answer does not shorten it');
  assert.equal(b.skipReason(3_000), undefined, 'tried again when it ends');
  assert.equal(b.available(3_000), true);
  assert.equal(b.retryAfterSeconds(3_000), undefined);
}));

test('a reload: the same server (name, engine, URL, model, key value) is sameServerAs; a changed URL, model, engine or key is not, timeouts and policy do not matter', async () => {
  const key = (env: string, value: string): BackendRuntime => new BackendRuntime({ ...backend().config, apiKey: { env } }, undefined, new Secrets({ [env]: value }));
  const a = backend();
  const others = [
    backend({ timeouts: { ...DEFAULT_TIMEOUTS, firstByteMs: 5 }, health: { failureThreshold: 1, cooldownMs: 5, maxCooldownMs: 5 }, weight: 3, maxConnections: 1 }),
    backend({ url: 'http://127.0.0.1:10/v1' }), backend({ model: 'other' }), backend({ engine: 'sglang' }), backend({ name: 'c' }),
    key('K1', 'secret-one'), key('K2', 'secret-one'), key('K1', 'secret-two'),
  ];
  try {
    assert.deepEqual(others.map((o) => o.sameServerAs(a)), [true, false, false, false, false, false, false, false]);
    assert.equal(others[5]!.sameServerAs(others[6]!), true, 'the same key under another variable');
    assert.equal(others[5]!.sameServerAs(others[7]!), false, 'a rotated key starts fresh');
  } finally {
    await Promise.all([a, ...others].map((b) => b.close()));
  }
});

test('a reload carries the circuit, the escalation and a Retry-After over, and a half-open circuit (its next request a trial of its own); a cooldown past what the new policy gives is cut to it', async () => {
  const old = backend({ health: { failureThreshold: 3, cooldownMs: 10_000, maxCooldownMs: 60_000 } });
  const same = backend({ health: { failureThreshold: 3, cooldownMs: 10_000, maxCooldownMs: 60_000 } });
  const shorter = backend({ health: { failureThreshold: 3, cooldownMs: 1_000, maxCooldownMs: 3_000 } });
  const halfOpen = backend();
  const fresh = backend();
  try {
    old.recordSuccess(7);
    trip(old);
    old.recordFailure('x', 10_100);
    old.rateLimit(30_000, 10_100);
    assert.deepEqual([old.trips, old.coolUntil, old.rateLimitedUntil], [2, 10_100 + 20_000, 40_100]);
    same.takeOver(old, 10_200);
    assert.deepEqual([same.state, same.consecutiveFailures, same.trips, same.coolUntil, same.rateLimitedUntil, same.lastError, same.lastLatencyMs], ['down', 4, 2, 30_100, 40_100, 'x', 7]);
    assert.match(same.skipReason(15_000)!, /rate limited by the backend/);
    same.recordFailure('x', 30_200);
    assert.equal(same.coolUntil, 30_200 + 40_000, 'the half-open trial failing escalates from the carried trips');
    // max_cooldown 3 s now: the second trip's cooldown (2 s from the reload) and the Retry-After (3 s) are cut.
    shorter.takeOver(old, 10_200);
    assert.deepEqual([shorter.coolUntil, shorter.rateLimitedUntil], [10_200 + 2_000, 10_200 + 3_000]);
    // Half-open with its trial out: that trial's result lands on the old runtime, so the next
    // request after the reload is the new one's trial (else nothing would go there until the
    // old trial's reservation lapsed, up to the total timeout); then one at a time again.
    trip(halfOpen);
    assert.equal(halfOpen.skipReason(1_100), undefined);
    fresh.takeOver(halfOpen, 1_150);
    assert.equal(fresh.circuit(1_150), 'half-open');
    assert.equal(fresh.skipReason(1_150), undefined, 'the new runtime\'s own trial');
    assert.match(fresh.skipReason(1_151)!, /one trial request is already testing/);
  } finally {
    await Promise.all([old, same, shorter, halfOpen, fresh].map((b) => b.close()));
  }
});

test('a reload: requests in flight on the old runtime count on the new one until they end, through any number of reloads', async () => {
  const [r1, r2, r3] = [backend(), backend(), backend()];
  try {
    r1.outstanding++;
    r1.outstanding++;
    r1.setLoad({ at: 1_000, running: 5, waiting: 1, kvCacheUsage: 0.5, slots: undefined, loaded: undefined, source: 'test' });
    r2.takeOver(r1, 1_000);
    assert.equal(r2.outstanding, 2);
    assert.equal(r2.loadScore(1_000), 2 + (5 + 1 - 2) + 1, 'the engine\'s sample carried, with what it included of ours');
    r2.outstanding++;
    r1.outstanding--;
    r3.takeOver(r2, 1_000);
    assert.equal(r3.outstanding, 2);
    r1.outstanding--;
    r2.outstanding--;
    assert.deepEqual([r1.outstanding, r2.outstanding, r3.outstanding], [0, 0, 0]);
  } finally {
    await Promise.all([r1, r2, r3].map((b) => b.close()));
  }
});
