import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TokenCounter } from './count.ts';

test('the tokenizer is loaded only when asked (it costs some 70 MiB); ready says so; short prompts are judged by their bytes alone', async () => {
  const t = new TokenCounter();
  assert.equal(t.ready, false);
  assert.equal(await t.exceeds({ messages: [{ role: 'user', content: 'hi' }] }, 100), false);
  assert.equal(t.ready, false, 'under the limit in bytes: no tokenizer loaded');
  assert.equal(await t.exceeds({ prompt: 'word '.repeat(200) }, 100), true);
  assert.equal(t.ready, true);
  assert.equal(await t.exceeds({ prompt: 'word '.repeat(200) }, 300), false, '200 words are about 200 tokens, though 1,000 bytes');
  // A client's special-token text is counted as text, not refused by the tokenizer.
  assert.equal(await t.exceeds({ prompt: `${'word '.repeat(200)}<|endoftext|>` }, 100), true);
  assert.ok(await t.count({ prompt: '<|endoftext|>' }) > 1);
});
