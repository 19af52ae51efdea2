import { test } from 'node:test';
import assert from 'node:assert/strict';
import { redact } from './redact.ts';

test('a known secret is taken out whole, and so is its start quoted alone (an echo cut short); short secrets and unrelated text are left', () => {
  const key = 'abc/def+SECRETFAKE==';
  assert.equal(redact(`bad key ${key} here`, [key]), 'bad key [redacted] here');
  assert.equal(redact(`bad key ${key.slice(0, -2)} and ${key.slice(0, 14)}…`, [key]), 'bad key [redacted] and [redacted]…');
  assert.equal(redact(`only ${key.slice(0, 11)} of it`, [key]), `only ${key.slice(0, 11)} of it`, 'fewer than 12 characters: too little to be the key');
  assert.equal(redact('short ab12cd34 echoed', ['ab12cd34']), 'short [redacted] echoed');
  assert.equal(redact('nothing to see', [key]), 'nothing to see');
  assert.equal(redact(`${key.slice(0, 12)}X${key.slice(0, 13)}`, [key]), '[redacted]X[redacted]');
});
