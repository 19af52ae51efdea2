// The SQLite writer thread (sqlite-writer.ts): its own connection, the store's own methods,
// each batch in one transaction.

import { parentPort, workerData } from 'node:worker_threads';
import { SqliteStore } from './sqlite.ts';
import { StoreError } from './types.ts';
import type { WriterCall, WriterReply, WriterRequest } from './sqlite-writer.ts';

const port = parentPort!;
const store = new SqliteStore((workerData as { path: string }).path, { rowsPerTransaction: Infinity });

function run(c: WriterCall): Promise<number | void> {
  switch (c.op) {
    case 'insertUsage': return store.insertUsage(c.records);
    case 'insertRequestLogs': return store.insertRequestLogs(c.records);
    case 'pruneRequestLogs': return store.pruneRequestLogs(c.before, c.maxBytes);
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
