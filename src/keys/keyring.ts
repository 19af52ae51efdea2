// Every virtual key, in memory: a request's key is checked with one SHA-256 and one Map
// lookup, never a database read. The ring reloads from the store when the store's keys
// version changes — at once on a PostgreSQL NOTIFY, else at the next poll (sync_interval) —
// so a key revoked on any instance stops working everywhere within that bound; on the
// instance that revoked it, at once. Expiry is checked against the clock on every request.

import type { Logger } from '../core/log.ts';
import { keyStatus } from './admin.ts';
import { FabricError } from '../core/errors.ts';
import { Coalescer } from '../core/coalesce.ts';
import type { KeyRecord, Store } from '../store/types.ts';
import { hashKey } from './token.ts';

export interface KeyRingOptions {
  /** How often the keys version is polled. */
  syncIntervalMs: number;
  log: Logger;
  now?: () => number;
}

/** Unknown hashes remembered this long, so garbage keys do not each cost a database read. */
const NEGATIVE_TTL_MS = 5_000;
const NEGATIVE_MAX = 10_000;

export class KeyRing {
  readonly #store: Store;
  readonly #opts: KeyRingOptions;
  readonly #now: () => number;
  #byHash = new Map<string, KeyRecord>();
  #byId = new Map<string, KeyRecord>();
  readonly #unknown = new Map<string, number>();
  readonly #pending = new Map<string, Promise<KeyRecord | undefined>>();
  #version = -1;
  /** Keys put while a reload runs: what it read may be older. */
  #putMeanwhile: Map<string, KeyRecord> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #unwatch: (() => void) | undefined;

  constructor(store: Store, opts: KeyRingOptions) {
    this.#store = store;
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.#byId.size;
  }

  /** The names of the keys that can still be used: what per-key metric series may be kept for. */
  liveNames(now: number = this.#now()): Set<string> {
    const names = new Set<string>();
    for (const k of this.#byId.values()) if (keyStatus(k, now) === 'active') names.add(k.name);
    return names;
  }

  async start(): Promise<void> {
    await this.sync();
    this.#arm(this.#opts.syncIntervalMs);
    this.#unwatch = this.#store.watchKeys?.(() => { void this.sync(); });
  }

  #arm(ms: number): void {
    clearInterval(this.#timer);
    this.#timer = setInterval(() => { void this.sync(); }, ms);
    this.#timer.unref();
  }

  /** A reload's new sync_interval: the poll is re-armed with it (if started; a stopped ring stays stopped). */
  setSyncInterval(ms: number): void {
    if (this.#timer !== undefined) this.#arm(ms);
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#unwatch?.();
    this.#unwatch = undefined;
  }

  /** Reloads every key if the store's keys version moved. Concurrent calls coalesce; one during a reload runs after it. */
  sync(): Promise<void> {
    return this.#syncer.run();
  }

  readonly #syncer = new Coalescer(async () => {
    const meanwhile = new Map<string, KeyRecord>();
    this.#putMeanwhile = meanwhile;
    try {
      const v = await this.#store.keysVersion();
      if (v !== this.#version) {
        const all = await this.#store.listKeys();
        this.#replace(all, meanwhile);
        this.#version = v;
      }
    } catch (e) {
      this.#opts.log.warn('keys: cannot reload from the store; serving the keys already loaded', { error: (e as Error).message });
    } finally {
      this.#putMeanwhile = undefined;
    }
  });


  /**
   * The keys as a reload read them, but for those changed on this instance while it ran (`put`,
   * newer by updated_at: written after the reload read the key), which it may have read before
   * the change: its older copy would undo a revocation here until the next reload. Only those:
   * a key the store has gone back on (an older gateway writing with a clock behind) is taken as
   * read.
   */
  #replace(all: KeyRecord[], meanwhile: ReadonlyMap<string, KeyRecord>): void {
    const byHash = new Map<string, KeyRecord>();
    const byId = new Map<string, KeyRecord>();
    for (const read of all) {
      const mine = meanwhile.get(read.id);
      const k = mine !== undefined && mine.updatedAt > read.updatedAt ? mine : read;
      byHash.set(k.hash, k);
      byId.set(k.id, k);
    }
    for (const k of meanwhile.values()) {
      if (byId.has(k.id)) continue;
      byHash.set(k.hash, k);
      byId.set(k.id, k);
    }
    this.#byHash = byHash;
    this.#byId = byId;
    this.#unknown.clear();
  }

  /**
   * A key changed on this instance: effective here at once, whatever the poll. A key's
   * updated_at moves on at every write (the store sees to it), so of two changes answered out of
   * the order they were written in (PostgreSQL: each on its own connection), the older is not
   * put over the newer: a revocation stays one.
   */
  put(k: KeyRecord): void {
    const old = this.#byId.get(k.id);
    if (old !== undefined && old.updatedAt > k.updatedAt) return;
    if (old !== undefined && old.hash !== k.hash) this.#byHash.delete(old.hash);
    this.#byHash.set(k.hash, k);
    this.#byId.set(k.id, k);
    this.#unknown.delete(k.hash);
    this.#putMeanwhile?.set(k.id, k);
  }

  byId(id: string): KeyRecord | undefined {
    return this.#byId.get(id);
  }

  all(): KeyRecord[] {
    return [...this.#byId.values()];
  }

  /**
   * The key a client presented, checked: a usable key, or a 401 that says why (unknown,
   * revoked, expired). A key not in memory is looked up once in the store (made on another
   * instance since the last reload); the answer may then be a promise.
   */
  verify(secret: string): KeyRecord | Promise<KeyRecord> {
    const hash = hashKey(secret);
    const k = this.#byHash.get(hash);
    if (k !== undefined) return this.#usable(k);
    const miss = this.#unknown.get(hash);
    if (miss !== undefined && miss > this.#now()) throw unknownKey();
    let p = this.#pending.get(hash);
    if (p === undefined) {
      p = this.#store.keyByHash(hash).finally(() => this.#pending.delete(hash));
      this.#pending.set(hash, p);
    }
    return p.then(
      (found) => {
        if (found === undefined) {
          if (this.#unknown.size >= NEGATIVE_MAX) this.#unknown.clear();
          this.#unknown.set(hash, this.#now() + NEGATIVE_TTL_MS);
          throw unknownKey();
        }
        this.put(found);
        return this.#usable(found);
      },
      (e: unknown) => {
        if (e instanceof FabricError) throw e;
        throw new FabricError('store_unavailable', 'cannot check this API key now: the gateway\'s database is unreachable; retry shortly', { headers: { 'retry-after': '5' }, cause: e });
      },
    );
  }

  /** For an open gateway (no master key): a key known in memory, checked; undefined for anything else. */
  verifyKnown(secret: string): KeyRecord | undefined {
    const k = this.#byHash.get(hashKey(secret));
    return k === undefined ? undefined : this.#usable(k);
  }

  #usable(k: KeyRecord): KeyRecord {
    if (k.revokedAt !== undefined) throw new FabricError('invalid_api_key', `this API key (${k.hint}, "${k.name}") has been revoked`);
    if (k.expiresAt !== undefined && k.expiresAt <= this.#now()) {
      throw new FabricError('invalid_api_key', `this API key (${k.hint}, "${k.name}") expired at ${new Date(k.expiresAt).toISOString()}`);
    }
    return k;
  }
}

function unknownKey(): FabricError {
  return new FabricError('invalid_api_key', 'Incorrect API key provided: send a gateway key as "Authorization: Bearer <key>"');
}
