import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_EVENT_BYTES, SseRelay, LineSplitter, UnusableStart } from './sse-relay.ts';

const ev = (o: unknown): string => `data: ${JSON.stringify(o)}\n\n`;
const chunk = (content: string) => ev({ id: 'x', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content } }] });
const usageEv = ev({ id: 'x', object: 'chat.completion.chunk', choices: [], usage: { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 } });
const DONE = 'data: [DONE]\n\n';

/** A relay that has already started (its first chunk relayed). */
function started(strip: boolean): SseRelay {
  const r = new SseRelay(strip);
  r.push(Buffer.from(chunk('first')));
  return r;
}

test('complete events pass through as the same bytes', () => {
  const r = started(false);
  const input = Buffer.from(chunk('a') + chunk('b'));
  const out = r.push(input);
  assert.equal(out, input, 'no copy when the chunk ends on an event boundary');
});

test('a partial event is held until its boundary arrives', () => {
  const r = new SseRelay(false);
  const whole = chunk('hello');
  assert.equal(r.push(Buffer.from(whole.slice(0, 10))), undefined);
  assert.equal(r.started, false);
  const out = r.push(Buffer.from(whole.slice(10)));
  assert.equal(out?.toString(), whole);
  assert.equal(r.started, true);
});

test('usage the client did not ask for is recorded and its usage-only event removed', () => {
  const r = new SseRelay(true);
  const out = r.push(Buffer.from(chunk('a') + usageEv + DONE));
  assert.equal(out?.toString(), chunk('a') + DONE);
  assert.deepEqual(r.usage, { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 });
  assert.equal(r.done, true);
});

test('usage on a chunk that has choices (llama.cpp) loses only its usage key when not asked for', () => {
  const r = started(true);
  const last = { id: 'x', object: 'text_completion', choices: [{ index: 0, text: '', finish_reason: 'stop' }], usage: { prompt_tokens: 4, completion_tokens: 2, total_tokens: 6 }, timings: { predicted_n: 2 } };
  const out = r.push(Buffer.from(ev(last) + DONE));
  const { usage: _, ...rest } = last;
  assert.equal(out?.toString(), ev(rest) + DONE);
  assert.equal(r.usage?.total_tokens, 6);
});

test('usage the client asked for is recorded and kept', () => {
  const r = started(false);
  const out = r.push(Buffer.from(usageEv));
  assert.equal(out?.toString(), usageEv);
  assert.equal(r.usage?.total_tokens, 12);
});

test('"usage": null in every chunk does not trigger parsing or removal', () => {
  const r = started(true);
  const s = ev({ choices: [{ index: 0, delta: { content: 'x' } }], usage: null });
  const input = Buffer.from(s);
  assert.equal(r.push(input), input);
  assert.equal(r.usage, undefined);
});

test('CRLF-framed events and spaced JSON are understood; [DONE] reaches the client in one spelling', () => {
  const r = new SseRelay(true);
  const u = 'data: {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}\r\n\r\n';
  const c = 'data: {"choices": [{"delta": {"content": "a"}}]}\r\n\r\n';
  const out = r.push(Buffer.from(c + u + 'data:[DONE]\r\n\r\n'));
  assert.equal(out?.toString(), c + DONE);
  assert.equal(r.usage?.total_tokens, 3);
  assert.equal(r.done, true);
});

test('the first data event decides: garbage, an error event or a non-chunk is unusable', () => {
  const bad = [
    'data: {"id":"x","choices":[{"delta":{"content":"Hel\n\nthis is not an event stream\n\n',
    'data: {"error":{"object":"error","message":"boom","type":"BadRequestError","param":null,"code":400}}\n\n',
    'data: {"object":"error","message":"boom","type":"InternalServerError","code":500}\n\n',
    'data: [1,2]\n\n',
    'data: {"hello":"world"}\n\n',
  ];
  for (const input of bad) {
    const r = new SseRelay(false);
    assert.throws(() => r.push(Buffer.from(input)), UnusableStart, input);
    assert.equal(r.started, false);
  }
  const e = (() => { try { new SseRelay(false).push(Buffer.from(bad[1]!)); } catch (x) { return x as UnusableStart; } })()!;
  assert.deepEqual((e.errorEvent!.error as { code: number }).code, 400);
});

test('comments before the first data event are dropped and do not start the stream; after it they pass', () => {
  const r = new SseRelay(false);
  assert.equal(r.push(Buffer.from(': ping\n\n')), undefined);
  assert.equal(r.push(Buffer.from(': ping\n\nevent: x\n\n')), undefined);
  assert.equal(r.started, false);
  const out = r.push(Buffer.from(': ping\n\n' + chunk('a') + ': ping\n\n'));
  assert.equal(out?.toString(), chunk('a') + ': ping\n\n');
  assert.equal(r.started, true);
});

test('a token that reads [DONE] is not the end of the stream', () => {
  const r = started(false);
  r.push(Buffer.from(chunk('[DONE]')));
  r.push(Buffer.from(chunk('data: [DONE]')));
  r.push(Buffer.from(ev({ choices: [{ delta: { content: 'x' } }], note: '\ndata: [DONE]' })));
  assert.equal(r.done, false);
  assert.equal(r.flush(), undefined);
  assert.equal(r.done, false);
});

test('[DONE] is found as the closing event, across chunk splits', () => {
  const r = started(false);
  assert.equal(r.push(Buffer.from('data: [DO')), undefined);
  assert.equal(r.push(Buffer.from('NE]\n\n'))?.toString(), DONE);
  assert.equal(r.done, true);
});

test('flush finishes a closing [DONE] that lacked its blank line and drops half an event', () => {
  const r = started(false);
  assert.equal(r.push(Buffer.from('data: [DONE]')), undefined);
  assert.equal(r.flush()?.toString(), DONE);
  assert.equal(r.done, true);
  const cut = started(false);
  assert.equal(cut.push(Buffer.from(chunk('a') + 'data: {"choices":[{"delta":{"content":" wor'))?.toString(), chunk('a'));
  assert.equal(cut.flush(), undefined, 'the half event never reaches the client');
  assert.equal(cut.done, false);
});

test('relayed events are counted (the estimate when no usage comes)', () => {
  const r = new SseRelay(false);
  r.push(Buffer.from(chunk('a') + chunk('b')));
  r.push(Buffer.from(chunk('c').slice(0, 5)));
  r.push(Buffer.from(chunk('c').slice(5) + DONE));
  assert.equal(r.events, 4);
  assert.equal(r.dataEvents, 3);
});

test('line splitter carries partial lines', () => {
  const s = new LineSplitter();
  assert.deepEqual(s.push(Buffer.from('{"a":1}\n{"b"')), ['{"a":1}']);
  assert.deepEqual(s.push(Buffer.from(':2}\n')), ['{"b":2}']);
  assert.equal(s.flush(), '');
  // A character whose bytes two reads split (an NDJSON stream from Ollama cut anywhere by TCP).
  const line = Buffer.from('{"content":"日本語 ✓ 🙂"}\n');
  for (let cut = 1; cut < line.length; cut++) {
    const t = new LineSplitter();
    const got = [...t.push(line.subarray(0, cut)), ...t.push(line.subarray(cut))];
    assert.deepEqual(got, ['{"content":"日本語 ✓ 🙂"}'], `cut at byte ${cut}`);
  }
});

test('an event that never ends is refused past MAX_EVENT_BYTES, not held without bound', () => {
  const r = new SseRelay(true);
  r.push(Buffer.from(chunk('Hel')));
  const piece = Buffer.alloc(1024 * 1024, 0x61);
  assert.throws(() => {
    for (let i = 0; i <= MAX_EVENT_BYTES / piece.length; i++) r.push(piece);
  }, /without ending an event/);
  const l = new LineSplitter();
  assert.throws(() => {
    for (let i = 0; i <= MAX_EVENT_BYTES / piece.length; i++) l.push(piece);
  }, /without ending an event/);
});

test('an engine error event after the start is relayed as sent and remembered: the stream failed', () => {
  const r = started(true);
  const err = `data: ${JSON.stringify({ error: { object: 'error', message: 'EngineCore died', type: 'InternalServerError', code: 500 } })}\n\n`;
  assert.equal(r.push(Buffer.from(err))?.toString(), err);
  assert.match(r.engineError ?? '', /EngineCore died/);
  r.push(Buffer.from(DONE));
  assert.equal(r.done, true);
  // A chunk whose text mentions an error is not one.
  const ok = started(true);
  ok.push(Buffer.from(chunk('"error" is a word')));
  assert.equal(ok.engineError, undefined);
});

test('[DONE] followed by lines that carry no data (a comment, an id:) still ends the stream, and reaches the client alone', () => {
  for (const tail of [': end\n\n', 'id: 7\n\n', ': a\n\nretry: 100\n\n']) {
    const r = started(true);
    const out = r.push(Buffer.from(chunk('x') + DONE + tail));
    assert.equal(r.done, true, JSON.stringify(tail));
    assert.equal(out?.toString(), chunk('x') + DONE);
  }
  // A comment that merely ends a normal chunk is not [DONE].
  const r = started(true);
  r.push(Buffer.from(chunk('x') + ': ping\n\n'));
  assert.equal(r.done, false);
});

test('keep-alive comments after the start are not counted as tokens', () => {
  const r = started(true);
  for (let i = 0; i < 5; i++) r.push(Buffer.from(': ping\n\n'));
  r.push(Buffer.from(chunk('a')));
  // In the same read as data, and after [DONE], too.
  r.push(Buffer.from(': ping\n\n' + chunk('b') + ': ping\n\n'));
  r.push(Buffer.from(DONE + ': bye\n\n'));
  assert.equal(r.dataEvents, 3, 'the first chunk and two more');
});

test('events that start with id:/event: lines or blank lines still count as tokens; a comment-only event does not', () => {
  const r = started(false);
  r.push(Buffer.from(`id: 7\n${chunk('a')}`));
  r.push(Buffer.from(`event: message\r\nid: 8\r\n${chunk('b')}`));
  // A bare line break between events (an engine's keep-alive), then an event.
  r.push(Buffer.from(`\n${chunk('c')}`));
  r.push(Buffer.from('\r\n: ping\n\nid: 9\nretry: 100\n\n'));
  assert.equal(r.dataEvents, 4, 'the first chunk and three more');
  // Two blank lines between events: not an event of their own.
  r.push(Buffer.from(`${chunk('d')}\n\n${chunk('e')}`));
  assert.equal(r.dataEvents, 6);
});

test('logprobsRefusal: a chunk\'s logprobs without refusal gets refusal: null; one that has it, and other streams, pass as they came', () => {
  const lp = (extra: Record<string, unknown> = {}) => ev({ id: 'x', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: 'a' }, logprobs: { content: [{ token: 'a', logprob: -0.1, bytes: [97], top_logprobs: [] }], ...extra } }] });
  const r = new SseRelay(false, true);
  r.push(Buffer.from(chunk('first')));
  const out = r.push(Buffer.from(lp() + chunk('b')))!.toString();
  const first = JSON.parse(out.split('\n\n')[0]!.slice(6));
  assert.deepEqual(first.choices[0].logprobs.refusal, null);
  assert.equal(first.choices[0].logprobs.content[0].token, 'a');
  assert.equal(out.split('\n\n')[1], chunk('b').trimEnd(), 'the chunk without logprobs is untouched');
  const has = Buffer.from(lp({ refusal: null }));
  assert.equal(r.push(has), has, 'already there: the same bytes');
  const plain = new SseRelay(false);
  plain.push(Buffer.from(chunk('first')));
  const asIs = Buffer.from(lp());
  assert.equal(plain.push(asIs), asIs, 'a stream that did not ask is not looked at');
});
