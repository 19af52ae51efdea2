// The Messages translation on its own: Anthropic requests in, chat requests out; whole chat
// completions as Messages; chat chunks in, Anthropic's events out (tool calls, thinking, split
// bytes, CRLF framing, errors). The end-to-end tests (test/messages.test.ts) run it behind the
// gateway with Anthropic's SDK.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { HoldingSink, Served } from '../../core/gateway.ts';
import { DEFAULT_LIMITS } from '../../config/types.ts';
import { FabricError } from '../../core/errors.ts';
import { fromMessagesRequest, type MessagesEcho } from './request.ts';
import { errorBody, errorType, messageUsage, toMessage } from './response.ts';
import { MessagesStream } from './stream.ts';
import { MessageStream } from '@anthropic-ai/sdk/lib/MessageStream';

class Collect implements HoldingSink {
  out = '';
  last = '';
  begin(): void {}
  write(d: Buffer | string): boolean { this.out += String(d); return true; }
  writeLast(d: string): void { this.last += d; }
  onDrain(): void {}
  end(): void {}
  events(): any[] {
    return [...(this.out + this.last).matchAll(/^event: (.+)\ndata: (.+)$/gm)].map((m) => {
      const data = JSON.parse(m[2]!);
      assert.equal(data.type, m[1], 'the event name and its type agree');
      return data;
    });
  }
}

const served = { model: 'phys' } as Served;
const echo: MessagesEcho = { stopSequences: [], thinking: false };
const sse = (o: unknown): string => `data: ${JSON.stringify(o)}\n\n`;
const chunk = (delta: unknown, finish: string | null = null, extra: Record<string, unknown> = {}) => sse({ id: 'c', object: 'chat.completion.chunk', model: 'phys', choices: [{ index: 0, delta, finish_reason: finish, ...extra }] });
const usageChunk = sse({ id: 'c', object: 'chat.completion.chunk', model: 'phys', choices: [], usage: { prompt_tokens: 7, completion_tokens: 5, total_tokens: 12 } });
const base = { model: 'm', max_tokens: 100 };

test('a request: system blocks, tool results before the turn\'s text (their images with it), assistant text and calls, thinking left out, system turns', () => {
  const t = fromMessagesRequest({
    ...base,
    system: [{ type: 'text', text: 'A' }, { type: 'text', text: 'B', cache_control: { type: 'ephemeral' } }],
    messages: [
      { role: 'user', content: 'Weather?' },
      { role: 'assistant', content: [
        { type: 'thinking', thinking: 'hmm', signature: 's' }, { type: 'redacted_thinking', data: 'x' },
        { type: 'text', text: 'Checking.' },
        { type: 'tool_use', id: 'toolu_1', name: 'weather', input: { city: 'Paris' } },
        { type: 'tool_use', id: 'toolu_2', name: 'time', input: {} },
      ] },
      { role: 'user', content: [
        { type: 'tool_result', tool_use_id: 'toolu_1', content: [{ type: 'text', text: '18°C' }, { type: 'text', text: 'sunny' }, { type: 'image', source: { type: 'url', url: 'https://x/map.png' } }] },
        { type: 'tool_result', tool_use_id: 'toolu_2', content: 'boom', is_error: true },
        { type: 'text', text: 'Thanks.' },
      ] },
      { role: 'assistant', content: [{ type: 'thinking', thinking: 'only this', signature: 's' }] },
      { role: 'system', content: 'Be kind.' },
      { role: 'user', content: [{ type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'doc text' } }] },
    ],
  }, DEFAULT_LIMITS);
  assert.deepEqual(t.chat.messages, [
    { role: 'system', content: 'A\nB' },
    { role: 'user', content: 'Weather?' },
    { role: 'assistant', content: 'Checking.', tool_calls: [
      { id: 'toolu_1', type: 'function', function: { name: 'weather', arguments: '{"city":"Paris"}' } },
      { id: 'toolu_2', type: 'function', function: { name: 'time', arguments: '{}' } },
    ] },
    { role: 'tool', tool_call_id: 'toolu_1', content: '18°C\nsunny' },
    { role: 'tool', tool_call_id: 'toolu_2', content: 'Error: boom' },
    { role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://x/map.png' } }, { type: 'text', text: 'Thanks.' }] },
    { role: 'system', content: 'Be kind.' },
    { role: 'user', content: 'doc text' },
  ]);
  assert.equal(t.chat.max_tokens, 100);
});

test('Claude Code\'s attribution line (a per-request hash at the head of the system prompt) is left out, so engines\' prefix caches hold', () => {
  const system = (v: unknown): unknown => (fromMessagesRequest({ ...base, system: v, messages: [{ role: 'user', content: 'x' }] }, DEFAULT_LIMITS).chat.messages as unknown[])[0];
  assert.deepEqual(system([
    { type: 'text', text: 'x-anthropic-billing-header: cc_version=2.1.37.0d9; cc_entrypoint=cli; cch=fa690;' },
    { type: 'text', text: 'You are Claude Code.' }, { type: 'text', text: 'Rules.' },
  ]), { role: 'system', content: 'You are Claude Code.\nRules.' });
  assert.deepEqual(system('x-anthropic-billing-header: cch=1;\nYou are Claude Code.'), { role: 'system', content: 'You are Claude Code.' });
  assert.deepEqual(system('Quote: x-anthropic-billing-header: stays'), { role: 'system', content: 'Quote: x-anthropic-billing-header: stays' });
  assert.deepEqual(system([{ type: 'text', text: 'x-anthropic-billing-header: cch=1;' }]), { role: 'user', content: 'x' }, 'nothing left: no system message');
});

test('fields: stop_sequences, sampling, top_k, tools and each tool_choice, metadata, output_config, stream; Anthropic\'s own fields left out; unknown ones go on', () => {
  const tools = [{ name: 'f', description: 'd', input_schema: { type: 'object' }, cache_control: { type: 'ephemeral' }, strict: true }];
  const t = fromMessagesRequest({
    ...base, messages: [{ role: 'user', content: 'x' }], stop_sequences: ['END', ''], temperature: 0.5, top_p: 0.9, top_k: 20, tools,
    tool_choice: { type: 'any', disable_parallel_tool_use: true }, metadata: { user_id: 'u1' }, stream: true,
    output_config: { effort: 'high', format: { type: 'json_schema', schema: { type: 'object' } } },
    thinking: { type: 'enabled', budget_tokens: 2048 }, cache_control: { type: 'ephemeral' }, service_tier: 'auto', context_management: {}, container: 'c1',
    min_p: 0.05,
  }, DEFAULT_LIMITS);
  assert.deepEqual(t.chat, {
    model: 'm', messages: [{ role: 'user', content: 'x' }], max_tokens: 100, stream: true, stream_options: { include_usage: true }, stop: ['END'],
    temperature: 0.5, top_p: 0.9, top_k: 20, tools: [{ type: 'function', function: { name: 'f', description: 'd', parameters: { type: 'object' }, strict: true } }],
    tool_choice: 'required', parallel_tool_calls: false, user: 'u1',
    response_format: { type: 'json_schema', json_schema: { name: 'output', schema: { type: 'object' }, strict: true } },
    min_p: 0.05,
  });
  assert.deepEqual(t.echo, { stopSequences: ['END'], thinking: true });
  const choice = (tc: unknown): unknown => fromMessagesRequest({ ...base, messages: [{ role: 'user', content: 'x' }], tools, tool_choice: tc }, DEFAULT_LIMITS).chat;
  assert.equal((choice({ type: 'auto' }) as any).tool_choice, 'auto');
  assert.equal((choice({ type: 'none' }) as any).tool_choice, 'none');
  assert.deepEqual((choice({ type: 'tool', name: 'f' }) as any).tool_choice, { type: 'function', function: { name: 'f' } });
  assert.equal((choice({ type: 'auto' }) as any).parallel_tool_calls, undefined);
  assert.equal(fromMessagesRequest({ ...base, messages: [{ role: 'user', content: 'x' }], thinking: { type: 'disabled' } }, DEFAULT_LIMITS).echo.thinking, false);
  // count_tokens: no max_tokens needed, never streamed.
  assert.deepEqual(fromMessagesRequest({ model: 'm', messages: [{ role: 'user', content: 'x' }], stream: true }, DEFAULT_LIMITS, true).chat, { model: 'm', messages: [{ role: 'user', content: 'x' }] });
});

test('refusals name the Messages field: what needs Anthropic\'s side, chat completions\' own fields, malformed blocks', () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ max_tokens: undefined }, 'max_tokens'],
    [{ max_tokens: 0 }, 'max_tokens'],
    [{ max_tokens: DEFAULT_LIMITS.maxTokens + 1 }, 'max_tokens'],
    [{ messages: [] }, 'messages'],
    [{ messages: [{ role: 'tool', content: 'x' }] }, 'messages[0].role'],
    [{ messages: [{ role: 'user', content: 5 }] }, 'messages[0].content'],
    [{ messages: [{ role: 'user', content: [{ type: 'server_tool_use', id: 'x' }] }] }, 'messages[0].content[0].type'],
    [{ messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'base64', data: 'x' } }] }] }, 'messages[0].content[0].source'],
    [{ messages: [{ role: 'user', content: [{ type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: 'x' } }] }] }, 'messages[0].content[0].source'],
    [{ messages: [{ role: 'user', content: [{ type: 'tool_result', content: 'x' }] }] }, 'messages[0].content[0].tool_use_id'],
    [{ messages: [{ role: 'assistant', content: [{ type: 'tool_use', name: 'f' }] }] }, 'messages[0].content[0]'],
    [{ messages: [{ role: 'assistant', content: [{ type: 'image', source: { type: 'url', url: 'u' } }] }] }, 'messages[0].content[0].type'],
    [{ messages: [{ role: 'assistant', content: [{ type: 'thinking', thinking: 'x', signature: 's' }] }] }, 'messages'],
    [{ messages: [{ role: 'user', content: [] }] }, 'messages'],
    [{ system: [{ type: 'image' }] }, 'system[0]'],
    [{ tools: [{ type: 'bash_20250124', name: 'bash' }] }, 'tools[0].type'],
    [{ tools: [{ name: '', input_schema: {} }] }, 'tools[0].name'],
    [{ tool_choice: { type: 'any' } }, 'tool_choice'],
    [{ tool_choice: 'auto' }, 'tool_choice'],
    [{ tool_choice: { type: 'sometimes' } }, 'tool_choice.type'],
    [{ stop_sequences: 'END' }, 'stop_sequences'],
    [{ top_k: -1 }, 'top_k'],
    [{ metadata: { user_id: 5 } }, 'metadata.user_id'],
    [{ output_config: { format: { type: 'json_object' } } }, 'output_config.format'],
    [{ stream: 'yes' }, 'stream'],
    [{ mcp_servers: [{}] }, 'mcp_servers'],
    [{ stop: 'x' }, 'stop'],
    [{ max_completion_tokens: 5 }, 'max_completion_tokens'],
    [{ response_format: { type: 'json_object' } }, 'response_format'],
    [{ user: 'u' }, 'user'],
  ];
  for (const [extra, param] of cases) {
    assert.throws(() => fromMessagesRequest({ ...base, messages: [{ role: 'user', content: 'x' }], ...extra }, DEFAULT_LIMITS), (e: unknown) => {
      assert.ok(e instanceof FabricError, JSON.stringify(extra));
      assert.equal(e.param, param, JSON.stringify(extra));
      assert.equal(e.status, 400);
      return true;
    });
  }
  // A field named like an Object method is no refused field.
  for (const k of ['toString', 'constructor', '__proto__']) assert.doesNotThrow(() => fromMessagesRequest(JSON.parse(`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"${k}":1}`), DEFAULT_LIMITS), k);
});

test('a whole chat completion as a Message: text, tool_use with parsed input, stop reasons, thinking only when asked, usage with the prefix cache\'s reads', () => {
  const completion = (message: Record<string, unknown>, finish: string, extra: Record<string, unknown> = {}) => ({
    id: 'chatcmpl-1', model: 'phys', choices: [{ index: 0, message: { role: 'assistant', ...message }, finish_reason: finish, ...extra }],
    usage: { prompt_tokens: 30, completion_tokens: 9, total_tokens: 39, prompt_tokens_details: { cached_tokens: 16 } },
  });
  const m = toMessage(completion({ content: 'Checking.', reasoning_content: 'think', tool_calls: [
    { id: 'call_1', type: 'function', function: { name: 'weather', arguments: '{"city":"Paris"}' } },
    { id: 'call_2', type: 'function', function: { name: 'time', arguments: '' } },
    { type: 'function', function: { name: 'bad', arguments: '{"city": Par' } },
  ] }, 'tool_calls'), echo, 'msg_1');
  assert.deepEqual(m, {
    id: 'msg_1', type: 'message', role: 'assistant', model: 'phys',
    content: [
      { type: 'text', text: 'Checking.' },
      { type: 'tool_use', id: 'call_1', name: 'weather', input: { city: 'Paris' } },
      { type: 'tool_use', id: 'call_2', name: 'time', input: {} },
      { type: 'tool_use', id: 'toolu_1_2', name: 'bad', input: '{"city": Par' },
    ],
    stop_reason: 'tool_use', stop_sequence: null,
    usage: { input_tokens: 14, cache_creation_input_tokens: 0, cache_read_input_tokens: 16, output_tokens: 9 },
  });
  const thinking = toMessage(completion({ content: 'Hi', reasoning_content: 'think' }, 'stop'), { ...echo, thinking: true }, 'msg_2');
  assert.deepEqual(thinking.content, [{ type: 'thinking', thinking: 'think', signature: '' }, { type: 'text', text: 'Hi' }]);
  assert.equal(thinking.stop_reason, 'end_turn');
  assert.equal(toMessage(completion({ content: 'Hi' }, 'length'), echo, 'm').stop_reason, 'max_tokens');
  assert.equal(toMessage(completion({ content: 'Hi' }, 'content_filter'), echo, 'm').stop_reason, 'refusal');
  // Calls beside a finish reason of "stop" (servers that say so) are still tool_use.
  assert.equal(toMessage(completion({ content: '', tool_calls: [{ id: 'c', function: { name: 'f', arguments: '{}' } }] }, 'stop'), echo, 'm').stop_reason, 'tool_use');
  // vLLM names the stop string: believed for the request's own sequences only.
  const stopped = toMessage(completion({ content: 'Hi' }, 'stop', { stop_reason: 'END' }), { ...echo, stopSequences: ['END'] }, 'm');
  assert.deepEqual([stopped.stop_reason, stopped.stop_sequence], ['stop_sequence', 'END']);
  assert.equal(toMessage(completion({ content: 'Hi' }, 'stop', { stop_reason: 128009 }), { ...echo, stopSequences: ['END'] }, 'm').stop_reason, 'end_turn');
  assert.equal(toMessage(completion({ content: 'Hi' }, 'stop', { stop_reason: 'OTHER' }), { ...echo, stopSequences: ['END'] }, 'm').stop_reason, 'end_turn');
  const refused = toMessage(completion({ content: null, refusal: 'I cannot.' }, 'stop'), echo, 'm');
  assert.deepEqual([refused.content, refused.stop_reason], [[{ type: 'text', text: 'I cannot.' }], 'refusal']);
  assert.deepEqual(messageUsage(undefined), { input_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 0 });
});

test('a stream: message_start with the estimate and ping, text then tool calls (each block stopped before the next begins), message_delta with the engine\'s usage, held to the end', () => {
  const sink = new Collect();
  const s = new MessagesStream(sink, echo, 'msg_abc', (sv) => sv.model, () => 42);
  s.begin(served);
  s.write(chunk({ role: 'assistant', content: '' }));
  s.write(chunk({ content: 'Let me ' }));
  s.write(chunk({ content: 'check.' }));
  s.write(chunk({ tool_calls: [{ index: 0, id: 'call_A', type: 'function', function: { name: 'weather', arguments: '{"ci' } }] }));
  s.write(chunk({ tool_calls: [{ index: 0, function: { arguments: 'ty":"Paris"}' } }] }));
  s.write(chunk({ tool_calls: [{ index: 1, id: 'call_B', type: 'function', function: { name: 'time', arguments: '{}' } }] }));
  s.write(chunk({}, 'tool_calls'));
  s.write(usageChunk);
  assert.equal(sink.last, '', 'nothing held before the end');
  s.write('data: [DONE]\n\n');
  assert.equal(s.finished, true);
  assert.match(sink.last, /^event: content_block_stop/, 'the closing events are the held last bytes');
  const ev = sink.events();
  assert.deepEqual(ev.map((e) => e.type), [
    'message_start', 'ping',
    'content_block_start', 'content_block_delta', 'content_block_delta', 'content_block_stop',
    'content_block_start', 'content_block_delta', 'content_block_delta', 'content_block_stop',
    'content_block_start', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop',
  ]);
  assert.deepEqual(ev[0].message, { id: 'msg_abc', type: 'message', role: 'assistant', model: 'phys', content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 42, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 0 } });
  assert.deepEqual(ev[2], { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } });
  assert.deepEqual(ev[3].delta, { type: 'text_delta', text: 'Let me ' });
  assert.deepEqual(ev[6], { type: 'content_block_start', index: 1, content_block: { type: 'tool_use', id: 'call_A', name: 'weather', input: {} } });
  assert.deepEqual(ev[7].delta, { type: 'input_json_delta', partial_json: '{"ci' });
  assert.deepEqual([ev[8].index, ev[8].delta.partial_json], [1, 'ty":"Paris"}']);
  assert.deepEqual(ev[9], { type: 'content_block_stop', index: 1 }, 'the first call\'s block stops before the second\'s starts');
  assert.deepEqual(ev[10].content_block.id, 'call_B');
  assert.deepEqual(ev[12], { type: 'content_block_stop', index: 2 });
  assert.deepEqual(ev[13], { type: 'message_delta', delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { input_tokens: 7, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 5 } });

  // Arguments that come for a call already closed (no engine known sends them so) still go to its block.
  const late = new Collect();
  const l = new MessagesStream(late, echo, 'msg_l', (sv) => sv.model, () => 1);
  l.begin(served);
  l.write(chunk({ tool_calls: [{ index: 0, id: 'a', function: { name: 'f', arguments: '{"x"' } }, { index: 1, id: 'b', function: { name: 'g', arguments: '{}' } }] }));
  l.write(chunk({ tool_calls: [{ index: 0, function: { arguments: ':1}' } }] }, 'tool_calls') + 'data: [DONE]\n\n');
  const deltas = late.events().filter((e) => e.type === 'content_block_delta');
  assert.deepEqual(deltas.map((e) => [e.index, e.delta.partial_json]), [[0, '{"x"'], [1, '{}'], [0, ':1}']]);
});

test('a stream with parallel tool calls, read by Anthropic\'s SDK: each contentBlock event is its own block, and the final message has every call', async () => {
  const sink = new Collect();
  const s = new MessagesStream(sink, echo, 'msg_p', (sv) => sv.model, () => 5);
  s.begin(served);
  s.write(chunk({ content: 'Checking both.' }));
  s.write(chunk({ tool_calls: [{ index: 0, id: 'call_A', type: 'function', function: { name: 'weather', arguments: '{"city":' } }] }));
  s.write(chunk({ tool_calls: [{ index: 0, function: { arguments: '"Paris"}' } }] }));
  // Ollama's calls come whole, several in one chunk (as the gateway translates them).
  s.write(chunk({ tool_calls: [{ index: 1, id: 'call_B', type: 'function', function: { name: 'weather', arguments: '{"city":"Rome"}' } }, { index: 2, id: 'call_C', type: 'function', function: { name: 'time', arguments: '{}' } }] }));
  s.write(chunk({}, 'tool_calls') + usageChunk + 'data: [DONE]\n\n');
  // The SDK's MessageStream over the events (as JSON lines, which fromReadableStream reads).
  const lines = sink.events().map((e) => JSON.stringify(e)).join('\n') + '\n';
  const ms = MessageStream.fromReadableStream(new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode(lines)); c.close(); } }));
  const blocks: unknown[] = [];
  ms.on('contentBlock', (b) => blocks.push(JSON.parse(JSON.stringify(b))));
  const final = await ms.finalMessage();
  const expected = [
    { type: 'text', text: 'Checking both.' },
    { type: 'tool_use', id: 'call_A', name: 'weather', input: { city: 'Paris' } },
    { type: 'tool_use', id: 'call_B', name: 'weather', input: { city: 'Rome' } },
    { type: 'tool_use', id: 'call_C', name: 'time', input: {} },
  ];
  assert.deepEqual(blocks, expected);
  assert.deepEqual(JSON.parse(JSON.stringify(final.content)), expected);
  assert.equal(final.stop_reason, 'tool_use');
});

test('a stream: bytes split anywhere, CRLF framing, thinking when asked, a stop sequence vLLM names, and the estimate when the engine reports no usage', () => {
  const sink = new Collect();
  const s = new MessagesStream(sink, { stopSequences: ['END'], thinking: true }, 'msg_x', () => 'phys', () => 9);
  s.begin(served);
  const bytes = Buffer.from([
    chunk({ reasoning_content: 'Hmm, ' }), chunk({ reasoning_content: 'ok.' }), chunk({ content: 'Größe ' }), chunk({ content: 'ok' }), chunk({}, 'stop', { stop_reason: 'END' }), 'data: [DONE]\n\n',
  ].join('').replaceAll('\n\n', '\r\n\r\n'));
  for (let i = 0; i < bytes.length; i += 3) s.write(bytes.subarray(i, i + 3));
  const ev = sink.events();
  assert.deepEqual(ev.filter((e) => e.type === 'content_block_start').map((e) => e.content_block), [{ type: 'thinking', thinking: '', signature: '' }, { type: 'text', text: '' }]);
  assert.equal(ev.filter((e) => e.delta?.type === 'thinking_delta').map((e) => e.delta.thinking).join(''), 'Hmm, ok.');
  assert.equal(ev.filter((e) => e.delta?.type === 'text_delta').map((e) => e.delta.text).join(''), 'Größe ok');
  const md = ev.find((e) => e.type === 'message_delta');
  assert.deepEqual(md.delta, { stop_reason: 'stop_sequence', stop_sequence: 'END' });
  assert.deepEqual(md.usage, { input_tokens: 9, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 4 }, 'the estimate: the prompt\'s, and a token a delta');
  // Not asked for: no thinking block.
  const plain = new Collect();
  const p = new MessagesStream(plain, echo, 'msg_y', () => 'phys', () => 1);
  p.begin(served);
  p.write(chunk({ reasoning_content: 'Hmm' }) + chunk({ content: 'Hi' }, 'length') + usageChunk + 'data: [DONE]\n\n');
  assert.deepEqual(plain.events().filter((e) => e.type === 'content_block_start').map((e) => e.content_block.type), ['text']);
  assert.equal(plain.events().find((e) => e.type === 'message_delta').delta.stop_reason, 'max_tokens');
});

test('a stream that fails (an engine\'s error event, or the gateway\'s when a backend dies) ends with Anthropic\'s error event, nothing after', () => {
  const sink = new Collect();
  const s = new MessagesStream(sink, echo, 'msg_e', () => 'phys', () => 1);
  s.begin(served);
  s.write(chunk({ content: 'Hel' }));
  s.write(sse({ error: { message: 'stream from a interrupted: socket closed', type: 'server_error', param: null, code: 'stream_interrupted' } }));
  s.write(chunk({ content: 'lo' }) + 'data: [DONE]\n\n');
  const ev = sink.events();
  assert.deepEqual(ev.at(-1), { type: 'error', error: { type: 'api_error', message: 'stream from a interrupted: socket closed' } });
  assert.equal(ev.filter((e) => e.type === 'error').length, 1);
  assert.ok(!ev.some((e) => e.type === 'message_stop'));
  assert.equal(s.finished, true);
});

test('errors: Anthropic\'s types by the gateway\'s statuses, the gateway\'s message, the request id', () => {
  assert.deepEqual([400, 401, 403, 404, 405, 413, 429, 500, 502, 503, 504].map(errorType), [
    'invalid_request_error', 'authentication_error', 'permission_error', 'not_found_error', 'invalid_request_error', 'request_too_large',
    'rate_limit_error', 'api_error', 'api_error', 'overloaded_error', 'timeout_error',
  ]);
  assert.deepEqual(JSON.parse(errorBody(new FabricError('model_not_found', 'The model `x` does not exist', { param: 'model' }), 'req_1')), {
    type: 'error', error: { type: 'not_found_error', message: 'The model `x` does not exist' }, request_id: 'req_1',
  });
});
