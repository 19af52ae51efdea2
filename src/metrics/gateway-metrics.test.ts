import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GatewayMetrics } from './gateway-metrics.ts';
import type { AttemptFailure } from '../core/errors.ts';

const metrics = (): GatewayMetrics => new GatewayMetrics(() => { throw new Error('not scraped here'); }, Date.now());
const fail503 = (backend: string): AttemptFailure => ({ backend, role: 'r', failure: 'upstream_5xx', status: 503, message: 'HTTP 503' });

test('a stream its client left (499), served by a retry: the retry counts against the backend that served it', () => {
  const m = metrics();
  m.failed('chat', 'r', 'a', 499, 'client_closed_request', 0.1, [fail503('a')]);
  assert.equal(m.retries.value(['a']), 1);
  assert.equal(m.attemptFailures.value(['a', 'upstream_5xx']), 1);
  // A failure before any answer: no backend served it, nothing more is a retry.
  m.failed('chat', 'r', undefined, 503, 'no_backend_available', 0.1, [fail503('b'), fail503('c')]);
  assert.equal(m.retries.value(['b']), 0);
  assert.equal(m.retries.value(['c']), 0);
  assert.equal(m.requests.value(['chat', 'r', 'a', '499']), 1, 'by the backend that served it');
  assert.equal(m.requests.value(['chat', 'r', 'c', '503']), 1, 'by the backend it last reached, as its usage record');
  m.failed('chat', 'r', undefined, 503, 'no_backend_available', 0.1, [{ backend: 'd', role: 'r', failure: 'unavailable', message: 'cooling down' }]);
  assert.equal(m.requests.value(['chat', 'r', '', '503']), 1, 'none reached: no backend');
});

test('an attempt its client left is no backend\'s failure, though a second attempt at the same backend is a retry', () => {
  const m = metrics();
  m.failed('chat', 'r', undefined, 499, 'client_closed_request', 0.1, [fail503('a'), { backend: 'a', role: 'r', failure: 'aborted', message: 'client closed the request' }]);
  assert.equal(m.attemptFailures.value(['a', 'aborted']), 0);
  assert.equal(m.attemptFailures.value(['a', 'upstream_5xx']), 1);
  assert.equal(m.retries.value(['a']), 1);
});
