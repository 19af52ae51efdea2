import { test } from 'node:test';
import assert from 'node:assert/strict';
import { constantTimeEquals, MasterKey } from './auth.ts';

test('master key comparison: only the exact key matches', () => {
  const key = 'sk-master-0123456789abcdef';
  const mk = new MasterKey(key);
  assert.equal(mk.matches(key), true);
  for (const wrong of ['', 's', key.slice(0, -1), key + 'x', key.slice(1), 'x' + key.slice(1), key.slice(0, -1) + 'g', key.toUpperCase(), key + key]) {
    assert.equal(mk.matches(wrong), false, JSON.stringify(wrong));
  }
  // A guess that repeats to the key's characters (the walk wraps the shorter string) is still wrong.
  assert.equal(constantTimeEquals('ab', 'abab'), false);
  assert.equal(constantTimeEquals('abab', 'ab'), false);
  assert.equal(mk.matches(undefined), false);
  // Characters past the Latin-1 range compare too.
  assert.equal(constantTimeEquals('ключ', 'ключ'), true);
  assert.equal(constantTimeEquals('ключ', 'ключь'), false);
});

test('the presented key: Bearer (any case, any spacing) or x-api-key', () => {
  assert.equal(MasterKey.presented({ authorization: 'Bearer sk-1' }), 'sk-1');
  assert.equal(MasterKey.presented({ authorization: 'bearer   sk-2  ' }), 'sk-2');
  assert.equal(MasterKey.presented({ authorization: 'Bearer  sk-3' }), 'sk-3');
  assert.equal(MasterKey.presented({ authorization: 'Bearer\tsk-4' }), 'sk-4');
  // Whitespace beyond ASCII (a no-break space, as Node passes byte 0xA0 through) is trimmed as the regex does.
  assert.equal(MasterKey.presented({ authorization: 'Bearer \u00a0sk-6\u00a0' }), 'sk-6');
  assert.equal(MasterKey.presented({ authorization: 'Basic abc' }), undefined);
  assert.equal(MasterKey.presented({ authorization: 'Bearer ' }), undefined);
  assert.equal(MasterKey.presented({ 'x-api-key': ' sk-5 ' }), 'sk-5');
  assert.equal(MasterKey.presented({}), undefined);
});
