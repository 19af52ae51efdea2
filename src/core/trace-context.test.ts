import { test } from 'node:test';
import assert from 'node:assert/strict';
import { traceContext } from './trace-context.ts';

const TP = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

test('a valid traceparent is kept as it came, with its tracestate; the trace id is read from it', () => {
  const ids = { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', parentId: '00f067aa0ba902b7' };
  assert.deepEqual(traceContext(TP, 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE'), { traceparent: TP, tracestate: 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE', ...ids, sampled: true });
  assert.deepEqual(traceContext(TP, undefined), { traceparent: TP, tracestate: undefined, ...ids, sampled: true });
  // Unsampled too: the flags are the client's to set. Only their lowest bit says sampled.
  assert.deepEqual(traceContext(TP.replace(/01$/, '00'), undefined), { traceparent: TP.replace(/01$/, '00'), tracestate: undefined, ...ids, sampled: false });
  assert.equal(traceContext(TP.replace(/01$/, '03'), undefined)?.sampled, true);
  assert.equal(traceContext(TP.replace(/01$/, '02'), undefined)?.sampled, false);
  // Several tracestate headers are one list.
  assert.equal(traceContext(TP, ['a=1', 'b=2'])?.tracestate, 'a=1,b=2');
});

test('a later version may carry more fields; version 00 may not', () => {
  const v1 = '01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds';
  assert.equal(traceContext(v1, undefined)?.traceparent, v1);
  assert.equal(traceContext(TP + '-extra', undefined), undefined);
});

test('an invalid traceparent is dropped with its tracestate', () => {
  for (const bad of [
    '', 'garbage', TP.toUpperCase(), TP.slice(0, -1),
    'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', // version ff is invalid
    '00-00000000000000000000000000000000-00f067aa0ba902b7-01', // all-zero trace id
    '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01', // all-zero parent id
    `${TP}, ${TP}`, // sent twice (node:http joins them)
    '01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-' + 'x'.repeat(300), // past any sane length
  ]) assert.equal(traceContext(bad, 'a=1'), undefined, bad);
  assert.equal(traceContext(['a', 'b'] as unknown as string, undefined), undefined);
});

test('a tracestate that is not printable or is too long is left out; the traceparent still goes', () => {
  assert.equal(traceContext(TP, 'a=1\r\nx-injected: yes')?.tracestate, undefined);
  assert.equal(traceContext(TP, 'a='.padEnd(600, 'x'))?.tracestate, undefined);
  assert.equal(traceContext(TP, '  ')?.tracestate, undefined);
  assert.equal(traceContext(TP, 'a=\u00e9')?.tracestate, undefined);
});
