// The simulator's tool calls and structured outputs: which requests get them, and what they hold.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { jsonTokens, replyShape, schemaInstance } from './structured.ts';

const weather = { type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer', minimum: 1 }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } }, required: ['city', 'unit'] } } };
const time = { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: {} } } };

test('a schema instance: required properties (all when none are listed), enums, nested objects and arrays, nullable unions, formats', () => {
  assert.deepEqual(schemaInstance(weather.function.parameters), { city: 'city', unit: 'celsius' });
  assert.deepEqual(schemaInstance({
    type: 'object',
    properties: {
      tags: { type: 'array', items: { type: 'string' }, minItems: 2 },
      owner: { type: 'object', properties: { email: { type: 'string', format: 'email' }, since: { type: 'string', format: 'date' } } },
      note: { anyOf: [{ type: 'null' }, { type: 'number' }] },
      flag: { type: ['null', 'boolean'] },
      kind: { const: 'k' },
    },
  }), { tags: ['tags', 'tags'], owner: { email: 'user@example.com', since: '2026-01-01' }, note: 1, flag: true, kind: 'k' });
  // A schema that refers to itself ends at the depth limit rather than recursing for ever.
  const deep: Record<string, unknown> = { type: 'object', properties: {} };
  (deep.properties as Record<string, unknown>).self = deep;
  assert.doesNotThrow(() => JSON.stringify(schemaInstance(deep)));
});

test('JSON in token-sized pieces that join back to the JSON text', () => {
  const v = { city: 'São Paulo, "SP"', n: [1, 2.5], ok: true };
  const t = jsonTokens(v);
  assert.ok(t.length > 8);
  assert.equal(t.join(''), JSON.stringify(v));
});

test('which requests get a tool call: required, a named function, a name in the user\'s words; never with tool_choice none', () => {
  const body = (extra: Record<string, unknown>) => ({ tools: [weather, time], ...extra });
  assert.equal(replyShape(body({ tool_choice: 'required' }), 'hello', 'openai')?.toolCall?.name, 'get_weather');
  assert.equal(replyShape(body({ tool_choice: { type: 'function', function: { name: 'get_time' } } }), 'hello', 'openai')?.toolCall?.name, 'get_time');
  assert.equal(replyShape(body({}), 'please call get_time now', 'openai')?.toolCall?.name, 'get_time');
  assert.equal(replyShape(body({ tool_choice: 'auto' }), 'hello', 'openai'), undefined, 'auto, not asked for in words: prose');
  assert.equal(replyShape(body({ tool_choice: 'none' }), 'call get_time', 'openai'), undefined);
  const after = body({ messages: [{ role: 'user', content: 'call get_time' }, { role: 'assistant', tool_calls: [] }, { role: 'tool', tool_call_id: 'c', content: '10:00' }] });
  assert.equal(replyShape(after, 'call get_time', 'openai'), undefined, 'its result came back: an answer, not the same call again');
  const call = replyShape(body({ tool_choice: 'required' }), 'x', 'openai')!;
  assert.deepEqual(JSON.parse(call.tokens.join('')), { city: 'city', unit: 'celsius' });
});

test('structured outputs: json_schema gives an instance of the schema, json_object and Ollama\'s "json" an object, Ollama\'s format a schema too', () => {
  const schema = { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' } }, required: ['name', 'age'] };
  assert.deepEqual(JSON.parse(replyShape({ response_format: { type: 'json_schema', json_schema: { name: 'p', schema } } }, 'x', 'openai')!.tokens.join('')), { name: 'name', age: 1 });
  assert.deepEqual(JSON.parse(replyShape({ response_format: { type: 'json_object' } }, 'x', 'openai')!.tokens.join('')), {});
  assert.equal(replyShape({ response_format: { type: 'text' } }, 'x', 'openai'), undefined);
  assert.deepEqual(JSON.parse(replyShape({ format: 'json' }, 'x', 'ollama')!.tokens.join('')), {});
  assert.deepEqual(JSON.parse(replyShape({ format: schema }, 'x', 'ollama')!.tokens.join('')), { name: 'name', age: 1 });
  assert.equal(replyShape({ format: schema }, 'x', 'openai'), undefined, 'each dialect reads its own field');
});
