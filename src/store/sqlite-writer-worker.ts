// The SQLite writer thread (sqlite-writer.ts): its own connection, the store's own methods,
// each batch in one transaction.

import { readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { SqliteStore } from './sqlite.ts';
import { StoreError } from './types.ts';
import type { WriterCall, WriterReply, WriterRequest } from './sqlite-writer.ts';

/**
 * How much nicer than the process this thread runs (Linux: a thread has its own nice value).
 * Its batches are background work: on a saturated core, the event loop gets about nine tenths
 * of the time against it (Linux's weights for nice 0 and 10 are 1024 and 110). (It does not make a woken event loop preempt a batch already
 * running: Linux lets the batch finish its slice whatever its nice value; gateway.realtime
 * does that, src/core/scheduling.ts.)
 */
const WRITER_NICE = 10;

function lowerPriority(): void {
  try {
    // "<pid>/task/<tid>": setpriority(2) on a thread id sets that thread's nice value alone;
    // 10 below the process's own (a gateway already run at nice 15 gets 19, not 10).
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isInteger(tid) && tid > 0) setPriority(tid, Math.min(19, getPriority(tid) + WRITER_NICE));
  } catch {
    // not Linux, or not allowed: the thread runs at the process's priority
  }
}
lowerPriority();

const port = parentPort!;
const store = new SqliteStore((workerData as { path: string }).path, { rowsPerTransaction: Infinity });

function run(c: WriterCall): Promise<number | void> {
  switch (c.op) {
    case 'insertUsage': return store.insertUsage(c.records);
    case 'insertRequestLogs': return store.insertRequestLogs(c.records);
    case 'pruneRequestLogs': return store.pruneRequestLogs(c.before, c.maxBytes);
    case 'rollupUsage': return store.rollupUsage(c.before, c.maxRecords);
  }
}

port.on('message', (m: WriterRequest | 'close') => {
  if (m === 'close') {
    void store.close().then(() => port.close());
    return;
  }
  run(m.call).then(
    (v) => port.postMessage({ n: m.n, value: typeof v === 'number' ? v : 0 } satisfies WriterReply),
    (e: unknown) => port.postMessage({
      n: m.n, error: (e as Error)?.message ?? String(e), permanent: e instanceof StoreError && e.permanent,
    } satisfies WriterReply),
  );
});
