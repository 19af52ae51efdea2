// The Ollama adapter against Ollama's own wire format (api/types.go, docs/api.md) and its own
// OpenAI layer (openai/openai.go), which says how each field maps.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Unsupported } from '../core/attempt-error.ts';
import { OllamaEngine } from './ollama.ts';
import type { JsonObject } from './types.ts';

const engine = new OllamaEngine();
const ctx = { requestId: 'r1', model: 'role', created: 1 };
const opts = { model: 'qwen3:8b', wantStreamUsage: false, clientWantsUsage: false };

function prepared(body: JsonObject): JsonObject {
  return JSON.parse(engine.prepare('chat', body, opts).body) as JsonObject;
}

/** The data events of an SSE string, parsed ([DONE] as the string). */
function events(sse: string): any[] {
  return sse.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => {
    const d = e.slice(6);
    return d === '[DONE]' ? d : JSON.parse(d);
  });
}

const line = (message: JsonObject, extra: JsonObject = {}): string =>
  JSON.stringify({ model: 'qwen3:8b', created_at: '2025-01-01T00:00:00Z', message: { role: 'assistant', content: '', ...message }, done: false, ...extra });

test('Ollama streams each tool call in its own line: each keeps its own index and id (openai.go ToToolCalls)', () => {
  const t = engine.streamTranslator('chat', ctx, false);
  const out = [
    t.line(line({ tool_calls: [{ id: 'call_ab12cd34', function: { index: 0, name: 'get_weather', arguments: { city: 'Paris' } } }] })),
    t.line(line({ tool_calls: [{ function: { index: 1, name: 'get_time', arguments: { tz: 'CET' } } }] })),
    t.line(line({}, { done: true, done_reason: 'stop', prompt_eval_count: 10, eval_count: 20 })),
  ].join('');
  const calls = events(out).flatMap((e) => (e === '[DONE]' ? [] : e.choices[0]?.delta?.tool_calls ?? []));
  assert.equal(calls.length, 2);
  assert.deepEqual(calls.map((c: any) => c.index), [0, 1], 'a client merges deltas by index: two calls must not share one');
  assert.equal(calls[0].id, 'call_ab12cd34', 'Ollama\'s own id is kept');
  assert.notEqual(calls[1].id, calls[0].id);
  assert.deepEqual(calls.map((c: any) => JSON.parse(c.function.arguments)), [{ city: 'Paris' }, { tz: 'CET' }]);
  const fin = events(out).filter((e) => e !== '[DONE]' && e.choices[0]?.finish_reason);
  assert.equal(fin.at(-1).choices[0].finish_reason, 'tool_calls');
});

test('a tool call answer keeps Ollama\'s tool call id; arguments become a JSON string', () => {
  const r = engine.normalize('chat', {
    model: 'qwen3:8b', message: { role: 'assistant', content: '', tool_calls: [{ id: 'call_x1', function: { index: 0, name: 'f', arguments: { a: 1 } } }] },
    done: true, done_reason: 'stop', prompt_eval_count: 3, eval_count: 4,
  }, {}, ctx)!;
  const choice = (r.choices as any[])[0];
  assert.equal(choice.finish_reason, 'tool_calls');
  assert.deepEqual(choice.message.tool_calls, [{ id: 'call_x1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }]);
});

test('message.thinking reaches the client as reasoning_content, answered and streamed (openai.go: Thinking -> reasoning)', () => {
  const r = engine.normalize('chat', {
    model: 'qwen3:8b', message: { role: 'assistant', content: '4', thinking: '2+2 is 4' }, done: true, done_reason: 'stop',
  }, {}, ctx)!;
  assert.equal((r.choices as any[])[0].message.reasoning_content, '2+2 is 4');
  const t = engine.streamTranslator('chat', ctx, false);
  const out = t.line(line({ thinking: 'hmm' })) + t.line(line({ content: '4' })) + t.line(line({}, { done: true, done_reason: 'stop' }));
  const deltas = events(out).filter((e) => e !== '[DONE]').map((e) => e.choices[0].delta);
  assert.equal(deltas[0].reasoning_content, 'hmm');
  assert.equal(deltas[0].role, 'assistant');
  assert.equal(deltas[1].content, '4');
  assert.equal(deltas[1].reasoning_content, undefined);
});

test('reasoning_effort becomes Ollama\'s think; "none" turns thinking off; other values are refused (openai.go FromChatRequest)', () => {
  const msgs = [{ role: 'user', content: 'hi' }];
  assert.equal(prepared({ messages: msgs }).think, undefined);
  assert.equal(prepared({ messages: msgs, reasoning_effort: 'high' }).think, 'high');
  assert.equal(prepared({ messages: msgs, reasoning_effort: 'low' }).think, 'low');
  assert.equal(prepared({ messages: msgs, reasoning_effort: 'none' }).think, false);
  assert.throws(() => prepared({ messages: msgs, reasoning_effort: 'extreme' }), (e: unknown) => e instanceof Unsupported && e.param === 'reasoning_effort');
});

test('tool results carry tool_name, from `name` or else from the assistant call their tool_call_id answers; other roles get none', () => {
  const req = prepared({
    messages: [
      { role: 'user', content: 'weather?', name: 'alice' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: '20C' },
      { role: 'tool', tool_call_id: 'call_2', name: 'explicit', content: 'x' },
    ],
  });
  const m = req.messages as any[];
  assert.equal(m[0].tool_name, undefined, 'a user\'s name is not a tool name');
  assert.deepEqual(m[1].tool_calls, [{ function: { name: 'get_weather', arguments: { city: 'Paris' } } }]);
  assert.equal(m[2].tool_name, 'get_weather');
  assert.equal(m[3].tool_name, 'explicit');
});

test('a developer message reaches Ollama as a system message (Ollama\'s templates know no developer role)', () => {
  const m = prepared({ messages: [{ role: 'developer', content: 'be brief' }, { role: 'user', content: 'hi' }] }).messages as any[];
  assert.equal(m[0].role, 'system');
  assert.equal(m[0].content, 'be brief');
});

test('assistant reasoning in the history goes back as thinking (openai.go: Reasoning -> Thinking)', () => {
  const m = prepared({ messages: [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'a', reasoning_content: 'because' }, { role: 'user', content: 'q2' }] }).messages as any[];
  assert.equal(m[1].thinking, 'because');
});

test('images: data URLs with or without a media type become base64 images; other content parts are refused, not dropped', () => {
  const m = prepared({
    messages: [{ role: 'user', content: [{ type: 'text', text: 'what?' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } }, { type: 'image_url', image_url: { url: 'data:;base64,BBBB' } }] }],
  }).messages as any[];
  assert.deepEqual(m[0], { role: 'user', content: 'what?', images: ['AAAA', 'BBBB'] });
  assert.throws(
    () => prepared({ messages: [{ role: 'user', content: [{ type: 'text', text: 'hear' }, { type: 'input_audio', input_audio: { data: 'AAAA', format: 'wav' } }] }] }),
    (e: unknown) => e instanceof Unsupported,
  );
});

test('an error line in the middle of a stream fails it with Ollama\'s message', () => {
  const t = engine.streamTranslator('chat', ctx, false);
  assert.notEqual(t.line(line({ content: 'Hi' })), '');
  assert.throws(() => t.line('{"error":"an error was encountered while running the model"}'), /an error was encountered while running the model/);
});

test('options: max_tokens/max_completion_tokens -> num_predict, stop string -> list, response_format -> format', () => {
  const r = prepared({
    messages: [{ role: 'user', content: 'hi' }], max_completion_tokens: 7, temperature: 0.2, top_p: 0.9, seed: 3,
    frequency_penalty: 0.5, presence_penalty: 0.1, stop: 'END', response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object' } } },
  });
  assert.deepEqual(r.options, { temperature: 0.2, top_p: 0.9, seed: 3, frequency_penalty: 0.5, presence_penalty: 0.1, num_predict: 7, stop: ['END'] });
  assert.deepEqual(r.format, { type: 'object' });
  assert.equal(prepared({ messages: [{ role: 'user', content: 'hi' }], response_format: { type: 'json_object' } }).format, 'json');
});

test('tool call arguments in the history: JSON text becomes an object; text that is not JSON skips the backend rather than send {}', () => {
  const call = (args: string): JsonObject => ({
    model: 'm',
    messages: [
      { role: 'user', content: 'weather?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'get_weather', arguments: args } }] },
      { role: 'tool', tool_call_id: 'c1', content: 'sunny' },
    ],
  });
  const ok = prepared(call('{"city":"Chiba"}'));
  assert.deepEqual((ok.messages as any[])[1].tool_calls[0].function.arguments, { city: 'Chiba' });
  assert.throws(() => prepared(call('{"city":')), (e: unknown) => e instanceof Unsupported && e.param === 'messages[1].tool_calls[0].function.arguments');
});

test('logprobs: asked as Ollama asks them (chat logprobs/top_logprobs, legacy completions logprobs: N), answered in OpenAI\'s shapes', () => {
  assert.deepEqual(
    [prepared({ model: 'm', messages: [{ role: 'user', content: 'x' }], logprobs: true, top_logprobs: 3 })].map((r) => [r.logprobs, r.top_logprobs]),
    [[true, 3]],
  );
  const plain = prepared({ model: 'm', messages: [{ role: 'user', content: 'x' }], logprobs: false, top_logprobs: 3 });
  assert.equal('logprobs' in plain, false, 'logprobs: false asks for none');
  const gen = (logprobs: unknown): JsonObject => JSON.parse(engine.prepare('completions', { model: 'm', prompt: 'x', logprobs }, opts).body) as JsonObject;
  assert.deepEqual([gen(2).logprobs, gen(2).top_logprobs], [true, 2]);
  assert.deepEqual([gen(0).logprobs, 'top_logprobs' in gen(0)], [true, false]);
  assert.equal('logprobs' in gen(undefined), false);

  const lp = [
    { token: 'Hi', logprob: -0.1, bytes: [72, 105], top_logprobs: [{ token: 'Hi', logprob: -0.1, bytes: [72, 105] }, { token: 'Hey', logprob: -2.5 }] },
    { token: '!', logprob: -0.02 },
  ];
  const chat = engine.normalize('chat', { model: 'm', message: { role: 'assistant', content: 'Hi!' }, logprobs: lp, done: true, done_reason: 'stop' }, {}, ctx)!;
  assert.deepEqual((chat.choices as any)[0].logprobs, {
    content: [
      { token: 'Hi', logprob: -0.1, bytes: [72, 105], top_logprobs: [{ token: 'Hi', logprob: -0.1, bytes: [72, 105] }, { token: 'Hey', logprob: -2.5, bytes: null }] },
      { token: '!', logprob: -0.02, bytes: null, top_logprobs: [] },
    ],
    refusal: null,
  });
  const none = engine.normalize('chat', { model: 'm', message: { role: 'assistant', content: 'Hi!' }, done: true }, {}, ctx)!;
  assert.equal((none.choices as any)[0].logprobs, null, 'an Ollama older than 0.12.11 sends none: null, as before');

  const completion = engine.normalize('completions', { model: 'm', response: 'Hi!', logprobs: lp, done: true, done_reason: 'stop' }, {}, ctx)!;
  assert.deepEqual((completion.choices as any)[0].logprobs, {
    tokens: ['Hi', '!'], token_logprobs: [-0.1, -0.02], top_logprobs: [{ Hi: -0.1, Hey: -2.5 }, { '!': -0.02 }], text_offset: [0, 2],
  });

  // Streamed: each line's logprobs ride on the chunk of that line's text; offsets run on.
  const t = engine.streamTranslator('chat', ctx, false);
  const chunks = events([
    t.line(line({ content: 'Hi' }, { logprobs: [lp[0]] })),
    t.line(line({ content: '!' }, { logprobs: [lp[1]] })),
    t.line(line({}, { done: true, done_reason: 'stop' })),
  ].join('')).filter((e) => e !== '[DONE]');
  assert.deepEqual(chunks.map((e) => e.choices[0].logprobs?.content.map((c: any) => c.token) ?? null), [['Hi'], ['!'], null]);
  const g = engine.streamTranslator('completions', ctx, false);
  const gl = (response: string, extra: JsonObject): string => JSON.stringify({ model: 'm', response, done: false, ...extra });
  const gchunks = events([g.line(gl('Hi', { logprobs: [lp[0]] })), g.line(gl('!', { logprobs: [lp[1]] })), g.line(gl('', { done: true }))].join('')).filter((e) => e !== '[DONE]');
  assert.deepEqual(gchunks.map((e) => e.choices[0].logprobs?.text_offset ?? null), [[0], [2], null]);

  // A done line that carries the last token's logprobs with no text keeps them (before its finish chunk).
  const d = engine.streamTranslator('chat', ctx, false);
  const dchunks = events([d.line(line({ content: 'Hi' }, { logprobs: [lp[0]] })), d.line(line({}, { done: true, done_reason: 'stop', logprobs: [lp[1]] }))].join('')).filter((e) => e !== '[DONE]');
  assert.deepEqual(dchunks.map((e) => [e.choices[0].logprobs?.content.map((c: any) => c.token) ?? null, e.choices[0].finish_reason]), [[['Hi'], null], [['!'], null], [null, 'stop']]);
  const dg = engine.streamTranslator('completions', ctx, false);
  const dgchunks = events([dg.line(gl('Hi', { logprobs: [lp[0]] })), dg.line(gl('', { done: true, logprobs: [lp[1]] }))].join('')).filter((e) => e !== '[DONE]');
  assert.deepEqual(dgchunks.map((e) => e.choices[0].logprobs?.tokens ?? null), [['Hi'], ['!'], null]);
});

test('what an Ollama backend\'s config adds to every request: num_ctx, keep_alive, truncate and shift; nothing when unset', async () => {
  const { engineFor } = await import('./index.ts');
  const body = (e: OllamaEngine | ReturnType<typeof engineFor>, op: 'chat' | 'completions' | 'embeddings', extra: JsonObject = {}): JsonObject => {
    const req = op === 'chat' ? { messages: [{ role: 'user', content: 'x' }] } : op === 'completions' ? { prompt: 'x' } : { input: 'x' };
    return JSON.parse(e.prepare(op, { model: 'role', ...req, ...extra }, opts).body) as JsonObject;
  };
  const configured = new OllamaEngine({ numCtx: 16384, keepAliveSeconds: -1 });
  for (const op of ['chat', 'completions'] as const) {
    const b = body(configured, op, { temperature: 0.2 });
    assert.deepEqual([b.options, b.keep_alive, b.truncate, b.shift], [{ temperature: 0.2, num_ctx: 16384 }, -1, false, false], op);
    const plain = body(engine, op);
    assert.deepEqual([('options' in plain), ('keep_alive' in plain), plain.truncate, plain.shift], [false, false, false, false], `${op}: nothing configured`);
  }
  const embed = body(configured, 'embeddings');
  assert.deepEqual([embed.options, embed.keep_alive, embed.truncate, 'shift' in embed], [{ num_ctx: 16384 }, -1, false, false]);
  assert.equal(body(new OllamaEngine({ keepAliveSeconds: 0 }), 'chat').keep_alive, 0, '0 is sent: unload after the request');
  // engineFor: the context_window first, else the one fabric render deploys the model with.
  const served = { engine: 'ollama' as const, contextWindow: undefined, serve: { maxModelLen: 8192 } as never };
  assert.equal((body(engineFor(served), 'chat').options as JsonObject).num_ctx, 8192);
  assert.equal((body(engineFor({ ...served, contextWindow: 32768 }), 'chat').options as JsonObject).num_ctx, 32768);
  assert.equal('options' in body(engineFor({ ...served, serve: undefined }), 'chat'), false);
});

test('tools: Ollama has no tool_choice, so "none" sends no tools and a named function sends that one alone; "required" and "auto" send them all', () => {
  const tools = [{ type: 'function', function: { name: 'a', parameters: {} } }, { type: 'function', function: { name: 'b', parameters: {} } }];
  const msgs = [{ role: 'user', content: 'hi' }];
  assert.deepEqual(prepared({ messages: msgs, tools }).tools, tools);
  assert.deepEqual(prepared({ messages: msgs, tools, tool_choice: 'required' }).tools, tools);
  assert.equal(prepared({ messages: msgs, tools, tool_choice: 'none' }).tools, undefined);
  assert.deepEqual(prepared({ messages: msgs, tools, tool_choice: { type: 'function', function: { name: 'b' } } }).tools, [tools[1]]);
  assert.equal(prepared({ messages: msgs, tools, tool_choice: 'auto' }).tool_choice, undefined, 'never sent');
});

test('a forced call cut short by num_predict: finish_reason "length"; a choice of several cut after its name is that call, cut before it stays text', () => {
  const tools = [
    { type: 'function', function: { name: 'a', parameters: { type: 'object', properties: { x: { type: 'string' } } } } },
    { type: 'function', function: { name: 'b', parameters: { type: 'object', properties: {} } } },
  ];
  const named = engine.prepare('chat', { model: 'm', messages: [{ role: 'user', content: 'hi' }], tools, tool_choice: { type: 'function', function: { name: 'a' } }, stream: true }, { model: 'm', wantStreamUsage: false, clientWantsUsage: false });
  assert.deepEqual(named.forcedTool, { name: 'a' });
  const t = engine.streamTranslator('chat', ctx, false, named);
  const cut = events([t.line(line({ content: '{"x": "hel' })), t.line(line({}, { done: true, done_reason: 'length' }))].join('')).filter((e) => e !== '[DONE]');
  assert.deepEqual(cut.map((e) => [e.choices[0].delta.tool_calls?.[0]?.function ?? null, e.choices[0].finish_reason]), [[{ name: 'a', arguments: '{"x": "hel' }, null], [null, 'length']]);

  const several = engine.prepare('chat', { model: 'm', messages: [{ role: 'user', content: 'hi' }], tools, tool_choice: 'required', stream: true }, { model: 'm', wantStreamUsage: false, clientWantsUsage: false });
  assert.deepEqual(several.forcedTool, { name: undefined });
  const s = engine.streamTranslator('chat', ctx, false, several);
  const open = events([s.line(line({ content: '{"name": "a", "arguments": {"x": "he' })), s.line(line({}, { done: true, done_reason: 'length' }))].join('')).filter((e) => e !== '[DONE]');
  assert.deepEqual(open.map((e) => [e.choices[0].delta.content ?? null, e.choices[0].delta.tool_calls?.[0]?.function ?? null, e.choices[0].finish_reason]), [[null, null, null], [null, { name: 'a', arguments: '{"x": "he' }, null], [null, null, 'length']]);
  const early = engine.streamTranslator('chat', ctx, false, several);
  const nameless = events([early.line(line({ content: '{"na' })), early.line(line({}, { done: true, done_reason: 'length' }))].join('')).filter((e) => e !== '[DONE]');
  assert.deepEqual(nameless.map((e) => [e.choices[0].delta.content ?? null, e.choices[0].finish_reason]), [[null, null], ['{"na', null], [null, 'length']], 'no name to call: the text as it came');
  const unary = engine.normalize('chat', { model: 'm', message: { role: 'assistant', content: '{"name":"b"' }, done: true, done_reason: 'length' }, { tools, tool_choice: 'required' }, ctx) as any;
  assert.deepEqual(unary.choices[0].message.tool_calls[0].function, { name: 'b', arguments: '' });
  assert.equal(unary.choices[0].finish_reason, 'length');

  const whole = engine.normalize('chat', { model: 'm', message: { role: 'assistant', content: '{"name": "b", "arguments": {}}' }, done: true, done_reason: 'stop' }, { tools, tool_choice: 'required' }, ctx) as any;
  assert.deepEqual(whole.choices[0].message.tool_calls, [{ id: 'call_r1_0', type: 'function', function: { name: 'b', arguments: '{}' } }]);
  assert.equal(whole.choices[0].finish_reason, 'tool_calls');
});

test('a forced call is one call: Ollama\'s own call wins over its JSON beside it (whole), the first of the two wins when streamed; an answer JSON cannot read stays text, never a throw', () => {
  const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }, { type: 'function', function: { name: 'other', parameters: { type: 'object', properties: {} } } }];
  const named = { tools, tool_choice: { type: 'function', function: { name: 'get_weather' } } };
  const native = { function: { name: 'get_weather', arguments: { city: 'Lisbon' } } };
  const whole = engine.normalize('chat', { model: 'm', message: { role: 'assistant', content: '{"city":"Lisbon"}', tool_calls: [native] }, done: true, done_reason: 'stop' }, named, ctx) as any;
  assert.equal(whole.choices[0].message.content, null);
  assert.deepEqual(whole.choices[0].message.tool_calls.map((c: any) => [c.function.name, c.function.arguments]), [['get_weather', '{"city":"Lisbon"}']]);

  const prepared = engine.prepare('chat', { model: 'm', messages: [{ role: 'user', content: 'x' }], ...named, stream: true }, { model: 'm', wantStreamUsage: false, clientWantsUsage: false });
  const calls = (lines: string[]): any[] => {
    const t = engine.streamTranslator('chat', ctx, false, prepared);
    return events(lines.map((l) => t.line(l)).join('')).filter((e) => e !== '[DONE]').flatMap((e) => [...(e.choices[0].delta.tool_calls ?? []), ...(e.choices[0].delta.content ? [{ content: e.choices[0].delta.content }] : [])]);
  };
  const jsonFirst = calls([line({ content: '{"city":' }), line({ content: '"Lisbon"}', tool_calls: [native] }), line({}, { done: true, done_reason: 'stop' })]);
  assert.deepEqual([...new Set(jsonFirst.map((c) => c.index))], [0], 'the native call after the JSON call began is dropped');
  const nativeFirst = calls([line({ tool_calls: [native] }), line({ content: '{"city":"Lisbon"}' }), line({}, { done: true, done_reason: 'stop' })]);
  assert.equal(nativeFirst.length, 1);
  assert.equal(nativeFirst[0].function.name, 'get_weather');
  assert.equal(nativeFirst.some((c) => c.content !== undefined), false, 'no JSON as prose');

  const sameLine = calls([line({ content: '{"city":"Lisbon"}', tool_calls: [native] }), line({}, { done: true, done_reason: 'stop' })]);
  assert.deepEqual(sameLine.map((c) => [c.index, c.function?.name, c.content]), [[0, 'get_weather', undefined]], 'one line with both: the engine\'s own call, as in a whole answer');
  // "required" of several: the engine's own call while the JSON is pending waits, and stands in if the JSON is no call.
  const severalPrepared = engine.prepare('chat', { model: 'm', messages: [{ role: 'user', content: 'x' }], tools, tool_choice: 'required', stream: true }, { model: 'm', wantStreamUsage: false, clientWantsUsage: false });
  const t = engine.streamTranslator('chat', ctx, false, severalPrepared);
  const pending = events([t.line(line({ content: ' ' })), t.line(line({ tool_calls: [native] })), t.line(line({}, { done: true, done_reason: 'stop' }))].join('')).filter((e) => e !== '[DONE]');
  assert.deepEqual(pending.flatMap((e) => e.choices[0].delta.tool_calls ?? []).map((c: any) => [c.index, c.function.name]), [[0, 'get_weather']]);
  assert.equal(pending.some((e) => e.choices[0].delta.content !== undefined), false);
  assert.equal(pending.at(-1).choices[0].finish_reason, 'tool_calls');

  const several = engine.normalize('chat', { model: 'm', message: { role: 'assistant', content: '{"name":"get\\qx","arguments":{' }, done: true, done_reason: 'length' }, { tools, tool_choice: 'required' }, ctx) as any;
  assert.equal(several.choices[0].message.content, '{"name":"get\\qx","arguments":{');
  assert.equal(several.choices[0].message.tool_calls, undefined);
});
