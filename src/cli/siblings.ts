// What the worker processes of `fabric serve --workers N` ask each other, through the primary:
// the Responses items another worker returned (an item_reference to one of them) and, for
// GET /metrics, every worker's series, so that a scrape sees the whole gateway. Only then:
// nothing crosses processes on the way of other requests.
//
//   worker → primary    { fabric: 'ask', topic, q, payload }       its own question
//   primary → workers   { fabric: 'ask', topic, q, payload }       the question, numbered anew
//   workers → primary   { fabric: 'answer', q, payload }           each one's answer
//   primary → worker    { fabric: 'answers', q, payloads }         all of them, under the asker's q

import cluster, { type Worker } from 'node:cluster';

interface Ask { fabric: 'ask'; topic: string; q: number; payload: unknown }
interface Answer { fabric: 'answer'; q: number; payload: unknown }
interface Answers { fabric: 'answers'; q: number; payloads: unknown[] }

/** How long the primary waits for the other workers; a worker waits a little longer for the primary. */
const RELAY_MS = 500;
const ASK_MS = 1_000;

const isMessage = (m: unknown): m is { fabric: string; q: number } =>
  typeof m === 'object' && m !== null && typeof (m as { fabric?: unknown }).fabric === 'string' && typeof (m as { q?: unknown }).q === 'number';

/** A send that never throws nor emits 'error' (a worker exiting while its answer is on its way). */
const ignore = (): void => {};

/** A worker's side: answers the others' questions by topic, and asks them its own. */
export class WorkerSiblings {
  readonly #handlers = new Map<string, (payload: unknown) => unknown>();
  readonly #waiting = new Map<number, (payloads: unknown[]) => void>();
  readonly #waitMs: number;
  #seq = 0;

  constructor(waitMs = ASK_MS) {
    this.#waitMs = waitMs;
    process.on('message', (m: unknown) => {
      if (!isMessage(m)) return;
      if (m.fabric === 'ask') {
        const { topic, payload } = m as Ask;
        const handler = this.#handlers.get(topic);
        let answer: unknown = null;
        try {
          answer = handler === undefined ? null : handler(payload);
        } catch {
          // A question this worker cannot answer gets no answer of its own: the asker goes on without.
        }
        if (process.connected) process.send!({ fabric: 'answer', q: m.q, payload: answer } satisfies Answer, undefined, undefined, ignore);
      } else if (m.fabric === 'answers') {
        this.#waiting.get(m.q)?.(Array.isArray((m as Answers).payloads) ? (m as Answers).payloads : []);
      }
    });
  }

  /** How this worker answers a topic (a JSON-serialisable value; null for nothing). */
  on(topic: string, handler: (payload: unknown) => unknown): void {
    this.#handlers.set(topic, handler);
  }

  /** Every other worker's answer (those that answered in time; none without a primary). */
  ask(topic: string, payload: unknown): Promise<unknown[]> {
    if (!process.connected) return Promise.resolve([]);
    const q = ++this.#seq;
    return new Promise((resolve) => {
      const done = (payloads: unknown[]): void => {
        clearTimeout(timer);
        this.#waiting.delete(q);
        resolve(payloads.filter((p) => p !== null && p !== undefined));
      };
      const timer = setTimeout(() => done([]), this.#waitMs);
      this.#waiting.set(q, done);
      process.send!({ fabric: 'ask', topic, q, payload } satisfies Ask, undefined, undefined, (e: Error | null) => { if (e) done([]); });
    });
  }
}

/** The primary's side: passes a worker's question to the others and their answers back to it. */
export function relaySiblings(waitMs = RELAY_MS): void {
  let seq = 0;
  interface Pending { asker: Worker; q: number; waiting: Set<number>; payloads: unknown[]; timer: NodeJS.Timeout }
  const pending = new Map<number, Pending>();
  const finish = (id: number): void => {
    const p = pending.get(id);
    if (p === undefined) return;
    pending.delete(id);
    clearTimeout(p.timer);
    if (p.asker.isConnected()) p.asker.send({ fabric: 'answers', q: p.q, payloads: p.payloads } satisfies Answers, undefined, undefined, ignore);
  };
  cluster.on('message', (from: Worker, m: unknown) => {
    if (!isMessage(m)) return;
    if (m.fabric === 'ask') {
      const { topic, payload } = m as Ask;
      if (typeof topic !== 'string') return;
      const others = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && w !== from && w.isConnected());
      const id = ++seq;
      pending.set(id, { asker: from, q: m.q, waiting: new Set(others.map((w) => w.id)), payloads: [], timer: setTimeout(() => finish(id), waitMs) });
      if (others.length === 0) finish(id);
      for (const w of others) w.send({ fabric: 'ask', topic, q: id, payload } satisfies Ask, undefined, undefined, ignore);
    } else if (m.fabric === 'answer') {
      const p = pending.get(m.q);
      if (p === undefined || !p.waiting.delete(from.id)) return;
      p.payloads.push((m as Answer).payload);
      if (p.waiting.size === 0) finish(m.q);
    }
  });
  // A worker that exits answers no more.
  cluster.on('exit', (w: Worker) => {
    for (const [id, p] of pending) if (p.waiting.delete(w.id) && p.waiting.size === 0) finish(id);
  });
}
