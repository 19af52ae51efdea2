// The response cache in Redis (gateway.redis), shared by every gateway instance and worker:
// one string per entry under `<prefix>:cache:<key>`, with Redis's own expiry. A lookup has the
// shared connection's short deadline; a Redis that is slow or gone makes misses, never errors.
//
// The entries together are bounded by max_size, one bound for every instance, kept by the SET
// script itself (atomic in Redis) with two bookkeeping keys beside the entries: an index
// (`<prefix>:cache-index`, a sorted set of keys by when they expire, on Redis's clock) and
// their sizes (`<prefix>:cache-sizes`, a hash: each key's size, and `bytes`, their total).
// Without a bound the cache would fill the Redis that also holds rate-limit buckets and budget
// holds: at maxmemory Redis then refuses their writes (noeviction) or evicts them (allkeys-*).
// The bound needs no work on a lookup, which stays one GET. The scripts name entries' keys they
// were not passed (as the clear's SCAN does): one Redis, not a Redis Cluster, as for the limits.

import { script, type SharedRedis } from '../limits/redis-client.ts';
import { decodeEntry, encodeEntry, type CacheEntry, type CacheStore } from './entry.ts';

const GET = script("return redis.call('GET', KEYS[1])");

/**
 * What an entry costs in Redis besides its value and its key's name: the key's objects and
 * expiry, its index member and its size field. Measured on Redis 7.0 (used_memory over 20,000
 * entries): 470 to 510 bytes, and the allocator rounds a value up by up to a fifth.
 */
export const ENTRY_OVERHEAD = 512;

/**
 * Entries one SET removes at most (expired ones and evictions together), so that a call never
 * holds Redis long. Past it, the SET is not kept unless it fits already; the next SETs go on
 * from there (only a max_size made smaller by a reload, or a Redis restarted with many entries
 * expired meanwhile, needs more than a few).
 */
export const MAX_REMOVALS = 100;

/**
 * Keeps an entry within the bound. KEYS: the entry, the index, the sizes. ARGV: the value, its
 * ttl (ms), max_size, the entry's key (the index's member), the entries' key prefix, the
 * overhead per entry, the removals allowed. Returns { 1: kept, 0: not kept (no room made yet),
 * -1: larger than the bound; entries evicted for it }.
 *
 * Expired entries are found by their index score and their sizes taken off the total; then
 * entries closest to their expiry (the oldest, under one ttl) go until the new one fits. A
 * member whose key is already gone (evicted by Redis, deleted, flushed with its data) is taken
 * off when it is met, by its expiry at the latest, so the total never drifts for good. An index
 * and sizes that disagree (one of them evicted or deleted) are dropped and started afresh.
 */
const SET = script(`
local entry, index, sizes = KEYS[1], KEYS[2], KEYS[3]
local value, ttl, max, member, prefix = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5]
local cost = #value + #entry + tonumber(ARGV[6])
if cost > max then return {-1, 0} end
local room = tonumber(ARGV[7])
local n, h = redis.call('ZCARD', index), redis.call('HLEN', sizes)
if h ~= n + 1 and (h ~= 0 or n ~= 0) then redis.call('UNLINK', index, sizes) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local got = redis.call('HMGET', sizes, 'bytes', member)
local total = tonumber(got[1]) or 0
local old = tonumber(got[2])
if old then
  total = total - old
  redis.call('HDEL', sizes, member)
  redis.call('ZREM', index, member)
end
local expired = redis.call('ZRANGEBYSCORE', index, '-inf', now, 'LIMIT', 0, room)
if #expired > 0 then
  local s = redis.call('HMGET', sizes, unpack(expired))
  local keys = {}
  for i = 1, #expired do
    total = total - (tonumber(s[i]) or 0)
    keys[i] = prefix .. expired[i]
  end
  redis.call('HDEL', sizes, unpack(expired))
  redis.call('ZREM', index, unpack(expired))
  redis.call('UNLINK', unpack(keys))
  room = room - #expired
end
local evicted = 0
while total + cost > max and room > 0 do
  local p = redis.call('ZPOPMIN', index)
  if #p == 0 then total = 0; break end
  total = total - (tonumber(redis.call('HGET', sizes, p[1])) or 0)
  redis.call('HDEL', sizes, p[1])
  redis.call('UNLINK', prefix .. p[1])
  evicted = evicted + 1
  room = room - 1
end
if total + cost > max then
  if old then redis.call('UNLINK', entry) end
  redis.call('HSET', sizes, 'bytes', total)
  return {0, evicted}
end
redis.call('SET', entry, value, 'PX', ttl)
redis.call('ZADD', index, now + ttl, member)
redis.call('HSET', sizes, member, cost, 'bytes', total + cost)
return {1, evicted}
`);

/**
 * One SCAN step over the cache's keys, unlinking what it finds and taking each off the index and
 * the total: { next cursor, keys unlinked }. The first step drops the index and sizes whole, so a
 * clear leaves none behind; entries kept by others while it runs are counted afresh (and taken
 * off again if a later step unlinks them). KEYS: the index, the sizes. ARGV: the cursor, the
 * SCAN pattern, the entries' key prefix.
 */
const CLEAR_STEP = script(`
local index, sizes, prefix = KEYS[1], KEYS[2], ARGV[3]
if ARGV[1] == '0' then redis.call('UNLINK', index, sizes) end
local r = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', 500)
for _, k in ipairs(r[2]) do
  redis.call('UNLINK', k)
  local m = string.sub(k, #prefix + 1)
  local s = redis.call('HGET', sizes, m)
  if s then
    redis.call('HDEL', sizes, m)
    redis.call('ZREM', index, m)
    redis.call('HINCRBY', sizes, 'bytes', -tonumber(s))
  end
end
return {r[1], #r[2]}
`);

/**
 * Bytes of SETs under way (until answered, or their call's deadline): past it, answers are not
 * kept, so a slow Redis does not pile them up here.
 */
const MAX_PENDING_BYTES = 32 * 2 ** 20;

/** What one SET did: kept, or not (no room made yet, or larger than the bound), and entries evicted for it. */
export interface RedisSetResult {
  kept: boolean;
  evicted: number;
}

export class RedisStore implements CacheStore {
  readonly #redis: SharedRedis;
  #pending = 0;
  readonly #onError: (e: Error) => void;
  /** max_size: set from the config in force at each use, so a reload's applies at the next SET. */
  maxBytes: number;

  constructor(redis: SharedRedis, onError: (e: Error) => void, maxBytes = 64 * 2 ** 20) {
    this.#redis = redis;
    this.#onError = onError;
    this.maxBytes = maxBytes;
  }

  get #prefix(): string {
    return `${this.#redis.prefix}:cache:`;
  }

  get #index(): string {
    return `${this.#redis.prefix}:cache-index`;
  }

  get #sizes(): string {
    return `${this.#redis.prefix}:cache-sizes`;
  }

  async get(key: string): Promise<CacheEntry | undefined> {
    if (!this.#redis.ready) return undefined;
    try {
      return decodeEntry(await this.#redis.run(GET, [this.#prefix + key], []));
    } catch (e) {
      this.#onError(e as Error);
      return undefined;
    }
  }

  /**
   * Unlinks every entry (another fabric's keys under its own prefix are left alone), a SCAN step
   * at a time so that Redis is never held long, and the index and sizes with them; how many went.
   */
  async clear(): Promise<number> {
    const prefix = this.#prefix;
    const keys = [this.#index, this.#sizes];
    let cursor = '0';
    let n = 0;
    do {
      const [next, count] = (await this.#redis.run(CLEAR_STEP, keys, [cursor, `${prefix}*`, prefix])) as [string, number];
      cursor = String(next);
      n += Number(count);
    } while (cursor !== '0');
    return n;
  }

  /**
   * Sent and not waited for by the cache (a failure is reported, and the answer not kept); what
   * it did, for tests and measurements, or undefined when it was not sent or failed.
   */
  set(key: string, entry: CacheEntry, bytes: number, ttlMs: number): Promise<RedisSetResult | undefined> | undefined {
    if (!this.#redis.ready || this.#pending + bytes > MAX_PENDING_BYTES) return undefined;
    this.#pending += bytes;
    const args = [encodeEntry(entry), Math.max(1, Math.round(ttlMs)), this.maxBytes, key, this.#prefix, ENTRY_OVERHEAD, MAX_REMOVALS];
    return this.#redis.run(SET, [this.#prefix + key, this.#index, this.#sizes], args).then(
      (r) => {
        const [kept, evicted] = r as [number, number];
        return { kept: kept === 1, evicted: Number(evicted) };
      },
      (e: Error) => {
        this.#onError(e);
        return undefined;
      },
    ).finally(() => { this.#pending -= bytes; });
  }
}
