import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IMAGE_PART_BOUND, bodySize, promptEstimate } from './account.ts';

const user = (content: unknown) => ({ model: 'm', messages: [{ role: 'user', content }] });

test('an image part counts as the most an image may cost, whatever its URL or data; text parts by their text', () => {
  const text = bodySize(user([{ type: 'text', text: 'describe these' }]));
  const url = bodySize(user([{ type: 'text', text: 'describe these' }, { type: 'image_url', image_url: { url: 'https://x/y.png' } }]));
  const data = bodySize(user([{ type: 'text', text: 'describe these' }, { type: 'image_url', image_url: { url: `data:image/png;base64,${'A'.repeat(400_000)}` } }]));
  assert.equal(text.promptBytes, 'describe these'.length);
  assert.equal(url.promptBytes, text.promptBytes + IMAGE_PART_BOUND);
  assert.equal(data.promptBytes, url.promptBytes, 'a 400 KB data URL is not 400,000 tokens');
  const four = bodySize(user(Array.from({ length: 4 }, () => ({ type: 'image_url', image_url: { url: 'https://x/y.png' } }))));
  assert.equal(four.promptBytes, 4 * IMAGE_PART_BOUND);
  // The Responses API's parts, converted or not, count alike.
  assert.equal(bodySize(user([{ type: 'input_image', image_url: 'https://x/y.png' }])).promptBytes, IMAGE_PART_BOUND);
  // The estimate reads about a typical image (some 765 tokens at OpenAI's high detail).
  assert.equal(promptEstimate(four), 4 * (IMAGE_PART_BOUND / 4) + 4);
});

test('a response_format JSON schema counts as prompt; json_object alone adds nothing', () => {
  const schema = { name: 'reply', schema: { type: 'object', properties: { answer: { type: 'string', description: 'the answer, in one sentence' } }, required: ['answer'] } };
  const plain = bodySize({ ...user('hi'), response_format: { type: 'json_object' } });
  const strict = bodySize({ ...user('hi'), response_format: { type: 'json_schema', json_schema: schema } });
  assert.equal(plain.promptBytes, 2);
  assert.equal(strict.promptBytes, 2 + JSON.stringify(schema).length);
});
