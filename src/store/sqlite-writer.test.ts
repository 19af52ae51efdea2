import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
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

// The sqlite3 shell (Debian's, SQLite 3.40) deletes the WAL of a database it takes itself to be
// the last user of; .ci/run installs it, and under CI=true its absence is a failure.
const hasSqlite3 = spawnSync('sqlite3', ['--version'], { encoding: 'utf8' }).status === 0;

test('the sqlite3 shell opening and closing the database leaves this process\'s WAL alone (its writer thread does not drop the process\'s locks)', {
  skip: process.platform !== 'linux' ? 'Linux: /proc/self/fd' : hasSqlite3 || process.env.CI === 'true' ? false : 'the sqlite3 shell is not on this machine',
}, async () => {
  assert.ok(hasSqlite3, 'sqlite3 is missing (CI=true: .ci/run installs it)');
  const root = tempDir('fabric-locks-');
  const path = join(root, 'fabric.db');
  const store = new SqliteStore(path, { writerThread: true });
  /** Files of the database this process has open that were deleted under it. */
  const deleted = (): string[] => readdirSync('/proc/self/fd').map((fd) => { try { return readlinkSync(`/proc/self/fd/${fd}`); } catch { return ''; } })
    .filter((l) => l.startsWith(path) && l.endsWith('(deleted)'));
  try {
    await store.migrate();
    assert.equal(await store.insertUsage([usage('req_lock1')]), 1, 'the writer thread has the database open');
    // What an operator or a backup script does: open, read, close.
    const other = spawnSync('sqlite3', [path, 'select count(*) from fabric_usage;'], { encoding: 'utf8' });
    assert.equal(other.status, 0, other.stderr);
    assert.equal(other.stdout.trim(), '1');
    assert.deepEqual(deleted(), [], 'the WAL and SHM files are still the ones in use');
    assert.ok(existsSync(`${path}-wal`));
    assert.equal(await store.insertUsage([usage('req_lock2')]), 1);
    // Another connection sees what was written after the shell left.
    const seen = spawnSync('sqlite3', [path, "select id from fabric_usage where id = 'req_lock2';"], { encoding: 'utf8' });
    assert.equal(seen.stdout.trim(), 'req_lock2');
  } finally {
    await store.close();
  }
});

test('a new database another process holds locked a moment (a second worker opening it at once) is waited for, not refused as "database is locked"', {
  skip: hasSqlite3 || process.env.CI === 'true' ? false : 'the sqlite3 shell is not on this machine',
}, async () => {
  assert.ok(hasSqlite3, 'sqlite3 is missing (CI=true: .ci/run installs it)');
  const path = join(tempDir('fabric-busy-'), 'fabric.db');
  // A database not yet in WAL mode, as another worker has just made it.
  const first = new DatabaseSync(path);
  first.exec('CREATE TABLE t (x)');
  first.close();
  // The shell takes the write lock and holds it for 0.4 s; it says so once it has it.
  const holder = spawn('sqlite3', [path], { stdio: ['pipe', 'pipe', 'pipe'] });
  let err = '';
  holder.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  const locked = new Promise<void>((resolve) => holder.stdout.on('data', (d: Buffer) => { if (d.toString().includes('locked')) resolve(); }));
  holder.stdin.end('BEGIN EXCLUSIVE;\nINSERT INTO t VALUES (1);\n.print locked\n.shell sleep 0.4\nCOMMIT;\n');
  await Promise.race([locked, new Promise((r) => setTimeout(r, 5000))]);
  assert.ok(existsSync(`${path}-journal`), `the shell holds its transaction: ${err}`);
  const store = new SqliteStore(path);
  try {
    await store.migrate();
    assert.equal(await store.insertUsage([usage('req_busy')]), 1);
  } finally {
    await store.close();
    holder.kill();
  }
});
