// Determinism of the simulated model.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  chatText, countWords, embedding, embeddingBase64, hash32, promptItems, replyTokens,
} from './generate.ts';
import { decodeBase64Floats } from './test-helpers.ts';

test('the reply depends only on the text, and its tokens join into a sentence', () => {
  assert.deepEqual(replyTokens('same question'), replyTokens('same question'));
  const t = replyTokens('anything');
  assert.match(t.join(''), /^[A-Z].*\.$/);
  assert.ok(t.slice(1).every((w) => w.startsWith(' ')));
  const distinct = new Set(Array.from({ length: 50 }, (_, i) => replyTokens(`q${i}`).join('')));
  assert.ok(distinct.size > 5);
});

test('token counts: words, plus per-message framing for chats', () => {
  assert.equal(countWords('  one two\nthree\t '), 3);
  assert.equal(countWords(''), 0);
  const c = chatText([{ role: 'system', content: 'be brief' }, { role: 'user', content: [{ type: 'text', text: 'why is it' }] }]);
  assert.deepEqual(c && { seed: c.seed, promptTokens: c.promptTokens }, { seed: 'why is it', promptTokens: 3 + (2 + 4) + (3 + 4) });
  assert.equal(chatText('nope'), undefined);
  assert.deepEqual(promptItems([1, 2, 3]), [{ text: '1 2 3', tokens: 3 }]);
  assert.deepEqual(promptItems(['a b', [7, 8]])?.map((p) => p.tokens), [2, 2]);
  assert.equal(promptItems([{}]), undefined);
});

test('embeddings: deterministic, L2-normalised, and base64 round-trips exactly', () => {
  const a = embedding('text', 768);
  assert.equal(a.length, 768);
  assert.deepEqual(a, embedding('text', 768));
  assert.notDeepEqual(a, embedding('other', 768));
  let sum = 0;
  for (const x of a) sum += x * x;
  assert.ok(Math.abs(sum - 1) < 1e-5);
  assert.deepEqual(decodeBase64Floats(embeddingBase64(a)), Array.from(a));
  assert.equal(hash32('x'), hash32('x'));
});
