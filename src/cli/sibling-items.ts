// Responses items across worker processes (`fabric serve --workers N`): each worker remembers
// the output items it returned (src/http/responses/items.ts), and a client's next request, on
// another connection, may land on another worker. A worker that is sent an item_reference it
// does not hold asks the primary, which asks every other worker and hands back what they hold
// of that key's. Only on such a miss: nothing crosses processes on the way of other requests.
//
//   worker → primary    { fabric: 'items.ask', q, owner, ids }    its own question
//   primary → workers   { fabric: 'items.ask', q, owner, ids }    the question, numbered anew
//   workers → primary   { fabric: 'items.found', q, items }       what each holds (maybe none)
//   primary → worker    { fabric: 'items.found', q, items }       all of it, under the asker's q

import cluster, { type Worker } from 'node:cluster';
import type { RecentItems, SharedItem, Siblings } from '../http/responses/items.ts';

interface Ask { fabric: 'items.ask'; q: number; owner: string; ids: string[] }
interface Found { fabric: 'items.found'; q: number; items: SharedItem[] }

/** How long the primary waits for the other workers; a worker waits a little longer for the primary. */
const RELAY_MS = 500;
const ASK_MS = 1_000;

function isAsk(m: unknown): m is Ask {
  const a = m as Ask;
  return typeof m === 'object' && m !== null && a.fabric === 'items.ask' && typeof a.q === 'number'
    && typeof a.owner === 'string' && Array.isArray(a.ids) && a.ids.every((id) => typeof id === 'string');
}

function isFound(m: unknown): m is Found {
  const f = m as Found;
  return typeof m === 'object' && m !== null && f.fabric === 'items.found' && typeof f.q === 'number' && Array.isArray(f.items);
}

/** A send that never throws nor emits 'error' (a worker exiting while its answer is on its way). */
const ignore = (): void => {};

/**
 * In a worker: answers the primary's questions from `items`, and is the Siblings `items` asks on
 * a miss. Set it as `items.siblings`.
 */
export function workerSiblings(items: RecentItems, waitMs = ASK_MS): Siblings {
  let seq = 0;
  const waiting = new Map<number, (found: SharedItem[]) => void>();
  process.on('message', (m: unknown) => {
    if (isAsk(m)) {
      if (process.connected) process.send!({ fabric: 'items.found', q: m.q, items: items.share(m.owner, m.ids) } satisfies Found, undefined, undefined, ignore);
    } else if (isFound(m)) {
      waiting.get(m.q)?.(m.items);
    }
  });
  return {
    ask(owner, ids) {
      if (!process.connected) return Promise.resolve([]);
      const q = ++seq;
      return new Promise((resolve) => {
        const done = (found: SharedItem[]): void => {
          clearTimeout(timer);
          waiting.delete(q);
          resolve(found);
        };
        const timer = setTimeout(() => done([]), waitMs);
        waiting.set(q, done);
        process.send!({ fabric: 'items.ask', q, owner, ids: [...ids] } satisfies Ask, undefined, undefined, (e: Error | null) => { if (e) done([]); });
      });
    },
  };
}

/** In the primary: passes a worker's question to the others and their answers back to it. */
export function relaySiblingItems(waitMs = RELAY_MS): void {
  let seq = 0;
  interface Pending { asker: Worker; q: number; waiting: Set<number>; items: SharedItem[]; timer: NodeJS.Timeout }
  const pending = new Map<number, Pending>();
  const finish = (id: number): void => {
    const p = pending.get(id);
    if (p === undefined) return;
    pending.delete(id);
    clearTimeout(p.timer);
    if (p.asker.isConnected()) p.asker.send({ fabric: 'items.found', q: p.q, items: p.items } satisfies Found, undefined, undefined, ignore);
  };
  cluster.on('message', (from: Worker, m: unknown) => {
    if (isAsk(m)) {
      const others = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && w !== from && w.isConnected());
      const id = ++seq;
      pending.set(id, { asker: from, q: m.q, waiting: new Set(others.map((w) => w.id)), items: [], timer: setTimeout(() => finish(id), waitMs) });
      if (others.length === 0) finish(id);
      for (const w of others) w.send({ fabric: 'items.ask', q: id, owner: m.owner, ids: m.ids } satisfies Ask, undefined, undefined, ignore);
    } else if (isFound(m)) {
      const p = pending.get(m.q);
      if (p === undefined || !p.waiting.delete(from.id)) return;
      p.items.push(...m.items);
      if (p.waiting.size === 0) finish(m.q);
    }
  });
  // A worker that exits answers no more.
  cluster.on('exit', (w: Worker) => {
    for (const [id, p] of pending) if (p.waiting.delete(w.id) && p.waiting.size === 0) finish(id);
  });
}
