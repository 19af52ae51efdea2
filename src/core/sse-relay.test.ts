import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SseRelay, LineSplitter } from './sse-relay.ts';

const ev = (o: unknown): string => `data: ${JSON.stringify(o)}\n\n`;
const chunk = (content: string) => ev({ id: 'x', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content } }] });
const usageEv = ev({ id: 'x', object: 'chat.completion.chunk', choices: [], usage: { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 } });

test('complete events pass through as the same bytes', () => {
  const r = new SseRelay(false);
  const input = Buffer.from(chunk('a') + chunk('b'));
  const out = r.push(input);
  assert.equal(out, input, 'no copy when the chunk ends on an event boundary');
});

test('a partial event is held until its boundary arrives', () => {
  const r = new SseRelay(false);
  const whole = chunk('hello');
  assert.equal(r.push(Buffer.from(whole.slice(0, 10))), undefined);
  assert.equal(r.forwarded, 0);
  const out = r.push(Buffer.from(whole.slice(10)));
  assert.equal(out?.toString(), whole);
});

test('injected usage is recorded and removed from what the client sees', () => {
  const r = new SseRelay(true);
  const out = r.push(Buffer.from(chunk('a') + usageEv + 'data: [DONE]\n\n'));
  assert.equal(out?.toString(), chunk('a') + 'data: [DONE]\n\n');
  assert.deepEqual(r.usage, { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 });
  assert.equal(r.sawDone, true);
});

test('usage the client asked for is recorded and kept', () => {
  const r = new SseRelay(false);
  const out = r.push(Buffer.from(usageEv));
  assert.equal(out?.toString(), usageEv);
  assert.equal(r.usage?.total_tokens, 12);
});

test('"usage": null in every chunk does not trigger parsing or removal', () => {
  const r = new SseRelay(true);
  const s = ev({ choices: [{ index: 0, delta: { content: 'x' } }], usage: null });
  const input = Buffer.from(s);
  assert.equal(r.push(input), input);
  assert.equal(r.usage, undefined);
});

test('CRLF-framed events and spaced JSON are understood', () => {
  const r = new SseRelay(true);
  const u = 'data: {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}\r\n\r\n';
  const c = 'data: {"choices": [{"delta": {"content": "a"}}]}\r\n\r\n';
  const out = r.push(Buffer.from(c + u + 'data: [DONE]\r\n\r\n'));
  assert.equal(out?.toString(), c + 'data: [DONE]\r\n\r\n');
  assert.equal(r.usage?.total_tokens, 3);
});

test('flush returns a trailing event that lacked its blank line', () => {
  const r = new SseRelay(false);
  assert.equal(r.push(Buffer.from('data: [DONE]')), undefined);
  assert.equal(r.flush()?.toString(), 'data: [DONE]');
  assert.equal(r.sawDone, true);
});

test('line splitter carries partial lines', () => {
  const s = new LineSplitter();
  assert.deepEqual(s.push(Buffer.from('{"a":1}\n{"b"')), ['{"a":1}']);
  assert.deepEqual(s.push(Buffer.from(':2}\n')), ['{"b":2}']);
  assert.equal(s.flush(), '');
});
