// Requests and tokens per minute as token buckets: a bucket holds up to `limit` and refills
// at limit/60 s, so a key may burst to its per-minute limit and then runs at its rate. A
// request takes from all of its buckets or from none (RPM and TPM, key-wide and per role).
// Tokens are reserved before sending (prompt estimate + max_tokens) and settled after with
// the real count: the difference is given back, or owed (the bucket may go negative).
//
// LocalBuckets hold per process; RedisBuckets (same arithmetic, one Lua script, Redis's
// clock) are shared by every instance and fall back to the local ones while Redis is away.

import type { SharedRedis } from './redis-client.ts';
import { script } from './redis-client.ts';

export interface BucketTake {
  /** Identifies the bucket, e.g. k:<key id>:rpm. */
  key: string;
  /** Per minute. */
  limit: number;
  cost: number;
}

export type TakeResult = { ok: true } | { ok: false; retryAfterMs: number; index: number };

export interface RateLimiter {
  take(takes: readonly BucketTake[]): TakeResult | Promise<TakeResult>;
  /** Gives `delta` back to a bucket (negative: takes more, which may leave it owing). */
  adjust(key: string, limit: number, delta: number): void;
  close(): Promise<void>;
}

const MINUTE = 60_000;

interface State { tokens: number; ts: number; limit: number }

export class LocalBuckets implements RateLimiter {
  readonly #state = new Map<string, State>();
  readonly #now: () => number;
  readonly #sweep: NodeJS.Timeout;

  constructor(now: () => number = Date.now) {
    this.#now = now;
    // A bucket that has refilled is as good as none: forgetting it changes nothing. One that owes
    // (a request used more than it reserved) is kept until the debt is paid off: forgotten after a
    // minute, a debt of several minutes' tokens came back as a full bucket.
    this.#sweep = setInterval(() => this.sweep(), MINUTE);
    this.#sweep.unref();
  }

  /** Forgets the buckets that are full again (every minute). */
  sweep(): void {
    const now = this.#now();
    for (const [k, s] of this.#state) if (s.tokens + ((now - s.ts) * s.limit) / MINUTE >= s.limit) this.#state.delete(k);
  }

  #level(key: string, limit: number, now: number): State {
    let s = this.#state.get(key);
    if (s === undefined) {
      s = { tokens: limit, ts: now, limit };
      this.#state.set(key, s);
      return s;
    }
    s.tokens = Math.min(limit, s.tokens + ((now - s.ts) * limit) / MINUTE);
    s.ts = now;
    s.limit = limit;
    return s;
  }

  take(takes: readonly BucketTake[]): TakeResult {
    const now = this.#now();
    let worst = 0;
    let which = -1;
    for (let i = 0; i < takes.length; i++) {
      const t = takes[i]!;
      const s = this.#level(t.key, t.limit, now);
      const cost = Math.min(t.cost, t.limit);
      if (s.tokens < cost) {
        const wait = Math.ceil(((cost - s.tokens) * MINUTE) / t.limit);
        if (wait > worst) { worst = wait; which = i; }
      }
    }
    if (which >= 0) return { ok: false, retryAfterMs: worst, index: which };
    for (const t of takes) this.#state.get(t.key)!.tokens -= Math.min(t.cost, t.limit);
    return { ok: true };
  }

  adjust(key: string, limit: number, delta: number): void {
    const s = this.#level(key, limit, this.#now());
    s.tokens = Math.min(limit, s.tokens + delta);
  }

  close(): Promise<void> {
    clearInterval(this.#sweep);
    return Promise.resolve();
  }
}

const TAKE = script(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = #KEYS
local after = {}
local worst = 0
local which = 0
for i = 1, n do
  local limit = tonumber(ARGV[2 * i - 1])
  local cost = math.min(tonumber(ARGV[2 * i]), limit)
  local h = redis.call('HMGET', KEYS[i], 'tokens', 'ts')
  local tokens = tonumber(h[1])
  local ts = tonumber(h[2])
  if tokens == nil or ts == nil then tokens = limit; ts = now end
  tokens = math.min(limit, tokens + (now - ts) * limit / 60000)
  after[i] = tokens - cost
  if tokens < cost then
    local wait = math.ceil((cost - tokens) * 60000 / limit)
    if wait > worst then worst = wait; which = i end
  end
end
if which > 0 then return {1, worst, which - 1} end
for i = 1, n do
  local limit = tonumber(ARGV[2 * i - 1])
  redis.call('HSET', KEYS[i], 'tokens', tostring(after[i]), 'ts', tostring(now))
  -- Kept until it is full again: a bucket that owes is not forgotten after a minute.
  redis.call('PEXPIRE', KEYS[i], math.ceil((limit - after[i]) * 60000 / limit) + 1000)
end
return {0}
`);

const ADJUST = script(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local h = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(h[1])
local ts = tonumber(h[2])
if tokens == nil or ts == nil then tokens = limit; ts = now end
tokens = math.min(limit, math.min(limit, tokens + (now - ts) * limit / 60000) + tonumber(ARGV[2]))
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
-- Kept until it is full again: a bucket that owes is not forgotten after a minute.
redis.call('PEXPIRE', KEYS[1], math.ceil((limit - tokens) * 60000 / limit) + 1000)
return 0
`);

export class RedisBuckets implements RateLimiter {
  readonly #redis: SharedRedis;
  readonly #local: LocalBuckets;
  readonly #onFallback: (e: Error) => void;

  constructor(redis: SharedRedis, onFallback: (e: Error) => void = () => {}) {
    this.#redis = redis;
    this.#local = new LocalBuckets();
    this.#onFallback = onFallback;
  }

  #k(key: string): string {
    return `${this.#redis.prefix}:rl:${key}`;
  }

  take(takes: readonly BucketTake[]): TakeResult | Promise<TakeResult> {
    if (!this.#redis.ready) return this.#local.take(takes);
    const keys = takes.map((t) => this.#k(t.key));
    const args: number[] = [];
    for (const t of takes) args.push(t.limit, t.cost);
    return this.#redis.run(TAKE, keys, args).then(
      (r) => {
        const a = r as number[];
        return a[0] === 0 ? { ok: true as const } : { ok: false as const, retryAfterMs: Number(a[1]), index: Number(a[2]) };
      },
      (e: Error) => {
        this.#onFallback(e);
        return this.#local.take(takes);
      },
    );
  }

  adjust(key: string, limit: number, delta: number): void {
    if (delta === 0) return;
    if (!this.#redis.ready) {
      this.#local.adjust(key, limit, delta);
      return;
    }
    this.#redis.run(ADJUST, [this.#k(key)], [limit, delta]).catch((e: Error) => {
      this.#onFallback(e);
      this.#local.adjust(key, limit, delta);
    });
  }

  async close(): Promise<void> {
    await this.#local.close();
  }
}
