// The output items the gateway returned lately, so that a later request may name them by id
// (`{"type": "item_reference", "id": "msg_…"}`) instead of sending them again: what the Vercel
// AI SDK does with earlier assistant replies unless told `store: false`. Not OpenAI's stored
// responses: a bounded memory of this process, an hour long; each key sees only the items
// returned to it, and item ids are random (response.ts), known only to whom they were given.

import type { JsonObject } from '../../engines/types.ts';

const TTL_MS = 3_600_000;
const MAX_ITEMS = 10_000;
/** About the text the items hold (their JSON's bytes), so that long answers cannot fill memory. */
const MAX_BYTES = 16 * 1024 * 1024;

interface Entry { owner: string; item: JsonObject; size: number; at: number }

export class RecentItems {
  readonly #items = new Map<string, Entry>();
  #bytes = 0;
  readonly #ttlMs: number;
  readonly #maxItems: number;
  readonly #maxBytes: number;

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
      const size = Buffer.byteLength(JSON.stringify(item));
      if (size > this.#maxBytes) continue;
      this.#drop(item.id);
      this.#items.set(item.id, { owner, item, size, at: now });
      this.#bytes += size;
    }
    // Oldest first: a Map keeps its insertion order.
    for (const [id, e] of this.#items) {
      if (this.#items.size <= this.#maxItems && this.#bytes <= this.#maxBytes && now - e.at < this.#ttlMs) break;
      this.#drop(id);
    }
  }

  /** The item and its size (its JSON's bytes), when it was returned to this owner within the hour. */
  recall(owner: string, id: string, now = Date.now()): { item: JsonObject; size: number } | undefined {
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
