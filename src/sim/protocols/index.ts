// The protocols an engine can speak, by name.

import type { ProtocolFactory } from '../protocol.ts';
import type { SimProtocol } from '../types.ts';
import { createLlamacpp } from './llamacpp.ts';
import { createOllama } from './ollama.ts';
import { createOpenai } from './openai.ts';
import { createVllm } from './vllm.ts';

export const PROTOCOLS: Readonly<Record<SimProtocol, ProtocolFactory>> = {
  vllm: createVllm,
  ollama: createOllama,
  llamacpp: createLlamacpp,
  openai: createOpenai,
};
