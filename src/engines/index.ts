// One adapter per engine kind. OpenAI-compatible servers share the base; Ollama speaks its
// native API.

import { ollamaNumCtx, type BackendConfig } from '../config/types.ts';
import { OllamaEngine } from './ollama.ts';
import { OpenAICompatibleEngine } from './openai-compatible.ts';
import type { EngineAdapter } from './types.ts';

export function engineFor(b: Pick<BackendConfig, 'engine' | 'contextWindow' | 'keepAliveSeconds' | 'serve'>): EngineAdapter {
  if (b.engine !== 'ollama') return new OpenAICompatibleEngine(b.engine);
  const numCtx = ollamaNumCtx(b);
  return new OllamaEngine({
    ...(numCtx === undefined ? {} : { numCtx }),
    ...(b.keepAliveSeconds === undefined ? {} : { keepAliveSeconds: b.keepAliveSeconds }),
  });
}
