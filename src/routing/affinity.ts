// The affinity key of a chat request: a hash of its opening messages (system prompt and first
// user message), which every later turn of the same conversation repeats. Engines with prefix
// caching (vLLM, SGLang, llama.cpp) answer those turns faster on the backend that saw them.

import { createHash } from 'node:crypto';
import type { JsonObject } from '../engines/types.ts';

/** At most this many leading messages are hashed (a long run of system messages is still one prefix). */
const MAX_OPENING = 4;

export function affinityKey(body: JsonObject): string | undefined {
  const messages = body.messages;
  if (!Array.isArray(messages) || messages.length === 0) return undefined;
  const h = createHash('sha256');
  h.update(typeof body.model === 'string' ? body.model : '');
  // Up to and including the first user message: the part every turn of the conversation repeats
  // (the first turn ends there; later turns append the answer and the next question).
  for (const m of messages.slice(0, MAX_OPENING)) {
    const o = m as { role?: unknown; content?: unknown } | null;
    h.update('\0');
    h.update(typeof o?.role === 'string' ? o.role : '');
    h.update('\0');
    h.update(typeof o?.content === 'string' ? o.content : JSON.stringify(o?.content ?? null));
    if (o?.role === 'user') break;
  }
  return h.digest('base64url').slice(0, 22);
}
