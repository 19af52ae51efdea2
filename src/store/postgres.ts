// The shared store: PostgreSQL through node-postgres, for several gateway instances over one
// database. Migrations run under an advisory lock so instances starting together apply them
// once; usage is inserted as one UNNEST statement per batch; every key change sends a NOTIFY
// so other instances reload their keys at once instead of at their next poll.

import pg from 'pg';
import { MIGRATIONS, MIGRATIONS_TABLE } from './migrations.ts';
import {
  FOLD_CUT, FOLD_FIRST, KEY_COLUMNS, foldSpan, applyPatch, groupExpr, keyFromRow, keyValues, meets, rollupInsert, spendSql, summarySql, usageFromRow, usageRowFromRow, usageValues,
} from './rows.ts';
import {
  StoreError, type KeyCondition, type KeyPatch, type KeyRecord, type RequestLogRecord, type SpendRow, type Store, type UsageQuery, type UsageRecord, type UsageRow,
} from './types.ts';

/**
 * SQLSTATE classes that mean the rows themselves are at fault, which no retry cures: data
 * exceptions (22) and integrity constraints (23). A missing table or a revoked privilege (42P01,
 * 42501: a restore under way, a role changed) is the database's state, not the records': they
 * wait in the spool until it is mended, as in an outage.
 */
const permanent = (e: unknown): boolean => /^(22|23)/.test(String((e as { code?: unknown }).code ?? ''));

/** PostgreSQL text cannot hold NUL (a model name a client sent with one): it is stored as U+FFFD. */
const pgText = (v: unknown): unknown => (typeof v === 'string' && v.includes('\0') ? v.replaceAll('\0', '\uFFFD') : v);

const MIGRATION_LOCK = 0x6661627269; // 'fabri'
const SPEND_SQL = spendSql('$1');
/** Numbered parameters: $1, $2… */
const PG = (i: number): string => `$${i}`;
const CHANNEL = 'fabric_keys';

// BIGINT columns hold unix milliseconds: well inside a double's exact range.
pg.types.setTypeParser(pg.types.builtins.INT8, (v: string) => Number(v));

/** Query parameters of a connection URL that hold secrets (pg-connection-string reads them). */
const SECRET_PARAMS = ['password', 'sslpassword', 'sslkey', 'sslcert', 'sslrootcert'];

/** The URL without its password (in the userinfo or the query), for logs and messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    for (const p of SECRET_PARAMS) if (u.searchParams.has(p)) u.searchParams.set(p, '***');
    return u.href;
  } catch {
    return '(unparseable database URL)';
  }
}

const USAGE_TYPES = [
  'text', 'int8', 'text', 'text', 'text', 'text', 'text', 'text', 'text', 'int4', 'text', 'int4', 'int4', 'bool', 'float8', 'float8', 'int4',
  'bool', 'bool', 'float8',
];
const USAGE_INSERT = `INSERT INTO fabric_usage (id, ts, key_id, key_name, op, model, role, backend, upstream_model, status, code, prompt_tokens,
  completion_tokens, estimated, latency_ms, ttft_ms, attempts, rerouted, stream, cost)
  SELECT * FROM UNNEST(${USAGE_TYPES.map((t, i) => `$${i + 1}::${t}[]`).join(', ')}) ON CONFLICT (id) DO NOTHING`;

export interface PostgresOptions {
  /** Pool size; the gateway needs few (one writer, occasional reads). */
  max?: number;
  connectTimeoutMs?: number;
  /** Called with errors on idle connections (a restarted server), which would otherwise be unhandled. */
  onError?: (e: Error) => void;
}

export class PostgresStore implements Store {
  readonly kind = 'postgres' as const;
  readonly where: string;
  readonly #pool: pg.Pool;
  readonly #url: string;
  readonly #onError: (e: Error) => void;
  #closed = false;

  constructor(url: string, opts: PostgresOptions = {}) {
    this.#url = url;
    this.where = redactUrl(url);
    this.#onError = opts.onError ?? (() => {});
    this.#pool = new pg.Pool({
      connectionString: url,
      max: opts.max ?? 4,
      connectionTimeoutMillis: opts.connectTimeoutMs ?? 3_000,
      idleTimeoutMillis: 30_000,
      // A statement that hangs (a locked table, a half-dead server) must not hold the writer forever.
      statement_timeout: 30_000,
      query_timeout: 35_000,
      application_name: 'ai-fabric',
    });
    this.#pool.on('error', (e) => this.#onError(e));
  }

  async #q<T extends pg.QueryResultRow = Record<string, unknown>>(what: string, sql: string, params: unknown[] = []): Promise<pg.QueryResult<T>> {
    try {
      return await this.#pool.query<T>(sql, params);
    } catch (e) {
      throw new StoreError(`PostgreSQL ${what}: ${(e as Error).message}`, { cause: e, permanent: permanent(e) });
    }
  }

  async #tx<T>(what: string, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (e) {
      throw new StoreError(`PostgreSQL ${what}: ${(e as Error).message}`, { cause: e });
    }
    try {
      await client.query('BEGIN');
      const out = await fn(client);
      await client.query('COMMIT');
      return out;
    } catch (e) {
      await client.query('ROLLBACK').catch(() => {});
      throw e instanceof StoreError ? e : new StoreError(`PostgreSQL ${what}: ${(e as Error).message}`, { cause: e, permanent: permanent(e) });
    } finally {
      client.release();
    }
  }

  async migrate(): Promise<number[]> {
    return this.#tx('migration', async (c) => {
      await c.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      await c.query(MIGRATIONS_TABLE.postgres);
      const done = new Set((await c.query('SELECT version FROM fabric_migrations')).rows.map((r) => Number(r.version)));
      const applied: number[] = [];
      for (const m of MIGRATIONS) {
        if (done.has(m.version)) continue;
        await c.query(m.postgres);
        await c.query('INSERT INTO fabric_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [m.version, m.name, Date.now()]);
        applied.push(m.version);
      }
      return applied;
    });
  }

  async ping(): Promise<void> {
    await this.#q('ping', 'SELECT 1');
  }

  async #bumpKeys(c: pg.PoolClient): Promise<void> {
    await c.query("UPDATE fabric_meta SET value = value + 1 WHERE name = 'keys_version'");
    // Delivered at commit, to every listening instance.
    await c.query(`NOTIFY ${CHANNEL}`);
  }

  async insertKey(k: KeyRecord): Promise<void> {
    await this.#tx('insert key', async (c) => {
      await c.query(`INSERT INTO fabric_keys (${KEY_COLUMNS.join(', ')}) VALUES (${KEY_COLUMNS.map((_, i) => `$${i + 1}`).join(', ')})`, keyValues(k));
      await this.#bumpKeys(c);
    });
  }

  async keyById(id: string): Promise<KeyRecord | undefined> {
    const r = await this.#q('read key', 'SELECT * FROM fabric_keys WHERE id = $1', [id]);
    return r.rows.length === 0 ? undefined : keyFromRow(r.rows[0]!);
  }

  async keyByHash(hash: string): Promise<KeyRecord | undefined> {
    const r = await this.#q('read key', 'SELECT * FROM fabric_keys WHERE hash = $1', [hash]);
    return r.rows.length === 0 ? undefined : keyFromRow(r.rows[0]!);
  }

  async listKeys(): Promise<KeyRecord[]> {
    return (await this.#q('list keys', 'SELECT * FROM fabric_keys ORDER BY created_at, id')).rows.map(keyFromRow);
  }

  async updateKey(id: string, patch: KeyPatch, expect?: KeyCondition): Promise<KeyRecord | undefined | null> {
    return this.#tx('update key', async (c) => {
      // FOR UPDATE: another instance's write to the key waits for this transaction, and this one
      // for a write under way (then reads the key as that left it), so the condition holds at the write.
      const r = await c.query('SELECT * FROM fabric_keys WHERE id = $1 FOR UPDATE', [id]);
      if (r.rows.length === 0) return undefined;
      const current = keyFromRow(r.rows[0]!);
      if (!meets(current, expect)) return null;
      const vals = keyValues(applyPatch(current, patch));
      const sets = KEY_COLUMNS.slice(1).map((col, i) => `${col} = $${i + 1}`).join(', ');
      // As stored (JSONB orders an object's keys its own way): what the next read gives.
      const stored = await c.query(`UPDATE fabric_keys SET ${sets} WHERE id = $${KEY_COLUMNS.length} RETURNING *`, [...vals.slice(1), id]);
      await this.#bumpKeys(c);
      return keyFromRow(stored.rows[0]!);
    });
  }

  async keysVersion(): Promise<number> {
    const r = await this.#q('read keys version', "SELECT value FROM fabric_meta WHERE name = 'keys_version'");
    return Number(r.rows[0]!.value);
  }

  watchKeys(cb: () => void): () => void {
    // A dedicated connection outside the pool: LISTEN lives as long as its session. When it
    // drops (a restarted server) it is re-opened with backoff; polling covers the gap.
    let client: pg.Client | undefined;
    let stopped = false;
    let delay = 200;
    let timer: NodeJS.Timeout | undefined;
    const connect = (): void => {
      if (stopped || this.#closed) return;
      const c = new pg.Client({ connectionString: this.#url, connectionTimeoutMillis: 3_000, application_name: 'ai-fabric-listen' });
      client = c;
      const retry = (): void => {
        c.removeAllListeners('notification');
        c.end().catch(() => {});
        if (client === c) client = undefined;
        if (stopped || this.#closed) return;
        timer = setTimeout(connect, delay);
        timer.unref();
        delay = Math.min(delay * 2, 5_000);
      };
      c.on('error', retry);
      c.on('end', () => { if (client === c) retry(); });
      c.on('notification', () => cb());
      c.connect()
        .then(() => c.query(`LISTEN ${CHANNEL}`))
        .then(() => {
          delay = 200;
          // Changes made while not listening: tell the watcher to check.
          cb();
        })
        .catch(retry);
    };
    connect();
    return () => {
      stopped = true;
      clearTimeout(timer);
      const c = client;
      client = undefined;
      c?.end().catch(() => {});
    };
  }

  async insertUsage(records: readonly UsageRecord[]): Promise<number> {
    if (records.length === 0) return 0;
    const cols: unknown[][] = USAGE_TYPES.map(() => new Array(records.length));
    records.forEach((u, i) => {
      const vals = usageValues(u, (b) => b);
      for (let c = 0; c < vals.length; c++) cols[c]![i] = pgText(vals[c]);
    });
    const r = await this.#q('insert usage', USAGE_INSERT, cols);
    return r.rowCount ?? 0;
  }

  async usageSummary(q: UsageQuery): Promise<UsageRow[]> {
    const { where, params } = usageWhere(q);
    const g = groupExpr(q.by, "to_char(to_timestamp(ts / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD')");
    const sql = summarySql(q.by, `(${g})::text`, where);
    return (await this.#q('usage report', sql, params)).rows.map(usageRowFromRow);
  }

  async usageById(id: string): Promise<UsageRecord | undefined> {
    const r = await this.#q('read usage', 'SELECT * FROM fabric_usage WHERE id = $1', [id]);
    return r.rows.length === 0 ? undefined : usageFromRow(r.rows[0]!);
  }

  async spendSince(since: number): Promise<SpendRow[]> {
    const r = await this.#q('read spend', SPEND_SQL, [since]);
    return r.rows.map((x) => ({ keyId: x.key_id === null ? undefined : String(x.key_id), backend: String(x.backend), cost: Number(x.cost) }));
  }

  /**
   * The records are deleted and folded in one statement: an instance folding the same rows at
   * once waits on their row locks, then finds them gone, so none is counted twice.
   */
  async rollupUsage(before: number, maxRecords: number): Promise<number> {
    return this.#tx('fold usage', async (c) => {
      const first = (await c.query(FOLD_FIRST(PG), [before])).rows[0]?.ts;
      if (first === null || first === undefined) return 0;
      const start = Number(first);
      const { day, end: dayEnd } = foldSpan(start, before);
      const cut = (await c.query(FOLD_CUT(PG), [start, dayEnd, maxRecords])).rows[0]?.ts;
      const end = cut !== undefined && Number(cut) > start ? Number(cut) : dayEnd;
      const r = await c.query(`WITH moved AS (DELETE FROM fabric_usage WHERE ts >= $2 AND ts < $3 RETURNING *),
        folded AS (${rollupInsert('$1::bigint', 'moved')})
        SELECT COUNT(*) AS n FROM moved`, [day, start, end]);
      return Number(r.rows[0]!.n);
    });
  }

  async insertRequestLogs(records: readonly RequestLogRecord[]): Promise<void> {
    if (records.length === 0) return;
    await this.#q('insert request log', `INSERT INTO fabric_request_log (id, ts, key_id, status, request, response, bytes)
      SELECT * FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::int4[], $5::text[], $6::text[], $7::int4[]) ON CONFLICT (id) DO NOTHING`, [
      records.map((r) => r.id), records.map((r) => r.ts), records.map((r) => r.keyId ?? null), records.map((r) => r.status),
      records.map((r) => r.request), records.map((r) => r.response), records.map((r) => r.request.length + r.response.length),
    ]);
  }

  async requestLogs(q: { limit: number; keyId?: string; id?: string }): Promise<RequestLogRecord[]> {
    const cond: string[] = [];
    const params: unknown[] = [];
    if (q.id !== undefined) { params.push(q.id); cond.push(`id = $${params.length}`); }
    if (q.keyId !== undefined) { params.push(q.keyId); cond.push(`key_id = $${params.length}`); }
    params.push(q.limit);
    const r = await this.#q('read request log', `SELECT * FROM fabric_request_log ${cond.length === 0 ? '' : 'WHERE ' + cond.join(' AND ')} ORDER BY ts DESC, id DESC LIMIT $${params.length}`, params);
    return r.rows.map((x) => ({
      id: String(x.id), ts: Number(x.ts), keyId: x.key_id === null ? undefined : String(x.key_id), status: Number(x.status),
      request: String(x.request), response: String(x.response),
    }));
  }

  async pruneRequestLogs(before: number, maxBytes: number): Promise<number> {
    return this.#tx('prune request log', async (c) => {
      let n = (await c.query('DELETE FROM fabric_request_log WHERE ts < $1', [before])).rowCount ?? 0;
      n += (await c.query(`DELETE FROM fabric_request_log WHERE id IN (
        SELECT id FROM (SELECT id, SUM(bytes) OVER (ORDER BY ts DESC, id DESC) AS kept FROM fabric_request_log) t WHERE kept > $1)`, [maxBytes])).rowCount ?? 0;
      return n;
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.end().catch(() => {});
  }
}

function usageWhere(q: UsageQuery): { where: string; params: unknown[] } {
  const cond: string[] = [];
  const params: unknown[] = [];
  if (q.since !== undefined) { params.push(q.since); cond.push(`ts >= $${params.length}`); }
  if (q.until !== undefined) { params.push(q.until); cond.push(`ts < $${params.length}`); }
  if (q.keyId !== undefined) { params.push(q.keyId); cond.push(`key_id = $${params.length}`); }
  return { where: cond.length === 0 ? '' : 'WHERE ' + cond.join(' AND '), params };
}
