// The Responses translation on its own: chat chunks in, Responses events out (tool calls, split
// bytes, CRLF framing, errors), and whole chat completions with tool calls as Response objects.
// The end-to-end tests (test/responses.test.ts) run it behind the gateway with the openai SDK.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { HoldingSink, Served } from '../../core/gateway.ts';
import { DEFAULT_LIMITS } from '../../config/types.ts';
import { fromResponsesRequest } from './request.ts';
import { logprobsOf, ResponseIds, toResponse } from './response.ts';
import { ResponsesStream } from './stream.ts';
import { RecentItems } from './items.ts';
import { CapturingSink } from '../../accounting/request-log.ts';
import { openaiSchemaValidator } from '../../../test/helpers.ts';

const validate = openaiSchemaValidator();

class Collect implements HoldingSink {
  out = '';
  last = '';
  begun = false;
  ended = false;
  begin(): void { this.begun = true; }
  write(d: Buffer | string): boolean { this.out += String(d); return true; }
  writeLast(d: string): void { this.last += d; }
  onDrain(): void {}
  end(): void { this.ended = true; }
  events(): any[] {
    return [...(this.out + this.last).matchAll(/^event: (.+)\ndata: (.+)$/gm)].map((m) => {
      const data = JSON.parse(m[2]!);
      assert.equal(data.type, m[1], 'the event name and its type agree');
      return data;
    });
  }
}

const served = {} as Served;
const echo = fromResponsesRequest({ model: 'm', input: 'x' }, DEFAULT_LIMITS).echo;
const sse = (o: unknown): string => `data: ${JSON.stringify(o)}\n\n`;
const chunk = (delta: unknown, finish: string | null = null) => sse({ id: 'c', object: 'chat.completion.chunk', model: 'phys', choices: [{ index: 0, delta, finish_reason: finish }] });

test('tool calls stream as function_call items: added, argument deltas, done with the whole arguments; text before them is closed first', () => {
  const sink = new Collect();
  const s = new ResponsesStream(sink, echo, new ResponseIds('req_abc'), 100, () => 'phys');
  s.begin(served);
  s.write(chunk({ role: 'assistant', content: 'Let me check.' }));
  s.write(chunk({ tool_calls: [{ index: 0, id: 'call_A', type: 'function', function: { name: 'get_weather', arguments: '{"ci' } }] }));
  s.write(chunk({ tool_calls: [{ index: 0, function: { arguments: 'ty":"Paris"}' } }] }));
  s.write(chunk({ tool_calls: [{ index: 1, id: 'call_B', type: 'function', function: { name: 'get_time', arguments: '{}' } }] }));
  s.write(chunk({}, 'tool_calls'));
  s.write(sse({ id: 'c', object: 'chat.completion.chunk', model: 'phys', choices: [], usage: { prompt_tokens: 7, completion_tokens: 5, total_tokens: 12 } }));
  assert.equal(sink.last, '', 'nothing held before the end');
  s.write('data: [DONE]\n\n');
  s.end();
  const ev = sink.events();
  assert.deepEqual(ev.map((e) => e.type), [
    'response.created', 'response.in_progress',
    'response.output_item.added', 'response.content_part.added', 'response.output_text.delta',
    'response.output_text.done', 'response.content_part.done', 'response.output_item.done',
    'response.output_item.added', 'response.function_call_arguments.delta', 'response.function_call_arguments.delta',
    'response.output_item.added', 'response.function_call_arguments.delta',
    // Calls stay open to the end (their deltas may interleave), then close in the order they began.
    'response.function_call_arguments.done', 'response.output_item.done', 'response.function_call_arguments.done', 'response.output_item.done',
    'response.completed',
  ]);
  // Held for the usage record: the closing events only, response.completed last; every delta went out at once.
  assert.ok(!sink.last.includes('.delta'));
  assert.match(sink.last, /^event: response\.function_call_arguments\.done\n.*\n\n(?:.*\n)*event: response\.completed\ndata: .*\n\n$/);
  const done = ev.filter((e) => e.type === 'response.function_call_arguments.done');
  assert.deepEqual(done.map((e) => [e.name, e.arguments, e.output_index]), [['get_weather', '{"city":"Paris"}', 1], ['get_time', '{}', 2]]);
  const final = ev.at(-1).response;
  assert.equal(final.status, 'completed');
  assert.equal(final.model, 'phys');
  assert.deepEqual(final.output.map((o: any) => [o.type, o.status, o.call_id ?? o.content[0].text]), [
    ['message', 'completed', 'Let me check.'], ['function_call', 'completed', 'call_A'], ['function_call', 'completed', 'call_B'],
  ]);
  assert.deepEqual(final.usage, { input_tokens: 7, input_tokens_details: { cached_tokens: 0, cache_write_tokens: 0 }, output_tokens: 5, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 12 });
  assert.ok(sink.begun && sink.ended);
});

test('chunks split anywhere, a multi-byte character split across writes, CRLF framing and `data:` without a space all read the same', () => {
  const whole = Buffer.from(chunk({ content: 'héllo ' }) + chunk({ content: 'wörld' }, 'stop').replace(/\n/g, '\r\n').replace('data: ', 'data:') + 'data: [DONE]\n\n');
  const sink = new Collect();
  const s = new ResponsesStream(sink, echo, new ResponseIds('req_x'), 1, () => 'phys');
  s.begin(served);
  for (let i = 0; i < whole.length; i += 3) s.write(whole.subarray(i, i + 3));
  const ev = sink.events();
  assert.equal(ev.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta).join(''), 'héllo wörld');
  assert.equal(ev.at(-1).response.output[0].content[0].text, 'héllo wörld');
});

test('an error event mid-stream becomes error and response.failed, and nothing after it is read', () => {
  const sink = new Collect();
  const s = new ResponsesStream(sink, echo, new ResponseIds('req_x'), 1, () => 'phys');
  s.begin(served);
  s.write(chunk({ content: 'partial' }));
  s.write(sse({ error: { message: 'stream from b interrupted: socket closed', type: 'server_error', param: null, code: 'stream_interrupted' } }));
  s.write(chunk({ content: 'more' }) + 'data: [DONE]\n\n');
  const ev = sink.events();
  assert.deepEqual(ev.slice(-2).map((e) => e.type), ['error', 'response.failed']);
  assert.equal(ev.at(-2).code, 'stream_interrupted');
  assert.equal(ev.at(-1).response.status, 'failed');
  assert.deepEqual(ev.at(-1).response.error, { code: 'server_error', message: 'stream from b interrupted: socket closed' });
  assert.equal(ev.filter((e) => e.type === 'response.output_text.delta').length, 1);
});

test('a whole chat completion with tool calls: a function_call item per call, the text first, finish length as incomplete', () => {
  const chat = {
    id: 'c', object: 'chat.completion', model: 'phys',
    choices: [{ index: 0, finish_reason: 'tool_calls', message: { role: 'assistant', content: 'Checking.', tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }] } }],
    usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7, prompt_tokens_details: { cached_tokens: 2 } },
  };
  const r = toResponse(chat, echo, new ResponseIds('req_q'), 5) as any;
  assert.equal(r.id, 'resp_q');
  assert.deepEqual(r.output.map((o: any) => o.type), ['message', 'function_call']);
  assert.match(r.output[1].id, /^fc_[0-9a-f]{24}1$/, 'item ids are random: a later request must have been given one to name it');
  assert.deepEqual({ ...r.output[1], id: 'x' }, { id: 'x', type: 'function_call', status: 'completed', call_id: 'call_1', name: 'f', arguments: '{"a":1}' });
  assert.equal(r.usage.input_tokens_details.cached_tokens, 2);
  const onlyCalls = toResponse({ ...chat, choices: [{ ...chat.choices[0], message: { role: 'assistant', content: null, tool_calls: chat.choices[0]!.message.tool_calls } }] }, echo, new ResponseIds('req_q'), 5) as any;
  assert.deepEqual(onlyCalls.output.map((o: any) => o.type), ['function_call'], 'no empty message beside tool calls');
  const cut = toResponse({ ...chat, choices: [{ index: 0, finish_reason: 'length', message: { role: 'assistant', content: 'abc', tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{"x": "ab' } }] } }] }, echo, new ResponseIds('req_q'), 5) as any;
  assert.equal(cut.status, 'incomplete');
  assert.deepEqual(cut.incomplete_details, { reason: 'max_output_tokens' });
  assert.equal(cut.completed_at, undefined, 'completed_at is for completed responses');
  assert.deepEqual(cut.output.map((o: any) => o.status), ['incomplete', 'incomplete'], 'a call cut off by the limit is incomplete: its arguments may not be whole');
});

test('requests: unknown fields go on as chat requests\' do (engine extensions), refused ones are named, what OpenAI alone keeps is dropped', () => {
  const t = fromResponsesRequest({ model: 'm', input: 'x', top_k: 20, store: true, include: ['reasoning.encrypted_content'], truncation: 'auto', reasoning: { effort: 'low' }, background: false }, DEFAULT_LIMITS);
  assert.deepEqual(t.chat, { model: 'm', messages: [{ role: 'user', content: 'x' }], reasoning_effort: 'low', top_k: 20 });
  assert.equal(t.echo.reasoningEffort, 'low');
  assert.throws(() => fromResponsesRequest({ model: 'm', input: 'x', background: true }, DEFAULT_LIMITS), /background/);
  assert.throws(() => fromResponsesRequest({ model: 'm', input: [{ role: 'tool', content: 'x' }] }, DEFAULT_LIMITS), (e: any) => e.param === 'input[0].role');
  const streamed = fromResponsesRequest({ model: 'm', input: 'x', stream: true }, DEFAULT_LIMITS).chat;
  assert.deepEqual(streamed.stream_options, { include_usage: true }, 'usage is asked for: response.completed carries it');
});

test('reasoning (vLLM\'s reasoning_content, or reasoning) comes first as a reasoning item with its text, streamed and not', () => {
  const sink = new Collect();
  const s = new ResponsesStream(sink, echo, new ResponseIds('req_r'), 1, () => 'phys');
  s.begin(served);
  s.write(chunk({ role: 'assistant', reasoning_content: 'The user greets; ' }));
  s.write(chunk({ reasoning: 'answer briefly.' }));
  s.write(chunk({ content: 'Hello!' }, 'stop') + 'data: [DONE]\n\n');
  const ev = sink.events();
  assert.deepEqual(ev.map((e) => e.type), [
    'response.created', 'response.in_progress',
    'response.output_item.added', 'response.reasoning_text.delta', 'response.reasoning_text.delta', 'response.reasoning_text.done', 'response.output_item.done',
    'response.output_item.added', 'response.content_part.added', 'response.output_text.delta',
    'response.output_text.done', 'response.content_part.done', 'response.output_item.done', 'response.completed',
  ]);
  const final = ev.at(-1).response;
  assert.deepEqual({ ...final.output[0], id: 'x' }, { id: 'x', type: 'reasoning', status: 'completed', summary: [], content: [{ type: 'reasoning_text', text: 'The user greets; answer briefly.' }] });
  assert.equal(final.output[1].content[0].text, 'Hello!');
  assert.deepEqual(validate('Response', final), []);
  for (const e of ev.filter((x) => x.type.startsWith('response.reasoning_text'))) {
    assert.deepEqual(validate(e.type.endsWith('delta') ? 'ResponseReasoningTextDeltaEvent' : 'ResponseReasoningTextDoneEvent', e), []);
  }
  const whole = toResponse({ model: 'phys', choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: 'Hello!', reasoning_content: 'Think.' } }] }, echo, new ResponseIds('req_r'), 1) as any;
  assert.deepEqual(whole.output.map((o: any) => o.type), ['reasoning', 'message']);
  assert.equal(whole.output[0].content[0].text, 'Think.');
  const cut = toResponse({ model: 'phys', choices: [{ index: 0, finish_reason: 'length', message: { role: 'assistant', content: 'Hel', reasoning_content: 'Think.' } }] }, echo, new ResponseIds('req_r'), 1) as any;
  assert.deepEqual(cut.output.map((o: any) => o.status), ['completed', 'incomplete'], 'reasoning that text followed was whole, as when streamed');
  const cutThinking = toResponse({ model: 'phys', choices: [{ index: 0, finish_reason: 'length', message: { role: 'assistant', content: null, reasoning_content: 'Thin' } }] }, echo, new ResponseIds('req_r'), 1) as any;
  assert.deepEqual(cutThinking.output.map((o: any) => o.status), ['incomplete']);
});

test('history: reasoning between parallel calls does not split them; an assistant reply and its calls are one turn; images a function returned follow the tool messages', () => {
  const t = fromResponsesRequest({
    model: 'm',
    input: [
      { role: 'user', content: 'look' },
      { type: 'reasoning', id: 'rs_1', summary: [] },
      { type: 'message', role: 'assistant', id: 'msg_1', status: 'completed', content: [{ type: 'output_text', text: 'Let me check.', annotations: [], logprobs: [] }] },
      { type: 'function_call', id: 'fc_1', call_id: 'c1', name: 'shot', arguments: '{}', status: 'completed' },
      { type: 'reasoning', id: 'rs_2', summary: [] },
      { type: 'function_call', id: 'fc_2', call_id: 'c2', name: 'read', arguments: '{}' },
      { type: 'function_call_output', call_id: 'c1', output: [{ type: 'input_text', text: 'a screenshot' }, { type: 'input_image', image_url: 'data:image/png;base64,AA' }] },
      { type: 'function_call_output', call_id: 'c2', output: 'file text' },
      { role: 'user', content: 'and?' },
    ],
  }, DEFAULT_LIMITS);
  assert.deepEqual(t.chat.messages, [
    { role: 'user', content: 'look' },
    { role: 'assistant', content: 'Let me check.', tool_calls: [
      { id: 'c1', type: 'function', function: { name: 'shot', arguments: '{}' } },
      { id: 'c2', type: 'function', function: { name: 'read', arguments: '{}' } },
    ] },
    { role: 'tool', tool_call_id: 'c1', content: 'a screenshot' },
    { role: 'tool', tool_call_id: 'c2', content: 'file text' },
    { role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,AA' } }] },
    { role: 'user', content: 'and?' },
  ]);
});

test('item_reference: an item this gateway returned to the same key is sent as itself; another key\'s, or an unknown one, is a 400 naming the id; references cannot grow a request past the body limit', () => {
  const items = new RecentItems();
  items.remember('key_1', [{ id: 'msg_a', type: 'message', role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: 'Hi!', annotations: [], logprobs: [] }] }]);
  items.remember('key_1', [{ id: 'msg_cut', type: 'message', role: 'assistant', status: 'in_progress', content: [] }]);
  const body = { model: 'm', input: [{ role: 'user', content: 'hello' }, { type: 'item_reference', id: 'msg_a' }, { role: 'user', content: 'more' }] };
  const t = fromResponsesRequest(body, DEFAULT_LIMITS, (id) => items.recall('key_1', id));
  assert.deepEqual((t.chat.messages as any[])[1], { role: 'assistant', content: 'Hi!' });
  assert.throws(() => fromResponsesRequest(body, DEFAULT_LIMITS, (id) => items.recall('key_2', id)), (e: any) => e.param === 'input[1].id' && /store: false/.test(e.message));
  assert.equal(items.recall('key_1', 'msg_cut'), undefined, 'an item its client left before it ended is not kept');
  const many = { model: 'm', input: Array.from({ length: 40 }, () => ({ type: 'item_reference', id: 'msg_a' })) };
  assert.throws(() => fromResponsesRequest(many, { ...DEFAULT_LIMITS, maxBodyBytes: 2000 }, (id) => items.recall('key_1', id)), (e: any) => /more than the body limit \(2000 bytes\)/.test(e.message));
  // The body's own bytes count towards it: two references fit alone, not beside a body near the limit.
  const two = { model: 'm', input: [{ type: 'item_reference', id: 'msg_a' }, { type: 'item_reference', id: 'msg_a' }] };
  const sized = fromResponsesRequest(two, { ...DEFAULT_LIMITS, maxBodyBytes: 2000 }, (id) => items.recall('key_1', id), 100);
  assert.ok(sized.referencedBytes > 100 && sized.referencedBytes < 400, String(sized.referencedBytes));
  assert.throws(() => fromResponsesRequest(two, { ...DEFAULT_LIMITS, maxBodyBytes: 2000 }, (id) => items.recall('key_1', id), 1900), /body limit/);
});

test('recent items: bounded by count and bytes (UTF-8 bytes, not characters), forgotten after their hour', () => {
  const items = new RecentItems(1000, 3, 300);
  const it = (id: string, text = 'x') => ({ id, type: 'message', content: [{ type: 'output_text', text }] });
  items.remember('', [it('a'), it('b'), it('c'), it('d')], 0);
  assert.equal(items.recall('', 'a', 1), undefined, 'the oldest goes past the count');
  assert.ok(items.recall('', 'd', 1) !== undefined);
  items.remember('', [it('big', 'y'.repeat(100))], 2);
  // 3 × 73 + 174 bytes is past 300: the oldest go until the rest fit.
  assert.deepEqual(['b', 'c', 'd', 'big'].map((id) => items.recall('', id, 3) !== undefined), [false, false, true, true], 'older items go to make room for the bytes');
  assert.equal(items.recall('', 'big', 1002), undefined, 'and all after the hour');
  const utf8 = new RecentItems();
  utf8.remember('', [it('cjk', '漢'.repeat(10))]);
  assert.equal(utf8.recall('', 'cjk')!.size, Buffer.byteLength(JSON.stringify(it('cjk', '漢'.repeat(10)))));
});

test('recent items across workers: only the missing ids are asked; what comes back is taken for the asking key only, within its hour, aged from when it was returned', async () => {
  const here = new RecentItems(1000);
  const there = new RecentItems(1000);
  const it = (id: string) => ({ id, type: 'message', content: [{ type: 'output_text', text: id }] });
  here.remember('k1', [it('mine')], 0);
  there.remember('k1', [it('theirs'), it('old')], 0);
  there.remember('k2', [it('other-key')], 500);
  const asked: string[][] = [];
  here.siblings = { ask: async (owner, ids) => { asked.push([...ids]); return there.share(owner, ids, 600); } };
  await here.gather('k1', ['mine', 'theirs', 'other-key', 'nobody'], 600);
  assert.deepEqual(asked, [['theirs', 'other-key', 'nobody']], 'what this process holds is not asked for');
  assert.equal(here.recall('k1', 'theirs', 600)?.item.id, 'theirs');
  assert.equal(here.recall('k1', 'other-key', 600), undefined, "another key's item is not shared");
  assert.equal(here.recall('k2', 'theirs', 600), undefined, 'an item taken for one key is not another\'s');
  assert.equal(here.recall('k1', 'theirs', 1000), undefined, 'it ages from when it was first returned');
  await here.gather('k1', ['mine'], 700);
  assert.equal(asked.length, 1, 'nothing is asked when every id is held');
  // A sibling that hands back more than was asked, or items past their hour: none of it is taken.
  here.siblings = { ask: async () => [{ id: 'extra', item: it('extra'), size: 10, at: 900 }, { id: 'stale', item: it('stale'), size: 10, at: 0 }] };
  await here.gather('k1', ['stale'], 1200);
  assert.equal(here.recall('k1', 'extra', 1200), undefined);
  assert.equal(here.recall('k1', 'stale', 1200), undefined);
});

test('streams: interleaved tool-call deltas each keep their arguments; the first events name the model; a failure closes what was sent as incomplete; a refusal is a refusal part', () => {
  const sink = new Collect();
  const s = new ResponsesStream(sink, echo, new ResponseIds('req_i'), 1, () => 'phys-model');
  s.begin(served);
  s.write(chunk({ tool_calls: [{ index: 0, id: 'c0', type: 'function', function: { name: 'f', arguments: '' } }] }));
  s.write(chunk({ tool_calls: [{ index: 1, id: 'c1', type: 'function', function: { name: 'g', arguments: '{"y":' } }] }));
  s.write(chunk({ tool_calls: [{ index: 0, function: { arguments: '{"x":1}' } }] }));
  s.write(chunk({ content: 'Checking both.' }));
  s.write(chunk({ tool_calls: [{ index: 1, function: { arguments: '2}' } }] }, 'tool_calls') + 'data: [DONE]\n\n');
  const ev = sink.events();
  assert.equal(ev[0].response.model, 'phys-model');
  const doneAt = (id: string) => ev.findIndex((e) => e.type === 'response.output_item.done' && e.item.id === id);
  for (const e of ev.filter((x) => x.type === 'response.function_call_arguments.delta')) assert.ok(ev.indexOf(e) < doneAt(e.item_id), 'no delta after its item is done, text between or not');
  assert.deepEqual(ev.at(-1).response.output.filter((o: any) => o.type === 'function_call').map((o: any) => [o.name, o.arguments]), [['f', '{"x":1}'], ['g', '{"y":2}']]);
  assert.deepEqual(validate('Response', ev.at(-1).response), []);

  const failing = new Collect();
  const f = new ResponsesStream(failing, echo, new ResponseIds('req_f'), 1, () => 'phys');
  f.begin(served);
  f.write(chunk({ content: 'A gateway' }));
  f.write(sse({ error: { message: 'interrupted', type: 'server_error', param: null, code: 'stream_interrupted' } }));
  const failed = failing.events().at(-1).response;
  assert.equal(failed.status, 'failed');
  assert.deepEqual(failed.output.map((o: any) => [o.status, o.content[0].text]), [['incomplete', 'A gateway']]);
  assert.deepEqual(validate('Response', failed), []);

  const refusing = new Collect();
  const r = new ResponsesStream(refusing, echo, new ResponseIds('req_n'), 1, () => 'phys');
  r.begin(served);
  r.write(chunk({ refusal: "I can't " }) + chunk({ refusal: 'help with that.' }, 'stop') + 'data: [DONE]\n\n');
  const rev = refusing.events();
  assert.deepEqual(rev.filter((e) => e.type.startsWith('response.refusal')).map((e) => e.type), ['response.refusal.delta', 'response.refusal.delta', 'response.refusal.done']);
  assert.deepEqual(rev.at(-1).response.output[0].content, [{ type: 'refusal', refusal: "I can't help with that." }]);
  assert.deepEqual(validate('Response', rev.at(-1).response), []);
  const whole = toResponse({ model: 'p', choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: null, refusal: 'No.' } }] }, echo, new ResponseIds('req_w'), 1) as any;
  assert.deepEqual(whole.output[0].content, [{ type: 'refusal', refusal: 'No.' }]);
});

test('the request log captures what the client got: the Responses events, the held closing ones included', () => {
  const sink = new Collect();
  const capture = new CapturingSink(sink, 1 << 20);
  const s = new ResponsesStream(capture, echo, new ResponseIds('req_c'), 1, () => 'phys');
  s.begin(served);
  s.write(chunk({ content: 'logged' }, 'stop') + 'data: [DONE]\n\n');
  assert.match(capture.text, /event: response\.output_text\.delta\n/);
  assert.match(capture.text, /event: response\.completed\n/);
  assert.ok(!capture.text.includes('chat.completion.chunk'));
  assert.equal(capture.text, sink.out + sink.last);
});

test('a stream cut off by the token limit leaves its open call incomplete: its arguments may not be whole', () => {
  const sink = new Collect();
  const s = new ResponsesStream(sink, echo, new ResponseIds('req_l'), 1, () => 'phys');
  s.begin(served);
  s.write(chunk({ tool_calls: [{ index: 0, id: 'c', type: 'function', function: { name: 'f', arguments: '{"x": "ab' } }] }, 'length') + 'data: [DONE]\n\n');
  const ev = sink.events();
  assert.equal(ev.at(-1).type, 'response.incomplete');
  assert.deepEqual(ev.at(-1).response.output.map((o: any) => [o.type, o.status]), [['function_call', 'incomplete']]);
  assert.equal(ev.find((e) => e.type === 'response.output_item.done').item.status, 'incomplete');
});

test('token logprobs as the Responses API gives them: bytes filled where the engine sent none, no more alternatives than asked for (llama-server gives 20 unasked)', () => {
  const chat = { content: [{ token: 'é', logprob: -0.5, bytes: null, top_logprobs: [{ token: 'é', logprob: -0.5, bytes: [195, 169] }, { token: 'e', logprob: -1 }, { token: 'x', logprob: -2 }] }] };
  assert.deepEqual(logprobsOf(chat, 1), [{ token: 'é', logprob: -0.5, bytes: [195, 169], top_logprobs: [{ token: 'é', logprob: -0.5, bytes: [195, 169] }] }]);
  assert.deepEqual(logprobsOf(chat, 0)[0]!.top_logprobs, []);
  assert.deepEqual((logprobsOf(chat, 20)[0]!.top_logprobs as unknown[]).length, 3);
  assert.deepEqual(logprobsOf(null, 2), []);
});
