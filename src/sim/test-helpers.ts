// Helpers for the simulator's own tests: run a fleet for one test, read streams, poll.

import { startFleet } from './fleet.ts';
import type { SimEngineSpec, SimFleet } from './fleet.ts';
import type { SimProtocol } from './types.ts';

export async function withFleet(
  specs: SimEngineSpec[],
  fn: (fleet: SimFleet) => Promise<void>,
  opts: { controlPort?: number } = {},
): Promise<void> {
  const fleet = await startFleet(specs, opts);
  try {
    await fn(fleet);
  } finally {
    await fleet.close();
  }
}

export function post(url: string, body: unknown, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal,
  });
}

export interface SseResult {
  events: Record<string, unknown>[];
  done: boolean;
}

/** Parses `data:` events; `done` says whether `data: [DONE]` ended the stream. */
export function parseSse(text: string): SseResult {
  const events: Record<string, unknown>[] = [];
  let done = false;
  for (const block of text.split('\n\n')) {
    const line = block.trim();
    if (!line.startsWith('data: ')) continue;
    const data = line.slice(6);
    if (data === '[DONE]') {
      done = true;
      continue;
    }
    events.push(JSON.parse(data) as Record<string, unknown>);
  }
  return { events, done };
}

export function parseNdjson(text: string): Record<string, unknown>[] {
  return text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
}

export async function waitFor(cond: () => boolean, timeoutMs = 2000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Little-endian float32 base64 back to numbers. */
export function decodeBase64Floats(b64: string): number[] {
  const buf = Buffer.from(b64, 'base64');
  const out: number[] = [];
  for (let i = 0; i < buf.length; i += 4) out.push(buf.readFloatLE(i));
  return out;
}

/** Narrowing accessor for JSON test data: `at(obj, 'choices', 0, 'message')`. */
export function at(v: unknown, ...path: (string | number)[]): unknown {
  let cur = v;
  for (const k of path) {
    if (typeof cur !== 'object' || cur === null) return undefined;
    cur = (cur as Record<string | number, unknown>)[k];
  }
  return cur;
}

export const FAST = { ttftMs: 0, tokensPerSecond: 1e6 } as const;

/** What each engine adds to completion_tokens for a choice that ends on EOS: vLLM counts the EOS token. */
export const EOS_TOKENS: Record<SimProtocol, number> = { vllm: 1, ollama: 0, llamacpp: 0, openai: 0 };
