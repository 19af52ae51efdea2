// A chat request's tool_choice as engines read it: the function it names, the tool that is that
// function, and the kinds an engine that reads only a function's name cannot take (Ollama's tool
// choice as the gateway translates it, llama-server's string), which it would read as "auto",
// the model then perhaps answering in prose where the client forced a call.

import { Unsupported } from '../core/attempt-error.ts';
import type { JsonObject } from './types.ts';

/** OpenAI's allowed_tools and custom-tool choices: refused, so the backend is passed over (alone, a 400 naming tool_choice). */
export function refuseToolChoiceKinds(body: JsonObject, engine: string): void {
  const choice = body.tool_choice;
  if (isObj(choice) && (choice.type === 'allowed_tools' || choice.type === 'custom')) {
    throw new Unsupported(`${engine} backends cannot take a \`tool_choice\` of type ${String(choice.type)}; name a function, or send "required"`, 'tool_choice');
  }
}

function isObj(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The function a tool_choice names ({"function": {"name": …}}), or undefined. */
export function namedFunction(choice: unknown): string | undefined {
  return isObj(choice) && isObj(choice.function) && typeof choice.function.name === 'string' ? choice.function.name : undefined;
}

/** The tools (OpenAI's {type, function: {name, …}} form) that are the function `name`. */
export function toolsNamed(tools: unknown, name: string): unknown[] {
  return Array.isArray(tools) ? tools.filter((t) => isObj(t) && isObj(t.function) && t.function.name === name) : [];
}
