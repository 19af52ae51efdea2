// tool_choice kinds an engine that reads only a function's name cannot take (Ollama's tool
// choice as the gateway translates it, llama-server's string): they would be read as "auto",
// and the model might answer in prose where the client forced a call.

import { Unsupported } from '../core/attempt-error.ts';
import type { JsonObject } from './types.ts';

/** OpenAI's allowed_tools and custom-tool choices: refused, so the backend is passed over (alone, a 400 naming tool_choice). */
export function refuseToolChoiceKinds(body: JsonObject, engine: string): void {
  const choice = body.tool_choice;
  if (typeof choice === 'object' && choice !== null && ((choice as JsonObject).type === 'allowed_tools' || (choice as JsonObject).type === 'custom')) {
    throw new Unsupported(`${engine} backends cannot take a \`tool_choice\` of type ${String((choice as JsonObject).type)}; name a function, or send "required"`, 'tool_choice');
  }
}
