// The response cache (gateway.cache): an answer kept under its request's key (key.ts) is given
// again, for nothing, to the same request within its ttl. Off unless configured; then on for
// every route but the roles that turn it off. What is kept is what the client was sent: a
// whole JSON answer, or a stream's SSE text, replayed as it came. Only answers that ended well
// are kept (a stream cut short, an error, a failure drill's answer never are), and only those a
// repeat would get anyway (key.ts cacheable) unless the route says `when: always`.

import { createHash } from 'node:crypto';
import type { CacheConfig, CachePolicy } from '../config/types.ts';
import { ClientClosed, type Gateway, type Served, type StreamSink } from '../core/gateway.ts';
import type { Cancel } from '../core/upstream.ts';
import type { BackendRuntime } from '../core/backend.ts';
import type { JsonObject, Operation, Usage } from '../engines/types.ts';
import type { Logger } from '../core/log.ts';
import type { SharedRedis } from '../limits/redis-client.ts';
import type { Resolved, Route } from '../routing/table.ts';
import { keyRuleMark, type Caller } from '../routing/rules.ts';
import { bodyCacheControl, cacheable, cacheControl, cacheKey } from './key.ts';
import { answerIds, type CacheEntry, type CacheStore } from './entry.ts';
import { MemoryStore } from './memory-store.ts';
import { RedisStore } from './redis-store.ts';

export type CacheResult = 'hit' | 'miss' | 'bypass';

interface RoutePolicy extends CachePolicy {
  /** What the route runs (routeFingerprint): a reload that changes it starts afresh. */
  salt: string;
}

/**
 * Everything of the config an answer on this route may depend on: each route it can reach when
 * healthy (itself, its rules' targets, its context-window fallback; failures' fallbacks are
 * never kept) and each of their backends' engine, URL, model and window.
 */
function routeFingerprint(route: Route<BackendRuntime>): string {
  const rules = route.rules.map((r) => [
    r.target.name, r.inputTokensOver ?? '', r.inputHas?.join(',') ?? '', r.keys === undefined ? '' : [...r.keys].join('\u0001'), r.keyMetadata === undefined ? '' : JSON.stringify(r.keyMetadata),
  ].join('\u0002')).join('\u0003');
  const routes = new Set([route, ...route.rules.map((r) => r.target), ...(route.contextFallback === undefined ? [] : [route.contextFallback])]);
  // A route without rules reads as it did before rules had other conditions: its answers kept then still match.
  const text = `${rules === '' ? '' : `${rules}\u0004`}${[...routes].map((r) => `${r.name}\u0002\u0002${r.members.map((m) => {
    const c = m.config;
    return `${m.name}\u0000${c.engine}\u0000${c.url}\u0000${c.model}\u0000${c.contextWindow ?? ''}`;
  }).join('\u0001')}`).join('\u0003')}`;
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

/** A string's size in memory, at least: V8 keeps one with any character past Latin-1 at two bytes a character. */
export function heldBytes(s: string, utf8: number): number {
  return utf8 === s.length ? utf8 : Math.max(utf8, 2 * s.length);
}

/** What the cache does with one request. */
export interface CachePlan {
  key: string;
  /** The route's name, for metrics. */
  route: string;
  ttlMs: number;
  lookup: boolean;
  store: boolean;
  maxAgeMs: number | undefined;
  maxEntryBytes: number;
  /** DELETE /admin/cache since the plan was made: its answer, made before, is not kept. */
  generation: number;
  /** Set while this request leads the same ones that arrived meanwhile (lookup's `join`): gives them its answer, or nothing. */
  lead?: (e: CacheEntry | undefined) => void;
}

export interface CacheCounters {
  /** A request on a cached route: found, not found, or not looked up (sampled, no-cache, no-store). */
  result(route: string, result: CacheResult): void;
  /** An answer kept. */
  stored(route: string): void;
  /** A hit: what making its answer again would have used, and cost at its backend's prices. */
  saved(route: string, usage: Usage | undefined, usd: number): void;
}

const NO_COUNTERS: CacheCounters = { result() {}, stored() {}, saved() {} };

/** How often a failing Redis is warned of. */
const WARN_EVERY_MS = 60_000;

export class ResponseCache {
  #memory: MemoryStore | undefined;
  #redis: RedisStore | undefined;
  /** Each route's policy (null: not cached), worked out once per route: a reload makes new routes. */
  readonly #policies = new WeakMap<Route<BackendRuntime>, RoutePolicy | null>();
  readonly #log: Logger;
  /** Answers being made now, by key: the same request arriving meanwhile waits for it rather than making it again. */
  readonly #making = new Map<string, Promise<CacheEntry | undefined>>();
  /** Bumped by clear(): answers being made before it are not kept. */
  #generation = 0;
  /** Bytes streams hold for keeping now, all together (KeepingSink): bounded, as answers kept are. */
  readonly streamBudget = { held: 0, max: 0 };
  #warned = 0;
  #warnedNoRedis = false;
  counters: CacheCounters = NO_COUNTERS;

  constructor(log: Logger) {
    this.#log = log;
  }

  /** Redis from the accounting's shared connection (gateway.redis), for `store: redis`. */
  attachRedis(redis: SharedRedis): void {
    this.#redis = new RedisStore(redis, (e) => {
      const now = Date.now();
      if (now - this.#warned < WARN_EVERY_MS) return;
      this.#warned = now;
      this.#log.warn('cache: redis failed; requests are sent to backends (misses) until it answers again', { error: e.message });
    });
  }

  /** What GET /admin/cache shows: the settings in force and, for the memory store, what it holds. */
  stats(gw: Gateway): Record<string, unknown> {
    const cfg = gw.config.gateway.cache;
    if (cfg === undefined) return { enabled: false };
    const m = cfg.store === 'memory' ? this.#memory : undefined;
    return {
      enabled: true, store: cfg.store, ttl_s: cfg.ttlMs / 1000, when: cfg.when, scope: cfg.scope, max_entry_bytes: cfg.maxEntryBytes,
      ...(cfg.store === 'memory' ? { entries: m?.size ?? 0, bytes: m?.bytes ?? 0, max_size_bytes: cfg.maxSizeBytes, evictions: m?.evictions ?? 0 } : { redis: this.#redis !== undefined }),
    };
  }

  /** Forgets every answer kept (DELETE /admin/cache): this process's memory, and Redis when it is the store; how many went. */
  async clear(gw: Gateway): Promise<{ memory: number; redis: number | undefined }> {
    const memory = this.clearMemory();
    const redis = gw.config.gateway.cache?.store === 'redis' && this.#redis !== undefined ? await this.#redis.clear() : undefined;
    return { memory, redis };
  }

  /** Forgets this process's answers (and those being made now); how many went. Another worker's clear reaches here too. */
  clearMemory(): number {
    this.#generation++;
    const n = this.#memory?.size ?? 0;
    this.#memory?.clear();
    return n;
  }

  /** The memory store's entries and bytes, for metrics; undefined when none was made. */
  get memory(): MemoryStore | undefined {
    return this.#memory;
  }

  #store(cfg: CacheConfig): CacheStore {
    if (cfg.store === 'redis') {
      if (this.#redis !== undefined) {
        this.#redis.maxBytes = cfg.maxSizeBytes;
        return this.#redis;
      }
      // A reload that set gateway.redis: Redis is connected at the next start; memory until then.
      if (!this.#warnedNoRedis) {
        this.#warnedNoRedis = true;
        this.#log.warn('cache: store is redis, but this process has no Redis connection (gateway.redis takes effect at the next restart): answers are kept in memory until then');
      }
    }
    if (this.#memory === undefined) this.#memory = new MemoryStore(cfg.maxSizeBytes);
    else if (this.#memory.maxBytes !== cfg.maxSizeBytes) this.#memory.resize(cfg.maxSizeBytes);
    return this.#memory;
  }

  #policy(gw: Gateway, cfg: CacheConfig, r: Resolved<BackendRuntime>): RoutePolicy | undefined {
    const cached = this.#policies.get(r.route);
    if (cached !== undefined) return cached ?? undefined;
    const roles = gw.config.roles;
    const role = r.via === 'role' || r.via === 'alias' ? roles.get(r.route.name) : undefined;
    const own = role?.cache;
    // A backend asked for by its alias or model id: off when every role it serves is off (a
    // role turned off for privacy is not reached around); a pattern's backends keep the default.
    const memberRoles = role !== undefined || r.via === 'pattern' ? [] : [...roles.values()].filter((x) => x.backends.some((b) => r.route.members.some((m) => m.name === b)));
    const off = own === false || (memberRoles.length > 0 && memberRoles.every((x) => x.cache === false));
    const p = off ? null : { ttlMs: own?.ttlMs ?? cfg.ttlMs, when: own?.when ?? cfg.when, salt: routeFingerprint(r.route) };
    this.#policies.set(r.route, p);
    return p ?? undefined;
  }

  /**
   * What to do with a request: undefined when its route is not cached (no gateway.cache, a role
   * with cache: off, a failure drill); a plan whose lookup and store may both be off (a sampled
   * request, the client's Cache-Control) otherwise.
   */
  plan(gw: Gateway, op: Operation, body: JsonObject, key: (Caller & { id: string }) | undefined, control: string | undefined): CachePlan | undefined {
    const cfg = gw.config.gateway.cache;
    if (cfg === undefined) return undefined;
    this.streamBudget.max = cfg.maxSizeBytes;
    const model = body.model as string;
    const r = gw.table.resolve(model);
    if (r === undefined) return undefined;
    const policy = this.#policy(gw, cfg, r);
    if (policy === undefined) return undefined;
    // LiteLLM's clients ask in the body ("cache": {"no-cache": true}): taken, and not sent on.
    const asked = body.cache;
    if (asked !== undefined) delete body.cache;
    const c = asked === undefined ? cacheControl(control) : bodyCacheControl(asked, cacheControl(control));
    const ok = cacheable(op, body, policy.when);
    // Each key apart (the master key and anonymous callers together), or everyone's: a scope
    // changed by a reload never lets one caller's answers reach another.
    const scope = cfg.scope === 'key' ? `k:${key?.id ?? ''}` : 'shared';
    let hash = '';
    if (ok && (c.lookup || c.store)) {
      // Rules on who calls send the same body to different routes for different keys.
      const mark = r.route.rules.length === 0 ? '' : keyRuleMark(r.route.rules, key);
      hash = cacheKey({ scope, op, route: r.route.name, salt: mark === '' ? policy.salt : `${policy.salt}:${mark}`, passthrough: r.route.passthrough ? model : undefined }, body);
    }
    return {
      key: hash, route: r.route.name, ttlMs: c.ttlMs ?? policy.ttlMs, lookup: ok && c.lookup, store: ok && c.store, maxAgeMs: c.maxAgeMs, maxEntryBytes: cfg.maxEntryBytes,
      generation: this.#generation,
    };
  }

  /**
   * The entry kept for the plan's request, if any and young enough; counts the result. With
   * `join` (a whole answer, not a stream), a miss whose answer another request is making now
   * waits for it (an app's retry while its first try still runs on a slow GPU is not generated
   * twice); else this request leads, and its caller must end with keep() or release().
   */
  lookup(gw: Gateway, plan: CachePlan, join: Cancel | undefined): CacheEntry | undefined | Promise<CacheEntry | undefined> {
    if (!plan.lookup) {
      this.counters.result(plan.route, 'bypass');
      return undefined;
    }
    const store = this.#store(gw.config.gateway.cache!);
    const got = store.get(plan.key);
    return got instanceof Promise ? got.then((e) => this.#judge(plan, e, join)) : this.#judge(plan, got, join);
  }

  #judge(plan: CachePlan, e: CacheEntry | undefined, join: Cancel | undefined): CacheEntry | undefined | Promise<CacheEntry | undefined> {
    const hit = e !== undefined && (plan.maxAgeMs === undefined || Date.now() - e.storedAt <= plan.maxAgeMs) ? e : undefined;
    if (hit === undefined && join !== undefined) {
      const making = this.#making.get(plan.key);
      if (making !== undefined) return this.#wait(plan, making, join);
      let settle!: (e: CacheEntry | undefined) => void;
      const p = new Promise<CacheEntry | undefined>((resolve) => { settle = resolve; });
      this.#making.set(plan.key, p);
      plan.lead = (m) => {
        if (this.#making.get(plan.key) === p) this.#making.delete(plan.key);
        settle(m);
      };
    }
    this.counters.result(plan.route, hit === undefined ? 'miss' : 'hit');
    return hit;
  }

  /** Waits for the answer another request is making, unless this one's client leaves first (a 499, as if it had been sent). */
  #wait(plan: CachePlan, making: Promise<CacheEntry | undefined>, cancel: Cancel): Promise<CacheEntry | undefined> {
    const gone = (): ClientClosed => new ClientClosed(undefined, []);
    if (cancel.aborted) return Promise.reject(gone());
    return new Promise((resolve, reject) => {
      cancel.onAbort(() => reject(gone()));
      void making.then((m) => {
        cancel.clear();
        if (cancel.aborted) return reject(gone());
        this.counters.result(plan.route, m === undefined ? 'miss' : 'hit');
        resolve(m);
      });
    });
  }

  /** The request that led others ended without an answer to give them (an error, its client gone): they make their own. */
  release(plan: CachePlan): void {
    const lead = plan.lead;
    plan.lead = undefined;
    lead?.(undefined);
  }

  /**
   * An answer that ended well (the caller judges that): kept unless it is larger than max_entry,
   * and given to the requests that waited for it either way.
   */
  keep(gw: Gateway, plan: CachePlan, served: Served, body: string, bytes = Buffer.byteLength(body)): void {
    const entry: CacheEntry = { body, role: served.role, backend: served.backend, model: served.model, usage: served.usage, storedAt: Date.now(), ...answerIds(body) };
    const lead = plan.lead;
    plan.lead = undefined;
    lead?.(entry);
    const cfg = gw.config.gateway.cache;
    if (!plan.store || bytes > plan.maxEntryBytes || cfg === undefined || plan.generation !== this.#generation) return;
    // Only what a healthy fabric answers: not a fallback's answer for a backend that failed or
    // a spent budget (the route's own would be given again once it is back), nor one from a
    // role whose answers are never kept. A rule's target, chosen by the prompt, is kept.
    if (served.budgets !== undefined || served.failures.some((f) => f.role !== served.role)) return;
    if (served.role !== plan.route && gw.config.roles.get(served.role)?.cache === false) return;
    // Counted once kept: Redis may not keep it (no room within its removals, down, refusing).
    const kept = this.#store(cfg).set(plan.key, entry, heldBytes(body, bytes), plan.ttlMs);
    const route = plan.route;
    if (kept === true) this.counters.stored(route);
    else if (kept instanceof Promise) void kept.then((r) => { if (r?.kept === true) this.counters.stored(route); });
  }
}

/**
 * Passes a stream through and keeps its bytes, up to `max`: what the cache stores once the
 * stream has ended well. Chunks are kept as they come (Node never reuses a read's buffer) and
 * joined once, at the end.
 */
export class KeepingSink implements StreamSink {
  readonly #inner: StreamSink;
  readonly #max: number;
  /** What every stream being kept holds together, and its bound: past it, this one keeps nothing. */
  readonly #budget: { held: number; max: number };
  #chunks: Buffer[] | undefined = [];
  #bytes = 0;

  constructor(inner: StreamSink, max: number, budget: { held: number; max: number }) {
    this.#inner = inner;
    this.#max = max;
    this.#budget = budget;
  }

  #keep(data: Buffer | string): void {
    if (this.#chunks === undefined) return;
    const b = typeof data === 'string' ? Buffer.from(data) : data;
    if (this.#bytes + b.length > this.#max || this.#budget.held + b.length > this.#budget.max) return this.dispose();
    this.#bytes += b.length;
    this.#budget.held += b.length;
    this.#chunks.push(b);
  }

  /** Lets go of what it holds (the stream is over, kept or not). */
  dispose(): void {
    if (this.#chunks === undefined) return;
    this.#budget.held -= this.#bytes;
    this.#chunks = undefined;
  }

  begin(served: Served): void {
    this.#inner.begin(served);
  }

  write(data: Buffer | string): boolean {
    this.#keep(data);
    return this.#inner.write(data);
  }

  onDrain(cb: () => void): void {
    this.#inner.onDrain(cb);
  }

  end(): void {
    this.#inner.end();
  }

  /** The stream's text and its size in bytes, or undefined when it outgrew `max`. */
  kept(): { text: string; bytes: number } | undefined {
    if (this.#chunks === undefined) return undefined;
    const k = { text: Buffer.concat(this.#chunks, this.#bytes).toString('utf8'), bytes: this.#bytes };
    this.dispose();
    return k;
  }
}
