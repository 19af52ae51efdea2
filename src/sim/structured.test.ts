// The simulator's tool calls and structured outputs: which requests get them, and what they hold.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { jsonTokens, replyShape, schemaInstance, shapeFor } from './structured.ts';

const weather = { type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer', minimum: 1 }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } }, required: ['city', 'unit'] } } };
const time = { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: {} } } };

test('a schema instance: required properties (all when none are listed), enums, nested objects and arrays, nullable unions, formats', () => {
  assert.deepEqual(schemaInstance(weather.function.parameters), { city: 'Paris', unit: 'celsius' });
  assert.deepEqual(schemaInstance({
    type: 'object',
    properties: {
      tags: { type: 'array', items: { type: 'string' }, minItems: 2 },
      owner: { type: 'object', properties: { email: { type: 'string', format: 'email' }, since: { type: 'string', format: 'date' } } },
      note: { anyOf: [{ type: 'null' }, { type: 'number' }] },
      flag: { type: ['null', 'boolean'] },
      kind: { const: 'k' },
    },
  }), { tags: ['example', 'example'], owner: { email: 'user@example.com', since: '2026-01-01' }, note: 1, flag: true, kind: 'k' });
  // A schema that refers to itself ends at the depth limit rather than recursing for ever.
  const deep: Record<string, unknown> = { type: 'object', properties: {} };
  (deep.properties as Record<string, unknown>).self = deep;
  assert.doesNotThrow(() => JSON.stringify(schemaInstance(deep)));
});

test('plausible values: the place and the question the user gives, the schema\'s own default and example, names, bounds and lengths, $refs', () => {
  // A model takes a tool's arguments from what the user said.
  assert.deepEqual(schemaInstance(weather.function.parameters, 'What is the weather in Rio de Janeiro today?'), { city: 'Rio de Janeiro', unit: 'celsius' });
  assert.deepEqual(schemaInstance(weather.function.parameters, 'Weather in Oslo?'), { city: 'Oslo', unit: 'celsius' }, 'a sentence\'s first word is not a name');
  const search = { type: 'object', properties: { query: { type: 'string' }, maxResults: { type: 'integer', minimum: 5, maximum: 10 } }, required: ['query', 'maxResults'] };
  assert.deepEqual(schemaInstance(search, 'find llama.cpp tool calling docs'), { query: 'find llama.cpp tool calling docs', maxResults: 5 });
  assert.deepEqual(schemaInstance({
    type: 'object',
    properties: {
      units: { type: 'string', default: 'metric' },
      style: { type: 'string', examples: ['terse', 'verbose'] },
      firstName: { type: 'string' },
      age: { type: 'integer', exclusiveMaximum: 18 },
      latitude: { type: 'number' },
      homepage: { type: 'string', format: 'uri' },
      code: { type: 'string', minLength: 10, maxLength: 12 },
      short: { type: 'string', maxLength: 3 },
      cities: { type: 'array', items: { type: 'string' } },
      none: { type: 'array', maxItems: 0 },
    },
  }), {
    units: 'metric', style: 'terse', firstName: 'Alice', age: 17, latitude: 48.8566, homepage: 'https://example.com',
    code: 'examplexxx', short: 'exa', cities: ['Paris'], none: [],
  });
  // Local $refs (pydantic's $defs), and allOf parts merged.
  const person = {
    $defs: { Unit: { enum: ['kg', 'lb'] }, Base: { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] } },
    allOf: [{ $ref: '#/$defs/Base' }, { type: 'object', properties: { weight: { $ref: '#/$defs/Unit' } }, required: ['weight'] }],
  };
  assert.deepEqual(schemaInstance(person), { id: '1', weight: 'kg' });
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
  assert.equal(replyShape(body({ tool_choice: 'required' }), 'hello', 'ollama'), undefined, 'Ollama has no tool_choice: the model decides');
  assert.equal(shapeFor({ tools: [weather, time], toolChoice: 'auto', messages: [], schema: undefined }, 'call get_time')?.toolCall?.name, 'get_time');
  const after = body({ messages: [{ role: 'user', content: 'call get_time' }, { role: 'assistant', tool_calls: [] }, { role: 'tool', tool_call_id: 'c', content: '10:00' }] });
  assert.equal(replyShape(after, 'call get_time', 'openai'), undefined, 'its result came back: an answer, not the same call again');
  const call = replyShape(body({ tool_choice: 'required' }), 'and in Lyon?', 'openai')!;
  assert.deepEqual(JSON.parse(call.tokens.join('')), { city: 'Lyon', unit: 'celsius' });
});

test('structured outputs: json_schema gives an instance of the schema, json_object and Ollama\'s "json" an object, Ollama\'s format a schema too', () => {
  const schema = { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' } }, required: ['name', 'age'] };
  assert.deepEqual(JSON.parse(replyShape({ response_format: { type: 'json_schema', json_schema: { name: 'p', schema } } }, 'x', 'openai')!.tokens.join('')), { name: 'Alice', age: 30 });
  assert.deepEqual(JSON.parse(replyShape({ response_format: { type: 'json_object' } }, 'x', 'openai')!.tokens.join('')), {});
  assert.equal(replyShape({ response_format: { type: 'text' } }, 'x', 'openai'), undefined);
  assert.deepEqual(JSON.parse(replyShape({ format: 'json' }, 'x', 'ollama')!.tokens.join('')), {});
  assert.deepEqual(JSON.parse(replyShape({ format: schema }, 'x', 'ollama')!.tokens.join('')), { name: 'Alice', age: 30 });
  assert.equal(replyShape({ format: schema }, 'x', 'openai'), undefined, 'each dialect reads its own field');
});

test('a schema that asks for exponentially much (nested arrays of 64, strings of a billion characters) gets a bounded instance, not a gateway out of memory', () => {
  let schema: Record<string, unknown> = { type: 'array', minItems: 64, items: { type: 'string', minLength: 1e9 } };
  for (let i = 0; i < 6; i++) schema = { type: 'array', minItems: 64, items: schema };
  const text = JSON.stringify(schemaInstance(schema));
  assert.ok(text.length < 4 * 1024 * 1024, `${text.length} bytes`);
  assert.ok(text.startsWith('[[[[[[['), 'still the shape asked for');
  // Objects of many properties, each a $ref to the next level; an allOf of self-references.
  const defs: Record<string, unknown> = {};
  for (let l = 0; l < 8; l++) {
    defs[`L${l}`] = { type: 'object', properties: Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`p${i}`, { $ref: `#/$defs/L${l + 1}` }])) };
  }
  defs.L8 = { type: 'string' };
  const wide = JSON.stringify(schemaInstance({ $defs: defs, $ref: '#/$defs/L0' }));
  assert.ok(wide.length < 4 * 1024 * 1024, `${wide.length} bytes`);
  const self: Record<string, unknown> = { $defs: { S: { allOf: Array.from({ length: 30 }, () => ({ $ref: '#/$defs/S' })) } }, $ref: '#/$defs/S' };
  assert.ok(JSON.stringify(schemaInstance(self)).length < 4 * 1024 * 1024);
});
