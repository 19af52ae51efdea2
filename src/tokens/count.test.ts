import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TokenCounter, segments } from './count.ts';

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

test('counting costs linear time and yields the event loop: a run of one letter is cut into pieces (BPE is quadratic in a piece), prose is counted exactly', async () => {
  const enc = await import('gpt-tokenizer/encoding/o200k_base');
  const t = new TokenCounter();
  // 1 MB of "a": o200k makes 8 letters one token, so a cut every 256 letters loses nothing here.
  // Unsegmented, this count took minutes; the test's timeout is what would catch it.
  let turns = 0;
  let spin = true;
  const tick = (): void => { turns++; if (spin) setImmediate(tick); };
  setImmediate(tick);
  assert.equal(await t.count({ prompt: 'a'.repeat(1_000_000) }), 125_000);
  spin = false;
  assert.ok(turns > 1, `the event loop had ${turns} turns during the count`);
  assert.equal(await t.exceeds({ prompt: ' '.repeat(500_000) }, 12_000), false, 'a run of spaces: a few tokens per 256');
  assert.equal(await t.exceeds({ prompt: '.'.repeat(2_000_000) }, 12_000), true);

  const prose = 'The gateway routes each request to a healthy backend, and falls back when one fails. '.repeat(2000);
  assert.equal(await t.count({ prompt: prose }), enc.countTokens(prose), 'cuts before a space change nothing in prose');
  for (const s of [prose, 'a'.repeat(1000), `x${' '.repeat(700)}y`, `x${'😀'.repeat(2000)}`, '\udc00'.repeat(1000), '\ud800'.repeat(1000)]) {
    const parts = [...segments(s)];
    assert.equal(parts.join(''), s);
    assert.ok(parts.every((p, i) => i === 0 || !((p.charCodeAt(0) & 0xfc00) === 0xdc00 && (parts[i - 1]!.charCodeAt(parts[i - 1]!.length - 1) & 0xfc00) === 0xd800)), 'never cut between the halves of one character');
    assert.ok(parts.every((p) => !/(\S{258,}|\s{258,})/.test(p)), 'no run past 256 characters (257 to keep a character whole)');
  }
});

test('the prompt counted includes an assistant turn\'s tool-call arguments, as the engine reads them', async () => {
  const t = new TokenCounter();
  const big = 'word '.repeat(2000);
  const body = { messages: [{ role: 'user', content: 'write it' }, { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'write_file', arguments: JSON.stringify({ text: big }) } }] }, { role: 'tool', tool_call_id: 'c1', content: 'ok' }] };
  assert.ok(TokenCounter.texts(body).some((s) => s.includes(big)));
  assert.equal(await t.exceeds(body, 1000), true);
  assert.ok(await t.count(body) > 2000);
});

test('anyOver: embeddings inputs and rerank pairs are each judged on their own, token-id lists by their length', async () => {
  const t = new TokenCounter();
  const words = (n: number) => Array.from({ length: n }, (_, i) => `word${i}`).join(' ');
  const short = Array.from({ length: 30 }, () => words(10));
  assert.equal(await t.anyOver({ input: short }, 50), false, 'the batch is long, no input is');
  assert.equal(await t.anyOver({ input: [...short, words(60)] }, 50), true);
  assert.equal(await t.anyOver({ input: words(60) }, 50), true);
  assert.equal(await t.anyOver({ input: Array.from({ length: 51 }, (_, i) => i) }, 50), true, 'one token-id list of 51');
  assert.equal(await t.anyOver({ input: [Array.from({ length: 50 }, (_, i) => i), [1, 2]] }, 50), false);
  assert.equal(await t.anyOver({ input: [[1], Array.from({ length: 51 }, (_, i) => i)] }, 50), true);
  // About two tokens a word ("word" and its number).
  assert.equal(await t.anyOver({ query: words(10), documents: Array.from({ length: 20 }, () => words(5)) }, 50), false);
  assert.equal(await t.anyOver({ query: words(10), documents: [words(5), words(20)] }, 50), true, 'the query beside its longest document');
  // 60 bytes of one character are far fewer than 50 tokens: counted, not judged by bytes.
  assert.equal(await t.anyOver({ input: 'a'.repeat(60) }, 50), false);
});

test('estimate: exact up to its bound, past it by bytes (four a token, never under the bound), so its cost is the bound\'s whatever the body', async () => {
  const t = new TokenCounter();
  const short = { messages: [{ role: 'user', content: 'How many tokens is this sentence, more or less?' }] };
  assert.equal(await t.estimate(short, 1000), await t.count(short));
  const text = 'word '.repeat(300_000);
  const long = { messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: text }] };
  const bytes = Buffer.byteLength('Be brief.') + text.length;
  assert.equal(await t.estimate(long, 1000), Math.ceil(bytes / 4) + 8);
  // Text of fewer bytes a token (digits, one token each here): never less than the bound it passed.
  const digits = Array.from({ length: 1500 }, (_, i) => String(i % 10)).join(' ');
  assert.ok(await t.count({ prompt: digits }) > 1000 && digits.length / 4 < 1000);
  assert.equal(await t.estimate({ prompt: digits }, 1000), 1000);
});
