// The embedded store: one SQLite file (node:sqlite, nothing to install) in WAL mode, so
// `fabric keys` and `fabric usage` can read and write it while a gateway runs. Calls are
// synchronous under an async face; the gateway only makes them off the request path (batched
// usage writes once a second, key reloads when the keys version changes), and its bulk writes
// go to a thread of their own (`writerThread`, sqlite-writer.ts).

import { closeSync, existsSync, mkdirSync, openSync, renameSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { MIGRATIONS, MIGRATIONS_TABLE } from './migrations.ts';
import { SqliteWriter } from './sqlite-writer.ts';
import {
  FOLD_CUT, FOLD_FIRST, KEY_COLUMNS, foldSpan, USAGE_COLUMNS, applyPatch, groupExpr, keyFromRow, keyValues, meets, rollupInsert, spendSql, summarySql, usageFromRow, usageRowFromRow,
  usageValues,
} from './rows.ts';
import {
  StoreError, type KeyCondition, type KeyPatch, type KeyRecord, type RequestLogRecord, type SpendRow, type Store, type UsageQuery, type UsageRecord, type UsageRow,
} from './types.ts';

type Param = string | number | null;

/** Numbered parameters: ?1, ?2… */
const SQ = (i: number): string => `?${i}`;

/** Priced spend since a time, by key and backend: answered from the partial indexes on priced rows (migrations 2 and 3). */
export const SPEND_SQL = spendSql('?1');

/** Usage rows per INSERT statement (20 columns each: far below SQLite's limit on parameters). */
const USAGE_ROWS = 100;

export interface SqliteStoreOptions {
  /**
   * Usage, request-log and prune writes on a thread with its own connection, so that neither
   * their transactions nor SQLite's checkpoint fsyncs stop the event loop (the gateway's
   * store). Not for ':memory:', which a second connection would not see.
   */
  writerThread?: boolean;
  /**
   * Usage rows per transaction. On the event loop, USAGE_ROWS, with a turn of the loop between
   * transactions; the writer thread takes a batch in one (fewer pages written per row).
   */
  rowsPerTransaction?: number;
}

export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  readonly where: string;
  readonly #db: DatabaseSync;
  /** Prepared multi-row usage inserts, by row count (USAGE_ROWS, and whatever remainders batches leave). */
  readonly #usageInserts = new Map<number, StatementSync>();
  readonly #writer: SqliteWriter | undefined;
  readonly #txRows: number;
  /** Set by migrate() when it copied the database first (`error`: it could not). */
  migrationBackup: { file: string; error?: string } | undefined;

  constructor(path: string, opts: SqliteStoreOptions = {}) {
    this.where = path;
    this.#writer = opts.writerThread === true && path !== ':memory:' ? new SqliteWriter(path) : undefined;
    this.#txRows = opts.rowsPerTransaction ?? USAGE_ROWS;
    if (path !== ':memory:') {
      // Keys' metadata, usage and (with request_log) prompts: the owner's only. SQLite gives the
      // -wal and -shm files the database file's mode, so creating it 0600 covers all three.
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      // Created here only when it does not exist ('wx'): a file this process already has open
      // through SQLite must never be opened and closed beside it, since closing any descriptor
      // of a file drops every POSIX lock the process holds on it. Another client (the sqlite3
      // shell, a backup) would then take itself for the last connection and delete the WAL
      // under this one: writes lost, revocations undone.
      try {
        closeSync(openSync(path, 'wx', 0o600));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
    }
    try {
      this.#db = new DatabaseSync(path);
      // WAL: readers (the CLI) never block the gateway's writer. FULL sync: a commit is on disk
      // when it returns (NORMAL syncs the WAL only at checkpoints), since the spool segment
      // holding the same records is deleted once they commit, and a created key must outlive a
      // power cut. Commits are batched on the writer thread, so it costs one fsync a batch off
      // the event loop. busy_timeout rides out another process's write lock: set first, since
      // switching to WAL takes one (two workers opening a new database at once: "database is locked").
      this.#db.exec('PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;');
    } catch (e) {
      throw new StoreError(`cannot open SQLite database ${path}: ${(e as Error).message}`, { cause: e });
    }
  }

  #tx<T>(fn: () => T): T {
    this.#db.exec('BEGIN IMMEDIATE');
    try {
      const out = fn();
      this.#db.exec('COMMIT');
      return out;
    } catch (e) {
      if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
      throw e;
    }
  }

  #run<T>(what: string, fn: () => T): Promise<T> {
    try {
      return Promise.resolve(fn());
    } catch (e) {
      // SQLITE_TOOBIG, SQLITE_CONSTRAINT, SQLITE_MISMATCH: the statement is at fault, not the database.
      const code = Number((e as { errcode?: unknown }).errcode) & 0xff;
      return Promise.reject(e instanceof StoreError ? e : new StoreError(`SQLite ${what}: ${(e as Error).message}`, { cause: e, permanent: code === 18 || code === 19 || code === 20 }));
    }
  }

  #insertUsage(rows: number): StatementSync {
    let st = this.#usageInserts.get(rows);
    if (st === undefined) {
      const one = `(${USAGE_COLUMNS.map(() => '?').join(', ')})`;
      st = this.#db.prepare(`INSERT INTO fabric_usage (${USAGE_COLUMNS.join(', ')}) VALUES ${new Array(rows).fill(one).join(', ')} ON CONFLICT (id) DO NOTHING`);
      this.#usageInserts.set(rows, st);
    }
    return st;
  }

  migrate(): Promise<number[]> {
    return this.#run('migration', () => {
      this.#db.exec(MIGRATIONS_TABLE.sqlite);
      const had = new Set(this.#db.prepare('SELECT version FROM fabric_migrations').all().map((r) => Number(r.version)));
      const next = MIGRATIONS.find((m) => !had.has(m.version));
      if (next !== undefined && had.size > 0 && this.where !== ':memory:') this.#backupBefore(next.version);
      return this.#tx(() => {
        const done = new Set(this.#db.prepare('SELECT version FROM fabric_migrations').all().map((r) => Number(r.version)));
        const applied: number[] = [];
        for (const m of MIGRATIONS) {
          if (done.has(m.version)) continue;
          this.#db.exec(m.sqlite);
          this.#db.prepare('INSERT INTO fabric_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(m.version, m.name, Date.now());
          applied.push(m.version);
        }
        return applied;
      });
    });
  }

  /**
   * A copy of the database as it was before a schema migration (a newer gateway's first start),
   * so that going back to the older version loses nothing: once per version, by whichever
   * process migrates first. A copy that cannot be made (a full disk) is reported, not fatal:
   * the migration itself is one transaction.
   */
  #backupBefore(version: number): void {
    let file = `${this.where}.before-v${version}`;
    // Another connection holds the write lock while the copy is read, so that no other process
    // (a worker starting beside this one) migrates in the meantime: the copy is the old schema.
    // Those wait for it, then find the migration done and go on.
    const lock = new DatabaseSync(this.where);
    try {
      lock.exec('PRAGMA busy_timeout = 600000; BEGIN IMMEDIATE');
      if (lock.prepare('SELECT 1 FROM fabric_migrations WHERE version = ?').get(version) !== undefined) return;
      // A copy left by a start whose migration then failed holds older data: this one is new.
      if (existsSync(file)) file += `.${new Date().toISOString().replace(/[:.]/g, '-')}`;
      // A copy cut short (a process killed while making it) is no copy; none is being made now.
      rmSync(`${file}.partial`, { force: true });
      this.backupTo(file);
      this.migrationBackup = { file };
    } catch (e) {
      this.migrationBackup = { file, error: (e as Error).message };
    } finally {
      if (lock.isTransaction) lock.exec('ROLLBACK');
      lock.close();
    }
  }

  /**
   * A consistent copy of the whole database in `file`, a new file readable by its owner only
   * (key hashes, usage, perhaps prompts): SQLite's VACUUM INTO, which reads in one transaction
   * while the gateway goes on writing (WAL), and compacts the copy. It is written as
   * FILE.partial and renamed when whole, so `file` is never a copy cut short. Throws if `file`
   * exists, or FILE.partial does (another copy under way, or one cut short).
   */
  backupTo(file: string): void {
    if (existsSync(file)) throw Object.assign(new Error(`${file} exists`), { code: 'EEXIST' });
    const partial = `${file}.partial`;
    closeSync(openSync(partial, 'wx', 0o600));
    try {
      this.#db.prepare('VACUUM INTO ?').run(partial);
      renameSync(partial, file);
    } catch (e) {
      rmSync(partial, { force: true });
      throw e;
    }
  }

  ping(): Promise<void> {
    return this.#run('ping', () => { this.#db.prepare('SELECT 1').get(); });
  }

  #bumpKeys(): void {
    this.#db.prepare("UPDATE fabric_meta SET value = value + 1 WHERE name = 'keys_version'").run();
  }

  insertKey(k: KeyRecord): Promise<void> {
    return this.#run('insert key', () => this.#tx(() => {
      this.#db.prepare(`INSERT INTO fabric_keys (${KEY_COLUMNS.join(', ')}) VALUES (${KEY_COLUMNS.map(() => '?').join(', ')})`).run(...keyValues(k));
      this.#bumpKeys();
    }));
  }

  keyById(id: string): Promise<KeyRecord | undefined> {
    return this.#run('read key', () => {
      const r = this.#db.prepare('SELECT * FROM fabric_keys WHERE id = ?').get(id);
      return r === undefined ? undefined : keyFromRow(r);
    });
  }

  keyByHash(hash: string): Promise<KeyRecord | undefined> {
    return this.#run('read key', () => {
      const r = this.#db.prepare('SELECT * FROM fabric_keys WHERE hash = ?').get(hash);
      return r === undefined ? undefined : keyFromRow(r);
    });
  }

  listKeys(): Promise<KeyRecord[]> {
    return this.#run('list keys', () => this.#db.prepare('SELECT * FROM fabric_keys ORDER BY created_at, id').all().map(keyFromRow));
  }

  updateKey(id: string, patch: KeyPatch, expect?: KeyCondition): Promise<KeyRecord | undefined | null> {
    // BEGIN IMMEDIATE: the write lock is taken before the read, so no other process (a gateway,
    // another fabric keys) writes the key between the condition checked and the update.
    return this.#run('update key', () => this.#tx(() => {
      const r = this.#db.prepare('SELECT * FROM fabric_keys WHERE id = ?').get(id);
      if (r === undefined) return undefined;
      const current = keyFromRow(r);
      if (!meets(current, expect)) return null;
      const vals = keyValues(applyPatch(current, patch));
      const sets = KEY_COLUMNS.slice(1).map((c) => `${c} = ?`).join(', ');
      // As stored: what the caller's revision (an ETag) is made of is what the next read gives.
      const stored = this.#db.prepare(`UPDATE fabric_keys SET ${sets} WHERE id = ? RETURNING *`).get(...vals.slice(1), id)!;
      this.#bumpKeys();
      return keyFromRow(stored);
    }));
  }

  keysVersion(): Promise<number> {
    return this.#run('read keys version', () => Number(this.#db.prepare("SELECT value FROM fabric_meta WHERE name = 'keys_version'").get()!.value));
  }

  async insertUsage(records: readonly UsageRecord[]): Promise<number> {
    if (records.length === 0) return 0;
    if (this.#writer !== undefined) return this.#writer.call({ op: 'insertUsage', records });
    // On the event loop, a batch of hundreds of records goes #txRows to a transaction, with a
    // turn of the loop between them, so it never holds requests up for more than one group's
    // worth (under a millisecond here).
    let n = 0;
    for (let i = 0; i < records.length; i += this.#txRows) {
      if (i > 0) await new Promise((r) => setImmediate(r));
      const end = Math.min(records.length, i + this.#txRows);
      n += await this.#run('insert usage', () => this.#tx(() => this.#usageRows(records, i, end)));
    }
    return n;
  }

  /** Rows go USAGE_ROWS to a statement: a quarter less time per row than a statement each. */
  #usageRows(records: readonly UsageRecord[], from: number, to: number): number {
    const bool = (b: boolean): number => (b ? 1 : 0);
    let n = 0;
    for (let i = from; i < to; i += USAGE_ROWS) {
      const end = Math.min(to, i + USAGE_ROWS);
      const params: Param[] = [];
      for (let j = i; j < end; j++) for (const v of usageValues(records[j]!, bool)) params.push(v as Param);
      n += Number(this.#insertUsage(end - i).run(...params).changes);
    }
    return n;
  }


  usageSummary(q: UsageQuery): Promise<UsageRow[]> {
    return this.#run('usage report', () => {
      const { where, params } = usageWhere(q);
      const sql = summarySql(q.by, groupExpr(q.by, "strftime('%Y-%m-%d', ts / 1000, 'unixepoch')"), where);
      return this.#db.prepare(sql).all(...params).map(usageRowFromRow);
    });
  }

  usageById(id: string): Promise<UsageRecord | undefined> {
    return this.#run('read usage', () => {
      const r = this.#db.prepare('SELECT * FROM fabric_usage WHERE id = ?').get(id);
      return r === undefined ? undefined : usageFromRow(r);
    });
  }

  spendSince(since: number): Promise<SpendRow[]> {
    return this.#run('read spend', () => this.#db
      .prepare(SPEND_SQL)
      .all(since)
      .map((r) => ({ keyId: r.key_id === null ? undefined : String(r.key_id), backend: String(r.backend), cost: Number(r.cost) })));
  }

  rollupUsage(before: number, maxRecords: number): Promise<number> {
    if (this.#writer !== undefined) return this.#writer.call({ op: 'rollupUsage', before, maxRecords });
    return this.#run('fold usage', () => this.#tx(() => {
      const first = this.#db.prepare(FOLD_FIRST(SQ)).get(before)!.ts;
      if (first === null) return 0;
      const start = Number(first);
      const { day, end: dayEnd } = foldSpan(start, before);
      const cut = this.#db.prepare(FOLD_CUT(SQ)).get(start, dayEnd, maxRecords)?.ts;
      const end = cut !== undefined && Number(cut) > start ? Number(cut) : dayEnd;
      this.#db.prepare(rollupInsert('?1', 'fabric_usage WHERE ts >= ?2 AND ts < ?3')).run(day, start, end);
      return Number(this.#db.prepare('DELETE FROM fabric_usage WHERE ts >= ? AND ts < ?').run(start, end).changes);
    }));
  }

  insertRequestLogs(records: readonly RequestLogRecord[]): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    if (this.#writer !== undefined) return this.#writer.call({ op: 'insertRequestLogs', records }).then(() => undefined);
    return this.#run('insert request log', () => this.#tx(() => {
      const stmt = this.#db.prepare('INSERT INTO fabric_request_log (id, ts, key_id, status, request, response, bytes) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING');
      for (const r of records) stmt.run(r.id, r.ts, r.keyId ?? null, r.status, r.request, r.response, r.request.length + r.response.length);
    }));
  }

  requestLogs(q: { limit: number; keyId?: string; id?: string }): Promise<RequestLogRecord[]> {
    return this.#run('read request log', () => {
      const cond: string[] = [];
      const params: Param[] = [];
      if (q.id !== undefined) { cond.push('id = ?'); params.push(q.id); }
      if (q.keyId !== undefined) { cond.push('key_id = ?'); params.push(q.keyId); }
      const sql = `SELECT * FROM fabric_request_log ${cond.length === 0 ? '' : 'WHERE ' + cond.join(' AND ')} ORDER BY ts DESC, id DESC LIMIT ?`;
      return this.#db.prepare(sql).all(...params, q.limit).map((r) => ({
        id: String(r.id), ts: Number(r.ts), keyId: r.key_id === null ? undefined : String(r.key_id), status: Number(r.status),
        request: String(r.request), response: String(r.response),
      }));
    });
  }

  pruneRequestLogs(before: number, maxBytes: number): Promise<number> {
    if (this.#writer !== undefined) return this.#writer.call({ op: 'pruneRequestLogs', before, maxBytes });
    return this.#run('prune request log', () => this.#tx(() => {
      let n = Number(this.#db.prepare('DELETE FROM fabric_request_log WHERE ts < ?').run(before).changes);
      const total = Number(this.#db.prepare('SELECT COALESCE(SUM(bytes), 0) AS b FROM fabric_request_log').get()!.b);
      if (total > maxBytes) {
        // Oldest first until the rest fits: find the cut-off ts by a running sum from the newest.
        const rows = this.#db.prepare('SELECT id, bytes FROM fabric_request_log ORDER BY ts DESC, id DESC').all();
        let kept = 0;
        const del = this.#db.prepare('DELETE FROM fabric_request_log WHERE id = ?');
        for (const r of rows) {
          kept += Number(r.bytes);
          if (kept > maxBytes) { del.run(String(r.id)); n++; }
        }
      }
      return n;
    }));
  }

  async close(): Promise<void> {
    await this.#writer?.close();
    try {
      if (this.#db.isOpen) this.#db.close();
    } catch {
      // closing twice or after an error is not a failure
    }
  }
}

/** Numbered parameters (?1…), as the report's two tables both take them. */
function usageWhere(q: UsageQuery): { where: string; params: Param[] } {
  const cond: string[] = [];
  const params: Param[] = [];
  if (q.since !== undefined) { params.push(q.since); cond.push(`ts >= ?${params.length}`); }
  if (q.until !== undefined) { params.push(q.until); cond.push(`ts < ?${params.length}`); }
  if (q.keyId !== undefined) { params.push(q.keyId); cond.push(`key_id = ?${params.length}`); }
  return { where: cond.length === 0 ? '' : 'WHERE ' + cond.join(' AND '), params };
}
