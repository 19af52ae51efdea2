import { test } from 'node:test';
import assert from 'node:assert/strict';
import { transportError } from './attempt-error.ts';
import type { BackendRuntime } from './backend.ts';

const backend = { config: { timeouts: { connectMs: 1000, firstByteMs: 1000, idleMs: 1000 } } } as unknown as BackendRuntime;
const err = (code: string): Error => Object.assign(new Error(`connect ${code}`), { code });

test('the gateway\'s own exhaustion (file descriptors, memory) is its own, not the backend\'s; a refused or reset connection is the backend\'s', () => {
  for (const code of ['EMFILE', 'ENFILE', 'ENOMEM', 'ENOBUFS']) {
    const e = transportError(backend, err(code), undefined);
    assert.equal(e.local, true, code);
    assert.match(e.message, new RegExp(`the gateway could not open a connection: ${code}`));
  }
  assert.match(transportError(backend, err('EMFILE'), undefined).message, /ulimit -n/);
  for (const code of ['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH']) assert.equal(transportError(backend, err(code), undefined).local, false, code);
  // undici wraps the code in its cause.
  assert.equal(transportError(backend, Object.assign(new Error('fetch failed'), { cause: { code: 'EMFILE' } }), undefined).local, true);
});
