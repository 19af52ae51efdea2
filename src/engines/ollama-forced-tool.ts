// Ollama has no tool_choice: left to itself, its model may answer in prose when the client
// forces a call (a function named in tool_choice, or "required"). So a forced call is asked of it
// as JSON output held to the call's schema (`format`, which Ollama enforces with a grammar, as
// vLLM enforces a forced call with guided decoding), and the JSON that comes back is turned into
// the tool call. The tools are still sent, so the model reads what they are for.
//
//   one function (named, or "required" of one tool): the output is its arguments;
//   "required" of several: {"name": …, "arguments": …}, one branch of the schema per tool.

import { namedFunction } from './tool-choice.ts';
import type { ForcedTool, JsonObject } from './types.ts';

function isObj(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

interface FunctionTool { name: string; parameters: unknown }

const NO_PARAMETERS = { type: 'object', properties: {} };

function functionTools(tools: unknown): FunctionTool[] {
  if (!Array.isArray(tools)) return [];
  const out: FunctionTool[] = [];
  for (const t of tools) {
    if (isObj(t) && t.type === 'function' && isObj(t.function) && typeof t.function.name === 'string') {
      out.push({ name: t.function.name, parameters: isObj(t.function.parameters) ? t.function.parameters : NO_PARAMETERS });
    }
  }
  return out;
}

/** A schema's local references ("#/$defs/x") re-rooted under `base` (a JSON pointer), so that it can sit inside another schema. */
function reroot(schema: unknown, base: string): unknown {
  if (Array.isArray(schema)) return schema.map((s) => reroot(s, base));
  if (!isObj(schema)) return schema;
  const out: JsonObject = {};
  for (const k in schema) {
    const v = schema[k];
    out[k] = k === '$ref' && typeof v === 'string' && v.startsWith('#') ? `#${base}${v.slice(1)}` : reroot(v, base);
  }
  return out;
}

/** The call a chat request forces, and the JSON schema its answer is held to; undefined when it forces none. */
export function forcedTool(body: JsonObject): { forced: ForcedTool; schema: unknown } | undefined {
  const choice = body.tool_choice;
  const tools = functionTools(body.tools);
  if (tools.length === 0) return undefined;
  const named = namedFunction(choice);
  if (named !== undefined) {
    const tool = tools.find((t) => t.name === named);
    return tool === undefined ? undefined : { forced: { name: tool.name }, schema: tool.parameters };
  }
  if (choice !== 'required') return undefined;
  if (tools.length === 1) return { forced: { name: tools[0]!.name }, schema: tools[0]!.parameters };
  return {
    forced: { name: undefined },
    schema: {
      anyOf: tools.map((t, i) => ({
        type: 'object',
        properties: { name: { type: 'string', enum: [t.name] }, arguments: reroot(t.parameters, `/anyOf/${i}/properties/arguments`) },
        required: ['name', 'arguments'],
        additionalProperties: false,
      })),
    },
  };
}

/** The start of a {"name", "arguments"} answer the grammar held to its schema: the name, then where the arguments begin. */
const NAMED_CALL = /^\s*\{\s*"name"\s*:\s*("(?:[^"\\]|\\.)*")\s*(?:,\s*"arguments"\s*:\s*)?/;

/**
 * The call in the JSON the engine answered (`content`): {name, arguments} with arguments as a
 * JSON string, or undefined when the answer cannot be read as one (cut short before its name).
 * Arguments cut short (max_tokens) are passed as they came, as OpenAI passes a call cut so.
 */
export function callIn(forced: ForcedTool, content: string): { name: string; arguments: string } | undefined {
  if (forced.name !== undefined) return { name: forced.name, arguments: content };
  try {
    const j: unknown = JSON.parse(content);
    return isObj(j) && typeof j.name === 'string' ? { name: j.name, arguments: JSON.stringify(j.arguments ?? {}) } : undefined;
  } catch {
    // Cut short: the name, if it came whole, and the arguments as far as they got.
    const m = NAMED_CALL.exec(content);
    if (m === null) return undefined;
    let name: unknown;
    try {
      name = JSON.parse(m[1]!);
    } catch {
      return undefined; // an escape JSON does not have: not the grammar's output
    }
    return { name: name as string, arguments: m[0].includes('"arguments"') ? content.slice(m[0].length) : '' };
  }
}
