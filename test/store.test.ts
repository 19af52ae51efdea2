// The store contract against both implementations: SQLite in a temp file, and a real
// PostgreSQL cluster started for this file (test/support/servers.ts).

import { after, describe } from 'node:test';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SPEND_SQL, SqliteStore } from '../src/store/sqlite.ts';
import { PostgresStore } from '../src/store/postgres.ts';
import { startPostgres, type PgServer } from './support/servers.ts';
import { storeContract } from './support/store-contract.ts';
import { tempDir } from './support/temp-dir.ts';

const dir = tempDir('fabric-store-');
after(() => rmSync(dir, { recursive: true, force: true }));

describe('sqlite store', () => {
  let n = 0;
  let last = '';
  storeContract('sqlite', {
    async fresh() {
      last = join(dir, `s${n++}`, 'fabric.db');
      return new SqliteStore(last);
    },
    async another() {
      return new SqliteStore(last);
    },
  });
});

describe('sqlite store, bulk writes on its writer thread', () => {
  let n = 0;
  let last = '';
  storeContract('sqlite+thread', {
    async fresh() {
      last = join(dir, `t${n++}`, 'fabric.db');
      return new SqliteStore(last, { writerThread: true });
    },
    async another() {
      return new SqliteStore(last, { writerThread: true });
    },
  });
});

test('sqlite: the spend query budgets run every second reads the partial index, not every row of the period', async () => {
  const file = join(dir, 'plan', 'fabric.db');
  const s = new SqliteStore(file);
  await s.migrate();
  await s.close();
  const db = new DatabaseSync(file);
  try {
    const plan = db.prepare(`EXPLAIN QUERY PLAN ${SPEND_SQL}`).all(0).map((r) => String(r.detail)).join('; ');
    assert.match(plan, /USING COVERING INDEX fabric_usage_spend/, plan);
    assert.match(plan, /USING COVERING INDEX fabric_usage_daily_spend/, plan);
  } finally {
    db.close();
  }
});

const pg = await startPostgres();
describe('postgres store', { skip: typeof pg === 'string' ? pg : false }, () => {
  const server = pg as PgServer;
  let n = 0;
  let last = '';
  after(() => server.close());
  storeContract('postgres', {
    async fresh() {
      last = await server.createDatabase(`contract_${n++}`);
      return new PostgresStore(last);
    },
    async another() {
      return new PostgresStore(last);
    },
  });
});
