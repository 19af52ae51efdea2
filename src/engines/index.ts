// One adapter per engine kind. OpenAI-compatible servers share the base; Ollama speaks its
// native API.

import type { EngineKind } from '../config/types.ts';
import { OllamaEngine } from './ollama.ts';
import { OpenAICompatibleEngine } from './openai-compatible.ts';
import type { EngineAdapter } from './types.ts';

export function engineFor(kind: EngineKind): EngineAdapter {
  return kind === 'ollama' ? new OllamaEngine() : new OpenAICompatibleEngine(kind);
}
