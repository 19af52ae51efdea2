// What makes two requests the same for the response cache: the route they resolve to (so a role
// and its aliases share entries), what that route runs (a reload that gives a role another
// model starts it afresh), the caller when entries are kept per key, and the request body with
// its fields written in one order. The model name is left out (it is the route), and so are
// the fields that change nothing in the answer: who asks (`user`, `safety_identifier`), labels
// (`metadata`), OpenAI's prompt-cache routing hint, and fields set to null (absent).

import { createHash } from 'node:crypto';
import { isPoolingOp, type JsonObject, type Operation } from '../engines/types.ts';
import type { CacheWhen } from '../config/types.ts';
import { canonicalObjectJson } from '../core/canonical-json.ts';

/** Bumped when what a key covers, or an entry's form, changes: old entries are then never read. */
const KEY_VERSION = 'v1';

/** Top-level fields that do not change the answer. */
const IGNORED = new Set(['model', 'user', 'safety_identifier', 'metadata', 'prompt_cache_key']);

/** Top-level fields left out of the key: those that change no answer, absent ones, and stream: false (no stream). */
const notInKey = (k: string, x: unknown): boolean => IGNORED.has(k) || x === undefined || x === null || (k === 'stream' && x !== true);

export interface KeyParts {
  /** Whose answers: `k:<key id>` per key (`k:` for the master key and anonymous callers), or `shared`. */
  scope: string;
  op: Operation;
  /** The resolved route's name. */
  route: string;
  /** What the route can run when healthy (response-cache.ts routeFingerprint). */
  salt: string;
  /** The name as asked for, on a pass-through route (a pattern sends it to the backend as it is). */
  passthrough: string | undefined;
}

/** The hex SHA-256 of everything that makes the answer: the store's key. */
export function cacheKey(parts: KeyParts, body: JsonObject): string {
  const h = createHash('sha256');
  h.update(`${KEY_VERSION}\n${parts.scope}\n${parts.op}\n${parts.route}\n${parts.salt}\n${parts.passthrough ?? ''}\n`);
  // A stream is its own entry (its bytes differ).
  h.update(canonicalObjectJson(body, notInKey));
  return h.digest('hex');
}

/**
 * Whether a request's answer would be the same when asked again: embeddings and reranking always; chat and
 * completions at temperature 0 or with a seed. A sampled answer (a chat UI's "regenerate") is
 * kept only under `when: always`.
 */
export function cacheable(op: Operation, body: JsonObject, when: CacheWhen): boolean {
  if (when === 'always' || isPoolingOp(op)) return true;
  return body.temperature === 0 || (typeof body.seed === 'number' && Number.isFinite(body.seed));
}

/** What the client's Cache-Control asks of the cache (RFC 9111 §5.2.1): look up, keep the answer, how old an entry may be. */
export interface CacheControl {
  lookup: boolean;
  store: boolean;
  /** An entry older than this is not used (max-age); undefined: any still within its ttl. */
  maxAgeMs: number | undefined;
  /** How long this request's answer is kept, when it says (LiteLLM's body `cache.ttl`); undefined: the route's ttl. */
  ttlMs?: number;
}

const DEFAULT_CONTROL: CacheControl = { lookup: true, store: true, maxAgeMs: undefined };

export function cacheControl(header: string | undefined): CacheControl {
  if (header === undefined || header === '') return DEFAULT_CONTROL;
  const c: CacheControl = { lookup: true, store: true, maxAgeMs: undefined };
  for (const part of header.toLowerCase().split(',')) {
    const d = part.trim();
    // no-store keeps nothing of this request's answer, and may still be answered from what is kept (§5.2.1.5).
    if (d === 'no-store') c.store = false;
    else if (d === 'no-cache') c.lookup = false;
    else if (d.startsWith('max-age=')) {
      const n = Number(d.slice(8).replace(/^"|"$/g, ''));
      if (Number.isInteger(n) && n >= 0) c.maxAgeMs = n * 1000;
    }
  }
  if (c.maxAgeMs === 0) c.lookup = false;
  return c;
}

/**
 * LiteLLM's per-request controls, in the body: "cache": {"no-cache": true, "no-store": true,
 * "s-maxage": seconds, "ttl": seconds}, over what the headers said. Anything else is ignored.
 */
export function bodyCacheControl(asked: unknown, base: CacheControl): CacheControl {
  if (typeof asked !== 'object' || asked === null || Array.isArray(asked)) return base;
  const a = asked as Record<string, unknown>;
  const c: CacheControl = { ...base };
  if (a['no-cache'] === true) c.lookup = false;
  if (a['no-store'] === true) c.store = false;
  const seconds = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v * 1000 : undefined);
  const maxAge = seconds(a['s-maxage']);
  if (maxAge !== undefined) {
    c.maxAgeMs = maxAge;
    if (maxAge === 0) c.lookup = false;
  }
  const ttl = seconds(a.ttl);
  if (ttl !== undefined && ttl >= 1000) c.ttlMs = ttl;
  return c;
}
