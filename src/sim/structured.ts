// What a model does with tools and structured outputs, simulated: a JSON reply that fits the
// requested schema, and a call to a tool when the request asks for one. Deterministic, like the
// rest of the simulator: the same request gets the same JSON and the same call.
//
// When a tool is called: `tool_choice` "required" calls the first tool, a named function that
// one; "none" calls none; otherwise ("auto", or an engine without tool_choice such as Ollama) a
// tool is called when the last user message names it, so a demo can ask for one in words, and
// not once its result has come back (the conversation ends with a tool message).

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

/** A small instance of a JSON schema: required properties (all, when none are listed), first choices. */
export function schemaInstance(schema: unknown, key = 'value', depth = 0): unknown {
  if (!isRecord(schema) || depth > MAX_DEPTH) return {};
  if ('const' in schema) return schema.const;
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return schema.enum[0];
  for (const k of ['anyOf', 'oneOf', 'allOf'] as const) {
    const list = schema[k];
    if (Array.isArray(list) && list.length > 0) return schemaInstance(list.find((s) => !(isRecord(s) && s.type === 'null')) ?? list[0], key, depth + 1);
  }
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') : schema.type;
  switch (type) {
    case 'string':
      return schema.format === 'date' ? '2026-01-01' : schema.format === 'date-time' ? '2026-01-01T00:00:00Z' : schema.format === 'email' ? 'user@example.com' : key;
    case 'integer':
    case 'number':
      return typeof schema.minimum === 'number' ? schema.minimum : 1;
    case 'boolean':
      return true;
    case 'null':
      return null;
    case 'array': {
      const n = typeof schema.minItems === 'number' && schema.minItems > 1 ? Math.min(schema.minItems, 4) : 1;
      return Array.from({ length: n }, () => schemaInstance(schema.items, key, depth + 1));
    }
    default: {
      const props = isRecord(schema.properties) ? schema.properties : {};
      const required = Array.isArray(schema.required) ? schema.required.filter((r): r is string => typeof r === 'string') : Object.keys(props);
      const out: Record<string, unknown> = {};
      for (const k of required) out[k] = schemaInstance(props[k], k, depth + 1);
      return out;
    }
  }
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

function chosenTool(body: Record<string, unknown>, lastUser: string): FunctionTool | undefined {
  const tools = functionTools(body.tools);
  if (tools.length === 0) return undefined;
  const choice = body.tool_choice;
  if (choice === 'none') return undefined;
  if (choice === 'required') return tools[0];
  if (isRecord(choice) && isRecord(choice.function) && typeof choice.function.name === 'string') {
    const name = choice.function.name;
    return tools.find((t) => t.name === name);
  }
  // A tool's result has just come back: the model answers with it rather than calling again.
  const messages = body.messages;
  if (Array.isArray(messages) && isRecord(messages[messages.length - 1]) && messages[messages.length - 1].role === 'tool') return undefined;
  const text = lastUser.toLowerCase();
  return tools.find((t) => text.includes(t.name.toLowerCase()));
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

/**
 * What a chat request's reply is when it is not prose: a tool call (its arguments fit the tool's
 * parameters), or JSON that fits the requested format. Undefined for prose.
 */
export function replyShape(body: Record<string, unknown>, lastUser: string, dialect: 'openai' | 'ollama'): ReplyShape | undefined {
  const tool = chosenTool(body, lastUser);
  if (tool !== undefined) return { tokens: jsonTokens(schemaInstance(tool.parameters)), toolCall: { name: tool.name } };
  const schema = outputSchema(body, dialect);
  return schema === undefined ? undefined : { tokens: jsonTokens(schemaInstance(schema)) };
}
