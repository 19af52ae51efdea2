import { test } from 'node:test';
import assert from 'node:assert/strict';
import { suggest } from './issues.ts';

test('suggest: the nearest name within a third of the length; nothing for far or huge words', () => {
  const names = ['chat-fast', 'chat-deep', 'embeddings-general', 'local/chat'];
  assert.equal(suggest('chat-fats', names), 'chat-fast');
  assert.equal(suggest('local/chta', names), 'local/chat');
  assert.equal(suggest('something-else-entirely', names), undefined);
  // A request's model name can be megabytes: without the length bound this is 8e6 × 18 steps per name.
  assert.equal(suggest('x'.repeat(8_000_000), names), undefined);
});
