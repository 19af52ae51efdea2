// What a model does with tools and structured outputs, simulated: a JSON reply that fits the
// requested schema, and a call to a tool when the request asks for one. Deterministic, like the
// rest of the simulator: the same request gets the same JSON and the same call.
//
// When a tool is called: `tool_choice` "required" calls the first tool, a named function that
// one; "none" calls none; otherwise ("auto", or an engine without tool_choice such as Ollama) a
// tool is called when the last user message names it, so a demo can ask for one in words, and
// not once its result has come back (the conversation ends with a tool message).
//
// The values are what a model would plausibly fill in: a schema's own default or example first,
// then one that fits the property's format or name, taken from the user's words where a model
// would take it from them (a place the user names, the user's question as a search query).

import { isRecord } from './protocol.ts';

export interface SimToolCall {
  name: string;
}

/** A reply other than prose: its tokens (JSON text in pieces), and the tool it calls, if any. */
export interface ReplyShape {
  tokens: readonly string[];
  toolCall?: SimToolCall;
}

const MAX_DEPTH = 8;
/** Arrays get the items their minItems asks for, up to this. */
const MAX_ITEMS = 64;
/** Values one instance may hold in all (a long string counts as many), and characters one string: a schema of nested arrays asks for exponentially many. */
const MAX_VALUES = 4096;
const MAX_STRING = 4096;

/** What values are drawn from: the schema refs resolve against, and the user's words. */
interface Fill {
  root: unknown;
  words: string;
  /** the first name of a place, person or thing the user capitalised mid-sentence */
  proper: string | undefined;
  /** values still to be made (MAX_VALUES in all) */
  left: number;
}

const CAPITALISED = /^\p{Lu}[\p{L}'-]*\p{L}$/u;
/** Small words inside a name: Rio de Janeiro, Isle of Man, Den Haag. */
const CONNECTORS = new Set(['de', 'da', 'do', 'dos', 'del', 'la', 'le', 'of', 'on', 'upon', 'van', 'von', 'am']);

/** The first run of capitalised words that does not open a sentence: "Paris" in "What is the weather in Paris?". */
function properNoun(text: string): string | undefined {
  for (const sentence of text.split(/[.!?]+\s+|\n+/)) {
    const words = sentence.trim().split(/\s+/).map((w) => w.replace(/^[^\p{L}]+|[^\p{L}]+$/gu, ''));
    const run: string[] = [];
    for (let i = 1; i <= words.length; i++) {
      const w = words[i] ?? '';
      if (CAPITALISED.test(w)) run.push(w);
      else if (run.length > 0 && CONNECTORS.has(w) && CAPITALISED.test(words[i + 1] ?? '')) run.push(w);
      else if (run.length > 0) return run.join(' ');
    }
  }
  return undefined;
}

/** A JSON pointer into the root schema (`#/$defs/Unit`, `#/anyOf/0/…`), as $ref names it; undefined for other refs. */
function resolveRef(root: unknown, ref: string): unknown {
  if (!ref.startsWith('#')) return undefined;
  let cur = root;
  for (const part of ref.slice(1).split('/').filter((p) => p !== '')) {
    const key = decodeURIComponent(part).replaceAll('~1', '/').replaceAll('~0', '~');
    if (Array.isArray(cur)) cur = /^\d+$/.test(key) ? cur[Number(key)] : undefined;
    else if (isRecord(cur)) cur = cur[key];
    else return undefined;
  }
  return cur;
}

const FORMATS: Record<string, string> = {
  date: '2026-01-01',
  'date-time': '2026-01-01T12:00:00Z',
  time: '12:00:00',
  email: 'user@example.com',
  uri: 'https://example.com',
  url: 'https://example.com',
  iri: 'https://example.com',
  hostname: 'example.com',
  ipv4: '192.0.2.1',
  ipv6: '2001:db8::1',
  uuid: '3f2b8c1e-9d4a-4e6b-8a7c-1d2e3f4a5b6c',
};

/**
 * Values by what a property is called (in snake case), the first match winning; `words` and
 * `proper` are filled from the user's words.
 */
const BY_NAME: readonly [RegExp, string][] = [
  [/email/, 'user@example.com'],
  [/url|uri|link|website|href/, 'https://example.com'],
  [/(^|_)ip(_|$)/, '192.0.2.1'],
  [/city|location|place|town|destination|address|region|where/, 'proper'],
  [/country/, 'France'],
  [/query|search|question|prompt|keyword|topic|^q$/, 'words'],
  [/timezone|^tz$/, 'Europe/Paris'],
  [/lang|locale/, 'en'],
  [/currency/, 'EUR'],
  [/date|day/, '2026-01-01'],
  [/time/, '12:00'],
  [/path|file/, 'README.md'],
  [/unit/, 'celsius'],
  [/^(name|(first|full|user)_?name|user|author|person)$/, 'Alice'],
  [/text|message|content|input|body/, 'words'],
  [/(^|_)id$/, '1'],
];

function stringFor(schema: Record<string, unknown>, key: string, fill: Fill): string {
  let s = typeof schema.format === 'string' ? FORMATS[schema.format] : undefined;
  if (s === undefined) {
    const hit = BY_NAME.find(([re]) => re.test(key))?.[1];
    s = hit === 'proper' ? fill.proper ?? 'Paris' : hit === 'words' ? fill.words.trim().slice(0, 200) || 'example' : hit ?? 'example';
  }
  const min = typeof schema.minLength === 'number' ? Math.min(schema.minLength, MAX_STRING) : 0;
  const max = typeof schema.maxLength === 'number' ? schema.maxLength : Infinity;
  if ([...s].length < min) s = s.padEnd(min, 'x');
  // A long string counts as many values (a value is about 64 characters).
  fill.left -= Math.floor(s.length / 64);
  return [...s].length > max ? [...s].slice(0, max).join('') : s;
}

function numberFor(schema: Record<string, unknown>, key: string, integer: boolean): number {
  let v = /age/.test(key) ? 30 : /year/.test(key) ? 2026 : /^lat/.test(key) ? 48.8566 : /^(lon|lng)/.test(key) ? 2.3522 : 1;
  if (integer) v = Math.round(v);
  const step = integer ? 1 : 0.5;
  const lo = typeof schema.minimum === 'number' ? schema.minimum : typeof schema.exclusiveMinimum === 'number' ? schema.exclusiveMinimum + step : -Infinity;
  const hi = typeof schema.maximum === 'number' ? schema.maximum : typeof schema.exclusiveMaximum === 'number' ? schema.exclusiveMaximum - step : Infinity;
  if (v < lo) v = integer ? Math.ceil(lo) : lo;
  if (v > hi) v = integer ? Math.floor(hi) : hi;
  return v;
}

function instance(schema: unknown, key: string, depth: number, fill: Fill): unknown {
  // Past the budget, nothing more is made: objects of many properties, allOf and $refs branch too.
  if (!isRecord(schema) || depth > MAX_DEPTH || fill.left <= 0) return {};
  fill.left--;
  if (typeof schema.$ref === 'string') {
    const target = resolveRef(fill.root, schema.$ref);
    if (target !== undefined) return instance(target, key, depth + 1, fill);
  }
  if ('const' in schema) return schema.const;
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return schema.enum[0];
  if ('default' in schema) return schema.default;
  if (Array.isArray(schema.examples) && schema.examples.length > 0) return schema.examples[0];
  if ('example' in schema) return schema.example;
  if (Array.isArray(schema.allOf) && schema.allOf.length > 0) {
    // Each part constrains the one value: objects' properties merge.
    const parts = schema.allOf.map((s) => instance(s, key, depth + 1, fill));
    return parts.every((p) => isRecord(p)) ? Object.assign({}, ...parts) as unknown : parts[0];
  }
  for (const k of ['anyOf', 'oneOf'] as const) {
    const list = schema[k];
    if (Array.isArray(list) && list.length > 0) return instance(list.find((s) => !(isRecord(s) && s.type === 'null')) ?? list[0], key, depth + 1, fill);
  }
  const declared = Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') : schema.type;
  const type = declared ?? (isRecord(schema.items) ? 'array' : undefined);
  const name = key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
  switch (type) {
    case 'string':
      return stringFor(schema, name, fill);
    case 'integer':
    case 'number':
      return numberFor(schema, name, type === 'integer');
    case 'boolean':
      return true;
    case 'null':
      return null;
    case 'array': {
      const min = typeof schema.minItems === 'number' ? Math.min(schema.minItems, MAX_ITEMS) : 1;
      // Once the values run out, arrays hold one item (or none where allowed), whatever they ask.
      const n = schema.maxItems === 0 || (fill.left <= 0 && min === 0) ? 0 : fill.left <= 0 ? 1 : Math.max(1, min);
      // An item is named for its array: the items of `cities` are cities.
      const itemKey = key.endsWith('ies') ? `${key.slice(0, -3)}y` : key.replace(/s$/, '');
      return Array.from({ length: n }, () => instance(schema.items, itemKey, depth + 1, fill));
    }
    default: {
      const props = isRecord(schema.properties) ? schema.properties : {};
      const required = Array.isArray(schema.required) ? schema.required.filter((r): r is string => typeof r === 'string') : Object.keys(props);
      const out: Record<string, unknown> = {};
      for (const k of required) out[k] = instance(props[k], k, depth + 1, fill);
      return out;
    }
  }
}

/**
 * A small instance of a JSON schema, as a model fills one in: required properties (all, when
 * none are listed), local $refs followed, a schema's default or example, else the first choice
 * and a value fitting the property's bounds, format and name; `userText` is what the user said.
 */
export function schemaInstance(schema: unknown, userText = ''): unknown {
  return instance(schema, 'value', 0, { root: schema, words: userText, proper: properNoun(userText), left: MAX_VALUES });
}

/** JSON text in token-sized pieces: punctuation, strings and bare values apart, as a tokenizer splits it. */
export function jsonTokens(value: unknown): readonly string[] {
  return JSON.stringify(value).match(/[{}[\],:]|"(?:[^"\\]|\\.)*"|[^{}[\],:"]+/g) ?? ['{}'];
}

interface FunctionTool { name: string; parameters: unknown }

/** The function tools of a request (OpenAI's {type, function: {name, parameters}} form, which Ollama takes too). */
function functionTools(tools: unknown): FunctionTool[] {
  if (!Array.isArray(tools)) return [];
  const out: FunctionTool[] = [];
  for (const t of tools) {
    const fn = isRecord(t) ? t.function : undefined;
    if (isRecord(fn) && typeof fn.name === 'string') out.push({ name: fn.name, parameters: fn.parameters });
  }
  return out;
}

/** What an engine made of a request's tools and output format, in the simulator's terms. */
export interface ShapeRequest {
  /** the tools, in OpenAI's {type, function: {name, parameters}} form */
  tools: unknown;
  /** "auto", "none", "required" or {function: {name}}; anything else is auto */
  toolChoice: unknown;
  messages: unknown;
  /** the JSON schema the output must match: `{}` for any JSON object, undefined for prose */
  schema: unknown;
}

function chosenTool(req: ShapeRequest, lastUser: string): FunctionTool | undefined {
  const tools = functionTools(req.tools);
  if (tools.length === 0) return undefined;
  const choice = req.toolChoice;
  if (choice === 'none') return undefined;
  if (choice === 'required') return tools[0];
  if (isRecord(choice) && isRecord(choice.function) && typeof choice.function.name === 'string') {
    const name = choice.function.name;
    return tools.find((t) => t.name === name);
  }
  // A tool's result has just come back: the model answers with it rather than calling again.
  const messages = req.messages;
  if (Array.isArray(messages) && isRecord(messages[messages.length - 1]) && messages[messages.length - 1].role === 'tool') return undefined;
  const text = lastUser.toLowerCase();
  return tools.find((t) => text.includes(t.name.toLowerCase()));
}

/**
 * What a chat request's reply is when it is not prose: a tool call (its arguments fit the tool's
 * parameters), or JSON that fits the requested format. Undefined for prose.
 */
export function shapeFor(req: ShapeRequest, lastUser: string): ReplyShape | undefined {
  const tool = chosenTool(req, lastUser);
  if (tool !== undefined) return { tokens: jsonTokens(schemaInstance(tool.parameters, lastUser)), toolCall: { name: tool.name } };
  return req.schema === undefined ? undefined : { tokens: jsonTokens(schemaInstance(req.schema, lastUser)) };
}

/** The JSON schema a request's output must match: `{}` for plain JSON mode, undefined for prose. */
function outputSchema(body: Record<string, unknown>, dialect: 'openai' | 'ollama'): unknown {
  if (dialect === 'ollama') {
    const f = body.format;
    return f === 'json' ? {} : isRecord(f) ? f : undefined;
  }
  const rf = body.response_format;
  if (!isRecord(rf)) return undefined;
  if (rf.type === 'json_object') return {};
  if (rf.type === 'json_schema' && isRecord(rf.json_schema)) return rf.json_schema.schema ?? {};
  return undefined;
}

/** shapeFor a request as OpenAI's API (`tools`, `tool_choice`, `response_format`) or Ollama's (`tools`, `format`) reads it. */
export function replyShape(body: Record<string, unknown>, lastUser: string, dialect: 'openai' | 'ollama'): ReplyShape | undefined {
  // Ollama's API has no tool_choice: the model decides.
  return shapeFor({ tools: body.tools, toolChoice: dialect === 'openai' ? body.tool_choice : undefined, messages: body.messages, schema: outputSchema(body, dialect) }, lastUser);
}
