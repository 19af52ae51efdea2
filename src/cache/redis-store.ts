// The response cache in Redis (gateway.redis), shared by every gateway instance and worker:
// one string per entry under `<prefix>:cache:<key>`, with Redis's own expiry. A lookup has the
// shared connection's short deadline; a Redis that is slow or gone makes misses, never errors.

import { script, type SharedRedis } from '../limits/redis-client.ts';
import { decodeEntry, encodeEntry, type CacheEntry, type CacheStore } from './entry.ts';

const GET = script("return redis.call('GET', KEYS[1])");
const SET = script("redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1");

export class RedisStore implements CacheStore {
  readonly #redis: SharedRedis;
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

  set(key: string, entry: CacheEntry, _bytes: number, ttlMs: number): void {
    if (!this.#redis.ready) return;
    this.#redis.run(SET, [this.#key(key)], [encodeEntry(entry), Math.max(1, Math.round(ttlMs))]).catch((e: Error) => this.#onError(e));
  }
}
