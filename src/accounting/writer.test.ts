import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { SqliteStore } from '../store/sqlite.ts';
import type { Store } from '../store/types.ts';
import { silentLogger } from '../core/log.ts';
import { UsageWriter } from './writer.ts';
import { readProcStat } from '../core/proc-stat.ts';
import { StoreError, type UsageRecord } from '../store/types.ts';
import { usage } from '../../test/support/store-contract.ts';
import { tempDir } from '../../test/support/temp-dir.ts';

/** The store as the writer sees it: refusing writes and pings (a lost connection) until up(). */
function downStore(sqlite: SqliteStore): { store: SqliteStore; up: () => void } {
  let down = true;
  const store = new Proxy(sqlite, {
    get(target, prop, receiver) {
      if ((prop === 'insertUsage' || prop === 'ping') && down) return () => Promise.reject(new StoreError('connection refused'));
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  return { store, up: () => { down = false; } };
}

const rec = (i: number): UsageRecord => usage(`req_w${i}`, { ts: Date.now(), cost: 0.001 });

/** A migrated SQLite store in a fresh directory, closed and removed afterwards; `thread`: as the gateway opens it. */
async function withStore(fn: (sqlite: SqliteStore, dir: string) => Promise<void>, thread = false): Promise<void> {
  const dir = tempDir('fabric-writer-');
  const sqlite = new SqliteStore(join(dir, 'fabric.db'), { writerThread: thread });
  try {
    await sqlite.migrate();
    await fn(sqlite, dir);
  } finally {
    await sqlite.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A started writer that batches only when flushed, with 250 records queued and a count of those reported committed. */
async function queued250(store: SqliteStore): Promise<{ w: UsageWriter; reported: () => number }> {
  let reported = 0;
  const w = new UsageWriter({ store, spoolDir: undefined, batchSize: 1000, flushIntervalMs: 3_600_000, maxBuffer: 5000, log: silentLogger, onCommitted: (r) => { reported += r.length; } });
  await w.start();
  for (let i = 0; i < 250; i++) w.add(rec(i));
  return { w, reported: () => reported };
}


/** A writer on `spool`, started and flushed: what it replayed from the segments there is in the store. */
async function replayingWriter(store: Store, spool: string): Promise<UsageWriter> {
  const w = new UsageWriter({ store, spoolDir: spool, batchSize: 100, flushIntervalMs: 3_600_000, maxBuffer: 100, log: silentLogger });
  await w.start();
  await w.flush();
  return w;
}

test('a batch written in several commits: idle() resolves only once all of it is reported committed', async () => {
  await withStore(async (store) => {
    const { w, reported } = await queued250(store);
    const flushed = w.flush();
    // SQLite writes 100 rows per commit and lets the event loop run between commits.
    await new Promise((r) => setImmediate(r));
    const inStore = (await store.usageSummary({ by: 'backend' }))[0]?.requests ?? 0;
    assert.ok(inStore > 0 && inStore < 250 && reported() === 0, `mid-batch: ${inStore} rows in the store, ${reported()} reported`);
    await w.idle();
    assert.equal(reported(), 250);
    await flushed;
    await w.close();
  });
});

test('quiet(): runs once the batch in flight is committed and reported, and no batch starts until it is done', async () => {
  await withStore(async (store) => {
    const { w, reported } = await queued250(store);
    void w.flush();
    const rows = async (): Promise<number> => (await store.usageSummary({ by: 'backend' }))[0]?.requests ?? 0;
    await w.quiet(async () => {
      assert.equal(reported(), 250, 'the batch in flight was committed and reported first');
      for (let i = 250; i < 260; i++) w.add(rec(i));
      void w.flush();
      // Past the 50 ms linger, and a flush asked for outright: still nothing written.
      await new Promise((r) => setTimeout(r, 120));
      assert.equal(await rows(), 250);
      assert.equal(reported(), 250);
    });
    await w.flush();
    assert.equal(await rows(), 260, 'the flush asked for during quiet() ran after it');
    assert.equal(reported(), 260);
    await w.close();
  });
});

test('quiet(): a flush asked for while quiet() waits on the batch in flight does not start before fn has run', async () => {
  let inFlight = 0;
  const release: (() => void)[] = [];
  const store = {
    async insertUsage(recs: readonly UsageRecord[]) { inFlight++; await new Promise<void>((r) => release.push(r)); inFlight--; return recs.length; },
    async insertRequestLogs() {},
    async ping() {},
  } as unknown as SqliteStore;
  const w = new UsageWriter({ store, spoolDir: undefined, batchSize: 1000, flushIntervalMs: 3_600_000, maxBuffer: 5000, log: silentLogger });
  await w.start();
  w.add(rec(1));
  const first = w.flush();
  await new Promise((r) => setImmediate(r));
  let seen = -1;
  const q = w.quiet(async () => { seen = inFlight; await new Promise((r) => setTimeout(r, 20)); });
  w.add(rec(2));
  void w.flush(); // asked while the first batch is written: chained behind it
  await new Promise((r) => setImmediate(r));
  release.shift()!();
  await first;
  await new Promise((r) => setTimeout(r, 5));
  const second = release.shift(); // the second batch's insert, had it started
  await new Promise((r) => setTimeout(r, 30));
  second?.();
  await q;
  assert.equal(seen, 0, `fn ran with ${seen} batch(es) in flight`);
  // The deferred flush goes once quiet() is done.
  const until = Date.now() + 2000;
  while (release.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
  assert.equal(release.length, 1, 'the second batch is written after fn');
  release.shift()!();
  await w.flush();
  await w.close();
});

test('records past max_buffer while the store is down wait in the spool, and reach the store when it is back, without a restart', async () => {
  await withStore(async (sqlite, dir) => {
    const { store, up } = downStore(sqlite);
    let reported = 0;
    const w = new UsageWriter({ store, spoolDir: join(dir, 'spool'), batchSize: 100, flushIntervalMs: 5, maxBuffer: 5, log: silentLogger, onCommitted: (r) => { reported += r.length; } });
    await w.start();
    for (let i = 0; i < 20; i++) w.add(rec(i));
    assert.equal(w.queued, 5, 'memory holds max_buffer records; the other 15 are in the spool only');
    await w.flush();
    assert.equal(w.storeUp, false);
    up();
    const until = Date.now() + 5000;
    while ((await sqlite.usageSummary({ by: 'backend' }))[0]?.requests !== 20 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 20));
      await w.flush();
    }
    assert.equal((await sqlite.usageSummary({ by: 'backend' }))[0]?.requests, 20, 'all 20 are in the store');
    // The replayed segment holds the 5 records written from memory too: the store ignores them
    // (idempotent on the id), and they are reported again (the next spend sync corrects that).
    assert.ok(reported >= 20, `reported ${reported}`);
    await w.close();
    assert.deepEqual(readdirSync(join(dir, 'spool')).filter((f) => f.startsWith('usage-')), [], 'the spool is empty once all is written');
  });
});

test('group commit: the records of one turn reach the spool at the end of that turn, and whenSpooled runs only after', async () => {
  await withStore(async (store, dir) => {
    const spool = join(dir, 'spool');
    const w = new UsageWriter({ store, spoolDir: spool, batchSize: 1000, flushIntervalMs: 3_600_000, maxBuffer: 5000, log: silentLogger });
    await w.start();
    const inSpool = (): string => readdirSync(spool).filter((f) => f.endsWith('.jsonl')).map((f) => readFileSync(join(spool, f), 'utf8')).join('');
    let ran = false;
    w.whenSpooled(() => { ran = true; });
    assert.equal(ran, true, 'nothing waiting: at once');
    const seen: string[] = [];
    for (let i = 0; i < 3; i++) w.add(rec(100 + i));
    for (let i = 0; i < 3; i++) w.whenSpooled(() => { seen.push(inSpool()); });
    assert.equal(seen.length, 0, 'not within the turn that added the records');
    assert.equal(inSpool(), '');
    await new Promise((r) => setImmediate(r));
    assert.equal(seen.length, 3);
    for (const text of seen) for (let i = 0; i < 3; i++) assert.ok(text.includes(`"id":"req_w${100 + i}"`), text);
    await w.close();
  });
});

test('a spool write that fails puts the records kept only in the spool back in memory: none is lost', async () => {
  await withStore(async (sqlite, dir) => {
    const { store, up } = downStore(sqlite);
    const errors: string[] = [];
    const log = { ...silentLogger, error: (msg: string) => { errors.push(msg); } } as typeof silentLogger;
    const spool = join(dir, 'spool');
    const w = new UsageWriter({ store, spoolDir: spool, batchSize: 100, flushIntervalMs: 3_600_000, maxBuffer: 2, log });
    await w.start();
    for (let i = 0; i < 5; i++) w.add(rec(200 + i));
    assert.equal(w.queued, 2, 'memory full: three records are in the spool only');
    // The segment's descriptor goes bad under the writer (as a failing disk would make it).
    const fd = readdirSync('/proc/self/fd').map(Number).find((n) => {
      try { return readlinkSync(`/proc/self/fd/${n}`).startsWith(join(spool, 'usage-')); } catch { return false; }
    });
    assert.ok(fd !== undefined);
    // Its number now holds a read-only /dev/null: writes fail (EBADF), and the writer still owns
    // and closes the number, which no other file can take meanwhile.
    closeSync(fd);
    assert.equal(openSync('/dev/null', 'r'), fd);
    let released = false;
    w.whenSpooled(() => { released = true; });
    await new Promise((r) => setImmediate(r));
    assert.equal(released, true);
    assert.equal(w.queued, 5, 'the three spool-only records are back in memory');
    assert.ok(errors.some((e) => e.includes('cannot append to the usage spool')), errors.join('\n'));
    up();
    // close() writes out whatever is queued at once: a flush alone would wait out the backoff of
    // the 50 ms batch that may have found the store down (on a loaded machine: an hour here).
    await w.close().catch(() => {});
    assert.equal((await sqlite.usageSummary({ by: 'backend' }))[0]?.requests, 5);
  });
});

test('a record the store refuses is set aside in the spool directory (rejected.jsonl), logged, and the rest of its batch is stored', async () => {
  await withStore(async (store, dir) => {
    const errors: string[] = [];
    const log = { ...silentLogger, error: (msg: string, f?: Record<string, unknown>) => { errors.push(`${msg} ${String(f?.id)}`); } } as typeof silentLogger;
    const spool = join(dir, 'spool');
    const w = new UsageWriter({ store, spoolDir: spool, batchSize: 100, flushIntervalMs: 3_600_000, maxBuffer: 100, log });
    await w.start();
    const bad = { ...rec(301), op: null } as unknown as UsageRecord;
    for (const r of [rec(300), bad, rec(302)]) w.add(r);
    await w.flush();
    assert.equal(w.queued, 0, 'nothing left to retry');
    assert.equal((await store.usageSummary({ by: 'backend' }))[0]?.requests, 2, 'the two good records are stored');
    assert.equal(await store.usageById('req_w301'), undefined);
    const rejected = readFileSync(join(spool, 'rejected.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { id: string });
    assert.deepEqual(rejected.map((r) => r.id), ['req_w301']);
    assert.ok(errors.some((e) => e.includes('refused a usage record') && e.includes('req_w301')), errors.join('\n'));
    await w.close();
  }, true);
});

test('a batch that does not fill goes to the store within 50 ms of its first record, not at the next flush_interval', async () => {
  await withStore(async (store) => {
    let committed = 0;
    const w = new UsageWriter({ store, spoolDir: undefined, batchSize: 500, flushIntervalMs: 3_600_000, maxBuffer: 5000, log: silentLogger, onCommitted: (r) => { committed += r.length; } });
    await w.start();
    for (let i = 0; i < 3; i++) w.add(rec(1000 + i));
    const started = Date.now();
    while (committed < 3 && Date.now() - started < 2000) await new Promise((r) => setTimeout(r, 10));
    assert.equal(committed, 3, 'in the store without a flush call or interval');
    assert.equal(w.queued, 0);
    await w.close();
  });
});

test('a spool segment that cannot be opened (its directory removed, no inodes) keeps the records in memory: add() does not throw, none is lost', async () => {
  await withStore(async (store, dir) => {
    const errors: string[] = [];
    const log = { ...silentLogger, error: (msg: string) => { errors.push(msg); } } as typeof silentLogger;
    const spool = join(dir, 'spool');
    const w = new UsageWriter({ store, spoolDir: spool, batchSize: 100, flushIntervalMs: 3_600_000, maxBuffer: 2, log });
    await w.start();
    rmSync(spool, { recursive: true, force: true }); // no segment is open yet: the first add() opens one
    for (let i = 0; i < 5; i++) w.add(rec(300 + i));
    assert.equal(w.queued, 5, 'all in memory, past max_buffer: better over the limit than lost');
    assert.ok(errors.some((e) => e.includes('cannot open a usage spool segment')), errors.join('\n'));
    let released = false;
    w.whenSpooled(() => { released = true; });
    await new Promise((r) => setImmediate(r));
    assert.equal(released, true, 'answers are not held for a spool that cannot be written');
    await w.flush();
    assert.equal((await store.usageSummary({ by: 'backend' }))[0]?.requests, 5);
    await w.close().catch(() => {});
  });
});

test('spool segments of a process that is gone are replayed, a recycled pid (another start time) included; a live process\'s are left alone', { skip: process.platform !== 'linux' ? 'Linux /proc' : false }, async () => {
  await withStore(async (store, dir) => {
    const spool = join(dir, 'spool');
    mkdirSync(spool, { recursive: true });
    const parentStart = readProcStat(`/proc/${process.ppid}/stat`)!.fields[19];
    // PID 1 is alive, but not the process that wrote this (a restarted container's PID 1).
    writeFileSync(join(spool, 'usage-1-s1-17000000000000000.jsonl'), JSON.stringify(rec(400)) + '\n');
    // Our parent is alive, and is the writer of this one: its records are its own to write.
    const live = join(spool, `usage-${process.ppid}-s${parentStart}-17000000000000001.jsonl`);
    writeFileSync(live, JSON.stringify(rec(401)) + '\n');
    const w = await replayingWriter(store, spool);
    assert.notEqual(await store.usageById('req_w400'), undefined, 'replayed');
    assert.equal(await store.usageById('req_w401'), undefined, 'left to its live writer');
    assert.ok(existsSync(live));
    await w.close();
  });
});

test('a live writer in another pid namespace (a container sharing the data directory; its pid means nothing here) keeps its segments: its owner lock says it runs; once it dies they are replayed', { skip: process.platform !== 'linux' ? 'Linux' : false }, async () => {
  await withStore(async (store, dir) => {
    const spool = join(dir, 'spool');
    mkdirSync(spool, { recursive: true });
    // Another process takes an owner lock, as a gateway in another container would, and keeps it.
    const holder = spawn(process.execPath, ['--input-type=module', '-e', `
      const { OwnerLock } = await import(${JSON.stringify(new URL('./spool-owner.ts', import.meta.url).href)});
      const lock = OwnerLock.take(${JSON.stringify(spool)});
      process.stdout.write(lock.tag + '\\n');
      setInterval(() => {}, 1000);
    `], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const tag = (await new Promise<string>((resolve) => holder.stdout.once('data', (d: Buffer) => resolve(d.toString().trim()))));
      assert.match(tag, /^[0-9a-f]{12}$/);
      // Its segment names a pid that is no process here (its own namespace's), and our own pid
      // with a start time not ours (both PID 1 in two containers): the pid alone would call it dead.
      const theirs = join(spool, `usage-4194300-s1-o${tag}-17000000000000000.jsonl`);
      writeFileSync(theirs, JSON.stringify(rec(500)) + '\n');
      const mine = join(spool, `usage-${process.pid}-s1-o${tag}-17000000000000001.jsonl`);
      writeFileSync(mine, JSON.stringify(rec(501)) + '\n');
      const w = await replayingWriter(store, spool);
      assert.equal(await store.usageById('req_w500'), undefined, 'left to its live writer');
      assert.equal(await store.usageById('req_w501'), undefined, 'left to its live writer');
      assert.ok(existsSync(theirs) && existsSync(mine));
      // Its own segments carry its own tag, and its lock file is there while it runs.
      w.add(rec(502));
      await w.flush();
      await w.close();
      holder.kill('SIGKILL');
      await new Promise((r) => holder.once('exit', r));
      const next = await replayingWriter(store, spool);
      assert.notEqual(await store.usageById('req_w500'), undefined, 'replayed once its writer died');
      assert.notEqual(await store.usageById('req_w501'), undefined, 'replayed once its writer died');
      assert.deepEqual(readdirSync(spool).filter((f) => f.includes(tag)), [], 'its segments and its lock file are gone');
      await next.close();
    } finally {
      holder.kill('SIGKILL');
    }
  });
});

test('the owner lock of a writer that died with nothing to replay is removed once it is old; a fresh one is left', { skip: process.platform !== 'linux' ? 'Linux' : false }, async () => {
  await withStore(async (store, dir) => {
    const spool = join(dir, 'spool');
    mkdirSync(spool, { recursive: true });
    const takeAndDie = (): string => {
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', `
        const { OwnerLock } = await import(${JSON.stringify(new URL('./spool-owner.ts', import.meta.url).href)});
        process.stdout.write(OwnerLock.take(${JSON.stringify(spool)}).tag);
        process.exit(0);
      `], { encoding: 'utf8' });
      return r.stdout.trim();
    };
    const old = takeAndDie();
    const fresh = takeAndDie();
    const hourAgo = new Date(Date.now() - 3_600_000);
    utimesSync(join(spool, `owner-${old}.lock`), hourAgo, hourAgo);
    const w = await replayingWriter(store, spool);
    const locks = readdirSync(spool).filter((f) => f.startsWith('owner-'));
    assert.ok(!locks.includes(`owner-${old}.lock`), 'the old one is gone');
    assert.ok(locks.includes(`owner-${fresh}.lock`), 'a fresh one may be a writer about to lock it');
    await w.close();
  });
});

test('a spooled line that is JSON but no usage record (edited, corrupted) is set aside; the records around it and behind it are written', async () => {
  await withStore(async (store, dir) => {
    const spool = join(dir, 'spool');
    mkdirSync(spool, { recursive: true });
    const lines = [JSON.stringify(rec(600)), 'null', JSON.stringify({ ...rec(601), id: undefined, ie: 'req_w601' }), JSON.stringify({ ...rec(602), cost: 'free' }), JSON.stringify(rec(603))];
    writeFileSync(join(spool, 'usage-4194301-s1-17000000000000000.jsonl'), lines.join('\n') + '\n');
    writeFileSync(join(spool, 'usage-4194302-s1-17000000000000001.jsonl'), JSON.stringify(rec(604)) + '\n');
    const logged: string[] = [];
    const log = { ...silentLogger, error: (msg: string, f?: Record<string, unknown>) => { logged.push(`${msg} ${JSON.stringify(f)}`); } };
    const w = new UsageWriter({ store, spoolDir: spool, batchSize: 100, flushIntervalMs: 3_600_000, maxBuffer: 100, log });
    await w.start();
    await w.flush();
    for (const id of ['req_w600', 'req_w603', 'req_w604']) assert.notEqual(await store.usageById(id), undefined, id);
    assert.equal(w.storeUp, true, 'the store is not taken for down');
    const rejected = readFileSync(join(spool, 'rejected.jsonl'), 'utf8').trim().split('\n');
    assert.deepEqual(rejected, [lines[1], lines[2], lines[3]]);
    assert.equal(logged.length, 3);
    assert.match(logged[2]!, /no usage record.*cost is not a number/);
    assert.deepEqual(readdirSync(spool).filter((f) => f.startsWith('usage-')), [], 'both segments replayed and removed');
    await w.close();
  });
});

test('retune (a reload) applies a new batch_size and max_buffer from the next record on', async () => {
  await withStore(async (store) => {
    let committed = 0;
    const w = new UsageWriter({ store, spoolDir: undefined, batchSize: 500, flushIntervalMs: 3_600_000, maxBuffer: 5000, log: silentLogger, onCommitted: (r) => { committed += r.length; } });
    await w.start();
    w.retune({ batchSize: 3, flushIntervalMs: 1_800_000, maxBuffer: 5000, pingWhenIdle: false });
    for (let i = 0; i < 3; i++) w.add(rec(500 + i));
    // A full batch (3 now) goes on the next turn, before any 50 ms linger.
    await new Promise((r) => setImmediate(r));
    await w.idle();
    assert.equal(committed, 3);
    await w.close();
  });
});
