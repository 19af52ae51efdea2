// The output items the gateway returned lately, so that a later request may name them by id
// (`{"type": "item_reference", "id": "msg_…"}`) instead of sending them again: what the Vercel
// AI SDK does with earlier assistant replies unless told `store: false`. Not OpenAI's stored
// responses: a bounded memory of this process, an hour long; each key sees only the items
// returned to it, and item ids are random (response.ts), known only to whom they were given.
// With several workers (node:cluster), an item another worker returned is asked of it
// (src/cli/siblings.ts) when a request names one this process does not hold.

import type { JsonObject } from '../../engines/types.ts';

const TTL_MS = 3_600_000;
const MAX_ITEMS = 10_000;
/** About the text the items hold (their JSON's bytes), so that long answers cannot fill memory. */
const MAX_BYTES = 16 * 1024 * 1024;

interface Entry { owner: string; item: JsonObject; size: number; at: number }

/** An item as one process hands it to another: when it was returned, so that it ages as it would have there. */
export interface SharedItem { id: string; item: JsonObject; size: number; at: number }

/** The other processes serving the same port, which may hold the items a request names. */
export interface Siblings {
  /** Their items of `owner` among `ids` (those they hold; none when they do not answer in time). */
  ask(owner: string, ids: readonly string[]): Promise<SharedItem[]>;
}

export class RecentItems {
  readonly #items = new Map<string, Entry>();
  #bytes = 0;
  readonly #ttlMs: number;
  readonly #maxItems: number;
  readonly #maxBytes: number;

  /** Set in a cluster worker. */
  siblings: Siblings | undefined;

  constructor(ttlMs = TTL_MS, maxItems = MAX_ITEMS, maxBytes = MAX_BYTES) {
    this.#ttlMs = ttlMs;
    this.#maxItems = maxItems;
    this.#maxBytes = maxBytes;
  }

  /** The items of a Response just returned to `owner` (a key's id; '' for the master key or an open gateway, whose callers share what they could use anyway; item ids are random). */
  remember(owner: string, items: readonly JsonObject[], now = Date.now()): void {
    for (const item of items) {
      // Items as the client got them when the response ended (cut off or failed ones too, marked
      // incomplete); never one still in progress, which a client that left would have half of.
      if (typeof item.id !== 'string' || item.status === 'in_progress') continue;
      this.#add(owner, item.id, item, Buffer.byteLength(JSON.stringify(item)), now);
    }
    this.#evict(now);
  }

  /**
   * Brings in, from the sibling processes, the items among `ids` this process does not hold for
   * `owner`. Resolves at once when it holds them all or has no siblings; an item no one holds is
   * left for the request's translation to refuse.
   */
  async gather(owner: string, ids: readonly string[], now = Date.now()): Promise<void> {
    if (this.siblings === undefined) return;
    const missing = ids.filter((id) => this.recall(owner, id, now) === undefined);
    if (missing.length === 0) return;
    for (const s of await this.siblings.ask(owner, missing)) {
      if (missing.includes(s.id) && now - s.at < this.#ttlMs) this.#add(owner, s.id, s.item, s.size, s.at);
    }
    this.#evict(now);
  }

  /** What this process holds of `owner`'s among `ids`, for a sibling that was asked for them. */
  share(owner: string, ids: readonly string[], now = Date.now()): SharedItem[] {
    const out: SharedItem[] = [];
    for (const id of ids) {
      const e = this.recall(owner, id, now);
      if (e !== undefined) out.push({ id, item: e.item, size: e.size, at: e.at });
    }
    return out;
  }

  #add(owner: string, id: string, item: JsonObject, size: number, at: number): void {
    if (size > this.#maxBytes) return;
    this.#drop(id);
    this.#items.set(id, { owner, item, size, at });
    this.#bytes += size;
  }

  #evict(now: number): void {
    // Oldest first: a Map keeps its insertion order.
    for (const [id, e] of this.#items) {
      if (this.#items.size <= this.#maxItems && this.#bytes <= this.#maxBytes && now - e.at < this.#ttlMs) break;
      this.#drop(id);
    }
  }

  /** The item and its size (its JSON's bytes), when it was returned to this owner within the hour. */
  recall(owner: string, id: string, now = Date.now()): { item: JsonObject; size: number; at: number } | undefined {
    const e = this.#items.get(id);
    if (e === undefined || e.owner !== owner || now - e.at >= this.#ttlMs) return undefined;
    return e;
  }

  get size(): number {
    return this.#items.size;
  }

  #drop(id: string): void {
    const e = this.#items.get(id);
    if (e === undefined) return;
    this.#items.delete(id);
    this.#bytes -= e.size;
  }
}
