// One kept answer, as the response cache stores it in memory or in Redis.

import type { Usage } from '../engines/types.ts';

export interface CacheEntry {
  /** The answer as the client was sent it: the JSON body, or a stream's SSE text ([DONE] included). */
  body: string;
  /** The route that served it and the backend and model that made it. */
  role: string;
  backend: string;
  model: string;
  /** What making it used (every hit saves as much). */
  usage: Usage | undefined;
  /** Unix ms when it was kept. */
  storedAt: number;
  /** The answer's own `id` and `created` as the body has them: a hit gets its own in their place. */
  id?: string;
  created?: number;
}

/**
 * Where entries live: this process's memory, or Redis. A get that fails is a miss, a set that
 * fails is forgotten. What a set says: whether the entry was kept (Redis: once it answers; an
 * entry over the bound, or a Redis down or refusing, is not).
 */
export interface CacheStore {
  get(key: string): CacheEntry | undefined | Promise<CacheEntry | undefined>;
  set(key: string, entry: CacheEntry, bytes: number, ttlMs: number): boolean | Promise<{ kept: boolean } | undefined> | undefined;
}

/** The entry as Redis keeps it: one JSON text. */
export function encodeEntry(e: CacheEntry): string {
  return JSON.stringify(e);
}

/** An entry read back, or undefined when it is not one (another program's value, an older form). */
export function decodeEntry(text: unknown): CacheEntry | undefined {
  if (typeof text !== 'string') return undefined;
  let e: Partial<CacheEntry>;
  try {
    e = JSON.parse(text) as Partial<CacheEntry>;
  } catch {
    return undefined;
  }
  if (typeof e !== 'object' || e === null || typeof e.body !== 'string' || typeof e.role !== 'string' || typeof e.backend !== 'string'
    || typeof e.model !== 'string' || typeof e.storedAt !== 'number') return undefined;
  const u = e.usage;
  const usage = typeof u === 'object' && u !== null && typeof u.prompt_tokens === 'number' && typeof u.completion_tokens === 'number'
    ? { prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens, total_tokens: typeof u.total_tokens === 'number' ? u.total_tokens : u.prompt_tokens + u.completion_tokens }
    : undefined;
  return {
    body: e.body, role: e.role, backend: e.backend, model: e.model, usage, storedAt: e.storedAt,
    ...(typeof e.id === 'string' ? { id: e.id } : {}), ...(typeof e.created === 'number' ? { created: e.created } : {}),
  };
}

/** The answer's `id` and `created`, from its first bytes (a whole answer's, or a stream's first chunk's). */
export function answerIds(body: string): { id?: string; created?: number } {
  const head = body.slice(0, 600);
  const id = /"id":"([A-Za-z0-9_.:-]{1,200})"/.exec(head)?.[1];
  const created = /"created":(\d{1,12})[,}]/.exec(head)?.[1];
  return { ...(id === undefined ? {} : { id }), ...(created === undefined ? {} : { created: Number(created) }) };
}

/**
 * A kept answer as this request's own: its `id` (every chunk's, in a stream) made from the
 * gateway's request id with the answer's prefix (chatcmpl-, cmpl-), and `created` now. Clients
 * that file answers by id see two requests as two answers.
 */
export function ownAnswer(e: CacheEntry, requestId: string, nowS: number): string {
  let body = e.body;
  if (e.id !== undefined) {
    const prefix = /^[a-z]+-/.exec(e.id)?.[0] ?? '';
    body = body.replaceAll(`"id":${JSON.stringify(e.id)}`, `"id":${JSON.stringify(prefix + requestId)}`);
  }
  if (e.created !== undefined) body = body.replaceAll(`"created":${e.created}`, `"created":${nowS}`);
  return body;
}
