// The SQLite store's bulk writes (usage records, request logs, their pruning) on a thread of
// their own. node:sqlite is synchronous: on the event loop, a 500-row batch held requests up
// for a few milliseconds, and every ~2,000 rows SQLite's automatic WAL checkpoint fsync'ed the
// database inside a COMMIT, 10 to 25 ms of a stopped gateway on this machine's disk. Here the
// thread has its own connection to the same file (WAL: the main thread's reads never wait for
// it), one transaction per batch, and the checkpoints happen on it.

import { Worker } from 'node:worker_threads';
import { StoreError, type RequestLogRecord, type UsageRecord } from './types.ts';

/** What the thread does; each method of SqliteStore of the same name. */
export type WriterCall =
  | { op: 'insertUsage'; records: readonly UsageRecord[] }
  | { op: 'insertRequestLogs'; records: readonly RequestLogRecord[] }
  | { op: 'pruneRequestLogs'; before: number; maxBytes: number }
  | { op: 'rollupUsage'; before: number; maxRecords: number };

export interface WriterRequest { n: number; call: WriterCall }
export type WriterReply = { n: number; value: number } | { n: number; error: string; permanent: boolean };

/** The worker module next to this one: .ts when the sources run, .js in the build. */
const WORKER = new URL(`./sqlite-writer-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

/** How long close() lets the thread finish its batch before terminating it (the spool keeps what it had). */
const CLOSE_MS = 10_000;

/** The thread's V8 young generation: a 500-record batch is about 0.5 MB. */
const YOUNG_MB = 4;

interface Pending { resolve: (v: number) => void; reject: (e: Error) => void }

export class SqliteWriter {
  readonly #path: string;
  #worker: Worker | undefined;
  #next = 0;
  readonly #pending = new Map<number, Pending>();
  #closed = false;

  constructor(path: string) {
    this.#path = path;
  }

  call(call: WriterCall): Promise<number> {
    if (this.#closed) return Promise.reject(new StoreError('the SQLite store is closed'));
    const w = this.#worker ?? this.#start();
    const n = this.#next++;
    // Alive while it has work (a last batch at shutdown is written), never just for being there.
    if (this.#pending.size === 0) w.ref();
    return new Promise<number>((resolve, reject) => {
      this.#pending.set(n, { resolve, reject });
      try {
        w.postMessage({ n, call } satisfies WriterRequest);
      } catch (e) {
        // Not sent (a value that cannot cross threads): nothing will answer it.
        this.#pending.delete(n);
        if (this.#pending.size === 0) w.unref();
        reject(new StoreError(`cannot hand the batch to the SQLite writer thread: ${(e as Error).message}`, { permanent: true }));
      }
    });
  }

  #start(): Worker {
    // A small young generation: the thread holds one batch at a time (RSS counts it whole).
    const w = new Worker(WORKER, { workerData: { path: this.#path }, resourceLimits: { maxYoungGenerationSizeMb: YOUNG_MB } });
    w.on('message', (m: WriterReply) => {
      const p = this.#pending.get(m.n);
      if (p === undefined) return;
      this.#pending.delete(m.n);
      if (this.#pending.size === 0) w.unref();
      if ('error' in m) p.reject(new StoreError(m.error, { permanent: m.permanent }));
      else p.resolve(m.value);
    });
    // A thread that fails to start or dies fails its calls as a lost connection would (the
    // writer retries them); the next call starts a new one.
    w.on('error', (e) => this.#lost(w, `SQLite writer thread failed: ${e.message}`));
    w.on('exit', (code) => this.#lost(w, `SQLite writer thread exited (code ${code})`));
    this.#worker = w;
    return w;
  }

  #lost(w: Worker, why: string): void {
    if (this.#worker !== w) return;
    this.#worker = undefined;
    const err = new StoreError(why);
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
  }

  /** Lets the calls already sent finish (at most CLOSE_MS), then ends the thread; later calls fail. */
  async close(): Promise<void> {
    this.#closed = true;
    const w = this.#worker;
    if (w === undefined) return;
    const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
    w.postMessage('close');
    const t = setTimeout(() => void w.terminate(), CLOSE_MS);
    await exited;
    clearTimeout(t);
  }
}
