// The response cache in this process's memory: bounded in bytes, the least recently used entry
// evicted first, each entry gone at its ttl. A Map keeps insertion order, so a hit is moved to
// the end by deleting and setting it again, and the first entry is always the coldest.

import type { CacheEntry, CacheStore } from './entry.ts';

interface Held {
  entry: CacheEntry;
  bytes: number;
  expiresAt: number;
}

/** What an entry costs besides its body: the Map slot, the object and its strings' headers. */
const ENTRY_OVERHEAD = 256;

export class MemoryStore implements CacheStore {
  readonly #entries = new Map<string, Held>();
  #bytes = 0;
  maxBytes: number;
  /** Entries evicted to make room (not those that expired). */
  evictions = 0;
  readonly #now: () => number;

  constructor(maxBytes: number, now: () => number = Date.now) {
    this.maxBytes = maxBytes;
    this.#now = now;
  }

  get size(): number {
    return this.#entries.size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get(key: string): CacheEntry | undefined {
    const h = this.#entries.get(key);
    if (h === undefined) return undefined;
    this.#entries.delete(key);
    if (h.expiresAt <= this.#now()) {
      this.#bytes -= h.bytes;
      return undefined;
    }
    this.#entries.set(key, h);
    return h.entry;
  }

  set(key: string, entry: CacheEntry, bytes: number, ttlMs: number): boolean {
    const cost = bytes + key.length + ENTRY_OVERHEAD;
    if (cost > this.maxBytes) return false;
    this.delete(key);
    this.#shrinkTo(this.maxBytes - cost);
    this.#entries.set(key, { entry, bytes: cost, expiresAt: this.#now() + ttlMs });
    this.#bytes += cost;
    return true;
  }

  delete(key: string): void {
    const h = this.#entries.get(key);
    if (h === undefined) return;
    this.#entries.delete(key);
    this.#bytes -= h.bytes;
  }

  /** A reload's new max_size: entries go until the rest fit. */
  resize(maxBytes: number): void {
    this.maxBytes = maxBytes;
    this.#shrinkTo(maxBytes);
  }

  clear(): void {
    this.#entries.clear();
    this.#bytes = 0;
  }

  /** Evicts from the cold end (expired entries there go without counting as evictions) until `limit` bytes or fewer are held. */
  #shrinkTo(limit: number): void {
    const now = this.#now();
    for (const [k, h] of this.#entries) {
      if (this.#bytes <= limit) return;
      this.#entries.delete(k);
      this.#bytes -= h.bytes;
      if (h.expiresAt > now) this.evictions++;
    }
  }
}
