import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SqliteStore } from './sqlite.ts';
import { SqliteWriter, type WriterCall } from './sqlite-writer.ts';
import { StoreError } from './types.ts';
import { readProcStat } from '../core/proc-stat.ts';
import { usage } from '../../test/support/store-contract.ts';
import { tempDir } from '../../test/support/temp-dir.ts';

/** A migrated store (to read back with) and a writer thread on the same new file; both closed and removed after. */
async function withWriter(fn: (w: SqliteWriter, store: SqliteStore) => Promise<void>): Promise<void> {
  const dir = tempDir('fabric-sqlw-');
  const path = join(dir, 'fabric.db');
  const store = new SqliteStore(path);
  const w = new SqliteWriter(path);
  try {
    await store.migrate();
    await fn(w, store);
  } finally {
    await w.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a writer thread that dies fails its pending call as a lost connection (retryable), and the next call starts a new thread', async () => {
  await withWriter(async (w, store) => {
    assert.equal(await w.call({ op: 'insertUsage', records: [usage('req_a')] }), 1);
    // A call the thread does not know makes it throw outside any handler: the thread dies.
    const err = await w.call({ op: 'explode' } as unknown as WriterCall).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof StoreError, String(err));
    assert.equal(err.permanent, false, 'retryable: the records were not at fault');
    assert.match(err.message, /SQLite writer thread/);
    assert.equal(await w.call({ op: 'insertUsage', records: [usage('req_b'), usage('req_a')] }), 1, 'a new thread took the next call');
    assert.deepEqual((await store.usageById('req_b'))?.id, 'req_b');
  });
});

test('close() lets the calls already sent finish, then ends the thread; later calls fail', async () => {
  await withWriter(async (w, store) => {
    const records = Array.from({ length: 2000 }, (_, i) => usage(`req_c${i}`));
    const inserted = w.call({ op: 'insertUsage', records });
    await w.close();
    assert.equal(await inserted, 2000);
    await assert.rejects(w.call({ op: 'insertUsage', records: [usage('req_late')] }), /closed/, 'no new thread once closed');
    assert.equal((await store.usageSummary({ by: 'backend' }))[0]?.requests, 2000);
  });
});

test('the writer thread runs at a lower priority than the event loop (nice +10 on Linux)', { skip: process.platform !== 'linux' ? 'Linux: per-thread nice values' : false }, async () => {
  /** This process's threads: name and nice value (/proc/self/task/<tid>/stat, field 19). */
  const threads = (): { name: string; nice: number }[] => readdirSync('/proc/self/task').map((tid) => {
    const st = readProcStat(`/proc/self/task/${tid}/stat`)!;
    return { name: st.comm, nice: Number(st.fields[16]) };
  });
  await withWriter(async (w) => {
    assert.equal(await w.call({ op: 'insertUsage', records: [usage('req_nice')] }), 1);
    const workers = threads().filter((t) => t.name === 'WorkerThread');
    assert.equal(workers.length, 1, JSON.stringify(threads()));
    const main = threads().find((t) => t.name !== 'WorkerThread')!.nice;
    assert.equal(workers[0]!.nice, Math.min(19, main + 10), 'ten below the process (as run, e.g. under nice -n 5)');
  });
});

test('the database, its WAL and SHM files are the owner\'s only (0600), in a directory created 0700', async () => {
  const root = tempDir('fabric-perm-');
  const path = join(root, 'data', 'fabric.db');
  const store = new SqliteStore(path, { writerThread: true });
  try {
    await store.migrate();
    assert.equal(await store.insertUsage([usage('req_perm')]), 1);
    for (const f of ['fabric.db', 'fabric.db-wal', 'fabric.db-shm']) {
      assert.equal(statSync(join(root, 'data', f)).mode & 0o777, 0o600, f);
    }
    assert.equal(statSync(join(root, 'data')).mode & 0o777, 0o700);
  } finally {
    await store.close();
    rmSync(root, { recursive: true, force: true });
  }
});
