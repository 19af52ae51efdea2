// The response cache in Redis (gateway.redis), shared by every gateway instance and worker:
// one string per entry under `<prefix>:cache:<key>`, with Redis's own expiry. A lookup has the
// shared connection's short deadline; a Redis that is slow or gone makes misses, never errors.

import { script, type SharedRedis } from '../limits/redis-client.ts';
import { decodeEntry, encodeEntry, type CacheEntry, type CacheStore } from './entry.ts';

const GET = script("return redis.call('GET', KEYS[1])");
const SET = script("redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1");
/** One SCAN step over the cache's keys, unlinking what it finds: { next cursor, keys unlinked }. */
const CLEAR_STEP = script("local r = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', 500) for _, k in ipairs(r[2]) do redis.call('UNLINK', k) end return {r[1], #r[2]}");

/**
 * Bytes of SETs under way (until answered, or their call's deadline): past it, answers are not
 * kept, so a slow Redis does not pile them up here.
 */
const MAX_PENDING_BYTES = 32 * 2 ** 20;

export class RedisStore implements CacheStore {
  readonly #redis: SharedRedis;
  #pending = 0;
  readonly #onError: (e: Error) => void;

  constructor(redis: SharedRedis, onError: (e: Error) => void) {
    this.#redis = redis;
    this.#onError = onError;
  }

  #key(key: string): string {
    return `${this.#redis.prefix}:cache:${key}`;
  }

  async get(key: string): Promise<CacheEntry | undefined> {
    if (!this.#redis.ready) return undefined;
    try {
      return decodeEntry(await this.#redis.run(GET, [this.#key(key)], []));
    } catch (e) {
      this.#onError(e as Error);
      return undefined;
    }
  }

  /**
   * Unlinks every entry (another fabric's keys under its own prefix are left alone), a SCAN step
   * at a time so that Redis is never held long; how many went.
   */
  async clear(): Promise<number> {
    const pattern = `${this.#redis.prefix}:cache:*`;
    let cursor = '0';
    let n = 0;
    do {
      const [next, count] = (await this.#redis.run(CLEAR_STEP, [], [cursor, pattern])) as [string, number];
      cursor = String(next);
      n += Number(count);
    } while (cursor !== '0');
    return n;
  }

  set(key: string, entry: CacheEntry, bytes: number, ttlMs: number): void {
    if (!this.#redis.ready || this.#pending + bytes > MAX_PENDING_BYTES) return;
    this.#pending += bytes;
    this.#redis.run(SET, [this.#key(key)], [encodeEntry(entry), Math.max(1, Math.round(ttlMs))])
      .catch((e: Error) => this.#onError(e))
      .finally(() => { this.#pending -= bytes; });
  }
}
